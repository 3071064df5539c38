// One metric counted without prom-client: a counter or gauge with labels, whose json() is prom-client's
// getMetricsAsJSON() format for it. The workers count their sessions with these (worker-metrics.ts) and
// the primary its reloads and generation (metrics.ts); prom-client itself (about 12 MB of memory in a
// process that loads it) is loaded by the primary only for its `--metrics` listener, which sums them all
// with prom-client's cluster aggregator.

import { TzorpError } from '../errors.ts';

/** The JSON of one metric as prom-client's aggregator reads it. */
export interface MetricJson {
  help: string;
  name: string;
  type: 'counter' | 'gauge';
  values: { value: number; labels: Record<string, string> }[];
  aggregator: 'sum';
}

/** One label set's value (a Labeled's entry; WorkerMetrics keeps its per-service ones at hand). */
export interface Cell<L extends string> {
  value: number;
  labels: Record<L, string>;
}

/** A counter or gauge with labels: one value per label set, kept in the order first seen. */
export class Labeled<L extends string> {
  private readonly values = new Map<string, Cell<L>>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
    private readonly labelNames: readonly L[],
  ) {
    // prom-client shows a metric without labels as 0 until it is first set
    if (labelNames.length === 0) this.cell({} as Record<L, string>);
  }

  inc(labels: Record<L, string>, by = 1): void {
    this.add(this.cell(labels), by);
  }

  /** The value of one label set (made, at 0, the first time: from then on it is in json()). */
  cell(labels: Record<L, string>): Cell<L> {
    let key = '';
    for (const n of this.labelNames) key += `${labels[n]}\u0000`;
    let v = this.values.get(key);
    if (!v) {
      const copy = {} as Record<L, string>;
      for (const n of this.labelNames) copy[n] = labels[n];
      v = { value: 0, labels: copy };
      this.values.set(key, v);
    }
    return v;
  }

  /** Add to a cell of this metric's (cell()). */
  add(c: Cell<L>, by: number): void {
    if (this.type === 'counter' && !(by >= 0))
      throw new TzorpError('INTERNAL', `${this.name}: a counter only goes up`);
    c.value += by;
  }

  /** A gauge's value for one label set. */
  set(labels: Record<L, string>, value: number): void {
    if (this.type !== 'gauge') throw new TzorpError('INTERNAL', `${this.name}: only a gauge is set`);
    this.cell(labels).value = value;
  }

  dec(labels: Record<L, string>, by = 1): void {
    this.inc(labels, -by);
  }

  json(): MetricJson {
    return {
      help: this.help,
      name: this.name,
      type: this.type,
      values: [...this.values.values()].map((v) => ({ value: v.value, labels: { ...v.labels } })),
      aggregator: 'sum',
    };
  }
}
