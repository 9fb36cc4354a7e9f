/**
 * The `mcp` CLI's reads skip the MCP layer (connector/read-call.ts): for the same read they must
 * answer exactly what tools/call answers through a real SDK Client. Unreachable nodes are real
 * closed ports.
 */
import { Client, InMemoryTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Connector, startConnector } from '../../connector/connector.js';
import { callReadTool, isDirectRead } from '../../connector/read-call.js';
import { silentLogger } from '../../core/log.js';
import { type ToolName, tools } from '../../gen/tool-catalog.js';
import { type ConnectorFiles, closedPort, writeConnectorConfig } from '../support/connector.js';

const tool = (name: ToolName) => tools.find((t) => t.name === name) as (typeof tools)[number];

let files: ConnectorFiles;
let connector: Connector;
let client: Client;

beforeAll(async () => {
  vi.stubEnv('MCP_TOKEN', 'test-token-not-checked-by-a-closed-port');
  files = writeConnectorConfig([
    { name: 'node1', address: `127.0.0.1:${await closedPort()}` },
    { name: 'node2', address: `127.0.0.1:${await closedPort()}` },
  ]);
  connector = await startConnector({ configFile: files.configFile, tools, log: silentLogger });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await connector.tools.createServer().connect(serverSide);
  client = new Client({ name: 'read-call-test', version: '1.0.0' });
  await client.connect(clientSide);
});

afterAll(async () => {
  await client?.close();
  await connector?.close();
  files?.remove();
  vi.unstubAllEnvs();
});

describe('a read called without the MCP layer', () => {
  it.each([
    ['list_services', {}],
    ['service_status', {}],
    ['service_status', { service: 'web', colour: 'blue' }],
    ['service_logs', { service: 'web', node: 'node9' }],
  ] as const)('answers %s %j as tools/call does', async (name, args) => {
    const direct = await callReadTool(connector, tool(name), { ...args });
    const viaMcp = await client.callTool({ name, arguments: { ...args } });
    expect(direct.isError).toBe(true);
    expect(direct).toEqual(viaMcp);
  });

  it('is used for read-only tools without progress only', () => {
    expect(isDirectRead(tool('list_services'), false)).toBe(true);
    expect(isDirectRead(tool('pull_file'), true)).toBe(false);
    expect(isDirectRead(tool('deploy'), false)).toBe(false);
  });

  it('refuses a write, which may need a human and goes through the MCP session', async () => {
    await expect(callReadTool(connector, tool('stop_service'), { service: 'web' })).rejects.toThrow(
      /not read-only/,
    );
  });
});
