/**
 * Where the registry meets the runtime, for LiveCheck and the monitor alike: one listing of
 * every container brought into the registry's observed state, and the drift rule.
 *
 * Drift: a managed component (desired `running` or `stopped`; `ignore` never drifts) that is
 * either
 * - in a state mismatch (reason `state`): its last observed state is not in its desired state:
 *   - desired `running` is met only by `running`;
 *   - desired `stopped` is met by `exited`, `created` and `missing` (no process runs, and a
 *     stopped component whose container was removed wants nothing more);
 *   - `paused`, `restarting` and `unknown` meet neither;
 * - or running a stale image (reason `image`): desired and observed `running`, but the
 *   container was created from another image than the one the registry records (a deploy
 *   killed between its components leaves exactly that). See `sameImage` for what "another" means.
 * A component never observed yet has no drift: nothing is known to differ.
 */

import { splitContainerName } from '../core/naming.js';
import { imageVersion } from '../core/spec.js';
import {
  type DesiredStateName,
  desiredStateToProto,
  type ObservedStateName,
  observedStateToProto,
} from '../core/states.js';
import { type Drift, DriftReason } from '../gen/mcp/v1/mcp.js';
import type { Registry } from '../registry/db.js';
import { TRANSITION_EVENT_KIND } from '../registry/events.js';
import {
  type ComponentRecord,
  changesObservation,
  type Observation,
  type ServiceRecord,
} from '../registry/services.js';
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

export type DriftReasonName = 'state' | 'image';

/** Why the component drifts by the rule above, or undefined when it does not. */
export function driftReasonOf(
  component: Pick<ComponentRecord, 'desiredState' | 'observedState' | 'image' | 'observedImage'>,
): DriftReasonName | undefined {
  const inState = isInDesiredState(component.desiredState, component.observedState);
  if (inState === false) return 'state';
  if (
    inState === true &&
    component.observedState === 'running' &&
    component.observedImage !== '' &&
    !sameImage(component.image, component.observedImage)
  ) {
    return 'image';
  }
  return undefined;
}

/** The drifting components of a service, in definition order. */
export function driftOf(service: ServiceRecord): Drift[] {
  return service.components.flatMap((c) => {
    const reason = driftReasonOf(c);
    if (reason === undefined) return [];
    return [
      {
        service: service.name,
        component: c.name,
        desiredState: desiredStateToProto(c.desiredState),
        observedState: observedStateToProto(c.observedState),
        reason: reason === 'image' ? DriftReason.DRIFT_REASON_IMAGE : DriftReason.DRIFT_REASON_STATE,
        desiredImage: c.image,
        runningImage: c.observedImage,
      },
    ];
  });
}

interface ImageReference {
  /** '' when unqualified (`bb:v1`); `docker.io` for Docker Hub however it was spelled. */
  domain: string;
  path: string;
  tag: string;
  digest: string;
}

const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

function parseImageReference(reference: string): ImageReference {
  const at = reference.indexOf('@');
  let name = at === -1 ? reference : reference.slice(0, at);
  const digest = at === -1 ? '' : reference.slice(at + 1).toLowerCase();
  let tag = '';
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  // As in the distribution spec: the first part names a registry when it has a dot or a port, or is localhost.
  const qualified = first !== '' && (first === 'localhost' || first.includes('.') || first.includes(':'));
  let domain = qualified ? first.toLowerCase() : '';
  let path = qualified ? name.slice(slash + 1) : name;
  if (DOCKER_HUB.has(domain)) {
    domain = 'docker.io';
    if (path.startsWith('library/') && path.split('/').length === 2) path = path.slice('library/'.length);
  }
  return { domain, path, tag: tag === '' && digest === '' ? 'latest' : tag, digest };
}

/**
 * Whether the registry's image reference and the one the runtime lists name the same image.
 * References are compared, not image ids: the registry records what was asked for, and
 * podman's listing shows the reference a container was created from, not what the tag points
 * at now (so a tag moved to new content after the run is not drift here). Spellings that
 * name the same thing match:
 * - an unqualified name (`bb:v1`) matches it on Docker Hub (`docker.io/library/bb:v1`) and
 *   in local storage (`localhost/bb:v1`, podman's name for it); two qualified names must name
 *   the same registry;
 * - no tag and no digest means `latest`;
 * - with a digest on either side the digests decide, and both sides need one (a digest-pinned
 *   deploy lists with its digest; a tag alone proves nothing about the content).
 */
export function sameImage(desired: string, running: string): boolean {
  const a = parseImageReference(desired);
  const b = parseImageReference(running);
  if (a.path !== b.path) return false;
  if (a.domain !== b.domain) {
    const other = a.domain === '' ? b.domain : b.domain === '' ? a.domain : undefined;
    if (other !== 'docker.io' && other !== 'localhost') return false;
  }
  if (a.digest !== '' || b.digest !== '') return a.digest === b.digest;
  return a.tag === b.tag;
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
  // Read from the records just listed, in the same synchronous step: a check that finds
  // nothing changed (the common case) opens no write transaction at all.
  const observations: Array<{
    service: string;
    component: ComponentRecord;
    container: ContainerSummary | undefined;
    observation: Observation;
  }> = [];
  for (const service of all) {
    if (wanted && !wanted.has(service.name)) continue;
    if (options.skip?.(service.name)) continue;
    for (const component of service.components) {
      const container = byName.get(component.container);
      const observation: Observation = {
        state: container?.state ?? 'missing',
        ...(container?.startedAt ? { startedAt: container.startedAt } : {}),
        ...(container ? { version: imageVersion(container.image), image: container.image } : {}),
      };
      if (changesObservation(component, observation)) {
        observations.push({ service: service.name, component, container, observation });
      }
    }
  }
  const changes: ObservedChange[] = [];
  if (observations.length > 0) {
    registry.transaction(() => {
      for (const { service, component, container, observation } of observations) {
        const observed = observation.state;
        const previous = registry.services.setObservedState(service, component.name, observation);
        if (previous === observed) continue;
        changes.push({ service, component: component.name, previous, observed });
        registry.events.record({
          service,
          component: component.name,
          kind: TRANSITION_EVENT_KIND,
          previousState: previous,
          observedState: observed,
          message: `${previous ?? 'not observed'} -> ${observed}${container ? '' : ` (no container ${component.container})`}`,
        });
      }
    });
  }
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
