// A peer broke the FTP protocol. The readers throw or return this; the core turns it into a reply
// (client side: 500/501 and the session goes on) or a clean abort (server side). Never a crash.

export class FtpProtocolError extends Error {
  /** The reply code to answer the client with (RFC 959 §4.2: 500 syntax error, 501 bad parameter). */
  readonly replyCode: number;

  constructor(replyCode: number, message: string) {
    super(message);
    this.name = 'FtpProtocolError';
    this.replyCode = replyCode;
  }
}
