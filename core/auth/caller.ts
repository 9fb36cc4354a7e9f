/** Who made a call, as established by authentication; RBAC and the audit log read it. */
export interface Caller {
  /** The trusted issuer that vouched for the caller: a JWT `iss`, or `mcias:<name>` for MCIAS. */
  issuer: string;
  /** The subject claim configured for that issuer (`sub`, `azp` or `client_id`). */
  subject: string;
  /** The OAuth client the token was issued to (`client_id`, else `azp`), '' when the token names none. */
  clientId: string;
  /** Role names asserted by the token. RBAC adds local bindings and drops names it does not know. */
  roles: string[];
}

/** What every issuer type offers the authenticator. */
export interface TokenVerifier {
  /** The `Caller.issuer` this verifier vouches for, and the `iss` that routes a JWT to it. */
  readonly issuer: string;
  /** Resolves the caller, or throws UnauthenticatedError whose detail never contains the token. */
  verify(token: string): Promise<Caller>;
}

/** Injected by tests. */
export interface VerifierDeps {
  /** Current time in milliseconds since the epoch. Default Date.now. */
  now?: () => number;
}
