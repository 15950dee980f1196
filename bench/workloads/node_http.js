// SPDX-License-Identifier: Apache-2.0
//
// Minimal Node HTTP service for the stallwatch demo and benchmarks.
//   node node_http.js [--port N] [--host 127.0.0.1]
// Routes:
//   GET /               healthy: "ok\n"
//   GET /block?ms=N     blocks the event loop with a synchronous CPU spin
//   GET /pbkdf2?iter=N  blocks it with crypto.pbkdf2Sync (real-world shape)
//   GET /eld?res=MS     peer comparison: enable perf_hooks.monitorEventLoopDelay
//                       at that resolution (0 disables it); replies the current
//                       p99 in ms so the histogram is really read
// Prints {"event":"ready","pid":..,"port":..} on stdout once listening.
'use strict';
const http = require('http');
const crypto = require('crypto');
const { monitorEventLoopDelay } = require('perf_hooks');

function arg(name, dflt) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

let eld = null;

function spin(ms) {
  const end = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  let x = 0;
  while (process.hrtime.bigint() < end) x++;
  return x;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  let body = 'ok\n';
  switch (url.pathname) {
    case '/':
      break;
    case '/block': {
      const ms = Number(url.searchParams.get('ms') || 100);
      spin(ms);
      body = `blocked ${ms} ms\n`;
      break;
    }
    case '/pbkdf2': {
      const iter = Number(url.searchParams.get('iter') || 200000);
      crypto.pbkdf2Sync('password', 'salt', iter, 64, 'sha512');
      body = `pbkdf2 ${iter} iterations\n`;
      break;
    }
    case '/eld': {
      const r = Number(url.searchParams.get('res') || 0);
      if (eld) { eld.disable(); eld = null; }
      if (r > 0) { eld = monitorEventLoopDelay({ resolution: r }); eld.enable(); }
      body = JSON.stringify({ resolution: r }) + '\n';
      break;
    }
    case '/eld/p99':
      body = JSON.stringify({ p99_ms: eld ? eld.percentile(99) / 1e6 : null }) + '\n';
      break;
    default:
      res.writeHead(404);
      res.end('not found\n');
      return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(body);
});

server.listen(Number(arg('port', 0)), arg('host', '127.0.0.1'), () => {
  process.stdout.write(JSON.stringify({ event: 'ready', pid: process.pid,
    port: server.address().port, runtime: 'node' }) + '\n');
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
