// The reference of `make bench-upload`: @tus/server with @tus/file-store (the configuration its README shows),
// on node:http, listening on 127.0.0.1. Usage: node tus_server.mjs DIR PORT. Prints "listening PORT" when ready.
import http from 'node:http';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const [dir, port] = process.argv.slice(2);
const tus = new Server({ path: '/files', datastore: new FileStore({ directory: dir }) });
http
  .createServer((req, res) => tus.handle(req, res))
  .listen(Number(port), '127.0.0.1', () => console.log(`listening ${port}`));
