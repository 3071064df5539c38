// The glob of every name and path filter in the proxies (HTTP URL filter, TLS server names): one
// meaning everywhere, so a pattern an administrator wrote for one matches the same names in another.

/** Glob: `*` matches any run of characters (dots included), `?` one character; everything else
 * literally. The whole text must match. */
export function globToRegExp(glob: string, caseInsensitive: boolean): RegExp {
  let re = '^';
  for (const c of glob) {
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else re += c.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`${re}$`, caseInsensitive ? 'is' : 's');
}
