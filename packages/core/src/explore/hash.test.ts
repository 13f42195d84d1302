import { describe, expect, it } from 'vitest';
import { Hash64, KeyTable } from './hash.js';

const digest = (f: (h: Hash64) => void): string => {
  const h = new Hash64();
  f(h);
  return h.digest().join(':');
};

describe('Hash64', () => {
  it('is a function of its input only', () => {
    expect(digest((h) => h.str('tlb_finish_mmu(init)').num(16777218))).toBe(digest((h) => h.str('tlb_finish_mmu(init)').num(16777218)));
    expect(new Hash64().u32(1).reset().u32(2).digest()).toEqual(new Hash64().u32(2).digest());
  });

  it('tells apart inputs that differ anywhere, in order or in type', () => {
    const seen = new Set([
      digest((h) => h.num(1).num(2)),
      digest((h) => h.num(2).num(1)),
      digest((h) => h.str('1')),
      digest((h) => h.num(1)),
      digest((h) => h.bool(true)),
      digest((h) => h.str('ab')),
      digest((h) => h.str('ab').str('')),
      digest((h) => h.str('a').str('b')),
      // integers above 2^32 keep their high word; non-integers and infinities their text
      digest((h) => h.num(2 ** 40 + 1)),
      digest((h) => h.num(1 + 2 ** 32 * 2 ** 8)),
      digest((h) => h.num(1.5)),
      digest((h) => h.num(Number.POSITIVE_INFINITY)),
      digest((h) => h.num(-1)),
    ]);
    expect(seen.size).toBe(12); // 2^40 + 1 and 1 + 2^40 are the same number
  });

  it('has no collisions among a hundred thousand small states', () => {
    const keys = new Set<string>();
    for (let a = 0; a < 1000; a++) for (let b = 0; b < 100; b++) keys.add(digest((h) => h.num(a).num(b)));
    expect(keys.size).toBe(100_000);
  });
});

describe('KeyTable', () => {
  it('reports new, seen and better (a lower value) visits, and grows', () => {
    const t = new KeyTable(4);
    expect(t.visit([1, 2], 3)).toBe('new');
    expect(t.visit([1, 2], 3)).toBe('seen');
    expect(t.visit([1, 2], 5)).toBe('seen');
    expect(t.visit([1, 2], 1)).toBe('better');
    expect(t.visit([1, 2], 1)).toBe('seen');
    expect(t.visit([2, 1])).toBe('new');
    for (let i = 0; i < 5000; i++) t.visit([i, i * 7919]);
    expect(t.size).toBe(5002);
    expect(t.visit([1, 2], 1)).toBe('seen');
    expect(t.visit([4999, 4999 * 7919])).toBe('seen');
  });
});
