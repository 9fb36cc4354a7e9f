/**
 * Runs a bin's bundle with V8's code cache, so a start skips most of compiling it.
 *
 * Node 20 caches no compiled code for ES modules (`module.enableCompileCache` came in 22), and
 * compiling their JavaScript is most of the connector's and the CLI's start. So the build
 * (scripts/build-bins.mjs) turns their bundle, an entry file and the chunks it shares or loads
 * on first use, into CommonJS `.cjs` files, and the bin file calls `runBundle`. It compiles
 * each file as it is first required with `vm.Script`, handing V8 the code it cached on an
 * earlier start, and runs it as Node runs a CommonJS module. A chunk that a command never
 * reaches is never read.
 *
 * The cache lives in `$XDG_CACHE_HOME/mcp/v8/` (default `~/.cache/mcp/v8/`): one directory
 * per build, Node version and architecture, one file per bundle file. A file with no usable
 * cache is compiled as usual, and its cache is written once the process has done its work (a
 * few seconds in, or at exit), so it holds the functions a start really runs, not only the top
 * level. V8 refuses a cache made by another V8 or for other flags; the file is then compiled
 * from source and its cache written again. A cache file is used only if it and its directory
 * belong to this user and nobody else may write them: it is code. A failure to read or write
 * the cache costs speed, never the command.
 */
import {
  closeSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

/** What happened to a file's cache on this start. */
export type CacheOutcome = 'used' | 'none' | 'rejected' | 'off';

export interface BundleRun {
  /** Each bundle file required so far, by path, with what happened to its cache. */
  files: Map<string, CacheOutcome>;
  /** Writes the caches this start should write (files with none usable); idempotent. */
  saveCache: () => void;
}

export interface BundleOptions {
  /** Where caches go; `null` runs without one. Default: `defaultCacheDir()`. */
  cacheDir?: string | null;
  /** How long after the start the caches are written, if the process has not exited first. */
  saveAfterMs?: number;
}

const SAVE_AFTER_MS = 3000;
/** Builds kept side by side in the cache (an upgrade, a second Node version): the newest few. */
const KEEP_BUILDS = 4;

/** `$XDG_CACHE_HOME/mcp/v8`, else `~/.cache/mcp/v8`; undefined without a home to put it in. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.XDG_CACHE_HOME?.startsWith('/')) return join(env.XDG_CACHE_HOME, 'mcp', 'v8');
  try {
    const home = env.HOME || homedir();
    return home ? join(home, '.cache', 'mcp', 'v8') : undefined;
  } catch {
    return undefined;
  }
}

type ModuleFunction = (
  exports: unknown,
  require: (specifier: string) => unknown,
  module: { exports: unknown },
  __filename: string,
  __dirname: string,
) => void;

/**
 * Runs the CommonJS entry at `entryUrl`. `buildId` (a hash of the bundle's files and of this
 * loader, written into the bin by the build) names the cache directory, so a rebuilt bundle
 * never meets an old cache.
 */
export function runBundle(entryUrl: URL, buildId: string, options: BundleOptions = {}): BundleRun {
  const root = options.cacheDir === undefined ? defaultCacheDir() : options.cacheDir;
  const cacheDir = root ? join(root, `${buildId}-${process.version}-${process.arch}`) : undefined;
  // Caches are read only from a directory that is ours alone: in one others may write, a file
  // could be swapped for another between starts.
  const readable = cacheDir !== undefined && isOwnDir(cacheDir);
  const files = new Map<string, CacheOutcome>();
  const unsaved = new Map<string, Script>();
  const modules = new Map<string, { exports: unknown }>();

  const load = (filename: string): unknown => {
    const loaded = modules.get(filename);
    if (loaded) return loaded.exports;
    const module = { exports: {} };
    modules.set(filename, module); // before it runs, as Node does, so a cycle sees partial exports
    const cacheFile = cacheDir ? join(cacheDir, `${basename(filename)}.v8`) : undefined;
    const cachedData = cacheFile && readable ? readOwnCache(cacheFile) : undefined;
    const script = new Script(wrap(readFileSync(filename, 'latin1')), {
      filename,
      cachedData,
    });
    const outcome = outcomeOf(cacheFile, cachedData, script);
    files.set(filename, outcome);
    if (outcome === 'none' || outcome === 'rejected') unsaved.set(filename, script);
    const nodeRequire = createRequire(filename);
    const require = (specifier: string) =>
      specifier.endsWith('.cjs') && specifier.startsWith('.')
        ? load(resolve(dirname(filename), specifier))
        : nodeRequire(specifier);
    const run = script.runInThisContext() as ModuleFunction;
    run.call(module.exports, module.exports, require, module, filename, dirname(filename));
    return module.exports;
  };

  const saveCache = () => {
    if (!cacheDir || unsaved.size === 0) return;
    const scripts = [...unsaved];
    unsaved.clear();
    if (!makeOwnDir(cacheDir)) return;
    for (const [filename, script] of scripts) {
      writeCache(join(cacheDir, `${basename(filename)}.v8`), script.createCachedData());
    }
    pruneOlderBuilds(dirname(cacheDir));
  };
  setTimeout(saveCache, options.saveAfterMs ?? SAVE_AFTER_MS).unref();
  process.once('exit', saveCache);

  load(fileURLToPath(entryUrl));
  return { files, saveCache };
}

function outcomeOf(
  cacheFile: string | undefined,
  cachedData: Buffer | undefined,
  script: Script,
): CacheOutcome {
  if (!cacheFile) return 'off';
  if (!cachedData) return 'none';
  return script.cachedDataRejected ? 'rejected' : 'used';
}

/**
 * The wrapper Node puts around a CommonJS module, opened on the file's first line so line
 * numbers in stack traces stay the file's. The bundle is ASCII (esbuild escapes the rest),
 * so it is read as latin1: no UTF-8 decoding pass.
 */
function wrap(source: string): string {
  const body = source.startsWith('#!') ? `//${source.slice(2)}` : source;
  return `(function (exports, require, module, __filename, __dirname) { ${body}\n})`;
}

/** The cache's bytes, if the file is ours and only we may write it; else undefined. */
function readOwnCache(file: string): Buffer | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    return ownedByUs(fstatSync(fd)) ? readFileSync(fd) : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function ownedByUs(stat: { uid: number; mode: number }): boolean {
  const uid = process.getuid?.();
  return (uid === undefined || stat.uid === uid) && (stat.mode & 0o022) === 0;
}

/** The build's cache directory, made private; false if it exists and is not ours alone. */
function makeOwnDir(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch {
    return false;
  }
  return isOwnDir(dir);
}

/** True if `dir` is a directory (not a link) that belongs to us and nobody else may write. */
function isOwnDir(dir: string): boolean {
  try {
    const stat = lstatSync(dir);
    return stat.isDirectory() && ownedByUs(stat);
  } catch {
    return false;
  }
}

/** Writes a cache whole or not at all: a start that reads it half-written would waste it. */
function writeCache(file: string, data: Buffer): void {
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, data, { mode: 0o600 });
    renameSync(temporary, file);
  } catch {
    try {
      rmSync(temporary, { force: true });
    } catch {
      // Left for the next write of the same file to replace.
    }
  }
}

/** Removes all but the newest KEEP_BUILDS build directories, so upgrades leave no heap. */
function pruneOlderBuilds(root: string): void {
  try {
    const builds = readdirSync(root, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => ({ path: join(root, entry.name), mtimeMs: statSync(join(root, entry.name)).mtimeMs }))
      .sort((a, b) => b.mtimeMs - a.mtimeMs);
    for (const old of builds.slice(KEEP_BUILDS)) rmSync(old.path, { recursive: true, force: true });
  } catch {
    // Another start pruning at the same time, or a directory we cannot read: it stays.
  }
}
