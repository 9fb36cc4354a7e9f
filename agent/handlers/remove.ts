/**
 * RemoveService: the end of a service on this node. Its managed containers are stopped (with
 * the stop timeout the lifecycle handlers use) and removed, its record is deleted (events and
 * the audit log stay: history is history), and with `purgeFiles` its files directory goes too.
 *
 * Components with desired state `ignore` are containers the agent does not manage (another
 * tool's, recorded by a sync): their record is forgotten, their container left alone.
 *
 * Order matters for a retry: containers first, the record only when every container is gone,
 * so a failed removal leaves a record that a second call finds; files last, after the
 * containers that might mount them are gone.
 */
import type { Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FailedPreconditionError, NotFoundError } from '../../core/errors.js';
import { checkServiceName, serviceDirectoryShown } from '../../core/paths.js';
import {
  type ComponentRemoval,
  type RemoveServiceRequest,
  RemoveServiceResponse,
} from '../../gen/mcp/v1/mcp.js';
import type { ComponentRecord } from '../../registry/services.js';
import { fileSystemError } from '../files/errors.js';
import { planGate, planRemove } from '../plan.js';
import type { UnaryHandler } from '../server.js';
import { requireService, type ServiceContext, stopContainer } from './context.js';

export function removeHandler(sc: ServiceContext): UnaryHandler<RemoveServiceRequest, RemoveServiceResponse> {
  return (req, ctx) => {
    checkServiceName(req.service);
    return planGate(
      req,
      {
        locks: sc.locks,
        requestResults: sc.deps.registry.requestResults,
        services: [req.service],
        rpc: 'RemoveService',
        requestId: req.requestId,
        codec: RemoveServiceResponse,
        signal: ctx.signal,
      },
      async () =>
        planRemove(
          requireService(sc, req.service, 'nothing to remove (list_services shows the services it has)'),
          await sc.deps.runtime.list(),
          req.purgeFiles,
        ),
      (plan) => ({ service: req.service, components: [], filesRemoved: '', replayed: false, plan }),
      async () => {
        const service = requireService(
          sc,
          req.service,
          'nothing to remove (list_services shows the services it has; a retry of a removal that succeeded needs the same requestId to replay it)',
        );
        const filesDirectory = req.purgeFiles ? await checkFilesDirectory(sc, service.name) : undefined;
        const components = await Promise.all(service.components.map((c) => removeContainer(sc, c)));

        const { registry } = sc.deps;
        registry.transaction(() => {
          registry.services.delete(service.name);
          for (const removal of components) {
            registry.events.record({
              service: service.name,
              component: removal.component,
              kind: 'removed',
              message: `service removed; container ${removal.container} ${removal.outcome}`,
            });
          }
        });
        let filesRemoved = '';
        if (filesDirectory?.exists) {
          await fs.rm(filesDirectory.path, { recursive: true, force: true }).catch((err: unknown) => {
            throw fileSystemError(err, { relative: '.', shown: filesDirectory.shown });
          });
          filesRemoved = filesDirectory.shown;
        }
        return { service: service.name, components, filesRemoved, replayed: false };
      },
    );
  };
}

async function removeContainer(sc: ServiceContext, component: ComponentRecord): Promise<ComponentRemoval> {
  const { name, container } = component;
  if (component.desiredState === 'ignore') return { component: name, container, outcome: 'left' };
  if (!(await stopContainer(sc, component))) return { component: name, container, outcome: 'absent' };
  try {
    await sc.deps.runtime.remove(container);
    return { component: name, container, outcome: 'removed' };
  } catch (err) {
    if (err instanceof NotFoundError) return { component: name, container, outcome: 'absent' };
    throw err;
  }
}

interface FilesDirectory {
  path: string;
  shown: string;
  exists: boolean;
}

/**
 * `<files.root>/<service>`, checked before anything is removed: a real directory (removed
 * without following any link inside it), or nothing. A symbolic link there (the operator's,
 * to another disk) is refused: deleting through it would reach outside the files root.
 */
async function checkFilesDirectory(sc: ServiceContext, service: string): Promise<FilesDirectory> {
  const { root } = sc.deps.config.files;
  const directory = path.join(root, service);
  const shown = serviceDirectoryShown(root, service);
  let stat: Stats;
  try {
    stat = await fs.lstat(directory);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { path: directory, shown, exists: false };
    throw fileSystemError(err, { relative: '.', shown });
  }
  if (!stat.isDirectory()) {
    throw new FailedPreconditionError(
      `${shown} is ${stat.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}, so purgeFiles will not delete through it: nothing was removed; remove the service without purgeFiles and clean up ${shown} by hand`,
    );
  }
  return { path: directory, shown, exists: true };
}
