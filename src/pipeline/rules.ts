import type { Rule } from '../config/index.js';

/** Checks a result's fields against its document type's rules (see src/config/rules.ts). */
export interface CheckResult {
  rule: string;
  status: 'passed' | 'failed' | 'skipped';
  message: string;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' && v.trim() !== '' ? v.trim() : null);

/** ISO 13616: move the first four characters to the end, letters to numbers, mod 97 must be 1. */
export function ibanValid(iban: string): boolean {
  const s = iban.replace(/\s+/g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{10,30}$/.test(s)) return false;
  const digits = (s.slice(4) + s.slice(0, 4)).replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  let rest = 0;
  for (const d of digits) rest = (rest * 10 + Number(d)) % 97;
  return rest === 1;
}

const VAT_FORMATS: Record<string, RegExp> = {
  AT: /^ATU\d{8}$/, BE: /^BE[01]\d{9}$/, BG: /^BG\d{9,10}$/, CY: /^CY\d{8}[A-Z]$/, CZ: /^CZ\d{8,10}$/, DE: /^DE\d{9}$/,
  DK: /^DK\d{8}$/, EE: /^EE\d{9}$/, EL: /^EL\d{9}$/, ES: /^ES[A-Z0-9]\d{7}[A-Z0-9]$/, FI: /^FI\d{8}$/, FR: /^FR[A-HJ-NP-Z0-9]{2}\d{9}$/,
  HR: /^HR\d{11}$/, HU: /^HU\d{8}$/, IE: /^IE\d[A-Z0-9+*]\d{5}[A-Z]{1,2}$/, IT: /^IT\d{11}$/, LT: /^LT(\d{9}|\d{12})$/, LU: /^LU\d{8}$/,
  LV: /^LV\d{11}$/, MT: /^MT\d{8}$/, NL: /^NL\d{9}B\d{2}$/, PL: /^PL\d{10}$/, PT: /^PT\d{9}$/, RO: /^RO\d{2,10}$/, SE: /^SE\d{12}$/,
  SI: /^SI\d{8}$/, SK: /^SK\d{10}$/, GB: /^GB(\d{9}|\d{12}|GD\d{3}|HA\d{3})$/, CH: /^CHE\d{9}(MWST|TVA|IVA)?$/, NO: /^NO\d{9}(MVA)?$/,
};

export function vatIdValid(vat: string): boolean | null {
  const s = vat.replace(/[\s.-]/g, '').toUpperCase();
  const format = VAT_FORMATS[s.slice(0, 2)];
  return format ? format.test(s) : null; // null: a country whose format docsift does not know
}

export function checkRules(rules: readonly Rule[], fields: Record<string, unknown>): CheckResult[] {
  return rules.map((rule): CheckResult => {
    switch (rule.rule) {
      case 'items_sum': {
        const items = fields[rule.items];
        const values = Array.isArray(items) ? items.map((i) => num((i as Record<string, unknown>)?.[rule.itemField])) : [];
        return sumCheck(rule.rule, values, num(fields[rule.equals]), rule.tolerance, `sum of ${rule.items}[].${rule.itemField}`, rule.equals, `${rule.items}[].${rule.itemField} or ${rule.equals} missing`);
      }
      case 'fields_sum':
        return sumCheck(rule.rule, rule.fields.map((f) => num(fields[f])), num(fields[rule.equals]), rule.tolerance, rule.fields.join(' + '), rule.equals, `${[...rule.fields, rule.equals].join(', ')} not all present`);
      case 'date_order': {
        const [a, b] = [str(fields[rule.first]), str(fields[rule.then])];
        if (!a || !b) return { rule: 'date_order', status: 'skipped', message: `${rule.first} or ${rule.then} missing` };
        return { rule: 'date_order', status: a <= b ? 'passed' : 'failed', message: `${rule.first} ${a}, ${rule.then} ${b}` };
      }
      case 'iban': {
        const v = str(fields[rule.field]);
        if (!v) return { rule: 'iban', status: 'skipped', message: `${rule.field} missing` };
        return { rule: 'iban', status: ibanValid(v) ? 'passed' : 'failed', message: `${rule.field} ${v}: ${ibanValid(v) ? 'valid checksum' : 'invalid IBAN or checksum'}` };
      }
      case 'vat_id': {
        const v = str(fields[rule.field]);
        if (!v) return { rule: 'vat_id', status: 'skipped', message: `${rule.field} missing` };
        const ok = vatIdValid(v);
        if (ok === null) return { rule: 'vat_id', status: 'skipped', message: `${rule.field} ${v}: no known format for this country prefix` };
        return { rule: 'vat_id', status: ok ? 'passed' : 'failed', message: `${rule.field} ${v}: ${ok ? 'matches' : 'does not match'} the ${v.slice(0, 2).toUpperCase()} format` };
      }
    }
  });
}

/** Parts that add up to a total within the tolerance; skipped when any is missing. */
function sumCheck(rule: string, parts: Array<number | null>, total: number | null, tolerance: number, what: string, equals: string, missing: string): CheckResult {
  if (total === null || parts.length === 0 || parts.some((p) => p === null)) return { rule, status: 'skipped', message: missing };
  const sum = parts.reduce((a: number, b) => a + b!, 0);
  return { rule, status: Math.abs(sum - total) <= tolerance ? 'passed' : 'failed', message: `${what} = ${round(sum)}, ${equals} = ${total}` };
}

const round = (n: number) => Math.round(n * 100) / 100;
