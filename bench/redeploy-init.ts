/**
 * A redeploy of three `init = true` components whose command (busybox `sleep`) ignores
 * SIGTERM as PID 1: through the real agent (TLS gRPC, authentication, audit, registry) against
 * the same podman commands run by hand with `--init`, in the same run and interleaved, so both
 * see the same machine. Without `--init` each stop would wait out its 10 s timeout.
 *
 * By hand, per component, what the agent runs: pull, stop -t 10, rm -f, run --init, inspect.
 *
 *   npx tsx bench/redeploy-init.ts [runs=5]
 */
import { execa } from 'execa';
import { deploy, startTestAgent } from '../test/support/agent.js';
import { component, serviceSpec } from '../test/support/specs.js';
import { removeContainers, requireTestbed, uniqueName } from '../test/support/testbed.js';
import { machine, ms, summary, table } from './stats.js';

const runs = Number(process.argv[2] ?? 5);
const COMPONENTS = ['web', 'worker', 'cache'];
const SLEEP = ['sleep', '3600'];

const bed = await requireTestbed();
if (!bed) throw new Error('the podman test bed is missing: run scripts/testbed.sh as root');

const prefix = uniqueName('mcpb-init');
const agent = await startTestAgent();
try {
  const client = agent.client();
  const md = await agent.auth({ subject: 'bench', roles: ['operator'] });
  const service = `${prefix}-agent`;
  const spec = serviceSpec(
    service,
    COMPONENTS.map((name) => component(name, { image: bed.imageV1, cmd: SLEEP, init: true })),
  );
  const throughAgent = async () => {
    const t0 = performance.now();
    const { result } = await deploy(client, { spec }, md);
    const elapsed = performance.now() - t0;
    const failed = result.components.filter((c) => !c.ok);
    if (failed.length > 0) throw new Error(`deploy failed: ${failed.map((c) => c.error).join('; ')}`);
    return elapsed;
  };

  const podman = (args: string[]) => execa(bed.podman, args, { stdin: 'ignore' });
  const byHand = async (replace: boolean) => {
    const t0 = performance.now();
    for (const name of COMPONENTS) {
      const container = `${prefix}-hand-${name}`;
      await podman(['pull', bed.imageV1]);
      if (replace) {
        await podman(['stop', '-t', '10', container]);
        await podman(['rm', '--force', container]);
      }
      await podman([
        'run',
        '--detach',
        `--name=${container}`,
        '--init',
        '--stop-timeout=10',
        bed.imageV1,
        ...SLEEP,
      ]);
      await podman(['container', 'inspect', container]);
    }
    return performance.now() - t0;
  };

  await throughAgent(); // first deploy: containers to replace, image in the store, TLS up
  await byHand(false);
  const agentRuns: number[] = [];
  const handRuns: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < runs; i++) {
    const a = await throughAgent();
    const h = await byHand(true);
    agentRuns.push(a);
    handRuns.push(h);
    ratios.push(a / h);
  }

  const a = summary(agentRuns);
  const h = summary(handRuns);
  const ratio = summary(ratios.map((r) => r * 1000)); // percentile() works on any numbers
  console.log(
    `Redeploy of three init = true components (busybox sleep): ${runs} runs each, interleaved; ${machine()}\n`,
  );
  console.log(
    table(
      ['redeploy', 'median', 'p90'],
      [
        ['through the agent', ms(a.p50), ms(a.p90)],
        ['the same podman commands by hand, --init', ms(h.p50), ms(h.p90)],
      ],
    ),
  );
  console.log(
    `\nratio agent / by hand, median of the ${runs} pairs: ${(ratio.p50 / 1000).toFixed(2)}x (goal <= 1.2x)`,
  );
} finally {
  await agent.stop();
  await removeContainers(prefix);
}
