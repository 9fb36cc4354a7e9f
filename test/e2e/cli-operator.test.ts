/**
 * The `mcp` CLI as an operator runs it: the built binary against one real agent and real
 * podman. Every command once, the export → deploy -f round trip, the edit loop, --json and
 * the exit codes, and progress drawn as a bar on a real pseudo-terminal (`script`) but as
 * plain lines into a pipe.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent, TEST_AUDIENCE, TEST_ISSUER, type TestAgent } from '../support/agent.js';
import { type ConnectorFiles, REPO, writeConnectorConfig, writeDefinition } from '../support/connector.js';
import { removeContainers, requireTestbed, type Testbed, uniqueName } from '../support/testbed.js';

const CLI = join(REPO, 'dist/connector/cli.js');
// biome-ignore lint/suspicious/noControlCharactersInRegex: an escape sequence is what is looked for
const ESCAPE = /\u001b\[/;

let bed: Testbed | undefined;
let agent: TestAgent;
let files: ConnectorFiles;
let token: string;
let work: string;
const prefix = uniqueName('cli');
const svc = `${prefix}-web`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with the test config; asynchronous, since the agent runs in this process. */
async function mcp(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const run = await execa(process.execPath, [CLI, ...args, '--config', files.configFile], {
    cwd: work,
    env: { PATH: process.env.PATH ?? '', HOME: work, MCP_TOKEN: token, ...env },
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
  });
  return { code: run.exitCode ?? -1, stdout: run.stdout, stderr: run.stderr };
}

const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/** The same, under a pseudo-terminal: stdout and stderr are a TTY, as at an operator's shell. */
async function mcpOnTerminal(args: readonly string[]): Promise<Run> {
  const command = [process.execPath, CLI, ...args, '--config', files.configFile].map(quote).join(' ');
  const run = await execa('script', ['-qfec', command, '/dev/null'], {
    cwd: work,
    env: { PATH: process.env.PATH ?? '', HOME: work, MCP_TOKEN: token, TERM: 'xterm' },
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
  });
  return { code: run.exitCode ?? -1, stdout: run.stdout, stderr: run.stderr };
}

const definitionText = (
  image: string,
) => `# the CLI test's web service: this comment must survive stop and start
name = "${svc}"
node = "node1"

[[components]]
name = "app"
image = "${image}"
cmd = ["/bin/sleep", "3600"]
init = true
`;

beforeAll(async () => {
  bed = await requireTestbed();
  if (!bed) return;
  agent = await startTestAgent({ node: 'node1' });
  files = writeConnectorConfig([{ name: 'node1', address: agent.address, caPem: agent.caPem }]);
  token = await agent.token({ roles: ['admin'] });
  work = mkdtempSync(join(tmpdir(), 'mcp-cli-work-'));
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  if (bed) await removeContainers(prefix);
  files?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

// Each step is a few cold starts of the CLI; on a machine busy with other podman tests that is slow.
describe('the mcp CLI against a real agent', { timeout: 180_000 }, () => {
  it('deploys from the definition file with per-component progress, as plain lines into a pipe', async (ctx) => {
    if (!bed) return ctx.skip();
    writeDefinition(files.servicesDir, svc, definitionText(bed.imageV1));
    const run = await mcp(['deploy', svc]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(`${svc}/app: done:`);
    expect(run.stdout).toContain('deployed');
    expect(run.stdout + run.stderr).not.toMatch(ESCAPE);
  });

  it('lists, live-checks and shows status with --json that parses', async (ctx) => {
    if (!bed) return ctx.skip();
    const listed = await mcp(['list', '--json']);
    expect(listed.code).toBe(0);
    const services = JSON.parse(listed.stdout).nodes[0].result.services as { name: string }[];
    expect(services.map((s) => s.name)).toContain(svc);

    const ps = await mcp(['ps']);
    expect(ps.code).toBe(0);
    expect(ps.stdout).toMatch(new RegExp(`node1\\s+${svc}-app\\s+running\\s+\\d+[smhd]`));

    const status = await mcp(['status', svc]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('no drift');
    expect(status.stdout).toContain('recent events:');

    // The registry still serves the tag the component was pulled as.
    const updates = await mcp(['updates', '--service', svc]);
    expect(updates.code, updates.stderr).toBe(0);
    expect(updates.stdout).toMatch(new RegExp(`node1\\s+${svc}/app\\s+\\S+bb:v1\\s+current`));
  });

  it('writes active into the definition file on stop and start, keeping its comments; restart leaves it', async (ctx) => {
    if (!bed) return ctx.skip();
    const file = join(files.servicesDir, `${svc}.toml`);
    // Stopping a running container needs a yes: with no terminal to ask on, none is given.
    const unasked = await mcp(['stop', svc]);
    expect(unasked.code).toBe(1);
    expect(unasked.stderr).toContain('stop_service on node1');
    expect(unasked.stderr).toContain('there is no terminal to ask on: pass --yes');
    expect(readFileSync(file, 'utf8')).not.toMatch(/active = false/);
    const stopped = await mcp(['stop', svc, '--yes']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toContain(`${svc} on node1: stopped 1 of 1 component`);
    expect(readFileSync(file, 'utf8')).toMatch(/this comment must survive[\s\S]*active = false/);

    expect((await mcp(['start', svc])).code).toBe(0);
    const started = readFileSync(file, 'utf8');
    expect(started).toMatch(/this comment must survive[\s\S]*active = true/);
    expect((await mcp(['restart', svc, '--yes'])).code).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(started);
  });

  it('edits the definition in $EDITOR, reopening it until it validates', async (ctx) => {
    if (!bed) return ctx.skip();
    const counter = join(work, 'edits');
    const editor = join(work, 'editor.sh');
    // First save: a key definitions do not have. Second: the bad key gone, the image moved to v2.
    writeFileSync(
      editor,
      `#!/bin/sh
n=$(cat ${quote(counter)} 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > ${quote(counter)}
if [ "$n" = 1 ]; then echo 'bogus = 1' >> "$1"; else sed -i -e '/^bogus = 1$/d' -e 's#bb:v1#bb:v2#' "$1"; fi
`,
    );
    chmodSync(editor, 0o755);
    const run = await mcp(['service', 'edit', svc], { EDITOR: editor });
    expect(run.code, run.stderr).toBe(0);
    expect(readFileSync(counter, 'utf8').trim()).toBe('2');
    expect(run.stderr).toMatch(/does not validate, reopening the editor:\n.*bogus/);
    const saved = readFileSync(join(files.servicesDir, `${svc}.toml`), 'utf8');
    expect(saved).toContain(`image = "${bed.imageV2}"`);
    expect(saved).toContain('this comment must survive');
    expect(saved).not.toContain('# Editing the definition');

    const shown = await mcp(['service', 'show', svc]);
    expect(shown.stdout).toContain(bed.imageV2);
  });

  it('exports TOML that deploy -f loads back and deploys', async (ctx) => {
    if (!bed) return ctx.skip();
    const exported = join(work, 'exported.toml');
    expect((await mcp(['service', 'export', svc, '-o', exported])).code).toBe(0);
    rmSync(join(files.servicesDir, `${svc}.toml`));
    const deployed = await mcp(['deploy', svc, '-f', exported, '--json', '--yes']);
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0);
    const result = JSON.parse(deployed.stdout) as { components: { ok: boolean }[] };
    expect(result.components.every((c) => c.ok)).toBe(true);
    // The deploy wrote the definition back; exporting it again gives the same text.
    // (execa drops the last newline of stdout.)
    expect((await mcp(['service', 'export', svc])).stdout).toBe(readFileSync(exported, 'utf8').trimEnd());
    const listed = JSON.parse((await mcp(['list', '--json'])).stdout);
    const mine = listed.nodes[0].result.services.find((s: { name: string }) => s.name === svc);
    expect(mine.components[0].image).toBe(bed.imageV2);
  });

  it('syncs every definition file to its node and prints the changes', async (ctx) => {
    if (!bed) return ctx.skip();
    const run = await mcp(['sync', '--node', 'node1', '--json', '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as {
      services: { service: string; change: string }[];
      byNode: { node: string }[];
    };
    expect(out.services.map((s) => s.service)).toContain(svc);
    expect(out.byNode.map((n) => n.node)).toEqual(['node1']);
  });

  it('adopts running containers and names their components', async (ctx) => {
    if (!bed) return ctx.skip();
    const adoptee = `${prefix}-legacy`;
    await execa(bed.podman, [
      'run',
      '-d',
      '--init',
      '--name',
      `${adoptee}-worker`,
      bed.imageV1,
      '/bin/sleep',
      '3600',
    ]);
    const run = await mcp(['adopt', adoptee]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`${adoptee}-worker\\s+worker`));
  });

  it('pushes with a progress bar on a terminal, plain lines into a pipe, and pulls the same bytes back', async (ctx) => {
    if (!bed) return ctx.skip();
    const blob = join(work, 'blob.bin');
    const content = randomBytes(4 * 1024 * 1024);
    writeFileSync(blob, content);

    const onTerminal = await mcpOnTerminal(['push', blob, `${svc}:data/blob.bin`]);
    expect(onTerminal.code, onTerminal.stdout).toBe(0);
    expect(onTerminal.stdout).toContain('\u2588');
    expect(onTerminal.stdout).toMatch(/\d+(\.\d)? [KMG]iB\/s/);

    const piped = await mcp(['push', blob, `${svc}:data/blob.bin`]);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stderr).toMatch(/push blob\.bin: \d+ of 4194304 bytes \(.*\/s\)/);
    expect(piped.stdout + piped.stderr).not.toMatch(ESCAPE);
    expect(piped.stdout + piped.stderr).not.toContain('\u2588');

    const elsewhere = await mcp(['pull', `${svc}:data/blob.bin`, 'copy.bin']);
    expect(elsewhere.code).toBe(0);
    expect(readFileSync(join(work, 'copy.bin')).equals(content)).toBe(true);
  });

  it('calls any tool with values typed by its schema', async (ctx) => {
    if (!bed) return ctx.skip();
    const tools = await mcp(['tools']);
    expect(tools.stdout).toMatch(/push_file\s+/);
    // `content` is a string in the schema: 123 stays the text "123", not a number.
    const pushed = await mcp(['call', 'push_file', `service=${svc}`, 'path=number.txt', 'content=123']);
    expect(pushed.code, pushed.stdout + pushed.stderr).toBe(0);
    expect((await mcp(['pull', `${svc}:number.txt`])).code).toBe(0);
    expect(readFileSync(join(work, 'number.txt'), 'utf8')).toBe('123');
    // `eventLimit` is an integer: a word there is bad usage.
    const wrong = await mcp(['call', 'service_status', `service=${svc}`, 'eventLimit=many']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('eventLimit takes a whole number');
  });

  it('prints a bash completion script generated from its commands', async (ctx) => {
    if (!bed) return ctx.skip();
    const run = await mcp(['completion', 'bash']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('complete -o default -F _mcp_complete mcp');
    expect(run.stdout).toMatch(/"service"\) words="show export edit/);
    const syntax = await execa('bash', ['-n'], { input: run.stdout, reject: false });
    expect(syntax.exitCode, syntax.stderr).toBe(0);
  });

  it('exits 2 on bad usage, 3 on a bad token, 4 on an unreachable node, with {code, message} under --json', async (ctx) => {
    if (!bed) return ctx.skip();
    const usage = await mcp(['deploy', '--json']);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stdout)).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.any(String) });

    // Well formed, from the right issuer by name, signed by a key the agent does not trust.
    const { privateKey } = await generateKeyPair('ES256');
    const badToken = await new SignJWT({ roles: ['admin'] })
      .setProtectedHeader({ alg: 'ES256', kid: 'test-key-1' })
      .setIssuer(TEST_ISSUER)
      .setAudience(TEST_AUDIENCE)
      .setSubject('intruder')
      .setExpirationTime('5m')
      .sign(privateKey);
    const denied = await mcp(['list', '--json'], { MCP_TOKEN: badToken });
    expect(denied.code).toBe(3);
    expect(JSON.parse(denied.stdout)).toMatchObject({ code: 'UNAUTHENTICATED' });

    const nowhere = writeConnectorConfig([{ name: 'node1', address: '127.0.0.1:1', caPem: agent.caPem }]);
    try {
      const run = await execa(process.execPath, [CLI, 'ps', '--json', '--config', nowhere.configFile], {
        env: { PATH: process.env.PATH ?? '', HOME: work, MCP_TOKEN: token },
        extendEnv: false,
        reject: false,
      });
      expect(run.exitCode).toBe(4);
      expect(JSON.parse(run.stdout)).toMatchObject({
        code: 'UNAVAILABLE',
        message: expect.stringContaining('127.0.0.1:1'),
      });
    } finally {
      nowhere.remove();
    }
  });
});
