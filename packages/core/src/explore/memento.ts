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
        const keys = [...o.keys()];
        const vals = [...o.values()];
        records.push({ kind: 'map', o, keys, vals });
        for (const x of keys) visit(x);
        for (const x of vals) visit(x);
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
      records.push({ kind: 'object', o: rec, keys, vals, unchanged: fieldsCheck(keys) });
      for (const x of vals) visit(x);
    }
    return new Memento(records);
  }

  /**
   * Write every recorded object back to its recorded contents. Most records are unchanged since
   * the snapshot, so each is compared first (without allocating) and written only when it differs.
   */
  restore(): void {
    for (const r of this.records) {
      switch (r.kind) {
        case 'typed':
          // a memcpy: as cheap as comparing
          (r.o as unknown as { set(a: ArrayBufferView): void }).set(r.data);
          break;
        case 'array': {
          const a = r.o;
          const data = r.data;
          if (a.length !== data.length) a.length = data.length;
          for (let i = 0; i < data.length; i++) if (a[i] !== data[i]) a[i] = data[i];
          break;
        }
        case 'map':
          if (!sameMap(r.o, r.keys, r.vals)) {
            r.o.clear();
            for (let i = 0; i < r.keys.length; i++) r.o.set(r.keys[i], r.vals[i]);
          }
          break;
        case 'set':
          if (!sameSet(r.o, r.data)) {
            r.o.clear();
            for (const x of r.data) r.o.add(x);
          }
          break;
        case 'object': {
          const o = r.o;
          if (!sameKeys(o, r.keys) && !sameArray(Object.keys(o), r.keys)) {
            // a field added or deleted since: rebuild the object so its key order is the recorded one
            for (const key of Object.keys(o)) delete o[key];
            for (let i = 0; i < r.keys.length; i++) o[r.keys[i]!] = r.vals[i];
            break;
          }
          if (r.unchanged(o, r.vals)) break;
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

/** Same size, same entries in the same order (SameValueZero keys as the map compares them). */
function sameMap(m: Map<unknown, unknown>, keys: readonly unknown[], vals: readonly unknown[]): boolean {
  if (m.size !== keys.length) return false;
  let i = 0;
  for (const key of m.keys()) {
    if (key !== keys[i] && !(key !== key && keys[i] !== keys[i])) return false;
    i++;
  }
  i = 0;
  for (const val of m.values()) {
    if (val !== vals[i] && !(val !== val && vals[i] !== vals[i])) return false;
    i++;
  }
  return true;
}

function sameSet(s: Set<unknown>, data: readonly unknown[]): boolean {
  if (s.size !== data.length) return false;
  let i = 0;
  for (const x of s) {
    if (x !== data[i] && !(x !== x && data[i] !== data[i])) return false;
    i++;
  }
  return true;
}

type FieldsCheck = (o: Record<string, unknown>, vals: readonly unknown[]) => boolean;

const fieldsChecks = new Map<string, FieldsCheck>();

/**
 * `(o, vals) => o[keys[0]] === vals[0] && …` as code with the keys written out, one function per
 * key list (shared by the objects of one class). Why: one loop comparing ~100 kinds of object
 * through computed keys is a megamorphic load per field (measured: 3× slower than this); here each
 * key list gets its own property-access sites that see one or a few shapes. The keys reach the
 * source only as JSON string literals.
 */
function fieldsCheck(keys: readonly string[]): FieldsCheck {
  const id = JSON.stringify(keys);
  let check = fieldsChecks.get(id);
  if (check === undefined) {
    const body = keys.map((key, i) => `o[${JSON.stringify(key)}] === v[${i}]`).join(' && ') || 'true';
    check = new Function('o', 'v', `return ${body};`) as FieldsCheck;
    fieldsChecks.set(id, check);
  }
  return check;
}

function sameArray(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether the object's own enumerable keys are exactly `keys`, in order. `for…in` does not
 * allocate the key array; it also lists inherited enumerable keys, which makes it disagree (the
 * caller then takes the slow, exact path).
 */
function sameKeys(o: object, keys: readonly string[]): boolean {
  let i = 0;
  for (const key in o) {
    if (key !== keys[i]) return false;
    i++;
  }
  return i === keys.length;
}

type Rec =
  | { readonly kind: 'typed'; readonly o: ArrayBufferView; readonly data: ArrayBufferView }
  | { readonly kind: 'array'; readonly o: unknown[]; readonly data: readonly unknown[] }
  | { readonly kind: 'map'; readonly o: Map<unknown, unknown>; readonly keys: readonly unknown[]; readonly vals: readonly unknown[] }
  | { readonly kind: 'set'; readonly o: Set<unknown>; readonly data: readonly unknown[] }
  | {
      readonly kind: 'object';
      readonly o: Record<string, unknown>;
      readonly keys: readonly string[];
      readonly vals: readonly unknown[];
      /** whether every recorded field still holds its recorded value (given the same key list) */
      readonly unchanged: FieldsCheck;
    };
