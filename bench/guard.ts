/**
 * What authentication, authorization and audit cost per call.
 *
 * Two TLS gRPC servers in this process serve the same NodeStatus handler (it returns a
 * constant): the agent's guarded server (JWT verification, its signature checked once per
 * token and then taken from the verified-token cache; RBAC; the attempt row group-committed
 * and synced before the handler; the outcome row riding with the next batch) and a baseline
 * server with no guard. Both run in the same process and the same run, so the difference is
 * the guard's cost. CPU per call is the process's CPU time over the sequential calls: on a
 * machine whose disk other jobs load, latency follows their syncs, CPU hardly does.
 *
 *   npx tsx bench/guard.ts [calls=2000] [concurrency=32]
 */
import { credentials, type Metadata, Server, ServerCredentials } from '@grpc/grpc-js';
import { issueCertificate } from '../connector/certs.js';
import { McpAgentServiceClient, McpAgentServiceService, NodeStatusResponse } from '../gen/mcp/v1/mcp.js';
import { startTestAgent, testCa, unary } from '../test/support/agent.js';
import { machine, ms, summary, table } from './stats.js';

const calls = Number(process.argv[2] ?? 2000);
const concurrency = Number(process.argv[3] ?? 32);

const constant = NodeStatusResponse.fromPartial({
  node: 'bench',
  runtime: 'podman',
  runtimeVersion: '4.3.1',
});

async function baselineServer(): Promise<{ address: string; stop: () => void }> {
  const ca = await testCa();
  const cert = await issueCertificate(ca, { commonName: 'baseline', ipAddresses: ['127.0.0.1'] });
  const server = new Server();
  const handlers = Object.fromEntries(
    Object.keys(McpAgentServiceService).map((k) => [
      k,
      (_c: unknown, cb: (e: null, r: unknown) => void) => cb(null, constant),
    ]),
  );
  server.addService(McpAgentServiceService, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      '127.0.0.1:0',
      ServerCredentials.createSsl(null, [
        { cert_chain: Buffer.from(cert.certPem), private_key: Buffer.from(cert.keyPem) },
      ]),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  return { address: `127.0.0.1:${port}`, stop: () => server.forceShutdown() };
}

async function run(client: McpAgentServiceClient, md: Metadata, n: number, parallel: number) {
  const latencies: number[] = [];
  let next = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next += 1;
        const t0 = performance.now();
        await unary(client.nodeStatus.bind(client), {}, md);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  // CPU of the whole process (client, server, libuv pool) per call, in ms: unlike latency, it
  // hardly moves when other jobs load the disk, so it shows what the guard's own work costs.
  const cpuMs = (used.user + used.system) / 1000 / n;
  return { latencies, seconds: (performance.now() - started) / 1000, cpuMs };
}

const agent = await startTestAgent({ handlers: { nodeStatus: async () => constant } });
const baseline = await baselineServer();
const ca = Buffer.from((await testCa()).certPem);
const guarded = agent.client();
const plain = new McpAgentServiceClient(baseline.address, credentials.createSsl(ca));
const md = await agent.auth({ roles: ['viewer'], subject: 'bench' });

// Warm up both paths (TLS handshakes, JIT, key import).
await run(guarded, md, 200, 8);
await run(plain, md, 200, 8);

const rows: Array<Array<string | number>> = [];
const results: Record<string, { seq: ReturnType<typeof summary>; rate: number; cpuMs: number }> = {};
for (const [name, client] of [
  ['no guard (baseline)', plain],
  ['authn + RBAC + audit', guarded],
] as const) {
  const sequential = await run(client, md, Math.min(calls, 1000), 1);
  const parallel = await run(client, md, calls, concurrency);
  const seq = summary(sequential.latencies);
  const rate = calls / parallel.seconds;
  results[name] = { seq, rate, cpuMs: sequential.cpuMs };
  rows.push([name, ms(seq.p50), ms(seq.p99), ms(sequential.cpuMs), `${rate.toFixed(0)} calls/s`]);
}
const base = results['no guard (baseline)'];
const full = results['authn + RBAC + audit'];
if (base && full) {
  rows.push([
    'added by the guard',
    ms(full.seq.p50 - base.seq.p50),
    ms(full.seq.p99 - base.seq.p99),
    ms(full.cpuMs - base.cpuMs),
    `${(full.rate / base.rate).toFixed(2)}× the baseline rate`,
  ]);
}
console.log(
  `\n### Guard cost (${machine()}; ${calls} calls, ${concurrency} concurrent; latency from sequential calls)\n`,
);
console.log(
  table(
    ['server', 'p50 latency', 'p99 latency', 'CPU per call', `throughput (${concurrency} concurrent)`],
    rows,
  ),
);
const audited = agent.registry?.audit.verifyChain();
console.log(
  `\naudit chain after the run: ${audited?.ok ? `OK, ${audited.count} rows` : JSON.stringify(audited)}`,
);
plain.close();
baseline.stop();
await agent.stop();
