/**
 * A trusted-issuer or RBAC configuration the agent refuses to start with. Thrown at construction,
 * never while serving a call, so a weak or inconsistent setting stops the agent instead of
 * silently widening access.
 */
export class AuthConfigError extends Error {
  readonly code = 'ERR_AUTH_CONFIG';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AuthConfigError';
  }
}
