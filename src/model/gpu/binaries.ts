import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { readCudaBinary, type CudaBinaryFacts } from './cudaBinary.js';

export type Backend = 'cuda' | 'vulkan' | 'cpu';

/** One llama.cpp build the worker could load. */
export interface LlamaBinary {
  /** cuda, cuda-fallback, vulkan, cpu, or local:<folder> for a build made by `docsift gpu build`. */
  id: string;
  backend: Backend;
  /** What an operator reads: which package or folder. */
  label: string;
  /** Folder holding llama-addon.node and the ggml libraries. */
  dir: string;
  /** The CUDA backend library, for CUDA builds. */
  cudaLibrary?: string;
  cuda?: CudaBinaryFacts;
  /** CMake options a local build was made with (node-llama-cpp finds it by them). */
  cmakeOptions?: Record<string, string>;
  /** CUDA libraries next to the backend library, which the loader finds through its $ORIGIN run path. */
  bundled?: string[];
  /** The file could not be read; such a binary never runs. */
  unreadable?: string;
}

const nodeRequire = createRequire(import.meta.url);

/** node-llama-cpp's package folder; its prebuilt packages resolve from there. */
export function llamaPackageDir(): string {
  return packageRoot(nodeRequire.resolve('node-llama-cpp'));
}

/** Packages that export only their entry point: the folder above dist/. */
function packageRoot(entry: string): string {
  return path.resolve(path.dirname(entry), '..');
}

export function llamaPackageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(llamaPackageDir(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** Where node-llama-cpp keeps builds from source, and where `docsift gpu build` puts them. */
export function localBuildsDir(): string {
  return path.join(llamaPackageDir(), 'llama', 'localBuilds');
}

/**
 * The llama.cpp builds installed for this platform, in the order `DOCSIFT_GPU=auto` prefers them:
 * local builds (made for this machine's GPUs), node-llama-cpp's CUDA prebuilt, its CUDA fallback
 * (@node-llama-cpp/linux-x64-cuda-ext), Vulkan, CPU. Empty on platforms node-llama-cpp ships
 * no separate GPU packages for (macOS: Metal is built in), where its own choice stands.
 */
export function findBinaries(): LlamaBinary[] {
  if (process.platform !== 'linux') return [];
  const platform = `linux-${process.arch}`;
  const version = llamaPackageVersion();
  const packageRequire = createRequire(path.join(llamaPackageDir(), 'package.json'));
  const packageBins = (name: string, sub: string): string | null => {
    try {
      const dir = path.join(packageRoot(packageRequire.resolve(`@node-llama-cpp/${name}`)), 'bins', sub);
      return fs.existsSync(dir) ? dir : null;
    } catch {
      return null; // not installed (npm install --omit=optional, or another platform)
    }
  };
  const out: LlamaBinary[] = [...findLocalBuilds()];
  const cudaDir = packageBins(`${platform}-cuda`, `${platform}-cuda`);
  if (cudaDir) {
    out.push(withCuda({ id: 'cuda', backend: 'cuda', label: `CUDA prebuilt (@node-llama-cpp/${platform}-cuda ${version})`, dir: cudaDir, cudaLibrary: path.join(cudaDir, 'libggml-cuda.so') }));
    const extDir = packageBins(`${platform}-cuda-ext`, `${platform}-cuda`);
    if (extDir) out.push(withCuda({ id: 'cuda-fallback', backend: 'cuda', label: `CUDA fallback (@node-llama-cpp/${platform}-cuda-ext ${version})`, dir: cudaDir, cudaLibrary: path.join(extDir, 'fallback', 'libggml-cuda.so') }));
  }
  const vulkanDir = packageBins(`${platform}-vulkan`, `${platform}-vulkan`);
  if (vulkanDir) out.push({ id: 'vulkan', backend: 'vulkan', label: `Vulkan prebuilt (@node-llama-cpp/${platform}-vulkan ${version})`, dir: vulkanDir });
  const cpuDir = packageBins(platform, platform);
  if (cpuDir) out.push({ id: 'cpu', backend: 'cpu', label: `CPU prebuilt (@node-llama-cpp/${platform} ${version})`, dir: cpuDir });
  return out;
}

function findLocalBuilds(): LlamaBinary[] {
  const root = localBuildsDir();
  let folders: string[];
  try {
    folders = fs.readdirSync(root).sort();
  } catch {
    return [];
  }
  const out: LlamaBinary[] = [];
  for (const folder of folders) {
    const dir = path.join(root, folder, 'Release');
    if (!fs.existsSync(path.join(root, folder, 'buildDone.status')) || !fs.existsSync(path.join(dir, 'llama-addon.node'))) continue;
    let options: { gpu?: string | false; customCmakeOptions?: Record<string, string> };
    try {
      options = (JSON.parse(fs.readFileSync(path.join(dir, '_nlcBuildMetadata.json'), 'utf8')) as { buildOptions: typeof options }).buildOptions;
    } catch {
      continue; // a build node-llama-cpp itself would not load either
    }
    const backend: Backend = options.gpu === 'cuda' ? 'cuda' : options.gpu === 'vulkan' ? 'vulkan' : 'cpu';
    const binary: LlamaBinary = { id: `local:${folder}`, backend, label: `local ${backend === 'cpu' ? 'CPU' : backend === 'cuda' ? 'CUDA' : 'Vulkan'} build (${path.join(root, folder)})`, dir, cmakeOptions: options.customCmakeOptions ?? {} };
    out.push(backend === 'cuda' ? withCuda({ ...binary, cudaLibrary: path.join(dir, 'libggml-cuda.so') }) : binary);
  }
  return out;
}

function withCuda(binary: LlamaBinary): LlamaBinary {
  try {
    const bundled = fs.readdirSync(path.dirname(binary.cudaLibrary!)).filter((f) => /^lib(cudart|cublas|cublasLt)\.so\.\d+$/.test(f));
    return { ...binary, cuda: readCudaBinary(binary.cudaLibrary!), bundled };
  } catch (err) {
    return { ...binary, unreadable: `${binary.cudaLibrary}: ${(err as Error).message}` };
  }
}
