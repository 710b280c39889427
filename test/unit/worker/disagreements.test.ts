import { describe, expect, it } from 'vitest';
import { disagreements } from '../../../src/worker/challenge.js';

describe('challenger comparison', () => {
  it('compares as people read: case and runs of spaces in strings, numbers to the cent, arrays item by item', () => {
    const a = { vendor: 'ACME  Office GmbH', amount: 134.9, lines: [{ item: 'Paper', amount: 45 }], date: '2026-12-15', iban: null };
    const b = { vendor: 'acme office gmbh', amount: 134.901, lines: [{ amount: 45.0, item: 'paper ' }], date: '2026-12-15', iban: null };
    expect(disagreements(a, b)).toEqual([]);
  });

  it('names each field that differs, and one answer null where the other has a value', () => {
    const a = { vendor: 'ACME', amount: 134.9, lines: [{ item: 'Paper', amount: 45 }], iban: null, vat_id: 'DE123' };
    const b = { vendor: 'Globex', amount: 134.95, lines: [{ item: 'Paper', amount: 46 }], iban: 'DE89370400440532013000' };
    expect(disagreements(a, b)).toEqual(['amount', 'iban', 'lines', 'vat_id', 'vendor']);
  });
});
