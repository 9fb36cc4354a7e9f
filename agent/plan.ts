/**
 * Plans: what a write would do, computed from the registry and one runtime listing, without
 * doing it. A write called with `dryRun` answers with its plan; one called with `planDigest`
 * recomputes the plan under the service's lock and acts only when the digest is the same, so a
 * human's yes to a plan is a yes to exactly that change on exactly that state.
 *
 * The digest covers the plan AND the state it was computed from (specs, recorded components,
 * observed container ids, images and states): a container stopped or replaced by someone else
 * between the question and the answer changes it even when the plan's words would not.
 *
 * The planning functions are pure (registry records and a listing in, a Plan out); `planGate`
 * is the one place a handler turns `dryRun` and `planDigest` into behaviour.
 */
import { createHash } from 'node:crypto';
import { FailedPreconditionError } from '../core/errors.js';
import { containerName, splitContainerName } from '../core/naming.js';
import { STALE_PLAN_MESSAGE } from '../core/plans.js';
import type { ObservedStateName } from '../core/states.js';
import type { ComponentSpec, Plan, PlannedChange, ServiceSpec } from '../gen/mcp/v1/mcp.js';
import type { ComponentRecord, ServiceRecord } from '../registry/services.js';
import { type WriteOnceOptions, writeOnce } from './service-locks.js';

/** What a plan needs of a container in the runtime's listing. */
export interface ObservedContainer {
  readonly name: string;
  readonly id: string;
  readonly image: string;
  readonly state: ObservedStateName;
}

/** The plan-relevant part of a component's definition: what a replacement would change. */
type Definition = Pick<ComponentSpec, 'image' | 'ports' | 'volumes' | 'env'>;

/** States in which a container holds a process (the same set as the handlers' `isLive`). */
const LIVE: ReadonlySet<ObservedStateName> = new Set(['running', 'paused', 'restarting', 'unknown']);

function change(fields: Partial<PlannedChange> & Pick<PlannedChange, 'component' | 'action'>): PlannedChange {
  return {
    container: '',
    imageBefore: '',
    imageAfter: '',
    running: false,
    ports: [],
    volumes: [],
    envKeys: [],
    fileSize: 0,
    fileSha256: '',
    ...fields,
  };
}

/** `+x` for what is added, `-x` for what is removed, in a stable order. */
function listDiff(before: readonly string[], after: readonly string[]): string[] {
  const was = new Set(before);
  const now = new Set(after);
  return [
    ...[...now].filter((x) => !was.has(x)).map((x) => `+${x}`),
    ...[...was].filter((x) => !now.has(x)).map((x) => `-${x}`),
  ].sort();
}

/** Env keys added (+), removed (-) or given another value (~). Values never leave this function. */
function envKeyDiff(
  before: Readonly<Record<string, string>>,
  after: Readonly<Record<string, string>>,
): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  const out: string[] = [];
  for (const key of keys) {
    if (!(key in before)) out.push(`+${key}`);
    else if (!(key in after)) out.push(`-${key}`);
    else if (before[key] !== after[key]) out.push(`~${key}`);
  }
  return out.sort();
}

function definitionDiff(before: Definition | undefined, after: Definition): Partial<PlannedChange> {
  return {
    ports: listDiff(before?.ports ?? [], after.ports),
    volumes: listDiff(before?.volumes ?? [], after.volumes),
    envKeys: envKeyDiff(before?.env ?? {}, after.env),
  };
}

/** The observed part of the state a plan depends on: only the containers it touches. */
function observedState(containers: readonly (ObservedContainer | undefined)[]): unknown[] {
  return containers.map((c) => (c ? { name: c.name, id: c.id, image: c.image, state: c.state } : null));
}

/** The recorded part: a component's definition and the states the agent keeps for it. */
function recordedState(c: ComponentRecord | undefined): unknown {
  if (!c) return null;
  return { name: c.name, ...definitionOf(c), desiredState: c.desiredState, container: c.container };
}

/** What a definition says of a component, recorded or given: compared and hashed alike. */
function definitionOf(c: ComponentRecord | ComponentSpec): Record<string, unknown> {
  return {
    image: c.image,
    network: c.network,
    user: c.user,
    restart: c.restart,
    ports: c.ports,
    volumes: c.volumes,
    cmd: c.cmd,
    env: c.env,
    envFiles: c.envFiles,
    healthCheck: c.healthCheck ?? null,
    init: c.init,
    stopTimeoutSeconds: c.stopTimeoutSeconds ?? null,
  };
}

/** JSON with object keys sorted at every level: one encoding per value, whatever built it. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === undefined) return null;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
      );
    }
    return v;
  });
}

/** The plan with its digest: SHA-256 over the canonical encoding of the changes and the state. */
export function sealPlan(kind: string, changes: PlannedChange[], state: unknown): Plan {
  const digest = createHash('sha256').update(canonicalJson({ kind, changes, state })).digest('hex');
  return { changes, digest };
}

function byName(containers: readonly ObservedContainer[]): Map<string, ObservedContainer> {
  return new Map(containers.map((c) => [c.name, c]));
}

export interface DeployPlanInput {
  service: string;
  /** The spec sent with the deploy; undefined for a deploy by name (the recorded one). */
  spec: ServiceSpec | undefined;
  /** Only this component; '' for all. */
  component: string;
}

/**
 * Deploy: each component's container is replaced (or created), from the image of the spec
 * given, else the recorded one. Components recorded as `ignore` are left out, as the handler does.
 */
export function planDeploy(
  input: DeployPlanInput,
  recorded: ServiceRecord | undefined,
  containers: readonly ObservedContainer[],
): Plan {
  const listed = byName(containers);
  const recordedOf = (name: string) => recorded?.components.find((c) => c.name === name);
  let targets: { name: string; container: string; definition: Definition }[];
  if (input.spec) {
    const count = input.spec.components.length;
    targets = input.spec.components.map((c) => ({
      name: c.name,
      container: recordedOf(c.name)?.container ?? containerName(input.service, c.name, count),
      definition: c,
    }));
  } else {
    targets = (recorded?.components ?? [])
      .filter((c) => c.desiredState !== 'ignore' || c.name === input.component)
      .map((c) => ({ name: c.name, container: c.container, definition: c }));
  }
  if (input.component) targets = targets.filter((t) => t.name === input.component);
  const changes = targets.map((t) => {
    const current = listed.get(t.container);
    const before = recordedOf(t.name);
    return change({
      component: t.name,
      action: current ? 'replace' : 'create',
      container: t.container,
      imageBefore: current?.image ?? before?.image ?? '',
      imageAfter: t.definition.image,
      running: current ? LIVE.has(current.state) : false,
      ...definitionDiff(before, t.definition),
    });
  });
  return sealPlan('deploy', changes, {
    service: input.service,
    spec: input.spec ?? null,
    recorded: recorded?.components.map(recordedState) ?? null,
    active: recorded?.active ?? null,
    observed: observedState(targets.map((t) => listed.get(t.container))),
  });
}

export type LifecycleOperation = 'stop' | 'start' | 'restart';

/** Stop, start, restart: what each targeted component's container would go through. */
export function planLifecycle(
  operation: LifecycleOperation,
  service: ServiceRecord,
  targets: readonly ComponentRecord[],
  containers: readonly ObservedContainer[],
): Plan {
  const listed = byName(containers);
  const changes = targets.map((t) => {
    const current = listed.get(t.container);
    const live = current ? LIVE.has(current.state) : false;
    let action: string;
    switch (operation) {
      case 'stop':
        action = live ? 'stop' : 'none';
        break;
      case 'start':
        action = current?.state === 'running' ? 'none' : current ? 'start' : 'create';
        break;
      case 'restart':
        action = current ? 'restart' : 'none';
        break;
    }
    return change({
      component: t.name,
      action,
      container: t.container,
      imageBefore: current?.image ?? '',
      imageAfter: current?.image ?? t.image,
      running: live,
    });
  });
  return sealPlan(operation, changes, {
    service: service.name,
    active: service.active,
    recorded: targets.map(recordedState),
    observed: observedState(targets.map((t) => listed.get(t.container))),
  });
}

/** Remove: every managed component's container goes; `ignore` ones are left running. */
export function planRemove(
  service: ServiceRecord,
  containers: readonly ObservedContainer[],
  purgeFiles: boolean,
): Plan {
  const listed = byName(containers);
  const changes = service.components.map((c) => {
    const current = listed.get(c.container);
    return change({
      component: c.name,
      action: c.desiredState === 'ignore' ? 'none' : 'remove',
      container: c.container,
      imageBefore: current?.image ?? '',
      running: current ? LIVE.has(current.state) : false,
    });
  });
  return sealPlan('remove', changes, {
    service: service.name,
    purgeFiles,
    recorded: service.components.map(recordedState),
    observed: observedState(service.components.map((c) => listed.get(c.container))),
  });
}

/**
 * Sync: each service whose definition would be created or changed (`record`); `running`
 * says its containers run now, so that a changed definition of a running service is asked about.
 */
export function planSync(
  specs: readonly ServiceSpec[],
  recorded: readonly ServiceRecord[],
  containers: readonly ObservedContainer[],
): Plan {
  const listed = byName(containers);
  const records = new Map(recorded.map((s) => [s.name, s]));
  const changes = specs.flatMap((spec) => {
    const before = records.get(spec.name);
    return spec.components.map((c) => {
      const was = before?.components.find((r) => r.name === c.name);
      const container = was?.container ?? containerName(spec.name, c.name, spec.components.length);
      const current = listed.get(container);
      const diff = definitionDiff(was, c);
      const same =
        was !== undefined &&
        canonicalJson(definitionOf(was)) === canonicalJson(definitionOf(c)) &&
        (before?.active ?? true) === (spec.active ?? true);
      return change({
        component: `${spec.name}/${c.name}`,
        action: same ? 'none' : 'record',
        container,
        imageBefore: was?.image ?? '',
        imageAfter: c.image,
        running: current ? LIVE.has(current.state) : false,
        ...diff,
      });
    });
  });
  return sealPlan('sync', changes, {
    specs,
    recorded: specs.map((s) => records.get(s.name)?.components.map(recordedState) ?? null),
    observed: containers.map((c) => ({ name: c.name, id: c.id, image: c.image, state: c.state })),
  });
}

/** Adopt: containers named for the service that the registry does not manage yet. Nothing restarts. */
export function planAdopt(
  service: string,
  recorded: readonly ServiceRecord[],
  containers: readonly ObservedContainer[],
): Plan {
  const names = [...new Set([...recorded.map((s) => s.name), service])];
  const owners = new Map(recorded.flatMap((s) => s.components.map((c) => [c.container, c] as const)));
  const matches = containers.filter((c) => {
    const owner = owners.get(c.name);
    return owner ? owner.service === service : splitContainerName(c.name, names)?.service === service;
  });
  const changes = matches.map((m) => {
    const owner = owners.get(m.name);
    return change({
      component: owner?.name ?? splitContainerName(m.name, names)?.component ?? m.name,
      action: owner && owner.desiredState !== 'ignore' ? 'none' : 'adopt',
      container: m.name,
      imageBefore: m.image,
      imageAfter: m.image,
      running: LIVE.has(m.state),
    });
  });
  return sealPlan('adopt', changes, { service, observed: observedState(matches) });
}

/** The file a push would replace, as it is now; undefined when there is none. */
export interface ExistingFile {
  size: number;
  sha256: string;
}

/** Push: the file is created, or overwritten (its size and digest now, so the human sees what goes). */
export function planPush(
  service: string,
  path: string,
  existing: ExistingFile | undefined,
  sha256: string,
): Plan {
  const changes = [
    change({
      component: path,
      action: existing ? (existing.sha256 === sha256 ? 'none' : 'overwrite') : 'create',
      fileSize: existing?.size ?? 0,
      fileSha256: existing?.sha256 ?? '',
    }),
  ];
  return sealPlan('push', changes, { service, path, existing: existing ?? null, sha256 });
}

/** What a write request says about planning. */
export interface PlanRequest {
  dryRun?: boolean | undefined;
  planDigest?: string | undefined;
}

/** Refuses when the state no longer gives the plan the caller confirmed. */
export function assertPlanCurrent(given: string | undefined, plan: Plan): void {
  if (given && given !== plan.digest) {
    throw new FailedPreconditionError(
      `${STALE_PLAN_MESSAGE} (confirmed plan ${given.slice(0, 12)}, now ${plan.digest.slice(0, 12)})`,
    );
  }
}

/**
 * The one place a write handler meets planning. A dry run computes the plan under the
 * service's lock and returns it, recording no result (its request id replays nothing later).
 * A write with `planDigest` recomputes the plan under the lock, refuses when it differs, and
 * acts; its result carries the plan it acted on. Any other write acts as before.
 */
export async function planGate<T extends { replayed: boolean; plan?: Plan | undefined }>(
  req: PlanRequest,
  options: WriteOnceOptions<T>,
  compute: () => Promise<Plan>,
  dryAnswer: (plan: Plan) => T,
  act: () => Promise<T>,
): Promise<T> {
  if (req.dryRun) {
    return options.locks.withLocks(options.services, async () => dryAnswer(await compute()), options.signal);
  }
  return writeOnce(options, async () => {
    if (!req.planDigest) return act();
    const plan = await compute();
    assertPlanCurrent(req.planDigest, plan);
    return { ...(await act()), plan };
  });
}
