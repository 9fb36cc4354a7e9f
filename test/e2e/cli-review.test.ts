/**
 * The `mcp` CLI's review commands as an operator runs them: the built binary against two real
 * agents on their own databases. Audit filters across the nodes, a follow that sees a call
 * made by another mcp process, anchor then verify, export as JSON lines; login from stdin,
 * whoami and logout on the token file; agent status on a fresh MCP_HOME.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { type ConnectorFiles, REPO, writeConnectorConfig } from '../support/connector.js';
import { eventually } from '../support/eventually.js';

const CLI = join(REPO, 'dist/connector/cli.js');

let nodeA: TestAgent;
let nodeB: TestAgent;
let files: ConnectorFiles;
let work: string;
const tokens = { auditor: '', operator: '', viewer: '' };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI against both agents with the token of `as`; asynchronous, the agents run here. */
async function mcp(
  args: readonly string[],
  as: keyof typeof tokens = 'auditor',
  input?: string,
): Promise<Run> {
  const run = await execa(process.execPath, [CLI, ...args, '--config', files.configFile], {
    cwd: work,
    env: { PATH: process.env.PATH ?? '', HOME: work, MCP_HOME: join(work, 'home'), MCP_TOKEN: tokens[as] },
    extendEnv: false,
    reject: false,
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
  });
  return { code: run.exitCode ?? -1, stdout: run.stdout, stderr: run.stderr };
}

interface JsonRow {
  node: string;
  seq: number;
  caller: string;
  tool: string;
  decision: string;
  outcome: string;
}

async function rows(args: readonly string[]): Promise<JsonRow[]> {
  const run = await mcp(['audit', ...args, '--json']);
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout).rows as JsonRow[];
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'mcp-cli-review-'));
  nodeA = await startTestAgent({ node: 'node-a' });
  nodeB = await startTestAgent({ node: 'node-b' });
  files = writeConnectorConfig([
    { name: nodeA.node, address: nodeA.address, caPem: nodeA.caPem },
    { name: nodeB.node, address: nodeB.address, caPem: nodeB.caPem },
  ]);
  tokens.auditor = await nodeA.token({ subject: 'auditor-1', roles: ['auditor'] });
  tokens.operator = await nodeA.token({ subject: 'operator-1', roles: ['operator'] });
  tokens.viewer = await nodeA.token({ subject: 'viewer-1', roles: ['viewer'] });
  // What the review will find: a list on node-a by an operator, and a viewer refused the audit.
  const listed = await mcp(['list', '--node', 'node-a'], 'operator');
  expect(listed.code, listed.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  await nodeA?.stop();
  await nodeB?.stop();
  files?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('mcp audit, login and agent against real agents', { timeout: 120_000 }, () => {
  it('filters the calls of both nodes by tool, decision and node; a refused reader exits 3', async () => {
    const refused = await mcp(['audit', '--node', 'node-a'], 'viewer');
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('PERMISSION_DENIED');

    expect(await rows(['--tool', 'list_services'])).toEqual([
      expect.objectContaining({ node: 'node-a', caller: 'operator-1', decision: 'allow', outcome: 'ok' }),
    ]);
    expect(await rows(['--decision', 'deny'])).toEqual([
      expect.objectContaining({ node: 'node-a', caller: 'viewer-1', tool: 'query_audit', outcome: 'error' }),
    ]);
    // The review's own reads are audited on every node; --node repeated keeps to the named ones.
    const both = await rows(['--node', 'node-a', '--node', 'node-b', '--since', '1h']);
    expect(new Set(both.map((r) => r.node))).toEqual(new Set(['node-a', 'node-b']));
    expect((await rows(['--node', 'node-b'])).every((r) => r.node === 'node-b')).toBe(true);

    const table = await mcp(['audit', '--decision', 'deny']);
    expect(table.stdout).toMatch(/^time\s+node\s+caller\s+tool\s+service\s+decision\s+outcome\s+duration/);
    expect(table.stdout).toMatch(/node-a\s+viewer-1\s+query_audit\s+-\s+deny\s+error PERMISSION_DENIED/);

    const bad = await mcp(['audit', '--decision', 'maybe']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('give allow or deny');
  });

  it('follows both nodes, prints a call another mcp process makes, and exits 0 on SIGTERM', async () => {
    const follow = execa(
      process.execPath,
      [CLI, 'audit', '--follow', '--json', '--config', files.configFile],
      {
        cwd: work,
        env: { PATH: process.env.PATH ?? '', HOME: work, MCP_TOKEN: tokens.auditor },
        extendEnv: false,
        reject: false,
        stdin: 'ignore',
      },
    );
    let printed = '';
    follow.stdout?.on('data', (chunk: Buffer) => {
      printed += chunk.toString('utf8');
    });
    try {
      // Both follows are open once each node has recorded its FollowAudit call.
      await eventually('both follows to start', async () => {
        const open = await rows(['--tool', 'FollowAudit', '--since', '5m']);
        return new Set(open.map((r) => r.node)).size === 2 ? true : undefined;
      });
      const listed = await mcp(['list', '--node', 'node-b'], 'operator');
      expect(listed.code, listed.stderr).toBe(0);
      const row = await eventually('the follow to print the list on node-b', async () =>
        printed
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line) as JsonRow)
          .find((r) => r.node === 'node-b' && r.tool === 'list_services' && r.caller === 'operator-1'),
      );
      expect(row.outcome).toBe('ok');
    } finally {
      follow.kill('SIGTERM');
    }
    const ended = await follow;
    expect(ended.exitCode, ended.stderr).toBe(0);
  });

  it('anchors both chains in a 0600 file, then verifies against the anchors', async () => {
    const anchors = join(work, 'anchors.json');
    const anchored = await mcp(['audit', 'anchor', '--anchors', anchors]);
    expect(anchored.code, anchored.stderr).toBe(0);
    expect(anchored.stdout).toMatch(/node-a: ok, \d+ records/);
    expect(statSync(anchors).mode & 0o777).toBe(0o600);
    expect(Object.keys(JSON.parse(readFileSync(anchors, 'utf8')).nodes).sort()).toEqual(['node-a', 'node-b']);

    const verified = await mcp(['audit', 'verify', '--anchors', anchors, '--json']);
    expect(verified.code, verified.stderr).toBe(0);
    const result = JSON.parse(verified.stdout) as { ok: boolean; nodes: { anchorsChecked: number }[] };
    expect(result.ok).toBe(true);
    expect(result.nodes.map((n) => n.anchorsChecked)).toEqual([1, 1]);
  });

  it('exports the records of a node as JSON lines that parse, oldest first', async () => {
    const exported = await mcp(['audit', 'export', '--since', '1h', '--node', 'node-a']);
    expect(exported.code, exported.stderr).toBe(0);
    const records = exported.stdout
      .split('\n')
      .map((line) => JSON.parse(line) as { node: string; seq: string });
    expect(records.length).toBeGreaterThan(3);
    expect(records.every((r) => r.node === 'node-a')).toBe(true);
    const seqs = records.map((r) => Number(r.seq));
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect((await mcp(['audit', 'export'])).code).toBe(2);
  });

  it('stores a token from stdin with mode 0600, names its subject in whoami, and removes it on logout', async () => {
    const tokenFile = join(files.dir, 'token');
    const stored = await mcp(['login'], 'auditor', `${tokens.operator}\n`);
    expect(stored.code, stored.stderr).toBe(0);
    expect(stored.stdout).toContain(`token stored in ${tokenFile}`);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(tokenFile, 'utf8').trim()).toBe(tokens.operator);

    const who = await mcp(['whoami', '--json']);
    expect(who.code, who.stderr).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({
      subject: 'operator-1',
      roles: ['operator'],
      expired: false,
    });

    expect((await mcp(['login'], 'auditor', 'not a token\n')).code).toBe(2);
    expect((await mcp(['logout'])).stdout).toContain(`removed ${tokenFile}`);
    expect((await mcp(['whoami'])).code).toBe(1);
  });

  it('says the local agent of a fresh MCP_HOME is stopped, exit 3', async () => {
    const status = await mcp(['agent', 'status']);
    expect(status.code).toBe(3);
    expect(status.stdout).toMatch(/^stopped: the next mcp command/);
  });
});
