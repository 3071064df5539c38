// Writes schema/tzorp-policy.schema.json from src/policy/schema.ts (the loader's field lists):
//   node --import tsx schema/generate.ts
// test/unit/policy/schema.test.ts fails when the file is not current.
import { writeFileSync } from 'node:fs';
import { policySchema } from '../src/policy/schema.ts';

export function schemaText(): string {
  return `${JSON.stringify(policySchema(), null, 2)}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(new URL('./tzorp-policy.schema.json', import.meta.url), schemaText());
}
