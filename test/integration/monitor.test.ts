/**
 * The monitor inside the real `mcp-agent server` process (dist/agent/main.js: run
 * `npm run build` first), with real podman (scripts/testbed.sh), a 1 s interval and an alert
 * command that is a shell script appending its MCP_* environment to a file.
 *
 * The service is deployed by an agent without the monitor, which is then restarted with it on
 * the same database: the deploy's own window (component recorded, container not yet running)
 * is not what these tests are about.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Metadata } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Event, GetServiceStatusResponse, McpAgentServiceClient } from '../../gen/mcp/v1/mcp.js';
import { ObservedState } from '../../gen/mcp/v1/mcp.js';
import { deploy, startTestAgent, type TestAgent, unary } from '../support/agent.js';
import { type AlertRecorder, alertRecorder } from '../support/alerts.js';
import { sleeper } from '../support/specs.js';
import { removeContainers, requireTestbed, uniqueName } from '../support/testbed.js';

const bed = await requireTestbed();
const repo = new URL('../..', import.meta.url).pathname;
const built = fs.existsSync(path.join(repo, 'dist/agent/main.js'));
if (!built && process.env.CI) throw new Error('dist/agent/main.js is missing: run npm run build first');

const INTERVAL_SECONDS = 1;

describe.skipIf(!bed || !built)('the monitor in a real agent process, real podman', () => {
  let service: string;
  let container: string;
  let dataDir: string;
  let recorder: AlertRecorder;
  let agent: TestAgent | undefined;
  let client: McpAgentServiceClient;
  let md: Metadata;

  // Every case gets its own service, agent and alert log: the cases pass in any order, and
  // the ones about a second drift or a flap bring about the first drift themselves.
  beforeEach(async () => {
    service = uniqueName('mcpt-mon');
    container = `${service}-web`;
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-monitor-it-'));
    recorder = alertRecorder(dataDir);

    const deployer = await startTestAgent({ process: true, dataDir });
    const web = sleeper('web', bed!.imageV1);
    const { result } = await deploy(
      deployer.client(),
      { spec: { name: service, active: true, components: [web] } },
      await deployer.auth({ roles: ['operator'] }),
    );
    expect(result.components.map((c) => c.ok)).toEqual([true]);
    await deployer.stop();

    agent = await startTestAgent({
      process: true,
      dataDir,
      monitor: {
        enabled: true,
        interval_seconds: INTERVAL_SECONDS,
        flap_threshold: 3,
        flap_window_seconds: 600,
        cooldown_seconds: 600,
        alert_command: recorder.command,
        alert_timeout_seconds: 5,
      },
    });
    client = agent.client();
    md = await agent.auth({ roles: ['viewer'] });
  }, 180_000);

  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    await removeContainers(service);
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function transitions(): Promise<Event[]> {
    const status: GetServiceStatusResponse = await unary(
      client.getServiceStatus.bind(client),
      { service, eventLimit: 100 },
      md,
    );
    return status.events.filter((e) => e.kind === 'observed_state').reverse(); // oldest first
  }

  async function waitForTransition(to: ObservedState, count: number, timeoutMs = 10_000): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const found = (await transitions()).filter((e) => e.observedState === to);
      if (found.length >= count) return found[count - 1] as Event;
      await sleep(100);
    }
    throw new Error(`no transition #${count} to ${ObservedState[to]} within ${timeoutMs} ms`);
  }

  function alerts(type?: string): Record<string, string>[] {
    return recorder.alerts().filter((alert) => type === undefined || alert.MCP_ALERT_TYPE === type);
  }

  it('detects a container killed outside the agent within two intervals, records it and alerts once', async () => {
    await sleep(INTERVAL_SECONDS * 1500); // the monitor has looked at least once and found it running
    expect(await transitions()).toEqual([]);
    await execa('podman', ['kill', container]);
    const killedAt = Date.now();
    const event = await waitForTransition(ObservedState.OBSERVED_STATE_EXITED, 1);
    expect(event.previousState).toBe(ObservedState.OBSERVED_STATE_RUNNING);
    expect(event.component).toBe('web');
    const detectedAfterMs = (event.time as Date).getTime() - killedAt;
    expect(detectedAfterMs).toBeLessThanOrEqual(2 * INTERVAL_SECONDS * 1000);

    await waitFor(() => alerts('drift').length === 1, 10_000);
    await sleep(3 * INTERVAL_SECONDS * 1000); // still drifting: no repeat
    const drift = alerts('drift');
    expect(drift).toHaveLength(1);
    expect(drift[0]).toMatchObject({
      MCP_ALERT_TYPE: 'drift',
      MCP_NODE: agent!.node,
      MCP_SERVICE: service,
      MCP_COMPONENT: 'web',
      MCP_DESIRED_STATE: 'running',
      MCP_OBSERVED_STATE: 'exited',
      MCP_TRANSITIONS: '1',
    });
    const timestamp = drift[0]?.MCP_TIMESTAMP ?? '';
    expect(timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
    expect(Math.abs(Date.parse(timestamp) - killedAt)).toBeLessThan(5000);
  }, 60_000);

  /** Kills the container and waits for the drift alert: one transition, one alert. */
  async function firstDrift(): Promise<void> {
    await sleep(INTERVAL_SECONDS * 1500); // the monitor has seen it running
    await execa('podman', ['kill', container]);
    await waitForTransition(ObservedState.OBSERVED_STATE_EXITED, 1);
    await waitFor(() => alerts('drift').length === 1, 10_000);
  }

  it('does not alert again for a second drift inside the cooldown', async () => {
    await firstDrift();
    await execa('podman', ['start', container]);
    await waitForTransition(ObservedState.OBSERVED_STATE_RUNNING, 1);
    await execa('podman', ['kill', container]);
    await waitForTransition(ObservedState.OBSERVED_STATE_EXITED, 2);
    await sleep(3 * INTERVAL_SECONDS * 1000);
    expect(alerts('drift')).toHaveLength(1);
  }, 60_000);

  it('raises a flap alert when kill/start cycles pass the threshold', async () => {
    await firstDrift();
    await execa('podman', ['start', container]);
    await waitForTransition(ObservedState.OBSERVED_STATE_RUNNING, 1);
    await execa('podman', ['kill', container]);
    await waitForTransition(ObservedState.OBSERVED_STATE_EXITED, 2);
    expect(alerts('flap')).toEqual([]); // three transitions so far: not more than flap_threshold
    await execa('podman', ['start', container]);
    await waitForTransition(ObservedState.OBSERVED_STATE_RUNNING, 2);
    await waitFor(() => alerts('flap').length === 1, 10_000);
    expect(alerts('flap')[0]).toMatchObject({
      MCP_ALERT_TYPE: 'flap',
      MCP_SERVICE: service,
      MCP_COMPONENT: 'web',
      MCP_OBSERVED_STATE: 'running',
      MCP_TRANSITIONS: '4',
    });
    // The alert is in the component's history too.
    const status: GetServiceStatusResponse = await unary(
      client.getServiceStatus.bind(client),
      { service, eventLimit: 100 },
      md,
    );
    expect(status.events.filter((e) => e.kind === 'flap_alert')).toHaveLength(1);
    expect(status.events.filter((e) => e.kind === 'drift_alert')).toHaveLength(1);
  }, 60_000);
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(50);
  }
}
