/**
 * The code cache that the connector's and the CLI's bins start from (core/compile-cache.ts, as
 * built into dist/): a first start writes it, the next uses it, and a cache that is damaged,
 * not ours, or writable by others is never run. Each start is its own Node process, as a real
 * start is, over a small bundle written here and over the real `mcp` bin.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REPO } from '../support/connector.js';

const LOADER = join(REPO, 'dist/core/compile-cache.js');
const CLI = join(REPO, 'dist/connector/cli.js');

/** An entry that requires a chunk at once and another on first use, as the built bins do. */
const BUNDLE = {
  'entry.cjs': [
    "const chunk = require('./chunk.cjs');",
    "function fail() { throw new Error('thrown in the entry'); }",
    "globalThis.fixtureDone = Promise.resolve().then(() => require('./lazy.cjs')).then((lazy) => chunk.double(lazy.seven()));",
    'globalThis.fixtureStack = (() => { try { fail(); } catch (err) { return err.stack; } })();',
  ].join('\n'),
  'chunk.cjs': 'exports.double = (n) => n * 2;\n',
  'lazy.cjs': 'exports.seven = () => 7;\n',
};

/** Runs the bundle in a fresh Node process through the built loader; what the start reports. */
function start(bundle: string, cacheDir: string | null, buildId = 'build1') {
  const driver = join(bundle, 'driver.mjs');
  writeFileSync(
    driver,
    [
      `import { runBundle } from ${JSON.stringify(LOADER)};`,
      `const run = runBundle(new URL('./entry.cjs', import.meta.url), ${JSON.stringify(buildId)}, { cacheDir: ${JSON.stringify(cacheDir)} });`,
      'const value = await globalThis.fixtureDone;',
      'run.saveCache();',
      "const files = Object.fromEntries([...run.files].map(([file, outcome]) => [file.replace(/^.*\\//, ''), outcome]));",
      'console.log(JSON.stringify({ files, value, stack: globalThis.fixtureStack }));',
    ].join('\n'),
  );
  const out = execFileSync(process.execPath, [driver], { encoding: 'utf8' });
  return JSON.parse(out) as { files: Record<string, string>; value: number; stack: string };
}

const all = (outcome: string) => ({ 'entry.cjs': outcome, 'chunk.cjs': outcome, 'lazy.cjs': outcome });

describe('the code cache', () => {
  let dir: string;
  let bundle: string;
  let cache: string;
  const buildDir = (buildId = 'build1') => join(cache, `${buildId}-${process.version}-${process.arch}`);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-compile-cache-'));
    bundle = join(dir, 'bundle');
    cache = join(dir, 'cache', 'mcp', 'v8');
    mkdirSync(bundle);
    for (const [name, source] of Object.entries(BUNDLE)) writeFileSync(join(bundle, name), source);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is written by a first start, private to its user, and used by the next', () => {
    const first = start(bundle, cache);
    expect(first).toMatchObject({ files: all('none'), value: 14 });
    expect(statSync(buildDir()).mode & 0o777).toBe(0o700);
    expect(readdirSync(buildDir()).sort()).toEqual(['chunk.cjs.v8', 'entry.cjs.v8', 'lazy.cjs.v8']);
    for (const file of readdirSync(buildDir()))
      expect(statSync(join(buildDir(), file)).mode & 0o777).toBe(0o600);

    const second = start(bundle, cache);
    expect(second).toMatchObject({ files: all('used'), value: 14 });
  });

  it('keeps stack traces pointing at the bundle file and line', () => {
    start(bundle, cache);
    const cached = start(bundle, cache);
    expect(cached.files['entry.cjs']).toBe('used');
    expect(cached.stack).toContain('thrown in the entry');
    expect(cached.stack).toMatch(/entry\.cjs:2:/);
  });

  it('refuses a damaged cache, compiles from source and writes a good one', () => {
    start(bundle, cache);
    const file = join(buildDir(), 'chunk.cjs.v8');
    const damaged = readFileSync(file);
    damaged.fill(0x5a, 0, 64); // the header V8 checks: version, flags, source
    writeFileSync(file, damaged);

    const refused = start(bundle, cache);
    expect(refused.files['chunk.cjs']).toBe('rejected');
    expect(refused.value).toBe(14);
    expect(start(bundle, cache).files['chunk.cjs']).toBe('used');
  });

  it.skipIf(process.getuid?.() !== 0)(
    'never runs a cache file that belongs to another user, and replaces it',
    () => {
      start(bundle, cache);
      const file = join(buildDir(), 'lazy.cjs.v8');
      chownSync(file, 65534, 65534);
      const refused = start(bundle, cache);
      expect(refused.files['lazy.cjs']).toBe('none');
      expect(refused.value).toBe(14);
      expect(statSync(file).uid).toBe(0);
      expect(start(bundle, cache).files['lazy.cjs']).toBe('used');
    },
  );

  it('never runs a cache file that others may write', () => {
    start(bundle, cache);
    chmodSync(join(buildDir(), 'entry.cjs.v8'), 0o620);
    expect(start(bundle, cache).files['entry.cjs']).toBe('none');
  });

  it('reads no cache from a directory that others may write', () => {
    start(bundle, cache);
    chmodSync(buildDir(), 0o777);
    const refused = start(bundle, cache);
    expect(refused).toMatchObject({ files: all('none'), value: 14 });
    chmodSync(buildDir(), 0o700);
    expect(start(bundle, cache).files['entry.cjs']).toBe('used');
  });

  it('costs nothing but speed when the cache cannot be written', () => {
    writeFileSync(join(dir, 'cache'), 'a file where the cache directory would go');
    const blocked = start(bundle, cache);
    expect(blocked).toMatchObject({ files: all('none'), value: 14 });
    expect(start(bundle, null)).toMatchObject({ files: all('off'), value: 14 });
  });

  it('keeps a cache per build, the newest four', () => {
    for (const build of ['b1', 'b2', 'b3', 'b4', 'b5', 'b6']) start(bundle, cache, build);
    expect(readdirSync(cache).length).toBe(4);
    expect(existsSync(buildDir('b6'))).toBe(true);
    expect(start(bundle, cache, 'b6').files['entry.cjs']).toBe('used');
  });
});

describe('the built bundle', () => {
  it('is ASCII, as runBundle reads it as latin1', () => {
    const files = [
      ...readdirSync(join(REPO, 'dist/bundle')).map((name) => join(REPO, 'dist/bundle', name)),
      join(REPO, 'dist/connector/main.cjs'),
      join(REPO, 'dist/connector/cli.cjs'),
    ];
    expect(files.length).toBeGreaterThan(2);
    for (const file of files) {
      const bytes = readFileSync(file);
      expect(
        bytes.findIndex((byte) => byte > 0x7f),
        file,
      ).toBe(-1);
    }
  });
});

describe('the mcp bin', () => {
  it('answers the same from a cold and a warm cache, and writes it under XDG_CACHE_HOME', () => {
    const home = mkdtempSync(join(tmpdir(), 'mcp-compile-cache-bin-'));
    try {
      const env = { PATH: process.env.PATH, HOME: home, XDG_CACHE_HOME: join(home, 'xdg') };
      const cold = execFileSync(process.execPath, [CLI, 'tools', '--json'], { env, encoding: 'utf8' });
      const builds = readdirSync(join(home, 'xdg', 'mcp', 'v8'));
      expect(builds).toHaveLength(1);
      expect(readdirSync(join(home, 'xdg', 'mcp', 'v8', builds[0] ?? ''))).toContain('cli.cjs.v8');
      const warm = execFileSync(process.execPath, [CLI, 'tools', '--json'], { env, encoding: 'utf8' });
      expect(warm).toBe(cold);
      expect(JSON.parse(warm)).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'deploy' })]));
      expect(existsSync(join(home, '.cache'))).toBe(false);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
