import { createHash } from 'node:crypto';
import fs from 'node:fs';

/** The model's sha256, recorded on every result so a result can be traced to exact weights. */
export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
