/**
 * State names as the registry stores them, and their conversion to and from the
 * generated proto enums. The database holds short lower-case words ('running', 'ignore')
 * so that a human reading it with sqlite3 sees what the operator sees in the CLI, and so a
 * renumbered enum can never silently change stored meaning.
 */

import { AuditDecision, AuditOutcome, DesiredState, ObservedState } from '../gen/mcp/v1/mcp.js';
import { InvalidArgumentError } from './errors.js';

export const DESIRED_STATE_NAMES = ['running', 'stopped', 'ignore'] as const;
/** What the operator wants of a component. */
export type DesiredStateName = (typeof DESIRED_STATE_NAMES)[number];

export const OBSERVED_STATE_NAMES = [
  'running',
  'exited',
  'created',
  'paused',
  'restarting',
  'missing',
  'unknown',
] as const;
/** What the runtime last reported for a component. "Not observed yet" is `undefined`, not a name. */
export type ObservedStateName = (typeof OBSERVED_STATE_NAMES)[number];

export const AUDIT_DECISION_NAMES = ['allow', 'deny'] as const;
export type AuditDecisionName = (typeof AUDIT_DECISION_NAMES)[number];

/** `unknown` is never stored: it is what a call row without an outcome row reads back as. */
export const AUDIT_OUTCOME_NAMES = ['ok', 'error', 'unknown'] as const;
export type AuditOutcomeName = (typeof AUDIT_OUTCOME_NAMES)[number];

const desiredToProto: Record<DesiredStateName, DesiredState> = {
  running: DesiredState.DESIRED_STATE_RUNNING,
  stopped: DesiredState.DESIRED_STATE_STOPPED,
  ignore: DesiredState.DESIRED_STATE_IGNORE,
};

const observedToProto: Record<ObservedStateName, ObservedState> = {
  running: ObservedState.OBSERVED_STATE_RUNNING,
  exited: ObservedState.OBSERVED_STATE_EXITED,
  created: ObservedState.OBSERVED_STATE_CREATED,
  paused: ObservedState.OBSERVED_STATE_PAUSED,
  restarting: ObservedState.OBSERVED_STATE_RESTARTING,
  missing: ObservedState.OBSERVED_STATE_MISSING,
  unknown: ObservedState.OBSERVED_STATE_UNKNOWN,
};

const decisionToProto: Record<AuditDecisionName, AuditDecision> = {
  allow: AuditDecision.AUDIT_DECISION_ALLOW,
  deny: AuditDecision.AUDIT_DECISION_DENY,
};

const outcomeToProto: Record<AuditOutcomeName, AuditOutcome> = {
  ok: AuditOutcome.AUDIT_OUTCOME_OK,
  error: AuditOutcome.AUDIT_OUTCOME_ERROR,
  unknown: AuditOutcome.AUDIT_OUTCOME_UNKNOWN,
};

function invert<N extends string, E extends number>(table: Record<N, E>): Map<E, N> {
  return new Map(Object.entries(table).map(([name, value]) => [value as E, name as N]));
}

const desiredFromProto = invert(desiredToProto);
const observedFromProto = invert(observedToProto);
const decisionFromProto = invert(decisionToProto);
const outcomeFromProto = invert(outcomeToProto);

export function desiredStateToProto(name: DesiredStateName): DesiredState {
  return desiredToProto[name];
}

/** `DESIRED_STATE_UNSPECIFIED` means "no filter / not set" and maps to `undefined`. */
export function desiredStateFromProto(state: DesiredState): DesiredStateName | undefined {
  if (state === DesiredState.DESIRED_STATE_UNSPECIFIED) return undefined;
  const name = desiredFromProto.get(state);
  if (name === undefined) throw new InvalidArgumentError(`unknown desired state ${state}`);
  return name;
}

/** `undefined` (never observed) maps to `OBSERVED_STATE_UNSPECIFIED`. */
export function observedStateToProto(name: ObservedStateName | undefined): ObservedState {
  return name === undefined ? ObservedState.OBSERVED_STATE_UNSPECIFIED : observedToProto[name];
}

export function observedStateFromProto(state: ObservedState): ObservedStateName | undefined {
  if (state === ObservedState.OBSERVED_STATE_UNSPECIFIED) return undefined;
  const name = observedFromProto.get(state);
  if (name === undefined) throw new InvalidArgumentError(`unknown observed state ${state}`);
  return name;
}

export function auditDecisionToProto(name: AuditDecisionName): AuditDecision {
  return decisionToProto[name];
}

/** `AUDIT_DECISION_UNSPECIFIED` means "no filter" and maps to `undefined`. */
export function auditDecisionFromProto(decision: AuditDecision): AuditDecisionName | undefined {
  if (decision === AuditDecision.AUDIT_DECISION_UNSPECIFIED) return undefined;
  const name = decisionFromProto.get(decision);
  if (name === undefined) throw new InvalidArgumentError(`unknown audit decision ${decision}`);
  return name;
}

export function auditOutcomeToProto(name: AuditOutcomeName): AuditOutcome {
  return outcomeToProto[name];
}

/** `AUDIT_OUTCOME_UNSPECIFIED` means "no filter" and maps to `undefined`. */
export function auditOutcomeFromProto(outcome: AuditOutcome): AuditOutcomeName | undefined {
  if (outcome === AuditOutcome.AUDIT_OUTCOME_UNSPECIFIED) return undefined;
  const name = outcomeFromProto.get(outcome);
  if (name === undefined) throw new InvalidArgumentError(`unknown audit outcome ${outcome}`);
  return name;
}
