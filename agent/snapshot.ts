/**
 * Snapshots of the registry, and putting one back.
 *
 * `snapshotRegistry` writes a consistent copy with SQLite's `VACUUM INTO` (one read
 * transaction: the copy is the registry as of one instant, even while the agent writes) to
 * `<dir>/registry-<UTC time>.db`, mode 0600 in a 0700 directory, and keeps the newest `keep`
 * snapshots (0 keeps all). The agent may keep running.
 *
 * `restoreSnapshot` is for a stopped agent: it refuses while any process has the database
 * open. It checks that the snapshot opens, passes `integrity_check`, has the current schema and
 * an audit chain that verifies; then it moves the database aside (with its -wal, which holds
 * its latest writes) to `<database>.before-restore-<time>` and puts a copy of the snapshot in
 * its place with one rename.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FailedPreconditionError, InvalidArgumentError, McpError, NotFoundError } from '../core/errors.js';
import { openRegistry, type Registry } from '../registry/db.js';

const SNAPSHOT_NAME = /^registry-\d{8}T\d{6}\.\d{3}Z\.db$/;

/** `20260301T120000.123Z`: sortable, and safe in a file name. */
export function fileTimestamp(time: Date): string {
  return time.toISOString().replace(/[-:]/g, '');
}

export interface SnapshotOptions {
  registry: Registry;
  /** Created (mode 0700) if missing. */
  dir: string;
  /** How many snapshots to keep, newest first; 0 keeps every one. */
  keep: number;
  now?: () => Date;
}

export interface SnapshotResult {
  /** The snapshot written. */
  file: string;
  bytes: number;
  /** Older snapshots removed to keep `keep`. */
  removed: string[];
}

/** Mode 0600 and on disk before the file is put into place. */
async function makePrivateAndDurable(file: string): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.chmod(0o600);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function snapshotRegistry(options: SnapshotOptions): Promise<SnapshotResult> {
  const { registry, dir, keep } = options;
  const now = options.now?.() ?? new Date();
  if (!Number.isInteger(keep) || keep < 0) {
    throw new InvalidArgumentError(`keep ${keep} is not a count of snapshots: give 0 (keep all) or more`);
  }
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.chmod(dir, 0o700);
  const file = path.join(dir, `registry-${fileTimestamp(now)}.db`);
  const temp = path.join(dir, `.registry-${fileTimestamp(now)}.${randomBytes(4).toString('hex')}.tmp`);
  // VACUUM INTO accepts an empty file: creating it first gives it mode 0600 from the start.
  await (await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)).close();
  try {
    registry.db.prepare('VACUUM INTO ?').run(temp);
    await makePrivateAndDurable(temp);
    try {
      await fs.link(temp, file); // never replaces: two snapshots in the same millisecond fail loudly
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new McpError('ALREADY_EXISTS', `snapshot ${file} already exists: retry in a moment`);
      }
      throw err;
    }
  } finally {
    await fs.unlink(temp).catch(() => undefined);
  }
  await syncDirectory(dir);
  const removed = keep > 0 ? await pruneSnapshots(dir, keep) : [];
  const { size } = await fs.stat(file);
  return { file, bytes: size, removed };
}

/** Snapshot files in `dir`, oldest first. */
export async function listSnapshots(dir: string): Promise<string[]> {
  const names = (await fs.readdir(dir)).filter((name) => SNAPSHOT_NAME.test(name)).sort();
  return names.map((name) => path.join(dir, name));
}

async function pruneSnapshots(dir: string, keep: number): Promise<string[]> {
  const all = await listSnapshots(dir);
  const old = all.slice(0, Math.max(0, all.length - keep));
  for (const file of old) await fs.rm(file, { force: true });
  return old;
}

export interface RestoreOptions {
  /** The snapshot file to restore. */
  snapshot: string;
  /** The agent's registry database (`database` in the agent config). */
  database: string;
  now?: () => Date;
}

export interface RestoreResult {
  database: string;
  /** Where the database that was replaced now is; undefined when there was none. */
  previous?: string;
  services: number;
  auditRecords: number;
}

/** Puts `snapshot` in place of `database`. Stop the agent first: this refuses while the database is open. */
export async function restoreSnapshot(options: RestoreOptions): Promise<RestoreResult> {
  const database = path.resolve(options.database);
  const snapshot = path.resolve(options.snapshot);
  const stamp = fileTimestamp(options.now?.() ?? new Date());
  const checked = checkSnapshot(snapshot);

  const holders = await processesHolding([database, `${database}-wal`]);
  if (holders.length > 0) {
    throw new FailedPreconditionError(
      `${database} is open in process ${holders.join(', ')}: stop the agent (systemctl stop mcp-agent) before restoring`,
    );
  }

  const dir = path.dirname(database);
  const temp = path.join(dir, `.${path.basename(database)}.restore-${stamp}.tmp`);
  await fs.copyFile(snapshot, temp, constants.COPYFILE_EXCL);
  try {
    await makePrivateAndDurable(temp);
    let previous: string | undefined;
    if (await exists(database)) {
      previous = `${database}.before-restore-${stamp}`;
      // A hard link keeps the old database under its new name while the rename below
      // replaces the current name in one step; its -wal (recent writes) moves along with it.
      await fs.link(database, previous);
      await moveIfPresent(`${database}-wal`, `${previous}-wal`);
    }
    await fs.rm(`${database}-wal`, { force: true });
    await fs.rm(`${database}-shm`, { force: true });
    await fs.rename(temp, database);
    await syncDirectory(dir);
    return { database, previous, ...checked };
  } finally {
    await fs.rm(temp, { force: true });
  }
}

/** Opens the snapshot read-only and checks it is a whole, current registry whose audit chain verifies. */
function checkSnapshot(snapshot: string): { services: number; auditRecords: number } {
  let registry: Registry;
  try {
    registry = openRegistry(snapshot, { readonly: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'SQLITE_CANTOPEN') {
      throw new NotFoundError(`snapshot ${snapshot} cannot be opened: check the path`, { cause: err });
    }
    if (err instanceof McpError) {
      throw new FailedPreconditionError(`snapshot ${snapshot} cannot be restored: ${err.message}`, {
        cause: err,
      });
    }
    throw new FailedPreconditionError(
      `snapshot ${snapshot} is not a registry database (${err instanceof Error ? err.message : String(err)})`,
      { cause: err },
    );
  }
  try {
    const integrity = registry.db.pragma('integrity_check', { simple: true });
    if (integrity !== 'ok') {
      throw new FailedPreconditionError(
        `snapshot ${snapshot} is damaged (integrity_check: ${String(integrity)})`,
      );
    }
    const chain = registry.audit.verifyChain();
    if (!chain.ok) {
      throw new FailedPreconditionError(
        `the audit chain of snapshot ${snapshot} breaks at record ${chain.seq}: ${chain.reason}; it is not restored`,
      );
    }
    return { services: registry.services.names().length, auditRecords: chain.count };
  } finally {
    registry.close();
  }
}

/** Process ids with one of `files` open (this one included), from /proc/<pid>/fd. */
export async function processesHolding(files: readonly string[]): Promise<number[]> {
  const wanted = new Set<string>();
  for (const file of files) {
    try {
      wanted.add(await fs.realpath(file));
    } catch {
      // not there: nobody holds it
    }
  }
  if (wanted.size === 0) return [];
  const holders: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    let fds: string[];
    try {
      fds = await fs.readdir(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      const target = await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (wanted.has(target)) {
        holders.push(pid);
        break;
      }
    }
  }
  return holders;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch {
    return false;
  }
}

async function moveIfPresent(from: string, to: string): Promise<void> {
  try {
    await fs.rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
