/**
 * Live container status as an AI client gets it, ours beside podman-mcp-server's, against
 * asking podman directly, interleaved in the same run:
 *
 *   - `live_check` through the whole chain: an SDK Client → the built mcp-connector over stdio
 *     → TLS gRPC → the agent's guard (JWT, RBAC, the audit attempt durable before the handler)
 *     → one `podman ps -a --format json` → the reconcile into the registry → back;
 *   - podman-mcp-server 0.0.15's `container_list` through the same kind of SDK client over stdio;
 *   - `podman ps -a --format json` run directly (the baseline).
 *
 * A real agent records `services` services of two running components each, so all three list
 * the same containers.
 *
 *   npm install --prefix /tmp/pms podman-mcp-server@0.0.15   # once; ships a Go binary
 *   npm run build && npx tsx bench/live-status.ts [iterations=40] [services=5] [podman-mcp-server path]
 */
import { existsSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { execa } from 'execa';
import { deploy, signTestToken, startTestAgent } from '../test/support/agent.js';
import { spawnStdioConnector, writeConnectorConfig } from '../test/support/connector.js';
import { serviceSpec, sleeper } from '../test/support/specs.js';
import { removeContainers, requireTestbed, uniqueName } from '../test/support/testbed.js';
import { machine, ms, PODMAN_MCP_SERVER_BIN, summary, table, timed } from './stats.js';

const iterations = Number(process.argv[2] ?? 40);
const serviceCount = Number(process.argv[3] ?? 5);
const PODMAN_MCP_SERVER = process.argv[4] ?? PODMAN_MCP_SERVER_BIN;

const bed = await requireTestbed();
if (!bed) throw new Error('the podman test bed is missing: run scripts/testbed.sh as root');
if (!existsSync(PODMAN_MCP_SERVER))
  throw new Error(
    `podman-mcp-server not found at ${PODMAN_MCP_SERVER}: npm install --prefix /tmp/pms podman-mcp-server@0.0.15`,
  );

const prefix = uniqueName('mcpb-status');
const agent = await startTestAgent({ node: 'node1' });
const files = writeConnectorConfig([
  { name: 'node1', address: agent.address, caPem: agent.caPem, serverName: 'localhost' },
]);
const peer = new Client({ name: 'bench-live-status', version: '1.0.0' });
let ours: Awaited<ReturnType<typeof spawnStdioConnector>> | undefined;
try {
  const md = await agent.auth({ subject: 'bench', roles: ['operator'] });
  for (let i = 0; i < serviceCount; i++) {
    const components = [sleeper('app', bed.imageV1), sleeper('side', bed.imageV1)];
    await deploy(agent.client(), { spec: serviceSpec(`${prefix}-${i}`, components) }, md);
  }
  const token = await signTestToken({ subject: 'bench', roles: ['viewer'] });
  ours = await spawnStdioConnector(['--config', files.configFile], { MCP_TOKEN: token });
  await peer.connect(new StdioClientTransport({ command: PODMAN_MCP_SERVER, args: [], stderr: 'pipe' }));

  const subjects = {
    chain: async () => {
      const r = await ours?.client.callTool({ name: 'live_check', arguments: { node: 'node1' } });
      if (r?.isError) throw new Error(`live_check failed: ${JSON.stringify(r.content)}`);
    },
    peer: async () => {
      const r = await peer.callTool({ name: 'container_list', arguments: { all: true } });
      if (r.isError) throw new Error(`container_list failed: ${JSON.stringify(r.content)}`);
    },
    direct: () => execa('podman', ['ps', '-a', '--format', 'json']),
  };
  const samples: Record<keyof typeof subjects, number[]> = { chain: [], peer: [], direct: [] };
  const order = Object.keys(subjects) as Array<keyof typeof subjects>;
  for (let i = 0; i < 5; i++) for (const s of order) await subjects[s]();
  for (let i = 0; i < iterations; i++) {
    // Rotate who goes first, so no subject always follows the same one.
    for (let j = 0; j < order.length; j++) {
      const s = order[(i + j) % order.length] as keyof typeof subjects;
      samples[s].push(await timed(subjects[s]));
    }
  }
  const direct = summary(samples.direct);
  const peerSummary = summary(samples.peer);
  const rows = (
    [
      ['live_check: MCP → connector → TLS gRPC → guard → podman', samples.chain],
      ['podman-mcp-server 0.0.15 `container_list`', samples.peer],
      ['`podman ps -a --format json` directly', samples.direct],
    ] as const
  ).map(([label, s]) => {
    const x = summary([...s]);
    return [
      label,
      ms(x.p50),
      ms(x.p90),
      `${(x.p50 / direct.p50).toFixed(2)}×`,
      `${(x.p50 / peerSummary.p50).toFixed(2)}×`,
    ];
  });
  const containers = (
    JSON.parse((await execa('podman', ['ps', '-a', '--format', 'json'])).stdout) as unknown[]
  ).length;
  console.log(
    `\n### Live status (${machine()}; ${iterations} rounds, interleaved; ${containers} containers on the host)\n`,
  );
  console.log(table(['path', 'p50', 'p90', '÷ podman ps', '÷ peer'], rows));
} finally {
  await ours?.close();
  await peer.close().catch(() => {});
  files.remove();
  await agent.stop();
  await removeContainers(prefix);
}
