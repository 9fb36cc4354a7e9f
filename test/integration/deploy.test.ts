/**
 * Deploy through the real agent: TLS gRPC, real tokens, the guard and its audit log, real
 * podman pulling from the local registry (scripts/testbed.sh). Containers are named after
 * `mcpt-dep-<pid>-<random>` services and removed afterwards.
 *
 * Time: busybox `httpd` as PID 1 ignores SIGTERM, so every stop of the web component waits
 * out the agent's 10 s stop timeout; it is replaced once (the v2 deploy). The other
 * components run a shell that exits on SIGTERM, so their replacement is quick and still a
 * real graceful stop.
 */
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Metadata } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AuditDecision,
  AuditOutcome,
  type DeployProgress,
  type DeployRequest,
  type DeployResponse,
  type DeployResult,
  DesiredState,
  type McpAgentServiceClient,
  ObservedState,
  type ServiceSpec,
} from '../../gen/mcp/v1/mcp.js';
import { deploy, grpcError, startTestAgent, type TestAgent, unary } from '../support/agent.js';
import { SLEEPER, sleeper } from '../support/specs.js';
import { freePort, removeContainers, requireTestbed, uniqueName } from '../support/testbed.js';

const bed = await requireTestbed();

interface InspectedContainer {
  Id: string;
  Name: string;
  ImageName: string;
  State: { Status: string; StartedAt: string };
  Config: { Cmd: string[]; Env: string[]; User: string };
  HostConfig: { PortBindings: Record<string, { HostIp: string; HostPort: string }[]>; Binds: string[] };
}

async function podmanInspect(name: string): Promise<InspectedContainer> {
  const { stdout } = await execa('podman', ['container', 'inspect', name]);
  const [first] = JSON.parse(stdout) as InspectedContainer[];
  if (!first) throw new Error(`no container ${name}`);
  return first;
}

async function containerExists(name: string): Promise<boolean> {
  const { exitCode } = await execa('podman', ['container', 'exists', name], { reject: false });
  return exitCode === 0;
}

interface TimedMessage {
  at: number;
  msg: DeployResponse;
}

/** A deploy whose messages keep the time they arrived; it gives up at the deadline rather than hang the file. */
async function timedDeploy(
  client: McpAgentServiceClient,
  req: Partial<DeployRequest>,
  md: Metadata,
  deadlineMs = 30_000,
): Promise<TimedMessage[]> {
  const call = client.deploy({ spec: undefined, service: '', component: '', requestId: '', ...req }, md, {
    deadline: Date.now() + deadlineMs,
  });
  const messages: TimedMessage[] = [];
  for await (const msg of call as AsyncIterable<DeployResponse>)
    messages.push({ at: performance.now(), msg });
  return messages;
}

describe.skipIf(!bed)('deploy (real agent, real podman, local registry)', () => {
  const base = uniqueName('mcpt-dep');
  const web = `${base}-web`; // service: web (httpd) + worker
  let agent: TestAgent;
  let client: McpAgentServiceClient;
  let md: Metadata;
  let port: number;
  let hostDir: string;
  let webSpec: ServiceSpec;

  const listServices = async () =>
    (await unary(client.listServices.bind(client), { desiredState: 0 }, md)).services;

  beforeAll(async () => {
    agent = await startTestAgent();
    client = agent.client();
    md = await agent.auth({ subject: 'deployer', roles: ['operator'] });
    port = await freePort();
    // Inside the service's own files directory: the restricted admission policy refuses other host paths.
    hostDir = join(agent.filesRoot, web, 'data');
    await mkdir(hostDir, { recursive: true });
    await writeFile(join(hostDir, 'hello.txt'), 'from the host\n');
    await chmod(hostDir, 0o755);
    webSpec = {
      name: web,
      components: [
        sleeper('web', bed!.imageV1, {
          cmd: ['/bin/httpd', '-f', '-p', '8080'],
          ports: [`127.0.0.1:${port}:8080`],
          volumes: [`${hostDir}:/data:ro`],
          env: { GREETING: 'hello world' },
          user: '65534:65534',
        }),
        sleeper('worker', bed!.imageV1, { env: { ROLE: 'worker' } }),
      ],
    };
  });

  afterAll(async () => {
    await agent?.stop();
    await removeContainers(base);
    if (hostDir) await rm(hostDir, { recursive: true, force: true });
  });

  it('deploys a two-component service: containers as specified, serving, recorded and audited', async () => {
    const { progress, result } = await deploy(client, { spec: webSpec, requestId: `${base}-first` }, md);
    expect(result).toEqual({
      service: web,
      replayed: false,
      components: ['web', 'worker'].map((name) => ({
        component: name,
        ok: true,
        error: '',
        observedState: ObservedState.OBSERVED_STATE_RUNNING,
        desiredState: DesiredState.DESIRED_STATE_RUNNING,
        version: 'v1',
        container: `${web}-${name}`,
      })),
    });
    const steps = (c: string) => progress.filter((p) => p.component === c).map((p) => p.step);
    expect(steps('web')).toEqual(['pull', 'run', 'inspect', 'done']);
    expect(progress.at(-1)).toMatchObject({ component: 'worker', step: 'done', completed: 2, total: 2 });

    const body = await (await fetch(`http://127.0.0.1:${port}/www/index.html`)).text();
    expect(body.trim()).toBe('bb v1');
    expect(await (await fetch(`http://127.0.0.1:${port}/data/hello.txt`)).text()).toBe('from the host\n');

    const inspected = await podmanInspect(`${web}-web`);
    expect(inspected.Name).toBe(`${web}-web`);
    expect(inspected.ImageName).toBe(bed!.imageV1);
    expect(inspected.Config.Cmd).toEqual(['/bin/httpd', '-f', '-p', '8080']);
    expect(inspected.Config.Env).toContain('GREETING=hello world');
    expect(inspected.Config.User).toBe('65534:65534');
    expect(inspected.HostConfig.PortBindings['8080/tcp']).toEqual([
      { HostIp: '127.0.0.1', HostPort: String(port) },
    ]);
    // podman adds its default propagation options after ours.
    expect(inspected.HostConfig.Binds).toEqual([expect.stringMatching(`^${hostDir}:/data:ro(,|$)`)]);
    expect((await podmanInspect(`${web}-worker`)).Config.Cmd).toEqual(SLEEPER);

    const [service] = (await listServices()).filter((s) => s.name === web);
    expect(service?.components.map((c) => [c.name, c.container, c.version, c.observedState])).toEqual([
      ['web', `${web}-web`, 'v1', ObservedState.OBSERVED_STATE_RUNNING],
      ['worker', `${web}-worker`, 'v1', ObservedState.OBSERVED_STATE_RUNNING],
    ]);
    expect(service?.components[0]?.startedAt?.getTime()).toBe(new Date(inspected.State.StartedAt).getTime());

    const status = await unary(client.getServiceStatus.bind(client), { service: web, eventLimit: 0 }, md);
    expect(status.drift).toEqual([]);
    expect(status.events.map((e) => [e.component, e.kind])).toEqual(
      expect.arrayContaining([
        ['web', 'deployed'],
        ['worker', 'deployed'],
      ]),
    );

    const auditor = await agent.auth({ subject: 'auditor', roles: ['auditor'] });
    const audit = await unary(
      client.queryAudit.bind(client),
      {
        subject: '',
        rpc: 'Deploy',
        service: web,
        decision: 0,
        outcome: 0,
        pageSize: 50,
        pageToken: '',
        since: undefined,
        until: undefined,
      },
      auditor,
    );
    expect(audit.records).toHaveLength(1);
    expect(audit.records[0]).toMatchObject({
      rpc: 'Deploy',
      tool: 'deploy',
      service: web,
      subject: 'deployer',
      decision: AuditDecision.AUDIT_DECISION_ALLOW,
      outcome: AuditOutcome.AUDIT_OUTCOME_OK,
      requestId: `${base}-first`,
    });
  });

  it('deploys one component without touching the other', async () => {
    const service = `${base}-one`;
    const spec: ServiceSpec = {
      name: service,
      components: [sleeper('web', bed!.imageV1), sleeper('worker', bed!.imageV1)],
    };
    await deploy(client, { spec }, md);
    const webBefore = await podmanInspect(`${service}-web`);
    const workerBefore = await podmanInspect(`${service}-worker`);
    const { progress, result } = await deploy(client, { service, component: 'worker' }, md);
    expect(result.components.map((c) => [c.component, c.ok])).toEqual([['worker', true]]);
    expect(progress.map((p) => p.step)).toEqual(['pull', 'stop', 'keep', 'run', 'inspect', 'health', 'done']);
    expect((await podmanInspect(`${service}-web`)).Id).toBe(webBefore.Id);
    expect((await podmanInspect(`${service}-worker`)).Id).not.toBe(workerBefore.Id);
  });

  it('replaces the containers and records the new version on a redeploy with tag v2', async () => {
    // Its own service on its own port: the v1 deploy it replaces is its own too.
    const name = `${base}-v2`;
    const v2Port = await freePort();
    const v1: ServiceSpec = {
      name,
      components: webSpec.components.map((c) =>
        // No bind: the first service's data directory is not this service's to mount.
        c.name === 'web' ? { ...c, ports: [`127.0.0.1:${v2Port}:8080`], volumes: [] } : c,
      ),
    };
    await deploy(client, { spec: v1 }, md);
    const before = await podmanInspect(`${name}-web`);
    const spec: ServiceSpec = {
      ...v1,
      components: v1.components.map((c) => ({ ...c, image: bed!.imageV2 })),
    };
    const { result } = await deploy(client, { spec }, md);
    expect(result.components.map((c) => [c.component, c.ok, c.version])).toEqual([
      ['web', true, 'v2'],
      ['worker', true, 'v2'],
    ]);
    const after = await podmanInspect(`${name}-web`);
    expect(after.Id).not.toBe(before.Id);
    expect(after.ImageName).toBe(bed!.imageV2);
    expect((await (await fetch(`http://127.0.0.1:${v2Port}/www/index.html`)).text()).trim()).toBe('bb v2');
    const [service] = (await listServices()).filter((s) => s.name === name);
    expect(service?.components.map((c) => [c.image, c.version])).toEqual([
      [bed!.imageV2, 'v2'],
      [bed!.imageV2, 'v2'],
    ]);
  }, 60_000);

  it('fails a component whose image cannot be pulled with the runtime message, and deploys the others', async () => {
    const service = `${base}-pull`;
    const good = sleeper('good', bed!.imageV1);
    await deploy(client, { spec: { name: service, components: [good, sleeper('bad', bed!.imageV1)] } }, md);
    const badBefore = await podmanInspect(`${service}-bad`);
    const goodBefore = await podmanInspect(`${service}-good`);

    const missing = `${bed!.registry}/bb:no-such-tag`;
    const { progress, result } = await deploy(
      client,
      { spec: { name: service, components: [sleeper('bad', missing), good] } },
      md,
    );
    const [bad, goodResult] = result.components;
    expect(bad).toMatchObject({
      component: 'bad',
      ok: false,
      observedState: ObservedState.OBSERVED_STATE_RUNNING,
      version: 'v1',
    });
    // The line that matters; the whole command and podman's stderr are in the agent's log.
    expect(bad?.error).toBe(`image ${missing} not found in the registry`);
    expect(goodResult).toMatchObject({
      component: 'good',
      ok: true,
      observedState: ObservedState.OBSERVED_STATE_RUNNING,
    });
    expect(progress.filter((p) => p.component === 'bad').map((p) => p.step)).toEqual(['failed']);
    // The old container of the failed component is still the one running; the other was replaced.
    expect((await podmanInspect(`${service}-bad`)).Id).toBe(badBefore.Id);
    expect((await podmanInspect(`${service}-good`)).Id).not.toBe(goodBefore.Id);

    const status = await unary(client.getServiceStatus.bind(client), { service, eventLimit: 5 }, md);
    expect(status.events[0]).toMatchObject({ component: 'good', kind: 'deployed' });
    expect(status.events[1]).toMatchObject({ component: 'bad', kind: 'deploy_failed' });
    expect(status.events[1]?.message).toBe(bad?.error);
  });

  it('runs two concurrent deploys of one service one after the other', async () => {
    const service = `${base}-conc`;
    const spec: ServiceSpec = { name: service, components: [sleeper('app', bed!.imageV1)] };
    const [a, b] = await Promise.all([
      timedDeploy(client, { spec, requestId: `${base}-conc-a` }, md),
      timedDeploy(client, { spec, requestId: `${base}-conc-b` }, md),
    ]);
    const progress = (messages: TimedMessage[]) => messages.filter((m) => m.msg.progress);
    const [first, second] = progress(a)[0]!.at < progress(b)[0]!.at ? [a, b] : [b, a];
    // Every step of the second starts after the first has finished.
    expect(progress(first).at(-1)?.msg.progress?.step).toBe('done');
    expect(progress(second)[0]!.at).toBeGreaterThan(progress(first).at(-1)!.at);
    const steps = (messages: TimedMessage[]) =>
      progress(messages).map((m) => (m.msg.progress as DeployProgress).step);
    expect(steps(first)).toEqual(['pull', 'run', 'inspect', 'done']);
    expect(steps(second)).toEqual(['pull', 'stop', 'keep', 'run', 'inspect', 'health', 'done']);
    for (const messages of [a, b]) expect(messages.at(-1)?.msg.result?.components[0]?.ok).toBe(true);
  });

  it('returns the first result for a retried deploy with the same request id, without acting', async () => {
    const service = `${base}-retry`;
    const spec: ServiceSpec = { name: service, components: [sleeper('app', bed!.imageV1)] };
    const first = await deploy(client, { spec, requestId: `${base}-retry-1` }, md);
    const id = (await podmanInspect(`${service}-app`)).Id;
    const retry = await deploy(client, { spec, requestId: `${base}-retry-1` }, md);
    expect(retry.progress).toEqual([]);
    expect(retry.result).toEqual({ ...first.result, replayed: true } satisfies DeployResult);
    expect((await podmanInspect(`${service}-app`)).Id).toBe(id);
    const status = await unary(client.getServiceStatus.bind(client), { service, eventLimit: 0 }, md);
    expect(status.events.filter((e) => e.kind === 'deployed')).toHaveLength(1);
  });

  it('finishes a deploy whose client gave up, and gives its result to the retry with the same request id', async () => {
    const service = `${base}-slow`;
    // Plain `sleep` as PID 1 ignores SIGTERM: replacing it waits out the whole stop timeout.
    const spec: ServiceSpec = {
      name: service,
      components: [sleeper('app', bed!.imageV1, { cmd: ['/bin/sleep', '3600'] })],
    };
    await deploy(client, { spec }, md);
    const original = (await podmanInspect(`${service}-app`)).Id;

    const requestId = `${base}-slow-1`;
    const timedOut = await grpcError(timedDeploy(client, { spec, requestId }, md, 2_000));
    expect(timedOut.code).toBe(status.DEADLINE_EXCEEDED);
    const retry = await deploy(client, { spec, requestId }, md);
    expect(retry.progress).toEqual([]);
    expect(retry.result.replayed).toBe(true);
    expect(retry.result.components.map((c) => [c.component, c.ok, c.observedState])).toEqual([
      ['app', true, ObservedState.OBSERVED_STATE_RUNNING],
    ]);
    expect((await podmanInspect(`${service}-app`)).Id).not.toBe(original);
    const events = (await unary(client.getServiceStatus.bind(client), { service, eventLimit: 0 }, md)).events;
    expect(events.filter((e) => e.kind === 'deployed')).toHaveLength(2); // the first deploy and the one that timed out
  }, 60_000);

  it('records but does not start the components of an inactive service; start runs them', async () => {
    const service = `${base}-idle`;
    const { progress, result } = await deploy(
      client,
      { spec: { name: service, active: false, components: [sleeper('app', bed!.imageV1)] } },
      md,
    );
    expect(result.components).toEqual([
      expect.objectContaining({
        ok: true,
        desiredState: DesiredState.DESIRED_STATE_STOPPED,
        observedState: ObservedState.OBSERVED_STATE_MISSING,
      }),
    ]);
    expect(progress.map((p) => p.step)).toEqual(['pull', 'done']);
    expect(progress.at(-1)?.message).toMatch(/desired stopped, so it was not started: start_service runs/);
    expect(await containerExists(`${service}-app`)).toBe(false);

    const started = await unary(
      client.startService.bind(client),
      { service, component: '', requestId: '' },
      md,
    );
    expect(started.components.map((c) => [c.ok, c.observedState])).toEqual([
      [true, ObservedState.OBSERVED_STATE_RUNNING],
    ]);
  });

  describe('bad input changes nothing', () => {
    const bad = `${base}-bad`;
    const known = `${base}-known`;
    let before: Awaited<ReturnType<typeof listServices>>;

    beforeAll(async () => {
      // A service the registry knows, for the unknown-component case: inactive, so its deploy
      // records it and runs nothing.
      const components = webSpec.components.map((c) => ({ ...c, volumes: [] })); // not web's data to mount
      await deploy(client, { spec: { name: known, active: false, components } }, md);
    });

    // Taken before each case: a case elsewhere in the file may have run in between.
    beforeEach(async () => {
      before = await listServices();
    });

    it.each([
      [
        'an empty image',
        { name: bad, components: [sleeper('app', '')] },
        /components\[0\]\.image: required: give an image reference/,
      ],
      [
        'a malformed port mapping',
        { name: bad, components: [sleeper('app', 'x:v1', { ports: ['127.0.0.1:80'] })] },
        /components\[0\]\.ports\[0\]: "127\.0\.0\.1:80": .*expected \[host_ip:\]host_port:container_port/,
      ],
      [
        'a service name with shell metacharacters',
        { name: `${bad};rm`, components: [sleeper('app', 'x:v1')] },
        /name: ".*;rm" is not a valid name/,
      ],
      [
        'an image with shell metacharacters',
        { name: bad, components: [sleeper('app', 'x:v1;reboot')] },
        /image: "x:v1;reboot" contains shell metacharacters/,
      ],
      [
        // Once an E2BIG from the runtime that ended the whole deploy INTERNAL; now refused up front.
        'a 200 KB environment value',
        { name: bad, components: [sleeper('app', 'x:v1', { env: { BIG: 'v'.repeat(200 * 1024) } })] },
        /components\[0\]\.env\.BIG: the value is 204800 bytes: at most 32 KiB are allowed per environment value/,
      ],
      [
        '10,000 components',
        {
          name: bad,
          components: Array.from({ length: 10_000 }, (_, i) => sleeper(`c${i}`, 'x:v1')),
        },
        /components: 10000 components: a service may have at most 64/,
      ],
    ])('%s: INVALID_ARGUMENT', async (_what, spec, message) => {
      const err = await grpcError(timedDeploy(client, { spec: spec as ServiceSpec }, md, 5_000));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(message);
      expect(await listServices()).toEqual(before);
      expect(await containerExists(`${bad}-app`)).toBe(false);
    });

    it('a sync of a 200 KB environment value: INVALID_ARGUMENT naming it, nothing recorded', async () => {
      const spec = {
        name: bad,
        components: [sleeper('app', 'x:v1', { env: { BIG: 'v'.repeat(200 * 1024) } })],
      };
      const err = await grpcError(
        unary(client.syncDesiredState.bind(client), { services: [spec], requestId: '' }, md),
      );
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/components\[0\]\.env\.BIG: the value is 204800 bytes: at most 32 KiB/);
      expect(await listServices()).toEqual(before);
    });

    it("a request over the agent's 8 MiB message limit: RESOURCE_EXHAUSTED saying so, not INTERNAL", async () => {
      const env = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`V${i}`, 'v'.repeat(30 * 1024)]));
      const spec = { name: bad, components: [sleeper('app', 'x:v1', { env })] };
      const err = await grpcError(timedDeploy(client, { spec }, md, 10_000));
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(err.details).toMatch(/larger than max/);
      expect(await listServices()).toEqual(before);
    });

    it('an unknown service: NOT_FOUND saying what to do', async () => {
      const err = await grpcError(timedDeploy(client, { service: bad }, md, 5_000));
      expect(err.code).toBe(status.NOT_FOUND);
      expect(err.details).toBe(
        `service '${bad}' is not known on node ${agent.node}: deploy it with a full spec, or sync its definition first`,
      );
      expect(await listServices()).toEqual(before);
    });

    it('an unknown component: NOT_FOUND naming the ones there are', async () => {
      const err = await grpcError(timedDeploy(client, { service: known, component: 'nope' }, md, 5_000));
      expect(err.code).toBe(status.NOT_FOUND);
      expect(err.details).toBe(`service '${known}' has no component 'nope' (it has: web, worker)`);
    });

    it('both a spec and a service name: INVALID_ARGUMENT', async () => {
      // Not the web service: the first case counts the Deploy records audited under its name.
      const err = await grpcError(
        timedDeploy(client, { spec: { ...webSpec, name: bad }, service: bad }, md, 5_000),
      );
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/either spec .* or service .*, not both/);
      expect(await listServices()).toEqual(before);
    });
  });
});
