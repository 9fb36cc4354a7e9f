/**
 * Env files on the agent side (agent/secrets.ts: format, checks, masking), their rules in a
 * spec (core/spec.ts), and the definition loader's warning about inline values that look secret.
 */
import { chmod, link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Rbac } from '../../agent/auth/rbac.js';
import { componentSpecFromContainer, secretEnvKeys } from '../../agent/handlers/adopt.js';
import { runArgs } from '../../agent/runtime/cli.js';
import type { ContainerDetails } from '../../agent/runtime/index.js';
import { maskCutSecrets, maskSecrets, parseEnvFile, withEnvFiles } from '../../agent/secrets.js';
import { formatDefinition, parseDefinition, secretEnvWarnings } from '../../connector/definitions.js';
import { McpError } from '../../core/errors.js';
import { looksSecret, validateServiceSpec } from '../../core/spec.js';
import { serviceSpec, sleeper } from '../support/specs.js';

describe('the env file format', () => {
  it('reads KEY=VALUE lines verbatim, skipping blank lines and comments', () => {
    const text =
      '# database\n\nDB_PASSWORD=p@ss "quoted" # not a comment \nURL=a=b\r\n  # indented comment\nEMPTY=\n';
    expect(Object.fromEntries(parseEnvFile(text, 'secrets/app.env'))).toEqual({
      DB_PASSWORD: 'p@ss "quoted" # not a comment ',
      URL: 'a=b',
      EMPTY: '',
    });
  });

  it.each([
    ['HOME\n', /line 1: has no "=".*agent's own environment/],
    ['A=1\nexport B=2\n', /line 2: the name before "=" is not a variable name/],
    [' A=1\n', /line 1: the name before "="/],
    ['A =1\n', /line 1: the name before "="/],
    ['=value\n', /line 1: the name before "="/],
  ])('refuses %j, naming the line and never the value', (text, message) => {
    let error: unknown;
    try {
      parseEnvFile(text, '/srv/web/secrets/app.env');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(McpError);
    expect((error as McpError).code).toBe('INVALID_ARGUMENT');
    expect((error as McpError).message).toMatch(message);
    expect((error as McpError).message).not.toContain('value');
  });
});

describe('masking', () => {
  it('replaces every value of six characters or more, the longest first', () => {
    const text = 'token hunter2-long, short abc, prefix hunter2 and hunter2-long again';
    expect(maskSecrets(text, ['hunter2-long', 'hunter2', 'abc'])).toBe(
      'token ***, short abc, prefix *** and *** again',
    );
  });

  it('masks the piece of a secret that a cut leaves at the start or the end, from three characters', () => {
    const secrets = ['s3cr3t-value', 'abc'];
    // The cap kept the end of a line: the secret's end opens the text.
    expect(maskCutSecrets('cr3t-value rest\n', secrets, { start: true, end: false })).toBe('*** rest\n');
    // The last line is still being written: the secret's start closes it.
    expect(maskCutSecrets('line\ntoken=s3cr', secrets, { start: false, end: true })).toBe('line\ntoken=***');
    // Only where there was a cut; two characters say too little to mask.
    expect(maskCutSecrets('cr3t-value rest\n', secrets, { start: false, end: false })).toBe(
      'cr3t-value rest\n',
    );
    expect(maskCutSecrets('ue rest, token=s3', secrets, { start: true, end: true })).toBe(
      'ue rest, token=s3',
    );
    // A text that is nothing but a piece, and a secret too short to be masked at all.
    expect(maskCutSecrets('3t-val', secrets, { start: true, end: true })).toBe('***');
    expect(maskCutSecrets('bc and ab', ['abc'], { start: true, end: true })).toBe('bc and ab');
  });

  it('masks whole secrets first, then the pieces at a cut', () => {
    const secrets = ['s3cr3t-value'];
    const text = maskSecrets('value s3cr3t-value and s3cr3t', secrets);
    expect(maskCutSecrets(text, secrets, { start: true, end: true })).toBe('*** *** and ***');
  });
});

describe('env_files in a spec', () => {
  const issues = (envFiles: string[]) =>
    validateServiceSpec(serviceSpec('web', [sleeper('app', 'localhost/bb:v1', { envFiles })])).map(
      (i) => `${i.path}: ${i.message}`,
    );

  it('accepts files in secrets/', () => {
    expect(issues(['secrets/app.env', 'secrets/db/db.env'])).toEqual([]);
  });

  it.each([
    ['/etc/app.env', /env_files\[0\]: path '\/etc\/app\.env' is absolute/],
    ['secrets/../app.env', /env_files\[0\]: path .* leaves the service directory/],
    ['app.env', /env_files\[0\]: "app\.env" is not in secrets\//],
    ['secrets', /env_files\[0\]: "secrets" is not in secrets\//],
  ])('refuses %s', (file, message) => {
    expect(issues([file]).join('\n')).toMatch(message);
  });

  it('refuses a file named twice', () => {
    expect(issues(['secrets/a.env', 'secrets/a.env'])).toEqual([
      'components[0].env_files[1]: "secrets/a.env" is already env_files[0]: name each file once',
    ]);
  });

  it('becomes --env-file arguments before the image, absolute paths only', () => {
    const args = runArgs({
      name: 'web-app',
      image: 'localhost/bb:v1',
      envFiles: ['/proc/1/fd/9'],
      env: { A: '1' },
    });
    expect(args).toEqual([
      'run',
      '--detach',
      '--name=web-app',
      '--env-file=/proc/1/fd/9',
      '--env=A=1',
      'localhost/bb:v1',
    ]);
    expect(() => runArgs({ name: 'web-app', image: 'localhost/bb:v1', envFiles: ['secrets/a.env'] })).toThrow(
      /not an absolute path/,
    );
  });
});

describe('opening env files on the node', () => {
  let root: string;
  const secrets = () => join(root, 'web', 'secrets');
  const open = (file: string) =>
    withEnvFiles(root, 'web', { name: 'app', envFiles: [file] }, async ([path]) =>
      readFile(path ?? '', 'utf8'),
    );

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'mcp-secrets-'));
    await mkdir(secrets(), { recursive: true });
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it("hands the runtime the checked file itself, through the agent's descriptor", async () => {
    await writeFile(join(secrets(), 'app.env'), 'A=1\n', { mode: 0o600 });
    expect(await open('secrets/app.env')).toBe('A=1\n');
  });

  it.each([
    [0o644, /has mode 0644, so other users can read it: run `chmod 600 .*\/web\/secrets\/app\.env`/],
    [0o640, /has mode 0640/],
  ])('refuses mode %o', async (mode, message) => {
    await writeFile(join(secrets(), 'app.env'), 'A=1\n');
    await chmod(join(secrets(), 'app.env'), mode);
    await expect(open('secrets/app.env')).rejects.toThrow(message);
  });

  it('refuses a missing file, saying how to put it there', async () => {
    await expect(open('secrets/none.env')).rejects.toThrow(/does not exist: put it there from your terminal/);
  });

  it('refuses a file with a second hard link', async () => {
    await writeFile(join(root, 'web', 'other'), 'A=1\n', { mode: 0o600 });
    await link(join(root, 'web', 'other'), join(secrets(), 'app.env'));
    await expect(open('secrets/app.env')).rejects.toThrow(/2 hard links/);
  });
});

describe('the definition loader', () => {
  const definition = (env: string) =>
    parseDefinition(
      `name = "web"\nnode = "node1"\n\n[[components]]\nname = "app"\nimage = "localhost/bb:v1"\nenv_files = ["secrets/app.env"]\n\n[components.env]\n${env}\n`,
      'services/web.toml',
    );

  it('reads env_files and writes them back', () => {
    const web = definition('TZ = "UTC"');
    expect(web.components[0]?.envFiles).toEqual(['secrets/app.env']);
    expect(formatDefinition(web)).toContain('env_files = ["secrets/app.env"]');
  });

  it('warns about inline values whose names look secret, naming the keys and never the values', () => {
    const web = definition(
      'DB_PASSWORD = "hunter2-value"\napi_token = "t0k3n-value"\nTZ = "UTC"\nKEYBOARD = "us"',
    );
    const warnings = secretEnvWarnings(web, 'services/web.toml');
    expect(warnings).toEqual([
      expect.stringMatching(
        /^warning: services\/web\.toml: web\/app: env DB_PASSWORD, api_token look secret but are written inline: .*env_files$/,
      ),
    ]);
    expect(warnings.join('\n')).not.toMatch(/hunter2|t0k3n/);
    expect(secretEnvWarnings(definition('TZ = "UTC"'), 'services/web.toml')).toEqual([]);
  });

  it.each([
    ['DB_PASSWORD', true],
    ['github_token', true],
    ['ClientSecret', true],
    ['AWS_ACCESS_KEY', true],
    ['KEYBOARD', false],
    ['MONKEY', false],
    ['TZ', false],
  ])('%s looks secret: %s', (key, expected) => {
    expect(looksSecret(key)).toBe(expected);
  });
});

describe('reading a secret back', () => {
  const caller = (roles: string[]) => ({
    issuer: 'https://issuer.test',
    subject: 'someone',
    clientId: '',
    roles,
  });

  it('takes file.pull_secrets, which among the built-in roles only admin has', () => {
    const rbac = new Rbac();
    for (const role of ['viewer', 'operator', 'auditor']) {
      expect(() => rbac.authorize(caller([role]), 'file.pull_secrets', ['web']), role).toThrow(
        /permission 'file.pull_secrets' is required/,
      );
    }
    expect(() => rbac.authorize(caller(['admin']), 'file.pull_secrets', ['web'])).not.toThrow();
  });

  it('can be granted by a configured role, for some services only', () => {
    const rbac = new Rbac({
      roles: [{ name: 'keeper', permissions: ['file.pull_secrets'], services: ['web'] }],
    });
    expect(() => rbac.authorize(caller(['keeper']), 'file.pull_secrets', ['web'])).not.toThrow();
    expect(() => rbac.authorize(caller(['keeper']), 'file.pull_secrets', ['db'])).toThrow(/for service 'db'/);
  });
});

describe('adoption', () => {
  it('records no value under a name that looks secret, and names those keys', () => {
    const details = {
      name: 'shop-web',
      image: 'localhost/bb:v1',
      network: 'podman',
      user: '',
      restart: 'no',
      ports: [],
      volumes: [],
      cmd: [],
      init: false,
      env: { TZ: 'UTC', DB_PASSWORD: 'hunter2-value', API_TOKEN: 't0k3n-value' },
    } as unknown as ContainerDetails;
    const spec = componentSpecFromContainer('web', details);
    expect(spec.env).toEqual({ TZ: 'UTC' });
    expect(spec.envFiles).toEqual([]);
    expect(secretEnvKeys(details)).toEqual(['API_TOKEN', 'DB_PASSWORD']);
  });
});
