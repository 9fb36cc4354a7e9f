/**
 * Test harness: a real mcp-agent on a random loopback port, with a temp database, generated
 * certificates and a local issuer. The agent is the production assembly (`startAgent`), in
 * this process or, with `process: true`, as `dist/agent/main.js server` in a child process
 * (build first). Tokens are real ES256 JWTs signed by the local issuer, whose public key the
 * agent trusts through a `key_file` issuer; tests of the identity provider itself use the
 * real oidc-provider in test/support/oidc.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CallOptions,
  type ClientReadableStream,
  credentials,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { stringify } from 'smol-toml';
import { type StartAgentOptions, startAgent } from '../../agent/agent.js';
import { loadAgentConfig } from '../../agent/config.js';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  issueCertificate,
} from '../../connector/certs.js';
import { silentLogger } from '../../core/log.js';
import {
  type DeployProgress,
  type DeployRequest,
  type DeployResponse,
  type DeployResult,
  McpAgentServiceClient,
} from '../../gen/mcp/v1/mcp.js';
import type { Registry } from '../../registry/db.js';

export const TEST_ISSUER = 'https://issuer.test.invalid';
export const TEST_AUDIENCE = 'mcp-fleet-test';
const KEY_ID = 'test-key-1';
const root = new URL('../..', import.meta.url).pathname;

type TomlTable = Record<string, unknown>;

export interface TestAgentOptions {
  node?: string;
  /** Run `dist/agent/main.js server` in a child process instead of in this process. */
  process?: boolean;
  /** With `process`: arguments for node before the script, e.g. `--cpu-prof`. */
  nodeArgs?: string[];
  /** `[monitor]` settings (snake_case); the monitor is off unless `enabled: true`. */
  monitor?: TomlTable;
  /** `[files]` settings; `root` defaults to a temp dir. */
  files?: TomlTable;
  /** `[rbac]` table: `{ roles: [...], bindings: [...] }`. */
  rbac?: TomlTable;
  /** Extra `[[issuers]]` entries, after the local one. */
  issuers?: TomlTable[];
  /** Require client certificates signed by the test CA. */
  clientCertificates?: boolean;
  /** `[server] shutdown_grace_seconds`; 2 s unless a test waits for in-flight calls. */
  shutdownGraceSeconds?: number;
  /** Any other top-level settings, e.g. `{ runtime_path: '/nonexistent/podman' }`. */
  settings?: TomlTable;
  /** Reuse a data directory (to restart an agent on the same database). */
  dataDir?: string;
  /** In-process only: replace handlers. */
  handlers?: StartAgentOptions['handlers'];
}

export interface TokenOptions {
  subject?: string;
  roles?: string[];
  clientId?: string;
  /** Claims to add or override (e.g. `exp`). */
  claims?: JWTPayload;
}

export interface TestAgent {
  readonly node: string;
  readonly address: string;
  readonly port: number;
  readonly caPem: string;
  readonly dataDir: string;
  readonly configFile: string;
  readonly database: string;
  readonly filesRoot: string;
  /** The child process, with `process: true`. */
  readonly child?: ChildProcess;
  /** The agent's registry, in-process agents only (for tests that break the database on purpose). */
  readonly registry?: Registry;
  token(opts?: TokenOptions): Promise<string>;
  /** Metadata carrying a token for the given roles (default: admin). */
  auth(opts?: TokenOptions): Promise<Metadata>;
  /** A gRPC client trusting the test CA (with a client certificate when the agent asks for one). */
  client(): McpAgentServiceClient;
  stop(): Promise<void>;
}

let sharedCa: Promise<CertificateAuthority> | undefined;
/** One CA per test process: certificates are cheap, but one CA keeps failures readable. */
export function testCa(): Promise<CertificateAuthority> {
  sharedCa ??= createCertificateAuthority('mcp test CA');
  return sharedCa;
}

type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let sharedIssuer: Promise<{ privateKey: PrivateKey; publicJwk: object }> | undefined;
function testIssuerKeys() {
  sharedIssuer ??= (async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const publicJwk = { ...(await exportJWK(publicKey)), kid: KEY_ID, alg: 'ES256', use: 'sig' };
    return { privateKey, publicJwk };
  })();
  return sharedIssuer;
}

/** A token from the local test issuer. */
export async function signTestToken(opts: TokenOptions = {}): Promise<string> {
  const { privateKey } = await testIssuerKeys();
  const subject = opts.subject ?? 'test-admin';
  return new SignJWT({
    roles: opts.roles ?? ['admin'],
    client_id: opts.clientId ?? 'mcp-tests',
    ...opts.claims,
  })
    .setProtectedHeader({ alg: 'ES256', kid: KEY_ID, typ: 'at+jwt' })
    .setIssuer(TEST_ISSUER)
    .setAudience(TEST_AUDIENCE)
    .setSubject(subject)
    .setIssuedAt()
    .setExpirationTime('15m')
    .sign(privateKey);
}

export function bearer(token: string): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

async function waitForPort(child: ChildProcess, log: string[]): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(
      () => reject(new Error(`agent did not start in 20 s:\n${log.join('')}`)),
      20_000,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      log.push(chunk.toString());
      for (const line of buffer.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: number };
          if (entry.msg === 'agent started' && entry.port) {
            clearTimeout(timer);
            resolve(entry.port);
          }
        } catch {
          // a partial line; the rest comes with the next chunk
        }
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => log.push(chunk.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited with ${code} before it started:\n${log.join('')}`));
    });
  });
}

export async function startTestAgent(opts: TestAgentOptions = {}): Promise<TestAgent> {
  const node = opts.node ?? 'node1';
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), `mcp-agent-${node}-`));
  const ca = await testCa();
  const server = await issueCertificate(ca, {
    commonName: node,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  const { publicJwk } = await testIssuerKeys();
  const paths = {
    cert: join(dataDir, 'agent.crt'),
    key: join(dataDir, 'agent.key'),
    ca: join(dataDir, 'ca.crt'),
    jwk: join(dataDir, 'issuer.jwk.json'),
    config: join(dataDir, 'agent.toml'),
    database: join(dataDir, 'registry.db'),
    files: join(dataDir, 'srv'),
  };
  writeFileSync(paths.cert, server.certPem);
  writeFileSync(paths.key, server.keyPem, { mode: 0o600 });
  writeFileSync(paths.ca, ca.certPem);
  writeFileSync(paths.jwk, JSON.stringify(publicJwk));
  mkdirSync(paths.files, { recursive: true });

  const config: TomlTable = {
    node_name: node,
    log_level: opts.process ? 'info' : 'warn',
    database: paths.database,
    ...opts.settings,
    server: {
      listen: '127.0.0.1:0',
      tls_cert: paths.cert,
      tls_key: paths.key,
      shutdown_grace_seconds: opts.shutdownGraceSeconds ?? 2,
      ...(opts.clientCertificates ? { client_ca: paths.ca } : {}),
    },
    issuers: [
      {
        type: 'jwt',
        issuer: TEST_ISSUER,
        key_file: paths.jwk,
        audience: TEST_AUDIENCE,
        algorithms: ['ES256'],
      },
      ...(opts.issuers ?? []),
    ],
    ...(opts.rbac ? { rbac: opts.rbac } : {}),
    monitor: { enabled: false, ...opts.monitor },
    files: { root: paths.files, ...opts.files },
    backups: { dir: join(dataDir, 'backups'), keep: 3 },
  };
  writeFileSync(paths.config, stringify(config));

  let port: number;
  let stopAgent: () => Promise<void>;
  let child: ChildProcess | undefined;
  let registry: Registry | undefined;
  if (opts.process) {
    const log: string[] = [];
    const script = [join(root, 'dist/agent/main.js'), 'server', '--config', paths.config];
    child = spawn(process.execPath, [...(opts.nodeArgs ?? []), ...script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    port = await waitForPort(child, log);
    const proc = child;
    stopAgent = async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      await exited;
    };
  } else {
    const agentConfig = await loadAgentConfig(paths.config);
    const agent = await startAgent(agentConfig, { log: silentLogger, handlers: opts.handlers });
    port = agent.port;
    registry = agent.registry;
    stopAgent = () => agent.stop();
  }

  const address = `127.0.0.1:${port}`;
  const clients: McpAgentServiceClient[] = [];
  const clientCreds = opts.clientCertificates
    ? await issueCertificate(ca, { commonName: 'mcp-tests', client: true })
    : undefined;
  return {
    node,
    address,
    port,
    caPem: ca.certPem,
    dataDir,
    configFile: paths.config,
    database: paths.database,
    filesRoot: paths.files,
    child,
    registry,
    token: (o) => signTestToken(o),
    auth: async (o) => bearer(await signTestToken(o)),
    client: () => {
      const c = new McpAgentServiceClient(
        address,
        credentials.createSsl(
          Buffer.from(ca.certPem),
          clientCreds ? Buffer.from(clientCreds.keyPem) : null,
          clientCreds ? Buffer.from(clientCreds.certPem) : null,
        ),
      );
      clients.push(c);
      return c;
    },
    stop: async () => {
      for (const c of clients) c.close();
      await stopAgent();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

type UnaryMethod<Req, Res> = (
  req: Req,
  md: Metadata,
  options: Partial<CallOptions>,
  cb: (err: ServiceError | null, res: Res) => void,
) => unknown;

/** Calls a unary RPC: `await unary(client.stopService.bind(client), req, md)`. */
export function unary<Req, Res>(
  method: UnaryMethod<Req, Res>,
  req: Req,
  md: Metadata,
  options: Partial<CallOptions> = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(req, md, options, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Runs a Deploy and collects its progress messages and result. */
export async function deploy(
  client: McpAgentServiceClient,
  req: Partial<DeployRequest>,
  md: Metadata,
): Promise<{ progress: DeployProgress[]; result: DeployResult }> {
  const call: ClientReadableStream<DeployResponse> = client.deploy(
    { spec: undefined, service: '', component: '', requestId: '', ...req },
    md,
  );
  const progress: DeployProgress[] = [];
  let result: DeployResult | undefined;
  for await (const msg of call as AsyncIterable<DeployResponse>) {
    if (msg.progress) progress.push(msg.progress);
    if (msg.result) result = msg.result;
  }
  if (!result) throw new Error('the deploy stream ended without a result');
  return { progress, result };
}

/** The gRPC error a call that must fail failed with; throws if it succeeded. */
export async function grpcError(promise: Promise<unknown>): Promise<{ code: number; details: string }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e as { code: number; details: string },
  );
  if (!err) throw new Error('expected the call to fail');
  return err;
}
