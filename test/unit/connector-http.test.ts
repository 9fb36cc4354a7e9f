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
  RefusalLog,
  type RunningHttpServer,
  resourceMetadataUrl,
  startHttpServer,
} from '../../connector/http.js';
import { ConnectorTools } from '../../connector/mcp-server.js';
import { Router } from '../../connector/routing.js';
import { selectTools } from '../../connector/tool-selection.js';
import type { JwtIssuerConfig } from '../../core/auth/issuers.js';
import { createLogger, silentLogger } from '../../core/log.js';
import { resultText } from '../support/connector.js';
import { startOidcProvider, type TestOidcProvider } from '../support/oidc.js';
import { freePort } from '../support/testbed.js';

let idp: TestOidcProvider;
let http: RunningHttpServer;
let port: number;
let resource: string;
let pool: AgentPool;
/** The connector's log lines, parsed. */
const logLines: Record<string, unknown>[] = [];
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
    log: createLogger({ level: 'info', write: (line) => logLines.push(JSON.parse(line)) }),
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

describe('two Authorization headers', () => {
  it('refuses a request with a good token followed by another one, with the fixed 401', async () => {
    const good = await idp.token('alice');
    // fetch folds repeated headers into one; node:http sends them as given.
    const { status, challenge, body } = await new Promise<{
      status?: number;
      challenge?: string;
      body: string;
    }>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port,
        path: '/mcp',
        method: 'POST',
        headers: [
          'host',
          `127.0.0.1:${port}`,
          'content-type',
          'application/json',
          'accept',
          'application/json, text/event-stream',
          'authorization',
          `Bearer ${good}`,
          'authorization',
          'Bearer garbage',
        ],
      });
      req.on('response', (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
        });
        res.on('end', () =>
          resolve({ status: res.statusCode, challenge: res.headers['www-authenticate'], body: text }),
        );
      });
      req.on('error', reject);
      req.end(initialize);
    });
    expect(status).toBe(401);
    expect(challenge).toMatch(/^Bearer error="invalid_token"/);
    expect(JSON.parse(body)).toEqual({
      error: 'invalid_token',
      error_description: 'authentication required: present a valid bearer token from a trusted issuer',
    });
  });
});

describe('refusal log', () => {
  it('writes one structured line per refusal, with reason, address and time, never the token', async () => {
    logLines.length = 0;
    const res = await post({ authorization: 'Bearer secret-garbage-token' });
    expect(res.status).toBe(401);
    const refusals = logLines.filter((l) => l.msg === 'http request refused');
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ level: 'warn', reason: 'not authenticated', remote: '127.0.0.1' });
    expect(refusals[0]?.time).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(JSON.stringify(logLines)).not.toContain('secret-garbage-token');
  });

  it('logs at most N refusals a minute, then one line counting the rest', () => {
    const lines: Record<string, unknown>[] = [];
    const log = new RefusalLog(createLogger({ level: 'info', write: (l) => lines.push(JSON.parse(l)) }), 3);
    try {
      for (let i = 0; i < 50; i++) log.record('not authenticated', '192.0.2.7');
      expect(lines).toHaveLength(3);
      log.rollOver();
      expect(lines).toHaveLength(4);
      expect(lines[3]).toMatchObject({ msg: 'suppressed 47 refusals', suppressed: 47 });
      log.record('Origin not allowed', '192.0.2.7');
      expect(lines).toHaveLength(5);
      log.rollOver(); // nothing suppressed: no line
      expect(lines).toHaveLength(5);
    } finally {
      log.close();
    }
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
