import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../agent/config.js';
import { componentSpecFromContainer } from '../../agent/handlers/adopt.js';
import { checkDeployRequest } from '../../agent/handlers/deploy.js';
import { serviceHandlers } from '../../agent/handlers/index.js';
import { parseMemAvailable } from '../../agent/handlers/node.js';
import { driftOf, isInDesiredState, reconcile, sameImage } from '../../agent/reconcile.js';
import { type ContainerDetails, type ContainerSummary, createRuntime } from '../../agent/runtime/index.js';
import type { CallContext } from '../../agent/server.js';
import { ServiceLocks, writeOnce } from '../../agent/service-locks.js';
import { McpError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import { assertValidServiceSpec } from '../../core/spec.js';
import {
  type DeployResponse,
  DesiredState,
  DriftReason,
  ObservedState,
  StopServiceResponse,
} from '../../gen/mcp/v1/mcp.js';
import type { Registry } from '../../registry/db.js';
import { type TempRegistry, tempRegistry } from '../support/registry.js';
import { component, serviceSpec } from '../support/specs.js';

let temp: TempRegistry;
let registry: Registry;

beforeEach(() => {
  temp = tempRegistry('mcp-handlers-');
  registry = temp.registry;
});

afterEach(() => temp.cleanup());

function context(overrides: Partial<CallContext> = {}): CallContext {
  return {
    rpc: 'Deploy',
    caller: { issuer: 'https://issuer.test', subject: 'tester', clientId: '', roles: ['admin'] },
    roles: ['admin'],
    scope: { all: true, allows: () => true },
    authorize: () => undefined, // admin: every permission
    signal: new AbortController().signal,
    log: silentLogger,
    ...overrides,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function rejection(promise: Promise<unknown>): Promise<McpError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof McpError)) throw new Error(`expected an McpError, got ${String(err)}`);
  return err;
}

describe('per-service locks', () => {
  it('runs writes to one service one after the other, in arrival order', async () => {
    const locks = new ServiceLocks();
    const log: string[] = [];
    const write = (label: string, ms: number) =>
      locks.withLocks(['web'], async () => {
        log.push(`${label} start`);
        await sleep(ms);
        log.push(`${label} end`);
      });
    await Promise.all([write('a', 30), write('b', 1), write('c', 1)]);
    expect(log).toEqual(['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
    expect(locks.isLocked('web')).toBe(false);
  });

  it('lets writes to different services run at the same time', async () => {
    const locks = new ServiceLocks();
    const log: string[] = [];
    const write = (service: string) =>
      locks.withLocks([service], async () => {
        log.push(`${service} start`);
        await sleep(20);
        log.push(`${service} end`);
      });
    await Promise.all([write('web'), write('db')]);
    expect(log.slice(0, 2).sort()).toEqual(['db start', 'web start']);
  });

  it('gives up a queued place when the caller cancels, without holding up the queue', async () => {
    const locks = new ServiceLocks();
    let releaseFirst!: () => void;
    const first = locks.withLocks(['web'], () => new Promise<void>((resolve) => (releaseFirst = resolve)));
    const cancel = new AbortController();
    const cancelled = locks.withLocks(['web'], async () => 'ran', cancel.signal);
    const third = locks.withLocks(['web'], async () => 'third ran');
    await sleep(5);
    expect(locks.isLocked('web')).toBe(true);
    cancel.abort();
    const err = await rejection(cancelled);
    expect(err.code).toBe('ABORTED');
    expect(err.message).toMatch(
      /cancelled while waiting for another write to service 'web'.*nothing was done/,
    );
    releaseFirst();
    await first;
    await expect(third).resolves.toBe('third ran');
    expect(locks.isLocked('web')).toBe(false);
  });

  it('takes several locks in name order, so crossed multi-service writes do not deadlock', async () => {
    const locks = new ServiceLocks();
    const both = await Promise.all([
      locks.withLocks(['b', 'a'], async () => {
        await sleep(10);
        return 1;
      }),
      locks.withLocks(['a', 'b'], async () => 2),
    ]);
    expect(both).toEqual([1, 2]);
  });
});

describe('request-id replay', () => {
  const once = (
    locks: ServiceLocks,
    requestId: string,
    act: () => Promise<StopServiceResponse>,
    rpc = 'StopService',
  ) =>
    writeOnce(
      {
        locks,
        requestResults: registry.requestResults,
        services: ['web'],
        rpc,
        requestId,
        codec: StopServiceResponse,
      },
      act,
    );
  const response: StopServiceResponse = {
    service: 'web',
    replayed: false,
    components: [
      {
        component: 'app',
        ok: true,
        error: '',
        observedState: ObservedState.OBSERVED_STATE_EXITED,
        desiredState: DesiredState.DESIRED_STATE_STOPPED,
        version: 'v1',
        container: 'web-app',
      },
    ],
  };

  it('returns the first result for a repeated id instead of acting again', async () => {
    const locks = new ServiceLocks();
    let acted = 0;
    const act = async () => {
      acted += 1;
      return response;
    };
    expect(await once(locks, 'req-1', act)).toEqual(response);
    expect(await once(locks, 'req-1', act)).toEqual({ ...response, replayed: true });
    expect(acted).toBe(1);
  });

  it('makes a retry that arrives while the first call runs wait for it and replay it', async () => {
    const locks = new ServiceLocks();
    let acted = 0;
    const act = async () => {
      acted += 1;
      await sleep(20);
      return response;
    };
    const [first, retry] = await Promise.all([once(locks, 'req-2', act), once(locks, 'req-2', act)]);
    expect(acted).toBe(1);
    expect(first.replayed).toBe(false);
    expect(retry).toEqual({ ...response, replayed: true });
  });

  it('acts every time when no id is given', async () => {
    const locks = new ServiceLocks();
    let acted = 0;
    const act = async () => {
      acted += 1;
      return response;
    };
    await once(locks, '', act);
    await once(locks, '', act);
    expect(acted).toBe(2);
  });

  it('records nothing for a write that failed, so its retry acts', async () => {
    const locks = new ServiceLocks();
    const failing = async (): Promise<StopServiceResponse> => {
      throw new McpError('UNAVAILABLE', 'runtime busy');
    };
    await expect(once(locks, 'req-3', failing)).rejects.toThrow('runtime busy');
    expect(await once(locks, 'req-3', async () => response)).toEqual(response);
  });

  it('refuses an id already used for another operation', async () => {
    const locks = new ServiceLocks();
    await once(locks, 'req-4', async () => response);
    const err = await rejection(once(locks, 'req-4', async () => response, 'StartService'));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(/already used for StopService, not StartService/);
  });
});

describe('drift', () => {
  it.each([
    ['running', 'running', true],
    ['running', 'exited', false],
    ['running', 'missing', false],
    ['running', 'paused', false],
    ['running', 'restarting', false],
    ['running', 'created', false],
    ['running', 'unknown', false],
    ['stopped', 'exited', true],
    ['stopped', 'created', true],
    ['stopped', 'missing', true],
    ['stopped', 'running', false],
    ['stopped', 'paused', false],
    ['stopped', 'restarting', false],
    ['stopped', 'unknown', false],
    ['ignore', 'running', undefined],
    ['ignore', 'missing', undefined],
    ['running', undefined, undefined],
    ['stopped', undefined, undefined],
  ] as const)('desired %s, observed %s: in state %s', (desired, observed, expected) => {
    expect(isInDesiredState(desired, observed)).toBe(expected);
  });

  it('lists only managed components out of their desired state', () => {
    registry.services.upsert(serviceSpec('shop', [component('web'), component('db'), component('cache')]));
    registry.services.upsertComponent('shop', component('stray'), { desiredState: 'ignore' });
    registry.services.setObservedState('shop', 'web', { state: 'running' });
    registry.services.setObservedState('shop', 'db', { state: 'exited' });
    registry.services.setObservedState('shop', 'stray', { state: 'exited' });
    // cache was never observed: nothing is known to differ.
    expect(driftOf(registry.services.require('shop'))).toEqual([
      {
        service: 'shop',
        component: 'db',
        desiredState: DesiredState.DESIRED_STATE_RUNNING,
        observedState: ObservedState.OBSERVED_STATE_EXITED,
        reason: DriftReason.DRIFT_REASON_STATE,
        desiredImage: 'registry.example:5000/db:v1',
        runningImage: '',
      },
    ]);
  });

  it('reports a running container from another image than the recorded one as image drift', () => {
    registry.services.upsert(serviceSpec('shop', [component('web'), component('db'), component('cache')]));
    registry.services.setObservedState('shop', 'web', {
      state: 'running',
      image: 'registry.example:5000/web:v1',
    });
    registry.services.setObservedState('shop', 'db', {
      state: 'running',
      image: 'registry.example:5000/db:v0',
    });
    // Stopped as wanted: which image an exited container came from does not matter.
    registry.services.setDesiredState('shop', 'stopped', 'cache');
    registry.services.setObservedState('shop', 'cache', {
      state: 'exited',
      image: 'registry.example:5000/old:v0',
    });
    expect(driftOf(registry.services.require('shop'))).toEqual([
      {
        service: 'shop',
        component: 'db',
        desiredState: DesiredState.DESIRED_STATE_RUNNING,
        observedState: ObservedState.OBSERVED_STATE_RUNNING,
        reason: DriftReason.DRIFT_REASON_IMAGE,
        desiredImage: 'registry.example:5000/db:v1',
        runningImage: 'registry.example:5000/db:v0',
      },
    ]);
  });
});

describe('image references compared for drift', () => {
  const DIGEST = `sha256:${'a'.repeat(64)}`;
  it.each([
    ['bb:v1', 'localhost/bb:v1'],
    ['localhost/bb:v1', 'bb:v1'],
    ['nginx', 'docker.io/library/nginx:latest'],
    ['docker.io/library/nginx:1.27', 'nginx:1.27'],
    ['index.docker.io/user/app:2', 'docker.io/user/app:2'],
    ['127.0.0.1:5000/bb:v2', '127.0.0.1:5000/bb:v2'],
    [`localhost/bb@${DIGEST}`, `bb@${DIGEST}`],
    [`bb:v1@${DIGEST}`, `localhost/bb@${DIGEST}`],
  ])('%s is %s', (desired, running) => {
    expect(sameImage(desired, running)).toBe(true);
  });

  it.each([
    ['localhost/bb:v2', 'localhost/bb:v1'],
    ['127.0.0.1:5000/bb:v1', 'localhost/bb:v1'],
    ['docker.io/library/bb:v1', 'localhost/bb:v1'],
    ['bb:v1', 'other:v1'],
    ['bb', 'bb:v1'],
    [`bb@${DIGEST}`, 'bb:v1'],
    [`bb@${DIGEST}`, `bb@sha256:${'b'.repeat(64)}`],
    ['127.0.0.1:5000/bb:v1', '127.0.0.1:5001/bb:v1'],
  ])('%s is not %s', (desired, running) => {
    expect(sameImage(desired, running)).toBe(false);
  });
});

function container(
  name: string,
  state: ContainerSummary['state'],
  image = 'registry.example:5000/x:v1',
): ContainerSummary {
  return { name, id: `${name}-id`, image, state, command: [] };
}

describe('reconciling a listing with the registry', () => {
  beforeEach(() => {
    registry.services.upsert(serviceSpec('shop', [component('web'), component('db')]));
    registry.services.upsert(serviceSpec('mc-proxy', [component('web')]));
  });

  it('records each change of observed state once, as an event, and missing containers as missing', () => {
    const listing = [
      container('shop-web', 'running', 'registry.example:5000/web:v7'),
      container('mc-proxy-web', 'exited'),
    ];
    const first = reconcile(registry, listing);
    expect(first.changes).toEqual([
      { service: 'mc-proxy', component: 'web', previous: undefined, observed: 'exited' },
      { service: 'shop', component: 'web', previous: undefined, observed: 'running' },
      { service: 'shop', component: 'db', previous: undefined, observed: 'missing' },
    ]);
    expect(registry.services.getComponent('shop', 'web')?.version).toBe('v7');
    expect(reconcile(registry, listing).changes).toEqual([]);

    const second = reconcile(registry, [
      container('shop-web', 'exited'),
      container('mc-proxy-web', 'exited'),
    ]);
    expect(second.changes).toEqual([
      { service: 'shop', component: 'web', previous: 'running', observed: 'exited' },
    ]);
    const [latest] = registry.events.query({ service: 'shop', component: 'web' });
    expect(latest).toMatchObject({
      kind: 'observed_state',
      previousState: 'running',
      observedState: 'exited',
    });
  });

  it('reports containers that are no component as unmanaged, split against known services', () => {
    const listing = [
      container('shop-web', 'running'),
      container('shop-admin', 'running'),
      container('mc-proxy-api', 'running'),
      container('elsewhere', 'exited'),
    ];
    expect(reconcile(registry, listing).unmanaged.map((c) => c.name)).toEqual([
      'shop-admin',
      'mc-proxy-api',
      'elsewhere',
    ]);
    const onlyShop = reconcile(registry, listing, { services: ['shop'] });
    expect(onlyShop.unmanaged.map((c) => c.name)).toEqual(['shop-admin']);
  });

  it('leaves services that a write holds alone', () => {
    const { changes } = reconcile(registry, [], { skip: (service) => service === 'shop' });
    expect(changes.map((c) => c.service)).toEqual(['mc-proxy']);
    expect(registry.services.getComponent('shop', 'web')?.observedState).toBeUndefined();
  });
});

describe('adoption reads a spec back from the runtime', () => {
  const details: ContainerDetails = {
    init: false,
    stopTimeoutSeconds: undefined,
    name: 'shop-web',
    id: 'abc',
    image: '127.0.0.1:5000/bb:v1',
    imageId: 'sha256:1',
    state: 'running',
    command: ['/bin/httpd', '-f'],
    cmd: ['/bin/httpd', '-f'],
    ports: ['127.0.0.1:8080:80/tcp', '::1:8443:443/tcp', '53:53/udp'],
    volumes: ['/srv/shop:/data:ro'],
    env: { GREETING: 'hi' },
    network: 'podman',
    user: '65534:65534',
    restart: 'no',
  };

  it('writes the runtime defaults the way a definition gives them, and the result is a valid spec', () => {
    const adopted = componentSpecFromContainer('web', details);
    expect(adopted).toEqual({
      name: 'web',
      image: '127.0.0.1:5000/bb:v1',
      network: '',
      user: '65534:65534',
      restart: '',
      ports: ['127.0.0.1:8080:80', '[::1]:8443:443', '53:53/udp'],
      volumes: ['/srv/shop:/data:ro'],
      cmd: ['/bin/httpd', '-f'],
      env: { GREETING: 'hi' },
      envFiles: [],
      init: false,
    });
    expect(() => assertValidServiceSpec(serviceSpec('shop', [adopted]))).not.toThrow();
  });

  it('reads back init and a stop timeout other than the runtime default', () => {
    expect(
      componentSpecFromContainer('web', { ...details, init: true, stopTimeoutSeconds: 3 }),
    ).toMatchObject({
      init: true,
      stopTimeoutSeconds: 3,
    });
    // Every container carries 10 s (the default): writing it down would add nothing.
    expect(componentSpecFromContainer('web', { ...details, stopTimeoutSeconds: 10 })).not.toHaveProperty(
      'stopTimeoutSeconds',
    );
  });

  it('keeps a named network and a restart policy', () => {
    const adopted = componentSpecFromContainer('web', { ...details, network: 'backend', restart: 'always' });
    expect(adopted).toMatchObject({ network: 'backend', restart: 'always' });
  });
});

describe('deploy request checks', () => {
  const valid = serviceSpec('shop', [component('web')]);

  it.each([
    [
      { spec: valid, service: 'shop', component: '' },
      'INVALID_ARGUMENT',
      /either spec .* or service .*, not both/,
    ],
    [{ spec: undefined, service: '', component: '' }, 'INVALID_ARGUMENT', /give spec .* or service/],
    [
      { spec: serviceSpec('shop', [component('web', { image: '' })]), service: '', component: '' },
      'INVALID_ARGUMENT',
      /components\[0\]\.image: required/,
    ],
    [
      { spec: serviceSpec('shop', [component('web', { ports: ['8080'] })]), service: '', component: '' },
      'INVALID_ARGUMENT',
      /components\[0\]\.ports\[0\]: "8080": a host port and a container port are both required/,
    ],
    [
      { spec: serviceSpec('shop;rm -rf', [component('web')]), service: '', component: '' },
      'INVALID_ARGUMENT',
      /name: ".*" is not a valid name/,
    ],
    [{ spec: valid, service: '', component: 'db' }, 'NOT_FOUND', /has no component 'db' \(it has: web\)/],
  ])('refuses %o', (req, code, message) => {
    let error: unknown;
    try {
      checkDeployRequest({ requestId: '', ...req });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(McpError);
    expect((error as McpError).code).toBe(code);
    expect((error as McpError).message).toMatch(message);
  });
});

describe('node memory', () => {
  it('reads MemAvailable in bytes', () => {
    const meminfo = 'MemTotal:       16318480 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n';
    expect(parseMemAvailable(meminfo)).toBe(8_000_000 * 1024);
    expect(parseMemAvailable('MemTotal: 1 kB\n')).toBeUndefined();
  });
});

describe('a runtime binary that is not there', () => {
  function handlers() {
    const config = parseAgentConfig(
      `node_name = "node1"
database = "${temp.file}"
runtime_path = "/nonexistent/podman"
[server]
tls_cert = "/etc/agent.crt"
tls_key = "/etc/agent.key"
[[issuers]]
issuer = "https://issuer.test"
discovery = true
audience = "mcp"
`,
      '/etc/mcp-agent/agent.toml',
      {},
    );
    const runtime = createRuntime('podman', '/nonexistent/podman');
    return serviceHandlers({
      config,
      registry,
      runtime,
      log: silentLogger,
      startedAt: new Date(),
      agentVersion: '0.0.0',
    });
  }

  it('fails a deploy with FAILED_PRECONDITION before recording anything', async () => {
    const sent: DeployResponse[] = [];
    const err = await rejection(
      handlers().deploy(
        { spec: serviceSpec('shop', [component('web')]), service: '', component: '', requestId: 'r1' },
        context(),
        async (m) => {
          sent.push(m);
        },
      ),
    );
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.message).toMatch(/container runtime 'podman' not found at '\/nonexistent\/podman'/);
    expect(registry.services.names()).toEqual([]);
    expect(sent).toEqual([]);
  });

  it('fails stop, live check and node status the same way, and changes no desired state', async () => {
    registry.services.upsert(serviceSpec('shop', [component('web')]));
    const h = handlers();
    const calls = [
      () => h.stopService({ service: 'shop', component: '', requestId: '' }, context()),
      () => h.liveCheck({ service: '' }, context()),
      () => h.nodeStatus({}, context()),
    ];
    for (const call of calls) expect((await rejection(call())).code).toBe('FAILED_PRECONDITION');
    expect(registry.services.require('shop')).toMatchObject({
      active: true,
      components: [{ desiredState: 'running' }],
    });
  });

  it('still answers from the registry for list and status', async () => {
    registry.services.upsert(serviceSpec('shop', [component('web')]));
    const h = handlers();
    const list = await h.listServices({ desiredState: DesiredState.DESIRED_STATE_UNSPECIFIED }, context());
    expect(list.services.map((s) => s.name)).toEqual(['shop']);
    const status = await h.getServiceStatus({ service: 'shop', eventLimit: 0 }, context());
    expect(status.drift).toEqual([]);
    const unknown = await rejection(h.getServiceStatus({ service: 'nope', eventLimit: 0 }, context()));
    expect(unknown.code).toBe('NOT_FOUND');
    expect(unknown.message).toBe(
      "service 'nope' is not known on node node1: list_services shows the services it has",
    );
  });

  it('filters the list by the caller scope', async () => {
    registry.services.upsert(serviceSpec('shop', [component('web')]));
    registry.services.upsert(serviceSpec('blog', [component('web')]));
    const scope = { all: false, allows: (s: string) => s === 'blog' };
    const list = await handlers().listServices(
      { desiredState: DesiredState.DESIRED_STATE_UNSPECIFIED },
      context({ scope }),
    );
    expect(list.services.map((s) => s.name)).toEqual(['blog']);
  });
});
