import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeValidator } from '../../src/model/index.js';
import { writeHostileCorpus } from '../helpers/hostileCorpus.js';
import { corpusFiles, tempDir } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ documents: documentsQueue({ limits: { maxBytes: 52_428_800, maxPages: 500, textTimeoutMs: 60_000, textMemoryMb: 256 } }) }, 'documents');
});
afterAll(() => stack?.close());

describe('the hostile corpus (test/helpers/hostileCorpus.ts) through a real worker', () => {
  it('every file ends in a result or a coded failure, and the worker keeps serving', async () => {
    const cases = writeHostileCorpus(tempDir('hostile'));
    const outcomes = [];
    for (const c of cases) outcomes.push(await stack.enqueueFile(c.file));
    const good = await stack.enqueueFile(corpusFiles()[0]!);
    const statuses = await stack.waitAll([...outcomes, good], 240_000);
    cases.forEach((c, i) => {
      const s = statuses[i]!;
      const label = `${path.basename(c.file)} (${c.why}): ${JSON.stringify(s).slice(0, 300)}`;
      if (c.expect.state === 'done') {
        expect(s.state, label).toBe('done');
      } else {
        expect(s.state, label).toBe('failed');
        if (s.state === 'failed') {
          expect(c.expect.codes, label).toContain(s.code);
          expect(s.attempts, label).toBe(1); // permanent: never retried
        }
      }
    });
    expect(statuses.at(-1)!.state).toBe('done');
  });

  it('prompt injection changes nothing: the output still matches the schema and the label set', async () => {
    const cases = writeHostileCorpus(tempDir('hostile'));
    const injection = cases.find((c) => c.file.endsWith('prompt-injection.txt'))!;
    const [status] = await stack.waitAll([await stack.enqueueFile(injection.file)]);
    expect(status!.state).toBe('done');
    if (status!.state !== 'done') return;
    const record = status!.record;
    expect(stack.config.prompts.classify.labels).toContain(record.classification.label);
    expect(record.classification.label).not.toBe('pwned');
    if (record.documentType) {
      expect(makeValidator(stack.config.prompts.types.get(record.documentType)!.schema)(record.fields).ok).toBe(true);
      expect(Object.keys(record.fields!)).not.toContain('hacked');
    }
  });
});
