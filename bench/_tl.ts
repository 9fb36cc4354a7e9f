import { toolListing } from '../connector/mcp-server.js';
import { tools } from '../tools.generated.js';

console.log(
  'all',
  Buffer.byteLength(JSON.stringify(toolListing(tools))),
  'ro',
  Buffer.byteLength(JSON.stringify(toolListing(tools.filter((t) => t.annotations.readOnlyHint)))),
);
