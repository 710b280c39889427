/**
 * UTF-8 when the bytes are valid UTF-8; otherwise Windows-1252, the usual encoding of text
 * exported by older back-office systems, with a warning on the result.
 */
export function decodeText(bytes: Uint8Array, warnings: string[]): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\uFEFF/, '');
  } catch {
    warnings.push('INVALID_UTF8: the text is not valid UTF-8; it was read as Windows-1252');
    return decodeWindows1252(bytes);
  }
}

// Node's TextDecoder('windows-1252') decodes as ISO-8859-1, losing €, curly quotes and dashes
// (0x80-0x9F); this table restores them. Undefined positions stay as their C1 code points.
const CP1252_HIGH = '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008DŽ\u008F\u0090‘’“”•–—˜™š›œ\u009DžŸ';

function decodeWindows1252(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b >= 0x80 && b <= 0x9f ? CP1252_HIGH[b - 0x80] : String.fromCharCode(b);
  return out;
}
