import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { McpError } from '../../core/errors.js';
import { openRegistry, type Registry } from '../../registry/db.js';
import { LATEST_SCHEMA_VERSION, MIGRATIONS } from '../../registry/migrations.js';
import { type TempRegistry, tempRegistry } from '../support/registry.js';
import { component, serviceSpec } from '../support/specs.js';

// These tests are about opening the file, so the fixture leaves the opening to them.
let temp: TempRegistry;
let dir: string;
let file: string;

function openAt(p: string, readonly = false): Registry {
  return temp.open(p, { readonly });
}

beforeEach(() => {
  temp = tempRegistry('mcp-registry-', { open: false });
  ({ dir, file } = temp);
});

afterEach(() => temp.cleanup());

const spec = serviceSpec('web', [component('web', { image: 'bb:v1' })], true);

describe('opening the registry', () => {
  it('applies every migration once and records it', () => {
    const registry = openAt(file);
    const versions = registry.db
      .prepare('SELECT version FROM schema_migrations ORDER BY version')
      .pluck()
      .all();
    expect(versions).toEqual(MIGRATIONS.map((m) => m.version));
    expect(registry.schemaVersion()).toBe(LATEST_SCHEMA_VERSION);
  });

  it('re-opening applies nothing twice and keeps the data', () => {
    const first = openAt(file);
    first.services.upsert(spec);
    const before = first.db.prepare('SELECT * FROM schema_migrations ORDER BY version').all();
    first.close();

    const second = openAt(file);
    expect(second.db.prepare('SELECT * FROM schema_migrations ORDER BY version').all()).toEqual(before);
    expect(second.services.get('web')?.components.map((c) => c.image)).toEqual(['bb:v1']);
  });

  it('creates the database private to the agent (0600), with its WAL files', () => {
    const registry = openAt(file);
    registry.services.upsert(spec);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    for (const sidecar of [`${file}-wal`, `${file}-shm`]) {
      expect(fs.statSync(sidecar).mode & 0o777).toBe(0o600);
    }
  });

  it('tightens the mode of an existing file left readable by others', () => {
    fs.writeFileSync(file, '', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    openAt(file);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('uses WAL, foreign keys, a busy timeout and full sync', () => {
    const { db } = openAt(file);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL
  });

  it('refuses a registry written by a newer version', () => {
    openAt(file).close();
    const raw = new Database(file);
    raw.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(999, 'later');
    raw.close();
    expect(() => openRegistry(file)).toThrow(/newer than this program knows/);
  });

  it('opens read-only without migrating, and refuses an unmigrated file', () => {
    const registry = openAt(file);
    registry.services.upsert(spec);
    registry.close();
    const reader = openAt(file, true);
    expect(reader.services.names()).toEqual(['web']);
    expect(() => reader.services.setActive('web', false)).toThrow(/readonly/);

    const empty = path.join(dir, 'empty.db');
    new Database(empty).close();
    let error: unknown;
    try {
      openRegistry(empty, { readonly: true });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(McpError);
    expect((error as McpError).code).toBe('FAILED_PRECONDITION');
  });

  it('runs changes across stores in one transaction that rolls back as a whole', () => {
    const registry = openAt(file);
    expect(() =>
      registry.transaction(() => {
        registry.services.upsert(spec);
        registry.events.record({ service: 'web', kind: 'deployed' });
        throw new Error('handler failed');
      }),
    ).toThrow('handler failed');
    expect(registry.services.names()).toEqual([]);
    expect(registry.events.query()).toEqual([]);
  });
});

describe('opening a registry that cannot be created', () => {
  it('says which path failed and what to do', () => {
    const missingDir = path.join(os.tmpdir(), 'mcp-registry-does-not-exist', 'registry.db');
    expect(() => openRegistry(missingDir)).toThrow(
      /cannot open the registry file .*ENOENT.*create its directory/,
    );
  });
});
