/**
 * `mcp-agent` subcommands (dist/agent/main.js: run `npm run build` first) on a node that is not
 * ready yet: no config, no registry, no certificate, a damaged database. Each answers with one
 * line that says what is wrong and what to do, never a stack; `init` writes a config the agent
 * accepts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/config.js';

const repo = new URL('../..', import.meta.url).pathname;
const main = path.join(repo, 'dist/agent/main.js');
const built = fs.existsSync(main);
if (!built && process.env.CI) throw new Error('dist/agent/main.js is missing: run npm run build first');

describe.skipIf(!built)('mcp-agent on a node that is not ready', () => {
  let dir: string;
  let config: string;
  const agent = (...args: string[]) =>
    execa(process.execPath, [main, ...args], {
      reject: false,
      env: { MCP_AGENT_CONFIG: '' },
      extendEnv: true,
    });
  const expectOneLine = (run: { exitCode?: number; stderr: string }, pattern: RegExp) => {
    expect(run.exitCode).toBe(1);
    expect(run.stderr.trim().split('\n'), run.stderr).toHaveLength(1);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(run.stderr).toMatch(pattern);
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-agent-cli-'));
    config = path.join(dir, 'etc/agent.toml');
    const run = await agent(
      'init',
      '--node',
      'node1',
      '--issuer',
      'https://id.example.net/realms/homelab',
      '--audience',
      'https://mcp.example.net',
      '--out',
      config,
      '--tls-cert',
      path.join(dir, 'tls/agent.crt'),
      '--tls-key',
      path.join(dir, 'tls/agent.key'),
    );
    expect(run.exitCode, run.stderr).toBe(0);
    // Keep the registry inside the temp dir.
    const text = fs
      .readFileSync(config, 'utf8')
      .replace(
        /^node_name = .*$/m,
        (line) => `${line}\ndatabase = "../data/registry.db"\n[backups]\ndir = "../data/backups"`,
      );
    fs.writeFileSync(config, text);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('init writes a config the agent loads, mode 0600, and says what comes next', async () => {
    const loaded = await loadAgentConfig(config, {});
    expect(loaded.nodeName).toBe('node1');
    expect(loaded.issuers[0]).toMatchObject({
      issuer: 'https://id.example.net/realms/homelab',
      discovery: true,
    });
    expect(loaded.monitor.alertCommand).toEqual(['/usr/local/bin/mcp-alert', '--channel', 'ops']);
    expect(fs.statSync(config).mode & 0o777).toBe(0o600);
  });

  it('init refuses to overwrite without --force, and writes nothing the loader refuses', async () => {
    const before = fs.readFileSync(config, 'utf8');
    const again = await agent(
      'init',
      '--node',
      'n2',
      '--issuer',
      'https://i.example',
      '--audience',
      'a',
      '--out',
      config,
    );
    expectOneLine(again, /already exists: it is kept; .*--force/);
    expect(fs.readFileSync(config, 'utf8')).toBe(before);
    const bad = path.join(dir, 'bad.toml');
    const refused = await agent(
      'init',
      '--node',
      'Bad Name',
      '--issuer',
      'https://i.example',
      '--audience',
      'a',
      '--out',
      bad,
    );
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/node_name: "Bad Name" is not a valid name/);
    expect(fs.existsSync(bad)).toBe(false);
    const forced = await agent(
      'init',
      '--node',
      'n2',
      '--issuer',
      'https://i.example',
      '--audience',
      'a',
      '--key-file',
      'issuer.pem',
      '--out',
      bad,
      '--force',
    );
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect(fs.readFileSync(bad, 'utf8')).toMatch(/^key_file = "issuer.pem"$/m);
    const both = await agent(
      'init',
      '--node',
      'n',
      '--issuer',
      'https://i.example',
      '--audience',
      'a',
      '--discovery',
      '--jwks-uri',
      'https://i.example/jwks',
      '--out',
      bad,
      '--force',
    );
    expect(both.exitCode).toBe(64);
  });

  it.each(['server', 'audit verify', 'audit export', 'snapshot', 'restore --from x.db'])(
    '%s: a missing config is one line',
    async (command) => {
      const run = await agent(...command.split(' '), '--config', path.join(dir, 'missing.toml'));
      expectOneLine(run, /missing\.toml: agent config not found: create it/);
    },
  );

  it.each(['audit verify', 'audit export', 'snapshot'])(
    '%s before the first start: no registry yet, one line, nothing created',
    async (command) => {
      const run = await agent(...command.split(' '), '--config', config);
      expectOneLine(run, /no registry at .*registry\.db yet: the agent creates it when it first starts/);
      expect(fs.existsSync(path.join(dir, 'data/registry.db'))).toBe(false);
    },
  );

  it('server without its certificate: one line naming the file and the setting', async () => {
    const run = await agent('server', '--config', config);
    expectOneLine(
      run,
      /TLS certificate .*agent\.crt does not exist: copy the node's certificate there, or change server\.tls_cert/,
    );
  });

  it('restore of a missing snapshot: one line', async () => {
    const run = await agent('restore', '--from', path.join(dir, 'nope.db'), '--config', config);
    expectOneLine(run, /snapshot .*nope\.db does not exist: check the path/);
  });

  it('a damaged registry: one line pointing to a restore', async () => {
    fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'data/registry.db'),
      'this is not a database, it is much longer than a header '.repeat(200),
    );
    try {
      const run = await agent('audit', 'verify', '--config', config);
      expectOneLine(run, /registry database is damaged .*restore the newest snapshot/);
    } finally {
      fs.rmSync(path.join(dir, 'data'), { recursive: true });
    }
  });
});
