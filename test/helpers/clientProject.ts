import fs from 'node:fs';
import path from 'node:path';
import { REPO, tempDir } from './testEnv.js';

export const CLIENT = path.join(REPO, 'packages', 'client');

/** A user's project whose node_modules holds the client package (as npm links or unpacks it). */
export function clientProject(files: Record<string, string>): string {
  const dir = tempDir('client-user');
  fs.mkdirSync(path.join(dir, 'node_modules', '@docsift'), { recursive: true });
  fs.symlinkSync(CLIENT, path.join(dir, 'node_modules', '@docsift', 'client'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}
