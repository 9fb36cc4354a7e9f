/**
 * The JWS algorithms a trusted issuer may use. Apart from jwt.ts so that checking an issuer's
 * config (issuers.ts) loads no JOSE library.
 */
export const DEFAULT_ALGORITHMS: readonly string[] = ['RS256', 'ES256', 'EdDSA'];

/** Asymmetric JWS algorithms jose verifies. Symmetric ones would make the verifier a signer. */
export const SUPPORTED_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;
