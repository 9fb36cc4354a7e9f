/**
 * Alerts the monitor raises, and how they leave the agent: the configured alert command, run
 * without a shell, with the alert in its environment. Every alert is also recorded as an event
 * (`drift_alert`, `flap_alert`) on its component; the cooldown is read back from those events,
 * so it survives a restart of the agent.
 */
import { execa } from 'execa';
import type { Logger } from '../../core/log.js';
import type { DesiredStateName, ObservedStateName } from '../../core/states.js';
import type { EventLog } from '../../registry/events.js';
import type { DriftReasonName } from '../reconcile.js';

export type AlertType = 'drift' | 'flap';

export interface Alert {
  type: AlertType;
  node: string;
  service: string;
  component: string;
  desired: DesiredStateName;
  observed: ObservedStateName | undefined;
  /** Observed-state transitions of the component within the flap window. */
  transitions: number;
  /** Drift alerts: why (state mismatch or stale image), with the image recorded and the one running. */
  drift?: { reason: DriftReasonName; desiredImage: string; runningImage: string };
  time: Date;
  /** One line for people. */
  message: string;
}

/** Event kind of a recorded alert. */
export function alertEventKind(type: AlertType): string {
  return `${type}_alert`;
}

/** Largest number of events read back to find the last alert within the cooldown. */
const COOLDOWN_LOOKBACK = 1000;

/** Whether an alert of this type was raised for the component within `cooldownSeconds` before `now`. */
export function inCooldown(
  events: EventLog,
  alert: Pick<Alert, 'type' | 'service' | 'component'>,
  now: Date,
  cooldownSeconds: number,
): boolean {
  if (cooldownSeconds <= 0) return false;
  const kind = alertEventKind(alert.type);
  const recent = events.query({
    service: alert.service,
    component: alert.component,
    since: new Date(now.getTime() - cooldownSeconds * 1000),
    until: new Date(now.getTime() + 1),
    limit: COOLDOWN_LOOKBACK,
  });
  return recent.some((event) => event.kind === kind);
}

export function recordAlert(events: EventLog, alert: Alert): void {
  events.record({
    service: alert.service,
    component: alert.component,
    kind: alertEventKind(alert.type),
    observedState: alert.observed,
    message: alert.message,
    time: alert.time,
  });
}

/**
 * The environment the alert command gets, on top of the agent's own. Drift alerts add
 * MCP_DRIFT_REASON (`state` or `image`), MCP_DESIRED_IMAGE and MCP_RUNNING_IMAGE.
 */
export function alertEnvironment(alert: Alert): Record<string, string> {
  return {
    MCP_ALERT_TYPE: alert.type,
    MCP_NODE: alert.node,
    MCP_SERVICE: alert.service,
    MCP_COMPONENT: alert.component,
    MCP_DESIRED_STATE: alert.desired,
    MCP_OBSERVED_STATE: alert.observed ?? 'unknown',
    MCP_TRANSITIONS: String(alert.transitions),
    MCP_TIMESTAMP: alert.time.toISOString(),
    MCP_MESSAGE: alert.message,
    ...(alert.drift
      ? {
          MCP_DRIFT_REASON: alert.drift.reason,
          MCP_DESIRED_IMAGE: alert.drift.desiredImage,
          MCP_RUNNING_IMAGE: alert.drift.runningImage,
        }
      : {}),
  };
}

const STDERR_SHOWN = 2000;

/**
 * Runs the alert command for one alert. Never throws: a command that fails, cannot start or
 * outlives its timeout is logged as an error, and the monitor goes on.
 */
export async function runAlertCommand(
  argv: readonly string[],
  alert: Alert,
  timeoutSeconds: number,
  log: Logger,
): Promise<void> {
  const [file, ...args] = argv;
  if (file === undefined) return;
  const fields = { type: alert.type, service: alert.service, component: alert.component, command: file };
  try {
    const result = await execa(file, args, {
      env: alertEnvironment(alert),
      timeout: timeoutSeconds * 1000,
      // A command that ignores SIGTERM at its timeout gets SIGKILL this much later.
      forceKillAfterDelay: 2000,
      stdin: 'ignore',
      stdout: 'ignore',
      maxBuffer: 64 * 1024,
      reject: false,
    });
    if (result.failed) {
      log.error('alert command failed', {
        ...fields,
        exitCode: result.exitCode,
        signal: result.signal,
        timedOut: result.timedOut,
        reason: result.timedOut
          ? `no exit within alert_timeout_seconds (${timeoutSeconds} s)`
          : result.shortMessage,
        stderr: String(result.stderr ?? '').slice(-STDERR_SHOWN),
      });
    } else {
      log.info('alert command ran', fields);
    }
  } catch (err) {
    log.error('alert command could not be run', {
      ...fields,
      error: err instanceof Error ? err.message : String(err),
    });
  }
}
