/**
 * Writing a pushed file atomically: the content goes to a temporary file in the destination's
 * directory (`.<name>.mcp-push-<12 hex>.tmp`, created exclusively, mode 0600), is hashed on the
 * way, and replaces the destination with one `rename` only once its size and SHA-256 match the
 * header. Readers see the old file or the new one, never a mix; a failure, a cancellation or
 * a killed agent leaves the old file as it was.
 *
 * A killed agent leaves its temp file behind. Those leftovers are swept (`sweepLeftovers`) at
 * start under the whole files root and before each push into the same directory; only names
 * of exactly this pattern, regular files with one link owned by the agent's user, and never a
 * temp file of a push still running in this process.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, McpError, ResourceExhaustedError } from '../../core/errors.js';
import { MAX_NAME_BYTES } from '../../core/paths.js';
import { printable } from '../../core/text.js';
import { fileSystemError, hardLinked } from './errors.js';
import {
  describeOpenDirectory,
  type OpenDirectory,
  openDirectory,
  removeCreatedDirectories,
  type ServicePath,
} from './paths.js';

/** The mode a pushed file gets when the header says 0. */
export const DEFAULT_FILE_MODE = 0o644;

const SHA256_HEX = /^[0-9a-f]{64}$/;

const octal = (mode: number) => `0${mode.toString(8).padStart(3, '0')}`;

/**
 * The mode to give a pushed file: permission bits only (0 means 0644). Refuses setuid,
 * setgid and sticky bits and world-writable modes, which a file pushed over the network has no
 * business carrying.
 */
export function checkFileMode(mode: number): number {
  if (mode === 0) return DEFAULT_FILE_MODE;
  // 644 typed as a decimal number is the usual slip: say what was probably meant.
  const hint = /^[0-7]{3,4}$/.test(String(mode))
    ? ` (did you mean 0${String(mode).padStart(3, '0')}, which is ${Number.parseInt(String(mode), 8)} in decimal?)`
    : '';
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new InvalidArgumentError(
      `mode ${mode} is not a file mode${hint}: give permission bits, e.g. 420 (0644)`,
    );
  }
  if (mode & 0o7000) {
    throw new InvalidArgumentError(
      `mode ${mode} (${octal(mode)}) sets the setuid, setgid or sticky bit${hint}: pushed files get permission bits only, e.g. 493 (0755)`,
    );
  }
  if (mode & 0o002) {
    throw new InvalidArgumentError(
      `mode ${mode} (${octal(mode)}) makes the file writable by every user on the node${hint}: use e.g. 420 (0644) or 436 (0664)`,
    );
  }
  return mode;
}

/** The expected digest, lower-cased; throws INVALID_ARGUMENT unless it is 64 hex digits. */
export function checkSha256(sha256: string): string {
  const digest = sha256.toLowerCase();
  if (!SHA256_HEX.test(digest)) {
    throw new InvalidArgumentError(
      sha256 === ''
        ? 'sha256 is required: give the SHA-256 of the content, 64 lower-case hex digits'
        : `sha256 '${printable(sha256)}' is not a SHA-256: give 64 lower-case hex digits`,
    );
  }
  return digest;
}

export interface WriteFileOptions {
  target: ServicePath;
  /** Checked with checkFileMode. */
  mode: number;
  /** Exact size the content must have. */
  size: number;
  /** Expected SHA-256, lower-case hex. */
  sha256: string;
  content: AsyncIterable<Uint8Array>;
  signal: AbortSignal;
}

export interface WrittenFile {
  size: number;
  sha256: string;
}

/**
 * Streams `content` into place. Memory stays flat: each chunk is written (and awaited) before
 * the next one is read, so the sender is held back by the transport's flow control.
 */
export async function writeServiceFile(opts: WriteFileOptions): Promise<WrittenFile> {
  const { target } = opts;
  const existing = target.stat;
  if (existing?.isDirectory()) {
    throw new InvalidArgumentError(
      `path '${printable(target.relative)}' in ${target.shown} is a directory: name a file`,
    );
  }
  if (existing && !existing.isFile()) {
    throw new InvalidArgumentError(
      `path '${printable(target.relative)}' in ${target.shown} is not a regular file: remove it or choose another path`,
    );
  }
  if (existing && existing.nlink > 1) throw hardLinked(target, existing.nlink, 'replaced');
  const nothingWritten = 'nothing was written';
  let dir: OpenDirectory;
  try {
    dir = await openDirectory(target);
  } catch (err) {
    await removeCreatedDirectories(target.created);
    throw fileSystemError(err, target);
  }
  const temp = temporaryName(target.name);
  const live = liveKey(dir, temp);
  let file: FileHandle | undefined;
  let placed = false;
  try {
    await sweepDirectory(dir);
    livePushes.add(live);
    file = await fs.open(
      dir.entry(temp),
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    const hash = createHash('sha256');
    let written = 0;
    // One write in flight while the next chunk is received: disk and network overlap, and
    // at most two chunks are held, so the sender is still held back by flow control.
    let writing: Promise<void> | undefined;
    try {
      for await (const chunk of abortable(opts.content, opts.signal)) {
        if (written + chunk.byteLength > opts.size) {
          throw new ResourceExhaustedError(
            `the content is longer than the ${opts.size} bytes the header announced: ${nothingWritten}; send size equal to the content's length`,
          );
        }
        hash.update(chunk);
        await writing;
        writing = writeAll(file, chunk);
        written += chunk.byteLength;
      }
    } finally {
      // Never leave a write running behind a failure: the temp file is closed and removed next.
      await writing?.catch(() => undefined);
    }
    await writing;
    throwIfAborted(opts.signal);
    if (written !== opts.size) {
      throw new InvalidArgumentError(
        `the content ended after ${written} bytes, the header said ${opts.size}: ${nothingWritten}`,
      );
    }
    const digest = hash.digest('hex');
    if (digest !== opts.sha256) {
      throw new InvalidArgumentError(
        `the content's SHA-256 is ${digest}, the header said ${opts.sha256}: ${nothingWritten}`,
      );
    }
    // A replaced file keeps its owner (a service's config owned by its user stays so). Only
    // root may give a file away; otherwise the new file belongs to the agent's user.
    if (existing) await file.chown(existing.uid, existing.gid).catch(() => undefined);
    await file.chmod(opts.mode);
    await file.sync();
    await file.close();
    file = undefined;
    // Looked at again just before the rename: a hard link made while the content streamed.
    const now = await fs.lstat(dir.entry(target.name)).catch(() => undefined);
    if (now?.isFile() && now.nlink > 1) throw hardLinked(target, now.nlink, 'replaced');
    await fs.rename(dir.entry(temp), dir.entry(target.name));
    placed = true;
    await dir.handle.sync();
    return { size: written, sha256: digest };
  } catch (err) {
    throw fileSystemError(err, target);
  } finally {
    await file?.close().catch(() => undefined);
    if (!placed) await fs.unlink(dir.entry(temp)).catch(() => undefined);
    livePushes.delete(live);
    await dir.close().catch(() => undefined);
    // "Nothing was written" includes the directories made for this push.
    if (!placed) await removeCreatedDirectories(target.created);
  }
}

/** `.<name>.mcp-push-<12 hex>.tmp`, or `.mcp-push-<12 hex>.tmp` when that would pass 255 bytes. */
function temporaryName(name: string): string {
  const random = randomBytes(6).toString('hex');
  const full = `.${name}.mcp-push-${random}.tmp`;
  return Buffer.byteLength(full) <= MAX_NAME_BYTES ? full : `.mcp-push-${random}.tmp`;
}

/** Exactly the names `temporaryName` makes; nothing else is ever swept. */
export const TEMPORARY_NAME = /^\.(?:.+\.)?mcp-push-[0-9a-f]{12}\.tmp$/s;

/** Temp files of pushes running in this process, as `<dev>:<ino of the directory>/<name>`. */
const livePushes = new Set<string>();

function liveKey(dir: OpenDirectory, temp: string): string {
  return `${dir.device}/${temp}`;
}

/**
 * Removes the leftovers of killed pushes in one open directory: names matching
 * TEMPORARY_NAME that are regular files with one link, owned by this process's user, and not
 * written by a push running now. Returns the names removed.
 */
async function sweepDirectory(dir: OpenDirectory): Promise<string[]> {
  const removed: string[] = [];
  let names: string[];
  try {
    names = await fs.readdir(dir.entry('.'));
  } catch {
    return removed; // a directory we cannot list holds no temp file of ours
  }
  for (const name of names) {
    if (!TEMPORARY_NAME.test(name) || livePushes.has(liveKey(dir, name))) continue;
    const stat = await fs.lstat(dir.entry(name)).catch(() => undefined);
    if (!stat?.isFile() || stat.nlink !== 1 || stat.uid !== process.getuid?.()) continue;
    await fs.unlink(dir.entry(name)).then(
      () => removed.push(name),
      () => undefined,
    );
  }
  return removed;
}

/**
 * Sweeps the whole files root, as the agent does at start: every directory below it, links
 * not followed. Returns the paths removed. Unreadable directories are skipped.
 */
export async function sweepLeftovers(root: string): Promise<string[]> {
  const removed: string[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const current = pending.pop() as string;
    let entries: Dirent[];
    try {
      entries = await fs.readdir(current, { withFileTypes: true });
    } catch {
      continue;
    }
    if (entries.some((e) => e.isFile() && TEMPORARY_NAME.test(e.name))) {
      const dir = await openPlainDirectory(current);
      if (dir) {
        try {
          removed.push(...(await sweepDirectory(dir)).map((name) => path.join(current, name)));
        } finally {
          await dir.close();
        }
      }
    }
    for (const entry of entries) if (entry.isDirectory()) pending.push(path.join(current, entry.name));
  }
  return removed;
}

async function openPlainDirectory(dir: string): Promise<OpenDirectory | undefined> {
  try {
    const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    return await describeOpenDirectory(handle);
  } catch {
    return undefined;
  }
}

async function writeAll(file: FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.byteLength - offset);
    offset += bytesWritten;
  }
}

export function cancelled(): McpError {
  return new McpError('ABORTED', 'the transfer was cancelled by the client: nothing was written');
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw cancelled();
}

/**
 * Iterates `source` until `signal` aborts: a cancelled client stream may never deliver
 * another message, so each wait also listens for the abort. The listener lives for one wait
 * only: racing every `next()` against one long-lived promise would keep every chunk
 * reachable from that promise until the transfer ends.
 */
async function* abortable<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  while (true) {
    throwIfAborted(signal);
    const next = await nextOrAbort(iterator, signal);
    if (next.done) return;
    yield next.value;
  }
}

function nextOrAbort<T>(iterator: AsyncIterator<T>, signal: AbortSignal): Promise<IteratorResult<T>> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(cancelled());
    signal.addEventListener('abort', onAbort, { once: true });
    iterator.next().then(
      (result) => {
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
