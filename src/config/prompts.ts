import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../infra/errors.js';
import { NORMALISERS, RulesFile, type Rule } from './rules.js';
import { parseWith, readJson, readText } from './configFile.js';

/** A document type: instructions for the model and the JSON Schema of the fields it extracts. */
export interface DocTypePrompt {
  readonly name: string;
  readonly version: string;
  readonly description: string;
  readonly instructions: string;
  /** The schema as written in schema.json (x-* annotations included). */
  readonly schema: Readonly<Record<string, unknown>>;
  /** Business rules from rules.json (none when the file is absent). */
  readonly rules: readonly Rule[];
  readonly files: { readonly prompt: string; readonly schema: string };
}

export interface ClassifyPrompt {
  readonly version: string;
  readonly labels: readonly string[];
  readonly instructions: string;
  readonly file: string;
}

export interface Prompts {
  readonly classify: ClassifyPrompt;
  readonly types: ReadonlyMap<string, DocTypePrompt>;
}

const NAME = /^[a-z][a-z0-9_]*$/;

const DocTypeFrontMatter = z.object({
  version: z.string().min(1),
  description: z.string().min(1),
}).strict();

const ClassifyFrontMatter = z.object({
  version: z.string().min(1),
  labels: z.string().transform((s) => s.split(',').map((l) => l.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(NAME, 'labels are lowercase names: a-z, 0-9, _')).min(2)),
}).strict();

/**
 * prompt.md files start with a front matter block of `key: value` lines between `---` fences,
 * then the instructions. A full YAML parser would be a dependency for two keys.
 */
export function parseFrontMatter(file: string, source: string): { meta: Record<string, string>; body: string } {
  const match = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?([\s\S]*)$/.exec(source);
  if (!match) throw new ConfigError(file, '(front matter)', 'must start with a --- block holding version and description');
  const meta: Record<string, string> = {};
  for (const [i, line] of match[1]!.split(/\r?\n/).entries()) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const kv = /^([A-Za-z_][\w-]*):\s*(.*)$/.exec(line);
    if (!kv) throw new ConfigError(file, `(front matter line ${i + 2})`, `expected "key: value", got ${JSON.stringify(line)}`);
    meta[kv[1]!] = kv[2]!.trim();
  }
  return { meta, body: match[2]!.trim() };
}

/**
 * The JSON Schema keywords node-llama-cpp turns into a grammar (see ../shared/SPIKES.md). Anything
 * else would be silently ignored by the grammar while the validator enforces it, so the model
 * could never satisfy the schema: refuse it when the prompt loads. `anyOf` generates but breaks
 * parsing; `pattern` has no grammar form. Keys starting with x- are docsift annotations.
 */
const SCHEMA_KEYWORDS = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'minItems', 'maxItems',
  'enum', 'const', 'oneOf', 'description', 'title', 'minLength', 'maxLength', 'format', '$schema',
]);
const STRING_FORMATS = new Set(['date', 'date-time', 'time']);

export function checkSchemaSubset(file: string, schema: unknown, at = ''): void {
  const here = at === '' ? '(root)' : at;
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new ConfigError(file, here, 'a schema must be a JSON object');
  }
  const node = schema as Record<string, unknown>;
  for (const [key, value] of Object.entries(node)) {
    const keyPath = at === '' ? key : `${at}.${key}`;
    if (key.startsWith('x-') && key !== 'x-normalize') continue;
    if (!SCHEMA_KEYWORDS.has(key) && key !== 'x-normalize') {
      throw new ConfigError(file, keyPath, `JSON Schema keyword "${key}" is not supported by the model grammar (supported: ${[...SCHEMA_KEYWORDS].join(', ')})`);
    }
    if (key === 'format' && !STRING_FORMATS.has(String(value))) {
      throw new ConfigError(file, keyPath, `format must be one of ${[...STRING_FORMATS].join(', ')}`);
    }
    if (key === 'x-normalize' && !NORMALISERS.includes(value as never)) {
      throw new ConfigError(file, keyPath, `x-normalize must be one of ${NORMALISERS.join(', ')}`);
    }
    if (key === 'additionalProperties' && value !== false) {
      throw new ConfigError(file, keyPath, 'must be false: extracted records have a fixed set of fields');
    }
  }
  if (node.type === 'object') {
    const props = node.properties;
    if (typeof props !== 'object' || props === null || Object.keys(props).length === 0) {
      throw new ConfigError(file, at === '' ? 'properties' : `${at}.properties`, 'an object needs at least one property');
    }
    for (const [name, sub] of Object.entries(props)) checkSchemaSubset(file, sub, at === '' ? `properties.${name}` : `${at}.properties.${name}`);
  }
  if (node.items !== undefined) checkSchemaSubset(file, node.items, at === '' ? 'items' : `${at}.items`);
  if (node.oneOf !== undefined) {
    if (!Array.isArray(node.oneOf)) throw new ConfigError(file, `${here}.oneOf`, 'must be an array');
    node.oneOf.forEach((sub, i) => checkSchemaSubset(file, sub, at === '' ? `oneOf.${i}` : `${at}.oneOf.${i}`));
  }
}

function loadDocType(dir: string, name: string): DocTypePrompt {
  const promptFile = path.join(dir, 'prompt.md');
  const schemaFile = path.join(dir, 'schema.json');
  const { meta, body } = parseFrontMatter(promptFile, readText(promptFile));
  const front = parseWith(promptFile, DocTypeFrontMatter, meta);
  if (body === '') throw new ConfigError(promptFile, '(instructions)', 'the instructions after the front matter are empty');
  const schema = readJson(schemaFile);
  checkSchemaSubset(schemaFile, schema);
  if ((schema as Record<string, unknown>).type !== 'object') {
    throw new ConfigError(schemaFile, 'type', 'the top level of a document schema must be "object"');
  }
  const rulesFile = path.join(dir, 'rules.json');
  let rules: Rule[] = [];
  if (fs.existsSync(rulesFile)) {
    const parsed = readJson(rulesFile, RulesFile);
    const props = Object.keys((schema as { properties: Record<string, unknown> }).properties);
    parsed.forEach((rule, i) => {
      for (const [k, v] of Object.entries(rule)) {
        const names = k === 'fields' ? (v as string[]) : ['items', 'equals', 'first', 'then', 'field'].includes(k) ? [v as string] : [];
        for (const n of names) if (!props.includes(n)) throw new ConfigError(rulesFile, `${i}.${k}`, `"${n}" is not a field of prompts/${name}/schema.json`);
      }
    });
    rules = parsed;
  }
  return {
    name,
    rules,
    version: front.version,
    description: front.description,
    instructions: body,
    schema: schema as Record<string, unknown>,
    files: { prompt: promptFile, schema: schemaFile },
  };
}

/** Reads prompts/: every folder is a document type, except classify/ which holds the labels. */
export function loadPrompts(promptsDir: string): Prompts {
  if (!fs.existsSync(promptsDir)) throw new ConfigError(promptsDir, '(folder)', 'does not exist');
  const types = new Map<string, DocTypePrompt>();
  for (const entry of fs.readdirSync(promptsDir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isDirectory() || entry.name === 'classify') continue;
    if (!NAME.test(entry.name)) throw new ConfigError(path.join(promptsDir, entry.name), '(folder name)', 'document type names are lowercase: a-z, 0-9, _');
    types.set(entry.name, loadDocType(path.join(promptsDir, entry.name), entry.name));
  }
  const classifyFile = path.join(promptsDir, 'classify', 'prompt.md');
  const { meta, body } = parseFrontMatter(classifyFile, readText(classifyFile));
  const front = parseWith(classifyFile, ClassifyFrontMatter, meta);
  if (!front.labels.includes('other')) throw new ConfigError(classifyFile, 'labels', 'must include "other" for documents of no known type');
  for (const label of front.labels) {
    if (label !== 'other' && !types.has(label)) {
      throw new ConfigError(classifyFile, 'labels', `"${label}" has no folder prompts/${label}/ with prompt.md and schema.json`);
    }
  }
  return { classify: { version: front.version, labels: front.labels, instructions: body, file: classifyFile }, types };
}
