/**
 * The rules a ServiceSpec must satisfy before anything acts on it. The connector checks
 * definition files with them and the agent checks Deploy/Sync requests with them, so a spec
 * that one side accepts the other accepts too. Every value here ends up in a container
 * runtime's argv: the rules keep out anything that could be read as an option or that a
 * runtime would interpret differently from what the operator wrote.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { ComponentSpec, HealthCheck, ServiceSpec } from '../gen/mcp/v1/mcp.js';
import { InvalidArgumentError } from './errors.js';
import { checkRelativePath, SECRETS_FOLDER } from './paths.js';
import { printable } from './text.js';

/** Service, component and node names: they become container names and DNS-like labels. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9-]*$/;
export const NAME_MAX_LENGTH = 63;
const NAME_EXPECTED = `lower-case letters, digits and '-', starting with a letter or digit, at most ${NAME_MAX_LENGTH} characters`;

/** Container network names, as podman and docker accept them. */
export const NETWORK_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const NETWORK_MAX_LENGTH = 128;

export const ENV_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Whether an environment variable's name says its value is a secret (`*PASSWORD*`, `*TOKEN*`,
 * `*SECRET*`, `*_KEY`, any case): such a value belongs in an env file, not inline.
 */
export function looksSecret(key: string): boolean {
  return /PASSWORD|TOKEN|SECRET/i.test(key) || /_KEY$/i.test(key);
}

export const VOLUME_OPTIONS = [
  'ro',
  'rw',
  'z',
  'Z',
  'shared',
  'slave',
  'private',
  'rshared',
  'rslave',
  'rprivate',
  'nocopy',
] as const;
export type VolumeOption = (typeof VOLUME_OPTIONS)[number];

/** One problem found in a spec; `path` is like `components[1].ports[0]`. */
export interface SpecIssue {
  path: string;
  message: string;
}

/** Why `value` is not a valid service/component/node name, or undefined when it is. */
export function checkName(value: string): string | undefined {
  if (value === '') return `required: give a name of ${NAME_EXPECTED}`;
  if (value.length > NAME_MAX_LENGTH) {
    return `"${printable(value)}" is ${value.length} characters long: use at most ${NAME_MAX_LENGTH}`;
  }
  if (!NAME_PATTERN.test(value)) return `"${printable(value)}" is not a valid name: use ${NAME_EXPECTED}`;
  return undefined;
}

export const COMPONENTS_REQUIRED =
  'at least one component is required: add one ([[components]] in a definition file) with a name and an image';

/** Every problem with `spec`; empty when it is valid. */
export function validateServiceSpec(spec: ServiceSpec): SpecIssue[] {
  // Size limits first: when a spec is far too large, these are the lines worth reading.
  const issues: SpecIssue[] = checkSpecLimits(spec);
  const nameProblem = checkName(spec.name ?? '');
  if (nameProblem) issues.push({ path: 'name', message: nameProblem });

  const components = spec.components ?? [];
  if (components.length === 0) {
    issues.push({ path: 'components', message: COMPONENTS_REQUIRED });
  }
  const firstIndexOf = new Map<string, number>();
  components.forEach((component, index) => {
    const at = `components[${index}]`;
    const earlier = firstIndexOf.get(component.name);
    if (earlier !== undefined && component.name !== '') {
      issues.push({
        path: `${at}.name`,
        message: `"${component.name}" is already the name of components[${earlier}]: component names must be unique within a service`,
      });
    } else {
      firstIndexOf.set(component.name, index);
    }
    issues.push(...validateComponentSpec(component, at));
  });
  return issues;
}

function validateComponentSpec(component: ComponentSpec, at: string): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const report = (field: string, message: string | undefined) => {
    if (message) issues.push({ path: `${at}.${field}`, message });
  };
  report('name', checkName(component.name ?? ''));
  report('image', checkImage(component.image ?? ''));
  report('network', checkNetwork(component.network ?? ''));
  report('user', checkUser(component.user ?? ''));
  report('restart', checkRestart(component.restart ?? ''));
  report('stop_timeout_seconds', checkStopTimeout(component.stopTimeoutSeconds));
  if (component.healthCheck) issues.push(...checkHealthCheck(component.healthCheck, `${at}.health_check`));
  (component.ports ?? []).forEach((port, i) => {
    report(`ports[${i}]`, checkPortMapping(port));
  });
  (component.volumes ?? []).forEach((volume, i) => {
    report(`volumes[${i}]`, checkVolumeMapping(volume));
  });
  (component.cmd ?? []).forEach((arg, i) => {
    report(`cmd[${i}]`, checkArgument(arg));
  });
  const envFiles = component.envFiles ?? [];
  envFiles.forEach((file, i) => {
    const earlier = envFiles.indexOf(file);
    report(
      `env_files[${i}]`,
      earlier < i
        ? `"${printable(file)}" is already env_files[${earlier}]: name each file once`
        : checkEnvFile(file),
    );
  });
  for (const [key, value] of Object.entries(component.env ?? {})) {
    const field = `env${ENV_KEY_PATTERN.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`}`;
    if (!ENV_KEY_PATTERN.test(key)) {
      report(field, 'invalid variable name: use letters, digits and _, not starting with a digit');
    } else if (value.includes('\0')) {
      report(field, 'the value contains a NUL character, which no environment variable can hold');
    }
  }
  return issues;
}

/** Throws an InvalidArgumentError listing every problem, each as `where: path: message`. */
export function assertValidServiceSpec(spec: ServiceSpec, where = 'service spec'): void {
  const issues = validateServiceSpec(spec);
  if (issues.length > 0) throw new InvalidArgumentError(formatSpecIssues(issues, where));
}

/**
 * One line per issue, `where: path: message`, so each line names its source and field. At most
 * MAX_REPORTED_ISSUES lines: a spec with 10,000 bad components gets a readable answer.
 */
export function formatSpecIssues(issues: readonly SpecIssue[], where: string): string {
  const lines = issues
    .slice(0, MAX_REPORTED_ISSUES)
    .map((issue) => `${where}: ${issue.path}: ${issue.message}`);
  const more = issues.length - MAX_REPORTED_ISSUES;
  if (more > 0) lines.push(`${where}: ... and ${more} more ${more === 1 ? 'problem' : 'problems'}`);
  return lines.join('\n');
}

const MAX_REPORTED_ISSUES = 50;

// --- limits -----------------------------------------------------------------------------
//
// The most a spec may hold. Every value ends up in one `podman run` argv, which Linux caps at
// 128 KiB per argument and about 2 MiB in all (E2BIG), and in gRPC messages the agent
// accepts up to 8 MiB. The limits are generous for real services and keep a valid spec well
// inside both, so an oversized one is refused here, naming the field, before anything runs.
// Documented in docs/ARCHITECTURE.md ("Limits") and docs for the definition file format.

const KiB = 1024;

export const SPEC_LIMITS = {
  /** Components in one service. */
  componentsPerService: 64,
  /** Environment variables of one component. */
  envEntries: 256,
  /** Bytes of one environment variable's name. */
  envNameBytes: 256,
  /** Bytes of one environment variable's value. */
  envValueBytes: 32 * KiB,
  /** Bytes of one component's environment: names and values together. */
  envTotalBytes: 256 * KiB,
  /** Env files of one component. */
  envFiles: 16,
  /** Command arguments of one component. */
  cmdArgs: 256,
  /** Bytes of one command argument. */
  cmdArgBytes: 32 * KiB,
  /** Bytes of one component's command, all arguments together. */
  cmdTotalBytes: 256 * KiB,
  /** Port mappings of one component. */
  ports: 128,
  /** Volume mappings of one component. */
  volumes: 128,
  /** Bytes of one volume mapping (two paths of at most 4 KiB and options). */
  volumeBytes: 8 * KiB + 64,
  /** Bytes of all the text of one spec: names, images, ports, volumes, cmd, env. */
  specBytes: 1024 * KiB,
} as const;

/** `32 KiB`, `1 MiB`, or bytes. */
function formatBytes(bytes: number): string {
  if (bytes >= 1024 * KiB && bytes % (1024 * KiB) === 0) return `${bytes / (1024 * KiB)} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} bytes`;
}

const bytesOf = (text: string | undefined): number => Buffer.byteLength(text ?? '', 'utf8');
const sumBytes = (texts: readonly string[]): number => texts.reduce((sum, t) => sum + bytesOf(t), 0);

/** Every limit `spec` exceeds, each naming the field, its size and the limit. */
export function checkSpecLimits(spec: ServiceSpec): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const L = SPEC_LIMITS;
  const components = spec.components ?? [];
  if (components.length > L.componentsPerService) {
    issues.push({
      path: 'components',
      message: `${components.length} components: a service may have at most ${L.componentsPerService}; split it into several services`,
    });
  }
  let specBytes = bytesOf(spec.name);
  components.forEach((component, index) => {
    const at = `components[${index}]`;
    const count = (field: string, items: readonly unknown[], max: number, what: string) => {
      if (items.length > max) {
        issues.push({
          path: `${at}.${field}`,
          message: `${items.length} ${what}: at most ${max} are allowed`,
        });
      }
    };
    const ports = component.ports ?? [];
    const volumes = component.volumes ?? [];
    const cmd = component.cmd ?? [];
    const env = Object.entries(component.env ?? {});
    count('ports', ports, L.ports, 'port mappings');
    count('volumes', volumes, L.volumes, 'volume mappings');
    count('cmd', cmd, L.cmdArgs, 'command arguments');
    count('env', env, L.envEntries, 'environment variables');
    count('env_files', component.envFiles ?? [], L.envFiles, 'env files');

    volumes.forEach((volume, i) => {
      const bytes = bytesOf(volume);
      if (bytes > L.volumeBytes) {
        issues.push({
          path: `${at}.volumes[${i}]`,
          message: `is ${bytes} bytes long: at most ${formatBytes(L.volumeBytes)} are allowed per volume mapping`,
        });
      }
    });
    cmd.forEach((arg, i) => {
      const bytes = bytesOf(arg);
      if (bytes > L.cmdArgBytes) {
        issues.push({
          path: `${at}.cmd[${i}]`,
          message: `is ${bytes} bytes long: at most ${formatBytes(L.cmdArgBytes)} are allowed per command argument; pass larger data as a file (push_file) and mount it`,
        });
      }
    });
    const cmdBytes = sumBytes(cmd);
    if (cmdBytes > L.cmdTotalBytes) {
      issues.push({
        path: `${at}.cmd`,
        message: `is ${cmdBytes} bytes in all: at most ${formatBytes(L.cmdTotalBytes)} are allowed for one command`,
      });
    }
    let envBytes = 0;
    for (const [key, value] of env) {
      const keyBytes = bytesOf(key);
      const valueBytes = bytesOf(value);
      envBytes += keyBytes + valueBytes;
      const field = `${at}.env${ENV_KEY_PATTERN.test(key) && keyBytes <= L.envNameBytes ? `.${key}` : ''}`;
      if (keyBytes > L.envNameBytes) {
        issues.push({
          path: field,
          message: `a variable name is ${keyBytes} bytes long: at most ${L.envNameBytes} bytes are allowed per name`,
        });
      } else if (valueBytes > L.envValueBytes) {
        issues.push({
          path: field,
          message: `the value is ${valueBytes} bytes: at most ${formatBytes(L.envValueBytes)} are allowed per environment value; pass larger data as a file (push_file) and mount it`,
        });
      }
    }
    if (envBytes > L.envTotalBytes) {
      issues.push({
        path: `${at}.env`,
        message: `is ${envBytes} bytes in all (names and values): at most ${formatBytes(L.envTotalBytes)} are allowed for one component's environment`,
      });
    }
    specBytes +=
      bytesOf(component.name) +
      bytesOf(component.image) +
      bytesOf(component.network) +
      bytesOf(component.user) +
      bytesOf(component.restart) +
      sumBytes(ports) +
      sumBytes(volumes) +
      cmdBytes +
      envBytes +
      sumBytes(component.envFiles ?? []) +
      sumBytes(component.healthCheck?.command ?? []);
  });
  if (specBytes > L.specBytes) {
    issues.unshift({
      path: '(whole spec)',
      message: `the spec holds ${specBytes} bytes of text: at most ${formatBytes(L.specBytes)} are allowed per service`,
    });
  }
  return issues;
}

// --- image references -------------------------------------------------------------------

const SHELL_METACHARACTERS = /[;&|$`<>()\\'"!*?{}[\]#~^]/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
/** The distribution reference grammar (docker/distribution reference/regexp.go). */
const IMAGE_REFERENCE = new RegExp(
  `^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::${TAG})?(?:@${DIGEST})?$`,
);
const IMAGE_EXAMPLE = 'registry.example:5000/web:v1.2.0';

export function checkImage(image: string): string | undefined {
  if (image === '') return `required: give an image reference such as ${IMAGE_EXAMPLE}`;
  if (/\s/.test(image) || image.includes('\0')) {
    return `"${printable(image)}" contains whitespace: give one image reference such as ${IMAGE_EXAMPLE}`;
  }
  if (SHELL_METACHARACTERS.test(image)) {
    return `"${printable(image)}" contains shell metacharacters: an image reference has only letters, digits and . _ - / : @ (for example ${IMAGE_EXAMPLE})`;
  }
  if (image.startsWith('-')) return `"${printable(image)}" starts with '-': an image reference never does`;
  if (image.length > 512 || !IMAGE_REFERENCE.test(image)) {
    return `"${printable(image)}" is not a valid image reference: expected [registry[:port]/]name[:tag][@digest] with a lower-case name, for example ${IMAGE_EXAMPLE}`;
  }
  return undefined;
}

/**
 * The version of an image reference: its tag, else its digest, else ''.
 * `reg:5000/img:v1.2.0` → `v1.2.0`; `img@sha256:ab..` → `sha256:ab..`; `img:v1@sha256:..` → `v1`;
 * `reg:5000/img` → '' (the registry's port is not a tag).
 */
export function imageVersion(image: string): string {
  const at = image.indexOf('@');
  const name = at === -1 ? image : image.slice(0, at);
  const digest = at === -1 ? '' : image.slice(at + 1);
  const lastPart = name.slice(name.lastIndexOf('/') + 1);
  const colon = lastPart.indexOf(':');
  const tag = colon === -1 ? '' : lastPart.slice(colon + 1);
  return tag !== '' ? tag : digest;
}

// --- ports ----------------------------------------------------------------------------

export interface PortMapping {
  /** '' when the port is published on every address. IPv6 without brackets. */
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

const PORT_EXPECTED = 'expected [host_ip:]host_port:container_port[/tcp|/udp], for example 127.0.0.1:8080:80';

/** Parses `[host_ip:]host_port:container_port[/tcp|/udp]`; throws InvalidArgumentError. */
export function parsePortMapping(text: string): PortMapping {
  const fail = (why: string): never => {
    throw new InvalidArgumentError(`"${printable(text)}": ${why}; ${PORT_EXPECTED}`);
  };
  let rest = text;
  let protocol: PortMapping['protocol'] = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash !== -1) {
    const suffix = rest.slice(slash + 1);
    if (suffix !== 'tcp' && suffix !== 'udp') fail(`unknown protocol "${printable(suffix)}"`);
    protocol = suffix as PortMapping['protocol'];
    rest = rest.slice(0, slash);
  }
  let hostIp = '';
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close === -1) fail('unclosed [ around the IPv6 address');
    hostIp = rest.slice(1, close);
    if (!isIPv6(hostIp)) fail(`"${hostIp}" is not an IPv6 address`);
    if (rest[close + 1] !== ':') fail('the IPv6 address must be followed by :host_port:container_port');
    rest = rest.slice(close + 2);
  }
  const parts = rest.split(':');
  if (hostIp === '' && parts.length === 3) {
    hostIp = parts.shift() ?? '';
    if (!isIPv4(hostIp)) {
      fail(`"${hostIp}" is not an IPv4 address (write an IPv6 address in brackets, like [::1])`);
    }
  }
  if (parts.length !== 2) {
    fail(
      parts.length < 2
        ? 'a host port and a container port are both required'
        : 'too many ":" (write an IPv6 host address in brackets, like [::1]:8080:80)',
    );
  }
  return {
    hostIp,
    hostPort: parsePort(parts[0] ?? '', 'host port', fail),
    containerPort: parsePort(parts[1] ?? '', 'container port', fail),
    protocol,
  };
}

function parsePort(text: string, what: string, fail: (why: string) => never): number {
  if (!/^[0-9]{1,5}$/.test(text)) return fail(`${what} "${printable(text)}" is not a number`);
  const port = Number(text);
  if (port < 1 || port > 65535) return fail(`${what} ${port} is out of range 1-65535`);
  return port;
}

// --- volumes --------------------------------------------------------------------------

export interface VolumeMapping {
  hostPath: string;
  containerPath: string;
  options: VolumeOption[];
}

const VOLUME_EXPECTED = `expected host_path:container_path[:options], both absolute, options among ${VOLUME_OPTIONS.join(',')}; for example /srv/web/data:/data:ro`;
const EXCLUSIVE_VOLUME_OPTIONS: readonly (readonly VolumeOption[])[] = [
  ['ro', 'rw'],
  ['z', 'Z'],
  ['shared', 'slave', 'private', 'rshared', 'rslave', 'rprivate'],
];

/** Parses a bind mount `host_path:container_path[:opt,opt]`; throws InvalidArgumentError. */
export function parseVolumeMapping(text: string): VolumeMapping {
  const fail = (why: string): never => {
    throw new InvalidArgumentError(`"${printable(text)}": ${why}; ${VOLUME_EXPECTED}`);
  };
  if (text.includes('\0')) fail('contains a NUL character');
  const parts = text.split(':');
  if (parts.length < 2) fail('a host path and a container path are both required');
  if (parts.length > 3) fail('too many ":" (paths containing ":" cannot be mounted this way)');
  const [hostPath = '', containerPath = '', optionText] = parts;
  checkMountPath(hostPath, 'host path', fail);
  checkMountPath(containerPath, 'container path', fail);
  const options: VolumeOption[] = [];
  if (optionText !== undefined) {
    for (const option of optionText.split(',')) {
      if (!(VOLUME_OPTIONS as readonly string[]).includes(option)) {
        fail(option === '' ? 'empty mount option' : `unknown mount option "${printable(option)}"`);
      }
      if (options.includes(option as VolumeOption)) fail(`mount option "${printable(option)}" is repeated`);
      options.push(option as VolumeOption);
    }
    for (const group of EXCLUSIVE_VOLUME_OPTIONS) {
      const chosen = options.filter((o) => group.includes(o));
      if (chosen.length > 1) fail(`mount options ${chosen.join(' and ')} contradict each other`);
    }
  }
  return { hostPath, containerPath, options };
}

function checkMountPath(path: string, what: string, fail: (why: string) => never): void {
  if (path === '') fail(`the ${what} is empty`);
  if (!path.startsWith('/'))
    fail(`the ${what} "${printable(path)}" is not absolute (named volumes are not supported)`);
  if (path.split('/').includes('..')) fail(`the ${what} "${printable(path)}" contains a ".." segment`);
}

// --- user, network, restart --------------------------------------------------------------

const USER_PART = '(?:[a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})';
const USER_PATTERN = new RegExp(`^${USER_PART}(?::${USER_PART})?$`);

export function checkUser(user: string): string | undefined {
  if (user === '' || USER_PATTERN.test(user)) return undefined;
  return `"${printable(user)}" is not a valid user: expected a user name or uid, optionally with :group or :gid, for example 1000:1000 or postgres`;
}

export function checkNetwork(network: string): string | undefined {
  if (network === '') return undefined;
  if (network.length <= NETWORK_MAX_LENGTH && NETWORK_PATTERN.test(network)) return undefined;
  return `"${printable(network)}" is not a valid network name: use letters, digits, '_', '.' and '-', starting with a letter or digit (leave it empty for the runtime's default network)`;
}

const RESTART_PATTERN = /^(?:no|always|unless-stopped|on-failure(?::[1-9][0-9]{0,5})?)$/;

export function checkRestart(restart: string): string | undefined {
  if (restart === '' || RESTART_PATTERN.test(restart)) return undefined;
  return `"${printable(restart)}" is not a restart policy: use no, always, on-failure, on-failure:N (N retries) or unless-stopped`;
}

/** Seconds a stop waits after SIGTERM when a component does not say: podman's and docker's own default. */
export const DEFAULT_STOP_TIMEOUT_SECONDS = 10;
export const MAX_STOP_TIMEOUT_SECONDS = 300;

/** A component's stop wait: absent means the default. */
export function stopTimeoutOf(component: Pick<ComponentSpec, 'stopTimeoutSeconds'>): number {
  return component.stopTimeoutSeconds ?? DEFAULT_STOP_TIMEOUT_SECONDS;
}

export function checkStopTimeout(seconds: number | undefined): string | undefined {
  if (seconds === undefined) return undefined;
  if (Number.isInteger(seconds) && seconds >= 0 && seconds <= MAX_STOP_TIMEOUT_SECONDS) return undefined;
  return `${seconds} is not a stop timeout: give whole seconds from 0 to ${MAX_STOP_TIMEOUT_SECONDS} (leave it out for ${DEFAULT_STOP_TIMEOUT_SECONDS})`;
}

/** Why `text` is not a valid port mapping, or undefined. */
export function checkPortMapping(text: string): string | undefined {
  return problemOf(() => parsePortMapping(text));
}

/** Why `text` is not a valid volume mapping, or undefined. */
export function checkVolumeMapping(text: string): string | undefined {
  return problemOf(() => parseVolumeMapping(text));
}

/**
 * Why `file` cannot be an env file, or undefined. An env file is named relative to the
 * service's files directory and lives in its `secrets/` folder, the one folder pull_file keeps
 * from callers without `file.pull_secrets`: one place to protect, whatever the file is called.
 */
export function checkEnvFile(file: string): string | undefined {
  const where = "the service's files directory";
  const problem = problemOf(() => checkRelativePath(file, where));
  if (problem) return problem;
  const parts = checkRelativePath(file, where);
  if (parts.length < 2 || parts[0] !== SECRETS_FOLDER) {
    return `"${printable(file)}" is not in ${SECRETS_FOLDER}/: env files live in the service's ${SECRETS_FOLDER}/ folder on the node, e.g. ${SECRETS_FOLDER}/app.env`;
  }
  return undefined;
}

/** Why `arg` cannot be a command argument, or undefined. */
export function checkArgument(arg: string): string | undefined {
  return arg.includes('\0') ? 'contains a NUL character, which no command argument can hold' : undefined;
}

// --- health checks --------------------------------------------------------------------

/**
 * Bounds of a health check. They keep a deploy's health gate (at most start period plus
 * retries + 1 rounds of interval and timeout, capped by HEALTH_GATE_MAX_SECONDS in
 * agent/health.ts) inside the deploy tool's deadline.
 */
export const HEALTH_LIMITS = {
  commandArgs: 64,
  commandArgBytes: 4 * KiB,
  intervalSeconds: { min: 1, max: 300, default: 30 },
  timeoutSeconds: { min: 1, max: 300, default: 30 },
  retries: { min: 1, max: 10, default: 3 },
  startPeriodSeconds: { min: 0, max: 600 },
} as const;

/** A health check with every default filled in. */
export interface EffectiveHealthCheck {
  readonly command: readonly string[];
  readonly intervalSeconds: number;
  readonly timeoutSeconds: number;
  readonly retries: number;
  readonly startPeriodSeconds: number;
}

export function effectiveHealthCheck(check: {
  readonly command: readonly string[];
  readonly intervalSeconds?: number | undefined;
  readonly timeoutSeconds?: number | undefined;
  readonly retries?: number | undefined;
  readonly startPeriodSeconds?: number | undefined;
}): EffectiveHealthCheck {
  const L = HEALTH_LIMITS;
  return {
    command: check.command,
    intervalSeconds: check.intervalSeconds ?? L.intervalSeconds.default,
    timeoutSeconds: check.timeoutSeconds ?? L.timeoutSeconds.default,
    retries: check.retries ?? L.retries.default,
    startPeriodSeconds: check.startPeriodSeconds ?? 0,
  };
}

/** Every problem with a component's health check, paths under `at`. */
export function checkHealthCheck(check: HealthCheck, at: string): SpecIssue[] {
  const L = HEALTH_LIMITS;
  const issues: SpecIssue[] = [];
  const command = check.command ?? [];
  if (command.length === 0 || command[0] === '') {
    issues.push({
      path: `${at}.command`,
      message:
        'required: give the command as an argv list, e.g. ["/bin/wget", "-q", "-O-", "http://127.0.0.1:8080/ok"]',
    });
  }
  if (command.length > L.commandArgs) {
    issues.push({
      path: `${at}.command`,
      message: `${command.length} arguments: at most ${L.commandArgs} are allowed`,
    });
  }
  command.forEach((arg, i) => {
    const problem = checkArgument(arg);
    if (problem) issues.push({ path: `${at}.command[${i}]`, message: problem });
    else if (bytesOf(arg) > L.commandArgBytes) {
      issues.push({
        path: `${at}.command[${i}]`,
        message: `is ${bytesOf(arg)} bytes long: at most ${formatBytes(L.commandArgBytes)} are allowed`,
      });
    }
  });
  const range = (field: string, value: number | undefined, bounds: { min: number; max: number }) => {
    if (value === undefined) return;
    if (Number.isInteger(value) && value >= bounds.min && value <= bounds.max) return;
    issues.push({
      path: `${at}.${field}`,
      message: `${value} is out of range: give a whole number from ${bounds.min} to ${bounds.max}`,
    });
  };
  range('interval_seconds', check.intervalSeconds, L.intervalSeconds);
  range('timeout_seconds', check.timeoutSeconds, L.timeoutSeconds);
  range('retries', check.retries, L.retries);
  range('start_period_seconds', check.startPeriodSeconds, L.startPeriodSeconds);
  return issues;
}

// --- helpers --------------------------------------------------------------------------

function problemOf(check: () => unknown): string | undefined {
  try {
    check();
    return undefined;
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err.message;
    throw err;
  }
}
