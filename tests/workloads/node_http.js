// SPDX-License-Identifier: Apache-2.0
// Small HTTP server for the root tests, the demo and the benchmark (the one
// Node HTTP service of the repo: one place to fix).
//
//   node node_http.js [--port 0] [--host 127.0.0.1]
//
// Routes:
//   GET /               200 "ok\n" (healthy)
//   GET /block?ms=N     spins the main thread N ms (default 100), then 200;
//                       prints a {"event":"block","kind":"spin",..} ground-truth line
//   GET /pbkdf2?iter=N  crypto.pbkdf2Sync(N iterations, default 200000, sha512) on
//                       the main thread (the real-world shape of a blocked loop),
//                       then 200; prints a {"event":"block","kind":"pbkdf2",..} line
//   GET /json           a small JSON body
//   GET /eld?res=MS     peer comparison for the benchmark: enables
//                       perf_hooks.monitorEventLoopDelay at that resolution
//                       (0 disables it)
//   GET /eld/p99        that histogram's p99 in ms (read it, as an exporter would)
// stdout: {"event":"ready","pid":..,"tid":..,"port":..,"runtime":"node",..} then
// block lines (written after the blocked work, inside the same iteration).
// Exits on SIGTERM/SIGINT, or when stdin (if it is a pipe) closes.
'use strict';
const http = require('http');
const crypto = require('crypto');
const { monitorEventLoopDelay } = require('perf_hooks');
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { port: 0, host: '127.0.0.1' });
const TID = sw.tid();
sw.spin(0); // compiled before the first measured block (see node_block.js)
let requests = 0;
let eld = null;

function reply(res, status, body, ctype = 'text/plain') {
  res.writeHead(status, { 'content-type': ctype });
  res.end(body);
}

const server = http.createServer((req, res) => {
  requests++;
  const url = new URL(req.url, 'http://x');
  switch (url.pathname) {
    case '/':
      reply(res, 200, 'ok\n');
      break;
    case '/block': {
      const ms = Number(url.searchParams.get('ms') || '100');
      sw.emit({ event: 'block', kind: 'spin', ms, tid: TID, ...sw.spin(ms) });
      reply(res, 200, `blocked ${ms} ms\n`);
      break;
    }
    case '/pbkdf2': {
      const iter = Number(url.searchParams.get('iter') || '200000');
      const truth = sw.measure(() => crypto.pbkdf2Sync('password', 'salt', iter, 64, 'sha512'));
      sw.emit({ event: 'block', kind: 'pbkdf2', iter, ms: Number(truth.end_ns - truth.start_ns) / 1e6,
                tid: TID, ...truth });
      reply(res, 200, `pbkdf2 ${iter} iterations\n`);
      break;
    }
    case '/json':
      reply(res, 200, JSON.stringify({ ok: true, requests, pid: process.pid }) + '\n',
            'application/json');
      break;
    case '/eld': {
      const r = Number(url.searchParams.get('res') || 0);
      if (eld) { eld.disable(); eld = null; }
      if (r > 0) { eld = monitorEventLoopDelay({ resolution: r }); eld.enable(); }
      reply(res, 200, JSON.stringify({ resolution: r }) + '\n', 'application/json');
      break;
    }
    case '/eld/p99':
      reply(res, 200, JSON.stringify({ p99_ms: eld ? eld.percentile(99) / 1e6 : null }) + '\n',
            'application/json');
      break;
    default:
      reply(res, 404, 'not found\n');
  }
});
server.keepAliveTimeout = 30000;
server.listen(args.port, args.host, () => {
  sw.emit({ event: 'ready', pid: process.pid, tid: TID, port: server.address().port,
            runtime: 'node', version: process.version, exe: process.execPath });
});
if (sw.stdinIsPipe()) sw.watchStdin(null);
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
