/**
 * What the agent and the connector say the same way about plans and confirmations: the
 * refusal of a stale plan (the connector recognises it to plan and ask again) and the one
 * shape of the gRPC metadata that carries a human's answer to the agent's audit record.
 */

/** Starts the FAILED_PRECONDITION message of a write whose confirmed plan no longer holds. */
export const STALE_PLAN_MESSAGE = 'the node changed since the plan was made; plan again';

/** The metadata key a connector reports a human's answer to the call's plan under. */
export const CONFIRMATION_METADATA = 'mcp-confirmation';

export type ConfirmationAnswer = 'accepted' | 'declined';

const CONFIRMATION_SHAPE = /^(accepted|declined) plan=[0-9a-f]{64} by=[\w.@:-]{1,64}$/;

/** `accepted plan=<digest> by=<asker>`: what the audit record keeps. */
export function confirmationText(answer: ConfirmationAnswer, digest: string, asker: string): string {
  return `${answer} plan=${digest} by=${asker}`;
}

/** Whether a metadata value has the one shape connectors write. */
export function isConfirmationText(text: string): boolean {
  return CONFIRMATION_SHAPE.test(text);
}
