/**
 * PushFile and PullFile: files under `<files.root>/<service>/` (default `/srv/<service>/`).
 * Paths are confined by agent/files/paths.ts; a push is atomic and digest-checked
 * (agent/files/write.ts); a pull sends size and mode, the content, then its SHA-256.
 * Both stream with backpressure, so memory stays flat whatever the file size.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import {
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
} from '../../core/errors.js';
import {
  checkRelativePath,
  checkServiceName,
  isInside,
  SECRETS_FOLDER,
  serviceDirectoryShown,
} from '../../core/paths.js';
import type {
  PullFileRequest,
  PullFileResponse,
  PushFileHeader,
  PushFileRequest,
  PushFileResponse,
} from '../../gen/mcp/v1/mcp.js';
import { resolveServicePath, type ServicePath } from '../files/paths.js';
import { openServiceFile, readChunks } from '../files/read.js';
import { checkFileMode, checkSha256, writeServiceFile } from '../files/write.js';
import { assertPlanCurrent, type ExistingFile, planPush } from '../plan.js';
import type { CallContext } from '../server.js';
import type { HandlerDeps } from './deps.js';

export function fileHandlers({ config }: HandlerDeps) {
  const { root, maxFileBytes, chunkBytes } = config.files;

  return {
    async pushFile(
      first: PushFileRequest,
      rest: AsyncIterable<PushFileRequest>,
      ctx: CallContext,
    ): Promise<PushFileResponse> {
      const header = checkHeader(first.header, root, maxFileBytes);
      if (first.header?.dryRun || first.header?.planDigest) {
        const plan = planPush(
          header.service,
          header.path,
          await existingFile(root, header, ctx.signal),
          header.sha256,
        );
        if (first.header.dryRun) return { ...header, size: 0, sha256: '', plan };
        assertPlanCurrent(first.header.planDigest, plan);
      }
      // Everything about the header is checked before a directory is created or a byte read.
      const target = await resolveServicePath(root, header.service, header.path, { create: true });
      const written = await writeServiceFile({
        target,
        mode: header.mode,
        size: header.size,
        sha256: header.sha256,
        content: chunksOf(rest),
        signal: ctx.signal,
      });
      return {
        service: header.service,
        path: target.relative,
        size: written.size,
        sha256: written.sha256,
        mode: header.mode,
      };
    },

    async pullFile(
      req: PullFileRequest,
      ctx: CallContext,
      send: (msg: PullFileResponse) => Promise<void>,
    ): Promise<void> {
      const target = await resolveServicePath(root, req.service, req.path, { create: false });
      assertMayPullFrom(target, ctx);
      const file = await openServiceFile(target);
      try {
        await send({ info: { size: file.size, mode: file.mode } });
        const hash = createHash('sha256');
        for await (const chunk of readChunks(file, chunkBytes, ctx.signal)) {
          hash.update(chunk);
          await send({ chunk });
        }
        await send({ sha256: hash.digest('hex') });
      } finally {
        await file.handle.close();
      }
    },
  };
}

/**
 * The service's secrets/ folder (its env files) is kept from callers without
 * `file.pull_secrets`, however the path reaches it (links are resolved first).
 */
function assertMayPullFrom(target: ServicePath, ctx: CallContext): void {
  if (!isInside(path.join(target.boundary, SECRETS_FOLDER), target.parent)) return;
  try {
    ctx.authorize('file.pull_secrets', [target.service]);
  } catch (err) {
    if (!(err instanceof PermissionDeniedError)) throw err;
    throw new PermissionDeniedError(
      `'${target.relative}' is in ${target.shown}${SECRETS_FOLDER}/, which holds the service's secrets: ${err.message}; read it on the node instead`,
      { cause: err },
    );
  }
}

interface CheckedHeader {
  service: string;
  path: string;
  mode: number;
  sha256: string;
  size: number;
}

/** The file a push would overwrite: its size and digest, read in chunks; undefined when absent. */
async function existingFile(
  root: string,
  header: CheckedHeader,
  signal: AbortSignal,
): Promise<ExistingFile | undefined> {
  let target: Awaited<ReturnType<typeof resolveServicePath>>;
  try {
    target = await resolveServicePath(root, header.service, header.path, { create: false });
  } catch (err) {
    if (err instanceof NotFoundError) return undefined; // no service directory yet
    throw err;
  }
  if (!target.stat) return undefined;
  const file = await openServiceFile(target);
  try {
    const hash = createHash('sha256');
    for await (const chunk of readChunks(file, 1 << 20, signal)) hash.update(chunk);
    return { size: file.size, sha256: hash.digest('hex') };
  } finally {
    await file.handle.close();
  }
}

/** The push header, checked in full: nothing is touched for a header that is wrong. */
function checkHeader(header: PushFileHeader | undefined, root: string, maxFileBytes: number): CheckedHeader {
  if (!header) {
    throw new InvalidArgumentError(
      'the first message of a push must be the header (service, path, sha256, size)',
    );
  }
  checkServiceName(header.service);
  checkRelativePath(header.path, serviceDirectoryShown(root, header.service));
  const mode = checkFileMode(header.mode);
  const sha256 = checkSha256(header.sha256);
  if (!Number.isSafeInteger(header.size) || header.size < 0) {
    throw new InvalidArgumentError(`size ${header.size} is not a byte count: give the content's length`);
  }
  if (header.size > maxFileBytes) {
    throw new ResourceExhaustedError(
      `the file is ${header.size} bytes, over this node's limit of ${maxFileBytes} (files.max_file_bytes): nothing was written`,
    );
  }
  return { service: header.service, path: header.path, mode, sha256, size: header.size };
}

/** The content of the messages after the header; a second header is a malformed stream. */
async function* chunksOf(rest: AsyncIterable<PushFileRequest>): AsyncGenerator<Uint8Array> {
  for await (const msg of rest) {
    if (msg.header) {
      throw new InvalidArgumentError('a push has one header, as its first message: nothing was written');
    }
    if (msg.chunk && msg.chunk.byteLength > 0) yield msg.chunk;
  }
}
