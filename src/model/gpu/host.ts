import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** What decides which llama.cpp binary can run on this machine; read by probeHost, recorded in tests. */
export interface GpuHost {
  platform: NodeJS.Platform;
  /** NVIDIA GPUs nvidia-smi lists (empty without an NVIDIA driver). */
  gpus: Array<{ index: number; name: string; computeCapability: string | null; memoryMiB: number | null }>;
  /** The NVIDIA driver and the newest CUDA version it supports; null without one. */
  driver: { version: string; cuda: string | null } | null;
  /** Shared libraries the dynamic loader finds: the CUDA runtime, cuBLAS, the Vulkan loader. */
  libraries: string[];
  /** Vulkan driver manifests (ICDs) of a GPU vendor's driver (NVIDIA, AMD, Intel), not software rasterisers. */
  vulkanIcds: string[];
}

/** The libraries whose presence matters here. */
const WATCHED_LIBRARIES = /^lib(cudart|cublas|cublasLt|cuda|vulkan)\.so\.\d+$/;

/** Reads the machine: nvidia-smi, /proc/driver/nvidia, ldconfig and LD_LIBRARY_PATH, Vulkan ICD folders. Never throws. */
export async function probeHost(env: NodeJS.ProcessEnv = process.env): Promise<GpuHost> {
  const [query, summary, ldconfig] = await Promise.all([
    run('nvidia-smi', ['--query-gpu=index,name,compute_cap,memory.total,driver_version', '--format=csv,noheader,nounits']),
    run('nvidia-smi', []),
    run('ldconfig', ['-p']).then((out) => out ?? run('/sbin/ldconfig', ['-p'])),
  ]);
  const smi = parseNvidiaSmi(query ?? '', summary ?? '');
  const driver = smi.driver ?? driverFromProc();
  return {
    platform: process.platform,
    gpus: smi.gpus,
    driver,
    libraries: [...new Set([...parseLdconfig(ldconfig ?? ''), ...librariesIn((env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean))])].sort(),
    vulkanIcds: findVulkanIcds(env),
  };
}

function run(command: string, args: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 15_000, maxBuffer: 4 << 20 }, (err, stdout) => resolve(err ? null : stdout));
  });
}

/**
 * `nvidia-smi --query-gpu=index,name,compute_cap,memory.total,driver_version --format=csv,noheader,nounits`
 * and plain `nvidia-smi`, whose banner is the only place the driver's CUDA version is printed.
 * Drivers older than 510 have no compute_cap field; their GPUs get null.
 */
export function parseNvidiaSmi(query: string, summary: string): { gpus: GpuHost['gpus']; driver: GpuHost['driver'] } {
  const gpus: GpuHost['gpus'] = [];
  let driverVersion: string | null = null;
  for (const line of query.split(/\r?\n/)) {
    const cells = line.split(',').map((c) => c.trim());
    if (cells.length < 5 || !/^\d+$/.test(cells[0]!)) continue;
    const [index, name, cc, memory, version] = cells as [string, string, string, string, string];
    gpus.push({ index: Number(index), name, computeCapability: /^\d+\.\d+$/.test(cc) ? cc : null, memoryMiB: /^\d+$/.test(memory) ? Number(memory) : null });
    driverVersion ??= version;
  }
  driverVersion ??= /Driver Version:\s*([\d.]+)/.exec(summary)?.[1] ?? null;
  const cuda = /CUDA Version:\s*(\d+\.\d+)/.exec(summary)?.[1] ?? null;
  return { gpus, driver: driverVersion ? { version: driverVersion, cuda: cuda ?? cudaForDriver(driverVersion) } : null };
}

/** Without nvidia-smi (a minimal container), the kernel module still says its version. */
function driverFromProc(): GpuHost['driver'] {
  try {
    const text = fs.readFileSync('/proc/driver/nvidia/version', 'utf8');
    const version = /Kernel Module(?: for [\w-]+)?\s+([\d.]+)/.exec(text)?.[1];
    return version ? { version, cuda: cudaForDriver(version) } : null;
  } catch {
    return null;
  }
}

export function parseLdconfig(text: string): string[] {
  const found: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const name = /^\s*(\S+)\s+\(([^)]*)\)/.exec(line);
    if (name && WATCHED_LIBRARIES.test(name[1]!) && /x86-64|AArch64|64bit/i.test(name[2]!)) found.push(name[1]!); // "(libc6)" alone is a 32-bit library
  }
  return found;
}

function librariesIn(dirs: string[]): string[] {
  const found: string[] = [];
  for (const dir of dirs) {
    try {
      for (const name of fs.readdirSync(dir)) if (WATCHED_LIBRARIES.test(name)) found.push(name);
    } catch {
      // a missing folder in LD_LIBRARY_PATH is common and harmless
    }
  }
  return found;
}

/** The loader's search order (VK_DRIVER_FILES / VK_ICD_FILENAMES replace the folders). */
function findVulkanIcds(env: NodeJS.ProcessEnv): string[] {
  const explicit = env.VK_DRIVER_FILES ?? env.VK_ICD_FILENAMES;
  const files = explicit
    ? explicit.split(':').filter(Boolean)
    : ['/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', '/usr/share/vulkan/icd.d'].flatMap((dir) => {
      try {
        return fs.readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => path.join(dir, f));
      } catch {
        return [];
      }
    });
  return files.filter((f) => isGpuIcd(f));
}

/** Mesa's lavapipe (lvp) renders on the CPU: llama.cpp on it is slower than the CPU backend. */
export function isGpuIcd(file: string): boolean {
  let library = '';
  try {
    library = String((JSON.parse(fs.readFileSync(file, 'utf8')) as { ICD?: { library_path?: string } }).ICD?.library_path ?? '');
  } catch {
    return false;
  }
  return /nvidia|radeon|intel|amdvlk|amdgpu/i.test(library + path.basename(file)) && !/lvp|lavapipe|swiftshader/i.test(library + path.basename(file));
}

/**
 * The newest CUDA version each driver branch supports, from NVIDIA's CUDA toolkit release notes
 * (minimum Linux driver per toolkit). Used only when nvidia-smi's banner is not available.
 */
export const CUDA_DRIVERS: ReadonlyArray<{ cuda: string; driver: string; ptxIsa: string }> = [
  { cuda: '12.0', driver: '525.60.13', ptxIsa: '8.0' },
  { cuda: '12.1', driver: '530.30.02', ptxIsa: '8.1' },
  { cuda: '12.2', driver: '535.54.03', ptxIsa: '8.2' },
  { cuda: '12.3', driver: '545.23.06', ptxIsa: '8.3' },
  { cuda: '12.4', driver: '550.54.14', ptxIsa: '8.4' },
  { cuda: '12.5', driver: '555.42.02', ptxIsa: '8.5' },
  { cuda: '12.6', driver: '560.28.03', ptxIsa: '8.5' },
  { cuda: '12.8', driver: '570.26', ptxIsa: '8.7' },
  { cuda: '12.9', driver: '575.51.03', ptxIsa: '8.8' },
  { cuda: '13.0', driver: '580.65.06', ptxIsa: '9.0' },
  { cuda: '13.1', driver: '590.44.01', ptxIsa: '9.1' },
];

/** Dotted versions compared numerically, part by part (570.26 < 570.133; a missing part is 0). */
export function compareDotted(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function cudaForDriver(driver: string): string | null {
  let best: string | null = null;
  for (const row of CUDA_DRIVERS) if (compareDotted(driver, row.driver) >= 0) best = row.cuda;
  return best;
}

/** The newest PTX ISA a driver supporting this CUDA version can compile. */
export function ptxIsaForCuda(cuda: string): string {
  let best = '7.8';
  for (const row of CUDA_DRIVERS) if (compareDotted(cuda, row.cuda) >= 0) best = row.ptxIsa;
  return best;
}

/** The first CUDA version (and its minimum driver) whose driver can compile this PTX ISA. */
export function cudaForPtxIsa(isa: string): { cuda: string; driver: string } | null {
  const row = CUDA_DRIVERS.find((r) => compareDotted(r.ptxIsa, isa) >= 0);
  return row ? { cuda: row.cuda, driver: row.driver } : null;
}

/** The minimum driver of a CUDA major version's runtime (minor-version compatibility within a major). */
export function driverForRuntime(major: number): string | null {
  return CUDA_DRIVERS.find((r) => r.cuda === `${major}.0`)?.driver ?? null;
}
