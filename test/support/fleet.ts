/**
 * A fleet on one machine: each node is its own `dist/agent/main.js server` process with its own
 * state directory, listening on its own loopback address (127.0.0.11, .12, .13, ...) with a
 * certificate for that address issued by `mcp ca issue` (the built CLI) from a CA made by
 * `mcp ca init`. The connector reaches the nodes by address and trusts that CA, as an operator's
 * would. Tokens are ES256 JWTs from a local issuer that every node trusts (`key_file`).
 *
 * Every process started here is stopped by `stop()`, also when a later node fails to start, and
 * killed when the test process exits, so a failing test leaves no agent behind.
 *
 * `cutOff(node)` drops (not rejects) TCP to one node's address and port in an nft table of its
 * own (`inet mcp_test`), so calls to it time out as on a real network partition; `restore()`
 * (and `stop()`) delete that table.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { stringify } from 'smol-toml';
import { REPO, type TestNode } from './connector.js';

const AGENT = join(REPO, 'dist/agent/main.js');
const CLI = join(REPO, 'dist/connector/cli.js');
export const FLEET_ISSUER = 'https://fleet-issuer.test.invalid';
export const FLEET_AUDIENCE = 'mcp-fleet-test';
const KEY_ID = 'fleet-key-1';
export const NFT_TABLE = 'mcp_test';

export interface FleetNode {
  name: string;
  /** The node's own loopback address, e.g. 127.0.0.11. */
  host: string;
  port: number;
  /** `host:port`, as the connector config's `address`. */
  address: string;
  stateDir: string;
  configFile: string;
  certFile: string;
  child: ChildProcess;
  /** stdout and stderr of the agent so far, for failure messages. */
  log(): string;
}

export interface Fleet {
  nodes: FleetNode[];
  /** The CA's directory (`mcp ca init --dir`). */
  caDir: string;
  caPem: string;
  /** The nodes as test/support/connector.ts's writeConnectorConfig takes them. */
  testNodes(): TestNode[];
  token(roles?: string[]): Promise<string>;
  /** Output of a `mcp` CLI run (for `mcp ca`). */
  cli(args: readonly string[]): string;
  cutOff(node: FleetNode): void;
  restore(): void;
  stop(): Promise<void>;
}

export interface FleetOptions {
  /** Node names; node i gets 127.0.0.(11 + i). Default node1..node3. */
  names?: string[];
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): string {
  return execFileSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', HOME: tmpdir(), ...env },
  });
}

function waitForStart(child: ChildProcess, output: string[]): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(
      () => reject(new Error(`agent did not start in 20 s:\n${output.join('')}`)),
      20_000,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: number };
          if (entry.msg === 'agent started' && entry.port) {
            clearTimeout(timer);
            resolve(entry.port);
          }
        } catch {
          // not a log line
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited with ${code} before it started:\n${output.join('')}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  live.delete(child);
}

function nft(args: readonly string[]): void {
  execFileSync('nft', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Deletes the test table; absent is fine. */
function deleteNftTable(): void {
  try {
    nft(['delete', 'table', 'inet', NFT_TABLE]);
  } catch {
    // no such table
  }
}

export async function startFleet(opts: FleetOptions = {}): Promise<Fleet> {
  const names = opts.names ?? ['node1', 'node2', 'node3'];
  const root = mkdtempSync(join(tmpdir(), 'mcp-fleet-'));
  const caDir = join(root, 'ca');
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwkFile = join(root, 'issuer.jwk.json');
  writeFileSync(
    jwkFile,
    JSON.stringify({ ...(await exportJWK(publicKey)), kid: KEY_ID, alg: 'ES256', use: 'sig' }),
  );
  const nodes: FleetNode[] = [];
  const stop = async () => {
    deleteNftTable();
    await Promise.all(nodes.map((n) => stopChild(n.child)));
    rmSync(root, { recursive: true, force: true });
  };
  const started: Promise<void>[] = [];
  try {
    runCli(['ca', 'init', '--dir', caDir]);
    for (const [i, name] of names.entries()) {
      const host = `127.0.0.${11 + i}`;
      runCli(['ca', 'issue', name, '--address', host, '--dir', caDir]);
      const stateDir = join(root, name);
      mkdirSync(join(stateDir, 'srv'), { recursive: true });
      const issuedDir = join(caDir, 'nodes', name);
      const configFile = join(stateDir, 'agent.toml');
      writeFileSync(
        configFile,
        stringify({
          node_name: name,
          log_level: 'info',
          database: join(stateDir, 'registry.db'),
          server: {
            listen: `${host}:0`,
            tls_cert: join(issuedDir, 'agent.crt'),
            tls_key: join(issuedDir, 'agent.key'),
            shutdown_grace_seconds: 2,
          },
          issuers: [
            {
              type: 'jwt',
              issuer: FLEET_ISSUER,
              key_file: jwkFile,
              audience: FLEET_AUDIENCE,
              algorithms: ['ES256'],
            },
          ],
          monitor: { enabled: false },
          files: { root: join(stateDir, 'srv') },
          backups: { dir: join(stateDir, 'backups'), keep: 3 },
        }),
      );
      const output: string[] = [];
      const child = spawn(process.execPath, [AGENT, 'server', '--config', configFile], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      live.add(child);
      child.stdout?.on('data', (c: Buffer) => output.push(c.toString()));
      child.stderr?.on('data', (c: Buffer) => output.push(c.toString()));
      const node: FleetNode = {
        name,
        host,
        port: 0,
        address: '',
        stateDir,
        configFile,
        certFile: join(issuedDir, 'agent.crt'),
        child,
        log: () => output.join(''),
      };
      nodes.push(node);
      started.push(
        waitForStart(child, output).then((port) => {
          node.port = port;
          node.address = `${host}:${port}`;
        }),
      );
    }
    // All nodes start at once; a failure of one still stops the others (below).
    await Promise.all(started);
  } catch (err) {
    await Promise.allSettled(started);
    await stop();
    throw err;
  }
  const caPem = readFileSync(join(caDir, 'ca.crt'), 'utf8');
  return {
    nodes,
    caDir,
    caPem,
    testNodes: () => nodes.map((n) => ({ name: n.name, address: n.address, caPem })),
    token: (roles = ['admin']) =>
      new SignJWT({ roles, client_id: 'mcp-fleet-tests' })
        .setProtectedHeader({ alg: 'ES256', kid: KEY_ID, typ: 'at+jwt' })
        .setIssuer(FLEET_ISSUER)
        .setAudience(FLEET_AUDIENCE)
        .setSubject('fleet-admin')
        .setIssuedAt()
        .setExpirationTime('15m')
        .sign(privateKey),
    cli: (args) => runCli(args),
    cutOff: (node) => {
      deleteNftTable();
      nft(['add', 'table', 'inet', NFT_TABLE]);
      nft([
        'add',
        'chain',
        'inet',
        NFT_TABLE,
        'output',
        '{ type filter hook output priority 0 ; policy accept ; }',
      ]);
      // Only this node's address and port: nothing else on the machine is affected.
      nft([
        'add',
        'rule',
        'inet',
        NFT_TABLE,
        'output',
        'ip',
        'daddr',
        node.host,
        'tcp',
        'dport',
        String(node.port),
        'drop',
      ]);
    },
    restore: deleteNftTable,
    stop,
  };
}
