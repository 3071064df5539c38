// The error a peer's bad HTTP earns: a protocol (or limit) error carrying the status code the proxy
// answers with. The reader throws it for both directions; for a server's response the core turns any
// of them into a 502 to the client (the status here then only names what the server did wrong).
import { TzorpError } from '../../errors.ts';

export class HttpError extends TzorpError {
  /** Status to answer the client with (for request-side errors). */
  readonly status: number;

  constructor(status: number, message: string, limit = false) {
    super(limit ? 'PROXY_LIMIT' : 'PROXY_PROTOCOL', message, { details: { status } });
    this.name = 'HttpError';
    this.status = status;
  }
}

/** Reason phrases the proxy writes for the statuses it generates itself (RFC 9110 §15). */
export const REASONS: Record<number, string> = {
  100: 'Continue',
  101: 'Switching Protocols',
  200: 'OK',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  411: 'Length Required',
  413: 'Content Too Large',
  414: 'URI Too Long',
  417: 'Expectation Failed',
  421: 'Misdirected Request',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

export function reasonOf(status: number): string {
  return REASONS[status] ?? 'Unknown';
}
