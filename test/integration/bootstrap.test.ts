/**
 * The bootstrap procedure of docs/bootstrap.md on a real node: containers started by hand with
 * podman, then the agent; live_check and sync show them as unmanaged (`ignore`), adopt takes
 * them under management without restarting them, the agent's record is exported as definition
 * files (connector/definitions.ts's writer), and those files match what runs: a sync with
 * them changes nothing, and their fields are podman's. All through the real connector.
 */
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  definitionPath,
  definitionToSpec,
  loadDefinitions,
  type ServiceDefinition,
  specToDefinition,
  writeDefinition,
} from '../../connector/definitions.js';
import { containerName } from '../../core/naming.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import {
  type ConnectorFiles,
  connectInProcess,
  type InProcessConnector,
  writeConnectorConfig,
} from '../support/connector.js';
import { SLEEPER } from '../support/specs.js';
import { freePort, removeContainers, requireTestbed } from '../support/testbed.js';

const bed = await requireTestbed();

/** Service names without '-' of their own, so `web<id>-db` splits as the design says. */
const id = `${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const WEB = `web${id}`;
const SHOP = `shop${id}`;
/** A definition the operator already has (sync needs at least one); never deployed here. */
const FIRST = `first${id}`;

interface Inspected {
  Id: string;
  ImageName: string;
  State: { Status: string; StartedAt: string };
  Config: { Env: string[]; Cmd: string[] };
  HostConfig: { PortBindings?: Record<string, Array<{ HostIp: string; HostPort: string }>> };
}

async function inspect(name: string): Promise<Inspected> {
  const { stdout } = await execa('podman', ['container', 'inspect', name]);
  const [first] = JSON.parse(stdout) as Inspected[];
  if (!first) throw new Error(`no container ${name}`);
  return first;
}

interface NodeEntry<T> {
  node: string;
  result?: T;
  error?: { code: string; message: string };
}

/** A fan-out read answers per node (`nodes`); a write answers for its one node directly. */
function onlyAnswer<T>(result: unknown): T {
  const structured = (result as { structuredContent?: { nodes?: NodeEntry<T>[] } }).structuredContent;
  if (!structured?.nodes) return structured as T;
  const [entry] = structured.nodes;
  if (!entry?.result) throw new Error(`no result: ${JSON.stringify(result)}`);
  return entry.result;
}

describe.skipIf(!bed)('bootstrap a node whose containers were started by hand', () => {
  let agent: TestAgent;
  let files: ConnectorFiles;
  let connector: InProcessConnector;
  let shopPort: number;
  const before = new Map<string, Inspected>();

  const call = async <T>(name: string, args: Record<string, unknown>): Promise<T> => {
    const result = await connector.client.callTool({ name, arguments: args });
    expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
    return onlyAnswer<T>(result);
  };

  beforeAll(async () => {
    shopPort = await freePort();
    // What an operator did before mcp: containers started by hand, from a registry (a deploy pulls).
    const image = bed?.imageV1 ?? '';
    await execa('podman', ['run', '--detach', `--name=${WEB}`, image, ...SLEEPER]);
    await execa('podman', ['run', '--detach', `--name=${WEB}-db`, '--env=DB_NAME=app', image, ...SLEEPER]);
    await execa('podman', [
      'run',
      '--detach',
      `--name=${SHOP}-api`,
      `--publish=127.0.0.1:${shopPort}:8080`,
      '--restart=always',
      image,
      ...SLEEPER,
    ]);
    for (const name of [WEB, `${WEB}-db`, `${SHOP}-api`]) before.set(name, await inspect(name));

    agent = await startTestAgent({ node: 'node1' });
    files = writeConnectorConfig([{ name: agent.node, address: agent.address, caPem: agent.caPem }]);
    connector = await connectInProcess(files.configFile, { token: await agent.token() });
  }, 120_000);

  afterAll(async () => {
    await connector?.close();
    await agent?.stop();
    files?.remove();
    await removeContainers(WEB);
    await removeContainers(SHOP);
  }, 60_000);

  it('sees the hand-started containers as unmanaged, and sync records them as ignore', async () => {
    const live = await call<{ unmanaged: Array<{ name: string }> }>('live_check', {});
    expect(live.unmanaged.map((u) => u.name)).toEqual(
      expect.arrayContaining([WEB, `${WEB}-db`, `${SHOP}-api`]),
    );

    await writeDefinition(definitionPath(files.servicesDir, FIRST), {
      name: FIRST,
      node: agent.node,
      active: false,
      components: [
        {
          init: false,
          envFiles: [],
          name: 'app',
          image: 'localhost/bb:v1',
          network: '',
          user: '',
          restart: '',
          ports: [],
          volumes: [],
          cmd: [],
          env: {},
          healthCheck: undefined,
        },
      ],
    });
    const services = (await loadDefinitions(files.servicesDir)).map(definitionToSpec);
    const sync = await call<{ ignored: string[] }>('sync_desired_state', { services });
    expect(sync.ignored).toEqual(expect.arrayContaining([`${WEB}/${WEB}`, `${WEB}/db`, `${SHOP}/api`]));

    const listed = await call<{
      services: Array<{ name: string; components: Array<{ desiredState: string }> }>;
    }>('list_services', {});
    for (const name of [WEB, SHOP]) {
      const service = listed.services.find((s) => s.name === name);
      expect(service?.components.map((c) => c.desiredState)).toEqual(
        service?.components.map(() => 'DESIRED_STATE_IGNORE'),
      );
    }
  });

  it('adopts them under management without restarting them', async () => {
    const web = await call<{ components: Array<{ name: string; container: string; desiredState: string }> }>(
      'adopt_containers',
      { service: WEB, node: agent.node },
    );
    expect(web.components.map((c) => [c.name, c.container]).sort()).toEqual(
      [
        ['db', `${WEB}-db`],
        [WEB, WEB],
      ].sort(),
    );
    expect(web.components.every((c) => c.desiredState === 'DESIRED_STATE_RUNNING')).toBe(true);
    const shop = await call<{ components: Array<{ name: string; container: string }> }>('adopt_containers', {
      service: SHOP,
      node: agent.node,
    });
    expect(shop.components.map((c) => [c.name, c.container])).toEqual([['api', `${SHOP}-api`]]);
    for (const [name, was] of before) {
      const now = await inspect(name);
      expect([now.Id, now.State.StartedAt, now.State.Status]).toEqual([
        was.Id,
        was.State.StartedAt,
        'running',
      ]);
    }
  });

  it('exports definitions that match what runs; recorded anew, the bare one would be <service>-<component>', async () => {
    const registry = agent.registry;
    if (!registry) throw new Error('the bootstrap test needs the in-process agent');
    // Export: what the agent recorded at adoption, written by the connector's definition writer.
    for (const name of [WEB, SHOP]) {
      const record = registry.services.require(name);
      await writeDefinition(definitionPath(files.servicesDir, name), specToDefinition(record, agent.node));
    }
    const loaded = new Map<string, ServiceDefinition>(
      (await loadDefinitions(files.servicesDir)).map((d) => [d.name, d]),
    );

    const web = loaded.get(WEB);
    expect(web).toMatchObject({ name: WEB, node: agent.node, active: true });
    expect(web?.components.map((c) => c.name).sort()).toEqual(['db', WEB].sort());
    const db = web?.components.find((c) => c.name === 'db');
    expect(db?.image).toBe(before.get(`${WEB}-db`)?.ImageName);
    expect(db?.cmd).toEqual(before.get(`${WEB}-db`)?.Config.Cmd);
    expect(db?.env).toMatchObject({ DB_NAME: 'app' });
    const api = loaded.get(SHOP)?.components[0];
    expect(api).toMatchObject({
      name: 'api',
      image: before.get(`${SHOP}-api`)?.ImageName,
      ports: [`127.0.0.1:${shopPort}:8080`],
      restart: 'always',
      cmd: SLEEPER,
    });

    // The naming rule for a service recorded anew (this definition deployed to another node):
    // with two components, component `web` of service `web` runs as `web-web`.
    const names = (d: ServiceDefinition | undefined) =>
      d?.components.map((c) => containerName(d.name, c.name, d.components.length)).sort();
    expect(names(web)).toEqual([`${WEB}-db`, `${WEB}-${WEB}`].sort());
    expect(names(loaded.get(SHOP))).toEqual([`${SHOP}-api`]);

    // The agent agrees that the files declare what it manages: syncing them changes nothing.
    const services = [...loaded.values()].map(definitionToSpec);
    const sync = await call<{ services: Array<{ service: string; change: string; details: string[] }> }>(
      'sync_desired_state',
      { services },
    );
    for (const name of [WEB, SHOP]) {
      expect(sync.services.find((s) => s.service === name)).toMatchObject({ change: 'unchanged' });
    }
  });

  it('keeps the adopted bare container name on this node when the definition is deployed', async () => {
    const result = await call<{ components: Array<{ component: string; container: string; ok: boolean }> }>(
      'deploy',
      { service: WEB },
    );
    expect(result.components.map((c) => [c.component, c.container, c.ok]).sort()).toEqual(
      [
        ['db', `${WEB}-db`, true],
        [WEB, WEB, true],
      ].sort(),
    );
    const { stdout } = await execa('podman', ['ps', '--all', '--format', '{{.Names}}']);
    const running = stdout.split('\n').filter((n) => n.startsWith(WEB));
    expect(running.sort()).toEqual([WEB, `${WEB}-db`].sort());
  }, 120_000);
});
