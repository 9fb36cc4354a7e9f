/**
 * Three agents as three nodes (separate processes, state directories and loopback addresses,
 * certificates from `mcp ca`), driven through the real connector with a real MCP client.
 * Needs the build (dist/), root and nft (scripts/testbed.sh installs nftables).
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority } from '../../connector/certs.js';
import {
  type ConnectorFiles,
  connectInProcess,
  type InProcessConnector,
  REPO,
  resultText,
  writeConnectorConfig,
} from '../support/connector.js';
import { type Fleet, startFleet } from '../support/fleet.js';

const CLI = join(REPO, 'dist/connector/cli.js');

interface NodeEntry {
  node: string;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
}

function perNode(result: unknown): Map<string, NodeEntry> {
  const structured = (result as { structuredContent?: { nodes?: NodeEntry[] } }).structuredContent;
  return new Map((structured?.nodes ?? []).map((n) => [n.node, n]));
}

describe('a fleet of three nodes', () => {
  let fleet: Fleet;
  let files: ConnectorFiles;
  let connector: InProcessConnector;
  let token: string;

  beforeAll(async () => {
    fleet = await startFleet();
    token = await fleet.token();
    files = writeConnectorConfig(fleet.testNodes());
    connector = await connectInProcess(files.configFile, { token });
  }, 90_000);

  afterAll(async () => {
    await connector?.close();
    files?.remove();
    await fleet?.stop();
  }, 30_000);

  it('runs each node as its own process on its own address', () => {
    expect(fleet.nodes.map((n) => n.host)).toEqual(['127.0.0.11', '127.0.0.12', '127.0.0.13']);
    expect(new Set(fleet.nodes.map((n) => n.child.pid)).size).toBe(3);
    expect(new Set(fleet.nodes.map((n) => n.stateDir)).size).toBe(3);
  });

  it('reaches every agent serving a certificate from mcp ca issue, and shows its expiry', async () => {
    const result = await connector.client.callTool({ name: 'node_status', arguments: {} });
    expect(result.isError).toBeFalsy();
    const answers = perNode(result);
    for (const node of fleet.nodes) {
      const answer = answers.get(node.name);
      expect(answer?.error).toBeUndefined();
      expect(answer?.result).toMatchObject({
        node: node.name,
        tlsCertSubject: `CN=${node.name}`,
        tlsCertSans: [`IP Address:${node.host}`],
      });
      const days = (Date.parse(String(answer?.result?.tlsCertNotAfter)) - Date.now()) / 86_400_000;
      expect(days).toBeGreaterThan(396);
      expect(days).toBeLessThanOrEqual(397);
    }
    expect(resultText(result)).toContain('cert expires');
  });

  it("answers the mcp CLI on the README's config (addresses by IP, no server name) with nothing on stderr", async () => {
    const run = await execa(
      process.execPath,
      [CLI, 'call', 'node_status', '--json', '--config', files.configFile],
      {
        env: { PATH: process.env.PATH ?? '', HOME: files.dir, MCP_TOKEN: token },
        reject: false,
      },
    );
    expect(run.exitCode, run.stderr).toBe(0);
    // grpc-js names an IP address as the TLS server name, which Node warns about (DEP0123).
    expect(run.stderr).toBe('');
    const nodes = (JSON.parse(run.stdout) as { nodes: Array<{ node: string; error?: unknown }> }).nodes;
    expect(nodes.map((n) => [n.node, n.error])).toEqual(fleet.nodes.map((n) => [n.name, undefined]));
  });

  it('refuses an agent whose certificate does not name what the connector dials, or another CA', async () => {
    const [node1, node2] = fleet.nodes;
    if (!node1 || !node2) throw new Error('fleet has fewer than two nodes');
    const other = writeConnectorConfig([
      // node1's certificate names 127.0.0.11 only: a connector expecting another name must refuse it.
      { name: node1.name, address: node1.address, caPem: fleet.caPem, serverName: 'node1.elsewhere.test' },
      // Trusting a CA that did not sign node2's certificate.
      {
        name: node2.name,
        address: node2.address,
        caPem: (await createCertificateAuthority('another CA')).certPem,
      },
    ]);
    const c = await connectInProcess(other.configFile, { token });
    try {
      const answers = perNode(await c.client.callTool({ name: 'node_status', arguments: {} }));
      expect(answers.get(node1.name)?.error).toMatchObject({
        code: 'UNAVAILABLE',
        message: expect.stringContaining("does not match certificate's altnames"),
      });
      expect(answers.get(node2.name)?.error).toMatchObject({
        code: 'UNAVAILABLE',
        message: expect.stringContaining('unable to verify'),
      });
    } finally {
      await c.close();
      other.remove();
    }
  });

  it('fans list_services out to the three nodes', async () => {
    const result = await connector.client.callTool({ name: 'list_services', arguments: {} });
    const answers = perNode(result);
    expect([...answers.keys()].sort()).toEqual(['node1', 'node2', 'node3']);
    for (const answer of answers.values()) expect(answer.error).toBeUndefined();
  });

  it('answers for the others and an error for a node cut off, then that node again once reachable', async () => {
    const cut = fleet.nodes[1];
    if (!cut) throw new Error('fleet has fewer than two nodes');
    try {
      fleet.cutOff(cut);
      const answers = perNode(await connector.client.callTool({ name: 'list_services', arguments: {} }));
      expect(answers.get(cut.name)?.error?.code).toMatch(/^(DEADLINE_EXCEEDED|UNAVAILABLE)$/);
      expect(answers.get(cut.name)?.error?.message).toContain(cut.host);
      for (const other of fleet.nodes.filter((n) => n !== cut)) {
        expect(answers.get(other.name)?.error).toBeUndefined();
      }
    } finally {
      fleet.restore();
    }
    const again = perNode(await connector.client.callTool({ name: 'list_services', arguments: {} }));
    for (const node of fleet.nodes) expect(again.get(node.name)?.error).toBeUndefined();
  }, 120_000);
});
