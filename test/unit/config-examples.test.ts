import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/config.js';
import { loadConnectorConfig } from '../../connector/config.js';
import { definitionToSpec, loadDefinitions } from '../../connector/definitions.js';
import { validateServiceSpec } from '../../core/spec.js';

const EXAMPLES = join(import.meta.dirname, '..', '..', 'deploy', 'examples');
const ENV = { HOME: '/home/op' };

describe('the example configs in deploy/examples', () => {
  it('agent.toml loads, with an issuer, roles, bindings and an alert command', async () => {
    const config = await loadAgentConfig(join(EXAMPLES, 'agent.toml'), ENV);
    expect(config.issuers.length).toBeGreaterThan(0);
    expect(config.rbac.roles.map((role) => role.name)).toContain('admin');
    expect(config.rbac.bindings.length).toBeGreaterThan(0);
    expect(config.monitor.alertCommand?.length).toBeGreaterThan(0);
  });

  it('connector.toml loads, and names the nodes the service examples use', async () => {
    const config = await loadConnectorConfig(join(EXAMPLES, 'connector.toml'), ENV);
    const definitions = await loadDefinitions(join(EXAMPLES, 'services'));
    expect(definitions.length).toBeGreaterThan(0);
    for (const definition of definitions) {
      expect(config.nodes.map((node) => node.name)).toContain(definition.node);
      expect(validateServiceSpec(definitionToSpec(definition))).toEqual([]);
    }
  });
});
