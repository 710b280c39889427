import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { DocsiftError } from './errors.js';

export interface SafeRead {
  bytes: Buffer;
  /** The file's real path (every link in its folders resolved), under one of the roots. */
  realPath: string;
}

/**
 * Reads a file a caller named (a job's ref.path, a path in an API request, a file in a watched
 * folder) without trusting the name. Checking a path and then opening it races with whoever can
 * swap it for a link in between, so the file is opened once and every check is made on what was
 * opened:
 *
 * - opened with O_NOFOLLOW (a link as the last component fails ELOOP) and O_NONBLOCK (a FIFO
 *   cannot hold the caller forever);
 * - fstat of the descriptor: a regular file, at most maxBytes;
 * - the path of the opened file as the kernel knows it is under a root, so a folder swapped for a
 *   link around the open is caught too;
 * - the bytes are read from that descriptor, never more than maxBytes + 1.
 *
 * A hard link inside a root to a file outside it is the same file, and passes; Linux refuses
 * such links to files the linker does not own (fs.protected_hardlinks, on by default).
 */
export async function readFileUnderRoots(file: string, roots: readonly string[], maxBytes: number): Promise<SafeRead> {
  if (roots.length === 0) throw new DocsiftError('PATH_NOT_ALLOWED', `${file}: no document roots are configured, so no file may be read by path`);
  if (file.includes('\0')) throw new DocsiftError('PATH_NOT_ALLOWED', 'the path contains a NUL byte');
  if (file.split(/[\\/]/).includes('..')) throw new DocsiftError('PATH_NOT_ALLOWED', `${file}: must not contain ".."`);
  if (!path.isAbsolute(file)) throw new DocsiftError('PATH_NOT_ALLOWED', `${file}: must be an absolute path`);
  const literalRoots = roots.map((r) => path.resolve(r));
  const realRoots = await Promise.all(literalRoots.map((r) => fs.realpath(r).catch(() => r)));
  // Refused before it is touched: a path outside every root, as written or as the roots really are.
  if (!isUnder(file, literalRoots) && !isUnder(file, realRoots)) {
    throw new DocsiftError('PATH_NOT_ALLOWED', `${file} is outside the document roots (${literalRoots.join(', ')})`);
  }
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw openError(file, err);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new DocsiftError('PATH_NOT_ALLOWED', `${file} is not a regular file`);
    if (stat.size > maxBytes) throw new DocsiftError('TOO_LARGE', `${file} has ${stat.size} bytes; the limit is ${maxBytes}`);
    const realPath = await openedPath(handle, file, stat);
    if (!realPath || !isUnder(realPath, realRoots)) {
      throw new DocsiftError('PATH_NOT_ALLOWED', `${file} leads outside the document roots (a link in its folders, or it was swapped while opening)`);
    }
    return { bytes: await readBounded(handle, stat.size, maxBytes, file), realPath };
  } finally {
    await handle.close();
  }
}

/**
 * Where the opened file really is. Linux names it: /proc/self/fd/N is the kernel's path of the
 * open file, which no later swap can change. Elsewhere the real path of the name must lead to the
 * same inode; that second look races with a folder swapped back and forth (measured: the race
 * test reads the outside file within a second), so it is a fallback, not the boundary.
 */
async function openedPath(handle: fs.FileHandle, file: string, stat: { ino: number; dev: number }): Promise<string | null> {
  const fromKernel = await fs.readlink(`/proc/self/fd/${handle.fd}`).catch(() => null);
  if (fromKernel !== null) return fromKernel;
  const realPath = await fs.realpath(file).catch(() => null);
  const named = realPath ? await fs.stat(realPath).catch(() => null) : null;
  return named && named.ino === stat.ino && named.dev === stat.dev ? realPath : null;
}

function isUnder(file: string, roots: readonly string[]): boolean {
  const p = path.resolve(file);
  return roots.some((root) => p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep));
}

/** Reads to the end of the descriptor, refusing a file that grew past maxBytes after fstat. */
async function readBounded(handle: fs.FileHandle, size: number, maxBytes: number, file: string): Promise<Buffer> {
  let buffer = Buffer.allocUnsafe(Math.min(size, maxBytes) + 1);
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      if (length > maxBytes) throw new DocsiftError('TOO_LARGE', `${file} grew past ${maxBytes} bytes while it was read`);
      const bigger = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxBytes + 1));
      buffer.copy(bigger, 0, 0, length);
      buffer = bigger;
    }
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
    if (bytesRead === 0) break;
    length += bytesRead;
  }
  if (length > maxBytes) throw new DocsiftError('TOO_LARGE', `${file} grew past ${maxBytes} bytes while it was read`);
  return buffer.subarray(0, length);
}

function openError(file: string, err: unknown): DocsiftError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') return new DocsiftError('PATH_NOT_ALLOWED', `${file} is a symbolic link; links are not followed`);
  if (code === 'ENOENT' || code === 'ENOTDIR') return new DocsiftError('DOCUMENT_MISSING', `the file ${file} does not exist`);
  if (code === 'ENXIO') return new DocsiftError('PATH_NOT_ALLOWED', `${file} is not a regular file`);
  if (code === 'EACCES' || code === 'EPERM') return new DocsiftError('UNREADABLE_FILE', `${file}: permission denied`);
  return new DocsiftError('UNREADABLE_FILE', `${file} cannot be opened: ${(err as Error).message}`, { cause: err });
}
