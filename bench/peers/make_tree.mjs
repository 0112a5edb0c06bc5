// Writes a synthetic source tree for `make bench-upload`'s processing run: FILES files of realistic source text
// (C, Python, TypeScript, Markdown; 1-8 KiB each, unique identifiers so segments are not all alike) spread over
// nested directories. Usage: node make_tree.mjs DIR FILES SEED. Prints the total bytes written.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, filesText, seedText] = process.argv.slice(2);
let seed = Number(seedText) || 1;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const words = ['parse', 'upload', 'chunk', 'segment', 'actor', 'queue', 'lease', 'retry', 'archive', 'index',
  'search', 'token', 'stream', 'buffer', 'session', 'router', 'commit', 'offset', 'digest', 'language'];
const name = () => `${words[Math.floor(random() * words.length)]}_${words[Math.floor(random() * words.length)]}_${Math.floor(random() * 1e6)}`;
const kinds = [
  ['c', (f) => `int ${f}(int value) {\n  if (value < 0)\n    return -1;\n  return value * 2 + ${Math.floor(random() * 100)};\n}\n\n`],
  ['py', (f) => `def ${f}(items):\n    """Return the items that pass."""\n    return [i for i in items if i % ${1 + Math.floor(random() * 9)}]\n\n`],
  ['ts', (f) => `export function ${f}(input: string): number {\n  return input.length + ${Math.floor(random() * 100)};\n}\n\n`],
  ['md', (f) => `## ${f}\n\nThis section explains ${f} in a few words for the reader.\n\n`],
];
let total = 0;
const count = Number(filesText);
for (let i = 0; i < count; i++) {
  const sub = join(dir, `pkg${i % 50}`, `mod${Math.floor(i / 50) % 20}`);
  mkdirSync(sub, { recursive: true });
  const [ext, block] = kinds[i % kinds.length];
  const target = 1024 + Math.floor(random() * 7 * 1024);
  let text = '';
  while (text.length < target) text += block(name());
  writeFileSync(join(sub, `file${i}.${ext}`), text);
  total += Buffer.byteLength(text);
}
console.log(total);
