/**
 * What answering a tools/call needs beyond the tool list: the argument validators, the codecs
 * and the result formatting. mcp-server.ts imports this module on the first call, so
 * `initialize` and `tools/list` are answered without protobuf, grpc-js or Ajv loaded.
 */
export { toolCodecs } from '../tools.generated.js';
export { ArgumentValidator } from './arguments.js';
export { errorText } from './format.js';
export { formatAnswers, toolBindings } from './tool-bindings.js';
