/**
 * PushFile and PullFile through the real agent: real TLS gRPC, real tokens, the guard, a temp
 * files root. The crash test runs the built agent (`dist/agent/main.js server`, so run
 * `npm run build` first) in a child process and SIGKILLs it in the middle of a push.
 */

import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type ClientWritableStream, type Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  McpAgentServiceClient,
  PullFileRequest,
  PullFileResponse,
  PushFileHeader,
  PushFileRequest,
  PushFileResponse,
} from '../../gen/mcp/v1/mcp.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';

const MiB = 1024 * 1024;
const repo = new URL('../..', import.meta.url).pathname;

/** Deterministic pseudo-random content (AES-256-CTR keystream), generated a chunk at a time. */
function* content(size: number, seed: string, chunkBytes = 256 * 1024): Generator<Buffer> {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(chunkBytes);
  for (let offset = 0; offset < size; offset += chunkBytes) {
    const length = Math.min(chunkBytes, size - offset);
    yield cipher.update(length === chunkBytes ? zeros : zeros.subarray(0, length));
  }
}

function digestOf(chunks: Iterable<Buffer>): string {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
}

interface Push {
  call: ClientWritableStream<PushFileRequest>;
  /** Writes one message, waiting while the stream is full; rejects once the call has failed. */
  write(msg: PushFileRequest): Promise<void>;
  result: Promise<PushFileResponse>;
}

function startPush(client: McpAgentServiceClient, md: Metadata): Push {
  let call!: ClientWritableStream<PushFileRequest>;
  const result = new Promise<PushFileResponse>((resolve, reject) => {
    call = client.pushFile(md, (err, res) => (err ? reject(err) : resolve(res as PushFileResponse)));
  });
  result.catch(() => undefined);
  return {
    call,
    result,
    async write(msg) {
      if (call.write(msg)) return;
      await Promise.race([new Promise((resolve) => call.once('drain', resolve)), result]);
    },
  };
}

async function push(
  client: McpAgentServiceClient,
  md: Metadata,
  header: Partial<PushFileHeader> & Pick<PushFileHeader, 'path' | 'sha256' | 'size'>,
  chunks: Iterable<Buffer>,
): Promise<PushFileResponse> {
  const p = startPush(client, md);
  await p.write({ header: { service: 'web', mode: 0, requestId: '', ...header } });
  let failed = false;
  p.result.catch(() => {
    failed = true;
  });
  for (const chunk of chunks) {
    if (failed) break;
    await p.write({ chunk });
  }
  p.call.end();
  return p.result;
}

interface Pulled {
  info: PullFileResponse['info'];
  size: number;
  /** SHA-256 of the chunks received. */
  digest: string;
  /** The digest the agent sent last. */
  sha256: string | undefined;
  chunks: number;
  content?: Buffer;
}

async function pull(
  client: McpAgentServiceClient,
  md: Metadata,
  req: PullFileRequest,
  keep = false,
  deadlineSeconds = 60,
): Promise<Pulled> {
  const hash = createHash('sha256');
  const kept: Buffer[] = [];
  const pulled: Pulled = { info: undefined, size: 0, digest: '', sha256: undefined, chunks: 0 };
  // A deadline, so a stream that never gets its status fails here instead of hanging.
  const call = client.pullFile(req, md, { deadline: Date.now() + deadlineSeconds * 1000 });
  for await (const msg of call as AsyncIterable<PullFileResponse>) {
    if (msg.info) pulled.info = msg.info;
    if (msg.chunk) {
      hash.update(msg.chunk);
      pulled.size += msg.chunk.length;
      pulled.chunks += 1;
      if (keep) kept.push(msg.chunk);
    }
    if (msg.sha256 !== undefined) pulled.sha256 = msg.sha256;
  }
  pulled.digest = hash.digest('hex');
  if (keep) pulled.content = Buffer.concat(kept);
  return pulled;
}

function grpcError(err: unknown): ServiceError {
  expect(err).toBeInstanceOf(Error);
  return err as ServiceError;
}

function entries(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

describe('files through the real agent (in-process, TLS gRPC)', () => {
  let agent: TestAgent;
  let client: McpAgentServiceClient;
  let md: Metadata;

  beforeAll(async () => {
    agent = await startTestAgent({ files: { max_file_bytes: 200 * MiB } });
    client = agent.client();
    md = await agent.auth({ roles: ['operator'] });
  });

  afterAll(async () => {
    await agent?.stop();
  });

  it('pushes and pulls a 100 MB file with matching SHA-256', async () => {
    const size = 100 * 1000 * 1000;
    const sha256 = digestOf(content(size, 'round trip'));
    const pushed = await push(
      client,
      md,
      { path: 'data/blob.bin', sha256, size, mode: 0o640 },
      content(size, 'round trip'),
    );
    expect(pushed).toEqual({ service: 'web', path: 'data/blob.bin', size, sha256, mode: 0o640 });
    const onDisk = path.join(agent.filesRoot, 'web', 'data', 'blob.bin');
    expect(fs.statSync(onDisk).size).toBe(size);
    expect(fs.statSync(onDisk).mode & 0o7777).toBe(0o640);

    const pulled = await pull(client, md, { service: 'web', path: 'data/blob.bin' });
    expect(pulled.info).toEqual({ size, mode: 0o640 });
    expect(pulled.size).toBe(size);
    expect(pulled.digest).toBe(sha256);
    expect(pulled.sha256).toBe(sha256);
    expect(pulled.chunks).toBe(Math.ceil(size / 262_144)); // files.chunk_bytes default
    expect(entries(path.join(agent.filesRoot, 'web', 'data'))).toEqual(['blob.bin']);
  }, 120_000);

  it('leaves nothing at the destination, and no temp file, when the expected digest is wrong', async () => {
    const size = 3 * MiB;
    const wrong = digestOf(content(size, 'something else'));
    const error = grpcError(
      await push(
        client,
        md,
        { path: 'wrong/digest.bin', sha256: wrong, size },
        content(size, 'wrong digest'),
      ).catch((err: unknown) => err),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toBe(
      `the content's SHA-256 is ${digestOf(content(size, 'wrong digest'))}, the header said ${wrong}: nothing was written`,
    );
    // Not even the directory made for it: nothing was written.
    expect(fs.existsSync(path.join(agent.filesRoot, 'web', 'wrong'))).toBe(false);
  });

  it('keeps the old file when a replacement fails its digest', async () => {
    const old = Buffer.from('listen = 80\n');
    await push(client, md, { path: 'app.toml', sha256: digestOf([old]), size: old.length }, [old]);
    const next = Buffer.from('listen = 8080\n');
    await expect(
      push(client, md, { path: 'app.toml', sha256: digestOf([old]), size: next.length }, [next]),
    ).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    const pulled = await pull(client, md, { service: 'web', path: 'app.toml' }, true);
    expect(pulled.content?.toString()).toBe('listen = 80\n');
    expect(entries(path.join(agent.filesRoot, 'web')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses a file over files.max_file_bytes with RESOURCE_EXHAUSTED before any content', async () => {
    const error = grpcError(
      await push(client, md, { path: 'huge.bin', sha256: 'a'.repeat(64), size: 201 * MiB }, []).catch(
        (err: unknown) => err,
      ),
    );
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toContain("over this node's limit of 209715200 (files.max_file_bytes)");
  });

  it('refuses hostile paths with the message the caller needs', async () => {
    fs.mkdirSync(path.join(agent.filesRoot, 'web'), { recursive: true }); // as a first push would leave it
    const error = grpcError(
      await push(client, md, { path: '../../etc/cron.d/x', sha256: digestOf([]), size: 0 }, []).catch(
        (err: unknown) => err,
      ),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toBe(
      `path '../../etc/cron.d/x' leaves the service directory: give a path relative to ${agent.filesRoot}/web/`,
    );
    fs.symlinkSync('/etc', path.join(agent.filesRoot, 'web', 'etc'));
    const pullError = grpcError(
      await pull(client, md, { service: 'web', path: 'etc/passwd' }, false, 10).catch((err: unknown) => err),
    );
    expect(pullError.code).toBe(status.INVALID_ARGUMENT);
    expect(pullError.details).toContain("path 'etc/passwd' leaves the service directory");
  });

  it('refuses a hard link to a file outside, on pull and as a push destination, keeping the outside file', async () => {
    const outside = path.join(agent.dataDir, 'outside-secret');
    fs.writeFileSync(outside, 'the secret\n');
    fs.mkdirSync(path.join(agent.filesRoot, 'web'), { recursive: true });
    fs.linkSync(outside, path.join(agent.filesRoot, 'web', 'hard-secret'));
    const pullError = grpcError(
      await pull(client, md, { service: 'web', path: 'hard-secret' }, true, 10).catch((err: unknown) => err),
    );
    expect(pullError.code).toBe(status.INVALID_ARGUMENT);
    expect(pullError.details).toContain(
      'has 2 hard links, so it may be a file outside the service directory',
    );
    const body = Buffer.from('replaced\n');
    const pushError = grpcError(
      await push(client, md, { path: 'hard-secret', sha256: digestOf([body]), size: body.length }, [
        body,
      ]).catch((err: unknown) => err),
    );
    expect(pushError.code).toBe(status.INVALID_ARGUMENT);
    expect(pushError.details).toContain('is not replaced');
    expect(fs.readFileSync(outside, 'utf8')).toBe('the secret\n');
    expect(fs.statSync(outside).nlink).toBe(2);
  });

  it('refuses a Unix socket, a FIFO and a path past PATH_MAX with INVALID_ARGUMENT, never INTERNAL', async () => {
    const dir = path.join(agent.filesRoot, 'web');
    fs.mkdirSync(dir, { recursive: true });
    const server = net.createServer().listen(path.join(dir, 'app.sock'));
    await new Promise((resolve) => server.once('listening', resolve));
    execFileSync('mkfifo', [path.join(dir, 'app.fifo')]);
    const deep = `${Array.from({ length: 16 }, () => 'd'.repeat(254)).join('/')}/f`;
    try {
      for (const file of ['app.sock', 'app.fifo', deep]) {
        const error = grpcError(
          await pull(client, md, { service: 'web', path: file }, false, 10).catch((err: unknown) => err),
        );
        expect(error.code, file.slice(0, 20)).toBe(status.INVALID_ARGUMENT);
      }
      const error = grpcError(
        await push(client, md, { path: deep, sha256: digestOf([]), size: 0 }, []).catch(
          (err: unknown) => err,
        ),
      );
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.details).toContain('use a shorter path');
    } finally {
      server.close();
    }
  });

  it('is NOT_FOUND for a pull of a missing file', async () => {
    fs.mkdirSync(path.join(agent.filesRoot, 'web'), { recursive: true }); // the service has files, not this one
    const error = grpcError(
      await pull(client, md, { service: 'web', path: 'nope.txt' }, false, 10).catch((err: unknown) => err),
    );
    expect(error.code).toBe(status.NOT_FOUND);
    expect(error.details).toBe(`file 'nope.txt' does not exist in ${agent.filesRoot}/web/: check the path`);
  });

  it('needs file.push: a viewer is refused before anything is written', async () => {
    const viewer = await agent.auth({ roles: ['viewer'], subject: 'just-looking' });
    const body = Buffer.from('x');
    const error = grpcError(
      await push(client, viewer, { path: 'viewer.txt', sha256: digestOf([body]), size: 1 }, [body]).catch(
        (err: unknown) => err,
      ),
    );
    expect(error.code).toBe(status.PERMISSION_DENIED);
    expect(fs.existsSync(path.join(agent.filesRoot, 'web', 'viewer.txt'))).toBe(false);
  });
});

const built = fs.existsSync(path.join(repo, 'dist/agent/main.js'));

describe.skipIf(!built && !process.env.CI)('an agent killed in the middle of a push (child process)', () => {
  let dataDir: string;
  let agent: TestAgent | undefined;

  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-files-kill-'));
  });

  afterAll(async () => {
    await agent?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('leaves the old file intact and nothing partial under its name', async () => {
    agent = await startTestAgent({ process: true, dataDir });
    const client = agent.client();
    const md = await agent.auth({ roles: ['operator'] });
    const old = Buffer.from('the old content\n');
    await push(client, md, { path: 'data/state.bin', sha256: digestOf([old]), size: old.length }, [old]);

    const size = 64 * MiB;
    const sha256 = digestOf(content(size, 'killed'));
    const p = startPush(client, md);
    await p.write({
      header: { service: 'web', path: 'data/state.bin', mode: 0, sha256, size, requestId: '' },
    });
    const dir = path.join(agent.filesRoot, 'web', 'data');
    const temps = () => entries(dir).filter((f) => f.startsWith('.state.bin.') && f.endsWith('.tmp'));
    let sent = 0;
    for (const chunk of content(size, 'killed')) {
      await p.write({ chunk });
      sent += chunk.length;
      if (sent >= 16 * MiB) break;
    }
    // Kill once part of the new content is on disk in the temp file.
    await waitFor(() => temps().some((f) => fs.statSync(path.join(dir, f)).size >= 4 * MiB), 20_000);
    const child = agent.child!;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const error = grpcError(await p.result.catch((err: unknown) => err));
    expect([status.UNAVAILABLE, status.CANCELLED, status.INTERNAL]).toContain(error.code);

    expect(fs.readFileSync(path.join(dir, 'state.bin'))).toEqual(old);
    // Only the destination under its own name; the killed push can leave its hidden temp file.
    expect(entries(dir).filter((f) => !temps().includes(f))).toEqual(['state.bin']);

    // A restarted agent serves the old content.
    agent = await startTestAgent({ process: true, dataDir });
    const again = agent.client();
    const pulled = await pull(
      again,
      await agent.auth({ roles: ['operator'] }),
      { service: 'web', path: 'data/state.bin' },
      true,
    );
    expect(pulled.content).toEqual(old);
    expect(pulled.sha256).toBe(digestOf([old]));
  }, 120_000);
});

describe.skipIf(!built && !process.env.CI)('temp files of killed pushes (child process)', () => {
  let dataDir: string;
  let agent: TestAgent | undefined;

  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-files-leftover-'));
  });

  afterAll(async () => {
    await agent?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  /** Starts a 32 MiB push, waits until its temp file holds 2 MiB, SIGKILLs the agent. */
  async function killMidPush(a: TestAgent, name: string): Promise<void> {
    const client = a.client();
    const md = await a.auth({ roles: ['operator'] });
    const size = 32 * MiB;
    const sha256 = digestOf(content(size, name));
    const p = startPush(client, md);
    await p.write({ header: { service: 'web', path: `data/${name}`, mode: 0, sha256, size, requestId: '' } });
    const dir = path.join(a.filesRoot, 'web', 'data');
    let sent = 0;
    for (const chunk of content(size, name)) {
      await p.write({ chunk });
      sent += chunk.length;
      if (sent >= 8 * MiB) break;
    }
    await waitFor(
      () =>
        entries(dir).some(
          (f) => f.startsWith(`.${name}.mcp-push-`) && fs.statSync(path.join(dir, f)).size >= 2 * MiB,
        ),
      20_000,
    );
    const child = a.child!;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    await p.result.catch(() => undefined);
  }

  it('are swept at restart and before a push into the same directory; other files stay', async () => {
    agent = await startTestAgent({ process: true, dataDir });
    const dir = path.join(agent.filesRoot, 'web', 'data');
    await killMidPush(agent, 'one.bin');
    const temps = () => entries(dir).filter((f) => f.endsWith('.tmp'));
    expect(temps()).toHaveLength(1);
    // Look-alikes that are not the agent's: never removed.
    const lookAlikes = ['.one.bin.0123456789ab.tmp', 'one.bin.mcp-push-0123456789ab.tmp', 'keep.tmp'];
    for (const f of lookAlikes) fs.writeFileSync(path.join(dir, f), 'mine');

    // Restart: the start-up sweep removes the leftover.
    agent = await startTestAgent({ process: true, dataDir });
    await waitFor(() => temps().every((f) => lookAlikes.includes(f)), 10_000);
    expect(entries(dir).sort()).toEqual([...lookAlikes].sort());

    // Crash again, then (without a restart sweep in between) a push into the same directory.
    await killMidPush(agent, 'two.bin');
    agent = await startTestAgent({ process: true, dataDir });
    // Once the start-up sweep is done, a leftover appears that only the pre-push sweep can see.
    await waitFor(() => temps().every((f) => lookAlikes.includes(f)), 10_000);
    const leftover = path.join(dir, '.three.bin.mcp-push-0123456789ab.tmp');
    fs.writeFileSync(leftover, 'partial', { mode: 0o600 });
    const body = Buffer.from('retried\n');
    await push(
      agent.client(),
      await agent.auth({ roles: ['operator'] }),
      {
        path: 'data/retry.bin',
        sha256: digestOf([body]),
        size: body.length,
      },
      [body],
    );
    expect(fs.existsSync(leftover)).toBe(false);
    expect(entries(dir).sort()).toEqual([...lookAlikes, 'retry.bin'].sort());
  }, 120_000);
});

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
