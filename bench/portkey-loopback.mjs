// Preloaded by bench/gateway.sh into the Portkey gateway's Node process (node --import): Portkey's start-server.js
// listens on every interface and has no host option, and benchmarks listen on loopback only. This makes every TCP
// server of the process listen on 127.0.0.1 instead, whatever host it asks for (port and callback are kept).
import net from 'node:net';

const host = '127.0.0.1';
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    const callback = args.find((a) => typeof a === 'function');
    return callback ? listen.call(this, Number(first), host, callback) : listen.call(this, Number(first), host);
  }
  if (first !== null && typeof first === 'object' && 'port' in first) {
    args[0] = { ...first, host };
  }
  return listen.apply(this, args);
};
