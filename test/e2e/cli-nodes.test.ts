/**
 * `mcp node list | add | remove` as an operator runs them: the built binary editing a
 * commented connector config, with `add` checking a real agent first. What the file must keep
 * is checked line by line: the comments, the other tables, its mode; what is refused must
 * leave it byte-identical.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConnectorConfig } from '../../connector/config.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { REPO } from '../support/connector.js';

const CLI = join(REPO, 'dist/connector/cli.js');

let agent: TestAgent;
let work: string;
let configFile: string;
let caFile: string;
let token: string;
let original: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function mcp(args: readonly string[], opts: { config?: boolean; token?: string } = {}): Promise<Run> {
  const config = opts.config === false ? [] : ['--config', configFile];
  const run = await execa(process.execPath, [CLI, ...args, ...config], {
    cwd: work,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: work,
      MCP_HOME: join(work, 'home'),
      MCP_TOKEN: opts.token ?? token,
    },
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
  });
  return { code: run.exitCode ?? -1, stdout: run.stdout, stderr: run.stderr };
}

/** Whether `lines` appear in `text` in this order (others may come between). */
function keepsInOrder(text: string, lines: readonly string[]): boolean {
  let at = 0;
  for (const line of text.split('\n')) if (line === lines[at]) at++;
  return at === lines.length;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'mcp-cli-nodes-'));
  agent = await startTestAgent({ node: 'edge-new' });
  token = await agent.token({ subject: 'operator-1', roles: ['operator'] });
  caFile = join(work, 'fleet-ca.pem');
  writeFileSync(caFile, agent.caPem);
  configFile = join(work, 'connector.toml');
  original = [
    '# The fleet this workstation drives.',
    `services_dir = "${join(work, 'services')}"`,
    '',
    '# The first node, in the rack by the door.',
    '[[nodes]]',
    'name = "edge-old"   # named for its rack',
    'address = "127.0.0.1:7443"',
    '',
    '# Token written by mcp login.',
    '[auth]',
    `token_file = "${join(work, 'token')}"`,
    '',
  ].join('\n');
  writeFileSync(configFile, original);
  chmodSync(configFile, 0o640);
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('mcp node on a commented connector config', { timeout: 60_000 }, () => {
  it('refuses an agent that does not answer, and a name already there, leaving the file as it was', async () => {
    const unreachable = await mcp(['node', 'add', 'edge-gone', '127.0.0.1:1', '--ca-file', caFile]);
    expect(unreachable.code, unreachable.stderr).toBe(4);
    expect(unreachable.stderr).toContain('--no-check');
    expect(readFileSync(configFile, 'utf8')).toBe(original);

    const duplicate = await mcp(['node', 'add', 'edge-old', agent.address, '--no-check']);
    expect(duplicate.code).toBe(2);
    expect(duplicate.stderr).toContain('already in');
    const badName = await mcp(['node', 'add', 'Edge_Old', agent.address, '--no-check']);
    expect(badName.code).toBe(2);
    expect(readFileSync(configFile, 'utf8')).toBe(original);
  });

  it('adds a node whose agent answers, keeping every comment; list shows it; remove restores the file', async () => {
    const added = await mcp(['node', 'add', 'edge-new', agent.address, '--ca-file', caFile]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain('its agent answered');
    const text = readFileSync(configFile, 'utf8');
    expect(
      keepsInOrder(
        text,
        original.split('\n').filter((line) => line !== ''),
      ),
    ).toBe(true);
    expect(parseConnectorConfig(text, configFile, { HOME: work }).nodes).toEqual([
      { name: 'edge-old', address: '127.0.0.1:7443' },
      { name: 'edge-new', address: agent.address, caFile },
    ]);
    expect(statSync(configFile).mode & 0o777).toBe(0o640);

    const listed = await mcp(['node', 'list', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([
      { name: 'edge-old', address: '127.0.0.1:7443' },
      { name: 'edge-new', address: agent.address, ca_file: caFile },
    ]);
    // The new node is usable at once: a read through the connector reaches its agent.
    const status = await mcp(['call', 'node_status', '--node', 'edge-new', '--json']);
    expect(status.code, status.stderr).toBe(0);

    const unknown = await mcp(['node', 'remove', 'edge-nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('edge-old, edge-new');

    const removed = await mcp(['node', 'remove', 'edge-new']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(readFileSync(configFile, 'utf8')).toBe(original);
  });

  it('adds a node whose agent answers but refuses the call, saying so', async () => {
    const refused = await mcp(['node', 'add', 'edge-new', agent.address, '--ca-file', caFile], { token: '' });
    expect(refused.code, refused.stderr).toBe(0);
    expect(refused.stderr).toContain('UNAUTHENTICATED');
    expect(
      parseConnectorConfig(readFileSync(configFile, 'utf8'), configFile, { HOME: work }).nodes,
    ).toHaveLength(2);
    expect((await mcp(['node', 'remove', 'edge-new'])).code).toBe(0);
    expect(readFileSync(configFile, 'utf8')).toBe(original);
  });

  it('refuses to edit nodes in the local setup, which has one node', async () => {
    const local = await mcp(['node', 'add', 'edge-x', agent.address, '--no-check'], { config: false });
    expect(local.code).toBe(2);
    expect(local.stderr).toContain('one node, local');
  });
});
