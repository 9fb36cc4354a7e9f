/**
 * A deploy killed between its components leaves a stale image behind, and drift sees it:
 * real `mcp-agent server` processes (dist/agent/main.js: run `npm run build` first), real podman.
 *
 * The service runs two components from bb:v1. A second deploy moves both to v2; the second
 * component's image lives on a registry that accepts connections and never answers, so its
 * pull stalls and the agent is SIGKILLed, deterministically, once the progress stream reports
 * the first component `done`. The registry then records v2 for both while the second container
 * still runs v1. A fresh agent on the same database must report that as image drift in
 * live_check and service_status, and its monitor must alert on it; a redeploy clears it.
 */
import fs from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ClientReadableStream } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DeployResponse,
  DriftReason,
  type GetServiceStatusResponse,
  type LiveCheckResponse,
  ObservedState,
} from '../../gen/mcp/v1/mcp.js';
import { deploy, startTestAgent, type TestAgent, unary } from '../support/agent.js';
import { type AlertRecorder, alertRecorder } from '../support/alerts.js';
import { serviceSpec, sleeper } from '../support/specs.js';
import { removeContainers, requireTestbed, uniqueName } from '../support/testbed.js';

const bed = await requireTestbed();
const repo = new URL('../..', import.meta.url).pathname;
const built = fs.existsSync(path.join(repo, 'dist/agent/main.js'));
if (!built && process.env.CI) throw new Error('dist/agent/main.js is missing: run npm run build first');

/** A TCP listener that accepts connections and never answers: a pull from it stalls. */
async function silentRegistry(): Promise<{ host: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe.skipIf(!bed || !built)('a deploy killed between components, real agent processes and podman', () => {
  const service = uniqueName('mcpt-stale');
  let dataDir: string;
  let recorder: AlertRecorder;
  let agent: TestAgent | undefined;
  let stalled: Awaited<ReturnType<typeof silentRegistry>> | undefined;

  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-drift-crash-'));
    recorder = alertRecorder(dataDir);
  });

  afterAll(async () => {
    await agent?.stop();
    await stalled?.close();
    await removeContainers(service);
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('reports the second container still on the old image as drift, alerts on it, and a redeploy clears it', async () => {
    const v1 = bed!.imageV1;
    const v2 = bed!.imageV2;

    // 1. Both components on v1.
    const first = await startTestAgent({ process: true, dataDir });
    const md = await first.auth({ roles: ['operator'] });
    const initial = await deploy(
      first.client(),
      { spec: serviceSpec(service, [sleeper('api', v1), sleeper('worker', v1)]) },
      md,
    );
    expect(initial.result.components.map((c) => c.ok)).toEqual([true, true]);

    // 2. Move both to v2; SIGKILL the agent once `api` is done and `worker`'s pull is stalled.
    stalled = await silentRegistry();
    const stalledV2 = `${stalled.host}/bb:v2`;
    const call: ClientReadableStream<DeployResponse> = first.client().deploy(
      {
        spec: serviceSpec(service, [sleeper('api', v2), sleeper('worker', stalledV2)]),
        service: '',
        component: '',
        requestId: '',
      },
      md,
    );
    const child = first.child!;
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_c, s) => resolve(s)));
    const steps: string[] = [];
    await new Promise<void>((resolve, reject) => {
      call.on('data', (msg: DeployResponse) => {
        if (!msg.progress) return;
        steps.push(`${msg.progress.component}:${msg.progress.step}`);
        if (msg.progress.component === 'api' && msg.progress.step === 'done') {
          child.kill('SIGKILL');
          resolve();
        }
      });
      call.on('error', () => resolve()); // the stream breaks with the agent
      call.on('end', () => reject(new Error(`the deploy finished before the kill: ${steps.join(', ')}`)));
    });
    expect(await exited).toBe('SIGKILL');
    expect(steps).toContain('api:done');
    expect(steps.some((s) => s.startsWith('worker:'))).toBe(false);

    // 3. A fresh agent on the same database, with the monitor on.
    agent = await startTestAgent({
      process: true,
      dataDir,
      monitor: {
        enabled: true,
        interval_seconds: 1,
        cooldown_seconds: 600,
        alert_command: recorder.command,
        alert_timeout_seconds: 5,
      },
    });
    const client = agent.client();
    const viewer = await agent.auth({ roles: ['viewer'] });
    const staleDrift = {
      service,
      component: 'worker',
      reason: DriftReason.DRIFT_REASON_IMAGE,
      observedState: ObservedState.OBSERVED_STATE_RUNNING,
      desiredImage: stalledV2,
      runningImage: v1,
    };

    const live: LiveCheckResponse = await unary(client.liveCheck.bind(client), { service }, viewer);
    expect(live.drift).toEqual([expect.objectContaining(staleDrift)]);
    const worker = live.services[0]?.components.find((c) => c.name === 'worker');
    expect(worker).toMatchObject({ image: stalledV2, observedState: ObservedState.OBSERVED_STATE_RUNNING });

    const status: GetServiceStatusResponse = await unary(
      client.getServiceStatus.bind(client),
      { service, eventLimit: 0 },
      viewer,
    );
    expect(status.drift).toEqual([expect.objectContaining(staleDrift)]);

    await waitFor(() => recorder.alerts().some((a) => a.MCP_SERVICE === service), 15_000);
    expect(recorder.alerts()).toEqual([
      expect.objectContaining({
        MCP_ALERT_TYPE: 'drift',
        MCP_DRIFT_REASON: 'image',
        MCP_SERVICE: service,
        MCP_COMPONENT: 'worker',
        MCP_DESIRED_STATE: 'running',
        MCP_OBSERVED_STATE: 'running',
        MCP_DESIRED_IMAGE: stalledV2,
        MCP_RUNNING_IMAGE: v1,
      }),
    ]);

    // 4. A redeploy (worker from the reachable registry) clears it.
    await stalled.close();
    stalled = undefined;
    const redeploy = await deploy(
      client,
      { spec: serviceSpec(service, [sleeper('api', v2), sleeper('worker', v2)]) },
      await agent.auth({ roles: ['operator'] }),
    );
    expect(redeploy.result.components.map((c) => c.ok)).toEqual([true, true]);
    const after: LiveCheckResponse = await unary(client.liveCheck.bind(client), { service }, viewer);
    expect(after.drift).toEqual([]);
    const afterStatus: GetServiceStatusResponse = await unary(
      client.getServiceStatus.bind(client),
      { service, eventLimit: 0 },
      viewer,
    );
    expect(afterStatus.drift).toEqual([]);
    await sleep(2500); // two monitor ticks: no new alert once the drift is gone
    expect(recorder.alerts()).toHaveLength(1);
  }, 180_000);
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(100);
  }
}
