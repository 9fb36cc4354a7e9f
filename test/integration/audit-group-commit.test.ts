/**
 * Group commit under a crash: a real agent process (the built `dist/agent/main.js`, so run
 * `npm run build` first) serves 64 calls in flight over TLS gRPC and is killed with SIGKILL
 * while they run. Every call whose handler ran (each one's answer comes from the handler:
 * GetServiceStatus of a service that does not exist is NOT_FOUND) must have its attempt row,
 * and the chain must verify with `mcp-agent audit verify`.
 *
 * SIGKILL keeps what the kernel already holds, so this shows the ordering (row committed before
 * the handler) and the crash consistency of batches, not the fdatasync itself.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type ServiceError, status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent, type TestAgent, unary } from '../support/agent.js';

const repo = new URL('../..', import.meta.url).pathname;
const built = fs.existsSync(path.join(repo, 'dist/agent/main.js'));

const IN_FLIGHT = 64;
/** Answers to wait for before the kill: enough for many batches to have been written. */
const ANSWERS_BEFORE_KILL = 400;

describe.skipIf(!built && !process.env.CI)('audit group commit when the agent is killed under load', () => {
  let agent: TestAgent;

  beforeAll(async () => {
    agent = await startTestAgent({ process: true });
  });
  afterAll(async () => {
    await agent?.stop();
  });

  it('has the attempt row of every call whose handler answered, and the chain verifies', async () => {
    const client = agent.client();
    const md = await agent.auth({ roles: ['viewer'], subject: 'load' });
    const answered: string[] = [];
    const otherFailures: string[] = [];
    let killed = false;
    let next = 0;
    const exited = new Promise((resolve) => agent.child?.once('exit', resolve));

    const worker = async () => {
      while (!killed && otherFailures.length === 0) {
        const service = `gc-${next++}`;
        try {
          await unary(client.getServiceStatus.bind(client), { service, eventLimit: 0 }, md);
          otherFailures.push(`${service}: answered OK for a service that does not exist`);
        } catch (err) {
          const e = err as ServiceError;
          if (e.code === status.NOT_FOUND) answered.push(service);
          // Calls cut by the kill end UNAVAILABLE or CANCELLED; nothing can be said of them.
          else if (!killed) otherFailures.push(`${service}: ${e.code} ${e.message}`);
        }
        if (answered.length >= ANSWERS_BEFORE_KILL && !killed) {
          killed = true;
          agent.child?.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    await exited;
    client.close();

    expect(otherFailures).toEqual([]);
    expect(answered.length).toBeGreaterThanOrEqual(ANSWERS_BEFORE_KILL);

    const db = new Database(agent.database, { readonly: true });
    const attempts = new Set(
      db
        .prepare<[], { service: string }>(
          "SELECT service FROM audit_log WHERE entry = 'call' AND decision = 'allow' AND rpc = 'GetServiceStatus'",
        )
        .all()
        .map((r) => r.service),
    );
    db.close();
    expect(answered.filter((service) => !attempts.has(service))).toEqual([]);

    const verified = execFileSync(
      process.execPath,
      [path.join(repo, 'dist/agent/main.js'), 'audit', 'verify', '--config', agent.configFile],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    expect(verified).toMatch(/audit chain OK: \d+ records/);
  });
});
