import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
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
  /** The plan's reason code for the choice (sass, ptx-jit, vulkan-driver, cpu, …), or "fell-back" when it did not load. */
  code: string;
  why: string;
  plan: BackendPlan;
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
 * loaded, so a binary/driver mismatch is refused here instead of aborting at the first decode.
 * An explicit DOCSIFT_GPU that cannot run is a configuration error. Never downloads or compiles.
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
    return { llama, loaded: { backend: llama.gpu === false ? 'cpu' : llama.gpu, binary: 'default', code: 'default', why: describePlan(plan), plan } };
  }
  const binary = plan.choice.binary;
  const llama = await loadBinary(binary, options.threads, llamaLogger);
  const backend = llama.gpu === false ? 'cpu' : llama.gpu;
  if (backend === binary.backend) return { llama, loaded: { backend, binary: binary.id, code: plan.choice.code, why: describePlan(plan), plan } };
  // The plan said it runs, but llama.cpp did not bring the backend up (a library the loader
  // could not resolve after all). llama.cpp's CPU backend is loaded either way.
  const why = `${binary.label} did not load (llama.cpp reports ${backend}); check with docsift doctor`;
  if (options.gpu !== 'auto' || backend !== 'cpu') {
    await llama.dispose();
    throw new ConfigError('environment', 'DOCSIFT_GPU', `DOCSIFT_GPU=${options.gpu}: ${why}`);
  }
  logger?.warn({ binary: binary.id, plan: describePlan(plan) }, `${why}; running on the CPU`);
  return { llama, loaded: { backend, binary: binary.id, code: 'fell-back', why, plan } };
}

async function loadBinary(binary: LlamaBinary, threads: number, logger: (level: LlamaLogLevel, message: string) => void): Promise<Llama> {
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
