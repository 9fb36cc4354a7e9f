/**
 * StopService, StartService, RestartService: on the whole service or one component.
 *
 * - stop: desired state → stopped (and `active = false` for a whole-service stop), then stop
 *   the containers; they are kept.
 * - start: desired state → running (and `active = true` for a whole-service start), then
 *   start the containers; one that is gone is run again from the recorded spec.
 * - restart: desired state unchanged; a component without a container fails (start it).
 *
 * The intent is recorded before the runtime acts, so the monitor never reports an operator's
 * stop as drift. Components act concurrently (a stop can take the whole stop timeout); a
 * whole-service operation leaves components with desired state `ignore` alone. Each component
 * gets an event (`stopped`, `started`, `restarted`, or `<op>_failed`) and a result with its
 * observed state afterwards.
 */
import { McpError } from '../../core/errors.js';
import type { DesiredStateName } from '../../core/states.js';
import {
  type ComponentResult,
  Plan,
  type RestartServiceRequest,
  RestartServiceResponse,
  type StartServiceRequest,
  StartServiceResponse,
  type StopServiceRequest,
  StopServiceResponse,
} from '../../gen/mcp/v1/mcp.js';
import type { ComponentRecord, ServiceRecord } from '../../registry/services.js';
import { assertComponentAdmitted } from '../admission.js';
import { type PlanRequest, planGate, planLifecycle } from '../plan.js';
import type { ContainerSummary } from '../runtime/index.js';
import { withEnvFiles } from '../secrets.js';
import type { CallContext, UnaryHandler } from '../server.js';
import type { MessageCodec } from '../service-locks.js';
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
  stopContainer,
  stopTimeoutFor,
} from './context.js';

type Operation = 'stop' | 'start' | 'restart';

interface LifecycleRequest extends PlanRequest {
  service: string;
  component: string;
  requestId: string;
}

interface LifecycleResponse {
  service: string;
  components: ComponentResult[];
  replayed: boolean;
  plan?: Plan | undefined;
}

const PAST: Record<Operation, string> = { stop: 'stopped', start: 'started', restart: 'restarted' };
/** What each operation records as the desired state and `active`; restart records nothing. */
const INTENT: Record<Operation, { desired: DesiredStateName; active: boolean } | undefined> = {
  stop: { desired: 'stopped', active: false },
  start: { desired: 'running', active: true },
  restart: undefined,
};

export function lifecycleHandlers(sc: ServiceContext): {
  stopService: UnaryHandler<StopServiceRequest, StopServiceResponse>;
  startService: UnaryHandler<StartServiceRequest, StartServiceResponse>;
  restartService: UnaryHandler<RestartServiceRequest, RestartServiceResponse>;
} {
  return {
    stopService: (req, ctx) => lifecycle(sc, 'stop', 'StopService', StopServiceResponse, req, ctx),
    startService: (req, ctx) => lifecycle(sc, 'start', 'StartService', StartServiceResponse, req, ctx),
    restartService: (req, ctx) =>
      lifecycle(sc, 'restart', 'RestartService', RestartServiceResponse, req, ctx),
  };
}

async function lifecycle<Res extends LifecycleResponse>(
  sc: ServiceContext,
  operation: Operation,
  rpc: string,
  codec: MessageCodec<Res>,
  req: LifecycleRequest,
  ctx: CallContext,
): Promise<Res> {
  const { registry, runtime } = sc.deps;
  return planGate(
    req,
    {
      locks: sc.locks,
      requestResults: registry.requestResults,
      services: [req.service],
      rpc,
      requestId: req.requestId,
      codec,
      signal: ctx.signal,
    },
    async () => {
      const service = requireService(sc, req.service, 'list_services shows the services it has');
      return planLifecycle(operation, service, targetsOf(service, operation, req), await runtime.list());
    },
    (plan) => codec.fromJSON({ service: req.service, plan: Plan.toJSON(plan) }),
    async () => {
      // The listing says which containers exist; a missing runtime fails here, before any state changes.
      const containers = new Map((await runtime.list()).map((c) => [c.name, c]));
      const service = requireService(sc, req.service, 'list_services shows the services it has');
      const targets = targetsOf(service, operation, req);

      const intent = INTENT[operation];
      if (intent) {
        registry.transaction(() => {
          for (const target of targets)
            registry.services.setDesiredState(service.name, intent.desired, target.name);
          if (!req.component) registry.services.setActive(service.name, intent.active);
        });
      }
      const components = await Promise.all(
        targets.map(async (target) => {
          const current = registry.services.getComponent(service.name, target.name) ?? target;
          return act(sc, operation, current, containers.get(target.container));
        }),
      );
      return { service: service.name, components, replayed: false } as Res;
    },
  );
}

/** The components an operation acts on: the one named, else every managed one. */
function targetsOf(service: ServiceRecord, operation: Operation, req: LifecycleRequest): ComponentRecord[] {
  return req.component
    ? [requireManaged(requireComponent(service, req.component), PAST[operation])]
    : service.components.filter((c) => c.desiredState !== 'ignore');
}

async function act(
  sc: ServiceContext,
  operation: Operation,
  component: ComponentRecord,
  current: ContainerSummary | undefined,
): Promise<ComponentResult> {
  const { runtime, registry } = sc.deps;
  const { service, name, container } = component;
  const before = component.observedState;
  let message: string;
  try {
    message = await perform(sc, operation, component, current);
    const details = await runtime.inspect(container);
    const { record } = recordObservation(sc, component, details);
    const state = record.observedState ?? 'missing';
    if (operation !== 'stop' && state !== 'running') {
      throw new McpError('FAILED_PRECONDITION', notRunningMessage(container, state, runtime.kind));
    }
    registry.events.record({
      service,
      component: name,
      kind: PAST[operation],
      previousState: before,
      observedState: state,
      message,
    });
    return componentResult(record);
  } catch (err) {
    if (!isComponentFailure(err)) throw err;
    const record = await recordFailure(sc, component, before, `${operation}_failed`, err);
    return componentResult(record, failureLine(err));
  }
}

/** Does the runtime work of one operation on one component; says what it did. */
async function perform(
  sc: ServiceContext,
  operation: Operation,
  component: ComponentRecord,
  current: ContainerSummary | undefined,
): Promise<string> {
  const { runtime } = sc.deps;
  const { container } = component;
  switch (operation) {
    case 'stop':
      if (!current) return `no container ${container}: nothing to stop`;
      if (!isLive(current.state)) return `${container} was already ${current.state}`;
      return (await stopContainer(sc, component)) ? `stopped ${container}` : `${container} was gone`;
    case 'start':
      if (!current) {
        assertComponentAdmitted(sc.deps.config, component); // a spec recorded under a looser policy
        await withEnvFiles(sc.deps.config.files.root, component.service, component, (envFiles) =>
          runtime.run({ ...runSpecOf(component), envFiles }),
        );
        return `no container ${container}: ran it again from the recorded spec (${component.image})`;
      }
      if (current.state === 'running') return `${container} was already running`;
      await runtime.start(container);
      return `started ${container}`;
    case 'restart':
      if (!current) {
        throw new McpError(
          'FAILED_PRECONDITION',
          `no container ${container} to restart: start_service runs it again from its recorded spec`,
        );
      }
      await runtime.restart(container, { timeoutSeconds: stopTimeoutFor(sc, component) });
      return `restarted ${container}`;
  }
}
