/**
 * The whole chain as an AI client sees it: an SDK Client talks to the built mcp-connector
 * over stdio, which calls real agents over TLS gRPC (JWT, RBAC, audit) and real podman.
 *
 *   (a) live_check through the whole chain vs `podman ps -a --format json` directly,
 *       interleaved in the same run, as a ratio;
 *   (b) per-call overhead with the runtime taken out: list_services (registry only);
 *   (c) cold start: spawning the connector until its `initialize` answer;
 *   (d) the size of the tools/list answer;
 *   (e) a fan-out read (list_services without `node`) over 20 agents on loopback.
 *
 *   npm run build && npx tsx bench/connector.ts [iterations=40]
 */
import { execa } from 'execa';
import { signTestToken, startTestAgent, type TestAgent } from '../test/support/agent.js';
import { spawnStdioConnector, writeConnectorConfig } from '../test/support/connector.js';
import { requireTestbed } from '../test/support/testbed.js';
import { machine, ms, summary, table, timed } from './stats.js';

const iterations = Number(process.argv[2] ?? 40);
const bed = await requireTestbed();
if (!bed) throw new Error('the podman test bed is missing: run scripts/testbed.sh as root');

const token = await signTestToken({ subject: 'bench', roles: ['admin'] });
const agents: TestAgent[] = [];
const rows: Array<Array<string | number>> = [];
try {
  // (a), (b), (d): one agent.
  agents.push(await startTestAgent({ node: 'node1' }));
  const one = writeConnectorConfig([
    { name: 'node1', address: agents[0]!.address, caPem: agents[0]!.caPem, serverName: 'localhost' },
  ]);
  const conn = await spawnStdioConnector(['--config', one.configFile], { MCP_TOKEN: token });
  const listing = await conn.client.listTools();
  const listBytes = Buffer.byteLength(JSON.stringify(listing));

  const chain: number[] = [];
  const direct: number[] = [];
  const registryOnly: number[] = [];
  for (let i = 0; i < 5; i++)
    await conn.client.callTool({ name: 'live_check', arguments: { node: 'node1' } });
  for (let i = 0; i < iterations; i++) {
    chain.push(await timed(() => conn.client.callTool({ name: 'live_check', arguments: { node: 'node1' } })));
    direct.push(await timed(() => execa('podman', ['ps', '-a', '--format', 'json'])));
    registryOnly.push(
      await timed(() => conn.client.callTool({ name: 'list_services', arguments: { node: 'node1' } })),
    );
  }
  await conn.close();
  one.remove();
  const c = summary(chain);
  const d = summary(direct);
  const r = summary(registryOnly);
  rows.push([
    '(a) live_check, MCP → connector → gRPC/TLS → guard → podman',
    ms(c.p50),
    ms(c.p99),
    `${(c.p50 / d.p50).toFixed(2)}× podman ps`,
  ]);
  rows.push(['(a) `podman ps -a --format json` directly', ms(d.p50), ms(d.p99), '1.00×']);
  rows.push([
    '(b) list_services (runtime taken out)',
    ms(r.p50),
    ms(r.p99),
    'per-call overhead of the chain',
  ]);

  // (c) cold start.
  const starts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const cfg = writeConnectorConfig([
      { name: 'node1', address: agents[0]!.address, caPem: agents[0]!.caPem },
    ]);
    let spawned: Awaited<ReturnType<typeof spawnStdioConnector>> | undefined;
    starts.push(
      await timed(async () => {
        spawned = await spawnStdioConnector(['--config', cfg.configFile], { MCP_TOKEN: token });
      }),
    );
    await spawned?.close();
    cfg.remove();
  }
  const s = summary(starts);
  rows.push(['(c) cold start: spawn → `initialize` answered', ms(s.p50), ms(s.p99), '5 starts']);
  rows.push(['(d) tools/list answer', `${listBytes} bytes`, '', `${listing.tools.length} tools`]);

  // (e) fan-out over 20 agents.
  while (agents.length < 20) agents.push(await startTestAgent({ node: `node${agents.length + 1}` }));
  const many = writeConnectorConfig(
    agents.map((a) => ({ name: a.node, address: a.address, caPem: a.caPem, serverName: 'localhost' })),
  );
  const fan = await spawnStdioConnector(['--config', many.configFile], { MCP_TOKEN: token });
  const first = await fan.client.callTool({ name: 'list_services', arguments: {} });
  const answered = (first.structuredContent as { nodes: Array<{ error?: unknown }> }).nodes.filter(
    (n) => !n.error,
  ).length;
  const fanOut: number[] = [];
  for (let i = 0; i < Math.min(iterations, 20); i++) {
    fanOut.push(await timed(() => fan.client.callTool({ name: 'list_services', arguments: {} })));
  }
  await fan.close();
  many.remove();
  const f = summary(fanOut);
  rows.push([
    '(e) list_services fanned out over 20 agents',
    ms(f.p50),
    ms(f.p99),
    `${answered}/20 nodes answered`,
  ]);

  console.log(`\n### The connector chain (${machine()}; ${iterations} iterations, interleaved)\n`);
  console.log(table(['measurement', 'p50', 'p99', 'note'], rows));
} finally {
  await Promise.all(agents.map((a) => a.stop()));
}
