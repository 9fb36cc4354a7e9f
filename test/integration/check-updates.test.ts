/**
 * check_updates against the test bed's registry (plain HTTP on loopback): a tag pushed again
 * with another image is reported as an update for the component deployed from it.
 */
import type { Metadata } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { McpAgentServiceClient } from '../../gen/mcp/v1/mcp.js';
import { deploy, startTestAgent, type TestAgent, unary } from '../support/agent.js';
import { serviceSpec, sleeper } from '../support/specs.js';
import { removeContainers, requireTestbed, uniqueName } from '../support/testbed.js';

const bed = await requireTestbed();

async function push(source: string, target: string): Promise<void> {
  await execa('podman', ['push', '--quiet', '--tls-verify=false', source, target]);
}

describe.skipIf(!bed)('check_updates (real podman, local registry)', () => {
  const service = uniqueName('mcpt-upd');
  const image = `${bed?.registry}/${service}:t`;
  let agent: TestAgent;
  let client: McpAgentServiceClient;
  let viewer: Metadata;

  beforeAll(async () => {
    agent = await startTestAgent();
    client = agent.client();
    viewer = await agent.auth({ subject: 'viewer', roles: ['viewer'] });
    await push('localhost/bb:v1', image);
    const operator = await agent.auth({ subject: 'deployer', roles: ['operator'] });
    const { result } = await deploy(
      client,
      { spec: serviceSpec(service, [sleeper('app', image, { init: true })]) },
      operator,
    );
    expect(result.components[0]?.ok).toBe(true);
  });

  afterAll(async () => {
    await agent?.stop();
    await removeContainers(service);
    await execa('podman', ['rmi', '--force', image], { reject: false });
  });

  const check = async () => (await unary(client.checkUpdates.bind(client), { service }, viewer)).updates;

  it('says current while the tag holds the image that runs, and update_available once it moves', async () => {
    const [before] = await check();
    expect(before).toMatchObject({ service, component: 'app', image, status: 'current', reason: '' });
    expect(before?.registryDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(before?.runningDigest).toBe(before?.registryDigest);

    await push('localhost/bb:v2', image);
    const [after] = await check();
    expect(after).toMatchObject({ service, component: 'app', status: 'update_available' });
    expect(after?.registryDigest).not.toBe(before?.registryDigest);
    // podman keeps several digests per repository for one image (one per manifest form): any
    // of them may be shown, none is the new one.
    expect(after?.runningDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(after?.runningDigest).not.toBe(after?.registryDigest);
  });
});
