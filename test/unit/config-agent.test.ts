import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AgentConfig, loadAgentConfig, parseAgentConfig } from '../../agent/config.js';
import { InvalidArgumentError, NotFoundError } from '../../core/errors.js';

const FILE = '/etc/mcp-agent/agent.toml';
const ENV = { HOME: '/home/op' };

const ISSUER = `[[issuers]]
issuer = "https://id.example.net/realms/homelab"
discovery = true
audience = "https://mcp.example.net"
`;

const MINIMAL = `node_name = "node1"

[server]
tls_cert = "tls/agent.crt"
tls_key = "/etc/ssl/agent.key"

${ISSUER}`;

function parse(text: string, env: Record<string, string> = ENV): AgentConfig {
  return parseAgentConfig(text, FILE, env);
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

/** MINIMAL with its issuer replaced by `issuer`. */
const withIssuer = (issuer: string) => MINIMAL.replace(ISSUER, issuer);

describe('agent config defaults', () => {
  it('fills every default from a minimal file', () => {
    expect(parse(MINIMAL)).toEqual({
      configFile: FILE,
      nodeName: 'node1',
      logLevel: 'info',
      server: {
        listen: '127.0.0.1:7443',
        tlsCert: '/etc/mcp-agent/tls/agent.crt',
        tlsKey: '/etc/ssl/agent.key',
        clientCa: undefined,
        shutdownGraceSeconds: 10,
      },
      database: '/var/lib/mcp-agent/registry.db',
      containerRuntime: 'podman',
      runtimePath: undefined,
      insecureRegistries: [],
      issuers: [
        {
          type: 'jwt',
          issuer: 'https://id.example.net/realms/homelab',
          jwksUri: undefined,
          discovery: true,
          keyFile: undefined,
          audience: ['https://mcp.example.net'],
          algorithms: ['RS256', 'ES256', 'EdDSA'],
          clockToleranceSeconds: 60,
          subjectClaim: 'sub',
          rolesClaim: 'roles',
          typ: undefined,
          caFile: undefined,
        },
      ],
      rbac: { roles: [], bindings: [] },
      monitor: {
        enabled: true,
        intervalSeconds: 30,
        flapThreshold: 3,
        flapWindowSeconds: 600,
        cooldownSeconds: 900,
        eventRetentionDays: 30,
        alertCommand: undefined,
        alertTimeoutSeconds: 10,
      },
      files: { root: '/srv', maxFileBytes: 4 * 1024 ** 3, chunkBytes: 262_144 },
      backups: { dir: '/var/lib/mcp-agent/backups', keep: 7 },
      admission: { level: 'restricted', allowedBindRoots: [], exceptions: [] },
      audit: { anchorIntervalSeconds: 3600 },
    });
  });

  it('resolves relative paths against the config file directory and ~ against HOME', () => {
    const config = parse(`${MINIMAL.replace('"/etc/ssl/agent.key"', '"~/agent.key"')}
[files]
root = "../srv"
[backups]
dir = "./backups"
`);
    expect(config.server.tlsCert).toBe('/etc/mcp-agent/tls/agent.crt');
    expect(config.server.tlsKey).toBe('/home/op/agent.key');
    expect(config.files.root).toBe('/etc/srv');
    expect(config.backups.dir).toBe('/etc/mcp-agent/backups');
  });

  it('keeps a bare runtime_path for PATH lookup, and resolves one with a slash', () => {
    const top = (line: string) => `${line}\n${MINIMAL}`;
    expect(parse(top('runtime_path = "podman"')).runtimePath).toBe('podman');
    expect(parse(top('runtime_path = "bin/podman"')).runtimePath).toBe('/etc/mcp-agent/bin/podman');
    expect(parse(top('database = "registry.db"')).database).toBe('/etc/mcp-agent/registry.db');
  });

  it('reads issuer key and CA files relative to the config file', () => {
    const config = parse(
      withIssuer(`[[issuers]]
issuer = "https://id.example.net"
key_file = "keys/idp.jwk"
audience = ["https://mcp.example.net", "mcp"]
algorithms = ["ES256"]
subject_claim = "azp"
roles_claim = "realm_access.roles"
typ = "at+jwt"

[[issuers]]
issuer = "https://other-id.example.net"
jwks_uri = "https://other-id.example.net/jwks"
ca_file = "ca.pem"
audience = "https://mcp.example.net"
`),
    );
    // A CA file is for fetching keys over TLS, so it goes with jwks_uri or discovery, not key_file.
    expect(config.issuers[1]).toMatchObject({ caFile: '/etc/mcp-agent/ca.pem' });
    expect(config.issuers[0]).toMatchObject({
      keyFile: '/etc/mcp-agent/keys/idp.jwk',
      audience: ['https://mcp.example.net', 'mcp'],
      algorithms: ['ES256'],
      subjectClaim: 'azp',
      rolesClaim: 'realm_access.roles',
      typ: 'at+jwt',
    });
  });

  it('reads an MCIAS issuer with its defaults, over http on loopback', () => {
    const config = parse(
      withIssuer(`[[issuers]]
type = "mcias"
name = "mcias"
server_url = "http://127.0.0.1:8443"
`),
    );
    expect(config.issuers).toEqual([
      {
        type: 'mcias',
        name: 'mcias',
        serverUrl: 'http://127.0.0.1:8443',
        caFile: undefined,
        audience: undefined,
        cacheSeconds: 30,
      },
    ]);
  });
});

describe('agent config environment overrides', () => {
  const env = {
    ...ENV,
    MCP_AGENT_NODE_NAME: 'node7',
    MCP_AGENT_LISTEN: '0.0.0.0:9443',
    MCP_AGENT_DATABASE: 'relative/registry.db',
    MCP_AGENT_LOG_LEVEL: 'debug',
    MCP_AGENT_RUNTIME: 'docker',
    MCP_AGENT_FILES_ROOT: '/data/srv',
    MCP_AGENT_MONITOR_ENABLED: 'false',
    MCP_AGENT_MONITOR_INTERVAL_SECONDS: '5',
  };

  it('override the file, and relative paths from the environment resolve against the working directory', () => {
    const config = parse(MINIMAL, env);
    expect(config).toMatchObject({
      nodeName: 'node7',
      logLevel: 'debug',
      server: { listen: '0.0.0.0:9443' },
      database: resolve('relative/registry.db'),
      containerRuntime: 'docker',
      files: { root: '/data/srv' },
      monitor: { enabled: false, intervalSeconds: 5 },
    });
  });

  it('can supply a setting the file lacks', () => {
    expect(
      parse(MINIMAL.replace('node_name = "node1"', ''), { ...ENV, MCP_AGENT_NODE_NAME: 'n2' }).nodeName,
    ).toBe('n2');
  });

  it('ignores empty variables', () => {
    expect(parse(MINIMAL, { ...ENV, MCP_AGENT_NODE_NAME: '' }).nodeName).toBe('node1');
  });

  it('name the variable when its value is invalid', () => {
    expect(rejection(MINIMAL, { ...ENV, MCP_AGENT_LISTEN: 'everywhere' })).toMatch(
      /^\/etc\/mcp-agent\/agent\.toml: server\.listen \(from MCP_AGENT_LISTEN\): "everywhere" is not an address/,
    );
    expect(rejection(MINIMAL, { ...ENV, MCP_AGENT_RUNTIME: 'lxc' })).toMatch(
      /container_runtime \(from MCP_AGENT_RUNTIME\): expected one of "podman", "docker"/,
    );
    expect(rejection(MINIMAL, { ...ENV, MCP_AGENT_MONITOR_ENABLED: 'maybe' })).toBe(
      'MCP_AGENT_MONITOR_ENABLED="maybe": expected true or false',
    );
    expect(rejection(MINIMAL, { ...ENV, MCP_AGENT_MONITOR_INTERVAL_SECONDS: '5s' })).toBe(
      'MCP_AGENT_MONITOR_INTERVAL_SECONDS="5s": expected an integer',
    );
  });
});

describe('agent config rejections', () => {
  it('refuses a config without issuers, saying why', () => {
    for (const text of [MINIMAL.replace(ISSUER, ''), `issuers = []\n${MINIMAL.replace(ISSUER, '')}`]) {
      expect(rejection(text)).toMatch(
        /^\/etc\/mcp-agent\/agent\.toml: issuers: at least one \[\[issuers\]\] entry is required: the agent authenticates every call/,
      );
    }
  });

  it.each([
    ['none', /"none" means unsigned tokens/],
    ['HS256', /"HS256" is a shared-secret algorithm/],
    ['hs512', /"hs512" is a shared-secret algorithm/],
    ['RS1', /unsupported algorithm "RS1": use one of RS256/],
  ])('rejects algorithm %s', (alg, message) => {
    const text = withIssuer(`${ISSUER}algorithms = ["ES256", "${alg}"]\n`);
    expect(rejection(text)).toMatch(
      new RegExp(`^${FILE}: issuers\\[0\\]\\.algorithms\\[1\\]: ${message.source}`),
    );
  });

  it('rejects an alert command given as a string', () => {
    expect(rejection(`${MINIMAL}[monitor]\nalert_command = "notify-send alert"\n`)).toMatch(
      /^\/etc\/mcp-agent\/agent\.toml: monitor\.alert_command: use an array: no shell is involved/,
    );
    expect(
      parse(`${MINIMAL}[monitor]\nalert_command = ["/bin/notify", "x y"]\n`).monitor.alertCommand,
    ).toEqual(['/bin/notify', 'x y']);
  });

  it.each([
    [
      'no audience',
      ISSUER.replace('audience = "https://mcp.example.net"\n', ''),
      /issuers\[0\]\.audience: required: the resource identifier/,
    ],
    [
      'an empty audience list',
      ISSUER.replace('"https://mcp.example.net"', '[]'),
      /issuers\[0\]\.audience: give at least one audience/,
    ],
    [
      'no key source',
      ISSUER.replace('discovery = true\n', ''),
      /issuers\[0\]: give exactly one of jwks_uri, discovery = true or key_file/,
    ],
    [
      'two key sources',
      ISSUER.replace('discovery = true', 'discovery = true\nkey_file = "k.pem"'),
      /found discovery = true, key_file/,
    ],
    ['an http issuer', ISSUER.replace('https://id.example.net', 'http://id.example.net'), /must use https/],
    [
      'an unknown type',
      `${ISSUER}type = "saml"\n`,
      /issuers\[0\]\.type: expected "jwt" \(the default\) or "mcias"/,
    ],
    [
      'an unknown subject claim',
      `${ISSUER}subject_claim = "email"\n`,
      /subject_claim: expected one of "sub", "azp", "client_id"/,
    ],
    [
      'a jwt key on an mcias issuer',
      `[[issuers]]\ntype = "mcias"\nname = "m"\nserver_url = "https://m.example"\ndiscovery = true\n`,
      /issuers\[0\]: unknown key "discovery"/,
    ],
    [
      'the same issuer twice',
      `${ISSUER}${ISSUER}`,
      /issuers\[1\]: issuer "https:\/\/id\.example\.net\/realms\/homelab" is configured twice/,
    ],
  ])('rejects an issuer with %s', (_case, issuer, message) => {
    expect(rejection(withIssuer(issuer))).toMatch(message);
  });

  it('names an unknown key and suggests the one meant', () => {
    expect(rejection(MINIMAL.replace('tls_key', 'tls_kye'))).toMatch(
      /^\/etc\/mcp-agent\/agent\.toml: server: unknown key "tls_kye" \(did you mean "tls_key"\?\); allowed keys here: listen, tls_cert, tls_key, client_ca, shutdown_grace_seconds$/m,
    );
  });

  it('requires the TLS settings', () => {
    const message = rejection(MINIMAL.replace(/\[server\][^[]*/, ''));
    expect(message).toMatch(
      /^\/etc\/mcp-agent\/agent\.toml: server: required: add a \[server\] table with tls_cert and tls_key/,
    );
  });

  it('checks node name, log level and listen address', () => {
    const message = rejection(
      MINIMAL.replace('"node1"', '"node 1"').replace(
        '[server]',
        'log_level = "trace"\n[server]\nlisten = "7443"',
      ),
    );
    expect(message.split('\n')).toEqual([
      expect.stringMatching(/node_name: "node 1" is not a valid name/),
      expect.stringMatching(
        /log_level: expected one of "debug", "info", "warn", "error", got the string "trace"/,
      ),
      expect.stringMatching(/server\.listen: "7443" is not an address: expected host:port/),
    ]);
  });

  it('checks that bindings name configured issuers and defined roles', () => {
    const message = rejection(`${MINIMAL}
[[rbac.roles]]
name = "viewer"
permissions = ["service.list"]

[[rbac.bindings]]
issuer = "https://other.example"
subject = "alice"
roles = ["viewer", "deployer"]
`);
    expect(message).toMatch(
      /rbac\.bindings\[0\]\.issuer: "https:\/\/other\.example" is not a configured issuer/,
    );
    expect(message).toMatch(/rbac\.bindings\[0\]\.roles\[1\]: role "deployer" is not defined/);
  });

  it('reads roles and bindings', () => {
    const config = parse(`${MINIMAL}
[[rbac.roles]]
name = "web-deployer"
permissions = ["service.deploy"]
services = ["web-*"]

[[rbac.bindings]]
issuer = "https://id.example.net/realms/homelab"
subject = "ci"
roles = ["web-deployer"]
`);
    expect(config.rbac).toEqual({
      roles: [{ name: 'web-deployer', permissions: ['service.deploy'], services: ['web-*'] }],
      bindings: [{ issuer: 'https://id.example.net/realms/homelab', subject: 'ci', roles: ['web-deployer'] }],
    });
  });

  it('reports a TOML syntax error with file, line and column', () => {
    expect(rejection(`${MINIMAL}\n[monitor\n`)).toMatch(
      /^\/etc\/mcp-agent\/agent\.toml: line 12, column \d+: invalid TOML/,
    );
  });
});

describe('loadAgentConfig', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mcp-agent-config-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the file and resolves paths against its directory', async () => {
    const file = join(dir, 'agent.toml');
    await writeFile(file, MINIMAL);
    const config = await loadAgentConfig(file, ENV);
    expect(config.configFile).toBe(file);
    expect(config.server.tlsCert).toBe(join(dir, 'tls', 'agent.crt'));
  });

  it('says how to get a config when the file is missing', async () => {
    const file = join(dir, 'missing.toml');
    await expect(loadAgentConfig(file, ENV)).rejects.toThrow(NotFoundError);
    await expect(loadAgentConfig(file, ENV)).rejects.toThrow(
      /agent config not found: create it \(see deploy\/examples\/agent\.toml/,
    );
  });
});
