/**
 * The connector as tests drive it: a config file in a temp dir, then either an in-process
 * MCP server reached by a real SDK Client over the SDK's InMemoryTransport (unit tests), or
 * the built `dist/connector/main.js` spawned over stdio or HTTP (e2e tests).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type CallToolResult,
  Client,
  type ClientOptions,
  InMemoryTransport,
} from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { AgentPool } from '../../connector/agent-client.js';
import { type ConnectorConfig, parseConnectorConfig } from '../../connector/config.js';
import { ConnectorTools } from '../../connector/mcp-server.js';
import { Router } from '../../connector/routing.js';
import { createBearerSource } from '../../connector/tokens.js';
import { selectTools, type ToolSwitches } from '../../connector/tool-selection.js';
import { silentLogger } from '../../core/log.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BUILT_CONNECTOR = join(REPO, 'dist/connector/main.js');

export interface TestNode {
  name: string;
  address: string;
  /** PEM of the CA that signed the agent's certificate. */
  caPem?: string;
  serverName?: string;
}

export interface ConnectorFiles {
  dir: string;
  /** `[files] local_dir`: what push_file may read and pull_file may write. */
  localDir: string;
  configFile: string;
  servicesDir: string;
  remove(): void;
}

/**
 * Writes a connector config (and CA files) into a fresh temp dir. `extra` is appended as TOML
 * (for `[http]`, `[auth]`, ...).
 */
/**
 * The `[http]` table of a connector whose Streamable HTTP mode is the protected resource
 * `resource`, trusting the RS256 tokens of one OIDC provider: extra text for writeConnectorConfig.
 */
export function httpIssuerConfig(resource: string, idp: { issuer: string; jwksUri: string }): string {
  return [
    '[http]',
    `resource = "${resource}"`,
    '',
    '[[http.issuers]]',
    `issuer = "${idp.issuer}"`,
    `jwks_uri = "${idp.jwksUri}"`,
    `audience = "${resource}"`,
    'algorithms = ["RS256"]',
    '',
  ].join('\n');
}

/**
 * `extra` for writeConnectorConfig: a test client that cannot show a confirmation question
 * (no elicitation) runs its writes unconfirmed, as a trusted local setup may choose.
 */
export const UNCONFIRMED_WRITES = '[confirm]\nwhen_client_cannot_ask = "allow"\n';

export function writeConnectorConfig(nodes: readonly TestNode[], extra = ''): ConnectorFiles {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-connector-'));
  const servicesDir = join(dir, 'services');
  mkdirSync(servicesDir);
  const lines = [
    `services_dir = "${servicesDir}"`,
    '',
    '[auth]',
    `token_file = "${join(dir, 'token')}"`,
    '',
    '[files]',
    `local_dir = "${join(dir, 'files')}"`,
    '',
  ];
  for (const node of nodes) {
    lines.push('[[nodes]]', `name = "${node.name}"`, `address = "${node.address}"`);
    if (node.caPem) {
      const caFile = join(dir, `${node.name}-ca.pem`);
      writeFileSync(caFile, node.caPem);
      lines.push(`ca_file = "${caFile}"`);
    }
    if (node.serverName) lines.push(`server_name = "${node.serverName}"`);
    lines.push('');
  }
  const configFile = join(dir, 'connector.toml');
  writeFileSync(configFile, `${lines.join('\n')}\n${extra}`);
  return {
    dir,
    localDir: join(dir, 'files'),
    configFile,
    servicesDir,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Writes `<servicesDir>/<name>.toml`. */
export function writeDefinition(servicesDir: string, name: string, text: string): string {
  const file = join(servicesDir, `${name}.toml`);
  writeFileSync(file, text);
  return file;
}

export interface InProcessConnector {
  client: Client;
  config: ConnectorConfig;
  close(): Promise<void>;
}

/**
 * The connector's MCP server in this process, with a real SDK Client on the other end of an
 * InMemoryTransport. `token` stands in for the token file / MCP_TOKEN.
 */
export async function connectInProcess(
  configFile: string,
  opts: { token?: string; switches?: ToolSwitches } = {},
): Promise<InProcessConnector> {
  const config = parseConnectorConfig(readFileSync(configFile, 'utf8'), configFile, {
    HOME: tmpdir(),
    ...(opts.token ? { MCP_TOKEN: opts.token } : {}),
  });
  const pool = new AgentPool(config.nodes, { log: silentLogger, retry: { retries: 2, baseDelayMs: 50 } });
  const ownToken = createBearerSource(config, opts.token ? { MCP_TOKEN: opts.token } : {});
  const tools = new ConnectorTools({
    tools: selectTools(opts.switches ?? {}),
    router: new Router(config, pool, silentLogger),
    bearerFor: async (authInfo) => authInfo?.token ?? ownToken.token(),
    servicesDir: config.servicesDir,
    localDir: config.files.localDir,
    version: 'test',
    log: silentLogger,
  });
  const server = tools.createServer();
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: 'connector-test', version: '1.0.0' });
  await client.connect(clientSide);
  await client.listTools(); // caches output schemas, so the client checks structuredContent
  return {
    client,
    config,
    close: async () => {
      await client.close();
      await server.close();
      pool.close();
    },
  };
}

/** The built connector over stdio, as an AI client starts it (a 2025-era client unless `clientOptions` pins another). */
export async function spawnStdioConnector(
  args: readonly string[],
  env: Record<string, string> = {},
  clientOptions: ClientOptions = {},
): Promise<{ client: Client; stderr: () => string; close(): Promise<void> }> {
  requireBuild();
  let stderr = '';
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BUILT_CONNECTOR, ...args],
    env: { PATH: process.env.PATH ?? '', HOME: tmpdir(), ...env },
    stderr: 'pipe',
  });
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const client = new Client({ name: 'connector-e2e', version: '1.0.0' }, clientOptions);
  await client.connect(transport);
  return { client, stderr: () => stderr, close: () => client.close() };
}

export interface SpawnedHttpConnector {
  url: string;
  process: ChildProcess;
  stderr(): string;
  stop(): Promise<void>;
}

/** The built connector serving Streamable HTTP on `listen`; resolves once /healthz answers. */
export async function spawnHttpConnector(
  listen: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<SpawnedHttpConnector> {
  requireBuild();
  const child = spawn(process.execPath, [BUILT_CONNECTOR, '--http', listen, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const base = `http://${listen}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`connector exited with ${child.exitCode}: ${stderr}`);
    try {
      const res = await fetch(`${base}/healthz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`connector did not answer /healthz within 15 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `${base}/mcp`,
    process: child,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs the built connector to completion (for start-up refusals). */
export function runConnector(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  requireBuild();
  return new Promise((done) => {
    const child = spawn(process.execPath, [BUILT_CONNECTOR, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: tmpdir(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

function requireBuild(): void {
  if (!existsSync(BUILT_CONNECTOR)) {
    throw new Error(`${BUILT_CONNECTOR} is missing: run npm run build first (npm test does)`);
  }
}

/** The text of a tool result. */
export function resultText(result: unknown): string {
  const content = (result as CallToolResult).content ?? [];
  return content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}

/** A port on 127.0.0.1 that nothing listens on. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
