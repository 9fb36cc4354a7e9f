import { describe, expect, it } from 'vitest';
import { UsageError } from '../../connector/cli/context.js';
import { parseTarget } from '../../connector/cli/lifecycle.js';
import { uptime } from '../../connector/cli/observe.js';
import { parseToolArguments } from '../../connector/cli/tools.js';
import { type ToolDefinition, tools } from '../../tools.generated.js';

const tool = (name: string) => tools.find((t) => t.name === name) as ToolDefinition;

describe('mcp call: key=value typed by the tool schema', () => {
  it('keeps text where the schema says string, even when it looks like JSON', () => {
    expect(parseToolArguments(tool('push_file'), ['service=web', 'path=a', 'content=123'])).toEqual({
      service: 'web',
      path: 'a',
      content: '123',
    });
    expect(parseToolArguments(tool('push_file'), ['content=true', 'path=[1]'])).toEqual({
      content: 'true',
      path: '[1]',
    });
  });

  it('parses integers, booleans, arrays and objects only where the schema asks for them', () => {
    expect(parseToolArguments(tool('service_logs'), ['tail=50'])).toEqual({ tail: 50 });
    expect(parseToolArguments(tool('remove_service'), ['purgeFiles=true'])).toEqual({ purgeFiles: true });
    expect(parseToolArguments(tool('sync_desired_state'), ['services=[]'])).toEqual({ services: [] });
    expect(parseToolArguments(tool('deploy'), ['spec={"name":"web"}'])).toEqual({ spec: { name: 'web' } });
  });

  it('refuses a value of the wrong kind as bad usage, naming the key and an example', () => {
    expect(() => parseToolArguments(tool('service_logs'), ['tail=lots'])).toThrow(UsageError);
    expect(() => parseToolArguments(tool('service_logs'), ['tail=1.5'])).toThrow(/tail takes a whole number/);
    expect(() => parseToolArguments(tool('remove_service'), ['purgeFiles=yes'])).toThrow(/true or false/);
    expect(() => parseToolArguments(tool('deploy'), ['spec=web'])).toThrow(/a JSON object/);
    expect(() => parseToolArguments(tool('deploy'), ['web'])).toThrow(/not key=value/);
  });

  it('leaves keys the schema does not know as text, for validation to name', () => {
    expect(parseToolArguments(tool('deploy'), ['colour=7'])).toEqual({ colour: '7' });
  });
});

describe('command arguments', () => {
  it('reads SERVICE and SERVICE/COMPONENT, and nothing else', () => {
    expect(parseTarget('web')).toEqual({ service: 'web' });
    expect(parseTarget('web/app')).toEqual({ service: 'web', component: 'app' });
    for (const bad of ['', '/app', 'web/', 'a/b/c']) expect(() => parseTarget(bad)).toThrow(UsageError);
  });

  it('shows uptime as its two largest units', () => {
    const now = Date.parse('2026-11-30T12:00:00Z');
    expect(uptime(new Date(now - 9_000), now)).toBe('9s');
    expect(uptime(new Date(now - (4 * 60 + 10) * 1000), now)).toBe('4m10s');
    expect(uptime(new Date(now - (3 * 86400 + 4 * 3600 + 5) * 1000), now)).toBe('3d4h');
    expect(uptime(undefined, now)).toBe('-');
  });
});
