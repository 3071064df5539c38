// Reason phrases for the statuses the proxy writes itself. A peer's bad HTTP is a ProtocolError
// (src/errors.ts) carrying the status to answer.

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
