// docs/errors.md is generated from the catalogue and must be current; docs/policy.md must document
// every field name the loader knows.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { E } from '../../../src/errors.ts';
import {
  CHAINER_FIELDS,
  CHAINER_TYPES,
  CONDITION_NAMES,
  DENY_SERVICE_FIELDS,
  FORGE_PORT_WORDS,
  FORWARD_SERVICE_FIELDS,
  PROTO_NAMES,
  PROXY_SERVICE_FIELDS,
  ROUTER_FIELDS,
  ROUTER_TYPES,
  RULE_FIELDS,
  SERVICE_COMMON_FIELDS,
  SERVICE_TYPES,
  SETTINGS_FIELDS,
  TLS_CA_FIELDS,
  TLS_FIELDS,
  TLS_SNI_FIELDS,
  TOP_FIELDS,
  ZONE_FIELDS,
} from '../../../src/policy/fields.ts';
import { DENY_V4, DENY_V6, TLS_MIN_VERSIONS, TLS_MODES, TLS_SNI_MISSING } from '../../../src/policy/model.ts';
import { errorsMarkdown } from './errors-doc.ts';

describe('policy docs', () => {
  it('docs/errors.md is current (node --import tsx test/unit/policy/errors-doc.ts)', () => {
    assert.equal(readFileSync('docs/errors.md', 'utf8'), errorsMarkdown());
  });

  it('docs/errors.md has a section for every code', () => {
    const md = readFileSync('docs/errors.md', 'utf8');
    for (const e of Object.values(E)) assert.ok(md.includes(`## ${e.code}\n`), e.code);
  });

  it('docs/policy.md names every field and keyword of the language', () => {
    const md = readFileSync('docs/policy.md', 'utf8');
    const words = new Set([
      ...TOP_FIELDS,
      ...ZONE_FIELDS,
      ...SERVICE_TYPES,
      ...SERVICE_COMMON_FIELDS,
      ...PROXY_SERVICE_FIELDS,
      ...FORWARD_SERVICE_FIELDS,
      ...DENY_SERVICE_FIELDS,
      ...ROUTER_TYPES,
      ...Object.values(ROUTER_FIELDS).flat(),
      ...CHAINER_TYPES,
      ...Object.values(CHAINER_FIELDS).flat(),
      ...FORGE_PORT_WORDS,
      ...RULE_FIELDS,
      ...CONDITION_NAMES,
      ...SETTINGS_FIELDS,
      ...Object.keys(PROTO_NAMES),
      ...DENY_V4,
      ...DENY_V6,
      ...TLS_FIELDS,
      ...TLS_SNI_FIELDS,
      ...TLS_CA_FIELDS,
      ...TLS_MODES,
      ...TLS_MIN_VERSIONS,
      ...TLS_SNI_MISSING,
    ]);
    for (const w of words) assert.ok(md.includes(`\`${w}\``), `docs/policy.md does not mention \`${w}\``);
  });
});
