import { expect } from 'vitest';
import { DocsiftError } from '../../src/infra/errors.js';
import type { TextExtractor, TextLimits } from '../../src/text/index.js';

/** "OK", or the coded error as "CODE: message": what a caller of the text stage sees for these bytes. */
export async function outcomeOf(extractor: TextExtractor, bytes: Buffer, limits: TextLimits): Promise<string> {
  try {
    await extractor.extract(bytes, limits);
    return 'OK';
  } catch (err) {
    expect(err).toBeInstanceOf(DocsiftError);
    return `${(err as DocsiftError).code}: ${(err as Error).message}`;
  }
}
