/**
 * The generator's rules, one fixture contract per rule (test/fixtures/gen-tools/<case>/mcp.proto,
 * built with the real buf binary next to the real options.proto): each breaks exactly one rule,
 * and the generator must refuse it with a message naming the RPC and what to add.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildDescriptorSet, generate } from '../../scripts/gen-tools.js';
import { tools } from '../../tools.generated.js';

const repo = join(import.meta.dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'mcp-gen-tools-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The fixture as mcp/v1/mcp.proto beside the contract's own options.proto, built by buf. */
function fixture(name: string) {
  const dir = join(work, name);
  mkdirSync(join(dir, 'mcp/v1'), { recursive: true });
  cpSync(join(repo, 'proto/mcp/v1/options.proto'), join(dir, 'mcp/v1/options.proto'));
  cpSync(join(repo, 'test/fixtures/gen-tools', name, 'mcp.proto'), join(dir, 'mcp/v1/mcp.proto'));
  return buildDescriptorSet(dir);
}

describe('gen-tools', () => {
  it('generates the committed tool table from the contract', () => {
    // The long forms feed docs/tools.md only; they are not in the published table.
    const generated = generate(buildDescriptorSet()).flatMap((r) =>
      r.tool
        ? [{ ...r.tool, docDescription: undefined, docInputSchema: undefined, docOutputSchema: undefined }]
        : [],
    );
    expect(JSON.parse(JSON.stringify(generated))).toEqual(JSON.parse(JSON.stringify(tools)));
  });

  it('refuses an RPC without the (mcp.v1.tool) option', () => {
    const set = fixture('no-option');
    expect(() => generate(set)).toThrow(
      'WipeNode has no (mcp.v1.tool) option: every RPC needs a permission (and tool metadata, or exclude: true)',
    );
  });

  it('refuses an RPC without a permission', () => {
    const set = fixture('no-permission');
    expect(() => generate(set)).toThrow(
      'WipeNode: (mcp.v1.tool).permission is missing or not of the form area.action',
    );
  });

  it('refuses a tool RPC without a comment', () => {
    const set = fixture('no-comment');
    expect(() => generate(set)).toThrow(
      "NodeStatus: the RPC needs a comment; it becomes the tool's description",
    );
  });

  it('refuses a tool name used twice', () => {
    const set = fixture('duplicate-name');
    expect(() => generate(set)).toThrow('NodeHealth: tool name node_status is used twice');
  });
});
