/**
 * Typed errors with stable codes. Every layer throws these; they are mapped once to a
 * gRPC status (agent/grpc-status.ts) and once to an MCP tool error (connector).
 * Codes are gRPC status names so the mapping is one-to-one and a user who sees
 * `NOT_FOUND` in the CLI sees the same word in the audit log.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'RESOURCE_EXHAUSTED'
  | 'ABORTED'
  | 'DEADLINE_EXCEEDED'
  | 'UNAVAILABLE'
  | 'INTERNAL';

export class McpError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The request is malformed; retrying it unchanged cannot succeed. */
export class InvalidArgumentError extends McpError {
  constructor(message: string, options?: ErrorOptions) {
    super('INVALID_ARGUMENT', message, options);
  }
}

/** A named thing (service, component, file) does not exist. */
export class NotFoundError extends McpError {
  constructor(message: string, options?: ErrorOptions) {
    super('NOT_FOUND', message, options);
  }
}

/** The system is not in a state that allows the operation (runtime missing, ...). */
export class FailedPreconditionError extends McpError {
  constructor(message: string, options?: ErrorOptions) {
    super('FAILED_PRECONDITION', message, options);
  }
}

/** The caller is authenticated but lacks a permission. */
export class PermissionDeniedError extends McpError {
  constructor(message: string, options?: ErrorOptions) {
    super('PERMISSION_DENIED', message, options);
  }
}

/**
 * The caller could not be authenticated. The message is fixed on purpose: it must not
 * tell an attacker which check failed. The reason goes to `detail`, for the server log only.
 */
export class UnauthenticatedError extends McpError {
  static readonly MESSAGE = 'authentication required: present a valid bearer token from a trusted issuer';
  readonly detail: string;
  constructor(detail: string, options?: ErrorOptions) {
    super('UNAUTHENTICATED', UnauthenticatedError.MESSAGE, options);
    this.detail = detail;
  }
}

/** A limit was exceeded (file too large, ...). */
export class ResourceExhaustedError extends McpError {
  constructor(message: string, options?: ErrorOptions) {
    super('RESOURCE_EXHAUSTED', message, options);
  }
}

/** A dependency (agent, runtime, identity provider) could not be reached. */
export class UnavailableError extends McpError {
  constructor(message: string, options?: ErrorOptions) {
    super('UNAVAILABLE', message, options);
  }
}

/** Wraps anything that is not an McpError so callers handle one type. */
export function toMcpError(err: unknown): McpError {
  if (err instanceof McpError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new McpError('INTERNAL', message, { cause: err });
}
