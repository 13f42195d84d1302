/**
 * A snapshot of an object graph that can be written back into the same objects: the explorer
 * takes one of a session right after setup (when no operation is in flight, so no generator
 * holds state the graph does not show) and, instead of opening a new kernel and running setup
 * again for every replay, puts a finished session back to that point.
 *
 * Every object reachable from the root is recorded shallowly (its own enumerable fields, an
 * array's elements, a map's entries, a set's members, a typed array's contents) and restored in
 * place, in the recorded order (the state hash and the kernel's own iteration see the same
 * order as in a fresh session); objects created after the snapshot are simply no longer
 * reachable. Not recorded: functions (kept by reference), RxJS subscribers and subjects (the
 * bus wiring, fixed once a session is open), and the roots' `skip` objects (the DI container
 * and the scenario, never written after the kernel is built). A generator anywhere in the graph
 * makes the snapshot impossible (`take` returns null): its suspended frame is state no field
 * shows.
 */
export class Memento {
  private constructor(private readonly records: readonly Rec[]) {}

  /** Record everything reachable from `root`, or null when the graph holds a live generator. */
  static take(root: object, skip: readonly unknown[]): Memento | null {
    const seen = new Set<object>(skip.filter((x): x is object => typeof x === 'object' && x !== null));
    const records: Rec[] = [];
    const stack: object[] = [root];
    const visit = (v: unknown): void => {
      if (typeof v === 'object' && v !== null && !seen.has(v)) stack.push(v);
    };
    while (stack.length > 0) {
      const o = stack.pop()!;
      if (seen.has(o)) continue;
      seen.add(o);
      if (Object.prototype.toString.call(o) === '[object Generator]') return null;
      if (ArrayBuffer.isView(o)) {
        const a = o as unknown as { slice(): ArrayBufferView };
        records.push({ kind: 'typed', o, data: a.slice() });
        continue;
      }
      if (Array.isArray(o)) {
        records.push({ kind: 'array', o, data: o.slice() });
        for (const x of o) visit(x);
        continue;
      }
      if (o instanceof Map) {
        const data = [...o.entries()];
        records.push({ kind: 'map', o, data });
        for (const [key, val] of data) {
          visit(key);
          visit(val);
        }
        continue;
      }
      if (o instanceof Set) {
        const data = [...o];
        records.push({ kind: 'set', o, data });
        for (const x of data) visit(x);
        continue;
      }
      const rec = o as Record<string, unknown>;
      if (typeof rec.unsubscribe === 'function' || typeof rec.subscribe === 'function') continue;
      if (Object.isFrozen(o)) {
        for (const key of Object.keys(rec)) visit(rec[key]);
        continue;
      }
      const keys = Object.keys(rec);
      const vals = keys.map((key) => rec[key]);
      records.push({ kind: 'object', o: rec, keys, vals });
      for (const x of vals) visit(x);
    }
    return new Memento(records);
  }

  /** Write every recorded object back to its recorded contents. */
  restore(): void {
    for (const r of this.records) {
      switch (r.kind) {
        case 'typed':
          (r.o as unknown as { set(a: ArrayBufferView): void }).set(r.data);
          break;
        case 'array': {
          const a = r.o;
          a.length = r.data.length;
          for (let i = 0; i < r.data.length; i++) a[i] = r.data[i];
          break;
        }
        case 'map':
          r.o.clear();
          for (const [key, val] of r.data) r.o.set(key, val);
          break;
        case 'set':
          r.o.clear();
          for (const x of r.data) r.o.add(x);
          break;
        case 'object': {
          const o = r.o;
          const now = Object.keys(o);
          // a field added or deleted since: rebuild the object so its key order is the recorded one
          if (now.length !== r.keys.length || now.some((key, i) => key !== r.keys[i])) for (const key of now) delete o[key];
          for (let i = 0; i < r.keys.length; i++) {
            const key = r.keys[i]!;
            if (o[key] !== r.vals[i]) o[key] = r.vals[i];
          }
          break;
        }
      }
    }
  }
}

type Rec =
  | { readonly kind: 'typed'; readonly o: ArrayBufferView; readonly data: ArrayBufferView }
  | { readonly kind: 'array'; readonly o: unknown[]; readonly data: readonly unknown[] }
  | { readonly kind: 'map'; readonly o: Map<unknown, unknown>; readonly data: readonly (readonly [unknown, unknown])[] }
  | { readonly kind: 'set'; readonly o: Set<unknown>; readonly data: readonly unknown[] }
  | { readonly kind: 'object'; readonly o: Record<string, unknown>; readonly keys: readonly string[]; readonly vals: readonly unknown[] };
