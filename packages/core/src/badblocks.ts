/**
 * A list of bad 512-byte sectors as block/badblocks.c keeps one: disjoint ranges, merged when
 * they touch (badblocks_set), split when part of one is cleared (badblocks_clear), and a check
 * that reports the first range overlapping a request whole, even where it starts before the
 * request (badblocks_check's first_bad / bad_sectors).
 *
 * The kernel holds pmem media errors at two levels: the nvdimm bus's list (drivers/nvdimm/badrange.c,
 * fed by address range scrub and machine checks) and the badblocks a namespace copies from it
 * when it is enabled (nvdimm_badblocks_populate()). The model keeps one list per kernel in
 * physical sectors (Kernel.badblocks): it outlives a namespace's disable and enable, as the bus's
 * list does, and a clear removes the sectors from both, as nvdimm_clear_poison() does.
 */
export class Badblocks {
  /** [start, end) in sectors, sorted, disjoint and not touching */
  private readonly ranges: [number, number][] = [];

  /** badblocks_set(): sectors [start, start + count) are bad. */
  set(start: number, count: number): void {
    if (count <= 0) return;
    let s = start;
    let e = start + count;
    const kept: [number, number][] = [];
    for (const [a, b] of this.ranges) {
      if (b < s || a > e) kept.push([a, b]);
      else [s, e] = [Math.min(s, a), Math.max(e, b)];
    }
    kept.push([s, e]);
    kept.sort((x, y) => x[0] - y[0]);
    this.ranges.splice(0, this.ranges.length, ...kept);
  }

  /** badblocks_check(): the first bad range overlapping [start, start + count), whole, or null. */
  check(start: number, count: number): { first: number; count: number } | null {
    const r = this.ranges.find(([a, b]) => a < start + count && b > start);
    return r ? { first: r[0], count: r[1] - r[0] } : null;
  }

  /** badblocks_clear(): sectors [start, start + count) are good again. */
  clear(start: number, count: number): void {
    const end = start + count;
    const kept: [number, number][] = [];
    for (const [a, b] of this.ranges) {
      if (b <= start || a >= end) { kept.push([a, b]); continue; }
      if (a < start) kept.push([a, start]);
      if (b > end) kept.push([end, b]);
    }
    this.ranges.splice(0, this.ranges.length, ...kept);
  }

  /** The ranges, first to last, as { first, count }. */
  *[Symbol.iterator](): IterableIterator<{ first: number; count: number }> {
    for (const [a, b] of this.ranges) yield { first: a, count: b - a };
  }

  /** How many bad sectors [start, start + count) holds. */
  countIn(start: number, count: number): number {
    const end = start + count;
    let n = 0;
    for (const [a, b] of this.ranges) n += Math.max(0, Math.min(b, end) - Math.max(a, start));
    return n;
  }
}
