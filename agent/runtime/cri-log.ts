/**
 * The last lines of a container log file in the CRI format that conmon writes for podman's
 * `k8s-file` driver, read by the agent itself: one record per line,
 * `<RFC 3339 time> <stdout|stderr> <P|F> <text>`, where a `P` record is a piece of a line the
 * next record of the same stream continues and an `F` record ends it.
 *
 * podman 4.3's `logs --tail` joins a `P` piece to the line before it instead of the one it
 * belongs to, so any line conmon split shows up garbled, and it fails a whole read on a record
 * still being written. Reading the file from its end also never chases a container that keeps
 * writing: the read stops at the size the file had when it began.
 */
import { constants, type FileHandle, open } from 'node:fs/promises';
import { FailedPreconditionError, McpError } from '../../core/errors.js';
import type { LogsOptions, LogsRead } from './runtime.js';

const NEWLINE = 0x0a;
const SPACE = 0x20;
const BLOCK_BYTES = 64 * 1024;
/** How often to start again when the file shrinks under the read (conmon's `log_size_max` empties it). */
const READ_ATTEMPTS = 3;
/** conmon writes a record per 8 KiB read at most: anything far longer is not a record. */
const MAX_RECORD_BYTES = 1024 * 1024;

export interface CriLogOptions extends LogsOptions {
  /** Reading past this many ms stops with what was read and says so. */
  readonly deadlineMs: number;
  /** Bytes read per step; small only in tests, to cross record boundaries. */
  readonly blockBytes?: number;
}

/** One log line being assembled from its end: `pieces` held, or all of it counted as dropped. */
interface Line {
  /** Position of its last record, counted from the file's end: lines sort on it. */
  readonly order: number;
  pieces: Buffer[];
  held: number;
  /** Out of the result: the cap was reached before it was whole. */
  released: boolean;
  /** The only line held and longer than the cap: its end is kept, and nothing more of it. */
  cut: boolean;
}

class ShrunkError extends Error {}

export async function readCriLog(path: string, options: CriLogOptions): Promise<LogsRead> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO put in the file's place must not hang the read; it is refused below.
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    // The runtime creates the file when the container first starts.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { text: '', truncated: false, bytesDropped: 0 };
    throw new FailedPreconditionError(
      `cannot open the container's log file ${path}: ${(err as Error).message}`,
    );
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw new FailedPreconditionError(`the container's log file ${path} is not a regular file`);
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const { size } = await handle.stat();
        const read = await readTail(handle, size, options);
        // Emptied and written again while read: blocks from before and after may be mixed.
        if ((await handle.stat()).size < size) throw new ShrunkError();
        return read;
      } catch (err) {
        if (err instanceof ShrunkError && attempt < READ_ATTEMPTS) continue;
        if (err instanceof ShrunkError) {
          throw new McpError(
            'UNAVAILABLE',
            `the container's log file ${path} kept shrinking while read: try again`,
          );
        }
        throw err;
      }
    }
  } finally {
    await handle.close();
  }
}

async function readTail(handle: FileHandle, size: number, options: CriLogOptions): Promise<LogsRead> {
  const started = Date.now();
  const since = options.since?.getTime();
  const blockBytes = options.blockBytes ?? BLOCK_BYTES;
  const lines: Line[] = [];
  /** The line each stream is assembling, from its end back. */
  const assembling = new Map<string, Line>();
  let held = 0;
  let dropped = 0;
  let full = false;
  let order = 0;
  let done = false;

  const add = (line: Line, piece: Buffer): void => {
    if (line.released || line.cut) {
      dropped += piece.length;
      return;
    }
    if (!full && held + piece.length <= options.maxBytes) {
      line.pieces.unshift(piece);
      line.held += piece.length;
      held += piece.length;
      return;
    }
    full = true;
    if (held === line.held) {
      // The newest line alone is over the cap: keep its end, from a character's first byte.
      const from = characterStart(piece, piece.length - (options.maxBytes - held));
      line.pieces.unshift(piece.subarray(from));
      line.held += piece.length - from;
      held += piece.length - from;
      dropped += from;
      line.cut = true;
      return;
    }
    // A line is whole or left out: never its end without its start.
    dropped += line.held + piece.length;
    held -= line.held;
    line.pieces = [];
    line.held = 0;
    line.released = true;
  };

  const newLine = (): Line => {
    const line: Line = { order: order++, pieces: [], held: 0, released: false, cut: false };
    lines.push(line);
    return line;
  };

  const record = (bytes: Buffer): void => {
    const time = bytes.indexOf(SPACE);
    const stream = time === -1 ? -1 : bytes.indexOf(SPACE, time + 1);
    // Not a record (the file was edited, or a crash tore one): skipped, as podman skips it.
    if (stream === -1 || stream + 1 >= bytes.length) return;
    if (since !== undefined) {
      const at = Date.parse(bytes.subarray(0, time).toString('latin1'));
      if (Number.isNaN(at)) return;
      if (at < since) {
        done = true;
        return;
      }
    }
    const name = bytes.subarray(time + 1, stream).toString('latin1');
    // The tag's first flag says whether the record ends its line; the text follows a space.
    const partial = bytes[stream + 1] === 0x50; // 'P'
    const tag = bytes.indexOf(SPACE, stream + 1);
    const text = tag === -1 ? Buffer.alloc(0) : bytes.subarray(tag + 1);
    const current = assembling.get(name);
    if (partial) {
      if (current) {
        add(current, text);
      } else if (lines.length < options.tail) {
        // A piece with no line end after it: the stream's last line, still being written.
        const line = newLine();
        assembling.set(name, line);
        add(line, text);
      }
      return;
    }
    // A line end: whatever this stream assembled is whole, and an older line starts here.
    if (current) assembling.delete(name);
    if (lines.length === options.tail) {
      if (assembling.size === 0) done = true;
      return;
    }
    const line = newLine();
    assembling.set(name, line);
    add(line, Buffer.concat([text, Buffer.from('\n')]));
  };

  let incomplete: string | undefined;
  // The end of the record that starts further back than the block read last.
  let carry = Buffer.alloc(0);
  // Bytes after the last newline are dropped: at the file's end a record conmon is still
  // writing, elsewhere a "record" too long to be one.
  let skipping = true;
  let position = size;
  const block = Buffer.allocUnsafe(blockBytes);
  while (position > 0 && !done) {
    if (options.signal?.aborted) throw new McpError('ABORTED', 'the log read was cancelled');
    if (Date.now() - started > options.deadlineMs) {
      incomplete = `stopped reading after ${options.deadlineMs / 1000} s: set \`since\` nearer to now or lower \`tail\``;
      break;
    }
    const length = Math.min(blockBytes, position);
    position -= length;
    const { bytesRead } = await handle.read(block, 0, length, position);
    if (bytesRead < length) throw new ShrunkError();
    const data = Buffer.concat([block.subarray(0, length), carry]);
    carry = Buffer.alloc(0);
    let newline = data.length - 1;
    if (skipping) {
      newline = data.lastIndexOf(NEWLINE);
      if (newline === -1) continue;
      skipping = false;
    }
    // Records from the newest back, each ending at `newline`.
    while (newline >= 0 && !done) {
      const before = newline === 0 ? -1 : data.lastIndexOf(NEWLINE, newline - 1);
      if (before === -1 && position > 0) {
        carry = data.subarray(0, newline + 1);
        break;
      }
      record(data.subarray(before + 1, newline));
      newline = before;
    }
    if (carry.length > MAX_RECORD_BYTES) {
      carry = Buffer.alloc(0);
      skipping = true;
    }
  }

  const kept = lines.filter((line) => !line.released && line.held > 0).sort((a, b) => b.order - a.order);
  return {
    text: Buffer.concat(kept.flatMap((line) => line.pieces)).toString('utf8'),
    truncated: dropped > 0,
    bytesDropped: dropped,
    ...(incomplete ? { incomplete } : {}),
  };
}

/** The first offset at or after `at` where a UTF-8 character starts (past continuation bytes). */
export function characterStart(bytes: Buffer, at: number): number {
  let from = at;
  while (from < bytes.length && (bytes[from] ?? 0) >> 6 === 0b10) from++;
  return from;
}
