/**
 * One search split over several threads (`daxlab explore --jobs N`): every worker walks the state
 * space depth-first from the root, in its own order of threads, and claims each state it reaches
 * in one visited table in shared memory; a state another worker claimed first is not expanded
 * again. Every reachable state is still expanded exactly once (by the worker that claimed it),
 * so states and transitions add up to what one thread finds; only which worker finds what, and
 * with stopAtFirst the finding itself, depend on timing.
 */

const FLAGS = 2;
const STOP = 0;
const STATES = 1;

/** The most states a shared search can be asked for (its table: 2^27 slots of 8 bytes, 1 GiB). */
export const MAX_SHARED_STATES = 2 ** 26;

/** The buffer the workers of one search share: two counters and a table of 64-bit keys. */
export function createExploreShare(maxStates: number): SharedArrayBuffer {
  if (maxStates > MAX_SHARED_STATES) throw new RangeError(`a shared search holds at most ${MAX_SHARED_STATES} states (asked for ${maxStates})`);
  let slots = 1 << 16;
  while (slots < maxStates * 2) slots *= 2;
  return new SharedArrayBuffer(8 * FLAGS + 8 * slots);
}

/** States claimed so far by all the workers of a shared search. */
export function exploreShareStates(buffer: SharedArrayBuffer): number {
  return new SharedVisited(buffer).states;
}

/** A worker's part of a shared search (ExploreOptions.share). */
export interface ExploreShare {
  /** from createExploreShare(), the same for every worker of the search */
  readonly buffer: SharedArrayBuffer;
  /** 0 … workers - 1: decides the order this worker tries threads in */
  readonly worker: number;
  readonly workers: number;
}

/** The visited table and counters of a shared search, seen from one worker. */
export class SharedVisited {
  private readonly flags: Int32Array;
  private readonly keys: BigUint64Array;
  private readonly mask: number;

  constructor(buffer: SharedArrayBuffer) {
    this.flags = new Int32Array(buffer, 0, FLAGS * 2);
    this.keys = new BigUint64Array(buffer, 8 * FLAGS);
    this.mask = this.keys.length - 1;
  }

  /** Claim a state: 'new' for the one worker that reaches it first, 'seen' for everyone after. */
  visit(key: readonly [number, number]): 'new' | 'seen' {
    const [hi, lo] = key;
    // 0 marks an empty slot
    const k = (BigInt(hi) << 32n) | BigInt(lo) || 1n;
    for (let i = lo & this.mask; ; i = (i + 1) & this.mask) {
      const had = Atomics.compareExchange(this.keys, i, 0n, k);
      if (had === 0n) {
        Atomics.add(this.flags, STATES, 1);
        return 'new';
      }
      if (had === k) return 'seen';
    }
  }

  /** States claimed by all workers so far. */
  get states(): number {
    return Atomics.load(this.flags, STATES);
  }

  /** Tell every worker to stop (a finding under stopAtFirst, or the state limit). */
  stop(): void {
    Atomics.store(this.flags, STOP, 1);
  }

  get stopped(): boolean {
    return Atomics.load(this.flags, STOP) !== 0;
  }
}

/** The order worker w of n tries the runnable threads in: odd workers reverse, then rotate. */
export function workerOrder(runnable: readonly number[], worker: number): readonly number[] {
  if (worker === 0 || runnable.length < 2) return runnable;
  const base = worker % 2 === 1 ? [...runnable].reverse() : [...runnable];
  const r = Math.floor(worker / 2) % base.length;
  return r === 0 ? base : [...base.slice(r), ...base.slice(0, r)];
}
