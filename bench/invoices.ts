import { mulberry32 } from '../src/model/gguf/makeLlamaModel.js';

/**
 * Synthetic invoice text for the bench: realistic layout and length (a one-page invoice is
 * 1,500-3,000 characters), different for every index so no two documents share a cache.
 */
const ITEMS = ['Consulting services', 'Annual software licence', 'Printer toner, black', 'Office chairs', 'Travel expenses',
  'Cloud hosting, monthly', 'Maintenance contract', 'Training workshop', 'Shipping and handling', 'Laptop stand', 'Paper A4, 5 boxes'];
const COMPANIES = ['ACME GmbH', 'Nordwind Logistik AG', 'Blue River Consulting Ltd', 'Ferreira & Filhos Lda', 'Studio Kowalski sp. z o.o.', 'Haddad Trading LLC'];

export function invoiceText(i: number, scale = 1): string {
  const r = mulberry32(i + 1);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const lines = Math.max(1, Math.round((3 + Math.floor(r() * 10)) * scale));
  const items = Array.from({ length: lines }, (_, n) => {
    const qty = 1 + Math.floor(r() * 9);
    const price = Math.round(r() * 90000) / 100;
    return { text: `${String(n + 1).padStart(2)}  ${pick(ITEMS).padEnd(28)} ${String(qty).padStart(3)} x ${price.toFixed(2).padStart(9)}  ${(qty * price).toFixed(2).padStart(10)}`, amount: qty * price };
  });
  const net = items.reduce((a, b) => a + b.amount, 0);
  const tax = Math.round(net * 19) / 100;
  const day = 1 + (i % 28);
  const issuer = pick(COMPANIES);
  const body = [
    issuer, `Hauptstrasse ${10 + (i % 90)}, 10115 Berlin, Germany`, `VAT ID DE${String(100000000 + i * 7919).slice(0, 9)}`, '',
    `INVOICE INV-2026-${String(i).padStart(5, '0')}`, `Date: 2026-03-${String(day).padStart(2, '0')}    Due: 2026-04-${String(day).padStart(2, '0')}`, '',
    'Bill to:', pick(COMPANIES.filter((c) => c !== issuer)), `Order reference PO-${4000 + i}`, '',
    'Pos Description                   Qty   Unit price       Amount',
    ...items.map((x) => x.text), '',
    `Subtotal ${net.toFixed(2).padStart(40)} EUR`, `VAT 19% ${tax.toFixed(2).padStart(41)} EUR`, `Total ${(net + tax).toFixed(2).padStart(43)} EUR`, '',
    'Payment within 30 days to IBAN DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX.',
    ...(scale >= 1 ? ['Please quote the invoice number with your payment. Goods remain our property until paid in full.',
      'Thank you for your business. Questions about this invoice: accounts@example.com, +49 30 1234567.'] : []),
  ];
  return body.join('\n');
}

/**
 * The true fields of an invoiceText, in prompts/invoice/schema.json's key order, read back from
 * the text (the bench renames some documents, so the text is the source). The bench teacher-forces
 * a random-weight model toward them (--tokenizer): answers then have a real answer's values and
 * length, written in the real tokenizer's tokens.
 */
export function invoiceAnswer(text: string): Record<string, unknown> | undefined {
  const lines = text.split('\n');
  const find = (re: RegExp) => text.match(re)?.[1] ?? null;
  const number = find(/^INVOICE (\S+)$/m);
  if (number === null) return undefined;
  const at = lines.findIndex((l) => l.startsWith('INVOICE '));
  const amount = (label: string) => {
    const v = find(new RegExp(`^${label}\\s+([\\d.]+) EUR$`, 'm'));
    return v === null ? null : Number(v);
  };
  const items = lines.flatMap((l) => {
    const m = l.match(/^\s*\d+\s{2}(.+?)\s+(\d+) x\s+([\d.]+)\s+([\d.]+)$/);
    return m ? [{ description: m[1]!, quantity: Number(m[2]), unit_price: Number(m[3]), amount: Number(m[4]) }] : [];
  });
  return {
    invoice_number: number,
    issuer: lines[at - 4] ?? null, // issuer, address, VAT ID, blank line, INVOICE
    buyer: lines[lines.indexOf('Bill to:') + 1] ?? null,
    date: find(/^Date: (\S+)/m),
    due_date: find(/Due: (\S+)$/m),
    currency: 'EUR',
    amount_untaxed: amount('Subtotal'),
    amount_tax: amount('VAT 19%'),
    amount: amount('Total'),
    vat_id: find(/^VAT ID (\S+)$/m),
    iban: find(/IBAN ([A-Z]{2}[\d ]+?), BIC/),
    lines: items,
  };
}
