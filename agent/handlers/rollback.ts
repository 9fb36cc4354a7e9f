/**
 * RollbackService: redeploy the definition a service ran before its newest one.
 *
 * The registry keeps the last SPEC_HISTORY_KEEP definitions deployed without failure
 * (registry/services.ts, `spec_history`); the newest is what runs now. A rollback deploys
 * the one before it, exactly as a deploy with that spec would (admission, health gate, keeping
 * the old containers until the new ones pass), and then forgets the newest, so a second
 * rollback goes one further back instead of returning to where the first one came from.
 */
import { FailedPreconditionError, InvalidArgumentError } from '../../core/errors.js';
import { type RollbackServiceRequest, RollbackServiceResponse } from '../../gen/mcp/v1/mcp.js';
import { planDeploy, planGate } from '../plan.js';
import type { UnaryHandler } from '../server.js';
import { requireService, type ServiceContext } from './context.js';
import { deployLocked } from './deploy.js';

export function rollbackHandler(
  sc: ServiceContext,
): UnaryHandler<RollbackServiceRequest, RollbackServiceResponse> {
  return async (req, ctx) => {
    if (!req.service) throw new InvalidArgumentError('give service: the name of the service to roll back');
    const service = req.service;
    return planGate(
      req,
      {
        locks: sc.locks,
        requestResults: sc.deps.registry.requestResults,
        services: [service],
        rpc: 'RollbackService',
        requestId: req.requestId,
        codec: RollbackServiceResponse,
        signal: ctx.signal,
      },
      // The plan of a rollback is the plan of deploying the previous definition.
      async () =>
        planDeploy(
          { service, spec: rollbackTarget(sc, service).previous.spec, component: '' },
          sc.deps.registry.services.get(service),
          await sc.deps.runtime.list(),
        ),
      (planned) => ({ service, components: [], replayed: false, deployedAt: undefined, plan: planned }),
      () => rollbackLocked(sc, service, ctx.signal),
    );
  };
}

/** The definition running now and the one before it, or why there is nothing to roll back to. */
function rollbackTarget(sc: ServiceContext, service: string) {
  requireService(sc, service, 'list_services shows the services it has');
  const [newest, previous] = sc.deps.registry.services.specHistory(service);
  if (!newest || !previous) {
    throw new FailedPreconditionError(
      `service '${service}' has no earlier definition on node ${sc.deps.config.nodeName} to roll back to: ` +
        'the node keeps the definitions of deploys in which no component failed, and has ' +
        `${newest ? 'only the current one' : 'none'}; deploy the version you want with its spec`,
    );
  }
  return { newest, previous };
}

async function rollbackLocked(
  sc: ServiceContext,
  service: string,
  signal: AbortSignal,
): Promise<RollbackServiceResponse> {
  const { services } = sc.deps.registry;
  const { newest, previous } = rollbackTarget(sc, service);
  // A deploy whose gate fails rolls its components back to what runs now and throws: the
  // history is left as it was.
  const result = await deployLocked(
    sc,
    { service, spec: previous.spec, component: '' },
    async () => {},
    signal,
  );
  if (result.components.every((c) => c.ok)) services.forgetDeployedSpec(newest.id);
  return { ...result, deployedAt: previous.deployedAt };
}
