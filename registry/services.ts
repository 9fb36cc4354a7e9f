/**
 * Services and their components as the node records them: the definition last deployed or
 * synced (image, ports, volumes, cmd, env, ...), what the operator wants (desired state) and
 * what the runtime last reported (observed state, container, version).
 */
import type Database from 'better-sqlite3';
import { InvalidArgumentError, NotFoundError } from '../core/errors.js';
import { containerName } from '../core/naming.js';
import { assertValidServiceSpec } from '../core/spec.js';
import type { DesiredStateName, ObservedStateName } from '../core/states.js';
import { type ComponentSpec, HealthCheck, ServiceSpec } from '../gen/mcp/v1/mcp.js';
import { writeTransaction } from './transaction.js';

/** A component's recorded spec (the contract's ComponentSpec) and what the agent knows of it. */
export interface ComponentRecord extends ComponentSpec {
  service: string;
  /** Version (image tag) the runtime reported as deployed; '' until observed. */
  version: string;
  /**
   * The image reference the component's container was created from, as the runtime lists it
   * (`localhost/bb:v1` for `bb:v1`); '' until observed. Compared with `image` for drift.
   */
  observedImage: string;
  desiredState: DesiredStateName;
  /** `undefined` until the runtime has been asked. */
  observedState: ObservedStateName | undefined;
  container: string;
  startedAt: Date | undefined;
  createdAt: Date;
  updatedAt: Date;
}

export interface ServiceRecord {
  name: string;
  active: boolean;
  createdAt: Date;
  updatedAt: Date;
  /** In definition order. */
  components: ComponentRecord[];
}

export type ServiceChange = 'created' | 'updated' | 'unchanged';

/** What an upsert did; the shape of the proto's `ServiceSyncResult`. */
export interface ServiceUpsertResult {
  service: string;
  change: ServiceChange;
  /** Human-readable, for example `web: image a:v1 -> a:v2`. Env values are never shown. */
  details: string[];
}

export interface UpsertOptions {
  /**
   * Desired state for the components written, instead of the one `active` implies
   * (running/stopped). Sync uses `ignore` for unmatched containers, adopt follows what runs.
   */
  desiredState?: DesiredStateName;
}

/** What the runtime reported for a component. Fields left out keep their recorded value. */
export interface Observation {
  state: ObservedStateName;
  startedAt?: Date;
  container?: string;
  version?: string;
  /** The image reference the container was created from. */
  image?: string;
}

/** The observed fields a component would have after `observation`: what it leaves out stays. */
function observedFields(old: ComponentRecord, observation: Observation) {
  return {
    state: observation.state,
    startedAt: observation.startedAt?.toISOString() ?? old.startedAt?.toISOString() ?? null,
    container: observation.container ?? old.container,
    version: observation.version ?? old.version,
    observedImage: observation.image ?? old.observedImage,
  };
}

/** Whether `observation` would change what the registry holds of the component (setObservedState writes only then). */
export function changesObservation(old: ComponentRecord, observation: Observation): boolean {
  return differs(old, observedFields(old, observation));
}

function differs(old: ComponentRecord, next: ReturnType<typeof observedFields>): boolean {
  return (
    next.state !== old.observedState ||
    next.startedAt !== (old.startedAt?.toISOString() ?? null) ||
    next.container !== old.container ||
    next.version !== old.version ||
    next.observedImage !== old.observedImage
  );
}

/** How many deployed definitions the registry keeps per service for rollback_service. */
export const SPEC_HISTORY_KEEP = 5;

/** A definition as it was deployed. */
export interface DeployedSpec {
  id: number;
  deployedAt: Date;
  spec: ServiceSpec;
}

export interface ListFilter {
  /** Only components with this desired state; services left with none are omitted. */
  desiredState?: DesiredStateName;
}

/** Rebuilds the definition recorded for a service, for a deploy from the registry. */
export function toServiceSpec(service: ServiceRecord): ServiceSpec {
  return {
    name: service.name,
    active: service.active,
    components: service.components.map((c) => ({
      name: c.name,
      image: c.image,
      network: c.network,
      user: c.user,
      restart: c.restart,
      ports: [...c.ports],
      volumes: [...c.volumes],
      cmd: [...c.cmd],
      env: { ...c.env },
      envFiles: [...c.envFiles],
      init: c.init,
      healthCheck: c.healthCheck ? { ...c.healthCheck, command: [...c.healthCheck.command] } : undefined,
      ...(c.stopTimeoutSeconds !== undefined ? { stopTimeoutSeconds: c.stopTimeoutSeconds } : {}),
    })),
  };
}

interface ServiceRow {
  name: string;
  active: number;
  created_at: string;
  updated_at: string;
}

interface ComponentRow {
  service: string;
  name: string;
  position: number;
  image: string;
  version: string;
  observed_image: string;
  network: string;
  user: string;
  restart: string;
  init: number;
  stop_timeout_seconds: number | null;
  health_check: string | null;
  desired_state: DesiredStateName;
  observed_state: ObservedStateName | null;
  container: string;
  started_at: string | null;
  created_at: string;
  updated_at: string;
}

interface ListRow {
  service: string;
  component: string;
  value: string;
}

interface EnvRow {
  service: string;
  component: string;
  key: string;
  value: string;
}

type ServiceScope = { service: string | null };

export class ServiceStore {
  private readonly db: Database.Database;
  private readonly statements;

  constructor(db: Database.Database) {
    this.db = db;
    // `@service IS NULL` selects every service: one statement serves get() and list().
    const scoped = 'WHERE @service IS NULL OR service = @service';
    this.statements = {
      services: db.prepare<ServiceScope, ServiceRow>(
        'SELECT * FROM services WHERE @service IS NULL OR name = @service ORDER BY name',
      ),
      components: db.prepare<ServiceScope, ComponentRow>(
        `SELECT * FROM components ${scoped} ORDER BY service, position, name`,
      ),
      ports: db.prepare<ServiceScope, ListRow>(
        `SELECT service, component, mapping AS value FROM component_ports ${scoped} ORDER BY position`,
      ),
      volumes: db.prepare<ServiceScope, ListRow>(
        `SELECT service, component, mapping AS value FROM component_volumes ${scoped} ORDER BY position`,
      ),
      cmd: db.prepare<ServiceScope, ListRow>(
        `SELECT service, component, arg AS value FROM component_cmd ${scoped} ORDER BY position`,
      ),
      envFiles: db.prepare<ServiceScope, ListRow>(
        `SELECT service, component, path AS value FROM component_env_files ${scoped} ORDER BY position`,
      ),
      env: db.prepare<ServiceScope, EnvRow>(
        `SELECT service, component, key, value FROM component_env ${scoped} ORDER BY key`,
      ),
      names: db.prepare<[], { name: string }>('SELECT name FROM services ORDER BY name'),
      history: db.prepare<[string], { id: number; deployed_at: string; spec_json: string }>(
        'SELECT id, deployed_at, spec_json FROM spec_history WHERE service = ? ORDER BY id DESC',
      ),
      insertHistory: db.prepare(
        'INSERT INTO spec_history (service, deployed_at, spec_json) VALUES (@service, @now, @specJson)',
      ),
      trimHistory: db.prepare(
        `DELETE FROM spec_history WHERE service = @service AND id NOT IN
           (SELECT id FROM spec_history WHERE service = @service ORDER BY id DESC LIMIT @keep)`,
      ),
      deleteHistoryEntry: db.prepare<[number]>('DELETE FROM spec_history WHERE id = ?'),
      deleteHistory: db.prepare<[string]>('DELETE FROM spec_history WHERE service = ?'),
      insertService: db.prepare(
        'INSERT INTO services (name, active, created_at, updated_at) VALUES (@name, @active, @now, @now)',
      ),
      deleteService: db.prepare<[string]>('DELETE FROM services WHERE name = ?'),
      setActive: db.prepare('UPDATE services SET active = @active, updated_at = @now WHERE name = @name'),
      touchService: db.prepare('UPDATE services SET updated_at = @now WHERE name = @name'),
      insertComponent: db.prepare(
        `INSERT INTO components (service, name, position, image, network, user, restart, init,
           stop_timeout_seconds, health_check, desired_state, container, created_at, updated_at)
         VALUES (@service, @name, @position, @image, @network, @user, @restart, @init,
           @stopTimeoutSeconds, @healthCheck, @desiredState, @container, @now, @now)`,
      ),
      updateComponent: db.prepare(
        `UPDATE components SET image = @image, network = @network, user = @user, restart = @restart,
           init = @init, stop_timeout_seconds = @stopTimeoutSeconds, health_check = @healthCheck,
           desired_state = @desiredState,
           updated_at = @now
         WHERE service = @service AND name = @name`,
      ),
      setPosition: db.prepare(
        'UPDATE components SET position = @position WHERE service = @service AND name = @name',
      ),
      maxPosition: db.prepare<[string], { position: number | null }>(
        'SELECT MAX(position) AS position FROM components WHERE service = ?',
      ),
      containerOwner: db.prepare<[string], { service: string; component: string }>(
        'SELECT service, name AS component FROM components WHERE container = ?',
      ),
      setDesired: db.prepare(
        `UPDATE components SET desired_state = @state, updated_at = @now
         WHERE service = @service AND (@component IS NULL OR name = @component) AND desired_state <> @state`,
      ),
      setObserved: db.prepare(
        `UPDATE components SET observed_state = @state, started_at = @startedAt, container = @container,
           version = @version, observed_image = @observedImage, updated_at = @now
         WHERE service = @service AND name = @name`,
      ),
      clearChildren: [
        db.prepare<[string, string]>('DELETE FROM component_ports WHERE service = ? AND component = ?'),
        db.prepare<[string, string]>('DELETE FROM component_volumes WHERE service = ? AND component = ?'),
        db.prepare<[string, string]>('DELETE FROM component_cmd WHERE service = ? AND component = ?'),
        db.prepare<[string, string]>('DELETE FROM component_env WHERE service = ? AND component = ?'),
        db.prepare<[string, string]>('DELETE FROM component_env_files WHERE service = ? AND component = ?'),
      ],
      insertPort: db.prepare<[string, string, number, string]>(
        'INSERT INTO component_ports (service, component, position, mapping) VALUES (?, ?, ?, ?)',
      ),
      insertVolume: db.prepare<[string, string, number, string]>(
        'INSERT INTO component_volumes (service, component, position, mapping) VALUES (?, ?, ?, ?)',
      ),
      insertArg: db.prepare<[string, string, number, string]>(
        'INSERT INTO component_cmd (service, component, position, arg) VALUES (?, ?, ?, ?)',
      ),
      insertEnvFile: db.prepare<[string, string, number, string]>(
        'INSERT INTO component_env_files (service, component, position, path) VALUES (?, ?, ?, ?)',
      ),
      insertEnv: db.prepare<[string, string, string, string]>(
        'INSERT INTO component_env (service, component, key, value) VALUES (?, ?, ?, ?)',
      ),
    };
  }

  /**
   * Records a service definition in one transaction: creates the service or updates what
   * differs, and says what changed. Components the spec does not list are kept: sync is
   * additive. Desired state follows `active` (absent means true) unless overridden. The spec
   * must pass core/spec.ts's rules, whoever calls: its names become container names.
   */
  upsert(spec: ServiceSpec, options: UpsertOptions = {}): ServiceUpsertResult {
    assertValidServiceSpec(spec, `service '${spec.name}'`);
    return writeTransaction(this.db, () => {
      const now = nowIso();
      const active = spec.active ?? true;
      const desired = options.desiredState ?? (active ? 'running' : 'stopped');
      const existing = this.get(spec.name);
      if (!existing) {
        this.statements.insertService.run({ name: spec.name, active: active ? 1 : 0, now });
        spec.components.forEach((component, position) => {
          const container = containerName(spec.name, component.name, spec.components.length);
          this.insertComponent(spec.name, component, position, desired, container, now);
        });
        return {
          service: spec.name,
          change: 'created',
          details: spec.components.map((c) => `${c.name}: added`),
        };
      }

      const details: string[] = [];
      if (existing.active !== active) {
        details.push(`active: ${existing.active} -> ${active}`);
        this.statements.setActive.run({ name: spec.name, active: active ? 1 : 0, now });
      }
      const recorded = new Map(existing.components.map((c) => [c.name, c]));
      const componentCount = new Set([...recorded.keys(), ...spec.components.map((c) => c.name)]).size;
      spec.components.forEach((component, position) => {
        const old = recorded.get(component.name);
        if (!old) {
          const container = containerName(spec.name, component.name, componentCount);
          this.insertComponent(spec.name, component, position, desired, container, now);
          details.push(`${component.name}: added`);
          return;
        }
        const changes = describeChanges(old, component, desired);
        if (changes.length > 0) {
          this.updateComponent(spec.name, component, desired, now);
          details.push(...changes);
        }
        // Reordering is recorded but is not a change worth reporting.
        this.statements.setPosition.run({ service: spec.name, name: component.name, position });
      });
      if (details.length > 0) this.statements.touchService.run({ name: spec.name, now });
      return { service: spec.name, change: details.length > 0 ? 'updated' : 'unchanged', details };
    });
  }

  get(name: string): ServiceRecord | undefined {
    return this.load(name)[0];
  }

  /** Like `get`, for handlers that cannot go on without the service. */
  require(name: string): ServiceRecord {
    const service = this.get(name);
    if (!service) throw unknownService(name);
    return service;
  }

  list(filter: ListFilter = {}): ServiceRecord[] {
    const services = this.load(null);
    const wanted = filter.desiredState;
    if (wanted === undefined) return services;
    return services
      .map((s) => ({ ...s, components: s.components.filter((c) => c.desiredState === wanted) }))
      .filter((s) => s.components.length > 0);
  }

  names(): string[] {
    return this.statements.names.all().map((row) => row.name);
  }

  getComponent(service: string, name: string): ComponentRecord | undefined {
    return this.get(service)?.components.find((c) => c.name === name);
  }

  /** Adds or updates one component of a recorded service, after the others. */
  upsertComponent(
    service: string,
    spec: ComponentSpec,
    options: Pick<UpsertOptions, 'desiredState'> = {},
  ): ServiceUpsertResult {
    assertValidServiceSpec({ name: service, components: [spec] }, `component ${service}/${spec.name}`);
    return writeTransaction(this.db, () => {
      const recorded = this.require(service);
      const now = nowIso();
      const desired = options.desiredState ?? (recorded.active ? 'running' : 'stopped');
      const old = recorded.components.find((c) => c.name === spec.name);
      if (!old) {
        const position = (this.statements.maxPosition.get(service)?.position ?? -1) + 1;
        const container = containerName(service, spec.name, recorded.components.length + 1);
        this.insertComponent(service, spec, position, desired, container, now);
        this.statements.touchService.run({ name: service, now });
        return { service, change: 'updated', details: [`${spec.name}: added`] };
      }
      const details = describeChanges(old, spec, desired);
      if (details.length === 0) return { service, change: 'unchanged', details };
      this.updateComponent(service, spec, desired, now);
      this.statements.touchService.run({ name: service, now });
      return { service, change: 'updated', details };
    });
  }

  /**
   * Deletes the service and, by cascade, its components with their ports, volumes, cmd and
   * env. Events have no foreign key to it: the history of a removed service stays. Returns
   * whether there was a service to delete.
   */
  delete(name: string): boolean {
    return writeTransaction(this.db, () => {
      this.statements.deleteHistory.run(name);
      return this.statements.deleteService.run(name).changes > 0;
    });
  }

  /**
   * Remembers `spec` as the service's newest deployed definition, unless it already is, and
   * keeps the newest `keep`. Called after a deploy in which no component failed.
   */
  recordDeployedSpec(spec: ServiceSpec, keep = SPEC_HISTORY_KEEP): void {
    const specJson = JSON.stringify(ServiceSpec.toJSON(spec));
    writeTransaction(this.db, () => {
      const newest = this.statements.history.get(spec.name);
      if (newest?.spec_json === specJson) return;
      this.statements.insertHistory.run({ service: spec.name, now: nowIso(), specJson });
      this.statements.trimHistory.run({ service: spec.name, keep });
    });
  }

  /** The service's deployed definitions, newest first. */
  specHistory(service: string): DeployedSpec[] {
    return this.statements.history.all(service).map((row) => ({
      id: row.id,
      deployedAt: new Date(row.deployed_at),
      spec: ServiceSpec.fromJSON(JSON.parse(row.spec_json)),
    }));
  }

  /** Forgets one history entry: a rollback drops the definition it rolled back from. */
  forgetDeployedSpec(id: number): void {
    this.statements.deleteHistoryEntry.run(id);
  }

  /** `active` is what start (true) and stop (false) record; restart leaves it alone. */
  setActive(service: string, active: boolean): void {
    const now = nowIso();
    const result = this.statements.setActive.run({ name: service, active: active ? 1 : 0, now });
    if (result.changes === 0) throw unknownService(service);
  }

  /** Sets the desired state of every component of the service, or of one. */
  setDesiredState(service: string, state: DesiredStateName, component?: string): void {
    writeTransaction(this.db, () => {
      if (component === undefined) this.require(service);
      else this.requireComponent(service, component);
      this.statements.setDesired.run({ service, component: component ?? null, state, now: nowIso() });
    });
  }

  /** Records what the runtime reported; returns the observed state recorded before. */
  setObservedState(
    service: string,
    component: string,
    observation: Observation,
  ): ObservedStateName | undefined {
    return writeTransaction(this.db, () => {
      const old = this.requireComponent(service, component);
      const next = observedFields(old, observation);
      if (differs(old, next)) {
        this.statements.setObserved.run({ service, name: component, ...next, now: nowIso() });
      }
      return old.observedState;
    });
  }

  private requireComponent(service: string, component: string): ComponentRecord {
    const found = this.require(service).components.find((c) => c.name === component);
    if (!found) throw unknownComponent(service, component);
    return found;
  }

  private insertComponent(
    service: string,
    spec: ComponentSpec,
    position: number,
    desiredState: DesiredStateName,
    container: string,
    now: string,
  ): void {
    const owner = this.statements.containerOwner.get(container);
    if (owner) {
      throw new InvalidArgumentError(
        `component ${service}/${spec.name} would run as container '${container}', which is already ` +
          `${owner.service}/${owner.component}: rename the component or the service`,
      );
    }
    this.statements.insertComponent.run({
      service,
      ...specColumns(spec),
      position,
      desiredState,
      container,
      now,
    });
    this.writeChildren(service, spec);
  }

  private updateComponent(
    service: string,
    spec: ComponentSpec,
    desiredState: DesiredStateName,
    now: string,
  ): void {
    this.statements.updateComponent.run({ service, ...specColumns(spec), desiredState, now });
    for (const clear of this.statements.clearChildren) clear.run(service, spec.name);
    this.writeChildren(service, spec);
  }

  private writeChildren(service: string, spec: ComponentSpec): void {
    const s = this.statements;
    for (const [i, mapping] of spec.ports.entries()) s.insertPort.run(service, spec.name, i, mapping);
    for (const [i, mapping] of spec.volumes.entries()) s.insertVolume.run(service, spec.name, i, mapping);
    for (const [i, arg] of spec.cmd.entries()) s.insertArg.run(service, spec.name, i, arg);
    for (const [key, value] of Object.entries(spec.env)) s.insertEnv.run(service, spec.name, key, value);
    for (const [i, file] of (spec.envFiles ?? []).entries()) s.insertEnvFile.run(service, spec.name, i, file);
  }

  /** Reads services with everything under them: five queries whatever the number of services. */
  private load(service: string | null): ServiceRecord[] {
    const scope = { service };
    const s = this.statements;
    const ports = groupLists(s.ports.all(scope));
    const volumes = groupLists(s.volumes.all(scope));
    const cmd = groupLists(s.cmd.all(scope));
    const envFiles = groupLists(s.envFiles.all(scope));
    const env = new Map<string, Record<string, string>>();
    for (const row of s.env.all(scope)) {
      const key = componentKey(row.service, row.component);
      const vars = env.get(key) ?? {};
      vars[row.key] = row.value;
      env.set(key, vars);
    }
    const components = new Map<string, ComponentRecord[]>();
    for (const row of s.components.all(scope)) {
      const key = componentKey(row.service, row.name);
      const list = components.get(row.service) ?? [];
      list.push({
        service: row.service,
        name: row.name,
        image: row.image,
        version: row.version,
        observedImage: row.observed_image,
        network: row.network,
        user: row.user,
        restart: row.restart,
        init: row.init === 1,
        ...(row.stop_timeout_seconds === null ? {} : { stopTimeoutSeconds: row.stop_timeout_seconds }),
        healthCheck:
          row.health_check === null ? undefined : HealthCheck.fromJSON(JSON.parse(row.health_check)),
        ports: ports.get(key) ?? [],
        volumes: volumes.get(key) ?? [],
        cmd: cmd.get(key) ?? [],
        env: env.get(key) ?? {},
        envFiles: envFiles.get(key) ?? [],
        desiredState: row.desired_state,
        observedState: row.observed_state ?? undefined,
        container: row.container,
        startedAt: row.started_at === null ? undefined : new Date(row.started_at),
        createdAt: new Date(row.created_at),
        updatedAt: new Date(row.updated_at),
      });
      components.set(row.service, list);
    }
    return s.services.all(scope).map((row) => ({
      name: row.name,
      active: row.active === 1,
      createdAt: new Date(row.created_at),
      updatedAt: new Date(row.updated_at),
      components: components.get(row.name) ?? [],
    }));
  }
}

function nowIso(): string {
  return new Date().toISOString();
}

function specColumns(spec: ComponentSpec) {
  return {
    name: spec.name,
    image: spec.image,
    network: spec.network,
    user: spec.user,
    restart: spec.restart,
    init: spec.init ? 1 : 0,
    stopTimeoutSeconds: spec.stopTimeoutSeconds ?? null,
    healthCheck: spec.healthCheck ? JSON.stringify(HealthCheck.toJSON(spec.healthCheck)) : null,
  };
}

function componentKey(service: string, component: string): string {
  return `${service}\u0000${component}`;
}

function groupLists(rows: ListRow[]): Map<string, string[]> {
  const lists = new Map<string, string[]>();
  for (const row of rows) {
    const key = componentKey(row.service, row.component);
    const list = lists.get(key) ?? [];
    list.push(row.value);
    lists.set(key, list);
  }
  return lists;
}

function describeChanges(old: ComponentRecord, spec: ComponentSpec, desired: DesiredStateName): string[] {
  const details: string[] = [];
  for (const field of ['image', 'network', 'user', 'restart'] as const) {
    if (old[field] !== spec[field])
      details.push(`${old.name}: ${field} ${shown(old[field])} -> ${shown(spec[field])}`);
  }
  for (const field of ['ports', 'volumes', 'cmd'] as const) {
    if (!sameList(old[field], spec[field])) {
      details.push(`${old.name}: ${field} ${JSON.stringify(old[field])} -> ${JSON.stringify(spec[field])}`);
    }
  }
  if (old.init !== (spec.init ?? false))
    details.push(`${old.name}: init ${old.init} -> ${spec.init ?? false}`);
  if (old.stopTimeoutSeconds !== spec.stopTimeoutSeconds) {
    const seconds = (value: number | undefined) => (value === undefined ? '(default)' : `${value}s`);
    details.push(
      `${old.name}: stop_timeout_seconds ${seconds(old.stopTimeoutSeconds)} -> ${seconds(spec.stopTimeoutSeconds)}`,
    );
  }
  if (!sameList(old.envFiles, spec.envFiles ?? [])) {
    details.push(
      `${old.name}: env_files ${JSON.stringify(old.envFiles)} -> ${JSON.stringify(spec.envFiles ?? [])}`,
    );
  }
  const oldCheck = old.healthCheck ? JSON.stringify(HealthCheck.toJSON(old.healthCheck)) : 'none';
  const newCheck = spec.healthCheck ? JSON.stringify(HealthCheck.toJSON(spec.healthCheck)) : 'none';
  if (oldCheck !== newCheck) details.push(`${old.name}: health_check ${oldCheck} -> ${newCheck}`);
  const env = describeEnvChanges(old.env, spec.env);
  if (env.length > 0) details.push(`${old.name}: env ${env.join(', ')}`);
  if (old.desiredState !== desired) details.push(`${old.name}: desired ${old.desiredState} -> ${desired}`);
  return details;
}

/** Names the keys only: env values are where secrets live, and details end up in responses. */
function describeEnvChanges(old: Record<string, string>, next: Record<string, string>): string[] {
  const changes: string[] = [];
  for (const key of Object.keys(next).sort()) {
    if (!(key in old)) changes.push(`${key} added`);
    else if (old[key] !== next[key]) changes.push(`${key} changed`);
  }
  for (const key of Object.keys(old).sort()) {
    if (!(key in next)) changes.push(`${key} removed`);
  }
  return changes;
}

function shown(value: string): string {
  return value === '' ? '(none)' : value;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

function unknownService(name: string): NotFoundError {
  return new NotFoundError(
    `service '${name}' is not recorded on this node: list_services shows the ones that are`,
  );
}

function unknownComponent(service: string, component: string): NotFoundError {
  return new NotFoundError(
    `service '${service}' has no component '${component}': service_status lists its components`,
  );
}
