// Shared helpers of the policy tests: load a text, find where a marker is (so positions are asserted
// exactly without hard-coding line numbers that drift when a case is edited).
import assert from 'node:assert/strict';
import type { TzorpError } from '../../../src/errors.ts';
import { type LoadResult, loadPolicyText } from '../../../src/policy/index.ts';

export function load(text: string, file = 'p.yaml'): LoadResult {
  return loadPolicyText(text, file);
}

/** 1-based line:col of the `nth` occurrence (default first) of `marker` in `text`. */
export function posOf(text: string, marker: string, nth = 1): { line: number; col: number } {
  let i = -1;
  for (let k = 0; k < nth; k++) {
    i = text.indexOf(marker, i + 1);
    assert.ok(i >= 0, `marker ${JSON.stringify(marker)} #${nth} not in the text`);
  }
  const before = text.slice(0, i);
  const line = before.split('\n').length;
  const col = i - (before.lastIndexOf('\n') + 1) + 1;
  return { line, col };
}

export function codes(list: TzorpError[]): string[] {
  return list.map((e) => e.code);
}

export function show(list: TzorpError[]): string {
  return list.map((e) => e.format()).join('\n');
}

/** A valid base policy that cases extend. */
export const BASE = `zones:
  clients: { addresses: [198.18.10.0/23, "2001:db8:10::/48"] }
  servers: { addresses: [198.18.20.0/23] }
services:
  web: { type: proxy, proxy: http }
rules:
  - { id: 1, service: web, proto: tcp, dst_port: 80, src_zone: clients, dst_zone: servers }
`;
