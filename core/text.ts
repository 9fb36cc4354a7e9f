/** Small helpers for values that came from outside: JSON objects and text shown in messages. */

/** A plain JSON object: not null, not an array. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * The value as it may appear in a message or a log line: control characters (C0, DEL, C1)
 * escaped, long values cut to 100 characters.
 */
export function printable(value: string): string {
  const shown = value.length > 100 ? `${value.slice(0, 100)}...` : value;
  return shown.replace(CONTROL_CHARACTERS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
