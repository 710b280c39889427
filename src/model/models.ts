import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createModelDownloader, GgmlType, GgufInsights, readGgufFileInfo, type Llama } from 'node-llama-cpp';
import { hashFile } from './hashFile.js';

/**
 * Small instruct models that fit docsift's job (classification and schema-constrained extraction
 * of business documents) on a modest GPU or a CPU. Downloaded by node-llama-cpp's model
 * resolution from Hugging Face; the only code in docsift that touches the network.
 */
export const CATALOGUE: ReadonlyArray<{ name: string; uri: string; size: string; note: string }> = [
  { name: 'qwen2.5-0.5b', uri: 'hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf', size: '0.5 GB', note: 'fastest; fine for classification, weak on long invoices' },
  { name: 'qwen2.5-1.5b', uri: 'hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf', size: '1.0 GB', note: 'good default for CPU boxes' },
  { name: 'qwen2.5-3b', uri: 'hf:Qwen/Qwen2.5-3B-Instruct-GGUF/qwen2.5-3b-instruct-q4_k_m.gguf', size: '2.1 GB', note: 'best extraction of the three; wants a GPU' },
];

export interface ModelInspection {
  file: string;
  bytes: number;
  architecture: string;
  name: string | null;
  parameters: number;
  quantisation: string;
  contextLength: number | null;
  layers: number;
  /** Memory one sequence of contextSize tokens needs for its KV cache. */
  bytesPerSequence: number;
  contextSize: number;
  memory: { backend: string; freeBytes: number };
  /** How many such sequences fit beside the weights in the free memory of the backend. */
  sequencesThatFit: number;
}

/** Architecture, size, quantisation and what fits, read from the file's header (no weights loaded). */
export async function inspectModel(file: string, llama: Llama, contextSize: number): Promise<ModelInspection> {
  const info = await readGgufFileInfo(file);
  const insights = await GgufInsights.from(info, llama);
  const onGpu = llama.gpu !== false;
  const free = onGpu ? (await llama.getVramState()).free : os.freemem();
  const layers = insights.totalLayers;
  const one = await insights.estimateContextResourceRequirementsV2({ contextSize, modelGpuLayers: onGpu ? layers : 0, sequences: 1 });
  const perSequence = onGpu ? one.gpuVram : one.cpuRam;
  const room = free - insights.modelSize;
  const general = info.metadata.general as { architecture?: string; name?: string; file_type?: number } | undefined;
  const arch = info.architectureMetadata as { context_length?: number };
  return {
    file: path.resolve(file),
    bytes: fs.statSync(file).size,
    architecture: general?.architecture ?? 'unknown',
    name: general?.name ?? null,
    parameters: insights.totalParameters,
    quantisation: insights.dominantTensorType !== undefined ? GgmlType[insights.dominantTensorType] ?? String(insights.dominantTensorType) : 'unknown',
    contextLength: arch.context_length ?? insights.trainContextSize ?? null,
    layers,
    bytesPerSequence: perSequence,
    contextSize,
    memory: { backend: onGpu ? String(llama.gpu) : 'cpu', freeBytes: free },
    sequencesThatFit: perSequence > 0 ? Math.max(0, Math.floor(room / perSequence)) : 0,
  };
}

/** The sequences a worker runs for concurrency "auto": what fits in memory, capped per backend. */
export async function autoSequences(modelPath: string, llama: Llama, contextSize: number): Promise<number> {
  const fit = (await inspectModel(modelPath, llama, contextSize)).sequencesThatFit;
  return Math.max(1, Math.min(fit, llama.gpu === false ? 4 : 16));
}

/** Resolves a catalogue name (or an hf:/https: URI) and downloads it into dir, with progress. */
export async function pullModel(nameOrUri: string, dir: string, onProgress: (done: number, total: number) => void): Promise<{ file: string; sha256: string }> {
  const entry = CATALOGUE.find((m) => m.name === nameOrUri);
  const uri = entry?.uri ?? nameOrUri;
  if (!entry && !/^(hf:|https?:\/\/)/.test(uri)) {
    throw new Error(`unknown model "${nameOrUri}": use one of ${CATALOGUE.map((m) => m.name).join(', ')}, or an hf: or https: URI`);
  }
  fs.mkdirSync(dir, { recursive: true });
  await ensureReachable(uri);
  let file: string;
  try {
    const downloader = await createModelDownloader({
      modelUri: uri, dirPath: dir, skipExisting: true, showCliProgress: false,
      onProgress: ({ downloadedSize, totalSize }) => onProgress(downloadedSize, totalSize),
    });
    file = await downloader.download();
  } catch (err) {
    const message = (err as Error).message ?? String(err);
    if (/ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ENETUNREACH|fetch failed|getaddrinfo/i.test(message)) {
      throw new Error(`cannot download ${uri}: the network is unreachable (offline?). On an offline box, copy a .gguf file over and set DOCSIFT_MODEL to it.`);
    }
    throw new Error(`cannot download ${uri}: ${message}`);
  }
  // A checksum beside the file: what every result records as model.sha256, and proof of what was fetched.
  const sha256 = await hashFile(file);
  fs.writeFileSync(`${file}.sha256`, `${sha256}  ${path.basename(file)}\n`);
  return { file, sha256 };
}

/**
 * On a box without internet access a download does not fail, it hangs until some far timeout.
 * A short probe of the host first turns that into an immediate, actionable message.
 */
async function ensureReachable(uri: string, timeoutMs = 8000): Promise<void> {
  const url = uri.startsWith('hf:') ? 'https://huggingface.co/' : new URL(uri).origin + '/';
  try {
    const res = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel().catch(() => undefined);
  } catch (err) {
    const why = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : ((err as { cause?: Error }).cause?.message ?? (err as Error).message);
    throw new Error(`cannot reach ${url} (${why}): this machine looks offline. Copy a .gguf file over from a connected machine and set DOCSIFT_MODEL to it.`);
  }
}

/** .gguf files in a folder, for `docsift models list`. */
export function localModels(dir: string): Array<{ file: string; bytes: number }> {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => f.endsWith('.gguf')).sort().map((f) => ({ file: path.join(dir, f), bytes: fs.statSync(path.join(dir, f)).size }));
}
