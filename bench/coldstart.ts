/**
 * Cold start: how long an AI client waits between spawning an MCP server and its answers, ours
 * beside podman-mcp-server's in the same run, and the `mcp` CLI's whole process.
 *
 *   - spawn → `initialize` answered, and → `tools/list` answered (sent right after the
 *     initialize answer, as clients do), over stdio with raw JSON-RPC lines: no client library
 *     in the way;
 *   - for `node -e 0` (the floor: spawn to exit), mcp-connector with a fleet config (its node
 *     is never dialled before a tool call), mcp-connector in the local single-node setup (its
 *     agent starts inside the connector, as there is no other), podman-mcp-server 0.0.15;
 *   - `mcp tools` and `mcp list` against a fleet of one agent (its own process,
 *     already running), and `mcp list` in the local setup (its agent running), spawn to exit.
 *
 * The connector and the CLI start from V8's code cache (core/compile-cache.ts), which their
 * first start writes under $XDG_CACHE_HOME: the rows marked "no code cache" give each start a
 * new, empty cache directory, as a first start after an install or upgrade has.
 *
 * Subjects take turns within each round, so load from elsewhere falls on all of them alike.
 *
 *   npm install --prefix /tmp/pms podman-mcp-server@0.0.15   # once; ships a Go binary
 *   npm run build && npx tsx bench/coldstart.ts [runs=15] [path of podman-mcp-server]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopLocalAgent } from '../connector/local-agent.js';
import { signTestToken, startTestAgent } from '../test/support/agent.js';
import { BUILT_CONNECTOR, REPO, writeConnectorConfig } from '../test/support/connector.js';
import { machine, PODMAN_MCP_SERVER_BIN, percentile, table } from './stats.js';

const runs = Number(process.argv[2] ?? 15);
const PODMAN_MCP_SERVER = process.argv[3] ?? PODMAN_MCP_SERVER_BIN;
const CLI = join(REPO, 'dist/connector/cli.js');
if (!existsSync(BUILT_CONNECTOR)) throw new Error('dist/ is missing: run npm run build first');

interface Timings {
  initialize: number;
  toolsList: number;
}

const line = (message: object) => `${JSON.stringify(message)}\n`;
const INITIALIZE = line({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } },
});
const INITIALIZED = line({ jsonrpc: '2.0', method: 'notifications/initialized' });
const TOOLS_LIST = line({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} });

/** Spawns an MCP server over stdio; times its answers to initialize and tools/list, then stops it. */
function mcpStart(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Timings> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let buffer = '';
    let initialize = 0;
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.stdout.on('data', (chunk) => {
      buffer += chunk;
      for (let at = buffer.indexOf('\n'); at !== -1; at = buffer.indexOf('\n')) {
        const message = JSON.parse(buffer.slice(0, at)) as { id?: number; error?: unknown };
        buffer = buffer.slice(at + 1);
        if (message.error) reject(new Error(`${command}: ${JSON.stringify(message.error)}`));
        if (message.id === 1) {
          initialize = performance.now() - started;
          child.stdin.write(INITIALIZED + TOOLS_LIST);
        } else if (message.id === 2) {
          const toolsList = performance.now() - started;
          // What a server prints while it stops is not the protocol any more.
          child.stdout.removeAllListeners('data');
          child.removeAllListeners('exit');
          child.once('exit', () => resolve({ initialize, toolsList }));
          child.stdin.end();
          child.kill('SIGTERM');
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`${command} exited ${code} before answering: ${stderr}`)));
    child.stdin.write(INITIALIZE);
  });
}

/** Spawn to exit, with the exit status checked. */
function wholeProcess(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.once('exit', (code) =>
      code === 0
        ? resolve(performance.now() - started)
        : reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr}`)),
    );
  });
}

const baseEnv = { PATH: process.env.PATH, HOME: mkdtempSync(join(tmpdir(), 'mcp-coldstart-home-')) };
const token = await signTestToken({ subject: 'bench', roles: ['admin'] });
const agent = await startTestAgent({ node: 'node1', process: true });
const fleet = writeConnectorConfig([
  { name: 'node1', address: agent.address, caPem: agent.caPem, serverName: 'localhost' },
]);
const fleetEnv = { ...baseEnv, MCP_TOKEN: token, MCP_CONFIG: fleet.configFile };
const localHome = mkdtempSync(join(tmpdir(), 'mcp-coldstart-local-'));
const localEnv = { ...baseEnv, MCP_HOME: localHome };
const peer = existsSync(PODMAN_MCP_SERVER);
const cacheRoot = mkdtempSync(join(tmpdir(), 'mcp-coldstart-cache-'));
let fresh = 0;
/** The same environment with a code cache directory no start has used yet. */
const noCache = (env: NodeJS.ProcessEnv) => ({ ...env, XDG_CACHE_HOME: join(cacheRoot, String(fresh++)) });

type Subject = { name: string; starts: Timings[]; start: () => Promise<Timings> };
const servers: Subject[] = [
  {
    name: '`node -e 0` (floor: spawn to exit)',
    starts: [],
    start: async () => {
      const t = await wholeProcess(process.execPath, ['-e', '0'], baseEnv);
      return { initialize: t, toolsList: t };
    },
  },
  {
    name: 'mcp-connector, fleet config',
    starts: [],
    start: () => mcpStart(process.execPath, [BUILT_CONNECTOR], fleetEnv),
  },
  {
    name: 'mcp-connector, fleet config, no code cache',
    starts: [],
    start: () => mcpStart(process.execPath, [BUILT_CONNECTOR], noCache(fleetEnv)),
  },
  {
    name: 'mcp-connector, local setup (its agent running)',
    starts: [],
    start: () => mcpStart(process.execPath, [BUILT_CONNECTOR], localEnv),
  },
  ...(peer
    ? [
        {
          name: 'podman-mcp-server 0.0.15',
          starts: [],
          start: () => mcpStart(PODMAN_MCP_SERVER, [], baseEnv),
        },
      ]
    : []),
];
const cli: Array<{ name: string; times: number[]; run: () => Promise<number> }> = [
  { name: '`mcp tools`', times: [], run: () => wholeProcess(process.execPath, [CLI, 'tools'], fleetEnv) },
  {
    name: '`mcp list` (one agent)',
    times: [],
    run: () => wholeProcess(process.execPath, [CLI, 'list'], fleetEnv),
  },
  {
    name: '`mcp list` (one agent), no code cache',
    times: [],
    run: () => wholeProcess(process.execPath, [CLI, 'list'], noCache(fleetEnv)),
  },
  {
    name: '`mcp list`, local setup (its agent running)',
    times: [],
    run: () => wholeProcess(process.execPath, [CLI, 'list'], localEnv),
  },
];

try {
  // The local setup's first start answers without its agent; its first tool call creates the
  // CA, certificates and keys and starts the agent: `mcp list` does that, timed apart.
  const firstLocal = await mcpStart(process.execPath, [BUILT_CONNECTOR], localEnv);
  const firstLocalCall = await wholeProcess(process.execPath, [CLI, 'list'], localEnv);
  for (let round = 0; round < runs; round++) {
    for (const s of servers) s.starts.push(await s.start());
    for (const c of cli) c.times.push(await c.run());
  }
  const p50 = (xs: number[]) => percentile(xs, 50);
  const p90 = (xs: number[]) => percentile(xs, 90);
  const peerInit = peer ? p50(servers.at(-1)!.starts.map((t) => t.initialize)) : Number.NaN;
  const peerList = peer ? p50(servers.at(-1)!.starts.map((t) => t.toolsList)) : Number.NaN;
  const f = (n: number) => `${n.toFixed(0)} ms`;
  const ratio = (n: number, of: number) => (Number.isNaN(of) ? '' : `${(n / of).toFixed(2)}×`);
  const rows = servers.map((s) => {
    const init = s.starts.map((t) => t.initialize);
    const list = s.starts.map((t) => t.toolsList);
    return [
      s.name,
      f(p50(init)),
      f(p90(init)),
      ratio(p50(init), peerInit),
      f(p50(list)),
      f(p90(list)),
      ratio(p50(list), peerList),
    ];
  });
  console.log(`${machine()}, ${runs} starts each, interleaved\n`);
  console.log(table(['server', 'initialize p50', 'p90', '÷ peer', 'tools/list p50', 'p90', '÷ peer'], rows));
  console.log(
    `\nlocal setup, first start: initialize ${f(firstLocal.initialize)}; then its first \`mcp list\` (creates CA, certificates, keys, starts the agent): ${f(firstLocalCall)}`,
  );
  if (!peer) console.log(`podman-mcp-server not found at ${PODMAN_MCP_SERVER}: no ratios`);
  console.log(
    `\n${table(
      ['command (spawn → exit)', 'p50', 'p90', '÷ peer initialize'],
      cli.map((c) => [c.name, f(p50(c.times)), f(p90(c.times)), ratio(p50(c.times), peerInit)]),
    )}`,
  );
} finally {
  await agent.stop();
  // The local setup's agent outlives the connectors that started it.
  await stopLocalAgent(localHome);
  fleet.remove();
  rmSync(cacheRoot, { recursive: true, force: true });
  rmSync(localHome, { recursive: true, force: true });
  rmSync(baseEnv.HOME, { recursive: true, force: true });
}
