import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, RulesFile } from '../../../src/config/index.js';
import { checkRules, ibanValid, normaliseCurrency, normaliseFields, vatIdValid } from '../../../src/pipeline/index.js';
import { CORPUS, REPO } from '../../helpers/testEnv.js';

const azure = (JSON.parse(fs.readFileSync(path.join(CORPUS, 'AzureInterior.json'), 'utf8')) as Record<string, unknown>[])[0]!;

describe('business rules on real corpus values', () => {
  it('AzureInterior: lines sum to the subtotal, subtotal plus tax is the total, due date after issue date', () => {
    const rules = RulesFile.parse([
      { rule: 'items_sum', items: 'lines', itemField: 'price_subtotal', equals: 'amount_untaxed' },
      { rule: 'fields_sum', fields: ['amount_untaxed', 'amount_tax'], equals: 'amount' },
      { rule: 'date_order', first: 'date', then: 'date_due' },
      { rule: 'iban', field: 'iban' },
    ]);
    const lines = (azure.lines as Record<string, unknown>[]).filter((l) => 'price_subtotal' in l);
    const checks = checkRules(rules, { ...azure, lines });
    expect(checks.map((c) => c.status)).toEqual(['passed', 'passed', 'passed', 'failed']); // "US1234567890" is no IBAN
    expect(checks[1]!.message).toBe('amount_untaxed + amount_tax = 279.84, amount = 279.84');
  });

  it('fails what does not add up, and skips what is missing', () => {
    const rules = RulesFile.parse([
      { rule: 'fields_sum', fields: ['amount_untaxed', 'amount_tax'], equals: 'amount' },
      { rule: 'date_order', first: 'date', then: 'due_date' },
      { rule: 'items_sum', items: 'lines', itemField: 'amount', equals: 'amount_untaxed' },
    ]);
    const checks = checkRules(rules, { amount_untaxed: 100, amount_tax: 21, amount: 120, date: '2024-05-02', due_date: '2024-04-30', lines: [] });
    expect(checks.map((c) => c.status)).toEqual(['failed', 'failed', 'skipped']);
  });

  it('IBAN checksums and VAT id formats', () => {
    expect(ibanValid('DE89 3704 0044 0532 0130 00')).toBe(true);
    expect(ibanValid('GB82WEST12345698765432')).toBe(true);
    expect(ibanValid('GB82WEST12345698765433')).toBe(false);
    expect(ibanValid('US1234567890')).toBe(false);
    expect(vatIdValid('DE123456789')).toBe(true);
    expect(vatIdValid('NL 8531.06.476.B01')).toBe(true);
    expect(vatIdValid('FR12345')).toBe(false);
    expect(vatIdValid('06AABCO6063D1ZQ')).toBeNull(); // an Indian GSTIN: no EU format to check
  });

  it('the shipped rules name only fields of their schemas', () => {
    const config = loadConfig({ DOCSIFT_HOME: REPO });
    expect(config.prompts.types.get('invoice')!.rules.map((r) => r.rule)).toEqual(['items_sum', 'fields_sum', 'date_order', 'iban', 'vat_id']);
  });
});

describe('normalisation declared with x-normalize', () => {
  const schema = {
    properties: {
      total: { 'x-normalize': 'amount' as const },
      issued: { 'x-normalize': 'date' as const },
      currency: { 'x-normalize': 'currency' as const },
      issuer: { 'x-normalize': 'string' as const, oneOf: [{ maxLength: 10 }, {}] },
      lines: { items: { properties: { amount: { 'x-normalize': 'amount' as const } } } },
    },
  };

  it('amounts, dates, currencies and strings from values in the corpus', () => {
    const fields: Record<string, unknown> = { total: '1.939,00', issued: '18 april 2014', currency: '₹', issuer: '  Azure   Interior Ltd  ', lines: [{ amount: '€ 42,00' }] };
    expect(normaliseFields(schema, fields)).toEqual([]);
    expect(fields).toEqual({ total: 1939, issued: '2014-04-18', currency: 'INR', issuer: 'Azure Inte', lines: [{ amount: 42 }] });
    expect(normaliseCurrency('€')).toBe('EUR');
    expect(normaliseCurrency('usd')).toBe('USD');
  });

  it('a value that cannot be normalised stays and becomes a warning', () => {
    const fields: Record<string, unknown> = { total: 'about ten', issued: 'next Tuesday', currency: 'shells', issuer: null };
    const warnings = normaliseFields(schema, fields);
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/^NORMALIZE_FAILED: total "about ten"/);
    expect(fields.total).toBe('about ten');
  });
});
