/**
 * Health-gated deploys with real podman: a new version that fails its health check is
 * replaced by the old container again, the call fails naming the rollback, and
 * rollback_service brings back the definition deployed before the newest.
 *
 * One service of one busybox httpd component, run with `init` so stops are immediate. The
 * good versions serve `/ok` (what the health check fetches); the bad one serves only the
 * image's /www, so its check gets a 404. podman here runs without systemd: the agent triggers
 * the checks itself (agent/health.ts).
 */
import type { Metadata } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuditOutcome,
  type ComponentSpec,
  type McpAgentServiceClient,
  ObservedState,
  type ServiceSpec,
} from '../../gen/mcp/v1/mcp.js';
import { deploy, grpcError, startTestAgent, type TestAgent, unary } from '../support/agent.js';
import { component, serviceSpec } from '../support/specs.js';
import { freePort, removeContainers, requireTestbed, uniqueName } from '../support/testbed.js';

const bed = await requireTestbed();

/** httpd serving `/ok` and an index page that says `version`. */
function serving(version: string): string[] {
  return [
    '/bin/sh',
    '-c',
    `mkdir -p /tmp/w && echo ok > /tmp/w/ok && echo ${version} > /tmp/w/index.html && exec /bin/httpd -f -p 8080 -h /tmp/w`,
  ];
}

async function page(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/`);
  return (await response.text()).trim();
}

async function containerNames(prefix: string): Promise<string[]> {
  const { stdout } = await execa('podman', ['ps', '--all', '--format', '{{.Names}}']);
  return stdout.split('\n').filter((name) => name.startsWith(prefix));
}

describe.skipIf(!bed)('health-gated deploy and rollback (real podman)', () => {
  const service = uniqueName('mcpt-hlth');
  const container = `${service}-web`;
  let agent: TestAgent;
  let client: McpAgentServiceClient;
  let md: Metadata;
  let port: number;

  const web = (image: string, cmd: string[]): ComponentSpec =>
    component('web', {
      image,
      cmd,
      init: true,
      ports: [`127.0.0.1:${port}:8080`],
      healthCheck: {
        command: ['/bin/wget', '-q', '-O-', 'http://127.0.0.1:8080/ok'],
        intervalSeconds: 1,
        timeoutSeconds: 2,
        retries: 2,
        startPeriodSeconds: 0,
      },
    });
  const spec = (image: string, cmd: string[]): ServiceSpec => serviceSpec(service, [web(image, cmd)]);

  beforeAll(async () => {
    agent = await startTestAgent();
    client = agent.client();
    md = await agent.auth({ subject: 'deployer', roles: ['operator'] });
    port = await freePort();
  });

  afterAll(async () => {
    await agent?.stop();
    await removeContainers(service);
  });

  it('deploys a healthy version and shows its health', async () => {
    const { result, progress } = await deploy(client, { spec: spec(bed!.imageV1, serving('one')) }, md);
    expect(result.components[0]).toMatchObject({
      ok: true,
      observedState: ObservedState.OBSERVED_STATE_RUNNING,
    });
    expect(progress.map((p) => p.step)).toContain('health');
    expect(await page(port)).toBe('one');

    const live = await unary(client.liveCheck.bind(client), { service }, md);
    expect(live.services[0]?.components[0]?.health).toBe('healthy');
  });

  it('rolls back to the old container when the new one fails its health check, and fails the call', async () => {
    const bad = spec(bed!.imageV2, ['/bin/httpd', '-f', '-p', '8080', '-h', '/www']);
    const err = await grpcError(deploy(client, { spec: bad }, md));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain(`deploy of service '${service}' failed and was rolled back: web:`);
    expect(err.details).toContain('unhealthy');
    expect(err.details).toContain(`rolled back to ${bed!.imageV1}`);

    // The old container serves again, under its own name, and nothing is left aside.
    expect(await page(port)).toBe('one');
    expect(await containerNames(service)).toEqual([container]);
    const status_ = await unary(client.getServiceStatus.bind(client), { service, eventLimit: 5 }, md);
    expect(status_.events[0]).toMatchObject({ kind: 'deploy_failed' });
    expect(status_.events[0]?.message).toContain(`rolled back to ${bed!.imageV1}`);

    const auditor = await agent.auth({ subject: 'auditor', roles: ['auditor'] });
    const audit = await unary(
      client.queryAudit.bind(client),
      {
        subject: '',
        rpc: 'Deploy',
        service,
        decision: 0,
        outcome: 0,
        pageSize: 1,
        pageToken: '',
        since: undefined,
        until: undefined,
      },
      auditor,
    );
    expect(audit.records[0]).toMatchObject({
      outcome: AuditOutcome.AUDIT_OUTCOME_ERROR,
      errorCode: 'FAILED_PRECONDITION',
    });
  });

  it('resolves a container an interrupted deploy left aside before deploying again', async () => {
    // What an agent killed mid-gate leaves: the old container stopped and renamed, no new one.
    await execa('podman', ['stop', '--time', '1', container]);
    await execa('podman', ['rename', container, `${container}_previous`]);

    const { result, progress } = await deploy(client, { service }, md);
    expect(result.components[0]?.ok).toBe(true);
    expect(progress.find((p) => p.step === 'resolve')?.message).toContain(`restored ${container}`);
    expect(await containerNames(service)).toEqual([container]);
    expect(await page(port)).toBe('one');
  });

  it('rollback_service redeploys the definition before the newest, and no further than the history goes', async () => {
    const { result } = await deploy(client, { spec: spec(bed!.imageV2, serving('two')) }, md);
    expect(result.components[0]?.ok).toBe(true);
    expect(await page(port)).toBe('two');

    const rolled = await unary(client.rollbackService.bind(client), { service, requestId: '' }, md);
    expect(rolled.components[0]).toMatchObject({ ok: true, version: 'v1' });
    expect(await page(port)).toBe('one');

    // The history held two definitions (the failed deploy recorded none): nothing older is left.
    const again = await grpcError(unary(client.rollbackService.bind(client), { service, requestId: '' }, md));
    expect(again.code).toBe(status.FAILED_PRECONDITION);
    expect(again.details).toContain('no earlier definition');
  });
});
