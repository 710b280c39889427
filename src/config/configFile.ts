import fs from 'node:fs';
import type { z } from 'zod';
import { ConfigError } from '../infra/errors.js';

/** A value parsed with its schema; the first problem throws a ConfigError naming the file and the dotted key. */
export function parseWith<S extends z.ZodType>(file: string, schema: S, value: unknown): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new ConfigError(file, issue?.path.length ? issue.path.map(String).join('.') : '(root)', issue?.message ?? 'invalid');
}

/** A configuration file's text; an unreadable one throws a ConfigError naming it. */
export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, '(file)', `cannot be read: ${(err as Error).message}`);
  }
}

/** A JSON configuration file parsed with its schema (or, without one, as it is). */
export function readJson(file: string): unknown;
export function readJson<S extends z.ZodType>(file: string, schema: S): z.infer<S>;
export function readJson(file: string, schema?: z.ZodType): unknown {
  const text = readText(file);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(file, '(file)', `is not valid JSON: ${(err as Error).message}`);
  }
  return schema ? parseWith(file, schema, raw) : raw;
}
