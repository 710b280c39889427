import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { clientProject as project, CLIENT } from '../helpers/clientProject.js';

/**
 * packages/client as a user's project gets it: its own small dependency tree, loadable from
 * CommonJS and ESM (its types under every moduleResolution: clientTypes.test.ts).
 */

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
});
