/**
 * Snapshots of a live agent's registry and restoring one, through the command line
 * (`mcp-agent snapshot`, `mcp-agent restore` from dist/: run `npm run build` first) against a
 * real agent process.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Metadata } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ListServicesResponse, McpAgentServiceClient, ServiceSpec } from '../../gen/mcp/v1/mcp.js';
import { startTestAgent, type TestAgent, unary } from '../support/agent.js';
import { readRegistry } from '../support/registry.js';
import { component, serviceSpec } from '../support/specs.js';

const repo = new URL('../..', import.meta.url).pathname;
const main = path.join(repo, 'dist/agent/main.js');
const built = fs.existsSync(main);
if (!built && process.env.CI) throw new Error('dist/agent/main.js is missing: run npm run build first');

const OURS = ['blog', 'later', 'shop'];

function spec(name: string): ServiceSpec {
  return serviceSpec(name, [component('app', { image: '127.0.0.1:5000/bb:v1', env: { MODE: name } })], true);
}

describe.skipIf(!built)('snapshot and restore of a real agent registry', () => {
  let dataDir: string;
  let agent: TestAgent | undefined;

  const cli = (...args: string[]) =>
    execa(process.execPath, [main, ...args, '--config', path.join(dataDir, 'agent.toml')], { reject: false });

  async function connect(): Promise<{ client: McpAgentServiceClient; md: Metadata }> {
    return {
      client: (agent as TestAgent).client(),
      md: await (agent as TestAgent).auth({ roles: ['admin'] }),
    };
  }

  async function serviceNames(): Promise<string[]> {
    const { client, md } = await connect();
    const res: ListServicesResponse = await unary(client.listServices.bind(client), { desiredState: 0 }, md);
    // Sync also records the node's stray containers (as `ignore`): look at ours only.
    return res.services
      .map((s) => s.name)
      .filter((name) => OURS.includes(name))
      .sort();
  }

  async function sync(...names: string[]): Promise<void> {
    const { client, md } = await connect();
    await unary(client.syncDesiredState.bind(client), { services: names.map(spec), requestId: '' }, md);
  }

  /** `mcp-agent snapshot`; its path. */
  async function takeSnapshot(): Promise<string> {
    const result = await cli('snapshot');
    expect(result.exitCode, result.stderr).toBe(0);
    return result.stdout.trim();
  }

  // Every case starts from its own agent and database holding shop and blog, so they pass in any order.
  beforeEach(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-snapshot-it-'));
    agent = await startTestAgent({ process: true, dataDir });
    await sync('shop', 'blog');
  }, 60_000);

  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('writes a copy while the agent runs: it opens, its audit chain verifies, the original is untouched', async () => {
    const snapshot = await takeSnapshot();
    expect(path.dirname(snapshot)).toBe(path.join(dataDir, 'backups'));
    expect(fs.statSync(snapshot).mode & 0o777).toBe(0o600);

    readRegistry(snapshot, (copy) => {
      const chain = copy.audit.verifyChain();
      expect(chain.ok).toBe(true);
      expect(
        copy.services
          .names()
          .filter((name) => OURS.includes(name))
          .sort(),
      ).toEqual(['blog', 'shop']);
    });
    // The agent goes on serving, and its own chain still verifies.
    expect(await serviceNames()).toEqual(['blog', 'shop']);
    const verify = await cli('audit', 'verify');
    expect(verify.exitCode, verify.stderr + verify.stdout).toBe(0);
  });

  it('refuses to restore while the agent runs', async () => {
    const snapshot = await takeSnapshot();
    await sync('later');
    const result = await cli('restore', '--from', snapshot);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`is open in process ${agent?.child?.pid}`);
    expect(result.stderr).toContain('stop the agent');
    expect(await serviceNames()).toEqual(['blog', 'later', 'shop']);
  });

  it('brings a stopped agent back with the services of the snapshot', async () => {
    const snapshot = await takeSnapshot();
    await sync('later');
    await agent?.stop();
    agent = undefined;
    const result = await cli('restore', '--from', snapshot);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain('previous database kept at');
    const kept = fs.readdirSync(dataDir).filter((f) => f.startsWith('registry.db.before-restore-'));
    expect(kept.length).toBeGreaterThanOrEqual(1);

    agent = await startTestAgent({ process: true, dataDir });
    expect(await serviceNames()).toEqual(['blog', 'shop']);
    // New calls extend the restored chain, which still verifies.
    const verify = await cli('audit', 'verify');
    expect(verify.exitCode, verify.stderr + verify.stdout).toBe(0);
  }, 60_000);
});
