// SPDX-License-Identifier: Apache-2.0
// Small HTTP server for tests, the demo and benchmarks.
//
//   node node_http.js [--port 0] [--host 127.0.0.1]
//
// Routes:
//   GET /            200 "ok\n" (healthy)
//   GET /block?ms=N  spins the main thread N ms, then 200; prints a
//                    {"event":"block","kind":"spin",..} ground-truth line
//   GET /json        a small JSON body
// stdout: {"event":"ready","pid":..,"tid":..,"port":..} then block lines.
// Exits on SIGTERM/SIGINT, or when stdin (if it is a pipe) closes.
'use strict';
const http = require('http');
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { port: 0, host: '127.0.0.1' });
const TID = sw.tid();
let requests = 0;

const server = http.createServer((req, res) => {
  requests++;
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/block') {
    const ms = Number(url.searchParams.get('ms') || '100');
    const [start, end] = sw.spin(ms);
    sw.emit({ event: 'block', kind: 'spin', ms, tid: TID, start_ns: start, end_ns: end });
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`blocked ${ms} ms\n`);
  } else if (url.pathname === '/json') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, requests, pid: process.pid }) + '\n');
  } else if (url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
  } else {
    res.writeHead(404);
    res.end('not found\n');
  }
});
server.keepAliveTimeout = 30000;
server.listen(args.port, args.host, () => {
  sw.emit({ event: 'ready', pid: process.pid, tid: TID, port: server.address().port,
            version: process.version, exe: process.execPath });
});
if (sw.stdinIsPipe()) sw.watchStdin(null);
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
