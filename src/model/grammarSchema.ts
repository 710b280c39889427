import { z } from 'zod';

/**
 * A prompt's schema.json is the single source for the grammar that constrains generation and
 * for the validator that checks the parsed output again. docsift's own x-* annotations and the
 * informational $schema/title keys are dropped for both.
 */
export function toGrammarSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toGrammarSchema);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-') || key === '$schema' || key === 'title') continue;
    // Property names are data, not keywords: keep them all, clean what is below them.
    out[key] = key === 'properties'
      ? Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, toGrammarSchema(v)]))
      : toGrammarSchema(value);
  }
  return out;
}

export type Validator = (value: unknown) => { ok: true; value: Record<string, unknown> } | { ok: false; error: string };

/** zod's validator for the schema, with errors phrased for a re-ask ("lines.0.amount: expected number"). */
export function makeValidator(schema: Record<string, unknown>): Validator {
  const zodSchema = z.fromJSONSchema(toGrammarSchema(schema) as Parameters<typeof z.fromJSONSchema>[0]);
  return (value) => {
    const parsed = zodSchema.safeParse(value);
    if (parsed.success) return { ok: true, value: parsed.data as Record<string, unknown> };
    const error = parsed.error.issues.slice(0, 5)
      .map((i) => `${i.path.length ? i.path.map(String).join('.') : '(root)'}: ${i.message}`).join('; ');
    return { ok: false, error };
  };
}
