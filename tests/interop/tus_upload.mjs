// Uploads a file to Troupe with the real tus-js-client (Node, Buffer input), in chunks, and resumes it after an
// interruption: the first upload (creation-with-upload) is aborted once --interrupt-after bytes are acknowledged;
// a second tus.Upload given the first one's URL asks the server (HEAD) where to resume, and sends the rest with
// POST + X-HTTP-Method-Override: PATCH. Prints one JSON line: {url, interrupted_at, resumed_from, job_id, bytes}.
//
// Used by tests/integration/tus_interop_test.cpp. Exits 1 with the error on stderr when anything fails.
import { readFileSync } from 'node:fs';
import * as tus from 'tus-js-client';

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`missing --${name}`);
  return process.argv[i + 1];
}

const endpoint = arg('endpoint');
const token = arg('token');
const repository = arg('repository');
const file = readFileSync(arg('file'));
const chunkSize = Number(arg('chunk'));
const interruptAfter = Number(arg('interrupt-after'));

const common = {
  chunkSize,
  retryDelays: [0, 200, 1000],
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename: 'interop.bin', repository_id: repository },
  storeFingerprintForResuming: false,
};

let jobId = '';
const remember = (_req, res) => {
  const id = res.getHeader('Troupe-Job-Id');
  if (id) jobId = id;
};

// 1. Start, and abort once enough is acknowledged.
const first = await new Promise((resolve, reject) => {
  const upload = new tus.Upload(file, {
    ...common,
    endpoint,
    uploadDataDuringCreation: true,
    onAfterResponse: remember,
    onError: reject,
    onSuccess: () => reject(new Error('the first upload finished before the interruption')),
    onChunkComplete: (_size, accepted) => {
      if (accepted >= interruptAfter) {
        upload.abort(false).then(() => resolve({ url: upload.url, offset: accepted }), reject);
      }
    },
  });
  upload.start();
});

// 2. Resume from the server's offset.
let resumedFrom = -1;
await new Promise((resolve, reject) => {
  const upload = new tus.Upload(file, {
    ...common,
    uploadUrl: first.url,
    overridePatchMethod: true,
    onAfterResponse: (req, res) => {
      if (req.getMethod() === 'HEAD') resumedFrom = Number(res.getHeader('Upload-Offset'));
      remember(req, res);
    },
    onError: reject,
    onSuccess: resolve,
  });
  upload.start();
});

console.log(JSON.stringify({ url: first.url, interrupted_at: first.offset, resumed_from: resumedFrom, job_id: jobId, bytes: file.length }));
