/**
 * Where the registry meets the runtime, for LiveCheck and the monitor alike: one listing of
 * every container brought into the registry's observed state, and the drift rule.
 *
 * Drift: a managed component (desired `running` or `stopped`; `ignore` never drifts) whose
 * last observed state is not in its desired state:
 * - desired `running` is met only by `running`;
 * - desired `stopped` is met by `exited`, `created` and `missing` (no process runs, and a
 *   stopped component whose container was removed wants nothing more);
 * - `paused`, `restarting` and `unknown` meet neither;
 * - a component never observed yet has no drift: nothing is known to differ.
 */

import { splitContainerName } from '../core/naming.js';
import { imageVersion } from '../core/spec.js';
import {
  type DesiredStateName,
  desiredStateToProto,
  type ObservedStateName,
  observedStateToProto,
} from '../core/states.js';
import type { Drift } from '../gen/mcp/v1/mcp.js';
import type { Registry } from '../registry/db.js';
import { TRANSITION_EVENT_KIND } from '../registry/events.js';
import type { ServiceRecord } from '../registry/services.js';
import type { ContainerSummary } from './runtime/index.js';

/** The rule above. undefined: nothing to compare (not managed, or never observed). */
export function isInDesiredState(
  desired: DesiredStateName,
  observed: ObservedStateName | undefined,
): boolean | undefined {
  if (desired === 'ignore' || observed === undefined) return undefined;
  if (desired === 'running') return observed === 'running';
  return observed === 'exited' || observed === 'created' || observed === 'missing';
}

/** The drifting components of a service, in definition order. */
export function driftOf(service: ServiceRecord): Drift[] {
  return service.components
    .filter((c) => isInDesiredState(c.desiredState, c.observedState) === false)
    .map((c) => ({
      service: service.name,
      component: c.name,
      desiredState: desiredStateToProto(c.desiredState),
      observedState: observedStateToProto(c.observedState),
    }));
}

export interface ObservedChange {
  service: string;
  component: string;
  previous: ObservedStateName | undefined;
  observed: ObservedStateName;
}

export interface Reconciliation {
  changes: ObservedChange[];
  /** Containers that are no component's container. */
  unmanaged: ContainerSummary[];
}

export interface ReconcileOptions {
  /** Only these services; all when undefined. Unmanaged containers are limited to names that split into them. */
  services?: readonly string[];
  /** Services to report but not write, e.g. while a deploy holds their lock and will record its own observation. */
  skip?: (service: string) => boolean;
}

/**
 * Brings the registry's observed state in line with one listing of every container: each
 * component's state (`missing` without a container), start time and version. Every change of
 * state is recorded as an `observed_state` event, all in one transaction. Shared by LiveCheck
 * and the monitor.
 */
export function reconcile(
  registry: Registry,
  containers: readonly ContainerSummary[],
  options: ReconcileOptions = {},
): Reconciliation {
  const byName = new Map(containers.map((c) => [c.name, c]));
  const all = registry.services.list();
  const wanted = options.services ? new Set(options.services) : undefined;
  const changes: ObservedChange[] = [];
  registry.transaction(() => {
    for (const service of all) {
      if (wanted && !wanted.has(service.name)) continue;
      if (options.skip?.(service.name)) continue;
      for (const component of service.components) {
        const container = byName.get(component.container);
        const observed = container?.state ?? 'missing';
        const previous = registry.services.setObservedState(service.name, component.name, {
          state: observed,
          ...(container?.startedAt ? { startedAt: container.startedAt } : {}),
          ...(container ? { version: imageVersion(container.image) } : {}),
        });
        if (previous === observed) continue;
        changes.push({ service: service.name, component: component.name, previous, observed });
        registry.events.record({
          service: service.name,
          component: component.name,
          kind: TRANSITION_EVENT_KIND,
          previousState: previous,
          observedState: observed,
          message: `${previous ?? 'not observed'} -> ${observed}${container ? '' : ` (no container ${component.container})`}`,
        });
      }
    }
  });
  const known = new Set(all.flatMap((s) => s.components.map((c) => c.container)));
  const names = all.map((s) => s.name);
  const unmanaged = containers.filter((c) => {
    if (known.has(c.name)) return false;
    if (!wanted) return true;
    const owner = splitContainerName(c.name, names)?.service;
    return owner !== undefined && wanted.has(owner);
  });
  return { changes, unmanaged };
}
