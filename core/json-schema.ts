import { Ajv2020, type CodeOptions } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

/**
 * The one Ajv setup for the generated tool schemas (JSON Schema 2020-12). Union types are
 * allowed because 64-bit integers are `["integer", "string"]` in ProtoJSON. `code` is for
 * scripts/gen-validators.ts, which writes the compiled validators out as source.
 */
export function createSchemaValidator(code?: CodeOptions): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true, code });
  addFormats.default(ajv);
  return ajv;
}
