/**
 * Both protocol eras over both transports, with the real SDK client 2.4.0 against the built
 * connector and a real agent: a client pinned to 2026-07-28 (`server/discover`, per-request
 * `_meta`, stateless HTTP) and a 2025-11-25 client (the `initialize` handshake, HTTP
 * sessions), each over stdio and over Streamable HTTP. Every combination lists services,
 * deploys with progress, is refused, and cancels a call. Run `npm run build` first.
 */
import { createServer, type Socket } from 'node:net';
import {
  Client,
  type ClientOptions,
  type Progress,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signTestToken, startTestAgent, type TestAgent } from '../support/agent.js';
import {
  type ConnectorFiles,
  httpIssuerConfig,
  resultText,
  type SpawnedHttpConnector,
  spawnHttpConnector,
  spawnStdioConnector,
  writeConnectorConfig,
  writeDefinition,
} from '../support/connector.js';
import { startOidcProvider, type TestOidcProvider } from '../support/oidc.js';
import { freePort, removeContainers, requireTestbed, type Testbed, uniqueName } from '../support/testbed.js';

type Era = '2026-07-28' | '2025-11-25';
type Wire = 'stdio' | 'http';

type NodeEntry = { node: string; result?: Record<string, unknown>; error?: { code: string } };

let idp: TestOidcProvider;
let agent: TestAgent;
let files: ConnectorFiles;
let http: SpawnedHttpConnector;
let bed: Testbed | undefined;
let adminToken: string;
/** A registry address that accepts connections and never answers: a pull from it hangs. */
let silentRegistry: {
  address: string;
  connections: Socket[];
  closed: WeakSet<Socket>;
  close(): Promise<void>;
};
const prefix = uniqueName('eras');

beforeAll(async () => {
  bed = await requireTestbed();
  const port = await freePort();
  const resource = `http://127.0.0.1:${port}/mcp`;
  idp = await startOidcProvider({
    resource,
    clients: [{ clientId: 'alice', clientSecret: 'alice-secret-0123456789', roles: ['admin'] }],
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
  http = await spawnHttpConnector(`127.0.0.1:${port}`, ['--config', files.configFile]);
  adminToken = await signTestToken({ subject: 'eras-admin', roles: ['admin'] });
  silentRegistry = await startSilentRegistry();
});

afterAll(async () => {
  await http?.stop();
  await agent?.stop();
  await idp?.close();
  await silentRegistry?.close();
  if (bed) await removeContainers(prefix);
  files?.remove();
});

function clientOptions(era: Era): ClientOptions {
  return era === '2026-07-28' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {};
}

/** A connected client of the given era over the given transport; `token` for HTTP only. */
async function connect(
  wire: Wire,
  era: Era,
  token?: string,
): Promise<{ client: Client; close(): Promise<void> }> {
  if (wire === 'stdio') {
    return spawnStdioConnector(['--config', files.configFile], { MCP_TOKEN: adminToken }, clientOptions(era));
  }
  const client = new Client({ name: 'eras-e2e', version: '1' }, clientOptions(era));
  await client.connect(
    new StreamableHTTPClientTransport(new URL(http.url), {
      requestInit: { headers: { authorization: `Bearer ${token ?? (await idp.token('alice'))}` } },
    }),
  );
  return { client, close: () => client.close() };
}

async function startSilentRegistry(): Promise<typeof silentRegistry> {
  const connections: Socket[] = [];
  const closed = new WeakSet<Socket>();
  const server = createServer((socket) => {
    connections.push(socket);
    socket.on('error', () => {});
    socket.on('close', () => closed.add(socket));
    socket.resume(); // read what the client sends, never answer
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    address: `127.0.0.1:${port}`,
    connections,
    closed,
    close: async () => {
      for (const s of connections) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function until(what: string, check: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.each([
  { wire: 'stdio', era: '2026-07-28' },
  { wire: 'stdio', era: '2025-11-25' },
  { wire: 'http', era: '2026-07-28' },
  { wire: 'http', era: '2025-11-25' },
] as const)('$era over $wire', ({ wire, era }) => {
  let session: { client: Client; close(): Promise<void> };
  const service = `${prefix}-${wire}-${era.slice(0, 4)}`;

  beforeAll(async () => {
    session = await connect(wire, era);
  });

  afterAll(async () => {
    await session?.close();
  });

  it('negotiates the era the client asked for', () => {
    expect(session.client.getNegotiatedProtocolVersion()).toBe(era);
  });

  it('lists services on the node', async () => {
    const result = await session.client.callTool({ name: 'list_services', arguments: {} });
    expect(result.isError, resultText(result)).toBeFalsy();
    const nodes = (result.structuredContent as { nodes: NodeEntry[] }).nodes;
    expect(nodes.map((n) => n.node)).toEqual(['node1']);
    expect(nodes[0]?.result).toBeDefined();
  });

  it('deploys with progress notifications', async (ctx) => {
    if (!bed) return ctx.skip();
    writeDefinition(
      files.servicesDir,
      service,
      `name = "${service}"\nnode = "node1"\n\n[[components]]\nname = "${service}"\nimage = "${bed.imageV1}"\n`,
    );
    const progress: Progress[] = [];
    const result = await session.client.callTool(
      { name: 'deploy', arguments: { service } },
      { onprogress: (p) => progress.push(p), timeout: 300_000 },
    );
    expect(result.isError, resultText(result)).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ node: 'node1', service });
    // typescript-sdk #2580 can drop a notification that shares a chunk with the response.
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress[0]?.message).toMatch(new RegExp(`^${service}: `));
  });

  it('answers arguments that are not an object with invalid params (-32602) in one line', async () => {
    const err = await session.client
      .request({ method: 'tools/call', params: { name: 'list_services', arguments: 'node=node1' } })
      .catch((e: unknown) => e);
    expect((err as { code?: number }).code).toBe(-32602);
    const message = (err as Error).message;
    expect(message).toContain('the arguments of list_services must be a JSON object of named values');
    expect(message).toContain('not a string');
    expect(message).not.toContain('\n');
  });

  if (wire === 'http') {
    it('refuses a bad token with an authentication error', async () => {
      const refused = await connect(wire, era, 'garbage').catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(Error);
      expect(String(refused)).toMatch(/401|unauthori[sz]ed|invalid_token/i);
    });
  } else {
    it('returns a call the agent refuses as an error result', async () => {
      const result = await session.client.callTool({
        name: 'stop_service',
        arguments: { service: `${prefix}-nothing-here`, node: 'node1' },
      });
      expect(result.isError).toBe(true);
      expect(resultText(result)).toMatch(/^NOT_FOUND: /);
    });
  }

  it('cancels a call: the client sees it cancelled and the agent stops its work', async (ctx) => {
    if (!bed) return ctx.skip();
    const hanging = `${service}-hang`;
    const before = silentRegistry.connections.length;
    const abort = new AbortController();
    const call = session.client
      .callTool(
        {
          name: 'deploy',
          arguments: {
            node: 'node1',
            spec: {
              name: hanging,
              components: [{ name: hanging, image: `${silentRegistry.address}/bb:v1` }],
            },
          },
        },
        { signal: abort.signal, timeout: 120_000 },
      )
      .then(
        () => 'completed',
        (e: unknown) => e,
      );
    // The agent's podman pull has reached the silent registry: the call is in flight on the node.
    await until('the pull to reach the silent registry', () => silentRegistry.connections.length > before);
    const pulling = silentRegistry.connections.slice(before);
    abort.abort('the user changed their mind');
    const outcome = await call;
    expect(outcome).not.toBe('completed');
    expect(String(outcome)).toMatch(/cancel|abort|changed their mind/i);
    // Cancelling the gRPC call aborts the agent's handler, which kills podman: its connections close.
    await until(
      'the agent to stop the pull',
      () => pulling.every((s) => silentRegistry.closed.has(s)),
      8_000,
    );
  });
});
