/**
 * One service's life through the real agent on each engine of the test bed: an agent with
 * `container_runtime = "docker"` (and, for comparison, podman) deploys, stops, starts,
 * notices a container killed behind its back, and adopts a container it did not create.
 * test/integration/operations.test.ts covers these operations in depth on podman; this file
 * checks that the docker path does the same against a real dockerd (scripts/testbed.sh
 * --docker), which the agent reaches through DOCKER_HOST in its environment.
 * Services are named `mcpt-eng-<pid>-<random>-...`; their containers are removed afterwards.
 */
import type { Metadata } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../agent/runtime/index.js';
import {
  DesiredState,
  DriftReason,
  type McpAgentServiceClient,
  ObservedState,
} from '../../gen/mcp/v1/mcp.js';
import { deploy, startTestAgent, type TestAgent, unary } from '../support/agent.js';
import { ENGINE_KINDS, requireEngine } from '../support/engines.js';
import { SLEEPER, sleeper } from '../support/specs.js';
import { freePort, uniqueName } from '../support/testbed.js';

const RUNNING = ObservedState.OBSERVED_STATE_RUNNING;
const EXITED = ObservedState.OBSERVED_STATE_EXITED;
const WANT_RUNNING = DesiredState.DESIRED_STATE_RUNNING;
const WANT_STOPPED = DesiredState.DESIRED_STATE_STOPPED;
/** busybox httpd on :8080, under a shell that exits on SIGTERM (httpd as PID 1 ignores it): quick stops. */
const HTTPD = ['/bin/sh', '-c', 'trap "exit 0" TERM; /bin/httpd -f -p 8080 & wait'];

for (const kind of ENGINE_KINDS) {
  const bed = await requireEngine(kind);

  describe.skipIf(!bed)(`an agent driving ${kind} (real agent, real ${kind})`, () => {
    const base = uniqueName('mcpt-eng');
    const shop = `${base}-shop`;
    const runtime = createRuntime(kind, bed?.cli);
    let agent: TestAgent;
    let client: McpAgentServiceClient;
    let md: Metadata;
    let port: number;

    const call = {
      stop: (service: string) =>
        unary(client.stopService.bind(client), { service, component: '', requestId: '' }, md),
      start: (service: string, component = '') =>
        unary(client.startService.bind(client), { service, component, requestId: '' }, md),
      liveCheck: (service: string) => unary(client.liveCheck.bind(client), { service }, md),
      status: (service: string) =>
        unary(client.getServiceStatus.bind(client), { service, eventLimit: 0 }, md),
      adopt: (service: string) => unary(client.adoptContainers.bind(client), { service, requestId: '' }, md),
      node: () => unary(client.nodeStatus.bind(client), {}, md),
    };

    beforeAll(async () => {
      agent = await startTestAgent({ settings: { container_runtime: kind, runtime_path: bed!.cli } });
      client = agent.client();
      md = await agent.auth({ subject: 'operator-1', roles: ['operator', 'viewer'] });
      port = await freePort();
    });

    afterAll(async () => {
      await agent?.stop();
      await bed?.removeContainers(base);
    });

    it('says which runtime it drives', async () => {
      expect(await call.node()).toMatchObject({
        runtime: kind,
        runtimeVersion: expect.stringMatching(/^\d+\.\d+\.\d+/),
      });
    });

    it('deploys a service whose web component serves on its published port', async () => {
      const { result } = await deploy(
        client,
        {
          spec: {
            name: shop,
            active: true,
            components: [
              sleeper('web', bed!.imageV1, {
                cmd: HTTPD,
                network: bed!.portNetwork ?? '',
                ports: [`127.0.0.1:${port}:8080`],
                env: { GREETING: 'hello' },
              }),
              sleeper('worker', bed!.imageV1),
            ],
          },
        },
        md,
      );
      expect(result.components.map((c) => [c.component, c.ok, c.error, c.observedState, c.version])).toEqual([
        ['web', true, '', RUNNING, 'v1'],
        ['worker', true, '', RUNNING, 'v1'],
      ]);
      expect(await httpGet(port, '/www/index.html')).toBe('bb v1\n');
      expect(await runtime.inspect(`${shop}-worker`)).toMatchObject({ state: 'running', cmd: SLEEPER });
      // The listing the live check reads: the exact CMD (one argument has spaces) and a start time.
      const listed = (await runtime.list()).find((container) => container.name === `${shop}-worker`);
      expect(listed).toMatchObject({ state: 'running', command: SLEEPER, startedAt: expect.any(Date) });
      expect((await call.status(shop)).drift).toEqual([]);
    });

    it('stops and starts the service, the containers following', async () => {
      const stopped = await call.stop(shop);
      expect(stopped.components.map((c) => [c.component, c.ok, c.desiredState, c.observedState])).toEqual([
        ['web', true, WANT_STOPPED, EXITED],
        ['worker', true, WANT_STOPPED, EXITED],
      ]);
      expect((await runtime.inspect(`${shop}-web`))?.state).toBe('exited');

      const started = await call.start(shop);
      expect(started.components.map((c) => [c.component, c.ok, c.desiredState, c.observedState])).toEqual([
        ['web', true, WANT_RUNNING, RUNNING],
        ['worker', true, WANT_RUNNING, RUNNING],
      ]);
      expect(await httpGet(port, '/www/index.html')).toBe('bb v1\n');
    });

    it('sees a container killed behind its back in a live check, as a change and drift', async () => {
      await call.liveCheck(shop); // settle
      await execa(bed!.cli, ['kill', `${shop}-worker`]);
      const check = await call.liveCheck(shop);
      expect(check.changes).toEqual([
        { service: shop, component: 'worker', previousState: RUNNING, observedState: EXITED },
      ]);
      expect((await call.status(shop)).drift).toEqual([
        {
          service: shop,
          component: 'worker',
          desiredState: WANT_RUNNING,
          observedState: EXITED,
          reason: DriftReason.DRIFT_REASON_STATE,
          desiredImage: bed!.imageV1,
          runningImage: bed!.imageV1,
        },
      ]);
      const restarted = await call.start(shop, 'worker');
      expect(restarted.components.map((c) => [c.component, c.ok, c.observedState])).toEqual([
        ['worker', true, RUNNING],
      ]);
      expect((await call.status(shop)).drift).toEqual([]);
    });

    it('adopts containers it did not create, their spec read from the runtime', async () => {
      const found = `${base}-found`;
      const foundPort = await freePort();
      await execa(bed!.cli, [
        'run',
        '--detach',
        `--name=${found}-api`,
        ...(bed!.portNetwork ? [`--network=${bed!.portNetwork}`] : []),
        `--publish=127.0.0.1:${foundPort}:8080`,
        '--env=GREETING=hello',
        '--user=65534:65534',
        '--restart=always',
        bed!.imageV2,
        ...HTTPD,
      ]);
      await execa(bed!.cli, ['run', '--detach', `--name=${found}-db`, bed!.imageV1, ...SLEEPER]);
      await execa(bed!.cli, ['stop', `${found}-db`]);
      const before = await runtime.inspect(`${found}-api`);

      const adopted = await call.adopt(found);
      expect(
        adopted.components
          .map((c) => [c.name, c.container, c.desiredState, c.observedState, c.version])
          .sort(),
      ).toEqual([
        ['api', `${found}-api`, WANT_RUNNING, RUNNING, 'v2'],
        ['db', `${found}-db`, WANT_STOPPED, EXITED, 'v1'],
      ]);
      // Nothing was restarted, and the recorded spec is what the runtime reports.
      expect((await runtime.inspect(`${found}-api`))?.startedAt).toEqual(before?.startedAt);
      const status = await call.status(found);
      expect(status.drift).toEqual([]);
      expect(status.events.map((e) => e.kind)).toEqual(['adopted', 'adopted']);
      expect(agent.registry!.services.getComponent(found, 'api')).toMatchObject({
        image: bed!.imageV2,
        ports: [`127.0.0.1:${foundPort}:8080`],
        env: { GREETING: 'hello' },
        cmd: HTTPD,
        network: bed!.portNetwork ?? '',
        user: '65534:65534',
        restart: 'always',
      });
      expect(agent.registry!.services.getComponent(found, 'db')).toMatchObject({ cmd: SLEEPER, network: '' });
    });
  });
}

/** GET from a container's published port, retrying while httpd starts. */
async function httpGet(port: number, path: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
      if (!response.ok) throw new Error(`HTTP ${response.status} for ${path}`);
      return await response.text();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
