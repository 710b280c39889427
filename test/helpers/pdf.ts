import { constants, deflateRawSync } from 'node:zlib';

/**
 * Writes small PDFs by hand for tests: text pages, pages without a text layer, and a
 * password-protected file. Real pdf.js parses them; nothing is mocked.
 */
export interface PdfOptions {
  /** One entry per page; null makes a page with no text layer (like a scan); a JPEG fills the page as an image (a scanned page). */
  pages: Array<string | null | { jpeg: Buffer }>;
  /** Adds a Standard security handler whose user password is not empty, as pdf.js sees it. */
  encrypted?: boolean;
}

function escapePdfString(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\(/g, '\\(').replace(/\)/g, '\\)');
}

export function makePdf(options: PdfOptions): Buffer {
  const objects: string[] = [];
  const add = (body: string) => objects.push(body) ; // object number = index + 1
  add('<< /Type /Catalog /Pages 2 0 R >>');
  add('PAGES');
  add('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>');
  const pageRefs: number[] = [];
  for (const text of options.pages) {
    let content = '';
    let xobject = '';
    if (text !== null && typeof text === 'object') {
      // The JPEG's own size from its frame header; DCTDecode hands pdf.js the bytes unchanged.
      const { width, height } = jpegSize(text.jpeg);
      add(`<< /Type /XObject /Subtype /Image /Width ${width} /Height ${height} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode /Length ${text.jpeg.length} >>\nstream\n${text.jpeg.toString('latin1')}\nendstream`);
      xobject = ` /XObject << /Im1 ${objects.length} 0 R >>`;
      content = 'q 612 0 0 792 0 0 cm /Im1 Do Q';
    } else if (text !== null) {
      const lines = text.split('\n').map((l, i) => `BT /F1 11 Tf 72 ${760 - i * 14} Td (${escapePdfString(l)}) Tj ET`);
      content = lines.join('\n');
    } else {
      content = '0.9 g 72 72 400 600 re f'; // a grey box: marks on the page, no text
    }
    add(`<< /Length ${Buffer.byteLength(content, 'latin1')} >>\nstream\n${content}\nendstream`);
    const contentRef = objects.length;
    add(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >>${xobject} >> /Contents ${contentRef} 0 R >>`);
    pageRefs.push(objects.length);
  }
  objects[1] = `<< /Type /Pages /Kids [${pageRefs.map((r) => `${r} 0 R`).join(' ')}] /Count ${pageRefs.length} >>`;
  let encryptRef = 0;
  if (options.encrypted) {
    const hex = (seed: number) => Array.from({ length: 32 }, (_, i) => ((seed * 31 + i * 17) % 256).toString(16).padStart(2, '0')).join('');
    add(`<< /Filter /Standard /V 1 /R 2 /O <${hex(7)}> /U <${hex(11)}> /P -44 >>`);
    encryptRef = objects.length;
  }
  let out = '%PDF-1.4\n%\xe2\xe3\xcf\xd3\n';
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(Buffer.byteLength(out, 'latin1'));
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out, 'latin1');
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, '0')} 00000 n \n`;
  const id = '<0123456789abcdef0123456789abcdef>';
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R${encryptRef ? ` /Encrypt ${encryptRef} 0 R /ID [${id} ${id}]` : ''} >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

function jpegSize(jpeg: Buffer): { width: number; height: number } {
  let p = 2;
  while (p < jpeg.length) {
    const marker = jpeg[p + 1]!;
    if (marker >= 0xc0 && marker <= 0xc3) return { height: jpeg.readUInt16BE(p + 5), width: jpeg.readUInt16BE(p + 7) };
    p += 2 + jpeg.readUInt16BE(p + 2);
  }
  throw new Error('no JPEG frame header');
}

/**
 * A decompression bomb: a small PDF whose one content stream inflates to `inflatedMb`. Filled
 * with text operators, parsing it fills V8's heap; filled with spaces, pdf.js only inflates it,
 * into ArrayBuffers outside the heap, which a V8 heap cap does not bound.
 */
export function makeBombPdf(inflatedMb: number, fill: 'operators' | 'spaces' = 'operators'): Buffer {
  const unit = Buffer.from(fill === 'spaces' ? ' ' : 'BT /F1 9 Tf 10 10 Td (aaaaaaaa) Tj ET\n');
  // Deflated a megabyte at a time (raw blocks ending on a byte boundary, then a final empty
  // block), so a 400 MB bomb never needs 400 MB here. pdf.js does not check the Adler-32.
  const mb = Buffer.alloc(1024 * 1024);
  for (let i = 0; i + unit.length <= mb.length; i += unit.length) unit.copy(mb, i);
  const block = deflateRawSync(mb, { level: 9, finishFlush: constants.Z_SYNC_FLUSH });
  const stream = Buffer.concat([Buffer.from([0x78, 0xda]), ...Array.from({ length: inflatedMb }, () => block), deflateRawSync(Buffer.alloc(0)), Buffer.alloc(4)]);
  const parts: Buffer[] = [Buffer.from('%PDF-1.4\n')];
  let length = parts[0]!.length;
  const offsets: number[] = [];
  const push = (b: Buffer | string) => {
    const buf = typeof b === 'string' ? Buffer.from(b, 'latin1') : b;
    parts.push(buf);
    length += buf.length;
  };
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [4 0 R] /Count 1 >>',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>',
  ];
  objects.forEach((o, i) => { offsets.push(length); push(`${i + 1} 0 obj\n${o}\nendobj\n`); });
  offsets.push(length);
  push(`5 0 obj\n<< /Length ${stream.length} /Filter /FlateDecode >>\nstream\n`);
  push(stream);
  push('\nendstream\nendobj\n');
  const xref = length;
  push(`xref\n0 6\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`);
  push(`trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`);
  return Buffer.concat(parts);
}
