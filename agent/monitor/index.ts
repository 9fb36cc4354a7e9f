/**
 * The monitor: every `monitor.interval_seconds`, one listing of every container, reconciled
 * into the registry by the same `reconcile` LiveCheck uses (a component without a container is
 * `missing`; each change of observed state is an `observed_state` event). Then alerts:
 *
 * - drift: a managed component is in drift (desired `running` and not running; desired
 *   `stopped` and running, paused, restarting or unknown; or running from another image than
 *   the recorded one: the rule of `driftReasonOf`, shared with live_check and service_status;
 *   the alert says which in MCP_DRIFT_REASON). Raised once per drift, when it starts or is first seen after
 *   the agent starts; a drift that starts inside the cooldown alerts when the cooldown ends,
 *   if it still lasts then;
 * - flap: a managed component made more than `flap_threshold` transitions within
 *   `flap_window_seconds` (counted from the events table), checked when it makes one.
 *
 * `ignore` components never alert. An alert of a given type for a given component is not
 * raised again within `cooldown_seconds`. Alerts are recorded as events and logged, and run
 * `monitor.alert_command` when one is configured. Once an hour (and at the first tick) events
 * and stored request results older than `event_retention_days` are pruned.
 *
 * Ticks never overlap; a tick whose runtime call fails is logged and the next one runs as
 * planned; `stop()` waits for a running tick (and the alert commands it started).
 */
import type { Logger } from '../../core/log.js';
import type { Registry } from '../../registry/db.js';
import type { AgentConfig } from '../config.js';
import { driftReasonOf, reconcile } from '../reconcile.js';
import type { ContainerRuntime } from '../runtime/index.js';
import { type Alert, inCooldown, recordAlert, runAlertCommand } from './alerts.js';

export type { Alert, AlertType } from './alerts.js';
export { alertEnvironment, alertEventKind } from './alerts.js';

const PRUNE_EVERY_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface MonitorOptions {
  /** Reads `nodeName` and the `monitor` section. */
  config: Pick<AgentConfig, 'nodeName' | 'monitor'>;
  registry: Registry;
  runtime: Pick<ContainerRuntime, 'list'>;
  log: Logger;
  /** The clock for alerts, cooldowns and pruning; tests inject one. */
  now?: () => Date;
  /**
   * Services a write is changing right now (a deploy holding their lock): left alone for this
   * tick, since their containers may be between a remove and a run, and the write records its
   * own observation.
   */
  isBusy?: (service: string) => boolean;
  /**
   * Called before the runtime is listed: whether a write to a service began since. Such a
   * service's listing may show it half changed (a deploy between stop and run, or its old
   * version), so that tick leaves it alone even when the write has ended meanwhile.
   */
  writesSince?: () => (service: string) => boolean;
}

export interface Monitor {
  /** Runs one tick now, or joins the one already running. Never rejects. */
  tick(): Promise<void>;
  /** No further ticks; resolves once the running one (if any) has finished. */
  stop(): Promise<void>;
}

/** Starts the periodic monitor: the first tick runs at once, the next ones `intervalSeconds` after each ends. */
export function startMonitor(options: MonitorOptions): Monitor {
  const monitor = new MonitorLoop(options);
  monitor.schedule(0);
  options.log.info('monitor started', {
    intervalSeconds: options.config.monitor.intervalSeconds,
    alertCommand: options.config.monitor.alertCommand?.[0] ?? null,
  });
  return { tick: () => monitor.tick(), stop: () => monitor.stop() };
}

/** The monitor without its timer: one tick at a time, on demand (for tests and tools). */
export function createMonitor(options: MonitorOptions): Monitor {
  const monitor = new MonitorLoop(options);
  return { tick: () => monitor.tick(), stop: () => monitor.stop() };
}

function componentKey(service: string, component: string): string {
  return `${service}/${component}`;
}

class MonitorLoop {
  private readonly settings: AgentConfig['monitor'];
  private readonly log: Logger;
  private readonly now: () => Date;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Components whose current drift has been alerted: a drift alerts once, not on every tick. */
  private readonly driftAlerted = new Set<string>();
  private lastPrune: number | undefined;
  private runtimeFailures = 0;

  constructor(private readonly options: MonitorOptions) {
    this.settings = options.config.monitor;
    this.log = options.log.child({ part: 'monitor' });
    this.now = options.now ?? (() => new Date());
  }

  schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tick().then(() => this.schedule(this.settings.intervalSeconds * 1000));
    }, delayMs);
    // The gRPC server keeps the agent alive; the monitor alone must not.
    this.timer.unref();
  }

  tick(): Promise<void> {
    if (this.stopped) return this.running ?? Promise.resolve();
    this.running ??= this.runTick()
      .catch((err: unknown) => {
        this.log.error('monitor tick failed; the next one runs as planned', { error: describe(err) });
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private async runTick(): Promise<void> {
    const { registry, runtime, isBusy, writesSince } = this.options;
    const writtenSince = writesSince?.();
    const skip = (service: string) => isBusy?.(service) === true || writtenSince?.(service) === true;
    let containers: Awaited<ReturnType<typeof runtime.list>>;
    try {
      containers = await runtime.list();
    } catch (err) {
      this.runtimeFailures += 1;
      this.log.warn('the container runtime did not answer; the next tick tries again', {
        error: describe(err),
        consecutiveFailures: this.runtimeFailures,
      });
      return;
    }
    if (this.runtimeFailures > 0) {
      this.log.info('the container runtime answers again', { after: this.runtimeFailures });
      this.runtimeFailures = 0;
    }
    const { changes } = reconcile(registry, containers, { skip });
    const now = this.now();
    for (const change of changes) {
      this.log.info('observed state changed', {
        service: change.service,
        component: change.component,
        previous: change.previous ?? null,
        observed: change.observed,
      });
    }
    const changed = new Set(changes.map((c) => componentKey(c.service, c.component)));
    const alerts = this.findAlerts(changed, now, skip);
    this.maybePrune(now);
    await Promise.all(alerts.map((alert) => this.raise(alert)));
  }

  private findAlerts(changed: ReadonlySet<string>, now: Date, isBusy: (service: string) => boolean): Alert[] {
    const { registry } = this.options;
    const { flapThreshold, flapWindowSeconds } = this.settings;
    const candidates: Alert[] = [];
    const stillDrifting = new Set<string>();
    const windowStart = new Date(now.getTime() - flapWindowSeconds * 1000);
    // Transitions are stamped by the wall clock; count up to whichever is later.
    const windowEnd = new Date(Math.max(now.getTime(), Date.now()) + 1);
    for (const service of registry.services.list()) {
      for (const component of service.components) {
        const key = componentKey(service.name, component.name);
        if (isBusy(service.name)) {
          // Decide again once the write is done; until then keep what was known.
          if (this.driftAlerted.has(key)) stillDrifting.add(key);
          continue;
        }
        if (component.desiredState === 'ignore') continue;
        const transitions = () =>
          registry.events.countTransitions(service.name, component.name, windowStart, windowEnd);
        const base = {
          node: this.options.config.nodeName,
          service: service.name,
          component: component.name,
          desired: component.desiredState,
          observed: component.observedState,
          time: now,
        };
        const reason = driftReasonOf(component);
        if (reason !== undefined) {
          stillDrifting.add(key);
          if (!this.driftAlerted.has(key)) {
            candidates.push({
              ...base,
              type: 'drift',
              transitions: transitions(),
              drift: { reason, desiredImage: component.image, runningImage: component.observedImage },
              message:
                reason === 'image'
                  ? `${service.name}/${component.name} runs image ${component.observedImage}, not the recorded ${component.image}: deploy it again`
                  : `${service.name}/${component.name} should be ${component.desiredState} but is ${component.observedState ?? 'unknown'}`,
            });
          }
        }
        if (changed.has(key)) {
          const count = transitions();
          if (count > flapThreshold) {
            candidates.push({
              ...base,
              type: 'flap',
              transitions: count,
              message: `${service.name}/${component.name} changed state ${count} times in the last ${flapWindowSeconds} s (more than ${flapThreshold})`,
            });
          }
        }
      }
    }
    for (const key of this.driftAlerted) if (!stillDrifting.has(key)) this.driftAlerted.delete(key);
    const alerts = candidates.filter((alert) => {
      if (!inCooldown(registry.events, alert, now, this.settings.cooldownSeconds)) return true;
      // A drift stays a candidate and alerts when the cooldown ends, if it still lasts then.
      this.log.debug('alert held back by the cooldown', {
        type: alert.type,
        service: alert.service,
        component: alert.component,
        cooldownSeconds: this.settings.cooldownSeconds,
      });
      return false;
    });
    for (const alert of alerts) {
      if (alert.type === 'drift') this.driftAlerted.add(componentKey(alert.service, alert.component));
    }
    return alerts;
  }

  private async raise(alert: Alert): Promise<void> {
    recordAlert(this.options.registry.events, alert);
    this.log.warn('alert', {
      type: alert.type,
      service: alert.service,
      component: alert.component,
      desired: alert.desired,
      observed: alert.observed ?? null,
      transitions: alert.transitions,
      ...(alert.drift ? { driftReason: alert.drift.reason, runningImage: alert.drift.runningImage } : {}),
      message: alert.message,
    });
    const command = this.settings.alertCommand;
    if (command) await runAlertCommand(command, alert, this.settings.alertTimeoutSeconds, this.log);
  }

  private maybePrune(now: Date): void {
    if (this.lastPrune !== undefined && now.getTime() - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now.getTime();
    const before = new Date(now.getTime() - this.settings.eventRetentionDays * DAY_MS);
    const { registry } = this.options;
    const events = registry.events.prune(before);
    const results = registry.requestResults.prune(before);
    if (events > 0 || results > 0) {
      this.log.info('pruned history', { before: before.toISOString(), events, requestResults: results });
    }
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
