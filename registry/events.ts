/**
 * What happened to components, newest first: observed-state transitions found by the monitor
 * and live checks, deploys, alerts. Flap detection counts transitions in a window; old events
 * are pruned on a retention.
 */
import type Database from 'better-sqlite3';
import { InvalidArgumentError } from '../core/errors.js';
import type { ObservedStateName } from '../core/states.js';

/** Kind of the event recorded when a component's observed state changes. */
export const TRANSITION_EVENT_KIND = 'observed_state';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

export interface EventInput {
  service: string;
  /** '' for an event about the whole service. */
  component?: string;
  /** For example `observed_state` (see TRANSITION_EVENT_KIND) or `deployed`. */
  kind: string;
  previousState?: ObservedStateName;
  observedState?: ObservedStateName;
  message?: string;
  /** Defaults to now. */
  time?: Date;
}

export interface EventRecord {
  id: number;
  service: string;
  component: string;
  time: Date;
  kind: string;
  previousState: ObservedStateName | undefined;
  observedState: ObservedStateName | undefined;
  message: string;
}

export interface EventQuery {
  service?: string;
  component?: string;
  /** At or after. */
  since?: Date;
  /** Before. */
  until?: Date;
  /** Default 100, at most 1000. */
  limit?: number;
}

interface EventRow {
  id: number;
  service: string;
  component: string;
  time: string;
  kind: string;
  previous_state: ObservedStateName | null;
  observed_state: ObservedStateName | null;
  message: string;
}

export class EventLog {
  private readonly db: Database.Database;
  private readonly statements;

  constructor(db: Database.Database) {
    this.db = db;
    this.statements = {
      insert: db.prepare<[string, string, string, string, string | null, string | null, string]>(
        `INSERT INTO events (service, component, time, kind, previous_state, observed_state, message)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      countTransitions: db.prepare<[string, string, string, string, string], { count: number }>(
        `SELECT COUNT(*) AS count FROM events
         WHERE service = ? AND component = ? AND kind = ? AND time >= ? AND time < ?`,
      ),
      prune: db.prepare<[string]>('DELETE FROM events WHERE time < ?'),
    };
  }

  record(input: EventInput): EventRecord {
    const time = input.time ?? new Date();
    const row = {
      service: input.service,
      component: input.component ?? '',
      time: time.toISOString(),
      kind: input.kind,
      previousState: input.previousState ?? null,
      observedState: input.observedState ?? null,
      message: input.message ?? '',
    };
    const result = this.statements.insert.run(
      row.service,
      row.component,
      row.time,
      row.kind,
      row.previousState,
      row.observedState,
      row.message,
    );
    return {
      ...row,
      id: Number(result.lastInsertRowid),
      time: new Date(row.time),
      previousState: input.previousState,
      observedState: input.observedState,
    };
  }

  /** Newest first. */
  query(query: EventQuery = {}): EventRecord[] {
    const limit = query.limit ?? DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new InvalidArgumentError(`event limit must be a positive whole number, not ${limit}`);
    }
    const clauses: string[] = [];
    const params: Record<string, string | number> = { limit: Math.min(limit, MAX_LIMIT) };
    if (query.service !== undefined) {
      clauses.push('service = @service');
      params.service = query.service;
    }
    if (query.component !== undefined) {
      clauses.push('component = @component');
      params.component = query.component;
    }
    if (query.since !== undefined) {
      clauses.push('time >= @since');
      params.since = query.since.toISOString();
    }
    if (query.until !== undefined) {
      clauses.push('time < @until');
      params.until = query.until.toISOString();
    }
    const where = clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '';
    // Only fixed clause texts are concatenated; every value is a bound parameter.
    const rows = this.db
      .prepare<Record<string, string | number>, EventRow>(
        `SELECT * FROM events ${where} ORDER BY time DESC, id DESC LIMIT @limit`,
      )
      .all(params);
    return rows.map(fromRow);
  }

  /** Observed-state transitions of one component in [since, until): what flap detection counts. */
  countTransitions(service: string, component: string, since: Date, until: Date = new Date()): number {
    const row = this.statements.countTransitions.get(
      service,
      component,
      TRANSITION_EVENT_KIND,
      since.toISOString(),
      until.toISOString(),
    );
    return row?.count ?? 0;
  }

  /** Deletes events older than `before`; returns how many. */
  prune(before: Date): number {
    return this.statements.prune.run(before.toISOString()).changes;
  }
}

function fromRow(row: EventRow): EventRecord {
  return {
    id: row.id,
    service: row.service,
    component: row.component,
    time: new Date(row.time),
    kind: row.kind,
    previousState: row.previous_state ?? undefined,
    observedState: row.observed_state ?? undefined,
    message: row.message,
  };
}
