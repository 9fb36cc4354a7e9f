/**
 * The agent process put together: config → registry → runtime → identity → handlers →
 * gRPC server → monitor. `main.ts` parses the command line and calls `startAgent`; the
 * test harness calls it too, so tests run the same assembly as production.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { callerIssuerOf, createAuthenticator } from '../core/auth/authenticator.js';
import { issuerId } from '../core/auth/issuers.js';
import { createLogger, type Logger } from '../core/log.js';
import { PACKAGE_VERSION } from '../core/version.js';
import { openRegistry, type Registry } from '../registry/db.js';
import { repairAuditTriggers } from '../registry/migrations.js';
import { Rbac } from './auth/rbac.js';
import type { AgentConfig } from './config.js';
import { sweepLeftovers } from './files/write.js';
import { createHandlers } from './handlers/index.js';
import { resolveLeftoversAtStart } from './health.js';
import { startMonitor } from './monitor/index.js';
import { createRuntime } from './runtime/index.js';
import { type AgentHandlers, startAgentServer } from './server.js';
import { ServiceLocks } from './service-locks.js';

export interface RunningAgent {
  readonly port: number;
  readonly registry: Registry;
  /** Stop serving (in-flight calls get the configured grace), stop the monitor, close the database. */
  stop(): Promise<void>;
}

export interface StartAgentOptions {
  log?: Logger;
  /** Replace handlers, for tests of the guard itself. */
  handlers?: Partial<AgentHandlers>;
}

/**
 * Bindings name an issuer as the config does (JWT issuer URL, or MCIAS issuer name); callers
 * carry the issuer as the verifier reports it. Translate once, here.
 */
function rbacFromConfig(config: AgentConfig): Rbac {
  const bindings = config.rbac.bindings.map((b) => {
    const issuer = config.issuers.find((i) => issuerId(i) === b.issuer);
    return { ...b, issuer: issuer ? callerIssuerOf(issuer) : b.issuer };
  });
  return new Rbac({ roles: config.rbac.roles, bindings, node: config.nodeName });
}

/**
 * Puts back append-only triggers someone dropped or replaced. Loud, because only someone with
 * write access to the database file can do that: the audit log may have been edited meanwhile.
 */
function checkAuditTriggers(registry: Registry, log: Logger): void {
  try {
    const repaired = repairAuditTriggers(registry.db);
    if (repaired.length > 0) {
      log.error(
        'audit log triggers were missing or altered and have been recreated: the database was modified outside the agent; run mcp-agent audit verify with your anchors',
        {
          triggers: repaired,
        },
      );
    }
  } catch (err) {
    log.error('audit log triggers could not be checked', { error: String(err) });
  }
}

/** One line holding the chain head as `--anchor` takes it. */
function logAuditHead(registry: Registry, log: Logger, when: 'start' | 'interval' | 'shutdown'): void {
  const head = registry.audit.head();
  log.info('audit head', { when, seq: head.seq, hash: head.hash, anchor: `${head.seq}:${head.hash}` });
}

export async function startAgent(config: AgentConfig, opts: StartAgentOptions = {}): Promise<RunningAgent> {
  const log = opts.log ?? createLogger({ level: config.logLevel, base: { node: config.nodeName } });
  const startedAt = new Date();
  // Fail on identity and TLS before touching any state.
  const authenticator = createAuthenticator(config.issuers);
  const authorizer = rbacFromConfig(config);
  const tls = {
    certPem: readFileSync(config.server.tlsCert),
    keyPem: readFileSync(config.server.tlsKey),
    clientCaPem: config.server.clientCa ? readFileSync(config.server.clientCa) : undefined,
  };

  mkdirSync(dirname(config.database), { recursive: true, mode: 0o700 });
  const registry = openRegistry(config.database);
  try {
    checkAuditTriggers(registry, log);
    logAuditHead(registry, log, 'start');
    const runtime = createRuntime(config.containerRuntime, config.runtimePath);
    const deps = { config, registry, runtime, log, startedAt, agentVersion: PACKAGE_VERSION };
    // One set of per-service locks: handlers write under them, the monitor skips a locked
    // service, so a container being replaced by a deploy is not reported as missing.
    const locks = new ServiceLocks();
    const handlers = { ...createHandlers(deps, { locks }), ...opts.handlers };
    const server = await startAgentServer({
      node: config.nodeName,
      listen: config.server.listen,
      tls,
      authenticator,
      authorizer,
      audit: registry.audit,
      handlers,
      log,
    });
    // Temp files of pushes killed with an earlier agent: nothing else is removed (files/write.ts).
    const swept = sweepLeftovers(config.files.root).then(
      (removed) => {
        if (removed.length > 0) log.warn('removed temp files of interrupted pushes', { files: removed });
      },
      (err: unknown) => log.warn('could not sweep temp files of interrupted pushes', { error: String(err) }),
    );
    // A container a deploy kept aside when an earlier agent died mid-gate (agent/health.ts).
    void resolveLeftoversAtStart({ registry, runtime, locks, log }).catch((err: unknown) =>
      log.warn('could not look for containers kept by interrupted deploys', { error: String(err) }),
    );
    // Anchors in the journal, off the database: see `mcp-agent audit verify --anchor`.
    const anchorTimer = setInterval(() => {
      checkAuditTriggers(registry, log);
      logAuditHead(registry, log, 'interval');
    }, config.audit.anchorIntervalSeconds * 1000);
    anchorTimer.unref();
    const monitor = config.monitor.enabled
      ? startMonitor({
          config,
          registry,
          runtime,
          log,
          isBusy: (service) => locks.isLocked(service),
          writesSince: () => locks.writesSince(),
        })
      : undefined;
    log.info('agent started', {
      listen: config.server.listen,
      port: server.port,
      database: config.database,
      runtime: config.containerRuntime,
      monitor: Boolean(monitor),
      version: PACKAGE_VERSION,
    });
    let stopping: Promise<void> | undefined;
    return {
      port: server.port,
      registry,
      stop: () => {
        stopping ??= (async () => {
          log.info('agent stopping');
          await server.shutdown(config.server.shutdownGraceSeconds * 1000);
          await monitor?.stop();
          await swept;
          clearInterval(anchorTimer);
          logAuditHead(registry, log, 'shutdown');
          registry.close();
          log.info('agent stopped');
        })();
        return stopping;
      },
    };
  } catch (err) {
    registry.close();
    throw err;
  }
}
