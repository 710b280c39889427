import { pieceBytes, type BpeVocabulary } from './hfTokenizer.js';
import { writeGguf, type GgufTensor, type GgufValue, type TensorType } from './writeGguf.js';

/**
 * Writes a llama-architecture GGUF with random weights and either a real BPE tokenizer (option tokenizer) or a byte-level vocabulary: `<unk>`,
 * `<s>`, `</s>`, the 256 byte tokens `<0x00>`…`<0xFF>`, the space piece `▁`, then (for realistic vocabulary sizes)
 * control tokens that ordinary text never maps to. Its output is meaningless text; it exists to
 * drive the real llama.cpp inference path where no model weights can be downloaded.
 */
export interface LlamaShape {
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  nVocab: number;
  contextLength: number;
}

/** What the tests use: small enough to write in milliseconds and run thousands of tokens per second on one core. */
export const TEST_SHAPE: LlamaShape = { nEmbd: 64, nLayer: 2, nHead: 4, nHeadKv: 2, nFf: 128, nVocab: 260, contextLength: 32768 };

export interface MakeModelOptions {
  shape?: LlamaShape;
  type?: TensorType;
  seed?: number;
  /**
   * Bias the output layer toward short, printable JSON: closing quotes, commas and braces win
   * over letters most of the time, whitespace and non-ASCII bytes almost never. Random weights
   * alone pick arbitrary bytes, so every string runs to maxTokens as invalid UTF-8.
   */
  biasOutput?: boolean;
  name?: string;
  /**
   * Extra vocabulary pieces ("▁invoice", "inv", ...), as normal tokens after the bytes. With every
   * prefix of a word present, llama.cpp's SentencePiece merges reach the whole word, so text costs
   * about as many tokens as with a real subword vocabulary (the bench's realistic model).
   */
  vocabulary?: readonly string[];
  /**
   * A real BPE tokenizer (readHfTokenizer): the model then tokenizes, renders its chat template
   * and keeps special tokens special exactly as the real model does; shape.nVocab is ignored.
   */
  tokenizer?: BpeVocabulary;
}

const BYTE0 = 3;
/** SentencePiece's word-boundary piece; without it every space costs three byte tokens. */
const SPACE = BYTE0 + 256;

/** A small seeded PRNG: the same seed writes the same model (and the bench the same documents). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The preferred logit of each token of the byte vocabulary when biasOutput is on (see MakeModelOptions). */
function tokenBias(token: number): number {
  if (token === 2) return 2; // </s>
  if (token === SPACE) return 0.5;
  if (token < BYTE0 || token >= BYTE0 + 256) return -20;
  return charBias(String.fromCharCode(token - BYTE0));
}

/** The same preference over a BPE vocabulary: short printable pieces, closing quotes and delimiters first. */
function pieceBias(vocabulary: BpeVocabulary, token: number): number {
  if (token === vocabulary.eos) return 2;
  if (vocabulary.types[token] !== 1) return -20;
  const bytes = pieceBytes(vocabulary.tokens[token]!);
  if (!bytes || bytes.length === 0) return -20;
  const text = bytes.toString('latin1');
  // Lists end soon: the larger vocabulary's random logits otherwise repeat items to maxItems.
  if (text === ']') return 4;
  if (bytes.length === 1) return charBias(text);
  if (!/^ ?[\x21-\x7e]+$/.test(text) || text.length > 6) return -20;
  // A closing quote with what follows it (`",`, `"}`) ends a string; other punctuation runs
  // (`}},`) only make strings run on, since the decoder writes the structure itself.
  if (/^[",}\]:{[]+$/.test(text)) return text.startsWith('"') ? 4 : -2;
  return /^ ?[A-Za-z0-9]+$/.test(text) ? 0.5 : -1;
}

function charBias(ch: string): number {
  const byte = ch.charCodeAt(0);
  if (ch === '"') return 4;
  if (ch === ',' || ch === '}' || ch === ']') return 3;
  if (/[A-Za-z0-9]/.test(ch)) return 2;
  if (ch === ' ') return 0.5;
  if (byte >= 0x21 && byte < 0x7f) return 0;
  return -20; // whitespace runs, control bytes and lone UTF-8 continuation bytes
}

export function makeLlamaModel(file: string, options: MakeModelOptions = {}): void {
  const shape = options.shape ?? TEST_SHAPE;
  const type = options.type ?? 'F32';
  const rand = mulberry32(options.seed ?? 1234);
  const gauss = (): number => {
    const u = Math.max(rand(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
  const random = (n: number, scale: number) => () => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = gauss() * scale;
    return a;
  };
  const ones = (n: number) => () => new Float32Array(n).fill(1);
  const vocabulary = options.tokenizer;
  const { nEmbd, nLayer, nHead, nHeadKv, nFf } = shape;
  const nVocab = vocabulary ? vocabulary.tokens.length : shape.nVocab;
  const headDim = nEmbd / nHead;
  const nEmbdKv = headDim * nHeadKv;

  const bias = options.biasOutput ?? false;
  const biasOf = vocabulary ? (t: number) => pieceBias(vocabulary, t) : tokenBias;

  // With a biased output, dimension 0 of every embedding is a constant that the (small) layers
  // barely change, so after the final norm it carries each token's bias into the logits while
  // the other dimensions add input-dependent variation.
  const embdScale = bias ? 0.02 : 0.5;
  const layerScale = bias ? 0.02 : 1 / Math.sqrt(nEmbd);
  const tokenEmbd = (): Float32Array => {
    const a = random(nEmbd * nVocab, embdScale)();
    if (bias) for (let t = 0; t < nVocab; t++) a[t * nEmbd] = 1;
    return a;
  };
  const output = (): Float32Array => {
    const a = random(nEmbd * nVocab, bias ? 0.4 : 1 / Math.sqrt(nEmbd))();
    if (bias) for (let t = 0; t < nVocab; t++) a[t * nEmbd] = biasOf(t) / Math.sqrt(nEmbd);
    return a;
  };

  const tensors: GgufTensor[] = [
    { name: 'token_embd.weight', dims: [nEmbd, nVocab], type, fill: tokenEmbd },
    { name: 'output_norm.weight', dims: [nEmbd], type: 'F32', fill: ones(nEmbd) },
    { name: 'output.weight', dims: [nEmbd, nVocab], type, fill: output },
  ];
  for (let l = 0; l < nLayer; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      { name: `${p}attn_norm.weight`, dims: [nEmbd], type: 'F32', fill: ones(nEmbd) },
      { name: `${p}attn_q.weight`, dims: [nEmbd, nEmbd], type, fill: random(nEmbd * nEmbd, layerScale) },
      { name: `${p}attn_k.weight`, dims: [nEmbd, nEmbdKv], type, fill: random(nEmbd * nEmbdKv, layerScale) },
      { name: `${p}attn_v.weight`, dims: [nEmbd, nEmbdKv], type, fill: random(nEmbd * nEmbdKv, layerScale) },
      { name: `${p}attn_output.weight`, dims: [nEmbd, nEmbd], type, fill: random(nEmbd * nEmbd, layerScale) },
      { name: `${p}ffn_norm.weight`, dims: [nEmbd], type: 'F32', fill: ones(nEmbd) },
      { name: `${p}ffn_gate.weight`, dims: [nEmbd, nFf], type, fill: random(nEmbd * nFf, layerScale) },
      { name: `${p}ffn_up.weight`, dims: [nEmbd, nFf], type, fill: random(nEmbd * nFf, layerScale) },
      { name: `${p}ffn_down.weight`, dims: [nFf, nEmbd], type, fill: random(nFf * nEmbd, layerScale) },
    );
  }

  const fileType = { F32: 0, Q8_0: 7 }[type];
  const metadata: Array<readonly [string, GgufValue]> = [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: options.name ?? 'docsift-test-model' }],
    ['general.file_type', { type: 'u32', value: fileType }],
    ['llama.context_length', { type: 'u32', value: shape.contextLength }],
    ['llama.embedding_length', { type: 'u32', value: nEmbd }],
    ['llama.block_count', { type: 'u32', value: nLayer }],
    ['llama.feed_forward_length', { type: 'u32', value: nFf }],
    ['llama.attention.head_count', { type: 'u32', value: nHead }],
    ['llama.attention.head_count_kv', { type: 'u32', value: nHeadKv }],
    ['llama.rope.dimension_count', { type: 'u32', value: headDim }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }],
    ['llama.vocab_size', { type: 'u32', value: nVocab }],
    ...(vocabulary ? bpeMetadata(vocabulary) : byteMetadata(nVocab, options.vocabulary ?? [])),
  ];
  writeGguf(file, metadata, tensors);
}

/** A byte-level SentencePiece vocabulary of nVocab tokens (see makeLlamaModel). */
function byteMetadata(nVocab: number, pieces: readonly string[]): Array<readonly [string, GgufValue]> {
  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  tokens.push('\u2581');
  for (const piece of new Set(pieces)) if (tokens.length < nVocab && piece.length > 1) tokens.push(piece);
  while (tokens.length < nVocab) tokens.push(`<extra_${tokens.length}>`);
  const tokenTypes = tokens.map((t, i) => (i === 0 ? 2 : i < BYTE0 ? 3 : i < BYTE0 + 256 ? 6 : i === SPACE || !t.startsWith('<extra_') ? 1 : 3));
  return [
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: tokens }],
    // Longer pieces first: SentencePiece merges the best-scoring pair.
    ['tokenizer.ggml.scores', { type: 'f32[]', value: Float32Array.from(tokens, (t, i) => (i > SPACE && !t.startsWith('<extra_') ? t.length : 0)) }],
    ['tokenizer.ggml.token_type', { type: 'i32[]', value: tokenTypes }],
    ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: 0 }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 1 }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 2 }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    // Without this SentencePiece prepends "\u2581" (three byte tokens here) to every text.
    ['tokenizer.ggml.add_space_prefix', { type: 'bool', value: false }],
  ];
}

/** The keys llama.cpp reads for a byte-level BPE tokenizer (what convert_hf_to_gguf.py writes). */
function bpeMetadata(v: BpeVocabulary): Array<readonly [string, GgufValue]> {
  return [
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: v.pre }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: v.tokens }],
    ['tokenizer.ggml.token_type', { type: 'i32[]', value: v.types }],
    ['tokenizer.ggml.merges', { type: 'string[]', value: v.merges }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: v.bos }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: v.eos }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: v.addBos }],
    ...(v.chatTemplate ? [['tokenizer.chat_template', { type: 'string', value: v.chatTemplate }] as const] : []),
  ];
}
