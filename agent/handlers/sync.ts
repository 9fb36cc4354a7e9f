/**
 * SyncDesiredState: brings declared definitions under management without running anything.
 * Holds the per-service lock of every service it changes and honours the request id.
 */

import { InvalidArgumentError } from '../../core/errors.js';
import { splitContainerName } from '../../core/naming.js';
import { assertValidServiceSpec, checkName } from '../../core/spec.js';
import {
  type ComponentSpec,
  type SyncDesiredStateRequest,
  SyncDesiredStateResponse,
} from '../../gen/mcp/v1/mcp.js';
import type { Registry } from '../../registry/db.js';
import { assertServicesAdmitted } from '../admission.js';
import { planGate, planSync } from '../plan.js';
import type { ContainerSummary } from '../runtime/index.js';
import type { CallContext, ServiceScope, UnaryHandler } from '../server.js';
import { recordContainer, type ServiceContext } from './context.js';

/**
 * Records the definitions (created / updated / unchanged, `active` → desired state), then
 * marks every container that matches no component as a component with desired state
 * `ignore`, under the service its name splits into. Every spec is checked before anything
 * is written, and the whole sync is one transaction: an invalid definition changes nothing.
 * Strays are only recorded under services the caller may sync (its RBAC scope), and only
 * when their names can be service and component names.
 */
export function syncHandler(
  sc: ServiceContext,
): UnaryHandler<SyncDesiredStateRequest, SyncDesiredStateResponse> {
  const { registry, runtime } = sc.deps;
  return async (req, ctx) => {
    if (req.services.length === 0) {
      throw new InvalidArgumentError('sync needs at least one service definition in services');
    }
    const names = req.services.map((s) => s.name);
    const repeated = names.find((name, i) => names.indexOf(name) !== i);
    if (repeated !== undefined) {
      throw new InvalidArgumentError(
        `service '${repeated}' is defined twice in this sync: give each service once`,
      );
    }
    req.services.forEach((spec, i) => {
      assertValidServiceSpec(spec, `services[${i}] (${spec.name || 'no name'})`);
    });
    assertServicesAdmitted(sc.deps.config, req.services); // agent/admission.ts
    return planGate(
      req,
      {
        locks: sc.locks,
        requestResults: registry.requestResults,
        services: names,
        rpc: 'SyncDesiredState',
        requestId: req.requestId,
        codec: SyncDesiredStateResponse,
        signal: ctx.signal,
      },
      async () => planSync(req.services, registry.services.list(), await runtime.list()),
      (plan) => ({ services: [], ignored: [], replayed: false, plan }),
      async () => {
        const containers = await runtime.list();
        return registry.transaction(() => {
          const services = req.services.map((spec) => registry.services.upsert(spec));
          const ignored = recordStrays(registry, containers, ctx);
          return { services, ignored, replayed: false };
        });
      },
    );
  };
}

interface Stray {
  service: string;
  component: string;
  container: ContainerSummary;
}

/** Records unmatched containers as `ignore` components; returns them as `service/component`. */
function recordStrays(
  registry: Registry,
  containers: readonly ContainerSummary[],
  ctx: CallContext,
): string[] {
  const services = registry.services.list();
  const known = new Set(services.flatMap((s) => s.components.map((c) => c.container)));
  const names = services.map((s) => s.name);
  const groups = new Map<string, Stray[]>();
  for (const container of containers) {
    if (known.has(container.name)) continue;
    const stray = strayOf(container, names, ctx.scope);
    if (!stray) continue;
    const group = groups.get(stray.service) ?? [];
    if (group.some((s) => s.component === stray.component)) continue;
    group.push(stray);
    groups.set(stray.service, group);
  }
  const ignored: string[] = [];
  for (const [service, strays] of groups) {
    try {
      // A savepoint per service: one that cannot be recorded (say, a component name already
      // taken by another container) does not undo the others or the definitions.
      registry.transaction(() => {
        const existing = registry.services.get(service);
        const fresh = strays.filter((s) => !existing?.components.some((c) => c.name === s.component));
        if (fresh.length === 0) return;
        const specs = fresh.map((s) => straySpec(s));
        if (existing) {
          for (const spec of specs)
            registry.services.upsertComponent(service, spec, { desiredState: 'ignore' });
        } else {
          // Nothing is asked to run: a service made only of strays is inactive.
          registry.services.upsert(
            { name: service, active: false, components: specs },
            { desiredState: 'ignore' },
          );
        }
        for (const stray of fresh) {
          recordContainer(registry, stray.service, stray.component, stray.container);
          ignored.push(`${stray.service}/${stray.component}`);
        }
      });
    } catch (err) {
      ctx.log.warn('stray containers not recorded', { service, error: String(err) });
    }
  }
  return ignored;
}

function strayOf(
  container: ContainerSummary,
  names: readonly string[],
  scope: ServiceScope,
): Stray | undefined {
  const identity = splitContainerName(container.name, names);
  if (!identity || checkName(identity.service) || checkName(identity.component)) return undefined;
  if (!container.image || !scope.allows(identity.service)) return undefined;
  return { ...identity, container };
}

function straySpec(stray: Stray): ComponentSpec {
  return {
    name: stray.component,
    image: stray.container.image,
    network: '',
    user: '',
    restart: '',
    ports: [],
    envFiles: [],
    volumes: [],
    cmd: [...stray.container.command],
    env: {},
    init: false,
    healthCheck: undefined,
  };
}
