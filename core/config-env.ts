/**
 * Reading the TOML files operators write (agent and connector configs, service
 * definitions): parse with line and column on syntax errors, validate with zod into
 * one message line per problem (`file: field: what is wrong and what is expected`),
 * apply environment overrides, and resolve paths the way the file's author meant them.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import * as z from 'zod';
import { InvalidArgumentError, NotFoundError } from './errors.js';
import { checkName } from './spec.js';

export type Env = Readonly<Record<string, string | undefined>>;
export type TomlTable = Record<string, unknown>;

/** Reads a config file; a missing file is a NotFoundError that says how to get one. */
export async function readConfigText(file: string, what: string, example: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError(
        `${file}: ${what} not found: create it (see ${example} for a commented example)`,
        {
          cause: err,
        },
      );
    }
    throw new InvalidArgumentError(`${file}: cannot read the ${what}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Parses TOML; a syntax error becomes `file: line L, column C: reason`. */
export function parseTomlDocument(text: string, file: string): TomlTable {
  try {
    // 'throw' rejects __proto__/constructor keys instead of letting them reach an object.
    return parse(text, { unsafeKeyBehaviour: 'throw' });
  } catch (err) {
    if (err instanceof TomlError) {
      const reason = err.message.split('\n')[0]?.replace(/^Invalid TOML document: /, '') ?? 'syntax error';
      throw new InvalidArgumentError(
        `${file}: line ${err.line}, column ${err.column}: invalid TOML: ${reason}`,
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * Validates `data` with `schema`; on failure throws one InvalidArgumentError with a line per
 * problem. `sources` maps a field path to the environment variable that set it.
 */
export function parseWithSchema<T extends z.ZodType>(
  schema: T,
  data: unknown,
  file: string,
  sources: ReadonlyMap<string, string> = new Map(),
): z.output<T> {
  const result = schema.safeParse(data, { error: configErrorMap });
  if (result.success) return result.data;
  throw new InvalidArgumentError(issueLines(result.error.issues, file, sources).join('\n'));
}

/** `file: field (from ENV): message` for each issue. */
export function issueLines(
  issues: readonly z.core.$ZodIssue[],
  file: string,
  sources: ReadonlyMap<string, string> = new Map(),
): string[] {
  return issues.map((issue) => {
    const path = formatIssuePath(issue.path);
    if (path === '') return `${file}: ${issue.message}`;
    const source = sources.get(path);
    return `${file}: ${path}${source ? ` (from ${source})` : ''}: ${issue.message}`;
  });
}

/** `['components', 0, 'image']` → `components[0].image`. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else if (typeof part === 'string' && /^[A-Za-z0-9_-]+$/.test(part))
      text += text === '' ? part : `.${part}`;
    else text += `[${JSON.stringify(String(part))}]`;
  }
  return text;
}

/** Messages for operators editing a TOML file, not for programmers reading a schema. */
export const configErrorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'required';
      return `expected ${describeExpected(issue.expected)}, got ${describeValue(issue.input)}`;
    case 'unrecognized_keys':
      return unknownKeysMessage(issue.keys, allowedKeysOf(issue.inst));
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(issue.input)}`;
    case 'too_small':
      if (issue.origin === 'array')
        return `at least ${issue.minimum} ${issue.minimum === 1 ? 'entry is' : 'entries are'} required`;
      if (issue.origin === 'string') return 'must not be empty';
      return `must be at least ${issue.minimum}`;
    case 'too_big':
      if (issue.origin === 'array') return `at most ${issue.maximum} entries are allowed`;
      if (issue.origin === 'string') return `must be at most ${issue.maximum} characters long`;
      return `must be at most ${issue.maximum}`;
    default:
      return undefined;
  }
};

function allowedKeysOf(inst: unknown): string[] {
  const shape = (inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def
    ?.shape;
  return shape ? Object.keys(shape) : [];
}

function unknownKeysMessage(keys: readonly string[], allowed: readonly string[]): string {
  const described = keys.map((key) => {
    const near = allowed.find((candidate) => editDistance(key, candidate) <= 2);
    return near ? `"${key}" (did you mean "${near}"?)` : `"${key}"`;
  });
  const noun = keys.length === 1 ? 'unknown key' : 'unknown keys';
  return `${noun} ${described.join(', ')}; allowed keys here: ${allowed.join(', ')}`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function describeExpected(expected: string): string {
  const names: Record<string, string> = {
    string: 'a string (in double quotes)',
    number: 'a number',
    int: 'an integer',
    boolean: 'true or false',
    array: 'an array [ ... ]',
    object: 'a table',
    record: 'a table',
  };
  return names[expected] ?? expected;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (typeof value === 'object') return 'a table';
  return typeof value;
}

// --- environment overrides ---------------------------------------------------------------

export interface EnvOverride {
  /** The variable, e.g. `MCP_AGENT_LISTEN`. */
  variable: string;
  /** Where it goes in the TOML document, e.g. `['server', 'listen']`. */
  path: readonly string[];
  /** `path` values are resolved against the current directory, as a shell user expects. */
  kind: 'string' | 'path' | 'integer' | 'boolean';
}

/**
 * Writes the set, non-empty variables of `overrides` into the parsed document (before
 * validation, so they are checked like file values). Returns field path → variable, for
 * messages.
 */
export function applyEnvOverrides(
  document: TomlTable,
  env: Env,
  overrides: readonly EnvOverride[],
): Map<string, string> {
  const sources = new Map<string, string>();
  for (const override of overrides) {
    const raw = env[override.variable];
    if (raw === undefined || raw === '') continue;
    const value = convertEnvValue(override, raw, env);
    let table: TomlTable = document;
    for (const key of override.path.slice(0, -1)) {
      const next = table[key] ?? {};
      if (typeof next !== 'object' || next === null || Array.isArray(next)) break;
      table[key] = next;
      table = next as TomlTable;
    }
    const last = override.path[override.path.length - 1];
    if (last !== undefined) table[last] = value;
    sources.set(override.path.join('.'), override.variable);
  }
  return sources;
}

function convertEnvValue(override: EnvOverride, raw: string, env: Env): string | number | boolean {
  switch (override.kind) {
    case 'string':
      return raw;
    case 'path':
      return resolve(expandHome(raw, env));
    case 'integer':
      if (!/^-?[0-9]+$/.test(raw)) {
        throw new InvalidArgumentError(`${override.variable}=${JSON.stringify(raw)}: expected an integer`);
      }
      return Number(raw);
    case 'boolean': {
      const lower = raw.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(lower)) return true;
      if (['false', '0', 'no', 'off'].includes(lower)) return false;
      throw new InvalidArgumentError(`${override.variable}=${JSON.stringify(raw)}: expected true or false`);
    }
  }
}

// --- paths and addresses -------------------------------------------------------------------

/** `~` and `~/x` → the home directory ($HOME when set). */
export function expandHome(path: string, env: Env): string {
  if (path !== '~' && !path.startsWith('~/')) return path;
  return (env.HOME || homedir()) + path.slice(1);
}

/** A path from a config file: `~` expanded, relative paths taken from the file's directory. */
export function resolveConfigPath(path: string, configFile: string, env: Env): string {
  const expanded = expandHome(path, env);
  return isAbsolute(expanded) ? expanded : resolve(dirname(resolve(configFile)), expanded);
}

export interface HostPort {
  /** Hostname or IP address; IPv6 without brackets. */
  host: string;
  port: number;
}

/** Parses `host:port` or `[ipv6]:port`; throws InvalidArgumentError. */
/** `host:port`; with `listen`, port 0 is allowed and means "any free port" (the log says which). */
export function parseHostPort(text: string, opts: { listen?: boolean } = {}): HostPort {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port < (opts.listen ? 0 : 1) || port > 65535) {
    throw new InvalidArgumentError(
      `"${text}" is not an address: expected host:port or [ipv6]:port, for example 127.0.0.1:7443`,
    );
  }
  return { host: match[1] ?? match[2] ?? '', port };
}

export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  return bare === 'localhost' || bare === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

/**
 * The one rule for URLs that carry identity (issuers, key sets, token endpoints, resources):
 * https, or plain http on a loopback host only (a test IdP on 127.0.0.1). A key set fetched in
 * the clear is one an attacker on the path can replace. The config schema and the identity
 * client both check it.
 */
export function isSecureUrl(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
}

/** A `host:port` field. */
export const hostPortSchema = z.string().superRefine((value, ctx) => {
  try {
    parseHostPort(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

/** An address to listen on: like hostPortSchema, and port 0 picks a free port. */
export const listenAddressSchema = z.string().superRefine((value, ctx) => {
  try {
    parseHostPort(value, { listen: true });
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

/** A URL that must use https, except on a loopback host (a test IdP on 127.0.0.1). */
export const secureUrlSchema = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a URL: expected https://host/path` });
    return;
  }
  if (isSecureUrl(url)) return;
  ctx.addIssue({
    code: 'custom',
    message: `"${value}" must use https (plain http is accepted only on a loopback address such as 127.0.0.1)`,
  });
});

/** A non-empty string, with a message saying what it is for. */
export function requiredString(what: string): z.ZodString {
  return z.string().min(1, { error: `must not be empty: ${what}` });
}

/** A string checked by `check`, one of the rules of core/spec.ts: why it is invalid, or undefined. */
export function checkedString(check: (value: string) => string | undefined) {
  return z.string().superRefine((value, ctx) => {
    const problem = check(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
}

/** A service, component or node name (core/spec.ts NAME_PATTERN). */
export const nameSchema = checkedString(checkName);

/** A file path: relative ones are taken from the config file's directory. */
export const pathSchema = requiredString('give a file path');
