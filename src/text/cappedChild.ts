import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A compiled child script beside this module. Under vitest this module runs from src/*.ts, but a
 * forked child needs JavaScript: `npm test` compiles to dist/ first, so both cases find dist/.
 */
export function childScript(name: string): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return path.join(path.dirname(here), name);
  const compiled = path.join(path.dirname(here), '..', '..', 'dist', 'src', 'text', name);
  if (!fs.existsSync(compiled)) throw new Error(`${compiled} is missing: run 'npm run build' first`);
  return compiled;
}

/**
 * Address space this Node maps at start without using it: RLIMIT_DATA counts reservations, and
 * Node 24's V8 reserves ~530 MB it never touches (VmData 575 MB at RSS 43 MB; Node 20: 49 MB at
 * 40 MB), which would leave a 512 MB cap no room to even start. The cap is raised by exactly this,
 * so a memory limit keeps meaning the memory the child may really use. Measured once per
 * process on the same binary; 0 where /proc is missing (the cap is then the limit as set).
 */
let reservedMb: number | undefined;
export function runtimeReservationMb(): number {
  if (reservedMb !== undefined) return reservedMb;
  try {
    const probe = "const s = require('fs').readFileSync('/proc/self/status', 'utf8');"
      + "process.stdout.write(String(/VmData:\\s+(\\d+)/.exec(s)[1] - /VmRSS:\\s+(\\d+)/.exec(s)[1]))";
    // Synchronous, ~40 ms, once per process, before its first child.
    const out = execFileSync(process.execPath, ['--max-old-space-size=64', '-e', probe], { encoding: 'utf8', timeout: 10_000 });
    reservedMb = Math.max(0, Math.ceil(Number(out) / 1024));
  } catch {
    reservedMb = 0;
  }
  return reservedMb;
}

/** How a request ended when the child did not answer. */
export type ChildFailure = { kind: 'timeout' } | { kind: 'exit'; code: number | null; signal: NodeJS.Signals | null; outOfMemory: boolean };

/**
 * A worker process for untrusted input (the PDF parser, OCR), started under an OS memory cap
 * (RLIMIT_DATA: every private writable mapping, which V8's heap cap does not cover) and a V8
 * heap cap below it, answering one request at a time over IPC, killed on timeout. fork() runs
 * execPath with execArgv before the script, so the shell sets the limit and execs Node, which
 * keeps the IPC channel.
 */
export class CappedChild<Request extends { id: number }, Reply extends { id: number }> {
  readonly process: ChildProcess;
  served = 0;
  private stderrTail = '';

  /** capMb: the OS limit, memoryMb plus what the process reserves without using it. */
  constructor(script: string, readonly memoryMb: number, capMb: number, heapMb: number) {
    this.process = fork(childScript(script), [], {
      execPath: '/bin/sh',
      execArgv: ['-c', 'ulimit -d "$1" && shift && exec "$@"', 'sh', String(capMb * 1024), process.execPath, `--max-old-space-size=${heapMb}`],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.process.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-2000);
    });
  }

  /** The answer, or why there is none; a timeout kills the child. */
  run(request: Request, timeoutMs: number): Promise<Reply | ChildFailure> {
    return new Promise((resolve) => {
      const onMessage = (reply: Reply) => {
        if (reply.id !== request.id) return;
        cleanup();
        resolve(reply);
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        cleanup();
        const outOfMemory = /heap out of memory|Allocation failed|bad_alloc|Cannot allocate/i.test(this.stderrTail) || code === 134 || signal === 'SIGABRT' || signal === 'SIGTRAP' || signal === 'SIGSEGV';
        resolve({ kind: 'exit', code, signal, outOfMemory });
      };
      const timer = setTimeout(() => {
        cleanup();
        this.process.kill('SIGKILL');
        resolve({ kind: 'timeout' });
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.process.off('message', onMessage);
        this.process.off('exit', onExit);
      };
      this.process.on('message', onMessage);
      this.process.on('exit', onExit);
      this.process.send(request);
    });
  }

  get alive(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null && this.process.connected;
  }

  kill(): void {
    if (this.alive) this.process.kill('SIGKILL');
  }
}

export function isFailure<R>(reply: R | ChildFailure): reply is ChildFailure {
  return typeof reply === 'object' && reply !== null && 'kind' in reply;
}

/**
 * A pool of capped children of one script: at most `size` requests at once, children reused
 * (keyed by memory cap, fixed at start) and replaced after `requestsPerChild` or a failure.
 */
export class ChildPool<Request extends { id: number }, Reply extends { id: number }> {
  private readonly idle: Array<CappedChild<Request, Reply>> = [];
  private readonly all = new Set<CappedChild<Request, Reply>>();
  private readonly waiting: Array<() => void> = [];
  private busy = 0;
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly script: string,
    private readonly size: () => number,
    private readonly requestsPerChild: number,
    private readonly limits: (memoryMb: number) => { capMb: number; heapMb: number },
  ) {}

  /** Runs one request; `keep` says whether the child may serve another after this reply. */
  async run(request: Omit<Request, 'id'>, options: { timeoutMs: number; memoryMb: number; keep?: (reply: Reply) => boolean }): Promise<Reply | ChildFailure> {
    if (this.closed) throw new Error('the pool is closed');
    while (this.busy >= this.size()) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.busy++;
    const reuse = this.idle.findIndex((c) => c.memoryMb === options.memoryMb);
    const child = reuse >= 0 ? this.idle.splice(reuse, 1)[0]! : this.spawn(options.memoryMb);
    let reusable = false;
    try {
      const reply = await child.run({ ...request, id: this.nextId++ } as Request, options.timeoutMs);
      reusable = !isFailure(reply) && (options.keep?.(reply) ?? true);
      return reply;
    } finally {
      child.served++;
      if (reusable && child.alive && child.served < this.requestsPerChild && !this.closed) this.idle.push(child);
      else {
        child.kill();
        this.all.delete(child);
      }
      this.busy--;
      this.waiting.shift()?.();
    }
  }

  private spawn(memoryMb: number): CappedChild<Request, Reply> {
    const { capMb, heapMb } = this.limits(memoryMb);
    const child = new CappedChild<Request, Reply>(this.script, memoryMb, capMb, heapMb);
    this.all.add(child);
    child.process.on('exit', () => {
      this.all.delete(child);
      const i = this.idle.indexOf(child);
      if (i >= 0) this.idle.splice(i, 1);
    });
    return child;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const child of this.all) child.kill();
    this.all.clear();
    this.idle.length = 0;
  }
}
