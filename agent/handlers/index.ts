/**
 * The composition root of the handlers: every RPC's handler, put together from the files that
 * implement them. Deploy (deploy.ts), Stop/Start/Restart (lifecycle.ts),
 * ListServices/LiveCheck/GetServiceStatus (observe.ts), NodeStatus (node.ts), SyncDesiredState
 * (sync.ts), AdoptContainers (adopt.ts), RemoveService (remove.ts), ServiceLogs (logs.ts),
 * RollbackService (rollback.ts), CheckUpdates (updates.ts), the file RPCs (files.ts) and the
 * audit RPCs (audit.ts).
 *
 * Every write (deploy, stop, start, restart, sync, adopt, remove, rollback) holds the per-service lock of the
 * services it changes and honours the request id (service-locks.ts).
 */
import type { AgentHandlers } from '../server.js';
import { ServiceLocks } from '../service-locks.js';
import { adoptHandler } from './adopt.js';
import { auditHandlers } from './audit.js';
import { type ServiceContext, STOP_TIMEOUT_SECONDS } from './context.js';
import { deployHandler } from './deploy.js';
import type { HandlerDeps } from './deps.js';
import { fileHandlers } from './files.js';
import { lifecycleHandlers } from './lifecycle.js';
import { logsHandler } from './logs.js';
import { nodeHandlers } from './node.js';
import { observeHandlers } from './observe.js';
import { removeHandler } from './remove.js';
import { rollbackHandler } from './rollback.js';
import { syncHandler } from './sync.js';
import { checkUpdatesHandler } from './updates.js';

export type ServiceHandlers = Pick<
  AgentHandlers,
  | 'deploy'
  | 'stopService'
  | 'startService'
  | 'restartService'
  | 'syncDesiredState'
  | 'listServices'
  | 'liveCheck'
  | 'getServiceStatus'
  | 'adoptContainers'
  | 'removeService'
  | 'serviceLogs'
  | 'nodeStatus'
  | 'rollbackService'
  | 'checkUpdates'
>;

export interface ServiceHandlerOptions {
  /**
   * The locks writes take. Pass the same instance to anything else that writes to services
   * (the monitor) so that it waits for, or skips, services being changed. Default: a new set.
   */
  locks?: ServiceLocks;
  /** Seconds between SIGTERM and SIGKILL when stopping a container. Default STOP_TIMEOUT_SECONDS. */
  stopTimeoutSeconds?: number;
}

export function serviceHandlers(deps: HandlerDeps, options: ServiceHandlerOptions = {}): ServiceHandlers {
  const sc: ServiceContext = {
    deps,
    locks: options.locks ?? new ServiceLocks(),
    stopTimeoutSeconds: options.stopTimeoutSeconds ?? STOP_TIMEOUT_SECONDS,
  };
  return {
    deploy: deployHandler(sc),
    ...lifecycleHandlers(sc),
    syncDesiredState: syncHandler(sc),
    ...observeHandlers(sc),
    adoptContainers: adoptHandler(sc),
    removeService: removeHandler(sc),
    serviceLogs: logsHandler(sc),
    ...nodeHandlers(sc),
    rollbackService: rollbackHandler(sc),
    checkUpdates: checkUpdatesHandler(sc),
  };
}

/**
 * Every RPC's handler. The return type is derived from the generated service, so a handler
 * missing here does not compile; the server still checks at start.
 */
export function createHandlers(deps: HandlerDeps, options: ServiceHandlerOptions = {}): AgentHandlers {
  return { ...serviceHandlers(deps, options), ...fileHandlers(deps), ...auditHandlers(deps) };
}
