/**
 * Removing services, reading their logs and syncing from the definition files, through a real MCP client, the connector, two real agents and podman:
 * remove_service (a service a failed deploy recorded; with purgeFiles and deleteDefinition),
 * service_logs bounded by lines and by bytes on a chatty container, and sync_desired_state
 * without arguments from three definition files on two nodes.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
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
const PREFIX = uniqueName('rls');
const name = (what: string) => `${PREFIX}-${what}`;
/** One word (no '-'), so its container splits as service and component of the same name. */
const STRAY = `i12stray${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
/** Prints numbered lines as fast as it can, forever. */
const CHATTY = ['/bin/sh', '-c', 'trap "exit 0" TERM; i=0; while true; do echo line $i; i=$((i+1)); done'];

/**
 * The lines of CHATTY's log, checked: consecutive numbers, each line whole, but for the last,
 * which may be one the container is still writing (a prefix of the next line, no newline).
 */
function chattyLines(text: string): string[] {
  const lines = text.split('\n');
  const last = lines.pop() ?? '';
  const first = Number(/^line (\d+)$/.exec(lines[0] ?? '')?.[1]);
  expect(lines.length === 0 || Number.isInteger(first), text.slice(0, 80)).toBe(true);
  expect(lines).toEqual(lines.map((_, i) => `line ${first + i}`));
  if (last === '') return lines;
  if (lines.length > 0) expect(`line ${first + lines.length}`.startsWith(last), last).toBe(true);
  else expect(last).toMatch(/^l(?:i(?:n(?:e(?: \d*)?)?)?)?$/);
  return [...lines, last];
}

interface Structured {
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
  content: unknown;
}

async function containerNames(): Promise<string[]> {
  const { stdout } = await execa('podman', ['ps', '--all', '--format', '{{.Names}}']);
  return stdout.split('\n').filter((n) => n.startsWith(PREFIX));
}

describe.skipIf(!bed)('remove_service, service_logs and sync from the files', () => {
  let node1: TestAgent;
  let node2: TestAgent;
  let files: ConnectorFiles;
  let connector: InProcessConnector;

  const callTool = async (tool: string, args: Record<string, unknown>): Promise<Structured> =>
    (await connector.client.callTool({ name: tool, arguments: args })) as Structured;
  const call = async <T>(tool: string, args: Record<string, unknown>): Promise<T> => {
    const result = await callTool(tool, args);
    expect(result.isError, resultText(result)).toBeFalsy();
    return result.structuredContent as T;
  };
  const deploy = (node: string, service: string, components: Record<string, unknown>[]) =>
    callTool('deploy', { node, spec: { name: service, components } });

  beforeAll(async () => {
    [node1, node2] = await Promise.all([
      startTestAgent({ node: 'node1' }),
      startTestAgent({ node: 'node2' }),
    ]);
    files = writeConnectorConfig([
      { name: node1.node, address: node1.address, caPem: node1.caPem },
      { name: node2.node, address: node2.address, caPem: node2.caPem },
    ]);
    connector = await connectInProcess(files.configFile, { token: await node1.token() });
  }, 120_000);

  afterAll(async () => {
    await connector?.close();
    await Promise.all([node1?.stop(), node2?.stop()]);
    files?.remove();
    await removeContainers(PREFIX);
    await removeContainers(STRAY);
  }, 60_000);

  it('removes a service that a failed deploy recorded; its events stay; a retry replays', async () => {
    const ghost = name('ghost');
    await deploy('node1', ghost, [{ name: 'app', image: `${bed?.registry}/bb:nope` }]);
    const listed = await call<{ nodes: Array<{ result?: { services: Array<{ name: string }> } }> }>(
      'list_services',
      { node: 'node1' },
    );
    expect(listed.nodes[0]?.result?.services.map((s) => s.name)).toContain(ghost);

    const requestId = `remove-${ghost}`;
    const removed = await call<{ node: string; service: string; components: Array<{ outcome: string }> }>(
      'remove_service',
      { service: ghost, node: 'node1', requestId },
    );
    expect(removed).toMatchObject({ node: 'node1', service: ghost, components: [{ outcome: 'absent' }] });

    const status = await callTool('service_status', { service: ghost, node: 'node1' });
    expect(status.isError).toBe(true);
    expect(resultText(status)).toContain('NOT_FOUND');
    // The history of a removed service is still history.
    const kinds = node1.registry?.events.query({ service: ghost }).map((e) => e.kind) ?? [];
    expect(kinds).toEqual(expect.arrayContaining(['removed', 'deploy_failed']));

    const replay = await call<{ replayed: boolean }>('remove_service', {
      service: ghost,
      node: 'node1',
      requestId,
    });
    expect(replay.replayed).toBe(true);
    const again = await callTool('remove_service', { service: ghost, node: 'node1' });
    expect(again.isError).toBe(true);
    expect(resultText(again)).toMatch(
      /NOT_FOUND: service '.*' is not known on node node1: nothing to remove/,
    );
  }, 120_000);

  it('removes containers, the files directory (not what its links point to) and the definition file', async () => {
    const keep = name('keep');
    const deployed = await deploy('node1', keep, [{ name: 'web', image: bed?.imageV1, cmd: SLEEPER }]);
    expect(deployed.isError, resultText(deployed)).toBeFalsy();
    expect(await containerNames()).toContain(`${keep}-web`);

    const directory = join(node1.filesRoot, keep);
    mkdirSync(join(directory, 'conf'), { recursive: true });
    writeFileSync(join(directory, 'conf', 'app.toml'), 'x = 1\n');
    const outside = mkdtempSync(join(tmpdir(), 'i12-outside-'));
    writeFileSync(join(outside, 'precious'), 'keep me\n');
    symlinkSync(outside, join(directory, 'link-out'));
    const definition = writeDefinition(
      files.servicesDir,
      keep,
      `name = "${keep}"\nnode = "node1"\n\n[[components]]\nname = "web"\nimage = "${bed?.imageV1}"\n`,
    );

    try {
      const removed = await callTool('remove_service', {
        service: keep,
        purgeFiles: true,
        deleteDefinition: true,
      });
      expect(removed.isError, resultText(removed)).toBeFalsy();
      expect(removed.structuredContent).toMatchObject({
        node: 'node1',
        components: [{ component: 'web', container: `${keep}-web`, outcome: 'removed' }],
        filesRemoved: `${directory}/`,
      });
      expect(resultText(removed)).toContain(`deleted ${definition}`);
      expect(await containerNames()).not.toContain(`${keep}-web`);
      expect(existsSync(directory)).toBe(false);
      expect(existsSync(definition)).toBe(false);
      expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me\n');
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  }, 120_000);

  describe('logs of a chatty container', () => {
    const chat = name('chat');
    type Logs = {
      truncated: boolean;
      components: Array<{
        component: string;
        text: string;
        truncated: boolean;
        bytesDropped: string | number;
      }>;
    };

    beforeAll(async () => {
      const deployed = await deploy('node2', chat, [{ name: 'talk', image: bed?.imageV1, cmd: CHATTY }]);
      expect(deployed.isError, resultText(deployed)).toBeFalsy();
      // Far more than any cap below, within a second.
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }, 120_000);

    it('returns the last `tail` lines', async () => {
      const logs = await call<Logs>('service_logs', { service: chat, node: 'node2', tail: 5 });
      const [talk] = logs.components;
      expect(chattyLines(talk?.text ?? '')).toHaveLength(5);
      expect(logs.truncated).toBeFalsy();
    }, 60_000);

    it('cuts at the byte cap and says how much it dropped', async () => {
      const logs = await call<Logs>('service_logs', {
        service: chat,
        node: 'node2',
        tail: 1000,
        maxBytes: 1024,
      });
      const [talk] = logs.components;
      expect(logs.truncated).toBe(true);
      expect(talk?.truncated).toBe(true);
      expect(Buffer.byteLength(talk?.text ?? '')).toBeLessThanOrEqual(1024);
      expect(Buffer.byteLength(talk?.text ?? '')).toBeGreaterThan(512);
      expect(Number(talk?.bytesDropped)).toBeGreaterThan(0);
      // The newest lines, from a line's start: consecutive and whole.
      chattyLines(talk?.text ?? '');
      const text = resultText(
        await callTool('service_logs', { service: chat, node: 'node2', tail: 1000, maxBytes: 1024 }),
      );
      expect(text).toMatch(/\[truncated: \d+ bytes of older lines left out/);
    }, 60_000);

    it('keeps the default cap of 16 KiB and refuses more than 1000 lines', async () => {
      const logs = await call<Logs>('service_logs', { service: chat, node: 'node2', tail: 1000 });
      expect(Buffer.byteLength(logs.components[0]?.text ?? '')).toBeLessThanOrEqual(16 * 1024);
      const tooMany = await callTool('service_logs', { service: chat, node: 'node2', tail: 1001 });
      expect(tooMany.isError).toBe(true);
      expect(resultText(tooMany)).toContain('INVALID_ARGUMENT: tail 1001 is over the limit of 1000 lines');
    }, 60_000);

    it('reads nothing from before `since`', async () => {
      const since = new Date(Date.now() + 3600_000).toISOString();
      const logs = await call<Logs>('service_logs', { service: chat, node: 'node2', since });
      expect(logs.components[0]?.text ?? '').toBe('');
    }, 60_000);
  });

  it('syncs every definition file on its node when `services` is left out', async () => {
    const [a, b, c] = [name('sa'), name('sb'), name('sc')];
    // Earlier tests' deploys with a spec wrote definition files: start from none.
    rmSync(files.servicesDir, { recursive: true, force: true });
    mkdirSync(files.servicesDir);
    await execa('podman', ['run', '--detach', `--name=${STRAY}`, bed?.imageV1 ?? '', ...SLEEPER]);
    const toml = (service: string, node: string) =>
      `name = "${service}"\nnode = "${node}"\nactive = false\n\n[[components]]\nname = "app"\nimage = "${bed?.imageV1}"\n`;
    writeDefinition(files.servicesDir, a, toml(a, 'node1'));
    writeDefinition(files.servicesDir, b, toml(b, 'node1'));
    writeDefinition(files.servicesDir, c, toml(c, 'node2'));

    type Sync = {
      services: Array<{ service: string; change: string }>;
      byNode: Array<{ node: string; services: string[]; ignored?: string[]; error?: string }>;
    };
    const sync = await call<Sync>('sync_desired_state', {});
    const changes = Object.fromEntries(sync.services.map((s) => [s.service, s.change]));
    expect(changes).toMatchObject({ [a]: 'created', [b]: 'created', [c]: 'created' });
    expect(sync.byNode.map((n) => [n.node, [...n.services].sort(), n.error ?? ''])).toEqual([
      ['node1', [a, b].sort(), ''],
      ['node2', [c], ''],
    ]);
    expect(node1.registry?.services.get(a)).toBeDefined();
    expect(node1.registry?.services.get(c)).toBeUndefined();
    expect(node2.registry?.services.get(c)).toBeDefined();

    // A container another tool started is a stray: listed apart, per node, and removable.
    const node1Strays = sync.byNode.find((n) => n.node === 'node1')?.ignored ?? [];
    expect(node1Strays).toContain(`${STRAY}/${STRAY}`);
    expect(sync.services.map((s) => s.service)).not.toContain(STRAY);
    const forgotten = await call<{ components: Array<{ outcome: string }> }>('remove_service', {
      service: STRAY,
      node: 'node1',
    });
    expect(forgotten.components).toEqual([expect.objectContaining({ outcome: 'left' })]);
    expect(node1.registry?.services.get(STRAY)).toBeUndefined();
    expect(await execa('podman', ['container', 'exists', STRAY], { reject: false })).toMatchObject({
      exitCode: 0,
    });

    const again = await call<Sync>('sync_desired_state', {});
    for (const s of again.services.filter((s) => [a, b, c].includes(s.service))) {
      expect(s.change).toBe('unchanged');
    }
  }, 120_000);
});
