/**
 * Trusted issuers: the `[[issuers]]` entries of the agent config and the `[[http.issuers]]`
 * entries of the connector config, read into TrustedIssuerConfig. Both programs verify tokens
 * against them, so the rules (mandatory audience, asymmetric algorithms only, one key source,
 * https unless loopback) are checked here once, by the schema; the verifiers (jwt.ts, mcias.ts)
 * are built from what it returns and check nothing again.
 */

import * as z from 'zod';
import { type Env, pathSchema, requiredString, resolveConfigPath, secureUrlSchema } from '../config-env.js';
import { DEFAULT_ALGORITHMS, SUPPORTED_ALGORITHMS } from './algorithms.js';

export interface JwtIssuerConfig {
  type: 'jwt';
  /** The `iss` claim tokens must carry; also the name bindings use for this issuer. */
  issuer: string;
  /** Exactly one of jwksUri, discovery and keyFile says where the signing keys come from. */
  jwksUri?: string;
  discovery: boolean;
  keyFile?: string;
  /** Tokens must carry one of these in `aud`. Never empty. */
  audience: string[];
  algorithms: string[];
  clockToleranceSeconds: number;
  /**
   * Longest lifetime (`exp - iat`) accepted, in seconds; undefined accepts any. When set, a
   * token without `iat` is refused: its lifetime cannot be known.
   */
  maxTokenLifetimeSeconds?: number;
  subjectClaim: 'sub' | 'azp' | 'client_id';
  /** Dotted path to the roles array in the token, e.g. `realm_access.roles`. */
  rolesClaim: string;
  /** Required `typ` header, e.g. `at+jwt`; undefined accepts any. */
  typ?: string;
  /** CA bundle for fetching keys (JWKS, discovery) over TLS. */
  caFile?: string;
}

export interface MciasIssuerConfig {
  type: 'mcias';
  /** The name bindings use for this issuer. */
  name: string;
  serverUrl: string;
  caFile?: string;
  audience?: string[];
  cacheSeconds: number;
}

export type TrustedIssuerConfig = JwtIssuerConfig | MciasIssuerConfig;

/** The name an issuer goes by in `[[rbac.bindings]] issuer`: the JWT issuer URL or the MCIAS name. */
export function issuerId(issuer: TrustedIssuerConfig): string {
  return issuer.type === 'jwt' ? issuer.issuer : issuer.name;
}

const algorithmSchema = z.string().superRefine((alg, ctx) => {
  if ((SUPPORTED_ALGORITHMS as readonly string[]).includes(alg)) return;
  let message = `unsupported algorithm "${alg}": use one of ${SUPPORTED_ALGORITHMS.join(', ')}`;
  if (alg.toLowerCase() === 'none') {
    message = '"none" means unsigned tokens, which anyone can forge: it is never accepted';
  } else if (/^HS\d+$/i.test(alg)) {
    message = `"${alg}" is a shared-secret algorithm: whoever can check such a token can also mint one, so it is not accepted; use an asymmetric algorithm (${DEFAULT_ALGORITHMS.join(', ')})`;
  }
  ctx.addIssue({ code: 'custom', message });
});

const AUDIENCE_REQUIRED =
  'required: the resource identifier tokens must be issued for (their `aud`); a token meant for another service is refused';

/** A string or an array of strings, as an array. */
function audienceSchema(whenMissing: string | undefined) {
  return z.preprocess(
    (value) => (typeof value === 'string' ? [value] : value),
    z
      .array(requiredString('an audience is a resource identifier such as https://mcp.example.net'), {
        error: (issue) => (issue.input === undefined ? whenMissing : undefined),
      })
      .min(1, { error: 'give at least one audience' }),
  );
}

const jwtIssuerInput = z
  .strictObject({
    type: z.literal('jwt'),
    issuer: secureUrlSchema,
    jwks_uri: secureUrlSchema.optional(),
    discovery: z.boolean().default(false),
    key_file: pathSchema.optional(),
    audience: audienceSchema(AUDIENCE_REQUIRED),
    algorithms: z
      .array(algorithmSchema)
      .min(1)
      .default([...DEFAULT_ALGORITHMS]),
    clock_tolerance_seconds: z.int().min(0).max(300).default(60),
    max_token_lifetime_seconds: z
      .int()
      .min(60, { error: 'give at least 60 seconds, or leave max_token_lifetime_seconds out' })
      .max(7 * 24 * 3600, { error: 'give at most 604800 seconds (one week)' })
      .optional(),
    subject_claim: z.enum(['sub', 'azp', 'client_id']).default('sub'),
    roles_claim: z
      .string()
      .regex(/^[^.\s]+(?:\.[^.\s]+)*$/, {
        error: 'expected a claim name or dotted path, e.g. realm_access.roles',
      })
      .default('roles'),
    typ: requiredString('give the expected typ header, e.g. at+jwt, or leave typ out').optional(),
    ca_file: pathSchema.optional(),
  })
  .superRefine((issuer, ctx) => {
    const sources = [
      issuer.jwks_uri !== undefined && 'jwks_uri',
      issuer.discovery && 'discovery = true',
      issuer.key_file !== undefined && 'key_file',
    ].filter((source) => source !== false);
    if (sources.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: `give exactly one of jwks_uri, discovery = true or key_file (where the issuer's signing keys come from)${sources.length > 1 ? `; found ${sources.join(', ')}` : ''}`,
      });
    } else if (issuer.key_file !== undefined && issuer.ca_file !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['ca_file'],
        message: 'ca_file has no use with key_file (it is for fetching keys over TLS): remove it',
      });
    }
  });

const mciasIssuerInput = z.strictObject({
  type: z.literal('mcias'),
  name: requiredString('the name bindings use for this issuer'),
  server_url: secureUrlSchema,
  ca_file: pathSchema.optional(),
  audience: audienceSchema(undefined).optional(),
  cache_seconds: z.int().min(0).max(300).default(30),
});

/**
 * One `[[issuers]]` entry (agent) or `[[http.issuers]]` entry (connector). `type` defaults to
 * "jwt". Paths in the result are as written; see resolveIssuerPaths.
 */
export const trustedIssuerSchema = z
  .preprocess(
    (value) =>
      typeof value === 'object' && value !== null && !Array.isArray(value) && !('type' in value)
        ? { ...value, type: 'jwt' }
        : value,
    z.discriminatedUnion('type', [jwtIssuerInput, mciasIssuerInput], {
      error: (issue) =>
        issue.code === 'invalid_union' ? 'expected "jwt" (the default) or "mcias"' : undefined,
    }),
  )
  .transform((input): TrustedIssuerConfig => {
    if (input.type === 'mcias') {
      return {
        type: 'mcias',
        name: input.name,
        serverUrl: input.server_url,
        caFile: input.ca_file,
        audience: input.audience,
        cacheSeconds: input.cache_seconds,
      };
    }
    return {
      type: 'jwt',
      issuer: input.issuer,
      jwksUri: input.jwks_uri,
      discovery: input.discovery,
      keyFile: input.key_file,
      audience: input.audience,
      algorithms: input.algorithms,
      clockToleranceSeconds: input.clock_tolerance_seconds,
      maxTokenLifetimeSeconds: input.max_token_lifetime_seconds,
      subjectClaim: input.subject_claim,
      rolesClaim: input.roles_claim,
      typ: input.typ,
      caFile: input.ca_file,
    };
  });

/** The issuer with key_file and ca_file resolved against the config file's directory. */
export function resolveIssuerPaths(
  issuer: TrustedIssuerConfig,
  configFile: string,
  env: Env,
): TrustedIssuerConfig {
  const resolvePath = (path: string | undefined) => path && resolveConfigPath(path, configFile, env);
  if (issuer.type === 'mcias') return { ...issuer, caFile: resolvePath(issuer.caFile) };
  return { ...issuer, keyFile: resolvePath(issuer.keyFile), caFile: resolvePath(issuer.caFile) };
}

/** Duplicate issuer ids, as issues on `path`. */
export function checkUniqueIssuers(
  issuers: readonly TrustedIssuerConfig[],
  path: readonly (string | number)[],
  ctx: z.RefinementCtx,
): void {
  const seen = new Set<string>();
  issuers.forEach((issuer, index) => {
    const id = issuerId(issuer);
    if (seen.has(id)) {
      ctx.addIssue({
        code: 'custom',
        path: [...path, index],
        message: `issuer "${id}" is configured twice: merge the two entries`,
      });
    }
    seen.add(id);
  });
}
