import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

/**
 * The one Ajv setup for the generated tool schemas (JSON Schema 2020-12). Union types are
 * allowed because 64-bit integers are `["integer", "string"]` in ProtoJSON.
 */
export function createSchemaValidator(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
  addFormats.default(ajv);
  return ajv;
}
