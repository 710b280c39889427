import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getLlama, Llama, LlamaLogLevel } from 'node-llama-cpp';
import { ConfigError } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';
import { findBinaries, type LlamaBinary } from './binaries.js';
import { probeHost, type GpuHost } from './host.js';
import { describePlan, planBackend, type BackendPlan, type GpuSetting } from './plan.js';

/** Which build of llama.cpp a process runs on, and why; in the worker's log, ModelInfo and /metrics. */
export interface LoadedBackend {
  /** cuda, vulkan, metal or cpu: what llama.cpp reports after loading. */
  backend: string;
  /** The binary's id (cuda, cuda-fallback, vulkan, cpu, local:<folder>), or "default" where node-llama-cpp chose. */
  binary: string;
  /** The plan's reason code for the choice (sass, ptx-jit, vulkan-driver, cpu, …), or "probe-failed" when a preferred build failed its test decode. */
  code: string;
  why: string;
  plan: BackendPlan;
  /** Builds the plan preferred that failed their test decode, with what happened. */
  failed: string[];
}

export interface LoadOptions {
  gpu: GpuSetting;
  threads: number;
  logger?: Logger | undefined;
  /** Tests only: recorded facts of another machine instead of this one's. */
  host?: GpuHost;
}

/**
 * The llama.cpp bindings for this machine, chosen by planBackend before any native code is
 * loaded, so a known binary/driver mismatch is refused here instead of aborting at the first
 * decode; a GPU build must also decode a tiny model in a child process first, which catches the
 * mismatches the plan does not know (the child aborts, not the worker). An explicit DOCSIFT_GPU
 * that cannot run is a configuration error. Never downloads or compiles.
 */
export async function loadLlama(options: LoadOptions): Promise<{ llama: Llama; loaded: LoadedBackend }> {
  const result = await chooseAndLoad(options);
  const { backend, binary, code, why } = result.loaded;
  options.logger?.info({ backend, binary, reason: code, why }, `llama.cpp backend: ${backend} (${binary})`);
  return result;
}

async function chooseAndLoad(options: LoadOptions): Promise<{ llama: Llama; loaded: LoadedBackend }> {
  const host = options.host ?? await probeHost();
  const plan = planBackend(options.gpu, host, findBinaries());
  if (plan.error) throw new ConfigError('environment', 'DOCSIFT_GPU', plan.error);
  const logger = options.logger;
  const llamaLogger = (level: LlamaLogLevel, message: string) => {
    if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) logger?.error({ llama: message.trim() }, 'llama.cpp');
  };
  if (!plan.choice) {
    const llama = await getLlama({ build: 'never', gpu: options.gpu === 'cpu' ? false : options.gpu, maxThreads: options.threads, logLevel: LlamaLogLevel.error, logger: llamaLogger });
    return { llama, loaded: { backend: llama.gpu === false ? 'cpu' : llama.gpu, binary: 'default', code: 'default', why: describePlan(plan), plan, failed: [] } };
  }
  // Every binary the plan says runs, in its order; a GPU one must first decode in a child process.
  const candidates = plan.verdicts.filter((v) => v.runs && (options.gpu === 'auto' || v.binary.backend === options.gpu));
  const failed: string[] = [];
  for (const verdict of candidates) {
    const binary = verdict.binary;
    if (binary.backend !== 'cpu') {
      const failure = await probeInChild(binary, options.threads);
      if (failure) {
        failed.push(`${binary.id}: ${failure}`);
        logger?.warn({ binary: binary.id, failure }, `${binary.label} failed a test decode in a child process; not loading it`);
        continue;
      }
    }
    const llama = await loadBinary(binary, options.threads, llamaLogger);
    const backend = llama.gpu === false ? 'cpu' : llama.gpu;
    const why = failed.length ? `${describePlan(plan)}; failed a test decode: ${failed.join('; ')}` : describePlan(plan);
    if (backend === binary.backend) return { llama, loaded: { backend, binary: binary.id, code: failed.length ? 'probe-failed' : verdict.code, why, plan, failed } };
    // Passed the child's test but not here: llama.cpp's CPU backend is loaded either way.
    await llama.dispose();
    failed.push(`${binary.id}: loaded, but llama.cpp came up on ${backend}`);
  }
  throw new ConfigError('environment', 'DOCSIFT_GPU', `DOCSIFT_GPU=${options.gpu}: no build passed a test decode: ${failed.join('; ')}`);
}

/** Seconds a test decode may take: the driver compiles PTX on first use (cached afterwards). */
const PROBE_TIMEOUT_MS = 300_000;

/**
 * Loads the binary and decodes in a child process; null when it worked, else what went wrong
 * (exit status or signal and the end of its stderr). A native abort ends the child only.
 */
function probeInChild(binary: LlamaBinary, threads: number): Promise<string | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [probeScript(), binary.id, String(threads)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer) => { output = (output + d.toString()).slice(-2000); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), PROBE_TIMEOUT_MS);
    child.on('error', (err) => { clearTimeout(timer); resolve(err.message); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && output.includes('"ok":true')) return resolve(null);
      const tail = output.trim().split('\n').slice(-3).join(' | ');
      resolve(`${signal ? `killed by ${signal}${signal === 'SIGKILL' ? ` (no answer in ${PROBE_TIMEOUT_MS / 1000} s)` : ''}` : `exit status ${code}`}${tail ? `: ${tail}` : ''}`);
    });
  });
}

/** The compiled child script; under vitest (src/*.ts) the one `npm test` built in dist/. */
function probeScript(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return path.join(path.dirname(here), 'probeChild.js');
  return path.join(path.dirname(here), '..', '..', '..', 'dist', 'src', 'model', 'gpu', 'probeChild.js');
}

export async function loadBinary(binary: LlamaBinary, threads: number, logger: (level: LlamaLogLevel, message: string) => void): Promise<Llama> {
  const common = { build: 'never' as const, maxThreads: threads, logLevel: LlamaLogLevel.error, logger };
  if (binary.id === 'cuda-fallback') return loadCudaFallback(binary, common);
  if (binary.id.startsWith('local:')) return getLlama({ ...common, gpu: binary.backend === 'cpu' ? false : binary.backend, cmakeOptions: binary.cmakeOptions ?? {}, usePrebuiltBinaries: false });
  return getLlama({ ...common, gpu: binary.backend === 'cpu' ? false : binary.backend });
}

const nodeRequire = createRequire(import.meta.url);

/**
 * node-llama-cpp loads its CUDA fallback only when the CUDA prebuilt cannot be loaded at all
 * (its runtime libraries missing), not when the prebuilt loads but has no code for the GPU
 * (an H100 under driver 580). So docsift loads it itself: a private folder of links to the
 * prebuilt's files with libggml-cuda.so pointing at the fallback's, handed to node-llama-cpp's
 * internal Llama._create as the binding's folder (the same call getLlama makes; pinned by
 * package-lock and covered by gpu.test.ts). The folder is removed once llama.cpp has loaded it.
 */
async function loadCudaFallback(binary: LlamaBinary, common: { maxThreads: number; logLevel: LlamaLogLevel; logger: (level: LlamaLogLevel, message: string) => void }): Promise<Llama> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'docsift-cuda-fallback-'));
  try {
    for (const file of fs.readdirSync(binary.dir)) {
      fs.symlinkSync(file === 'libggml-cuda.so' ? binary.cudaLibrary! : path.join(binary.dir, file), path.join(dir, file));
    }
    // The loader resolves the library's $ORIGIN to this folder: bring CUDA libraries a site put beside it.
    for (const lib of binary.bundled ?? []) if (!fs.existsSync(path.join(dir, lib))) fs.symlinkSync(path.join(path.dirname(binary.cudaLibrary!), lib), path.join(dir, lib));
    const metadata = JSON.parse(fs.readFileSync(path.join(binary.dir, '_nlcBuildMetadata.json'), 'utf8')) as unknown;
    const addon = nodeRequire.resolve(path.join(binary.dir, 'llama-addon.node'));
    delete nodeRequire.cache[addon]; // each Llama gets its own instance, as getLlama does
    const bindings = nodeRequire(addon) as unknown;
    delete nodeRequire.cache[addon];
    const create = (Llama as unknown as { _create(options: Record<string, unknown>): Promise<Llama> })._create;
    return await create.call(Llama, {
      bindings,
      bindingPath: path.join(dir, 'llama-addon.node'),
      buildType: 'prebuilt',
      buildMetadata: metadata,
      logLevel: common.logLevel,
      logger: common.logger,
      maxThreads: common.maxThreads,
      // getLlama's defaults: 8% of VRAM up to 1.6 GB, a quarter of RAM up to 1 GB on Linux.
      vramPadding: (total: number) => Math.floor(Math.min(total * 0.08, 1.6 * 1024 ** 3)),
      ramPadding: (total: number) => Math.floor(Math.min(total * 0.25, 1024 ** 3)),
      debug: false,
      numa: false,
      tempDir: false,
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
