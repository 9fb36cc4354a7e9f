/**
 * Path confinement (agent/files/paths.ts) against a corpus of hostile paths and a property
 * test, on a real directory tree with real symbolic links in a temp dir.
 *
 * Tree under <root>:
 *   web/conf/app.toml          a file
 *   web/in-link -> conf/app.toml, web/in-dir -> conf, web/abs-in -> <root>/web/conf
 *   web/etc-link -> /etc, web/passwd-link -> /etc/passwd
 *   web/out-dir -> ../outside, web/sibling -> ../web2 (a name that prefixes-matches "web")
 *   web/loop-a -> loop-b -> loop-a, web/dangling-out -> /nonexistent/x, web/dangling-in -> missing.txt
 *   web/up -> ..  (the root)       web/self -> .  (the service directory)
 *   outside/secret.txt, web2/x
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveServicePath, type ServicePath } from '../../agent/files/paths.js';
import { writeServiceFile } from '../../agent/files/write.js';
import { McpError } from '../../core/errors.js';
import { checkRelativePath, isInside, MAX_NAME_BYTES } from '../../core/paths.js';

let root: string;
let web: string;
let outside: string;

beforeAll(() => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-paths-')));
  web = path.join(root, 'web');
  outside = path.join(root, 'outside');
  fs.mkdirSync(path.join(web, 'conf'), { recursive: true });
  fs.writeFileSync(path.join(web, 'conf', 'app.toml'), 'port = 80\n');
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'secret\n');
  fs.mkdirSync(path.join(root, 'web2'));
  fs.writeFileSync(path.join(root, 'web2', 'x'), 'x\n');
  const links: [string, string][] = [
    ['in-link', 'conf/app.toml'],
    ['in-dir', 'conf'],
    ['abs-in', path.join(web, 'conf')],
    ['etc-link', '/etc'],
    ['passwd-link', '/etc/passwd'],
    ['out-dir', '../outside'],
    ['sibling', '../web2'],
    ['loop-a', 'loop-b'],
    ['loop-b', 'loop-a'],
    ['dangling-out', '/nonexistent/x'],
    ['dangling-in', 'missing.txt'],
    ['up', '..'],
    ['self', '.'],
  ];
  for (const [name, target] of links) fs.symlinkSync(target, path.join(web, name));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

type Outcome = { code: string } | { inside: string };

async function outcome(input: string, create: boolean, service = 'web'): Promise<Outcome> {
  try {
    const resolved = await resolveServicePath(root, service, input, { create });
    return { inside: path.relative(web, path.join(resolved.parent, resolved.name)) };
  } catch (err) {
    if (err instanceof McpError) return { code: err.code };
    throw err;
  }
}

async function expectRefused(input: string, code: string, message: RegExp, service = 'web'): Promise<void> {
  for (const create of [false, true]) {
    const error = await resolveServicePath(root, service, input, { create }).catch((err: unknown) => err);
    expect(error, `${JSON.stringify(input)} (create: ${create})`).toBeInstanceOf(McpError);
    expect((error as McpError).code, JSON.stringify(input)).toBe(code);
    expect((error as McpError).message, JSON.stringify(input)).toMatch(message);
  }
}

const LEAVES = /leaves the service directory: give a path relative to .*\/web\//;

/** [path, reason] pairs that must be refused with INVALID_ARGUMENT, and why. */
const REFUSED: [string, RegExp][] = [
  ['../x', LEAVES],
  ['..', LEAVES],
  ['../../../../etc/passwd', LEAVES],
  ['./../x', LEAVES],
  ['conf/..', LEAVES],
  ['conf/../..', LEAVES],
  ['conf/../app.toml', LEAVES], // stays inside lexically, refused anyway: no '..' at all
  ['a/b/../../../x', LEAVES],
  ['/etc/passwd', /is absolute, so it leaves the service directory/],
  ['//etc/passwd', /is absolute/],
  ['/', /is absolute/],
  [`${'/'.repeat(3)}web/conf/app.toml`, /is absolute/],
  ['%2e%2e%2fetc%2fpasswd', /percent-encoded sequence '%2e': paths are not URL-decoded/],
  ['%2E%2E/x', /percent-encoded sequence '%2E'/],
  ['..%2fetc', /percent-encoded/],
  ['%252e%252e/x', /percent-encoded sequence '%25'/],
  ['%c0%ae%c0%ae/x', /percent-encoded/], // overlong UTF-8 for '.'
  ['..\\..\\etc\\passwd', /contains a backslash/],
  ['conf\\app.toml', /contains a backslash/],
  ['C:\\Windows\\win.ini', /contains a backslash/],
  ['app\0.toml', /contains a NUL byte/],
  ['conf/app.toml\0.png', /contains a NUL byte/],
  ['\0', /contains a NUL byte/],
  ['line\nbreak', /contains a control character/],
  ['tab\there', /contains a control character/],
  ['esc\u001b[31m', /contains a control character/],
  ['del\u007f', /contains a control character/],
  ['c1\u0085', /contains a control character/],
  ['', /path is empty/],
  ['.', /names a directory/],
  ['./', /names a directory/],
  ['conf/', /names a directory/],
  ['conf/.', /names a directory/],
  ['....//', /names a directory/],
  ['x'.repeat(MAX_NAME_BYTES + 1), /has a component of 256 bytes/],
  [`conf/${'é'.repeat(128)}`, /has a component of 256 bytes/], // 128 characters, 256 bytes
  [`${'a/'.repeat(2048)}x`, /is 4097 bytes long/],
  ['passwd-link', LEAVES],
  ['etc-link/passwd', LEAVES],
  ['etc-link/new-dir/new-file', LEAVES],
  ['out-dir/secret.txt', LEAVES],
  ['out-dir/new.txt', LEAVES],
  ['sibling/x', LEAVES], // ../web2 shares the prefix "web"
  ['up/outside/secret.txt', LEAVES],
  ['up/web/conf/app.toml', LEAVES], // '..' through a link: the link's target is outside
  ['dangling-out', LEAVES],
  ['loop-a', /loop of symbolic links/],
  ['conf/app.toml/x', /is a file, not a directory/],
  ['self', /names the service directory itself/],
];

describe('hostile paths are refused with a message saying what is wrong', () => {
  it.each(REFUSED)('%j', async (input, message) => {
    await expectRefused(input, 'INVALID_ARGUMENT', message);
  });

  it('has a corpus of at least 40 hostile paths', () => {
    expect(REFUSED.length).toBeGreaterThanOrEqual(40);
  });

  it('refuses service names that are not names', async () => {
    for (const service of ['', '..', '.', 'Web', '../etc', 'web/conf', 'a\0b', '-web', 'x'.repeat(64)]) {
      await expectRefused('conf/app.toml', 'INVALID_ARGUMENT', /service name/, service);
    }
  });

  it('created nothing outside the service directory while refusing', () => {
    expect(fs.readdirSync(outside)).toEqual(['secret.txt']);
    expect(fs.existsSync('/etc/new-dir')).toBe(false);
  });
});

describe('names that look hostile but are literal names stay inside', () => {
  const LITERAL = [
    '\u2025/x', // two dot leader, looks like '..'
    '\uff0e\uff0e/x', // fullwidth full stops
    '\u2024\u2024', // one dot leader twice
    'a\u2215..\u2215b', // division slash: one name
    'a\u2044..\u2044b', // fraction slash: one name
    '...',
    '.../x',
    '..x',
    'x..',
    '.hidden',
    'C:/x', // a directory named 'C:'
    '~/x', // a directory named '~'
    '$HOME/x',
    'a%b', // '%' not followed by two hex digits
    '100%',
    'ünïcödé/файл.txt',
    '\u202eevil.txt', // right-to-left override is a character, not a separator
  ];

  it.each(LITERAL)('%j', async (input) => {
    const result = await outcome(input, true);
    expect(result).toEqual({ inside: input });
  });
});

describe('links that stay inside the service directory are followed', () => {
  it.each([
    ['in-link', 'conf/app.toml'],
    ['in-dir/app.toml', 'conf/app.toml'],
    ['abs-in/app.toml', 'conf/app.toml'],
    ['self/conf/app.toml', 'conf/app.toml'],
    ['./conf//app.toml', 'conf/app.toml'],
  ])('%j resolves to %j', async (input, real) => {
    expect(await outcome(input, false)).toEqual({ inside: real });
  });

  it('reports the path as given, normalized', async () => {
    const resolved = await resolveServicePath(root, 'web', './in-dir//app.toml', { create: false });
    expect(resolved.relative).toBe('in-dir/app.toml');
  });
});

describe('missing things', () => {
  it('a missing directory is NOT_FOUND without create, and created 0755 with it', async () => {
    await expect(resolveServicePath(root, 'web', 'new/deeper/file', { create: false })).rejects.toMatchObject(
      {
        code: 'NOT_FOUND',
        message: expect.stringMatching(/directory 'new' does not exist in .*\/web\//),
      },
    );
    const resolved = await resolveServicePath(root, 'web', 'new/deeper/file', { create: true });
    expect(resolved.parent).toBe(path.join(web, 'new', 'deeper'));
    expect(resolved.stat).toBeUndefined();
    expect(fs.statSync(path.join(web, 'new')).mode & 0o7777).toBe(0o755);
    expect(fs.statSync(path.join(web, 'new', 'deeper')).mode & 0o7777).toBe(0o755);
  });

  it('a missing service directory is NOT_FOUND without create, and created with it', async () => {
    await expect(resolveServicePath(root, 'db', 'x', { create: false })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining(`service 'db' has no directory ${root}/db/`),
    });
    await resolveServicePath(root, 'db', 'x', { create: true });
    expect(fs.statSync(path.join(root, 'db')).mode & 0o7777).toBe(0o755);
  });

  it('a dangling link inside is NOT_FOUND for a read and refused for a write', async () => {
    await expect(resolveServicePath(root, 'web', 'dangling-in', { create: false })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    await expect(resolveServicePath(root, 'web', 'dangling-in', { create: true })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('symbolic link to a file that does not exist'),
    });
  });
});

describe('checkRelativePath', () => {
  it('returns the components without . and empty ones', () => {
    expect(checkRelativePath('./a//b/./c.txt', '/srv/web/')).toEqual(['a', 'b', 'c.txt']);
  });

  it('accepts a component of exactly 255 bytes and a path of exactly 4096', () => {
    expect(checkRelativePath('x'.repeat(255), '/srv/web/')).toHaveLength(1);
    expect(checkRelativePath(`${'a/'.repeat(2047)}xy`, '/srv/web/')).toHaveLength(2048);
  });

  it('uses the message the operator sees', () => {
    expect(() => checkRelativePath('../x', '/srv/web/')).toThrow(
      "path '../x' leaves the service directory: give a path relative to /srv/web/",
    );
  });
});

describe('isInside', () => {
  it('does not take a shared prefix for containment', () => {
    expect(isInside('/srv/web', '/srv/web')).toBe(true);
    expect(isInside('/srv/web', '/srv/web/x')).toBe(true);
    expect(isInside('/srv/web', '/srv/web2/x')).toBe(false);
    expect(isInside('/srv/web', '/srv')).toBe(false);
  });
});

// --- property: whatever the path, nothing outside the service directory is reached --------

const SEGMENTS = [
  '..',
  '.',
  '',
  'conf',
  'app.toml',
  'new',
  'in-dir',
  'in-link',
  'self',
  'up',
  'out-dir',
  'sibling',
  'etc-link',
  'passwd-link',
  'loop-a',
  'dangling-in',
  'dangling-out',
  '%2e%2e',
  '%2f',
  '\\..',
  '\u2025',
  '\0',
  'x'.repeat(256),
];

const segment = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...SEGMENTS) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }) },
);

const hostilePath = fc
  .tuple(fc.boolean(), fc.array(segment, { minLength: 1, maxLength: 6 }))
  .map(([absolute, parts]) => `${absolute ? '/' : ''}${parts.join('/')}`);

function realInside(resolved: ServicePath): boolean {
  const realParent = fs.realpathSync(resolved.parent);
  return isInside(fs.realpathSync(web), realParent) && !resolved.name.includes('/');
}

describe('property: no path resolves or writes outside the service directory', () => {
  it('every path is refused (INVALID_ARGUMENT, NOT_FOUND) or lands inside, and a write there stays inside', async () => {
    const before = fs.readdirSync(outside).sort();
    await fc.assert(
      fc.asyncProperty(hostilePath, fc.boolean(), async (input, write) => {
        let resolved: ServicePath;
        try {
          resolved = await resolveServicePath(root, 'web', input, { create: write });
        } catch (err) {
          expect(err).toBeInstanceOf(McpError);
          expect(['INVALID_ARGUMENT', 'NOT_FOUND']).toContain((err as McpError).code);
          return;
        }
        expect(realInside(resolved), `${JSON.stringify(input)} -> ${resolved.parent}/${resolved.name}`).toBe(
          true,
        );
        if (!write || resolved.stat?.isDirectory()) return;
        const content = Buffer.from(`written as ${JSON.stringify(input)}\n`);
        await writeServiceFile({
          target: resolved,
          mode: 0o644,
          size: content.length,
          sha256: createHash('sha256').update(content).digest('hex'),
          content: (async function* () {
            yield content;
          })(),
          signal: new AbortController().signal,
        });
        const landed = fs.realpathSync(path.join(resolved.parent, resolved.name));
        expect(isInside(fs.realpathSync(web), landed)).toBe(true);
        expect(fs.readFileSync(landed)).toEqual(content);
      }),
      { numRuns: 400 },
    );
    expect(fs.readdirSync(outside).sort()).toEqual(before);
    expect(fs.readdirSync(path.join(root, 'web2'))).toEqual(['x']);
    expect(leftovers(web)).toEqual([]);
  });
});

/** Temp files left anywhere under `dir`. */
function leftovers(dir: string): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.name.endsWith('.tmp')) found.push(path.join(entry.parentPath, entry.name));
  }
  return found;
}
