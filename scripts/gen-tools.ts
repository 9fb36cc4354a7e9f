/**
 * Generates tools.generated.ts, gen/tool-catalog.ts and docs/tools.md from the contract.
 *
 * Reads the FileDescriptorSet that `buf build` produces, so the proto is the only input.
 * Every RPC of McpAgentService must carry the (mcp.v1.tool) option with a permission;
 * an RPC without one stops the build, so an RPC cannot ship without authorization.
 * `generate` is the whole rule set over a descriptor set (tests feed it fixture protos);
 * the command line below only builds the contract and writes the files.
 *
 * Schemas describe the ProtoJSON shape the connector sends and receives: lowerCamel
 * names, enums by name, 64-bit integers as numbers or decimal strings, Timestamps as
 * RFC 3339 strings, bytes as base64. They are JSON Schema 2020-12.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createFileRegistry,
  type DescExtension,
  type DescField,
  type DescMessage,
  type DescMethod,
  fromBinary,
  getOption,
  hasOption,
  ScalarType,
  toJson,
} from '@bufbuild/protobuf';
import { type FileDescriptorSet, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { getComments } from '@bufbuild/protoplugin';
import { NAME_PATTERN } from '../core/spec.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SERVICE = 'mcp.v1.McpAgentService';

type JsonSchema = { [key: string]: unknown };

interface ToolOptions {
  name?: string;
  title?: string;
  readOnly?: boolean;
  destructive?: boolean;
  idempotent?: boolean;
  openWorld?: boolean;
  permission?: string;
  exclude?: boolean;
  fanOut?: boolean;
  timeoutSeconds?: number;
  toolInput?: string;
  toolOutput?: string;
}

/** How an RPC is called; bidirectional streams are refused (the agent's guard cannot serve them). */
export type CallShape = 'unary' | 'serverStream' | 'clientStream';

export interface GeneratedRpc {
  rpc: string;
  method: string;
  permission: string;
  requestStream: boolean;
  responseStream: boolean;
  shape: CallShape;
  /** ts-proto names of the RPC's request and response messages. */
  request: string;
  response: string;
  tool?: GeneratedTool;
  /** ts-proto names of the messages the tool takes and returns (tool_input, tool_output, else the RPC's). */
  toolInput?: string;
  toolOutput?: string;
}

export interface GeneratedTool {
  name: string;
  title: string;
  description: string;
  rpc: string;
  permission: string;
  fanOut: boolean;
  timeoutSeconds: number;
  annotations: {
    readOnlyHint: boolean;
    destructiveHint: boolean;
    idempotentHint: boolean;
    openWorldHint: boolean;
  };
  inputSchema: JsonSchema;
  outputSchema: JsonSchema;
  /** The description's every paragraph, for docs/tools.md only (`description` is the first). */
  docDescription?: string;
  /** The input and output with every field's description, for docs/tools.md only (not published). */
  docInputSchema?: JsonSchema;
  docOutputSchema?: JsonSchema;
}

/** `buf build` of the module in `dir` (the repository's contract by default), as a FileDescriptorSet. */
export function buildDescriptorSet(dir = root): FileDescriptorSet {
  const image = execFileSync(
    join(root, 'node_modules/.bin/buf'),
    ['build', '--as-file-descriptor-set', '-o', '-'],
    {
      cwd: dir,
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return fromBinary(FileDescriptorSetSchema, image);
}

/** The name ts-proto gives a message of the service's file: nested names joined by `_`. */
function tsName(desc: DescMessage, serviceFile: string, rpc: string): string {
  if (desc.file.name !== serviceFile) {
    throw new Error(
      `${rpc}: message ${desc.typeName} is defined in ${desc.file.name}.proto; tool messages must be in ${serviceFile}.proto, where the generated codecs are`,
    );
  }
  const prefix = desc.file.proto.package ? `${desc.file.proto.package}.` : '';
  return desc.typeName.slice(prefix.length).replaceAll('.', '_');
}

/**
 * What tools/list publishes of a field or tool: the first paragraph of its leading comment.
 * Every byte of the listing is context a model pays for before its first call, so the rest
 * (further paragraphs, and a field's trailing comment) is the long form, in docs/tools.md only.
 */
function summaryOf(desc: DescField | DescMethod): string {
  return paragraphs(getComments(desc).leading)[0] ?? '';
}

/** The whole comment, one paragraph per blank-line-separated block: docs/tools.md's long form. */
function commentOf(desc: DescField | DescMessage | DescMethod): string {
  const { leading, trailing } = getComments(desc);
  return [...paragraphs(leading), ...paragraphs(trailing)].join('\n\n');
}

function paragraphs(text = ''): string[] {
  return text
    .split(/\n\s*\n/)
    .map((p) => p.replace(/\s*\n\s*/g, ' ').trim())
    .filter(Boolean);
}

const SHAPES = {
  unary: 'unary',
  server_streaming: 'serverStream',
  client_streaming: 'clientStream',
} as const satisfies Record<Exclude<DescMethod['methodKind'], 'bidi_streaming'>, CallShape>;

/** Node names follow the service-name rule (core/spec.ts). */
const NODE_NAME_PATTERN = NAME_PATTERN.source;

/**
 * Input schemas are complete (they are what a model writes to, and the connector validates
 * calls against them) and keep their field descriptions. Output schemas give a result's
 * fields and types (connector/tool-result.ts fills in zero values from them, tests validate
 * results against them; tools/list publishes only the names, connector/published-schema.ts):
 * no descriptions, a message used more than once shared through `$defs`, and a depth limit,
 * since every start loads the catalog. docs/tools.md shows the long form (`docOutputSchema`).
 */
type SchemaMode = 'input' | 'output' | 'doc';

/**
 * Output schemas describe messages down to this depth (the result's own fields are depth 0);
 * deeper ones are `{type: object}`.
 */
const OUTPUT_DEPTH = 0;

class SchemaBuilder {
  /** Output messages by name, for `$defs`; filled by `output`. */
  private defs = new Map<string, JsonSchema>();
  /** Input messages already described in an earlier tool: their fields go without descriptions after. */
  private readonly described = new Set<string>();

  constructor(
    private readonly requiredExt: DescExtension,
    private readonly mode: SchemaMode = 'input',
  ) {}

  /** An output schema whose shared messages are in `$defs`, referenced from where they are used. */
  output(desc: DescMessage, wrap: (base: JsonSchema) => JsonSchema): JsonSchema {
    this.defs = new Map();
    const schema = wrap(this.message(desc));
    return inlineSingleUseDefs(schema, this.defs);
  }

  message(desc: DescMessage, seen: string[] = []): JsonSchema {
    if (seen.includes(desc.typeName)) {
      throw new Error(`recursive message ${desc.typeName} cannot be inlined into a tool schema`);
    }
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    // A nested input message (ServiceSpec in deploy and sync_desired_state) is described in the
    // first tool that takes it; the field that holds it elsewhere says where.
    const describe =
      this.mode === 'doc' ||
      (this.mode === 'input' && (seen.length === 0 || !this.described.has(desc.typeName)));
    if (this.mode === 'input' && seen.length > 0) this.described.add(desc.typeName);
    for (const field of desc.fields) {
      const schema = this.field(field, [...seen, desc.typeName]);
      const description = !describe ? '' : this.mode === 'doc' ? commentOf(field) : summaryOf(field);
      properties[field.jsonName] = description ? { description, ...schema } : schema;
      if (hasOption(field, this.requiredExt) && getOption(field, this.requiredExt))
        required.push(field.jsonName);
    }
    const schema: JsonSchema =
      this.mode === 'output'
        ? { type: 'object', properties }
        : { type: 'object', properties, additionalProperties: false };
    if (required.length > 0) schema.required = required;
    return schema;
  }

  private field(field: DescField, seen: string[]): JsonSchema {
    switch (field.fieldKind) {
      case 'scalar':
        return this.scalar(field.scalar);
      case 'enum':
        return this.enumeration(field.enum.values.map((v) => v.name));
      case 'message':
        return this.messageRef(field.message, seen);
      case 'list': {
        let items: JsonSchema;
        if (field.listKind === 'scalar') items = this.scalar(field.scalar);
        else if (field.listKind === 'enum') items = this.enumeration(field.enum.values.map((v) => v.name));
        else items = this.messageRef(field.message, seen);
        // A list of messages past the output depth is just a list.
        if (this.mode === 'output' && items.$ref === undefined && items.type === 'object')
          return { type: 'array' };
        return { type: 'array', items };
      }
      case 'map': {
        let values: JsonSchema;
        if (field.mapKind === 'scalar') values = this.scalar(field.scalar);
        else if (field.mapKind === 'enum') values = this.enumeration(field.enum.values.map((v) => v.name));
        else values = this.messageRef(field.message, seen);
        return { type: 'object', additionalProperties: values };
      }
    }
  }

  /** Enum values by name; an output names them once in the description-free schema only as strings. */
  private enumeration(values: string[]): JsonSchema {
    return this.mode === 'output' ? { type: 'string' } : { type: 'string', enum: values };
  }

  private messageRef(desc: DescMessage, seen: string[]): JsonSchema {
    if (desc.typeName === 'google.protobuf.Timestamp') return { type: 'string', format: 'date-time' };
    if (this.mode !== 'output') return this.message(desc, seen);
    if (seen.length > OUTPUT_DEPTH) return { type: 'object' };
    const name = desc.name;
    const known = this.defs.get(name);
    if (!known) {
      // Set before recursing, so a message met again inside itself is a reference, not a loop.
      this.defs.set(name, {});
      this.defs.set(name, this.message(desc, seen));
    }
    return { $ref: `#/$defs/${name}` };
  }

  private scalar(type: ScalarType): JsonSchema {
    const output = this.mode === 'output';
    switch (type) {
      case ScalarType.STRING:
        return { type: 'string' };
      case ScalarType.BOOL:
        return { type: 'boolean' };
      case ScalarType.BYTES:
        return output ? { type: 'string' } : { type: 'string', contentEncoding: 'base64' };
      case ScalarType.DOUBLE:
      case ScalarType.FLOAT:
        return { type: 'number' };
      case ScalarType.INT32:
      case ScalarType.SINT32:
      case ScalarType.SFIXED32:
        return output ? { type: 'integer' } : { type: 'integer', minimum: -2147483648, maximum: 2147483647 };
      case ScalarType.UINT32:
      case ScalarType.FIXED32:
        return output ? { type: 'integer' } : { type: 'integer', minimum: 0, maximum: 4294967295 };
      default:
        // 64-bit integers: ProtoJSON writes them as decimal strings, and accepts numbers.
        return output
          ? { type: ['integer', 'string'] }
          : { type: ['integer', 'string'], pattern: '^-?[0-9]+$' };
    }
  }
}

/**
 * Replaces each `$ref` to a message used once with the message itself, and puts the rest
 * under `$defs` at the root: a reference only pays for itself when it is shared.
 */
function inlineSingleUseDefs(schema: JsonSchema, defs: Map<string, JsonSchema>): JsonSchema {
  const uses = new Map<string, number>();
  const count = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(count);
    else if (node && typeof node === 'object') {
      const ref = (node as JsonSchema).$ref;
      if (typeof ref === 'string') {
        const name = ref.slice('#/$defs/'.length);
        uses.set(name, (uses.get(name) ?? 0) + 1);
        if ((uses.get(name) ?? 0) === 1) count(defs.get(name));
      } else Object.values(node).forEach(count);
    }
  };
  count(schema);
  const shared = [...defs.keys()].filter((name) => (uses.get(name) ?? 0) > 1);
  const resolve = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(resolve);
    if (!node || typeof node !== 'object') return node;
    const ref = (node as JsonSchema).$ref;
    if (typeof ref === 'string') {
      const name = ref.slice('#/$defs/'.length);
      return shared.includes(name) ? node : resolve(defs.get(name));
    }
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, resolve(v)]));
  };
  const resolved = resolve(schema) as JsonSchema;
  if (shared.length === 0) return resolved;
  return { ...resolved, $defs: Object.fromEntries(shared.map((name) => [name, resolve(defs.get(name))])) };
}

/**
 * The tool's arguments: the request message and `node`. How `node` is chosen when it is left
 * out is said once, in the server's instructions, not in every tool.
 */
function toolInputSchema(base: JsonSchema, fanOut: boolean, brief = true): JsonSchema {
  const properties = base.properties as Record<string, JsonSchema>;
  const node: JsonSchema = { type: 'string', pattern: NODE_NAME_PATTERN };
  if (!brief) {
    node.description = fanOut
      ? 'Node to ask. Omit to ask every configured node and get one result per node.'
      : "Node to act on. Omit to use the node named in the service's definition (or the only configured node).";
  }
  return { ...base, properties: { node, ...properties } };
}

const ERROR_SCHEMA: JsonSchema = {
  type: 'object',
  description: 'Why this node did not answer.',
  properties: {
    code: { type: 'string', description: 'Error code, for example UNAVAILABLE or PERMISSION_DENIED.' },
    message: { type: 'string', description: 'What went wrong and what to do.' },
  },
  required: ['code', 'message'],
  additionalProperties: false,
};

/**
 * The tool's result around its output message: the node that answered, or (fan-out) one entry
 * per node with a result or an error. With `brief`, names and types only (the published form).
 */
function toolOutputSchema(base: JsonSchema, fanOut: boolean, brief = false): JsonSchema {
  const d = (description: string) => (brief ? {} : { description });
  const closed = brief ? {} : { additionalProperties: false };
  if (!fanOut) {
    const properties = base.properties as Record<string, JsonSchema>;
    return {
      ...base,
      properties: { node: { type: 'string', ...d('Node that answered.') }, ...properties },
      required: ['node', ...((base.required as string[] | undefined) ?? [])],
    };
  }
  const error = brief ? { type: 'object' } : ERROR_SCHEMA;
  return {
    type: 'object',
    properties: {
      nodes: {
        type: 'array',
        ...d('One entry per node asked, each with a result or an error.'),
        items: {
          type: 'object',
          properties: {
            node: { type: 'string', ...d('Node name.') },
            result: base,
            error,
          },
          required: ['node'],
          ...closed,
        },
      },
    },
    required: ['nodes'],
    ...closed,
  };
}

/**
 * The RPC and tool table of McpAgentService in `set`. Throws, naming the RPC and what to add,
 * when an RPC lacks the (mcp.v1.tool) option, a permission, a comment, or reuses a tool name.
 */
export function generate(set: FileDescriptorSet): GeneratedRpc[] {
  const registry = createFileRegistry(set);
  const service = registry.getService(SERVICE);
  const toolExt = registry.getExtension('mcp.v1.tool');
  const requiredExt = registry.getExtension('mcp.v1.required');
  const toolOptionsDesc = registry.getMessage('mcp.v1.ToolOptions');
  if (!service || !toolExt || !requiredExt || !toolOptionsDesc) {
    throw new Error(`${SERVICE}, mcp.v1.tool or mcp.v1.required not found in the contract`);
  }
  const builder = new SchemaBuilder(requiredExt);
  const outputs = new SchemaBuilder(requiredExt, 'output');
  const docs = new SchemaBuilder(requiredExt, 'doc');
  const messageByName = (name: string, rpc: string): DescMessage => {
    const m = registry.getMessage(name);
    if (!m) throw new Error(`${rpc}: message ${name} named in (mcp.v1.tool) does not exist`);
    return m;
  };

  const rpcs: GeneratedRpc[] = [];
  const names = new Set<string>();
  for (const method of service.methods) {
    if (!hasOption(method, toolExt)) {
      throw new Error(
        `${method.name} has no (mcp.v1.tool) option: every RPC needs a permission (and tool metadata, or exclude: true)`,
      );
    }
    const opts = toJson(toolOptionsDesc, getOption(method, toolExt) as never) as ToolOptions;
    if (!opts.permission || !/^[a-z]+\.[a-z_]+$/.test(opts.permission)) {
      throw new Error(`${method.name}: (mcp.v1.tool).permission is missing or not of the form area.action`);
    }
    if (method.methodKind === 'bidi_streaming') {
      throw new Error(
        `${method.name}: bidirectional streaming is not supported: the agent's guard serves unary, server- and client-streaming RPCs`,
      );
    }
    const serviceFile = service.file.name;
    const entry: GeneratedRpc = {
      rpc: method.name,
      method: method.localName,
      permission: opts.permission,
      requestStream: method.methodKind === 'client_streaming',
      responseStream: method.methodKind === 'server_streaming',
      shape: SHAPES[method.methodKind],
      request: tsName(method.input, serviceFile, method.name),
      response: tsName(method.output, serviceFile, method.name),
    };
    if (!opts.exclude) {
      if (!opts.name || !/^[a-z][a-z0-9_]*$/.test(opts.name)) {
        throw new Error(`${method.name}: (mcp.v1.tool).name must be snake_case`);
      }
      if (names.has(opts.name)) throw new Error(`${method.name}: tool name ${opts.name} is used twice`);
      names.add(opts.name);
      const description = summaryOf(method);
      if (!description)
        throw new Error(`${method.name}: the RPC needs a comment; it becomes the tool's description`);
      if (!opts.title) throw new Error(`${method.name}: (mcp.v1.tool).title is required`);
      if (entry.requestStream && !opts.toolInput) {
        throw new Error(`${method.name}: a client-streaming RPC needs (mcp.v1.tool).tool_input`);
      }
      if (entry.responseStream && !opts.toolOutput) {
        throw new Error(`${method.name}: a server-streaming RPC needs (mcp.v1.tool).tool_output`);
      }
      const input = opts.toolInput ? messageByName(opts.toolInput, method.name) : method.input;
      const output = opts.toolOutput ? messageByName(opts.toolOutput, method.name) : method.output;
      entry.toolInput = tsName(input, serviceFile, method.name);
      entry.toolOutput = tsName(output, serviceFile, method.name);
      const fanOut = opts.fanOut ?? false;
      const readOnly = opts.readOnly ?? false;
      if (readOnly && opts.destructive)
        throw new Error(`${method.name}: a tool cannot be read-only and destructive`);
      entry.tool = {
        name: opts.name,
        title: opts.title,
        description,
        docDescription: commentOf(method),
        rpc: method.name,
        permission: opts.permission,
        fanOut,
        timeoutSeconds: opts.timeoutSeconds ?? 30,
        annotations: {
          readOnlyHint: readOnly,
          destructiveHint: opts.destructive ?? false,
          idempotentHint: opts.idempotent ?? false,
          openWorldHint: opts.openWorld ?? false,
        },
        inputSchema: toolInputSchema(builder.message(input), fanOut),
        docInputSchema: toolInputSchema(docs.message(input), fanOut, false),
        outputSchema: outputs.output(output, (base) => toolOutputSchema(base, fanOut, true)),
        docOutputSchema: toolOutputSchema(docs.message(output), fanOut),
      };
    }
    rpcs.push(entry);
  }
  return rpcs;
}

function renderTs(rpcs: GeneratedRpc[]): string {
  const table = rpcs.map((r) => ({
    rpc: r.rpc,
    method: r.method,
    permission: r.permission,
    requestStream: r.requestStream,
    responseStream: r.responseStream,
    tool: r.tool?.name ?? null,
  }));
  const permissions = [...new Set(rpcs.map((r) => r.permission))].sort();
  const published = rpcs.flatMap((r) =>
    r.tool && r.toolInput && r.toolOutput
      ? [{ ...r, name: r.tool.name, input: r.toolInput, output: r.toolOutput }]
      : [],
  );
  const rpcMessages = rpcs.map(
    (r) => `  readonly ${r.rpc}: { readonly request: pb.${r.request}; readonly response: pb.${r.response} };`,
  );
  const rpcCodecs = rpcs.map(
    (r) =>
      `  ${r.rpc}: {\n    shape: '${r.shape}',\n    method: pb.McpAgentServiceService.${r.method},\n    request: pb.${r.request},\n    response: pb.${r.response},\n  },`,
  );
  const toolMessages = published.map(
    (t) =>
      `  readonly ${t.name}: {\n    readonly shape: '${t.shape}';\n    readonly request: pb.${t.request};\n    readonly response: pb.${t.response};\n    readonly input: pb.${t.input};\n    readonly output: pb.${t.output};\n  };`,
  );
  const toolCodecs = published.map(
    (t) =>
      `  ${t.name}: { rpc: '${t.rpc}', ...rpcCodecs.${t.rpc}, input: pb.${t.input}, output: pb.${t.output} },`,
  );
  return `// Code generated by scripts/gen-tools.ts from proto/mcp/v1/*.proto. DO NOT EDIT.
// Regenerate with \`npm run gen\`.

import type { MethodDefinition } from '@grpc/grpc-js';
import type { ToolName } from './gen/tool-catalog.js';
import * as pb from './gen/mcp/v1/mcp.js';

// The tool catalog (names, descriptions, schemas) has no protobuf import, so what only lists the
// tools loads without the codecs and grpc-js.
export { type JsonSchema, type ToolDefinition, type ToolName, toolNames, tools } from './gen/tool-catalog.js';

/** One RPC of McpAgentService, with the permission the agent checks before its handler runs. */
export interface RpcEntry {
  /** RPC name as in the proto, for example \`Deploy\`. */
  readonly rpc: string;
  /** Method name in the generated grpc-js service definition. */
  readonly method: string;
  readonly permission: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  /** Tool name, or null when the RPC is not published as a tool. */
  readonly tool: string | null;
}

export const rpcs = ${JSON.stringify(table, null, 2)} as const satisfies readonly RpcEntry[];

export type RpcName = (typeof rpcs)[number]['rpc'];

export type Permission = (typeof rpcs)[number]['permission'];

/** Every permission the contract defines, sorted. */
export const permissions: readonly Permission[] = ${JSON.stringify(permissions)};

/** How an RPC is called: one request and one response, or a stream on one side. */
export type CallShape = 'unary' | 'serverStream' | 'clientStream';

/** The grpc-js method of an RPC, its call shape, and the ts-proto codecs of its messages. */
export interface RpcCodecs<Req, Res> {
  readonly shape: CallShape;
  readonly method: MethodDefinition<Req, Res>;
  readonly request: pb.MessageFns<Req>;
  readonly response: pb.MessageFns<Res>;
}

/** The request and response message of every RPC. */
export interface RpcMessages {
${rpcMessages.join('\n')}
}

export const rpcCodecs = {
${rpcCodecs.join('\n')}
} as const satisfies {
  readonly [R in RpcName]: RpcCodecs<RpcMessages[R]['request'], RpcMessages[R]['response']>;
};

/**
 * The call shape and messages of every tool: its RPC's request and response, and what the tool takes
 * (\`input\`) and returns (\`output\`): tool_input and tool_output, else the RPC's own.
 */
export interface ToolMessages {
${toolMessages.join('\n')}
}

/** How a tool's RPC is called. */
export type ToolShape<T extends ToolName> = ToolMessages[T]['shape'];
export type ToolRequest<T extends ToolName> = ToolMessages[T]['request'];
export type ToolResponse<T extends ToolName> = ToolMessages[T]['response'];
export type ToolInput<T extends ToolName> = ToolMessages[T]['input'];
export type ToolOutput<T extends ToolName> = ToolMessages[T]['output'];

/** A tool's RPC codecs, and the codecs of what the tool takes and returns. */
export interface ToolCodecs<T extends ToolName> extends RpcCodecs<ToolRequest<T>, ToolResponse<T>> {
  readonly shape: ToolShape<T>;
  readonly rpc: RpcName;
  readonly input: pb.MessageFns<ToolInput<T>>;
  readonly output: pb.MessageFns<ToolOutput<T>>;
}

/** Every tool's codecs; indexed by a generic \`T extends ToolName\`, an entry is a \`ToolCodecs<T>\`. */
export const toolCodecs: { readonly [T in ToolName]: ToolCodecs<T> } = {
${toolCodecs.join('\n')}
};
`;
}

/** gen/tool-catalog.ts: what publishing the tools needs, without protobuf or grpc-js. */
function renderCatalogTs(rpcs: GeneratedRpc[]): string {
  const tools = rpcs.flatMap((r) =>
    r.tool
      ? [{ ...r.tool, docDescription: undefined, docInputSchema: undefined, docOutputSchema: undefined }]
      : [],
  );
  const published = rpcs.flatMap((r) => (r.tool && r.toolInput && r.toolOutput ? [r.tool.name] : []));
  return `// Code generated by scripts/gen-tools.ts from proto/mcp/v1/*.proto. DO NOT EDIT.
// Regenerate with \`npm run gen\`.

/** A JSON Schema 2020-12 document. */
export type JsonSchema = { readonly [key: string]: unknown };

/** Every published tool's name. */
export const toolNames = ${JSON.stringify(published)} as const;

export type ToolName = (typeof toolNames)[number];

/** One Model Context Protocol tool published by the connector. */
export interface ToolDefinition {
  readonly name: ToolName;
  readonly title: string;
  readonly description: string;
  readonly rpc: string;
  readonly permission: string;
  /** Without a \`node\` argument the call goes to every node. */
  readonly fanOut: boolean;
  /** Deadline the connector sets on the agent call. */
  readonly timeoutSeconds: number;
  readonly annotations: {
    readonly readOnlyHint: boolean;
    readonly destructiveHint: boolean;
    readonly idempotentHint: boolean;
    readonly openWorldHint: boolean;
  };
  readonly inputSchema: JsonSchema;
  readonly outputSchema: JsonSchema;
}

export const tools: readonly ToolDefinition[] = ${JSON.stringify(tools, null, 2)};
`;
}

function schemaType(schema: JsonSchema): string {
  const t = schema.type;
  if (schema.format === 'date-time') return 'RFC 3339 time';
  if (Array.isArray(schema.enum)) return (schema.enum as string[]).map((v) => `\`${v}\``).join(', ');
  if (Array.isArray(t)) return '64-bit integer';
  if (t === 'array') return `array of ${schemaType(schema.items as JsonSchema)}`;
  if (t === 'object' && schema.properties) return 'object';
  if (t === 'object') return 'map of string';
  return String(t);
}

function paramRows(schema: JsonSchema, prefix = ''): string[] {
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const rows: string[] = [];
  for (const [name, prop] of Object.entries(properties)) {
    const path = `${prefix}${name}`;
    const desc = String(prop.description ?? '')
      .replace(/\n+/g, ' ')
      .replace(/\|/g, '\\|');
    rows.push(`| \`${path}\` | ${schemaType(prop)} | ${required.has(name) ? 'yes' : ''} | ${desc} |`);
    const nested = prop.type === 'array' ? (prop.items as JsonSchema) : prop;
    if (nested.type === 'object' && nested.properties) {
      rows.push(...paramRows(nested, `${path}${prop.type === 'array' ? '[]' : ''}.`));
    }
  }
  return rows;
}

function renderMarkdown(rpcs: GeneratedRpc[]): string {
  const out: string[] = [
    '# Tools',
    '',
    '<!-- Generated by scripts/gen-tools.ts from proto/mcp/v1/mcp.proto. Do not edit; run `npm run gen`. -->',
    '',
    'The tools `mcp-connector` publishes over the Model Context Protocol. Each calls one RPC of',
    '`McpAgentService` on a node; the agent checks the permission shown before anything happens',
    'and writes an audit record for every call.',
    '',
    '| tool | RPC | permission | read-only | destructive | idempotent | all nodes by default |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  const yes = (b: boolean) => (b ? 'yes' : '');
  for (const { tool } of rpcs) {
    if (!tool) continue;
    const a = tool.annotations;
    out.push(
      `| [\`${tool.name}\`](#${tool.name}) | \`${tool.rpc}\` | \`${tool.permission}\` | ${yes(a.readOnlyHint)} | ${yes(a.destructiveHint)} | ${yes(a.idempotentHint)} | ${yes(tool.fanOut)} |`,
    );
  }
  const excluded = rpcs.filter((r) => !r.tool);
  if (excluded.length > 0) {
    out.push('', 'RPCs served but not published as tools:', '');
    for (const r of excluded) out.push(`- \`${r.rpc}\` (permission \`${r.permission}\`)`);
  }
  for (const { tool } of rpcs) {
    if (!tool) continue;
    out.push(
      '',
      `## ${tool.name}`,
      '',
      `**${tool.title}** · RPC \`${tool.rpc}\` · permission \`${tool.permission}\` · deadline ${tool.timeoutSeconds} s`,
      '',
      tool.docDescription ?? tool.description,
      '',
      '| argument | type | required | description |',
      '| --- | --- | --- | --- |',
      ...paramRows(tool.docInputSchema ?? tool.inputSchema),
      '',
      'Result:',
      '',
      '| field | type | required | description |',
      '| --- | --- | --- | --- |',
      ...paramRows(tool.docOutputSchema ?? tool.outputSchema),
    );
  }
  return `${out.join('\n')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    const rpcs = generate(buildDescriptorSet());
    writeFileSync(join(root, 'tools.generated.ts'), renderTs(rpcs));
    writeFileSync(join(root, 'gen/tool-catalog.ts'), renderCatalogTs(rpcs));
    writeFileSync(join(root, 'docs/tools.md'), renderMarkdown(rpcs));
    console.error(`generated ${rpcs.filter((r) => r.tool).length} tools from ${rpcs.length} RPCs`);
  } catch (err) {
    console.error(`gen-tools: ${(err as Error).message}`);
    process.exit(1);
  }
}
