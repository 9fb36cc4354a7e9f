/**
 * One declared intent, through a real MCP client, the connector, a real agent
 * and podman: deploy with a `spec` writes the definition file (keeping its comments), a later
 * deploy by name keeps that spec, and a deploy by name whose file differs from the node's
 * record says the file won and what differed.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import {
  type ConnectorFiles,
  connectInProcess,
  type InProcessConnector,
  resultText,
  writeConnectorConfig,
  writeDefinition,
} from '../support/connector.js';
import { SLEEPER } from '../support/specs.js';
import { removeContainers, requireTestbed, uniqueName } from '../support/testbed.js';

const bed = await requireTestbed();
const PREFIX = uniqueName('intent');

interface Structured {
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
  content: unknown;
}

describe.skipIf(!bed)('deploy and the definition file', () => {
  let node1: TestAgent;
  let files: ConnectorFiles;
  let connector: InProcessConnector;

  const deploy = async (args: Record<string, unknown>): Promise<string> => {
    const result = (await connector.client.callTool(
      { name: 'deploy', arguments: args },
      { timeout: 120_000 },
    )) as Structured;
    const text = resultText(result);
    expect(result.isError, text).toBeFalsy();
    return text;
  };
  const runningImage = async (service: string): Promise<string | undefined> => {
    const result = (await connector.client.callTool({
      name: 'service_status',
      arguments: { service, node: 'node1' },
    })) as Structured;
    const { nodes } = result.structuredContent as {
      nodes: { result?: { service?: { components: { image: string }[] } } }[];
    };
    return nodes[0]?.result?.service?.components[0]?.image;
  };
  const definitionText = (service: string, image: string, comment = '') =>
    `# ${service}: the demo web server\nname = "${service}"\nnode = "node1"\n\n[[components]]\nname = "web"\nimage = "${image}" # ${comment}\ncmd = ${JSON.stringify(SLEEPER)}\n`;

  beforeAll(async () => {
    node1 = await startTestAgent({ node: 'node1' });
    files = writeConnectorConfig([{ name: node1.node, address: node1.address, caPem: node1.caPem }]);
    connector = await connectInProcess(files.configFile, { token: await node1.token() });
  }, 120_000);

  afterAll(async () => {
    await connector?.close();
    await node1?.stop();
    files?.remove();
    await removeContainers(PREFIX);
  }, 60_000);

  it('writes a deployed spec to a new definition file, on the node it went to', async () => {
    const service = `${PREFIX}-new`;
    const text = await deploy({
      node: 'node1',
      spec: { name: service, components: [{ name: 'web', image: bed?.imageV1, cmd: SLEEPER }] },
    });
    const file = `${files.servicesDir}/${service}.toml`;
    expect(text).toContain(`definition written: ${file}`);
    const written = readFileSync(file, 'utf8');
    expect(written).toContain('node = "node1"');
    expect(written).toContain(`image = "${bed?.imageV1}"`);
  });

  it('updates the file with an inline v2 keeping its comments, and a deploy by name keeps v2', async () => {
    const service = `${PREFIX}-demo`;
    const file = writeDefinition(
      files.servicesDir,
      service,
      definitionText(service, bed?.imageV1 ?? '', 'pinned'),
    );
    await deploy({ service });
    expect(await runningImage(service)).toBe(bed?.imageV1);

    const upgraded = await deploy({
      spec: { name: service, components: [{ name: 'web', image: bed?.imageV2, cmd: SLEEPER }] },
    });
    expect(upgraded).toContain(`definition written: ${file}`);
    const written = readFileSync(file, 'utf8');
    expect(written).toBe(definitionText(service, bed?.imageV2 ?? '', 'pinned'));

    const redeployed = await deploy({ service });
    expect(redeployed).toContain(`spec from ${file}`);
    expect(redeployed).not.toContain('differs');
    expect(await runningImage(service)).toBe(bed?.imageV2);
  });

  it('says the file won, and how it differed, when it was edited back to v1 while v2 runs', async () => {
    const service = `${PREFIX}-edit`;
    await deploy({
      node: 'node1',
      spec: { name: service, components: [{ name: 'web', image: bed?.imageV2, cmd: SLEEPER }] },
    });
    writeDefinition(files.servicesDir, service, definitionText(service, bed?.imageV1 ?? ''));
    const text = await deploy({ service });
    expect(text).toContain(
      `the definition file differs from what node1 recorded; the file wins: web: image ${bed?.imageV2} → ${bed?.imageV1}`,
    );
    expect(await runningImage(service)).toBe(bed?.imageV1);
  });

  it('leaves the file alone when the deploy failed', async () => {
    const service = `${PREFIX}-bad`;
    const file = writeDefinition(
      files.servicesDir,
      service,
      definitionText(service, bed?.imageV1 ?? '', 'ok'),
    );
    const result = (await connector.client.callTool(
      {
        name: 'deploy',
        arguments: {
          spec: { name: service, components: [{ name: 'web', image: `${bed?.registry}/bb:nope` }] },
        },
      },
      { timeout: 120_000 },
    )) as Structured;
    expect(result.isError).toBe(true);
    expect(resultText(result)).toContain('definition not written: the deploy failed');
    expect(readFileSync(file, 'utf8')).toBe(definitionText(service, bed?.imageV1 ?? '', 'ok'));
  });
});
