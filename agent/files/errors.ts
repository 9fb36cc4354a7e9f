/**
 * What the file system answers, as errors a caller can act on. A path is input: whatever the
 * kernel says about it (too long, a socket, a file where a directory should be, a read-only or
 * immutable file) is the caller's problem or the node's state, never INTERNAL. Only an errno
 * this table does not know stays INTERNAL, because then the agent itself misbehaved.
 */
import {
  FailedPreconditionError,
  InvalidArgumentError,
  McpError,
  NotFoundError,
  ResourceExhaustedError,
} from '../../core/errors.js';
import { printable } from '../../core/text.js';

export function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export function diskFull(where: string, cause: unknown): ResourceExhaustedError {
  return new ResourceExhaustedError(
    `no space left on the disk holding ${where}: free some space, then retry`,
    {
      cause,
    },
  );
}

/** The file a message names: the path as the caller gave it, in its service directory. */
export interface FileShown {
  relative: string;
  shown: string;
}

/**
 * Maps an errno from a file operation on `file` to a typed error; McpErrors and errors without
 * an errno pass through unchanged.
 */
export function fileSystemError(err: unknown, file: FileShown): unknown {
  if (err instanceof McpError) return err;
  const code = errnoCode(err);
  if (code === undefined) return err;
  const named = `'${printable(file.relative)}' in ${file.shown}`;
  const options = { cause: err };
  switch (code) {
    case 'ENAMETOOLONG':
      return new InvalidArgumentError(
        `path ${named} is too long for the file system once joined to the service directory (PATH_MAX is 4096 bytes, a name at most 255): use a shorter path`,
        options,
      );
    case 'ENXIO':
    case 'ENODEV':
      return new InvalidArgumentError(
        `path ${named} is a socket or device, not a regular file: only regular files are pulled or replaced`,
        options,
      );
    case 'ENOTDIR':
      return new InvalidArgumentError(`a directory of path ${named} is a file: choose another path`, options);
    case 'EISDIR':
    case 'ENOTEMPTY':
      return new InvalidArgumentError(`path ${named} is a directory: name a file`, options);
    case 'ELOOP':
      return new InvalidArgumentError(
        `path ${named} runs into symbolic links (a loop, or a link swapped in while it was used): fix the links or choose another path`,
        options,
      );
    case 'ENOENT':
      return new NotFoundError(
        `${named} does not exist (or was removed while it was being used): check the path, then retry`,
        options,
      );
    case 'EACCES':
    case 'EPERM':
      return new FailedPreconditionError(
        `the agent may not use ${named} (${code}: permissions, an immutable attribute or a security policy): fix the file's permissions on the node or choose another path`,
        options,
      );
    case 'EROFS':
      return new FailedPreconditionError(
        `${named} is on a read-only file system: remount it read-write or choose another path`,
        options,
      );
    case 'EBUSY':
    case 'ETXTBSY':
      return new FailedPreconditionError(
        `${named} is busy (${code}: a mount point or a running program): it cannot be replaced; choose another path`,
        options,
      );
    case 'EMLINK':
      return new FailedPreconditionError(
        `the directory of ${named} has too many entries or links (EMLINK): choose another directory`,
        options,
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return diskFull(file.shown, err);
    case 'EFBIG':
    case 'EOVERFLOW':
      return new ResourceExhaustedError(`${named} is too large for the file system (${code})`, options);
    default:
      return err;
  }
}

/**
 * A regular file with more than one name: another name may be outside the service directory
 * (`ln /etc/shadow /srv/web/x`), and nothing tells which name is the real one.
 */
export function hardLinked(
  file: FileShown,
  links: number,
  verb: 'pulled' | 'replaced',
): InvalidArgumentError {
  return new InvalidArgumentError(
    `'${printable(file.relative)}' in ${file.shown} has ${links} hard links, so it may be a file outside the service directory, and is not ${verb}: on the node, make it a file of its own (cp FILE FILE.new && mv FILE.new FILE) or remove its other links`,
  );
}
