/**
 * The audit log: one record for every call to the agent, allowed or denied, written before
 * the handler runs. Append-only (SQL triggers refuse UPDATE and DELETE) and tamper-evident:
 * every row carries the SHA-256 of the row before it, so an edited or deleted row breaks the
 * chain at a seq that `verifyChain` names.
 *
 * An allowed call is two rows sharing a call id: `call` (who, what, decision) before the
 * handler, `outcome` (ok/error, duration) after it. A denied call is one `call` row whose
 * outcome is already `error`. A call row with no outcome row reads back as outcome `unknown`:
 * the agent stopped while it ran (or it is still running).
 *
 * Group commit: `recordCall` and `recordOutcome` queue their row; the rows queued while the
 * event loop ran are written in one transaction, in queue order with their hash links, and
 * made durable by one fdatasync of the WAL, run off the event loop. A call's promise resolves
 * only after that sync, so its attempt is on disk before its handler runs. Outcome rows ride
 * along lazily: they wait for the next call's batch (at most OUTCOME_DELAY_MS, then they are
 * committed on their own), so a steady stream of calls costs one transaction per call, and
 * they are durable with the next sync (one lost in a power cut or a kill reads back as
 * `unknown`, as for an agent killed mid-call). Every read writes what is queued first.
 *
 * Every write error is raised as an AuditWriteError; callers refuse the call (fail closed).
 */
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, fdatasync, fstatSync, openSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { InvalidArgumentError, McpError, NotFoundError } from '../core/errors.js';
import type { AuditDecisionName, AuditOutcomeName } from '../core/states.js';

/** prev_hash of the first record. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * The fields a record's hash covers, in the order they are serialized. Changing this list
 * (or its order) invalidates every existing chain: append new fields at the end, in a new
 * hash version, never reorder.
 */
export const AUDIT_HASHED_FIELDS = [
  'seq',
  'call_id',
  'entry',
  'time',
  'node',
  'issuer',
  'subject',
  'client_id',
  'roles',
  'rpc',
  'tool',
  'service',
  'component',
  'args_sha256',
  'request_id',
  'decision',
  'outcome',
  'error_code',
  'error_message',
  'duration_ms',
] as const;

const DEFAULT_PAGE_SIZE = 50;
/** How long a queued outcome waits for a call's batch to ride along with before it is committed alone. */
export const OUTCOME_DELAY_MS = 20;
/** The one page-size limit of audit reads (gRPC, CLI, tests): more is refused, not cut short. */
export const MAX_AUDIT_PAGE_SIZE = 500;
const MAX_ERROR_MESSAGE_LENGTH = 2000;

/**
 * One row of the log as stored, with `roles` as an array. It is also one line of the JSONL
 * export, so an export can be verified offline with `auditRowHash`.
 */
export interface AuditRow {
  seq: number;
  call_id: string;
  entry: 'call' | 'outcome';
  /** RFC 3339, UTC, milliseconds. */
  time: string;
  node: string | null;
  issuer: string | null;
  subject: string | null;
  client_id: string | null;
  roles: string[] | null;
  rpc: string | null;
  tool: string | null;
  service: string | null;
  component: string | null;
  args_sha256: string | null;
  request_id: string | null;
  decision: AuditDecisionName | null;
  outcome: 'ok' | 'error' | null;
  error_code: string | null;
  error_message: string | null;
  duration_ms: number | null;
  /** The human's answer to the call's plan, when one was asked (hashed only when set). */
  confirmation?: string | null;
  prev_hash: string;
  hash: string;
}

type HashedRow = Omit<AuditRow, 'prev_hash' | 'hash'>;

/**
 * SHA-256 hex of the previous hash followed by the row's hashed fields as a JSON array. The
 * confirmation joins the array at its end only when a row has one, so records written before
 * it existed keep their hashes.
 */
export function auditRowHash(prevHash: string, row: HashedRow): string {
  const fields: unknown[] = AUDIT_HASHED_FIELDS.map((field) => row[field]);
  if (row.confirmation) fields.push(row.confirmation);
  const canonical = JSON.stringify(fields);
  return createHash('sha256').update(prevHash).update(canonical).digest('hex');
}

interface AuditCallCommon {
  /** When the call arrived; defaults to now. */
  time?: Date;
  node: string;
  issuer?: string;
  subject?: string;
  clientId?: string;
  roles?: string[];
  rpc: string;
  tool?: string;
  service?: string;
  component?: string;
  /** SHA-256 of the canonical arguments, file content excluded. */
  argsSha256?: string;
  requestId?: string;
  /** The human's answer to the plan, as the connector reported it. */
  confirmation?: string;
}

/** An allowed call, recorded before its handler runs; its outcome follows with appendOutcome. */
export interface AllowedCall extends AuditCallCommon {
  decision: 'allow';
}

/** A refused call, complete in one record. */
export interface DeniedCall extends AuditCallCommon {
  decision: 'deny';
  /** For example `UNAUTHENTICATED` or `PERMISSION_DENIED`. */
  errorCode: string;
  errorMessage?: string;
  durationMs?: number;
}

export type AuditCall = AllowedCall | DeniedCall;

export interface AuditCallRef {
  callId: string;
  seq: number;
}

export interface AuditOutcomeInput {
  outcome: 'ok' | 'error';
  /** gRPC status code name, for example `NOT_FOUND`. */
  errorCode?: string;
  errorMessage?: string;
  durationMs: number;
  time?: Date;
}

/**
 * Which services' records a reader may see (the caller's RBAC scope for `audit.query`, with
 * roles limited to other nodes already dropped). `all` also shows records that name no service.
 */
export interface AuditScope {
  readonly all: boolean;
  allows(service: string): boolean;
}

export interface AuditQuery {
  /** At or after. */
  since?: Date;
  /** Before. */
  until?: Date;
  subject?: string;
  rpc?: string;
  service?: string;
  decision?: AuditDecisionName;
  outcome?: AuditOutcomeName;
  /**
   * Only records the reader's scope covers; omitted means every record. Applied in the query
   * itself, so pages stay full and page tokens stay correct.
   */
  scope?: AuditScope;
  /** Default 50, at most MAX_AUDIT_PAGE_SIZE (more is INVALID_ARGUMENT). */
  pageSize?: number;
  /** `nextPageToken` of the previous page. */
  pageToken?: string;
}

/** One call: its call row joined with its outcome row. */
export interface AuditEntry {
  /** seq of the call row. */
  seq: number;
  callId: string;
  time: Date;
  node: string;
  issuer: string;
  subject: string;
  clientId: string;
  roles: string[];
  rpc: string;
  tool: string;
  service: string;
  component: string;
  argsSha256: string;
  requestId: string;
  decision: AuditDecisionName;
  outcome: AuditOutcomeName;
  errorCode: string;
  errorMessage: string;
  /** 0 while the outcome is unknown. */
  durationMs: number;
  /** Of the call row. */
  prevHash: string;
  /** Of the call row. */
  hash: string;
  /** seq of the outcome row, when there is one. */
  outcomeSeq: number | undefined;
  /** The human's answer to the call's plan; '' when none was asked. */
  confirmation: string;
}

export interface AuditPage {
  /** Newest first. */
  records: AuditEntry[];
  /** '' on the last page. */
  nextPageToken: string;
}

export type ChainVerification = { ok: true; count: number } | { ok: false; seq: number; reason: string };

export interface ChainHead {
  /** 0 for an empty log. */
  seq: number;
  hash: string;
}

/** The audit record could not be written, so the call must not go ahead. */
export class AuditWriteError extends McpError {
  constructor(cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    const code = sqliteCode(cause);
    super(
      'UNAVAILABLE',
      `the audit record could not be written${code ? ` (${code})` : ''}: ${detail}; ` +
        'calls are refused until the audit log is writable again (check free disk space and the registry file)',
      { cause },
    );
  }
}

/** audit_log as SQLite returns it: roles still JSON text. */
type StoredRow = Omit<AuditRow, 'roles'> & { roles: string | null };

type JoinedRow = StoredRow & {
  o_seq: number | null;
  o_outcome: 'ok' | 'error' | null;
  o_error_code: string | null;
  o_error_message: string | null;
  o_duration_ms: number | null;
};

export class AuditLog {
  private readonly db: Database.Database;
  private readonly statements;
  /** Last record written. Kept in memory so appends need no read; undefined after a failed write. */
  private chainHead: ChainHead | undefined;
  /** The scope of the query running now; read by the SQL function `audit_in_scope`. */
  private activeScope: AuditScope | undefined;
  /** Rows waiting for the next batch, in the order they will take in the chain. */
  private queue: QueuedRow[] = [];
  private flushScheduled = false;
  /** Set while queued outcomes wait for a call's batch (see OUTCOME_DELAY_MS). */
  private outcomeTimer: NodeJS.Timeout | undefined;
  /** Call rows in `queue`: they need a batch now; outcomes alone can wait. */
  private callsQueued = 0;
  /** Set while a batch's sync runs: rows queued meanwhile form the next batch. */
  private syncing = false;
  /**
   * Allowed calls recorded by this process whose outcome is not queued yet, with their node:
   * an outcome needs no read of its call row. Calls of an earlier process are checked in SQL.
   */
  private readonly openCalls = new Map<string, string | null>();
  /** Outcomes queued and not yet written, so a second one is refused before it reaches SQL. */
  private readonly queuedOutcomes = new Set<string>();
  /** Set for a WAL database file with synchronous FULL: batches sync the WAL themselves. */
  private readonly wal: WalSync | undefined;
  /** Appends rows to the chain; returns the new head and the rows' seqs. */
  private readonly appendTransaction: Database.Transaction<
    (rows: ReadonlyArray<Omit<HashedRow, 'seq'>>) => { head: ChainHead; seqs: number[] }
  >;

  constructor(db: Database.Database) {
    this.db = db;
    // Service globs are picomatch patterns, which SQL cannot evaluate: the query asks this
    // function instead, row by row, so filtering stays inside the query. better-sqlite3 is
    // synchronous, so the scope set around one query cannot leak into another.
    db.function('audit_in_scope', { deterministic: false }, (service: unknown) =>
      typeof service === 'string' && service !== '' && this.activeScope?.allows(service) === true ? 1 : 0,
    );
    this.statements = {
      head: db.prepare<[], ChainHead>('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1'),
      insert: db.prepare<StoredRow>(
        `INSERT INTO audit_log (${AUDIT_HASHED_FIELDS.join(', ')}, confirmation, prev_hash, hash)
         VALUES (${AUDIT_HASHED_FIELDS.map((f) => `@${f}`).join(', ')}, @confirmation, @prev_hash, @hash)`,
      ),
      callRow: db.prepare<[string], Pick<StoredRow, 'node' | 'decision'>>(
        "SELECT node, decision FROM audit_log WHERE call_id = ? AND entry = 'call'",
      ),
      outcomeRow: db.prepare<[string], { seq: number }>(
        "SELECT seq FROM audit_log WHERE call_id = ? AND entry = 'outcome'",
      ),
      all: db.prepare<[], StoredRow>('SELECT * FROM audit_log ORDER BY seq'),
      since: db.prepare<{ since: string | null }, StoredRow>(
        'SELECT * FROM audit_log WHERE @since IS NULL OR time >= @since ORDER BY seq',
      ),
    };
    this.chainHead = this.readHead();
    this.wal = WalSync.for(db);
    this.appendTransaction = db.transaction((rows: ReadonlyArray<Omit<HashedRow, 'seq'>>) => {
      // The head is held in memory; a second writer on the same file makes the seq collide
      // on the primary key and the append fail, rather than fork the chain.
      let head = this.chainHead ?? this.readHead();
      const seqs: number[] = [];
      for (const row of rows) {
        const hashed: HashedRow = { ...row, seq: head.seq + 1 };
        const hash = auditRowHash(head.hash, hashed);
        this.statements.insert.run({
          ...hashed,
          roles: hashed.roles === null ? null : JSON.stringify(hashed.roles),
          prev_hash: head.hash,
          hash,
        });
        head = { seq: hashed.seq, hash };
        seqs.push(hashed.seq);
      }
      return { head, seqs };
    });
  }

  /**
   * Records a call (an attempt about to run, or a refusal) and resolves once its row is on
   * disk, committed and synced together with the rows queued beside it. Rejects with an
   * AuditWriteError when the batch could not be written or synced: refuse the call.
   */
  recordCall(call: AuditCall): Promise<AuditCallRef> {
    const { callId, row } = this.callRow(call);
    return this.enqueue(row, true).then((seq) => {
      if (call.decision === 'allow') this.openCalls.set(callId, row.node);
      return { callId, seq };
    });
  }

  /**
   * Queues how an allowed call ended; resolves with the outcome row's seq once it is committed.
   * It becomes durable with the next batch's sync, so the caller need not wait for it.
   */
  recordOutcome(callId: string, result: AuditOutcomeInput): Promise<number> {
    try {
      return this.enqueue(this.outcomeRow(callId, result), false);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Records a call at once, durably, after any queued rows: `recordCall` without batching. */
  appendCall(call: AuditCall): AuditCallRef {
    const { callId, row } = this.callRow(call);
    const seq = this.appendNow(row);
    if (call.decision === 'allow') this.openCalls.set(callId, row.node);
    return { callId, seq };
  }

  /** Records how an allowed call ended, at once, after any queued rows; returns its seq. */
  appendOutcome(callId: string, result: AuditOutcomeInput): number {
    return this.appendNow(this.outcomeRow(callId, result));
  }

  /** Writes what is queued and releases the WAL file; call before closing the database. */
  close(): void {
    if (this.outcomeTimer !== undefined) clearTimeout(this.outcomeTimer);
    this.outcomeTimer = undefined;
    this.flushQueued();
    this.wal?.close();
  }

  private callRow(call: AuditCall): { callId: string; row: Omit<HashedRow, 'seq'> } {
    const callId = randomUUID();
    const denied = call.decision === 'deny';
    const row: Omit<HashedRow, 'seq'> = {
      call_id: callId,
      entry: 'call',
      time: (call.time ?? new Date()).toISOString(),
      node: call.node,
      issuer: call.issuer ?? null,
      subject: call.subject ?? null,
      client_id: call.clientId ?? null,
      roles: call.roles ? [...call.roles] : null,
      rpc: call.rpc,
      tool: call.tool ?? null,
      service: call.service ?? null,
      component: call.component ?? null,
      args_sha256: call.argsSha256 ?? null,
      request_id: call.requestId ?? null,
      decision: call.decision,
      outcome: denied ? 'error' : null,
      error_code: denied ? call.errorCode : null,
      error_message: denied ? truncated(call.errorMessage) : null,
      duration_ms: denied ? checkedDuration(call.durationMs ?? 0) : null,
      confirmation: call.confirmation ?? null,
    };
    return { callId, row };
  }

  /** The outcome row of an allowed call, checked so that writing it cannot fail its batch. */
  private outcomeRow(callId: string, result: AuditOutcomeInput): Omit<HashedRow, 'seq'> {
    const durationMs = checkedDuration(result.durationMs);
    if (this.queuedOutcomes.has(callId)) {
      throw new InvalidArgumentError(`the outcome of call ${callId} is already recorded`);
    }
    let node = this.openCalls.get(callId);
    if (!this.openCalls.has(callId)) {
      const call = this.statements.callRow.get(callId);
      if (!call) throw new NotFoundError(`no audit record of a call with id ${callId}`);
      if (call.decision === 'deny') {
        throw new InvalidArgumentError(`call ${callId} was denied: its outcome is part of its call record`);
      }
      if (this.statements.outcomeRow.get(callId)) {
        throw new InvalidArgumentError(`the outcome of call ${callId} is already recorded`);
      }
      node = call.node;
    }
    this.openCalls.delete(callId);
    return {
      call_id: callId,
      entry: 'outcome',
      time: (result.time ?? new Date()).toISOString(),
      node: node ?? null,
      issuer: null,
      subject: null,
      client_id: null,
      roles: null,
      rpc: null,
      tool: null,
      service: null,
      component: null,
      args_sha256: null,
      request_id: null,
      decision: null,
      outcome: result.outcome,
      error_code: result.errorCode ?? null,
      error_message: truncated(result.errorMessage),
      duration_ms: durationMs,
      confirmation: null,
    };
  }

  /** Calls matching every filter given, newest first, one page at a time. */
  query(query: AuditQuery = {}): AuditPage {
    this.flushQueued();
    const pageSize = pageSizeOf(query.pageSize);
    const clauses = ["c.entry = 'call'"];
    const params: Record<string, string | number> = { limit: pageSize + 1 };
    const filter = (clause: string, name: string, value: string | undefined) => {
      if (value === undefined) return;
      clauses.push(clause);
      params[name] = value;
    };
    filter('c.time >= @since', 'since', query.since?.toISOString());
    filter('c.time < @until', 'until', query.until?.toISOString());
    filter('c.subject = @subject', 'subject', query.subject);
    filter('c.rpc = @rpc', 'rpc', query.rpc);
    filter('c.service = @service', 'service', query.service);
    filter('c.decision = @decision', 'decision', query.decision);
    filter("COALESCE(c.outcome, o.outcome, 'unknown') = @outcome", 'outcome', query.outcome);
    if (query.pageToken) {
      clauses.push('c.seq < @before');
      params.before = parsePageToken(query.pageToken);
    }
    // A scoped reader sees records of services it covers; records naming no service (node-wide
    // calls, refusals before a target was known) are for unscoped readers only.
    const scoped = query.scope !== undefined && !query.scope.all;
    if (scoped) clauses.push('audit_in_scope(c.service) = 1');
    // Only fixed clause texts are concatenated; every value is a bound parameter.
    const statement = this.db.prepare<Record<string, string | number>, JoinedRow>(
      `SELECT c.*, o.seq AS o_seq, o.outcome AS o_outcome, o.error_code AS o_error_code,
         o.error_message AS o_error_message, o.duration_ms AS o_duration_ms
       FROM audit_log c LEFT JOIN audit_log o ON o.call_id = c.call_id AND o.entry = 'outcome'
       WHERE ${clauses.join(' AND ')}
       ORDER BY c.seq DESC LIMIT @limit`,
    );
    this.activeScope = scoped ? query.scope : undefined;
    let rows: JoinedRow[];
    try {
      rows = statement.all(params);
    } finally {
      this.activeScope = undefined;
    }
    const records = rows.slice(0, pageSize).map(toEntry);
    const last = records.at(-1);
    const nextPageToken = rows.length > pageSize && last ? pageTokenAfter(last.seq) : '';
    return { records, nextPageToken };
  }

  /**
   * Recomputes every hash in seq order and names the first record that does not hold:
   * a changed field, a broken link, a missing seq. Also compares the end of the log with
   * what this process last wrote, which catches a truncated or rewritten tail.
   *
   * The chain alone cannot tell a log whose newest records were removed (or that was emptied,
   * or rewritten from some record on) from an honest shorter one. `anchors` (heads noted off
   * the node: the agent logs one every `audit.anchor_interval_seconds`) close that gap: each
   * must still be in the chain with the same hash, and the log must reach it.
   */
  verifyChain(anchors: readonly ChainHead[] = []): ChainVerification {
    this.flushQueued();
    let expectedSeq = 1;
    let prevHash = GENESIS_HASH;
    const anchored = new Map(anchors.map((anchor) => [anchor.seq, anchor.hash.toLowerCase()]));
    for (const stored of this.statements.all.iterate()) {
      if (stored.seq !== expectedSeq) {
        const missing =
          stored.seq - 1 === expectedSeq
            ? `record ${expectedSeq} is missing`
            : `records ${expectedSeq} to ${stored.seq - 1} are missing`;
        return { ok: false, seq: expectedSeq, reason: `${missing} (the next record is ${stored.seq})` };
      }
      if (stored.prev_hash !== prevHash) {
        return {
          ok: false,
          seq: stored.seq,
          reason: `the prev_hash of record ${stored.seq} does not match the hash of record ${stored.seq - 1}`,
        };
      }
      const row = parseRoles(stored);
      if (!row)
        return {
          ok: false,
          seq: stored.seq,
          reason: `the roles of record ${stored.seq} are not a JSON array of strings`,
        };
      if (auditRowHash(prevHash, row) !== stored.hash) {
        return {
          ok: false,
          seq: stored.seq,
          reason: `the hash of record ${stored.seq} does not match its contents (a field was changed)`,
        };
      }
      const anchorHash = anchored.get(stored.seq);
      if (anchorHash !== undefined && anchorHash !== stored.hash) {
        return {
          ok: false,
          seq: stored.seq,
          reason: `record ${stored.seq} has hash ${stored.hash}, the anchor says ${anchorHash} (the log was rewritten from this record on, or earlier)`,
        };
      }
      prevHash = stored.hash;
      expectedSeq += 1;
    }
    const count = expectedSeq - 1;
    const beyond = Math.max(0, ...anchored.keys());
    if (beyond > count) {
      return {
        ok: false,
        seq: count + 1,
        reason: `the log ends at record ${count}, but an anchor names record ${beyond}: records ${count + 1} to ${beyond} at least were deleted (the tail was truncated)`,
      };
    }
    const head = this.chainHead;
    if (head && head.seq > count) {
      return {
        ok: false,
        seq: count + 1,
        reason: `records ${count + 1} to ${head.seq} were written by this agent and are gone (the log was truncated)`,
      };
    }
    if (head && head.seq === count && count > 0 && head.hash !== prevHash) {
      return {
        ok: false,
        seq: count,
        reason: 'the last record differs from the one this agent wrote (the chain was rewritten)',
      };
    }
    return { ok: true, count };
  }

  /**
   * Writes every row (at or after `since`, if given) in seq order, one JSON document per
   * line, each ending in '\n'. Returns the number of rows. `write` must not use this registry:
   * the connection is busy until the export ends.
   */
  exportJsonl(since: Date | undefined, write: (line: string) => void): number {
    this.flushQueued();
    let count = 0;
    for (const stored of this.statements.since.iterate({ since: since?.toISOString() ?? null })) {
      const row = parseRoles(stored);
      const line: AuditRow = row
        ? { ...row, prev_hash: stored.prev_hash, hash: stored.hash }
        : // Export what is there even when roles were damaged; verifyChain reports it.
          { ...stored, roles: null };
      write(`${JSON.stringify(line)}\n`);
      count += 1;
    }
    return count;
  }

  /** The last record written: note its hash outside the node to detect a rewritten log later. */
  head(): ChainHead {
    this.flushQueued();
    this.chainHead ??= this.readHead();
    return { ...this.chainHead };
  }

  private readHead(): ChainHead {
    return this.statements.head.get() ?? { seq: 0, hash: GENESIS_HASH };
  }

  /** Queues a row for the next batch; resolves with its seq once written (and synced if durable). */
  private enqueue(row: Omit<HashedRow, 'seq'>, durable: boolean): Promise<number> {
    if (row.entry === 'outcome') this.queuedOutcomes.add(row.call_id);
    else this.callsQueued += 1;
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ row, durable, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.syncing || this.queue.length === 0) return;
    if (this.callsQueued === 0) {
      // Only outcomes: let them join the next call's batch rather than cost a transaction each.
      this.outcomeTimer ??= setTimeout(() => {
        this.outcomeTimer = undefined;
        void this.flushBatch();
      }, OUTCOME_DELAY_MS).unref();
      return;
    }
    if (this.outcomeTimer !== undefined) {
      clearTimeout(this.outcomeTimer);
      this.outcomeTimer = undefined;
    }
    this.flushScheduled = true;
    // setImmediate, not a microtask: calls whose requests arrived in the same turn of the
    // event loop join the batch.
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flushBatch();
    });
  }

  /** Writes the queued rows in one transaction, syncs once, then settles every waiter. */
  private async flushBatch(): Promise<void> {
    if (this.queue.length === 0 || this.syncing) return;
    if (this.db.inTransaction) {
      // Not reachable from the event loop (transactions are synchronous); try again next turn.
      this.scheduleFlush();
      return;
    }
    const batch = this.takeQueue();
    let seqs: number[];
    try {
      seqs = this.writeRows(
        batch.map((q) => q.row),
        this.wal ? 'wal' : 'inline',
      );
    } catch (err) {
      for (const q of batch) q.reject(err);
      this.scheduleFlush();
      return;
    }
    if (this.wal && batch.some((q) => q.durable)) {
      this.syncing = true;
      try {
        await this.wal.sync();
      } catch (err) {
        // Committed but maybe not on disk: the calls must not go ahead. Their rows stay in the
        // chain and read back as outcome `unknown`.
        const failure = new AuditWriteError(err);
        for (const q of batch) q.reject(failure);
        return;
      } finally {
        this.syncing = false;
        this.scheduleFlush();
      }
    }
    settle(batch, seqs);
  }

  /** Writes the queued rows now, durably; used before reads and by the synchronous appends. */
  private flushQueued(): void {
    if (this.queue.length === 0 || this.db.inTransaction) return;
    const batch = this.takeQueue();
    let seqs: number[];
    try {
      seqs = this.writeRows(
        batch.map((q) => q.row),
        'inline',
      );
    } catch (err) {
      for (const q of batch) q.reject(err);
      return;
    }
    settle(batch, seqs);
  }

  /** Appends one row after whatever is queued, in one durable transaction; returns its seq. */
  private appendNow(row: Omit<HashedRow, 'seq'>): number {
    if (this.db.inTransaction) {
      // An outer transaction could still roll the record back after the handler ran.
      throw new McpError('INTERNAL', 'audit records must be written outside other registry transactions');
    }
    const batch = this.takeQueue();
    let seqs: number[];
    try {
      seqs = this.writeRows([...batch.map((q) => q.row), row], 'inline');
    } catch (err) {
      for (const q of batch) q.reject(err);
      throw err;
    }
    settle(batch, seqs);
    return seqs.at(-1) as number;
  }

  private takeQueue(): QueuedRow[] {
    const batch = this.queue;
    this.queue = [];
    this.callsQueued = 0;
    for (const q of batch) if (q.row.entry === 'outcome') this.queuedOutcomes.delete(q.row.call_id);
    return batch;
  }

  /**
   * Appends rows to the chain in one transaction; returns their seqs. `inline` commits with the
   * connection's own synchronous level (FULL: SQLite syncs before COMMIT returns); `wal`
   * commits without a sync, which the caller then makes with WalSync off the event loop.
   */
  private writeRows(rows: ReadonlyArray<Omit<HashedRow, 'seq'>>, sync: 'inline' | 'wal'): number[] {
    // IMMEDIATE, as writeTransaction (transaction.ts) does; built once, not per batch.
    const commit = () => this.appendTransaction.immediate(rows);
    try {
      const written = sync === 'wal' && this.wal ? this.wal.withoutInlineSync(commit) : commit();
      this.chainHead = written.head;
      return written.seqs;
    } catch (err) {
      // Whatever failed, the head must be read again from what was actually committed.
      this.chainHead = undefined;
      throw err instanceof McpError ? err : new AuditWriteError(err);
    }
  }
}

function settle(batch: readonly QueuedRow[], seqs: readonly number[]): void {
  for (const [i, queued] of batch.entries()) queued.resolve(seqs[i] as number);
}

interface QueuedRow {
  row: Omit<HashedRow, 'seq'>;
  /** A call row: its waiter needs it on disk. Outcome rows only need it committed. */
  durable: boolean;
  resolve(seq: number): void;
  reject(err: unknown): void;
}

/**
 * Makes committed WAL frames durable with fdatasync on the libuv thread pool, so the event
 * loop keeps serving calls while the disk syncs. SQLite at synchronous FULL would make the
 * same sync of the same file, but inside COMMIT, holding the loop. Used only for a file
 * database in WAL mode whose connection runs at FULL or above: anything else is left as is.
 */
class WalSync {
  private fd: number | undefined;
  private readonly relax: Database.Statement;
  private readonly restore: Database.Statement;

  private constructor(
    db: Database.Database,
    private readonly path: string,
    level: number,
  ) {
    this.relax = db.prepare('PRAGMA synchronous = NORMAL');
    this.restore = db.prepare(`PRAGMA synchronous = ${level}`);
  }

  static for(db: Database.Database): WalSync | undefined {
    if (db.memory || db.readonly) return undefined;
    const mode = db.pragma('journal_mode', { simple: true });
    const level = db.pragma('synchronous', { simple: true });
    if (mode !== 'wal' || typeof level !== 'number' || level < 2) return undefined;
    return new WalSync(db, `${db.name}-wal`, level);
  }

  /** Runs a write transaction that commits without syncing; every other write keeps the connection's level. */
  withoutInlineSync<T>(commit: () => T): T {
    this.relax.run();
    try {
      return commit();
    } finally {
      this.restore.run();
    }
  }

  async sync(): Promise<void> {
    const fd = this.liveFd();
    await new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /**
   * An fd of the WAL file on disk now: SQLite deletes and recreates it when every connection
   * closed. A deleted file has no links left, which one fstat of the open fd tells.
   */
  private liveFd(): number {
    if (this.fd !== undefined && fstatSync(this.fd).nlink > 0) return this.fd;
    this.close();
    this.fd = openSync(this.path, 'r+');
    return this.fd;
  }
}

function toEntry(row: JoinedRow): AuditEntry {
  return {
    seq: row.seq,
    callId: row.call_id,
    time: new Date(row.time),
    node: row.node ?? '',
    issuer: row.issuer ?? '',
    subject: row.subject ?? '',
    clientId: row.client_id ?? '',
    roles: parseRoles(row)?.roles ?? [],
    rpc: row.rpc ?? '',
    tool: row.tool ?? '',
    service: row.service ?? '',
    component: row.component ?? '',
    argsSha256: row.args_sha256 ?? '',
    requestId: row.request_id ?? '',
    decision: row.decision ?? 'allow',
    outcome: row.outcome ?? row.o_outcome ?? 'unknown',
    errorCode: row.error_code ?? row.o_error_code ?? '',
    errorMessage: row.error_message ?? row.o_error_message ?? '',
    durationMs: row.duration_ms ?? row.o_duration_ms ?? 0,
    prevHash: row.prev_hash,
    hash: row.hash,
    outcomeSeq: row.o_seq ?? undefined,
    confirmation: row.confirmation ?? '',
  };
}

/** The row with roles decoded, or undefined when the stored text is not a list of strings. */
function parseRoles(stored: StoredRow): HashedRow | undefined {
  const { prev_hash: _prev, hash: _hash, ...rest } = stored;
  if (stored.roles === null) return { ...rest, roles: null };
  try {
    const roles: unknown = JSON.parse(stored.roles);
    if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string')) return undefined;
    return { ...rest, roles };
  } catch {
    return undefined;
  }
}

function pageSizeOf(requested: number | undefined): number {
  if (requested === undefined || requested === 0) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(requested) || requested < 0 || requested > MAX_AUDIT_PAGE_SIZE) {
    throw new InvalidArgumentError(
      `page size must be a whole number from 1 to ${MAX_AUDIT_PAGE_SIZE}, not ${requested}: ask for fewer and follow nextPageToken`,
    );
  }
  return requested;
}

function pageTokenAfter(seq: number): string {
  return Buffer.from(JSON.stringify({ before: seq })).toString('base64url');
}

function parsePageToken(token: string): number {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'before' in parsed) {
      const before = parsed.before;
      if (typeof before === 'number' && Number.isInteger(before) && before > 0) return before;
    }
  } catch {
    // Reported below like any other malformed token.
  }
  throw new InvalidArgumentError(
    'page token is not valid: pass the nextPageToken of the previous page unchanged',
  );
}

function truncated(message: string | undefined): string | null {
  if (message === undefined) return null;
  return message.length > MAX_ERROR_MESSAGE_LENGTH
    ? `${message.slice(0, MAX_ERROR_MESSAGE_LENGTH)}…`
    : message;
}

function checkedDuration(durationMs: number): number {
  if (!Number.isFinite(durationMs) || durationMs < 0) {
    throw new InvalidArgumentError(
      `duration must be a finite number of milliseconds >= 0, not ${durationMs}`,
    );
  }
  return durationMs;
}

function sqliteCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string')
    return err.code;
  return undefined;
}
