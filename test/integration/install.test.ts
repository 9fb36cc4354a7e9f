/**
 * deploy/install.sh, run for real (bash, cp, tar, node) into a temporary root with
 * `--root DIR --node-modules node_modules`: the checkouts it installs from are copies of this
 * repository's build (dist/: run `npm run build` first), changed the way a new build or a
 * broken one would be.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = new URL('../..', import.meta.url).pathname;
const built = fs.existsSync(path.join(repo, 'dist/agent/main.js'));
if (!built && process.env.CI) throw new Error('dist/agent/main.js is missing: run npm run build first');
const CHECKOUT_PARTS = ['dist', 'docs', 'deploy', 'RUNBOOK.md', 'package.json', 'package-lock.json'];

/** Every entry under `dir`: type, mode, size, mtime, link target and (outside packages) content hash. */
function tree(dir: string): Record<string, string> {
  const entries: Record<string, string> = {};
  const walk = (relative: string) => {
    const full = path.join(dir, relative);
    const stat = fs.lstatSync(full);
    let what = `${stat.mode.toString(8)} ${stat.size} ${stat.mtimeMs}`;
    if (stat.isSymbolicLink()) what += ` -> ${fs.readlinkSync(full)}`;
    // Packages are compared by size and mtime only: hashing 80 MB on every snapshot is slow.
    else if (stat.isFile() && !relative.includes('node_modules'))
      what += ` ${createHash('sha256').update(fs.readFileSync(full)).digest('hex')}`;
    entries[relative || '.'] = what;
    if (stat.isDirectory()) for (const name of fs.readdirSync(full)) walk(path.join(relative, name));
  };
  walk('');
  return entries;
}

describe.skipIf(!built)('deploy/install.sh into a staging root', () => {
  let work: string;
  let root: string;
  const opt = () => path.join(root, 'opt/mcp');
  const current = () => fs.readlinkSync(path.join(opt(), 'current'));
  const releases = () => fs.readdirSync(path.join(opt(), 'releases')).sort();

  /** A checkout with a build: a copy of the parts of this repository the installer reads. */
  function checkout(name: string, change?: (dir: string) => void): string {
    const dir = path.join(work, name);
    for (const part of CHECKOUT_PARTS)
      fs.cpSync(path.join(repo, part), path.join(dir, part), { recursive: true });
    change?.(dir);
    return dir;
  }
  const install = (from: string) =>
    execa(
      'bash',
      [
        path.join(from, 'deploy/install.sh'),
        '--root',
        root,
        '--node-modules',
        path.join(repo, 'node_modules'),
      ],
      { reject: false, all: true },
    );

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-install-'));
    root = path.join(work, 'root');
    fs.mkdirSync(root);
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  it('refuses an unbuilt checkout before touching anything', async () => {
    const unbuilt = checkout('unbuilt', (dir) => fs.rmSync(path.join(dir, 'dist'), { recursive: true }));
    const before = tree(root);
    const run = await install(unbuilt);
    expect(run.exitCode).toBe(1);
    expect(run.all).toMatch(
      /is not built \(no dist\/agent\/main\.js\): run 'npm ci && npm run build'.*nothing was changed/,
    );
    expect(tree(root)).toEqual(before);
  });

  it('installs a release, the command, the units, the docs they name and the alert example', async () => {
    const run = await install(checkout('first'));
    expect(run.exitCode, run.all).toBe(0);
    expect(current()).toMatch(/^releases\/0\.\d+\.\d+-[0-9a-f]{12}$/);
    expect(releases()).toEqual([path.basename(current())]);
    expect(fs.readlinkSync(path.join(root, 'usr/local/bin/mcp-agent'))).toBe(
      '/opt/mcp/current/dist/agent/main.js',
    );
    expect(fs.readlinkSync(path.join(root, 'usr/local/bin/mcp-alert'))).toBe(
      '/opt/mcp/current/deploy/mcp-alert',
    );
    const unit = fs.readFileSync(path.join(root, 'etc/systemd/system/mcp-agent.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/local\/bin\/mcp-agent server$/m);
    for (const doc of /^Documentation=(.*)$/m.exec(unit)?.[1]?.split(' ') ?? []) {
      expect(fs.existsSync(path.join(root, doc.replace(/^file:\/\//, ''))), doc).toBe(true);
    }
    for (const unitName of ['mcp-agent-backup.service', 'mcp-agent-backup.timer']) {
      expect(fs.existsSync(path.join(root, 'etc/systemd/system', unitName))).toBe(true);
    }
    expect(fs.statSync(path.join(root, 'etc/mcp-agent')).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(root, 'var/lib/mcp-agent')).mode & 0o777).toBe(0o700);
    // The release runs on its own: its node_modules has the production packages, no dev tools.
    const release = path.join(opt(), current());
    const version = await execa(process.execPath, [path.join(release, 'dist/agent/main.js'), '--version']);
    expect(version.stdout).toBe(JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')).version);
    expect(fs.existsSync(path.join(release, 'node_modules/better-sqlite3'))).toBe(true);
    expect(fs.existsSync(path.join(release, 'node_modules/vitest'))).toBe(false);
  });

  it('runs a second time as a no-op that says so', async () => {
    const before = tree(root);
    const run = await install(checkout('again'));
    expect(run.exitCode, run.all).toBe(0);
    expect(run.all).toMatch(/is already installed and current: nothing to do/);
    expect(tree(root)).toEqual(before);
  });

  it('upgrades to a changed build, keeping config, registry and backups and the previous release', async () => {
    const state = {
      'etc/mcp-agent/agent.toml': 'node_name = "n1"\n',
      'var/lib/mcp-agent/registry.db': 'registry bytes',
      'var/lib/mcp-agent/backups/registry-20261130T020000.000Z.db': 'snapshot bytes',
    };
    for (const [file, content] of Object.entries(state)) {
      fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      fs.writeFileSync(path.join(root, file), content, { mode: 0o600 });
    }
    const old = current();
    const rebuilt = checkout('rebuilt', (dir) =>
      fs.appendFileSync(path.join(dir, 'dist/agent/main.js'), '\n// rebuilt\n'),
    );
    const run = await install(rebuilt);
    expect(run.exitCode, run.all).toBe(0);
    expect(current()).not.toBe(old);
    expect(run.all).toContain(`current -> ${current()} (was ${old})`);
    expect(releases()).toEqual([path.basename(old), path.basename(current())].sort());
    for (const [file, content] of Object.entries(state)) {
      expect(fs.readFileSync(path.join(root, file), 'utf8'), file).toBe(content);
    }
    expect(run.all).not.toMatch(/^next: mcp-agent init/m); // a config exists
  });

  it('leaves the current release in place when the new one is broken', async () => {
    const good = current();
    const before = releases();
    const broken = checkout('broken', (dir) => {
      // A build cut short: the agent's bundle ends halfway.
      const bin = path.join(dir, 'dist/agent/main.js');
      fs.truncateSync(bin, Math.floor(fs.statSync(bin).size / 2));
    });
    const run = await install(broken);
    expect(run.exitCode).toBe(1);
    expect(run.all).toMatch(/the staged release does not start .*the current install is unchanged/s);
    expect(current()).toBe(good);
    expect(releases()).toEqual(before); // no staging leftover, no half release
    const version = await execa(process.execPath, [
      path.join(root, 'opt/mcp', good, 'dist/agent/main.js'),
      '--version',
    ]);
    expect(version.exitCode).toBe(0);
  });

  it.skipIf(!fs.existsSync('/usr/bin/systemd-analyze'))(
    'installs units that systemd-analyze verifies in that root, sandbox within bounds',
    async () => {
      const run = await execa('bash', [path.join(repo, 'deploy/systemd/verify-units.sh'), '--root', root], {
        reject: false,
        all: true,
      });
      expect(run.exitCode, run.all).toBe(0);
      expect(run.all).toMatch(/mcp-agent\.service: exposure [0-4]\.\d|mcp-agent\.service: exposure 5\.0/);
    },
  );
});
