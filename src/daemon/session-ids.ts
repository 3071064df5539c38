// Zorp-style session ids `svc/<service>:<n>` (zorp-semantics.md 7.3), n counting per service from 1 and
// unique across all worker processes. The primary owns the counters and hands each worker blocks of
// numbers; a worker asks for its next block when the current one runs low, so taking an id is
// synchronous and needs no round trip in the common case. Ids are unique, not gap-free: a worker that
// exits leaves the rest of its block unused.
import { DEFAULTS } from '../defaults.ts';

export interface IdBlock {
  service: string;
  first: number;
  count: number;
}

export function sessionId(service: string, n: number): string {
  return `svc/${service}:${n}`;
}

/** Primary side: the next free number per service (kept across reloads, as Zorp's counter is). */
export class IdBlockAllocator {
  private readonly next = new Map<string, number>();

  constructor(private readonly blockSize: number = DEFAULTS.sessionIdBlockSize) {}

  allocate(service: string): IdBlock {
    const first = this.next.get(service) ?? 1;
    this.next.set(service, first + this.blockSize);
    return { service, first, count: this.blockSize };
  }
}

interface Pool {
  blocks: IdBlock[];
  requested: boolean;
  waiters: ((n: number) => void)[];
}

/** Worker side: takes numbers from its blocks; `request` asks the primary for one more block (the
 * answer comes back through `addBlock`). */
export class SessionIdSource {
  private readonly pools = new Map<string, Pool>();

  constructor(
    private readonly request: (service: string) => void,
    private readonly refillAt: number = DEFAULTS.sessionIdRefillAt,
  ) {}

  private pool(service: string): Pool {
    let p = this.pools.get(service);
    if (!p) {
      p = { blocks: [], requested: false, waiters: [] };
      this.pools.set(service, p);
    }
    return p;
  }

  private left(p: Pool): number {
    return p.blocks.reduce((s, b) => s + b.count, 0);
  }

  private askIfLow(service: string, p: Pool): void {
    if (!p.requested && this.left(p) <= this.refillAt) {
      p.requested = true;
      this.request(service);
    }
  }

  /** A number now, or null when the blocks are used up (then use `next`). */
  tryTake(service: string): number | null {
    const p = this.pool(service);
    const b = p.blocks[0];
    let n: number | null = null;
    if (b) {
      n = b.first++;
      if (--b.count === 0) p.blocks.shift();
    }
    this.askIfLow(service, p);
    return n;
  }

  /** A number, waiting for the primary's next block when none is left. */
  next(service: string): Promise<number> {
    const n = this.tryTake(service);
    if (n !== null) return Promise.resolve(n);
    return new Promise((resolve) => this.pool(service).waiters.push(resolve));
  }

  addBlock(block: IdBlock): void {
    const p = this.pool(block.service);
    p.requested = false;
    p.blocks.push({ ...block });
    while (p.waiters.length > 0 && p.blocks.length > 0) {
      const w = p.waiters.shift()!;
      const b = p.blocks[0]!;
      const n = b.first++;
      if (--b.count === 0) p.blocks.shift();
      w(n);
    }
    this.askIfLow(block.service, p);
  }
}
