// The server side of the control connection: bytes in, replies out (RFC 959 §4.2).
//
// A reply is "xyz text" or a multi-line "xyz-text" ... "xyz text" (RFC 959 §4.2; RFC 3659 §7.2 and
// RFC 2389 §3.2 FEAT use the same form with indented lines in between). Limits: a line's length
// (max_line_length) and the number of lines of one reply (max_continuous_line, as in Zorp). Any
// violation is fatal for the session: the reader throws ProtocolError and stays failed.

import { ProtocolError } from '../../errors.ts';
import { StickyFailure } from '../core/state.ts';
import { appendBytes, bytesToText } from './command-reader.ts';

export interface FtpReply {
  /** Three digits, e.g. "226". */
  code: string;
  /** The reply's lines as received, without line ends (latin1 text). lines[0] starts with the code. */
  lines: string[];
}

const LF = 0x0a;
const CR = 0x0d;
/** RFC 959 §4.2.1: first digit 1-5, second 0-5, third any digit. */
const CODE = /^[1-5][0-5][0-9]/;

export class ReplyReader {
  private buf: Uint8Array = new Uint8Array(0);
  private pending: FtpReply | null = null;
  private readonly failure = new StickyFailure();
  private readonly maxLineBytes: number;
  private readonly maxLines: number;

  constructor(opts: { maxLineBytes: number; maxLines: number }) {
    this.maxLineBytes = opts.maxLineBytes;
    this.maxLines = opts.maxLines;
  }

  get buffered(): number {
    return this.buf.length;
  }

  push(data: Uint8Array): void {
    this.buf = appendBytes(this.buf, data);
  }

  /** The next complete reply, or null. Throws ProtocolError on a violation (then always). */
  next(): FtpReply | null {
    return this.failure.run(this, this.step);
  }

  private step(): FtpReply | null {
    for (;;) {
      const lf = this.buf.indexOf(LF);
      if (lf < 0) {
        if (this.buf.length > this.maxLineBytes + 1) {
          throw new ProtocolError(
            'server',
            421,
            `Server reply line too long (limit ${this.maxLineBytes} bytes)`,
            { limit: true },
          );
        }
        return null;
      }
      let raw = this.buf.subarray(0, lf);
      this.buf = this.buf.subarray(lf + 1);
      if (raw.length > 0 && raw[raw.length - 1] === CR) raw = raw.subarray(0, raw.length - 1);
      if (raw.length > this.maxLineBytes) {
        throw new ProtocolError(
          'server',
          421,
          `Server reply line too long (limit ${this.maxLineBytes} bytes)`,
          { limit: true },
        );
      }
      if (raw.indexOf(0) >= 0 || raw.indexOf(CR) >= 0) {
        throw new ProtocolError('server', 421, 'Invalid character in server reply');
      }
      const line = bytesToText(raw);
      if (this.pending) {
        this.pending.lines.push(middleLine(line, this.pending.code));
        if (this.pending.lines.length > this.maxLines) {
          throw new ProtocolError('server', 421, `Server reply has too many lines (limit ${this.maxLines})`, {
            limit: true,
          });
        }
        const c = this.pending.code;
        // The last line is the code followed by a space (or nothing: leniency for "226" alone).
        if (line.startsWith(c) && (line.length === 3 || line[3] === ' ')) {
          const done = this.pending;
          this.pending = null;
          return done;
        }
        continue;
      }
      if (!CODE.test(line)) throw new ProtocolError('server', 421, 'Invalid server reply (no reply code)');
      const code = line.slice(0, 3);
      const sep = line[3];
      if (sep === undefined || sep === ' ') return { code, lines: [line] };
      if (sep === '-') {
        this.pending = { code, lines: [line] };
        if (this.maxLines < 2) {
          throw new ProtocolError('server', 421, `Server reply has too many lines (limit ${this.maxLines})`, {
            limit: true,
          });
        }
        continue;
      }
      throw new ProtocolError('server', 421, 'Invalid server reply (bad separator after the code)');
    }
  }
}

/** RFC 959 §4.2: a middle line that starts with a number must be padded by the server. One that
 * reads like another reply's last line (`227 Entering Passive Mode (...)` inside a 211 reply) could
 * end the reply early in a lenient client and be taken as the answer to its next command (review
 * finding 10): it is forwarded with a leading space. The reply's own last line is left alone. */
function middleLine(line: string, code: string): string {
  if (/^\d{3} /.test(line) && !line.startsWith(code)) return ` ${line}`;
  if (/^\d{3}$/.test(line) && line !== code) return ` ${line}`;
  return line;
}

/** Text of a reply's first line after the code and separator. */
export function replyText(r: FtpReply): string {
  return r.lines[0]!.slice(4);
}

/** All lines' text (after "xyz-"/"xyz " where present), for parsing 227/229 and FEAT. */
export function replyBody(r: FtpReply): string[] {
  return r.lines.map((l, i) =>
    i === 0 || i === r.lines.length - 1 || (l.startsWith(r.code) && (l[3] === '-' || l[3] === ' '))
      ? l.slice(4)
      : l,
  );
}
