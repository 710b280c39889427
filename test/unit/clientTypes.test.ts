import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'vitest';
import { clientProject as project } from '../helpers/clientProject.js';
import { REPO } from '../helpers/testEnv.js';

/**
 * The @docsift/client package's types under every moduleResolution TypeScript users still use.
 * TypeScript's resolution, not Node's: test/on-node24.sh leaves this file to the first pass.
 */
describe('the @docsift/client package', () => {
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
