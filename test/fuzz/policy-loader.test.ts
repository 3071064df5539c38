// Fuzzing the policy loader: random YAML-ish text, random mutations of the example policy and random
// structured policies (as YAML and as JSON) never make it throw; it returns a policy or positioned
// errors, never both, never neither on bad input.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { loadPolicyText } from '../../src/policy/index.ts';

const RUNS = Number(process.env.TZORP_FUZZ_RUNS ?? 300);

function checkResult(text: string): void {
  const r = loadPolicyText(text, 'fuzz.yaml');
  assert.equal(r.policy === null, r.errors.length > 0, 'policy is null iff there are errors');
  const lines = text.split('\n').length;
  for (const e of [...r.errors, ...r.warnings]) {
    assert.match(e.code, /^TZ1\d{3}$/);
    assert.ok(e.pos, e.message);
    assert.equal(e.pos.file, 'fuzz.yaml');
    assert.ok(e.pos.line >= 1 && e.pos.line <= lines + 1, `line ${e.pos.line} of ${lines}`);
    assert.ok(e.pos.col >= 1);
  }
  if (r.policy) {
    // the model's invariants
    const ids = r.policy.rules.map((x) => x.id);
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );
    assert.equal(new Set(ids).size, ids.length);
    for (const rule of r.policy.rules) assert.ok(r.policy.services.has(rule.service));
  }
}

const TOKENS = [
  'zones:',
  'services:',
  'rules:',
  'management:',
  'bypass:',
  'settings:',
  'addresses:',
  'parent:',
  'type:',
  'proxy',
  'forward',
  'deny',
  'router:',
  'targets:',
  'service:',
  'id:',
  'dst_port:',
  'src_zone:',
  'proto:',
  'tcp',
  'a',
  'b',
  '198.18.1.0/24',
  '010.1.1.1',
  '::/0',
  '1-1023',
  '65536',
  '-',
  '- ',
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  ' ',
  '  ',
  '\n',
  '\n  ',
  '\n    ',
  '"',
  "'",
  '&x',
  '*x',
  '!!str',
  '#',
  '?',
  '|',
  '>',
  '%',
  '@',
  '\t',
  'null',
  '~',
  'true',
  '0x10',
  '1e3',
  '\u00e9',
  '\ufeff',
];

describe('policy loader fuzz', () => {
  it('random token soup never throws', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 80 }), (toks) =>
        checkResult(toks.join('')),
      ),
      { numRuns: RUNS },
    );
  });

  it('random unicode text never throws', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), checkResult), { numRuns: RUNS });
  });

  it('mutations of the example policy never throw', () => {
    const base = readFileSync('examples/policy.yaml', 'utf8');
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            at: fc.nat({ max: base.length }),
            del: fc.nat({ max: 8 }),
            ins: fc.constantFrom(...TOKENS, ''),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        (edits) => {
          let t = base;
          for (const e of edits) {
            const at = Math.min(e.at, t.length);
            t = t.slice(0, at) + e.ins + t.slice(at + e.del);
          }
          checkResult(t);
        },
      ),
      { numRuns: RUNS },
    );
  });

  const scalar = fc.oneof(
    fc.constantFrom(
      'a',
      'b',
      'c.d',
      'tcp',
      'udp',
      'icmp',
      '80',
      '1-1023',
      '198.18.1.0/24',
      '2001:db8::/32',
      'drop',
    ),
    fc.integer({ min: -5, max: 70000 }),
    fc.boolean(),
    fc.constant(null),
  );
  const value = fc.oneof(
    scalar,
    fc.array(scalar, { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('type', 'x'), scalar),
  );
  const fieldNames = fc.constantFrom(
    'addresses',
    'parent',
    'type',
    'proxy',
    'router',
    'chainer',
    'options',
    'id',
    'service',
    'proto',
    'dst_port',
    'src_port',
    'src_zone',
    'dst_zone',
    'src_subnet',
    'dst_subnet',
    'iface',
    'icmp_type',
    'ipv4',
    'ipv6',
    'logging',
    'max_sessions',
    'listen_port',
    'limit_target_zones_to',
    'forge_addr',
    'bogus',
  );
  const entity = fc.dictionary(fieldNames, value, { maxKeys: 5 });
  const policy = fc.record(
    {
      zones: fc.dictionary(fc.constantFrom('a', 'b', 'c.d', 'e'), entity, { maxKeys: 4 }),
      services: fc.dictionary(fc.constantFrom('s', 't', 'u'), entity, { maxKeys: 3 }),
      rules: fc.array(entity, { maxLength: 5 }),
      management: fc.array(entity, { maxLength: 2 }),
      settings: fc.dictionary(fc.constantFrom('tproxy_mark', 'listen_port_base', 'routing_table'), scalar),
    },
    { requiredKeys: [] },
  );

  it('random structured policies, as YAML and as JSON, never throw', () => {
    fc.assert(
      fc.property(policy, (p) => {
        checkResult(stringify(p));
        checkResult(JSON.stringify(p, null, 1));
      }),
      { numRuns: RUNS },
    );
  });
});
