/**
 * The local setup's agent is one long-lived process per $MCP_HOME, shared by every client:
 * the built connectors and `mcp` commands started at once find or start the same one; it
 * finishes a deploy whose client was killed and records the outcome; a stale agent.pid is
 * recovered; `mcp agent stop` ends it. Real podman, real MCP clients, the built programs.
 */
import { execFile, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopLocalAgent } from '../../connector/local-agent.js';
import { prepareLocalHome } from '../../connector/local-home.js';
import { readAgentPidFile } from '../../core/local-home.js';
import { alertRecorder } from '../support/alerts.js';
import { BUILT_CONNECTOR, REPO, spawnStdioConnector } from '../support/connector.js';
import { eventually } from '../support/eventually.js';
import { removeContainers, requireTestbed, type Testbed, uniqueName } from '../support/testbed.js';

const bed = await requireTestbed();

interface Run {
  code: number;
  out: string;
}

/** A built program to completion, its stdin closed and its output captured. */
function runBuilt(program: string, args: readonly string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(REPO, program), ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, out: stdout + stderr });
      },
    );
  });
}

/** Live (not zombie) processes running `mcp-agent server` on this home's agent.toml. */
function agentProcesses(home: string): number[] {
  const config = join(home, 'agent.toml');
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (argv.includes('server') && argv.includes(config) && state !== 'Z') pids.push(Number(entry));
    } catch {
      // exited while listed
    }
  }
  return pids;
}

describe.skipIf(!bed)('the local agent: one per $MCP_HOME, shared by every client', () => {
  let home: string;
  let env: Record<string, string>;
  let alerts: ReturnType<typeof alertRecorder>;
  const prefix = uniqueName('lagent');
  const shared = `${prefix}-a`;
  const killed = `${prefix}-b`;
  const images = () => bed as Testbed;

  const mcp = (...args: string[]) => runBuilt('dist/connector/cli.js', args, env);
  /** A definition of `service` with components c1..c3 on `image`; sleep ignores SIGTERM, so each stop waits `stop_timeout_seconds`. */
  const define = (service: string, image: string, stopTimeout: number) =>
    writeFileSync(
      join(home, 'services', `${service}.toml`),
      `name = "${service}"\nnode = "local"\n${[1, 2, 3]
        .map(
          (i) =>
            `[[components]]\nname = "c${i}"\nimage = "${image}"\nstop_timeout_seconds = ${stopTimeout}\n`,
        )
        .join('')}`,
    );
  const statusOf = async (client: Client, service: string) => {
    const result = await client.callTool({ name: 'service_status', arguments: { service } });
    return result.isError ? undefined : JSON.stringify(result.structuredContent);
  };

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'mcp-home-'));
    env = { MCP_HOME: home, HOME: home };
    // The setup's files first, so that its agent alerts into a file and its monitor ticks every second.
    await prepareLocalHome(home);
    alerts = alertRecorder(home);
    appendFileSync(
      join(home, 'agent.toml'),
      `\n[monitor]\ninterval_seconds = 1\nalert_command = ${JSON.stringify(alerts.command)}\n`,
    );
    // The test's clients cannot show a question: this home lets their redeploys run unconfirmed.
    writeFileSync(join(home, 'confirm.toml'), '[confirm]\nwhen_client_cannot_ask = "allow"\n');
  });
  afterAll(async () => {
    await stopLocalAgent(home);
    await removeContainers(prefix);
    rmSync(home, { recursive: true, force: true });
  });

  it('two connectors and an mcp command started at once share one agent; a redeploy raises no drift alert', async () => {
    const [a, b, listed] = await Promise.all([
      spawnStdioConnector([], env),
      spawnStdioConnector([], env),
      mcp('list'),
    ]);
    try {
      expect(listed.code, listed.out).toBe(0);
      const record = readAgentPidFile(join(home, 'agent.pid'));
      expect(record).toBeDefined();
      expect(agentProcesses(home)).toEqual([record?.pid]);

      define(shared, images().imageV1, 1);
      const first = await a.client.callTool({ name: 'deploy', arguments: { service: shared } });
      expect(first.isError, JSON.stringify(first.content)).toBeFalsy();
      // The other client redeploys while the first one sits idle: with a monitor per client,
      // the idle one saw the containers being replaced and raised "running -> missing".
      define(shared, images().imageV2, 1);
      const second = await b.client.callTool({ name: 'deploy', arguments: { service: shared } });
      expect(second.isError, JSON.stringify(second.content)).toBeFalsy();
      expect(second.structuredContent).toMatchObject({
        components: [
          { ok: true, version: 'v2' },
          { ok: true, version: 'v2' },
          { ok: true, version: 'v2' },
        ],
      });
      expect(agentProcesses(home)).toEqual([record?.pid]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
    // A real drift now: the monitor, which watched the redeploys, alerts for it and for nothing before it.
    await execa(images().podman, ['stop', '--time', '0', `${shared}-c3`]);
    const raised = await eventually(
      'the drift alert for the stopped container',
      async () => {
        const all = alerts.alerts();
        return all.length > 0 ? all : undefined;
      },
      { seconds: 90, intervalMs: 250 },
    );
    expect(raised).toEqual([
      expect.objectContaining({
        MCP_ALERT_TYPE: 'drift',
        MCP_SERVICE: shared,
        MCP_COMPONENT: 'c3',
        MCP_OBSERVED_STATE: 'exited',
      }),
    ]);
    // The clients are gone; the agent stays for the next one.
    expect(agentProcesses(home)).toHaveLength(1);
  }, 180_000);

  it('finishes a deploy whose client is SIGKILLed half-way, and records its outcome', async () => {
    const observer = await spawnStdioConnector([], env);
    try {
      define(killed, images().imageV1, 1);
      const first = await observer.client.callTool({ name: 'deploy', arguments: { service: killed } });
      expect(first.isError, JSON.stringify(first.content)).toBeFalsy();

      define(killed, images().imageV2, 1);
      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [BUILT_CONNECTOR],
        env: { PATH: process.env.PATH ?? '', ...env },
        stderr: 'ignore',
      });
      const client = new Client({ name: 'killed-client', version: '1.0.0' });
      await client.connect(transport);
      const connectorPid = transport.pid as number;
      let progressed!: () => void;
      const firstPull = new Promise<void>((resolve) => {
        progressed = resolve;
      });
      const call = client
        .callTool(
          { name: 'deploy', arguments: { service: killed } },
          {
            // Once the first image is pulled the deploy changes the node (a cancelled pull changes nothing).
            onprogress: (p) => {
              if (/pulled/.test(p.message ?? '')) progressed();
            },
          },
        )
        .then(
          () => 'answered',
          () => 'lost',
        );
      await firstPull;
      // Three components, each stop waiting 1 s: the deploy is still replacing containers now.
      process.kill(connectorPid, 'SIGKILL');
      expect(await call).toBe('lost');
      await client.close().catch(() => undefined);

      const audit = await eventually(
        'the deploy outcome in the audit log',
        async () => {
          const result = await observer.client.callTool({
            name: 'query_audit',
            arguments: { rpc: 'Deploy', service: killed },
          });
          const records = (
            result.structuredContent as { nodes: Array<{ result?: { records: Array<{ outcome: string }> } }> }
          ).nodes[0]?.result?.records;
          // Newest first: the killed client's deploy (`unknown` while it runs), then the first one.
          return records && records.length >= 2 && records[0]?.outcome !== 'AUDIT_OUTCOME_UNKNOWN'
            ? records
            : undefined;
        },
        { seconds: 90, intervalMs: 250 },
      );
      expect(audit[0]?.outcome).toBe('AUDIT_OUTCOME_OK');
      // The registry converges on what runs: every component running v2. (Polled: a monitor
      // listing taken while the deploy ran may be applied once after it and put back v1.)
      await eventually(
        'every component recorded running v2',
        async () => {
          const status = JSON.parse((await statusOf(observer.client, killed)) ?? '{}') as {
            nodes: Array<{
              result?: { service?: { components: Array<{ version: string; observedState: string }> } };
            }>;
          };
          const components = status.nodes[0]?.result?.service?.components ?? [];
          return components.length === 3 &&
            components.every((c) => c.version === 'v2' && c.observedState === 'OBSERVED_STATE_RUNNING')
            ? true
            : undefined;
        },
        { seconds: 90, intervalMs: 250 },
      );
    } finally {
      await observer.close();
    }
  }, 180_000);

  it('recovers a stale agent.pid; mcp agent stop ends the agent and removes the pid file', async () => {
    expect(await stopLocalAgent(home)).toBe(true);
    expect(agentProcesses(home)).toEqual([]);
    const dead = spawnSync(process.execPath, ['-e', '0']).pid as number;
    const pidFile = join(home, 'agent.pid');
    writeFileSync(
      pidFile,
      JSON.stringify({ pid: dead, address: '127.0.0.1:1', startedAt: new Date().toISOString() }),
    );

    const stale = await mcp('agent', 'status');
    expect(stale.code).toBe(3);
    expect(stale.out).toMatch(/^stale/);
    const listed = await mcp('list');
    expect(listed.code, listed.out).toBe(0);
    expect(listed.out).toContain(shared);
    const record = readAgentPidFile(pidFile);
    expect(record?.pid).not.toBe(dead);
    expect(agentProcesses(home)).toEqual([record?.pid]);
    const running = await mcp('agent', 'status');
    expect(running.out).toMatch(new RegExp(`^running: pid ${record?.pid} on 127\\.0\\.0\\.1:\\d+`));

    // mcp-agent's admin commands find the local setup's config without --config.
    const verified = await runBuilt('dist/agent/main.js', ['audit', 'verify'], env);
    expect(verified.out).toMatch(/audit chain OK/);
    const empty = mkdtempSync(join(tmpdir(), 'mcp-nohome-'));
    const none = await runBuilt('dist/agent/main.js', ['audit', 'verify'], { HOME: empty });
    rmSync(empty, { recursive: true, force: true });
    expect(none.code).toBe(1);
    expect(none.out).toContain(
      `tried ${join(empty, '.local/state/mcp/agent.toml')}, /etc/mcp-agent/agent.toml`,
    );

    const stopped = await mcp('agent', 'stop');
    expect(stopped.out).toMatch(/stopped the local agent/);
    expect(existsSync(pidFile)).toBe(false);
    expect(agentProcesses(home)).toEqual([]);
    expect((await mcp('agent', 'status')).out).toMatch(/^stopped/);
  }, 180_000);
});
