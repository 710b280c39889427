import fs from 'node:fs';
import path from 'node:path';

/**
 * A real byte-level BPE tokenizer (Qwen, Llama 3, SmolLM2...) as a GGUF carries it, read from a
 * Hugging Face `tokenizer.json` + `tokenizer_config.json` pair. With it, makeLlamaModel writes a
 * random-weight model that tokenizes, templates and detokenizes exactly as the real model does.
 */
export interface BpeVocabulary {
  /** llama.cpp's pre-tokenizer name (`tokenizer.ggml.pre`): qwen2, llama-bpe, smollm... */
  pre: string;
  /** Token pieces by id, in the byte-level alphabet (Ġ for a space). */
  tokens: string[];
  /** 1 normal, 3 control (special added tokens), 4 user-defined (other added tokens). */
  types: number[];
  /** "a b" pairs, highest priority first. */
  merges: string[];
  bos: number;
  eos: number;
  addBos: boolean;
  chatTemplate?: string | undefined;
}

interface TokenizerJson {
  model: { type: string; vocab: Record<string, number>; merges: Array<string | [string, string]> };
  added_tokens: Array<{ id: number; content: string; special: boolean }>;
}

interface TokenizerConfig {
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  add_bos_token?: boolean;
  chat_template?: string;
}

/** Reads `dir/tokenizer.json` and `dir/tokenizer_config.json`; `pre` names llama.cpp's pre-tokenizer for it. */
export function readHfTokenizer(dir: string, pre: string): BpeVocabulary {
  const read = <T>(name: string): T => {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) throw new Error(`${file} is missing: --tokenizer takes a folder holding tokenizer.json and tokenizer_config.json`);
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  };
  const json = read<TokenizerJson>('tokenizer.json');
  const config = read<TokenizerConfig>('tokenizer_config.json');
  if (json.model.type !== 'BPE') throw new Error(`${dir}/tokenizer.json: model type ${json.model.type} is not BPE`);
  const size = [...Object.values(json.model.vocab), ...json.added_tokens.map((t) => t.id)].reduce((a, b) => Math.max(a, b), 0) + 1;
  const tokens = new Array<string>(size);
  const types = new Array<number>(size).fill(1);
  for (const [piece, id] of Object.entries(json.model.vocab)) tokens[id] = piece;
  for (const added of json.added_tokens) {
    tokens[added.id] = added.content;
    types[added.id] = added.special ? 3 : 4;
  }
  // Ids nobody uses (real vocabularies have a few holes) become unreachable control tokens.
  for (let i = 0; i < size; i++) if (tokens[i] === undefined) { tokens[i] = `[PAD${i}]`; types[i] = 3; }
  const idOf = (token: TokenizerConfig['bos_token'], what: string): number | undefined => {
    if (token === null || token === undefined) return undefined;
    const content = typeof token === 'string' ? token : token.content;
    const id = tokens.indexOf(content);
    if (id < 0) throw new Error(`${dir}/tokenizer_config.json: ${what} ${content} is not in the vocabulary`);
    return id;
  };
  const eos = idOf(config.eos_token, 'eos_token');
  if (eos === undefined) throw new Error(`${dir}/tokenizer_config.json: no eos_token`);
  const bos = idOf(config.bos_token, 'bos_token');
  return {
    pre,
    tokens,
    types,
    merges: json.model.merges.map((m) => (typeof m === 'string' ? m : m.join(' '))),
    // Qwen has no BOS and says so (its GGUFs name <|endoftext|>, never added); Llama 3 adds
    // <|begin_of_text|> (its config leaves add_bos_token out). Without either, the EOS id.
    bos: bos ?? (tokens.includes('<|endoftext|>') ? tokens.indexOf('<|endoftext|>') : eos),
    eos,
    addBos: config.add_bos_token ?? bos !== undefined,
    chatTemplate: config.chat_template,
  };
}

/** GPT-2's byte-level alphabet: each byte is one printable character in a token piece. */
const BYTE_OF_CHAR: Map<string, number> = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const map = new Map<string, number>();
  let n = 0;
  for (let b = 0; b < 256; b++) map.set(String.fromCharCode(printable(b) ? b : 256 + n++), b);
  return map;
})();

/** The bytes a byte-level token piece stands for ("Ġthe" -> " the"); undefined for pieces outside the alphabet. */
export function pieceBytes(piece: string): Buffer | undefined {
  const bytes: number[] = [];
  for (const ch of piece) {
    const b = BYTE_OF_CHAR.get(ch);
    if (b === undefined) return undefined;
    bytes.push(b);
  }
  return Buffer.from(bytes);
}
