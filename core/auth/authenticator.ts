/**
 * Turns a call's `authorization` header into a Caller, using the agent's trusted issuers.
 *
 * Routing: a JWT goes to the issuer named by its (unverified) `iss`, and only to it; a JWT from
 * an issuer nobody trusts is refused without any network call. Anything else is an opaque token
 * and goes to the MCIAS issuers in order, the first valid answer winning. Every failure is an
 * UnauthenticatedError with the fixed public message; `detail` says which check failed, for the
 * server log, and never contains the token.
 *
 * A JWT that verified is remembered for a short while (token-cache.ts), so the signature check
 * runs once per token rather than once per call; MCIAS answers have their own cache (mcias.ts).
 */
import { decodeJwt } from 'jose';
import { UnauthenticatedError } from '../errors.js';
import type { Caller, TokenVerifier, VerifierDeps } from './caller.js';
import { AuthConfigError } from './errors.js';
import type { TrustedIssuerConfig } from './issuers.js';
import { JwtVerifier } from './jwt.js';
import { MciasVerifier, mciasCallerIssuer } from './mcias.js';
import { VerifiedTokenCache } from './token-cache.js';

export interface Authenticator {
  /** Resolves the caller, or throws UnauthenticatedError. */
  authenticate(authorizationHeader: string | undefined): Promise<Caller>;
}

/** Larger than any sane access token; refusing earlier keeps garbage away from the verifiers. */
const MAX_TOKEN_LENGTH = 16 * 1024;

/** RFC 6750: the scheme (case-insensitive), one space, a b64token, nothing else. */
const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i;

/** `issuers` come from trustedIssuerSchema, which checks them; see core/auth/issuers.ts. */
export function createAuthenticator(
  issuers: readonly TrustedIssuerConfig[],
  deps: VerifierDeps = {},
): Authenticator {
  if (issuers.length === 0) {
    throw new AuthConfigError('no trusted issuer is configured: every call would be refused');
  }
  const byIssuer = new Map<string, TokenVerifier>();
  const mcias: MciasVerifier[] = [];
  for (const issuer of issuers) {
    const verifier = issuer.type === 'jwt' ? new JwtVerifier(issuer, deps) : new MciasVerifier(issuer, deps);
    if (byIssuer.has(verifier.issuer)) {
      throw new AuthConfigError(`trusted issuer ${verifier.issuer} is configured twice`);
    }
    byIssuer.set(verifier.issuer, verifier);
    if (verifier instanceof MciasVerifier) mcias.push(verifier);
  }
  const verified = new VerifiedTokenCache(deps.now === undefined ? {} : { now: deps.now });

  const verify = async (token: string): Promise<Caller> => {
    if (token.split('.').length === 3) {
      const key = VerifiedTokenCache.keyOf(token);
      const known = verified.get(key);
      if (known !== undefined) return known;
      const iss = unverifiedIssuer(token);
      const verifier = byIssuer.get(iss);
      if (verifier === undefined) throw new UnauthenticatedError(`jwt: issuer ${quote(iss)} is not trusted`);
      if (!(verifier instanceof JwtVerifier)) return verifier.verify(token);
      // Only a success reaches the cache: a refusal throws past it and is checked afresh next time.
      const { caller, expiresAt } = await verifier.verifyToken(token);
      verified.remember(key, caller, expiresAt);
      return caller;
    }
    if (mcias.length === 0) {
      throw new UnauthenticatedError('token is not a JWT and no MCIAS issuer is configured');
    }
    const refusals: string[] = [];
    for (const verifier of mcias) {
      try {
        return await verifier.verify(token);
      } catch (err) {
        refusals.push(err instanceof UnauthenticatedError ? err.detail : String(err));
      }
    }
    throw new UnauthenticatedError(refusals.join('; '));
  };

  return {
    async authenticate(authorizationHeader) {
      const token = bearerToken(authorizationHeader);
      try {
        return await verify(token);
      } catch (err) {
        if (err instanceof UnauthenticatedError) throw err;
        // Fail closed on anything unexpected; the message of a bug is still worth logging.
        throw new UnauthenticatedError(`internal error while authenticating: ${(err as Error).message}`);
      }
    },
  };
}

/**
 * The `Caller.issuer` an issuer's callers get: the JWT issuer, or for MCIAS `mcias:<name>`. Config that names an MCIAS issuer by `name` (RBAC bindings) maps
 * through this so a binding matches the callers it is meant for.
 */
export function callerIssuerOf(issuer: TrustedIssuerConfig): string {
  return issuer.type === 'jwt' ? issuer.issuer : mciasCallerIssuer(issuer);
}

function bearerToken(header: string | undefined): string {
  if (header === undefined || header === '') throw new UnauthenticatedError('no authorization header');
  if (header.length > MAX_TOKEN_LENGTH + 'Bearer '.length) {
    throw new UnauthenticatedError(`authorization header longer than ${MAX_TOKEN_LENGTH} bytes`);
  }
  const match = BEARER.exec(header);
  if (match?.[1] === undefined) {
    const scheme = /^bearer\s/i.test(header)
      ? 'malformed bearer token'
      : 'authorization scheme is not Bearer';
    throw new UnauthenticatedError(scheme);
  }
  return match[1];
}

function unverifiedIssuer(token: string): string {
  let iss: unknown;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    throw new UnauthenticatedError('jwt: malformed token (header or payload is not base64url JSON)');
  }
  if (typeof iss !== 'string' || iss === '') throw new UnauthenticatedError('jwt: token has no iss claim');
  return iss;
}

/** The issuer is attacker-chosen: quote and shorten it before it reaches a log line. */
function quote(value: string): string {
  return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
}
