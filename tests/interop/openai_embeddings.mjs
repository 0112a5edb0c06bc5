// Drives troupe's POST /v1/embeddings with the official OpenAI Node SDK, as a retrieval backend would:
//   node openai_embeddings.mjs --base-url http://127.0.0.1:PORT/v1 --api-key trp_... --model M
// Embeds a batch with the SDK's default encoding (it asks for base64 and decodes it), then the same batch plus one
// new input as floats, and prints one JSON line:
//   {"base64": [[...], ...], "float": [[...], ...], "model": "...", "prompt_tokens": [n, m]}
// Any SDK error ends the process with status 1 and the error's status and message on stderr.
import OpenAI from 'openai';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), [])
);

const client = new OpenAI({ baseURL: args['base-url'], apiKey: args['api-key'], maxRetries: 0, timeout: 20000 });

try {
  const first = await client.embeddings.create({ model: args.model, input: ['the first text', 'the second text'] });
  const second = await client.embeddings.create({
    model: args.model,
    input: ['the second text', 'a third text', 'the first text'],
    encoding_format: 'float',
  });
  const vectors = (res) => res.data.sort((a, b) => a.index - b.index).map((d) => Array.from(d.embedding));
  console.log(JSON.stringify({
    base64: vectors(first),
    float: vectors(second),
    model: first.model,
    prompt_tokens: [first.usage.prompt_tokens, second.usage.prompt_tokens],
  }));
} catch (err) {
  console.error(`openai sdk error: status=${err.status ?? 'none'} ${err.message}`);
  process.exit(1);
}
