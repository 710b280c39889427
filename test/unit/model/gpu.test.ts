import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findBinaries, loadLlama, planBackend, probeHost, type GpuHost, type LlamaBinary } from '../../../src/model/index.js';
import { cudaForDriver, isGpuIcd, parseLdconfig, parseNvidiaSmi } from '../../../src/model/gpu/host.js';
import { gpuFindings } from '../../../src/model/gpu/report.js';
import { buildPrerequisites, cudaArchitectures, findCudaToolkit } from '../../../src/model/gpu/build.js';

const FIXTURES = path.resolve('test/fixtures/gpu');
const recorded = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'machines.json'), 'utf8')) as {
  machines: Record<string, { query: string; summary: string }>;
  ldconfig: Record<'driver' | 'cuda12' | 'cuda13' | 'vulkan', string>;
};

/** A recorded machine: nvidia-smi's output for one GPU and driver, and which runtime libraries it has. */
function machine(name: string, libraries: Array<'cuda12' | 'cuda13' | 'vulkan'>, options: { vulkanIcd?: boolean; banner?: boolean } = {}): GpuHost {
  const m = recorded.machines[name]!;
  const smi = parseNvidiaSmi(m.query, options.banner === false ? '' : m.summary);
  return {
    platform: 'linux',
    gpus: smi.gpus,
    driver: smi.driver,
    libraries: parseLdconfig([recorded.ldconfig.driver, ...libraries.map((l) => recorded.ldconfig[l])].join('')),
    vulkanIcds: options.vulkanIcd ? [path.join(FIXTURES, 'nvidia_icd.json')] : [],
  };
}

// The binaries node-llama-cpp installs here, read from the files themselves.
const binaries = findBinaries();
const byId = (id: string) => binaries.find((b) => b.id === id)!;

describe('what the installed llama.cpp binaries carry (read from their fat binaries)', () => {
  it('lists the CUDA prebuilt, its fallback, Vulkan and CPU in the order auto prefers them', () => {
    expect(binaries.filter((b) => !b.id.startsWith('local:')).map((b) => b.id)).toEqual(['cuda', 'cuda-fallback', 'vulkan', 'cpu']);
  });

  it('the CUDA prebuilt: CUDA 13 runtime, machine code for Ampere 8.6, Ada and Blackwell, PTX at ISA 9.1 (a CUDA 13.1 driver)', () => {
    const c = byId('cuda').cuda!;
    expect(c.runtime).toBe(13);
    expect(c.needs).toEqual(expect.arrayContaining(['libcudart.so.13', 'libcublas.so.13', 'libcuda.so.1']));
    expect(c.sass).toEqual([{ arch: 86, exact: false }, { arch: 89, exact: false }, { arch: 120, exact: true }, { arch: 121, exact: true }]);
    expect(c.ptx).toEqual([{ arch: 75, isa: '9.1' }, { arch: 80, isa: '9.1' }, { arch: 90, isa: '9.1' }]);
  });

  it('the CUDA fallback: CUDA 12 runtime, machine code for 8.6, PTX up to compute_80 at ISA 8.4 (a CUDA 12.4 driver)', () => {
    const c = byId('cuda-fallback').cuda!;
    expect(c.runtime).toBe(12);
    expect(c.sass).toEqual([{ arch: 86, exact: false }]);
    expect(c.ptx.map((p) => p.arch)).toEqual([50, 61, 70, 75, 80]);
    expect(new Set(c.ptx.map((p) => p.isa))).toEqual(new Set(['8.4']));
  });
});

describe('reading the machine', () => {
  it('parses nvidia-smi: GPU, compute capability, memory, driver and its CUDA version', () => {
    const m = recorded.machines['h100-580']!;
    expect(parseNvidiaSmi(m.query, m.summary)).toEqual({
      gpus: [{ index: 0, name: 'NVIDIA H100 80GB HBM3', computeCapability: '9.0', memoryMiB: 81559 }],
      driver: { version: '580.95.05', cuda: '13.0' },
    });
  });

  it('without the banner, the CUDA version comes from the driver branch', () => {
    expect(machine('a100-550', [], { banner: false }).driver).toEqual({ version: '550.127.08', cuda: '12.4' });
    expect(cudaForDriver('570.133.20')).toBe('12.8');
    expect(cudaForDriver('590.44.01')).toBe('13.1');
    expect(cudaForDriver('470.256.02')).toBeNull();
  });

  it('ldconfig: 64-bit CUDA and Vulkan libraries only', () => {
    expect(parseLdconfig(recorded.ldconfig.vulkan + recorded.ldconfig.cuda12).sort()).toEqual(['libcublas.so.12', 'libcublasLt.so.12', 'libcudart.so.12', 'libvulkan.so.1']);
  });

  it('Vulkan: a GPU driver counts, the CPU rasteriser (lavapipe) does not', () => {
    expect(isGpuIcd(path.join(FIXTURES, 'nvidia_icd.json'))).toBe(true);
    expect(isGpuIcd(path.join(FIXTURES, 'lvp_icd.x86_64.json'))).toBe(false);
  });

  it('this machine: no NVIDIA driver, so CUDA is judged not to run and auto picks the CPU', async () => {
    const host = await probeHost();
    const plan = planBackend('auto', host, binaries);
    expect(host.driver).toBeNull();
    // (A CPU build made here with node-llama-cpp's source build would come first.)
    expect(plan.choice?.binary.id).toMatch(/^(cpu|local:linux-x64-)/);
    expect(plan.verdicts.find((v) => v.binary.id === 'cuda')).toMatchObject({ runs: false, code: 'no-driver' });
  });
});

/**
 * Ampere (A100, 8.0), Ada (L40S, 8.9) and Hopper (H100, 9.0) under drivers 550 (CUDA 12.4),
 * 570 (12.8), 580 (13.0) and 590 (13.1), with both CUDA runtimes installed: what auto loads.
 */
const EXPECTED: Record<string, Record<string, [string, string]>> = {
  a100: { 550: ['cuda-fallback', 'ptx-jit'], 570: ['cuda-fallback', 'ptx-jit'], 580: ['cuda-fallback', 'ptx-jit'], 590: ['cuda', 'ptx-jit'] },
  l40s: { 550: ['cuda-fallback', 'sass'], 570: ['cuda-fallback', 'sass'], 580: ['cuda', 'sass'], 590: ['cuda', 'sass'] },
  h100: { 550: ['cuda-fallback', 'ptx-jit'], 570: ['cuda-fallback', 'ptx-jit'], 580: ['cuda-fallback', 'ptx-jit'], 590: ['cuda', 'ptx-jit'] },
};

describe('the decision on recorded machines (no GPU needed)', () => {
  for (const [gpu, drivers] of Object.entries(EXPECTED)) {
    for (const [driver, [binary, code]] of Object.entries(drivers)) {
      it(`${gpu} with driver ${driver}: ${binary} (${code})`, () => {
        const plan = planBackend('auto', machine(`${gpu}-${driver}`, ['cuda12', 'cuda13', 'vulkan'], { vulkanIcd: true }), binaries);
        expect(plan.error).toBeNull();
        expect([plan.choice!.binary.id, plan.choice!.code]).toEqual([binary, code]);
      });
    }
  }

  it('the CUDA 13 prebuilt needs a CUDA 13 driver: under 570 it is refused with the driver it needs', () => {
    const v = planBackend('auto', machine('l40s-570', ['cuda12', 'cuda13']), binaries).verdicts.find((x) => x.binary.id === 'cuda')!;
    expect(v).toMatchObject({ runs: false, code: 'driver-too-old' });
    expect(v.why).toContain('needs a driver for CUDA 13.0 (580.65.06 or newer); this is driver 570.133.20 (CUDA 12.8)');
    expect(v.fix).toBe('upgrade the NVIDIA driver to 580 or newer');
  });

  it('H100 under 580 (the lent machine\'s case): the prebuilt\'s compute_90 PTX needs CUDA 13.1, and the fix says so', () => {
    const v = planBackend('auto', machine('h100-580', ['cuda13']), binaries).verdicts.find((x) => x.binary.id === 'cuda')!;
    expect(v).toMatchObject({ runs: false, code: 'no-code-for-gpu' });
    expect(v.why).toContain('no machine code for sm_90 (it has sm_86, sm_89, sm_120a, sm_121a), and its PTX (compute_90, ISA 9.1) needs a driver for CUDA 13.1 (590.44.01 or newer)');
    expect(v.fix).toBe('upgrade the NVIDIA driver to 590 or newer, or build for this GPU: docsift gpu build --arch 90');
  });

  it('without the CUDA 12 runtime the fallback cannot load: auto takes Vulkan, else the CPU, and doctor names every way to the GPU', () => {
    const vulkan = planBackend('auto', machine('h100-580', ['cuda13', 'vulkan'], { vulkanIcd: true }), binaries);
    expect(vulkan.choice!.binary.id).toBe('vulkan');
    const host = machine('h100-580', ['cuda13']);
    const cpu = planBackend('auto', host, binaries);
    expect(cpu.choice!.binary.id).toBe('cpu');
    expect(cpu.verdicts.find((v) => v.binary.id === 'cuda-fallback')).toMatchObject({ runs: false, code: 'missing-libraries' });
    const lines = gpuFindings(host, cpu);
    const text = lines.map((l) => `${l.level} ${l.check}: ${l.message}`).join('\n');
    expect(text).toContain('ok gpu 0: NVIDIA H100 80GB HBM3, compute capability 9.0, 80 GiB');
    expect(text).toContain('ok driver: NVIDIA 580.95.05, supports CUDA 13.0');
    expect(text).toContain('CUDA 13 runtime; machine code sm_86, sm_89, sm_120a, sm_121a; PTX compute_75, compute_80, compute_90 (PTX ISA 9.1)');
    expect(text).toContain('CUDA 12 runtime; machine code sm_86; PTX compute_50, compute_61, compute_70, compute_75, compute_80 (PTX ISA 8.4)');
    const choice = lines.find((l) => l.check === 'backend choice')!;
    expect(choice.level).toBe('warn');
    expect(choice.message).toContain('the worker loads cpu');
    expect(choice.message).toContain('upgrade the NVIDIA driver to 590 or newer, or build for this GPU: docsift gpu build --arch 90 (cuda)');
    expect(choice.message).toContain('install the CUDA 12 runtime libraries');
    expect(choice.message).toContain('apt install libvulkan1');
  });

  it('an explicit backend that cannot run is refused, naming each binary and its fix', () => {
    const plan = planBackend('cuda', machine('h100-580', ['cuda13']), binaries);
    expect(plan.choice).toBeNull();
    expect(plan.error).toMatch(/^DOCSIFT_GPU=cuda, but no cuda build can run here\. CUDA prebuilt .*compute_90, ISA 9\.1.*CUDA fallback .*libcudart\.so\.12, libcublas\.so\.12 are not found.*Or set DOCSIFT_GPU=auto/);
    expect(planBackend('vulkan', machine('h100-580', ['cuda13']), binaries).error).toContain('apt install libvulkan1');
    expect(planBackend('metal', machine('h100-580', []), binaries).error).toContain('macOS only');
  });

  it('a GPU with no code at all in a binary, and a local build made for it', () => {
    const host = machine('h100-580', ['cuda13']);
    const local: LlamaBinary = { ...byId('cuda'), id: 'local:linux-x64-cuda-sm90', label: 'local CUDA build', cuda: { runtime: 13, needs: ['libcudart.so.13', 'libcublas.so.13', 'libcuda.so.1'], sass: [{ arch: 90, exact: false }], ptx: [] } };
    const plan = planBackend('auto', host, [local, ...binaries]);
    expect([plan.choice!.binary.id, plan.choice!.code]).toEqual(['local:linux-x64-cuda-sm90', 'sass']);
    const onAmpere = planBackend('auto', machine('a100-580', ['cuda13']), [local]).verdicts[0]!;
    expect(onAmpere).toMatchObject({ runs: false, code: 'no-code-for-gpu' });
    expect(onAmpere.why).toContain('no machine code for sm_80 (it has sm_90) and no PTX for an architecture at or below 8.0');
  });
});

describe('loading the chosen binary (real llama.cpp, this CPU machine)', () => {
  // A recorded H100 under 580 with the CUDA 12 runtime: the plan picks the fallback, and a child
  // process loads it through docsift's folder of links and tries to decode. Here libcudart.so.12
  // is absent, so llama.cpp comes up on its CPU backend in the child: the test decode fails, auto
  // goes on to the next build, an explicit cuda is refused.
  const h100 = () => machine('h100-580', ['cuda12', 'cuda13']);

  it('auto: the fallback fails its test decode in a child, and the worker runs on the CPU saying why', async () => {
    const warnings: string[] = [];
    const logger = { info: () => undefined, warn: (_o: unknown, m: string) => warnings.push(m), error: () => undefined } as never;
    const { llama, loaded } = await loadLlama({ gpu: 'auto', threads: 1, host: h100(), logger });
    try {
      expect(loaded).toMatchObject({ backend: 'cpu', binary: 'cpu', code: 'probe-failed' });
      expect(loaded.failed).toEqual([expect.stringMatching(/^cuda-fallback: exit status 1: llama\.cpp came up on cpu, not cuda/)]);
      expect(llama.gpu).toBe(false);
      expect(warnings.join()).toContain('CUDA fallback (@node-llama-cpp/linux-x64-cuda-ext 3.21.1) failed a test decode in a child process');
    } finally {
      await llama.dispose();
    }
  });

  it('explicit cuda: refused as a configuration error on DOCSIFT_GPU', async () => {
    await expect(loadLlama({ gpu: 'cuda', threads: 1, host: h100() })).rejects.toThrow(/^environment: DOCSIFT_GPU: DOCSIFT_GPU=cuda: no build passed a test decode: cuda-fallback: exit status 1/);
    await expect(loadLlama({ gpu: 'cuda', threads: 1, host: await probeHost() })).rejects.toThrow(/DOCSIFT_GPU: DOCSIFT_GPU=cuda, but no cuda build can run here\. .*no NVIDIA driver on this machine/);
  });

  it('auto on this machine loads the CPU prebuilt, with no child process', async () => {
    const { llama, loaded } = await loadLlama({ gpu: 'auto', threads: 1 });
    try {
      expect(loaded).toMatchObject({ backend: 'cpu', code: 'cpu', failed: [] });
      expect(loaded.binary).toMatch(/^(cpu|local:linux-x64-)/);
    } finally {
      await llama.dispose();
    }
  });

  it('the test decode passes where the build runs (the CPU build, forced through the same child)', () => {
    const run = spawnSync(process.execPath, [path.resolve('dist/src/model/gpu/probeChild.js'), 'cpu', '1'], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ ok: true, backend: 'cpu', decoded: 4 });
  });
});

describe('docsift gpu build', () => {
  const BIN = path.resolve('dist/src/cli/main.js');

  it('turns compute capabilities into CMake architectures: machine code for each, PTX for the highest', () => {
    expect(cudaArchitectures('80,86,89,90')).toBe('80-real;86-real;89-real;90');
    expect(cudaArchitectures('9.0, 8.6 8.6')).toBe('86-real;90');
    expect(cudaArchitectures('90,120a')).toBe('90-real;120a-real');
    expect(() => cudaArchitectures('9.x')).toThrow('is not a compute capability');
    expect(() => cudaArchitectures('30')).toThrow('not a CUDA architecture');
  });

  /** A CUDA toolkit folder as NVIDIA's packages lay it out, with an nvcc that reports its release. */
  function toolkit(withCublas: boolean): string {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'docsift-cuda-'));
    for (const dir of ['bin', 'include', 'lib64']) fs.mkdirSync(path.join(root, dir));
    fs.writeFileSync(path.join(root, 'bin', 'nvcc'), '#!/bin/sh\necho "Cuda compilation tools, release 12.4, V12.4.131"\n', { mode: 0o755 });
    fs.writeFileSync(path.join(root, 'include', 'cuda_runtime.h'), '');
    if (withCublas) {
      fs.writeFileSync(path.join(root, 'include', 'cublas_v2.h'), '');
      fs.writeFileSync(path.join(root, 'lib64', 'libcublas.so'), '');
    }
    return root;
  }

  const gpuBuild = (args: string[], env: NodeJS.ProcessEnv) => spawnSync(process.execPath, [BIN, 'gpu', 'build', ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });

  it('--check names each prerequisite, where it was found, and what would be built', () => {
    const root = toolkit(true);
    const prerequisites = buildPrerequisites(findCudaToolkit({ CUDA_PATH: root }), path.resolve('node_modules/node-llama-cpp'));
    expect(prerequisites.slice(0, 4).map((p) => p.found)).toEqual([`${root}/bin/nvcc (CUDA 12.4)`, `${root}/include/cuda_runtime.h`, `${root}/include/cublas_v2.h`, `${root}/lib64/libcublas.so`]);
    const run = gpuBuild(['--arch', '86,90', '--check'], { CUDA_PATH: root });
    // cmake and a C++ compiler are this machine's own; the test needs both (as the build does).
    expect(run.stdout).toContain(`ok       nvcc (CUDA compiler): ${root}/bin/nvcc (CUDA 12.4)`);
    expect(run.stdout).toMatch(/^ok {7}cmake 3\.18 or newer: cmake \d/m);
    expect(run.stdout).toContain(`build    CUDA for the given architectures: CMAKE_CUDA_ARCHITECTURES=86-real;90, toolkit ${root}`);
    expect(run.status).toBe(0);
  });

  it('refuses to start a build that cannot finish, naming what is missing and how to get it', () => {
    const run = gpuBuild(['--arch', '90'], { CUDA_PATH: toolkit(false) });
    expect(run.status).toBe(1);
    expect(run.stdout).toContain('missing  cuBLAS headers (cublas_v2.h): install libcublas-dev-12-4');
    expect(run.stdout).toContain('missing  cuBLAS library (libcublas.so): install libcublas-dev-12-4 (it also brings libcublas.so.12)');
    expect(run.stderr).toContain('cannot build: 2 prerequisite(s) missing');
    const noToolkit = gpuBuild(['--arch', '90'], { CUDA_PATH: path.join(os.tmpdir(), 'no-such-cuda') });
    expect(noToolkit.stdout).toMatch(/^missing {2}nvcc \(CUDA compiler\): install the CUDA toolkit/m);
  });

  it('without --arch and without a GPU, asks for the architectures', () => {
    const run = gpuBuild([], {});
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('no NVIDIA GPU found (nvidia-smi); name the architectures to build for, e.g. --arch 80,86,89,90');
  });
});
