import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../kernel.js';
import { testArch } from '../testing.js';
import { Hash64 } from './hash.js';
import { StateWalker } from './state.js';

const KiB = 1024;

function kernel(pages = 2): Kernel {
  const k = createKernel({ arch: testArch(), kernel: 'v6.15' });
  k.run(k.mmap({ anon: true, length: pages * 4 * KiB, write: true, as: 'buf' }));
  return k;
}

const hash = (k: Kernel): string => {
  const h = new Hash64();
  new StateWalker(k).hashKernel(h);
  return h.digest().join(':');
};

describe('StateWalker: a canonical hash of the kernel state', () => {
  it('two kernels built by the same operations hash the same; one more write does not', () => {
    const a = kernel();
    const b = kernel();
    for (const k of [a, b]) k.run(k.write({ map: 'buf', page: 0, data: 'A' }));
    expect(hash(a)).toBe(hash(b));
    b.run(b.write({ map: 'buf', page: 1, data: 'B' }));
    expect(hash(a)).not.toBe(hash(b));
  });

  it('page contents, refcounts and PTE bits are state', () => {
    const a = kernel();
    a.run(a.write({ map: 'buf', page: 0, data: 'A' }));
    const before = hash(a);
    const pfn = a.pfnOf({ map: 'buf', page: 0 })!;
    a.pages.data.set(pfn, 'Z');
    expect(hash(a)).not.toBe(before);
    a.pages.data.set(pfn, 'A');
    expect(hash(a)).toBe(before);
    a.folios.get(pfn, 1, 'test');
    expect(hash(a)).not.toBe(before);
    a.folios.put(pfn, 1, 'test');
    expect(hash(a)).toBe(before);
    const leaf = a.vm.lookup(a.process('init'), a.map('buf').start)!;
    leaf.pte.write = false;
    expect(hash(a)).not.toBe(before);
  });

  it('looking at a page (materialising its struct page) changes nothing', () => {
    const a = kernel();
    const before = hash(a);
    const untouched = a.ram.allocAnon(1, '');
    expect(untouched).not.toBeNull();
    const after = hash(a);
    expect(after).not.toBe(before);
    // reading another page's refcount creates its slot with its initial state: same hash
    a.refcount(untouched! + 100);
    expect(a.pages.has(untouched! + 100)).toBe(true);
    expect(hash(a)).toBe(after);
  });

  it('page tables are keyed by address, not by the order entries were installed in', () => {
    const a = kernel();
    const b = kernel();
    const pte = (k: Kernel, pfn: number) => k.faults.pte(pfn, 'pte', { write: true });
    const start = a.map('buf').start;
    a.vm.install(a.process('init'), start, pte(a, 5000));
    a.vm.install(a.process('init'), start + 1, pte(a, 5001));
    b.vm.install(b.process('init'), start + 1, pte(b, 5001));
    b.vm.install(b.process('init'), start, pte(b, 5000));
    expect(hash(a)).toBe(hash(b));
  });

  it('object identity is state: one VMA shared by two lists differs from two equal VMAs', () => {
    const a = kernel();
    const b = kernel();
    const vmaA = a.map('buf');
    const vmaB = b.map('buf');
    a.process('init').vmas.push(vmaA);
    b.process('init').vmas.push({ ...vmaB });
    expect(hash(a)).not.toBe(hash(b));
  });

  it('one walker, many walks: ids from an earlier walk never leak into the next (the same state hashes the same, however many objects came and went)', () => {
    const k = kernel();
    const walker = new StateWalker(k);
    const walk = (): string => {
      const h = new Hash64();
      walker.hashKernel(h);
      return h.digest().join(':');
    };
    const first = walk();
    expect(walk()).toBe(first);
    // objects made and dropped between walks (a mapping and its page tables): past 65,536 objects
    // remembered the walker empties its id map, which must not change a digest either
    // (300 × 256 pages: the map passes that size once, measured)
    for (let i = 0; i < 300; i++) {
      k.run(k.mmap({ anon: true, length: 256 * 4 * KiB, write: true, as: 'tmp' }));
      for (let p = 0; p < 256; p++) k.run(k.write({ map: 'tmp', page: p, data: 'x' }));
      expect(walk()).not.toBe(first);
      k.run(k.munmap({ map: 'tmp' }));
    }
    expect(walk()).toBe(hash(k));
  });
});

