import type { Backend, LlamaBinary } from './binaries.js';
import { compareDotted, cudaForPtxIsa, driverForRuntime, ptxIsaForCuda, type GpuHost } from './host.js';

export type GpuSetting = 'auto' | 'cuda' | 'vulkan' | 'metal' | 'cpu';

/** Whether one binary can run on this machine, why, and what would make it run. */
export interface Verdict {
  binary: LlamaBinary;
  runs: boolean;
  /** Stable reason, for metrics and tests: sass, ptx-jit, vulkan-driver, cpu, no-driver, driver-too-old, missing-libraries, no-code-for-gpu, unknown-gpu, no-vulkan-driver, unreadable. */
  code: string;
  why: string;
  /** The exact step that makes it run; null when it runs or nothing sensible would. */
  fix: string | null;
}

export interface BackendPlan {
  setting: GpuSetting;
  verdicts: Verdict[];
  /** The binary to load; null with an error, or when node-llama-cpp chooses (no binaries listed). */
  choice: Verdict | null;
  /** Why the setting cannot be honoured here, with the fixes; the worker refuses to start. */
  error: string | null;
}

/**
 * The decision, from recorded facts only (no GPU needed): each installed binary's verdict on
 * this host, and the first that runs in the order of preference for DOCSIFT_GPU=auto; an
 * explicit backend takes the first binary of that backend that runs, or is refused.
 *
 * Rules (NVIDIA's CUDA compatibility guide): a CUDA N runtime needs a driver for CUDA N.0 or
 * newer; machine code for sm_XY runs on compute capability X.Z with Z ≥ Y (arch-specific "a"
 * code only on X.Y itself); otherwise PTX for an architecture at or below the GPU's is compiled
 * by the driver, which takes PTX up to its own CUDA version's ISA (CUDA 13.0: 9.0). A binary
 * that fails these aborts in llama.cpp at the first decode, which is what this avoids.
 */
export function planBackend(setting: GpuSetting, host: GpuHost, binaries: LlamaBinary[]): BackendPlan {
  const verdicts = binaries.map((b) => judge(b, host));
  if (binaries.length === 0) {
    return { setting, verdicts, choice: null, error: setting === 'metal' && host.platform !== 'darwin' ? 'metal is macOS only' : null };
  }
  if (setting === 'metal') return { setting, verdicts, choice: null, error: 'DOCSIFT_GPU=metal: Metal is macOS only; use auto, cuda, vulkan or cpu' };
  const wanted: Backend | null = setting === 'auto' ? null : setting;
  const eligible = verdicts.filter((v) => wanted === null || v.binary.backend === wanted);
  const choice = eligible.find((v) => v.runs) ?? null;
  if (choice) return { setting, verdicts, choice, error: null };
  const tried = eligible.map((v) => `${v.binary.label}: ${v.why}${v.fix ? ` (fix: ${v.fix})` : ''}`);
  return {
    setting,
    verdicts,
    choice: null,
    error: tried.length === 0
      ? `DOCSIFT_GPU=${setting}, but no ${setting} build of llama.cpp is installed (npm installs @node-llama-cpp/linux-x64-${setting} as an optional dependency; was it omitted?)`
      : `DOCSIFT_GPU=${setting}, but no ${setting} build can run here. ${tried.join('. ')}. Or set DOCSIFT_GPU=auto to use what runs.`,
  };
}

function judge(binary: LlamaBinary, host: GpuHost): Verdict {
  const verdict = (runs: boolean, code: string, why: string, fix: string | null = null): Verdict => ({ binary, runs, code, why, fix });
  if (binary.unreadable) return verdict(false, 'unreadable', `cannot read it: ${binary.unreadable}`, 'reinstall node-llama-cpp (npm ci)');
  if (binary.backend === 'cpu') return verdict(true, 'cpu', 'the CPU backend runs everywhere');
  if (binary.backend === 'vulkan') return judgeVulkan(binary, host, verdict);
  return judgeCuda(binary, host, verdict);
}

type Make = (runs: boolean, code: string, why: string, fix?: string | null) => Verdict;

function judgeVulkan(_binary: LlamaBinary, host: GpuHost, verdict: Make): Verdict {
  if (!host.libraries.includes('libvulkan.so.1')) {
    return verdict(false, 'missing-libraries', 'the Vulkan loader libvulkan.so.1 is not installed', 'install the Vulkan loader (Debian/Ubuntu: apt install libvulkan1)');
  }
  if (host.vulkanIcds.length === 0) {
    return verdict(false, 'no-vulkan-driver', 'no GPU Vulkan driver is registered (no ICD manifest in /etc/vulkan/icd.d or /usr/share/vulkan/icd.d)', host.driver
      ? 'install the NVIDIA driver\'s Vulkan part (Ubuntu: libnvidia-gl-<branch>; in a container, NVIDIA_DRIVER_CAPABILITIES must include graphics)'
      : 'install the GPU\'s Vulkan driver (AMD/Intel: mesa-vulkan-drivers)');
  }
  return verdict(true, 'vulkan-driver', `Vulkan driver(s): ${host.vulkanIcds.map((f) => f.split('/').pop()).join(', ')}`);
}

function judgeCuda(binary: LlamaBinary, host: GpuHost, verdict: Make): Verdict {
  const facts = binary.cuda!;
  const driver = host.driver;
  if (!driver) return verdict(false, 'no-driver', 'no NVIDIA driver on this machine');
  const driverText = `driver ${driver.version}${driver.cuda ? ` (CUDA ${driver.cuda})` : ''}`;
  if (facts.runtime !== null && driver.cuda && Number(driver.cuda.split('.')[0]) < facts.runtime) {
    const minimum = driverForRuntime(facts.runtime);
    return verdict(false, 'driver-too-old', `it links the CUDA ${facts.runtime} runtime, which needs a driver for CUDA ${facts.runtime}.0${minimum ? ` (${minimum} or newer)` : ''}; this is ${driverText}`,
      `upgrade the NVIDIA driver${minimum ? ` to ${minimum.split('.')[0]} or newer` : ''}`);
  }
  const missing = facts.needs.filter((lib) => /^lib(cudart|cublas|cuda)\.so\./.test(lib) && !host.libraries.includes(lib) && !(binary.bundled ?? []).includes(lib));
  if (missing.length > 0) {
    const onlyDriver = missing.every((m) => m === 'libcuda.so.1');
    return verdict(false, 'missing-libraries', `${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not found by the dynamic loader`, onlyDriver
      ? 'make the driver\'s libcuda.so.1 visible (in a container: the NVIDIA container toolkit with NVIDIA_DRIVER_CAPABILITIES=compute,utility)'
      : `install the CUDA ${facts.runtime} runtime libraries (NVIDIA's packages cuda-cudart-${facts.runtime}-<minor> and libcublas-${facts.runtime}-<minor>, or an nvidia/cuda:${facts.runtime}.x-runtime base image), or add the folder holding them to LD_LIBRARY_PATH`);
  }
  if (host.gpus.length === 0) {
    return verdict(false, 'unknown-gpu', 'the NVIDIA driver is there but nvidia-smi lists no GPU, so its architecture is unknown', 'make nvidia-smi available (in a container: NVIDIA_DRIVER_CAPABILITIES=compute,utility)');
  }
  const perGpu = host.gpus.map((gpu) => codeFor(facts, gpu.computeCapability, driver.cuda));
  const failing = perGpu.findIndex((g) => !g.runs);
  if (failing >= 0) {
    const gpu = host.gpus[failing]!;
    const g = perGpu[failing]!;
    return verdict(false, g.code, `${gpu.name} (compute capability ${gpu.computeCapability ?? 'unknown'}): ${g.why}; this is ${driverText}`, g.fix);
  }
  const first = perGpu[0]!;
  return verdict(true, perGpu.some((g) => g.code === 'ptx-jit') ? 'ptx-jit' : 'sass', host.gpus.map((gpu, i) => `${gpu.name} (${gpu.computeCapability}): ${perGpu[i]!.why}`).join('; ') + (first.code === 'ptx-jit' ? '; the driver compiles the PTX at first use (keep its cache: CUDA_CACHE_MAXSIZE=4294967296)' : ''));
}

interface GpuCode { runs: boolean; code: string; why: string; fix: string | null }

function codeFor(facts: NonNullable<LlamaBinary['cuda']>, computeCapability: string | null, driverCuda: string | null): GpuCode {
  if (!computeCapability) return { runs: false, code: 'unknown-gpu', why: 'nvidia-smi does not report its compute capability (driver older than 510)', fix: 'upgrade the NVIDIA driver' };
  const cc = Math.round(Number(computeCapability) * 10);
  const major = Math.floor(cc / 10);
  const sass = facts.sass.find((s) => (s.exact ? s.arch === cc : Math.floor(s.arch / 10) === major && s.arch <= cc));
  if (sass) return { runs: true, code: 'sass', why: `machine code for sm_${sass.arch}`, fix: null };
  const maxIsa = driverCuda ? ptxIsaForCuda(driverCuda) : '0.0';
  const lower = facts.ptx.filter((p) => p.arch <= cc).sort((a, b) => b.arch - a.arch);
  const usable = lower.find((p) => compareDotted(p.isa, maxIsa) <= 0);
  if (usable) return { runs: true, code: 'ptx-jit', why: `no machine code for sm_${cc}; PTX compute_${usable.arch} (ISA ${usable.isa}) is compiled for it by the driver`, fix: null };
  const has = facts.sass.map((s) => `sm_${s.arch}${s.exact ? 'a' : ''}`).join(', ') || 'none';
  const build = `or build for this GPU: docsift gpu build --arch ${cc}`;
  if (lower.length === 0) return { runs: false, code: 'no-code-for-gpu', why: `no machine code for sm_${cc} (it has ${has}) and no PTX for an architecture at or below ${computeCapability}`, fix: `use another binary, ${build}` };
  const best = lower[0]!;
  const needs = cudaForPtxIsa(best.isa);
  return {
    runs: false,
    code: 'no-code-for-gpu',
    why: `no machine code for sm_${cc} (it has ${has}), and its PTX (compute_${best.arch}, ISA ${best.isa}) needs a driver for CUDA ${needs?.cuda ?? `newer than ${driverCuda}`}${needs ? ` (${needs.driver} or newer)` : ''}`,
    fix: `${needs ? `upgrade the NVIDIA driver to ${needs.driver.split('.')[0]} or newer, ` : ''}${build}`,
  };
}

/** One line per binary for logs and doctor. */
export function describePlan(plan: BackendPlan): string {
  if (plan.error) return plan.error;
  if (!plan.choice) return 'node-llama-cpp chooses (no separate GPU builds on this platform)';
  const skipped = plan.verdicts.slice(0, plan.verdicts.indexOf(plan.choice)).filter((v) => !v.runs);
  return `${plan.choice.binary.label}: ${plan.choice.why}${skipped.length ? `; skipped ${skipped.map((v) => `${v.binary.id} (${v.why})`).join('; ')}` : ''}`;
}
