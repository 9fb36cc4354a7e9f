/**
 * Opens the agent's registry: one SQLite file holding services, components, events, request
 * results and the audit log. The file is private to the agent (mode 0600): it names every
 * container, image and environment variable on the node.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { FailedPreconditionError } from '../core/errors.js';
import { AuditLog } from './audit.js';
import { EventLog } from './events.js';
import { migrate, requireCurrentSchema, schemaVersion } from './migrations.js';
import { RequestResults } from './request-results.js';
import { ServiceStore } from './services.js';
import { writeTransaction } from './transaction.js';

export interface RegistryOptions {
  /**
   * Open without writing anything: no migrations, no file creation, no mode change. For tools
   * that read or verify a registry (or a copy of one). Every write then fails.
   */
  readonly?: boolean;
}

export class Registry {
  readonly path: string;
  /** The raw connection, for maintenance and tests. Prefer the stores below. */
  readonly db: Database.Database;
  readonly services: ServiceStore;
  readonly events: EventLog;
  readonly requestResults: RequestResults;
  readonly audit: AuditLog;

  constructor(db: Database.Database, path: string) {
    this.db = db;
    this.path = path;
    this.services = new ServiceStore(db);
    this.events = new EventLog(db);
    this.requestResults = new RequestResults(db);
    this.audit = new AuditLog(db);
  }

  /** Runs `fn` as one write transaction, for changes that span stores. */
  transaction<T>(fn: () => T): T {
    return writeTransaction(this.db, fn);
  }

  schemaVersion(): number {
    return schemaVersion(this.db);
  }

  close(): void {
    this.audit.close();
    this.db.close();
  }
}

const IN_MEMORY = ':memory:';

export function openRegistry(path: string, options: RegistryOptions = {}): Registry {
  const readonly = options.readonly ?? false;
  if (!readonly && path !== IN_MEMORY) createPrivateFile(path);
  const db = new Database(path, { readonly, fileMustExist: readonly });
  try {
    if (!readonly) {
      db.pragma('journal_mode = WAL');
      // The audit record of a call must be on disk before its handler acts.
      db.pragma('synchronous = FULL');
    }
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    if (readonly) {
      requireCurrentSchema(db, path);
    } else {
      migrate(db);
      if (path !== IN_MEMORY) restrictSidecarFiles(path);
    }
    return new Registry(db, path);
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Creates the file 0600 before SQLite does (SQLite would use 0644), or tightens an existing one. */
function createPrivateFile(path: string): void {
  let fd: number;
  try {
    fd = fs.openSync(path, 'a', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FailedPreconditionError(
      `cannot open the registry file ${path} (${code}): create its directory, owned by the agent's user, ` +
        'or set another registry path in the agent config',
      { cause: err },
    );
  }
  try {
    fs.fchmodSync(fd, 0o600);
  } finally {
    fs.closeSync(fd);
  }
}

/** SQLite gives -wal and -shm the database's mode; this makes sure of it. */
function restrictSidecarFiles(path: string): void {
  for (const suffix of ['-wal', '-shm']) {
    try {
      fs.chmodSync(`${path}${suffix}`, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
