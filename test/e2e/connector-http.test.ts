/**
 * The built connector in Streamable HTTP mode, with callers' tokens from a real OpenID
 * provider (oidc-provider on 127.0.0.1) and a real agent that trusts the same provider for
 * the same audience: the connector checks the caller, the agent checks it again and audits
 * the call under the caller's name. Run `npm run build` first (`npm test` does).
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import {
  type ConnectorFiles,
  httpIssuerConfig,
  resultText,
  type SpawnedHttpConnector,
  spawnHttpConnector,
  writeConnectorConfig,
} from '../support/connector.js';
import { startOidcProvider, type TestOidcProvider } from '../support/oidc.js';
import { freePort } from '../support/testbed.js';

type NodeEntry = {
  node: string;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
};

let idp: TestOidcProvider;
let agent: TestAgent;
let files: ConnectorFiles;
let connector: SpawnedHttpConnector;
let stateless: SpawnedHttpConnector;
let resource: string;
let port: number;

beforeAll(async () => {
  port = await freePort();
  resource = `http://127.0.0.1:${port}/mcp`;
  idp = await startOidcProvider({
    resource,
    clients: [{ clientId: 'alice', clientSecret: 'alice-secret-0123456789', roles: ['operator', 'auditor'] }],
  });
  agent = await startTestAgent({
    node: 'node1',
    issuers: [
      { type: 'jwt', issuer: idp.issuer, jwks_uri: idp.jwksUri, audience: resource, algorithms: ['RS256'] },
    ],
  });
  files = writeConnectorConfig(
    [{ name: 'node1', address: agent.address, caPem: agent.caPem }],
    httpIssuerConfig(resource, idp),
  );
  connector = await spawnHttpConnector(`127.0.0.1:${port}`, ['--config', files.configFile]);
  // Stateless mode on another port, same resource (as behind a load balancer).
  stateless = await spawnHttpConnector(`127.0.0.1:${await freePort()}`, [
    '--config',
    files.configFile,
    '--stateless',
  ]);
});

afterAll(async () => {
  await connector?.stop();
  await stateless?.stop();
  await agent?.stop();
  await idp?.close();
  files?.remove();
});

async function connect(url: string, token: string): Promise<Client> {
  const client = new Client({ name: 'e2e-http', version: '1' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

function initialize(headers: Record<string, string>): Promise<Response> {
  return fetch(connector.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'e2e', version: '1' } },
    }),
  });
}

describe('mcp-connector over Streamable HTTP', () => {
  it('answers a call without a token with 401 and the metadata URL', async () => {
    const res = await initialize({});
    expect(res.status).toBe(401);
    const metadataUrl = `http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`;
    expect(res.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${metadataUrl}"`);
    const metadata = (await (await fetch(metadataUrl)).json()) as {
      resource: string;
      authorization_servers: string[];
    };
    expect(metadata.resource).toBe(resource);
    expect(metadata.authorization_servers).toEqual([idp.issuer]);
  });

  it('refuses a token for another audience with 401', async () => {
    const res = await initialize({
      authorization: `Bearer ${await idp.token('alice', { resource: 'https://elsewhere.example' })}`,
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
  });

  it('refuses a foreign Origin with 403', async () => {
    const res = await initialize({
      origin: 'http://evil.example',
      authorization: `Bearer ${await idp.token('alice')}`,
    });
    expect(res.status).toBe(403);
  });

  it("serves tools to a good token, and the agent audits the call under the caller's identity", async () => {
    const client = await connect(connector.url, await idp.token('alice'));
    try {
      const status = await client.callTool({ name: 'node_status', arguments: {} });
      expect(status.isError, resultText(status)).toBeFalsy();
      const nodes = (status.structuredContent as { nodes: NodeEntry[] }).nodes;
      expect(nodes[0]?.result?.node).toBe('node1');

      const audit = await client.callTool({
        name: 'query_audit',
        arguments: { node: 'node1', rpc: 'NodeStatus' },
      });
      expect(audit.isError, resultText(audit)).toBeFalsy();
      const records = ((audit.structuredContent as { nodes: NodeEntry[] }).nodes[0]?.result?.records ??
        []) as {
        subject: string;
        issuer: string;
        clientId: string;
        decision: string;
      }[];
      expect(records[0]).toMatchObject({
        subject: 'alice',
        issuer: idp.issuer,
        decision: 'AUDIT_DECISION_ALLOW',
      });
      expect(resultText(audit)).toContain('alice');
    } finally {
      await client.close();
    }
  });

  it('serves the same tools without sessions in --stateless mode', async () => {
    const client = await connect(stateless.url, await idp.token('alice'));
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain('node_status');
      const status = await client.callTool({ name: 'node_status', arguments: { node: 'node1' } });
      expect(status.isError, resultText(status)).toBeFalsy();
    } finally {
      await client.close();
    }
  });
});
