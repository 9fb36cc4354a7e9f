/**
 * The connector put together from its config: agent pool, router, token source, and the
 * tools. `mcp-connector` serves it over stdio or HTTP; the `mcp` CLI calls it in-process.
 * Without a config it runs the embedded single-node setup (connector/local-fleet.ts), whose
 * agent is found or started on the first tool call.
 */

import type { Logger } from '../core/log.js';
import { PACKAGE_VERSION } from '../core/version.js';
import type { ToolDefinition } from '../gen/tool-catalog.js';
import type { AgentPool } from './agent-client.js';
import type { AuditReviewContext } from './audit-review.js';
import { type ConnectorConfig, loadConnectorConfig, type NodeConfig } from './config.js';
import type { ConnectorTools, ConnectorToolsOptions } from './mcp-server.js';
import type { Fleet, Router } from './routing.js';
import type { BearerSource } from './tokens.js';

export interface ConnectorSetup {
  /** The config file, or the local setup's directory when `localHome` is set. */
  configFile: string;
  localHome?: string;
  /** Overrides `[files] local_dir`: the `mcp` CLI moves a file the operator named on its own. */
  localDir?: string;
  tools: readonly ToolDefinition[];
  log: Logger;
}

/**
 * The connector without its MCP server: config, router and token. The `mcp` CLI's reads call
 * the tools on it directly (connector/read-call.ts); the MCP SDK is loaded with `ConnectorTools`.
 */
export interface ConnectorCore {
  readonly config: ConnectorConfig;
  readonly ownToken: BearerSource;
  /** What `ConnectorTools` is built from: the tools, the router, the token, the settings. */
  readonly toolsOptions: ConnectorToolsOptions;
  /** The fleet, its agent connections and the connector's own token, for `mcp audit`. */
  auditReview(): Promise<AuditReviewContext>;
  close(): Promise<void>;
}

export interface Connector extends ConnectorCore {
  readonly tools: ConnectorTools;
}

export async function startConnector(setup: ConnectorSetup): Promise<Connector> {
  const core = await openConnector(setup);
  const { ConnectorTools } = await import('./mcp-server.js');
  return { ...core, tools: new ConnectorTools(core.toolsOptions) };
}

export async function openConnector(setup: ConnectorSetup): Promise<ConnectorCore> {
  const { log } = setup;
  // The local setup carries a whole agent: loaded only when there is no config.
  const local = setup.localHome
    ? (await import('./local-fleet.js')).openLocalFleet(setup.localHome, log)
    : undefined;
  const loaded = local?.config ?? (await loadConnectorConfig(setup.configFile));
  const config =
    setup.localDir === undefined
      ? loaded
      : { ...loaded, files: { ...loaded.files, localDir: setup.localDir } };
  const routing = lazyRouting(config, log, local?.node);
  // Token sources (OAuth, token files, JWT decoding) are the fleet's: the local setup signs its own.
  const ownToken = local?.bearer ?? (await import('./tokens.js')).createBearerSource(config);
  const toolsOptions: ConnectorToolsOptions = {
    tools: setup.tools,
    router: routing.router,
    // In authenticated HTTP mode the caller's token goes on; otherwise the connector's own.
    bearerFor: async (authInfo) => authInfo?.token ?? ownToken.token(),
    servicesDir: config.servicesDir,
    localDir: config.files.localDir,
    version: PACKAGE_VERSION,
    log,
    confirm: config.confirm,
    configFile: config.configFile,
  };
  log.info('mcp-connector starting', {
    version: PACKAGE_VERSION,
    config: config.configFile,
    nodes: local
      ? ['local (its agent found on the first tool call)']
      : config.nodes.map((n) => `${n.name}=${n.address}`),
    tools: setup.tools.map((t) => t.name),
    token: ownToken.description,
  });
  if (!local && config.nodes.length === 0) {
    log.warn(`no [[nodes]] in ${config.configFile}: every tool call will fail until one is added`);
  }
  return {
    config,
    ownToken,
    toolsOptions,
    auditReview: async () => ({ ...(await routing.agents()), bearer: ownToken }),
    close: async () => {
      await routing.close();
      await local?.stop();
    },
  };
}

/**
 * The agent pool and the router, with grpc-js, TLS and the codecs under them, loaded on the
 * first tool call: `initialize` and `tools/list` need none of it, and an AI client waits for
 * them before its first call. A node's unreadable ca_file shows on that call. The local
 * setup's one node (`localNode`) is found then too: its agent is found or started, and a
 * failure there is that call's error, tried again on the next call.
 */
function lazyRouting(config: ConnectorConfig, log: Logger, localNode?: () => Promise<NodeConfig>) {
  let loaded: Promise<{ pool: AgentPool; router: Router; fleet: Fleet }> | undefined;
  const load = () => {
    loaded ??= Promise.all([import('./agent-client.js'), import('./routing.js'), localNode?.()]).then(
      ([{ AgentPool }, { Router, Fleet }, node]) => {
        const routed = node ? { ...config, nodes: [node] } : config;
        const pool = new AgentPool(routed.nodes, { log });
        return { pool, router: new Router(routed, pool, log), fleet: new Fleet(routed) };
      },
    );
    const attempt = loaded;
    attempt.catch(() => {
      if (loaded === attempt) loaded = undefined;
    });
    return attempt;
  };
  const router: Pick<Router, 'call'> = {
    call: async (tool, args, ctx) => (await load()).router.call(tool, args, ctx),
  };
  return {
    router,
    agents: async () => {
      const { fleet, pool } = await load();
      return { fleet, pool };
    },
    close: async () => (await loaded?.catch(() => undefined))?.pool.close(),
  };
}
