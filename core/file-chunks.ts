/**
 * Wire codecs for the two messages that carry file content, PushFileRequest and
 * PullFileResponse, which leave a chunk's bytes where they are. The generated codecs copy a
 * chunk three times on the way out (into the protobuf writer, out of it, into a Buffer) and
 * once on the way in; at 1 MiB per message those copies were the largest share of a
 * transfer's CPU after TLS and SHA-256. A chunk message is `tag(2, bytes) varint(length)
 * bytes`: it is encoded with one copy behind its prefix, and decoded as a view of the received
 * buffer, which grpc-js allocates for each message alone. Every other message of the two
 * (header, info, digest) takes the generated path, and so does any chunk message that is not
 * exactly that.
 *
 * The agent serves PushFile and PullFile with these (agent/server.ts); the connector calls
 * them with these (connector/file-transfer.ts).
 */
import type { MethodDefinition } from '@grpc/grpc-js';
import {
  McpAgentServiceService,
  type PullFileRequest,
  PullFileResponse,
  PushFileRequest,
  type PushFileResponse,
} from '../gen/mcp/v1/mcp.js';

/** Field 2 (`chunk` in both messages), wire type 2 (length-delimited). */
const CHUNK_TAG = (2 << 3) | 2;

/** The message `{ chunk }` on the wire, with the chunk copied once. */
function encodeChunk(chunk: Uint8Array): Buffer {
  let varintBytes = 1;
  for (let rest = chunk.byteLength; rest >= 0x80; rest = Math.floor(rest / 0x80)) varintBytes++;
  const out = Buffer.allocUnsafe(1 + varintBytes + chunk.byteLength);
  out[0] = CHUNK_TAG;
  let at = 1;
  let rest = chunk.byteLength;
  while (rest >= 0x80) {
    out[at++] = (rest & 0x7f) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  out[at++] = rest;
  out.set(chunk, at);
  return out;
}

/** The chunk of a message that is only `{ chunk }`, as a view of `bytes`; else undefined. */
function decodeChunk(bytes: Buffer): Buffer | undefined {
  if (bytes[0] !== CHUNK_TAG) return undefined;
  let length = 0;
  let at = 1;
  for (let shift = 0; ; shift += 7) {
    const byte = bytes[at++];
    if (byte === undefined || shift > 28) return undefined;
    length += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) break;
  }
  return at + length === bytes.length ? bytes.subarray(at) : undefined;
}

function serializePushFileRequest(message: PushFileRequest): Buffer {
  if (message.chunk !== undefined && message.header === undefined) return encodeChunk(message.chunk);
  return Buffer.from(PushFileRequest.encode(message).finish());
}

function deserializePushFileRequest(bytes: Buffer): PushFileRequest {
  const chunk = decodeChunk(bytes);
  return chunk ? { chunk } : PushFileRequest.decode(bytes);
}

function serializePullFileResponse(message: PullFileResponse): Buffer {
  if (message.chunk !== undefined && message.info === undefined && message.sha256 === undefined) {
    return encodeChunk(message.chunk);
  }
  return Buffer.from(PullFileResponse.encode(message).finish());
}

function deserializePullFileResponse(bytes: Buffer): PullFileResponse {
  const chunk = decodeChunk(bytes);
  return chunk ? { chunk } : PullFileResponse.decode(bytes);
}

/** PushFile with the chunk codecs, both directions. */
export const PUSH_FILE_METHOD: MethodDefinition<PushFileRequest, PushFileResponse> = {
  ...McpAgentServiceService.pushFile,
  requestSerialize: serializePushFileRequest,
  requestDeserialize: deserializePushFileRequest,
};

/** PullFile with the chunk codecs, both directions. */
export const PULL_FILE_METHOD: MethodDefinition<PullFileRequest, PullFileResponse> = {
  ...McpAgentServiceService.pullFile,
  responseSerialize: serializePullFileResponse,
  responseDeserialize: deserializePullFileResponse,
};

/** A service definition (the agent's) with PushFile and PullFile on the chunk codecs. */
export function withFileChunkCodecs<D extends typeof McpAgentServiceService>(definition: D): D {
  return { ...definition, pushFile: PUSH_FILE_METHOD, pullFile: PULL_FILE_METHOD };
}
