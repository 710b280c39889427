import { createCanvas } from '@napi-rs/canvas';
import { describe, expect, it } from 'vitest';
import { jpegOrientation } from '../../../src/text/images.js';
import { withExifOrientation } from '../../helpers/scans.js';

describe('a JPEG\'s EXIF orientation (libtesseract\'s decoder ignores it, so it decides the decode path)', () => {
  const jpeg = createCanvas(40, 30).toBuffer('image/jpeg', 80);

  it('reads the tag, big- and little-endian, and 1 where there is none', () => {
    expect(jpegOrientation(jpeg)).toBe(1);
    for (const o of [1, 3, 6, 8]) expect(jpegOrientation(withExifOrientation(jpeg, o))).toBe(o);
    const tagged = withExifOrientation(jpeg, 6);
    // The same entry written little-endian ("II"), as phones other than Apple's write it.
    const at = tagged.indexOf('MM\0*', 0, 'latin1');
    const le = Buffer.from(tagged);
    le.write('II*\0', at, 'latin1');
    le.writeUInt32LE(8, at + 4);
    le.writeUInt16LE(1, at + 8);
    le.writeUInt16LE(0x0112, at + 10);
    le.writeUInt16LE(3, at + 12);
    le.writeUInt32LE(1, at + 14);
    le.writeUInt16LE(6, at + 18);
    expect(jpegOrientation(le)).toBe(6);
  });

  it('answers 0 (unknown) for a segment that lies about its length or offsets, without throwing', () => {
    const tagged = withExifOrientation(jpeg, 6);
    const at = tagged.indexOf('MM\0*', 0, 'latin1');
    const lying = Buffer.from(tagged);
    lying.writeUInt32BE(0x7fffffff, at + 4); // IFD offset past the end
    expect(jpegOrientation(lying)).toBe(0);
    expect(jpegOrientation(tagged.subarray(0, at + 6))).toBe(0);
    expect(jpegOrientation(Buffer.from([0xff, 0xd8, 0xff, 0xe1, 0xff]))).toBe(0);
  });
});
