/**
 * Long documents: split on page and paragraph boundaries into chunks that each fit the model's
 * context, with some overlap so a field cut by a boundary is seen whole in one chunk; extract per
 * chunk; merge the results deterministically in code.
 */

export interface Chunk {
  text: string;
  /** 1-based pages this chunk holds text from. */
  pages: number[];
}

interface Piece { text: string; page: number }

/** Paragraphs, then lines, then fixed slices: the largest pieces that fit `budget`. */
function split(text: string, page: number, budget: number, count: (s: string) => number): Piece[] {
  if (count(text) <= budget) return [{ text, page }];
  for (const sep of ['\n\n', '\n']) {
    const parts = text.split(sep).filter((p) => p.trim() !== '');
    if (parts.length > 1) return parts.flatMap((p) => split(p, page, budget, count));
  }
  const pieces: Piece[] = [];
  const size = Math.max(1, Math.floor(text.length * (budget / count(text)) * 0.9));
  for (let i = 0; i < text.length; i += size) pieces.push({ text: text.slice(i, i + size), page });
  return pieces;
}

/**
 * Greedy packing of pieces into chunks of at most `budget` tokens. Each chunk after the first
 * starts with the last pieces of the previous one, up to `overlapChars` characters.
 */
export function chunkPages(pages: readonly string[], budget: number, count: (s: string) => number, overlapChars: number): Chunk[] {
  // Paragraphs are the unit of packing (and of overlap); only an oversized one is split further.
  const pieces = pages.flatMap((p, i) => p.split(/\n\s*\n/).flatMap((para) => split(para.trim(), i + 1, budget, count))).filter((p) => p.text !== '');
  const chunks: Chunk[] = [];
  let current: Piece[] = [];
  let tokens = 0;
  const flush = () => {
    if (current.length === 0) return;
    chunks.push({ text: render(current), pages: [...new Set(current.map((p) => p.page))] });
    // Carry the tail into the next chunk as overlap, as long as it leaves room for new text.
    const tail: Piece[] = [];
    let chars = 0;
    for (let i = current.length - 1; i > 0 && chars + current[i]!.text.length <= overlapChars; i--) {
      tail.unshift(current[i]!);
      chars += current[i]!.text.length;
    }
    current = tail;
    tokens = tail.reduce((n, p) => n + count(p.text) + 1, 0);
    if (tokens > budget / 2) { current = []; tokens = 0; }
  };
  for (const piece of pieces) {
    const t = count(piece.text) + 1;
    if (tokens + t > budget && current.length > 0) flush();
    current.push(piece);
    tokens += t;
  }
  if (current.length > 0) chunks.push({ text: render(current), pages: [...new Set(current.map((p) => p.page))] });
  return chunks;
}

function render(pieces: Piece[]): string {
  let out = '';
  let page = 0;
  for (const p of pieces) {
    if (p.page !== page) {
      out += `${out ? '\n\n' : ''}--- page ${p.page} ---\n`;
      page = p.page;
    } else {
      out += '\n\n';
    }
    out += p.text;
  }
  return out;
}

/**
 * Merges per-chunk extractions in chunk order. Scalars: the first non-null value wins; a
 * different non-null value in a later chunk becomes a warning. Arrays (line items, parties):
 * concatenated, exact duplicates (from the overlap) dropped. `pages` says, per field, which pages
 * the chunks that gave its value cover.
 */
export function mergeChunks(results: ReadonlyArray<Record<string, unknown>>, chunks: readonly Chunk[]): {
  fields: Record<string, unknown>;
  pages: Record<string, number[]>;
  warnings: string[];
} {
  const fields: Record<string, unknown> = {};
  const pages: Record<string, number[]> = {};
  const warnings: string[] = [];
  const keys = results.length ? Object.keys(results[0]!) : [];
  for (const key of keys) {
    const values = results.map((r) => r[key]);
    if (values.some((v) => Array.isArray(v))) {
      const seen = new Set<string>();
      const merged: unknown[] = [];
      const from = new Set<number>();
      values.forEach((v, i) => {
        for (const item of Array.isArray(v) ? v : []) {
          const id = JSON.stringify(item);
          if (seen.has(id)) continue;
          seen.add(id);
          merged.push(item);
          chunks[i]!.pages.forEach((p) => from.add(p));
        }
      });
      fields[key] = merged;
      pages[key] = [...from].sort((a, b) => a - b);
      continue;
    }
    const first = values.findIndex((v) => v !== null && v !== undefined);
    fields[key] = first >= 0 ? values[first] : null;
    pages[key] = first >= 0 ? [...chunks[first]!.pages] : [];
    if (first >= 0) {
      values.forEach((v, i) => {
        if (i > first && v !== null && v !== undefined && JSON.stringify(v) !== JSON.stringify(values[first])) {
          warnings.push(`CHUNK_CONFLICT: ${key} is ${JSON.stringify(values[first])} on page(s) ${chunks[first]!.pages.join(',')} but ${JSON.stringify(v)} on page(s) ${chunks[i]!.pages.join(',')}; kept the first`);
        }
      });
    }
  }
  return { fields, pages, warnings };
}
