/**
 * Service definition files: the operator's declared intent, one TOML file per service in
 * the services directory. A definition is a ServiceSpec plus the node it runs on; the same
 * rules (core/spec.ts) check it here and again on the agent.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import * as z from 'zod';
import { checkedString, nameSchema, parseTomlDocument, parseWithSchema } from '../core/config-env.js';
import { InvalidArgumentError, McpError } from '../core/errors.js';
import {
  COMPONENTS_REQUIRED,
  checkArgument,
  checkEnvFile,
  checkHealthCheck,
  checkImage,
  checkName,
  checkNetwork,
  checkPortMapping,
  checkRestart,
  checkStopTimeout,
  checkUser,
  checkVolumeMapping,
  formatSpecIssues,
  looksSecret,
  validateServiceSpec,
} from '../core/spec.js';
import type { ComponentSpec, HealthCheck, ServiceSpec } from '../gen/mcp/v1/mcp.js';

/** A component in a definition file: exactly the contract's ComponentSpec. */
export type ComponentDefinition = ComponentSpec;

export interface ServiceDefinition {
  name: string;
  /** The node the service runs on. */
  node: string;
  /** Whether the service should run; stop writes false, start writes true. */
  active: boolean;
  components: ComponentDefinition[];
}

// `[components.health_check]`: snake_case keys as everywhere in the file; the bounds are core/spec.ts's.
const healthCheckSchema = z
  .strictObject({
    command: z.array(z.string()),
    interval_seconds: z.number().optional(),
    timeout_seconds: z.number().optional(),
    retries: z.number().optional(),
    start_period_seconds: z.number().default(0),
  })
  .transform(
    (check): HealthCheck => ({
      command: check.command,
      startPeriodSeconds: check.start_period_seconds,
      ...(check.interval_seconds !== undefined ? { intervalSeconds: check.interval_seconds } : {}),
      ...(check.timeout_seconds !== undefined ? { timeoutSeconds: check.timeout_seconds } : {}),
      ...(check.retries !== undefined ? { retries: check.retries } : {}),
    }),
  )
  .superRefine((check, ctx) => {
    for (const issue of checkHealthCheck(check, 'health_check')) {
      ctx.addIssue({
        code: 'custom',
        message: `${issue.path.replace(/^health_check\.?/, '')}: ${issue.message}`,
      });
    }
  });

// Field rules come from core/spec.ts, so one pass reports every bad field of a file; the
// rules across fields (unique component names, env keys) run once the shape is right.
const componentSchema = z
  .strictObject({
    name: nameSchema,
    image: checkedString(checkImage),
    network: checkedString(checkNetwork).default(''),
    user: checkedString(checkUser).default(''),
    restart: checkedString(checkRestart).default(''),
    ports: z.array(checkedString(checkPortMapping)).default([]),
    volumes: z.array(checkedString(checkVolumeMapping)).default([]),
    cmd: z.array(checkedString(checkArgument)).default([]),
    env: z.record(z.string(), z.string()).default({}),
    // Paths in the service's secrets/ folder on the node: the values never pass through here.
    env_files: z.array(checkedString(checkEnvFile)).default([]),
    init: z.boolean().default(false),
    // snake_case in the file, as every other key; absent keeps the default (10 s).
    stop_timeout_seconds: z
      .number()
      .optional()
      .superRefine((seconds, ctx) => {
        const problem = checkStopTimeout(seconds);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    health_check: healthCheckSchema.optional(),
  })
  .transform(
    ({ stop_timeout_seconds, env_files, health_check, ...component }): ComponentDefinition => ({
      ...component,
      envFiles: env_files,
      healthCheck: health_check,
      ...(stop_timeout_seconds === undefined ? {} : { stopTimeoutSeconds: stop_timeout_seconds }),
    }),
  );

const definitionSchema = z.strictObject({
  name: nameSchema,
  node: checkedString(checkNodeName),
  active: z.boolean().default(true),
  components: z
    .array(componentSchema, {
      error: (issue) => (issue.input === undefined ? COMPONENTS_REQUIRED : undefined),
    })
    .min(1, { error: COMPONENTS_REQUIRED }),
});

function checkNodeName(node: string): string | undefined {
  return node === '' ? 'required: give the name of the node that runs the service' : checkName(node);
}

/** Checks a definition parsed from `file`; throws InvalidArgumentError naming the file and fields. */
export function parseDefinition(text: string, file: string): ServiceDefinition {
  const document = parseTomlDocument(text, file);
  const definition: ServiceDefinition = parseWithSchema(definitionSchema, document, file);
  assertValidDefinition(definition, file);
  return definition;
}

function assertValidDefinition(definition: ServiceDefinition, file: string): void {
  const lines: string[] = [];
  const nodeProblem = checkNodeName(definition.node);
  if (nodeProblem) lines.push(`${file}: node: ${nodeProblem}`);
  const issues = validateServiceSpec(definitionToSpec(definition));
  if (issues.length > 0) lines.push(formatSpecIssues(issues, file));
  if (lines.length > 0) throw new InvalidArgumentError(lines.join('\n'));
}

/**
 * One warning line per component whose inline env has values under names that look secret
 * (`*PASSWORD*`, `*TOKEN*`, `*SECRET*`, `*_KEY`): it names the keys, never the values, and
 * says where such values belong. `source` says where the spec came from (a file, an argument).
 */
export function secretEnvWarnings(spec: Pick<ServiceSpec, 'name' | 'components'>, source: string): string[] {
  return spec.components.flatMap((component) => {
    const keys = Object.keys(component.env ?? {})
      .filter(looksSecret)
      .sort();
    if (keys.length === 0) return [];
    return [
      `warning: ${source}: ${spec.name}/${component.name}: env ${keys.join(', ')} look${keys.length === 1 ? 's' : ''} secret but ${keys.length === 1 ? 'is' : 'are'} written inline: put ${keys.length === 1 ? 'it' : 'them'} in a file in the service's secrets/ folder on the node (from your terminal, not through an AI assistant) and name that file in env_files`,
    ];
  });
}

export async function loadDefinition(file: string): Promise<ServiceDefinition> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`${file}: cannot read the service definition: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseDefinition(text, file);
}

/** The definition files of `dir`: `*.toml`, not hidden, sorted by name. */
export async function definitionFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    // No services directory yet means no definitions, not a broken setup.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new InvalidArgumentError(`${dir}: cannot read the services directory: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return names
    .filter((name) => name.endsWith('.toml') && !name.startsWith('.'))
    .sort()
    .map((name) => join(dir, name));
}

export interface LocatedDefinition {
  file: string;
  definition: ServiceDefinition;
}

interface DirectoryScan {
  found: LocatedDefinition[];
  errors: string[];
}

async function scanDirectory(dir: string): Promise<DirectoryScan> {
  const scan: DirectoryScan = { found: [], errors: [] };
  for (const file of await definitionFiles(dir)) {
    try {
      scan.found.push({ file, definition: await loadDefinition(file) });
    } catch (err) {
      if (!(err instanceof McpError)) throw err;
      scan.errors.push(err.message);
    }
  }
  return scan;
}

/**
 * Every definition in `dir`, in file name order. Problems in any file, and a service defined
 * in two files, are reported together in one InvalidArgumentError. A missing directory holds
 * no definitions.
 */
export async function loadDefinitions(dir: string): Promise<ServiceDefinition[]> {
  const scan = await scanDirectory(dir);
  const errors = [...scan.errors, ...duplicateErrors(scan.found)];
  if (errors.length > 0) {
    throw new InvalidArgumentError(
      `${dir}: ${errors.length} problem${errors.length === 1 ? '' : 's'} in the service definitions; fix them and retry:\n${errors.join('\n')}`,
    );
  }
  return scan.found.map((entry) => entry.definition);
}

function duplicateErrors(found: readonly LocatedDefinition[]): string[] {
  const fileOf = new Map<string, string>();
  const errors: string[] = [];
  for (const { file, definition } of found) {
    const first = fileOf.get(definition.name);
    if (first === undefined) {
      fileOf.set(definition.name, file);
    } else {
      errors.push(
        `${file}: name: service "${definition.name}" is also defined in ${first}: keep one file per service and remove or rename the other`,
      );
    }
  }
  return errors;
}

/**
 * The definition of `service` and its file, or undefined when no file defines it. Files that
 * fail to load do not hide a valid definition elsewhere; but when the service is not found
 * and some file failed, that failure is reported, since the service may be defined there.
 */
export async function locateDefinition(dir: string, service: string): Promise<LocatedDefinition | undefined> {
  const scan = await scanDirectory(dir);
  const matches = scan.found.filter((entry) => entry.definition.name === service);
  if (matches.length > 1) {
    throw new InvalidArgumentError(duplicateErrors(matches).join('\n'));
  }
  if (matches[0]) return matches[0];
  if (scan.errors.length > 0) {
    throw new InvalidArgumentError(
      `no valid definition of service "${service}" in ${dir}, and some files there could not be loaded (it may be defined in one of them):\n${scan.errors.join('\n')}`,
    );
  }
  return undefined;
}

/** The definition of `service` in `dir`, or undefined; see locateDefinition. */
export async function findDefinition(dir: string, service: string): Promise<ServiceDefinition | undefined> {
  return (await locateDefinition(dir, service))?.definition;
}

/** Where a new definition of `service` goes: `<dir>/<service>.toml`. */
export function definitionPath(dir: string, service: string): string {
  return join(dir, `${service}.toml`);
}

/**
 * Writes `definition` to `file` as stable, readable TOML (fixed key order, env sorted,
 * empty optional fields left out), after checking it. The file is replaced atomically and
 * created with mode 0600, since env values may hold secrets. Comments in an existing file
 * are not kept: to flip `active`, use setDefinitionActive.
 */
export async function writeDefinition(file: string, definition: ServiceDefinition): Promise<void> {
  assertValidDefinition(definition, file);
  await replaceFile(file, formatDefinition(definition));
}

/**
 * Sets `active` in an existing definition file, keeping everything else in it, comments
 * included. Returns the updated definition.
 */
export async function setDefinitionActive(file: string, active: boolean): Promise<ServiceDefinition> {
  const text = await readFile(file, 'utf8');
  const before = parseDefinition(text, file);
  if (before.active === active) return before;
  const updated = withActive(text, active);
  const after = parseDefinition(updated, file);
  if (after.active !== active) {
    throw new InvalidArgumentError(`${file}: active: could not be set; set active = ${active} by hand`);
  }
  await replaceFile(file, updated);
  return after;
}

/** What updateDefinition did to the file. */
export type DefinitionUpdate = 'created' | 'unchanged' | 'updated' | 'rewritten';

/**
 * Makes `file` declare `definition`, as deploy with a `spec` does once the node has deployed
 * it. A missing file is created. An existing one is edited in place when only `active` and
 * component images change (its comments and layout kept: 'updated'); any other change
 * rewrites it whole ('rewritten'), since there is no telling where new keys belong.
 */
export async function updateDefinition(
  file: string,
  definition: ServiceDefinition,
): Promise<DefinitionUpdate> {
  assertValidDefinition(definition, file);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await replaceFile(file, formatDefinition(definition));
    return 'created';
  }
  const wanted = formatDefinition(definition);
  let before: ServiceDefinition | undefined;
  try {
    before = parseDefinition(text, file);
  } catch {
    // A file that no longer parses is replaced by what was deployed.
  }
  if (before && formatDefinition(before) === wanted) return 'unchanged';
  if (before) {
    const activeSet = before.active === definition.active ? text : withActive(text, definition.active);
    const edited = withImages(activeSet, definition.components);
    let after: ServiceDefinition | undefined;
    try {
      after = parseDefinition(edited, file);
    } catch {
      // Fall through to a rewrite.
    }
    if (after && formatDefinition(after) === wanted) {
      await replaceFile(file, edited);
      return 'updated';
    }
  }
  await replaceFile(file, wanted);
  return 'rewritten';
}

/**
 * Rewrites the `image = ...` line of each `[[components]]` table whose `name` is one of
 * `components`, keeping the line's trailing comment.
 */
function withImages(text: string, components: readonly ComponentDefinition[]): string {
  const imageOf = new Map(components.map((c) => [c.name, c.image]));
  const lines = text.split('\n');
  const tables: { start: number; end: number }[] = [];
  lines.forEach((line, i) => {
    if (/^\s*\[/.test(line)) {
      const last = tables.at(-1);
      if (last && last.end === lines.length) last.end = i;
      if (/^\s*\[\[\s*components\s*\]\]/.test(line)) tables.push({ start: i, end: lines.length });
    }
  });
  for (const { start, end } of tables) {
    const body = lines.slice(start + 1, end);
    const nameMatch = body.map((l) => /^\s*name\s*=\s*"([^"\\]*)"/.exec(l)).find((m) => m !== null);
    const image = nameMatch ? imageOf.get(nameMatch[1] ?? '') : undefined;
    if (image === undefined) continue;
    for (let i = start + 1; i < end; i++) {
      const match = /^(\s*)image\s*=\s*(?:"(?:[^"\\]|\\.)*"|'[^']*')(\s*(?:#.*)?)$/.exec(lines[i] ?? '');
      if (match) lines[i] = `${match[1]}image = ${tomlString(image)}${match[2]}`;
    }
  }
  return lines.join('\n');
}

/**
 * Deletes a definition file, as remove_service with `deleteDefinition` does once the node has
 * removed the service. A file already gone counts as deleted.
 */
export async function deleteDefinition(file: string): Promise<void> {
  await rm(file, { force: true });
}

/** Rewrites or inserts the top-level `active = ...` line, before the first table header. */
function withActive(text: string, active: boolean): string {
  const lines = text.split('\n');
  const firstTable = lines.findIndex((line) => /^\s*\[/.test(line));
  const topEnd = firstTable === -1 ? lines.length : firstTable;
  const activeLine = `active = ${active}`;
  for (let i = 0; i < topEnd; i++) {
    const match = /^(\s*)active\s*=\s*(?:true|false)(\s*(?:#.*)?)$/.exec(lines[i] ?? '');
    if (match) {
      lines[i] = `${match[1]}${activeLine}${match[2]}`;
      return lines.join('\n');
    }
  }
  const nodeLine = lines.slice(0, topEnd).findIndex((line) => /^\s*node\s*=/.test(line));
  lines.splice(nodeLine === -1 ? topEnd : nodeLine + 1, 0, activeLine);
  return lines.join('\n');
}

async function replaceFile(file: string, content: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const temporary = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    await writeFile(temporary, content, { mode: 0o600 });
    await rename(temporary, file);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}

// --- TOML output -------------------------------------------------------------------------

/** The TOML text of a definition; loading it gives back an equal definition. */
export function formatDefinition(definition: ServiceDefinition): string {
  const out = [
    `name = ${tomlString(definition.name)}`,
    `node = ${tomlString(definition.node)}`,
    `active = ${definition.active}`,
  ];
  for (const component of definition.components) {
    out.push('', '[[components]]');
    out.push(`name = ${tomlString(component.name)}`);
    out.push(`image = ${tomlString(component.image)}`);
    for (const key of ['network', 'user', 'restart'] as const) {
      if (component[key] !== '') out.push(`${key} = ${tomlString(component[key])}`);
    }
    for (const key of ['ports', 'volumes', 'cmd'] as const) {
      if (component[key].length > 0) out.push(`${key} = ${tomlArray(component[key])}`);
    }
    if (component.init) out.push('init = true');
    if (component.stopTimeoutSeconds !== undefined) {
      out.push(`stop_timeout_seconds = ${component.stopTimeoutSeconds}`);
    }
    if ((component.envFiles ?? []).length > 0) out.push(`env_files = ${tomlArray(component.envFiles)}`);
    const envKeys = Object.keys(component.env).sort();
    if (envKeys.length > 0) {
      out.push('', '[components.env]');
      for (const key of envKeys) out.push(`${tomlKey(key)} = ${tomlString(component.env[key] ?? '')}`);
    }
    if (component.healthCheck) out.push('', ...healthCheckToml(component.healthCheck));
  }
  return `${out.join('\n')}\n`;
}

function healthCheckToml(check: HealthCheck): string[] {
  const lines = ['[components.health_check]', `command = ${tomlArray(check.command)}`];
  if (check.intervalSeconds !== undefined) lines.push(`interval_seconds = ${check.intervalSeconds}`);
  if (check.timeoutSeconds !== undefined) lines.push(`timeout_seconds = ${check.timeoutSeconds}`);
  if (check.retries !== undefined) lines.push(`retries = ${check.retries}`);
  if (check.startPeriodSeconds) lines.push(`start_period_seconds = ${check.startPeriodSeconds}`);
  return lines;
}

function tomlArray(values: readonly string[]): string {
  const items = values.map(tomlString);
  const oneLine = `[${items.join(', ')}]`;
  if (oneLine.length <= 90) return oneLine;
  return `[\n${items.map((item) => `  ${item},`).join('\n')}\n]`;
}

function tomlKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : tomlString(key);
}

const TOML_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\b': '\\b',
  '\t': '\\t',
  '\n': '\\n',
  '\f': '\\f',
  '\r': '\\r',
};
// biome-ignore lint/suspicious/noControlCharactersInRegex: TOML requires control characters to be escaped
const TOML_NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f]/g;

/** A TOML basic string: quotes, backslashes and control characters escaped. */
function tomlString(value: string): string {
  const escaped = value.replace(
    TOML_NEEDS_ESCAPE,
    (c) => TOML_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return `"${escaped}"`;
}

// --- conversion ----------------------------------------------------------------------------

/** The spec a definition declares, as sent to the agent in Deploy and SyncDesiredState. */
export function definitionToSpec(definition: ServiceDefinition): ServiceSpec {
  return {
    name: definition.name,
    active: definition.active,
    components: definition.components.map(copyComponent),
  };
}

/** A definition for `spec` on `node` (for example to write the file of an adopted service). */
export function specToDefinition(spec: ServiceSpec, node: string): ServiceDefinition {
  return {
    name: spec.name,
    node,
    active: spec.active ?? true,
    components: spec.components.map(copyComponent),
  };
}

function copyComponent(component: ComponentDefinition): ComponentDefinition {
  return {
    name: component.name,
    image: component.image,
    network: component.network ?? '',
    user: component.user ?? '',
    restart: component.restart ?? '',
    ports: [...(component.ports ?? [])],
    volumes: [...(component.volumes ?? [])],
    cmd: [...(component.cmd ?? [])],
    env: { ...(component.env ?? {}) },
    envFiles: [...(component.envFiles ?? [])],
    init: component.init ?? false,
    healthCheck: component.healthCheck
      ? { ...component.healthCheck, command: [...component.healthCheck.command] }
      : undefined,
    ...(component.stopTimeoutSeconds !== undefined
      ? { stopTimeoutSeconds: component.stopTimeoutSeconds }
      : {}),
  };
}
