/**
 * How long a deploy of a three-component service takes through the real agent (TLS gRPC,
 * authentication, audit, real podman pulling from the local registry), from the call to
 * the final result:
 *
 * - first deploy: pull, run and inspect each component (no container to replace);
 * - redeploy: the same plus a graceful stop and removal of each old container. The
 *   components exit on SIGTERM, so this measures the agent and podman, not the 10 s stop
 *   timeout a process that ignores SIGTERM would add per component.
 *
 *   npx tsx bench/deploy.ts [runs=5]
 */
import type { ServiceSpec } from '../gen/mcp/v1/mcp.js';
import { deploy, startTestAgent } from '../test/support/agent.js';
import { serviceSpec, sleeper } from '../test/support/specs.js';
import { removeContainers, requireTestbed, uniqueName } from '../test/support/testbed.js';
import { machine, ms, summary, table } from './stats.js';

const runs = Number(process.argv[2] ?? 5);

const bed = await requireTestbed();
if (!bed) throw new Error('the podman test bed is missing: run scripts/testbed.sh as root');

const prefix = uniqueName('mcpb-dep');
const agent = await startTestAgent();
try {
  const client = agent.client();
  const md = await agent.auth({ subject: 'bench', roles: ['operator'] });
  const component = (name: string) => sleeper(name, bed.imageV1, { env: { ROLE: name } });
  const spec = (name: string) =>
    serviceSpec(name, [component('web'), component('worker'), component('cache')]);
  const timed = async (service: ServiceSpec) => {
    const t0 = performance.now();
    const { result } = await deploy(client, { spec: service }, md);
    const elapsed = performance.now() - t0;
    const failed = result.components.filter((c) => !c.ok);
    if (failed.length > 0) throw new Error(`deploy failed: ${failed.map((c) => c.error).join('; ')}`);
    return elapsed;
  };

  await timed(spec(`${prefix}-warm`)); // image in podman's store, TLS up, statements prepared
  const first: number[] = [];
  const again: number[] = [];
  for (let i = 0; i < runs; i++) {
    const service = spec(`${prefix}-${i}`);
    first.push(await timed(service));
    again.push(await timed(service));
  }

  const f = summary(first);
  const r = summary(again);
  console.log(`Deploy of a three-component service: ${runs} runs each; ${machine()}\n`);
  console.log(
    table(
      ['deploy', 'median', 'p90', 'per component (median)'],
      [
        ['first (pull, run, inspect)', ms(f.p50), ms(f.p90), ms(f.p50 / 3)],
        ['redeploy (pull, stop, remove, run, inspect)', ms(r.p50), ms(r.p90), ms(r.p50 / 3)],
      ],
    ),
  );
} finally {
  await agent.stop();
  await removeContainers(prefix);
}
