/**
 * A fan-out read over many agents: `list_services` without `node`, through the built connector
 * over stdio, to N real agents (TLS gRPC, JWT, RBAC, audit, podman) on loopback. The agents share
 * this process (one event loop for all of them), which makes the curve pessimistic for the
 * agents' side: on a fleet each node answers on its own CPU.
 *
 *   npm run build && npx tsx bench/fanout.ts [counts=20,100,500] [calls=15]
 */

import { signTestToken, startTestAgent, type TestAgent } from '../test/support/agent.js';
import { spawnStdioConnector, writeConnectorConfig } from '../test/support/connector.js';
import { machine, ms, summary, table, timed } from './stats.js';

const counts = (process.argv[2] ?? '20,100,500').split(',').map(Number);
const calls = Number(process.argv[3] ?? 15);

const agents: TestAgent[] = [];
const rows: Array<Array<string | number>> = [];
try {
  const token = await signTestToken({ subject: 'bench', roles: ['viewer'] });
  for (const count of counts) {
    const began = performance.now();
    while (agents.length < count) agents.push(await startTestAgent({ node: `node${agents.length + 1}` }));
    const started = performance.now() - began;
    const config = writeConnectorConfig(
      agents.map((a) => ({ name: a.node, address: a.address, caPem: a.caPem, serverName: 'localhost' })),
    );
    const session = await spawnStdioConnector(['--config', config.configFile], { MCP_TOKEN: token });
    try {
      const call = () =>
        session.client.callTool({ name: 'list_services', arguments: {} }, { timeout: 120_000 });
      // The first call dials every agent (TLS handshakes); the ones measured reuse the channels.
      const first = await timed(call);
      const result = await call();
      const answered = (result.structuredContent as { nodes: Array<{ error?: unknown }> }).nodes.filter(
        (n) => !n.error,
      ).length;
      const times: number[] = [];
      for (let i = 0; i < calls; i++) times.push(await timed(call));
      const s = summary(times);
      rows.push([count, ms(first), ms(s.p50), ms(s.p99), `${answered}/${count}`, ms(started)]);
    } finally {
      await session.close();
      config.remove();
    }
  }
  console.log(
    `\n### Fan-out list_services (${machine()}; ${calls} calls per count, agents in this process)\n`,
  );
  console.log(table(['agents', 'first call (dials)', 'p50', 'p99', 'answered', 'agents started in'], rows));
} finally {
  await Promise.all(agents.map((a) => a.stop()));
}
