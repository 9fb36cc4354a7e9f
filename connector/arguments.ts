/**
 * Tool arguments checked against the generated input schemas (JSON Schema 2020-12). The
 * validators are compiled when the contract is generated (gen/tool-validators.js, Ajv standalone
 * code with the setup of core/json-schema.ts), not when the connector starts. A failure lists
 * every problem as `field.path: what was expected`, the words a model needs to fix its call.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { JsonSchema, ToolDefinition } from '../gen/tool-catalog.js';
import * as compiled from '../gen/tool-validators.js';

export type ArgumentCheck = { ok: true; args: Record<string, unknown> } | { ok: false; problems: string[] };

const compiledValidators: Readonly<Record<string, ValidateFunction | undefined>> = compiled;

export class ArgumentValidator {
  private readonly validators = new Map<string, { validate: ValidateFunction; schema: JsonSchema }>();

  constructor(tools: readonly ToolDefinition[]) {
    for (const tool of tools) {
      const validate = compiledValidators[tool.name];
      if (!validate) throw new Error(`no compiled validator for tool ${tool.name}: run npm run gen`);
      this.validators.set(tool.name, { validate, schema: tool.inputSchema });
    }
  }

  check(tool: string, args: unknown): ArgumentCheck {
    const entry = this.validators.get(tool);
    if (!entry) throw new Error(`no input schema compiled for ${tool}`);
    const value = args ?? {};
    if (entry.validate(value)) return { ok: true, args: value as Record<string, unknown> };
    const problems = (entry.validate.errors ?? []).map((e) => describe(e, entry.schema));
    return { ok: false, problems: [...new Set(problems)] };
  }
}

/** `/spec/components/0` → `spec.components[0]`. */
export function fieldPath(instancePath: string): string {
  let path = '';
  for (const raw of instancePath.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(part)) path += `[${part}]`;
    else path += path === '' ? part : `.${part}`;
  }
  return path;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function describe(e: ErrorObject, root: JsonSchema): string {
  const path = fieldPath(e.instancePath);
  const at = path === '' ? 'arguments' : path;
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `${join(path, String(p.missingProperty))}: required property missing`;
    case 'additionalProperties': {
      const name = String(p.additionalProperty);
      const allowed = Object.keys(propertiesAt(root, e.instancePath));
      return `${at}: unexpected property '${name}'; allowed: ${allowed.join(', ')}`;
    }
    case 'type':
      return `${at}: expected ${String(p.type).replace(',', ' or ')}`;
    case 'enum':
      return `${at}: expected one of ${(p.allowedValues as unknown[]).map(String).join(', ')}`;
    case 'pattern':
      return `${at}: must match ${String(p.pattern)}`;
    default:
      return `${at}: ${e.message ?? 'invalid'}`;
  }
}

/** The `properties` of the object schema at `instancePath`, following properties, items and maps. */
function propertiesAt(root: JsonSchema, instancePath: string): Record<string, unknown> {
  let schema: JsonSchema | undefined = root;
  for (const raw of instancePath.split('/').slice(1)) {
    if (!schema) break;
    const props = schema.properties as Record<string, JsonSchema> | undefined;
    if (/^\d+$/.test(raw) && schema.items) schema = schema.items as JsonSchema;
    else if (props?.[raw]) schema = props[raw];
    else if (typeof schema.additionalProperties === 'object')
      schema = schema.additionalProperties as JsonSchema;
    else schema = undefined;
  }
  return (schema?.properties as Record<string, unknown> | undefined) ?? {};
}
