/**
 * The agent's configuration: a TOML file (snake_case keys) read into AgentConfig
 * (camelCase), with `MCP_AGENT_*` environment overrides for the scalar settings. Defaults are
 * the secure ones; the file must name at least one trusted issuer, since every call to the
 * agent is authenticated. Relative paths are taken from the config file's directory.
 */

import { posix, resolve } from 'node:path';
import * as z from 'zod';
import {
  checkUniqueIssuers,
  issuerId,
  resolveIssuerPaths,
  type TrustedIssuerConfig,
  trustedIssuerSchema,
} from '../core/auth/issuers.js';
import {
  applyEnvOverrides,
  type Env,
  type EnvOverride,
  listenAddressSchema,
  nameSchema,
  parseTomlDocument,
  parseWithSchema,
  pathSchema,
  readConfigText,
  requiredString,
  resolveConfigPath,
} from '../core/config-env.js';
import { builtInRoles } from './auth/rbac.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface RoleConfig {
  name: string;
  /** Permission strings (`service.deploy`, ...) or `*`; checked by the auth module. */
  permissions: string[];
  /** Service name globs the role is limited to; undefined means every service. */
  services?: string[];
  /** Node name globs the role is limited to; undefined means every node. */
  nodes?: string[];
}

export interface RoleBindingConfig {
  /** An issuer id: the JWT issuer URL or the MCIAS issuer name. */
  issuer: string;
  subject: string;
  roles: string[];
}

export interface AgentConfig {
  /** Absolute path of the file this was read from. */
  configFile: string;
  nodeName: string;
  logLevel: LogLevel;
  server: {
    listen: string;
    tlsCert: string;
    tlsKey: string;
    /** When set, clients must present a certificate signed by this CA. */
    clientCa?: string;
    shutdownGraceSeconds: number;
  };
  database: string;
  containerRuntime: 'podman' | 'docker';
  /** The runtime binary; undefined or a bare name is looked up on PATH. */
  runtimePath?: string;
  /** Registries check_updates may reach over plain HTTP (besides loopback ones), `host[:port]`. */
  insecureRegistries?: string[];
  issuers: TrustedIssuerConfig[];
  rbac: { roles: RoleConfig[]; bindings: RoleBindingConfig[] };
  monitor: {
    enabled: boolean;
    intervalSeconds: number;
    flapThreshold: number;
    flapWindowSeconds: number;
    cooldownSeconds: number;
    eventRetentionDays: number;
    /** argv of the command run for each alert; no shell is involved. */
    alertCommand?: string[];
    alertTimeoutSeconds: number;
  };
  files: { root: string; maxFileBytes: number; chunkBytes: number };
  backups: { dir: string; keep: number };
  admission: AdmissionConfig;
  audit: {
    /**
     * How often the agent logs the audit chain's head (seq and hash), besides at start and at
     * shutdown: the journal then holds anchors for `mcp-agent audit verify --anchor`.
     */
    anchorIntervalSeconds: number;
  };
}

/** The admission levels, loosest last; see agent/admission.ts for what each refuses. */
export const ADMISSION_LEVELS = ['restricted', 'baseline', 'privileged'] as const;
export type AdmissionLevel = (typeof ADMISSION_LEVELS)[number];

/** A host directory that bind mounts may come from; `readOnly` when written `path:ro`. */
export interface BindAllowance {
  /** Absolute and normalized (no `.`/`..`, no trailing slash). */
  path: string;
  readOnly: boolean;
}

/** What an `[[admission.exceptions]]` entry allows the services its globs match. */
export interface AdmissionException {
  /** Service name globs (picomatch, as RBAC uses). */
  services: string[];
  /** A level for these services instead of `[admission] level`. */
  level?: AdmissionLevel;
  /** Host directories these services may bind, including ones the policy protects (`/etc/ssl`). */
  allowBind: BindAllowance[];
  allowHostNetwork: boolean;
  allowRootUser: boolean;
  /** Host ports below 1024 these services may publish. */
  allowHostPorts: number[];
}

export interface AdmissionConfig {
  level: AdmissionLevel;
  /** Host directories every service may bind (besides its own `<files.root>/<service>/`). */
  allowedBindRoots: BindAllowance[];
  exceptions: AdmissionException[];
}

export const AGENT_ENV_OVERRIDES: readonly EnvOverride[] = [
  { variable: 'MCP_AGENT_NODE_NAME', path: ['node_name'], kind: 'string' },
  { variable: 'MCP_AGENT_LOG_LEVEL', path: ['log_level'], kind: 'string' },
  { variable: 'MCP_AGENT_LISTEN', path: ['server', 'listen'], kind: 'string' },
  { variable: 'MCP_AGENT_TLS_CERT', path: ['server', 'tls_cert'], kind: 'path' },
  { variable: 'MCP_AGENT_TLS_KEY', path: ['server', 'tls_key'], kind: 'path' },
  { variable: 'MCP_AGENT_CLIENT_CA', path: ['server', 'client_ca'], kind: 'path' },
  {
    variable: 'MCP_AGENT_SHUTDOWN_GRACE_SECONDS',
    path: ['server', 'shutdown_grace_seconds'],
    kind: 'integer',
  },
  { variable: 'MCP_AGENT_DATABASE', path: ['database'], kind: 'path' },
  { variable: 'MCP_AGENT_RUNTIME', path: ['container_runtime'], kind: 'string' },
  { variable: 'MCP_AGENT_RUNTIME_PATH', path: ['runtime_path'], kind: 'string' },
  { variable: 'MCP_AGENT_MONITOR_ENABLED', path: ['monitor', 'enabled'], kind: 'boolean' },
  { variable: 'MCP_AGENT_MONITOR_INTERVAL_SECONDS', path: ['monitor', 'interval_seconds'], kind: 'integer' },
  { variable: 'MCP_AGENT_FILES_ROOT', path: ['files', 'root'], kind: 'path' },
  { variable: 'MCP_AGENT_BACKUPS_DIR', path: ['backups', 'dir'], kind: 'path' },
  { variable: 'MCP_AGENT_ADMISSION_LEVEL', path: ['admission', 'level'], kind: 'string' },
];

const NO_ISSUER =
  'at least one [[issuers]] entry is required: the agent authenticates every call with a token from a trusted issuer, so with none it could accept no call';
const SERVER_REQUIRED =
  'required: add a [server] table with tls_cert and tls_key (the agent serves only over TLS)';
const ALERT_COMMAND_ARRAY =
  'use an array: no shell is involved, e.g. alert_command = ["/usr/local/bin/mcp-alert", "--channel", "ops"]';

const seconds = (min: number, max: number, fallback: number) => z.int().min(min).max(max).default(fallback);

const serverSchema = z.strictObject(
  {
    listen: listenAddressSchema.default('127.0.0.1:7443'),
    tls_cert: z.string({ error: requiredFor('the PEM certificate the agent presents to clients') }).min(1),
    tls_key: z.string({ error: requiredFor("the PEM private key of the agent's certificate") }).min(1),
    client_ca: pathSchema.optional(),
    shutdown_grace_seconds: seconds(0, 600, 10),
  },
  { error: (issue) => (issue.input === undefined ? SERVER_REQUIRED : undefined) },
);

const roleSchema = z.strictObject({
  name: requiredString('give the role a name'),
  permissions: z.array(requiredString('a permission such as service.deploy, or *')).min(1),
  services: z.array(requiredString('a service name or glob such as web-*')).min(1).optional(),
  nodes: z.array(requiredString('a node name or glob')).min(1).optional(),
});

const bindingSchema = z.strictObject({
  issuer: requiredString('the issuer URL (jwt) or name (mcias) the subject belongs to'),
  subject: requiredString('the subject (the token claim chosen by subject_claim)'),
  roles: z.array(requiredString('a role name')).min(1),
});

const monitorSchema = z.strictObject({
  enabled: z.boolean().default(true),
  interval_seconds: seconds(1, 86_400, 30),
  flap_threshold: z.int().min(1).max(1000).default(3),
  flap_window_seconds: seconds(1, 86_400 * 7, 600),
  cooldown_seconds: seconds(0, 86_400 * 7, 900),
  event_retention_days: z.int().min(1).max(3650).default(30),
  alert_command: z
    .array(requiredString('an argument'), {
      error: (issue) => (typeof issue.input === 'string' ? ALERT_COMMAND_ARRAY : undefined),
    })
    .min(1, { error: 'give the program and its arguments, or leave alert_command out' })
    .optional(),
  alert_timeout_seconds: seconds(1, 3600, 10),
});

const GIB = 1024 ** 3;

const BIND_EXPECTED =
  'expected an absolute host directory, optionally with :ro, e.g. "/srv/shared" or "/var/backups:ro"';

/** `"/var/backups:ro"` → `{ path: '/var/backups', readOnly: true }`. */
const bindAllowanceSchema = z
  .string()
  .superRefine((value, ctx) => {
    const [path = '', mode, ...rest] = value.split(':');
    const problem =
      rest.length > 0 || (mode !== undefined && mode !== 'ro' && mode !== 'rw')
        ? `"${value}": only :ro or :rw may follow the path; ${BIND_EXPECTED}`
        : !path.startsWith('/')
          ? `"${value}" is not absolute; ${BIND_EXPECTED}`
          : path.split('/').includes('..')
            ? `"${value}" contains a ".." segment: give the directory itself`
            : posix.normalize(path) === '/'
              ? `"${value}" would allow every host path: give the service level = "privileged" instead, if that is really meant`
              : undefined;
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .transform((value): BindAllowance => {
    const [path = '', mode] = value.split(':');
    return { path: posix.normalize(path).replace(/\/+$/, ''), readOnly: mode === 'ro' };
  });

const admissionLevelSchema = z.enum(ADMISSION_LEVELS, {
  error: () =>
    `use one of ${ADMISSION_LEVELS.map((level) => `"${level}"`).join(', ')} (see deploy/examples/agent.toml)`,
});

const admissionExceptionSchema = z
  .strictObject({
    services: z.array(requiredString('a service name or glob such as backup or web-*')).min(1),
    level: admissionLevelSchema.optional(),
    allow_bind: z.array(bindAllowanceSchema).default([]),
    allow_host_network: z.boolean().default(false),
    allow_root_user: z.boolean().default(false),
    allow_host_ports: z
      .array(z.int().min(1).max(1023, { error: 'only ports below 1024 need an exception' }))
      .default([]),
  })
  .refine(
    (exception) =>
      exception.level !== undefined ||
      exception.allow_bind.length > 0 ||
      exception.allow_host_network ||
      exception.allow_root_user ||
      exception.allow_host_ports.length > 0,
    {
      error:
        'this exception allows nothing: set level, allow_bind, allow_host_network, allow_root_user or allow_host_ports, or remove it',
    },
  );

const admissionSchema = z.strictObject({
  level: admissionLevelSchema.default('restricted'),
  allowed_bind_roots: z.array(bindAllowanceSchema).default([]),
  exceptions: z.array(admissionExceptionSchema).default([]),
});

const agentConfigInput = z
  .strictObject({
    node_name: nameSchema,
    log_level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    server: serverSchema,
    database: pathSchema.default('/var/lib/mcp-agent/registry.db'),
    container_runtime: z.enum(['podman', 'docker']).default('podman'),
    runtime_path: pathSchema.optional(),
    insecure_registries: z.array(z.string()).default([]),
    issuers: z
      .array(trustedIssuerSchema, { error: (issue) => (issue.input === undefined ? NO_ISSUER : undefined) })
      .min(1, { error: NO_ISSUER }),
    rbac: z
      .strictObject({ roles: z.array(roleSchema).default([]), bindings: z.array(bindingSchema).default([]) })
      .prefault({}),
    monitor: monitorSchema.prefault({}),
    files: z
      .strictObject({
        root: pathSchema.default('/srv'),
        max_file_bytes: z
          .int()
          .min(1)
          .max(Number.MAX_SAFE_INTEGER)
          .default(4 * GIB),
        chunk_bytes: z
          .int()
          .min(1024)
          .max(4 * 1024 * 1024 - 1024, { error: 'must stay under 4 MiB, the largest gRPC message' })
          .default(262_144),
      })
      .prefault({}),
    backups: z
      .strictObject({
        dir: pathSchema.default('/var/lib/mcp-agent/backups'),
        keep: z.int().min(0).default(7),
      })
      .prefault({}),
    admission: admissionSchema.prefault({}),
    audit: z
      .strictObject({
        anchor_interval_seconds: z.int().min(1).max(86_400).default(3600),
      })
      .prefault({}),
  })
  .superRefine((config, ctx) => {
    checkUniqueIssuers(config.issuers, ['issuers'], ctx);
    checkRbacReferences(config.rbac, config.issuers, ctx);
  });

function requiredFor(what: string) {
  return (issue: { input?: unknown }) => (issue.input === undefined ? `required: ${what}` : undefined);
}

function checkRbacReferences(
  rbac: { roles: RoleConfig[]; bindings: RoleBindingConfig[] },
  issuers: readonly TrustedIssuerConfig[],
  ctx: z.RefinementCtx,
): void {
  const roleNames = new Set<string>();
  rbac.roles.forEach((role, index) => {
    if (roleNames.has(role.name)) {
      ctx.addIssue({
        code: 'custom',
        path: ['rbac', 'roles', index, 'name'],
        message: `role "${role.name}" is defined twice: merge the two entries`,
      });
    }
    roleNames.add(role.name);
  });
  // Built-in roles may be bound without being declared; a declared one of the same name replaces it.
  for (const role of builtInRoles) roleNames.add(role.name);
  const issuerIds = issuers.map(issuerId);
  rbac.bindings.forEach((binding, index) => {
    if (issuerIds.length > 0 && !issuerIds.includes(binding.issuer)) {
      ctx.addIssue({
        code: 'custom',
        path: ['rbac', 'bindings', index, 'issuer'],
        message: `"${binding.issuer}" is not a configured issuer: use one of ${issuerIds.map((id) => `"${id}"`).join(', ')}`,
      });
    }
    binding.roles.forEach((role, roleIndex) => {
      if (!roleNames.has(role)) {
        ctx.addIssue({
          code: 'custom',
          path: ['rbac', 'bindings', index, 'roles', roleIndex],
          message: `role "${role}" is not defined: add it under [[rbac.roles]] or use one of ${[...roleNames].join(', ') || '(none defined)'}`,
        });
      }
    });
  });
}

/** Parses and checks the agent config in `text`, read from `file`. Throws InvalidArgumentError. */
export function parseAgentConfig(text: string, file: string, env: Env = process.env): AgentConfig {
  const document = parseTomlDocument(text, file);
  const sources = applyEnvOverrides(document, env, AGENT_ENV_OVERRIDES);
  const input = parseWithSchema(agentConfigInput, document, file, sources);
  const path = (value: string) => resolveConfigPath(value, file, env);
  const optionalPath = (value: string | undefined) => (value === undefined ? undefined : path(value));
  return {
    configFile: resolve(file),
    nodeName: input.node_name,
    logLevel: input.log_level,
    server: {
      listen: input.server.listen,
      tlsCert: path(input.server.tls_cert),
      tlsKey: path(input.server.tls_key),
      clientCa: optionalPath(input.server.client_ca),
      shutdownGraceSeconds: input.server.shutdown_grace_seconds,
    },
    database: path(input.database),
    containerRuntime: input.container_runtime,
    // A bare name (`podman`) is looked up on PATH; anything with a slash is a path.
    runtimePath: input.runtime_path?.includes('/') ? path(input.runtime_path) : input.runtime_path,
    insecureRegistries: input.insecure_registries,
    issuers: input.issuers.map((issuer) => resolveIssuerPaths(issuer, file, env)),
    rbac: input.rbac,
    monitor: {
      enabled: input.monitor.enabled,
      intervalSeconds: input.monitor.interval_seconds,
      flapThreshold: input.monitor.flap_threshold,
      flapWindowSeconds: input.monitor.flap_window_seconds,
      cooldownSeconds: input.monitor.cooldown_seconds,
      eventRetentionDays: input.monitor.event_retention_days,
      alertCommand: input.monitor.alert_command,
      alertTimeoutSeconds: input.monitor.alert_timeout_seconds,
    },
    files: {
      root: path(input.files.root),
      maxFileBytes: input.files.max_file_bytes,
      chunkBytes: input.files.chunk_bytes,
    },
    backups: { dir: path(input.backups.dir), keep: input.backups.keep },
    admission: {
      level: input.admission.level,
      allowedBindRoots: input.admission.allowed_bind_roots,
      exceptions: input.admission.exceptions.map((exception) => ({
        services: exception.services,
        ...(exception.level ? { level: exception.level } : {}),
        allowBind: exception.allow_bind,
        allowHostNetwork: exception.allow_host_network,
        allowRootUser: exception.allow_root_user,
        allowHostPorts: exception.allow_host_ports,
      })),
    },
    audit: { anchorIntervalSeconds: input.audit.anchor_interval_seconds },
  };
}

/** Reads and checks the agent config file. */
export async function loadAgentConfig(file: string, env: Env = process.env): Promise<AgentConfig> {
  const text = await readConfigText(file, 'agent config', 'deploy/examples/agent.toml');
  return parseAgentConfig(text, file, env);
}
