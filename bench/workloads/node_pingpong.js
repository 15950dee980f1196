// SPDX-License-Identifier: Apache-2.0
//
// Tight event-loop workload: a 1-byte ping-pong over a loopback TCP connection
// inside one Node process, so every loop iteration wakes from epoll with an
// event. Used to time the cost the agent adds per loop iteration.
//   node node_pingpong.js [--seconds 5]
// Prints {"event":"ready","pid":..}, waits for one line on stdin (the bench
// attaches the agent meanwhile), runs, prints {"event":"result",...}, exits.
'use strict';
const net = require('net');
const fs = require('fs');

const i = process.argv.indexOf('--seconds');
const seconds = i > 0 ? Number(process.argv[i + 1]) : 5;

const server = net.createServer((s) => {
  s.setNoDelay(true);
  s.on('data', (d) => s.write(d));
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ event: 'ready', pid: process.pid }) + '\n');
  // Synchronous wait for "go": nothing else is on the loop yet.
  const buf = Buffer.alloc(64);
  try { fs.readSync(0, buf, 0, buf.length, null); } catch (e) { /* EOF: go */ }
  const c = net.connect(server.address().port, '127.0.0.1');
  c.setNoDelay(true);
  const ping = Buffer.from('x');
  let n = 0;
  let t0;
  c.on('connect', () => { t0 = process.hrtime.bigint(); c.write(ping); });
  const end = () => {
    const ns = Number(process.hrtime.bigint() - t0);
    process.stdout.write(JSON.stringify({ event: 'result', roundtrips: n,
      seconds: ns / 1e9, ns_per_roundtrip: ns / n }) + '\n');
    process.exit(0);
  };
  c.on('data', () => {
    n++;
    if ((n & 1023) === 0 && Number(process.hrtime.bigint() - t0) >= seconds * 1e9) return end();
    c.write(ping);
  });
});
