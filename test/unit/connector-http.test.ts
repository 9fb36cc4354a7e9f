/**
 * Streamable HTTP mode in process: the Host and Origin checks, RFC 9728 metadata, 401s that
 * point at it, and tokens from a real OpenID provider checked by the agent's authenticator.
 * The agents are unreachable here (closed ports); what reaches them is covered by test/e2e.
 */
import { request } from 'node:http';
import { type AuthInfo, Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentPool } from '../../connector/agent-client.js';
import { parseConnectorConfig } from '../../connector/config.js';
import {
  checkExposure,
  type RunningHttpServer,
  resourceMetadataUrl,
  startHttpServer,
} from '../../connector/http.js';
import { ConnectorTools } from '../../connector/mcp-server.js';
import { Router } from '../../connector/routing.js';
import { selectTools } from '../../connector/tool-selection.js';
import type { JwtIssuerConfig } from '../../core/auth/issuers.js';
import { silentLogger } from '../../core/log.js';
import { resultText } from '../support/connector.js';
import { startOidcProvider, type TestOidcProvider } from '../support/oidc.js';
import { freePort } from '../support/testbed.js';

let idp: TestOidcProvider;
let http: RunningHttpServer;
let port: number;
let resource: string;
let pool: AgentPool;
/** The authInfo each tool call saw, to check the caller's token is what goes on to the agents. */
const seen: (AuthInfo | undefined)[] = [];

function tools(): ConnectorTools {
  const config = parseConnectorConfig(
    `[[nodes]]\nname = "node1"\naddress = "127.0.0.1:1"\n`,
    '/tmp/connector.toml',
    {},
  );
  pool = new AgentPool(config.nodes, { log: silentLogger, retry: { retries: 0, baseDelayMs: 1 } });
  return new ConnectorTools({
    tools: selectTools({}),
    router: new Router(config, pool, silentLogger),
    bearerFor: async (authInfo) => {
      seen.push(authInfo);
      return authInfo?.token ?? 'none';
    },
    servicesDir: config.servicesDir,
    localDir: config.files.localDir,
    version: 'test',
    log: silentLogger,
  });
}

beforeAll(async () => {
  port = await freePort();
  resource = `http://127.0.0.1:${port}/mcp`;
  idp = await startOidcProvider({
    resource,
    clients: [
      { clientId: 'alice', clientSecret: 'alice-secret-0123456789', roles: ['operator'] },
      { clientId: 'bob', clientSecret: 'bob-secret-0123456789', roles: ['operator'] },
    ],
  });
  const issuer: JwtIssuerConfig = {
    type: 'jwt',
    issuer: idp.issuer,
    jwksUri: idp.jwksUri,
    discovery: false,
    audience: [resource],
    algorithms: ['RS256'],
    clockToleranceSeconds: 60,
    subjectClaim: 'sub',
    rolesClaim: 'roles',
  };
  http = await startHttpServer({
    listen: `127.0.0.1:${port}`,
    stateless: false,
    auth: { resource, issuers: [issuer] },
    allowedOrigins: ['https://claude.ai'],
    tools: tools(),
    log: silentLogger,
  });
});

afterAll(async () => {
  await http?.close();
  pool?.close();
  await idp?.close();
});

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'curl', version: '1' } },
});

function post(headers: Record<string, string>, body = initialize): Promise<Response> {
  return fetch(http.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body,
  });
}

async function connect(token: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(http.url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'http-test', version: '1' });
  await client.connect(transport);
  return client;
}

describe('protected resource metadata (RFC 9728)', () => {
  it('is served at the well-known path for the resource, naming the issuer', async () => {
    const url = resourceMetadataUrl(resource);
    expect(url).toBe(`http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      resource,
      authorization_servers: [idp.issuer],
      bearer_methods_supported: ['header'],
      resource_name: 'mcp fleet connector',
    });
  });
});

describe('authentication', () => {
  it('answers a request without a token with 401 pointing at the metadata', async () => {
    const res = await post({});
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer resource_metadata="http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp"`,
    );
  });

  it('refuses a token issued for another audience with invalid_token', async () => {
    const other = await idp.token('alice', { resource: 'https://other.example' });
    const res = await post({ authorization: `Bearer ${other}` });
    expect(res.status).toBe(401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer error="invalid_token"/);
    expect(challenge).toContain('resource_metadata="');
    expect(challenge).not.toContain('audience'); // fixed words: nothing from the verifier
  });

  it('serves tools to a caller with a good token, whose token goes on to the agents', async () => {
    const token = await idp.token('alice');
    const client = await connect(token);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain('live_check');
      seen.length = 0;
      const result = await client.callTool({ name: 'node_status', arguments: {} });
      expect(resultText(result)).toContain('node1: UNAVAILABLE');
      expect(seen.map((a) => a?.token)).toEqual([token]);
      expect(seen[0]?.extra?.caller).toMatchObject({ issuer: idp.issuer, subject: 'alice' });
    } finally {
      await client.close();
    }
  });

  it('does not let another caller use a session it did not open', async () => {
    const alice = await post({ authorization: `Bearer ${await idp.token('alice')}` });
    const sessionId = alice.headers.get('mcp-session-id') ?? '';
    expect(sessionId).not.toBe('');
    const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} });
    const bob = await post(
      {
        authorization: `Bearer ${await idp.token('bob')}`,
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-06-18',
      },
      list,
    );
    expect(bob.status).toBe(404);
  });
});

describe('DNS rebinding protection', () => {
  it('refuses an Origin that is not allowed with 403', async () => {
    const res = await post({
      origin: 'http://evil.example',
      authorization: `Bearer ${await idp.token('alice')}`,
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain(
      'Origin http://evil.example is not allowed',
    );
  });

  it('allows configured and loopback origins', async () => {
    for (const origin of ['https://claude.ai', 'http://localhost:6274']) {
      const res = await post({ origin, authorization: `Bearer ${await idp.token('alice')}` });
      expect(res.status).toBe(200);
      expect(res.headers.get('access-control-allow-origin')).toBe(origin);
    }
  });

  it('refuses a Host that is not this server', async () => {
    // fetch cannot set Host; node:http can.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port,
        path: '/mcp',
        method: 'POST',
        headers: { host: `evil.example:${port}` },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', reject);
      req.end(initialize);
    });
    expect(status).toBe(403);
  });
});

describe('exposure', () => {
  it('refuses a non-loopback address without TLS and authentication', () => {
    expect(() => checkExposure('0.0.0.0:8787', false, true)).toThrow(
      /without TLS \(--tls-cert and --tls-key\)/,
    );
    expect(() => checkExposure('192.0.2.1:8787', true, false)).toThrow(/without caller authentication/);
    expect(() => checkExposure('192.0.2.1:8787', true, true)).not.toThrow();
    expect(() => checkExposure('127.0.0.1:8787', false, false)).not.toThrow();
  });
});
