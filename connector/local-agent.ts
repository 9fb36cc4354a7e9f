/**
 * The local setup's agent as its own long-lived process, shared by every client of one
 * `$MCP_HOME`: each `mcp-connector` and `mcp` command finds it through `agent.pid` and
 * reuses it; the first one that finds none starts it, detached, so closing a client (even
 * in the middle of a deploy) never takes the agent down with it, and one monitor watches
 * the registry.
 *
 * Who starts it: `agent.lock`, created exclusively (`O_EXCL`) and holding the starter's pid.
 * A lock whose pid is dead is stale: a starter breaks it by renaming it aside (one rename
 * wins), and re-checks `agent.pid` once it holds the lock. An exclusive-create file rather
 * than `flock`: Node has no `flock`, and a pid in the file makes a stale lock visible to a
 * person as well.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { FailedPreconditionError, UnavailableError } from '../core/errors.js';
import { type AgentPidRecord, readAgentPidFile } from '../core/local-home.js';
import { LOCAL_SERVER_NAME, localHomeFiles, prepareLocalHome } from './local-home.js';

export interface LocalAgentHandle {
  /** host:port the agent answers on. */
  readonly address: string;
  readonly pid: number;
  /** True when this call started it, false when it was already running. */
  readonly started: boolean;
  /** The node name the agent runs with, as its agent.pid says (older agents do not say). */
  readonly node?: string;
}

export interface EnsureLocalAgentOptions {
  /** How long to wait for the agent to answer, or for another client starting it (30 s). */
  timeoutMs?: number;
  /** The agent's entry point (default: the built `mcp-agent` beside this file). */
  agentMain?: string;
  /** The agent's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

export interface LocalAgentStatus {
  state: 'running' | 'stopped' | 'stale';
  pid?: number;
  address?: string;
  startedAt?: string;
  uptimeSeconds?: number;
  logFile: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const POLL_MS = 100;
/** A lock file without a readable pid is a starter between create and write, unless it is this old. */
const UNREADABLE_LOCK_STALE_MS = 5_000;
const PROBE_TIMEOUT_MS = 3_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function localAgentLogFile(home: string): string {
  return localHomeFiles(home).log;
}

/** The built agent: `dist/agent/main.js` from `dist/connector/local-agent.js`. */
function builtAgentMain(): string {
  return fileURLToPath(new URL('../agent/main.js', import.meta.url));
}

/** Alive and not a zombie (a zombie answers signal 0 but serves nothing). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: signal 0 is all we know
  }
}

/**
 * The pid runs the agent of this home, not a process that reused a dead agent's pid.
 * Without /proc, a live pid is taken at its word.
 */
function isAgentOf(pid: number, home: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes(localHomeFiles(home).agentConfig);
  } catch {
    return !existsSync('/proc/self');
  }
}

function hostAndPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) };
}

/** True when a TLS 1.3 server with a certificate from the home's CA answers at `address`. */
function answers(address: string, caPem: string): Promise<boolean> {
  return probe(
    tlsConnect({
      ...hostAndPort(address),
      ca: caPem,
      servername: LOCAL_SERVER_NAME,
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.3',
      timeout: PROBE_TIMEOUT_MS,
    }),
    'secureConnect',
  );
}

/**
 * True when `address` takes a connection. Enough for an agent that `agent.pid` and the
 * process's own command line already name: the call's TLS handshake verifies the rest, and
 * a handshake here would double every command's cost of one (a CA to parse, a round trip).
 */
function listens(address: string): Promise<boolean> {
  return probe(netConnect({ ...hostAndPort(address), timeout: PROBE_TIMEOUT_MS }), 'connect');
}

function probe(socket: Socket, success: 'connect' | 'secureConnect'): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once(success, () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

type Found =
  | { kind: 'running'; record: AgentPidRecord }
  | { kind: 'silent'; record: AgentPidRecord }
  | { kind: 'none' };

/** What agent.pid says, checked: the process is this home's agent and its address takes connections. */
async function findAgent(home: string): Promise<Found> {
  const files = localHomeFiles(home);
  const record = readAgentPidFile(files.pid);
  if (!record || !isAgentOf(record.pid, home)) return { kind: 'none' };
  return (await listens(record.address)) ? { kind: 'running', record } : { kind: 'silent', record };
}

function readLockHolder(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isStaleLock(file: string, holder: number | undefined): boolean {
  if (holder !== undefined) return !isAlive(holder);
  try {
    return Date.now() - statSync(file).mtimeMs > UNREADABLE_LOCK_STALE_MS;
  } catch {
    return false; // gone meanwhile: the next round tries to create it
  }
}

/** Takes agent.lock, or breaks a stale one and returns false (the next round takes it). */
function tryLock(file: string): boolean {
  try {
    writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const holder = readLockHolder(file);
  if (!isStaleLock(file, holder)) return false;
  const aside = `${file}.${process.pid}.stale`;
  try {
    renameSync(file, aside);
  } catch {
    return false; // another starter broke it first
  }
  const taken = readLockHolder(aside);
  if (taken !== holder && taken !== undefined && isAlive(taken)) {
    // A live starter's fresh lock replaced the stale one between the read and the rename: put it back.
    try {
      linkSync(aside, file);
    } catch {
      // a third starter holds it now; the live one finds out when it releases
    }
  }
  rmSync(aside, { force: true });
  return false;
}

function releaseLock(file: string): void {
  if (readLockHolder(file) === process.pid) rmSync(file, { force: true });
}

function lastLines(file: string, count: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-count).join('\n');
  } catch {
    return '';
  }
}

/** Starts `mcp-agent server` detached and waits until it has written agent.pid and answers. */
async function startDetached(home: string, options: EnsureLocalAgentOptions, deadline: number) {
  const files = localHomeFiles(home);
  const agentMain = options.agentMain ?? builtAgentMain();
  if (!existsSync(agentMain)) {
    throw new FailedPreconditionError(
      `the agent program ${agentMain} does not exist: build the package (npm run build) or reinstall it`,
    );
  }
  rmSync(files.pid, { force: true }); // stale: its process is gone (checked under the lock)
  const log = openSync(files.log, 'a', 0o600);
  let child: ChildProcess;
  try {
    // Detached in its own process group, stdin closed, output to agent.log: nothing ties it
    // to this process, whose client may exit (or be killed) while a deploy is running.
    child = spawn(
      process.execPath,
      [agentMain, 'server', '--config', files.agentConfig, '--pid-file', files.pid],
      { cwd: home, detached: true, stdio: ['ignore', log, log], env: options.env ?? process.env },
    );
  } finally {
    closeSync(log);
  }
  let exit: string | undefined;
  child.once('exit', (code, signal) => {
    exit = signal ? `was killed by ${signal}` : `exited with ${code}`;
  });
  child.once('error', (err) => {
    exit = `could not start (${err.message})`;
  });
  const ca = readFileSync(files.ca, 'utf8');
  for (;;) {
    if (exit) {
      throw new FailedPreconditionError(
        `the local agent ${exit}; its log (${files.log}) ends with:\n${lastLines(files.log, 10)}`,
      );
    }
    const record = readAgentPidFile(files.pid);
    if (record && record.pid === child.pid && (await answers(record.address, ca))) {
      child.unref();
      return record;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new UnavailableError(
        `the local agent (pid ${child.pid}) did not answer in time; see ${files.log}`,
      );
    }
    await sleep(POLL_MS);
  }
}

function handle(record: AgentPidRecord, started: boolean): LocalAgentHandle {
  return { address: record.address, pid: record.pid, started, node: record.node };
}

/**
 * The home's agent, started if none runs. Creates the local setup's files first (never
 * overwriting any).
 */
export async function ensureLocalAgent(
  home: string,
  options: EnsureLocalAgentOptions = {},
): Promise<LocalAgentHandle> {
  await prepareLocalHome(home);
  const files = localHomeFiles(home);
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  for (;;) {
    const found = await findAgent(home);
    if (found.kind === 'running') {
      return handle(found.record, false);
    }
    // A silent agent is left alone: starting a second one would give the registry two monitors.
    if (found.kind === 'none' && tryLock(files.lock)) {
      try {
        const again = await findAgent(home);
        if (again.kind === 'running') {
          return handle(again.record, false);
        }
        if (again.kind === 'none') {
          const record = await startDetached(home, options, deadline);
          return handle(record, true);
        }
      } finally {
        releaseLock(files.lock);
      }
    }
    if (Date.now() > deadline) {
      if (found.kind === 'silent') {
        throw new UnavailableError(
          `the local agent (pid ${found.record.pid}) runs but does not answer on ${found.record.address}: see ${files.log}; 'mcp agent stop' ends it and the next command starts a new one`,
        );
      }
      throw new UnavailableError(
        `another process (pid ${readLockHolder(files.lock) ?? 'unknown'}) is starting the local agent and it has not answered yet: see ${files.log}, or remove ${files.lock} if that process is gone`,
      );
    }
    await sleep(POLL_MS);
  }
}

/** Running (the pid file's process is this home's agent), stale (it is not), or stopped (no pid file). */
export async function localAgentStatus(home: string): Promise<LocalAgentStatus> {
  const files = localHomeFiles(home);
  const logFile = files.log;
  const record = readAgentPidFile(files.pid);
  if (!record) return existsSync(files.pid) ? { state: 'stale', logFile } : { state: 'stopped', logFile };
  const { pid, address, startedAt } = record;
  if (!isAgentOf(pid, home)) return { state: 'stale', pid, address, startedAt, logFile };
  const started = Date.parse(startedAt);
  const uptimeSeconds = Number.isNaN(started)
    ? undefined
    : Math.max(0, Math.round((Date.now() - started) / 1000));
  return { state: 'running', pid, address, startedAt, uptimeSeconds, logFile };
}

async function waitForExit(pid: number, deadline: number): Promise<boolean> {
  for (;;) {
    if (!isAlive(pid)) return true;
    if (Date.now() > deadline) return false;
    await sleep(POLL_MS);
  }
}

/**
 * Stops the home's agent: SIGTERM (it finishes calls in flight within its shutdown grace),
 * then SIGKILL after `timeoutMs` (20 s). Removes the pid file. False when no agent ran.
 */
export async function stopLocalAgent(home: string, options: { timeoutMs?: number } = {}): Promise<boolean> {
  const files = localHomeFiles(home);
  const record = readAgentPidFile(files.pid);
  if (!record || !isAgentOf(record.pid, home)) {
    rmSync(files.pid, { force: true });
    return false;
  }
  const { pid } = record;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // gone between the check and the signal
  }
  if (!(await waitForExit(pid, Date.now() + (options.timeoutMs ?? 20_000)))) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
    if (!(await waitForExit(pid, Date.now() + 5_000))) {
      throw new UnavailableError(`the local agent (pid ${pid}) survived SIGKILL: check it with ps`);
    }
  }
  rmSync(files.pid, { force: true });
  return true;
}
