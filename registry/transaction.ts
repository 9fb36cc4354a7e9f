import type Database from 'better-sqlite3';

/**
 * Runs `fn` in a write transaction. IMMEDIATE takes the write lock up front: a deferred
 * transaction that reads and then writes fails at once with SQLITE_BUSY when another process
 * (the admin CLI, a second agent) wrote in between, while IMMEDIATE waits `busy_timeout`.
 * Called inside another transaction it becomes a savepoint of that one.
 */
export function writeTransaction<T>(db: Database.Database, fn: () => T): T {
  return db.transaction(fn).immediate();
}
