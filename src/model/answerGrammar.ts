/**
 * The answer's shape, compiled once per schema from the supported JSON Schema subset
 * (config/prompts.ts checks it): the tree the walking decoder follows, and the whole-answer
 * grammar (GBNF) that constrains every sampled token.
 *
 * The answer is compact JSON (`{"a":1,"b":"x"}`, keys in schema order, no whitespace), the form
 * JSON.stringify writes. One fixed form makes the text between values unique, so the decoder can
 * append it without sampling, and makes "the tokenizer's own tokens for this answer" well defined.
 */
export type AnswerNode =
  | { kind: 'object'; properties: Array<[key: string, node: AnswerNode]> }
  | { kind: 'array'; items: AnswerNode; min: number; max: number }
  | { kind: 'string'; minLength: number; maxLength: number | undefined; format: string | undefined }
  | { kind: 'number'; integer: boolean }
  /** JSON texts admitted verbatim: enum and const members, null, true, false. */
  | { kind: 'literal'; texts: string[] }
  /** Several of the above (oneOf, a type array); the first character tells them apart. */
  | { kind: 'alt'; options: AnswerNode[] };

/**
 * Digits a number may have. 15 integer digits stay below 2^53 (every such integer is exact in a
 * double); 6 decimals cover prices per unit and quantities. Exponents are not admitted: no amount
 * on a document needs one, and a model that keeps writing digits must still reach a delimiter.
 */
export const MAX_INTEGER_DIGITS = 15;
export const MAX_FRACTION_DIGITS = 6;
/** An array without maxItems still ends: the grammar needs a bound and no document lists more. */
const MAX_ITEMS = 1000;

type Schema = Record<string, unknown>;

export function compileAnswer(schema: Schema): AnswerNode {
  if (Array.isArray(schema.oneOf)) return alt((schema.oneOf as Schema[]).map(compileAnswer));
  if ('const' in schema) return { kind: 'literal', texts: [JSON.stringify(schema.const)] };
  if (Array.isArray(schema.enum)) return { kind: 'literal', texts: schema.enum.map((v) => JSON.stringify(v)) };
  if (Array.isArray(schema.type)) return alt((schema.type as string[]).map((type) => compileAnswer({ ...schema, type })));
  switch (schema.type) {
    case 'object':
      return { kind: 'object', properties: Object.entries(schema.properties as Record<string, Schema>).map(([k, v]) => [k, compileAnswer(v)]) };
    case 'array':
      return {
        kind: 'array',
        items: compileAnswer(schema.items as Schema),
        min: typeof schema.minItems === 'number' ? schema.minItems : 0,
        max: typeof schema.maxItems === 'number' ? schema.maxItems : MAX_ITEMS,
      };
    case 'string':
      return {
        kind: 'string',
        minLength: typeof schema.minLength === 'number' ? schema.minLength : 0,
        maxLength: typeof schema.maxLength === 'number' ? schema.maxLength : undefined,
        format: typeof schema.format === 'string' ? schema.format : undefined,
      };
    case 'number':
    case 'integer':
      return { kind: 'number', integer: schema.type === 'integer' };
    case 'boolean':
      return { kind: 'literal', texts: ['true', 'false'] };
    case 'null':
      return { kind: 'literal', texts: ['null'] };
    default:
      throw new Error(`schema type ${JSON.stringify(schema.type)} has no grammar form`);
  }
}

function alt(options: AnswerNode[]): AnswerNode {
  const literals = options.flatMap((o) => (o.kind === 'literal' ? o.texts : []));
  const rest = options.filter((o) => o.kind !== 'literal');
  const all = literals.length ? [...rest, { kind: 'literal' as const, texts: [...new Set(literals)] }] : rest;
  return all.length === 1 ? all[0]! : { kind: 'alt', options: all };
}

/** The characters a value of this node can start with ("0" stands for any digit or "-"). */
export function firstChars(node: AnswerNode): Set<string> {
  switch (node.kind) {
    case 'object': return new Set(['{']);
    case 'array': return new Set(['[']);
    case 'string': return new Set(['"']);
    case 'number': return new Set(['0']);
    case 'literal': return new Set(node.texts.map((t) => (/^[-0-9]/.test(t) ? '0' : t[0]!)));
    case 'alt': return new Set(node.options.flatMap((o) => [...firstChars(o)]));
  }
}

/** GBNF for the whole answer, in the compact form above. */
export function answerGbnf(root: AnswerNode): string {
  const rules = new Map<string, string>();
  const rule = (name: string, body: string): string => {
    rules.set(name, body);
    return name;
  };
  const names = new Map<AnswerNode, string>();
  const ref = (node: AnswerNode): string => {
    let name = names.get(node);
    if (!name) {
      name = `v${names.size}`;
      names.set(node, name);
      rule(name, body(node));
    }
    return name;
  };
  const body = (node: AnswerNode): string => {
    switch (node.kind) {
      case 'object':
        return `"{" ${node.properties.map(([k, v], i) => `${lit(`${i ? ',' : ''}${JSON.stringify(k)}:`)} ${ref(v)}`).join(' ')} "}"`;
      case 'array': {
        const item = ref(node.items);
        if (node.max === 0) return '"[]"';
        const more = node.max > 1 ? ` ("," ${item}){${Math.max(node.min - 1, 0)},${node.max - 1}}` : '';
        return node.min > 0 ? `"[" ${item}${more} "]"` : `"[" (${item}${more})? "]"`;
      }
      case 'string':
        if (node.format) {
          const format = FORMATS[node.format];
          if (!format) throw new Error(`string format ${node.format} has no grammar form`);
          return rule(`fmt-${node.format}`, format);
        }
        rule('char', CHAR);
        return `"\\"" char{${node.minLength},${node.maxLength ?? ''}} "\\""`;
      case 'number':
        return `"-"? ("0" | [1-9] [0-9]{0,${MAX_INTEGER_DIGITS - 1}})${node.integer ? '' : ` ("." [0-9]{1,${MAX_FRACTION_DIGITS}})?`}`;
      case 'literal':
        return node.texts.map(lit).join(' | ');
      case 'alt':
        return node.options.map(ref).join(' | ');
    }
  };
  const top = ref(root);
  return [`root ::= ${top}`, ...[...rules].map(([name, b]) => `${name} ::= ${b}`)].join('\n');
}

/** A GBNF string literal: JSON's escapes are GBNF's. */
function lit(text: string): string {
  return JSON.stringify(text);
}

/** A character inside a JSON string: anything but a quote, backslash or control character, or an escape. */
const CHAR = '[^"\\\\\\x00-\\x1F\\x7F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})';
const DATE = '[0-9]{4} "-" ("0" [1-9] | "1" [0-2]) "-" ("0" [1-9] | [12] [0-9] | "3" [01])';
const TIME = '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? ("Z" | [+-] [0-9]{2} ":" [0-9]{2})?';
const FORMATS: Record<string, string> = {
  date: `"\\"" ${DATE} "\\""`,
  time: `"\\"" ${TIME} "\\""`,
  'date-time': `"\\"" ${DATE} "T" ${TIME} "\\""`,
};
