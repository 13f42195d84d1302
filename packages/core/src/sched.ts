/**
 * Kernel operations are generators that yield at their real preemption points, so one
 * operation can be interleaved with others (the scenario scheduler, the explorer) or simply
 * run to completion (the direct API).
 */
export type Yield =
  /**
   * A point where another thread may run (lock taken, TLB flush pending, ...). `holds`, when
   * given, reports what the operation keeps across this point that the kernel's own state does
   * not show (e.g. whether the PTE GUP-fast read is still the one installed): the explorer
   * hashes it with the thread's position, so two threads that differ only there are not merged.
   */
  | { readonly kind: 'preempt'; readonly point: string; readonly holds?: () => number | string | boolean }
  /** The thread sleeps until `ready()` holds (a wait queue, a lock). */
  | { readonly kind: 'block'; readonly reason: string; readonly ready: () => boolean };

export type Op<T = void> = Generator<Yield, T, void>;

export function preempt(point: string, holds?: () => number | string | boolean): Yield {
  return holds ? { kind: 'preempt', point, holds } : { kind: 'preempt', point };
}

/** Sleep until `ready()` holds; a no-op when it already does. */
export function* waitUntil(reason: string, ready: () => boolean): Op {
  while (!ready()) yield { kind: 'block', reason, ready };
}

/** An operation that cannot complete: it waits for something nobody will do. */
export class BlockedError extends Error {
  constructor(readonly reason: string) {
    super(`blocked: ${reason}`);
    this.name = 'BlockedError';
  }
}

/** Run an operation alone, to completion. A wait that is not already satisfied can never be. */
export function runToCompletion<T>(op: Op<T>): T {
  for (;;) {
    const r = op.next();
    if (r.done) return r.value;
    const y = r.value;
    // The thread sleeps forever: abandon the generator without unwinding it (its locks stay
    // held, as a task stuck in the kernel keeps them).
    if (y.kind === 'block' && !y.ready()) throw new BlockedError(y.reason);
  }
}

/**
 * A reader/writer semaphore (i_rwsem, invalidate_lock / XFS MMAPLOCK). Owners are thread ids,
 * so a trace can say who holds what.
 */
export class RwSem {
  private readers = new Map<number, number>();
  private writer: number | null = null;

  constructor(
    readonly name: string,
    private readonly current: () => number,
  ) {}

  get heldExclusive(): boolean {
    return this.writer !== null;
  }
  get readerCount(): number {
    let n = 0;
    for (const c of this.readers.values()) n += c;
    return n;
  }

  *downWrite(): Op {
    yield preempt(`down_write(${this.name})`);
    yield* waitUntil(`down_write(${this.name})`, () => this.writer === null && this.readers.size === 0);
    this.writer = this.current();
  }

  upWrite(): void {
    if (this.writer === null) throw new Error(`up_write(${this.name}) without the lock held`);
    this.writer = null;
  }

  *downRead(): Op {
    yield preempt(`down_read(${this.name})`);
    yield* waitUntil(`down_read(${this.name})`, () => this.writer === null);
    const t = this.current();
    this.readers.set(t, (this.readers.get(t) ?? 0) + 1);
  }

  upRead(): void {
    const t = this.current();
    const n = this.readers.get(t);
    if (!n) throw new Error(`up_read(${this.name}) without the lock held`);
    if (n === 1) this.readers.delete(t);
    else this.readers.set(t, n - 1);
  }
}
