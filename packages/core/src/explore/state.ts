import type { Kernel } from '../kernel.js';
import { PageStore } from '../mm/pages.js';
import { Hash64 } from './hash.js';

const T_NULL = 0x6e756c6c;
const T_UNDEF = 0x756e6466;
const T_FN = 0x666e6374;
const T_SKIP = 0x736b6970;
const T_REF = 0x72656600;
const T_OBJ = 0x6f626a00;
const T_ARR = 0x61727200;
const T_MAP = 0x6d617000;
const T_SET = 0x73657400;
const T_TYPED = 0x74797000;
const T_PAGES = 0x70677300;

/**
 * Kernel fields that hold configuration or plumbing (the DI container, the event bus, the plugin
 * objects, the MMU constants, the feature set): fixed for the life of a run, so not state.
 */
const KERNEL_PLUMBING: ReadonlySet<string> = new Set([
  'container', 'bus', 'desc', 'version', 'features', 'mmu', 'populator', 'convention',
  'driverPlugins', 'fsPlugins', 'defaultDriver', 'defaultFs', 'currentThread',
]);

/**
 * Fields left out because the thread positions already carry what they decide. `wakeCounts`
 * (fs/dax.c's wake-up counters): a waiter only compares the count with the one it saw when it
 * went to sleep, and whether that comparison holds is hashed with the waiting thread.
 */
const DERIVED = new Set(['wakeCounts']);

/** Field name → its word, or SKIP_FIELD for a DERIVED field (one map lookup per field decides both). */
const codes = new Map<string, number>();
const SKIP_FIELD = -1;

/** A field name as one word (names repeat in every state: hash each once); SKIP_FIELD when not hashed. */
function fieldCode(name: string): number {
  let c = codes.get(name);
  if (c === undefined) {
    c = DERIVED.has(name) ? SKIP_FIELD : new Hash64().str(name).digest()[0];
    codes.set(name, c);
  }
  return c;
}

/** How the walk treats an object, decided once per prototype (see kindOf). */
const PLAIN = 0;
const INSTANCE = 1;
const ARRAY = 3;
const TYPED = 4;
const MAP = 5;
const SET = 6;
const PAGES = 7;
const SKIPPED = 8;
type Kind = typeof PLAIN | typeof INSTANCE | typeof ARRAY | typeof TYPED | typeof MAP | typeof SET | typeof PAGES | typeof SKIPPED;

const kinds = new WeakMap<object, Kind>();

/**
 * An object's kind. Object literals are PLAIN (their own `subscribe`/`unsubscribe` decide whether
 * they are an RxJS observer, checked each time); anything else is classified by its first
 * instance and remembered per prototype (a class's instances are all arrays, maps, RxJS
 * subscriptions … or none): one lookup instead of a chain of instanceof tests per object.
 */
function kindOf(o: object): Kind {
  const proto = Object.getPrototypeOf(o) as object | null;
  if (proto === Object.prototype || proto === null) return PLAIN;
  let kind = kinds.get(proto);
  if (kind === undefined) {
    const rec = o as Record<string, unknown>;
    if (o instanceof PageStore) kind = PAGES;
    else if (Array.isArray(o)) kind = ARRAY;
    else if (ArrayBuffer.isView(o)) kind = TYPED;
    else if (o instanceof Map) kind = MAP;
    else if (o instanceof Set) kind = SET;
    else if (typeof rec.unsubscribe === 'function' || typeof rec.subscribe === 'function') kind = SKIPPED;
    else kind = INSTANCE;
    kinds.set(proto, kind);
  }
  return kind;
}

/**
 * Whether keys are all numbers, not in ascending order: such a map or set is hashed sorted.
 * (Numbers already ascending, or any non-number key: hashed in iteration order.)
 */
function numericUnsorted(keys: Iterable<unknown>): boolean {
  let last = -Infinity;
  let sorted = true;
  for (const k of keys) {
    if (typeof k !== 'number') return false;
    if (k < last) sorted = false;
    last = k;
  }
  return !sorted;
}

/** Ids a walk may hand out (objects reachable from one kernel); each walk's ids start one span above the last. */
const ID_SPAN = 2 ** 20;
/** Objects remembered across walks before the id map is emptied (it keeps objects no longer reachable). */
const IDS_KEPT = 1 << 16;
/** The id of the kernel's plumbing objects (below every walk's base). */
const SKIP_ID = -1;

/**
 * A canonical hash of everything a kernel holds: it walks the kernel's object graph (every
 * object reachable from the Kernel, plugins' state included, private fields too), so state a
 * plugin or a later core change adds is hashed without the explorer knowing about it.
 *
 * Canonical means two kernels in the same state hash the same whatever path led there:
 * - maps and sets whose keys are all numbers (page tables by vpn, DAX entries by index, block
 *   maps, refcounts by block) are hashed in key order; every other map, set and array in its
 *   own order, because that order can decide behaviour (i_mmap's VMA order, FUSE's free-range
 *   FIFO), which errs on the safe side (equal states may hash apart, distinct ones never merge);
 * - object identity is kept: an object met again hashes as a reference to its first visit, so
 *   "these two VMAs are the same object" is part of the state;
 * - struct pages are hashed per pfn in pfn order, and a page still in the state its pgmap
 *   initialised it to hashes like a page nobody touched (materialising it changes nothing);
 *   page contents that are empty hash like no contents (reads return '' for both);
 * - functions (closures such as a pgmap's page_free op) and RxJS subscriptions are skipped.
 */
export class StateWalker {
  /**
   * Object → `base + id` of the walk that met it. Not emptied per walk: an empty Map grows
   * again through every size for the ~100 objects of each walk (measured: a quarter of the walk);
   * an entry below `base` is from an earlier walk and counts as not met.
   */
  private readonly ids = new Map<object, number>();
  private base = 0;
  private met = 0;
  /** the kernel's plumbing objects, hashed as a skip marker (kept in `ids` as SKIP_ID) */
  private readonly skip: object[] = [];

  constructor(private readonly k: Kernel) {
    const fields = k as unknown as Record<string, unknown>;
    for (const key of KERNEL_PLUMBING) {
      const v = fields[key];
      if (typeof v === 'object' && v !== null) this.skip.push(v);
    }
    for (const o of this.skip) this.ids.set(o, SKIP_ID);
  }

  /** Hash the kernel's whole state into `h`. */
  hashKernel(h: Hash64): void {
    if (this.ids.size > IDS_KEPT || this.base + ID_SPAN > Number.MAX_SAFE_INTEGER - ID_SPAN) {
      this.ids.clear();
      for (const o of this.skip) this.ids.set(o, SKIP_ID);
      this.base = 0;
    } else this.base += ID_SPAN;
    this.ids.set(this.k, this.base);
    this.met = 1;
    h.tag(T_OBJ);
    const fields = this.k as unknown as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      if (KERNEL_PLUMBING.has(key)) continue;
      this.field(h, key, fields[key]);
    }
  }

  private field(h: Hash64, key: string, v: unknown): void {
    if (typeof v === 'function') return;
    const code = fieldCode(key);
    if (code === SKIP_FIELD) return;
    h.u32(code);
    this.value(h, v);
  }

  private value(h: Hash64, v: unknown): void {
    switch (typeof v) {
      case 'number':
        h.num(v);
        return;
      case 'string':
        h.str(v);
        return;
      case 'boolean':
        h.bool(v);
        return;
      case 'undefined':
        h.tag(T_UNDEF);
        return;
      case 'bigint':
        h.str(`n${v.toString()}`);
        return;
      case 'function':
      case 'symbol':
        h.tag(T_FN);
        return;
    }
    if (v === null) {
      h.tag(T_NULL);
      return;
    }
    const o = v as object;
    const seen = this.ids.get(o);
    if (seen !== undefined) {
      if (seen === SKIP_ID) {
        h.tag(T_SKIP);
        return;
      }
      if (seen >= this.base) {
        h.tag(T_REF).u32(seen - this.base);
        return;
      }
    }
    if (this.met >= ID_SPAN) throw new Error(`the kernel graph has more than ${ID_SPAN} objects`);
    this.ids.set(o, this.base + this.met++);
    const kind = kindOf(o);
    if (kind === PLAIN || kind === INSTANCE) {
      const rec = o as Record<string, unknown>;
      if (kind === PLAIN && (typeof rec.unsubscribe === 'function' || typeof rec.subscribe === 'function')) {
        h.tag(T_SKIP);
        return;
      }
      this.fields(h, rec);
      return;
    }
    if (kind === PAGES) return this.pages(h, o as PageStore);
    if (kind === ARRAY && Array.isArray(o)) {
      h.tag(T_ARR).u32(o.length);
      for (const e of o) this.value(h, e);
      return;
    }
    if (kind === TYPED) {
      const a = o as unknown as ArrayLike<number>;
      h.tag(T_TYPED).u32(a.length);
      for (let i = 0; i < a.length; i++) h.num(a[i]!);
      return;
    }
    if (kind === MAP) {
      const m = o as Map<unknown, unknown>;
      h.tag(T_MAP).u32(m.size);
      if (numericUnsorted(m.keys())) {
        for (const [key, val] of [...m.entries()].sort((x, y) => (x[0] as number) - (y[0] as number))) {
          h.num(key as number);
          this.value(h, val);
        }
      } else {
        for (const [key, val] of m) {
          this.value(h, key);
          this.value(h, val);
        }
      }
      return;
    }
    if (kind === SET) {
      const set = o as Set<unknown>;
      h.tag(T_SET).u32(set.size);
      const items = numericUnsorted(set.values()) ? [...(set as Set<number>)].sort((x, y) => x - y) : set;
      for (const x of items) this.value(h, x);
      return;
    }
    if (kind === SKIPPED) {
      h.tag(T_SKIP);
      return;
    }
    // an ARRAY-prototype object that is no array
    this.fields(h, o as Record<string, unknown>);
  }

  /**
   * An object's own enumerable fields, by index over Object.keys(): a for…in with rec[key] was as
   * fast on Node 20 without the key array, but Node 24's V8 deoptimised the walk on it ~3,000
   * times a search ("unexpected name in keyed access"), doubling the search's time.
   */
  private fields(h: Hash64, rec: Record<string, unknown>): void {
    h.tag(T_OBJ);
    const keys = Object.keys(rec);
    for (let i = 0; i < keys.length; i++) this.field(h, keys[i]!, rec[keys[i]!]);
  }

  /** struct pages in pfn order, skipping pages still as their pgmap initialised them. */
  private pages(h: Hash64, p: PageStore): void {
    h.tag(T_PAGES);
    for (const pfn of p.touched(0, Number.MAX_SAFE_INTEGER)) {
      const s = p.slot(pfn);
      const init = this.k.memremap.initialPage(pfn);
      if (
        p.rc[s] === init.rc && p.flags[s] === init.flags && p.order[s] === init.order && p.head[s] === init.headPfn && p.pgmap[s] === init.pgmap &&
        p.mapcount[s] === 0 && p.pincount[s] === 0 && p.mapping[s] === 0 && p.index[s] === 0 && p.share[s] === 0 && p.ptes[s] === 0 && p.gup[s] === 0
      ) continue;
      h.num(pfn).num(p.rc[s]!).num(p.mapcount[s]!).num(p.pincount[s]!).num(p.flags[s]!).num(p.order[s]!).num(p.head[s]!);
      h.num(p.mapping[s]!).num(p.index[s]!).num(p.share[s]!).num(p.pgmap[s]!).num(p.ptes[s]!).num(p.gup[s]!);
    }
    const data = [...p.data.entries()].filter(([, d]) => d !== '').sort((x, y) => x[0] - y[0]);
    h.u32(data.length);
    for (const [pfn, d] of data) h.num(pfn).str(d);
  }
}
