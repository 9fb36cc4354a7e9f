/**
 * PushFile and PullFile throughput over loopback TLS gRPC, through the connector's gRPC client
 * and wire codecs (connector/agent-client.ts, core/file-chunks.ts), and what they cost the agent
 * in memory. The agent runs as its own process (`dist/agent/main.js server`, so build first);
 * its resident set is sampled from /proc/<pid>/status every 20 ms, and the kernel's peak
 * (VmHWM) is reset before each transfer (`/proc/<pid>/clear_refs`), so each row shows the
 * peak of that transfer alone. Content is a pseudo-random keystream generated in chunks of
 * `chunk` bytes on the client (the agent's `files.chunk_bytes` is set to the same); its SHA-256
 * is computed before the push (not timed). The files root is on the temp dir's disk, and the
 * push includes the agent's fsync.
 *
 * The baseline, in the same run: the same bytes over a bare Node TLS 1.3 stream on loopback,
 * SHA-256 at both ends, written to a file and fsynced by the receiver (one process).
 *
 *   npm run build && npx tsx bench/files.ts [bytes=1073741824] [chunk=1048576]
 *
 * With BENCH_PROFILE_DIR set, the agent writes a CPU profile there (`--cpu-prof`).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { AgentConnection, type CallSettings, DEFAULT_RETRY } from '../connector/agent-client.js';
import { issueCertificate } from '../connector/certs.js';
import { PULL_FILE_METHOD, PUSH_FILE_METHOD } from '../core/file-chunks.js';
import { silentLogger } from '../core/log.js';
import type { PushFileResponse } from '../gen/mcp/v1/mcp.js';
import { startTestAgent, testCa } from '../test/support/agent.js';
import { toolCodecs } from '../tools.generated.js';
import { machine, table } from './stats.js';

const size = Number(process.argv[2] ?? 1024 ** 3);
const CHUNK = Number(process.argv[3] ?? 1024 * 1024);
const MiB = 1024 * 1024;

function* content(bytes: number): Generator<Buffer> {
  const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK);
  for (let offset = 0; offset < bytes; offset += CHUNK) {
    const length = Math.min(CHUNK, bytes - offset);
    yield cipher.update(length === CHUNK ? zeros : zeros.subarray(0, length));
  }
}

/** Peak resident memory of a process while `work` runs, sampled and from the kernel's own peak. */
async function measured<T>(
  pid: number,
  work: () => Promise<T>,
): Promise<{ result: T; ms: number; sampledPeakKiB: number; hwmKiB: number; beforeKiB: number }> {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '5'); // reset VmHWM to the current RSS
  const beforeKiB = memory(pid).rss;
  let sampledPeakKiB = beforeKiB;
  const sampler = setInterval(() => {
    sampledPeakKiB = Math.max(sampledPeakKiB, memory(pid).rss);
  }, 20);
  const started = performance.now();
  try {
    const result = await work();
    return { result, ms: performance.now() - started, sampledPeakKiB, hwmKiB: memory(pid).hwm, beforeKiB };
  } finally {
    clearInterval(sampler);
  }
}

function memory(pid: number): { rss: number; hwm: number } {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/** The connector's gRPC path for push_file (connector/agent-client.ts, core/file-chunks.ts). */
async function push(
  agent: AgentConnection,
  settings: CallSettings,
  sha256: string,
): Promise<PushFileResponse> {
  return agent.clientStream({ ...toolCodecs.push_file, method: PUSH_FILE_METHOD }, settings, async (send) => {
    await send({
      header: { service: 'bench', path: 'data/blob.bin', mode: 0o600, sha256, size, requestId: '' },
    });
    for (const chunk of content(size)) await send({ chunk });
  });
}

/** The connector's gRPC path for pull_file, hashing what arrives. */
async function pull(
  agent: AgentConnection,
  settings: CallSettings,
): Promise<{ bytes: number; sha256: string; sent: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  let sent = '';
  await agent.stream(
    { ...toolCodecs.pull_file, method: PULL_FILE_METHOD },
    { service: 'bench', path: 'data/blob.bin' },
    settings,
    async (msg) => {
      if (msg.chunk) {
        hash.update(msg.chunk);
        bytes += msg.chunk.length;
      }
      if (msg.sha256) sent = msg.sha256;
    },
  );
  return { bytes, sha256: hash.digest('hex'), sent };
}

/**
 * The floor for a push: `bytes` over a bare TLS 1.3 connection on loopback, hashed by the
 * sender, hashed, written and fsynced by the receiver, which answers with its digest.
 */
async function rawTlsPush(bytes: number, dir: string): Promise<{ ms: number; sha256: string }> {
  const ca = await testCa();
  const cert = await issueCertificate(ca, { commonName: 'baseline', ipAddresses: ['127.0.0.1'] });
  // The receiver knows the size and answers when it has it all: TLS in Node does not half-close.
  const server = tls.createServer(
    { cert: cert.certPem, key: cert.keyPem, minVersion: 'TLSv1.3' },
    (socket) => {
      const hash = createHash('sha256');
      let received = 0;
      const opened = fs.promises.open(path.join(dir, 'raw.bin'), 'w', 0o600);
      let writing: Promise<unknown> = opened;
      socket.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        received += chunk.length;
        const done = received >= bytes;
        socket.pause(); // backpressure: read on once the write is done
        writing = writing.then(async () => {
          const file = await opened;
          let offset = 0;
          while (offset < chunk.length) offset += (await file.write(chunk, offset)).bytesWritten;
          if (!done) return socket.resume();
          await file.sync();
          await file.close();
          socket.end(hash.digest('hex'));
        });
      });
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const started = performance.now();
  const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'baseline' });
  await once(socket, 'secureConnect');
  const sent = createHash('sha256');
  const answer: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => answer.push(chunk));
  for (const chunk of content(bytes)) {
    sent.update(chunk);
    if (!socket.write(chunk)) await once(socket, 'drain');
  }
  await once(socket, 'end');
  socket.end();
  const ms = performance.now() - started;
  server.close();
  const sha256 = sent.digest('hex');
  const answered = Buffer.concat(answer).toString();
  if (answered !== sha256)
    throw new Error(`raw TLS: the receiver hashed ${answered || 'nothing'}, the sender ${sha256}`);
  return { ms, sha256 };
}

async function main(): Promise<void> {
  if (!fs.existsSync(new URL('../dist/agent/main.js', import.meta.url))) {
    throw new Error('dist/agent/main.js is missing: run npm run build first');
  }
  const hash = createHash('sha256');
  for (const chunk of content(size)) hash.update(chunk);
  const sha256 = hash.digest('hex');

  const profileDir = process.env.BENCH_PROFILE_DIR;
  const agent = await startTestAgent({
    process: true,
    ...(profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] } : {}),
    files: { max_file_bytes: Math.max(size, 1), chunk_bytes: CHUNK },
  });
  try {
    const pid = agent.child?.pid as number;
    const connection = new AgentConnection(
      {
        name: agent.node,
        address: agent.address,
        caFile: path.join(agent.dataDir, 'ca.crt'),
        serverName: 'localhost',
      },
      { retry: DEFAULT_RETRY, log: silentLogger },
    );
    const token = await agent.token({ roles: ['operator'] });
    const settings = (tool: string, readOnly: boolean): CallSettings => ({
      token,
      timeoutSeconds: 3600,
      readOnly,
      tool,
    });
    const rawDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-bench-raw-'));
    const raw = await rawTlsPush(size, rawDir).finally(() =>
      fs.rmSync(rawDir, { recursive: true, force: true }),
    );
    const pushed = await measured(pid, () => push(connection, settings('push_file', false), sha256));
    if (pushed.result.sha256 !== sha256) throw new Error('push: digest mismatch');
    const pulled = await measured(pid, () => pull(connection, settings('pull_file', true)));
    if (pulled.result.sha256 !== sha256 || pulled.result.sent !== sha256 || pulled.result.bytes !== size) {
      throw new Error('pull: content mismatch');
    }
    connection.close();
    const onDisk = fs.statSync(path.join(agent.filesRoot, 'bench', 'data', 'blob.bin')).size;
    const row = (name: string, m: Omit<typeof pushed, 'result'>) => [
      name,
      `${(size / MiB).toFixed(0)} MiB`,
      `${(m.ms / 1000).toFixed(2)} s`,
      `${(size / MiB / (m.ms / 1000)).toFixed(0)} MiB/s`,
      `${(raw.ms / m.ms).toFixed(2)}×`,
      `${(m.beforeKiB / 1024).toFixed(0)} MiB`,
      `${(m.hwmKiB / 1024).toFixed(0)} MiB`,
      `${(m.sampledPeakKiB / 1024).toFixed(0)} MiB`,
    ];
    process.stdout.write(
      `### File transfer through the agent (loopback TLS 1.3 gRPC, chunks of ${CHUNK / 1024} KiB)\n\n${machine()}, ${os.cpus().length} CPUs; ${onDisk} bytes on disk\n\nbare TLS 1.3 stream + SHA-256 at both ends + write + fsync: ${(raw.ms / 1000).toFixed(2)} s, ${(size / MiB / (raw.ms / 1000)).toFixed(0)} MiB/s\n\n`,
    );
    process.stdout.write(
      `${table(
        [
          'operation',
          'size',
          'time',
          'throughput',
          'vs bare TLS stream',
          'agent RSS before',
          'agent peak RSS (VmHWM)',
          'agent peak RSS (sampled)',
        ],
        [row('push_file', pushed), row('pull_file', pulled)],
      )}\n`,
    );
  } finally {
    await agent.stop();
  }
}

await main();
