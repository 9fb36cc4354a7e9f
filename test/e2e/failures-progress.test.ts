/**
 * Failures are errors, progress runs to the end, and `init` makes stops quick: the built
 * connector over stdio with a real SDK client, the built `mcp` CLI, a real agent and podman.
 * Run `npm run build` first (`npm test` does).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Client, Progress } from '@modelcontextprotocol/client';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signTestToken, startTestAgent, type TestAgent } from '../support/agent.js';
import {
  type ConnectorFiles,
  REPO,
  resultText,
  spawnStdioConnector,
  UNCONFIRMED_WRITES,
  writeConnectorConfig,
} from '../support/connector.js';
import { SLEEPER } from '../support/specs.js';
import { removeContainers, requireTestbed, type Testbed, uniqueName } from '../support/testbed.js';

const MISSING_IMAGE = '127.0.0.1:5000/bb:nope';

let bed: Testbed | undefined;
let agent: TestAgent;
let files: ConnectorFiles;
let token: string;
let admin: { client: Client; close(): Promise<void> };
const prefix = uniqueName('fp');

beforeAll(async () => {
  bed = await requireTestbed();
  if (!bed) return;
  agent = await startTestAgent({ node: 'node1' });
  // These clients cannot answer a confirmation (test/e2e/confirmations.test.ts covers those).
  files = writeConnectorConfig(
    [{ name: 'node1', address: agent.address, caPem: agent.caPem }],
    UNCONFIRMED_WRITES,
  );
  token = await signTestToken({ subject: 'e2e-admin', roles: ['admin'] });
  admin = await spawnStdioConnector(['--config', files.configFile], { MCP_TOKEN: token });
}, 60_000);

afterAll(async () => {
  await admin?.close();
  await agent?.stop();
  if (bed) await removeContainers(prefix);
  files?.remove();
});

/** Calls a tool with a progressToken; returns the result and every notification received. */
async function withProgress(name: string, args: Record<string, unknown>) {
  const progress: Progress[] = [];
  const result = await admin.client.callTool(
    { name, arguments: args },
    { onprogress: (p) => progress.push(p), timeout: 120_000 },
  );
  return { result, progress };
}

type Components = { components: { component: string; ok: boolean; error: string; desiredState: string }[] };

describe('failures, progress and init', () => {
  it('answers a deploy of a missing image with isError, its component results and one line why', async (ctx) => {
    if (!bed) return ctx.skip();
    const service = `${prefix}-ghost`;
    const { result } = await withProgress('deploy', {
      node: 'node1',
      spec: { name: service, components: [{ name: 'app', image: MISSING_IMAGE }] },
    });
    const text = resultText(result);
    expect(result.isError, text).toBe(true);
    const { components } = result.structuredContent as Components;
    expect(components).toEqual([
      expect.objectContaining({
        component: 'app',
        error: `image ${MISSING_IMAGE} not found in the registry`,
        desiredState: 'DESIRED_STATE_STOPPED',
      }),
    ]);
    expect(text).toMatch(
      /^FAILED_PRECONDITION: deploy failed for 1 component: app: image .* not found in the registry/,
    );
    expect(text).not.toContain('Trying to pull');

    // Never ran, so recorded as not wanted running: no drift to alert on.
    const status = await admin.client.callTool({
      name: 'service_status',
      arguments: { service, node: 'node1' },
    });
    const [entry] = (status.structuredContent as { nodes: { result?: { drift?: unknown[] } }[] }).nodes;
    expect(entry?.result?.drift ?? []).toEqual([]);
  });

  it('makes the mcp CLI exit 1 on that failure', async (ctx) => {
    if (!bed) return ctx.skip();
    const spec = JSON.stringify({
      name: `${prefix}-cli`,
      components: [{ name: 'app', image: MISSING_IMAGE }],
    });
    const run = await promisify(execFile)(
      process.execPath,
      [
        join(REPO, 'dist/connector/cli.js'),
        'call',
        'deploy',
        'node=node1',
        `spec=${spec}`,
        '--config',
        files.configFile,
      ],
      { env: { PATH: process.env.PATH ?? '', HOME: files.dir, MCP_TOKEN: token } },
    ).then(
      () => ({ code: 0, stdout: '' }),
      (err: { code: number; stdout: string }) => err,
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('not found in the registry');
  });

  it('ends every progress sequence of a deploy with the final step, before the result', async (ctx) => {
    if (!bed) return ctx.skip();
    const image = bed.imageV1;
    const spec = {
      name: `${prefix}-web`,
      components: ['a', 'b'].map((name) => ({ name, image, cmd: SLEEPER, init: true })),
    };
    for (let round = 0; round < 3; round += 1) {
      const { result, progress } = await withProgress('deploy', { node: 'node1', spec });
      expect(result.isError, resultText(result)).toBeFalsy();
      const last = progress.at(-1);
      expect(last?.message, JSON.stringify(progress)).toMatch(/^b: done: deployed /);
      expect(last?.progress).toBe(2);
      expect(last?.total).toBe(2);
      const values = progress.map((p) => p.progress);
      expect(values).toEqual([...values].sort((x, y) => x - y));
    }
  });

  it('stops an init = true busybox sleep on SIGTERM, not by the kill after the timeout', async (ctx) => {
    if (!bed) return ctx.skip();
    const service = `${prefix}-sleepy`;
    // `sleep` as PID 1 ignores SIGTERM; under an init process it dies of it.
    const deployed = await withProgress('deploy', {
      node: 'node1',
      spec: {
        name: service,
        components: [{ name: 'app', image: bed.imageV1, cmd: ['sleep', '3600'], init: true }],
      },
    });
    expect(deployed.result.isError, resultText(deployed.result)).toBeFalsy();
    const { result, progress } = await withProgress('stop_service', { service, node: 'node1' });
    expect(result.isError, resultText(result)).toBeFalsy();
    const inspected = await execa(bed.podman, [
      'inspect',
      '--format',
      '{{.State.Status}} {{.State.ExitCode}} {{.HostConfig.Init}}',
      `${service}-app`,
    ]);
    // 143 = 128 + SIGTERM; a kill after the timeout would be 137 (SIGKILL).
    expect(inspected.stdout.trim()).toBe('exited 143 true');
    expect(progress.at(-1)).toMatchObject({
      progress: 1,
      total: 1,
      message: expect.stringMatching(/^stop_service: done/),
    });
  });

  it('reports the stop wait of a component without init as progress, then the final step', async (ctx) => {
    if (!bed) return ctx.skip();
    const service = `${prefix}-stubborn`;
    const deployed = await withProgress('deploy', {
      node: 'node1',
      spec: {
        name: service,
        components: [{ name: 'app', image: bed.imageV1, cmd: ['sleep', '3600'], stopTimeoutSeconds: 9 }],
      },
    });
    expect(deployed.result.isError, resultText(deployed.result)).toBeFalsy();
    const { result, progress } = await withProgress('stop_service', { service, node: 'node1' });
    expect(result.isError, resultText(result)).toBeFalsy();
    const inspected = await execa(bed.podman, [
      'inspect',
      '--format',
      '{{.State.ExitCode}}',
      `${service}-app`,
    ]);
    expect(inspected.stdout.trim()).toBe('137');
    // Nine seconds of waiting: heartbeats every four, each a little further, then the end.
    const heartbeats = progress.filter((p) => p.message?.includes('waiting for the containers to stop'));
    expect(heartbeats.length, JSON.stringify(progress)).toBeGreaterThanOrEqual(2);
    expect(progress.at(-1)).toMatchObject({ progress: 1, total: 1 });
    const values = progress.map((p) => p.progress);
    expect(new Set(values).size).toBe(values.length);
    expect(values).toEqual([...values].sort((x, y) => x - y));
  });
});
