// Subject and Subscription from their own modules: under Node, `import 'rxjs'` loads the CommonJS
// index with every operator (~120 ms of start-up, again in each worker thread); these are the
// same modules (and classes) the index re-exports.
import type { Observable } from 'rxjs';
import { Subject } from 'rxjs/internal/Subject';
import { Subscription } from 'rxjs/internal/Subscription';

export interface Envelope<M, K extends keyof M = keyof M> {
  readonly seq: number;
  readonly type: K;
  readonly data: M[K];
}

/**
 * A typed, synchronous, ordered event bus on RxJS subjects. It is for observers (tracers,
 * invariants, the explorer): the model never depends on a listener, so delivery can be muted
 * (`muted`) without changing what the kernel does.
 *
 * - One Subject per event type plus a catch-all, so listeners never filter.
 * - Re-entrant emits (a listener emitting) are queued: every listener sees one global FIFO order
 *   (a bare Subject delivers depth-first, which reorders events).
 * - Listener exceptions are captured in `errors` synchronously instead of being re-thrown later
 *   on a timer, which is what RxJS does with subscriber errors.
 * - `wants(type)` lets hot paths skip building an event nobody listens to (it is then not
 *   numbered either: `seq` counts the events emitted, so two runs number their events alike when
 *   the same types are observed — a traced run and its traced replay do).
 */
export class EventBus<M extends object> {
  private readonly byType = new Map<keyof M, Subject<Envelope<M>>>();
  private readonly any = new Subject<Envelope<M>>();
  private readonly queue: Envelope<M>[] = [];
  private draining = false;
  private seq = 0;
  readonly errors: unknown[] = [];
  /**
   * While true, events are numbered but delivered to no one: the explorer replaying a schedule
   * whose events were already observed (explore/explorer.ts).
   */
  muted = false;

  get sequence(): number {
    return this.seq;
  }

  wants(type: keyof M): boolean {
    return !this.muted && (this.any.observed || (this.byType.get(type)?.observed ?? false));
  }

  emit<K extends keyof M>(type: K, data: M[K]): void {
    const seq = ++this.seq;
    if (this.muted) return;
    const typed = this.byType.get(type);
    if (!this.any.observed && !typed?.observed) return;
    const e = { seq, type, data } as Envelope<M>;
    if (this.draining) {
      this.queue.push(e);
      return;
    }
    this.draining = true;
    try {
      this.deliver(e);
      for (let i = 0; i < this.queue.length; i++) this.deliver(this.queue[i]!);
    } finally {
      // setting an array's length is a runtime call even when it changes nothing
      if (this.queue.length > 0) this.queue.length = 0;
      this.draining = false;
    }
  }

  /** Catch-all observers (tracers) see an event before typed listeners (invariants) react to it. */
  private deliver(e: Envelope<M>): void {
    if (this.any.observed) this.any.next(e);
    this.byType.get(e.type)?.next(e);
  }

  on<K extends keyof M>(type: K): Observable<Envelope<M, K>> {
    let s = this.byType.get(type);
    if (!s) this.byType.set(type, (s = new Subject<Envelope<M>>()));
    return s.asObservable() as unknown as Observable<Envelope<M, K>>;
  }

  all(): Observable<Envelope<M>> {
    return this.any.asObservable();
  }

  /** Subscribe with exceptions captured into `errors`; the subscription joins `bag`. */
  listen<K extends keyof M>(type: K, handler: (e: Envelope<M, K>) => void, bag: Subscription): void {
    bag.add(
      this.on(type).subscribe((e) => {
        try {
          handler(e);
        } catch (err) {
          this.errors.push(err);
        }
      }),
    );
  }

  listenAll(handler: (e: Envelope<M>) => void, bag: Subscription): void {
    bag.add(
      this.any.subscribe((e) => {
        try {
          handler(e);
        } catch (err) {
          this.errors.push(err);
        }
      }),
    );
  }

  complete(): void {
    this.any.complete();
    for (const s of this.byType.values()) s.complete();
  }
}

export { Subscription };
