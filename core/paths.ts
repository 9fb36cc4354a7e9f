/**
 * The lexical path rules both sides check before any file system is touched: a service name
 * that becomes a directory name, and a path relative to a service directory (relative, no `..`,
 * no NUL or other control characters (C0, DEL, C1), no backslashes, no percent-encoded
 * sequences, components of at most 255 bytes, at most 4096 bytes in all). Paths are never
 * URL-decoded, so `%2e%2e%2f` would be a literal name, and is refused as a likely mistake.
 * Resolution against the real file system is the agent's (`agent/files/paths.ts`).
 */
import path from 'node:path';
import { InvalidArgumentError } from './errors.js';
import { checkName } from './spec.js';
import { printable } from './text.js';

/**
 * The folder of a service's files that holds its env files: pull_file refuses what is in it
 * unless the caller has `file.pull_secrets`.
 */
export const SECRETS_FOLDER = 'secrets';

/** Longest path accepted, in bytes (Linux PATH_MAX). */
export const MAX_PATH_BYTES = 4096;
/** Longest path component accepted, in bytes (Linux NAME_MAX). */
export const MAX_NAME_BYTES = 255;

// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
const PERCENT_ENCODED = /%[0-9a-fA-F]{2}/;

/** `<root>/<service>/`, as messages show it. */
export function serviceDirectoryShown(root: string, service: string): string {
  return `${path.join(root, service)}/`;
}

/** Throws INVALID_ARGUMENT unless `service` is a valid service name (it becomes a directory name). */
export function checkServiceName(service: string): void {
  const problem = checkName(service);
  if (problem) throw new InvalidArgumentError(`service name: ${problem}`);
}

/**
 * Checks a path relative to a service directory by its text alone and returns its components
 * (`.` and repeated slashes dropped). Throws INVALID_ARGUMENT saying what is wrong; `where`
 * is the service directory as messages show it.
 */
export function checkRelativePath(input: string, where: string): string[] {
  const refuse = (problem: string, advice = `give a path relative to ${where}`) =>
    new InvalidArgumentError(`path '${printable(input)}' ${problem}: ${advice}`);
  if (input === '') {
    throw new InvalidArgumentError(
      `path is empty: give a file path relative to ${where}, e.g. config/app.toml`,
    );
  }
  if (input.includes('\0')) throw refuse('contains a NUL byte');
  if (CONTROL_CHARACTER.test(input)) throw refuse('contains a control character', 'rename the file');
  if (Buffer.byteLength(input) > MAX_PATH_BYTES) {
    throw refuse(`is ${Buffer.byteLength(input)} bytes long`, `use at most ${MAX_PATH_BYTES} bytes`);
  }
  if (input.startsWith('/')) throw refuse('is absolute, so it leaves the service directory');
  if (input.includes('\\')) throw refuse('contains a backslash', "separate directories with '/'");
  const encoded = PERCENT_ENCODED.exec(input);
  if (encoded) {
    throw refuse(
      `contains the percent-encoded sequence '${encoded[0]}'`,
      'paths are not URL-decoded: give the name exactly as it is on disk',
    );
  }
  const parts = input.split('/');
  if (parts.includes('..')) throw refuse('leaves the service directory');
  const last = parts[parts.length - 1];
  if (last === '' || last === '.') {
    throw refuse('names a directory', 'name a file, e.g. config/app.toml');
  }
  const components = parts.filter((part) => part !== '' && part !== '.');
  for (const part of components) {
    if (Buffer.byteLength(part) > MAX_NAME_BYTES) {
      throw refuse(
        `has a component of ${Buffer.byteLength(part)} bytes`,
        `use names of at most ${MAX_NAME_BYTES} bytes`,
      );
    }
  }
  return components;
}

/** True when `candidate` is `boundary` or below it. Both must be absolute and normalized. */
export function isInside(boundary: string, candidate: string): boolean {
  return candidate === boundary || candidate.startsWith(boundary.endsWith('/') ? boundary : `${boundary}/`);
}
