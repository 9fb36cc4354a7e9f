import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../core/errors.js';
import {
  assertValidServiceSpec,
  imageVersion,
  parsePortMapping,
  parseVolumeMapping,
  SPEC_LIMITS,
  validateServiceSpec,
} from '../../core/spec.js';
import { ComponentSpec, type ServiceSpec } from '../../gen/mcp/v1/mcp.js';

function component(overrides: Partial<ComponentSpec> = {}): ComponentSpec {
  return ComponentSpec.fromPartial({ name: 'app', image: '127.0.0.1:5000/bb:v1', ...overrides });
}

function spec(...components: ComponentSpec[]): ServiceSpec {
  return { name: 'web', active: true, components: components.length > 0 ? components : [component()] };
}

function issuesOf(s: ServiceSpec): string[] {
  return validateServiceSpec(s).map((issue) => `${issue.path}: ${issue.message}`);
}

describe('validateServiceSpec', () => {
  it('accepts a complete, realistic spec', () => {
    const s = spec(
      component({
        network: 'web_net',
        user: '1000:1000',
        restart: 'on-failure:5',
        ports: ['127.0.0.1:18080:80', '8443:443/tcp', '[::1]:5353:53/udp'],
        volumes: ['/srv/web/data:/data', '/srv/web/conf:/etc/conf:ro,Z'],
        cmd: ['/bin/httpd', '-f', '-p', '80'],
        env: { TZ: 'UTC', _PRIVATE: 'x y; z' },
      }),
      component({ name: 'cron', image: 'registry.example.net/team/cron@sha256:'.concat('a'.repeat(64)) }),
    );
    expect(validateServiceSpec(s)).toEqual([]);
  });

  it('requires a service name and at least one component', () => {
    expect(issuesOf({ name: '', components: [] })).toEqual([
      expect.stringMatching(/^name: required/),
      expect.stringMatching(/^components: at least one component is required/),
    ]);
  });

  it.each(['web;rm -rf', 'Web', '-web', 'web_app', 'web app', 'a'.repeat(64)])(
    'rejects the service name %j',
    (name) => {
      expect(issuesOf({ ...spec(), name })).toEqual([expect.stringMatching(/^name: /)]);
    },
  );

  it('rejects duplicate component names, pointing at the second one', () => {
    expect(issuesOf(spec(component(), component({ name: 'db' }), component()))).toEqual([
      expect.stringMatching(/^components\[2\]\.name: "app" is already the name of components\[0\]/),
    ]);
  });

  it.each([
    ['', /required/],
    ['bb:v1; rm -rf /', /whitespace/],
    ['bb:$(id)', /shell metacharacters/],
    ['bb`id`', /shell metacharacters/],
    ['--privileged', /starts with '-'/],
    ['Registry.Example/Web:v1', /not a valid image reference/],
    ['bb:', /not a valid image reference/],
  ])('rejects the image %j', (image, message) => {
    const issues = validateServiceSpec(spec(component({ image })));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('components[0].image');
    expect(issues[0]?.message).toMatch(message);
  });

  it.each([
    ['ports', '80', /both required/],
    ['ports', '0:80', /out of range/],
    ['ports', '8080:65536', /out of range/],
    ['ports', '8080:80/sctp', /unknown protocol/],
    ['ports', 'localhost:8080:80', /not an IPv4 address/],
    ['ports', '::1:8080:80', /brackets/],
    ['volumes', 'data:/data', /not absolute/],
    ['volumes', '/srv/../etc:/etc', /"\.\." segment/],
    ['volumes', '/srv/web:/data:rw,ro', /contradict/],
    ['volumes', '/srv/web:/data:exec', /unknown mount option "exec"/],
    ['volumes', '/srv/web', /both required/],
  ] as const)('rejects %s entry %j, naming its index', (field, value, message) => {
    const valid = field === 'ports' ? '127.0.0.1:8080:80' : '/srv/web:/web';
    const issues = validateServiceSpec(spec(component({ [field]: [valid, value] })));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe(`components[0].${field}[1]`);
    expect(issues[0]?.message).toMatch(message);
  });

  it.each([
    ['restart', 'sometimes'],
    ['restart', 'on-failure:0'],
    ['user', 'root;id'],
    ['user', '1000:'],
    ['network', 'container:other'],
    ['network', '-net'],
  ] as const)('rejects %s %j', (field, value) => {
    expect(issuesOf(spec(component({ [field]: value })))).toEqual([
      expect.stringMatching(new RegExp(`^components\\[0\\]\\.${field}: `)),
    ]);
  });

  it('takes a stop timeout of 0 to 300 whole seconds, or none', () => {
    for (const seconds of [undefined, 0, 10, 300]) {
      expect(issuesOf(spec(component({ stopTimeoutSeconds: seconds })))).toEqual([]);
    }
    for (const seconds of [301, -1, 1.5]) {
      expect(issuesOf(spec(component({ stopTimeoutSeconds: seconds })))).toEqual([
        expect.stringMatching(/^components\[0\]\.stop_timeout_seconds: .* from 0 to 300/),
      ]);
    }
  });

  it('rejects bad env keys and NUL in env values and cmd arguments', () => {
    expect(
      issuesOf(spec(component({ env: { '1X': 'a', 'A-B': 'b', OK: 'x\0y' }, cmd: ['sh', 'a\0b'] }))),
    ).toEqual([
      expect.stringMatching(/^components\[0\]\.cmd\[1\]: contains a NUL/),
      expect.stringMatching(/^components\[0\]\.env\["1X"\]: invalid variable name/),
      expect.stringMatching(/^components\[0\]\.env\["A-B"\]: invalid variable name/),
      expect.stringMatching(/^components\[0\]\.env\.OK: the value contains a NUL/),
    ]);
  });
});

describe('assertValidServiceSpec', () => {
  it('throws one InvalidArgumentError listing every issue with where and path', () => {
    const bad: ServiceSpec = { name: 'web;rm -rf', components: [component({ image: '', ports: ['x'] })] };
    let caught: unknown;
    try {
      assertValidServiceSpec(bad, 'Deploy request');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    const lines = (caught as Error).message.split('\n');
    expect(lines).toEqual([
      expect.stringMatching(
        /^Deploy request: name: "web;rm -rf" is not a valid name: use lower-case letters/,
      ),
      expect.stringMatching(/^Deploy request: components\[0\]\.image: required: give an image reference/),
      expect.stringMatching(/^Deploy request: components\[0\]\.ports\[0\]: .*expected \[host_ip:\]host_port/),
    ]);
  });

  it('passes a valid spec', () => {
    expect(() => assertValidServiceSpec(spec())).not.toThrow();
  });
});

describe('parsePortMapping', () => {
  it.each([
    ['8080:80', { hostIp: '', hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
    ['127.0.0.1:18080:80', { hostIp: '127.0.0.1', hostPort: 18080, containerPort: 80, protocol: 'tcp' }],
    ['53:53/udp', { hostIp: '', hostPort: 53, containerPort: 53, protocol: 'udp' }],
    ['[::1]:8443:443/tcp', { hostIp: '::1', hostPort: 8443, containerPort: 443, protocol: 'tcp' }],
    ['[fe80::1]:1:65535', { hostIp: 'fe80::1', hostPort: 1, containerPort: 65535, protocol: 'tcp' }],
  ])('parses %j', (text, expected) => {
    expect(parsePortMapping(text)).toEqual(expected);
  });

  it.each(['', '80', 'a:b', '1.2.3:80:80', '[::1:80:80', '[zz]:1:1', '1:2:3:4', '+1:80', '1:80/'])(
    'rejects %j with the expected form',
    (text) => {
      expect(() => parsePortMapping(text)).toThrow(/expected \[host_ip:\]host_port:container_port/);
    },
  );
});

describe('parseVolumeMapping', () => {
  it('parses paths and options', () => {
    expect(parseVolumeMapping('/srv/web/data:/data')).toEqual({
      hostPath: '/srv/web/data',
      containerPath: '/data',
      options: [],
    });
    expect(parseVolumeMapping('/srv/a:/b:ro,Z,rslave,nocopy')).toEqual({
      hostPath: '/srv/a',
      containerPath: '/b',
      options: ['ro', 'Z', 'rslave', 'nocopy'],
    });
  });

  it.each(['/a:b', '/a:/b/../c', '/a:/b:', '/a:/b:ro,ro', '/a:/b:z,Z', '/a:/b:shared,private', '/a:/b:c:d'])(
    'rejects %j',
    (text) => {
      expect(() => parseVolumeMapping(text)).toThrow(InvalidArgumentError);
    },
  );
});

describe('imageVersion', () => {
  const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
  it.each([
    ['reg:5000/img:v1.2.0', 'v1.2.0'],
    ['127.0.0.1:5000/bb:v1', 'v1'],
    ['reg:5000/img', ''],
    ['reg:5000/team/img', ''],
    ['img', ''],
    ['img:latest', 'latest'],
    ['localhost/bb:v2', 'v2'],
    [`img@${digest}`, digest],
    [`reg:5000/img@${digest}`, digest],
    [`img:v3@${digest}`, 'v3'],
    [`[::1]:5000/img:v4`, 'v4'],
  ])('%s → %j', (image, version) => {
    expect(imageVersion(image)).toBe(version);
  });
});

describe('spec limits', () => {
  const kib = (n: number) => 'v'.repeat(n * 1024);

  it('accepts a spec at every limit', () => {
    const env = Object.fromEntries(
      Array.from({ length: SPEC_LIMITS.envEntries }, (_, i) => [`V${i}`, i < 7 ? kib(32) : 'x']),
    );
    const big = component({
      env,
      cmd: Array.from({ length: SPEC_LIMITS.cmdArgs }, (_, i) => (i === 0 ? kib(32) : 'a')),
      ports: Array.from({ length: SPEC_LIMITS.ports }, (_, i) => `${10000 + i}:80`),
      volumes: Array.from({ length: SPEC_LIMITS.volumes }, (_, i) => `/srv/${i}:/data${i}`),
    });
    const others = Array.from({ length: SPEC_LIMITS.componentsPerService - 1 }, (_, i) =>
      component({ name: `c${i}` }),
    );
    expect(issuesOf(spec(big, ...others))).toEqual([]);
  });

  it('refuses one value over 32 KiB, naming the variable and the limit', () => {
    expect(issuesOf(spec(component({ env: { OK: 'x', HUGE: kib(200) } })))).toEqual([
      'components[0].env.HUGE: the value is 204800 bytes: at most 32 KiB are allowed per environment value; pass larger data as a file (push_file) and mount it',
    ]);
  });

  it('counts bytes, not characters', () => {
    const value = 'é'.repeat(16 * 1024 + 1); // 2 bytes each
    expect(issuesOf(spec(component({ env: { E: value } })))[0]).toMatch(
      /^components\[0\]\.env\.E: the value is 32770 bytes/,
    );
  });

  it('refuses too many components, env entries, cmd arguments, ports and volumes', () => {
    const many = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i));
    const c = component({
      env: Object.fromEntries(many(257, (i) => `V${i}`).map((k) => [k, '1'])),
      cmd: many(257, () => 'a'),
      ports: many(129, (i) => `${10000 + i}:80`),
      volumes: many(129, (i) => `/srv/${i}:/d${i}`),
    });
    const s = spec(c, ...many(64, (i) => `c${i}`).map((name) => component({ name })));
    expect(issuesOf(s)).toEqual([
      'components: 65 components: a service may have at most 64; split it into several services',
      'components[0].ports: 129 port mappings: at most 128 are allowed',
      'components[0].volumes: 129 volume mappings: at most 128 are allowed',
      'components[0].cmd: 257 command arguments: at most 256 are allowed',
      'components[0].env: 257 environment variables: at most 256 are allowed',
    ]);
  });

  it('refuses too much env or cmd in all, a long argument, name or volume, and a spec over 1 MiB', () => {
    const env = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`V${i}`, kib(30)]));
    const s = spec(
      component({
        env: { ...env, ['N'.repeat(257)]: 'x' },
        cmd: [kib(33), ...Array.from({ length: 8 }, () => kib(30))],
        volumes: [`/${'d'.repeat(9000)}:/data`],
      }),
      ...Array.from({ length: 4 }, (_, i) => component({ name: `c${i}`, env })),
    );
    const issues = issuesOf(s);
    expect(issues[0]).toMatch(
      /^\(whole spec\): the spec holds \d+ bytes of text: at most 1 MiB are allowed per service$/,
    );
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^components\[0\]\.volumes\[0\]: is 9007 bytes long: at most 8256 bytes/),
        expect.stringMatching(/^components\[0\]\.cmd\[0\]: is 33792 bytes long: at most 32 KiB/),
        expect.stringMatching(/^components\[0\]\.cmd: is 279552 bytes in all: at most 256 KiB/),
        expect.stringMatching(/^components\[0\]\.env: a variable name is 257 bytes long: at most 256 bytes/),
        expect.stringMatching(
          /^components\[0\]\.env: is \d+ bytes in all \(names and values\): at most 256 KiB/,
        ),
      ]),
    );
  });

  it('reports at most 50 problems, then how many more', () => {
    const s = spec(...Array.from({ length: 60 }, (_, i) => component({ name: `c${i}`, image: '' })));
    let message = '';
    try {
      assertValidServiceSpec(s, 'Deploy request');
    } catch (err) {
      message = (err as Error).message;
    }
    const lines = message.split('\n');
    expect(lines).toHaveLength(51);
    expect(lines[50]).toBe('Deploy request: ... and 10 more problems');
  });
});

/**
 * Property: whatever a caller puts in a spec (any text, any sizes, fields left out), validation
 * either accepts it or refuses it with INVALID_ARGUMENT naming a field. Never another error:
 * that would reach the caller as INTERNAL.
 */
describe('validation never fails internally', () => {
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.constantFrom('', 'web', '127.0.0.1:5000/bb:v1', '8080:80', '/a:/b:ro', '-x', '..', '\0', 'é'),
    fc.nat({ max: 40_000 }).map((n) => 'x'.repeat(n)),
  );
  const component = fc.record(
    {
      name: text,
      image: text,
      network: text,
      user: text,
      restart: text,
      ports: fc.array(text, { maxLength: 140 }),
      volumes: fc.array(text, { maxLength: 140 }),
      cmd: fc.array(text, { maxLength: 270 }),
      env: fc.dictionary(text, text, { maxKeys: 270 }),
    },
    { requiredKeys: [] },
  );
  const serviceSpec = fc.record(
    { name: text, active: fc.boolean(), components: fc.array(component, { maxLength: 70 }) },
    { requiredKeys: [] },
  );

  it('accepts, or refuses with INVALID_ARGUMENT and one line per problem', () => {
    fc.assert(
      fc.property(serviceSpec, (candidate) => {
        const s = candidate as ServiceSpec;
        const issues = validateServiceSpec(s);
        for (const issue of issues) expect(issue.message).not.toBe('');
        try {
          assertValidServiceSpec(s, 'Deploy request');
          expect(issues).toEqual([]);
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidArgumentError);
          expect((err as InvalidArgumentError).code).toBe('INVALID_ARGUMENT');
          expect((err as Error).message.split('\n').length).toBeLessThanOrEqual(51);
        }
      }),
      { numRuns: 300 },
    );
  });
});
