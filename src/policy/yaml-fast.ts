// A fast reader for the YAML that policies are written in: block mappings and sequences (compact
// `- key: value` items included), one-line flow collections, plain and quoted one-line scalars and
// comments. It produces exactly the tree the full reader (yaml-reader.ts, the yaml package) produces,
// positions included, or gives up (null) on the first thing outside that subset: anchors, aliases, tags,
// block and multi-line scalars, escapes in double quotes, tabs, CR, directives, document markers,
// complex keys, and anything malformed. Then the full reader reads the text and reports the errors,
// so the fast path never decides what an error is. `test/unit/policy/yaml-fast.test.ts` checks the
// two against each other (examples, generated documents, the fuzz corpus).
//
// Why: the yaml package takes ~2.5 s for a 3 MB policy (10,000 rules, 100,000 networks); this reads
// it in a fraction of that (bench/micro/load.bench.ts). Iterative over lines; nesting is bounded.
import type { PEntry, PNode } from './syntax.ts';

class GiveUp {}
const GIVE_UP = new GiveUp();
const MAX_DEPTH = 64;
/** The YAML spec limits implicit keys to 1024 characters; the full reader refuses longer ones. */
const MAX_KEY = 1000;

const SP = 32;
const HASH = 35;
const COLON = 58;
const DASH = 45;
const COMMA = 44;
const LBRACE = 123;
const RBRACE = 125;
const LBRACKET = 91;
const RBRACKET = 93;
const SQUOTE = 39;
const DQUOTE = 34;
const BACKSLASH = 92;

/** Characters a plain scalar (or key) may not start with here (indicators, quotes handled apart). */
const BAD_START = new Set('?:,[]{}#&*!|>%@`\'"'.split('').map((c) => c.charCodeAt(0)));

function nullNode(value: string, quoted: boolean, at: number): PNode {
  if (!quoted && (value === '' || value === '~' || value === 'null' || value === 'Null' || value === 'NULL'))
    return { kind: 'null', at };
  return { kind: 'scalar', at, value, quoted };
}

export function readYamlFast(text: string): PNode | null {
  try {
    return new Reader(text).document();
  } catch (e) {
    if (e === GIVE_UP) return null;
    throw e;
  }
}

class Reader {
  /** Start offset of the current line; -1 at the end. */
  private ls = 0;
  /** End of the current line (offset of its '\n' or text.length). */
  private le = 0;
  /** Indentation of the current line (the current content line after skip()). */
  private ind = 0;
  private depth = 0;

  constructor(private readonly t: string) {
    if (t.length > 0 && t.charCodeAt(0) === 0xfeff) throw GIVE_UP;
    if (t.includes('\t') || t.includes('\r')) throw GIVE_UP;
    this.setLine(0);
  }

  private setLine(start: number): void {
    if (
      start > this.t.length ||
      (start === this.t.length && start > 0 && this.t.charCodeAt(start - 1) === 10)
    ) {
      this.ls = -1;
      return;
    }
    this.ls = start;
    const nl = this.t.indexOf('\n', start);
    this.le = nl < 0 ? this.t.length : nl;
    let i = start;
    while (i < this.le && this.t.charCodeAt(i) === SP) i++;
    this.ind = i - start;
  }

  private nextLine(): void {
    if (this.le >= this.t.length) this.ls = -1;
    else this.setLine(this.le + 1);
  }

  /** Skips blank and comment-only lines; false at the end of the text. */
  private skip(): boolean {
    while (this.ls >= 0) {
      const c = this.ls + this.ind;
      if (c < this.le && this.t.charCodeAt(c) !== HASH) {
        const s = this.t.charCodeAt(c);
        if (s === 37 /* % directive */ && this.ind === 0) throw GIVE_UP;
        if (this.ind === 0 && (this.t.startsWith('---', c) || this.t.startsWith('...', c))) throw GIVE_UP;
        return true;
      }
      this.nextLine();
    }
    return false;
  }

  document(): PNode {
    if (!this.skip()) return { kind: 'null', at: 0 };
    const c = this.ls + this.ind;
    let root: PNode;
    if (this.isSeqItem(c)) root = this.blockSeq(this.ind);
    else root = this.blockMap(this.ind, c);
    if (this.skip()) throw GIVE_UP; // content left over (less indented than the root): malformed
    return root;
  }

  private isSeqItem(c: number): boolean {
    if (this.t.charCodeAt(c) !== DASH) return false;
    const n = c + 1;
    return n >= this.le || this.t.charCodeAt(n) === SP;
  }

  private enter(): void {
    if (++this.depth > MAX_DEPTH) throw GIVE_UP;
  }

  /** A block sequence whose items are lines at indentation `n` starting with '-'. */
  private blockSeq(n: number): PNode {
    this.enter();
    const items: PNode[] = [];
    const seq: PNode = { kind: 'seq', at: this.ls + n, items };
    while (this.skip() && this.ind === n && this.isSeqItem(this.ls + n)) {
      const dash = this.ls + n;
      let p = dash + 1;
      while (p < this.le && this.t.charCodeAt(p) === SP) p++;
      if (p >= this.le || this.t.charCodeAt(p) === HASH) {
        if (p < this.le) throw GIVE_UP; // "- # comment": the full reader decides where that null is
        const eol = p;
        this.nextLine();
        if (this.skip() && this.ind > n) {
          const c = this.ls + this.ind;
          items.push(this.isSeqItem(c) ? this.blockSeq(this.ind) : this.blockMap(this.ind, c));
        } else items.push({ kind: 'null', at: eol });
        continue;
      }
      if (this.isSeqItem(p)) throw GIVE_UP; // "- - x"
      if (this.startsCompactMap(p)) {
        items.push(this.blockMap(p - this.ls, p));
        continue;
      }
      items.push(this.inlineLine(p));
    }
    if (this.ls >= 0 && this.ind > n) throw GIVE_UP;
    this.depth--;
    return seq;
  }

  /** Whether the text at p on this line is `key:` (a mapping in a sequence item). */
  private startsCompactMap(p: number): boolean {
    const s = this.t.charCodeAt(p);
    if (s === LBRACE || s === LBRACKET || s === SQUOTE || s === DQUOTE) return false;
    return this.keyEnd(p) >= 0;
  }

  /** End of a plain key starting at p (offset of its ':'), or -1 when the line has no `key:` there. */
  private keyEnd(p: number): number {
    const t = this.t;
    for (let i = p; i < this.le; i++) {
      const c = t.charCodeAt(i);
      if (c === COLON) {
        const n = i + 1;
        if (n >= this.le || t.charCodeAt(n) === SP) return i;
      } else if (c === HASH && i > p && t.charCodeAt(i - 1) === SP) return -1;
    }
    return -1;
  }

  /** A block mapping whose keys start at column `n`; the first key is at offset `first` (which may be
   * inside a sequence item's line). */
  private blockMap(n: number, first: number): PNode {
    this.enter();
    const entries: PEntry[] = [];
    const map: PNode = { kind: 'map', at: first, entries };
    let k = first;
    for (;;) {
      const s = this.t.charCodeAt(k);
      if (BAD_START.has(s) || (s === DASH && this.isSeqItem(k))) throw GIVE_UP;
      const colon = this.keyEnd(k);
      if (colon < 0) throw GIVE_UP;
      let kEnd = colon;
      while (kEnd > k && this.t.charCodeAt(kEnd - 1) === SP) kEnd--;
      if (kEnd - k > MAX_KEY || kEnd === k) throw GIVE_UP;
      const key = this.t.slice(k, kEnd);
      if (key.includes(' #')) throw GIVE_UP;
      const entry: PEntry = { key, keyAt: k, value: { kind: 'null', at: k } };
      entries.push(entry);
      let p = colon + 1;
      while (p < this.le && this.t.charCodeAt(p) === SP) p++;
      if (p >= this.le || this.t.charCodeAt(p) === HASH) {
        if (p < this.le) throw GIVE_UP; // "key: # comment"
        const eol = p;
        this.nextLine();
        if (this.skip() && (this.ind > n || (this.ind === n && this.isSeqItem(this.ls + n)))) {
          const c = this.ls + this.ind;
          entry.value = this.isSeqItem(c) ? this.blockSeq(this.ind) : this.blockMap(this.ind, c);
        } else entry.value = { kind: 'null', at: eol };
      } else {
        entry.value = this.inlineLine(p);
      }
      if (!this.skip() || this.ind < n) break;
      if (this.ind > n) throw GIVE_UP; // a continuation line or bad indentation: the full reader says
      k = this.ls + n;
      if (this.isSeqItem(k)) break; // the parent's next sequence item (a compact map ended)
    }
    this.depth--;
    return map;
  }

  /** A value that starts at p and ends on this line (then only spaces or a comment may follow);
   * moves to the next line. */
  private inlineLine(p: number): PNode {
    const { node, end } = this.inline(p, false);
    let i = end;
    while (i < this.le && this.t.charCodeAt(i) === SP) i++;
    if (i < this.le && !(this.t.charCodeAt(i) === HASH && i > end)) throw GIVE_UP;
    this.nextLine();
    return node;
  }

  /** A scalar or flow collection at p; `flow`: inside a flow collection. */
  private inline(p: number, flow: boolean): { node: PNode; end: number } {
    const t = this.t;
    const s = t.charCodeAt(p);
    if (s === LBRACE) return this.flowMap(p);
    if (s === LBRACKET) return this.flowSeq(p);
    if (s === DQUOTE) {
      const close = t.indexOf('"', p + 1);
      if (close < 0 || close > this.le) throw GIVE_UP;
      const v = t.slice(p + 1, close);
      if (v.includes('\\')) throw GIVE_UP;
      return { node: { kind: 'scalar', at: p, value: v, quoted: true }, end: close + 1 };
    }
    if (s === SQUOTE) {
      let v = '';
      let i = p + 1;
      for (;;) {
        const q = t.indexOf("'", i);
        if (q < 0 || q >= this.le) throw GIVE_UP;
        v += t.slice(i, q);
        if (q + 1 < this.le && t.charCodeAt(q + 1) === SQUOTE) {
          v += "'";
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      return { node: { kind: 'scalar', at: p, value: v, quoted: true }, end: i };
    }
    // ':' starts a plain scalar before a character that is not a space or a flow indicator ("::/0")
    if (s === COLON) {
      const n = p + 1 < this.le ? t.charCodeAt(p + 1) : SP;
      if (
        n === SP ||
        n === COMMA ||
        n === LBRACKET ||
        n === RBRACKET ||
        n === LBRACE ||
        n === RBRACE ||
        n === HASH
      )
        throw GIVE_UP;
    } else if (BAD_START.has(s)) throw GIVE_UP;
    // '-' starts a plain scalar only before a digit or letter ("-1", "-x"); "- ", "-]" are indicators
    if (s === DASH) {
      const n = p + 1 < this.le ? t.charCodeAt(p + 1) : SP;
      const alnum = (n >= 48 && n <= 57) || (n >= 65 && n <= 90) || (n >= 97 && n <= 122);
      if (!alnum) throw GIVE_UP;
    }
    // plain: up to ' #', ': ' (a nested mapping: not here), or, in flow, a flow indicator
    let i = p;
    let last = p; // end of the last non-space character
    for (; i < this.le; i++) {
      const c = t.charCodeAt(i);
      if (c === SP) continue;
      if (c === HASH && t.charCodeAt(i - 1) === SP) break;
      if (c === COLON) {
        const n = i + 1 < this.le ? t.charCodeAt(i + 1) : SP;
        if (n === SP || (flow && (n === COMMA || n === RBRACE || n === RBRACKET))) {
          if (!flow) throw GIVE_UP; // "a: b: c"
          break;
        }
      }
      if (flow && (c === COMMA || c === RBRACE || c === RBRACKET || c === LBRACE || c === LBRACKET)) break;
      if (c === BACKSLASH && flow) throw GIVE_UP;
      last = i + 1;
    }
    return { node: nullNode(t.slice(p, last), false, p), end: last };
  }

  private spaces(i: number): number {
    while (i < this.le && this.t.charCodeAt(i) === SP) i++;
    if (i >= this.le) throw GIVE_UP; // a flow collection over several lines
    return i;
  }

  private flowMap(open: number): { node: PNode; end: number } {
    this.enter();
    const entries: PEntry[] = [];
    const node: PNode = { kind: 'map', at: open, entries };
    let i = this.spaces(open + 1);
    if (this.t.charCodeAt(i) === RBRACE) {
      this.depth--;
      return { node, end: i + 1 };
    }
    for (;;) {
      const s = this.t.charCodeAt(i);
      if (BAD_START.has(s) || s === DASH) throw GIVE_UP;
      const k = i;
      let j = i;
      while (j < this.le) {
        const c = this.t.charCodeAt(j);
        if (
          c === COLON ||
          c === COMMA ||
          c === RBRACE ||
          c === LBRACE ||
          c === LBRACKET ||
          c === RBRACKET ||
          c === HASH
        )
          break;
        j++;
      }
      if (j >= this.le || this.t.charCodeAt(j) !== COLON) throw GIVE_UP;
      const n = j + 1 < this.le ? this.t.charCodeAt(j + 1) : SP;
      if (n !== SP && n !== COMMA && n !== RBRACE) throw GIVE_UP; // "a:b" is a plain scalar in flow
      let kEnd = j;
      while (kEnd > k && this.t.charCodeAt(kEnd - 1) === SP) kEnd--;
      if (kEnd === k || kEnd - k > MAX_KEY) throw GIVE_UP;
      const entry: PEntry = { key: this.t.slice(k, kEnd), keyAt: k, value: { kind: 'null', at: k } };
      entries.push(entry);
      i = this.spaces(j + 1);
      const c = this.t.charCodeAt(i);
      if (c === COMMA || c === RBRACE) entry.value = { kind: 'null', at: i };
      else {
        const v = this.inline(i, true);
        entry.value = v.node;
        i = this.spaces(v.end);
      }
      const sep = this.t.charCodeAt(i);
      if (sep === RBRACE) {
        this.depth--;
        return { node, end: i + 1 };
      }
      if (sep !== COMMA) throw GIVE_UP;
      i = this.spaces(i + 1);
      if (this.t.charCodeAt(i) === RBRACE) throw GIVE_UP; // a trailing comma: let the full reader judge
    }
  }

  private flowSeq(open: number): { node: PNode; end: number } {
    this.enter();
    const items: PNode[] = [];
    const node: PNode = { kind: 'seq', at: open, items };
    let i = this.spaces(open + 1);
    if (this.t.charCodeAt(i) === RBRACKET) {
      this.depth--;
      return { node, end: i + 1 };
    }
    for (;;) {
      const c = this.t.charCodeAt(i);
      if (c === COMMA || c === RBRACKET) throw GIVE_UP; // an empty item
      const v = this.inline(i, true);
      items.push(v.node);
      i = this.spaces(v.end);
      const sep = this.t.charCodeAt(i);
      if (sep === COLON) throw GIVE_UP; // "[a: b]", a single-pair mapping
      if (sep === RBRACKET) {
        this.depth--;
        return { node, end: i + 1 };
      }
      if (sep !== COMMA) throw GIVE_UP;
      i = this.spaces(i + 1);
      if (this.t.charCodeAt(i) === RBRACKET) throw GIVE_UP; // a trailing comma
    }
  }
}
