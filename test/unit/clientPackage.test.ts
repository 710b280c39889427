import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, tempDir } from '../helpers/testEnv.js';

/**
 * packages/client as a user's project gets it: its own small dependency tree, loadable from
 * CommonJS and ESM, and typed under every moduleResolution TypeScript users still use.
 */
const CLIENT = path.join(REPO, 'packages', 'client');

/** A user's project whose node_modules holds the client package (as npm links or unpacks it). */
function project(files: Record<string, string>): string {
  const dir = tempDir('client-user');
  fs.mkdirSync(path.join(dir, 'node_modules', '@docsift'), { recursive: true });
  fs.symlinkSync(CLIENT, path.join(dir, 'node_modules', '@docsift', 'client'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

function sizeOf(dir: string): number {
  let bytes = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue; // nested packages are counted as packages
    const p = path.join(dir, entry.name);
    bytes += entry.isDirectory() ? sizeOf(p) : entry.isFile() ? fs.statSync(p).size : 0;
  }
  return bytes;
}

/** Every package directory the client needs at run time, resolved as Node resolves them. */
function closure(from: string, seen = new Map<string, string>()): Map<string, string> {
  const pkg = JSON.parse(fs.readFileSync(path.join(from, 'package.json'), 'utf8')) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
  const require = createRequire(path.join(from, 'package.json'));
  for (const name of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
    let dir: string | undefined;
    for (const base of require.resolve.paths(name) ?? []) {
      if (fs.existsSync(path.join(base, name, 'package.json'))) { dir = fs.realpathSync(path.join(base, name)); break; }
    }
    if (!dir || seen.has(dir)) continue; // an optional dependency for another platform is absent
    seen.set(dir, name);
    closure(dir, seen);
  }
  return seen;
}

describe('the @docsift/client package', () => {
  it('needs only HTTP and Redis: its installed tree stays under 30 MB, without the model runtime', () => {
    const deps = closure(CLIENT);
    const names = [...deps.values()];
    expect(names).toEqual(expect.arrayContaining(['bullmq', 'ioredis']));
    for (const heavy of ['node-llama-cpp', 'pdf-parse', 'fastify', 'zod', 'pg']) expect(names).not.toContain(heavy);
    const bytes = [...deps.keys()].reduce((n, dir) => n + sizeOf(dir), sizeOf(path.join(CLIENT, 'dist')));
    expect(bytes / 1e6).toBeLessThan(30);
  });

  it('loads from CommonJS and from ESM', () => {
    const dir = project({
      'cjs.cjs': "const c = require('@docsift/client'); console.log(typeof c.HttpClient, typeof c.RedisClient, typeof c.DocumentFailedError);",
      'esm.mjs': "import { HttpClient, RedisClient, DocumentFailedError } from '@docsift/client'; console.log(typeof HttpClient, typeof RedisClient, typeof DocumentFailedError);",
    });
    for (const file of ['cjs.cjs', 'esm.mjs']) {
      expect(execFileSync(process.execPath, [file], { cwd: dir, encoding: 'utf8' }).trim()).toBe('function function function');
    }
  });

  it.each([
    ['node10', { module: 'commonjs', moduleResolution: 'node10' }, 'use.ts'],
    ['node16 (CommonJS file)', { module: 'node16', moduleResolution: 'node16' }, 'use.cts'],
    ['node16 (ESM file)', { module: 'node16', moduleResolution: 'node16' }, 'use.mts'],
    ['nodenext', { module: 'nodenext', moduleResolution: 'nodenext' }, 'use.mts'],
    ['bundler', { module: 'esnext', moduleResolution: 'bundler' }, 'use.ts'],
  ])('its types resolve under moduleResolution %s', (_name, options, file) => {
    const source = [
      "import { HttpClient, type DocsiftClient, type ResultRecord } from '@docsift/client';",
      "const client: DocsiftClient = new HttpClient({ baseUrl: 'http://127.0.0.1:8080', token: 't' });",
      'export async function amount(id: string): Promise<unknown> {',
      '  const record: ResultRecord | null = await client.result(id);',
      "  return record?.fields?.['amount'];",
      '}',
    ].join('\n');
    const dir = project({
      [file]: source,
      'tsconfig.json': JSON.stringify({ compilerOptions: { ...options, strict: true, noEmit: true, skipLibCheck: false, types: [], lib: ['ES2022', 'DOM'], target: 'ES2022' }, files: [file] }),
    });
    const tsc = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
    try {
      execFileSync(process.execPath, [tsc, '-p', dir], { cwd: dir, encoding: 'utf8' });
    } catch (err) {
      throw new Error(`tsc failed:\n${(err as { stdout?: string }).stdout ?? ''}`);
    }
  });
});
