/**
 * What the tools/list answer costs an assistant's context before its first call, ours beside
 * podman-mcp-server's, measured in the same run with the same SDK client over stdio. Bytes are
 * `JSON.stringify(result.tools)`; tokens are estimated as bytes / 4 (no tokenizer is run).
 *
 *   npm install --prefix /tmp/pms podman-mcp-server@0.0.15   # once; ships a Go binary
 *   npm run build && npx tsx bench/tools-list.ts [path of podman-mcp-server]
 */
import { existsSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { spawnStdioConnector, writeConnectorConfig } from '../test/support/connector.js';
import { PODMAN_MCP_SERVER_BIN, table } from './stats.js';

const PODMAN_MCP_SERVER = process.argv[2] ?? PODMAN_MCP_SERVER_BIN;

interface Listing {
  server: string;
  tools: number;
  bytes: number;
  readOnlyBytes?: number;
}

const size = (tools: unknown[]) => Buffer.byteLength(JSON.stringify(tools));

/** Ours: the built connector; tools/list does not reach an agent, so the node's address is never dialled. */
async function ours(): Promise<Listing> {
  const files = writeConnectorConfig([{ name: 'node1', address: '127.0.0.1:1' }]);
  try {
    const conn = await spawnStdioConnector(['--config', files.configFile], { MCP_TOKEN: 'unused' });
    const { tools } = await conn.client.listTools();
    await conn.close();
    const ro = await spawnStdioConnector(['--config', files.configFile, '--read-only'], {
      MCP_TOKEN: 'unused',
    });
    const readOnly = await ro.client.listTools();
    await ro.close();
    return {
      server: 'mcp-connector',
      tools: tools.length,
      bytes: size(tools),
      readOnlyBytes: size(readOnly.tools),
    };
  } finally {
    files.remove();
  }
}

async function podmanMcpServer(): Promise<Listing | string> {
  if (!existsSync(PODMAN_MCP_SERVER)) return `not found at ${PODMAN_MCP_SERVER}`;
  const transport = new StdioClientTransport({ command: PODMAN_MCP_SERVER, args: [], stderr: 'pipe' });
  const client = new Client({ name: 'bench-tools-list', version: '1.0.0' });
  try {
    await client.connect(transport);
    const { tools } = await client.listTools();
    return { server: 'podman-mcp-server 0.0.15', tools: tools.length, bytes: size(tools) };
  } catch (err) {
    return `did not start: ${(err as Error).message}`;
  } finally {
    await client.close().catch(() => {});
  }
}

const rows: Array<Array<string | number>> = [];
const row = (l: Listing) => [l.server, l.tools, l.bytes, Math.round(l.bytes / 4)];
const mine = await ours();
rows.push(row(mine));
if (mine.readOnlyBytes !== undefined)
  rows.push(['mcp-connector --read-only', '', mine.readOnlyBytes, Math.round(mine.readOnlyBytes / 4)]);
const theirs = await podmanMcpServer();
if (typeof theirs === 'string') console.log(`podman-mcp-server: ${theirs}`);
else rows.push(row(theirs));
console.log(table(['server', 'tools', 'tools/list bytes', '≈ tokens (bytes / 4)'], rows));
