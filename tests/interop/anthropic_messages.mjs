// Drives troupe's POST /v1/messages with the official Anthropic TypeScript SDK, as an application would:
//   node anthropic_messages.mjs --base-url http://127.0.0.1:PORT --api-key trp_... --model M
// Creates a message, then streams one (the SDK's MessageStream, its text events and finalMessage()), and prints one
// JSON line:
//   {"text": "...", "stop_reason": "...", "usage": {...}, "streamed": "...", "deltas": N, "final": "...",
//    "final_usage": {...}, "events": [...]}
// Any SDK error ends the process with status 1 and the error's status and message on stderr.
import Anthropic from '@anthropic-ai/sdk';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), [])
);

// The SDK sends the key as x-api-key, which troupe takes like a bearer credential.
const client = new Anthropic({ baseURL: args['base-url'], apiKey: args['api-key'], maxRetries: 0, timeout: 20000 });

try {
  const message = await client.messages.create({
    model: args.model,
    max_tokens: 64,
    system: 'be brief',
    messages: [{ role: 'user', content: 'hello from the anthropic sdk' }],
  });
  const stream = client.messages.stream({
    model: args.model,
    max_tokens: 64,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'stream from the anthropic sdk' }] }],
  });
  let streamed = '';
  let deltas = 0;
  const events = [];
  stream.on('streamEvent', (event) => events.push(event.type));
  stream.on('text', (text) => {
    streamed += text;
    deltas += 1;
  });
  const final = await stream.finalMessage();
  console.log(JSON.stringify({
    text: message.content.filter((b) => b.type === 'text').map((b) => b.text).join(''),
    stop_reason: message.stop_reason,
    usage: message.usage,
    id: message.id,
    model: message.model,
    streamed,
    deltas,
    final: final.content.filter((b) => b.type === 'text').map((b) => b.text).join(''),
    final_stop_reason: final.stop_reason,
    final_usage: final.usage,
    events,
  }));
} catch (err) {
  console.error(`anthropic sdk error: status=${err.status ?? 'none'} ${err.message}`);
  process.exit(1);
}
