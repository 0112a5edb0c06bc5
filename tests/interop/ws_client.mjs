// Drives troupe's WebSocket channel (GET /ws) with the npm `ws` client, as an application would, following a script,
// and prints what happened as one JSON line (tests/integration/websocket_test.cpp reads it):
//   node ws_client.mjs --url ws://127.0.0.1:PORT/ws [--token T] [--no-auto-pong] --script '[steps]'
// Steps, run in order once the connection is open:
//   {"send": {...}}            a text message (the object as JSON)
//   {"send_binary": {...}}     the same JSON in a binary message
//   {"send_text": "..."}       a text message as it is (malformed JSON and such)
//   {"send_bytes": N}          a text message of N bytes (a JSON string padded with spaces)
//   {"wait": {...}}            until a message whose members include all of these (e.g. {"type": "chat.done"})
//   {"wait_pings": N}          until the server has sent N pings in all
//   {"wait_close": true}       until the server closes the connection
// Output: {"status": <HTTP status when the handshake was refused, else 101>, "retry_after": <its Retry-After>,
//          "messages": [{"binary": b, "data": {..}}],
//          "pings": N, "close": {"code": C, "reason": "...", "after_ms": M} or null, "error": "..." or null}
// Every step has a deadline (--timeout-ms, default 10000): a step that times out ends the script with "error" set.
import WebSocket from 'ws';

const args = { timeoutMs: 10000, autoPong: true };
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (arg === '--url') args.url = process.argv[++i];
  else if (arg === '--token') args.token = process.argv[++i];
  else if (arg === '--script') args.script = JSON.parse(process.argv[++i]);
  else if (arg === '--timeout-ms') args.timeoutMs = Number(process.argv[++i]);
  else if (arg === '--no-auto-pong') args.autoPong = false;
}

const result = { status: null, messages: [], pings: 0, close: null, error: null };
const started = Date.now();
const headers = args.token ? { Authorization: `Bearer ${args.token}` } : {};
const ws = new WebSocket(args.url, { headers, autoPong: args.autoPong, maxPayload: 64 * 1024 * 1024 });

let waiter = null; // {match(entry) -> bool, resolve}
let seen = 0;      // messages already matched against waiters

function finish() {
  console.log(JSON.stringify(result));
  process.exit(0);
}

function matches(data, pattern) {
  return data && typeof data === 'object' && Object.entries(pattern).every(([k, v]) => data[k] === v);
}

function check() {
  if (!waiter) return;
  if (waiter.kind === 'pings' && result.pings >= waiter.pattern) {
    const w = waiter;
    waiter = null;
    w.resolve();
    return;
  }
  if (waiter.kind === 'message') {
    while (seen < result.messages.length) {
      const entry = result.messages[seen++];
      if (matches(entry.data, waiter.pattern)) {
        const w = waiter;
        waiter = null;
        w.resolve();
        return;
      }
    }
  }
  if (result.close) {
    const w = waiter;
    waiter = null;
    if (w.kind === 'close') w.resolve();
    else w.reject(new Error(`closed while waiting for ${JSON.stringify(w.pattern)}`));
  }
}

function wait(kind, pattern) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      waiter = null;
      reject(new Error(`timed out waiting for ${kind} ${JSON.stringify(pattern ?? {})}`));
    }, args.timeoutMs);
    waiter = {
      kind,
      pattern,
      resolve: () => { clearTimeout(timer); resolve(); },
      reject: (e) => { clearTimeout(timer); reject(e); },
    };
    check();
  });
}

ws.on('unexpected-response', (req, res) => {
  result.status = res.statusCode;
  result.retry_after = res.headers['retry-after'] ?? null;
  let body = '';
  res.on('data', (d) => { body += d; });
  res.on('end', () => {
    try { result.body = JSON.parse(body); } catch { result.body = body; }
    finish();
  });
});
ws.on('ping', () => { result.pings += 1; check(); });
ws.on('message', (data, isBinary) => {
  let parsed;
  try { parsed = JSON.parse(data.toString('utf8')); } catch { parsed = data.toString('utf8'); }
  result.messages.push({ binary: isBinary, data: parsed });
  check();
});
ws.on('close', (code, reason) => {
  result.close = { code, reason: reason.toString('utf8'), after_ms: Date.now() - started };
  check();
  if (!waiter) setImmediate(() => { if (!running) finish(); });
});
ws.on('error', (err) => {
  if (result.status === null) result.error = err.message;
});

let running = false;
ws.on('open', async () => {
  result.status = 101;
  running = true;
  try {
    for (const step of args.script ?? []) {
      if (step.send !== undefined) ws.send(JSON.stringify(step.send));
      else if (step.send_binary !== undefined) ws.send(Buffer.from(JSON.stringify(step.send_binary)), { binary: true });
      else if (step.send_text !== undefined) ws.send(step.send_text);
      else if (step.send_bytes !== undefined) ws.send(JSON.stringify(' '.repeat(Math.max(0, step.send_bytes - 2))));
      else if (step.wait !== undefined) await wait('message', step.wait);
      else if (step.wait_pings !== undefined) await wait('pings', step.wait_pings);
      else if (step.wait_close !== undefined) await wait('close');
    }
  } catch (e) {
    result.error = e.message;
  }
  running = false;
  if (result.close) finish();
  ws.close(1000);
  setTimeout(finish, 2000); // the closing handshake, or give up on it
});
