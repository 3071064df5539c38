// Error pages from templates, as Zorp's error files: @INFO@ (what happened), @MSG@ (details),
// @VERSION@, @DATE@ and @HOST@ (the firewall's name). Values are HTML-escaped: @INFO@ and @MSG@ can
// carry parts of the request (a method, a host name).

import type { Header } from './reader.ts';
import { reasonOf } from './reasons.ts';
import { responseHeadBytes } from './writer.ts';

export const TZORP_VERSION = '0.1.0';

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export interface ErrorPage {
  status: number;
  reason: string;
  /** One-line summary (@INFO@). */
  info: string;
  /** Details (@MSG@). */
  msg: string;
}

export function renderTemplate(template: string, page: ErrorPage, host: string, nowMs: number): string {
  const vars: Record<string, string> = {
    INFO: escapeHtml(page.info),
    MSG: escapeHtml(page.msg),
    VERSION: TZORP_VERSION,
    DATE: new Date(nowMs).toUTCString(),
    HOST: escapeHtml(host),
  };
  return template.replace(/@(INFO|MSG|VERSION|DATE|HOST)@/g, (_m, k: string) => vars[k]!);
}

/** A complete response: head with Content-Length and, unless `head` (a HEAD request), the page. */
export function errorResponse(
  template: string,
  page: ErrorPage,
  host: string,
  nowMs: number,
  opts: { close: boolean; headRequest: boolean },
): Buffer {
  const body = Buffer.from(renderTemplate(template, page, host, nowMs), 'utf8');
  const headers: Header[] = [
    { name: 'Content-Type', value: 'text/html; charset=utf-8' },
    { name: 'Content-Length', value: String(body.length) },
    { name: 'Cache-Control', value: 'no-store' },
  ];
  if (opts.close) headers.push({ name: 'Connection', value: 'close' });
  const head = responseHeadBytes(page.status, page.reason || reasonOf(page.status), headers);
  return opts.headRequest ? head : Buffer.concat([head, body]);
}
