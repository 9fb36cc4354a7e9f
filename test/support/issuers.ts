/**
 * Trusted issuers for tests that build verifiers directly. They go through trustedIssuerSchema,
 * the one place the issuer rules are checked, written as in a config file (snake_case), so a
 * test gets the same config (defaults included) an agent would, or the config error it would.
 */
import {
  type JwtIssuerConfig,
  type MciasIssuerConfig,
  type TrustedIssuerConfig,
  trustedIssuerSchema,
} from '../../core/auth/issuers.js';

/** One `[[issuers]]` entry as the schema reads it; throws with one `path: message` line per problem. */
export function trustedIssuer(entry: Record<string, unknown>): TrustedIssuerConfig {
  const result = trustedIssuerSchema.safeParse(entry);
  if (result.success) return result.data;
  throw new Error(
    result.error.issues.map((i) => `${i.path.join('.') || '(entry)'}: ${i.message}`).join('\n'),
  );
}

export function jwtIssuer(entry: Record<string, unknown>): JwtIssuerConfig {
  const issuer = trustedIssuer({ ...entry, type: 'jwt' });
  if (issuer.type !== 'jwt') throw new Error('expected a jwt issuer');
  return issuer;
}

export function mciasIssuer(entry: Record<string, unknown>): MciasIssuerConfig {
  const issuer = trustedIssuer({ ...entry, type: 'mcias' });
  if (issuer.type !== 'mcias') throw new Error('expected an mcias issuer');
  return issuer;
}
