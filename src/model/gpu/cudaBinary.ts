import fs from 'node:fs';
import { compareDotted } from './host.js';

/**
 * What a llama.cpp CUDA backend library (libggml-cuda.so) carries, read from the file itself:
 * the CUDA runtime it links, machine code (SASS) per GPU architecture, and PTX per virtual
 * architecture with its PTX ISA version. Whether it runs on a GPU follows from these and the
 * driver (see plan.ts); nothing here needs a GPU or the CUDA toolkit (no cuobjdump).
 */
export interface CudaBinaryFacts {
  /** Major version of the CUDA runtime it links (libcudart.so.N); null if it links none. */
  runtime: number | null;
  /** Shared libraries it needs from the system, beyond libc/libstdc++ and ggml's own. */
  needs: string[];
  /** Architectures with machine code, as compute capability x 10 (86 = 8.6), ascending. */
  sass: Array<{ arch: number; exact: boolean }>;
  /** Virtual architectures with PTX, each with the highest PTX ISA version it carries ("9.1"). */
  ptx: Array<{ arch: number; isa: string }>;
}

/**
 * Measured on node-llama-cpp 3.21.1 and 3.22.1: the CUDA prebuilt carries SASS sm_86, sm_89,
 * sm_120a, sm_121a and PTX compute_75/80/90 at ISA 9.1 (CUDA 13.1, zstd-compressed); the
 * "fallback" in @node-llama-cpp/linux-x64-cuda-ext carries SASS sm_86 and PTX compute_50…80 at
 * ISA 8.4 (CUDA 12.4). Each container repeats the same entries for one of 143 object files.
 */
export function readCudaBinary(file: string): CudaBinaryFacts {
  const fd = fs.openSync(file, 'r');
  try {
    const elf = readElf(fd);
    const needs = elf.needed.filter((name) => !SYSTEM_LIBRARY.test(name));
    const runtime = needs.map((n) => /^libcudart\.so\.(\d+)$/.exec(n)).find(Boolean)?.[1];
    const fatbin = elf.sections.get('.nv_fatbin');
    const entries = fatbin ? readFatbin(fd, fatbin.offset, fatbin.size) : [];
    const sass = new Map<number, boolean>();
    const ptx = new Map<number, string>();
    for (const e of entries) {
      if (e.kind === 'sass') sass.set(e.arch, (sass.get(e.arch) ?? false) || e.archSpecific);
      else if (compareDotted(e.isa, ptx.get(e.arch) ?? '0.0') > 0) ptx.set(e.arch, e.isa);
    }
    return {
      runtime: runtime === undefined ? null : Number(runtime),
      needs,
      sass: [...sass].sort(([a], [b]) => a - b).map(([arch, exact]) => ({ arch, exact })),
      ptx: [...ptx].sort(([a], [b]) => a - b).map(([arch, isa]) => ({ arch, isa })),
    };
  } finally {
    fs.closeSync(fd);
  }
}

const SYSTEM_LIBRARY = /^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux.*|libggml.*|libllama.*)\.so/;

/** Reads at a position; a short read (a truncated file) is an error, never a garbage header. */
function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const n = fs.readSync(fd, buf, 0, length, position);
  if (n !== length) throw new Error(`truncated file: wanted ${length} bytes at ${position}, got ${n}`);
  return buf;
}

interface Elf { sections: Map<string, { offset: number; size: number }>; needed: string[] }

/** Section table and DT_NEEDED entries of a little-endian ELF64 file. */
function readElf(fd: number): Elf {
  const h = readAt(fd, 0, 64);
  if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) throw new Error('not a 64-bit little-endian ELF file');
  const shoff = Number(h.readBigUInt64LE(0x28));
  const shentsize = h.readUInt16LE(0x3a);
  const shnum = h.readUInt16LE(0x3c);
  const shstrndx = h.readUInt16LE(0x3e);
  if (shnum > 4096 || shentsize < 64) throw new Error('implausible ELF section table');
  const table = readAt(fd, shoff, shnum * shentsize);
  const raw = Array.from({ length: shnum }, (_, i) => {
    const o = i * shentsize;
    return { name: table.readUInt32LE(o), type: table.readUInt32LE(o + 4), offset: Number(table.readBigUInt64LE(o + 0x18)), size: Number(table.readBigUInt64LE(o + 0x20)), link: table.readUInt32LE(o + 0x28) };
  });
  const bounded = (s: { offset: number; size: number }) => readAt(fd, s.offset, Math.min(s.size, 1 << 20));
  const cString = (buf: Buffer, at: number) => buf.toString('latin1', at, buf.indexOf(0, at) < 0 ? buf.length : buf.indexOf(0, at));
  const names = bounded(raw[shstrndx]!);
  const sections = new Map(raw.map((s) => [cString(names, s.name), { offset: s.offset, size: s.size }] as const));
  const needed: string[] = [];
  const dynamic = raw.find((s) => s.type === 6 /* SHT_DYNAMIC */);
  if (dynamic) {
    const entries = bounded(dynamic);
    const strings = bounded(raw[dynamic.link]!);
    for (let o = 0; o + 16 <= entries.length; o += 16) {
      const tag = entries.readBigInt64LE(o);
      if (tag === 0n) break;
      if (tag === 1n /* DT_NEEDED */) needed.push(cString(strings, Number(entries.readBigUInt64LE(o + 8))));
    }
  }
  return { sections, needed };
}

type FatbinEntry = { kind: 'sass'; arch: number; archSpecific: boolean } | { kind: 'ptx'; arch: number; isa: string };

const FATBIN_MAGIC = 0xba55ed50;

/**
 * Walks the fat binary containers of a .nv_fatbin section, reading only the entry headers
 * (a few KB of a 150–370 MB file). Layout as documented by reverse engineering of the format
 * (header: magic, version, header size, payload size; entry: kind 1 = PTX / 2 = ELF, header
 * size, payload size, then at +24 the PTX ISA minor/major and at +28 the architecture).
 */
function readFatbin(fd: number, offset: number, size: number): FatbinEntry[] {
  const out: FatbinEntry[] = [];
  const end = offset + size;
  let p = offset;
  while (p + 16 <= end) {
    const head = readAt(fd, p, 16);
    if (head.readUInt32LE(0) !== FATBIN_MAGIC) {
      p += 8; // containers are 8-byte aligned; padding between them is skipped
      continue;
    }
    const headerSize = head.readUInt16LE(6);
    const containerEnd = p + headerSize + Number(head.readBigUInt64LE(8));
    let e = p + headerSize;
    while (e + 48 <= Math.min(containerEnd, end)) {
      const entry = readAt(fd, e, 48);
      const kind = entry.readUInt16LE(0);
      const entryHeader = entry.readUInt32LE(4);
      const payload = Number(entry.readBigUInt64LE(8));
      const arch = entry.readUInt32LE(28);
      if (kind === 1) out.push({ kind: 'ptx', arch, isa: `${entry.readUInt16LE(26)}.${entry.readUInt16LE(24)}` });
      else if (kind === 2) out.push({ kind: 'sass', arch, archSpecific: (entry.readBigUInt64LE(40) & 0x100000n) !== 0n });
      if (entryHeader === 0) break;
      e += entryHeader + payload;
    }
    p = Math.max(containerEnd, p + 8);
  }
  return out;
}
