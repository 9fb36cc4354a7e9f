/**
 * Admission: what a container may reach of the node, decided after authorization and before
 * any effect. RBAC says who may deploy to a service; admission says what a deploy may ask
 * for. With rootful podman a container that binds `/` or `/etc`, joins the host's network or
 * namespaces, or holds extra capabilities is root on the node, so without this step a role
 * scoped to `web-*` would be a root shell.
 *
 * Modelled on Kubernetes' Pod Security Standards, three levels (docs/security.md compares them):
 * - `privileged`: nothing refused (the agent's behaviour before admission existed).
 * - `baseline`: no host network or other namespace joins, no privileged mode, added
 *   capabilities, devices or unconfined security options, no named volumes (a local volume
 *   can be bound to any host directory, and inspect does not show which), and no bind of a
 *   protected host path: the host's system directories, the container runtime's sockets and
 *   state, the agent's own state (database, backups, config, TLS key).
 * - `restricted` (the default): baseline, and bind sources only inside the service's own
 *   `<files.root>/<service>/` or a configured allowed root, no explicit root user (`0`,
 *   `root`), no host port below 1024, no added capability but NET_BIND_SERVICE.
 * Exceptions in agent.toml loosen it per service-name glob.
 *
 * Paths are compared after normalization, both as written and as resolved on the real file
 * system (realpath of the longest existing prefix), so `..`, trailing slashes and symlinks that
 * lead elsewhere do not slip through. A symlink swapped in between this check and the runtime's
 * own resolution is not caught: only something that can already write to the bind's parent
 * directory on the host can do that.
 *
 * The functions that judge (`admitServiceSpec`, `admitContainer`) return every violation; the
 * `assert*` ones throw an AdmissionError (FAILED_PRECONDITION) listing them, each with the
 * agent.toml setting that would allow it.
 */
import { realpathSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import picomatch from 'picomatch';
import { McpError } from '../core/errors.js';
import { isInside } from '../core/paths.js';
import { parsePortMapping } from '../core/spec.js';
import { printable } from '../core/text.js';
import type { ComponentSpec, ServiceSpec } from '../gen/mcp/v1/mcp.js';
import type { ComponentRecord } from '../registry/services.js';
import type { AdmissionException, AdmissionLevel, AgentConfig, BindAllowance } from './config.js';
import type { HandlerDeps } from './handlers/deps.js';
import type { ContainerDetails, HostMount } from './runtime/runtime.js';

// ---------------------------------------------------------------- the policy

export type AdmissionRule =
  | 'host-root'
  | 'protected-path'
  | 'bind-outside-allowed'
  | 'read-only-bind'
  | 'named-volume'
  | 'host-network'
  | 'host-namespace'
  | 'privileged'
  | 'capability'
  | 'device'
  | 'security-option'
  | 'root-user'
  | 'privileged-port';

/** One thing a spec or container asks for that the policy refuses. */
export interface AdmissionViolation {
  /** `component "app"` or `container "web-app"`. */
  subject: string;
  rule: AdmissionRule;
  /** A whole sentence: what, which rule and level, and the agent.toml setting that would allow it. */
  message: string;
}

/** A host path the policy protects, and why (shown in messages). */
export interface ProtectedPath {
  path: string;
  why: string;
}

export interface AdmissionPolicy {
  level: AdmissionLevel;
  allowedBindRoots: readonly BindAllowance[];
  exceptions: readonly AdmissionException[];
  /** `files.root`: a service's own directory is `<filesRoot>/<service>`. */
  filesRoot: string;
  protectedPaths: readonly ProtectedPath[];
  /** The real location of a path (default: realpath of its longest existing prefix). */
  resolvePath: (path: string) => string;
}

const SYSTEM = 'host system directory';
const RUNTIME = "the container runtime's sockets and state";
const AGENT = "the agent's own state";

/** Host system directories: binding one (or a parent of one) gives the container the node. */
const SYSTEM_PATHS = [
  '/etc',
  '/root',
  '/home',
  '/proc',
  '/sys',
  '/dev',
  '/boot',
  '/usr',
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
];

/**
 * The runtimes' sockets and stores. A socket is a root shell by API; `/run/systemd` and the
 * D-Bus system bus reach systemd; `/run/user` holds rootless runtimes' sockets. Each `/run`
 * entry is listed under `/var/run` too, for hosts where that is not a symlink.
 */
const RUNTIME_PATHS = [
  ...[
    '/run/podman',
    '/run/docker.sock',
    '/run/docker',
    '/run/containerd',
    '/run/containers',
    '/run/crio',
    '/run/user',
    '/run/systemd',
    '/run/dbus',
  ].flatMap((path) => [path, `/var${path}`]),
  '/var/lib/containers',
  '/var/lib/docker',
  '/var/lib/containerd',
];

/**
 * The agent's own state: the database's directory, backups, config file and TLS material.
 * When the files root lies inside the database's directory (a single-directory setup), the
 * directory cannot be protected as a whole without refusing every service's own directory,
 * so the database and its journal files are protected one by one.
 */
export function agentStatePaths(config: AgentConfig): string[] {
  const stateDir = dirname(config.database);
  const database = isInside(stateDir, config.files.root)
    ? ['', '-wal', '-shm', '-journal'].map((suffix) => `${config.database}${suffix}`)
    : [stateDir];
  const issuerFiles = config.issuers.flatMap((issuer) =>
    Object.entries(issuer)
      .filter(([key, value]) => key.endsWith('File') && typeof value === 'string')
      .map(([, value]) => value as string),
  );
  return [
    ...database,
    config.backups.dir,
    config.configFile,
    config.server.tlsKey,
    config.server.tlsCert,
    ...(config.server.clientCa ? [config.server.clientCa] : []),
    ...issuerFiles,
  ].map(normalize);
}

/** The policy the agent's config describes. */
export function admissionPolicy(config: AgentConfig): AdmissionPolicy {
  return {
    level: config.admission.level,
    allowedBindRoots: config.admission.allowedBindRoots,
    exceptions: config.admission.exceptions,
    filesRoot: normalize(config.files.root),
    protectedPaths: [
      ...SYSTEM_PATHS.map((path) => ({ path, why: SYSTEM })),
      ...RUNTIME_PATHS.map((path) => ({ path, why: RUNTIME })),
      ...agentStatePaths(config).map((path) => ({ path, why: AGENT })),
    ],
    resolvePath: resolveExisting,
  };
}

/** realpath of the longest existing prefix of `path`, the rest appended; `path` when none resolves. */
export function resolveExisting(path: string): string {
  let head = normalize(path);
  const rest: string[] = [];
  for (;;) {
    try {
      return normalize(join(realpathSync(head), ...rest));
    } catch {
      // missing, or a loop: try the parent
    }
    if (head === '/') return normalize(path);
    rest.unshift(posix.basename(head));
    head = posix.dirname(head);
  }
}

function normalize(path: string): string {
  const normal = posix.normalize(path);
  return normal === '/' ? normal : normal.replace(/\/+$/, '');
}

// ---------------------------------------------------------------- per service

const LEVEL_ORDER: readonly AdmissionLevel[] = ['restricted', 'baseline', 'privileged'];

/** The policy as it applies to one service: its level and what its exceptions add. */
interface ServicePolicy {
  service: string;
  level: AdmissionLevel;
  /** Allowed bind roots: the service's own directory, `allowed_bind_roots`, its `allow_bind`. */
  binds: readonly BindAllowance[];
  /** Its `allow_bind` entries only: the ones that may lie inside a protected path. */
  exceptionBinds: readonly BindAllowance[];
  hostNetwork: boolean;
  rootUser: boolean;
  hostPorts: ReadonlySet<number>;
  policy: AdmissionPolicy;
}

function forService(service: string, policy: AdmissionPolicy): ServicePolicy {
  const matching = policy.exceptions.filter((exception) => picomatch.isMatch(service, exception.services));
  const levels = matching.flatMap((exception) => (exception.level ? [exception.level] : []));
  // Several matching exceptions add up; of several levels, the loosest applies.
  const level = levels.length
    ? levels.reduce((a, b) => (LEVEL_ORDER.indexOf(a) >= LEVEL_ORDER.indexOf(b) ? a : b))
    : policy.level;
  const exceptionBinds = matching.flatMap((exception) => exception.allowBind);
  return {
    service,
    level,
    binds: [
      { path: join(policy.filesRoot, service), readOnly: false },
      ...policy.allowedBindRoots,
      ...exceptionBinds,
    ],
    exceptionBinds,
    hostNetwork: matching.some((exception) => exception.allowHostNetwork),
    rootUser: matching.some((exception) => exception.allowRootUser),
    hostPorts: new Set(matching.flatMap((exception) => exception.allowHostPorts)),
    policy,
  };
}

/** The `[[admission.exceptions]]` line that would allow `setting` for this service. */
function exceptionAdvice(sp: ServicePolicy, setting: string): string {
  return `to allow it for this service add [[admission.exceptions]] services = ["${sp.service}"] ${setting} to agent.toml`;
}

function refusedBy(sp: ServicePolicy): string {
  return `the ${sp.level} admission policy refuses`;
}

// ---------------------------------------------------------------- the checks

/** What a container asks of the host, from a spec or from inspect. */
interface HostRequest {
  subject: string;
  network: string;
  user: string;
  /** Host ports published. */
  hostPorts: { text: string; port: number }[];
  mounts: { text: string; type: 'bind' | 'volume'; source: string; readOnly: boolean }[];
  privileged: boolean;
  capAdd: readonly string[];
  devices: readonly string[];
  namespaces: { name: string; mode: string }[];
  securityOpt: readonly string[];
}

/** Every violation of `spec` (a Deploy or Sync spec) under `policy`. */
export function admitServiceSpec(
  service: string,
  spec: Pick<ServiceSpec, 'components'>,
  policy: AdmissionPolicy,
): AdmissionViolation[] {
  const sp = forService(service, policy);
  return spec.components.flatMap((component) => judge(sp, specRequest(component)));
}

/** Every violation of a container found on the node (Adopt) under `policy`. */
export function admitContainer(
  service: string,
  details: ContainerDetails,
  policy: AdmissionPolicy,
): AdmissionViolation[] {
  return judge(forService(service, policy), containerRequest(details));
}

function specRequest(
  component: Pick<ComponentSpec, 'name' | 'network' | 'user' | 'ports' | 'volumes'>,
): HostRequest {
  return {
    subject: `component "${printable(component.name)}"`,
    network: component.network ?? '',
    user: component.user ?? '',
    hostPorts: (component.ports ?? []).flatMap((text) => {
      const port = hostPortOf(() => parsePortMapping(text).hostPort);
      return port === undefined ? [] : [{ text, port }];
    }),
    mounts: (component.volumes ?? []).map((text) => {
      const [source = '', , options = ''] = text.split(':');
      return {
        text,
        type: source.startsWith('/') ? 'bind' : 'volume',
        source,
        readOnly: options.split(',').includes('ro'),
      };
    }),
    privileged: false,
    capAdd: [],
    devices: [],
    namespaces: [],
    securityOpt: [],
  };
}

function containerRequest(details: ContainerDetails): HostRequest {
  const host = details.hostAccess;
  const mounts: HostRequest['mounts'] = host
    ? host.mounts.flatMap((mount) => mountOf(mount))
    : details.volumes.map((text) => {
        const [source = '', , options = ''] = text.split(':');
        return { text, type: source.startsWith('/') ? 'bind' : 'volume', source, readOnly: options === 'ro' };
      });
  return {
    subject: `container "${printable(details.name)}"`,
    network: details.network,
    user: details.user,
    hostPorts: details.ports.flatMap((text) => {
      const match = /(\d*):\d+(?:\/\w+)?$/.exec(text);
      const port = Number(match?.[1] ?? '');
      return port >= 1 ? [{ text, port }] : [];
    }),
    mounts,
    privileged: host?.privileged ?? false,
    capAdd: host?.capAdd ?? [],
    devices: host?.devices ?? [],
    namespaces: host
      ? [
          { name: 'PID', mode: host.pidMode },
          { name: 'IPC', mode: host.ipcMode },
          { name: 'UTS', mode: host.utsMode },
        ]
      : [],
    securityOpt: host?.securityOpt ?? [],
  };
}

function mountOf(mount: HostMount): HostRequest['mounts'] {
  const text = `${mount.type === 'volume' ? mount.name : mount.source}:${mount.destination}${mount.readOnly ? ':ro' : ''}`;
  if (mount.type === 'bind') return [{ text, type: 'bind', source: mount.source, readOnly: mount.readOnly }];
  if (mount.type === 'volume')
    return [{ text, type: 'volume', source: mount.name, readOnly: mount.readOnly }];
  return []; // tmpfs and the like hold nothing of the host
}

function hostPortOf(parse: () => number): number | undefined {
  try {
    return parse();
  } catch {
    return undefined; // an invalid mapping is the spec validation's to refuse
  }
}

function judge(sp: ServicePolicy, request: HostRequest): AdmissionViolation[] {
  if (sp.level === 'privileged') return [];
  const violations: AdmissionViolation[] = [];
  const refuse = (rule: AdmissionRule, message: string) =>
    violations.push({ subject: request.subject, rule, message: `${request.subject}: ${message}` });
  const privileged = 'level = "privileged"';

  // Namespaces: the network by name, PID/IPC/UTS as inspect reports them.
  const network = request.network.toLowerCase();
  if (network === 'host') {
    if (!sp.hostNetwork) {
      refuse(
        'host-network',
        `network "host" shares the node's network stack, which ${refusedBy(sp)}; ${exceptionAdvice(sp, 'allow_host_network = true')}`,
      );
    }
  } else if (joinsNamespace(network)) {
    refuse(
      'host-namespace',
      `network "${printable(request.network)}" joins another network namespace, which ${refusedBy(sp)}; ${exceptionAdvice(sp, privileged)}`,
    );
  }
  for (const { name, mode } of request.namespaces) {
    if (mode.toLowerCase() === 'host' || joinsNamespace(mode.toLowerCase())) {
      refuse(
        'host-namespace',
        `${name} namespace "${printable(mode)}" is not the container's own, which ${refusedBy(sp)}; ${exceptionAdvice(sp, privileged)}`,
      );
    }
  }

  if (request.privileged) {
    refuse('privileged', `runs privileged, which ${refusedBy(sp)}; ${exceptionAdvice(sp, privileged)}`);
  }
  for (const added of request.capAdd) {
    const cap = added.toUpperCase().replace(/^CAP_/, '');
    const allowed = sp.level === 'restricted' ? cap === 'NET_BIND_SERVICE' : BASELINE_CAPABILITIES.has(cap);
    if (!allowed) {
      refuse(
        'capability',
        `adds capability ${printable(added)}, which ${refusedBy(sp)}; ${exceptionAdvice(sp, privileged)}`,
      );
    }
  }
  for (const device of request.devices) {
    refuse(
      'device',
      `has host device ${printable(device)}, which ${refusedBy(sp)}; ${exceptionAdvice(sp, privileged)}`,
    );
  }
  for (const option of request.securityOpt) {
    if (UNCONFINED.test(option)) {
      refuse(
        'security-option',
        `security option "${printable(option)}" lifts a confinement, which ${refusedBy(sp)}; ${exceptionAdvice(sp, privileged)}`,
      );
    }
  }

  for (const mount of request.mounts) {
    const problem = mountProblem(sp, mount);
    if (problem) refuse(problem.rule, `volume "${printable(mount.text)}" ${problem.message}`);
  }

  if (sp.level === 'restricted') {
    if (isRootUser(request.user) && !sp.rootUser) {
      refuse(
        'root-user',
        `user "${printable(request.user)}" is root, which ${refusedBy(sp)} (give a non-root uid such as 1000:1000); ${exceptionAdvice(sp, 'allow_root_user = true')}`,
      );
    }
    for (const { text, port } of request.hostPorts) {
      if (port < 1024 && !sp.hostPorts.has(port)) {
        refuse(
          'privileged-port',
          `port "${printable(text)}" publishes host port ${port}, below 1024, which ${refusedBy(sp)} (a system service's port); ${exceptionAdvice(sp, `allow_host_ports = [${port}]`)}`,
        );
      }
    }
  }
  return violations;
}

/** The capabilities PSS baseline lets a container add (the runtimes' usual defaults). */
const BASELINE_CAPABILITIES = new Set([
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
]);

/** Security options that remove seccomp, AppArmor, SELinux or the masking of /proc and /sys. */
const UNCONFINED =
  /^(?:seccomp[=:]unconfined|apparmor[=:]unconfined|label[=:]disable|systempaths[=:]unconfined|unmask[=:])/i;

function joinsNamespace(mode: string): boolean {
  return mode.startsWith('container:') || mode.startsWith('ns:') || mode === 'host';
}

function isRootUser(user: string): boolean {
  const name = user.split(':')[0] ?? '';
  return name === 'root' || /^0+$/.test(name);
}

/** Why a mount is refused, or undefined. */
function mountProblem(
  sp: ServicePolicy,
  mount: HostRequest['mounts'][number],
): { rule: AdmissionRule; message: string } | undefined {
  const { policy } = sp;
  if (mount.type === 'volume') {
    return {
      rule: 'named-volume',
      message: `is a named volume, which ${refusedBy(sp)}: a local volume can be bound to any host directory and inspect does not show which; bind a directory under ${join(policy.filesRoot, sp.service)}/ instead, or ${exceptionAdvice(sp, 'level = "privileged"')}`,
    };
  }
  const written = normalize(mount.source);
  const resolved = policy.resolvePath(written);
  const candidates = [...new Set([written, resolved])];
  const via = (path: string) => (path === written ? '' : ` (${written} resolves to ${path})`);

  for (const path of candidates) {
    if (path === '/') {
      return {
        rule: 'host-root',
        message: `mounts /${via(path)}, the host's whole file system, which ${refusedBy(sp)}; no exception allows it but ${exceptionAdvice(sp, 'level = "privileged"').replace('to allow it', 'to allow it anyway')}`,
      };
    }
  }
  for (const path of candidates) {
    for (const guarded of policy.protectedPaths) {
      for (const area of [...new Set([guarded.path, policy.resolvePath(guarded.path)])]) {
        if (isInside(area, path)) {
          // Inside a protected path: an allow_bind entry that names this area (or a part of it) waives it.
          const waiver = sp.exceptionBinds.find(
            (allowance) => isInside(area, allowance.path) && insideAllowance(policy, allowance, path),
          );
          if (waiver) {
            if (waiver.readOnly && !mount.readOnly) return readOnlyProblem(sp, waiver);
            continue;
          }
          return {
            rule: 'protected-path',
            message: `mounts ${path}${via(path)}, which ${refusedBy(sp)} (${guarded.why}); ${exceptionAdvice(sp, `allow_bind = ["${path}${mount.readOnly ? ':ro' : ''}"]`)}`,
          };
        }
        if (isInside(path, area)) {
          return {
            rule: 'protected-path',
            message: `mounts ${path}${via(path)}, which contains ${area} (${guarded.why}) and ${refusedBy(sp)}; bind a narrower directory, or ${exceptionAdvice(sp, 'level = "privileged"')}`,
          };
        }
      }
    }
  }
  if (sp.level !== 'restricted') return undefined;

  for (const path of candidates) {
    const allowances = sp.binds.filter((allowance) => insideAllowance(policy, allowance, path));
    if (allowances.length === 0) {
      return {
        rule: 'bind-outside-allowed',
        message: `mounts ${path}${via(path)}, outside the service's own directory ${join(policy.filesRoot, sp.service)}/, which ${refusedBy(sp)}; ${exceptionAdvice(sp, `allow_bind = ["${path}${mount.readOnly ? ':ro' : ''}"]`)} (or list it in [admission] allowed_bind_roots for every service)`,
      };
    }
    const writable = allowances.find((allowance) => !allowance.readOnly);
    if (!mount.readOnly && !writable) return readOnlyProblem(sp, allowances[0] as BindAllowance);
  }
  return undefined;
}

function insideAllowance(policy: AdmissionPolicy, allowance: BindAllowance, path: string): boolean {
  return isInside(allowance.path, path) || isInside(policy.resolvePath(allowance.path), path);
}

function readOnlyProblem(
  sp: ServicePolicy,
  allowance: BindAllowance,
): { rule: AdmissionRule; message: string } {
  return {
    rule: 'read-only-bind',
    message: `is writable, but ${allowance.path} is allowed read-only ("${allowance.path}:ro"), so ${refusedBy(sp)} it: add :ro to the volume, or allow "${allowance.path}" without :ro in agent.toml`,
  };
}

// ---------------------------------------------------------------- throwing, for the handlers

/**
 * A request the admission policy refuses. FAILED_PRECONDITION, not PERMISSION_DENIED: the
 * caller is authorized (an admin gets the same answer); the node's policy, set in its
 * agent.toml, does not allow what the spec asks for. Changing the spec or the policy fixes it.
 * It is not a FailedPreconditionError, so a start from a recorded spec fails only that
 * component (handlers/deploy.ts isComponentFailure).
 */
export class AdmissionError extends McpError {
  readonly violations: readonly AdmissionViolation[];
  constructor(violations: readonly AdmissionViolation[]) {
    super('FAILED_PRECONDITION', violations.map((violation) => violation.message).join('\n'));
    this.violations = violations;
  }
}

function throwIfAny(violations: readonly AdmissionViolation[]): void {
  if (violations.length > 0) throw new AdmissionError(violations);
}

/**
 * Deploy: the inline spec as a whole (all of it is recorded, and start_service may run any
 * part later), or, by name, the recorded components the deploy would run.
 */
export function assertDeployAdmitted(
  deps: Pick<HandlerDeps, 'config' | 'registry'>,
  plan: { service: string; spec: ServiceSpec | undefined; component: string },
): void {
  const recorded = plan.spec ? [] : (deps.registry.services.get(plan.service)?.components ?? []);
  const components = plan.spec
    ? plan.spec.components
    : recorded.filter((c) => (plan.component ? c.name === plan.component : c.desiredState !== 'ignore'));
  throwIfAny(admitServiceSpec(plan.service, { components }, admissionPolicy(deps.config)));
}

/** SyncDesiredState: every spec, before anything is recorded. */
export function assertServicesAdmitted(config: AgentConfig, specs: readonly ServiceSpec[]): void {
  const policy = admissionPolicy(config);
  throwIfAny(specs.flatMap((spec) => admitServiceSpec(spec.name, spec, policy)));
}

/** A recorded component about to run again (start of a removed container). */
export function assertComponentAdmitted(config: AgentConfig, component: ComponentRecord): void {
  throwIfAny(admitServiceSpec(component.service, { components: [component] }, admissionPolicy(config)));
}

/** AdoptContainers: a container found on the node, before it is recorded. */
export function assertContainerAdmitted(
  config: AgentConfig,
  service: string,
  details: ContainerDetails,
): void {
  throwIfAny(admitContainer(service, details, admissionPolicy(config)));
}
