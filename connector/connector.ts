/**
 * The connector put together from its config: agent pool, router, token source, and the
 * tools. `mcp-connector` serves it over stdio or HTTP; the `mcp` CLI calls it in-process.
 * Without a config it runs the embedded single-node setup (connector/local-fleet.ts).
 */

import type { Logger } from '../core/log.js';
import { PACKAGE_VERSION } from '../core/version.js';
import type { ToolDefinition } from '../tools.generated.js';
import { AgentPool } from './agent-client.js';
import { type ConnectorConfig, loadConnectorConfig } from './config.js';
import { startLocalFleet } from './local-fleet.js';
import { ConnectorTools } from './mcp-server.js';
import { Router } from './routing.js';
import { type BearerSource, createBearerSource } from './tokens.js';

export interface ConnectorSetup {
  /** The config file, or the local setup's directory when `localHome` is set. */
  configFile: string;
  localHome?: string;
  tools: readonly ToolDefinition[];
  log: Logger;
}

export interface Connector {
  readonly config: ConnectorConfig;
  readonly tools: ConnectorTools;
  readonly ownToken: BearerSource;
  close(): Promise<void>;
}

export async function startConnector(setup: ConnectorSetup): Promise<Connector> {
  const { log } = setup;
  const local = setup.localHome ? await startLocalFleet(setup.localHome, log) : undefined;
  const config = local?.config ?? (await loadConnectorConfig(setup.configFile));
  const pool = new AgentPool(config.nodes, { log });
  const ownToken = local?.bearer ?? createBearerSource(config);
  const tools = new ConnectorTools({
    tools: setup.tools,
    router: new Router(config, pool, log),
    // In authenticated HTTP mode the caller's token goes on; otherwise the connector's own.
    bearerFor: async (authInfo) => authInfo?.token ?? ownToken.token(),
    servicesDir: config.servicesDir,
    localDir: config.files.localDir,
    version: PACKAGE_VERSION,
    log,
    confirm: config.confirm,
    configFile: config.configFile,
  });
  log.info('mcp-connector starting', {
    version: PACKAGE_VERSION,
    config: config.configFile,
    nodes: config.nodes.map((n) => `${n.name}=${n.address}`),
    tools: setup.tools.map((t) => t.name),
    token: ownToken.description,
  });
  if (config.nodes.length === 0) {
    log.warn(`no [[nodes]] in ${config.configFile}: every tool call will fail until one is added`);
  }
  return {
    config,
    tools,
    ownToken,
    close: async () => {
      pool.close();
      await local?.stop();
    },
  };
}
