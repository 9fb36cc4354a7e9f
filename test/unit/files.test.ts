/**
 * PushFile and PullFile handlers called directly (no gRPC; the round trip through the real
 * server is in test/integration/files.test.ts), on a real temp directory.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fileSystemError } from '../../agent/files/errors.js';
import { checkFileMode, sweepLeftovers, TEMPORARY_NAME } from '../../agent/files/write.js';
import type { HandlerDeps } from '../../agent/handlers/deps.js';
import { fileHandlers } from '../../agent/handlers/files.js';
import type { CallContext } from '../../agent/server.js';
import { McpError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import type { PullFileResponse, PushFileHeader, PushFileRequest } from '../../gen/mcp/v1/mcp.js';

let root: string;
let handlers: ReturnType<typeof fileHandlers>;
const MAX = 1024 * 1024;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-files-'));
  // A fake: the handlers read only `config.files` of their dependencies.
  const deps = { config: { files: { root, maxFileBytes: MAX, chunkBytes: 1024 } } } as unknown as HandlerDeps;
  handlers = fileHandlers(deps);
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function context(signal = new AbortController().signal): CallContext {
  // A fake call context: the file handlers use only `signal`.
  return { signal, log: silentLogger } as unknown as CallContext;
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

function header(content: Buffer | string, fields: Partial<PushFileHeader> = {}): PushFileRequest {
  return {
    header: {
      service: 'web',
      path: 'conf/app.toml',
      mode: 0,
      sha256: sha256(content),
      size: Buffer.byteLength(content),
      requestId: '',
      ...fields,
    },
  };
}

async function* chunks(...parts: (Buffer | string)[]): AsyncGenerator<PushFileRequest> {
  for (const part of parts) yield { chunk: Buffer.from(part) };
}

function push(content: Buffer | string, fields: Partial<PushFileHeader> = {}, parts?: (Buffer | string)[]) {
  return handlers.pushFile(header(content, fields), chunks(...(parts ?? [content])), context());
}

async function pull(service: string, file: string, signal?: AbortSignal): Promise<PullFileResponse[]> {
  const messages: PullFileResponse[] = [];
  await handlers.pullFile({ service, path: file }, context(signal), async (msg) => {
    messages.push(msg);
  });
  return messages;
}

const destination = () => path.join(root, 'web', 'conf', 'app.toml');

function filesIn(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true }).map(String).sort();
}

async function rejection(promise: Promise<unknown>): Promise<McpError> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(McpError);
  return error as McpError;
}

describe('push', () => {
  it('writes the file atomically with mode 0644 by default, creating the directories 0755', async () => {
    const result = await push('port = 80\n', {}, ['port', ' = 80', '\n']);
    expect(result).toEqual({
      service: 'web',
      path: 'conf/app.toml',
      size: 10,
      sha256: sha256('port = 80\n'),
      mode: 0o644,
    });
    expect(fs.readFileSync(destination(), 'utf8')).toBe('port = 80\n');
    expect(fs.statSync(destination()).mode & 0o7777).toBe(0o644);
    expect(fs.statSync(path.join(root, 'web')).mode & 0o7777).toBe(0o755);
    expect(fs.statSync(path.join(root, 'web', 'conf')).mode & 0o7777).toBe(0o755);
    expect(filesIn(path.join(root, 'web'))).toEqual(['conf', 'conf/app.toml']);
  });

  it('sets the mode asked for, whatever the umask', async () => {
    const old = process.umask(0o077);
    try {
      await push('key', { path: 'tls/key.pem', mode: 0o640 });
      await push('#!/bin/sh\n', { path: 'bin/run', mode: 0o755 });
    } finally {
      process.umask(old);
    }
    expect(fs.statSync(path.join(root, 'web', 'tls', 'key.pem')).mode & 0o7777).toBe(0o640);
    expect(fs.statSync(path.join(root, 'web', 'bin', 'run')).mode & 0o7777).toBe(0o755);
    expect(fs.statSync(path.join(root, 'web', 'bin')).mode & 0o7777).toBe(0o755);
  });

  it('replaces an existing file and keeps it intact when the new content does not match its digest', async () => {
    await push('old\n');
    const error = await rejection(push('new content\n', { sha256: sha256('something else') }));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toBe(
      `the content's SHA-256 is ${sha256('new content\n')}, the header said ${sha256('something else')}: nothing was written`,
    );
    expect(fs.readFileSync(destination(), 'utf8')).toBe('old\n');
    expect(filesIn(path.join(root, 'web', 'conf'))).toEqual(['app.toml']);
    await push('new\n');
    expect(fs.readFileSync(destination(), 'utf8')).toBe('new\n');
  });

  it('leaves nothing at the destination, and no temp file, for a wrong digest', async () => {
    const error = await rejection(push('content', { sha256: 'a'.repeat(64) }));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(fs.existsSync(destination())).toBe(false);
    // The directories made for the push go too: nothing was written.
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('accepts an upper-case digest and an empty file', async () => {
    await push('x', { sha256: sha256('x').toUpperCase() });
    const empty = await push('', { path: 'empty' }, []);
    expect(empty.size).toBe(0);
    expect(fs.readFileSync(path.join(root, 'web', 'empty'))).toHaveLength(0);
  });

  it('refuses more bytes than the header said with RESOURCE_EXHAUSTED, leaving nothing', async () => {
    const error = await rejection(push('12345', { size: 3 }));
    expect(error.code).toBe('RESOURCE_EXHAUSTED');
    expect(error.message).toContain('longer than the 3 bytes the header announced');
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('refuses fewer bytes than the header said', async () => {
    const error = await rejection(push('12345', { size: 9 }));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toBe('the content ended after 5 bytes, the header said 9: nothing was written');
  });

  it('refuses a file over files.max_file_bytes before reading any content or creating anything', async () => {
    let read = false;
    const rest = (async function* () {
      read = true;
      yield { chunk: Buffer.alloc(1) };
    })();
    const error = await rejection(handlers.pushFile(header('x', { size: MAX + 1 }), rest, context()));
    expect(error.code).toBe('RESOURCE_EXHAUSTED');
    expect(error.message).toContain(`over this node's limit of ${MAX}`);
    expect(read).toBe(false);
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it.each([
    [{ header: undefined }, 'the first message of a push must be the header'],
    [header('x', { sha256: '' }), 'sha256 is required'],
    [header('x', { sha256: 'abc' }), "sha256 'abc' is not a SHA-256"],
    [header('x', { size: -1 }), 'size -1 is not a byte count'],
    [header('x', { path: '../x' }), 'leaves the service directory'],
    [header('x', { service: 'Web' }), 'service name'],
    [header('x', { mode: 0o4755 }), 'sets the setuid, setgid or sticky bit'],
    [header('x', { mode: 0o666 }), 'writable by every user'],
    [header('x', { mode: 644 }), 'did you mean 0644, which is 420 in decimal?'],
    [header('x', { mode: 0o10644 }), 'is not a file mode'],
  ])('refuses a bad header before touching anything: %#', async (first, message) => {
    const error = await rejection(handlers.pushFile(first as PushFileRequest, chunks('x'), context()));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toContain(message);
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('refuses a second header', async () => {
    const rest = (async function* () {
      yield { chunk: Buffer.from('x') };
      yield header('x');
    })();
    const error = await rejection(handlers.pushFile(header('xx'), rest, context()));
    expect(error.message).toContain('a push has one header');
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('keeps directories that were there before a failed push', async () => {
    await push('x', { path: 'conf/other.toml' });
    await rejection(push('content', { path: 'conf/new/deeper/app.toml', sha256: 'a'.repeat(64) }));
    expect(filesIn(path.join(root, 'web'))).toEqual(['conf', 'conf/other.toml']);
  });

  it('refuses to replace a directory', async () => {
    fs.mkdirSync(path.join(root, 'web', 'conf', 'app.toml'), { recursive: true });
    const error = await rejection(push('x'));
    expect(error.message).toContain('is a directory');
  });

  it('writes through a link that stays inside, and keeps the link', async () => {
    await push('v1', { path: 'releases/v1.toml' });
    fs.symlinkSync('releases/v1.toml', path.join(root, 'web', 'current.toml'));
    const result = await push('v1 changed', { path: 'current.toml' });
    expect(result.path).toBe('current.toml');
    expect(fs.lstatSync(path.join(root, 'web', 'current.toml')).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(path.join(root, 'web', 'releases', 'v1.toml'), 'utf8')).toBe('v1 changed');
  });

  it('stops and removes the temp file when the call is cancelled mid-stream', async () => {
    await push('old\n');
    const abort = new AbortController();
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => {
      release = resolve;
    });
    const rest = (async function* () {
      yield { chunk: Buffer.from('half') };
      await blocked; // the client goes quiet, then cancels
      yield { chunk: Buffer.from(' and the rest') };
    })();
    const pushing = handlers.pushFile(header('half and the rest'), rest, context(abort.signal));
    await waitFor(() => filesIn(path.join(root, 'web', 'conf')).some((f) => f.endsWith('.tmp')));
    abort.abort();
    const error = await rejection(pushing);
    release();
    expect(error.code).toBe('ABORTED');
    expect(fs.readFileSync(destination(), 'utf8')).toBe('old\n');
    expect(filesIn(path.join(root, 'web', 'conf'))).toEqual(['app.toml']);
  });

  it('refuses to replace a hard-linked file, leaving both names as they were', async () => {
    await push('x');
    const outside = path.join(root, 'outside');
    fs.writeFileSync(outside, 'outside\n');
    fs.rmSync(destination());
    fs.linkSync(outside, destination());
    const error = await rejection(push('new\n'));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toMatch(/has 2 hard links.*is not replaced/);
    expect(fs.readFileSync(outside, 'utf8')).toBe('outside\n');
    expect(filesIn(path.join(root, 'web', 'conf'))).toEqual(['app.toml']);
  });

  it('sweeps temp files of killed pushes in the directory it pushes to, and nothing else', async () => {
    await push('x');
    const dir = path.join(root, 'web', 'conf');
    const leftovers = ['.app.toml.mcp-push-0123456789ab.tmp', '.mcp-push-ba9876543210.tmp'];
    const others = [
      '.app.toml.0123456789ab.tmp',
      '.app.toml.mcp-push-XYZ.tmp',
      'mcp-push-0123456789ab.tmp',
      'notes.tmp',
    ];
    for (const name of [...leftovers, ...others]) fs.writeFileSync(path.join(dir, name), 'partial');
    fs.symlinkSync('/etc/passwd', path.join(dir, '.x.mcp-push-aaaaaaaaaaaa.tmp'));
    expect(leftovers.every((n) => TEMPORARY_NAME.test(n))).toBe(true);
    expect(others.some((n) => TEMPORARY_NAME.test(n))).toBe(false);
    await push('y', { path: 'conf/other.toml' });
    expect(filesIn(dir)).toEqual(
      [...others, '.x.mcp-push-aaaaaaaaaaaa.tmp', 'app.toml', 'other.toml'].sort(),
    );
  });

  it('sweeps the whole files root at start, leaving a live push and other files alone', async () => {
    await push('x');
    const deep = path.join(root, 'web', 'a', 'b');
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, '.f.mcp-push-0123456789ab.tmp'), 'partial');
    fs.writeFileSync(path.join(deep, 'keep.tmp'), 'kept');
    const removed = await sweepLeftovers(root);
    expect(removed).toEqual([path.join(deep, '.f.mcp-push-0123456789ab.tmp')]);
    expect(fs.readdirSync(deep)).toEqual(['keep.tmp']);
  });

  it('keeps the owner of a file it replaces', async () => {
    await push('old');
    fs.chownSync(destination(), 65534, 65534);
    await push('new');
    const stat = fs.statSync(destination());
    if (process.getuid?.() === 0) expect([stat.uid, stat.gid]).toEqual([65534, 65534]);
  });
});

describe('pull', () => {
  it('sends size and mode, the content in chunks, then its SHA-256', async () => {
    const content = Buffer.alloc(2500, 7);
    await push(content, { mode: 0o600 });
    const messages = await pull('web', 'conf/app.toml');
    expect(messages[0]).toEqual({ info: { size: 2500, mode: 0o600 } });
    const sent = messages.slice(1, -1).map((m) => m.chunk as Buffer);
    expect(sent.map((c) => c.length)).toEqual([1024, 1024, 452]);
    expect(Buffer.concat(sent)).toEqual(content);
    expect(messages.at(-1)).toEqual({ sha256: sha256(content) });
  });

  it('sends an empty file as info and digest', async () => {
    await push('', { path: 'empty' }, []);
    expect(await pull('web', 'empty')).toEqual([{ info: { size: 0, mode: 0o644 } }, { sha256: sha256('') }]);
  });

  it('is NOT_FOUND for a missing file, directory or service', async () => {
    await push('x');
    for (const [service, file, message] of [
      ['web', 'conf/nope.toml', "file 'conf/nope.toml' does not exist in"],
      ['web', 'nope/app.toml', "directory 'nope' does not exist in"],
      ['db', 'app.toml', "service 'db' has no directory"],
    ] as const) {
      const error = await rejection(pull(service, file));
      expect(error.code).toBe('NOT_FOUND');
      expect(error.message).toContain(message);
    }
  });

  it('refuses a directory and a FIFO (without hanging on it)', async () => {
    await push('x');
    await execa('mkfifo', [path.join(root, 'web', 'pipe')]);
    expect((await rejection(pull('web', 'conf'))).message).toContain('is a directory');
    expect((await rejection(pull('web', 'pipe'))).message).toContain('is not a regular file');
  });

  it('refuses a hard link, which may be a file outside, saying what to do', async () => {
    await push('x');
    const outside = path.join(root, 'outside-secret');
    fs.writeFileSync(outside, 'secret\n');
    fs.linkSync(outside, path.join(root, 'web', 'hard-secret'));
    const error = await rejection(pull('web', 'hard-secret'));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toMatch(
      /has 2 hard links, so it may be a file outside the service directory, and is not pulled: .*cp FILE FILE\.new/,
    );
  });

  it('refuses a Unix socket and a character device as INVALID_ARGUMENT, without opening them', async () => {
    await push('x');
    const socketPath = path.join(root, 'web', 'sock');
    const server = net.createServer().listen(socketPath);
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const error = await rejection(pull('web', 'sock'));
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.message).toContain('is not a regular file');
    } finally {
      server.close();
    }
    fs.symlinkSync('/dev/null', path.join(root, 'web', 'null'));
    // A link to /dev/null leaves the directory; a device node inside needs root, checked by type.
    expect((await rejection(pull('web', 'null'))).code).toBe('INVALID_ARGUMENT');
  });

  it('refuses a path that passes PATH_MAX once joined to the root as INVALID_ARGUMENT', async () => {
    // 4081 bytes: within the lexical limit, over PATH_MAX with the files root in front.
    const deep = Array.from({ length: 16 }, () => 'd'.repeat(254)).join('/');
    for (const error of [
      await rejection(pull('web', `${deep}/f`)),
      await rejection(push('x', { path: `${deep}/f` })),
    ]) {
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.message).toMatch(/bytes long once joined to .*: use a shorter path/);
    }
  });

  it.each([
    ['ENAMETOOLONG', 'INVALID_ARGUMENT'],
    ['ENXIO', 'INVALID_ARGUMENT'],
    ['ENOTDIR', 'INVALID_ARGUMENT'],
    ['EISDIR', 'INVALID_ARGUMENT'],
    ['ELOOP', 'INVALID_ARGUMENT'],
    ['ENOENT', 'NOT_FOUND'],
    ['EACCES', 'FAILED_PRECONDITION'],
    ['EPERM', 'FAILED_PRECONDITION'],
    ['EROFS', 'FAILED_PRECONDITION'],
    ['EBUSY', 'FAILED_PRECONDITION'],
    ['ENOSPC', 'RESOURCE_EXHAUSTED'],
    ['EFBIG', 'RESOURCE_EXHAUSTED'],
  ])('maps %s from the file system to %s, never INTERNAL', (errno, code) => {
    const err = Object.assign(new Error(`${errno}: from the kernel`), { code: errno });
    const mapped = fileSystemError(err, { relative: 'conf/app.toml', shown: '/srv/web/' });
    expect(mapped).toBeInstanceOf(McpError);
    expect((mapped as McpError).code).toBe(code);
    expect((mapped as McpError).message).toContain('/srv/web/');
  });

  it('refuses a link that leaves the service directory', async () => {
    await push('x');
    fs.symlinkSync('/etc/passwd', path.join(root, 'web', 'passwd'));
    const error = await rejection(pull('web', 'passwd'));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toBe(
      `path 'passwd' leaves the service directory: give a path relative to ${root}/web/`,
    );
  });

  it('stops when the call is cancelled', async () => {
    await push(Buffer.alloc(10_000));
    const abort = new AbortController();
    const messages: PullFileResponse[] = [];
    const error = await rejection(
      handlers.pullFile({ service: 'web', path: 'conf/app.toml' }, context(abort.signal), async (msg) => {
        messages.push(msg);
        if (messages.length === 3) abort.abort();
      }),
    );
    expect(error.code).toBe('ABORTED');
    expect(messages).toHaveLength(3);
  });
});

describe('checkFileMode', () => {
  it('accepts the usual modes and maps 0 to 0644', () => {
    for (const mode of [0o600, 0o640, 0o644, 0o664, 0o700, 0o750, 0o755, 0o775, 0o400, 0o444]) {
      expect(checkFileMode(mode)).toBe(mode);
    }
    expect(checkFileMode(0)).toBe(0o644);
  });

  it('refuses setuid, setgid, sticky and world-writable modes', () => {
    for (const mode of [0o4755, 0o2755, 0o1777, 0o6755, 0o777, 0o666, 0o646, 0o602]) {
      expect(() => checkFileMode(mode)).toThrow(McpError);
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
