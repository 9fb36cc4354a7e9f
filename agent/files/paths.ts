/**
 * Path confinement: a service's files live under `<files.root>/<service>/` and a push or pull
 * never reaches anything outside it.
 *
 * Two layers:
 * 1. Lexical rules on the path as given (`checkRelativePath` in `core/paths.ts`).
 * 2. The filesystem (`resolveServicePath`): the path is walked one component at a time from
 *    the service directory; every symbolic link met on the way (a parent or the file itself)
 *    is resolved with `realpath` and must land inside the service directory. Links that stay
 *    inside are followed, links that leave are refused.
 *
 * A container that mounts its service directory can swap a checked directory for a link
 * between the check and the use. `openDirectory` closes that window: it opens the parent
 * directory with O_NOFOLLOW and asks the kernel (`/proc/self/fd`) where the open directory
 * really is; the file itself is then opened relative to that descriptor, with O_NOFOLLOW.
 *
 * The service directory itself may be a link set up by the operator (for example to another
 * disk): it is the boundary, taken as `realpath(<root>/<service>)`.
 *
 * Hard links cannot be seen in a path: `srv/web/x` hard-linked to `/etc/shadow` IS that file.
 * So a regular file with more than one link is refused for a pull (`openServiceFile` checks the
 * opened descriptor) and as the destination of a push (`writeServiceFile`): it may be an
 * outside file. Remove the link and put a copy there instead.
 *
 * A path whose full form (files root, service, path) passes PATH_MAX is refused before any
 * call, and every errno the file system answers is mapped by `fileSystemError`
 * (agent/files/errors.ts), so bad input is never INTERNAL.
 */
import { constants, type Stats } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../core/errors.js';
import {
  checkRelativePath,
  checkServiceName,
  isInside,
  MAX_PATH_BYTES,
  serviceDirectoryShown,
} from '../../core/paths.js';
import { printable } from '../../core/text.js';
import { diskFull, errnoCode, fileSystemError } from './errors.js';

/** Symbolic links followed while resolving one path, as Linux's own limit. */
const MAX_LINK_HOPS = 40;

/** A path inside a service directory, resolved. */
export interface ServicePath {
  service: string;
  /** The path as given, normalized (`./a//b` is `a/b`): what responses report. */
  relative: string;
  /** `<root>/<service>/` as messages show it. */
  shown: string;
  /** The service directory with links resolved: nothing outside it is touched. */
  boundary: string;
  /** The real directory that holds (or, for a new file, will hold) the file; inside `boundary`. */
  parent: string;
  /** The file's name in `parent`: never a symbolic link when it was resolved. */
  name: string;
  /** What is there now; undefined when the file does not exist yet. */
  stat: Stats | undefined;
  /** Directories this resolution created (`create`), in creation order: a failed push removes them. */
  created: string[];
}

export interface ResolveOptions {
  /**
   * Create the service directory and missing parent directories (mode 0755), as a push does.
   * Without it a missing directory is NOT_FOUND.
   */
  create: boolean;
}

/**
 * Resolves `input` under `<root>/<service>/`, following links only while they stay inside.
 * Throws INVALID_ARGUMENT for a path that breaks a rule or leads outside, NOT_FOUND for a
 * missing directory (unless `create`), FAILED_PRECONDITION when the files root is unusable.
 */
export async function resolveServicePath(
  root: string,
  service: string,
  input: string,
  options: ResolveOptions,
): Promise<ServicePath> {
  checkServiceName(service);
  const shown = serviceDirectoryShown(root, service);
  const components = checkRelativePath(input, shown);
  const relative = components.join('/');
  const leaves = () =>
    new InvalidArgumentError(
      `path '${printable(input)}' leaves the service directory: give a path relative to ${shown}`,
    );

  const full = path.join(root, service, relative);
  if (Buffer.byteLength(full) >= MAX_PATH_BYTES) {
    throw new InvalidArgumentError(
      `path '${printable(input)}' is ${Buffer.byteLength(full)} bytes long once joined to ${shown}, over the file system's limit of ${MAX_PATH_BYTES - 1}: use a shorter path`,
    );
  }

  const created: string[] = [];
  try {
    return await walk();
  } catch (err) {
    await removeCreatedDirectories(created);
    throw fileSystemError(err, { relative, shown });
  }

  async function walk(): Promise<ServicePath> {
    const boundary = await serviceBoundary(root, service, options.create, created);
    let current = boundary;
    let hops = 0;
    const queue = [...components];
    const walked: string[] = [];
    while (queue.length > 0) {
      const part = queue.shift() as string;
      const last = queue.length === 0;
      const next = path.join(current, part);
      const soFar = [...walked, part].join('/');
      const stat = await lstatOrUndefined(next);
      if (stat === undefined) {
        if (last)
          return {
            service,
            relative,
            shown,
            boundary,
            parent: current,
            name: part,
            stat: undefined,
            created,
          };
        if (!options.create)
          throw new NotFoundError(`directory '${printable(soFar)}' does not exist in ${shown}`);
        if (await makeDirectory(next)) created.push(next);
        queue.unshift(part); // look again: whatever is there now is checked like anything else
        continue;
      }
      if (stat.isSymbolicLink()) {
        hops += 1;
        if (hops > MAX_LINK_HOPS) {
          throw new InvalidArgumentError(
            `path '${printable(input)}' goes through more than ${MAX_LINK_HOPS} symbolic links`,
          );
        }
        const real = await realpathOrUndefined(next).catch((err: unknown) => {
          if (errnoCode(err) !== 'ELOOP') throw err;
          throw new InvalidArgumentError(
            `path '${printable(input)}' runs into a loop of symbolic links at '${printable(soFar)}': fix the links or choose another path`,
          );
        });
        if (real === undefined) {
          // A dangling link: refuse it, saying whether it would have led outside.
          const target = path.resolve(current, await fs.readlink(next));
          if (!isInside(boundary, target)) throw leaves();
          if (!last || !options.create) {
            throw new NotFoundError(`'${printable(soFar)}' in ${shown} is a symbolic link to nothing`);
          }
          throw new InvalidArgumentError(
            `'${printable(soFar)}' in ${shown} is a symbolic link to a file that does not exist: remove the link or push to its target`,
          );
        }
        if (!isInside(boundary, real)) throw leaves();
        if (real === boundary) {
          if (last)
            throw new InvalidArgumentError(
              `path '${printable(input)}' names the service directory itself: name a file`,
            );
          current = boundary;
        } else if (last) {
          return {
            service,
            relative,
            shown,
            boundary,
            parent: path.dirname(real),
            name: path.basename(real),
            stat: await fs.lstat(real),
            created,
          };
        } else {
          current = real;
          const target = await fs.stat(real);
          if (!target.isDirectory()) throw notADirectory(soFar, shown);
        }
        walked.push(part);
        continue;
      }
      if (last) return { service, relative, shown, boundary, parent: current, name: part, stat, created };
      if (!stat.isDirectory()) throw notADirectory(soFar, shown);
      current = next;
      walked.push(part);
    }
    // checkRelativePath never returns an empty list.
    throw new InvalidArgumentError(`path '${printable(input)}' names no file`);
  }
}

/** Removes directories a resolution created, deepest first, as long as they are still empty. */
export async function removeCreatedDirectories(created: readonly string[]): Promise<void> {
  for (const dir of [...created].reverse()) {
    await fs.rmdir(dir).catch(() => undefined);
  }
}

function notADirectory(soFar: string, shown: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `'${printable(soFar)}' in ${shown} is a file, not a directory: choose another path`,
  );
}

/** The service directory, links resolved; created (with the files root) when `create`. */
async function serviceBoundary(
  root: string,
  service: string,
  create: boolean,
  created: string[],
): Promise<string> {
  const dir = path.join(root, service);
  if (create) {
    try {
      await fs.mkdir(root, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw rootProblem(root, err);
    }
    if (await makeDirectory(dir)) created.push(dir);
  }
  try {
    const real = await fs.realpath(dir);
    if (!(await fs.stat(real)).isDirectory()) {
      throw new FailedPreconditionError(
        `${dir} is not a directory: move it away so the service's files can go there`,
      );
    }
    return real;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw new NotFoundError(
        `service '${service}' has no directory ${dir}/ on this node: push a file first`,
      );
    }
    throw err;
  }
}

function rootProblem(root: string, err: unknown): FailedPreconditionError {
  return new FailedPreconditionError(
    `the files root ${root} cannot be created (${errnoCode(err) ?? String(err)}): create it or set files.root in the agent config`,
    { cause: err },
  );
}

/**
 * mkdir with exactly mode 0755 whatever the umask. False when something already has that
 * name: the caller checks what it is.
 */
async function makeDirectory(dir: string): Promise<boolean> {
  try {
    await fs.mkdir(dir, { mode: 0o755 });
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    if (errnoCode(err) === 'ENOSPC') throw diskFull(dir, err);
    throw err;
  }
  await fs.chmod(dir, 0o755);
  return true;
}

/** An open directory, checked to be inside the boundary where the kernel has it. */
export interface OpenDirectory {
  readonly handle: FileHandle;
  /** `<dev>:<ino>` of the directory: names it whatever path leads to it. */
  readonly device: string;
  /** A path to `name` inside this very directory, immune to later renames or swapped links. */
  entry(name: string): string;
  close(): Promise<void>;
}

/**
 * Opens `target.parent` without following a link in its last component, then reads back where
 * the open directory really is (`/proc/self/fd/N`): if a link was swapped in along the way
 * after `resolveServicePath` checked it, the directory is outside and this throws.
 */
export async function openDirectory(target: ServicePath): Promise<OpenDirectory> {
  const handle = await fs.open(
    target.parent,
    constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
  );
  try {
    const where = await descriptorPath(handle.fd);
    if (!isInside(target.boundary, where)) {
      throw new InvalidArgumentError(
        `path '${printable(target.relative)}' leaves the service directory (a directory was replaced by a link while it was being resolved): give a path relative to ${target.shown}`,
      );
    }
  } catch (err) {
    await handle.close();
    throw err;
  }
  return describeOpenDirectory(handle);
}

/** An open directory handle as an OpenDirectory: its identity and paths relative to it. */
export async function describeOpenDirectory(handle: FileHandle): Promise<OpenDirectory> {
  const stat = await handle.stat();
  const base = `/proc/self/fd/${handle.fd}`;
  return {
    handle,
    device: `${stat.dev}:${stat.ino}`,
    entry: (name) => `${base}/${name}`,
    close: () => handle.close(),
  };
}

async function descriptorPath(fd: number): Promise<string> {
  try {
    return await fs.readlink(`/proc/self/fd/${fd}`);
  } catch (err) {
    throw new FailedPreconditionError(
      `cannot read /proc/self/fd (${errnoCode(err) ?? String(err)}): the agent needs /proc mounted to confine file paths`,
      { cause: err },
    );
  }
}

async function lstatOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

async function realpathOrUndefined(file: string): Promise<string | undefined> {
  try {
    return await fs.realpath(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}
