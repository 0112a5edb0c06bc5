// The client of `make bench-upload`: one tus upload of FILE in CHUNK-byte PATCHes over one keep-alive connection,
// each PATCH sent when the previous one was answered (as tus clients do). The same client for every server.
// Usage: node tus_put.mjs ENDPOINT FILE CHUNK METADATA [HEADER: value]...
//   ENDPOINT is the creation URL, METADATA the Upload-Metadata value ("" for none).
// Prints one JSON line: {"bytes": N, "seconds": S, "mb_per_s": R, "location": URL}. Exits 1 on any non-2xx.
import http from 'node:http';
import { openSync, readSync, fstatSync, closeSync } from 'node:fs';

const [endpoint, file, chunkText, metadata, ...headerArgs] = process.argv.slice(2);
const chunk = Number(chunkText);
const extra = Object.fromEntries(headerArgs.map((h) => [h.slice(0, h.indexOf(':')).trim(), h.slice(h.indexOf(':') + 1).trim()]));
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(method, url, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: { 'Tus-Resumable': '1.0.0', ...extra, ...headers } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode < 300 ? resolve(res) : reject(new Error(`${method} ${url}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const fd = openSync(file, 'r');
const size = fstatSync(fd).size;
const creation = { 'Upload-Length': String(size) };
if (metadata) creation['Upload-Metadata'] = metadata;
const created = await request('POST', endpoint, creation);
const location = new URL(created.headers.location, endpoint).toString();
const buffer = Buffer.alloc(chunk);
const start = process.hrtime.bigint();
for (let offset = 0; offset < size; ) {
  const n = readSync(fd, buffer, 0, Math.min(chunk, size - offset), offset);
  const res = await request('PATCH', location, {
    'Upload-Offset': String(offset),
    'Content-Type': 'application/offset+octet-stream',
    'Content-Length': String(n),
  }, buffer.subarray(0, n));
  offset = Number(res.headers['upload-offset']);
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
closeSync(fd);
agent.destroy();
console.log(JSON.stringify({ bytes: size, seconds, mb_per_s: size / seconds / 1e6, location }));
