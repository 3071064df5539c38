// The bad inputs of issue 2: malformed YAML, a 50 MB generated policy, deep parent chains, 010.1.1.1,
// 1.2.3.4/33, plus the classic parser attacks. Each gives a clear error (or loads), never a crash, a
// stack overflow or a hang.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DEFAULTS } from '../../../src/defaults.ts';
import { loadPolicyFile, MAX_ZONE_DEPTH } from '../../../src/policy/index.ts';
import { codes, load, show } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'tzorp-badinput-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('malformed YAML', () => {
  const samples = [
    'zones: {',
    'zones:\n  a: [1, 2\n',
    'zones:\n  a: "unterminated\n',
    '- a\nb: c\n',
    'zones:\n  a: {}\n   b: {}\n',
    'a: b: c\n',
    '&a [*a]\n',
    '*nope\n',
    '---\nzones: {}\n---\nrules: []\n',
    '{"zones": {"a": {}}, "rules": [}',
    '\u0000\u0001\u0002',
    '? [complex, key]\n: value\n',
  ];
  for (const text of samples) {
    it(`reports ${JSON.stringify(text).slice(0, 40)} with a position`, () => {
      const r = load(text);
      assert.equal(r.policy, null);
      assert.ok(r.errors.length > 0);
      for (const e of r.errors) {
        assert.match(e.code, /^TZ10\d\d$/);
        assert.ok(e.pos && e.pos.line >= 1 && e.pos.col >= 1, show([e]));
      }
    });
  }
  it('an empty document is an empty (valid) policy', () => {
    for (const t of ['', '# nothing\n', '---\n', '{}']) {
      const r = load(t);
      assert.deepEqual(r.errors, [], JSON.stringify(t));
      assert.equal(r.policy?.zones.size, 0);
    }
  });
});

describe('addresses from the issue', () => {
  it('010.1.1.1 and 1.2.3.4/33 are refused with their positions', () => {
    const text = 'zones:\n  a: { addresses: [010.1.1.1] }\n  b: { addresses: [1.2.3.4/33] }\n';
    const r = load(text);
    assert.deepEqual(
      r.errors.map((e) => `${e.code} ${e.pos?.line}:${e.pos?.col}`),
      ['TZ1020 2:20', 'TZ1020 3:20'],
    );
  });
});

describe('deep zone hierarchies', () => {
  it('a chain of 10,000 parents gives one clear depth error, not a stack overflow', () => {
    const n = 10_000;
    const lines = ['zones:', '  z0: {}'];
    for (let i = 1; i < n; i++) lines.push(`  z${i}: { parent: z${i - 1} }`);
    const r = load(`${lines.join('\n')}\n`);
    assert.deepEqual(codes(r.errors), ['TZ1033']);
    assert.match(
      r.errors[0]?.message ?? '',
      new RegExp(`zone 'z${MAX_ZONE_DEPTH}' is at depth ${MAX_ZONE_DEPTH + 1}`),
    );
    assert.equal(r.errors[0]?.pos?.line, MAX_ZONE_DEPTH + 2);
  });
  it('a cycle of 10,000 zones gives one cycle error', () => {
    const n = 10_000;
    const lines = ['zones:'];
    for (let i = 0; i < n; i++) lines.push(`  z${i}: { parent: z${(i + 1) % n} }`);
    const r = load(`${lines.join('\n')}\n`);
    assert.deepEqual(codes(r.errors), ['TZ1032']);
    assert.match(r.errors[0]?.message ?? '', /cycle: z\d+ -> .* -> \.\.\. -> z\d+/);
  });
  it('exactly MAX_ZONE_DEPTH levels are accepted', () => {
    const lines = ['zones:', '  z1: {}'];
    for (let i = 2; i <= MAX_ZONE_DEPTH; i++) lines.push(`  z${i}: { parent: z${i - 1} }`);
    const r = load(`${lines.join('\n')}\n`);
    assert.deepEqual(r.errors, []);
    assert.equal(r.policy?.zones.get(`z${MAX_ZONE_DEPTH}`)?.depth, MAX_ZONE_DEPTH);
  });
});

describe('parser attacks', () => {
  it('YAML alias expansion ("billion laughs") is refused', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 12; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    lines.push('zones: { z: { addresses: *a11 } }');
    const r = load(`${lines.join('\n')}\n`);
    assert.deepEqual(codes(r.errors), ['TZ1002']);
    assert.match(r.errors[0]?.message ?? '', /alias/);
  });
  it('a few aliases are fine', () => {
    const r = load(
      'zones:\n  a: { addresses: &nets [198.18.1.0/24] }\nrules:\n  - { service: s, src_zone: &z a }\n  - { service: s, dst_zone: *z }\nservices:\n  s: { type: deny }\n',
    );
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.policy?.rules[1]?.dstZone, ['a']);
  });
  it('absurd nesting is an error, in YAML and in JSON', () => {
    for (const text of [`${'['.repeat(100_000)}${']'.repeat(100_000)}`, `{"zones": ${'['.repeat(100_000)}`]) {
      const r = load(text);
      assert.equal(r.policy, null);
      assert.ok(r.errors.length > 0);
    }
  });
});

describe('size limits', () => {
  it('a file over maxPolicyBytes is refused before it is read', async () => {
    const f = join(dir, 'huge.yaml');
    writeFileSync(f, '');
    truncateSync(f, DEFAULTS.maxPolicyBytes + 1); // sparse: costs no disk
    const r = await loadPolicyFile(f);
    assert.deepEqual(codes(r.errors), ['TZ1003']);
    assert.match(r.errors[0]?.message ?? '', /at most 64 MiB/);
  });

  it('a 50 MB YAML policy is refused clearly (write large policies as JSON)', () => {
    const line = '  z: { addresses: [198.18.1.1] }\n';
    const text = `zones:\n${line.repeat(Math.ceil(50e6 / line.length))}`;
    const r = load(text);
    assert.deepEqual(codes(r.errors), ['TZ1003']);
    assert.match(r.errors[0]?.message ?? '', /write large policies as JSON/);
  });

  it('a 50 MB generated JSON policy loads, every zone and rule of it', () => {
    const parts: string[] = ['{"zones":{'];
    let size = 0;
    const zones = 100_000;
    for (let n = 0; n < zones; n++) {
      const s = `${n ? ',' : ''}"z${n}":{"addresses":["198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}","2001:db8:${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}::/64"]}\n`;
      parts.push(s);
      size += s.length;
    }
    parts.push('},"services":{"s":{"type":"deny"}},"rules":[');
    let rules = 0;
    while (size < 50e6) {
      const s = `${rules ? ',' : ''}{"service":"s","proto":"tcp","dst_port":${rules % 65536},"src_zone":"z${rules % zones}","dst_subnet":"198.18.${(rules >> 8) & 255}.${rules & 255}"}\n`;
      parts.push(s);
      size += s.length;
      rules++;
    }
    parts.push(']}');
    const r = load(parts.join(''), 'big.json');
    assert.deepEqual(r.errors, []);
    assert.equal(r.policy?.zones.size, zones);
    assert.equal(r.policy?.rules.length, rules);
    assert.equal(r.policy?.rules[rules - 1]?.id, rules);
  });
});

describe('nesting past the readers limits (issue 16 review finding 11)', () => {
  it('JSON deeper than 1000 levels is reported as a JSON nesting error, not a YAML stack overflow', () => {
    const r = load(`{"zones":${'['.repeat(1001)}${']'.repeat(1001)}}`);
    assert.deepEqual(codes(r.errors), ['TZ1002']);
    assert.match(r.errors[0]!.message, /^JSON syntax error: nesting deeper than 1000 levels/);
  });
  it('deep YAML flow nesting says so', () => {
    const r = load(`zones: ${'['.repeat(20000)}${']'.repeat(20000)}\n`);
    assert.equal(r.policy, null);
    assert.ok(
      r.errors.every((e) => !/call stack/i.test(e.message)),
      show(r.errors),
    );
    assert.match(r.errors[0]!.message, /nesting too deep/);
  });
});

describe('settings.publish_zone_sets', () => {
  it('takes referenced, all or a list of known zones; anything else is an error at its position', () => {
    const base = 'zones:\n  a: { addresses: 198.18.1.0/24 }\nsettings:\n  publish_zone_sets: ';
    assert.equal(load(`${base}all\n`).policy?.settings.publishZoneSets, 'all');
    assert.deepEqual(load(`${base}[a]\n`).policy?.settings.publishZoneSets, ['a']);
    for (const [v, code, line] of [
      ['some', 'TZ1013', 4],
      ['[a, b]', 'TZ1031', 4],
      ['{ a: 1 }', 'TZ1010', 4],
    ] as const) {
      const r = load(`${base}${v}\n`);
      assert.equal(r.policy, null, v);
      assert.ok(
        r.errors.some((e) => e.code === code && e.pos?.line === line),
        `${v}: ${show(r.errors)}`,
      );
    }
  });
});
