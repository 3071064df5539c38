// A positioned JSON reader (RFC 8259). Why not the yaml package for JSON too: it needs ~100 bytes of
// memory per byte of input and is far slower, so a large generated policy (tens of MB, written by a
// program, which writes JSON) would not load in bounded memory. This reader is iterative (no recursion:
// nesting cannot overflow the stack), linear in time, and builds the same syntax tree as the YAML reader.
import { DEFAULTS } from '../defaults.ts';
import type { PEntry, PMap, PNode, PSeq } from './syntax.ts';

export type JsonResult = { ok: true; root: PNode } | { ok: false; at: number; message: string };

interface Frame {
  node: PMap | PSeq;
  key: string;
  keyAt: number;
}

class JsonError {
  constructor(
    readonly at: number,
    readonly message: string,
  ) {}
}

export function readJson(text: string): JsonResult {
  try {
    return { ok: true, root: parse(text) };
  } catch (e) {
    if (e instanceof JsonError) return { ok: false, at: e.at, message: e.message };
    throw e;
  }
}

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function parse(text: string): PNode {
  const n = text.length;
  let i = 0;
  const skip = () => {
    while (i < n && isWs(text.charCodeAt(i))) i++;
  };
  const fail = (message: string, at = i): never => {
    throw new JsonError(Math.min(at, n), message);
  };
  const readString = (): string => {
    // at '"'
    const start = i;
    i++;
    let out = '';
    let chunk = i;
    for (;;) {
      if (i >= n) fail('unterminated string', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(chunk, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in string (escape it)');
      if (c === 0x5c) {
        out += text.slice(chunk, i);
        const e = text[i + 1];
        switch (e) {
          case '"':
          case '\\':
          case '/':
            out += e;
            i += 2;
            break;
          case 'b':
            out += '\b';
            i += 2;
            break;
          case 'f':
            out += '\f';
            i += 2;
            break;
          case 'n':
            out += '\n';
            i += 2;
            break;
          case 'r':
            out += '\r';
            i += 2;
            break;
          case 't':
            out += '\t';
            i += 2;
            break;
          case 'u': {
            const h = text.slice(i + 2, i + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('bad \\u escape');
            out += String.fromCharCode(Number.parseInt(h, 16));
            i += 6;
            break;
          }
          default:
            fail('bad escape in string');
        }
        chunk = i;
        continue;
      }
      i++;
    }
  };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

  const stack: Frame[] = [];
  let root: PNode | undefined;

  // read a map key and its ':' (i at the key's '"')
  const readKey = (f: Frame) => {
    skip();
    if (text[i] !== '"') fail('expected a string key');
    f.keyAt = i;
    f.key = readString();
    skip();
    if (text[i] !== ':') fail("expected ':' after the key");
    i++;
  };

  for (;;) {
    // expect a value
    skip();
    if (i >= n) fail('unexpected end of input');
    const at = i;
    const c = text[i];
    let value: PNode | null = null;
    if (c === '{' || c === '[') {
      if (stack.length >= DEFAULTS.maxJsonNesting)
        fail(`nesting deeper than ${DEFAULTS.maxJsonNesting} levels`);
      i++;
      const node: PMap | PSeq = c === '{' ? { kind: 'map', at, entries: [] } : { kind: 'seq', at, items: [] };
      skip();
      const close = c === '{' ? '}' : ']';
      if (text[i] === close) {
        i++;
        value = node;
      } else {
        const f: Frame = { node, key: '', keyAt: 0 };
        stack.push(f);
        if (node.kind === 'map') readKey(f);
        continue;
      }
    } else if (c === '"') {
      value = { kind: 'scalar', at, value: readString(), quoted: true };
    } else if (text.startsWith('true', i) || text.startsWith('false', i)) {
      const w = c === 't' ? 'true' : 'false';
      i += w.length;
      value = { kind: 'scalar', at, value: w, quoted: false };
    } else if (text.startsWith('null', i)) {
      i += 4;
      value = { kind: 'null', at };
    } else {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(text);
      if (!m || m[0].length === 0 || m[0] === '-') fail(`unexpected character '${c}'`);
      i += (m as RegExpExecArray)[0].length;
      value = { kind: 'scalar', at, value: (m as RegExpExecArray)[0], quoted: false };
    }
    // attach completed values, closing containers as long as they end here
    for (;;) {
      const f = stack[stack.length - 1];
      if (!f) {
        root = value as PNode;
        skip();
        if (i < n) fail('unexpected text after the end of the document');
        return root;
      }
      if (f.node.kind === 'map') {
        const e: PEntry = { key: f.key, keyAt: f.keyAt, value: value as PNode };
        f.node.entries.push(e);
      } else {
        f.node.items.push(value as PNode);
      }
      skip();
      const d = text[i];
      if (d === ',') {
        i++;
        if (f.node.kind === 'map') readKey(f);
        break;
      }
      if ((d === '}' && f.node.kind === 'map') || (d === ']' && f.node.kind === 'seq')) {
        i++;
        stack.pop();
        value = f.node;
        continue;
      }
      fail(
        i >= n
          ? 'unexpected end of input'
          : f.node.kind === 'map'
            ? "expected ',' or '}'"
            : "expected ',' or ']'",
      );
    }
  }
}
