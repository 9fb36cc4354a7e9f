/**
 * Deploy: record a definition (or take the recorded one) and run its components.
 *
 * A deploy of one component: pull → stop the old container → remove it → run → inspect.
 * The pull comes first so that an image that cannot be pulled leaves the old container
 * running. Components are deployed one after the other; one failing does not stop the
 * others. Once it holds the service's lock a deploy runs to the end even if the client goes
 * away, so its result is recorded for the retry the client will make with the same request id.
 */
import { InvalidArgumentError, McpError, NotFoundError } from '../../core/errors.js';
import { assertValidServiceSpec, imageVersion } from '../../core/spec.js';
import { desiredStateToProto } from '../../core/states.js';
import {
  type ComponentResult,
  type DeployProgress,
  type DeployRequest,
  type DeployResponse,
  DeployResult,
  type ServiceSpec,
} from '../../gen/mcp/v1/mcp.js';
import type { ComponentRecord, ServiceRecord } from '../../registry/services.js';
import { assertDeployAdmitted } from '../admission.js';
import { planDeploy, planGate } from '../plan.js';
import type { ContainerSummary } from '../runtime/index.js';
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

interface DeployPlan {
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
      () => deployLocked(sc, plan, emit, ctx.signal),
    );
    await emit({ result });
  };
}

async function deployLocked(
  sc: ServiceContext,
  plan: DeployPlan,
  emit: (msg: DeployResponse) => Promise<void>,
  signal: AbortSignal,
): Promise<DeployResult> {
  const { registry, runtime } = sc.deps;
  assertDeployAdmitted(sc.deps, plan); // before anything is recorded or run (agent/admission.ts)
  // One listing up front: it says which containers exist, and a missing runtime fails the
  // call here, before the spec is recorded.
  const existing = new Map((await runtime.list()).map((c) => [c.name, c]));

  let service: ServiceRecord;
  let names: string[];
  const isNewService = plan.spec !== undefined && registry.services.get(plan.service) === undefined;
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
  for (const target of targets) {
    const progress: Progress = (step) => emit({ progress: { ...step, completed, total } });
    const outcome = await deployComponent(sc, target, existing.get(target.container), progress, signal);
    completed += 1;
    const last = outcome.ok ? 'done' : 'failed';
    await progress({ service: target.service, component: target.name, step: last, message: outcome.message });
    results.push(outcome.result);
  }
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

async function deployComponent(
  sc: ServiceContext,
  component: ComponentRecord,
  current: ContainerSummary | undefined,
  progress: Progress,
  signal: AbortSignal,
): Promise<{ ok: boolean; message: string; result: ComponentResult }> {
  const { runtime, registry } = sc.deps;
  const { service, name, container, image } = component;
  const step = (stepName: string, message: string) =>
    progress({ service, component: name, step: stepName, message });
  const before = component.observedState;
  try {
    // A client that cancels stops the pull: nothing has changed on the node yet.
    await runtime.pull(image, { signal });
    await step('pull', `pulled ${image}`);
    if (current) {
      if (isLive(current.state) && (await stopContainer(sc, component))) {
        await step('stop', `stopped ${container} (${shortId(current.id)}, was ${current.state})`);
      }
      await removeIfPresent(sc, container);
      await step('remove', `removed ${container} (${shortId(current.id)})`);
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
    const id = await runtime.run(runSpecOf(component));
    await step('run', `started ${container} (${shortId(id)}) from ${image}`);
    const details = await runtime.inspect(container);
    const { record } = recordObservation(sc, component, details, imageVersion(image));
    const state = record.observedState ?? 'missing';
    await step(
      'inspect',
      `${container} is ${state}${details?.startedAt ? ` since ${details.startedAt.toISOString()}` : ''}`,
    );
    if (state !== 'running')
      throw new McpError('FAILED_PRECONDITION', notRunningMessage(container, state, runtime.kind));
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
    if (!isComponentFailure(err)) throw err;
    const record = await recordFailure(sc, component, before, 'deploy_failed', err);
    const line = failureLine(err);
    return { ok: false, message: line, result: componentResult(record, line) };
  }
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
