/**
 * Env files: a component's secrets, kept on the node in `<files.root>/<service>/secrets/` and
 * named by path in its spec (`env_files`), so that definitions, tool arguments, results, the
 * registry and the audit log carry names and never values.
 *
 * A file is used only when it is a regular file with one link, inside the service's `secrets/`
 * folder once links are resolved, owned by the agent's user and readable by nobody else
 * (mode 0600 or stricter). The agent checks it through an open descriptor (the same confinement
 * as push and pull, agent/files/paths.ts), parses it, and hands the runtime that very
 * descriptor as `/proc/<agent pid>/fd/<n>`: a file swapped after the check is not the one read.
 *
 * The format is what podman 4.3 and the docker CLI both read the same way: `KEY=VALUE` lines,
 * the value taken verbatim to the end of the line (quotes, spaces and `#` are part of it; no
 * escapes, no continuation lines), blank lines and lines starting with `#` skipped. Lines the
 * two read differently or dangerously are refused: a bare `KEY` (both copy the variable from
 * the agent's own environment into the container), `export KEY=...`, spaces around the name.
 */
import { constants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, McpError, NotFoundError } from '../core/errors.js';
import { isInside, SECRETS_FOLDER } from '../core/paths.js';
import { ENV_KEY_PATTERN } from '../core/spec.js';
import type { ComponentSpec, ServiceSpec } from '../gen/mcp/v1/mcp.js';
import type { ComponentRecord } from '../registry/services.js';
import { openDirectory, resolveServicePath } from './files/paths.js';
import type { HandlerDeps } from './handlers/deps.js';

/** Largest env file read: far more than any set of variables needs. */
export const MAX_ENV_FILE_BYTES = 64 * 1024;
/** Shorter values are not masked in logs: `***` in place of every `1` or `true` hides nothing. */
export const MIN_MASKED_LENGTH = 6;
export const MASK = '***';

/** One env file, checked and open. */
interface OpenEnvFile {
  /** What the runtime is given: the open descriptor, as a path the runtime can open. */
  readonly runtimePath: string;
  /** The file's values by name; never logged, never returned. */
  readonly variables: ReadonlyMap<string, string>;
  close(): Promise<void>;
}

type EnvFilesOf = Pick<ComponentSpec, 'name' | 'envFiles'>;

/**
 * Runs `use` with the component's env files checked and open, as paths for `--env-file`.
 * Throws FAILED_PRECONDITION or INVALID_ARGUMENT saying which file is wrong and how to fix it.
 */
export async function withEnvFiles<T>(
  root: string,
  service: string,
  component: EnvFilesOf,
  use: (envFiles: string[]) => Promise<T>,
): Promise<T> {
  const opened: OpenEnvFile[] = [];
  try {
    for (const file of component.envFiles ?? [])
      opened.push(await openEnvFile(root, service, component, file));
    return await use(opened.map((f) => f.runtimePath));
  } finally {
    await Promise.all(opened.map((f) => f.close()));
  }
}

/**
 * Checks the env files of every component a deploy will run, before anything is recorded or
 * stopped: a missing or unsafe file fails the deploy with nothing changed.
 */
export async function assertEnvFilesReady(
  deps: HandlerDeps,
  plan: { service: string; spec: ServiceSpec | undefined; component: string },
): Promise<void> {
  // What the deploy will run: the spec's components, or the recorded ones it manages.
  const components: EnvFilesOf[] =
    plan.spec?.components ??
    deps.registry.services.get(plan.service)?.components.filter((c) => c.desiredState !== 'ignore') ??
    [];
  for (const component of components) {
    if (plan.component && component.name !== plan.component) continue;
    await withEnvFiles(deps.config.files.root, plan.service, component, async () => undefined);
  }
}

/**
 * Every value a component may hold from its env files: what its files say now, and what its
 * container was started with that its inline env does not give (the files may have changed
 * since). Best effort: what cannot be read is left out.
 */
export async function secretValuesOf(deps: HandlerDeps, component: ComponentRecord): Promise<string[]> {
  if (component.envFiles.length === 0) return [];
  const values = new Set<string>();
  for (const file of component.envFiles) {
    try {
      const opened = await openEnvFile(deps.config.files.root, component.service, component, file);
      await opened.close();
      for (const value of opened.variables.values()) values.add(value);
    } catch {
      // A file gone since the deploy: the container's own environment below still says.
    }
  }
  const details = await deps.runtime.inspect(component.container).catch(() => undefined);
  for (const [key, value] of Object.entries(details?.env ?? {})) {
    if (component.env[key] !== value) values.add(value);
  }
  return [...values];
}

/** `text` with every secret of at least MIN_MASKED_LENGTH characters replaced by `***`. */
export function maskSecrets(text: string, secrets: readonly string[]): string {
  // Longest first, so a secret that contains another is masked whole.
  const masked = [...new Set(secrets)]
    .filter((s) => s.length >= MIN_MASKED_LENGTH)
    .sort((a, b) => b.length - a.length);
  return masked.reduce((out, secret) => out.split(secret).join(MASK), text);
}

/** The shortest piece of a secret masked where a cut split it: a shorter one tells little. */
export const MIN_MASKED_PIECE = 3;

/**
 * `text`, masked by maskSecrets, after a cut from a longer log: a secret the cut split leaves
 * a piece that maskSecrets cannot see, its end at the start of `text` (`start`: the text begins
 * inside a line) or its beginning at the end (`end`: the last line is not whole yet). Such a
 * piece of MIN_MASKED_PIECE characters or more becomes `***` too.
 */
export function maskCutSecrets(
  text: string,
  secrets: readonly string[],
  cut: { readonly start: boolean; readonly end: boolean },
): string {
  let head = 0;
  let tail = 0;
  for (const secret of secrets) {
    if (secret.length < MIN_MASKED_LENGTH) continue;
    // Cut at both ends inside one secret: all of the text is a piece of it.
    if (cut.start && cut.end && text.length >= MIN_MASKED_PIECE && secret.includes(text)) return MASK;
    if (cut.start) head = Math.max(head, pieceAtStart(secret, text));
    if (cut.end) tail = Math.max(tail, pieceAtEnd(secret, text));
  }
  if (head + tail >= text.length) return head + tail > 0 ? MASK : text;
  return `${head > 0 ? MASK : ''}${text.slice(head, text.length - tail)}${tail > 0 ? MASK : ''}`;
}

/** The longest end of `secret`, not all of it, that `text` starts with; 0 under MIN_MASKED_PIECE. */
function pieceAtStart(secret: string, text: string): number {
  const first = text[0];
  if (first === undefined) return 0;
  for (let i = secret.indexOf(first, 1); i !== -1; i = secret.indexOf(first, i + 1)) {
    if (secret.length - i < MIN_MASKED_PIECE) break;
    if (text.startsWith(secret.slice(i))) return secret.length - i;
  }
  return 0;
}

/** The longest start of `secret`, not all of it, that `text` ends with; 0 under MIN_MASKED_PIECE. */
function pieceAtEnd(secret: string, text: string): number {
  const last = text.at(-1);
  if (last === undefined) return 0;
  for (
    let i = secret.lastIndexOf(last, secret.length - 2);
    i >= MIN_MASKED_PIECE - 1;
    i = secret.lastIndexOf(last, i - 1)
  ) {
    if (text.endsWith(secret.slice(0, i + 1))) return i + 1;
  }
  return 0;
}

/**
 * The variables of an env file's text. Throws INVALID_ARGUMENT naming the line and what is
 * wrong with it, never its value.
 */
export function parseEnvFile(text: string, shown: string): Map<string, string> {
  const variables = new Map<string, string>();
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((raw, index) => {
    // Both runtimes read lines with Go's bufio.Scanner, which drops a CR before the LF.
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const bad = (why: string) =>
      new InvalidArgumentError(`env file ${shown}, line ${index + 1}: ${why}; fix the file on the node`);
    const trimmed = line.trimStart();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    if (line.includes('\0')) throw bad('contains a NUL character');
    const eq = line.indexOf('=');
    if (eq === -1) {
      throw bad(
        'has no "=": write KEY=VALUE (a bare name would copy the variable from the agent\'s own environment)',
      );
    }
    const key = line.slice(0, eq);
    if (!ENV_KEY_PATTERN.test(key)) {
      throw bad(
        'the name before "=" is not a variable name: write KEY=VALUE with letters, digits and _ only, no spaces and no "export"',
      );
    }
    variables.set(key, line.slice(eq + 1));
  });
  return variables;
}

async function openEnvFile(
  root: string,
  service: string,
  component: EnvFilesOf,
  file: string,
): Promise<OpenEnvFile> {
  const where = `env file '${file}' of component ${component.name}`;
  const fix = `put it there from your terminal (\`mcp push_file\` or by hand on the node, mode 0600), not through an AI assistant`;
  let target: Awaited<ReturnType<typeof resolveServicePath>>;
  try {
    target = await resolveServicePath(root, service, file, { create: false });
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new McpError('FAILED_PRECONDITION', `${where}: ${err.message}: ${fix}`, { cause: err });
    }
    if (err instanceof McpError) throw new McpError(err.code, `${where}: ${err.message}`, { cause: err });
    throw err;
  }
  const shown = `${target.shown}${target.relative}`;
  const refuse = (why: string) => new McpError('FAILED_PRECONDITION', `${where}: ${shown} ${why}`);
  if (!isInside(path.join(target.boundary, SECRETS_FOLDER), target.parent)) {
    throw new InvalidArgumentError(
      `${where}: ${shown} leads outside ${target.shown}${SECRETS_FOLDER}/ through a symbolic link: put the file itself in ${SECRETS_FOLDER}/`,
    );
  }
  if (target.stat === undefined) throw refuse(`does not exist: ${fix}`);
  if (!target.stat.isFile()) throw refuse('is not a regular file: put a file of KEY=VALUE lines there');

  const directory = await openDirectory(target);
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO swapped in after the check must not hang the deploy.
    handle = await fs.open(
      directory.entry(target.name),
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    );
  } catch (err) {
    throw refuse(`cannot be opened (${(err as NodeJS.ErrnoException).code ?? String(err)}): ${fix}`);
  } finally {
    await directory.close();
  }
  try {
    const stat = await handle.stat();
    const uid = process.geteuid?.() ?? stat.uid;
    if (!stat.isFile()) throw refuse('is not a regular file: put a file of KEY=VALUE lines there');
    if (stat.nlink !== 1) {
      throw refuse(
        `has ${stat.nlink} hard links, so it may be another file: replace it with a copy of its own`,
      );
    }
    if (stat.uid !== uid) {
      throw refuse(`is owned by uid ${stat.uid}, not by the agent's user: run \`chown ${uid} ${shown}\``);
    }
    if ((stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
      throw refuse(`has mode ${mode}, so other users can read it: run \`chmod 600 ${shown}\``);
    }
    if (stat.size > MAX_ENV_FILE_BYTES) {
      throw refuse(
        `is ${stat.size} bytes, over the limit of ${MAX_ENV_FILE_BYTES}: keep only KEY=VALUE lines in it`,
      );
    }
    const text = (await handle.readFile()).toString('utf8');
    if (text.includes('\uFFFD')) throw refuse('is not UTF-8 text: save it as UTF-8');
    const variables = parseEnvFile(text, shown);
    return {
      // The runtime is the agent's child: it opens the agent's descriptor, not the path again.
      runtimePath: `/proc/${process.pid}/fd/${handle.fd}`,
      variables,
      close: () => handle.close(),
    };
  } catch (err) {
    await handle.close();
    throw err;
  }
}
