import { describe, expect, it } from 'vitest';
import { chunkPages, mergeChunks } from '../../../src/pipeline/chunks.js';

/** One token per 4 characters: a stand-in tokenizer for packing arithmetic only. */
const count = (s: string) => Math.ceil(s.length / 4);

describe('chunking long documents', () => {
  const pages = Array.from({ length: 6 }, (_, p) => Array.from({ length: 5 }, (_, i) => `Page ${p + 1} paragraph ${i + 1}: ${'x'.repeat(60)}`).join('\n\n'));

  it('splits on page and paragraph boundaries into chunks that fit, covering every paragraph in order', () => {
    const chunks = chunkPages(pages, 120, count, 0);
    expect(chunks.length).toBeGreaterThan(3);
    for (const c of chunks) expect(count(c.text)).toBeLessThanOrEqual(120 + 40); // page markers add a little
    const all = chunks.map((c) => c.text).join('\n');
    for (let p = 1; p <= 6; p++) for (let i = 1; i <= 5; i++) expect(all).toContain(`Page ${p} paragraph ${i}:`);
    expect(chunks[0]!.pages[0]).toBe(1);
    expect(chunks.at(-1)!.pages.at(-1)).toBe(6);
    expect(chunks[0]!.text.startsWith('--- page 1 ---')).toBe(true);
  });

  it('repeats the tail of a chunk at the start of the next (overlap)', () => {
    const chunks = chunkPages(pages, 120, count, 100);
    const lastParagraph = chunks[0]!.text.split('\n\n').at(-1)!;
    expect(chunks[1]!.text).toContain(lastParagraph.replace(/^--- page \d+ ---\n/, ''));
  });

  it('splits a paragraph longer than the budget by lines, then by characters', () => {
    const chunks = chunkPages(['y'.repeat(2000)], 100, count, 0);
    expect(chunks.length).toBeGreaterThanOrEqual(5);
    expect(chunks.map((c) => c.text.replace(/^--- page 1 ---\n/, '')).join('').replace(/\n/g, '')).toBe('y'.repeat(2000));
  });

  it('merges: first non-null scalar with conflicts as warnings, arrays concatenated and de-duplicated, pages per field', () => {
    const chunks = [{ text: 'a', pages: [1, 2] }, { text: 'b', pages: [2, 3] }, { text: 'c', pages: [4] }];
    const merged = mergeChunks([
      { invoice_number: null, amount: 10, lines: [{ d: 'a' }, { d: 'b' }] },
      { invoice_number: 'INV-7', amount: 10, lines: [{ d: 'b' }, { d: 'c' }] },
      { invoice_number: 'INV-8', amount: null, lines: [] },
    ], chunks);
    expect(merged.fields).toEqual({ invoice_number: 'INV-7', amount: 10, lines: [{ d: 'a' }, { d: 'b' }, { d: 'c' }] });
    expect(merged.pages).toEqual({ invoice_number: [2, 3], amount: [1, 2], lines: [1, 2, 3] });
    expect(merged.warnings).toHaveLength(1);
    expect(merged.warnings[0]).toMatch(/^CHUNK_CONFLICT: invoice_number is "INV-7" on page\(s\) 2,3 but "INV-8" on page\(s\) 4/);
  });
});
