/**
 * The container runtime over a CLI. podman and the docker CLI take the same flags for
 * everything the agent does, so there is one implementation here; a `RuntimeDialect`
 * supplies only what differs (how to list every container, forced removal).
 *
 * Every command is an argv array given to execa: nothing passes through a shell, and
 * user-supplied values go in `--flag=value` form so none can be read as a flag.
 */

import { execa } from 'execa';
import {
  type ErrorCode,
  FailedPreconditionError,
  InvalidArgumentError,
  McpError,
  NotFoundError,
} from '../../core/errors.js';
import { effectiveHealthCheck } from '../../core/spec.js';
import { isRecord } from '../../core/text.js';
import { characterStart, readCriLog } from './cri-log.js';
import {
  type ContainerDetails,
  type ContainerRuntime,
  type ContainerSummary,
  type HealthStatus,
  healthStatusOf,
  type LogsOptions,
  type LogsRead,
  observedStateName,
  type RunHealthCheck,
  type RunSpec,
  type RuntimeKind,
  type StopOptions,
} from './runtime.js';

/** What differs between podman and the docker CLI. */
export interface RuntimeDialect {
  readonly kind: RuntimeKind;
  /** Every container on the node, in as few runtime calls as the CLI allows. */
  list(exec: RuntimeExec): Promise<ContainerSummary[]>;
  /** Arguments that make `rm` remove a running container at once. */
  readonly forceRemoveArgs: readonly string[];
  /** Whether the runtime runs health checks by itself (else the agent runs them: `runHealthCheck`). */
  readonly schedulesHealthChecks: boolean;
  /** The value of `--health-cmd` for an argv. */
  healthCommandArg(command: readonly string[]): string;
  /**
   * The container's log file, when it is one in the CRI format (`cri-log.ts`) that the agent
   * reads itself rather than through the runtime's `logs`; undefined for any other driver.
   */
  logFile?(exec: RuntimeExec, name: string): Promise<string | undefined>;
}

/** Runs the runtime binary with `args`; resolves to its stdout, throws RuntimeCommandError. */
export type RuntimeExec = (args: readonly string[]) => Promise<string>;

export interface CliRuntimeOptions {
  /** Upper bound for any command except pull (stop and restart add their own timeout). Default 120 s. */
  readonly commandTimeoutMs?: number;
  /** How long one log read may take before what was read is returned (LOG_READ_DEADLINE_MS). */
  readonly logReadDeadlineMs?: number;
}

/**
 * A runtime command that failed. The message names the command (env values redacted), the
 * exit code and the runtime's own stderr, so a user can act on it without reading this code;
 * that is for the agent's log. `summary` is the one line that matters, for results and events.
 */
export class RuntimeCommandError extends McpError {
  /** The command as run, binary first, env values replaced by `***`. */
  readonly argv: readonly string[];
  readonly exitCode: number | undefined;
  readonly stderr: string;
  /** One short line: `image 127.0.0.1:5000/bb:nope not found in the registry`. */
  readonly summary: string;
  constructor(
    code: ErrorCode,
    fields: {
      argv: readonly string[];
      exitCode: number | undefined;
      stderr: string;
      reason: string;
      note?: string;
    },
    options?: ErrorOptions,
  ) {
    const stderr = fields.stderr ? `: ${fields.stderr}` : '';
    const note = fields.note ? ` (${fields.note})` : '';
    super(code, `${formatArgv(fields.argv)} failed (${fields.reason})${stderr}${note}`, options);
    this.argv = fields.argv;
    this.exitCode = fields.exitCode;
    this.stderr = fields.stderr;
    this.summary = summarize(code, fields);
  }
}

const MAX_SUMMARY_CHARS = 200;

/**
 * The line of a failure worth showing: for a pull, what is wrong with the image; else the
 * runtime's last error line (podman ends with `Error: ...`), without the command's noise.
 */
function summarize(
  code: ErrorCode,
  fields: { argv: readonly string[]; stderr: string; reason: string; note?: string },
): string {
  const [, verb = '', ...rest] = fields.argv;
  const lines = fields.stderr.split('\n').map((line) => line.trim());
  const last = lines.filter((line) => line !== '').at(-1) ?? '';
  const said = last.replace(/^(Error( response from daemon)?|level=error msg=)[:\s]*/i, '');
  const cut = (text: string) =>
    text.length > MAX_SUMMARY_CHARS ? `${text.slice(0, MAX_SUMMARY_CHARS)}...` : text;
  const note = fields.note ? ` (${fields.note})` : '';
  if (verb === 'pull') {
    const image = rest.at(-1) ?? '';
    if (code === 'NOT_FOUND') return `image ${image} not found in the registry`;
    if (code === 'UNAVAILABLE') return cut(`the registry of image ${image} cannot be reached: ${said}`);
  }
  if (code === 'DEADLINE_EXCEEDED' || code === 'ABORTED' || said === '') {
    return `${fields.argv[0]?.split('/').at(-1) ?? ''} ${verb} ${fields.reason}${note}`;
  }
  return `${cut(said)}${note}`;
}

const DEFAULT_COMMAND_TIMEOUT_MS = 120_000;
/**
 * How long one log read may take. The runtime reads a log file to its end, and a container
 * that writes faster than it reads keeps moving the end: with `since` past every line nothing
 * is printed, so no line bound ever stops the read.
 */
export const LOG_READ_DEADLINE_MS = 10_000;
const NEWLINE = 0x0a;
const MAX_STDERR_CHARS = 4000;
// The runtime's words for "no such container"; podman: `no container with name or ID "x" found:
// no such container`, `no such object`; docker: `No such container: x`, `No such object: x`.
const NO_SUCH_CONTAINER = /no such container|no such object|no container with name or id/i;
/** Whether a runtime command failed because a container it named does not exist (any more). */
export function isNoSuchContainer(err: unknown): boolean {
  return err instanceof RuntimeCommandError && NO_SUCH_CONTAINER.test(err.stderr);
}
// podman's and docker's rule for container names.
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export class CliRuntime implements ContainerRuntime {
  readonly kind: RuntimeKind;
  readonly path: string;
  readonly #dialect: RuntimeDialect;
  readonly #commandTimeoutMs: number;
  readonly #logReadDeadlineMs: number;

  constructor(dialect: RuntimeDialect, path: string, options: CliRuntimeOptions = {}) {
    this.kind = dialect.kind;
    this.path = path;
    this.#dialect = dialect;
    this.#commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.#logReadDeadlineMs = options.logReadDeadlineMs ?? LOG_READ_DEADLINE_MS;
  }

  async version(): Promise<string> {
    return (await this.#exec(['version', '--format', '{{.Client.Version}}'])).trim();
  }

  async pull(image: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    checkImage(image);
    // No timeout: a large pull may take long; the caller cancels with the signal.
    await this.#exec(['pull', image], { signal: options.signal, timeoutMs: 0 });
  }

  async run(spec: RunSpec): Promise<string> {
    const args = runArgs(spec, this.#dialect);
    // No check for the name first: a taken name fails the run itself with ALREADY_EXISTS
    // (classifyFailure), and a deploy saves a runtime call per component.
    try {
      const stdout = await this.#exec(args);
      return stdout.trim().split('\n').at(-1) ?? '';
    } catch (err) {
      // A run that fails in the OCI runtime (bad command, port taken) leaves the container
      // behind in state `created`, holding the name. A run that was not refused for the
      // name created it: remove it.
      if (
        err instanceof RuntimeCommandError &&
        err.code !== 'ALREADY_EXISTS' &&
        (await this.#containerId(spec.name)) !== undefined
      ) {
        await this.#exec(['rm', ...this.#dialect.forceRemoveArgs, spec.name]).catch(() => undefined);
        throw new RuntimeCommandError(
          err.code,
          {
            argv: err.argv,
            exitCode: err.exitCode,
            stderr: err.stderr,
            reason: reasonOf(err.exitCode),
            note: 'the half-created container was removed',
          },
          { cause: err },
        );
      }
      throw err;
    }
  }

  async start(name: string): Promise<void> {
    await this.#execOnContainer(name, ['start', name]);
  }

  async rename(from: string, to: string): Promise<void> {
    checkContainerName(to);
    await this.#execOnContainer(from, ['rename', from, to]);
  }

  async runHealthCheck(name: string): Promise<void> {
    if (this.#dialect.schedulesHealthChecks) return;
    try {
      await this.#execOnContainer(name, ['healthcheck', 'run', name]);
    } catch (err) {
      // Exit 1 with `unhealthy` is a verdict, recorded on the container, not a failure to run.
      if (err instanceof RuntimeCommandError && err.exitCode === 1) return;
      throw err;
    }
  }

  async stop(name: string, options: StopOptions): Promise<void> {
    const seconds = checkTimeout(options.timeoutSeconds);
    await this.#execOnContainer(name, ['stop', '-t', String(seconds), name], seconds);
  }

  async restart(name: string, options: StopOptions): Promise<void> {
    const seconds = checkTimeout(options.timeoutSeconds);
    await this.#execOnContainer(name, ['restart', '-t', String(seconds), name], seconds);
  }

  async remove(name: string, options: { force?: boolean } = {}): Promise<void> {
    const force = options.force ? this.#dialect.forceRemoveArgs : [];
    await this.#execOnContainer(name, ['rm', ...force, name]);
  }

  async inspect(name: string): Promise<ContainerDetails | undefined> {
    let stdout: string;
    try {
      stdout = await this.#execOnContainer(name, ['container', 'inspect', name]);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    const container = parseInspect(stdout);
    if (!container) return undefined;
    // The image's own env, to tell it apart from what the container was given. Best effort:
    // the image may have been removed since.
    const imageEnv = await this.#exec(['image', 'inspect', container.imageId])
      .then(parseImageEnv)
      .catch(() => []);
    const { rawEnv, hostname, ...details } = container;
    return { ...details, env: containerEnv(rawEnv, imageEnv, hostname) };
  }

  async imageRepoDigests(image: string): Promise<string[]> {
    checkImage(image);
    const first = array(parseJson(await this.#exec(['image', 'inspect', image]), 'image inspect'))[0];
    return strings(record(first).RepoDigests);
  }

  async list(): Promise<ContainerSummary[]> {
    return this.#dialect.list((args) => this.#exec(args));
  }

  /**
   * The last `tail` lines, and of those only the newest `maxBytes`. A log file in the CRI
   * format is read from its end (`cri-log.ts`); any other log through the runtime's `logs`.
   */
  async logs(name: string, options: LogsOptions): Promise<LogsRead> {
    checkContainerName(name);
    const file = await this.#dialect.logFile?.((args) => this.#execOnContainer(name, args), name);
    if (file !== undefined) return readCriLog(file, { ...options, deadlineMs: this.#logReadDeadlineMs });
    return this.#readLogs(name, options);
  }

  /**
   * `logs --tail N [--since T] NAME`, read as it streams (stdout and stderr interleaved, in
   * execa's `all`): only the newest `maxBytes` are held, so a chatty container costs at most
   * the cap in memory.
   */
  async #readLogs(name: string, options: LogsOptions): Promise<LogsRead> {
    const args = ['logs', `--tail=${options.tail}`];
    if (options.since) args.push(`--since=${options.since.toISOString()}`);
    args.push(name);
    const child = execa(this.path, args, {
      reject: false,
      stdin: 'ignore',
      all: true,
      buffer: false,
      cancelSignal: options.signal,
      timeout: this.#commandTimeoutMs,
    });
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let bytesDropped = 0;
    /** The last byte left out: a newline when the kept text starts a line. */
    let droppedEnd: number | undefined;
    let lines = 0;
    /** Killed here because the line bound was reached: not a failure. */
    let stopped = false;
    let outOfTime = false;
    const deadline = setTimeout(() => {
      outOfTime = true;
      stopped = true;
      child.kill();
    }, this.#logReadDeadlineMs);
    for await (const whole of child.all as AsyncIterable<Buffer>) {
      // The runtime reads a log file to its end, and a container that writes fast keeps moving
      // the end: `--tail` alone can return far more lines than asked. The first `tail` lines
      // are the ones asked for; what follows was written while reading.
      let chunk = whole;
      const end = lineEndAfter(chunk, options.tail - lines);
      if (end === undefined) lines += countNewlines(chunk);
      else chunk = chunk.subarray(0, end);
      kept.push(chunk);
      keptBytes += chunk.length;
      for (let first = kept[0]; first && keptBytes - first.length >= options.maxBytes; first = kept[0]) {
        kept.shift();
        keptBytes -= first.length;
        bytesDropped += first.length;
        droppedEnd = first.at(-1);
      }
      if (end === undefined) continue;
      stopped = true;
      child.kill();
      break;
    }
    const result = await child;
    clearTimeout(deadline);
    let held = Buffer.concat(kept);
    if (held.length > options.maxBytes) {
      const cut = held.length - options.maxBytes;
      droppedEnd = held[cut - 1];
      bytesDropped += cut;
      held = held.subarray(cut);
    }
    if (bytesDropped > 0 && droppedEnd !== NEWLINE) {
      // The cut fell inside a line: it goes whole, unless it is the only one.
      const lineEnd = held.indexOf(NEWLINE);
      const from = characterStart(held, lineEnd !== -1 && lineEnd < held.length - 1 ? lineEnd + 1 : 0);
      bytesDropped += from;
      held = held.subarray(from);
    }
    const text = held.toString('utf8');
    if (outOfTime && !result.isCanceled) {
      return {
        text: cutAtLineEnd(text),
        truncated: bytesDropped > 0,
        bytesDropped,
        incomplete: `stopped reading after ${this.#logReadDeadlineMs / 1000} s: the container writes faster than its log can be read; set \`since\` nearer to now or lower \`tail\``,
      };
    }
    if (result.failed && (!stopped || result.timedOut || result.isCanceled)) {
      // Without buffering there is no stderr to classify: the runtime's words went into `text`,
      // after whatever log lines it printed first.
      const argv = redactArgv([this.path, ...args]);
      const said = text.split('\n').filter((line) => /^(Error|error):/.test(line));
      const stderr = trimStderr(said.length > 0 ? said.join('\n') : text.slice(-MAX_STDERR_CHARS));
      if (NO_SUCH_CONTAINER.test(text)) {
        throw new NotFoundError(`no container named '${name}' (${this.kind})`);
      }
      throw new RuntimeCommandError(
        result.timedOut ? 'DEADLINE_EXCEEDED' : result.isCanceled ? 'ABORTED' : classifyFailure(stderr),
        { argv, exitCode: result.exitCode, stderr, reason: reasonOf(result.exitCode) },
      );
    }
    return { text, truncated: bytesDropped > 0, bytesDropped };
  }

  async #containerId(name: string): Promise<string | undefined> {
    try {
      return (
        await this.#execOnContainer(name, ['container', 'inspect', '--format', '{{.Id}}', name])
      ).trim();
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /** Runs a command on one named container: a runtime's "no such container" becomes NotFoundError. */
  async #execOnContainer(name: string, args: readonly string[], extraSeconds = 0): Promise<string> {
    checkContainerName(name);
    try {
      return await this.#exec(args, { timeoutMs: this.#commandTimeoutMs + extraSeconds * 1000 });
    } catch (err) {
      if (isNoSuchContainer(err)) {
        throw new NotFoundError(`no container named '${name}' (${this.kind})`, { cause: err });
      }
      throw err;
    }
  }

  async #exec(
    args: readonly string[],
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<string> {
    const result = await execa(this.path, args, {
      reject: false,
      stdin: 'ignore',
      cancelSignal: options.signal,
      timeout: options.timeoutMs ?? this.#commandTimeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
    if (!result.failed) return result.stdout;

    const argv = redactArgv([this.path, ...args]);
    // The command never started: there is no exit code and no stderr to read.
    if (!result.timedOut && !result.isCanceled && result.exitCode === undefined && !result.signal) {
      throw this.#spawnError(args, argv, result.code);
    }
    // execa leaves stderr undefined when the process could not be set up; never assume it.
    const stderr = trimStderr(typeof result.stderr === 'string' ? result.stderr : '');
    let code: ErrorCode = classifyFailure(stderr);
    let reason = reasonOf(result.exitCode);
    if (result.timedOut) {
      code = 'DEADLINE_EXCEEDED';
      reason = `timed out after ${options.timeoutMs ?? this.#commandTimeoutMs} ms`;
    } else if (result.isCanceled) {
      code = 'ABORTED';
      reason = 'canceled';
    } else if (result.exitCode === undefined && result.signal) {
      reason = `killed by ${result.signal}`;
    }
    throw new RuntimeCommandError(
      code,
      { argv, exitCode: result.exitCode, stderr, reason },
      { cause: result },
    );
  }

  /**
   * The error for a command the OS refused to start. `E2BIG` means the arguments (env
   * values, cmd) are too long for one command line: the request is at fault, so it is
   * INVALID_ARGUMENT naming the longest argument. The cause is left out on purpose: execa's
   * message quotes the whole command, env values included.
   */
  #spawnError(args: readonly string[], argv: readonly string[], errno: string | undefined): McpError {
    const where = this.path.includes('/') ? `at '${this.path}'` : `on PATH as '${this.path}'`;
    switch (errno) {
      case 'ENOENT':
      case 'EACCES': {
        const problem = errno === 'ENOENT' ? 'not found' : 'not executable';
        return new FailedPreconditionError(
          `container runtime '${this.kind}' ${problem} ${where} (${errno}): install it or set container_runtime/runtime_path`,
        );
      }
      case 'E2BIG':
        return new InvalidArgumentError(
          `${formatArgv(argv.slice(0, 2))} ... could not start (E2BIG): ${describeLongestArgument(args)}; the operating system allows at most ${MAX_ARG_BYTES} bytes in one argument and about 2 MiB in all: shorten it, or push a large value as a file (push_file) and mount it`,
        );
      default:
        return new FailedPreconditionError(
          `container runtime '${this.kind}' ${where} could not be started (${errno ?? 'unknown error'}) for ${formatArgv(argv.slice(0, 2))}: check that it is installed and runnable (container_runtime/runtime_path) and the agent's resources (memory, process limits), then retry`,
        );
    }
  }
}

/** Linux's MAX_ARG_STRLEN: 32 pages. */
const MAX_ARG_BYTES = 128 * 1024;

/** `the env variable NAME (N bytes)` or `cmd argument I (N bytes)`, never the value itself. */
function describeLongestArgument(args: readonly string[]): string {
  let longest = -1;
  let longestBytes = -1;
  args.forEach((arg, i) => {
    const bytes = Buffer.byteLength(arg);
    if (bytes > longestBytes) {
      longest = i;
      longestBytes = bytes;
    }
  });
  const total = args.reduce((sum, arg) => sum + Buffer.byteLength(arg) + 1, 0);
  const arg = args[longest] ?? '';
  const eq = arg.indexOf('=', 6);
  if (arg.startsWith('--env=') && eq !== -1) {
    const valueBytes = Buffer.byteLength(arg.slice(eq + 1));
    return `the value of environment variable ${arg.slice(6, eq)} is ${valueBytes} bytes (${total} bytes of arguments in all)`;
  }
  return `argument ${longest + 1} is ${longestBytes} bytes (${total} bytes of arguments in all)`;
}

// ---------------------------------------------------------------- argv

/**
 * The argv (after the binary) that runs `spec` detached; the same for podman and docker but
 * for the form of `--health-cmd` (podman's by default).
 */
export function runArgs(
  spec: RunSpec,
  dialect: Pick<RuntimeDialect, 'healthCommandArg'> = { healthCommandArg: (c) => JSON.stringify(c) },
): string[] {
  checkContainerName(spec.name);
  checkImage(spec.image);
  const args = ['run', '--detach', `--name=${spec.name}`];
  if (spec.network) args.push(`--network=${spec.network}`);
  if (spec.user) args.push(`--user=${spec.user}`);
  if (spec.restart) args.push(`--restart=${spec.restart}`);
  if (spec.init) args.push('--init');
  if (spec.stopTimeoutSeconds !== undefined) {
    args.push(`--stop-timeout=${checkTimeout(spec.stopTimeoutSeconds)}`);
  }
  if (spec.healthCheck) args.push(...healthArgs(spec.healthCheck, dialect));
  for (const port of spec.ports ?? []) args.push(`--publish=${port}`);
  for (const volume of spec.volumes ?? []) args.push(`--volume=${volume}`);
  // The runtime reads the file itself: its values never enter argv, logs or error messages.
  for (const file of spec.envFiles ?? []) {
    if (!file.startsWith('/')) throw new InvalidArgumentError(`env file '${file}' is not an absolute path`);
    args.push(`--env-file=${file}`);
  }
  for (const [key, value] of Object.entries(spec.env ?? {})) {
    if (key === '' || key.includes('=') || key.includes('\0')) {
      throw new InvalidArgumentError(`environment variable name '${key}' is not valid: no '=' and not empty`);
    }
    args.push(`--env=${key}=${value}`);
  }
  // The image ends flag parsing (both CLIs stop at the first positional argument), so cmd
  // is passed to the container verbatim even when an argument starts with '-'.
  args.push(spec.image, ...(spec.cmd ?? []));
  return args;
}

function healthArgs(check: RunHealthCheck, dialect: Pick<RuntimeDialect, 'healthCommandArg'>): string[] {
  if (check.command.length === 0) throw new InvalidArgumentError('a health check needs a command');
  const full = effectiveHealthCheck(check);
  return [
    `--health-cmd=${dialect.healthCommandArg(full.command)}`,
    `--health-interval=${full.intervalSeconds}s`,
    `--health-timeout=${full.timeoutSeconds}s`,
    `--health-retries=${full.retries}`,
    `--health-start-period=${full.startPeriodSeconds}s`,
  ];
}

function checkContainerName(name: string): void {
  if (!CONTAINER_NAME.test(name)) {
    throw new InvalidArgumentError(
      `container name '${name}' is not valid: letters, digits, '_', '.' and '-', starting with a letter or digit`,
    );
  }
}

function checkImage(image: string): void {
  if (image === '' || image.startsWith('-') || /\s/.test(image)) {
    throw new InvalidArgumentError(`image reference '${image}' is not valid`);
  }
}

function checkTimeout(seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < 0) {
    throw new InvalidArgumentError(`stop timeout must be a whole number of seconds >= 0, got ${seconds}`);
  }
  return seconds;
}

function redactArgv(argv: readonly string[]): string[] {
  return argv.map((arg) => (arg.startsWith('--env=') ? `${arg.slice(0, arg.indexOf('=', 6) + 1)}***` : arg));
}

function formatArgv(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./*-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(' ');
}

// Progress lines podman and docker print while pulling, and podman's retry warnings that
// repeat the final error: they add length, not information.
const PROGRESS_LINE =
  /^(time=".*" level=warning msg="Failed, retrying in |Trying to pull |Getting image source signatures|Copying (blob|config) |Writing manifest|Storing signatures|[0-9a-f]{12}: (Pulling|Waiting|Downloading|Verifying|Download|Extracting|Pull complete))/;

function trimStderr(stderr: string): string {
  const trimmed = stderr
    .split('\n')
    .filter((line) => !PROGRESS_LINE.test(line))
    .join('\n')
    .trim();
  return trimmed.length > MAX_STDERR_CHARS ? `...${trimmed.slice(-MAX_STDERR_CHARS)}` : trimmed;
}

function countNewlines(chunk: Buffer): number {
  let count = 0;
  for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) count++;
  return count;
}

/** The offset just past the `n`-th newline of `chunk`, or undefined when it has fewer. */
function lineEndAfter(chunk: Buffer, n: number): number | undefined {
  let at = -1;
  for (let i = 0; i < n; i++) {
    at = chunk.indexOf(10, at + 1);
    if (at === -1) return undefined;
  }
  return at + 1;
}

/**
 * Text cut by a byte cap: ends at its last line end (when that drops less than a quarter of
 * it), and never in the middle of a UTF-8 sequence (a cut one decodes as U+FFFD at the end).
 */
function cutAtLineEnd(text: string): string {
  const clean = text.replace(/\uFFFD+$/, '');
  const lastNewline = clean.lastIndexOf('\n');
  return lastNewline >= clean.length * 0.75 ? clean.slice(0, lastNewline + 1) : clean;
}

function reasonOf(exitCode: number | undefined): string {
  return exitCode === undefined ? 'no exit code' : `exit code ${exitCode}`;
}

/** The error code a runtime failure maps to, from the runtime's stderr. */
export function classifyFailure(stderr: string): ErrorCode {
  // A taken container name (podman: `that name is already in use`, docker: `Conflict. The
  // container name "/web" is already in use`); a taken port stays FAILED_PRECONDITION.
  if (/name .*already in use|already exists/i.test(stderr)) return 'ALREADY_EXISTS';
  if (NO_SUCH_CONTAINER.test(stderr)) return 'NOT_FOUND';
  if (
    /manifest unknown|name unknown|repository .* not found|no such image|image not known|not found: manifest/i.test(
      stderr,
    )
  ) {
    return 'NOT_FOUND';
  }
  if (
    /connection refused|no such host|i\/o timeout|network is unreachable|tls handshake timeout|cannot connect to the docker daemon/i.test(
      stderr,
    )
  ) {
    return 'UNAVAILABLE';
  }
  // Anything else the runtime refused (bad flag value, port taken, command not in image):
  // its message says why.
  return 'FAILED_PRECONDITION';
}

// ---------------------------------------------------------------- inspect parsing

/** The fields of `container inspect` before env is told apart from the image's. */
export interface InspectedContainer extends Omit<ContainerDetails, 'env'> {
  readonly rawEnv: readonly string[];
  readonly hostname: string;
}

/**
 * Parses `podman container inspect` / `docker container inspect` output (a JSON array of
 * one). The two are close: docker prefixes Name with '/', podman adds mount options to
 * Binds and gives Entrypoint as a string; none of that reaches the result.
 */
export function parseInspect(stdout: string): InspectedContainer | undefined {
  const first = array(parseJson(stdout, 'container inspect'))[0];
  return isRecord(first) ? inspectedContainer(first) : undefined;
}

/** One element of `container inspect` output. */
export function inspectedContainer(first: Record<string, unknown>): InspectedContainer {
  const config = record(first.Config);
  const host = record(first.HostConfig);
  const state = record(first.State);
  const settings = record(first.NetworkSettings);
  return {
    name: string(first.Name).replace(/^\//, ''),
    id: string(first.Id),
    image: string(config.Image) || string(first.ImageName),
    imageId: string(first.Image),
    state: observedStateName(string(state.Status)),
    startedAt: parseTime(string(state.StartedAt)),
    command: strings(config.Cmd),
    cmd: strings(config.Cmd),
    ports: portMappings(record(host.PortBindings)),
    volumes: strings(host.Binds).map(normaliseBind).sort(),
    network: networkName(string(host.NetworkMode), Object.keys(record(settings.Networks))),
    user: string(config.User),
    restart: string(record(host.RestartPolicy).Name) || 'no',
    init: host.Init === true,
    // podman 4.3 reports it as both `Health` and `Healthcheck`; docker as `Health`.
    ...healthField(string(record(state.Health ?? state.Healthcheck).Status)),
    stopTimeoutSeconds: typeof config.StopTimeout === 'number' ? config.StopTimeout : undefined,
    hostAccess: {
      privileged: host.Privileged === true,
      capAdd: strings(host.CapAdd),
      devices: array(host.Devices).map((device) => string(record(device).PathOnHost)),
      pidMode: string(host.PidMode),
      ipcMode: string(host.IpcMode),
      utsMode: string(host.UTSMode),
      securityOpt: strings(host.SecurityOpt),
      mounts: array(first.Mounts).map((mount) => ({
        type: string(record(mount).Type),
        source: string(record(mount).Source),
        destination: string(record(mount).Destination),
        name: string(record(mount).Name),
        readOnly: record(mount).RW === false,
      })),
    },
    rawEnv: strings(config.Env),
    hostname: string(config.Hostname),
  };
}

function healthField(status: string): { health?: HealthStatus } {
  const health = healthStatusOf(status);
  return health ? { health } : {};
}

/** `image inspect` output → the image's Config.Env. */
export function parseImageEnv(stdout: string): string[] {
  const first = array(parseJson(stdout, 'image inspect'))[0];
  return strings(record(record(first).Config).Env);
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The rule documented on ContainerDetails.env. */
export function containerEnv(
  rawEnv: readonly string[],
  imageEnv: readonly string[],
  hostname: string,
): Record<string, string> {
  const fromImage = new Set(imageEnv);
  const env: Record<string, string> = {};
  for (const entry of rawEnv) {
    if (fromImage.has(entry)) continue;
    const eq = entry.indexOf('=');
    const key = eq < 0 ? entry : entry.slice(0, eq);
    const value = eq < 0 ? '' : entry.slice(eq + 1);
    if (isInjected(key, value, hostname)) continue;
    env[key] = value;
  }
  return env;
}

function isInjected(key: string, value: string, hostname: string): boolean {
  switch (key) {
    case 'PATH':
      return value === DEFAULT_PATH;
    case 'TERM':
      return value === 'xterm';
    case 'container':
      return value === 'podman' || value === 'docker';
    case 'HOSTNAME':
      return value === hostname;
    case 'HOME':
      return value === '/' || value === '/root';
    default:
      return false;
  }
}

function portMappings(bindings: Record<string, unknown>): string[] {
  const mappings: string[] = [];
  for (const [containerPort, hosts] of Object.entries(bindings)) {
    const port = containerPort.includes('/') ? containerPort : `${containerPort}/tcp`;
    for (const binding of array(hosts)) {
      const hostIp = string(record(binding).HostIp);
      const hostPort = string(record(binding).HostPort);
      mappings.push(`${hostIp ? `${hostIp}:` : ''}${hostPort}:${port}`);
    }
  }
  return mappings.sort();
}

const KEPT_BIND_OPTIONS = new Set(['ro', 'z', 'Z']);

/** `/src:/dst:ro,rprivate,rbind` → `/src:/dst:ro`; `rw` and propagation options are defaults. */
function normaliseBind(bind: string): string {
  const [source, destination, options] = bind.split(':');
  const kept = (options ?? '').split(',').filter((option) => KEPT_BIND_OPTIONS.has(option));
  return [source, destination, ...(kept.length ? [kept.join(',')] : [])].join(':');
}

function networkName(mode: string, networks: string[]): string {
  if (mode === 'host' || mode === 'none' || mode.startsWith('container:') || mode.startsWith('ns:'))
    return mode;
  return networks.length ? networks.sort().join(',') : mode;
}

// ---------------------------------------------------------------- JSON without `any`

export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new McpError(
      'INTERNAL',
      `could not parse the runtime's ${what} output as JSON: ${text.slice(0, 200)}`,
      {
        cause: err,
      },
    );
  }
}

export function record(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}

export function array(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

export function string(value: unknown): string {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';
}

export function strings(value: unknown): string[] {
  return array(value).filter((item): item is string => typeof item === 'string');
}

/** RFC 3339 → Date; Go's zero time (`0001-01-01...`) and garbage → undefined. */
export function parseTime(text: string): Date | undefined {
  if (!text || text.startsWith('0001-01-01')) return undefined;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
