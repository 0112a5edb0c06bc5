// Drives troupe's OpenAI-compatible gateway with the official OpenAI Node SDK, as an application would:
//   node openai_chat.mjs --base-url http://127.0.0.1:PORT/v1 --api-key trp_...
// Runs a chat completion, then a streamed one, and prints one JSON line:
//   {"content": "...", "model": "...", "streamed": "...", "chunks": N, "models": [...]}
// Any SDK error ends the process with status 1 and the error's status and message on stderr.
import OpenAI from 'openai';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), [])
);

const client = new OpenAI({ baseURL: args['base-url'], apiKey: args['api-key'], maxRetries: 0, timeout: 20000 });

try {
  const models = await client.models.list();
  const completion = await client.chat.completions.create({
    model: 'mock-1',
    messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello from the sdk' }],
  });
  const stream = await client.chat.completions.create({
    model: 'mock-1',
    messages: [{ role: 'user', content: 'stream from the sdk' }],
    stream: true,
  });
  let streamed = '';
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    streamed += chunk.choices[0]?.delta?.content ?? '';
  }
  console.log(JSON.stringify({
    content: completion.choices[0].message.content,
    model: completion.model,
    streamed,
    chunks,
    models: models.data.map((m) => m.id),
  }));
} catch (err) {
  console.error(`openai sdk error: status=${err.status ?? 'none'} ${err.message}`);
  process.exit(1);
}
