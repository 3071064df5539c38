// `tzorp check` as a user runs it: exit codes, the text report, the --json document.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const dir = mkdtempSync(join(tmpdir(), 'tzorp-check-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function tzorp(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/tzorp', ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function file(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

const GOOD = `zones:
  clients: { addresses: [198.18.10.0/23] }
  spare: { addresses: [198.18.50.0/24] }
services:
  web: { type: proxy, proxy: http }
rules:
  - { id: 1, service: web, proto: tcp, dst_port: 80, src_zone: clients }
management:
  - { proto: tcp, dst_port: 22, src_zone: clients }
`;
const BAD = `zones:
  a: { addresses: [010.1.1.1] }
services:
  web: { type: proxy, proxy: http }
rules:
  - { service: nope, dst_port: 70000 }
`;

describe('tzorp check', () => {
  it('exit 0 for a valid policy: warnings marked, a summary line', () => {
    const f = file('good.yaml', GOOD);
    const r = tzorp('check', f);
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(
      r.out,
      `${f}:3:3: warning: TZ1503 zone 'spare' is not used: no rule, management or bypass rule or limit_target_zones_to names it, an ancestor or a descendant\n${f}: valid: 2 zones, 1 service, 1 rule, 1 management rule; 1 warning\n`,
    );
  });

  it('exit 1 for an invalid policy: every error as file:line:col: CODE message', () => {
    const f = file('bad.yaml', BAD);
    const r = tzorp('check', f);
    assert.equal(r.code, 1);
    const lines = r.out.trim().split('\n');
    assert.deepEqual(
      lines.slice(0, -1).map((l) => {
        const [where = '', code = ''] = l.replace(`${f}:`, '').split(' ');
        return where + code;
      }),
      // errors first, then the warnings that hold beside them (no management section)
      ['2:20:TZ1020', '6:16:TZ1040', '6:32:TZ1021', '1:1:warning:'],
    );
    assert.match(lines.at(-2)!, /warning: TZ1520 /);
    assert.equal(lines.at(-1), `${f}: invalid: 3 errors, 1 warning`);
  });

  it('--json prints the documented document', () => {
    const f = file('bad2.yaml', BAD);
    const r = tzorp('check', f, '--json');
    assert.equal(r.code, 1);
    const j = JSON.parse(r.out);
    assert.equal(j.valid, false);
    assert.deepEqual(Object.keys(j), ['valid', 'errors', 'warnings', 'summary']);
    assert.deepEqual(j.errors[0], {
      code: 'TZ1020',
      message:
        "zone 'a' address '010.1.1.1': not an IPv4 address (four decimal numbers 0-255, no leading zeros)",
      file: f,
      line: 2,
      col: 20,
    });
    assert.equal(j.summary.errors, 3);
    const g = tzorp('check', '--json', file('good2.yaml', GOOD));
    assert.equal(g.code, 0);
    const jg = JSON.parse(g.out);
    assert.equal(jg.valid, true);
    assert.deepEqual(jg.summary, {
      zones: 2,
      services: 1,
      rules: 1,
      management: 1,
      bypass: 0,
      errors: 0,
      warnings: 1,
    });
    assert.equal(jg.warnings[0].code, 'TZ1503');
  });

  it('proxy names and options are checked as tzorp run checks them', () => {
    const f = file(
      'opts.yaml',
      GOOD.replace('proxy: http }', 'proxy: http, options: { no_such_option: 1 } }'),
    );
    const r = tzorp('check', f);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /no_such_option/);
    // the problem is placed at the option itself
    const line5 =
      GOOD.replace('proxy: http }', 'proxy: http, options: { no_such_option: 1 } }').split('\n')[4] ?? '';
    const col = line5.indexOf('no_such_option') + 1;
    assert.ok(r.out.includes(`${f}:5:${col}: TZ1011 service web (http options): `), r.out);
    const g = file('noproxy.yaml', GOOD.replace('proxy: http', 'proxy: gopher'));
    const r2 = tzorp('check', g, '--json');
    assert.equal(r2.code, 1);
    assert.equal(JSON.parse(r2.out).errors[0].code, 'TZ1041');
  });

  it('warns when the policy has no management entry, and when management is empty', () => {
    const none = file('nomgmt.yaml', GOOD.replace(/management:[\s\S]*$/, ''));
    const r = tzorp('check', none);
    assert.equal(r.code, 0, r.out);
    assert.ok(r.out.includes(`${none}:1:1: warning: TZ1520 the policy has no management section`), r.out);
    const empty = file('emptymgmt.yaml', GOOD.replace(/management:[\s\S]*$/, 'management: []\n'));
    const r2 = tzorp('check', empty);
    assert.equal(r2.code, 0, r2.out);
    assert.ok(r2.out.includes(`${empty}:8:1: warning: TZ1521 management is empty`), r2.out);
  });

  it('warns about a masquerading directed forward and a rule its limit_target_zones_to excludes', () => {
    const f = file(
      'safety.yaml',
      `zones:
  clients: { addresses: [198.18.10.0/23] }
  dmz: { addresses: [198.18.20.0/24] }
  dmz.web: { parent: dmz, addresses: [198.18.20.80/32] }
  lan: { addresses: [198.18.30.0/24] }
services:
  web: { type: proxy, proxy: http, limit_target_zones_to: [dmz] }
  inbound: { type: forward, router: { type: directed, targets: ["198.18.20.80:80"] } }
  inbound_forged: { type: forward, router: { type: directed, targets: ["198.18.20.80:80"], forge_addr: true } }
rules:
  - { id: 1, service: web, proto: tcp, dst_port: 80, src_zone: clients, dst_zone: lan }
  - { id: 2, service: web, proto: tcp, dst_port: 81, src_zone: clients, dst_zone: dmz.web }
  - { id: 3, service: inbound, proto: tcp, dst_port: 8080, src_zone: clients }
  - { id: 4, service: inbound_forged, proto: tcp, dst_port: 8081, src_zone: clients }
management:
  - { proto: tcp, dst_port: 22, src_zone: clients }
`,
    );
    const r = tzorp('check', f, '--json');
    assert.equal(r.code, 0, r.out);
    const w = JSON.parse(r.out).warnings.map((x: { code: string; line: number }) => `${x.code}:${x.line}`);
    assert.ok(w.includes('TZ1522:8'), JSON.stringify(w));
    assert.ok(!w.includes('TZ1522:9'), 'forge_addr: true is not warned about');
    assert.ok(w.includes('TZ1523:11'), JSON.stringify(w));
    assert.ok(!w.includes('TZ1523:12'), 'a zone below a listed one is allowed');
  });

  it('warns about a rule that sends UDP to a proxy (no proto, or udp), not about tcp-only rules', () => {
    const f = file(
      'udp.yaml',
      `zones:
  clients: { addresses: [198.18.10.0/23] }
services:
  web: { type: proxy, proxy: http }
  relay: { type: proxy, proxy: plug }
  out: { type: forward }
rules:
  - { id: 1, service: web, dst_port: 80, src_zone: clients }
  - { id: 2, service: relay, proto: udp, dst_port: 53, src_zone: clients }
  - { id: 3, service: relay, proto: [tcp, udp], dst_port: 5000, src_zone: clients }
  - { id: 4, service: web, proto: tcp, dst_port: 8080, src_zone: clients }
  - { id: 5, service: out, dst_port: 123, src_zone: clients }
management:
  - { proto: tcp, dst_port: 22, src_zone: clients }
`,
    );
    const r = tzorp('check', f, '--json');
    assert.equal(r.code, 0, r.out);
    const w = JSON.parse(r.out).warnings.filter((x: { code: string }) => x.code === 'TZ1524');
    assert.deepEqual(
      w.map((x: { line: number }) => x.line),
      [8, 9, 10],
      JSON.stringify(w),
    );
    assert.match(
      w[0].message,
      /rule 1 has no proto, so it matches UDP too, but service 'web' is a http proxy/,
    );
    assert.match(w[1].message, /rule 2 matches UDP only/);
  });

  it('refuses a router the proxy cannot use: plug with inband, explicit HTTP without inband (run refuses it too)', () => {
    const f = file(
      'routers.yaml',
      `zones:
  clients: { addresses: [198.18.10.0/23] }
services:
  relay: { type: proxy, proxy: plug, router: inband }
  explicit_ok: { type: proxy, proxy: http, router: inband, transparent_mode: false }
  explicit_bad: { type: proxy, proxy: http, router: transparent, options: { transparent_mode: false } }
  explicit_directed: { type: proxy, proxy: http, router: { type: directed, targets: ["198.18.20.10:3128"] }, transparent_mode: false }
  transparent_inband: { type: proxy, proxy: http, router: inband }
rules:
  - { id: 1, service: relay, proto: tcp, dst_port: 5000, src_zone: clients }
  - { id: 2, service: explicit_ok, proto: tcp, dst_port: 3128, src_zone: clients }
  - { id: 3, service: explicit_bad, proto: tcp, dst_port: 3129, src_zone: clients }
  - { id: 4, service: explicit_directed, proto: tcp, dst_port: 3130, src_zone: clients }
  - { id: 5, service: transparent_inband, proto: tcp, dst_port: 80, src_zone: clients }
management:
  - { proto: tcp, dst_port: 22, src_zone: clients }
`,
    );
    const r = tzorp('check', f, '--json');
    assert.equal(r.code, 1, r.out);
    const errs = JSON.parse(r.out).errors as { code: string; line: number; col: number; message: string }[];
    assert.deepEqual(
      errs.map((e) => `${e.code}:${e.line}`),
      ['TZ1041:4', 'TZ1041:6', 'TZ1041:7'],
      JSON.stringify(errs),
    );
    assert.match(errs[0]!.message, /plug proxy cannot use an inband router/);
    assert.match(errs[1]!.message, /transparent_mode: false .* needs router: \{ type: inband \}/);
    // placed at the option itself
    assert.equal(errs[1]!.col, 77, JSON.stringify(errs[1]));
    const run = tzorp('run', f, '--control', join(dir, 'never.sock'));
    assert.equal(run.code, 1, run.out);
    assert.match(run.out + run.err, /TZ1041 .*plug proxy cannot use an inband router/);
  });

  it('reports proxy-option and router errors together with structural ones, and warnings beside errors', () => {
    const f = file(
      'together.yaml',
      `zones:
  clients: { addresses: [198.18.10.0/23] }
services:
  web: { type: proxy, proxy: http, options: { timeout: -5 } }
  relay: { type: proxy, proxy: plug, router: inband }
rules:
  - { id: 1, service: web, proto: tcp, dst_port: 80, src_zone: nowhere }
  - { id: 2, service: relay, dst_port: 5000, src_zone: clients }
`,
    );
    const r = tzorp('check', f, '--json');
    assert.equal(r.code, 1, r.out);
    const out = JSON.parse(r.out) as {
      errors: { code: string; line: number }[];
      warnings: { code: string; line: number }[];
    };
    assert.deepEqual(
      out.errors.map((e) => `${e.code}:${e.line}`),
      ['TZ1013:4', 'TZ1041:5', 'TZ1031:7'],
    );
    assert.deepEqual(
      out.warnings.map((e) => `${e.code}:${e.line}`),
      ['TZ1520:1', 'TZ1524:8'],
    );
    const text = tzorp('check', f);
    assert.match(text.out, /invalid: 3 errors, 2 warnings\n$/);
  });

  it('exit 1 for a missing file, 2 for usage errors', () => {
    assert.equal(tzorp('check', join(dir, 'missing.yaml')).code, 1);
    assert.equal(tzorp('check').code, 2);
    assert.equal(tzorp('check', '--frobnicate', file('u.yaml', GOOD)).code, 2);
  });

  it('the example policies check clean', () => {
    for (const f of ['examples/policy.yaml', 'examples/home-office.yaml']) {
      const r = tzorp('check', f);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^examples\/\S+: valid: \d+ zones, \d+ services, \d+ rules.*; 0 warnings\n$/);
    }
  });
});
