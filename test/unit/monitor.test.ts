import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentConfig } from '../../agent/config.js';
import { createMonitor, type Monitor, type MonitorOptions, startMonitor } from '../../agent/monitor/index.js';
import type { ContainerSummary, ObservedStateName } from '../../agent/runtime/index.js';
import { ServiceLocks } from '../../agent/service-locks.js';
import { createLogger, type Logger } from '../../core/log.js';
import type { Registry } from '../../registry/db.js';
import { TRANSITION_EVENT_KIND } from '../../registry/events.js';
import { type AlertRecorder, alertRecorder } from '../support/alerts.js';
import { type TempRegistry, tempRegistry } from '../support/registry.js';
import { component, serviceSpec } from '../support/specs.js';

let temp: TempRegistry;
let registry: Registry;
let recorder: AlertRecorder;
let logLines: Record<string, unknown>[];
let log: Logger;
let clock: number;
const start = Date.now();
/** The image of every component and of every container the fake runtime lists. */
const image = 'registry.example:5000/app:v7';

/** A fake runtime: `list()` returns `containers`, or throws `failure` when set, after `delayMs`. */
class FakeRuntime {
  containers: ContainerSummary[] = [];
  failure: Error | undefined;
  delayMs = 0;
  calls = 0;
  async list(): Promise<ContainerSummary[]> {
    this.calls += 1;
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    if (this.failure) throw this.failure;
    return this.containers.map((c) => ({ ...c }));
  }
  set(states: Record<string, ObservedStateName | undefined>): void {
    this.containers = Object.entries(states)
      .filter((entry): entry is [string, ObservedStateName] => entry[1] !== undefined)
      .map(([name, state]) => ({
        name,
        id: `id-${name}`,
        image,
        state,
        command: ['/bin/sleep', '3600'],
      }));
  }
}

let runtime: FakeRuntime;
const monitors: Monitor[] = [];

beforeEach(() => {
  temp = tempRegistry('mcp-monitor-');
  registry = temp.registry;
  recorder = alertRecorder(temp.dir);
  logLines = [];
  log = createLogger({ level: 'debug', write: (line) => logLines.push(JSON.parse(line)) });
  clock = start;
  runtime = new FakeRuntime();
  registry.services.upsert(
    serviceSpec('shop', [component('web', { image }), component('db', { image })], true),
  );
});

afterEach(async () => {
  for (const monitor of monitors.splice(0)) await monitor.stop();
  temp.cleanup();
});

function settings(overrides: Partial<AgentConfig['monitor']> = {}): AgentConfig['monitor'] {
  return {
    enabled: true,
    intervalSeconds: 30,
    flapThreshold: 3,
    flapWindowSeconds: 600,
    cooldownSeconds: 900,
    eventRetentionDays: 30,
    alertCommand: recorder.command,
    alertTimeoutSeconds: 10,
    ...overrides,
  };
}

function monitor(
  overrides: Partial<AgentConfig['monitor']> = {},
  extra: Partial<MonitorOptions> = {},
): Monitor {
  const m = createMonitor({
    config: { nodeName: 'node1', monitor: settings(overrides) },
    registry,
    runtime,
    log,
    now: () => new Date(clock),
    ...extra,
  });
  monitors.push(m);
  return m;
}

const advance = (seconds: number) => {
  clock += seconds * 1000;
};

const alerts = () => recorder.alerts();

const observed = (name: string) => registry.services.getComponent('shop', name)?.observedState;

describe('reconciling observed state', () => {
  it('records each component as the runtime reports it, missing without a container, with one event per transition', async () => {
    const m = monitor();
    runtime.set({ 'shop-web': 'running' });
    await m.tick();
    expect(observed('web')).toBe('running');
    expect(observed('db')).toBe('missing');
    const transitions = registry.events
      .query({ service: 'shop' })
      .filter((e) => e.kind === TRANSITION_EVENT_KIND);
    expect(transitions.map((e) => [e.component, e.previousState, e.observedState]).sort()).toEqual([
      ['db', undefined, 'missing'],
      ['web', undefined, 'running'],
    ]);
    await m.tick();
    expect(
      registry.events.query({ service: 'shop' }).filter((e) => e.kind === TRANSITION_EVENT_KIND),
    ).toHaveLength(2);
    expect(registry.services.getComponent('shop', 'web')?.version).toBe('v7');
  });

  it('logs a runtime failure and goes on with the next tick', async () => {
    const m = monitor();
    runtime.failure = new Error('podman: cannot connect');
    await m.tick();
    expect(logLines.some((l) => l.level === 'warn' && String(l.error).includes('cannot connect'))).toBe(true);
    expect(observed('web')).toBeUndefined();
    runtime.failure = undefined;
    runtime.set({ 'shop-web': 'running', 'shop-db': 'running' });
    await m.tick();
    expect(observed('web')).toBe('running');
    expect(logLines.some((l) => l.msg === 'the container runtime answers again')).toBe(true);
  });

  it('never runs two ticks at once: a tick asked for during one joins it', async () => {
    const m = monitor();
    runtime.delayMs = 100;
    runtime.set({ 'shop-web': 'running', 'shop-db': 'running' });
    await Promise.all([m.tick(), m.tick(), m.tick()]);
    expect(runtime.calls).toBe(1);
    await m.tick();
    expect(runtime.calls).toBe(2);
  });

  it('stop() waits for the running tick', async () => {
    const m = monitor();
    runtime.delayMs = 200;
    runtime.set({ 'shop-web': 'running', 'shop-db': 'running' });
    void m.tick();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await m.stop();
    expect(observed('web')).toBe('running');
    await m.tick(); // stopped: does nothing
    expect(runtime.calls).toBe(1);
  });

  it('leaves a service alone when a write began while the runtime was listed, even if it has ended', async () => {
    const locks = new ServiceLocks();
    const m = monitor(
      {},
      { isBusy: (service) => locks.isLocked(service), writesSince: () => locks.writesSince() },
    );
    runtime.set({ 'shop-web': 'running', 'shop-db': 'running' });
    await m.tick();
    expect(observed('web')).toBe('running');
    // The listing sees web gone (a deploy between its stop and its run); the deploy then ends
    // before the monitor looks at the locks.
    runtime.set({ 'shop-db': 'running' });
    const list = runtime.list.bind(runtime);
    runtime.list = async () => {
      const listing = await list();
      (await locks.acquire('shop'))();
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect(locks.isLocked('shop')).toBe(false);
      return listing;
    };
    await m.tick();
    expect(observed('web')).toBe('running');
    expect(alerts()).toEqual([]);
    // The next listing, taken with no write since, is applied.
    runtime.list = list;
    await m.tick();
    expect(observed('web')).toBe('missing');
  });

  it('leaves a service alone while a write holds it', async () => {
    const m = monitor({}, { isBusy: (service) => service === 'shop' });
    runtime.set({});
    await m.tick();
    expect(observed('web')).toBeUndefined();
    expect(alerts()).toEqual([]);
  });
});

describe('drift alerts', () => {
  it('runs the alert command once when a component drifts, with the alert in its environment', async () => {
    const m = monitor();
    runtime.set({ 'shop-web': 'running', 'shop-db': 'running' });
    await m.tick();
    expect(alerts()).toEqual([]);
    advance(30);
    runtime.set({ 'shop-web': 'exited', 'shop-db': 'running' });
    await m.tick();
    advance(30);
    await m.tick(); // still drifting: no second alert
    expect(alerts()).toEqual([
      {
        MCP_ALERT_TYPE: 'drift',
        MCP_COMPONENT: 'web',
        MCP_DESIRED_IMAGE: image,
        MCP_DESIRED_STATE: 'running',
        MCP_DRIFT_REASON: 'state',
        MCP_MESSAGE: 'shop/web should be running but is exited',
        MCP_NODE: 'node1',
        MCP_OBSERVED_STATE: 'exited',
        MCP_RUNNING_IMAGE: image,
        MCP_SERVICE: 'shop',
        MCP_TIMESTAMP: new Date(start + 30_000).toISOString(),
        MCP_TRANSITIONS: '2',
      },
    ]);
    const recorded = registry.events
      .query({ service: 'shop', component: 'web' })
      .filter((e) => e.kind === 'drift_alert');
    expect(recorded).toHaveLength(1);
  });

  it('alerts once on a running container whose image is not the recorded one, saying so, and stops when it is', async () => {
    const m = monitor();
    runtime.set({ 'shop-web': 'running', 'shop-db': 'running' });
    const stale = 'registry.example:5000/app:v6';
    runtime.containers = runtime.containers.map((c) => (c.name === 'shop-db' ? { ...c, image: stale } : c));
    await m.tick();
    advance(30);
    await m.tick(); // still stale: no second alert
    expect(alerts()).toEqual([
      expect.objectContaining({
        MCP_ALERT_TYPE: 'drift',
        MCP_COMPONENT: 'db',
        MCP_DRIFT_REASON: 'image',
        MCP_DESIRED_STATE: 'running',
        MCP_OBSERVED_STATE: 'running',
        MCP_DESIRED_IMAGE: image,
        MCP_RUNNING_IMAGE: stale,
        MCP_MESSAGE: `shop/db runs image ${stale}, not the recorded ${image}: deploy it again`,
      }),
    ]);
    runtime.set({ 'shop-web': 'running', 'shop-db': 'running' }); // redeployed
    advance(30);
    await m.tick();
    expect(alerts()).toHaveLength(1);
    expect(registry.services.getComponent('shop', 'db')?.observedImage).toBe(image);
  });

  it('does not alert for a second drift inside the cooldown, and does once it has passed if the drift lasts', async () => {
    const m = monitor({ cooldownSeconds: 600, flapThreshold: 100 });
    runtime.set({ 'shop-web': 'running', 'shop-db': 'running' });
    await m.tick();
    runtime.set({ 'shop-web': 'exited', 'shop-db': 'running' });
    await m.tick();
    expect(alerts()).toHaveLength(1);
    advance(60);
    runtime.set({ 'shop-web': 'running', 'shop-db': 'running' });
    await m.tick();
    advance(60);
    runtime.set({ 'shop-web': 'exited', 'shop-db': 'running' });
    await m.tick();
    expect(alerts()).toHaveLength(1);
    advance(300);
    await m.tick();
    expect(alerts()).toHaveLength(1);
    advance(300); // 660 s after the first alert
    await m.tick();
    expect(alerts()).toHaveLength(2);
  });

  it('keeps the cooldown across a restart of the agent (it is read from the events)', async () => {
    runtime.set({ 'shop-web': 'exited', 'shop-db': 'running' });
    await monitor().tick();
    expect(alerts()).toHaveLength(1);
    advance(60);
    await monitor().tick(); // a new monitor, as after a restart
    expect(alerts()).toHaveLength(1);
  });

  it('alerts for desired stopped and running, not for desired stopped and exited or missing', async () => {
    registry.services.setDesiredState('shop', 'stopped', 'web');
    registry.services.setDesiredState('shop', 'stopped', 'db');
    runtime.set({ 'shop-web': 'running', 'shop-db': 'exited' });
    await monitor().tick();
    expect(alerts().map((a) => [a.MCP_COMPONENT, a.MCP_DESIRED_STATE, a.MCP_OBSERVED_STATE])).toEqual([
      ['web', 'stopped', 'running'],
    ]);
  });

  it('never alerts for an ignored component', async () => {
    registry.services.setDesiredState('shop', 'ignore');
    const m = monitor({ flapThreshold: 1 });
    for (const state of ['running', 'exited', 'running', 'exited', undefined] as const) {
      runtime.set({ 'shop-web': state, 'shop-db': state });
      await m.tick();
    }
    expect(observed('web')).toBe('missing');
    expect(alerts()).toEqual([]);
  });

  it('records and logs the alert when no alert command is configured', async () => {
    runtime.set({});
    await monitor({ alertCommand: undefined }).tick();
    expect(registry.events.query({ service: 'shop' }).filter((e) => e.kind === 'drift_alert')).toHaveLength(
      2,
    );
    expect(logLines.filter((l) => l.msg === 'alert')).toHaveLength(2);
  });
});

describe('flap alerts', () => {
  it('alerts once when a component changes state more than flap_threshold times within the window', async () => {
    const m = monitor({ flapThreshold: 3, cooldownSeconds: 3600 });
    const cycle = ['running', 'exited', 'running', 'exited', 'running', 'exited', 'running'] as const;
    for (const state of cycle) {
      runtime.set({ 'shop-web': state, 'shop-db': 'running' });
      await m.tick();
      advance(10);
    }
    const flaps = alerts().filter((a) => a.MCP_ALERT_TYPE === 'flap');
    // Transitions: unobserved->running, then one per change: the 4th arrives at the 4th tick.
    expect(flaps).toHaveLength(1);
    expect(flaps[0]).toMatchObject({ MCP_SERVICE: 'shop', MCP_COMPONENT: 'web', MCP_TRANSITIONS: '4' });
    // Drift: alerted at the first exit, held back by the cooldown at the others.
    expect(alerts().filter((a) => a.MCP_ALERT_TYPE === 'drift')).toHaveLength(1);
  });

  it('counts only transitions within the window', async () => {
    const m = monitor({ flapThreshold: 2, flapWindowSeconds: 60, cooldownSeconds: 0 });
    for (const state of ['running', 'exited', 'running'] as const) {
      runtime.set({ 'shop-web': state, 'shop-db': 'running' });
      await m.tick();
    }
    expect(alerts().filter((a) => a.MCP_ALERT_TYPE === 'flap')).toHaveLength(1);
    // Events are stamped by the wall clock: a window that ends in the past sees none of them.
    advance(3600);
    runtime.set({ 'shop-web': 'exited', 'shop-db': 'running' });
    await m.tick();
    expect(alerts().filter((a) => a.MCP_ALERT_TYPE === 'flap')).toHaveLength(1);
  });
});

describe('the alert command', () => {
  it('a failing command is logged, never fatal', async () => {
    runtime.set({});
    const m = monitor({ alertCommand: ['/bin/sh', '-c', 'echo broken >&2; exit 3'] });
    await m.tick();
    const failures = logLines.filter((l) => l.msg === 'alert command failed');
    expect(failures).toHaveLength(2);
    expect(failures[0]).toMatchObject({ exitCode: 3, stderr: 'broken' });
    runtime.set({ 'shop-web': 'running', 'shop-db': 'running' });
    await m.tick();
    expect(observed('web')).toBe('running');
  });

  it('a command that cannot start is logged', async () => {
    runtime.set({});
    await monitor({ alertCommand: ['/nonexistent/alert'] }).tick();
    expect(logLines.some((l) => String(l.msg).startsWith('alert command') && l.level === 'error')).toBe(true);
  });

  it('a hanging command is killed at alert_timeout_seconds', async () => {
    runtime.set({ 'shop-web': 'exited', 'shop-db': 'running' });
    const started = Date.now();
    await monitor({ alertCommand: ['/bin/sleep', '60'], alertTimeoutSeconds: 1 }).tick();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(logLines.find((l) => l.msg === 'alert command failed')).toMatchObject({ timedOut: true });
  });
});

describe('pruning', () => {
  it('removes events and request results older than event_retention_days at the first tick, then hourly', async () => {
    const old = new Date(start - 31 * 24 * 3600 * 1000);
    registry.events.record({ service: 'shop', component: 'web', kind: 'deployed', time: old });
    registry.requestResults.recordResult('req-1', 'Deploy', { ok: true });
    registry.db
      .prepare("UPDATE request_results SET created_at = ? WHERE request_id = 'req-1'")
      .run(old.toISOString());
    runtime.set({ 'shop-web': 'running', 'shop-db': 'running' });
    const m = monitor();
    await m.tick();
    expect(registry.events.query({ since: new Date(0), until: new Date(start - 1000) })).toEqual([]);
    expect(registry.requestResults.findResult('req-1', 'Deploy')).toBeUndefined();
    registry.events.record({ service: 'shop', component: 'web', kind: 'deployed', time: old });
    advance(60);
    await m.tick(); // within the hour: not pruned again
    expect(registry.events.query({ until: new Date(start - 1000) })).toHaveLength(1);
    advance(3600);
    await m.tick();
    expect(registry.events.query({ until: new Date(start - 1000) })).toHaveLength(0);
  });
});

describe('startMonitor', () => {
  it('ticks at once and then every interval until stopped', async () => {
    runtime.set({ 'shop-web': 'running', 'shop-db': 'running' });
    const m = startMonitor({
      config: { nodeName: 'node1', monitor: settings({ intervalSeconds: 1 }) },
      registry,
      runtime,
      log,
    });
    monitors.push(m);
    await waitFor(() => runtime.calls >= 2, 5000);
    await m.stop();
    const calls = runtime.calls;
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(runtime.calls).toBe(calls);
  });
});

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
