import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from 'commander';
import { findBinaries, llamaPackageDir, planBackend, probeHost } from '../../model/index.js';
import { buildPrerequisites, cudaArchitectures, findCudaToolkit } from '../../model/gpu/build.js';
import { describeCuda } from '../../model/gpu/report.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

/**
 * `docsift gpu build`: a CUDA build of llama.cpp for this machine's GPUs (or --arch), made by
 * node-llama-cpp's offline source build, after checking what it needs. The worker and doctor
 * find it in node-llama-cpp's localBuilds folder and prefer it when it runs here.
 */
export async function gpuBuildCommand(options: { arch?: string; check: boolean }): Promise<number> {
  const host = await probeHost();
  const detected = host.gpus.map((g) => g.computeCapability).filter((c): c is string => c !== null);
  const list = options.arch ?? detected.join(',');
  if (!list) {
    process.stderr.write('docsift: no NVIDIA GPU found (nvidia-smi); name the architectures to build for, e.g. --arch 80,86,89,90\n');
    return 1;
  }
  let architectures: string;
  try {
    architectures = cudaArchitectures(list);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  const toolkit = findCudaToolkit();
  const llamaDir = llamaPackageDir();
  const prerequisites = buildPrerequisites(toolkit, llamaDir);
  for (const p of prerequisites) out(p.found ? `ok       ${p.name}: ${p.found}` : `missing  ${p.name}: ${p.get}`);
  let problems = prerequisites.filter((p) => !p.found).length;
  if (host.driver?.cuda && toolkit.version && Number(toolkit.version.split('.')[0]) > Number(host.driver.cuda.split('.')[0])) {
    out(`error    driver: CUDA ${toolkit.version}'s runtime needs a driver for CUDA ${toolkit.version.split('.')[0]}.0; this driver (${host.driver.version}) supports CUDA ${host.driver.cuda}: build with a CUDA ${host.driver.cuda.split('.')[0]} toolkit, or upgrade the driver`);
    problems++;
  }
  out(`build    CUDA for ${options.arch ? 'the given' : 'this machine\'s'} architectures: CMAKE_CUDA_ARCHITECTURES=${architectures}${toolkit.root ? `, toolkit ${toolkit.root}` : ''}`);
  if (problems > 0) {
    process.stderr.write(`docsift: cannot build: ${problems} prerequisite(s) missing (above)\n`);
    return 1;
  }
  if (options.check) return 0;

  const cli = path.join(llamaDir, 'dist', 'cli', 'cli.js');
  const env = {
    ...process.env,
    NODE_LLAMA_CPP_CMAKE_OPTION_CMAKE_CUDA_ARCHITECTURES: architectures,
    ...(toolkit.nvcc && toolkit.root ? { CUDACXX: toolkit.nvcc, CUDAToolkit_ROOT: toolkit.root } : {}),
  };
  if (!fs.existsSync(path.join(llamaDir, 'llama', 'llama.cpp', 'CMakeLists.txt'))) {
    // Unpacks the source node-llama-cpp ships (llama/gitRelease.bundle); no network.
    if (await run(process.execPath, [cli, 'source', 'download', '--skipBuild', '--noUsageExample'], env) !== 0) return 1;
  }
  if (await run(process.execPath, [cli, 'source', 'build', '--gpu', 'cuda', '--noUsageExample'], env) !== 0) return 1;

  const plan = planBackend('auto', host, findBinaries());
  const built = plan.verdicts.filter((v) => v.binary.id.startsWith('local:') && v.binary.backend === 'cuda' && v.binary.cmakeOptions?.CMAKE_CUDA_ARCHITECTURES === architectures);
  for (const v of built) out(`built    ${v.binary.label} [${describeCuda(v.binary)}]: ${v.runs ? `runs here: ${v.why}` : `does not run here: ${v.why}`}`);
  out(`worker   DOCSIFT_GPU=auto loads ${plan.choice?.binary.id ?? 'what node-llama-cpp chooses'}; npm ci removes node_modules and this build with it (run this again after it)`);
  return built.length > 0 ? 0 : 1;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env, stdio: 'inherit' });
    child.on('error', () => resolve(1));
    child.on('exit', (code) => resolve(code ?? 1));
  });
}
