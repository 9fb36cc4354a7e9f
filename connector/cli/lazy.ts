/**
 * What the commands load when they run, not when `mcp` starts: the protobuf codecs (which
 * share a chunk with grpc-js), the state words of format.ts over them, and the config and
 * definition parsers (zod). `mcp --help`, `mcp tools` and `mcp completion` need none of them.
 */
export const codecs = () => import('../../gen/mcp/v1/mcp.js');
export const definitionFiles = () => import('../definitions.js');
export const connectorConfig = () => import('../config.js');
export const formatting = () => import('../format.js');
