/**
 * The README's run command: the built connector with no config starts the embedded
 * single-node setup (its agent, detached, on loopback, own CA and issuer) and a real MCP
 * client drives it, against real podman.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopLocalAgent } from '../../connector/local-agent.js';
import { REPO, spawnStdioConnector } from '../support/connector.js';
import { removeContainers, requireTestbed, type Testbed, uniqueName } from '../support/testbed.js';

const bed = await requireTestbed();

describe.skipIf(!bed)('mcp-connector with no config: the local single-node setup', () => {
  let home: string;
  const service = uniqueName('local');

  beforeAll(() => {
    home = mkdtempSync(join(tmpdir(), 'mcp-home-'));
  });
  afterAll(async () => {
    await stopLocalAgent(home);
    await removeContainers(service);
    rmSync(home, { recursive: true, force: true });
  });

  const start = () => spawnStdioConnector([], { MCP_HOME: home, HOME: home });

  it('creates its state, serves every tool and deploys a service from a definition', async () => {
    const { client, stderr, close } = await start();
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain('deploy');
      expect(tools).toHaveLength(17);
      expect(stderr()).toMatch(/local single-node setup/);
      // initialize and tools/list wait for no agent: the first tool call creates the setup and starts it.
      expect(existsSync(join(home, 'agent.pid'))).toBe(false);

      writeFileSync(
        join(home, 'services', `${service}.toml`),
        `name = "${service}"\nnode = "local"\n[[components]]\nname = "${service}"\nimage = "${(bed as Testbed).imageV1}"\n`,
      );
      const deployed = await client.callTool({ name: 'deploy', arguments: { service } });
      expect(deployed.isError, JSON.stringify(deployed.content)).toBeFalsy();
      expect(deployed.structuredContent).toMatchObject({
        node: 'local',
        service,
        components: [{ component: service, ok: true, container: service, version: 'v1' }],
      });

      for (const file of ['ca.crt', 'agent.key', 'issuer.jwk', 'agent.toml', 'confirm.toml', 'registry.db']) {
        expect(existsSync(join(home, file)), file).toBe(true);
      }
      expect(statSync(join(home, 'issuer.jwk')).mode & 0o777).toBe(0o600);
      expect(statSync(join(home, 'registry.db')).mode & 0o777).toBe(0o600);

      const audit = await client.callTool({ name: 'query_audit', arguments: { rpc: 'Deploy' } });
      const nodes = (
        audit.structuredContent as { nodes: Array<{ result: { records: Array<{ subject: string }> } }> }
      ).nodes;
      expect(nodes[0]?.result.records[0]?.subject).toBe('local-operator');
    } finally {
      await close();
    }
  });

  it('keeps its state and an edited agent config across restarts', async () => {
    // The agent outlives its clients: stop it, so the next client starts one on the edited config.
    expect(await stopLocalAgent(home)).toBe(true);
    const agentToml = join(home, 'agent.toml');
    const edited = readFileSync(agentToml, 'utf8').replace(
      'node_name = "local"',
      'node_name = "local"\nlog_level = "warn"',
    );
    writeFileSync(agentToml, edited);
    const caBefore = readFileSync(join(home, 'ca.crt'), 'utf8');
    const { client, close } = await start();
    try {
      const listed = await client.callTool({ name: 'list_services', arguments: {} });
      expect(JSON.stringify(listed.structuredContent)).toContain(service);
      expect(readFileSync(agentToml, 'utf8')).toBe(edited);
      expect(readFileSync(join(home, 'ca.crt'), 'utf8')).toBe(caBefore);
    } finally {
      await close();
    }
  });

  it('answers the mcp CLI with the same tools, validation and tables', () => {
    const cli = (...args: string[]) => {
      try {
        const out = execFileSync(process.execPath, [join(REPO, 'dist/connector/cli.js'), ...args], {
          env: { PATH: process.env.PATH ?? '', MCP_HOME: home, HOME: home },
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        return { code: 0, out };
      } catch (err) {
        const e = err as { status: number; stdout: string; stderr: string };
        return { code: e.status, out: e.stdout + e.stderr };
      }
    };
    const listed = cli('call', 'service_status', `service=${service}`);
    expect(listed.code).toBe(0);
    expect(listed.out).toMatch(new RegExp(`${service}.*running`));
    const missing = cli('call', 'stop_service');
    expect(missing.code).toBe(1);
    expect(missing.out).toMatch(/service: required property missing/);
    const unknown = cli('call', 'explode');
    expect(unknown.code).toBe(2);
    expect(unknown.out).toMatch(/unknown operation 'explode'/);
  });
});
