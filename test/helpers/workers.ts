import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { REPO } from './testEnv.js';

const BIN = path.join(REPO, 'dist/src/cli/main.js');

/** A `docsift worker` OS process, as on a separate node; resolves once it takes jobs. */
export function spawnWorker(env: NodeJS.ProcessEnv, args: string[] = []): Promise<DocsiftProcess> {
  return spawnDocsift(['worker', '--metrics-port', '0', ...args], env, 'worker ready');
}

export interface DocsiftProcess { process: ChildProcess; log(): string; stop(signal?: NodeJS.Signals): Promise<number | null> }

/** Any `docsift` command as its own OS process; resolves once its log shows `ready`. stop() sends SIGTERM unless told otherwise. */
export async function spawnDocsift(args: string[], env: NodeJS.ProcessEnv, ready: string, options: { cwd?: string } = {}): Promise<DocsiftProcess> {
  const child = spawn(process.execPath, [BIN, ...args], { env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
  const deadline = Date.now() + 60_000;
  while (!log.includes(ready)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      // A process that never showed its ready line is not left running (it would write under the test's keys after their clean-up).
      child.kill('SIGKILL');
      throw new Error(`docsift ${args.join(' ')} did not start:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    process: child,
    log: () => log,
    stop: (signal = 'SIGTERM') => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
      child.once('exit', (code) => resolve(code));
      child.kill(signal);
    }),
  };
}
