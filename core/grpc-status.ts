import { Metadata, type StatusObject, status } from '@grpc/grpc-js';
import { type ErrorCode, McpError, toMcpError } from './errors.js';

/** The one place an McpError becomes a gRPC status. */
const STATUS: Record<ErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  ABORTED: status.ABORTED,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  UNAVAILABLE: status.UNAVAILABLE,
  INTERNAL: status.INTERNAL,
};

export function toStatusObject(err: unknown): Partial<StatusObject> {
  const e = toMcpError(err);
  // Internal errors keep their detail in the server log, not on the wire.
  const details = e.code === 'INTERNAL' ? 'internal error in the agent: see its log' : e.message;
  return { code: STATUS[e.code], details, metadata: new Metadata() };
}

/** The reverse, for the client side: a gRPC error becomes an McpError with the same code. */
export function fromGrpcError(err: unknown): McpError {
  if (err instanceof McpError) return err;
  const e = err as { code?: number; details?: string; message?: string };
  const entry = Object.entries(STATUS).find(([, s]) => s === e.code);
  if (e.code === status.CANCELLED) return new McpError('ABORTED', 'the call was cancelled', { cause: err });
  const code = (entry?.[0] as ErrorCode | undefined) ?? 'INTERNAL';
  return new McpError(code, e.details || e.message || 'unknown error', { cause: err });
}
