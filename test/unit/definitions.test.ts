import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  definitionPath,
  definitionToSpec,
  findDefinition,
  formatDefinition,
  loadDefinition,
  loadDefinitions,
  locateDefinition,
  parseDefinition,
  type ServiceDefinition,
  setDefinitionActive,
  specToDefinition,
  writeDefinition,
} from '../../connector/definitions.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { ComponentSpec } from '../../gen/mcp/v1/mcp.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'definitions');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-definitions-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const MINIMAL = `name = "web"
node = "node1"

[[components]]
name = "app"
image = "127.0.0.1:5000/bb:v1"
`;

function webDefinition(): ServiceDefinition {
  return {
    name: 'web',
    node: 'node1',
    active: true,
    components: [
      ComponentSpec.fromPartial({
        name: 'app',
        image: '127.0.0.1:5000/bb:v1',
        restart: 'unless-stopped',
        ports: ['127.0.0.1:18080:80'],
        volumes: ['/srv/web/data:/data'],
        cmd: ['/bin/httpd', '-f', '-p', '80'],
        env: { KEY: 'value' },
      }),
    ],
  };
}

/** The message of the InvalidArgumentError `action` throws. */
async function rejection(action: () => Promise<unknown> | unknown): Promise<string> {
  try {
    await action();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return (err as Error).message;
  }
  throw new Error('expected an InvalidArgumentError, but nothing was thrown');
}

describe('loading a definition', () => {
  it('reads every field, with active true and empty optional fields by default', async () => {
    const web = await loadDefinition(join(FIXTURES, 'fleet', 'web.toml'));
    expect(web).toEqual({
      name: 'web',
      node: 'node1',
      active: true,
      components: [
        {
          name: 'app',
          image: '127.0.0.1:5000/bb:v1',
          network: 'web_net',
          user: '',
          restart: 'unless-stopped',
          ports: ['127.0.0.1:18080:80', '[::1]:18443:443/tcp'],
          volumes: ['/srv/web/data:/data', '/srv/web/conf:/etc/httpd:ro'],
          cmd: ['/bin/httpd', '-f', '-p', '80'],
          env: { TZ: 'UTC', GREETING: 'hello "world"\n' },
          envFiles: [],
          init: false,
        },
        {
          name: 'cron',
          image: 'localhost/bb:v2',
          network: '',
          user: '1000:1000',
          restart: '',
          ports: [],
          volumes: [],
          cmd: ['/bin/sleep', '3600'],
          env: {},
          envFiles: [],
          init: false,
        },
      ],
    });
  });

  it('keeps active = false', async () => {
    expect((await loadDefinition(join(FIXTURES, 'fleet', 'db.toml'))).active).toBe(false);
  });

  it('reports a TOML syntax error with file, line and column', async () => {
    const file = join(FIXTURES, 'syntax-error.toml');
    expect(await rejection(() => loadDefinition(file))).toMatch(
      new RegExp(`^${escapeRegExp(file)}: line 3, column \\d+: invalid TOML: `),
    );
  });

  it('reports a missing file by its path', async () => {
    const file = join(dir, 'nope.toml');
    expect(await rejection(() => loadDefinition(file))).toMatch(
      new RegExp(`^${escapeRegExp(file)}: cannot read`),
    );
  });
});

describe('rejecting invalid definitions, naming file and field', () => {
  const component = (body: string) => `name = "web"\nnode = "node1"\n[[components]]\n${body}\n`;
  it.each([
    ['missing name', MINIMAL.replace('name = "web"\n', ''), /^services\/web\.toml: name: required$/m],
    ['missing node', MINIMAL.replace('node = "node1"\n', ''), /^services\/web\.toml: node: required$/m],
    ['empty node', MINIMAL.replace('"node1"', '""'), /^services\/web\.toml: node: required: give the name/m],
    [
      'bad node name',
      MINIMAL.replace('"node1"', '"Node 1"'),
      /^services\/web\.toml: node: "Node 1" is not a valid name/m,
    ],
    [
      'no components',
      'name = "web"\nnode = "node1"\n',
      /^services\/web\.toml: components: at least one component/m,
    ],
    [
      'duplicate component names',
      `${MINIMAL}\n[[components]]\nname = "app"\nimage = "bb:v2"\n`,
      /^services\/web\.toml: components\[1\]\.name: "app" is already the name of components\[0\]/m,
    ],
    [
      'empty image',
      component('name = "app"\nimage = ""'),
      /^services\/web\.toml: components\[0\]\.image: required/m,
    ],
    ['missing image', component('name = "app"'), /^services\/web\.toml: components\[0\]\.image: required$/m],
    [
      'shell metacharacters in the service name',
      MINIMAL.replace('name = "web"', 'name = "web;rm -rf"'),
      /^services\/web\.toml: name: "web;rm -rf" is not a valid name: use lower-case letters/m,
    ],
    [
      'shell metacharacters in a component name',
      component('name = "app$(id)"\nimage = "bb:v1"'),
      /^services\/web\.toml: components\[0\]\.name: "app\$\(id\)" is not a valid name/m,
    ],
    [
      'malformed port',
      component('name = "app"\nimage = "bb:v1"\nports = ["80:80", "127.0.0.1:80"]'),
      /^services\/web\.toml: components\[0\]\.ports\[1\]: "127\.0\.0\.1:80": .*expected \[host_ip:\]host_port/m,
    ],
    [
      'malformed volume',
      component('name = "app"\nimage = "bb:v1"\nvolumes = ["data:/data"]'),
      /^services\/web\.toml: components\[0\]\.volumes\[0\]: .*not absolute/m,
    ],
    [
      'a typo in a component key',
      component('name = "app"\nimgae = "bb:v1"'),
      /^services\/web\.toml: components\[0\]: unknown key "imgae" \(did you mean "image"\?\); allowed keys here: name, image, network, user, restart, ports, volumes, cmd, env, env_files, init, stop_timeout_seconds, health_check$/m,
    ],
    [
      'a typo in a top-level key',
      MINIMAL.replace('node1"', 'node1"\nactve = false'),
      /^services\/web\.toml: unknown key "actve" \(did you mean "active"\?\); allowed keys here: name, node, active, components$/m,
    ],
    [
      'an unquoted env value',
      `${MINIMAL}[components.env]\nPORT = 8080\n`,
      /^services\/web\.toml: components\[0\]\.env\.PORT: expected a string \(in double quotes\), got 8080$/m,
    ],
    [
      'ports given as a string',
      component('name = "app"\nimage = "bb:v1"\nports = "80:80"'),
      /^services\/web\.toml: components\[0\]\.ports: expected an array \[ \.\.\. \], got the string "80:80"$/m,
    ],
    [
      'active given as a string',
      MINIMAL.replace('node1"', 'node1"\nactive = "yes"'),
      /^services\/web\.toml: active: expected true or false/m,
    ],
  ])('%s', async (_case, text, message) => {
    expect(await rejection(() => parseDefinition(text, 'services/web.toml'))).toMatch(message);
  });

  it('lists every problem of a file, each line naming the file', async () => {
    const text = component('name = "App"\nimage = ""\nports = ["x"]');
    const lines = (await rejection(() => parseDefinition(text, 'services/web.toml'))).split('\n');
    expect(lines).toHaveLength(3);
    for (const line of lines)
      expect(line).toMatch(/^services\/web\.toml: components\[0\]\.(name|image|ports\[0\]): /);
  });
});

describe('writing a definition', () => {
  it('reads init and stop_timeout_seconds, writes them back, and refuses a timeout out of range', async () => {
    const text = `name = "web"\nnode = "node1"\n\n[[components]]\nname = "app"\nimage = "localhost/bb:v1"\ninit = true\nstop_timeout_seconds = 3\n`;
    const web = parseDefinition(text, 'services/web.toml');
    expect(web.components[0]).toMatchObject({ init: true, stopTimeoutSeconds: 3 });
    expect(formatDefinition(web)).toBe(text.replace('node1"\n', 'node1"\nactive = true\n'));
    expect(await rejection(() => parseDefinition(text.replace('= 3', '= 301'), 'services/web.toml'))).toMatch(
      /^services\/web\.toml: components\[0\]\.stop_timeout_seconds: 301 is not a stop timeout/m,
    );
  });

  it('round trips exactly: write, then load, gives the same definition', async () => {
    const file = join(dir, 'web.toml');
    const tricky = webDefinition();
    tricky.components[0]!.env = {
      QUOTES: 'say "hi" \\ bye',
      CONTROL: 'tab\there\nnewline\r\u0001\u007f',
      UNICODE: 'grüße 🚀',
      EMPTY: '',
    };
    tricky.components.push({
      init: false,
      envFiles: [],
      name: 'worker',
      image: 'localhost/bb:v2',
      network: 'backend',
      user: 'postgres',
      restart: 'on-failure:3',
      ports: ['53:53/udp', '[::1]:8443:443'],
      volumes: ['/srv/web/a:/a:ro,Z'],
      cmd: Array.from({ length: 12 }, (_, i) => `--option-number-${i}=value`),
      env: {},
      healthCheck: {
        command: ['/bin/wget', '-q', '-O-', 'http://127.0.0.1:8080/say "ok"'],
        intervalSeconds: 5,
        retries: 2,
        startPeriodSeconds: 10,
      },
    });
    for (const definition of [webDefinition(), tricky, { ...webDefinition(), active: false }]) {
      await writeDefinition(file, definition);
      expect(await loadDefinition(file)).toEqual(definition);
    }
  });

  it('round trips the fixtures, and writing again changes nothing', async () => {
    for (const name of ['web.toml', 'db.toml']) {
      const original = await loadDefinition(join(FIXTURES, 'fleet', name));
      const file = join(dir, name);
      await writeDefinition(file, original);
      const first = await readFile(file, 'utf8');
      expect(await loadDefinition(file)).toEqual(original);
      await writeDefinition(file, await loadDefinition(file));
      expect(await readFile(file, 'utf8')).toBe(first);
    }
  });

  it('writes readable TOML in a fixed order, leaving out empty fields', () => {
    expect(formatDefinition(webDefinition())).toBe(`name = "web"
node = "node1"
active = true

[[components]]
name = "app"
image = "127.0.0.1:5000/bb:v1"
restart = "unless-stopped"
ports = ["127.0.0.1:18080:80"]
volumes = ["/srv/web/data:/data"]
cmd = ["/bin/httpd", "-f", "-p", "80"]

[components.env]
KEY = "value"
`);
  });

  it('creates the services directory, and the file readable by its owner only', async () => {
    const file = definitionPath(join(dir, 'services'), 'web');
    await writeDefinition(file, webDefinition());
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('refuses to write an invalid definition', async () => {
    const file = join(dir, 'web.toml');
    const bad = webDefinition();
    bad.components[0]!.image = '';
    expect(await rejection(() => writeDefinition(file, bad))).toMatch(
      new RegExp(`^${escapeRegExp(file)}: components\\[0\\]\\.image: required`),
    );
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });

  it('sets active in place, keeping comments and layout', async () => {
    const file = join(dir, 'web.toml');
    const text = `# the web site\nname = "web"\nnode = "node1"   # the NUC\n\n[[components]]\n# the server\nname = "app"\nimage = "bb:v1"\n`;
    await writeFile(file, text);
    expect((await setDefinitionActive(file, false)).active).toBe(false);
    expect(await readFile(file, 'utf8')).toBe(text.replace('# the NUC\n', '# the NUC\nactive = false\n'));
    expect((await setDefinitionActive(file, true)).active).toBe(true);
    expect(await readFile(file, 'utf8')).toBe(text.replace('# the NUC\n', '# the NUC\nactive = true\n'));
    expect((await loadDefinition(file)).active).toBe(true);
  });
});

describe('loading a services directory', () => {
  it('loads every *.toml in name order, skipping hidden and other files', async () => {
    await writeFile(join(dir, 'b.toml'), MINIMAL.replace('"web"', '"bravo"'));
    await writeFile(join(dir, 'a.toml'), MINIMAL.replace('"web"', '"alpha"'));
    await writeFile(join(dir, '.#a.toml'), 'garbage =');
    await writeFile(join(dir, 'notes.txt'), 'garbage =');
    expect((await loadDefinitions(dir)).map((d) => d.name)).toEqual(['alpha', 'bravo']);
  });

  it('holds no definitions when the directory does not exist', async () => {
    expect(await loadDefinitions(join(dir, 'missing'))).toEqual([]);
  });

  it('names each bad file, and only the bad ones, in one error', async () => {
    await writeFile(join(dir, 'good.toml'), MINIMAL);
    await writeFile(join(dir, 'typo.toml'), MINIMAL.replace('"web"', '"db"').replace('image', 'imgae'));
    await writeFile(join(dir, 'broken.toml'), 'name = "x"\nnode = \n');
    const message = await rejection(() => loadDefinitions(dir));
    expect(message).toMatch(/2 problems/);
    expect(message).toMatch(
      new RegExp(`^${escapeRegExp(join(dir, 'typo.toml'))}: components\\[0\\]: unknown key "imgae"`, 'm'),
    );
    expect(message).toMatch(
      new RegExp(`^${escapeRegExp(join(dir, 'broken.toml'))}: line 2, column \\d+`, 'm'),
    );
    expect(message).not.toMatch(/good\.toml/);
  });

  it('rejects a service defined in two files', async () => {
    await writeFile(join(dir, 'web.toml'), MINIMAL);
    await writeFile(join(dir, 'web-copy.toml'), MINIMAL);
    const message = await rejection(() => loadDefinitions(dir));
    expect(message).toMatch(/service "web" is also defined in/);
    expect(message).toMatch(/web-copy\.toml/);
  });

  it('finds a service by name, whatever its file is called', async () => {
    await writeFile(join(dir, 'site.toml'), MINIMAL);
    expect((await findDefinition(dir, 'web'))?.node).toBe('node1');
    expect((await locateDefinition(dir, 'web'))?.file).toBe(join(dir, 'site.toml'));
    expect(await findDefinition(dir, 'db')).toBeUndefined();
  });

  it('finds a service despite a bad file elsewhere, but reports the bad file when the service is missing', async () => {
    await writeFile(join(dir, 'web.toml'), MINIMAL);
    await writeFile(join(dir, 'broken.toml'), 'name = ');
    expect((await findDefinition(dir, 'web'))?.name).toBe('web');
    const message = await rejection(() => findDefinition(dir, 'db'));
    expect(message).toMatch(/no valid definition of service "db"/);
    expect(message).toMatch(/broken\.toml: line 1/);
  });
});

describe('converting between definitions and specs', () => {
  it('a definition becomes a spec without the node, and back', () => {
    const definition = webDefinition();
    const spec = definitionToSpec(definition);
    expect(spec).toEqual({ name: 'web', active: true, components: definition.components });
    expect(spec).not.toHaveProperty('node');
    expect(specToDefinition(spec, 'node1')).toEqual(definition);
  });

  it('a spec without active is an active definition', () => {
    const { active: _, ...spec } = definitionToSpec(webDefinition());
    expect(specToDefinition(spec, 'node2')).toMatchObject({ node: 'node2', active: true });
  });

  it('copies, so changing one does not change the other', () => {
    const definition = webDefinition();
    const spec = definitionToSpec(definition);
    spec.components[0]!.ports.push('1:1');
    spec.components[0]!.env.OTHER = 'x';
    expect(definition.components[0]!.ports).toEqual(['127.0.0.1:18080:80']);
    expect(definition.components[0]!.env).toEqual({ KEY: 'value' });
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
