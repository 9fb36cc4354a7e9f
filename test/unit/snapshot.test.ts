/**
 * Registry snapshots and restore, on real SQLite files in a temp dir. Restoring into a running
 * agent (and the agent coming back with the same services) is in
 * test/integration/snapshot.test.ts.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listSnapshots, restoreSnapshot, snapshotRegistry } from '../../agent/snapshot.js';
import type { Registry } from '../../registry/db.js';
import { readRegistry, type TempRegistry, tempRegistry } from '../support/registry.js';
import { component, serviceSpec } from '../support/specs.js';

let temp: TempRegistry;
let dir: string;
let database: string;
let backups: string;
let registry: Registry;

beforeEach(() => {
  temp = tempRegistry('mcp-snapshot-');
  ({ dir, file: database, registry } = temp);
  backups = path.join(dir, 'backups');
  const fields = { image: 'registry.example:5000/app:v1', env: { A: '1' } };
  registry.services.upsert(serviceSpec('shop', [component('web', fields), component('db', fields)], true));
  registry.services.upsert(serviceSpec('blog', [component('blog', fields)], false));
  for (let i = 0; i < 5; i += 1) {
    const { callId } = registry.audit.appendCall({
      node: 'node1',
      rpc: 'Deploy',
      decision: 'allow',
      service: 'shop',
    });
    registry.audit.appendOutcome(callId, { outcome: 'ok', errorCode: '', errorMessage: '', durationMs: 3 });
  }
});

afterEach(() => {
  temp.cleanup();
});

const at = (iso: string) => () => new Date(iso);

function contents(r: Registry) {
  return {
    services: r.services.list().map((s) => [s.name, s.active, s.components.map((c) => c.name)]),
    head: r.audit.head(),
  };
}

describe('snapshotRegistry', () => {
  it('writes a copy that opens read-only, has the same services, and whose audit chain verifies', async () => {
    const { file, bytes } = await snapshotRegistry({
      registry,
      dir: backups,
      keep: 3,
      now: at('2026-03-01T12:00:00.123Z'),
    });
    expect(file).toBe(path.join(backups, 'registry-20260301T120000.123Z.db'));
    expect(bytes).toBe(fs.statSync(file).size);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(backups).mode & 0o777).toBe(0o700);
    readRegistry(file, (copy) => {
      expect(copy.audit.verifyChain()).toEqual({ ok: true, count: 10 });
      expect(contents(copy)).toEqual(contents(registry));
    });
    expect(fs.readdirSync(backups)).toEqual(['registry-20260301T120000.123Z.db']);
  });

  it('leaves the original untouched and usable', async () => {
    const before = contents(registry);
    registry.close();
    const hashBefore = sha256(database);
    registry = temp.open();
    await snapshotRegistry({ registry, dir: backups, keep: 3 });
    expect(contents(registry)).toEqual(before);
    expect(registry.audit.verifyChain()).toEqual({ ok: true, count: 10 });
    registry.close();
    expect(sha256(database)).toBe(hashBefore);
    registry = temp.open();
    registry.audit.appendCall({ node: 'node1', rpc: 'StopService', decision: 'allow' });
  });

  it('is consistent while the registry is written: every snapshot has a whole chain', async () => {
    for (let i = 0; i < 5; i += 1) {
      registry.audit.appendCall({ node: 'node1', rpc: 'NodeStatus', decision: 'allow' });
      const { file } = await snapshotRegistry({
        registry,
        dir: backups,
        keep: 0,
        now: () => new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
      });
      readRegistry(file, (copy) => expect(copy.audit.verifyChain()).toEqual({ ok: true, count: 11 + i }));
    }
    expect(await listSnapshots(backups)).toHaveLength(5); // keep 0 keeps every one
  });

  it('keeps the newest `keep` snapshots', async () => {
    for (const second of ['01', '02', '03', '04']) {
      await snapshotRegistry({ registry, dir: backups, keep: 2, now: at(`2026-03-01T12:00:${second}.000Z`) });
    }
    fs.writeFileSync(path.join(backups, 'notes.txt'), 'not a snapshot');
    const { removed } = await snapshotRegistry({
      registry,
      dir: backups,
      keep: 2,
      now: at('2026-03-01T12:00:05.000Z'),
    });
    expect(removed.map((f) => path.basename(f))).toEqual(['registry-20260301T120003.000Z.db']);
    expect(fs.readdirSync(backups).sort()).toEqual([
      'notes.txt',
      'registry-20260301T120004.000Z.db',
      'registry-20260301T120005.000Z.db',
    ]);
  });

  it('does not replace a snapshot of the same millisecond', async () => {
    await snapshotRegistry({ registry, dir: backups, keep: 3, now: at('2026-03-01T12:00:00.000Z') });
    await expect(
      snapshotRegistry({ registry, dir: backups, keep: 3, now: at('2026-03-01T12:00:00.000Z') }),
    ).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(fs.readdirSync(backups)).toEqual(['registry-20260301T120000.000Z.db']);
  });
});

describe('restoreSnapshot', () => {
  it('refuses while the database is open', async () => {
    const { file } = await snapshotRegistry({ registry, dir: backups, keep: 3 });
    await expect(restoreSnapshot({ snapshot: file, database })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringContaining(`is open in process ${process.pid}: stop the agent`),
    });
  });

  it('puts the snapshot in place and keeps the old database, with its latest writes, beside it', async () => {
    const { file } = await snapshotRegistry({ registry, dir: backups, keep: 3 });
    const snapshotContents = contents(registry);
    registry.close();
    // Another process writes and dies before checkpointing: the write is only in the -wal.
    const killed = await execa(
      process.execPath,
      [
        '-e',
        `const db = new (require('better-sqlite3'))(process.argv[1]);
         db.prepare("INSERT INTO services (name, active, created_at, updated_at) VALUES ('later', 1, 'now', 'now')").run();
         process.kill(process.pid, 'SIGKILL');`,
        database,
      ],
      { reject: false },
    );
    expect(killed.signal).toBe('SIGKILL');
    expect(fs.statSync(`${database}-wal`).size).toBeGreaterThan(0);

    const result = await restoreSnapshot({ snapshot: file, database, now: at('2026-03-02T08:00:00.000Z') });
    expect(result).toEqual({
      database,
      previous: `${database}.before-restore-20260302T080000.000Z`,
      services: 2,
      auditRecords: 10,
    });
    expect(fs.existsSync(`${database}-wal`)).toBe(false);
    expect(fs.existsSync(`${database}-shm`)).toBe(false);
    expect(fs.statSync(database).mode & 0o777).toBe(0o600);
    registry = temp.open();
    expect(contents(registry)).toEqual(snapshotContents);
    expect(registry.audit.verifyChain().ok).toBe(true);
    readRegistry(result.previous as string, (previous) =>
      expect(previous.services.names()).toContain('later'),
    );
  });

  it('restores into a place with no database yet', async () => {
    const { file } = await snapshotRegistry({ registry, dir: backups, keep: 3 });
    registry.close();
    const fresh = path.join(dir, 'new', 'registry.db');
    fs.mkdirSync(path.dirname(fresh));
    const result = await restoreSnapshot({ snapshot: file, database: fresh });
    expect(result.previous).toBeUndefined();
    expect(fs.readdirSync(path.dirname(fresh))).toEqual(['registry.db']);
  });

  it('refuses a snapshot whose audit chain does not verify, and changes nothing', async () => {
    const { file } = await snapshotRegistry({ registry, dir: backups, keep: 3 });
    registry.close();
    const tampered = new Database(file);
    tampered.exec('DROP TRIGGER audit_log_no_update');
    tampered.prepare("UPDATE audit_log SET subject = 'someone-else' WHERE seq = 3").run();
    tampered.close();
    const hashBefore = sha256(database);
    await expect(restoreSnapshot({ snapshot: file, database })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringContaining('breaks at record 3'),
    });
    expect(sha256(database)).toBe(hashBefore);
    expect(fs.readdirSync(dir).sort()).toEqual(['backups', 'registry.db']);
  });

  it('refuses a file that is not a registry, and a missing one', async () => {
    registry.close();
    const junk = path.join(dir, 'junk.db');
    fs.writeFileSync(junk, 'not sqlite at all, just text that is long enough to look like a header');
    await expect(restoreSnapshot({ snapshot: junk, database })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
    });
    await expect(restoreSnapshot({ snapshot: path.join(dir, 'nope.db'), database })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
  });

  it('refuses a snapshot with a schema newer than this program', async () => {
    const { file } = await snapshotRegistry({ registry, dir: backups, keep: 3 });
    registry.close();
    const newer = new Database(file);
    newer
      .prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (999, ?)')
      .run(new Date().toISOString());
    newer.close();
    await expect(restoreSnapshot({ snapshot: file, database })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringContaining('newer than this program knows'),
    });
  });
});

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}
