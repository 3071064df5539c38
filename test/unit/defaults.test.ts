// src/defaults.ts: every tunable in one deep-frozen object, each value pinned here so that changing a
// default is a deliberate, reviewed change; and no new tunable hides in a module as a stray constant.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { effectiveConfig } from '../../src/daemon/index.ts';
import { DEFAULTS, deepFreeze } from '../../src/defaults.ts';

test('every default is pinned (a new or changed default: pin its value here too)', () => {
  assert.deepEqual(
    { ...DEFAULTS },
    {
      tproxyMark: 0x80000000,
      serviceMarkMask: 0x0000ffff,
      routingTable: 100,
      listenV4: '127.0.0.1',
      listenV6: '::1',
      listenPortBase: 50000,
      routingProtocol: 122,
      kernelZoneChunkAbove: 4096,
      kernelZoneChunkAverage: 1024,
      kernelStagedZoneNetworks: 20000,
      kernelRecreateAfterDeletes: 256,
      kernelLogGroup: 4242,
      kernelLogRate: 100,
      kernelLogBurst: 200,
      kernelLogCopyBytes: 128,
      routingRulePrefLocal: 9000,
      routingRulePrefTproxy: 9001,
      kernelStateDir: '/run/tzorp',
      kernelClientLimitFactor: 2,
      kernelClientSetEntries: 65_535,
      maxPolicyBytes: 64 * 1024 * 1024,
      maxYamlAliasCount: 100,
      maxYamlPolicyBytes: 8 * 1024 * 1024,
      maxPolicyErrors: 1000,
      maxJsonNesting: 1000,
      maxOptionPositions: 10_000,
      maxSuggestNames: 10_000,
      maxLintPairs: 2_000_000,
      maxLintReachScan: 20_000,
      connectTimeoutMs: 30_000,
      idleTimeoutMs: 600_000,
      failoverStateTimeoutMs: 60_000,
      relayBufferBytes: 64 * 1024,
      ioReadBufferBytes: 64 * 1024,
      httpBodyRelayMinBytes: 256 * 1024,
      httpHeadTextBytes: 4096,
      closeFlushTimeoutMs: 30_000,
      forgePortRandomMin: 1024,
      forgePortRandomMax: 65535,
      forgePortRandomTries: 16,
      ftpMaxLineBytes: 255,
      ftpMaxUsernameBytes: 32,
      ftpMaxPasswordBytes: 64,
      ftpMaxHostnameBytes: 128,
      ftpMaxReplyLines: 100,
      ftpTimeoutMs: 300_000,
      ftpDataTimeoutMs: 60_000,
      ftpDataPortMin: 40000,
      ftpDataPortMax: 41000,
      ftpDefaultPort: 21,
      ftpsImplicitPort: 990,
      ftpMaxDeferredCommands: 16,
      httpMaxLineLengthBytes: 4096,
      httpMaxUrlLengthBytes: 4096,
      httpMaxHostnameLengthBytes: 256,
      httpMaxHeaderLines: 50,
      httpMaxLeadingEmptyLines: 8,
      httpMaxHeaderBytes: 65_536,
      httpMaxBodyLengthBytes: 0,
      httpMaxChunkLengthBytes: 0,
      httpMaxChunkExtensionBytes: 16_384,
      httpIdleTimeoutMs: 300_000,
      httpRequestTimeoutMs: 10_000,
      httpResponseTimeoutMs: 300_000,
      httpMaxKeepaliveRequests: 0,
      httpParentProxyPort: 3128,
      httpTargetPortRange: '80,443',
      tlsHelloTimeoutMs: 10_000,
      tlsMaxClientHelloBytes: 32_768,
      tlsCaValidityDays: 1825,
      tlsLeafBackdateMs: 3_600_000,
      tlsLeafValidityDays: 7,
      tlsLeafCacheEntries: 10_000,
      tlsSystemCaFile: '/etc/ssl/certs/ca-certificates.crt',
      tlsLeafCaches: 8,
      controlSocketPath: '/run/tzorp/control.sock',
      stopDrainTimeoutMs: 30_000,
      clientRateTableEntries: 100_000,
      listenBacklog: 4096,
      workerStartTimeoutMs: 60_000,
      workerSemiSpaceMb: 2,
      workerLoadReportMs: 100,
      workerRestartDelayMs: 1_000,
      rateTickMs: 5_000,
      reclaimTimeoutMs: 2_000,
      sessionIdBlockSize: 256,
      sessionIdRefillAt: 64,
      maxControlLineBytes: 64 * 1024,
      maxControlReplyBytes: 64 * 1024 * 1024,
      controlRequestTimeoutMs: 10_000,
      controlStopReplyGraceMs: 120_000,
      logFormat: 'text',
      logVerbosity: 3,
      logPendingBytes: 4 * 1024 * 1024,
      logFlushMs: 10,
      logRetryMs: 2,
      logSpec: 'core.summary:4,tls.session:4',
      fdReserveCount: 128,
      fdsPerSessionCount: 2,
      capacityLogIntervalMs: 10_000,
      labStartTimeoutMs: 60_000,
      labStopGraceMs: 3_000,
      labClientTimeoutS: 15,
      labLogSettleMs: 5_000,
      labLogMinWaitMs: 200,
      labProbeConnectTimeoutMs: 3_000,
      labProbeReadTimeoutMs: 5_000,
      labMaxResponseBytes: 1024 * 1024 * 1024,
    },
  );
});

test('the defaults are deep-frozen: nothing changes them at run time', () => {
  assert.ok(Object.isFrozen(DEFAULTS));
  assert.throws(() => {
    (DEFAULTS as { connectTimeoutMs: number }).connectTimeoutMs = 1;
  }, TypeError);
  assert.equal(DEFAULTS.connectTimeoutMs, 30_000);
  const nested = deepFreeze({ a: { b: [1, { c: 2 }] } });
  assert.ok(Object.isFrozen(nested.a) && Object.isFrozen(nested.a.b) && Object.isFrozen(nested.a.b[1]));
});

test('times carry their unit in their name', () => {
  for (const k of Object.keys(DEFAULTS)) {
    if (/timeout|delay|grace|tick|settle|wait/i.test(k)) assert.match(k, /(Ms|S)$/, k);
  }
});

test('the effective configuration: defaults with the command line applied, frozen; unknown keys refused', () => {
  const c = effectiveConfig(
    { policyFile: '/p.yaml', workers: 3, kernel: false, metrics: '127.0.0.1:9100', user: 'tzorp' },
    { stopDrainTimeoutMs: 5000, controlSocketPath: '/tmp/c.sock' },
  );
  assert.equal(c.stopDrainTimeoutMs, 5000);
  assert.equal(c.controlSocketPath, '/tmp/c.sock');
  assert.equal(c.connectTimeoutMs, DEFAULTS.connectTimeoutMs);
  assert.equal(c.workers, 3);
  assert.ok(Object.isFrozen(c));
  assert.deepEqual(
    Object.keys(c).sort(),
    [...Object.keys(DEFAULTS), 'policyFile', 'workers', 'kernel', 'metrics', 'user'].sort(),
  );
  assert.throws(
    () =>
      effectiveConfig({ policyFile: null, workers: 1, kernel: true, metrics: null, user: null }, {
        noSuchThingMs: 1,
      } as never),
    /noSuchThingMs/,
  );
});

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) sources(p, out);
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Constants named like tunables that are not: limits of the platform and of protocols. */
const NOT_TUNABLES: Record<string, string> = {
  MAX_TIMER_MS: "Node's timers take at most 2^31-1 ms",
  MAX_TIMEOUT_MS: "Node's timers take at most 2^31-1 ms",
  RECORD_HEADER_BYTES: 'a TLS record header is 5 bytes (RFC 8446 §5.1)',
  MAX_RECORD_BYTES: 'a TLS plaintext record carries at most 2^14 bytes (RFC 8446 §5.1)',
};

test('no tunable outside src/defaults.ts: a constant named with a unit is a stray default', () => {
  const stray = /^\s*(export )?const ([A-Z][A-Z0-9_]*_(MS|S|BYTES|SIZE|TRIES|TIMEOUT))\s*=\s*[0-9]/;
  const found: string[] = [];
  for (const file of sources('src')) {
    if (file === join('src', 'defaults.ts')) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        const m = stray.exec(line);
        if (m && !Object.hasOwn(NOT_TUNABLES, m[2]!)) found.push(`${file}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(found, [], 'move it into DEFAULTS (src/defaults.ts), with its unit and reason');
});
