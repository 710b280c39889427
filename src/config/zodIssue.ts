import fs from 'node:fs';
import type { z } from 'zod';
import { ConfigError } from '../infra/errors.js';

/** The first problem of a failed parse as "dotted.key" + message, for errors that name the key. */
export function firstIssue(error: z.ZodError): { key: string; message: string } {
  const issue = error.issues[0];
  if (!issue) return { key: '(root)', message: 'invalid' };
  const key = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
  return { key, message: issue.message };
}

/** A JSON configuration file parsed with its schema; a problem throws a ConfigError naming the file and the key. */
export function parseJsonFile<S extends z.ZodType>(file: string, schema: S): z.infer<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(file, '(file)', `is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const { key, message } = firstIssue(parsed.error);
    throw new ConfigError(file, key, message);
  }
  return parsed.data;
}
