/**
 * The connector's binding table: one entry per tool of the contract, checked by the compiler
 * (the `@ts-expect-error` below fails `npm run typecheck` if a table without a tool compiles),
 * and consistent with what the contract says of each tool.
 */
import { describe, expect, it } from 'vitest';
import { type ToolBinding, toolBindings } from '../../connector/tool-bindings.js';
import { type ToolName, toolCodecs, tools } from '../../tools.generated.js';

type BindingTable = { readonly [T in ToolName]: ToolBinding<T> };

describe('tool bindings', () => {
  it('does not compile when a tool has no binding', () => {
    const { query_audit: _dropped, ...withoutQueryAudit } = toolBindings;
    // @ts-expect-error query_audit is a tool of the contract, so a table without it is not a BindingTable
    const incomplete: BindingTable = withoutQueryAudit;
    expect(Object.keys(incomplete)).not.toContain('query_audit');
    expect(Object.keys(toolBindings).sort()).toEqual(tools.map((t) => t.name).sort());
  });

  it.each(tools.map((t) => [t.name, t] as const))(
    '%s is routed and unpacked as the contract says',
    (_, tool) => {
      const binding = toolBindings[tool.name];
      const { shape } = toolCodecs[tool.name];
      expect(binding.route.strategy === 'fanOutRead').toBe(tool.fanOut);
      expect(binding.route.strategy === 'fileTransfer').toBe(binding.output.from === 'fileTransfer');
      if (binding.output.from === 'response') expect(shape).toBe('unary');
      if (binding.output.from === 'stream') expect(shape).toBe('serverStream');
      if (shape === 'clientStream') expect(binding.output.from).toBe('fileTransfer');
    },
  );
});
