/**
 * Stop/start/restart, live check and drift, adoption, sync, node status and scoping through
 * the real agent: TLS gRPC, real tokens, the guard, real podman and the local registry
 * (scripts/testbed.sh). Containers belong to `mcpt-ops-<pid>-<random>` services and are
 * removed afterwards. They run a shell that exits on SIGTERM, so stops are quick and still
 * graceful.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Metadata, status } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DesiredState,
  DriftReason,
  type McpAgentServiceClient,
  ObservedState,
  type ServiceInfo,
  type ServiceSpec,
} from '../../gen/mcp/v1/mcp.js';
import { deploy, grpcError, startTestAgent, type TestAgent, unary } from '../support/agent.js';
import { SLEEPER, serviceSpec, sleeper } from '../support/specs.js';
import { freePort, removeContainers, requireTestbed, uniqueName } from '../support/testbed.js';

const bed = await requireTestbed();

interface InspectedContainer {
  Id: string;
  State: { Status: string; StartedAt: string };
}

async function podmanInspect(name: string): Promise<InspectedContainer> {
  const { stdout } = await execa('podman', ['container', 'inspect', name]);
  const [first] = JSON.parse(stdout) as InspectedContainer[];
  if (!first) throw new Error(`no container ${name}`);
  return first;
}

/** Starts a container behind the agent's back, as an operator with a shell would. */
async function podmanRun(name: string, args: string[] = []): Promise<void> {
  await execa('podman', ['run', '--detach', `--name=${name}`, ...args, bed!.imageV1, ...SLEEPER]);
}

const RUNNING = ObservedState.OBSERVED_STATE_RUNNING;
const EXITED = ObservedState.OBSERVED_STATE_EXITED;
const WANT_RUNNING = DesiredState.DESIRED_STATE_RUNNING;
const WANT_STOPPED = DesiredState.DESIRED_STATE_STOPPED;
const IGNORE = DesiredState.DESIRED_STATE_IGNORE;

describe.skipIf(!bed)('service operations (real agent, real podman)', () => {
  const base = uniqueName('mcpt-ops');
  const life = `${base}-life`;
  let agent: TestAgent;
  let client: McpAgentServiceClient;
  let md: Metadata;

  const call = {
    stop: (service: string, component = '', requestId = '') =>
      unary(client.stopService.bind(client), { service, component, requestId }, md),
    start: (service: string, component = '', requestId = '') =>
      unary(client.startService.bind(client), { service, component, requestId }, md),
    restart: (service: string, component = '', requestId = '') =>
      unary(client.restartService.bind(client), { service, component, requestId }, md),
    list: async (desiredState: DesiredState = DesiredState.DESIRED_STATE_UNSPECIFIED, auth = md) =>
      (await unary(client.listServices.bind(client), { desiredState }, auth)).services,
    liveCheck: (service = '', auth = md) => unary(client.liveCheck.bind(client), { service }, auth),
    status: (service: string) => unary(client.getServiceStatus.bind(client), { service, eventLimit: 0 }, md),
    adopt: (service: string, requestId = '') =>
      unary(client.adoptContainers.bind(client), { service, requestId }, md),
    sync: (services: ServiceSpec[], requestId = '') =>
      unary(client.syncDesiredState.bind(client), { services, requestId }, md),
  };
  const serviceNamed = async (name: string): Promise<ServiceInfo> => {
    const found = (await call.list()).find((s) => s.name === name);
    if (!found) throw new Error(`service ${name} is not listed`);
    return found;
  };
  const states = (service: ServiceInfo) =>
    service.components.map((c) => [c.name, c.desiredState, c.observedState] as const);

  beforeAll(async () => {
    agent = await startTestAgent({
      rbac: {
        roles: [
          {
            name: 'life-viewer',
            permissions: ['service.list', 'service.live_check'],
            services: [`${life}*`],
          },
        ],
      },
    });
    client = agent.client();
    md = await agent.auth({ subject: 'operator-1', roles: ['operator', 'viewer'] });
    const { result } = await deploy(
      client,
      { spec: { name: life, components: [sleeper('app', bed!.imageV1), sleeper('sidecar', bed!.imageV1)] } },
      md,
    );
    expect(result.components.every((c) => c.ok)).toBe(true);
  });

  afterAll(async () => {
    await agent?.stop();
    await removeContainers(base);
  });

  describe('stop, start, restart', () => {
    // Every case starts from the service active with both components running, whatever ran before.
    beforeEach(async () => {
      await call.start(life);
    });

    it('stop marks the service inactive and desired stopped, and stops its containers', async () => {
      const res = await call.stop(life);
      expect(res.components.map((c) => [c.component, c.ok, c.desiredState, c.observedState])).toEqual([
        ['app', true, WANT_STOPPED, EXITED],
        ['sidecar', true, WANT_STOPPED, EXITED],
      ]);
      expect((await podmanInspect(`${life}-app`)).State.Status).toBe('exited');
      const service = await serviceNamed(life);
      expect(service.active).toBe(false);
      const status = await call.status(life);
      expect(status.drift).toEqual([]);
      expect(status.events.slice(0, 2).map((e) => e.kind)).toEqual(['stopped', 'stopped']);
    });

    it('start of one component starts only it and leaves the service inactive', async () => {
      await call.stop(life);
      const res = await call.start(life, 'app');
      expect(res.components.map((c) => [c.component, c.ok, c.desiredState, c.observedState])).toEqual([
        ['app', true, WANT_RUNNING, RUNNING],
      ]);
      const service = await serviceNamed(life);
      expect(service.active).toBe(false);
      expect(states(service)).toEqual([
        ['app', WANT_RUNNING, RUNNING],
        ['sidecar', WANT_STOPPED, EXITED],
      ]);
    });

    it('start of the service marks it active and runs a removed container again from the recorded spec', async () => {
      await execa('podman', ['rm', '--force', `${life}-sidecar`]);
      const res = await call.start(life);
      expect(res.components.map((c) => [c.component, c.ok, c.observedState])).toEqual([
        ['app', true, RUNNING],
        ['sidecar', true, RUNNING],
      ]);
      const sidecar = await execa('podman', [
        'container',
        'inspect',
        '--format',
        '{{json .Config.Cmd}}',
        `${life}-sidecar`,
      ]);
      expect(JSON.parse(sidecar.stdout)).toEqual(SLEEPER);
      const service = await serviceNamed(life);
      expect(service.active).toBe(true);
      expect(states(service)).toEqual([
        ['app', WANT_RUNNING, RUNNING],
        ['sidecar', WANT_RUNNING, RUNNING],
      ]);
      const status = await call.status(life);
      expect(status.events.find((e) => e.component === 'sidecar')?.message).toMatch(
        /no container .*-sidecar: ran it again from the recorded spec/,
      );
    });

    it('restart restarts the containers and leaves desired state and active alone', async () => {
      const before = await podmanInspect(`${life}-app`);
      const res = await call.restart(life);
      expect(res.components.map((c) => [c.component, c.ok, c.desiredState, c.observedState])).toEqual([
        ['app', true, WANT_RUNNING, RUNNING],
        ['sidecar', true, WANT_RUNNING, RUNNING],
      ]);
      const after = await podmanInspect(`${life}-app`);
      expect(after.Id).toBe(before.Id);
      expect(new Date(after.State.StartedAt).getTime()).toBeGreaterThan(
        new Date(before.State.StartedAt).getTime(),
      );
      const service = await serviceNamed(life);
      expect(service.active).toBe(true);
      expect(service.components[0]?.startedAt?.getTime()).toBe(new Date(after.State.StartedAt).getTime());
    });

    it('stop of one component sets only its desired state', async () => {
      const appBefore = await podmanInspect(`${life}-app`);
      const res = await call.stop(life, 'sidecar');
      expect(res.components.map((c) => [c.component, c.desiredState, c.observedState])).toEqual([
        ['sidecar', WANT_STOPPED, EXITED],
      ]);
      const service = await serviceNamed(life);
      expect(service.active).toBe(true);
      expect(states(service)).toEqual([
        ['app', WANT_RUNNING, RUNNING],
        ['sidecar', WANT_STOPPED, EXITED],
      ]);
      expect((await podmanInspect(`${life}-app`)).State).toEqual(appBefore.State);
    });

    it('replays a retried stop instead of stopping again', async () => {
      const requestId = `${base}-stop-once`;
      const first = await call.stop(life, 'sidecar', requestId);
      await call.start(life, 'sidecar');
      const retry = await call.stop(life, 'sidecar', requestId);
      expect(retry).toEqual({ ...first, replayed: true });
      expect((await podmanInspect(`${life}-sidecar`)).State.Status).toBe('running');
    });

    it('refuses an unknown service or component with NOT_FOUND and changes nothing', async () => {
      const before = await call.list();
      const unknown = await grpcError(call.stop(`${base}-nope`));
      expect(unknown.code).toBe(status.NOT_FOUND);
      expect(unknown.details).toBe(
        `service '${base}-nope' is not known on node ${agent.node}: list_services shows the services it has`,
      );
      const component = await grpcError(call.restart(life, 'nope'));
      expect(component.code).toBe(status.NOT_FOUND);
      expect(component.details).toBe(`service '${life}' has no component 'nope' (it has: app, sidecar)`);
      expect(await call.list()).toEqual(before);
    });
  });

  describe('live check and drift', () => {
    it('shows a container killed outside the agent as a change, an event and drift', async () => {
      await call.start(life);
      await call.liveCheck(life); // settle: nothing else changes below
      await execa('podman', ['kill', `${life}-app`]);

      const check = await call.liveCheck();
      expect(check.changes.filter((c) => c.service === life)).toEqual([
        { service: life, component: 'app', previousState: RUNNING, observedState: EXITED },
      ]);
      expect(states(check.services.find((s) => s.name === life)!)).toEqual([
        ['app', WANT_RUNNING, EXITED],
        ['sidecar', WANT_RUNNING, RUNNING],
      ]);

      const stateDrift = {
        service: life,
        component: 'app',
        desiredState: WANT_RUNNING,
        observedState: EXITED,
        reason: DriftReason.DRIFT_REASON_STATE,
        desiredImage: bed!.imageV1,
        runningImage: bed!.imageV1,
      };
      expect(check.drift.filter((d) => d.service === life)).toEqual([stateDrift]);
      const status = await call.status(life);
      expect(status.drift).toEqual([stateDrift]);
      expect(status.events[0]).toMatchObject({
        component: 'app',
        kind: 'observed_state',
        previousState: RUNNING,
        observedState: EXITED,
      });

      const again = await call.liveCheck(life);
      expect(again.changes).toEqual([]);
      await call.start(life, 'app');
      expect((await call.status(life)).drift).toEqual([]);
    });

    it('reports containers that belong to no component as unmanaged', async () => {
      await podmanRun(`${life}-stray`);
      const check = await call.liveCheck(life);
      expect(check.unmanaged).toEqual([
        { name: `${life}-stray`, image: bed!.imageV1, observedState: RUNNING },
      ]);
      await execa('podman', ['rm', '--force', '--time', '0', `${life}-stray`]);
    });

    it('shows a caller scoped to some services only those', async () => {
      const viewer = await agent.auth({ subject: 'viewer-1', roles: ['life-viewer'] });
      expect((await call.list(undefined, viewer)).map((s) => s.name)).toEqual([life]);
      const check = await call.liveCheck('', viewer);
      expect(check.services.map((s) => s.name)).toEqual([life]);
      expect(check.unmanaged.every((c) => c.name.startsWith(life))).toBe(true);
    });
  });

  describe('adopt', () => {
    const shop = `${base}-shop`; // hyphenated, like every name here
    const proxy = `${shop}-proxy`; // a known service whose name extends shop's
    const single = `${base}-solo`;
    let hostDir: string;
    let port: number;

    beforeAll(async () => {
      // Inside the service's own files directory: the restricted admission policy refuses other host paths.
      hostDir = join(agent.filesRoot, shop, 'data');
      await mkdir(hostDir, { recursive: true });
      await chmod(hostDir, 0o755);
      port = await freePort();
      await podmanRun(`${shop}-web`, [
        `--publish=127.0.0.1:${port}:8080`,
        `--volume=${hostDir}:/data:ro`,
        '--env=GREETING=hello',
        '--user=65534:65534',
        '--restart=always',
      ]);
      await podmanRun(`${shop}-db`);
      await execa('podman', ['stop', `${shop}-db`]);
      await podmanRun(`${proxy}-api`);
      await podmanRun(single);
    });

    afterAll(async () => {
      if (hostDir) await rm(hostDir, { recursive: true, force: true });
    });

    it('takes <service>-* containers with their spec read from the runtime, restarting nothing', async () => {
      const proxied = await call.adopt(proxy);
      expect(proxied.components.map((c) => [c.name, c.container])).toEqual([['api', `${proxy}-api`]]);

      const before = await Promise.all([podmanInspect(`${shop}-web`), podmanInspect(`${shop}-db`)]);
      const res = await call.adopt(shop);
      // `<shop>-proxy-api` belongs to the known service `<shop>-proxy`, not to shop as `proxy-api`.
      expect(
        res.components.map((c) => [c.name, c.container, c.desiredState, c.observedState, c.version]).sort(),
      ).toEqual([
        ['db', `${shop}-db`, WANT_STOPPED, EXITED, 'v1'],
        ['web', `${shop}-web`, WANT_RUNNING, RUNNING, 'v1'],
      ]);
      const after = await Promise.all([podmanInspect(`${shop}-web`), podmanInspect(`${shop}-db`)]);
      expect(after).toEqual(before);

      expect(agent.registry!.services.getComponent(shop, 'web')).toMatchObject({
        image: bed!.imageV1,
        ports: [`127.0.0.1:${port}:8080`],
        volumes: [`${hostDir}:/data:ro`],
        env: { GREETING: 'hello' },
        cmd: SLEEPER,
        network: '',
        user: '65534:65534',
        restart: 'always',
      });
      const status = await call.status(shop);
      expect(status.drift).toEqual([]);
      expect(status.events.map((e) => e.kind)).toEqual(['adopted', 'adopted']);
    });

    it('takes a single container named like the service as its one component', async () => {
      const res = await call.adopt(single);
      expect(res.components.map((c) => [c.name, c.container, c.desiredState])).toEqual([
        [single, single, WANT_RUNNING],
      ]);
    });

    it('is idempotent, and answers NOT_FOUND when no container matches', async () => {
      // Containers of its own: adopting shop here first would take <shop>-proxy-api before
      // the case above has made <shop>-proxy known.
      const twice = `${base}-twice`;
      await podmanRun(`${twice}-web`);
      await podmanRun(`${twice}-db`);
      await call.adopt(twice);
      const again = await call.adopt(twice);
      expect(again.components.map((c) => c.name).sort()).toEqual(['db', 'web']);
      expect((await call.status(twice)).events).toHaveLength(2);

      const none = await grpcError(call.adopt(`${base}-ghost`));
      expect(none.code).toBe(status.NOT_FOUND);
      expect(none.details).toMatch(
        `no container on node ${agent.node} is named '${base}-ghost' or '${base}-ghost-*'`,
      );
      const bad = await grpcError(call.adopt('bad;name'));
      expect(bad.code).toBe(status.INVALID_ARGUMENT);
    });
  });

  describe('sync', () => {
    // Each case syncs a service of its own, with its own stray container.
    let declared = `${base}-decl`;
    const definition = (active?: boolean) => serviceSpec(declared, [sleeper('app', bed!.imageV1)], active);
    let cases = 0;

    beforeEach(async () => {
      cases += 1;
      declared = `${base}-decl${cases}`;
      await podmanRun(`${declared}-stray`);
    });

    it('records definitions and marks stray containers ignore; a second sync changes nothing', async () => {
      const first = await call.sync([definition()]);
      expect(first.services).toEqual([{ service: declared, change: 'created', details: ['app: added'] }]);
      expect(first.ignored).toContain(`${declared}/stray`);
      // Containers the registry knows are never strays.
      expect(first.ignored.filter((s) => s.startsWith(`${life}/`) || s.startsWith(`${base}-shop/`))).toEqual(
        [],
      );

      const ignored = await call.list(IGNORE);
      expect(ignored.find((s) => s.name === declared)?.components.map((c) => [c.name, c.container])).toEqual([
        ['stray', `${declared}-stray`],
      ]);

      const second = await call.sync([definition()]);
      expect(second).toEqual({
        services: [{ service: declared, change: 'unchanged', details: [] }],
        ignored: [],
        replayed: false,
      });
    });

    it('takes active as the desired state, and an ignored component never drifts', async () => {
      await call.sync([definition()]);
      const res = await call.sync([definition(false)]);
      expect(res.services).toEqual([
        {
          service: declared,
          change: 'updated',
          details: ['active: true -> false', 'app: desired running -> stopped'],
        },
      ]);
      await execa('podman', ['stop', '--time', '0', `${declared}-stray`]);
      await call.liveCheck(declared);
      const status = await call.status(declared);
      expect(status.drift).toEqual([]);
      expect(states(status.service!)).toEqual([
        ['app', WANT_STOPPED, ObservedState.OBSERVED_STATE_MISSING],
        ['stray', IGNORE, EXITED],
      ]);
    });

    it('changes nothing when one definition is invalid', async () => {
      const before = await call.list();
      const err = await grpcError(
        call.sync([
          definition(true),
          { name: `${base}-other`, components: [sleeper('app', bed!.imageV1, { ports: ['http'] })] },
        ]),
      );
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/^services\[1\] \(.*-other\): components\[0\]\.ports\[0\]: "http"/);
      expect(await call.list()).toEqual(before);
    });
  });

  it('describes the node', async () => {
    const node = await unary(client.nodeStatus.bind(client), {}, md);
    const services = await call.list();
    expect(node).toMatchObject({
      node: agent.node,
      runtime: 'podman',
      runtimeVersion: expect.stringMatching(/^\d+\.\d+\.\d+/),
      services: services.length,
      components: services.reduce((n, s) => n + s.components.length, 0),
      disk: { path: agent.dataDir, totalBytes: expect.any(Number), availableBytes: expect.any(Number) },
      cpus: expect.any(Number),
    });
    expect(node.running).toBeGreaterThanOrEqual(2);
    expect(node.memoryAvailableBytes).toBeGreaterThan(0);
    expect(node.memoryAvailableBytes).toBeLessThanOrEqual(node.memoryTotalBytes);
    expect(node.loadAverage).toHaveLength(3);
    expect(node.agentUptimeSeconds).toBeLessThanOrEqual(node.uptimeSeconds);
  });
});

describe('an agent whose runtime binary is missing', () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await startTestAgent({ settings: { runtime_path: '/nonexistent/podman' } });
  });
  afterAll(async () => {
    await agent?.stop();
  });

  it('answers FAILED_PRECONDITION saying what to do', async () => {
    const client = agent.client();
    const md = await agent.auth();
    const err = await grpcError(unary(client.liveCheck.bind(client), { service: '' }, md));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toBe(
      "container runtime 'podman' not found at '/nonexistent/podman' (ENOENT): install it or set container_runtime/runtime_path",
    );
  });
});
