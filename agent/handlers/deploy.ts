/**
 * Deploy: record a definition (or take the recorded one) and run its components.
 *
 * A deploy of one component: pull → stop the old container → keep it aside → run → inspect →
 * health gate → remove the old one, or roll back to it (agent/health.ts). The pull comes first
 * so that an image that cannot be pulled leaves the old container running. Components are deployed one after the other; one failing does not stop the
 * others. Once it holds the service's lock a deploy runs to the end even if the client goes
 * away, so its result is recorded for the retry the client will make with the same request id.
 * A client that cancels stops only the pulls before the first change to the node: once a
 * container is being replaced, the remaining components are deployed too, so that a service
 * is not left half on the old version because its client was closed.
 */
import { FailedPreconditionError, InvalidArgumentError, McpError, NotFoundError } from '../../core/errors.js';
import { previousContainerName } from '../../core/naming.js';
import { assertValidServiceSpec, imageVersion } from '../../core/spec.js';
import { desiredStateToProto } from '../../core/states.js';
import {
  type ComponentResult,
  type ComponentSpec,
  type DeployProgress,
  type DeployRequest,
  type DeployResponse,
  DeployResult,
  type ServiceSpec,
} from '../../gen/mcp/v1/mcp.js';
import { type ComponentRecord, type ServiceRecord, toServiceSpec } from '../../registry/services.js';
import { assertDeployAdmitted } from '../admission.js';
import { healthGate, resolveLeftover } from '../health.js';
import { planDeploy, planGate } from '../plan.js';
import type { ContainerSummary } from '../runtime/index.js';
import { assertEnvFilesReady, withEnvFiles } from '../secrets.js';
import type { CallContext, ServerStreamHandler } from '../server.js';
import {
  componentResult,
  failureLine,
  isComponentFailure,
  isLive,
  notRunningMessage,
  recordFailure,
  recordObservation,
  requireComponent,
  requireManaged,
  requireService,
  runSpecOf,
  type ServiceContext,
  shortId,
  stopContainer,
} from './context.js';

export interface DeployPlan {
  service: string;
  spec: ServiceSpec | undefined;
  component: string;
}

/** Checks a request before any lock or state is touched. */
export function checkDeployRequest(req: DeployRequest): DeployPlan {
  const { spec, service, component } = req;
  if (spec && service) {
    throw new InvalidArgumentError(
      `give either spec (to deploy and record a definition) or service (to redeploy the recorded one), not both`,
    );
  }
  if (!spec && !service) {
    throw new InvalidArgumentError(
      'give spec (a full definition) or service (the name of a recorded service)',
    );
  }
  if (spec) {
    assertValidServiceSpec(spec, `deploy of service '${spec.name}'`);
    if (component && !spec.components.some((c) => c.name === component)) {
      throw new NotFoundError(
        `the spec of service '${spec.name}' has no component '${component}' (it has: ${spec.components.map((c) => c.name).join(', ')})`,
      );
    }
    return { service: spec.name, spec, component };
  }
  return { service, spec: undefined, component };
}

type Progress = (step: Omit<DeployProgress, 'completed' | 'total'>) => Promise<void>;

export function deployHandler(sc: ServiceContext): ServerStreamHandler<DeployRequest, DeployResponse> {
  return async (req, ctx, send) => {
    const plan = checkDeployRequest(req);
    const emit = toClient(send, ctx);
    const result = await planGate(
      req,
      {
        locks: sc.locks,
        requestResults: sc.deps.registry.requestResults,
        services: [plan.service],
        rpc: 'Deploy',
        requestId: req.requestId,
        codec: DeployResult,
        signal: ctx.signal,
      },
      async () => planDeploy(plan, sc.deps.registry.services.get(plan.service), await sc.deps.runtime.list()),
      (planned) => ({ service: plan.service, components: [], replayed: false, plan: planned }),
      async () => rememberIfDeployed(sc, await deployLocked(sc, plan, emit, ctx.signal)),
    );
    await emit({ result });
  };
}

/** A deploy in which no component failed is the service's newest definition for rollback_service. */
function rememberIfDeployed(sc: ServiceContext, result: DeployResult): DeployResult {
  if (result.components.every((c) => c.ok)) {
    const { services } = sc.deps.registry;
    services.recordDeployedSpec(toServiceSpec(services.require(result.service)));
  }
  return result;
}

export async function deployLocked(
  sc: ServiceContext,
  plan: DeployPlan,
  emit: (msg: DeployResponse) => Promise<void>,
  signal: AbortSignal,
): Promise<DeployResult> {
  const { registry, runtime } = sc.deps;
  assertDeployAdmitted(sc.deps, plan); // before anything is recorded or run (agent/admission.ts)
  await assertEnvFilesReady(sc.deps, plan); // likewise: a missing or unsafe env file changes nothing
  // One listing up front: it says which containers exist, and a missing runtime fails the
  // call here, before the spec is recorded.
  const existing = new Map((await runtime.list()).map((c) => [c.name, c]));

  let service: ServiceRecord;
  let names: string[];
  const recordedBefore = registry.services.get(plan.service);
  const isNewService = plan.spec !== undefined && recordedBefore === undefined;
  // What a component rolled back to is recorded again as its spec.
  const specBefore = new Map(
    (recordedBefore ? toServiceSpec(recordedBefore).components : []).map((c) => [c.name, c]),
  );
  if (plan.spec) {
    registry.services.upsert(plan.spec);
    service = registry.services.require(plan.service);
    names = plan.spec.components.map((c) => c.name);
  } else {
    service = requireService(sc, plan.service, 'deploy it with a full spec, or sync its definition first');
    names = service.components.filter((c) => c.desiredState !== 'ignore').map((c) => c.name);
  }
  if (plan.component) {
    requireManaged(requireComponent(service, plan.component), 'deployed by name');
    names = [plan.component];
  }
  const targets = names.map((name) => requireComponent(service, name));

  const total = targets.length;
  let completed = 0;
  const results: ComponentResult[] = [];
  const rolledBack: string[] = [];
  const pulls = untilNodeChanges(signal);
  for (const target of targets) {
    const progress: Progress = (step) => emit({ progress: { ...step, completed, total } });
    const outcome = await deployComponent(sc, target, specBefore.get(target.name), existing, progress, pulls);
    completed += 1;
    const last = outcome.ok ? 'done' : 'failed';
    await progress({ service: target.service, component: target.name, step: last, message: outcome.message });
    results.push(outcome.result);
    if (outcome.rolledBack) rolledBack.push(`${target.name}: ${outcome.message}`);
  }
  if (rolledBack.length > 0) throw rollbackError(plan.service, rolledBack, results);
  if (isNewService && results.every((r) => !r.ok)) {
    // Nothing of it ever ran: it stays recorded (its events say why) but not as wanted
    // running, so the monitor raises no drift alert for a service that never was.
    registry.transaction(() => {
      registry.services.setDesiredState(plan.service, 'stopped');
      registry.services.setActive(plan.service, false);
    });
    const stopped = desiredStateToProto('stopped');
    return {
      service: plan.service,
      components: results.map((r) => ({ ...r, desiredState: stopped })),
      replayed: false,
    };
  }
  return { service: plan.service, components: results, replayed: false };
}

/**
 * The error of a deploy in which a component was rolled back: the call fails (and its audit
 * outcome says so), while the old containers serve again.
 */
function rollbackError(
  service: string,
  rolledBack: readonly string[],
  results: readonly ComponentResult[],
): McpError {
  const others = results.filter((r) => !rolledBack.some((line) => line.startsWith(`${r.component}: `)));
  const rest = others.map((r) => `${r.component}: ${r.ok ? 'deployed' : r.error}`);
  return new FailedPreconditionError(
    `deploy of service '${service}' failed and was rolled back: ${rolledBack.join('; ')}` +
      (rest.length > 0 ? ` (other components: ${rest.join('; ')})` : ''),
  );
}

interface ComponentOutcome {
  ok: boolean;
  message: string;
  result: ComponentResult;
  /** The new container failed its gate and the old one serves again. */
  rolledBack?: boolean;
}

type Step = (stepName: string, message: string) => Promise<void>;

async function deployComponent(
  sc: ServiceContext,
  component: ComponentRecord,
  specBefore: ComponentSpec | undefined,
  listing: ReadonlyMap<string, ContainerSummary>,
  progress: Progress,
  pulls: PullCancellation,
): Promise<ComponentOutcome> {
  const { runtime, registry } = sc.deps;
  const { service, name, container, image } = component;
  const step: Step = (stepName, message) => progress({ service, component: name, step: stepName, message });
  const before = component.observedState;
  let kept: ContainerSummary | undefined;
  try {
    // A client that cancels stops the pull while nothing has changed on the node yet.
    await runtime.pull(image, { signal: pulls.signal() });
    pulls.nodeChanges();
    await step('pull', `pulled ${image}`);
    const current = await currentContainer(sc, component, listing, step);
    if (current) {
      if (isLive(current.state) && (await stopContainer(sc, component))) {
        await step('stop', `stopped ${container} (${shortId(current.id)}, was ${current.state})`);
      }
      if (component.desiredState === 'stopped') {
        await removeIfPresent(sc, container);
        await step('remove', `removed ${container} (${shortId(current.id)})`);
      } else {
        kept = await keepAside(sc, container, current);
        await step(
          'keep',
          `kept ${container} (${shortId(current.id)}) as ${kept.name} until the new one passes`,
        );
      }
    }
    if (component.desiredState === 'stopped') {
      // The service (or this component) is stopped on purpose: record the new definition
      // and leave nothing running. start_service runs it from the recorded spec.
      const { record } = recordObservation(sc, component, undefined);
      const message = `${name} is desired stopped, so it was not started: start_service runs ${image}`;
      registry.events.record({
        service,
        component: name,
        kind: 'deployed',
        previousState: before,
        observedState: 'missing',
        message,
      });
      return { ok: true, message, result: componentResult(record) };
    }
    const id = await withEnvFiles(sc.deps.config.files.root, service, component, (envFiles) =>
      runtime.run({ ...runSpecOf(component), envFiles }),
    );
    await step('run', `started ${container} (${shortId(id)}) from ${image}`);
    const details = await runtime.inspect(container);
    const { record } = recordObservation(sc, component, details, imageVersion(image));
    const state = record.observedState ?? 'missing';
    await step(
      'inspect',
      `${container} is ${state}${details?.startedAt ? ` since ${details.startedAt.toISOString()}` : ''}`,
    );
    if (state !== 'running' && !kept)
      throw new McpError('FAILED_PRECONDITION', notRunningMessage(container, state, runtime.kind));
    if (kept || component.healthCheck) {
      const verdict = await healthGate(runtime, container, component.healthCheck, kept !== undefined);
      if (!verdict.passed) throw new McpError('FAILED_PRECONDITION', verdict.reason);
      await step('health', `${container} ${component.healthCheck ? 'is healthy' : 'is still running'}`);
      recordObservation(sc, component, verdict.details, imageVersion(image));
    }
    if (kept) await removeIfPresent(sc, kept.name);
    const message = `deployed ${image} as ${container} (${shortId(id)})`;
    registry.events.record({
      service,
      component: name,
      kind: 'deployed',
      previousState: before,
      observedState: state,
      message,
    });
    return { ok: true, message, result: componentResult(record) };
  } catch (err) {
    if (kept && err instanceof McpError) {
      return rollBack(sc, component, specBefore, kept, before, failureLine(err), step);
    }
    if (!isComponentFailure(err)) throw err;
    const record = await recordFailure(sc, component, before, 'deploy_failed', err);
    const line = failureLine(err);
    return { ok: false, message: line, result: componentResult(record, line) };
  }
}

/** The signal that cancels a deploy's pulls, until the deploy starts to change the node. */
interface PullCancellation {
  signal(): AbortSignal | undefined;
  /** From now on nothing cancels the deploy. */
  nodeChanges(): void;
}

function untilNodeChanges(signal: AbortSignal): PullCancellation {
  let changing = false;
  return {
    signal: () => (changing ? undefined : signal),
    nodeChanges: () => {
      changing = true;
    },
  };
}

/**
 * What holds the component's container name now, after resolving a kept container an
 * interrupted deploy left behind (the rule is `resolveLeftover` in agent/health.ts).
 */
async function currentContainer(
  sc: ServiceContext,
  component: ComponentRecord,
  listing: ReadonlyMap<string, ContainerSummary>,
  step: Step,
): Promise<ContainerSummary | undefined> {
  const { current, action } = await resolveLeftover(sc.deps.runtime, component, listing);
  if (action) await step('resolve', action);
  return current;
}

/** Renames the stopped old container out of the way; it comes back if the new one fails its gate. */
async function keepAside(
  sc: ServiceContext,
  container: string,
  current: ContainerSummary,
): Promise<ContainerSummary> {
  const name = previousContainerName(container);
  await sc.deps.runtime.rename(container, name);
  return { ...current, name };
}

/**
 * The new container failed: remove it, give the old one its name back, start it if it was
 * running. The component's result and event say why and which image serves again.
 */
async function rollBack(
  sc: ServiceContext,
  component: ComponentRecord,
  specBefore: ComponentSpec | undefined,
  kept: ContainerSummary,
  before: ComponentRecord['observedState'],
  reason: string,
  step: Step,
): Promise<ComponentOutcome> {
  const { runtime, registry } = sc.deps;
  const { container } = component;
  try {
    await removeIfPresent(sc, container);
    await runtime.rename(kept.name, container);
    if (isLive(kept.state)) await runtime.start(container);
  } catch (err) {
    throw new McpError(
      'FAILED_PRECONDITION',
      `${component.service}/${component.name}: ${reason}; rolling back to ${kept.image} failed: ${err instanceof McpError ? failureLine(err) : String(err)}. ` +
        `The old container may be left as ${kept.name}: the next deploy or agent start restores it (RUNBOOK, "A leftover _previous container")`,
      { cause: err },
    );
  }
  const message = `${reason}; rolled back to ${kept.image}`;
  await step('rollback', message);
  // The old container runs again: so is its spec the recorded one (else it would be drift).
  if (specBefore)
    registry.services.upsertComponent(component.service, specBefore, {
      desiredState: component.desiredState,
    });
  const now = await runtime.inspect(container).catch(() => undefined);
  const { record } = recordObservation(sc, component, now, now ? imageVersion(now.image) : undefined);
  sc.deps.log.warn('deploy rolled back', { service: component.service, component: component.name, reason });
  registry.events.record({
    service: component.service,
    component: component.name,
    kind: 'deploy_failed',
    previousState: before,
    observedState: record.observedState ?? 'missing',
    message,
  });
  return { ok: false, message, result: componentResult(record, message), rolledBack: true };
}

async function removeIfPresent(sc: ServiceContext, container: string): Promise<void> {
  try {
    // Forced: a container that did not stop in time is killed rather than left holding the name.
    await sc.deps.runtime.remove(container, { force: true });
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
}

/**
 * Sends to the client while it is there. A client that cancelled or went away stops
 * receiving, but the deploy goes on: its result is recorded for the retry.
 */
function toClient<T>(send: (msg: T) => Promise<void>, ctx: CallContext): (msg: T) => Promise<void> {
  let gone = false;
  const cancelled = new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  return async (msg) => {
    if (gone || ctx.signal.aborted) return;
    try {
      // A cancelled stream may never drain: do not wait for it.
      await Promise.race([send(msg), cancelled]);
    } catch (err) {
      gone = true;
      ctx.log.info('deploy continues without its client', { error: String(err) });
    }
  };
}
