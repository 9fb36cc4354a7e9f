/**
 * Reading a service's file for a pull: opened relative to its checked directory without
 * following a link, regular files with one link only (a hard link may be an outside file, see
 * paths.ts), read in chunks of a fixed size. Sockets, FIFOs and devices are refused before they
 * are opened: opening one can block, fail (ENXIO) or act on hardware.
 */
import { constants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import { InvalidArgumentError, McpError, NotFoundError } from '../../core/errors.js';
import { printable } from '../../core/text.js';
import { errnoCode, fileSystemError, hardLinked } from './errors.js';
import { openDirectory, type ServicePath } from './paths.js';
import { cancelled } from './write.js';

export interface OpenedFile {
  handle: FileHandle;
  size: number;
  /** Permission bits. */
  mode: number;
}

/** Opens the resolved file for reading; NOT_FOUND when it does not exist. */
export async function openServiceFile(target: ServicePath): Promise<OpenedFile> {
  const missing = () =>
    new NotFoundError(
      `file '${printable(target.relative)}' does not exist in ${target.shown}: check the path`,
    );
  if (target.stat === undefined) throw missing();
  if (target.stat.isDirectory()) {
    throw new InvalidArgumentError(
      `path '${printable(target.relative)}' in ${target.shown} is a directory: name a file`,
    );
  }
  const notRegular = () =>
    new InvalidArgumentError(
      `path '${printable(target.relative)}' in ${target.shown} is not a regular file (a socket, FIFO or device): only regular files can be pulled`,
    );
  if (!target.stat.isFile()) throw notRegular();
  const dir = await openDirectory(target);
  let handle: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO must not hang the call; it is refused just below.
    handle = await fs.open(
      dir.entry(target.name),
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    );
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw missing();
    if (errnoCode(err) === 'ELOOP') {
      throw new InvalidArgumentError(
        `path '${printable(target.relative)}' was replaced by a symbolic link while it was being opened: retry`,
      );
    }
    // Replaced by a socket or device after the check above.
    if (errnoCode(err) === 'ENXIO' || errnoCode(err) === 'ENODEV') throw notRegular();
    throw fileSystemError(err, target);
  } finally {
    await dir.close();
  }
  // Checked on the open descriptor: what is read is what was checked.
  const stat = await handle.stat();
  if (!stat.isFile()) {
    await handle.close();
    throw notRegular();
  }
  if (stat.nlink > 1) {
    await handle.close();
    throw hardLinked(target, stat.nlink, 'pulled');
  }
  return { handle, size: stat.size, mode: stat.mode & 0o7777 };
}

/**
 * The first `size` bytes of the file, in chunks of `chunkBytes` (the last one shorter). A file
 * that shrinks while it is read ends the pull with ABORTED rather than sending a short file.
 */
export async function* readChunks(
  file: OpenedFile,
  chunkBytes: number,
  signal: AbortSignal,
): AsyncGenerator<Buffer> {
  let position = 0;
  while (position < file.size) {
    if (signal.aborted) throw cancelled();
    const length = Math.min(chunkBytes, file.size - position);
    // A fresh buffer per chunk: the transport may still hold the previous one.
    const buffer = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await file.handle.read(buffer, filled, length - filled, position + filled);
      if (bytesRead === 0) {
        throw new McpError(
          'ABORTED',
          `the file shrank while it was being read (at byte ${position + filled}): retry`,
        );
      }
      filled += bytesRead;
    }
    position += length;
    yield buffer;
  }
}
