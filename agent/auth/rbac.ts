/**
 * Role-based access control: roles grant the permissions the contract defines (one per RPC, see
 * tools.generated.ts), optionally only for services whose names match globs. Default deny: a
 * caller without a role that grants the permission is refused.
 *
 * A caller's roles are the token's role names plus local bindings for its issuer and subject,
 * keeping only names this agent defines, so an issuer cannot invent a role. A role limited to
 * other nodes (`nodes` globs not matching this agent's node name) does not exist here.
 *
 * Calls that target no particular service (`services` empty: NodeStatus, ListServices,
 * QueryAudit, ...) are allowed when any of the caller's roles grants the permission, scoped or
 * not; list-type handlers then filter their results with `scopeOf`. A call that acts on named
 * services passes all of them (SyncDesiredState passes every service it would touch) and needs
 * every one covered.
 */
import picomatch from 'picomatch';
import type { Caller } from '../../core/auth/caller.js';
import { AuthConfigError } from '../../core/auth/errors.js';
import { PermissionDeniedError } from '../../core/errors.js';
import { type Permission as RpcPermission, permissions as rpcPermissions } from '../../tools.generated.js';

/**
 * Permissions a handler checks on top of its RPC's, for what a call may reach inside it:
 * `file.pull_secrets` lets pull_file read a service's secrets/ folder (its env files).
 */
export const handlerPermissions = ['file.pull_secrets'] as const;

/** Every permission a role may grant: one per RPC (from the contract) and the handlers' own. */
export type Permission = RpcPermission | (typeof handlerPermissions)[number];
const permissions: readonly Permission[] = [...rpcPermissions, ...handlerPermissions].sort();

export interface RoleDefinition {
  name: string;
  /** Permissions from the contract, or `*` for all of them (including ones added later). */
  permissions: readonly string[];
  /** Service-name globs (picomatch) the role is limited to; omitted means every service. */
  services?: readonly string[];
  /** Node-name globs the role is limited to; omitted means every node. Needs RbacOptions.node. */
  nodes?: readonly string[];
}

/** Gives roles to one caller, named by issuer and subject, whatever its token says. */
export interface RoleBinding {
  issuer: string;
  subject: string;
  roles: readonly string[];
}

export interface RbacOptions {
  /** Extra roles; one named like a built-in role replaces it. */
  roles?: readonly RoleDefinition[];
  bindings?: readonly RoleBinding[];
  /** This agent's node name, matched against roles' `nodes`. Required when any role has `nodes`. */
  node?: string;
}

/** Which services a caller may act on under one permission. */
export interface ServiceScope {
  /** True when some role grants the permission for every service. */
  readonly all: boolean;
  allows(service: string): boolean;
}

/**
 * Logs are in the viewer role: they are what a viewer needs to tell why a service is down.
 * Secrets an application prints are its own bug; a role without `service.logs` can be
 * configured where that matters.
 */
const VIEWER: readonly Permission[] = [
  'service.list',
  'service.live_check',
  'service.status',
  'service.logs',
  'node.status',
  'service.check_updates',
];

export const builtInRoles: readonly RoleDefinition[] = [
  { name: 'viewer', permissions: VIEWER },
  {
    name: 'operator',
    permissions: [
      ...VIEWER,
      'service.deploy',
      'service.stop',
      'service.start',
      'service.restart',
      'service.sync',
      'service.adopt',
      // Not 'service.remove': a removal cannot be undone by the operator's own tools (the
      // record, and with purgeFiles the service's files, are gone), so it stays with admin.
      'file.push',
      'file.pull',
      // Not 'file.pull_secrets': the env files in secrets/ are what an assistant must never
      // read back (security.md, "Secrets"); only admin has it.
    ],
  },
  {
    name: 'auditor',
    permissions: ['audit.query', 'audit.verify', 'node.status', 'service.list', 'service.check_updates'],
  },
  { name: 'admin', permissions: ['*'] },
];

interface Role {
  readonly permissions: ReadonlySet<string>;
  /** undefined: every service. */
  readonly matches: ((service: string) => boolean) | undefined;
}

export class Rbac {
  /** The roles that apply on this node. */
  private readonly roles = new Map<string, Role>();
  /** `${issuer}\n${subject}` → bound role names. */
  private readonly bindings = new Map<string, Set<string>>();

  constructor(options: RbacOptions = {}) {
    const definitions = new Map<string, RoleDefinition>(builtInRoles.map((role) => [role.name, role]));
    const configured = new Set<string>();
    for (const role of options.roles ?? []) {
      if (typeof role.name !== 'string' || role.name === '') {
        throw new AuthConfigError('rbac: a role has no name');
      }
      if (configured.has(role.name)) throw new AuthConfigError(`rbac: role '${role.name}' is defined twice`);
      configured.add(role.name);
      definitions.set(role.name, role);
    }
    for (const [name, definition] of definitions) {
      const role = compileRole(name, definition);
      if (appliesOnNode(name, definition, options.node)) this.roles.set(name, role);
    }

    for (const binding of options.bindings ?? []) {
      for (const name of binding.roles) {
        if (!definitions.has(name)) {
          throw new AuthConfigError(
            `rbac: binding for ${binding.issuer} ${binding.subject} names unknown role '${name}'; roles: ${[...definitions.keys()].sort().join(', ')}`,
          );
        }
      }
      const key = bindingKey(binding.issuer, binding.subject);
      const bound = this.bindings.get(key) ?? new Set<string>();
      for (const name of binding.roles) bound.add(name);
      this.bindings.set(key, bound);
    }
  }

  /** The caller's effective roles: token roles ∪ bound roles, only names this agent defines, sorted. */
  rolesOf(caller: Caller): string[] {
    const bound = this.bindings.get(bindingKey(caller.issuer, caller.subject)) ?? [];
    const names = new Set([...caller.roles, ...bound].filter((name) => this.roles.has(name)));
    return [...names].sort();
  }

  /**
   * Refuses the call with PermissionDeniedError unless the caller's roles grant `permission`
   * for every service in `services` (or, with none, for anything at all).
   */
  authorize(caller: Caller, permission: Permission, services: readonly string[]): void {
    const roles = this.rolesOf(caller);
    const granting = this.granting(roles, permission);
    const yours = `(your roles: ${roles.length > 0 ? roles.join(', ') : 'none'})`;
    if (granting.length === 0) {
      throw new PermissionDeniedError(`permission '${permission}' is required ${yours}`);
    }
    for (const service of services) {
      if (!granting.some((role) => role.matches === undefined || role.matches(service))) {
        throw new PermissionDeniedError(
          `permission '${permission}' is required for service '${service}' ${yours}`,
        );
      }
    }
  }

  /** The services the caller may see or touch under `permission`, for handlers that filter lists. */
  scopeOf(caller: Caller, permission: Permission): ServiceScope {
    const granting = this.granting(this.rolesOf(caller), permission);
    const all = granting.some((role) => role.matches === undefined);
    return {
      all,
      allows: (service) => all || granting.some((role) => role.matches?.(service) === true),
    };
  }

  private granting(roleNames: readonly string[], permission: Permission): Role[] {
    return roleNames
      .map((name) => this.roles.get(name))
      .filter(
        (role): role is Role =>
          role !== undefined && (role.permissions.has('*') || role.permissions.has(permission)),
      );
  }
}

function compileRole(name: string, definition: RoleDefinition): Role {
  const known = new Set<string>(permissions);
  if (definition.permissions.length === 0) {
    throw new AuthConfigError(`rbac: role '${name}' grants no permission`);
  }
  for (const permission of definition.permissions) {
    if (permission !== '*' && !known.has(permission)) {
      throw new AuthConfigError(
        `rbac: role '${name}' names unknown permission '${permission}'; valid permissions: ${permissions.join(', ')}, or '*'`,
      );
    }
  }
  if (definition.services === undefined) {
    return { permissions: new Set(definition.permissions), matches: undefined };
  }
  if (definition.services.length === 0 || definition.services.some((glob) => glob === '')) {
    throw new AuthConfigError(
      `rbac: role '${name}' has an empty services list or glob; omit services to grant the role on every service`,
    );
  }
  return { permissions: new Set(definition.permissions), matches: picomatch([...definition.services]) };
}

/** Whether a role limited by `nodes` applies on `node`; with no node name to match, refuse to guess. */
function appliesOnNode(name: string, definition: RoleDefinition, node: string | undefined): boolean {
  if (definition.nodes === undefined) return true;
  if (definition.nodes.length === 0 || definition.nodes.some((glob) => glob === '')) {
    throw new AuthConfigError(
      `rbac: role '${name}' has an empty nodes list or glob; omit nodes to grant the role on every node`,
    );
  }
  if (node === undefined || node === '') {
    throw new AuthConfigError(
      `rbac: role '${name}' is limited to nodes, but this agent's node name is not known`,
    );
  }
  return picomatch.isMatch(node, [...definition.nodes]);
}

function bindingKey(issuer: string, subject: string): string {
  return `${issuer}\n${subject}`;
}
