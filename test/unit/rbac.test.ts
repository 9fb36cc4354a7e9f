/**
 * RBAC: what each built-in role may call, service-scoped roles, bindings, and refusals of bad
 * configuration. The expected table is written out by hand: it is the spec, not a copy of the code.
 */
import { describe, expect, it } from 'vitest';
import { Rbac } from '../../agent/auth/rbac.js';
import type { Caller } from '../../core/auth/caller.js';
import { AuthConfigError } from '../../core/auth/errors.js';
import { PermissionDeniedError } from '../../core/errors.js';
import { rpcs } from '../../tools.generated.js';

const caller = (roles: string[], subject = 'alice', issuer = 'https://idp.test'): Caller => ({
  issuer,
  subject,
  clientId: 'cli',
  roles,
});

/** Thrown error of `fn`, failing the test when it does not throw PermissionDeniedError. */
function denial(fn: () => void): PermissionDeniedError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PermissionDeniedError);
    return err as PermissionDeniedError;
  }
  throw new Error('expected the call to be denied');
}

// RPC → [viewer, operator, auditor, admin]
const EXPECTED: Record<string, [boolean, boolean, boolean, boolean]> = {
  Deploy: [false, true, false, true],
  StopService: [false, true, false, true],
  StartService: [false, true, false, true],
  RestartService: [false, true, false, true],
  SyncDesiredState: [false, true, false, true],
  ListServices: [true, true, true, true],
  LiveCheck: [true, true, false, true],
  GetServiceStatus: [true, true, false, true],
  AdoptContainers: [false, true, false, true],
  NodeStatus: [true, true, true, true],
  PushFile: [false, true, false, true],
  PullFile: [false, true, false, true],
  QueryAudit: [false, false, true, true],
  VerifyAudit: [false, false, true, true],
  FollowAudit: [false, false, true, true],
  // Removal cannot be undone with the operator's own tools: admin only.
  RemoveService: [false, false, false, true],
  ServiceLogs: [true, true, false, true],
  // The same permission as Deploy: it is one.
  RollbackService: [false, true, false, true],
  CheckUpdates: [true, true, true, true],
};
const ROLES = ['viewer', 'operator', 'auditor', 'admin'] as const;

describe('built-in roles', () => {
  it('the expected table covers exactly the RPCs of the contract', () => {
    expect(Object.keys(EXPECTED).sort()).toEqual(rpcs.map((rpc) => rpc.rpc).sort());
  });

  const rbac = new Rbac();
  for (const rpc of rpcs) {
    ROLES.forEach((role, column) => {
      const allowed = EXPECTED[rpc.rpc]?.[column];
      it(`${role} ${allowed ? 'may' : 'may not'} call ${rpc.rpc}`, () => {
        for (const services of [[], ['web-api']]) {
          const call = () => rbac.authorize(caller([role]), rpc.permission, services);
          if (allowed) expect(call).not.toThrow();
          else expect(denial(call).message).toContain(`permission '${rpc.permission}' is required`);
        }
      });
    });
  }
});

describe('default deny', () => {
  const rbac = new Rbac();

  it('denies a caller without roles, saying so', () => {
    expect(denial(() => rbac.authorize(caller([]), 'node.status', [])).message).toBe(
      "permission 'node.status' is required (your roles: none)",
    );
  });

  it('ignores role names the agent does not define', () => {
    expect(rbac.rolesOf(caller(['root', 'superuser']))).toEqual([]);
    denial(() => rbac.authorize(caller(['root']), 'service.list', []));
  });

  it('names the missing permission and the roles the caller has', () => {
    expect(denial(() => rbac.authorize(caller(['viewer']), 'service.deploy', ['web'])).message).toBe(
      "permission 'service.deploy' is required (your roles: viewer)",
    );
  });
});

describe('service-scoped roles', () => {
  const rbac = new Rbac({
    roles: [{ name: 'operator-web', permissions: ['service.deploy', 'service.list'], services: ['web-*'] }],
  });
  const web = caller(['operator-web']);

  it('allows a matching service and denies another, naming the permission and the service', () => {
    expect(() => rbac.authorize(web, 'service.deploy', ['web-api'])).not.toThrow();
    expect(denial(() => rbac.authorize(web, 'service.deploy', ['db'])).message).toBe(
      "permission 'service.deploy' is required for service 'db' (your roles: operator-web)",
    );
  });

  it('needs every named service covered', () => {
    expect(denial(() => rbac.authorize(web, 'service.deploy', ['web-api', 'db'])).message).toMatch(
      /service 'db'/,
    );
  });

  it('allows node-wide reads, which then filter with scopeOf', () => {
    expect(() => rbac.authorize(web, 'service.list', [])).not.toThrow();
    const scope = rbac.scopeOf(web, 'service.list');
    expect(scope.all).toBe(false);
    expect(['web-api', 'web-ui', 'db', 'mc-proxy'].filter(scope.allows)).toEqual(['web-api', 'web-ui']);
  });

  it('gives an unscoped role an unlimited scope, and no grant an empty one', () => {
    const both = caller(['operator-web', 'viewer']);
    expect(rbac.scopeOf(both, 'service.list').all).toBe(true);
    expect(rbac.scopeOf(both, 'service.list').allows('db')).toBe(true);
    const none = rbac.scopeOf(caller(['viewer']), 'service.deploy');
    expect(none.all).toBe(false);
    expect(none.allows('web-api')).toBe(false);
  });
});

describe('bindings', () => {
  const rbac = new Rbac({
    bindings: [
      { issuer: 'https://idp.test', subject: 'ci-bot', roles: ['operator'] },
      { issuer: 'mcias:main', subject: 'alice', roles: ['auditor'] },
    ],
  });

  it('adds roles to the bound issuer and subject only', () => {
    expect(rbac.rolesOf(caller([], 'ci-bot'))).toEqual(['operator']);
    expect(rbac.rolesOf(caller(['viewer'], 'alice', 'mcias:main'))).toEqual(['auditor', 'viewer']);
    // Same subject from another issuer is another identity.
    expect(rbac.rolesOf(caller([], 'ci-bot', 'https://other-idp.test'))).toEqual([]);
    expect(() => rbac.authorize(caller([], 'ci-bot'), 'service.deploy', ['db'])).not.toThrow();
  });
});

describe('node-scoped roles', () => {
  const roles = [{ name: 'vps-operator', permissions: ['service.deploy'], nodes: ['vps-*'] }];
  const bindings = [{ issuer: 'https://idp.test', subject: 'alice', roles: ['vps-operator'] }];

  it('applies on a matching node only', () => {
    const onVps = new Rbac({ roles, bindings, node: 'vps-1' });
    expect(onVps.rolesOf(caller([]))).toEqual(['vps-operator']);
    expect(() => onVps.authorize(caller([]), 'service.deploy', ['db'])).not.toThrow();
    const atHome = new Rbac({ roles, bindings, node: 'homelab' });
    expect(atHome.rolesOf(caller(['vps-operator']))).toEqual([]);
    expect(denial(() => atHome.authorize(caller(['vps-operator']), 'service.deploy', ['db'])).message).toBe(
      "permission 'service.deploy' is required (your roles: none)",
    );
  });

  it('refuses node-limited roles when the node name is unknown', () => {
    expect(() => new Rbac({ roles })).toThrow(/node name is not known/);
  });
});

describe('configuration', () => {
  it('refuses an unknown permission, naming it and listing the valid ones', () => {
    const build = () => new Rbac({ roles: [{ name: 'deployer', permissions: ['service.deplyo'] }] });
    expect(build).toThrow(AuthConfigError);
    expect(build).toThrow(
      /role 'deployer' names unknown permission 'service.deplyo'; valid permissions: audit.query, /,
    );
  });

  it('lets a configured role replace a built-in one', () => {
    const rbac = new Rbac({ roles: [{ name: 'viewer', permissions: ['node.status'] }] });
    expect(() => rbac.authorize(caller(['viewer']), 'node.status', [])).not.toThrow();
    denial(() => rbac.authorize(caller(['viewer']), 'service.list', []));
  });

  it("grants everything with '*'", () => {
    const rbac = new Rbac({ roles: [{ name: 'web-admin', permissions: ['*'], services: ['web-*'] }] });
    expect(() => rbac.authorize(caller(['web-admin']), 'file.push', ['web-api'])).not.toThrow();
    denial(() => rbac.authorize(caller(['web-admin']), 'file.push', ['db']));
  });

  it('refuses bindings to unknown roles, duplicate roles, empty scopes and empty roles', () => {
    expect(() => new Rbac({ bindings: [{ issuer: 'i', subject: 's', roles: ['ghost'] }] })).toThrow(
      /unknown role 'ghost'/,
    );
    const role = { name: 'r', permissions: ['node.status'] };
    expect(() => new Rbac({ roles: [role, role] })).toThrow(/defined twice/);
    expect(() => new Rbac({ roles: [{ ...role, services: [] }] })).toThrow(/empty services list/);
    expect(() => new Rbac({ roles: [{ name: 'r', permissions: [] }] })).toThrow(/grants no permission/);
  });
});
