/**
 * The file-transfer wire codecs (core/file-chunks.ts) against the generated ones: the same
 * bytes on the wire for every message, chunks decoded without a copy.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PULL_FILE_METHOD, PUSH_FILE_METHOD } from '../../core/file-chunks.js';
import { McpAgentServiceService, PullFileResponse, PushFileRequest } from '../../gen/mcp/v1/mcp.js';

// Around each varint length boundary, and the default chunk size.
const sizes = [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 1024 * 1024];

describe('file chunk codecs', () => {
  it.each(sizes)('encode a %i-byte chunk as the generated codecs do, and decode it as a view', (size) => {
    const chunk = randomBytes(size);
    for (const [ours, generated] of [
      [PUSH_FILE_METHOD.requestSerialize, McpAgentServiceService.pushFile.requestSerialize],
      [PULL_FILE_METHOD.responseSerialize, McpAgentServiceService.pullFile.responseSerialize],
    ] as const) {
      const wire = ours({ chunk });
      expect(wire.equals(generated({ chunk }))).toBe(true);
    }
    const wire = McpAgentServiceService.pushFile.requestSerialize({ chunk });
    // Buffer.equals, not toEqual: a deep comparison of a MiB takes the test's whole budget.
    const pushed = PUSH_FILE_METHOD.requestDeserialize(wire);
    expect(Object.keys(pushed)).toEqual(['chunk']);
    expect(Buffer.from(pushed.chunk ?? []).equals(chunk)).toBe(true);
    expect(pushed.chunk?.buffer).toBe(wire.buffer); // a view, not a copy
    const pulled = PULL_FILE_METHOD.responseDeserialize(wire);
    expect(Object.keys(pulled)).toEqual(['chunk']);
    expect(pulled.chunk?.equals(chunk)).toBe(true);
    expect(pulled.chunk?.buffer).toBe(wire.buffer);
  });

  it('leave the header, the info and the digest to the generated codecs', () => {
    const header = PushFileRequest.fromPartial({
      header: { service: 'web', path: 'conf/a.toml', mode: 0o644, sha256: 'ab'.repeat(32), size: 3 },
    });
    const headerWire = PUSH_FILE_METHOD.requestSerialize(header);
    expect(headerWire.equals(McpAgentServiceService.pushFile.requestSerialize(header))).toBe(true);
    expect(PUSH_FILE_METHOD.requestDeserialize(headerWire)).toEqual(PushFileRequest.decode(headerWire));
    for (const message of [
      PullFileResponse.fromPartial({ info: { size: 3, mode: 0o600 } }),
      PullFileResponse.fromPartial({ sha256: 'cd'.repeat(32) }),
    ]) {
      const wire = PULL_FILE_METHOD.responseSerialize(message);
      expect(wire.equals(McpAgentServiceService.pullFile.responseSerialize(message))).toBe(true);
      expect(PULL_FILE_METHOD.responseDeserialize(wire)).toEqual(message);
    }
  });

  it('decode a chunk followed by another field as the generated codecs do', () => {
    // A sender may put more than the chunk in one message; only an exact chunk is a view.
    const chunk = Buffer.from('abc');
    const wire = Buffer.concat([
      McpAgentServiceService.pullFile.responseSerialize({ chunk }),
      McpAgentServiceService.pullFile.responseSerialize({ sha256: 'x' }),
    ]);
    expect(PULL_FILE_METHOD.responseDeserialize(wire)).toEqual(PullFileResponse.decode(wire));
  });
});
