/**
 * The first result of each write call that carried a request id. A client whose deploy timed
 * out cannot tell whether it ran; it retries with the same id and gets this result back
 * instead of a second deploy.
 *
 * Store the ProtoJSON form (`DeployResult.toJSON(result)`) and read it back with
 * `DeployResult.fromJSON(...)`: plain JSON does not bring Dates back.
 */
import type Database from 'better-sqlite3';
import { InvalidArgumentError } from '../core/errors.js';

const MAX_REQUEST_ID_LENGTH = 200;

interface ResultRow {
  rpc: string;
  response_json: string;
}

export class RequestResults {
  private readonly statements;

  constructor(db: Database.Database) {
    this.statements = {
      find: db.prepare<[string], ResultRow>(
        'SELECT rpc, response_json FROM request_results WHERE request_id = ?',
      ),
      // The first result wins: a second record for the same id is a retry that raced the first.
      insert: db.prepare<[string, string, string, string]>(
        `INSERT INTO request_results (request_id, rpc, response_json, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (request_id) DO NOTHING`,
      ),
      prune: db.prepare<[string]>('DELETE FROM request_results WHERE created_at < ?'),
    };
  }

  /**
   * The result recorded for this request id, or undefined. An empty id means the client
   * asked for no idempotency, so nothing is ever found for it.
   */
  findResult(requestId: string, rpc: string): unknown {
    if (requestId === '') return undefined;
    checkLength(requestId);
    const row = this.statements.find.get(requestId);
    if (!row) return undefined;
    if (row.rpc !== rpc) throw reusedId(requestId, row.rpc, rpc);
    return JSON.parse(row.response_json);
  }

  /** Records the result of a call; a no-op for an empty id or an id already recorded for this RPC. */
  recordResult(requestId: string, rpc: string, response: unknown): void {
    if (requestId === '') return;
    checkLength(requestId);
    const json = JSON.stringify(response);
    if (json === undefined) throw new InvalidArgumentError(`the result of ${rpc} cannot be stored as JSON`);
    this.statements.insert.run(requestId, rpc, json, new Date().toISOString());
    const stored = this.statements.find.get(requestId);
    if (stored && stored.rpc !== rpc) throw reusedId(requestId, stored.rpc, rpc);
  }

  /** Forgets results recorded before `before`; returns how many. */
  prune(before: Date): number {
    return this.statements.prune.run(before.toISOString()).changes;
  }
}

function checkLength(requestId: string): void {
  if (requestId.length > MAX_REQUEST_ID_LENGTH) {
    throw new InvalidArgumentError(`request id is longer than ${MAX_REQUEST_ID_LENGTH} characters`);
  }
}

function reusedId(requestId: string, recordedRpc: string, rpc: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `request id '${requestId}' was already used for ${recordedRpc}, not ${rpc}: use a new request id for each operation`,
  );
}
