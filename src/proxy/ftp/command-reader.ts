// The client side of the control connection: bytes in, commands out (RFC 959 §4.1, §5.3).
//
// Lines end in CRLF; a bare LF is accepted too (deliberate leniency, docs/ftp.md). The control
// connection is a Telnet connection (RFC 959 §4.1 / RFC 854): IAC sequences are removed, IAC IAC is a
// literal 0xFF byte. Clients send "IAC IP IAC DM" before ABOR (RFC 959 §4.1.3), so this matters.
// The byte limit applies to the raw line (before Telnet removal, without the line end) so the result
// does not depend on how the bytes were split into chunks.

import { ProtocolError } from '../../errors.ts';

export interface FtpCommand {
  /** Upper-cased verb, "" for an empty line. */
  verb: string;
  /** Everything after the first space, verbatim (latin1 text: one char per byte). */
  param: string;
}

/** A command, or a protocol error to answer (the line was discarded; the session goes on). */
export type CommandItem = { command: FtpCommand } | { error: ProtocolError };

const IAC = 0xff;
const LF = 0x0a;
const CR = 0x0d;

/** RFC 959 §5.3: verbs are alphabetic, up to four characters (XPWD, MLSD); three is the shortest. */
const VERB = /^[A-Za-z]{3,4}$/;

export class CommandReader {
  private buf: Uint8Array = new Uint8Array(0);
  private discarding = false;
  private readonly maxLineBytes: number;

  constructor(opts: { maxLineBytes: number }) {
    this.maxLineBytes = opts.maxLineBytes;
  }

  /** Bytes held that are not yet a complete line. */
  get buffered(): number {
    return this.buf.length;
  }

  push(data: Uint8Array): void {
    this.buf = appendBytes(this.buf, data);
  }

  /** The next command or error, or null when no complete line is buffered. */
  next(): CommandItem | null {
    for (;;) {
      const lf = this.buf.indexOf(LF);
      if (lf < 0) {
        // No line end yet. An overlong partial line is reported once, then skipped up to its LF.
        if (!this.discarding && this.buf.length > this.maxLineBytes + 1) {
          // +1: a trailing CR of a line of exactly max bytes may still be waiting for its LF.
          this.discarding = true;
          this.buf = new Uint8Array(0);
          return {
            error: new ProtocolError('client', 500, `Line too long (limit ${this.maxLineBytes} bytes)`, {
              limit: true,
            }),
          };
        }
        if (this.discarding) this.buf = new Uint8Array(0);
        return null;
      }
      let line = this.buf.subarray(0, lf);
      this.buf = this.buf.subarray(lf + 1);
      if (this.discarding) {
        this.discarding = false;
        continue;
      }
      if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      if (line.length > this.maxLineBytes) {
        return {
          error: new ProtocolError('client', 500, `Line too long (limit ${this.maxLineBytes} bytes)`, {
            limit: true,
          }),
        };
      }
      return parseLine(stripTelnet(line));
    }
  }
}

/** RFC 854: IAC IAC = 0xFF; IAC WILL/WONT/DO/DONT <opt> = 3 bytes; IAC SB ... IAC SE; IAC <cmd> = 2. */
export function stripTelnet(line: Uint8Array): Uint8Array {
  if (line.indexOf(IAC) < 0) return line;
  const out: number[] = [];
  for (let i = 0; i < line.length; i++) {
    const b = line[i]!;
    if (b !== IAC) {
      out.push(b);
      continue;
    }
    const c = line[i + 1];
    if (c === undefined) break;
    if (c === IAC) {
      out.push(IAC);
      i++;
    } else if (c >= 251 && c <= 254) {
      i += 2; // WILL, WONT, DO, DONT + option byte
    } else if (c === 250) {
      // SB ... IAC SE (240): skip the subnegotiation
      let j = i + 2;
      while (j < line.length && !(line[j] === IAC && line[j + 1] === 240)) j++;
      i = j + 1;
    } else {
      i++; // IP, DM, AYT, ... : a two-byte command
    }
  }
  return Uint8Array.from(out);
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) {
    s += String.fromCharCode(...b.subarray(i, i + 8192));
  }
  return s;
}

function parseLine(line: Uint8Array): CommandItem {
  if (line.length === 0) return { command: { verb: '', param: '' } };
  if (line.indexOf(0) >= 0 || line.indexOf(CR) >= 0) {
    // RFC 959 §4.1.3 forbids CR and NUL inside a command (they would end or split it on the server).
    return { error: new ProtocolError('client', 501, 'Invalid character in command') };
  }
  if (line.indexOf(IAC) >= 0) {
    // A literal 0xFF (sent as IAC IAC) would go to the server as one raw IAC, and a Telnet-aware
    // server (ProFTPD) would read `sec IAC IP ret.txt` as `secret.txt`, a name the policy never saw
    // (review finding 4). No UTF-8 text contains 0xFF, so it is refused rather than re-escaped.
    return { error: new ProtocolError('client', 501, 'Invalid character in command (0xFF)') };
  }
  const text = latin1(line);
  const sp = text.indexOf(' ');
  const verb = sp < 0 ? text : text.slice(0, sp);
  const param = sp < 0 ? '' : text.slice(sp + 1);
  if (!VERB.test(verb))
    return { error: new ProtocolError('client', 500, 'Syntax error, command unrecognized') };
  return { command: { verb: verb.toUpperCase(), param } };
}

/** `a` followed by `b` (no copy when either is empty). */
export function appendBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const n = new Uint8Array(a.length + b.length);
  n.set(a, 0);
  n.set(b, a.length);
  return n;
}

/** Text (one char per byte) back to wire bytes. */
export function toBytes(text: string): Uint8Array {
  const b = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) b[i] = text.charCodeAt(i) & 0xff;
  return b;
}

export { latin1 as bytesToText };
