// The positioned syntax tree: what both readers (YAML, JSON) produce and what validation walks.
// Kept deliberately small: maps keep their keys in order (duplicates included, validation reports them),
// scalars keep their source text and whether they were quoted, so validation decides types itself
// (YAML's own typing would turn `1.2` into a float and `0x10` into 16 behind the user's back).
// Positions are byte offsets into the text; `Lines` turns them into 1-based line:column lazily.

export type PNode = PMap | PSeq | PScalar | PNull;

export interface PMap {
  kind: 'map';
  at: number;
  entries: PEntry[];
}
export interface PEntry {
  key: string;
  keyAt: number;
  value: PNode;
}
export interface PSeq {
  kind: 'seq';
  at: number;
  items: PNode[];
}
export interface PScalar {
  kind: 'scalar';
  at: number;
  /** The scalar's text (after unquoting). */
  value: string;
  /** Quoted (or explicitly tagged !!str) scalars are strings; plain ones may be numbers or booleans. */
  quoted: boolean;
}
export interface PNull {
  kind: 'null';
  at: number;
}

/** Offset -> line:column (1-based, column in UTF-16 code units like editors and the yaml package). */
export class Lines {
  private readonly starts: Int32Array | number[];

  constructor(text: string) {
    const starts: number[] = [0];
    let i = text.indexOf('\n');
    while (i >= 0) {
      starts.push(i + 1);
      i = text.indexOf('\n', i + 1);
    }
    this.starts = starts.length > 1024 ? Int32Array.from(starts) : starts;
  }

  pos(offset: number): { line: number; col: number } {
    const s = this.starts;
    let lo = 0;
    let hi = s.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((s[mid] as number) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - (s[lo] as number) + 1 };
  }
}

export function describe(n: PNode): string {
  switch (n.kind) {
    case 'map':
      return 'a mapping';
    case 'seq':
      return 'a list';
    case 'null':
      return 'null';
    case 'scalar':
      return n.quoted ? `the string '${n.value}'` : `'${n.value}'`;
  }
}
