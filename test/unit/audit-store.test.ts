import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toAuditRecord } from '../../agent/handlers/audit.js';
import { InvalidArgumentError, type McpError, NotFoundError } from '../../core/errors.js';
import { AuditDecision, AuditOutcome } from '../../gen/mcp/v1/mcp.js';
import {
  type AllowedCall,
  type AuditRow,
  AuditWriteError,
  auditRowHash,
  GENESIS_HASH,
  MAX_AUDIT_PAGE_SIZE,
} from '../../registry/audit.js';
import { openRegistry, type Registry } from '../../registry/db.js';
import { repairAuditTriggers } from '../../registry/migrations.js';
import { type TempRegistry, tempRegistry } from '../support/registry.js';

let temp: TempRegistry;
let dir: string;
let file: string;
let registry: Registry;
const others: { close(): unknown }[] = [];

beforeEach(() => {
  temp = tempRegistry('mcp-audit-');
  ({ dir, file, registry } = temp);
});

afterEach(() => {
  for (const other of others.splice(0)) other.close();
  temp.cleanup();
});

const t0 = new Date('2026-04-01T10:00:00.000Z');
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);

function call(overrides: Partial<AllowedCall> = {}): AllowedCall {
  return {
    decision: 'allow',
    node: 'node-1',
    issuer: 'https://idp.example',
    subject: 'alice',
    clientId: 'claude',
    roles: ['operator'],
    rpc: 'Deploy',
    tool: 'deploy',
    service: 'shop',
    component: 'web',
    argsSha256: 'ab'.repeat(32),
    requestId: 'req-1',
    time: t0,
    ...overrides,
  };
}

/** A second connection to the same file, as someone with shell access to the node would have. */
function tamperer(): Database.Database {
  const db = new Database(file);
  others.push(db);
  return db;
}

describe('audit log: recording calls', () => {
  it('joins a call with its outcome and reads back every field', () => {
    const { callId, seq } = registry.audit.appendCall(call());
    const outcomeSeq = registry.audit.appendOutcome(callId, { outcome: 'ok', durationMs: 12.5 });
    expect(outcomeSeq).toBe(seq + 1);

    const { records, nextPageToken } = registry.audit.query();
    expect(nextPageToken).toBe('');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      seq,
      callId,
      time: t0,
      node: 'node-1',
      issuer: 'https://idp.example',
      subject: 'alice',
      clientId: 'claude',
      roles: ['operator'],
      rpc: 'Deploy',
      tool: 'deploy',
      service: 'shop',
      component: 'web',
      argsSha256: 'ab'.repeat(32),
      requestId: 'req-1',
      decision: 'allow',
      outcome: 'ok',
      errorCode: '',
      durationMs: 12.5,
      prevHash: GENESIS_HASH,
      outcomeSeq,
    });
    expect(records[0]?.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('records a denial as one complete record', () => {
    registry.audit.appendCall({
      ...call(),
      decision: 'deny',
      errorCode: 'UNAUTHENTICATED',
      errorMessage: 'authentication required',
      subject: undefined,
      roles: undefined,
    });
    const [denied] = registry.audit.query().records;
    expect(denied).toMatchObject({
      decision: 'deny',
      outcome: 'error',
      errorCode: 'UNAUTHENTICATED',
      errorMessage: 'authentication required',
      subject: '',
      roles: [],
      outcomeSeq: undefined,
    });
    expect(() => registry.audit.appendOutcome(denied!.callId, { outcome: 'ok', durationMs: 1 })).toThrow(
      InvalidArgumentError,
    );
  });

  it('reports a call with no outcome record as unknown (the agent died mid-call)', () => {
    registry.audit.appendCall(call());
    registry.close();
    registry = temp.open();
    const [record] = registry.audit.query().records;
    expect(record?.outcome).toBe('unknown');
    expect(toAuditRecord(record!).outcome).toBe(AuditOutcome.AUDIT_OUTCOME_UNKNOWN);
  });

  it('refuses an outcome for an unknown call or a second outcome', () => {
    expect(() => registry.audit.appendOutcome('no-such-call', { outcome: 'ok', durationMs: 1 })).toThrow(
      NotFoundError,
    );
    const { callId } = registry.audit.appendCall(call());
    registry.audit.appendOutcome(callId, { outcome: 'error', errorCode: 'NOT_FOUND', durationMs: 3 });
    expect(() => registry.audit.appendOutcome(callId, { outcome: 'ok', durationMs: 1 })).toThrow(
      /already recorded/,
    );
  });

  it('converts to the generated AuditRecord', () => {
    const { callId } = registry.audit.appendCall(call());
    registry.audit.appendOutcome(callId, { outcome: 'error', errorCode: 'NOT_FOUND', durationMs: 7 });
    const record = toAuditRecord(registry.audit.query().records[0]!);
    expect(record).toMatchObject({
      seq: 1,
      time: t0,
      decision: AuditDecision.AUDIT_DECISION_ALLOW,
      outcome: AuditOutcome.AUDIT_OUTCOME_ERROR,
      errorCode: 'NOT_FOUND',
      durationMs: 7,
      clientId: 'claude',
      argsSha256: 'ab'.repeat(32),
    });
  });

  it('chains calls that interleave in one process', async () => {
    const pause = () => new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        await pause();
        const { callId } = registry.audit.appendCall(call({ requestId: `req-${i}` }));
        await pause();
        registry.audit.appendOutcome(callId, { outcome: 'ok', durationMs: i });
      }),
    );
    expect(registry.audit.verifyChain()).toEqual({ ok: true, count: 80 });
    expect(registry.audit.query({ pageSize: 500 }).records.every((r) => r.outcome === 'ok')).toBe(true);
  });
});

describe('audit log: querying', () => {
  beforeEach(() => {
    const record = (seconds: number, overrides: Partial<AllowedCall>, outcome?: 'ok' | 'error') => {
      const { callId } = registry.audit.appendCall(call({ time: at(seconds), ...overrides }));
      if (outcome) registry.audit.appendOutcome(callId, { outcome, durationMs: 1, time: at(seconds + 1) });
    };
    record(0, { subject: 'alice', rpc: 'Deploy', service: 'shop' }, 'ok');
    record(10, { subject: 'bob', rpc: 'StopService', service: 'shop' }, 'error');
    record(20, { subject: 'alice', rpc: 'ListServices', service: undefined }, 'ok');
    record(30, { subject: 'alice', rpc: 'Deploy', service: 'blog' });
    registry.audit.appendCall({
      ...call({ time: at(40), subject: 'mallory' }),
      decision: 'deny',
      errorCode: 'PERMISSION_DENIED',
    });
  });

  const subjects = (filters: Parameters<Registry['audit']['query']>[0]) =>
    registry.audit.query(filters).records.map((r) => `${r.subject}:${r.rpc}`);

  it('returns newest first without filters', () => {
    expect(subjects({})).toEqual([
      'mallory:Deploy',
      'alice:Deploy',
      'alice:ListServices',
      'bob:StopService',
      'alice:Deploy',
    ]);
  });

  it('filters by time, subject, rpc, service, decision and outcome', () => {
    expect(subjects({ since: at(10), until: at(30) })).toEqual(['alice:ListServices', 'bob:StopService']);
    expect(subjects({ subject: 'alice' })).toEqual(['alice:Deploy', 'alice:ListServices', 'alice:Deploy']);
    expect(subjects({ rpc: 'StopService' })).toEqual(['bob:StopService']);
    expect(subjects({ service: 'blog' })).toEqual(['alice:Deploy']);
    expect(subjects({ decision: 'deny' })).toEqual(['mallory:Deploy']);
    expect(subjects({ decision: 'allow' })).toHaveLength(4);
    expect(subjects({ outcome: 'ok' })).toEqual(['alice:ListServices', 'alice:Deploy']);
    expect(subjects({ outcome: 'error' })).toEqual(['mallory:Deploy', 'bob:StopService']);
    expect(subjects({ outcome: 'unknown' })).toEqual(['alice:Deploy']);
    expect(subjects({ subject: 'alice', rpc: 'Deploy', outcome: 'unknown' })).toEqual(['alice:Deploy']);
  });

  it('pages with an opaque token until the last page', () => {
    const seen: number[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const page = registry.audit.query({ pageSize: 2, pageToken });
      expect(page.records.length).toBeLessThanOrEqual(2);
      seen.push(...page.records.map((r) => r.seq));
      pageToken = page.nextPageToken;
      pages += 1;
    } while (pageToken !== '');
    expect(pages).toBe(3);
    expect(seen).toEqual(registry.audit.query().records.map((r) => r.seq));

    const filtered = registry.audit.query({ subject: 'alice', pageSize: 2 });
    const rest = registry.audit.query({ subject: 'alice', pageSize: 2, pageToken: filtered.nextPageToken });
    expect([...filtered.records, ...rest.records].map((r) => r.subject)).toEqual(['alice', 'alice', 'alice']);
    expect(rest.nextPageToken).toBe('');
  });

  it('shows a scoped reader only its services, with full pages and correct tokens', () => {
    for (let i = 0; i < 30; i++) {
      registry.audit.appendCall(call({ service: i % 3 === 0 ? 'web-a' : 'db', requestId: `r${i}` }));
    }
    registry.audit.appendCall(call({ service: undefined, rpc: 'NodeStatus' }));
    const webOnly = { all: false, allows: (service: string) => service.startsWith('web-') };
    const seen: string[] = [];
    let pageToken = '';
    do {
      const page = registry.audit.query({ scope: webOnly, pageSize: 3, pageToken });
      if (page.nextPageToken) expect(page.records).toHaveLength(3);
      seen.push(...page.records.map((r) => r.service));
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    expect(seen.filter((s) => s === 'web-a')).toHaveLength(10);
    expect(seen.every((s) => s === 'web-a')).toBe(true);
    // Records naming no service are for unscoped readers only.
    const all = registry.audit.query({ scope: { all: true, allows: () => true }, pageSize: 500 }).records;
    expect(all.some((r) => r.service === '')).toBe(true);
    expect(
      registry.audit
        .query({ scope: { all: false, allows: () => true }, pageSize: 500 })
        .records.some((r) => r.service === ''),
    ).toBe(false);
  });

  it('defaults to 50 per page, refuses more than 500, rejects bad tokens', () => {
    for (let i = 0; i < 60; i++) registry.audit.appendCall(call());
    expect(registry.audit.query().records).toHaveLength(50);
    expect(registry.audit.query({ pageSize: MAX_AUDIT_PAGE_SIZE }).records).toHaveLength(65);
    expect(() => registry.audit.query({ pageSize: MAX_AUDIT_PAGE_SIZE + 1 })).toThrow(
      /at most|from 1 to 500/,
    );
    expect(() => registry.audit.query({ pageToken: 'not-a-token' })).toThrow(InvalidArgumentError);
    expect(() => registry.audit.query({ pageSize: -1 })).toThrow(InvalidArgumentError);
  });
});

describe('audit log: tamper evidence', () => {
  function fill(calls: number): void {
    for (let i = 0; i < calls; i++) {
      const { callId } = registry.audit.appendCall(call({ time: at(i), requestId: `req-${i}` }));
      registry.audit.appendOutcome(callId, { outcome: 'ok', durationMs: i, time: at(i) });
    }
  }

  it('verifies an intact chain, also after re-opening', () => {
    expect(registry.audit.verifyChain()).toEqual({ ok: true, count: 0 });
    fill(5);
    expect(registry.audit.verifyChain()).toEqual({ ok: true, count: 10 });
    expect(registry.audit.head().seq).toBe(10);
    registry.close();
    registry = temp.open();
    expect(registry.audit.verifyChain()).toEqual({ ok: true, count: 10 });
    fill(1);
    expect(registry.audit.verifyChain()).toEqual({ ok: true, count: 12 });
  });

  it('refuses UPDATE and DELETE through SQL', () => {
    fill(2);
    const db = tamperer();
    expect(() => db.prepare("UPDATE audit_log SET subject = 'mallory' WHERE seq = 1").run()).toThrow(
      'audit log is append-only',
    );
    expect(() => db.prepare('DELETE FROM audit_log WHERE seq = 1').run()).toThrow('audit log is append-only');
    expect(() => registry.db.prepare('DELETE FROM audit_log').run()).toThrow('audit log is append-only');
    expect(registry.audit.verifyChain()).toEqual({ ok: true, count: 4 });
  });

  it('names the record whose field was edited behind its back', () => {
    fill(5);
    const db = tamperer();
    db.exec('DROP TRIGGER audit_log_no_update');
    db.prepare("UPDATE audit_log SET subject = 'someone-else' WHERE seq = 5").run();

    expect(registry.audit.verifyChain()).toMatchObject({
      ok: false,
      seq: 5,
      reason: expect.stringMatching(/hash/),
    });
    registry.close();
    registry = temp.open();
    expect(registry.audit.verifyChain()).toMatchObject({ ok: false, seq: 5 });
  });

  it('names a deleted record', () => {
    fill(5);
    const db = tamperer();
    db.exec('DROP TRIGGER audit_log_no_delete');
    db.prepare('DELETE FROM audit_log WHERE seq = 4').run();
    expect(registry.audit.verifyChain()).toMatchObject({
      ok: false,
      seq: 4,
      reason: expect.stringMatching(/missing/),
    });
  });

  it('names a broken link when a record was replaced by a self-consistent forgery', () => {
    fill(3);
    const db = tamperer();
    db.exec('DROP TRIGGER audit_log_no_update');
    const row = db.prepare('SELECT * FROM audit_log WHERE seq = 2').get() as AuditRow & {
      roles: string | null;
    };
    const forged = {
      ...row,
      roles: row.roles === null ? null : JSON.parse(row.roles),
      outcome: 'error' as const,
    };
    const { prev_hash: _p, hash: _h, ...hashed } = forged;
    db.prepare('UPDATE audit_log SET outcome = ?, hash = ? WHERE seq = 2').run(
      'error',
      auditRowHash(row.prev_hash, hashed),
    );

    expect(registry.audit.verifyChain()).toMatchObject({
      ok: false,
      seq: 3,
      reason: expect.stringMatching(/prev_hash/),
    });
  });

  it('notices a truncated tail while the agent that wrote it is running', () => {
    fill(3);
    const db = tamperer();
    db.exec('DROP TRIGGER audit_log_no_delete');
    db.prepare('DELETE FROM audit_log WHERE seq >= 5').run();
    expect(registry.audit.verifyChain()).toMatchObject({
      ok: false,
      seq: 5,
      reason: expect.stringMatching(/truncated/),
    });
  });

  it('catches a rewrite of the whole tail only against the head the running agent remembers', () => {
    fill(3);
    const db = tamperer();
    db.exec('DROP TRIGGER audit_log_no_update');
    // Forge record 2 and re-hash everything after it: the chain itself is consistent again.
    const rows = db.prepare('SELECT * FROM audit_log ORDER BY seq').all() as (AuditRow & {
      roles: string | null;
    })[];
    let prevHash = rows[0]!.hash;
    for (const row of rows.slice(1)) {
      const roles = row.roles === null ? null : JSON.parse(row.roles);
      const forged = row.seq === 2 ? { ...row, roles, duration_ms: 999 } : { ...row, roles };
      const { prev_hash: _p, hash: _h, ...hashed } = forged;
      const hash = auditRowHash(prevHash, hashed);
      db.prepare('UPDATE audit_log SET duration_ms = ?, prev_hash = ?, hash = ? WHERE seq = ?').run(
        forged.duration_ms,
        prevHash,
        hash,
        row.seq,
      );
      prevHash = hash;
    }
    expect(registry.audit.verifyChain()).toMatchObject({
      ok: false,
      seq: 6,
      reason: expect.stringMatching(/rewritten/),
    });
    // A fresh reader has nothing to compare with: this is why operators should note head() elsewhere.
    const reader = temp.open(file, { readonly: true });
    others.push(reader);
    expect(reader.audit.verifyChain()).toEqual({ ok: true, count: 6 });
    expect(reader.audit.head().hash).not.toBe(registry.audit.head().hash);
    // With the head noted before the rewrite as an anchor, the fresh reader catches it too.
    expect(reader.audit.verifyChain([registry.audit.head()])).toMatchObject({
      ok: false,
      seq: 6,
      reason: expect.stringMatching(/the anchor says/),
    });
  });

  it('with an anchor, a fresh reader catches removed newest records and an emptied log', () => {
    fill(5);
    const anchor = registry.audit.head();
    const older = tamperer().prepare('SELECT seq, hash FROM audit_log WHERE seq = 4').get() as {
      seq: number;
      hash: string;
    };
    fill(1);
    const reader = () => {
      const r = openRegistry(file, { readonly: true });
      others.push(r);
      return r;
    };
    // An honest log that grew past its anchors holds them.
    expect(reader().audit.verifyChain([anchor, older])).toEqual({ ok: true, count: 12 });
    const db = tamperer();
    db.exec('DROP TRIGGER audit_log_no_delete');
    db.prepare('DELETE FROM audit_log WHERE seq > 8').run();
    // Without an anchor the shorter chain is consistent: this is the gap anchors close.
    expect(reader().audit.verifyChain()).toEqual({ ok: true, count: 8 });
    expect(reader().audit.verifyChain([anchor])).toMatchObject({
      ok: false,
      seq: 9,
      reason: expect.stringMatching(/ends at record 8, but an anchor names record 10.*truncated/),
    });
    expect(reader().audit.verifyChain([older])).toEqual({ ok: true, count: 8 });
    db.prepare('DELETE FROM audit_log').run();
    expect(reader().audit.verifyChain()).toEqual({ ok: true, count: 0 });
    expect(reader().audit.verifyChain([older])).toMatchObject({ ok: false, seq: 1 });
  });

  it('puts back append-only triggers that were dropped or replaced, and only those', () => {
    expect(repairAuditTriggers(registry.db)).toEqual([]);
    const db = tamperer();
    db.exec('DROP TRIGGER audit_log_no_delete');
    db.exec('DROP TRIGGER audit_log_no_update');
    // A look-alike that raises nothing, under the right name.
    db.exec('CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT 1; END;');
    expect(repairAuditTriggers(registry.db).sort()).toEqual(['audit_log_no_delete', 'audit_log_no_update']);
    fill(1);
    expect(() => db.prepare('DELETE FROM audit_log').run()).toThrow('audit log is append-only');
    expect(() => db.prepare("UPDATE audit_log SET subject = 'x'").run()).toThrow('audit log is append-only');
    expect(repairAuditTriggers(registry.db)).toEqual([]);
  });

  it('exports every row as a JSON line that re-hashes to its stored hash', () => {
    fill(3);
    registry.audit.appendCall({
      ...call({ time: at(100), roles: ['a', 'b'] }),
      decision: 'deny',
      errorCode: 'PERMISSION_DENIED',
    });
    const lines: string[] = [];
    expect(registry.audit.exportJsonl(undefined, (line) => lines.push(line))).toBe(7);
    expect(lines.every((l) => l.endsWith('\n'))).toBe(true);

    let prevHash = GENESIS_HASH;
    for (const line of lines) {
      const row = JSON.parse(line) as AuditRow;
      expect(row.prev_hash).toBe(prevHash);
      const { prev_hash: _p, hash, ...hashed } = row;
      expect(auditRowHash(prevHash, hashed)).toBe(hash);
      prevHash = hash;
    }
    expect(JSON.parse(lines[6]!).roles).toEqual(['a', 'b']);

    const recent: string[] = [];
    registry.audit.exportJsonl(at(2), (line) => recent.push(line));
    expect(recent.map((l) => (JSON.parse(l) as AuditRow).seq)).toEqual([5, 6, 7]);
  });
});

describe('audit log: failing closed', () => {
  it('throws when the disk is full, and recovers when space is back', () => {
    registry.audit.appendCall(call());
    const pages = registry.db.pragma('page_count', { simple: true }) as number;
    registry.db.pragma(`max_page_count = ${pages}`);
    let error: unknown;
    try {
      for (let i = 0; i < 10_000; i++)
        registry.audit.appendCall(call({ roles: Array(50).fill(`role-${i}`) }));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AuditWriteError);
    expect((error as McpError).code).toBe('UNAVAILABLE');
    expect((error as McpError).message).toMatch(/SQLITE_FULL/);
    expect(registry.audit.verifyChain().ok).toBe(true);

    registry.db.pragma('max_page_count = 1073741823');
    registry.audit.appendCall(call());
    expect(registry.audit.verifyChain().ok).toBe(true);
  });

  it('throws on a read-only copy of the registry, which can still be read and verified', () => {
    const { callId } = registry.audit.appendCall(call());
    registry.audit.appendOutcome(callId, { outcome: 'ok', durationMs: 1 });
    registry.close();
    const copy = path.join(dir, 'copy.db');
    fs.copyFileSync(file, copy);

    const reader = temp.open(copy, { readonly: true });
    others.push(reader);
    expect(() => reader.audit.appendCall(call())).toThrow(AuditWriteError);
    expect(() => reader.audit.appendCall(call())).toThrow(/SQLITE_READONLY/);
    expect(reader.audit.query().records).toHaveLength(1);
    expect(reader.audit.verifyChain()).toEqual({ ok: true, count: 2 });
  });

  it('refuses to fork the chain when another process appended meanwhile', () => {
    registry.audit.appendCall(call());
    const second = temp.open();
    others.push(second);
    registry.audit.appendCall(call());
    // `second` still holds the head it read when it opened.
    expect(() => second.audit.appendCall(call())).toThrow(AuditWriteError);
    // It re-reads the head after a failure and carries on from the real end of the chain.
    expect(second.audit.appendCall(call()).seq).toBe(3);
    expect(registry.audit.verifyChain()).toEqual({ ok: true, count: 3 });
  });

  it('refuses to write inside another registry transaction, which could roll it back', () => {
    expect(() => registry.transaction(() => registry.audit.appendCall(call()))).toThrow(/outside other/);
    expect(registry.audit.query().records).toEqual([]);
  });
});
