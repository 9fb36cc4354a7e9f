/**
 * The built connector (`dist/connector/main.js`) as an AI client runs it: spawned over stdio
 * by a real SDK Client, talking to two real agents (TLS gRPC, real tokens, real podman).
 * Run `npm run build` first (`npm test` does).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, Progress } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tools as contractTools } from '../../tools.generated.js';
import { signTestToken, startTestAgent, type TestAgent } from '../support/agent.js';
import {
  type ConnectorFiles,
  resultText,
  runConnector,
  spawnStdioConnector,
  writeConnectorConfig,
  writeDefinition,
} from '../support/connector.js';
import { removeContainers, requireTestbed, type Testbed, uniqueName } from '../support/testbed.js';

type NodeEntry = {
  node: string;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
};

let node1: TestAgent;
let node2: TestAgent;
let files: ConnectorFiles;
let admin: { client: Client; stderr: () => string; close(): Promise<void> };
let bed: Testbed | undefined;
const service = uniqueName('e2e-web');

beforeAll(async () => {
  bed = await requireTestbed();
  [node1, node2] = await Promise.all([startTestAgent({ node: 'node1' }), startTestAgent({ node: 'node2' })]);
  files = writeConnectorConfig([
    { name: 'node1', address: node1.address, caPem: node1.caPem },
    { name: 'node2', address: node2.address, caPem: node2.caPem },
  ]);
  admin = await spawnStdioConnector(['--config', files.configFile], {
    MCP_TOKEN: await signTestToken({ subject: 'e2e-admin', roles: ['admin'] }),
  });
});

afterAll(async () => {
  await admin?.close();
  await Promise.all([node1?.stop(), node2?.stop()]);
  if (bed) await removeContainers(service);
  files?.remove();
});

describe('mcp-connector over stdio', () => {
  it('lists the published tools', async () => {
    const { tools } = await admin.client.listTools();
    expect(tools.map((t) => t.name)).toEqual(contractTools.map((t) => t.name));
    const deploy = tools.find((t) => t.name === 'deploy');
    // No title (the name reads as one); a write says whether it is destructive and idempotent.
    expect(deploy?.title).toBeUndefined();
    expect(deploy?.annotations).toEqual({ destructiveHint: true, idempotentHint: true });
  });

  it('names the bad field of a schema-invalid call', async () => {
    const result = await admin.client.callTool({
      name: 'stop_service',
      arguments: { service: 'web', compnent: 'db' },
    });
    expect(result.isError).toBe(true);
    expect(resultText(result)).toContain("arguments: unexpected property 'compnent'");
  });

  it('runs live_check on both agents and returns one entry per node', async () => {
    const result = await admin.client.callTool({ name: 'live_check', arguments: {} });
    expect(result.isError).toBeFalsy();
    const nodes = (result.structuredContent as { nodes: NodeEntry[] }).nodes;
    expect(nodes.map((n) => n.node)).toEqual(['node1', 'node2']);
    for (const n of nodes) {
      expect(n.error).toBeUndefined();
      expect(n.result).toBeDefined();
    }
  });

  it('says where to write a definition when neither a file nor the agent knows the service', async () => {
    // A refused deploy must come back at once, not at its 900 s deadline.
    const result = await admin.client.callTool(
      { name: 'deploy', arguments: { service: 'nothing-here', node: 'node1' } },
      { timeout: 20_000 },
    );
    expect(result.isError).toBe(true);
    const text = resultText(result);
    expect(text).toMatch(/^NOT_FOUND: /);
    expect(text).toContain(`write one at ${files.servicesDir}/nothing-here.toml`);
  });

  it('deploys a service from its TOML definition, with progress notifications', async (ctx) => {
    if (!bed) return ctx.skip();
    const file = writeDefinition(
      files.servicesDir,
      service,
      `name = "${service}"\nnode = "node1"\n\n[[components]]\nname = "${service}"\nimage = "${bed.imageV1}"\n`,
    );
    const progress: Progress[] = [];
    const result = await admin.client.callTool(
      { name: 'deploy', arguments: { service } },
      {
        onprogress: (p) => progress.push(p),
        timeout: 300_000,
      },
    );
    const text = resultText(result);
    expect(result.isError, text).toBeFalsy();
    const deployed = result.structuredContent as {
      node: string;
      service: string;
      components: { ok: boolean; version: string }[];
    };
    expect(deployed.node).toBe('node1');
    expect(deployed.service).toBe(service);
    expect(deployed.components).toHaveLength(1);
    expect(deployed.components[0]).toMatchObject({ ok: true, version: 'v1' });
    expect(text).toContain(`spec from ${file}`);
    expect(text).toMatch(/request id: [0-9a-f-]{36}/);
    // typescript-sdk #2580 can drop a notification that shares a chunk with the response.
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress[0]?.total).toBe(1);
    expect(progress[0]?.message).toMatch(new RegExp(`^${service}: `));

    const status = await admin.client.callTool({ name: 'service_status', arguments: { service } });
    const entries = (status.structuredContent as { nodes: NodeEntry[] }).nodes;
    expect(entries.find((n) => n.node === 'node1')?.result).toBeDefined();
    // node2 does not know the service: its entry says so, and the call is still a result.
    expect(entries.find((n) => n.node === 'node2')?.error?.code).toBe('NOT_FOUND');
    expect(status.isError).toBeFalsy();
  });

  it('pushes a file to a service and pulls it back, inline and through the local directory', async () => {
    const push = await admin.client.callTool({
      name: 'push_file',
      arguments: { service, node: 'node1', path: 'config/app.toml', content: 'port = 8080\n', mode: 0o600 },
    });
    expect(push.isError, resultText(push)).toBeFalsy();
    expect(push.structuredContent).toMatchObject({
      node: 'node1',
      service,
      path: 'config/app.toml',
      size: 12,
      mode: 0o600,
    });
    expect(readFileSync(join(node1.filesRoot, service, 'config/app.toml'), 'utf8')).toBe('port = 8080\n');

    const pull = await admin.client.callTool({
      name: 'pull_file',
      arguments: { service, node: 'node1', path: 'config/app.toml' },
    });
    expect(pull.isError, resultText(pull)).toBeFalsy();
    expect(pull.structuredContent).toMatchObject({ content: 'port = 8080\n', size: 12 });
    expect(resultText(pull)).toContain('port = 8080');

    const binary = Buffer.from([0, 1, 2, 255, 254]);
    mkdirSync(files.localDir, { recursive: true });
    writeFileSync(join(files.localDir, 'blob.bin'), binary);
    const up = await admin.client.callTool({
      name: 'push_file',
      arguments: { service, node: 'node1', path: 'data/blob.bin', localPath: 'blob.bin' },
    });
    expect(up.isError, resultText(up)).toBeFalsy();
    const down = await admin.client.callTool({
      name: 'pull_file',
      arguments: { service, node: 'node1', path: 'data/blob.bin', localPath: 'copies/blob.bin' },
    });
    expect(down.isError, resultText(down)).toBeFalsy();
    expect(readFileSync(join(files.localDir, 'copies/blob.bin'))).toEqual(binary);
    const inline = await admin.client.callTool({
      name: 'pull_file',
      arguments: { service, node: 'node1', path: 'data/blob.bin' },
    });
    expect((inline.structuredContent as { contentBase64: string }).contentBase64).toBe(
      binary.toString('base64'),
    );
  });

  it('reports byte progress while pushing and pulling a large file', async () => {
    mkdirSync(files.localDir, { recursive: true });
    const size = 8 * 1024 * 1024;
    writeFileSync(join(files.localDir, 'large.bin'), Buffer.alloc(size, 7));
    for (const [name, args] of [
      ['push_file', { service, node: 'node1', path: 'large.bin', localPath: 'large.bin' }],
      ['pull_file', { service, node: 'node1', path: 'large.bin', localPath: 'copies/large.bin' }],
    ] as const) {
      const seen: Array<{ progress: number; total?: number }> = [];
      const result = await admin.client.callTool(
        { name, arguments: args },
        {
          onprogress: (p) => seen.push(p),
        },
      );
      expect(result.isError, resultText(result)).toBeFalsy();
      // At least one: a notification sharing a chunk with the response can be dropped (SDK #2580).
      expect(seen.length, name).toBeGreaterThan(0);
      for (const p of seen) expect(p.total).toBe(size);
      expect(seen.map((p) => p.progress)).toEqual([...seen.map((p) => p.progress)].sort((a, b) => a - b));
    }
    expect(readFileSync(join(files.localDir, 'copies/large.bin')).equals(Buffer.alloc(size, 7))).toBe(true);
  });

  it('asks for localPath when a pulled file is too large to return inline', async () => {
    const big = 'x'.repeat(300_000);
    const push = await admin.client.callTool({
      name: 'push_file',
      arguments: { service, node: 'node1', path: 'big.txt', content: big },
    });
    expect(push.isError, resultText(push)).toBeFalsy();
    const pull = await admin.client.callTool({
      name: 'pull_file',
      arguments: { service, node: 'node1', path: 'big.txt' },
    });
    expect(pull.isError).toBe(true);
    expect(resultText(pull)).toMatch(/^RESOURCE_EXHAUSTED: big\.txt is 300000 bytes, .*give localPath/);
  });

  it('keeps the file tools inside the local directory', async () => {
    const result = await admin.client.callTool({
      name: 'push_file',
      arguments: { service, node: 'node1', path: 'stolen', localPath: '../connector.toml' },
    });
    expect(result.isError).toBe(true);
    expect(resultText(result)).toMatch(/^INVALID_ARGUMENT: path '\.\.\/connector\.toml'/);
  });

  it('reports a stopped agent in its own entry while the other answers', async () => {
    await node2.stop();
    const result = await admin.client.callTool({ name: 'list_services', arguments: {} });
    expect(result.isError).toBeFalsy();
    const nodes = (result.structuredContent as { nodes: NodeEntry[] }).nodes;
    expect(nodes[0]).toMatchObject({ node: 'node1' });
    expect(nodes[0]?.result).toBeDefined();
    expect(nodes[1]?.error?.code).toBe('UNAVAILABLE');
    expect(nodes[1]?.error?.message).toContain(`agent node2 at ${node2.address} is not answering: `);
    expect(resultText(result)).toContain(`node2: UNAVAILABLE: agent node2 at ${node2.address}`);
  });
});

describe('RBAC through the connector', () => {
  it('returns a denied call as an error result naming the missing permission', async () => {
    const viewer = await spawnStdioConnector(['--config', files.configFile], {
      MCP_TOKEN: await signTestToken({ subject: 'e2e-viewer', roles: ['viewer'] }),
    });
    try {
      const result = await viewer.client.callTool({
        name: 'restart_service',
        arguments: { service: 'web', node: 'node1' },
      });
      expect(result.isError).toBe(true);
      expect(resultText(result)).toMatch(/^PERMISSION_DENIED: .*service\.restart/);
    } finally {
      await viewer.close();
    }
  });
});

describe('start-up refusals', () => {
  it('refuses an unknown tool name in --tools, listing the valid ones', async () => {
    const run = await runConnector(['--config', files.configFile, '--tools', 'list_services,deploy_all']);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('unknown tool "deploy_all"');
    expect(run.stderr).toContain('list_services, live_check');
  });

  it('refuses a missing config file with how to create one', async () => {
    const run = await runConnector(['--config', `${files.dir}/missing.toml`]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('connector config not found');
  });

  it('prints its usage', async () => {
    const run = await runConnector(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('--read-only');
  });
});
