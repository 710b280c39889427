import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, DocsiftError, formatFailure, parseFailure, toDocsiftError } from '../../../src/infra/errors.js';
import { REPO } from '../../helpers/testEnv.js';

describe('error codes', () => {
  it('docs/ERRORS.md lists exactly the codes in the code, with the same retry decision and HTTP status', () => {
    const doc = fs.readFileSync(path.join(REPO, 'docs', 'ERRORS.md'), 'utf8');
    const rows = [...doc.matchAll(/^\| `([A-Z_]+)` \| (yes|no) \| (\d{3}) \|/gm)].map((m) => [m[1], { retry: m[2] === 'yes', http: Number(m[3]) }]);
    expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(Object.entries(ERROR_CODES).map(([code, v]) => [code, { retry: v.retry, http: v.http }])));
  });

  it('docs/API.md names only registered codes, each with the status the registry declares', () => {
    const doc = fs.readFileSync(path.join(REPO, 'docs', 'API.md'), 'utf8');
    const codes = (ERROR_CODES as Record<string, { http: number }>);
    // "NNN `CODE`" and "NNN `A`, `B` or `C`": each code after a status is registered with that status.
    let named = 0;
    for (const [, status, list] of doc.matchAll(/\b([1-5]\d\d)\s((?:`[A-Z_]+`(?:\s\([^)]*\))?(?:,\s|\sor\s)?)+)/g)) {
      for (const [, code] of list!.matchAll(/`([A-Z_]+)`/g)) {
        expect(codes[code!]?.http, `${status} ${code}`).toBe(Number(status));
        named++;
      }
    }
    expect(named).toBeGreaterThanOrEqual(12);
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
