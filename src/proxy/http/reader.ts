// A strict, incremental HTTP/1.1 message reader (RFC 9112) for requests and responses.
//
// Bytes go in with push(); read() returns the next item: a message head, a piece of body, the end of
// a message, 'need' (more bytes), or 'eof' (the peer closed cleanly between messages). Anything that
// could be read in two ways throws a ProtocolError (src/errors.ts) with the status to answer; the reader is then dead
// and every later read() throws the same error. Memory is bounded by the limits: a head is buffered
// at most up to maxHeaderBytes, body bytes are handed out as they arrive.
//
// The reader never needs the whole message: it decides from complete lines only, so the items and the
// error it produces do not depend on how the input was split (the fuzz test checks exactly that).
import { DEFAULTS } from '../../defaults.ts';
import { bug, ProtocolError } from '../../errors.ts';
import { StickyFailure } from '../core/state.ts';
import {
  isFieldValue,
  isToken,
  isVisibleAscii,
  quotedStringLength,
  STANDARD_METHODS,
  splitList,
  trimOws,
} from './syntax.ts';
import { type Authority, parseAuthority } from './url.ts';

export interface Header {
  /** Field name as received (case kept; compare case-insensitively). */
  name: string;
  /** Field value without leading/trailing OWS (latin1: one char per byte). */
  value: string;
  /** `name` in lower case, when the reader made the header (lowerName: the name's lower case either
   * way). A request's headers are compared by name in several passes; lowering each name once per
   * head instead of once per pass saves the small strings those passes made. */
  lower?: string;
}

/** A header's name in lower case (computed once by the reader; otherwise here). */
export function lowerName(h: Header): string {
  return h.lower ?? h.name.toLowerCase();
}

export interface Version {
  major: 1;
  minor: number;
}

export interface RequestHead {
  kind: 'request';
  method: string;
  target: string;
  version: Version;
  headers: Header[];
  /** The Host value as the reader parsed it (with that limit), for the planner not to parse it again;
   * a head whose Host was changed since no longer matches it (hostAuthorityOf). */
  host?: { value: string; maxHostnameLength: number; authority: Authority };
}

/** `value` (a Host header's) parsed: the reader's parse when it was this value, else now. */
export function hostAuthorityOf(head: RequestHead, value: string, maxHostnameLength: number): Authority {
  const h = head.host;
  return h !== undefined && h.value === value && h.maxHostnameLength === maxHostnameLength
    ? h.authority
    : parseAuthority(value, maxHostnameLength);
}

export interface ResponseHead {
  kind: 'response';
  version: Version;
  status: number;
  reason: string;
  headers: Header[];
}

/** How the body of a message is delimited (RFC 9112 §6.3). 'tunnel': after this head the connection
 * is no longer HTTP (101 Switching Protocols, 2xx to CONNECT): take the rest with takeRemaining(). */
export type Framing =
  | { type: 'none' }
  | { type: 'length'; length: number }
  | { type: 'chunked' }
  | { type: 'close' }
  | { type: 'tunnel' };

export type ReadItem =
  | { type: 'head'; head: RequestHead | ResponseHead; framing: Framing }
  | { type: 'body'; data: Uint8Array }
  | { type: 'end'; trailers: Header[] }
  | { type: 'need' }
  | { type: 'eof' };

/** Every limit is in bytes unless its name says otherwise; 0 = unlimited where noted. */
export interface ReaderLimits {
  /** Longest header, status or chunk-size line, without CRLF (Zorp max_line_length 4096). */
  maxLineLength: number;
  /** Longest request-target (Zorp max_url_length 4096). The request line may be this plus the method
   * and version. */
  maxUrlLength: number;
  /** Longest host name in Host or a URI (Zorp max_hostname_length 256; DNS allows 253). */
  maxHostnameLength: number;
  /** Most header fields in one head, and trailer fields in one trailer section (Zorp 50). */
  maxHeaderLines: number;
  /** Largest head (start line, fields, CRLFs): the most the reader buffers for one head. */
  maxHeaderBytes: number;
  /** Largest body; 0 = unlimited (Zorp max_body_length 0). */
  maxBodyLength: number;
  /** Largest single chunk; 0 = unlimited (Zorp max_chunk_length 0). */
  maxChunkLength: number;
  /** Chunk-extension bytes per message: extensions carry nothing we forward, and unbounded ones
   * let a peer make us parse far more than the body (Node's CVE-2024-22019 limit is 16 KiB too). */
  maxChunkExtensionBytes: number;
}

/** Digits the fast chunk-size path takes (12 hex digits stay exact in a double). */
const FAST_CHUNK_SIZE_DIGITS = 12;
const HEX_VALUE = new Uint8Array(256).fill(0xff);
for (let c = 0; c < 10; c++) HEX_VALUE[0x30 + c] = c;
for (let c = 0; c < 6; c++) HEX_VALUE[0x41 + c] = HEX_VALUE[0x61 + c] = 10 + c;

/** Hex digits of a chunk size: 16 is 2^64, already far past any body limit. */
const MAX_CHUNK_SIZE_DIGITS = 16;

type State =
  | 'start'
  | 'headers'
  | 'body-length'
  | 'body-close'
  | 'chunk-size'
  | 'chunk-data'
  | 'chunk-crlf'
  | 'trailers'
  | 'done' // a 'none'-framed message: the next read() returns its end
  | 'detached';

const EMPTY = Buffer.alloc(0);
const CHUNK_EXT =
  /^(?:[ \t]*;[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*=[ \t]*(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+|"))?)*$/;

/** What read() gives most often, one object each (read() is called for every chunk). */
const NEED: ReadItem = Object.freeze({ type: 'need' });
const EOF_ITEM: ReadItem = Object.freeze({ type: 'eof' });

/** Which line was longer than its limit (HttpReader.line), and the status and text of its error. */
const TOO_LONG = {
  request: [414, 'request line longer than max_url_length'],
  status: [502, 'status line longer than max_line_length'],
  header: [431, 'header line longer than max_line_length'],
  chunk: [400, 'chunk-size line longer than max_line_length'],
  trailer: [431, 'trailer line longer than max_line_length'],
} as const;
type TooLong = keyof typeof TOO_LONG;

export class HttpReader {
  private buf: Buffer = EMPTY;
  private start = 0;
  private end = 0;
  /** Whether buf is ours to write into (false: it is a pushed chunk used in place, zero-copy). */
  private owned = false;
  /** How far into the current line we already looked for LF (relative to start). */
  private scanned = 0;
  /** latin1 text of textOf[textAt, textAt + text.length): a head's lines are cut from one conversion
   * instead of a conversion (and two searches of the bytes) per line. Bytes of buf before end never
   * change, so the text holds while buf is still the buffer it came from. */
  private text = '';
  private textAt = 0;
  private textOf: Buffer | null = null;
  private state: State = 'start';
  private eof = false;
  private readonly failure = new StickyFailure();

  // head in progress
  /** The start line, parsed (and so checked) on arrival. */
  private startLine: RequestLine | StatusLine | null = null;
  private headers: Header[] = [];
  private headBytes = 0;
  private emptyLines = 0;

  // body in progress
  private remaining = 0;
  private bodyTotal = 0;
  private extBytes = 0;
  private trailers: Header[] = [];

  /** Response reader: methods of the requests sent and not yet answered, oldest first. */
  private readonly pending: string[] = [];

  constructor(
    readonly kind: 'request' | 'response',
    private readonly limits: ReaderLimits,
  ) {}

  /** Bytes buffered and not yet handed out (for backpressure decisions). */
  get buffered(): number {
    return this.end - this.start;
  }

  /** True between messages with nothing buffered (a clean place to close a keep-alive connection). */
  get idle(): boolean {
    return this.state === 'start' && this.startLine === null && this.end === this.start;
  }

  /** A body of known length in progress with nothing buffered: how much of it is still to come (it
   * may be relayed past this reader: skipBody). Otherwise 0. */
  get bodyLeft(): number {
    return this.state === 'body-length' && this.end === this.start && !this.eof ? this.remaining : 0;
  }

  /** `n` bytes of the body (at most bodyLeft, nothing buffered) went past this reader (a native
   * body relay): it goes on after them. */
  skipBody(n: number): void {
    if (n === 0) return;
    if (this.state !== 'body-length' || this.end !== this.start || n > this.remaining)
      throw bug(`skipBody(${n}) in state ${this.state} with ${this.remaining} left`);
    this.remaining -= n;
    if (this.remaining === 0) this.state = 'done';
  }

  /** Response reader: a request with this method was sent; its response comes after earlier ones. */
  expectResponse(method: string): void {
    this.pending.push(method);
  }

  get pendingResponses(): number {
    return this.pending.length;
  }

  push(data: Uint8Array): void {
    this.appendRaw(data);
  }

  private appendRaw(data: Uint8Array): void {
    if (data.length === 0) return;
    if (this.start === this.end) {
      // Nothing buffered: use the chunk in place (the driver hands us ownership of it).
      this.buf = data instanceof Buffer ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
      this.start = 0;
      this.end = data.length;
      this.owned = false;
      return;
    }
    const live = this.end - this.start;
    if (this.owned && this.end + data.length <= this.buf.length) {
      this.buf.set(data, this.end);
      this.end += data.length;
      return;
    }
    // Geometric growth keeps a trickled head linear in its size, not quadratic.
    const size = Math.max(live + data.length, Math.min(this.buf.length * 2, live * 2 + data.length), 4096);
    const nb = Buffer.allocUnsafe(size);
    this.buf.copy(nb, 0, this.start, this.end);
    nb.set(data, live);
    this.buf = nb;
    this.start = 0;
    this.end = live + data.length;
    this.owned = true;
  }

  /** The peer closed its sending side. */
  finish(): void {
    this.eof = true;
  }

  /** Hand over every byte not consumed (after a 'tunnel' head, or to give up on HTTP); the reader
   * is detached and reads nothing more. */
  takeRemaining(): Uint8Array {
    const out = this.copyOut(this.start, this.end);
    this.start = this.end = 0;
    this.buf = EMPTY;
    this.state = 'detached';
    return out;
  }

  read(): ReadItem {
    return this.failure.run(this, this.step);
  }

  private fail(status: number, msg: string, limit = false): never {
    throw this.error(status, msg, limit);
  }

  /** An error of this reader's peer: the client's for requests, the server's for responses. */
  private error(status: number, msg: string, limit = false): ProtocolError {
    return new ProtocolError(this.kind === 'request' ? 'client' : 'server', status, msg, { limit });
  }

  /** Body bytes [a, b) as a buffer the caller may keep: a view when buf is a pushed chunk we never
   * write into, a copy when buf is our own (it is reused for later input). */
  private copyOut(a: number, b: number): Uint8Array {
    if (a === b) return EMPTY;
    const view = this.buf.subarray(a, b);
    return this.owned ? Buffer.from(view) : view;
  }

  /** The error for a line longer than its limit (TooLong: which line it was). */
  private overflow(kind: TooLong): ProtocolError {
    const [status, msg] = TOO_LONG[kind];
    return this.error(status, msg, true);
  }

  /** The next complete line (without CRLF) or null. `max` is the longest line allowed; `tooLong` says
   * which error a longer one gets (a code, not a closure: a head's every line would make one). Bare
   * LF and bare CR are refused (RFC 9112 §2.2). */
  private line(max: number, tooLong: TooLong, headBudget: number): string | null {
    const live = this.end - this.start;
    const from = this.start + this.scanned;
    let lfAt = -1; // absolute index in buf
    let searched = from; // bytes before this have no LF
    if (this.textOf === this.buf && this.start >= this.textAt) {
      const textEnd = this.textAt + this.text.length;
      if (from < textEnd) {
        const i = this.text.indexOf('\n', from - this.textAt);
        if (i >= 0) lfAt = this.textAt + i;
      }
      searched = Math.max(from, textEnd);
    }
    if (lfAt < 0 && searched < this.end) {
      const i = this.buf.subarray(searched, this.end).indexOf(0x0a);
      if (i >= 0) {
        lfAt = searched + i;
        // One conversion for this line and, likely, the rest of the head.
        const upTo = Math.min(this.end, Math.max(lfAt + 1, this.start + DEFAULTS.httpHeadTextBytes));
        this.text = this.buf.toString('latin1', this.start, upTo);
        this.textAt = this.start;
        this.textOf = this.buf;
      }
    }
    if (lfAt < 0) {
      this.scanned = live;
      if (live > max + 1) throw this.overflow(tooLong);
      if (live > headBudget) this.fail(431, 'head larger than max_header_bytes', true);
      if (this.eof) this.fail(400, 'connection closed in the middle of a line');
      return null;
    }
    const lf = lfAt - this.start;
    const base = this.start - this.textAt;
    if (lf === 0 || this.text.charCodeAt(base + lf - 1) !== 0x0d) {
      if (lf - 1 > max) throw this.overflow(tooLong);
      this.fail(400, 'bare LF as line terminator');
    }
    const len = lf - 1;
    if (len > max) throw this.overflow(tooLong);
    if (len + 2 > headBudget) this.fail(431, 'head larger than max_header_bytes', true);
    const s = this.text.slice(base, base + len);
    if (s.indexOf('\r') >= 0) this.fail(400, 'bare CR in a line');
    this.start += lf + 1;
    this.scanned = 0;
    return s;
  }

  private step(): ReadItem {
    switch (this.state) {
      case 'start':
      case 'headers':
        return this.readHead();
      case 'done':
        this.state = 'start';
        return { type: 'end', trailers: [] };
      case 'body-length': {
        const avail = this.end - this.start;
        if (avail === 0) {
          if (this.eof) this.fail(400, 'connection closed before the end of the body');
          return NEED;
        }
        const n = Math.min(avail, this.remaining);
        const data = this.copyOut(this.start, this.start + n);
        this.start += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = 'done';
        return { type: 'body', data };
      }
      case 'body-close': {
        const avail = this.end - this.start;
        if (avail === 0) {
          if (this.eof) {
            this.state = 'start';
            return { type: 'end', trailers: [] };
          }
          return NEED;
        }
        // Hand out what the limit allows, then fail: the same bytes pass however the input was split.
        const max = this.limits.maxBodyLength;
        const n = max > 0 ? Math.min(avail, max - this.bodyTotal) : avail;
        if (n <= 0) this.fail(413, 'body larger than max_body_length', true);
        this.bodyTotal += n;
        const data = this.copyOut(this.start, this.start + n);
        this.start += n;
        return { type: 'body', data };
      }
      case 'chunk-size':
        return this.readChunkSize();
      case 'chunk-data': {
        const avail = this.end - this.start;
        if (avail === 0) {
          if (this.eof) this.fail(400, 'connection closed inside a chunk');
          return NEED;
        }
        const n = Math.min(avail, this.remaining);
        const data = this.copyOut(this.start, this.start + n);
        this.start += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = 'chunk-crlf';
        return { type: 'body', data };
      }
      case 'chunk-crlf': {
        const avail = this.end - this.start;
        if (avail >= 1 && this.buf[this.start] !== 0x0d) this.fail(400, 'chunk data not followed by CRLF');
        if (avail >= 2 && this.buf[this.start + 1] !== 0x0a)
          this.fail(400, 'chunk data not followed by CRLF');
        if (avail < 2) {
          if (this.eof) this.fail(400, 'connection closed inside a chunk');
          return NEED;
        }
        this.start += 2;
        this.state = 'chunk-size';
        return this.readChunkSize();
      }
      case 'trailers':
        return this.readTrailers();
      case 'detached':
        return NEED;
    }
  }

  private countBody(n: number): void {
    this.bodyTotal += n;
    const max = this.limits.maxBodyLength;
    if (max > 0 && this.bodyTotal > max) this.fail(413, 'body larger than max_body_length', true);
  }

  private readHead(): ReadItem {
    const L = this.limits;
    for (;;) {
      if (this.startLine === null) {
        if (this.end === this.start) return this.eof ? EOF_ITEM : NEED;
        const isReq = this.kind === 'request';
        const max = isReq ? Math.max(L.maxLineLength, L.maxUrlLength + 64) : L.maxLineLength;
        const line = this.line(max, isReq ? 'request' : 'status', L.maxHeaderBytes - this.headBytes);
        if (line === null) return NEED;
        if (line === '') {
          // RFC 9112 §2.2: ignore empty lines before a request-line (robustness); not forever.
          if (!isReq || ++this.emptyLines > DEFAULTS.httpMaxLeadingEmptyLines)
            this.fail(400, 'empty line instead of a start line');
          continue;
        }
        this.emptyLines = 0;
        // Check the start line at once: a peer speaking something else is refused before it sends
        // a whole head (HTTP/0.9, binary junk).
        this.startLine = isReq ? parseRequestLine(line, this.limits.maxUrlLength) : parseStatusLine(line);
        this.headBytes = line.length + 2;
        this.headers = [];
        this.state = 'headers';
        continue;
      }
      const line = this.line(L.maxLineLength, 'header', L.maxHeaderBytes - this.headBytes);
      if (line === null) return NEED;
      this.headBytes += line.length + 2;
      if (line === '') return this.finishHead();
      this.headers.push(this.parseField(line, this.headers.length));
    }
  }

  private parseField(line: string, count: number): Header {
    if (count >= this.limits.maxHeaderLines) this.fail(431, 'more header lines than max_header_lines', true);
    const c0 = line.charCodeAt(0);
    // RFC 9112 §5.2: obs-fold is refused, not unfolded.
    if (c0 === 0x20 || c0 === 0x09) this.fail(400, 'obsolete line folding (obs-fold)');
    const colon = line.indexOf(':');
    if (colon <= 0) this.fail(400, 'header line without a field name and colon');
    const name = line.slice(0, colon);
    // RFC 9112 §5.1: whitespace between name and colon MUST be rejected (400).
    if (!isToken(name)) this.fail(400, `invalid header field name '${printable(name)}'`);
    const value = trimOws(line, colon + 1);
    if (!isFieldValue(value)) this.fail(400, `control character in header '${name}'`);
    return { name, value, lower: name.toLowerCase() };
  }

  private finishHead(): ReadItem {
    const line = this.startLine!;
    const headers = this.headers;
    this.startLine = null;
    this.headers = [];
    this.headBytes = 0;
    this.bodyTotal = 0;
    this.extBytes = 0;
    return this.kind === 'request'
      ? this.requestHead(line as RequestLine, headers)
      : this.responseHead(line as StatusLine, headers);
  }

  private requestHead(line: RequestLine, headers: Header[]): ReadItem {
    const { method, target, version } = line;
    // (host set below: every head has the same shape)
    const head: RequestHead = { kind: 'request', method, target, version, headers, host: undefined };

    // Host (RFC 9112 §3.2): exactly one in HTTP/1.1, at most one in 1.0, and well formed.
    let hosts = 0;
    for (const h of headers) {
      if (h.name.length === 4 && lowerName(h) === 'host') {
        hosts++;
        if (h.value !== '') {
          const max = this.limits.maxHostnameLength;
          head.host = { value: h.value, maxHostnameLength: max, authority: parseAuthority(h.value, max) };
        }
      }
    }
    if (hosts > 1) this.fail(400, 'more than one Host header');
    if (hosts === 0 && version.minor >= 1) this.fail(400, 'HTTP/1.1 request without Host');

    const framing = this.bodyFraming(headers, version, true);
    if (method === 'CONNECT' && framing.type !== 'none') this.fail(400, 'CONNECT request with a body');
    return this.startBody(head, framing);
  }

  private responseHead(line: StatusLine, headers: Header[]): ReadItem {
    const { version, status, reason } = line;
    const method = this.pending[0];
    if (method === undefined) this.fail(502, 'response without a request');
    const head: ResponseHead = {
      kind: 'response',
      version,
      status,
      reason,
      headers,
    };

    let framing: Framing;
    if (status < 200) {
      // 1xx: no body; the final response for the same request follows (RFC 9110 §15.2).
      framing = status === 101 ? { type: 'tunnel' } : { type: 'none' };
      if (status === 101) this.pending.shift();
    } else {
      this.pending.shift();
      if (method === 'CONNECT' && status < 300) framing = { type: 'tunnel' };
      else if (method === 'HEAD' || status === 204 || status === 304) {
        framing = { type: 'none' };
        // Still refuse ambiguous framing headers: a server that sends them is confused.
        this.bodyFraming(headers, head.version, false);
      } else framing = this.bodyFraming(headers, head.version, false);
    }
    return this.startBody(head, framing);
  }

  private startBody(head: RequestHead | ResponseHead, framing: Framing): ReadItem {
    switch (framing.type) {
      case 'none':
        this.state = 'done';
        break;
      case 'length':
        this.remaining = framing.length;
        this.state = framing.length === 0 ? 'done' : 'body-length';
        break;
      case 'chunked':
        this.state = 'chunk-size';
        break;
      case 'close':
        this.state = 'body-close';
        break;
      case 'tunnel':
        this.state = 'detached';
        break;
    }
    return { type: 'head', head, framing };
  }

  /** RFC 9112 §6.1-§6.3, strictly: anything a second parser could frame differently is refused. */
  private bodyFraming(headers: Header[], version: Version, isRequest: boolean): Framing {
    const bad = isRequest ? 400 : 502;
    let te: string[] | null = null;
    const cls: string[] = [];
    for (const h of headers) {
      const n = lowerName(h);
      if (n === 'transfer-encoding') {
        te ??= [];
        te.push(...splitList(h.value));
      } else if (n === 'content-length') cls.push(h.value);
    }
    if (te !== null) {
      if (cls.length > 0) this.fail(bad, 'both Transfer-Encoding and Content-Length');
      if (version.minor === 0) this.fail(bad, 'Transfer-Encoding in an HTTP/1.0 message');
      if (te.length === 1 && te[0] === 'chunked') return { type: 'chunked' };
      if (te.some((c) => c === '' || !isToken(c))) this.fail(bad, 'malformed Transfer-Encoding');
      if (te[te.length - 1] !== 'chunked') this.fail(bad, 'Transfer-Encoding does not end with chunked');
      if (te.filter((c) => c === 'chunked').length > 1) this.fail(bad, 'chunked applied more than once');
      // RFC 9112 §6.1: a coding the server does not understand → 501. We pass only plain chunked.
      this.fail(isRequest ? 501 : 502, `unsupported transfer coding '${te.join(', ')}'`);
    }
    if (cls.length > 1) this.fail(bad, 'more than one Content-Length');
    if (cls.length === 1) {
      const v = cls[0]!;
      if (!/^\d+$/.test(v)) this.fail(bad, `malformed Content-Length '${printable(v)}'`);
      const max = this.limits.maxBodyLength;
      if (v.length > 15 || (max > 0 && Number(v) > max)) {
        this.fail(isRequest ? 413 : 502, 'Content-Length larger than max_body_length', true);
      }
      return { type: 'length', length: Number(v) };
    }
    return isRequest ? { type: 'none' } : { type: 'close' };
  }

  private readChunkSize(): ReadItem {
    let size = this.chunkSizeFast();
    if (size < 0) {
      const line = this.line(this.limits.maxLineLength, 'chunk', Number.MAX_SAFE_INTEGER);
      if (line === null) return NEED;
      // chunk = chunk-size [ chunk-ext ] CRLF (RFC 9112 §7.1); BWS only before ';' and '='.
      let i = 0;
      while (i < line.length && /[0-9A-Fa-f]/.test(line[i]!)) i++;
      if (i === 0) this.fail(400, 'invalid chunk size');
      if (i > MAX_CHUNK_SIZE_DIGITS) this.fail(400, 'chunk size has too many digits');
      const ext = line.slice(i);
      if (ext !== '') {
        if (!this.validChunkExt(ext)) this.fail(400, 'malformed chunk extension');
        this.extBytes += ext.length;
        if (this.extBytes > this.limits.maxChunkExtensionBytes) {
          this.fail(400, 'chunk extensions longer than the limit', true);
        }
      }
      size = Number.parseInt(line.slice(0, i), 16);
      if (!Number.isSafeInteger(size)) this.fail(413, 'chunk size too large', true);
    }
    const maxChunk = this.limits.maxChunkLength;
    if (maxChunk > 0 && size > maxChunk) this.fail(413, 'chunk larger than max_chunk_length', true);
    this.countBody(size);
    if (size === 0) {
      this.trailers = [];
      this.headBytes = 0;
      this.state = 'trailers';
      return this.readTrailers();
    }
    this.remaining = size;
    this.state = 'chunk-data';
    return this.step();
  }

  /** The usual chunk-size line, hex digits and CRLF, read straight from the bytes: a body of tiny
   * chunks costs a scan of a few bytes per chunk, not a string and two regexps (review finding 5).
   * -1 when the line is anything else (extension, incomplete, long): the strict path decides. */
  private chunkSizeFast(): number {
    const b = this.buf;
    const stop = Math.min(this.end, this.start + FAST_CHUNK_SIZE_DIGITS + 1);
    let v = 0;
    let i = this.start;
    for (; i < stop; i++) {
      const d = HEX_VALUE[b[i]!]!;
      if (d === 0xff) break;
      v = v * 16 + d;
    }
    const n = i - this.start;
    if (n === 0 || n > FAST_CHUNK_SIZE_DIGITS || i + 1 >= this.end || b[i] !== 0x0d || b[i + 1] !== 0x0a)
      return -1;
    this.start = i + 2;
    this.scanned = 0;
    return v;
  }

  private validChunkExt(ext: string): boolean {
    // Quoted strings are checked by hand; the regexp accepts a '"' as the start of one.
    let rest = ext;
    for (;;) {
      const q = rest.indexOf('"');
      if (q < 0) return CHUNK_EXT.test(rest);
      if (!CHUNK_EXT.test(rest.slice(0, q + 1))) return false;
      const n = quotedStringLength(rest, q);
      if (n < 0) return false;
      rest = rest.slice(q + n);
    }
  }

  private readTrailers(): ReadItem {
    for (;;) {
      const line = this.line(
        this.limits.maxLineLength,
        'trailer',
        this.limits.maxHeaderBytes - this.headBytes,
      );
      if (line === null) return NEED;
      this.headBytes += line.length + 2;
      if (line === '') {
        this.state = 'start';
        const trailers = this.trailers;
        this.trailers = [];
        this.headBytes = 0;
        return { type: 'end', trailers };
      }
      this.trailers.push(this.parseField(line, this.trailers.length));
    }
  }
}

export interface RequestLine {
  method: string;
  target: string;
  version: Version;
}
export interface StatusLine {
  version: Version;
  status: number;
  reason: string;
}

/** The versions a start line can give (HTTP/1.0 to 1.9), made once: every head shares them (never
 * changed by anyone). */
const VERSIONS: readonly Version[] = Array.from({ length: 10 }, (_, minor) => ({ major: 1 as const, minor }));

/** The line's first `len` characters as one of STANDARD_METHODS when they are one: that constant, not
 * a new string whose hash every lookup by method (permitted methods, the method policy) would compute
 * again. */
function methodAt(line: string, len: number): string {
  for (let k = 0; k < STANDARD_METHODS.length; k++) {
    const m = STANDARD_METHODS[k]!;
    if (m.length === len && line.startsWith(m)) return m;
  }
  return line.slice(0, len);
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/** Whether line[at, at + 8) is "HTTP/d.d". */
function isVersionAt(line: string, at: number): boolean {
  return (
    line.startsWith('HTTP/', at) &&
    isDigit(line.charCodeAt(at + 5)) &&
    line.charCodeAt(at + 6) === 0x2e &&
    isDigit(line.charCodeAt(at + 7))
  );
}

/** request-line = method SP request-target SP HTTP-version (RFC 9112 §3), single spaces only. Read
 * by offsets, not split or matched: it is on every request. */
export function parseRequestLine(line: string, maxUrlLength: number): RequestLine {
  const sp1 = line.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : line.indexOf(' ', sp1 + 1);
  const three = sp2 >= 0 && line.indexOf(' ', sp2 + 1) < 0; // exactly three parts
  if (!three || line.length !== sp2 + 9 || !isVersionAt(line, sp2 + 1)) {
    if (three && /^HTTP\/\d+(\.\d+)?$/.test(line.slice(sp2 + 1)))
      throw new ProtocolError('client', 505, `unsupported HTTP version '${line.slice(sp2 + 1)}'`);
    throw new ProtocolError('client', 400, 'malformed request line');
  }
  const method = methodAt(line, sp1);
  if (!isToken(method)) throw new ProtocolError('client', 400, 'invalid method');
  if (line.charCodeAt(sp2 + 6) !== 0x31)
    throw new ProtocolError('client', 505, `unsupported HTTP version '${line.slice(sp2 + 1)}'`);
  const target = line.slice(sp1 + 1, sp2);
  if (!isVisibleAscii(target)) throw new ProtocolError('client', 400, 'invalid request-target');
  if (target.length > maxUrlLength)
    throw new ProtocolError('client', 414, 'request-target longer than max_url_length', { limit: true });
  return { method, target, version: VERSIONS[line.charCodeAt(sp2 + 8) - 0x30]! };
}

/** status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4). Errors are the
 * server's: the status (502) is what the client gets. Read by offsets: it is on every response. */
export function parseStatusLine(line: string): StatusLine {
  // "HTTP/d.d ddd", then nothing or SP and the reason
  const ok =
    line.length >= 12 &&
    isVersionAt(line, 0) &&
    line.charCodeAt(8) === 0x20 &&
    isDigit(line.charCodeAt(9)) &&
    isDigit(line.charCodeAt(10)) &&
    isDigit(line.charCodeAt(11)) &&
    (line.length === 12 || line.charCodeAt(12) === 0x20);
  if (!ok) throw new ProtocolError('server', 502, 'malformed status line');
  if (line.charCodeAt(5) !== 0x31) throw new ProtocolError('server', 502, 'response is not HTTP/1.x');
  const status =
    (line.charCodeAt(9) - 0x30) * 100 + (line.charCodeAt(10) - 0x30) * 10 + line.charCodeAt(11) - 0x30;
  if (status < 100 || status > 599)
    throw new ProtocolError('server', 502, `invalid status code ${line.slice(9, 12)}`);
  const reason = line.length > 13 ? line.slice(13) : '';
  if (!isFieldValue(reason)) throw new ProtocolError('server', 502, 'control character in reason phrase');
  return { version: VERSIONS[line.charCodeAt(7) - 0x30]!, status, reason };
}

function printable(s: string): string {
  return s
    .replace(/[\x00-\x1f\x7f-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .slice(0, 80);
}
