import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ConnectorConfig,
  defaultConnectorConfigPath,
  findNode,
  parseConnectorConfig,
  requireHttpSettings,
} from '../../connector/config.js';
import { InvalidArgumentError, NotFoundError } from '../../core/errors.js';

const FILE = '/home/op/.config/mcp/connector.toml';
const ENV = { HOME: '/home/op' };

const NODES = `[[nodes]]
name = "node1"
address = "node1.lan:7443"
ca_file = "fleet-ca.crt"

[[nodes]]
name = "vps1"
address = "[2001:db8::1]:7443"
server_name = "vps1.example.net"
`;

function parse(text: string, env: Record<string, string> = ENV): ConnectorConfig {
  return parseConnectorConfig(text, FILE, env);
}

function rejection(text: string, env: Record<string, string> = ENV): string {
  try {
    parse(text, env);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return (err as Error).message;
  }
  throw new Error('expected an InvalidArgumentError, but the config was accepted');
}

describe('connector config', () => {
  it('fills every default from an empty file', () => {
    expect(parse('')).toEqual({
      configFile: FILE,
      servicesDir: '/home/op/.config/mcp/services',
      nodes: [],
      auth: { clientCredentials: undefined, tokenFile: '/home/op/.config/mcp/token', tokenEnv: 'MCP_TOKEN' },
      http: { listen: '127.0.0.1:8787', resource: undefined, allowedOrigins: [], issuers: [] },
      files: { localDir: '/home/op/mcp-files', inlineMaxBytes: 262_144 },
      confirm: {
        tools: new Set([
          'deploy',
          'stop_service',
          'restart_service',
          'sync_desired_state',
          'remove_service',
          'push_file',
          'rollback_service',
        ]),
        whenClientCannotAsk: 'refuse',
      },
    });
  });

  it('reads nodes, resolving a relative ca_file against the config directory', () => {
    expect(parse(NODES).nodes).toEqual([
      {
        name: 'node1',
        address: 'node1.lan:7443',
        caFile: '/home/op/.config/mcp/fleet-ca.crt',
        serverName: undefined,
      },
      { name: 'vps1', address: '[2001:db8::1]:7443', caFile: undefined, serverName: 'vps1.example.net' },
    ]);
  });

  it('rejects duplicate node names and malformed addresses', () => {
    const message = rejection(`${NODES}\n[[nodes]]\nname = "node1"\naddress = "node1.lan"\n`);
    expect(message).toMatch(
      /^\/home\/op\/\.config\/mcp\/connector\.toml: nodes\[2\]\.address: "node1\.lan" is not an address/m,
    );
    const duplicate = rejection(`${NODES}\n[[nodes]]\nname = "node1"\naddress = "10.0.0.1:7443"\n`);
    expect(duplicate).toMatch(/nodes\[2\]\.name: node "node1" is listed twice/);
  });

  it('rejects a bad node name', () => {
    expect(rejection('[[nodes]]\nname = "node;1"\naddress = "a:1"\n')).toMatch(
      /nodes\[0\]\.name: "node;1" is not a valid name/,
    );
  });

  it('applies MCP_* environment overrides, relative paths against the working directory', () => {
    const config = parse('services_dir = "defs"\n', {
      ...ENV,
      MCP_SERVICES_DIR: 'my-services',
      MCP_TOKEN_FILE: '~/token',
      MCP_TOKEN_ENV: 'FLEET_TOKEN',
      MCP_HTTP_LISTEN: '127.0.0.1:9000',
      MCP_HTTP_RESOURCE: 'https://mcp.example.net',
      MCP_LOCAL_DIR: '/tmp/files',
      MCP_INLINE_MAX_BYTES: '1024',
    });
    expect(config.servicesDir).toBe(resolve('my-services'));
    expect(config.auth).toMatchObject({ tokenFile: '/home/op/token', tokenEnv: 'FLEET_TOKEN' });
    expect(config.http).toMatchObject({ listen: '127.0.0.1:9000', resource: 'https://mcp.example.net' });
    expect(config.files).toEqual({ localDir: '/tmp/files', inlineMaxBytes: 1024 });
  });

  it('names the variable when an override is invalid', () => {
    expect(rejection('', { ...ENV, MCP_HTTP_LISTEN: 'localhost' })).toMatch(
      /http\.listen \(from MCP_HTTP_LISTEN\): "localhost" is not an address/,
    );
  });

  it('reads client credentials, with the secret file relative to the config', () => {
    const config = parse(`[auth.client_credentials]
issuer = "https://id.example.net/realms/homelab"
client_id = "mcp-connector"
client_secret_file = "client-secret"
resource = "https://mcp.example.net"
scope = "mcp"
`);
    expect(config.auth.clientCredentials).toEqual({
      tokenEndpoint: undefined,
      issuer: 'https://id.example.net/realms/homelab',
      clientId: 'mcp-connector',
      clientSecret: undefined,
      clientSecretFile: '/home/op/.config/mcp/client-secret',
      audience: undefined,
      resource: 'https://mcp.example.net',
      scope: 'mcp',
    });
  });

  it('requires exactly one token endpoint source and one secret source', () => {
    const message = rejection(`[auth.client_credentials]
client_id = "c"
token_endpoint = "https://id.example.net/token"
issuer = "https://id.example.net"
`);
    expect(message).toMatch(/auth\.client_credentials: give exactly one of token_endpoint, or issuer/);
    expect(message).toMatch(
      /auth\.client_credentials: give exactly one of client_secret_file .* or client_secret/,
    );
  });

  it('checks HTTP issuers with the agent rules', () => {
    const message = rejection(`[[http.issuers]]
issuer = "https://id.example.net"
jwks_uri = "https://id.example.net/certs"
audience = "https://mcp.example.net"
algorithms = ["HS256"]
`);
    expect(message).toMatch(
      /^\/home\/op\/\.config\/mcp\/connector\.toml: http\.issuers\[0\]\.algorithms\[0\]: "HS256" is a shared-secret algorithm/,
    );
  });

  it('checks allowed origins', () => {
    expect(rejection('[http]\nallowed_origins = ["https://claude.ai/"]\n')).toMatch(
      /http\.allowed_origins\[0\]: "https:\/\/claude\.ai\/" is not an origin/,
    );
    expect(
      parse('[http]\nallowed_origins = ["https://claude.ai", "http://localhost:6274"]\n').http.allowedOrigins,
    ).toEqual(['https://claude.ai', 'http://localhost:6274']);
  });

  it('names unknown keys', () => {
    expect(rejection('service_dir = "x"\n')).toMatch(
      /unknown key "service_dir" \(did you mean "services_dir"\?\)/,
    );
  });
});

describe('HTTP mode settings', () => {
  it('require a resource and an issuer', () => {
    expect(() => requireHttpSettings(parse(''))).toThrow(
      /http\.resource: required in HTTP mode[\s\S]*http\.issuers: required in HTTP mode/,
    );
  });

  it('are returned when complete', () => {
    const config = parse(`[http]
resource = "https://mcp.example.net"
[[http.issuers]]
issuer = "https://id.example.net"
discovery = true
audience = "https://mcp.example.net"
`);
    expect(requireHttpSettings(config)).toMatchObject({
      resource: 'https://mcp.example.net',
      issuers: [{ type: 'jwt' }],
    });
  });
});

describe('nodes and the config path', () => {
  it('finds a node by name, or says which exist', () => {
    const config = parse(NODES);
    expect(findNode(config, 'vps1').address).toBe('[2001:db8::1]:7443');
    expect(() => findNode(config, 'vps2')).toThrow(NotFoundError);
    expect(() => findNode(config, 'vps2')).toThrow(/unknown node "vps2": the nodes in .* are node1, vps1/);
  });

  it('defaults to ~/.config/mcp/connector.toml, or MCP_CONFIG', () => {
    expect(defaultConnectorConfigPath(ENV)).toBe('/home/op/.config/mcp/connector.toml');
    expect(defaultConnectorConfigPath({ ...ENV, MCP_CONFIG: '/etc/mcp.toml' })).toBe('/etc/mcp.toml');
  });
});
