/**
 * Child process: loads one llama.cpp binary and decodes a few tokens of a tiny generated model
 * with every layer on the GPU. A binary/driver mismatch the plan did not foresee aborts this
 * process, not the worker. Exit 0 and one JSON line on success; anything else is a failure.
 * Usage: node probeChild.js <binary id> <threads>
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeLlamaModel } from '../gguf/makeLlamaModel.js';
import { findBinaries } from './binaries.js';
import { loadBinary } from './load.js';

const [id, threads] = process.argv.slice(2);
const binary = findBinaries().find((b) => b.id === id);
if (!binary) {
  process.stderr.write(`no installed binary ${id}\n`);
  process.exit(1);
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'docsift-gpu-probe-'));
try {
  const llama = await loadBinary(binary, Number(threads) || 1, () => undefined);
  const backend = llama.gpu === false ? 'cpu' : llama.gpu;
  if (backend !== binary.backend) throw new Error(`llama.cpp came up on ${backend}, not ${binary.backend} (a library it needs did not load)`);
  const file = path.join(dir, 'probe.gguf');
  makeLlamaModel(file);
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 'max' });
  const context = await model.createContext({ contextSize: 256, sequences: 1 });
  const sequence = context.getSequence();
  let decoded = 0;
  for await (const _token of sequence.evaluate(model.tokenize('docsift probe: {"total": 12.50}'))) {
    if (++decoded >= 4) break;
  }
  process.stdout.write(`${JSON.stringify({ ok: true, backend, decoded })}\n`);
  process.exitCode = 0;
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
// llama.cpp's threads can keep the event loop alive; the answer is given.
process.exit(process.exitCode ?? 0);
