/**
 * The audit log alone, on a real file database (WAL, synchronous FULL), against the disk's own
 * sync in the same directory and the same run:
 * - per call, sequential: the old path (two rows, each committed with SQLite's inline sync),
 *   group commit (attempt awaited, outcome queued), and a bare 400-byte write + fdatasync;
 * - rows per second with many calls in flight: inline appends one after another, against
 *   `recordCall` batching every row queued in one turn of the event loop.
 *
 *   npx tsx bench/audit.ts [calls=1000] [inFlight=32]
 */
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRegistry } from '../registry/db.js';
import { machine, ms, summary, table } from './stats.js';

const calls = Number(process.argv[2] ?? 1000);
const inFlight = Number(process.argv[3] ?? 32);

const dir = mkdtempSync(join(tmpdir(), 'mcp-bench-audit-'));
const registry = openRegistry(join(dir, 'registry.db'));
const audit = registry.audit;
const call = {
  node: 'bench',
  rpc: 'NodeStatus',
  decision: 'allow' as const,
  issuer: 'https://issuer.test',
  subject: 'bench',
  roles: ['viewer'],
};
const outcome = { outcome: 'ok' as const, errorCode: '', errorMessage: '', durationMs: 1 };
const rawFd = openSync(join(dir, 'raw'), 'w');
const record = 'x'.repeat(400);

const inline: number[] = [];
const grouped: number[] = [];
const raw: number[] = [];
const sequential = Math.min(calls, 500);
for (let i = 0; i < sequential; i++) {
  // Interleaved, so the disk's mood hits the three alike.
  let t = performance.now();
  const { callId } = audit.appendCall(call);
  audit.appendOutcome(callId, outcome);
  inline.push(performance.now() - t);
  t = performance.now();
  const ref = await audit.recordCall(call);
  void audit.recordOutcome(ref.callId, outcome);
  grouped.push(performance.now() - t);
  t = performance.now();
  writeSync(rawFd, record);
  fdatasyncSync(rawFd);
  raw.push(performance.now() - t);
}

async function throughput(one: () => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < calls) {
        next += 1;
        await one();
      }
    }),
  );
  return calls / ((performance.now() - started) / 1000);
}
const inlineRate = await throughput(async () => {
  const { callId } = audit.appendCall(call);
  audit.appendOutcome(callId, outcome);
});
const groupRate = await throughput(async () => {
  const ref = await audit.recordCall(call);
  void audit.recordOutcome(ref.callId, outcome);
});

const raw50 = summary(raw).p50;
const row = (name: string, samples: number[], rate: string) => {
  const s = summary(samples);
  return [name, ms(s.p50), ms(s.p99), `${(s.p50 / raw50).toFixed(2)}×`, rate];
};
console.log(
  `\n### Audit log alone (${machine()}; ${sequential} sequential, ${calls} with ${inFlight} in flight)\n`,
);
console.log(
  table(
    ['path', 'p50 per call', 'p99 per call', 'p50 / bare fdatasync', `calls/s, ${inFlight} in flight`],
    [
      row('bare write + fdatasync (baseline)', raw, ''),
      row('inline: two rows, two synchronous FULL commits', inline, `${inlineRate.toFixed(0)}`),
      row('group commit: attempt awaited, outcome queued', grouped, `${groupRate.toFixed(0)}`),
    ],
  ),
);
console.log(`\ngroup commit / inline rate: ${(groupRate / inlineRate).toFixed(2)}×`);
const verified = audit.verifyChain();
console.log(`audit chain: ${verified.ok ? `OK, ${verified.count} rows` : JSON.stringify(verified)}`);
closeSync(rawFd);
registry.close();
rmSync(dir, { recursive: true, force: true });
