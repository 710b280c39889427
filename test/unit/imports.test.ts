import path from 'node:path';
import madge from 'madge';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/testEnv.js';

/**
 * Imports flow one way (shared/STYLE.md): cli -> ingest | worker -> outputs -> pipeline ->
 * text | model | queue -> config -> infra. A folder imports only from folders of a lower rank,
 * and no module imports itself back through others. Checked with madge (bullmq's check).
 */
const RANK: Record<string, number> = { infra: 0, config: 1, text: 2, model: 2, queue: 2, pipeline: 3, outputs: 4, ingest: 5, worker: 5, cli: 6 };

describe('imports', async () => {
  const graph = await madge(path.join(REPO, 'src'), { fileExtensions: ['ts'], tsConfig: path.join(REPO, 'tsconfig.json') });

  it('have no cycles', () => {
    expect(graph.circular()).toEqual([]);
  });

  it('flow one way between the stage folders', () => {
    const upward: string[] = [];
    for (const [from, tos] of Object.entries(graph.obj())) {
      for (const to of tos) {
        const [a, b] = [from.split('/')[0]!, to.split('/')[0]!];
        // Outside src/: a package of its own (packages/client), depended on like any library.
        if (a === b || b === '..') continue;
        expect(RANK, `${from}: unknown folder ${a}`).toHaveProperty(a);
        if (!(RANK[b]! < RANK[a]!)) upward.push(`${from} -> ${to}`);
      }
    }
    expect(upward).toEqual([]);
  });
});
