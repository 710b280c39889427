import type { LlamaBinary } from './binaries.js';
import type { GpuHost } from './host.js';
import type { BackendPlan } from './plan.js';

export interface GpuFinding { level: 'ok' | 'warn' | 'error'; check: string; message: string }

/** What a CUDA binary carries, as cuobjdump would summarise it. */
export function describeCuda(binary: LlamaBinary): string {
  const c = binary.cuda;
  if (!c) return binary.unreadable ? `unreadable: ${binary.unreadable}` : '';
  const sass = c.sass.map((s) => `sm_${s.arch}${s.exact ? 'a' : ''}`).join(', ') || 'none';
  const isas = [...new Set(c.ptx.map((p) => p.isa))];
  const ptx = c.ptx.length ? `${c.ptx.map((p) => `compute_${p.arch}`).join(', ')} (PTX ISA ${isas.join('/')})` : 'none';
  return `CUDA ${c.runtime ?? '?'} runtime; machine code ${sass}; PTX ${ptx}`;
}

/**
 * doctor's lines about the GPU: each GPU and the driver, every installed llama.cpp binary with
 * what it carries and whether it runs here (with the fix when not), and what the worker loads
 * under this DOCSIFT_GPU. Pure, so recorded machines can be checked without a GPU.
 */
export function gpuFindings(host: GpuHost, plan: BackendPlan): GpuFinding[] {
  const out: GpuFinding[] = [];
  if (host.gpus.length === 0) {
    out.push({ level: 'ok', check: 'gpu', message: host.driver ? `NVIDIA driver ${host.driver.version} but nvidia-smi lists no GPU` : 'no NVIDIA GPU or driver found (nvidia-smi not available)' });
  }
  for (const gpu of host.gpus) {
    out.push({ level: 'ok', check: `gpu ${gpu.index}`, message: `${gpu.name}, compute capability ${gpu.computeCapability ?? 'unknown'}${gpu.memoryMiB ? `, ${(gpu.memoryMiB / 1024).toFixed(0)} GiB` : ''}` });
  }
  if (host.driver) out.push({ level: 'ok', check: 'driver', message: `NVIDIA ${host.driver.version}, supports CUDA ${host.driver.cuda ?? 'unknown'}` });
  const chosen = plan.choice?.binary.id;
  for (const v of plan.verdicts) {
    const what = v.binary.cuda || v.binary.unreadable ? ` [${describeCuda(v.binary)}]` : '';
    const state = v.runs ? `runs here: ${v.why}` : `does not run here: ${v.why}${v.fix ? `. Fix: ${v.fix}` : ''}`;
    const level = v.runs || !relevant(v.binary, host) ? 'ok' : 'warn';
    out.push({ level, check: `binary ${v.binary.id}`, message: `${v.binary.label}${what} ${state}` });
  }
  if (plan.error) {
    out.push({ level: 'error', check: 'backend choice', message: plan.error });
  } else if (plan.choice) {
    const gpuUnused = host.gpus.length > 0 && plan.choice.binary.backend === 'cpu' && plan.setting === 'auto';
    out.push({
      level: gpuUnused ? 'warn' : 'ok',
      check: 'backend choice',
      message: `DOCSIFT_GPU=${plan.setting}: the worker loads ${chosen} (${plan.choice.binary.label})${gpuUnused ? `, so the GPU is not used. To use it: ${fixes(plan).join('; or ')}` : ''}`,
    });
  } else {
    out.push({ level: 'ok', check: 'backend choice', message: `DOCSIFT_GPU=${plan.setting}: node-llama-cpp chooses (no separate GPU builds on ${host.platform})` });
  }
  return out;
}

/** A binary that cannot run is worth a warning only where its kind of GPU is present. */
function relevant(binary: LlamaBinary, host: GpuHost): boolean {
  if (binary.backend === 'cuda') return host.driver !== null;
  if (binary.backend === 'vulkan') return host.driver !== null || host.vulkanIcds.length > 0;
  return true;
}

function fixes(plan: BackendPlan): string[] {
  return [...new Set(plan.verdicts.filter((v) => !v.runs && v.fix).map((v) => `${v.fix} (${v.binary.id})`))];
}
