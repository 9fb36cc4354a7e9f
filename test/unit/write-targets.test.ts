/**
 * Where sync_desired_state goes when `services` is left out: every definition file, grouped
 * by the node it names (connector/write-targets.ts). No agent is called here.
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConnectorConfig } from '../../connector/config.js';
import { Fleet } from '../../connector/routing.js';
import { type PreparedWrite, servicesDefinitions } from '../../connector/write-targets.js';
import { SyncDesiredStateRequest } from '../../gen/mcp/v1/mcp.js';
import { type ConnectorFiles, writeConnectorConfig, writeDefinition } from '../support/connector.js';

let files: ConnectorFiles;
let fleet: Fleet;

const definition = (service: string, node: string) =>
  `name = "${service}"\nnode = "${node}"\n\n[[components]]\nname = "app"\nimage = "127.0.0.1:5000/bb:v1"\n`;

beforeEach(() => {
  files = writeConnectorConfig([
    { name: 'node1', address: '127.0.0.1:1' },
    { name: 'node2', address: '127.0.0.1:2' },
  ]);
  fleet = new Fleet(
    parseConnectorConfig(readFileSync(files.configFile, 'utf8'), files.configFile, { HOME: tmpdir() }),
  );
});

afterEach(() => files.remove());

const fromFiles = async (node?: string) =>
  (await servicesDefinitions(SyncDesiredStateRequest.fromPartial({ requestId: 'r1' }), node, fleet)) as
    | PreparedWrite<SyncDesiredStateRequest>
    | PreparedWrite<SyncDesiredStateRequest>[];

describe('sync_desired_state without services', () => {
  it('sends every definition to the node it names, one request per node', async () => {
    writeDefinition(files.servicesDir, 'a', definition('a', 'node1'));
    writeDefinition(files.servicesDir, 'b', definition('b', 'node2'));
    writeDefinition(files.servicesDir, 'c', definition('c', 'node1'));
    const writes = await fromFiles();
    expect(Array.isArray(writes)).toBe(true);
    const byNode = (writes as PreparedWrite<SyncDesiredStateRequest>[]).map((w) => [
      w.node.name,
      w.request.services.map((s) => s.name),
      w.request.requestId,
    ]);
    expect(byNode).toEqual([
      ['node1', ['a', 'c'], 'r1'],
      ['node2', ['b'], 'r1'],
    ]);
  });

  it('with `node`, syncs only that node’s definitions', async () => {
    writeDefinition(files.servicesDir, 'a', definition('a', 'node1'));
    writeDefinition(files.servicesDir, 'b', definition('b', 'node2'));
    const writes = (await fromFiles('node2')) as PreparedWrite<SyncDesiredStateRequest>[];
    expect(writes.map((w) => [w.node.name, w.request.services.map((s) => s.name)])).toEqual([
      ['node2', ['b']],
    ]);
  });

  it('refuses, naming the files, when there are none or one names an unknown node', async () => {
    await expect(fromFiles()).rejects.toThrow(
      /no `services` given and no definition files in .*: write one per service/,
    );
    writeDefinition(files.servicesDir, 'a', definition('a', 'node1'));
    writeDefinition(files.servicesDir, 'z', definition('z', 'node9'));
    await expect(fromFiles()).rejects.toThrow(
      /name nodes that are not configured in .*connector\.toml: node9 \(z\)\. Add them under \[\[nodes\]\] or fix the files; nothing was synced/,
    );
  });
});
