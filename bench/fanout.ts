/**
 * A fan-out read over many agents: `list_services` without `node`, through the built connector
 * over stdio, to N real agents (TLS gRPC, JWT, RBAC, audit, SQLite) on loopback.
 *
 * The agents run in `hosts` child processes (round robin), each hosting its share of the
 * agents on its one event loop; `hosts` = 0 runs them all in this process. With two cores,
 * the connector and the agents compete for the same CPUs whatever the split: on a fleet each
 * node answers on its own CPU, so the curve is pessimistic for the agents' side. The CPU
 * columns are what each side spent per call (user + system, from /proc), which load on the
 * machine does not inflate the way it inflates wall time.
 *
 *   npm run build && npx tsx bench/fanout.ts [counts=20,100,250,500] [calls=10] [hosts=2]
 *
 * With BENCH_PROFILE_DIR set, the connector and the agent hosts write CPU profiles there
 * (`--cpu-prof`); for `hosts` = 0 run this file itself under `node --cpu-prof --import tsx`.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { startTestAgent, TEST_AUDIENCE, type TestAgent } from '../test/support/agent.js';
import { BUILT_CONNECTOR, type TestNode, writeConnectorConfig } from '../test/support/connector.js';
import { machine, ms, summary, table, timed } from './stats.js';

/** The bench's own token issuer, trusted by every agent whichever process hosts it. */
const BENCH_ISSUER = 'https://fanout-bench.invalid';
const profileDir = process.env.BENCH_PROFILE_DIR;
const profileArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];

/** Starts agents in the calling process; what a host child runs, or the bench with `hosts` = 0. */
class LocalAgents {
  private readonly agents: TestAgent[] = [];
  constructor(private readonly issuerKeyFile: string) {}

  async start(names: readonly string[]): Promise<TestNode[]> {
    const started: TestNode[] = [];
    for (const node of names) {
      const agent = await startTestAgent({
        node,
        issuers: [
          {
            type: 'jwt',
            issuer: BENCH_ISSUER,
            key_file: this.issuerKeyFile,
            audience: TEST_AUDIENCE,
            algorithms: ['ES256'],
          },
        ],
      });
      this.agents.push(agent);
      started.push({ name: node, address: agent.address, caPem: agent.caPem, serverName: 'localhost' });
    }
    return started;
  }

  async stop(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.stop()));
  }
}

/** A child process hosting agents, driven by JSON lines on its stdin and stdout. */
class AgentHost {
  private readonly child: ChildProcess;
  private readonly replies: AsyncIterator<string>;

  constructor(issuerKeyFile: string) {
    this.child = spawn(
      process.execPath,
      [...profileArgs, '--import', 'tsx', new URL(import.meta.url).pathname, '--host', issuerKeyFile],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    this.replies = createInterface({ input: this.child.stdout as NodeJS.ReadableStream })[
      Symbol.asyncIterator
    ]();
  }

  get pid(): number {
    return this.child.pid as number;
  }

  async start(names: readonly string[]): Promise<TestNode[]> {
    this.child.stdin?.write(`${JSON.stringify({ start: names })}\n`);
    const reply = await this.replies.next();
    if (reply.done) throw new Error('an agent host exited before it started its agents');
    return JSON.parse(reply.value) as TestNode[];
  }

  async stop(): Promise<void> {
    const exited = once(this.child, 'exit');
    this.child.stdin?.end();
    await exited;
  }
}

/** The `--host` side of AgentHost: start what is asked, stop everything when stdin closes. */
async function serveAsHost(issuerKeyFile: string): Promise<void> {
  const agents = new LocalAgents(issuerKeyFile);
  for await (const line of createInterface({ input: process.stdin })) {
    const { start } = JSON.parse(line) as { start: string[] };
    process.stdout.write(`${JSON.stringify(await agents.start(start))}\n`);
  }
  await agents.stop();
}

/** CPU time (user + system) a process has used, in ms, from /proc (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function bench(): Promise<void> {
  const counts = (process.argv[2] ?? '20,100,250,500').split(',').map(Number);
  const calls = Number(process.argv[3] ?? 10);
  const hostCount = Number(process.argv[4] ?? 2);

  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const issuerKeyFile = join(tmpdir(), `mcp-fanout-issuer-${process.pid}.jwk.json`);
  writeFileSync(issuerKeyFile, JSON.stringify({ ...(await exportJWK(publicKey)), alg: 'ES256', use: 'sig' }));
  const token = await new SignJWT({ roles: ['viewer'], client_id: 'fanout-bench' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
    .setIssuer(BENCH_ISSUER)
    .setAudience(TEST_AUDIENCE)
    .setSubject('bench')
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(privateKey);

  const hosts = Array.from({ length: hostCount }, () => new AgentHost(issuerKeyFile));
  const local = hostCount === 0 ? new LocalAgents(issuerKeyFile) : undefined;
  const agentPids = hostCount === 0 ? [process.pid] : hosts.map((h) => h.pid);
  const nodes: TestNode[] = [];
  const rows: Array<Array<string | number>> = [];
  try {
    for (const count of counts) {
      const began = performance.now();
      const names = Array.from({ length: count - nodes.length }, (_, i) => `node${nodes.length + i + 1}`);
      const started = local
        ? [await local.start(names)]
        : await Promise.all(hosts.map((h, k) => h.start(names.filter((_, i) => i % hosts.length === k))));
      // Config order: node1, node2, ... whichever host runs them.
      nodes.push(...started.flat().sort((a, b) => Number(a.name.slice(4)) - Number(b.name.slice(4))));
      const startedMs = performance.now() - began;
      const config = writeConnectorConfig(nodes);
      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [...profileArgs, BUILT_CONNECTOR, '--config', config.configFile],
        env: { PATH: process.env.PATH ?? '', HOME: tmpdir(), MCP_TOKEN: token },
        stderr: 'ignore',
      });
      const client = new Client({ name: 'fanout-bench', version: '1.0.0' });
      await client.connect(transport);
      try {
        const call = () => client.callTool({ name: 'list_services', arguments: {} }, { timeout: 120_000 });
        // The first call dials every agent (TLS handshakes); the ones measured reuse the channels.
        const first = await timed(call);
        const result = await call();
        const answered = (result.structuredContent as { nodes: Array<{ error?: unknown }> }).nodes.filter(
          (n) => !n.error,
        ).length;
        const connectorPid = transport.pid as number;
        const connectorBefore = cpuMs(connectorPid);
        const agentsBefore = agentPids.reduce((sum, pid) => sum + cpuMs(pid), 0);
        const times: number[] = [];
        for (let i = 0; i < calls; i++) times.push(await timed(call));
        const connectorCpu = (cpuMs(connectorPid) - connectorBefore) / calls;
        const agentsCpu = (agentPids.reduce((sum, pid) => sum + cpuMs(pid), 0) - agentsBefore) / calls;
        const s = summary(times);
        rows.push([
          count,
          ms(first),
          ms(s.p50),
          ms(s.p99),
          `${answered}/${count}`,
          `${connectorCpu.toFixed(0)} ms`,
          `${agentsCpu.toFixed(0)} ms`,
          ms(startedMs),
        ]);
      } finally {
        await client.close();
        config.remove();
      }
    }
  } finally {
    await Promise.all([local?.stop(), ...hosts.map((h) => h.stop())]);
  }
  const where = hostCount === 0 ? 'agents in the bench process' : `agents in ${hostCount} host processes`;
  console.log(`\n### Fan-out list_services (${machine()}; ${calls} calls per count, ${where})\n`);
  console.log(
    table(
      [
        'agents',
        'first call (dials)',
        'p50',
        'p99',
        'answered',
        'connector CPU / call',
        'agents CPU / call',
        'agents started in',
      ],
      rows,
    ),
  );
}

if (process.argv[2] === '--host') await serveAsHost(process.argv[3] as string);
else await bench();
