/**
 * push_file and pull_file: the connector's side of PushFile (a client stream: header, then
 * chunks) and PullFile (a server stream: info, chunks, then the SHA-256).
 *
 * Content comes inline (`content`, `contentBase64`) or from a file, and goes back inline when
 * small enough or into a file. Files on the operator's machine are confined to one local
 * directory (`[files] local_dir`): a tool call must not read `~/.ssh/id_ed25519` or write
 * `~/.bashrc` because a model was told to. Paths follow the agent's lexical rules
 * (core/paths.ts), and links are resolved and must stay inside. A file to upload with more
 * than one hard link is refused: it may be an outside file under a second name.
 */
import { createHash, randomUUID } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  McpError,
  NotFoundError,
  ResourceExhaustedError,
} from '../core/errors.js';
import { PULL_FILE_METHOD, PUSH_FILE_METHOD } from '../core/file-chunks.js';
import { checkRelativePath, isInside } from '../core/paths.js';
import * as pb from '../gen/mcp/v1/mcp.js';
import type { AgentConnection, CallSettings, RpcBinding } from './agent-client.js';

/** Bytes per PushFile chunk: large enough that per-message costs vanish, well under the agent's 8 MiB limit. */
export const PUSH_CHUNK_BYTES = 1024 * 1024;

/** The one local directory the file tools may read from and write to. */
export class LocalDirectory {
  constructor(readonly dir: string) {}

  /** A regular file inside the directory, for push_file. */
  async fileToRead(localPath: string): Promise<{ file: string; size: number }> {
    const boundary = await this.boundary(false);
    const components = checkRelativePath(localPath, this.dir);
    let real: string;
    try {
      real = await fs.realpath(path.join(boundary, ...components));
    } catch (err) {
      throw this.unusable(localPath, err);
    }
    if (!isInside(boundary, real)) throw this.leaves(localPath);
    const stat = await fs.stat(real).catch((err: unknown) => {
      throw this.unusable(localPath, err);
    });
    if (!stat.isFile())
      throw new InvalidArgumentError(`localPath '${localPath}' in ${this.dir} is not a regular file`);
    // A hard link is the same file as its other names, which may be outside the directory
    // (`ln ~/.ssh/id_ed25519 files/key`): no path check can see that, so it is refused.
    if (stat.nlink > 1) {
      throw new InvalidArgumentError(
        `localPath '${localPath}' in ${this.dir} has ${stat.nlink} hard links, so it may be a file outside that directory, and is not uploaded: copy the content into a new file (cp FILE FILE.new && mv FILE.new FILE) and push that`,
      );
    }
    return { file: real, size: stat.size };
  }

  /**
   * Where pull_file saves `localPath`: its directory, created as needed inside the local
   * directory, and the file name. The file is written next to it and renamed into place.
   */
  async fileToWrite(localPath: string): Promise<{ parent: string; name: string; shown: string }> {
    let current = await this.boundary(true);
    const boundary = current;
    const components = checkRelativePath(localPath, this.dir);
    const name = components.pop() ?? '';
    for (const part of components) {
      const next = path.join(current, part);
      const stat = await fs.lstat(next).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (stat === undefined) {
        await fs.mkdir(next, { mode: 0o700 });
        current = next;
        continue;
      }
      const real = stat.isSymbolicLink() ? await fs.realpath(next) : next;
      if (!isInside(boundary, real)) throw this.leaves(localPath);
      if (!(await fs.stat(real)).isDirectory()) {
        throw new InvalidArgumentError(
          `localPath '${localPath}': '${part}' in ${this.dir} is not a directory`,
        );
      }
      current = real;
    }
    const existing = await fs.stat(path.join(current, name)).catch(() => undefined);
    if (existing?.isDirectory()) {
      throw new InvalidArgumentError(`localPath '${localPath}' in ${this.dir} is a directory: name a file`);
    }
    return { parent: current, name, shown: path.join(this.dir, ...components, name) };
  }

  private async boundary(create: boolean): Promise<string> {
    if (create) await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    try {
      return await fs.realpath(this.dir);
    } catch (err) {
      throw new FailedPreconditionError(
        `the local directory ${this.dir} ([files] local_dir) cannot be used: ${(err as Error).message}`,
      );
    }
  }

  /** What the file system said about `localPath`, as an error the caller can act on. */
  private unusable(localPath: string, err: unknown): unknown {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return new NotFoundError(`localPath '${localPath}': no such file in ${this.dir}`);
    if (code === 'EACCES' || code === 'EPERM') {
      return new FailedPreconditionError(
        `localPath '${localPath}' in ${this.dir} cannot be read (${code}): fix its permissions`,
      );
    }
    if (code === 'ENOTDIR' || code === 'ENAMETOOLONG' || code === 'ELOOP') {
      return new InvalidArgumentError(
        `localPath '${localPath}' in ${this.dir} cannot be used (${code}): a directory on the way is a file, the path is too long, or it runs into a loop of links`,
      );
    }
    return err;
  }

  private leaves(localPath: string): InvalidArgumentError {
    return new InvalidArgumentError(
      `localPath '${localPath}' leads outside ${this.dir}: the file tools only use files inside that directory ([files] local_dir)`,
    );
  }
}

type FileToolArguments = Record<string, unknown>;

/** Bytes moved so far, of `total`. */
export type TransferProgress = (bytes: number, total: number) => Promise<void>;

/**
 * Reports a transfer at most every twentieth of its size (and at least every MiB apart), and
 * at its end, so a large file gives a steady trickle of notifications rather than one per chunk.
 */
function throttled(report: TransferProgress | undefined): (bytes: number, total: number) => Promise<void> {
  let last = 0;
  return async (bytes, total) => {
    if (!report) return;
    const step = Math.max(1024 * 1024, total / 20);
    if (bytes - last < step && bytes !== total) return;
    last = bytes;
    await report(bytes, total);
  };
}

/** push_file: the content (inline or from the local directory), hashed, then streamed after its header. */
export async function pushFile(
  agent: AgentConnection,
  binding: RpcBinding,
  fields: FileToolArguments,
  settings: CallSettings,
  local: LocalDirectory,
  onTransfer?: TransferProgress,
): Promise<pb.PushFileResponse> {
  const input = pb.PushFileToolInput.fromJSON(fields);
  const sources = (['content', 'contentBase64', 'localPath'] as const).filter(
    (key) => fields[key] !== undefined,
  );
  if (sources.length !== 1) {
    throw new InvalidArgumentError(
      `push_file: give exactly one of content (text), contentBase64 (binary) or localPath (a file in ${local.dir})${sources.length > 1 ? `; got ${sources.join(', ')}` : ''}`,
    );
  }

  let size: number;
  let sha256: string;
  let chunks: () => AsyncIterable<Buffer>;
  if (sources[0] === 'localPath') {
    const source = await local.fileToRead(input.localPath);
    size = source.size;
    sha256 = await fileSha256(source.file);
    chunks = () => createReadStream(source.file, { highWaterMark: PUSH_CHUNK_BYTES });
  } else {
    const content =
      sources[0] === 'content' ? Buffer.from(input.content, 'utf8') : decodeBase64(input.contentBase64);
    size = content.byteLength;
    sha256 = createHash('sha256').update(content).digest('hex');
    chunks = async function* () {
      for (let at = 0; at < content.byteLength; at += PUSH_CHUNK_BYTES)
        yield content.subarray(at, at + PUSH_CHUNK_BYTES);
    };
  }

  const header: pb.PushFileHeader = {
    service: input.service,
    path: input.path,
    mode: input.mode,
    sha256,
    size,
    requestId: randomUUID(),
    ...(input.dryRun ? { dryRun: true } : {}),
    ...(input.planDigest ? { planDigest: input.planDigest } : {}),
  };
  const progress = throttled(onTransfer);
  const wire = { ...binding, method: PUSH_FILE_METHOD };
  const response = await agent.clientStream(wire, settings, async (send) => {
    await send(pb.PushFileRequest.fromPartial({ header }));
    if (header.dryRun) return; // a plan needs the digest, not the content
    let sent = 0;
    for await (const chunk of chunks()) {
      await send({ chunk });
      sent += chunk.byteLength;
      await progress(sent, size);
    }
  });
  return response as pb.PushFileResponse;
}

/** pull_file: the content inline (text, or base64 when binary) when small enough, or saved into the local directory. */
export async function pullFile(
  agent: AgentConnection,
  binding: RpcBinding,
  fields: FileToolArguments,
  settings: CallSettings,
  local: LocalDirectory,
  inlineMaxBytes: number,
  onTransfer?: TransferProgress,
): Promise<pb.PullFileToolOutput> {
  const input = pb.PullFileToolInput.fromJSON(fields);
  const target = input.localPath ? await local.fileToWrite(input.localPath) : undefined;
  const temporary = target && path.join(target.parent, `.${target.name}.${process.pid}.${randomUUID()}.tmp`);
  const handle = temporary
    ? await fs.open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
    : undefined;

  const output = pb.PullFileToolOutput.fromPartial({ service: input.service, path: input.path });
  const hash = createHash('sha256');
  const inline: Buffer[] = [];
  let received = 0;
  let sentDigest: string | undefined;
  const progress = throttled(onTransfer);
  try {
    const request = pb.PullFileRequest.fromPartial({ service: input.service, path: input.path });
    await agent.stream({ ...binding, method: PULL_FILE_METHOD }, request, settings, async (message) => {
      const part = message as pb.PullFileResponse;
      if (part.info) {
        output.size = part.info.size;
        output.mode = part.info.mode;
        if (!handle && part.info.size > inlineMaxBytes) {
          throw new ResourceExhaustedError(
            `${input.path} is ${part.info.size} bytes, more than the ${inlineMaxBytes} returned inline ([files] inline_max_bytes): give localPath to save it in ${local.dir}`,
          );
        }
      } else if (part.chunk) {
        received += part.chunk.byteLength;
        hash.update(part.chunk);
        if (handle) await handle.write(part.chunk);
        else inline.push(Buffer.from(part.chunk));
        await progress(received, output.size);
      } else if (part.sha256) {
        sentDigest = part.sha256;
      }
    });
    const digest = hash.digest('hex');
    if (sentDigest !== digest || received !== output.size) {
      throw new McpError(
        'INTERNAL',
        `${input.path} arrived damaged (${received} of ${output.size} bytes, SHA-256 ${digest}, the agent sent ${sentDigest ?? 'none'}): nothing was saved; try again`,
      );
    }
    output.sha256 = digest;
    if (handle && temporary && target) {
      await handle.chmod(output.mode & 0o777 || 0o600);
      await handle.close();
      await fs.rename(temporary, path.join(target.parent, target.name));
      output.localPath = target.shown;
    } else {
      const content = Buffer.concat(inline);
      const text = utf8(content);
      if (text !== undefined) output.content = text;
      else output.contentBase64 = content.toString('base64');
    }
    return output;
  } finally {
    if (handle && temporary) {
      await handle.close().catch(() => {});
      await fs.rm(temporary, { force: true });
    }
  }
}

function decodeBase64(text: string): Buffer {
  const compact = text.replace(/\s+/g, '');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) {
    throw new InvalidArgumentError(
      'contentBase64 is not base64 (RFC 4648, with padding): encode the bytes again',
    );
  }
  return Buffer.from(compact, 'base64');
}

function utf8(content: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(content);
  } catch {
    return undefined;
  }
}

async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
