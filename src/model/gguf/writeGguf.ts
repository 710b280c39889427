import fs from 'node:fs';

/**
 * A minimal GGUF v3 writer (ggml docs/gguf.md): typed metadata, then tensor infos, then aligned
 * tensor data. Tensors are produced one at a time by their fill function and written straight to
 * the file, so a 100+ MB benchmark model never sits in memory whole.
 */

export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'f32[]'; value: ArrayLike<number> }
  | { type: 'i32[]'; value: ArrayLike<number> };

/** What the test models need: exact weights, and the 8-bit type llama.cpp's fast paths take. */
export type TensorType = 'F32' | 'Q8_0';

export interface GgufTensor {
  name: string;
  /** Innermost dimension first, as GGUF stores them (token_embd is [n_embd, n_vocab]). */
  dims: readonly number[];
  type: TensorType;
  /** Called once, when the tensor is written; returns dims.product() floats, row-major innermost first. */
  fill: () => Float32Array;
}

const VALUE_TYPE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10 } as const;
const GGML_TYPE: Record<TensorType, number> = { F32: 0, Q8_0: 8 };
const ALIGNMENT = 32;

export function tensorBytes(type: TensorType, elements: number): number {
  switch (type) {
    case 'F32': return elements * 4;
    case 'Q8_0': return (elements / 32) * 34;
  }
}

class ByteWriter {
  private chunks: Buffer[] = [];
  length = 0;
  push(buf: Buffer): void { this.chunks.push(buf); this.length += buf.length; }
  u32(n: number): void { const b = Buffer.alloc(4); b.writeUInt32LE(n); this.push(b); }
  i32(n: number): void { const b = Buffer.alloc(4); b.writeInt32LE(n); this.push(b); }
  u64(n: bigint | number): void { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); this.push(b); }
  f32(n: number): void { const b = Buffer.alloc(4); b.writeFloatLE(n); this.push(b); }
  str(s: string): void { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.push(b); }
  toBuffer(): Buffer { return Buffer.concat(this.chunks); }
}

function writeValue(w: ByteWriter, v: GgufValue): void {
  switch (v.type) {
    case 'u32': w.u32(VALUE_TYPE.u32); w.u32(v.value); break;
    case 'f32': w.u32(VALUE_TYPE.f32); w.f32(v.value); break;
    case 'bool': w.u32(VALUE_TYPE.bool); w.push(Buffer.from([v.value ? 1 : 0])); break;
    case 'string': w.u32(VALUE_TYPE.string); w.str(v.value); break;
    case 'string[]': w.u32(VALUE_TYPE.array); w.u32(VALUE_TYPE.string); w.u64(v.value.length); for (const s of v.value) w.str(s); break;
    case 'f32[]': w.u32(VALUE_TYPE.array); w.u32(VALUE_TYPE.f32); w.u64(v.value.length); for (let i = 0; i < v.value.length; i++) w.f32(v.value[i]!); break;
    case 'i32[]': w.u32(VALUE_TYPE.array); w.u32(VALUE_TYPE.i32); w.u64(v.value.length); for (let i = 0; i < v.value.length; i++) w.i32(v.value[i]!); break;
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half from a float (round to nearest even; enough for scales and small weights). */
export function toHalf(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  let exp = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant = (mant | 0x800000) >>> (1 - exp);
    return sign | ((mant + 0x1000) >>> 13);
  }
  if (exp >= 31) return sign | 0x7c00;
  const half = sign | (exp << 10) | (mant >>> 13);
  return (mant & 0x1fff) > 0x1000 || ((mant & 0x1fff) === 0x1000 && (half & 1)) ? half + 1 : half;
}

export function encodeTensor(type: TensorType, data: Float32Array): Buffer {
  switch (type) {
    case 'F32': return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    case 'Q8_0': {
      const blocks = data.length / 32;
      const out = Buffer.alloc(blocks * 34);
      for (let b = 0; b < blocks; b++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(data[b * 32 + j]!));
        const d = amax / 127;
        const id = d === 0 ? 0 : 1 / d;
        out.writeUInt16LE(toHalf(d), b * 34);
        for (let j = 0; j < 32; j++) out.writeInt8(Math.round(data[b * 32 + j]! * id), b * 34 + 2 + j);
      }
      return out;
    }
  }
}

export function writeGguf(file: string, metadata: ReadonlyArray<readonly [string, GgufValue]>, tensors: readonly GgufTensor[]): void {
  const header = new ByteWriter();
  header.push(Buffer.from('GGUF', 'ascii'));
  header.u32(3);
  header.u64(tensors.length);
  header.u64(metadata.length + 1);
  header.str('general.alignment');
  writeValue(header, { type: 'u32', value: ALIGNMENT });
  for (const [key, value] of metadata) { header.str(key); writeValue(header, value); }

  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    const elements = t.dims.reduce((a, b) => a * b, 1);
    if (t.type === 'Q8_0' && t.dims[0]! % 32 !== 0) {
      throw new Error(`${t.name}: quantised tensors need an innermost dimension divisible by 32`);
    }
    header.str(t.name);
    header.u32(t.dims.length);
    for (const d of t.dims) header.u64(d);
    header.u32(GGML_TYPE[t.type]);
    header.u64(offset);
    const size = tensorBytes(t.type, elements);
    sizes.push(size);
    offset += Math.ceil(size / ALIGNMENT) * ALIGNMENT;
  }
  const pad = (n: number) => Buffer.alloc((ALIGNMENT - (n % ALIGNMENT)) % ALIGNMENT);

  const fd = fs.openSync(file, 'w');
  try {
    const head = header.toBuffer();
    fs.writeSync(fd, head);
    fs.writeSync(fd, pad(head.length));
    tensors.forEach((t, i) => {
      const data = t.fill();
      const expected = t.dims.reduce((a, b) => a * b, 1);
      if (data.length !== expected) throw new Error(`${t.name}: fill returned ${data.length} values, expected ${expected}`);
      const bytes = encodeTensor(t.type, data);
      fs.writeSync(fd, bytes);
      fs.writeSync(fd, pad(sizes[i]!));
    });
  } finally {
    fs.closeSync(fd);
  }
}
