import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, DocsiftError, formatFailure, parseFailure, toDocsiftError } from '../../../src/infra/errors.js';
import { REPO } from '../../helpers/testEnv.js';

describe('error codes', () => {
  it('docs/ERRORS.md lists exactly the codes in the code, with the same retry decision', () => {
    const doc = fs.readFileSync(path.join(REPO, 'docs', 'ERRORS.md'), 'utf8');
    const rows = [...doc.matchAll(/^\| `([A-Z_]+)` \| (yes|no) \|/gm)].map((m) => [m[1], m[2] === 'yes']);
    expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(Object.entries(ERROR_CODES).map(([code, v]) => [code, v.retry])));
  });

  it('the code decides retry', () => {
    expect(new DocsiftError('ENCRYPTED', 'x').retryable).toBe(false);
    expect(new DocsiftError('MODEL_ERROR', 'x').retryable).toBe(true);
    expect(toDocsiftError(new Error('boom')).code).toBe('INTERNAL');
  });

  it('failure strings round-trip through BullMQ\'s failedReason', () => {
    expect(parseFailure(formatFailure('CORRUPT_DOCUMENT', 'bad: xref'))).toEqual({ code: 'CORRUPT_DOCUMENT', message: 'bad: xref' });
    expect(parseFailure('something else')).toEqual({ code: 'INTERNAL', message: 'something else' });
  });
});
