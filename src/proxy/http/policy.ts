// Zorp's HTTP policy lookups (zorp-semantics §6.2): request by method with a '*' fallback, response
// by (method, status) in dimhash order, headers by name with a '*' default, and the URL filter.
import type { HeaderAction, HttpOptions, RequestAction, ResponseAction } from './options.ts';
import { MANAGED_HEADERS } from './options.ts';
import { type Header, lowerName } from './reader.ts';

const DENY: RequestAction = { action: 'deny' };
const ACCEPT: ResponseAction = { action: 'accept' };

/** Method not listed and no '*' → denied (Zorp: "Method X denied by policy"). */
export function requestAction(opts: HttpOptions, method: string): RequestAction {
  const m = method.toUpperCase();
  return opts.request.get(m) ?? opts.request.get('*') ?? DENY;
}

/** Zorp dimhash order (lib/dimhash.cc): (m,"404") (m,"40") (m,"4") (m,*) (*,"404") ... (*,*).
 * No entry → the response passes. */
export function responseAction(opts: HttpOptions, method: string, status: number): ResponseAction {
  const s = String(status);
  const keys = [s, s.slice(0, 2), s.slice(0, 1), '*'];
  for (const m of [method.toUpperCase(), '*']) {
    const byStatus = opts.response.get(m);
    if (!byStatus) continue;
    for (const k of keys) {
      const a = byStatus.get(k);
      if (a) return a;
    }
  }
  return ACCEPT;
}

export type HeaderResult = { ok: true; headers: Header[] } | { ok: false; header: string };

/** Apply a header policy to the end-to-end headers (managed ones pass untouched: the core rewrites
 * them). insert and replace add their header even when the message did not carry it. */
export function applyHeaderPolicy(headers: Header[], policy: Map<string, HeaderAction>): HeaderResult {
  if (policy.size === 0) return { ok: true, headers };
  const def = policy.get('*');
  const out: Header[] = [];
  for (const h of headers) {
    const lower = lowerName(h);
    if (MANAGED_HEADERS.has(lower)) {
      out.push(h);
      continue;
    }
    const a = policy.get(lower) ?? def;
    if (!a) {
      out.push(h);
      continue;
    }
    switch (a.action) {
      case 'accept':
        out.push(h);
        break;
      case 'drop':
      case 'replace': // the replacement is added below, once
        break;
      case 'abort':
        return { ok: false, header: h.name };
      case 'change_name':
        out.push({ name: a.name, value: h.value });
        break;
      case 'change_value':
        out.push({ name: h.name, value: a.value });
        break;
      case 'change_both':
        out.push({ name: a.name, value: a.value });
        break;
      case 'insert':
        out.push(h);
        break;
    }
  }
  for (const [lower, a] of policy) {
    if (a.action === 'insert' || a.action === 'replace')
      out.push({ name: canonicalName(lower), value: a.value });
  }
  return { ok: true, headers: out };
}

/** 'x-forwarded-for' → 'X-Forwarded-For' (for headers the policy adds; names are case-insensitive). */
export function canonicalName(lower: string): string {
  return lower.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase());
}

export type UrlVerdict = { accept: true } | { accept: false; rule: string };

export function checkUrl(opts: HttpOptions, host: string, path: string): UrlVerdict {
  const f = opts.urlFilter;
  if (!f) return { accept: true };
  for (const r of f.rules) {
    if (r.host && !r.host.test(host)) continue;
    if (r.path && !r.path.test(path)) continue;
    return r.action === 'accept' ? { accept: true } : { accept: false, rule: r.text };
  }
  return f.default === 'accept' ? { accept: true } : { accept: false, rule: 'default' };
}

/** The URL filter for a CONNECT target: the path is inside the tunnel, so only rules without a `path`
 * can decide; they are tried in order, as for requests, then the default (docs/http.md). */
export function checkConnect(opts: HttpOptions, host: string): UrlVerdict {
  const f = opts.urlFilter;
  if (!f) return { accept: true };
  for (const r of f.rules) {
    if (r.path) continue;
    if (r.host && !r.host.test(host)) continue;
    return r.action === 'accept' ? { accept: true } : { accept: false, rule: r.text };
  }
  return f.default === 'accept' ? { accept: true } : { accept: false, rule: 'default' };
}

export function portPermitted(opts: HttpOptions, port: number): boolean {
  return opts.targetPortRange.some((r) => port >= r.lo && port <= r.hi);
}
