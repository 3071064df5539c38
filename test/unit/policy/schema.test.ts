// The JSON Schema for editors: generated from the loader's field lists (so the two agree by
// construction, checked here anyway), current on disk, and every example policy valid against it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { schemaText } from '../../../schema/generate.ts';
import {
  BYPASS_FIELDS,
  CHAINER_FIELDS,
  DENY_SERVICE_FIELDS,
  FORWARD_SERVICE_FIELDS,
  MANAGEMENT_FIELDS,
  PROXY_SERVICE_FIELDS,
  ROUTER_FIELDS,
  RULE_FIELDS,
  SERVICE_COMMON_FIELDS,
  SETTINGS_FIELDS,
  TOP_FIELDS,
  ZONE_FIELDS,
} from '../../../src/policy/fields.ts';
import { policySchema } from '../../../src/policy/schema.ts';

type S = Record<string, unknown>;
const schema = policySchema() as S;
const defs = schema.$defs as Record<string, S>;

/** A small validator for the keywords the schema uses (draft 2020-12 semantics). */
function validate(s: S, v: unknown, path: string, errs: string[]): void {
  if (typeof s.$ref === 'string') {
    validate(defs[s.$ref.replace('#/$defs/', '')] as S, v, path, errs);
    return;
  }
  const typeOf = (x: unknown) =>
    x === null ? 'null' : Array.isArray(x) ? 'array' : Number.isInteger(x) ? 'integer' : typeof x;
  if (s.type !== undefined) {
    const types = ([] as string[]).concat(s.type as string);
    const t = typeOf(v);
    if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) {
      errs.push(`${path}: ${t} is not ${types.join('|')}`);
      return;
    }
  }
  if ('const' in s && v !== s.const) errs.push(`${path}: not ${String(s.const)}`);
  if (Array.isArray(s.enum) && !s.enum.includes(v)) errs.push(`${path}: ${String(v)} not in enum`);
  if (typeof v === 'number') {
    if (typeof s.minimum === 'number' && v < s.minimum) errs.push(`${path}: below minimum`);
    if (typeof s.maximum === 'number' && v > s.maximum) errs.push(`${path}: above maximum`);
  }
  if (typeof v === 'string') {
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) errs.push(`${path}: pattern`);
    if (typeof s.maxLength === 'number' && v.length > s.maxLength) errs.push(`${path}: too long`);
    if (typeof s.minLength === 'number' && v.length < s.minLength) errs.push(`${path}: too short`);
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === 'number' && v.length < s.minItems) errs.push(`${path}: too few items`);
    if (s.items) {
      v.forEach((x, i) => {
        validate(s.items as S, x, `${path}[${i}]`, errs);
      });
    }
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, S>;
    for (const r of (s.required ?? []) as string[]) if (!(r in o)) errs.push(`${path}: missing ${r}`);
    for (const [k, x] of Object.entries(o)) {
      if (s.propertyNames) validate(s.propertyNames as S, k, `${path}.<${k}>`, errs);
      if (k in props) validate(props[k] as S, x, `${path}.${k}`, errs);
      else if (s.additionalProperties === false) errs.push(`${path}: unknown field ${k}`);
      else if (typeof s.additionalProperties === 'object')
        validate(s.additionalProperties as S, x, `${path}.${k}`, errs);
    }
  }
  for (const key of ['anyOf', 'oneOf'] as const) {
    const alts = s[key] as S[] | undefined;
    if (!alts) continue;
    const ok = alts.filter((a) => {
      const e: string[] = [];
      validate(a, v, path, e);
      return e.length === 0;
    }).length;
    if (key === 'anyOf' ? ok === 0 : ok !== 1) errs.push(`${path}: ${ok} of the ${key} alternatives match`);
  }
}

function errorsOf(doc: unknown): string[] {
  const errs: string[] = [];
  validate(schema, doc, '$', errs);
  return errs;
}

const keys = (s: unknown) => Object.keys(((s as S).properties ?? {}) as S).sort();
const sorted = (l: readonly string[]) => [...l].sort();

describe('JSON Schema of the policy', () => {
  it('schema/tzorp-policy.schema.json is current (node --import tsx schema/generate.ts)', () => {
    assert.equal(readFileSync('schema/tzorp-policy.schema.json', 'utf8'), schemaText());
  });

  it("knows exactly the loader's field names", () => {
    assert.deepEqual(keys(schema), sorted(TOP_FIELDS));
    assert.deepEqual(keys(defs.zone), sorted(ZONE_FIELDS));
    const [proxy, forward, deny] = (defs.service as { oneOf: S[] }).oneOf;
    assert.deepEqual(keys(proxy), sorted([...SERVICE_COMMON_FIELDS, ...PROXY_SERVICE_FIELDS]));
    assert.deepEqual(keys(forward), sorted([...SERVICE_COMMON_FIELDS, ...FORWARD_SERVICE_FIELDS]));
    assert.deepEqual(keys(deny), sorted([...SERVICE_COMMON_FIELDS, ...DENY_SERVICE_FIELDS]));
    assert.deepEqual(keys(defs.rule), sorted(RULE_FIELDS));
    assert.deepEqual(keys(defs.management), sorted(MANAGEMENT_FIELDS));
    assert.deepEqual(keys(defs.bypass), sorted(BYPASS_FIELDS));
    assert.deepEqual(keys((schema.properties as S).settings), sorted(SETTINGS_FIELDS));
    const routers = ((defs.router as { anyOf: S[] }).anyOf.slice(1) as S[]).map(keys);
    assert.deepEqual(routers, Object.values(ROUTER_FIELDS).map(sorted));
    const chainers = ((defs.chainer as { anyOf: S[] }).anyOf.slice(1) as S[]).map(keys);
    assert.deepEqual(chainers, Object.values(CHAINER_FIELDS).map(sorted));
  });

  for (const f of readdirSync('examples').filter((x) => /\.(ya?ml|json)$/.test(x))) {
    it(`examples/${f} is valid against the schema`, () => {
      const doc = parse(readFileSync(`examples/${f}`, 'utf8'));
      assert.deepEqual(errorsOf(doc), []);
    });
  }

  it('catches what an editor should flag', () => {
    const bad = [
      { zones: { a: { adresses: ['198.18.1.0/24'] } } },
      { services: { d: { type: 'deny', ipv4: 'reset' } } },
      { services: { f: { type: 'forward', proxy: 'http' } } },
      { rules: [{ dst_port: 80 }] },
      { rules: [{ service: 's', dst_port: 70000 }] },
      { rules: [{ service: 's', proto: 'tpc' }] },
      { settings: { tproxy_mark: '0x1000000000' } },
      { services: { p: { type: 'proxy', proxy: 'http', router: { type: 'directed', forced_port: 1 } } } },
    ];
    for (const b of bad) assert.notDeepEqual(errorsOf(b), [], JSON.stringify(b));
  });
});
