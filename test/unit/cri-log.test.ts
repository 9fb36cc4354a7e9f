/**
 * Reading the last lines of a CRI log file (podman's k8s-file driver) from its end: pieces of
 * a line put back together, the tail, `since`, and the byte cap, on real files written here.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type CriLogOptions, readCriLog } from '../../agent/runtime/cri-log.js';

const dir = mkdtempSync(join(tmpdir(), 'mcp-cri-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Stream = 'stdout' | 'stderr';
type Rec = [Stream, 'P' | 'F', string] | [Stream, 'P' | 'F', string, string];

let files = 0;
/** A log file of `records`, each `[stream, tag, text, time?]`, as conmon writes them. */
function logFile(records: readonly Rec[], tail = ''): string {
  const path = join(dir, `ctr-${files++}.log`);
  const time = (i: number) => `2026-12-01T02:00:${String(i % 60).padStart(2, '0')}.123456789+00:00`;
  const body = records.map(([stream, tag, text, at], i) => `${at ?? time(i)} ${stream} ${tag} ${text}\n`);
  writeFileSync(path, body.join('') + tail);
  return path;
}

const BLOCKS = [7, 64, 1000, 64 * 1024];
async function read(path: string, options: Partial<CriLogOptions> = {}) {
  const reads = await Promise.all(
    BLOCKS.map((blockBytes) =>
      readCriLog(path, { tail: 100, maxBytes: 16384, deadlineMs: 10_000, blockBytes, ...options }),
    ),
  );
  // Whatever the block size, the same answer: records across block boundaries are whole.
  for (const other of reads.slice(1)) expect(other).toEqual(reads[0]);
  return reads[0] as NonNullable<(typeof reads)[0]>;
}

describe('readCriLog', () => {
  it('joins the pieces of a line to the line they belong to', async () => {
    const path = logFile([
      ['stdout', 'F', 'line 1'],
      ['stdout', 'F', 'line 2'],
      ['stdout', 'P', 'li'],
      ['stdout', 'P', 'ne'],
      ['stdout', 'F', ' 3'],
      ['stdout', 'F', 'line 4'],
    ]);
    expect((await read(path)).text).toBe('line 1\nline 2\nline 3\nline 4\n');
    expect(await read(path, { tail: 2 })).toEqual({
      text: 'line 3\nline 4\n',
      truncated: false,
      bytesDropped: 0,
    });
    expect((await read(path, { tail: 1 })).text).toBe('line 4\n');
  });

  it('keeps the lines of stdout and stderr apart, in the order they ended', async () => {
    const path = logFile([
      ['stdout', 'P', 'ab'],
      ['stderr', 'F', 'oops'],
      ['stdout', 'F', 'cd'],
      ['stderr', 'P', 'half'],
    ]);
    expect((await read(path)).text).toBe('oops\nabcd\nhalf');
    expect((await read(path, { tail: 2 })).text).toBe('abcd\nhalf');
  });

  it('shows a line still being written without its end, and not a record torn at the end', async () => {
    const path = logFile(
      [
        ['stdout', 'F', 'one'],
        ['stdout', 'P', 'Password: '],
      ],
      '2026-12-01T02:00:09.1+00:00 stdout F half a rec',
    );
    expect((await read(path)).text).toBe('one\nPassword: ');
    expect((await read(path, { tail: 1 })).text).toBe('Password: ');
  });

  it('reads an empty line, and skips what is not a record', async () => {
    const path = join(dir, 'odd.log');
    writeFileSync(
      path,
      '2026-12-01T02:00:00.1+00:00 stdout F first\ngarbage\n2026-12-01T02:00:01.1+00:00 stdout F\n2026-12-01T02:00:02.1+00:00 stdout F \n2026-12-01T02:00:03.1+00:00 stdout F last\n',
    );
    expect((await read(path)).text).toBe('first\n\n\nlast\n');
  });

  it('reads nothing from before `since`', async () => {
    const path = logFile([
      ['stdout', 'F', 'old', '2026-12-01T01:59:59.999999999+00:00'],
      ['stdout', 'F', 'new', '2026-12-01T02:00:00.000000001+00:00'],
      ['stdout', 'F', 'newer', '2026-12-01T04:00:00+01:00'],
    ]);
    expect((await read(path, { since: new Date('2026-12-01T02:00:00Z') })).text).toBe('new\nnewer\n');
    expect((await read(path, { since: new Date('2026-12-01T02:00:00.001Z') })).text).toBe('newer\n');
    expect((await read(path, { since: new Date('2026-12-02T00:00:00Z') })).text).toBe('');
  });

  it('keeps the newest lines that fit the cap, whole, and counts every older byte of the tail', async () => {
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i + 1}`);
    const path = logFile(lines.map((text) => ['stdout', 'F', text]));
    const capped = await read(path, { maxBytes: 30 });
    expect(capped.text).toBe('line 48\nline 49\nline 50\n');
    expect(capped.truncated).toBe(true);
    const all = lines.map((l) => `${l}\n`).join('');
    expect(capped.bytesDropped).toBe(all.length - capped.text.length);
    // Only the tail's lines count as dropped.
    const tail10 = await read(path, { maxBytes: 30, tail: 10 });
    expect(tail10.bytesDropped).toBe(7 * 'line 41\n'.length);
  });

  it('keeps the end of a line longer than the cap alone, from the first byte of a character', async () => {
    const path = logFile([
      ['stdout', 'F', 'before'],
      ['stdout', 'P', 'é'.repeat(20)],
      ['stdout', 'F', 'éé'],
    ]);
    const capped = await read(path, { maxBytes: 10 });
    expect(capped.text).toBe('éééé\n');
    expect(capped.bytesDropped).toBe('before\n'.length + 44 + 1 - 9);
  });

  it('answers an empty log for a container whose log file is not there yet', async () => {
    expect(await read(join(dir, 'none.log'))).toEqual({ text: '', truncated: false, bytesDropped: 0 });
  });

  it('refuses a log path that is a symbolic link or not a regular file', async () => {
    const link = join(dir, 'link.log');
    symlinkSync(logFile([['stdout', 'F', 'secret']]), link);
    await expect(read(link)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    const fifo = join(dir, 'fifo.log');
    execFileSync('mkfifo', [fifo]);
    await expect(read(fifo)).rejects.toThrow(/is not a regular file/);
  });

  it('stops when the call is cancelled', async () => {
    const path = logFile([['stdout', 'F', 'x']]);
    await expect(read(path, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('gives what a forward reading of the whole file gives, for random logs', async () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 40; round++) {
      const streams: Stream[] = round % 2 === 0 ? ['stdout'] : ['stdout', 'stderr'];
      const records: Rec[] = [];
      for (let i = 0; i < 20 + random(60); i++) {
        const word = 'xyzé'.repeat(random(4)) + String(i);
        records.push([streams[random(streams.length)] ?? 'stdout', random(3) === 0 ? 'P' : 'F', word]);
      }
      const path = logFile(records);
      const tail = 1 + random(30);
      const expected = forward(records).slice(-tail);
      // Two streams: no cap (which line a cut leaves out can differ where their pieces cross).
      const maxBytes = streams.length === 1 ? 1 + random(200) : 1 << 20;
      const got = await read(path, { tail, maxBytes });
      expect(got.text).toBe(capped(expected, maxBytes));
      const all = Buffer.byteLength(expected.join(''));
      expect(got.bytesDropped).toBe(all - Buffer.byteLength(got.text));
    }
  });
});

/** Lines as a forward reader sees them: a piece waits for the next record of its stream. */
function forward(records: readonly Rec[]): string[] {
  const lines: Array<{ end: number; text: string }> = [];
  const open = new Map<Stream, { end: number; text: string }>();
  records.forEach(([stream, tag, text], i) => {
    const line = open.get(stream) ?? { end: i, text: '' };
    line.text += text;
    line.end = i;
    open.set(stream, line);
    if (tag === 'F') {
      line.text += '\n';
      lines.push(line);
      open.delete(stream);
    }
  });
  lines.push(...open.values());
  return lines.sort((a, b) => a.end - b.end).map((line) => line.text);
}

/** The newest whole lines within `maxBytes`, or the end of the newest when it alone is longer. */
function capped(lines: readonly string[], maxBytes: number): string {
  let kept = '';
  for (const line of [...lines].reverse()) {
    if (Buffer.byteLength(kept + line) > maxBytes) {
      if (kept !== '') break;
      const bytes = Buffer.from(line);
      let from = bytes.length - maxBytes;
      while (from < bytes.length && (bytes[from] ?? 0) >> 6 === 0b10) from++;
      return bytes.subarray(from).toString('utf8');
    }
    kept = line + kept;
  }
  return kept;
}
