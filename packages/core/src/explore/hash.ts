/**
 * 64-bit hashing for the explorer's visited-state table: a streaming hash with two independent
 * 32-bit lanes, and an open-addressing table of 64-bit keys. States are stored as their hash only
 * (hash compaction): with n states the chance that two distinct states share a key is about
 * n² / 2^65 (1e6 states: 3e-8).
 */

/** A streaming hash over 32-bit words, numbers and strings, with two independent lanes. */
export class Hash64 {
  private a = 0;
  private b = 0;

  constructor() {
    this.reset();
  }

  reset(): this {
    this.a = 0x811c9dc5 | 0;
    this.b = 0x9747b28c | 0;
    return this;
  }

  /** Whether nothing was mixed in since the last reset. */
  get empty(): boolean {
    return this.a === (0x811c9dc5 | 0) && this.b === (0x9747b28c | 0);
  }

  /**
   * The two lanes before the final avalanche: a stream hashed in pieces (`save`, then `resume`
   * and go on) ends in the same state as the stream hashed in one go.
   */
  save(out: Uint32Array, at: number): void {
    out[at] = this.a;
    out[at + 1] = this.b;
  }

  resume(from: Uint32Array, at: number): this {
    this.a = from[at]! | 0;
    this.b = from[at + 1]! | 0;
    return this;
  }

  /** Mix one 32-bit word into both lanes (lane a: murmur3 block mix; lane b: a multiply-xorshift). */
  u32(x: number): this {
    let k = Math.imul(x | 0, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    let h = this.a ^ k;
    h = (h << 13) | (h >>> 19);
    this.a = (Math.imul(h, 5) + 0xe6546b64) | 0;
    let m = Math.imul((x ^ (x >>> 16)) | 0, 0x85ebca6b);
    m ^= m >>> 13;
    let g = Math.imul(this.b ^ m, 0x27d4eb2d);
    g = (g + 0x165667b1) | 0;
    this.b = g ^ (g >>> 15);
    return this;
  }

  /** Any number: integers below 2^53 exactly (low and high words), others by their text. */
  num(x: number): this {
    // the common case (a count, a pfn, an index below 2^32) skips the split: same words as below
    if (x >>> 0 === x) return this.u32(0x6e756d00).u32(x).u32(0);
    if (Number.isSafeInteger(x)) {
      const hi = Math.floor(x / 0x100000000);
      return this.u32(0x6e756d00).u32(x - hi * 0x100000000).u32(hi);
    }
    return this.str(`#${String(x)}`);
  }

  str(s: string): this {
    this.u32(0x73747200 ^ s.length);
    let i = 0;
    for (; i + 1 < s.length; i += 2) this.u32((s.charCodeAt(i) << 16) | s.charCodeAt(i + 1));
    if (i < s.length) this.u32(s.charCodeAt(i));
    return this;
  }

  bool(v: boolean): this {
    return this.u32(v ? 0x74727565 : 0x66616c73);
  }

  /** A fixed tag word marking structure (object start, map, reference …). */
  tag(t: number): this {
    return this.u32(t);
  }

  /** The two lanes after a final avalanche (murmur3 fmix32), as unsigned 32-bit numbers. */
  digest(): [number, number] {
    return [fmix32(this.a ^ 0x2f4a7c15), fmix32(this.b ^ 0x63d1a9e7)];
  }
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A table of 64-bit keys (two 32-bit halves) with a small value per key (the fewest preemptions a
 * state was reached with), open addressing with linear probing.
 */
export class KeyTable {
  private hi: Uint32Array;
  private lo: Uint32Array;
  private val: Uint16Array;
  private used: Uint8Array;
  private count = 0;

  constructor(capacity = 1 << 12) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.hi = new Uint32Array(n);
    this.lo = new Uint32Array(n);
    this.val = new Uint16Array(n);
    this.used = new Uint8Array(n);
  }

  get size(): number {
    return this.count;
  }

  /**
   * Record that the state `key` was reached with `value`: 'new' the first time, 'better' when
   * `value` is lower than every earlier visit (the table keeps the lowest), else 'seen'.
   */
  visit(key: readonly [number, number], value = 0): 'new' | 'better' | 'seen' {
    if ((this.count + 1) * 2 > this.used.length) this.grow();
    const mask = this.used.length - 1;
    const [h, l] = key;
    let i = l & mask;
    for (; this.used[i]; i = (i + 1) & mask) {
      if (this.hi[i] === h && this.lo[i] === l) {
        if (value >= this.val[i]!) return 'seen';
        this.val[i] = value;
        return 'better';
      }
    }
    this.used[i] = 1;
    this.hi[i] = h;
    this.lo[i] = l;
    this.val[i] = Math.min(value, 0xffff);
    this.count++;
    return 'new';
  }

  private grow(): void {
    const { hi, lo, val, used } = this;
    const n = used.length * 2;
    this.hi = new Uint32Array(n);
    this.lo = new Uint32Array(n);
    this.val = new Uint16Array(n);
    this.used = new Uint8Array(n);
    this.count = 0;
    for (let i = 0; i < used.length; i++) if (used[i]) this.visit([hi[i]!, lo[i]!], val[i]!);
  }
}
