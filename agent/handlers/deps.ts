import type { Logger } from '../../core/log.js';
import type { Registry } from '../../registry/db.js';
import type { AgentConfig } from '../config.js';
import type { ContainerRuntime } from '../runtime/index.js';

/** What every handler may use. Handlers get nothing else: no globals, no process.env. */
export interface HandlerDeps {
  config: AgentConfig;
  registry: Registry;
  runtime: ContainerRuntime;
  log: Logger;
  /** When this agent process started. */
  startedAt: Date;
  agentVersion: string;
}
