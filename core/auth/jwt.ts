/**
 * Verifies bearer JWTs from one trusted issuer: signature against the issuer's keys, then
 * `iss`, `aud` (mandatory), `exp` (required), `nbf`, optionally `typ`, all through jose; then
 * `iat`, which jose checks only with `maxTokenAge` (it would also make `iat` required): an `iat`
 * beyond the clock tolerance is refused, and with `max_token_lifetime_seconds` set, `exp - iat`
 * is bounded and `iat` is required.
 *
 * Keys come from exactly one of: a JWKS URL, OIDC discovery, or a local key file. Remote key
 * sets are cached by jose (10 min), refetched on an unknown `kid` at most every 30 s.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
  type RemoteJWKSetOptions,
} from 'jose';
import { UnauthenticatedError } from '../errors.js';
import { isRecord } from '../text.js';
import type { Caller, TokenVerifier, VerifierDeps } from './caller.js';
import { AuthConfigError } from './errors.js';
import {
  createIdentityFetch,
  DiscoveryError,
  discoveryUrl,
  fetchDiscoveryDocument,
  IDENTITY_REQUEST_TIMEOUT_MS,
  type IdentityFetch,
  parseIdentityUrl,
} from './http.js';
import type { JwtIssuerConfig } from './issuers.js';

export { DEFAULT_ALGORITHMS, SUPPORTED_ALGORITHMS } from './algorithms.js';

/** Remote JWKS caching, as the brief fixes it: 5 s timeout, 30 s refetch cooldown, 10 min cache. */
const REMOTE_JWKS_TIMING = {
  timeoutDuration: IDENTITY_REQUEST_TIMEOUT_MS,
  cooldownDuration: 30_000,
  cacheMaxAge: 600_000,
};

/** How long a failed discovery is remembered before the next call tries again. */
const DISCOVERY_RETRY_MS = 30_000;

type VerificationKey = KeyObject | JWTVerifyGetKey;

export class JwtVerifier implements TokenVerifier {
  readonly issuer: string;
  private readonly audience: string[];
  private readonly algorithms: string[];
  private readonly clockTolerance: number;
  private readonly maxLifetime: number | undefined;
  private readonly subjectClaim: JwtIssuerConfig['subjectClaim'];
  private readonly rolesClaim: string;
  private readonly typ: string | undefined;
  private readonly key: VerificationKey;
  private readonly now: () => number;

  /**
   * `config` comes from trustedIssuerSchema (core/auth/issuers.ts), which checks the rules
   * (mandatory audience, asymmetric algorithms only, exactly one key source, https unless
   * loopback); here it is only put to use. A key file is read now, so a wrong one stops the
   * program at start-up.
   */
  constructor(config: JwtIssuerConfig, deps: VerifierDeps = {}) {
    this.issuer = config.issuer;
    this.audience = [...config.audience];
    this.algorithms = [...config.algorithms];
    this.clockTolerance = config.clockToleranceSeconds;
    this.maxLifetime = config.maxTokenLifetimeSeconds;
    this.subjectClaim = config.subjectClaim;
    this.rolesClaim = config.rolesClaim;
    this.typ = config.typ;
    this.key = resolveKeySource(config, `jwt issuer ${config.issuer}`);
    this.now = deps.now ?? Date.now;
  }

  /** Verifies `token` and returns who it names. Throws UnauthenticatedError; the token is never in it. */
  async verify(token: string): Promise<Caller> {
    return (await this.verifyToken(token)).caller;
  }

  /** `verify`, with the token's `exp` (ms since the epoch) for whoever remembers the answer. */
  async verifyToken(token: string): Promise<{ caller: Caller; expiresAt: number }> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        issuer: this.issuer,
        audience: this.audience,
        algorithms: this.algorithms,
        clockTolerance: this.clockTolerance,
        requiredClaims: this.maxLifetime === undefined ? ['exp'] : ['exp', 'iat'],
        currentDate: new Date(this.now()),
        ...(this.typ === undefined ? {} : { typ: this.typ }),
      }));
    } catch (err) {
      // No `cause`: jose's claim errors carry the token's payload, which does not belong in logs.
      throw new UnauthenticatedError(`jwt: ${describeFailure(err)} (issuer ${this.issuer})`);
    }
    const timing = this.checkIssuedAt(payload);
    if (timing !== undefined) throw new UnauthenticatedError(`jwt: ${timing} (issuer ${this.issuer})`);

    const subject = payload[this.subjectClaim];
    if (typeof subject !== 'string' || subject === '') {
      throw new UnauthenticatedError(
        `jwt: subject claim '${this.subjectClaim}' is missing or empty (issuer ${this.issuer})`,
      );
    }
    const clientId =
      typeof payload.client_id === 'string'
        ? payload.client_id
        : typeof payload.azp === 'string'
          ? payload.azp
          : '';
    const roles = readRoles(payload, this.rolesClaim);
    if (roles === undefined) {
      throw new UnauthenticatedError(
        `jwt: roles claim '${this.rolesClaim}' is neither a string nor an array of strings (issuer ${this.issuer})`,
      );
    }
    // jose has checked that `exp` is present and a number (it is a required claim).
    const expiresAt = (payload.exp as number) * 1000;
    return { caller: { issuer: this.issuer, subject, clientId, roles }, expiresAt };
  }

  /**
   * Why the token's `iat` is unacceptable, or undefined. jose has already checked that `iat`,
   * when present, is a number (and present when a lifetime cap is set). A token minted in the
   * future either outlives what its issuer meant (a long-lived forgery with a stolen key) or comes
   * from an issuer whose clock is wrong: both are refused. `exp - iat` reads only the issuer's
   * clock, so the lifetime cap gets no tolerance.
   */
  private checkIssuedAt(payload: JWTPayload): string | undefined {
    const { iat, exp } = payload;
    if (iat === undefined) return undefined;
    const now = Math.floor(this.now() / 1000);
    if (iat > now + this.clockTolerance) {
      return `token issued in the future (iat ${iat - now} s ahead, tolerance ${this.clockTolerance} s)`;
    }
    if (this.maxLifetime !== undefined && exp !== undefined && exp - iat > this.maxLifetime) {
      return `token lifetime ${exp - iat} s exceeds max_token_lifetime_seconds ${this.maxLifetime}`;
    }
    return undefined;
  }
}

/**
 * Reads the roles at `path`: missing → [], a space-separated string or an array of strings →
 * the names, anything else → undefined (the token is refused rather than read as "no roles").
 */
export function readRoles(payload: Record<string, unknown>, path: string): string[] | undefined {
  const value = Object.hasOwn(payload, path)
    ? payload[path]
    : path
        .split('.')
        .reduce<unknown>(
          (node, key) => (isRecord(node) && Object.hasOwn(node, key) ? node[key] : undefined),
          payload,
        );
  let names: string[];
  if (value === undefined) names = [];
  else if (typeof value === 'string') names = value.split(/\s+/);
  else if (Array.isArray(value) && value.every((item) => typeof item === 'string')) names = value;
  else return undefined;
  return [...new Set(names.filter((name) => name !== ''))];
}

/** The one key source the schema let through: a key file, a JWKS URL, or discovery. */
function resolveKeySource(config: JwtIssuerConfig, where: string): VerificationKey {
  if (config.keyFile !== undefined) return loadKeyFile(config.keyFile, where);
  const fetch = createIdentityFetch(config.caFile);
  if (config.jwksUri !== undefined) return createRemoteJWKSet(new URL(config.jwksUri), remoteOptions(fetch));
  return discoveredKeySet(config.issuer, fetch, where);
}

function remoteOptions(fetch: IdentityFetch): RemoteJWKSetOptions {
  return { ...REMOTE_JWKS_TIMING, [customFetch]: fetch };
}

/**
 * Resolves keys through OIDC discovery on first use. The discovered `jwks_uri` is kept for the
 * life of the process; a failed discovery is retried by calls after DISCOVERY_RETRY_MS.
 */
function discoveredKeySet(issuer: string, fetch: IdentityFetch, where: string): JWTVerifyGetKey {
  const configUrl = parseIdentityUrl(discoveryUrl(issuer), `${where}: discovery`);
  let keySet: Promise<JWTVerifyGetKey> | undefined;
  let failedAt = 0;
  let retryAfter = 0;

  const discover = async (): Promise<JWTVerifyGetKey> => {
    const doc = await fetchDiscoveryDocument(configUrl.href, fetch);
    if (doc.issuer !== issuer) {
      throw new DiscoveryError(`document issuer ${JSON.stringify(doc.issuer)} is not the configured issuer`);
    }
    if (typeof doc.jwks_uri !== 'string') throw new DiscoveryError('document has no jwks_uri');
    let jwksUri: URL;
    try {
      jwksUri = parseIdentityUrl(doc.jwks_uri, 'jwks_uri');
    } catch (err) {
      throw new DiscoveryError((err as Error).message);
    }
    return createRemoteJWKSet(jwksUri, remoteOptions(fetch));
  };

  return async (header, token) => {
    const now = Date.now();
    if (keySet === undefined || (failedAt !== 0 && now >= retryAfter)) {
      failedAt = 0;
      const attempt = discover();
      keySet = attempt;
      attempt.catch(() => {
        if (keySet === attempt) {
          failedAt = Date.now();
          retryAfter = failedAt + DISCOVERY_RETRY_MS;
        }
      });
    }
    const resolve = await keySet;
    return resolve(header, token);
  };
}

/** Reads a key file: a JWK, a JWKS (keys picked by `kid`), or a PEM public key or certificate. */
function loadKeyFile(path: string, where: string): VerificationKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new AuthConfigError(`${where}: key_file ${path} cannot be read: ${(err as Error).message}`);
  }
  try {
    if (text.startsWith('{')) {
      const json: unknown = JSON.parse(text);
      if (isRecord(json) && Array.isArray(json.keys)) {
        if (json.keys.length === 0) throw new Error('the key set is empty');
        for (const jwk of json.keys) checkPublicJwk(jwk);
        return createLocalJWKSet(json as unknown as JSONWebKeySet);
      }
      checkPublicJwk(json);
      return createPublicKey({ key: json as JsonWebKey, format: 'jwk' });
    }
    if (text.startsWith('-----BEGIN')) {
      if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
        throw new Error('it holds a private key; give the public key');
      }
      return createPublicKey(text);
    }
    throw new Error('it is neither JSON (JWK or JWKS) nor PEM');
  } catch (err) {
    if (err instanceof AuthConfigError) throw err;
    throw new AuthConfigError(`${where}: key_file ${path} is unusable: ${(err as Error).message}`);
  }
}

function checkPublicJwk(jwk: unknown): asserts jwk is JWK {
  if (!isRecord(jwk) || typeof jwk.kty !== 'string') throw new Error('a key has no kty');
  if (jwk.kty === 'oct') throw new Error('it holds a symmetric key; only public keys are accepted');
  if ('d' in jwk) throw new Error('it holds private key material; give the public key');
}

/** Says which check failed, for the server log. jose's messages never contain the token. */
function describeFailure(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing' && err.claim === 'iat') {
      return "required claim 'iat' is missing (max_token_lifetime_seconds is set, and a token's lifetime is unknown without it)";
    }
    if (err.reason === 'missing') return `required claim '${err.claim}' is missing`;
    switch (err.claim) {
      case 'aud':
        return 'audience mismatch';
      case 'iss':
        return 'issuer mismatch';
      case 'nbf':
        return 'token not yet valid (nbf)';
      case 'typ':
        return 'typ header mismatch';
      default:
        return `claim '${err.claim}' check failed`;
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature verification failed';
  if (err instanceof errors.JWKSNoMatchingKey) {
    return 'no key in the key set matches the token (unknown kid or alg)';
  }
  if (err instanceof errors.JWKSMultipleMatchingKeys) {
    return 'several keys match the token and none verified it';
  }
  if (err instanceof errors.JWKSTimeout) return 'key set fetch timed out';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) {
    return `malformed token: ${err.message}`;
  }
  if (err instanceof errors.JOSEError) return `${err.code}: ${err.message}`;
  if (err instanceof DiscoveryError) return `discovery failed: ${err.message}`;
  if (err instanceof Error) return `key resolution failed: ${err.message}`;
  return 'verification failed';
}
