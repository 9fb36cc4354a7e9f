/**
 * The schemas a client sees in tools/list, cut from the generated ones. Every byte of the
 * listing is context a model pays for before its first call (the budget in
 * test/unit/contract.test.ts), so what is published says what a model needs to write a call
 * and no more. What is validated stays as strict as the generated schema: connector/arguments.ts
 * checks every call against the full one, so a typo'd field, a bad node name or a 64-bit integer
 * that is not a number is still refused, with a message naming the field.
 */
import type { JsonSchema } from '../tools.generated.js';

/** The full int32 or uint32 range: a wire limit the validator enforces, not the field's own bound. */
function isWireRange(schema: JsonSchema): boolean {
  const { minimum, maximum } = schema;
  return (minimum === -2147483648 && maximum === 2147483647) || (minimum === 0 && maximum === 4294967295);
}

/**
 * An input schema as published:
 * - no `additionalProperties: false` (the validator refuses unknown fields, naming the allowed ones);
 * - no `pattern` (node names and 64-bit integers; the validator says `must match …`);
 * - no full-width integer ranges (proto wire limits, not the field's own);
 * - no `*_UNSPECIFIED` enum value, the proto zero that means "not set": leaving the field out
 *   says the same (the validator still accepts it);
 * - no `planDigest`: the connector sets it itself after a human confirmed the plan, and
 *   drops one a model sends (connector/confirm.ts).
 */
export function publishedInput(schema: JsonSchema): JsonSchema {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'additionalProperties' && value === false) continue;
    if (key === 'properties' && value && typeof value === 'object' && 'planDigest' in value) {
      const { planDigest: _connectorOnly, ...rest } = value as Record<string, JsonSchema>;
      out.properties = mapChildren(key, rest, publishedInput);
      continue;
    }
    if (key === 'pattern') continue;
    if ((key === 'minimum' || key === 'maximum') && isWireRange(schema)) continue;
    if (key === 'enum' && Array.isArray(value)) {
      out.enum = value.filter((v) => !(typeof v === 'string' && v.endsWith('_UNSPECIFIED')));
      continue;
    }
    out[key] = mapChildren(key, value, publishedInput);
  }
  return out;
}

/**
 * An output schema as published: the names of the result's top-level fields, each open (`{}`).
 * The names are what a model plans its next call with; the values it reads off the result, whose
 * types and nested fields docs/tools.md lists. A client validating a result against it can only
 * find what is true. A read that asks every node answers with the envelope the instructions
 * describe once, `{nodes: [{node, result | error}]}`: its schema says only that it is an object.
 */
export function publishedOutput(schema: JsonSchema, fanOut: boolean): JsonSchema {
  if (fanOut) return { type: 'object' };
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  return {
    type: 'object',
    properties: Object.fromEntries(Object.keys(properties).map((name) => [name, {}])),
  };
}

/** Recurses into the keywords whose values are schemas or maps of schemas. */
function mapChildren(key: string, value: unknown, f: (s: JsonSchema) => JsonSchema): unknown {
  const isObject = (v: unknown): v is JsonSchema => !!v && typeof v === 'object' && !Array.isArray(v);
  if ((key === 'properties' || key === '$defs') && isObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, isObject(v) ? f(v) : v]));
  }
  if ((key === 'items' || key === 'additionalProperties') && isObject(value)) return f(value);
  return value;
}

/**
 * Arguments that several tools share and that the server's instructions explain once: their
 * published schemas carry no description of their own.
 */
export const ARGUMENTS_EXPLAINED_IN_INSTRUCTIONS: ReadonlySet<string> = new Set([
  'requestId',
  'dryRun',
  'component',
]);

function withoutSharedDescriptions(schema: JsonSchema): JsonSchema {
  const properties = schema.properties as Record<string, JsonSchema> | undefined;
  if (!properties) return schema;
  const published = Object.entries(properties).map(([name, property]) => {
    if (!ARGUMENTS_EXPLAINED_IN_INSTRUCTIONS.has(name)) return [name, property];
    const { description: _said, ...rest } = property;
    return [name, rest];
  });
  return { ...schema, properties: Object.fromEntries(published) };
}

/**
 * Published input schemas of a tool selection, in order: a message that an earlier tool already
 * spells out (ServiceSpec: deploy's `spec`, then sync_desired_state's `services`) is published
 * again only as `{type: object}`, its field saying where it is described. `$defs` cannot be
 * shared across tools, and the validator still checks every field. A selection without the
 * earlier tool publishes the message in full in the first tool that has it.
 */
export function publishedInputs(schemas: readonly JsonSchema[]): JsonSchema[] {
  const seen = new Set<string>();
  const dedupe = (schema: JsonSchema, root: boolean): JsonSchema => {
    if (!root && schema.type === 'object' && schema.properties) {
      const key = JSON.stringify(withoutDescriptions(schema));
      if (seen.has(key)) {
        return schema.description === undefined
          ? { type: 'object' }
          : { description: schema.description, type: 'object' };
      }
      seen.add(key);
    }
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(schema))
      out[key] = mapChildren(key, value, (s) => dedupe(s, false));
    return out;
  };
  return schemas.map((s) => dedupe(withoutSharedDescriptions(publishedInput(s)), true));
}

function withoutDescriptions(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutDescriptions);
  if (!value || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([k, v]) => !(k === 'description' && typeof v === 'string'))
      .map(([k, v]) => [k, withoutDescriptions(v)]),
  );
}
