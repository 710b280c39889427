import type { Normaliser } from '../config/index.js';

/**
 * Normalisation after validation, declared per field in the schema with `x-normalize`:
 *
 * - `amount`: "1.234,50", "1,234.50", "€ 12,00" → 1234.5 (a number)
 * - `date`: "31/12/2017", "18 april 2014", "2017-12-31" → "2017-12-31"
 * - `currency`: "€", "eur", "US$", "₹" → "EUR", "USD", "INR" (ISO 4217)
 * - `string`: trimmed, inner whitespace collapsed, cut to the field's maxLength
 *
 * A value that cannot be normalised stays as it was and becomes a NORMALIZE_FAILED warning.
 */
const MONTHS: Record<string, number> = {
  jan: 1, january: 1, janvier: 1, januari: 1, feb: 2, february: 2, fevrier: 2, février: 2, februari: 2, mar: 3, march: 3, mars: 3, maart: 3,
  apr: 4, april: 4, avril: 4, may: 5, mai: 5, mei: 5, jun: 6, june: 6, juin: 6, juni: 6, jul: 7, july: 7, juillet: 7, juli: 7,
  aug: 8, august: 8, août: 8, augustus: 8, sep: 9, sept: 9, september: 9, septembre: 9, oct: 10, october: 10, octobre: 10, oktober: 10,
  nov: 11, november: 11, novembre: 11, dec: 12, december: 12, décembre: 12,
};

const pad = (n: number) => String(n).padStart(2, '0');

/** ISO date from common written forms, or null. Day-first for numeric dates (European invoices). */
export function normaliseDate(value: string): string | null {
  const s = value.trim().toLowerCase();
  let m = /^(\d{4})-(\d{1,2})-(\d{1,2})/.exec(s);
  if (m) return `${m[1]}-${pad(+m[2]!)}-${pad(+m[3]!)}`;
  const numeric = dateCandidates(s);
  if (numeric.length) return numeric[0]!;
  m = /^(\d{1,2})(?:st|nd|rd|th)?\s+([a-zéû]+)\.?,?\s+(\d{4})$/.exec(s);
  if (m && MONTHS[m[2]!]) return `${m[3]}-${pad(MONTHS[m[2]!]!)}-${pad(+m[1]!)}`;
  m = /^([a-zéû]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})$/.exec(s);
  if (m && MONTHS[m[1]!]) return `${m[3]}-${pad(MONTHS[m[1]!]!)}-${pad(+m[2]!)}`;
  return null;
}

/**
 * The ISO dates a numeric date may mean: day-first (European) when valid, then month-first (US),
 * so "03/20/2023" is 2023-03-20 and "04/05/2023" is 2023-05-04 first, 2023-04-05 second.
 */
export function dateCandidates(value: string): string[] {
  const m = /^(\d{1,2})[./-](\d{1,2})[./-](\d{2,4})$/.exec(value.trim());
  if (!m) return [];
  const year = m[3]!.length === 2 ? 2000 + +m[3]! : +m[3]!;
  const [a, b] = [+m[1]!, +m[2]!];
  const out: string[] = [];
  if (b >= 1 && b <= 12 && a >= 1 && a <= 31) out.push(`${year}-${pad(b)}-${pad(a)}`);
  if (a >= 1 && a <= 12 && b >= 1 && b <= 31 && a !== b) out.push(`${year}-${pad(a)}-${pad(b)}`);
  return out;
}

/** A number from "1,234.50", "1.234,50", "€ 12,00", "12.5" or a number; null if none. */
export function normaliseNumber(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value !== 'string') return null;
  let s = value.replace(/[^\d,.-]/g, '');
  if (!/\d/.test(s)) return null;
  const lastComma = s.lastIndexOf(',');
  const lastDot = s.lastIndexOf('.');
  if (lastComma > lastDot) {
    // The comma is the decimal separator when 1-2 digits follow it (12,50); else a thousands one.
    s = /,\d{1,2}$/.test(s) ? s.replace(/\./g, '').replace(',', '.') : s.replace(/,/g, '');
  } else {
    s = s.replace(/,/g, '');
  }
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

const CURRENCIES: Record<string, string> = {
  '€': 'EUR', eur: 'EUR', euro: 'EUR', euros: 'EUR', '$': 'USD', 'us$': 'USD', usd: 'USD', dollar: 'USD', dollars: 'USD',
  '£': 'GBP', gbp: 'GBP', '₹': 'INR', inr: 'INR', rs: 'INR', 'rs.': 'INR', rupees: 'INR', '¥': 'JPY', jpy: 'JPY',
  chf: 'CHF', 'fr.': 'CHF', zł: 'PLN', zl: 'PLN', pln: 'PLN', kr: 'SEK', sek: 'SEK', dkk: 'DKK', nok: 'NOK',
  'c$': 'CAD', cad: 'CAD', 'a$': 'AUD', aud: 'AUD', cny: 'CNY', rmb: 'CNY', '元': 'CNY', czk: 'CZK', 'kč': 'CZK', huf: 'HUF', ft: 'HUF',
};

export function normaliseCurrency(value: string): string | null {
  const s = value.trim().toLowerCase();
  if (CURRENCIES[s]) return CURRENCIES[s]!;
  if (/^[a-z]{3}$/.test(s)) return s.toUpperCase();
  return null;
}

function apply(kind: Normaliser, value: unknown, maxLength: number | undefined): { ok: true; value: unknown } | { ok: false } {
  if (value === null || value === undefined) return { ok: true, value };
  if (kind === 'string') {
    if (typeof value !== 'string') return { ok: false };
    const s = value.replace(/\s+/g, ' ').trim();
    return { ok: true, value: maxLength !== undefined ? s.slice(0, maxLength) : s };
  }
  const out = kind === 'amount' ? normaliseNumber(value) : typeof value !== 'string' ? null : kind === 'date' ? normaliseDate(value) : normaliseCurrency(value);
  return out === null ? { ok: false } : { ok: true, value: out };
}

type SchemaNode = { properties?: Record<string, SchemaNode>; items?: SchemaNode; oneOf?: SchemaNode[]; maxLength?: number; 'x-normalize'?: Normaliser };

function maxLengthOf(node: SchemaNode): number | undefined {
  return node.maxLength ?? node.oneOf?.find((o) => o.maxLength !== undefined)?.maxLength;
}

/** Normalises `fields` in place following the schema's x-normalize annotations; returns warnings. */
export function normaliseFields(schema: SchemaNode, fields: Record<string, unknown>, at = ''): string[] {
  const warnings: string[] = [];
  for (const [key, node] of Object.entries(schema.properties ?? {})) {
    const where = at ? `${at}.${key}` : key;
    const value = fields[key];
    if (node['x-normalize']) {
      const result = apply(node['x-normalize'], value, maxLengthOf(node));
      if (result.ok) fields[key] = result.value;
      else warnings.push(`NORMALIZE_FAILED: ${where} ${JSON.stringify(value)} is not a recognisable ${node['x-normalize']}; kept as extracted`);
    }
    if (node.items && Array.isArray(value)) {
      value.forEach((item, i) => {
        if (item && typeof item === 'object') warnings.push(...normaliseFields(node.items!, item as Record<string, unknown>, `${where}.${i}`));
      });
    }
  }
  return warnings;
}
