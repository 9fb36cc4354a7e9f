/**
 * The registry's schema, as an ordered list of migrations. A migration is never edited once
 * released: a change to the schema is a new entry at the end. Each one runs in its own
 * transaction together with its row in `schema_migrations`, so a crash leaves the database
 * either before or after it, and re-opening applies nothing twice.
 */
import type Database from 'better-sqlite3';
import { FailedPreconditionError } from '../core/errors.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The triggers that make audit_log append-only, by name. Created by migration 3 and checked at
 * every agent start (`repairAuditTriggers`): anyone with write access to the file can drop
 * them, so the agent puts them back.
 */
export const AUDIT_TRIGGERS: Readonly<Record<string, string>> = {
  audit_log_no_update: `CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
      BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;`,
  audit_log_no_delete: `CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
      BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;`,
};

// Note for later migrations: `PRAGMA foreign_keys` cannot change inside a transaction, so a
// migration that rebuilds a table with foreign keys needs its own handling in the runner.
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'services and components',
    sql: `
      CREATE TABLE services (
        name TEXT PRIMARY KEY,
        active INTEGER NOT NULL CHECK (active IN (0, 1)),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );

      -- position keeps the order of the definition: deploys go through components in it.
      CREATE TABLE components (
        service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        position INTEGER NOT NULL,
        image TEXT NOT NULL,
        version TEXT NOT NULL DEFAULT '',
        network TEXT NOT NULL DEFAULT '',
        user TEXT NOT NULL DEFAULT '',
        restart TEXT NOT NULL DEFAULT '',
        desired_state TEXT NOT NULL CHECK (desired_state IN ('running', 'stopped', 'ignore')),
        observed_state TEXT CHECK (observed_state IN
          ('running', 'exited', 'created', 'paused', 'restarting', 'missing', 'unknown')),
        container TEXT NOT NULL,
        started_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (service, name)
      );
      -- One runtime container belongs to one component; the lookup also splits names like
      -- 'mc-proxy' back into service and component without guessing at the first '-'.
      CREATE UNIQUE INDEX components_by_container ON components(container);

      CREATE TABLE component_ports (
        service TEXT NOT NULL,
        component TEXT NOT NULL,
        position INTEGER NOT NULL,
        mapping TEXT NOT NULL,
        PRIMARY KEY (service, component, position),
        FOREIGN KEY (service, component) REFERENCES components(service, name) ON DELETE CASCADE
      );

      CREATE TABLE component_volumes (
        service TEXT NOT NULL,
        component TEXT NOT NULL,
        position INTEGER NOT NULL,
        mapping TEXT NOT NULL,
        PRIMARY KEY (service, component, position),
        FOREIGN KEY (service, component) REFERENCES components(service, name) ON DELETE CASCADE
      );

      CREATE TABLE component_cmd (
        service TEXT NOT NULL,
        component TEXT NOT NULL,
        position INTEGER NOT NULL,
        arg TEXT NOT NULL,
        PRIMARY KEY (service, component, position),
        FOREIGN KEY (service, component) REFERENCES components(service, name) ON DELETE CASCADE
      );

      CREATE TABLE component_env (
        service TEXT NOT NULL,
        component TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (service, component, key),
        FOREIGN KEY (service, component) REFERENCES components(service, name) ON DELETE CASCADE
      );
    `,
  },
  {
    version: 2,
    name: 'events and request results',
    sql: `
      -- No foreign key to components: the history of a deleted service is still history.
      CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        service TEXT NOT NULL,
        component TEXT NOT NULL DEFAULT '',
        time TEXT NOT NULL,
        kind TEXT NOT NULL,
        previous_state TEXT,
        observed_state TEXT,
        message TEXT NOT NULL DEFAULT ''
      );
      CREATE INDEX events_by_component ON events(service, component, time);
      CREATE INDEX events_by_time ON events(time);

      CREATE TABLE request_results (
        request_id TEXT PRIMARY KEY,
        rpc TEXT NOT NULL,
        response_json TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE INDEX request_results_by_time ON request_results(created_at);
    `,
  },
  {
    version: 3,
    name: 'audit log',
    sql: `
      -- Two rows per allowed call (entry 'call' before the handler, 'outcome' after), one row
      -- per denied call. seq is assigned by the writer, not by SQLite, because it is hashed.
      CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL,
        entry TEXT NOT NULL CHECK (entry IN ('call', 'outcome')),
        time TEXT NOT NULL,
        node TEXT,
        issuer TEXT,
        subject TEXT,
        client_id TEXT,
        roles TEXT,
        rpc TEXT,
        tool TEXT,
        service TEXT,
        component TEXT,
        args_sha256 TEXT,
        request_id TEXT,
        decision TEXT CHECK (decision IN ('allow', 'deny')),
        outcome TEXT CHECK (outcome IN ('ok', 'error')),
        error_code TEXT,
        error_message TEXT,
        duration_ms REAL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
      );
      CREATE UNIQUE INDEX audit_log_one_entry_of_each_kind ON audit_log(call_id, entry);
      CREATE INDEX audit_log_by_time ON audit_log(time);

      ${AUDIT_TRIGGERS.audit_log_no_update}
      ${AUDIT_TRIGGERS.audit_log_no_delete}
    `,
  },
  {
    version: 4,
    name: 'observed image',
    sql: `
      -- The image reference the component's container was created from, as the runtime lists
      -- it ('' until observed): a container still running an older image than the recorded one
      -- is drift, e.g. after a crash between the components of a deploy.
      ALTER TABLE components ADD COLUMN observed_image TEXT NOT NULL DEFAULT '';
    `,
  },
  {
    version: 5,
    name: 'init and stop timeout',
    sql: `
      -- Whether the container runs an init process as PID 1 (--init), and the seconds a stop
      -- waits after SIGTERM (NULL: the default, 10 s).
      ALTER TABLE components ADD COLUMN init INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE components ADD COLUMN stop_timeout_seconds INTEGER;
    `,
  },
  {
    version: 6,
    name: 'env files',
    sql: `
      -- The env files a component's container is run with, by path under the service's files
      -- directory: the names only, their values stay in the files on the node.
      CREATE TABLE component_env_files (
        service TEXT NOT NULL,
        component TEXT NOT NULL,
        position INTEGER NOT NULL,
        path TEXT NOT NULL,
        PRIMARY KEY (service, component, position),
        FOREIGN KEY (service, component) REFERENCES components(service, name) ON DELETE CASCADE
      );
    `,
  },
  {
    version: 7,
    name: 'health checks and spec history',
    sql: `
      -- The component's health check as the contract's HealthCheck in ProtoJSON; NULL for none.
      ALTER TABLE components ADD COLUMN health_check TEXT;

      -- The last definitions deployed without failure, per service (ServiceSpec ProtoJSON),
      -- newest with the highest id: rollback_service redeploys the one before the newest.
      -- No foreign key: removing a service deletes its history explicitly.
      CREATE TABLE spec_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        service TEXT NOT NULL,
        deployed_at TEXT NOT NULL,
        spec_json TEXT NOT NULL
      );
      CREATE INDEX spec_history_by_service ON spec_history(service, id);
    `,
  },
  {
    version: 8,
    name: 'audit confirmation',
    sql: `
      -- A human's answer to the plan of a write, as the connector that asked reports it
      -- ('accepted plan=<digest> by=<asker>'); NULL for calls nobody confirmed.
      ALTER TABLE audit_log ADD COLUMN confirmation TEXT;
    `,
  },
];

export const LATEST_SCHEMA_VERSION = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/** Brings the schema up to date. Safe to run concurrently from two processes. */
export function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)');
  refuseNewerSchema(db);
  const isApplied = db.prepare<[number], { version: number }>(
    'SELECT version FROM schema_migrations WHERE version = ?',
  );
  const recordApplied = db.prepare<[number, string]>(
    'INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)',
  );
  for (const migration of MIGRATIONS) {
    // IMMEDIATE takes the write lock before the check, so a second agent starting at the
    // same moment waits and then sees the migration as applied.
    db.transaction(() => {
      if (isApplied.get(migration.version)) return;
      db.exec(migration.sql);
      recordApplied.run(migration.version, new Date().toISOString());
    }).immediate();
  }
}

/**
 * Puts back every audit trigger that is missing or was replaced by another definition under
 * its name; returns the names recreated (empty when all were in place). A trigger that raises
 * nothing under the right name counts as replaced: only the text is trusted.
 */
export function repairAuditTriggers(db: Database.Database): string[] {
  const present = db.prepare<[string], { sql: string | null }>(
    "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
  );
  // SQLite keeps the statement without its final ';'.
  const normalized = (sql: string) => sql.replace(/\s+/g, ' ').trim().replace(/;$/, '');
  const repaired: string[] = [];
  db.transaction(() => {
    for (const [name, sql] of Object.entries(AUDIT_TRIGGERS)) {
      const found = present.get(name);
      if (found?.sql && normalized(found.sql) === normalized(sql)) continue;
      if (found) db.exec(`DROP TRIGGER "${name}"`);
      db.exec(sql);
      repaired.push(name);
    }
  }).immediate();
  return repaired;
}

/** Highest applied version, 0 for a database never migrated. */
export function schemaVersion(db: Database.Database): number {
  const table = db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    .get();
  if (!table) return 0;
  const row = db
    .prepare<[], { version: number | null }>('SELECT MAX(version) AS version FROM schema_migrations')
    .get();
  return row?.version ?? 0;
}

/** For read-only opens, which cannot migrate: the schema must be exactly what this code knows. */
export function requireCurrentSchema(db: Database.Database, path: string): void {
  refuseNewerSchema(db);
  const version = schemaVersion(db);
  if (version < LATEST_SCHEMA_VERSION) {
    throw new FailedPreconditionError(
      `registry ${path} has schema version ${version}, this program needs ${LATEST_SCHEMA_VERSION}: ` +
        'start the agent once (it migrates the registry), then retry',
    );
  }
}

function refuseNewerSchema(db: Database.Database): void {
  const version = schemaVersion(db);
  if (version > LATEST_SCHEMA_VERSION) {
    throw new FailedPreconditionError(
      `registry schema version ${version} is newer than this program knows (${LATEST_SCHEMA_VERSION}): ` +
        'upgrade mcp before opening this registry',
    );
  }
}
