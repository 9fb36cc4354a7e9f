/**
 * What a LiveCheck costs over asking podman directly.
 *
 * A real agent (TLS gRPC, JWT authentication, RBAC, two durable audit rows per call, real
 * podman) runs `services` services of two components each. Each iteration makes one
 * LiveCheck through gRPC (one `podman ps -a --format json`, a reconcile of every component
 * into the registry in one transaction, the response) and one `podman ps -a --format json`
 * run directly, alternating, so both see the same machine at the same time.
 *
 *   npx tsx bench/livecheck.ts [iterations=40] [services=5]
 */
import { execa } from 'execa';
import { deploy, startTestAgent, unary } from '../test/support/agent.js';
import { serviceSpec, sleeper } from '../test/support/specs.js';
import { removeContainers, requireTestbed, uniqueName } from '../test/support/testbed.js';
import { machine, ms, summary, table } from './stats.js';

const iterations = Number(process.argv[2] ?? 40);
const serviceCount = Number(process.argv[3] ?? 5);

const bed = await requireTestbed();
if (!bed) throw new Error('the podman test bed is missing: run scripts/testbed.sh as root');

const prefix = uniqueName('mcpb-live');
const agent = await startTestAgent();
try {
  const client = agent.client();
  const md = await agent.auth({ subject: 'bench', roles: ['operator', 'viewer'] });
  for (let i = 0; i < serviceCount; i++) {
    const components = [sleeper('app', bed.imageV1), sleeper('side', bed.imageV1)];
    await deploy(client, { spec: serviceSpec(`${prefix}-${i}`, components) }, md);
  }
  const containers = (await execa('podman', ['ps', '-a', '--format', 'json'])).stdout;
  const containerCount = (JSON.parse(containers) as unknown[]).length;

  const liveCheck = async () => {
    const t0 = performance.now();
    await unary(client.liveCheck.bind(client), { service: '' }, md);
    return performance.now() - t0;
  };
  const podmanPs = async () => {
    const t0 = performance.now();
    await execa('podman', ['ps', '-a', '--format', 'json']);
    return performance.now() - t0;
  };

  for (let i = 0; i < 5; i++) {
    await liveCheck();
    await podmanPs();
  }
  const viaAgent: number[] = [];
  const direct: number[] = [];
  for (let i = 0; i < iterations; i++) {
    // Alternate which goes first, so neither always runs on a warmer cache.
    if (i % 2 === 0) {
      viaAgent.push(await liveCheck());
      direct.push(await podmanPs());
    } else {
      direct.push(await podmanPs());
      viaAgent.push(await liveCheck());
    }
  }

  const a = summary(viaAgent);
  const d = summary(direct);
  console.log(
    `LiveCheck vs \`podman ps -a --format json\`: ${iterations} iterations each, interleaved; ` +
      `${serviceCount * 2} managed components, ${containerCount} containers on the node; ${machine()}\n`,
  );
  console.log(
    table(
      ['path', 'median', 'p90'],
      [
        ['LiveCheck via gRPC (TLS, JWT, RBAC, audit, reconcile)', ms(a.p50), ms(a.p90)],
        ['`podman ps -a --format json` directly', ms(d.p50), ms(d.p90)],
        ['ratio (agent / direct)', `${(a.p50 / d.p50).toFixed(2)}x`, `${(a.p90 / d.p90).toFixed(2)}x`],
      ],
    ),
  );
} finally {
  await agent.stop();
  await removeContainers(prefix);
}
