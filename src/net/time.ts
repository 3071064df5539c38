// ISO 8601 times for log lines and session summaries without Date.prototype.toISOString each time: V8
// formats that with printf (a visible part of a new connection's cost: a session's summary has two
// times and every line one). The text up to the second is kept for the last two seconds asked (a
// summary's start and end are mostly in one of them), the milliseconds are appended.

const secs = [Number.NaN, Number.NaN];
const texts = ['', ''];
let older = 0; // the entry to replace next

/** `new Date(ms).toISOString()` for a time in milliseconds since the epoch. */
export function isoTime(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms > 253402300799999) return new Date(ms).toISOString();
  const rest = ms % 1000;
  const sec = ms - rest;
  let i = secs[0] === sec ? 0 : secs[1] === sec ? 1 : -1;
  if (i < 0) {
    i = older;
    older = 1 - older;
    secs[i] = sec;
    texts[i] = new Date(sec).toISOString().slice(0, 20); // 'YYYY-MM-DDTHH:MM:SS.'
  }
  return `${texts[i]}${rest < 10 ? '00' : rest < 100 ? '0' : ''}${rest}Z`;
}
