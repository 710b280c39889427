import path from 'node:path';
import { getQueue, loadConfig } from '../../config/index.js';
import { CATALOGUE, checkModelFile, loadLlama, inspectModel, localModels, pullModel } from '../../model/index.js';
import { Progress } from '../progress.js';

const gb = (n: number) => `${(n / 1024 ** 3).toFixed(2)} GB`;

export async function modelsListCommand(): Promise<number> {
  const config = loadConfig();
  process.stdout.write('Catalogue (docsift models pull NAME):\n');
  for (const m of CATALOGUE) process.stdout.write(`  ${m.name.padEnd(14)} ${m.size.padStart(7)}  ${m.note}\n`);
  const dir = path.resolve(config.env.DOCSIFT_MODELS_DIR);
  const local = localModels(dir);
  process.stdout.write(`\nIn ${dir}${local.length ? ':' : ': none'}\n`);
  for (const m of local) process.stdout.write(`  ${path.basename(m.file).padEnd(48)} ${gb(m.bytes)}\n`);
  if (config.env.DOCSIFT_MODEL) process.stdout.write(`\nDOCSIFT_MODEL=${config.env.DOCSIFT_MODEL}\n`);
  return 0;
}

export async function modelsPullCommand(name: string): Promise<number> {
  const config = loadConfig();
  const dir = path.resolve(config.env.DOCSIFT_MODELS_DIR);
  let bar: Progress | undefined;
  const { file, sha256 } = await pullModel(name, dir, (done, total) => {
    bar ??= new Progress(100, `pull ${name}`);
    bar.update(total > 0 ? Math.floor((done / total) * 100) : 0, `${gb(done)} of ${gb(total)}`);
  });
  bar?.finish();
  process.stdout.write(`${file}\nsha256 ${sha256}\nUse it: DOCSIFT_MODEL=${file} docsift worker\n`);
  return 0;
}

/** What a GGUF file is and how many sequences of the queue's context fit on this machine. */
export async function modelsInspectCommand(file: string, options: { queue: string; json: boolean }): Promise<number> {
  const config = loadConfig();
  const queue = getQueue(config, options.queue);
  checkModelFile(path.resolve(file));
  const { llama } = await loadLlama({ gpu: config.env.DOCSIFT_GPU, threads: config.env.DOCSIFT_THREADS });
  try {
    const i = await inspectModel(file, llama, queue.model.contextSize);
    if (options.json) {
      process.stdout.write(JSON.stringify(i) + '\n');
      return 0;
    }
    const lines = [
      ['file', `${i.file} (${gb(i.bytes)})`],
      ['architecture', i.architecture + (i.name ? ` (${i.name})` : '')],
      ['parameters', `${(i.parameters / 1e6).toFixed(1)} M`],
      ['quantisation', i.quantisation],
      ['context length', i.contextLength === null ? 'unknown' : String(i.contextLength)],
      ['layers', String(i.layers)],
      ['backend', `${i.memory.backend}, ${gb(i.memory.freeBytes)} free`],
      [`per sequence`, `${gb(i.bytesPerSequence)} at ${i.contextSize} tokens (queue ${queue.name})`],
      ['sequences that fit', `${i.sequencesThatFit} (queue ${queue.name} uses concurrency ${queue.concurrency})`],
    ];
    for (const [k, v] of lines) process.stdout.write(`${k!.padEnd(20)} ${v}\n`);
    return 0;
  } finally {
    await llama.dispose();
  }
}
