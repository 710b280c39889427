import fs from 'node:fs/promises';
import { InvalidArgumentError } from 'commander';
import { ConfigError, DocsiftError } from '../infra/errors.js';

// What main.ts needs to declare the commands. Kept apart from runtime.ts, whose Redis, queue and
// ingest imports take ~1.5 s to load: `docsift --help` loads only this (test/integration/cli.test.ts).

/**
 * Runs a command's body and turns what it throws into one line on stderr and an exit code:
 * 2 for configuration and usage problems, 1 for everything else.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      process.exitCode = code ?? 0;
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`docsift: configuration error: ${err.message}\n`);
        process.exitCode = 2;
      } else if (err instanceof DocsiftError) {
        process.stderr.write(`docsift: ${err.code}: ${err.message}\n`);
        process.exitCode = 1;
      } else {
        process.stderr.write(`docsift: ${(err as Error).message ?? String(err)}\n`);
        process.exitCode = 1;
      }
    }
  };
}

type CommandBody = (...args: never[]) => Promise<number | void>;

/** A command whose module is imported when it runs, so `--help` loads no command's dependencies (llama.cpp, BullMQ, pdf.js). */
export function lazy<M, K extends { [N in keyof M]: M[N] extends CommandBody ? N : never }[keyof M]>(load: () => Promise<M>, name: K): (...args: unknown[]) => Promise<void> {
  return action(async (...args: unknown[]) => ((await load())[name] as (...a: unknown[]) => Promise<number | void>)(...args));
}

/** A file named on the command line; one that cannot be read is UNREADABLE_FILE with the reason (ENOENT, EISDIR, EACCES). */
export function readCliFile(file: string): Promise<Buffer> {
  return fs.readFile(file).catch((err: NodeJS.ErrnoException) => {
    throw new DocsiftError('UNREADABLE_FILE', `${file}: ${err.code ?? err.message}`);
  });
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

export function parsePrice(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`expected a price per million tokens such as 0.15, got "${value}"`);
  return n;
}

export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`expected a port number (0 for any free port), got "${value}"`);
  return n;
}
