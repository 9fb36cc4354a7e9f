/**
 * The local directory of the file tools: a model asking push_file to upload `~/.ssh/...` or
 * pull_file to overwrite a file elsewhere is refused, whatever path or link it uses.
 */
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalDirectory } from '../../connector/file-transfer.js';

let root: string;
let local: LocalDirectory;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'mcp-local-'));
  mkdirSync(join(root, 'files'));
  writeFileSync(join(root, 'secret'), 'outside');
  writeFileSync(join(root, 'files', 'inside.txt'), 'inside');
  symlinkSync(join(root, 'secret'), join(root, 'files', 'link-out'));
  symlinkSync(root, join(root, 'files', 'dir-out'));
  symlinkSync(join(root, 'files', 'inside.txt'), join(root, 'files', 'link-in'));
  local = new LocalDirectory(join(root, 'files'));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('reading for push_file', () => {
  it('reads a file inside, also through a link that stays inside', async () => {
    expect((await local.fileToRead('inside.txt')).size).toBe(6);
    expect((await local.fileToRead('link-in')).file).toBe(join(root, 'files', 'inside.txt'));
  });

  it.each([
    ['../secret', /path '\.\.\/secret'/],
    ['/etc/passwd', /path '\/etc\/passwd'/],
    ['link-out', /leads outside/],
    ['dir-out/secret', /leads outside/],
  ])('refuses %s', async (path, message) => {
    await expect(local.fileToRead(path)).rejects.toThrow(message);
  });

  it('says a missing file is missing', async () => {
    await expect(local.fileToRead('nope.txt')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('writing for pull_file', () => {
  it('creates the directories inside and names the file', async () => {
    const target = await local.fileToWrite('copies/2026/app.toml');
    expect(target).toEqual({
      parent: join(root, 'files', 'copies', '2026'),
      name: 'app.toml',
      shown: join(root, 'files', 'copies', '2026', 'app.toml'),
    });
  });

  it('refuses a directory link that leads outside', async () => {
    await expect(local.fileToWrite('dir-out/secret')).rejects.toThrow(/leads outside/);
    await expect(local.fileToWrite('../secret')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('hard links in the local directory', () => {
  it('refuses to upload a hard link to a file outside, saying why and what to do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-local-hard-'));
    try {
      mkdirSync(join(dir, 'files'));
      writeFileSync(join(dir, 'id_ed25519'), 'private key');
      linkSync(join(dir, 'id_ed25519'), join(dir, 'files', 'key'));
      writeFileSync(join(dir, 'files', 'plain.txt'), 'plain');
      const here = new LocalDirectory(join(dir, 'files'));
      await expect(here.fileToRead('key')).rejects.toThrow(
        /has 2 hard links, so it may be a file outside that directory, and is not uploaded: copy/,
      );
      expect((await here.fileToRead('plain.txt')).size).toBe(5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a path through a file or too long as INVALID_ARGUMENT, not INTERNAL', async () => {
    await expect(local.fileToRead('inside.txt/x')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
