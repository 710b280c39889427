import fs from 'node:fs/promises';
import path from 'node:path';

export class PathNotAllowedError extends Error {
  override readonly name = 'PathNotAllowedError';
}

/**
 * Resolves a path a caller names in POST /v1/documents {path} to a real file under one of the
 * allowed roots. Refused: `..` segments, anything outside the roots (absolute or relative), and
 * symlinks whose target lies outside (checked on the real path, after every link is followed).
 * Relative paths are taken relative to the first root.
 */
export async function resolveAllowedPath(roots: readonly string[], requested: string): Promise<string> {
  if (roots.length === 0) throw new PathNotAllowedError('this API accepts uploads only: no DOCSIFT_API_ROOTS are configured');
  if (requested.split(/[\\/]/).includes('..')) throw new PathNotAllowedError('the path must not contain ".."');
  if (requested.includes('\0')) throw new PathNotAllowedError('the path must not contain NUL');
  const realRoots = await Promise.all(roots.map((r) => fs.realpath(r).catch(() => path.resolve(r))));
  const candidate = path.isAbsolute(requested) ? path.resolve(requested) : path.resolve(realRoots[0]!, requested);
  const inside = (p: string) => realRoots.some((root) => p === root || p.startsWith(root + path.sep));
  // Compare the literal path first (so an outside path is refused without touching it), then the real one.
  const literalRoots = roots.map((r) => path.resolve(r));
  if (!inside(candidate) && !literalRoots.some((root) => candidate.startsWith(root + path.sep))) {
    throw new PathNotAllowedError('the path is outside the allowed roots');
  }
  let real: string;
  try {
    real = await fs.realpath(candidate);
  } catch {
    throw new PathNotAllowedError('no such file under the allowed roots');
  }
  if (!inside(real)) throw new PathNotAllowedError('the path leads outside the allowed roots (symlink)');
  const stat = await fs.stat(real);
  if (!stat.isFile()) throw new PathNotAllowedError('the path is not a regular file');
  return real;
}
