import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** One thing a CUDA build of llama.cpp needs, where it was found, and how to get it when not. */
export interface Prerequisite {
  name: string;
  found: string | null;
  get: string;
}

export interface CudaToolkit {
  root: string | null;
  /** nvcc's release, e.g. "13.0". */
  version: string | null;
  nvcc: string | null;
}

function version(command: string, args: string[], pattern: RegExp): string | null {
  try {
    const out = execFileSync(command, args, { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return pattern.exec(out)?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * The CUDA toolkit the build would use: CUDA_PATH / CUDA_HOME / CUDAToolkit_ROOT, else
 * /usr/local/cuda, else the versioned folder of the nvcc on PATH (/usr/local/cuda-13.0).
 */
export function findCudaToolkit(env: NodeJS.ProcessEnv = process.env): CudaToolkit {
  const explicit = env.CUDA_PATH ?? env.CUDA_HOME ?? env.CUDAToolkit_ROOT;
  const pathNvcc = explicit ? null : version('nvcc', ['--version'], /release (\d+\.\d+)/);
  const candidates = explicit ? [explicit] : ['/usr/local/cuda', ...(pathNvcc ? [`/usr/local/cuda-${pathNvcc}`] : [])];
  for (const root of candidates) {
    const nvcc = path.join(root, 'bin', 'nvcc');
    if (fs.existsSync(nvcc)) return { root, nvcc, version: version(nvcc, ['--version'], /release (\d+\.\d+)/) };
  }
  return { root: explicit ?? null, nvcc: pathNvcc ? 'nvcc' : null, version: pathNvcc };
}

function firstExisting(files: string[]): string | null {
  return files.find((f) => fs.existsSync(f)) ?? null;
}

/**
 * What node-llama-cpp's source build needs for CUDA, checked before a long build starts:
 * nvcc, the CUDA runtime and cuBLAS headers and libraries (ggml-cuda links cuBLAS), cmake
 * 3.18+ (node-llama-cpp would otherwise try to download one, impossible offline), a C++
 * compiler, and llama.cpp's source bundled in node-llama-cpp.
 */
export function buildPrerequisites(toolkit: CudaToolkit, llamaDir: string, env: NodeJS.ProcessEnv = process.env): Prerequisite[] {
  const major = toolkit.version?.split('.')[0] ?? '<major>';
  const pkg = toolkit.version ? toolkit.version.replace('.', '-') : '<version>';
  const roots = toolkit.root ? [toolkit.root, path.join(toolkit.root, 'targets', `${process.arch === 'arm64' ? 'sbsa' : 'x86_64'}-linux`)] : [];
  const inRoots = (sub: string[], name: string) => [...roots.flatMap((r) => sub.map((s) => path.join(r, s, name)))];
  const systemLib = `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;
  const cmake = version('cmake', ['--version'], /cmake version (\d+\.\d+(?:\.\d+)?)/);
  const cmakeOk = cmake !== null && Number(cmake.split('.')[0]) * 100 + Number(cmake.split('.')[1]) >= 318;
  const cxx = env.CXX ?? 'c++';
  const compiler = version(cxx, ['--version'], /^(.+)$/m);
  return [
    { name: 'nvcc (CUDA compiler)', found: toolkit.nvcc ? `${toolkit.nvcc}${toolkit.version ? ` (CUDA ${toolkit.version})` : ''}` : null, get: 'install the CUDA toolkit (NVIDIA\'s cuda-toolkit-<version> package, or build in an nvidia/cuda:<version>-devel image) or set CUDA_PATH' },
    { name: 'CUDA runtime headers (cuda_runtime.h)', found: firstExisting([...inRoots(['include'], 'cuda_runtime.h'), '/usr/include/cuda_runtime.h']), get: `install cuda-cudart-dev-${pkg}` },
    { name: 'cuBLAS headers (cublas_v2.h)', found: firstExisting([...inRoots(['include'], 'cublas_v2.h'), '/usr/include/cublas_v2.h']), get: `install libcublas-dev-${pkg} (NVIDIA's repository; part of cuda-libraries-dev-${pkg})` },
    { name: 'cuBLAS library (libcublas.so)', found: firstExisting([...inRoots(['lib64', 'lib'], 'libcublas.so'), `${systemLib}/libcublas.so`]), get: `install libcublas-dev-${pkg} (it also brings libcublas.so.${major})` },
    { name: 'cmake 3.18 or newer', found: cmakeOk ? `cmake ${cmake}` : null, get: cmake ? `cmake ${cmake} is too old: install a newer one (pip install cmake, or Kitware's apt repository)` : 'install cmake (apt install cmake)' },
    { name: 'C++ compiler', found: compiler ? `${cxx}: ${compiler.trim()}` : null, get: 'install a C++ compiler (apt install build-essential)' },
    { name: 'llama.cpp source', found: firstExisting([path.join(llamaDir, 'llama', 'llama.cpp', 'CMakeLists.txt'), path.join(llamaDir, 'llama', 'gitRelease.bundle')]), get: 'reinstall node-llama-cpp (npm ci): its package ships llama.cpp\'s source as llama/gitRelease.bundle' },
  ];
}

/**
 * CMAKE_CUDA_ARCHITECTURES for the given compute capabilities ("80,86,89,90" or "8.0,9.0"):
 * machine code for each, and PTX of the highest as well, so a newer GPU can still run the build
 * when the driver is as new as the toolkit.
 */
export function cudaArchitectures(list: string): string {
  const archs = [...new Set(list.split(/[,;\s]+/).filter(Boolean).map((a) => {
    const m = /^(\d+)(?:\.(\d))?(a?)$/.exec(a.trim());
    if (!m) throw new Error(`--arch: "${a}" is not a compute capability (write 86 or 8.6; list them with commas)`);
    const n = m[2] !== undefined ? Number(m[1]) * 10 + Number(m[2]) : Number(m[1]);
    if (n < 50 || n > 130) throw new Error(`--arch: ${a} is not a CUDA architecture llama.cpp builds for (50 to 121)`);
    return `${n}${m[3]}`;
  }))].sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
  if (archs.length === 0) throw new Error('--arch: no architecture given');
  return archs.map((a, i) => (i === archs.length - 1 && !a.endsWith('a') ? a : `${a}-real`)).join(';');
}
