import type { AgentHandlers } from '../server.js';
import { auditHandlers } from './audit.js';
import type { HandlerDeps } from './deps.js';
import { fileHandlers } from './files.js';
import { type ServiceHandlerOptions, serviceHandlers } from './services.js';

/**
 * Every RPC's handler. The return type is derived from the generated service, so a handler
 * missing here does not compile; the server still checks at start.
 */
export function createHandlers(deps: HandlerDeps, options: ServiceHandlerOptions = {}): AgentHandlers {
  return { ...serviceHandlers(deps, options), ...fileHandlers(deps), ...auditHandlers(deps) };
}

export type { HandlerDeps } from './deps.js';
