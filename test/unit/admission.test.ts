/**
 * The admission policy (agent/admission.ts) and its `[admission]` config section: each rule,
 * the path tricks (`..`, trailing slashes, symlinks on a real temp file system), exceptions
 * and their globs, and the levels. The same checks against a real agent and podman are in
 * test/integration/admission.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdmissionError,
  type AdmissionPolicy,
  type AdmissionRule,
  admissionPolicy,
  admitContainer,
  admitServiceSpec,
  agentStatePaths,
  assertServicesAdmitted,
  resolveExisting,
} from '../../agent/admission.js';
import { type AgentConfig, parseAgentConfig } from '../../agent/config.js';
import type { ContainerDetails } from '../../agent/runtime/runtime.js';
import { InvalidArgumentError } from '../../core/errors.js';
import type { ComponentSpec } from '../../gen/mcp/v1/mcp.js';
import { component, serviceSpec } from '../support/specs.js';

let dir: string;
let filesRoot: string;

beforeAll(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-admission-')));
  filesRoot = path.join(dir, 'srv');
  fs.mkdirSync(path.join(filesRoot, 'web', 'data'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'shared'), { recursive: true });
  // A link inside the service's own directory that leads to /etc, and one that stays inside.
  fs.symlinkSync('/etc', path.join(filesRoot, 'web', 'etc-link'));
  fs.symlinkSync(path.join(filesRoot, 'web', 'data'), path.join(filesRoot, 'web', 'data-link'));
  // A directory elsewhere that links into the service's directory.
  fs.symlinkSync(path.join(filesRoot, 'web'), path.join(dir, 'web-alias'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function config(admission = ''): AgentConfig {
  const text = `node_name = "node1"
database = "/var/lib/mcp-agent/registry.db"
[server]
tls_cert = "/etc/mcp-agent/tls/agent.crt"
tls_key = "/etc/mcp-agent/tls/agent.key"

[[issuers]]
issuer = "https://id.example.net/realms/homelab"
discovery = true
audience = "https://mcp.example.net"

[files]
root = "${filesRoot}"

[backups]
dir = "/var/backups/mcp-agent"

${admission}`;
  return parseAgentConfig(text, '/etc/mcp-agent/agent.toml', {});
}

function policy(admission = ''): AdmissionPolicy {
  return admissionPolicy(config(admission));
}

/** The rules `fields` of one component of `service` break. */
function rules(
  fields: Partial<ComponentSpec>,
  p: AdmissionPolicy = policy(),
  service = 'web',
): AdmissionRule[] {
  return admitServiceSpec(service, serviceSpec(service, [component('app', fields)]), p).map((v) => v.rule);
}

function messages(fields: Partial<ComponentSpec>, p: AdmissionPolicy = policy(), service = 'web'): string {
  return admitServiceSpec(service, serviceSpec(service, [component('app', fields)]), p)
    .map((v) => v.message)
    .join('\n');
}

describe('restricted (the default): bind mounts', () => {
  it("admits binds inside the service's own directory, read-only or not", () => {
    expect(rules({ volumes: [`${filesRoot}/web:/data`, `${filesRoot}/web/data:/d:ro`] })).toEqual([]);
    expect(rules({ volumes: [`${filesRoot}/web/not-yet-there:/n`] })).toEqual([]);
  });

  it("refuses another service's directory and the files root itself", () => {
    expect(rules({ volumes: [`${filesRoot}/shop:/data`] })).toEqual(['bind-outside-allowed']);
    expect(rules({ volumes: [`${filesRoot}:/all`] })).toEqual(['bind-outside-allowed']);
    expect(rules({ volumes: [`${filesRoot}/webx:/data`] })).toEqual(['bind-outside-allowed']);
  });

  it('refuses / , /etc and the rest, naming the rule and the setting that would allow it', () => {
    expect(messages({ volumes: ['/:/host'], user: '0' })).toBe(
      [
        `component "app": volume "/:/host" mounts /, the host's whole file system, which the restricted admission policy refuses; no exception allows it but to allow it anyway for this service add [[admission.exceptions]] services = ["web"] level = "privileged" to agent.toml`,
        `component "app": user "0" is root, which the restricted admission policy refuses (give a non-root uid such as 1000:1000); to allow it for this service add [[admission.exceptions]] services = ["web"] allow_root_user = true to agent.toml`,
      ].join('\n'),
    );
    expect(messages({ volumes: ['/etc:/hostetc:rw'] })).toBe(
      'component "app": volume "/etc:/hostetc:rw" mounts /etc, which the restricted admission policy refuses (host system directory); to allow it for this service add [[admission.exceptions]] services = ["web"] allow_bind = ["/etc"] to agent.toml',
    );
    for (const source of [
      '/root',
      '/proc',
      '/sys',
      '/dev',
      '/boot',
      '/usr/bin',
      '/etc/ssl',
      '/var/lib/containers',
    ]) {
      expect(rules({ volumes: [`${source}:/x:ro`] }), source).toEqual(['protected-path']);
    }
  });

  it("refuses the runtime's sockets and their parents", () => {
    for (const source of [
      '/run/podman/podman.sock',
      '/var/run/docker.sock',
      '/run/docker.sock',
      '/run/podman',
      '/run',
      '/var/run',
      '/var',
      '/var/lib',
    ]) {
      expect(rules({ volumes: [`${source}:/x`] }), source).toEqual(['protected-path']);
    }
    expect(messages({ volumes: ['/run:/r'] })).toContain(
      "mounts /run, which contains /run/podman (the container runtime's sockets and state)",
    );
  });

  it("refuses the agent's own state: database directory, backups, config and TLS key", () => {
    const paths = agentStatePaths(config());
    expect(paths).toEqual(
      expect.arrayContaining(['/var/lib/mcp-agent', '/var/backups/mcp-agent', '/etc/mcp-agent/agent.toml']),
    );
    for (const source of ['/var/lib/mcp-agent', '/var/lib/mcp-agent/backups', '/var/backups/mcp-agent']) {
      expect(messages({ volumes: [`${source}:/x:ro`] }), source).toContain("(the agent's own state)");
    }
  });

  it('protects the database files one by one when the files root lies in its directory', () => {
    const shared = parseAgentConfig(
      `node_name = "n"\ndatabase = "${dir}/registry.db"\n[server]\ntls_cert = "${dir}/a.crt"\ntls_key = "${dir}/a.key"\n` +
        `[[issuers]]\nissuer = "https://id.example.net"\ndiscovery = true\naudience = "x"\n[files]\nroot = "${filesRoot}"\n`,
      `${dir}/agent.toml`,
      {},
    );
    expect(agentStatePaths(shared)).toEqual(
      expect.arrayContaining([
        `${dir}/registry.db`,
        `${dir}/registry.db-wal`,
        `${dir}/agent.toml`,
        `${dir}/a.key`,
      ]),
    );
    expect(agentStatePaths(shared)).not.toContain(dir);
    const p = admissionPolicy(shared);
    expect(rules({ volumes: [`${filesRoot}/web:/data`] }, p)).toEqual([]);
    expect(rules({ volumes: [`${dir}:/all:ro`] }, p)).toEqual(['protected-path']);
  });

  it('compares normalized paths: .., repeated and trailing slashes', () => {
    expect(rules({ volumes: [`${filesRoot}/web/../../../../etc:/x`] })).toEqual(['protected-path']);
    expect(rules({ volumes: ['/etc/:/x'] })).toEqual(['protected-path']);
    expect(rules({ volumes: ['//etc//:/x'] })).toEqual(['protected-path']);
    expect(rules({ volumes: [`${filesRoot}/web/./data/:/x`] })).toEqual([]);
    expect(rules({ volumes: [`${filesRoot}/web/../shop:/x`] })).toEqual(['bind-outside-allowed']);
  });

  it('follows symlinks: one leading out is refused, one staying inside is not', () => {
    expect(messages({ volumes: [`${filesRoot}/web/etc-link:/x`] })).toContain(
      `mounts /etc (${filesRoot}/web/etc-link resolves to /etc)`,
    );
    expect(rules({ volumes: [`${filesRoot}/web/etc-link/ssl:/x`] })).toEqual(['protected-path']);
    expect(rules({ volumes: [`${filesRoot}/web/data-link:/x`] })).toEqual([]);
    // Written outside, resolving inside: the path as written must pass too.
    expect(rules({ volumes: [`${dir}/web-alias/data:/x`] })).toEqual(['bind-outside-allowed']);
    expect(resolveExisting(`${filesRoot}/web/etc-link/not/there/`)).toBe('/etc/not/there');
  });

  it('admits allowed_bind_roots for every service, and read-only ones only read-only', () => {
    const p = policy(`[admission]\nallowed_bind_roots = ["${dir}/shared", "/srv/media:ro"]`);
    expect(rules({ volumes: [`${dir}/shared/x:/x`] }, p)).toEqual([]);
    expect(rules({ volumes: [`${dir}/shared:/x`] }, p, 'shop')).toEqual([]);
    expect(rules({ volumes: ['/srv/media/films:/films:ro'] }, p)).toEqual([]);
    expect(rules({ volumes: ['/srv/media/films:/films'] }, p)).toEqual(['read-only-bind']);
    expect(messages({ volumes: ['/srv/media:/m:rw'] }, p)).toContain('add :ro to the volume');
    // An allowed root does not lift the protection of a system path.
    expect(rules({ volumes: ['/etc:/x:ro'] }, policy('[admission]\nallowed_bind_roots = ["/etc"]'))).toEqual([
      'protected-path',
    ]);
  });

  it('refuses named volumes (a local volume can hide a bind of any host directory)', () => {
    expect(rules({ volumes: ['data:/data'] })).toEqual(['named-volume']);
  });
});

describe('restricted: user, network, ports', () => {
  it.each([
    ['0', true],
    ['0:0', true],
    ['root', true],
    ['root:1000', true],
    ['000', true],
    ['1000:0', false],
    ['65534:65534', false],
    ['', false],
  ])('user %j is refused: %s', (user, refused) => {
    expect(rules({ user })).toEqual(refused ? ['root-user'] : []);
  });

  it('refuses the host network and host ports below 1024', () => {
    expect(messages({ network: 'host' })).toBe(
      `component "app": network "host" shares the node's network stack, which the restricted admission policy refuses; to allow it for this service add [[admission.exceptions]] services = ["web"] allow_host_network = true to agent.toml`,
    );
    expect(rules({ network: 'HOST' })).toEqual(['host-network']);
    expect(rules({ network: 'backend' })).toEqual([]);
    expect(rules({ ports: ['127.0.0.1:80:8080', '[::1]:443:8443', '53:53/udp', '8080:80'] })).toEqual([
      'privileged-port',
      'privileged-port',
      'privileged-port',
    ]);
  });
});

describe('exceptions', () => {
  const exceptions = `[admission]
[[admission.exceptions]]
services = ["backup"]
allow_bind = ["/var/backups:ro"]

[[admission.exceptions]]
services = ["edge-*"]
allow_host_network = true
allow_host_ports = [80, 443]

[[admission.exceptions]]
services = ["web"]
allow_bind = ["/etc/ssl"]
allow_root_user = true

[[admission.exceptions]]
services = ["infra-*"]
level = "privileged"
`;
  const p = () => policy(exceptions);

  it('allow_bind admits the named directory for the matching service only', () => {
    expect(rules({ volumes: ['/var/backups/db:/backups:ro'] }, p(), 'backup')).toEqual([]);
    expect(rules({ volumes: ['/var/backups/db:/backups'] }, p(), 'backup')).toEqual(['read-only-bind']);
    expect(rules({ volumes: ['/var/backups/db:/backups:ro'] }, p(), 'web')).toEqual(['bind-outside-allowed']);
    // /var/backups itself holds the agent's own snapshots here (backups.dir): still refused.
    expect(messages({ volumes: ['/var/backups:/backups:ro'] }, p(), 'backup')).toContain(
      "contains /var/backups/mcp-agent (the agent's own state)",
    );
    expect(rules({ volumes: ['/var:/v:ro'] }, p(), 'backup')).toEqual(['protected-path']);
  });

  it('allow_bind inside a protected path lifts it for that path, not for its parent', () => {
    expect(rules({ volumes: ['/etc/ssl/certs:/certs:ro'] }, p(), 'web')).toEqual([]);
    expect(rules({ volumes: ['/etc:/e:ro'] }, p(), 'web')).toEqual(['protected-path']);
    expect(rules({ volumes: ['/etc/ssl:/ssl'] }, p(), 'shop')).toEqual(['protected-path']);
  });

  it('globs match service names as RBAC does', () => {
    expect(rules({ network: 'host', ports: ['80:80', '443:443'] }, p(), 'edge-proxy')).toEqual([]);
    expect(rules({ ports: ['22:22'] }, p(), 'edge-proxy')).toEqual(['privileged-port']);
    expect(rules({ network: 'host' }, p(), 'edge')).toEqual(['host-network']);
    expect(rules({ user: '0' }, p(), 'web')).toEqual([]);
    expect(rules({ user: '0' }, p(), 'web-2')).toEqual(['root-user']);
  });

  it('a level in an exception applies to the matching services', () => {
    expect(rules({ volumes: ['/:/host'], user: '0', network: 'host' }, p(), 'infra-dns')).toEqual([]);
  });
});

describe('levels', () => {
  const risky: Partial<ComponentSpec> = {
    volumes: ['/srv/anything:/a', '/etc:/e'],
    user: '0',
    ports: ['80:80'],
    network: 'host',
  };

  it('baseline refuses host namespaces and protected paths but admits other host paths, root and low ports', () => {
    expect(rules(risky, policy('[admission]\nlevel = "baseline"'))).toEqual([
      'host-network',
      'protected-path',
    ]);
  });

  it('privileged refuses nothing', () => {
    expect(rules(risky, policy('[admission]\nlevel = "privileged"'))).toEqual([]);
  });

  it('restricted refuses all of it', () => {
    expect(rules(risky)).toEqual([
      'host-network',
      'bind-outside-allowed',
      'protected-path',
      'root-user',
      'privileged-port',
    ]);
  });
});

describe('containers found on the node (adopt)', () => {
  const clean: ContainerDetails = {
    init: false,
    stopTimeoutSeconds: undefined,
    name: 'web-app',
    id: 'abc',
    image: 'localhost/bb:v1',
    imageId: 'sha256:1',
    state: 'running',
    command: [],
    cmd: [],
    ports: ['127.0.0.1:8080:80/tcp'],
    volumes: [],
    env: {},
    network: 'podman',
    user: '',
    restart: 'no',
    hostAccess: {
      privileged: false,
      capAdd: [],
      devices: [],
      pidMode: 'private',
      ipcMode: 'shareable',
      utsMode: 'private',
      securityOpt: [],
      mounts: [],
    },
  };
  const host = clean.hostAccess!;
  const ruleOf = (details: ContainerDetails, p = policy()) =>
    admitContainer('web', details, p).map((v) => v.rule);

  it('admits a container that asks nothing of the host', () => {
    expect(ruleOf(clean)).toEqual([]);
  });

  it('refuses privileged mode, added capabilities, devices, host namespaces and unconfined options', () => {
    expect(
      ruleOf({
        ...clean,
        network: 'container:abc',
        hostAccess: {
          ...host,
          privileged: true,
          capAdd: ['CAP_SYS_ADMIN', 'NET_BIND_SERVICE'],
          devices: ['/dev/sda'],
          pidMode: 'host',
          utsMode: 'host',
          ipcMode: 'ns:/proc/1/ns/ipc',
          securityOpt: ['seccomp=unconfined', 'label=disable', 'no-new-privileges'],
        },
      }),
    ).toEqual([
      'host-namespace',
      'host-namespace',
      'host-namespace',
      'host-namespace',
      'privileged',
      'capability',
      'device',
      'security-option',
      'security-option',
    ]);
  });

  it('baseline admits the default capabilities, restricted only NET_BIND_SERVICE', () => {
    const withCaps = {
      ...clean,
      hostAccess: { ...host, capAdd: ['CAP_CHOWN', 'NET_BIND_SERVICE', 'NET_ADMIN'] },
    };
    expect(ruleOf(withCaps, policy('[admission]\nlevel = "baseline"'))).toEqual(['capability']);
    expect(ruleOf(withCaps)).toEqual(['capability', 'capability']);
  });

  it('checks every mount: binds by source, named volumes, tmpfs left alone', () => {
    const mounts = [
      { type: 'bind', source: '/etc', destination: '/x', name: '', readOnly: true },
      { type: 'bind', source: `${filesRoot}/web/data`, destination: '/d', name: '', readOnly: false },
      {
        type: 'volume',
        source: '/var/lib/containers/storage/volumes/v/_data',
        destination: '/v',
        name: 'v',
        readOnly: false,
      },
      { type: 'tmpfs', source: '', destination: '/t', name: '', readOnly: false },
    ];
    expect(
      admitContainer('web', { ...clean, hostAccess: { ...host, mounts } }, policy()).map((v) => v.message),
    ).toEqual([
      `container "web-app": volume "/etc:/x:ro" mounts /etc, which the restricted admission policy refuses (host system directory); to allow it for this service add [[admission.exceptions]] services = ["web"] allow_bind = ["/etc:ro"] to agent.toml`,
      expect.stringContaining('volume "v:/v" is a named volume'),
    ]);
  });

  it('falls back to the normalised binds when the runtime gave no details', () => {
    const { hostAccess: _, ...bare } = clean;
    expect(
      ruleOf({ ...bare, volumes: ['/etc:/x:ro'], user: 'root', network: 'host', ports: ['22:22/tcp'] }),
    ).toEqual(['host-network', 'protected-path', 'root-user', 'privileged-port']);
  });
});

describe('the thrower', () => {
  it('throws FAILED_PRECONDITION listing every violation of every spec', () => {
    const specs = [
      serviceSpec('web', [component('app', { volumes: ['/etc:/hostetc:rw'] })]),
      serviceSpec('api', [component('app', { network: 'host' })]),
    ];
    let error: unknown;
    try {
      assertServicesAdmitted(config(), specs);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AdmissionError);
    expect((error as AdmissionError).code).toBe('FAILED_PRECONDITION');
    expect((error as AdmissionError).violations.map((v) => v.rule)).toEqual([
      'protected-path',
      'host-network',
    ]);
    expect((error as Error).message.split('\n')).toHaveLength(2);
    expect(() => assertServicesAdmitted(config(), [serviceSpec('web', [component('app')])])).not.toThrow();
  });
});

describe('[admission] in agent.toml', () => {
  function rejection(admission: string): string {
    try {
      config(admission);
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidArgumentError);
      return (err as Error).message;
    }
    throw new Error('expected an InvalidArgumentError, but the config was accepted');
  }

  it('reads levels, roots and exceptions, normalizing paths', () => {
    const parsed = config(`[admission]
level = "baseline"
allowed_bind_roots = ["/srv/shared/", "/srv/media:ro"]
[[admission.exceptions]]
services = ["backup", "db-*"]
allow_bind = ["/var/backups:ro"]
allow_host_ports = [443]
`).admission;
    expect(parsed).toEqual({
      level: 'baseline',
      allowedBindRoots: [
        { path: '/srv/shared', readOnly: false },
        { path: '/srv/media', readOnly: true },
      ],
      exceptions: [
        {
          services: ['backup', 'db-*'],
          allowBind: [{ path: '/var/backups', readOnly: true }],
          allowHostNetwork: false,
          allowRootUser: false,
          allowHostPorts: [443],
        },
      ],
    });
  });

  it('takes the level from MCP_AGENT_ADMISSION_LEVEL', () => {
    const text = `node_name = "n"\n[server]\ntls_cert = "/a"\ntls_key = "/b"\n[[issuers]]\nissuer = "https://i.example"\ndiscovery = true\naudience = "x"\n`;
    expect(
      parseAgentConfig(text, '/etc/mcp-agent/agent.toml', { MCP_AGENT_ADMISSION_LEVEL: 'baseline' }).admission
        .level,
    ).toBe('baseline');
  });

  it.each([
    ['[admission]\nlevel = "lax"', /admission\.level.*use one of "restricted", "baseline", "privileged"/],
    ['[admission]\nallowed_bind_roots = ["srv/shared"]', /"srv\/shared" is not absolute/],
    ['[admission]\nallowed_bind_roots = ["/srv/../etc"]', /contains a "\.\." segment/],
    ['[admission]\nallowed_bind_roots = ["/"]', /would allow every host path/],
    ['[admission]\nallowed_bind_roots = ["/srv:rx"]', /only :ro or :rw may follow the path/],
    ['[[admission.exceptions]]\nservices = ["web"]', /this exception allows nothing/],
    [
      '[[admission.exceptions]]\nservices = []\nallow_root_user = true',
      /admission\.exceptions\[0\]\.services/,
    ],
    ['[[admission.exceptions]]\nservices = ["web"]\nallow_host_ports = [8080]', /only ports below 1024/],
    ['[admission]\nallow_everything = true', /allow_everything/],
  ])('refuses %j', (admission, message) => {
    expect(rejection(admission)).toMatch(message);
  });
});
