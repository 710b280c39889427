import { z } from 'zod';

/**
 * Business rules per document type, in prompts/<type>/rules.json, checked on every result. A
 * rule whose inputs are missing is skipped (not failed): a receipt without line items has nothing
 * to sum. Failures are listed in the result's `checks`; they never change the fields.
 */
export const Rule = z.discriminatedUnion('rule', [
  /** Sum of one field over array items equals a field (line items sum to the subtotal). */
  z.object({ rule: z.literal('items_sum'), items: z.string(), itemField: z.string(), equals: z.string(), tolerance: z.number().min(0).default(0.01) }).strict(),
  /** Sum of fields equals a field (subtotal + tax = total). */
  z.object({ rule: z.literal('fields_sum'), fields: z.array(z.string()).min(2), equals: z.string(), tolerance: z.number().min(0).default(0.01) }).strict(),
  /** One date is not before another (due date not before issue date). */
  z.object({ rule: z.literal('date_order'), first: z.string(), then: z.string() }).strict(),
  /** An IBAN with a valid ISO 13616 checksum. */
  z.object({ rule: z.literal('iban'), field: z.string() }).strict(),
  /** A VAT identification number in the format of its country prefix (EU formats, GB, CH, NO). */
  z.object({ rule: z.literal('vat_id'), field: z.string() }).strict(),
]);
export type Rule = z.infer<typeof Rule>;
export const RulesFile = z.array(Rule);

/** The top-level fields a rule reads: what a failed rule puts in doubt. */
export function ruleFields(rule: Rule): string[] {
  switch (rule.rule) {
    case 'items_sum': return [rule.items, rule.equals];
    case 'fields_sum': return [...rule.fields, rule.equals];
    case 'date_order': return [rule.first, rule.then];
    case 'iban': case 'vat_id': return [rule.field];
  }
}


/** Normalisers a schema field may name with x-normalize (src/pipeline/normalise.ts applies them). */
export const NORMALISERS = ['amount', 'date', 'currency', 'string'] as const;
export type Normaliser = (typeof NORMALISERS)[number];
