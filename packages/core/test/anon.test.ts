import { describe, expect, it } from 'vitest';
import { createKernel, GUP_PIN_COUNTING_BIAS, Monitor, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';

function kernel(version: string, features: Record<string, unknown> = {}): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), kernel: version, features });
  return { k, m: new Monitor(k) };
}

describe('anonymous memory, GUP and fork', () => {
  it('GUP_PIN_COUNTING_BIAS is 1024 (include/linux/mm.h)', () => {
    expect(GUP_PIN_COUNTING_BIAS).toBe(1024);
  });

  it('a write fault allocates an exclusive anon page with rc 1 and mapcount 1', () => {
    const { k } = kernel('latest');
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    expect(k.refcount(pfn)).toBe(1);
    expect(k.mapcount(pfn)).toBe(1);
    expect(k.isAnon(pfn)).toBe(true);
    expect(k.anonExclusive(pfn)).toBe(true);
  });

  it('a read fault of anon memory maps the zero page without a reference', () => {
    const { k } = kernel('latest');
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('');
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(k.zeroPfn);
  });

  it('FOLL_PIN on a small folio raises _refcount by 1024, FOLL_GET by 1; unpin restores it', () => {
    const { k } = kernel('latest');
    k.run(k.mmap({ anon: true, length: 8192, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'p' }, true));
    expect(k.refcount(pfn)).toBe(1 + 1024);
    expect(k.maybePinned(pfn)).toBe(true);
    k.run(k.gup({ map: 'm', page: 0, as: 'g' }, false));
    expect(k.refcount(pfn)).toBe(1 + 1024 + 1);
    k.run(k.unpin({ name: 'p' }));
    k.run(k.put({ name: 'g' }));
    expect(k.refcount(pfn)).toBe(1);
    expect(k.maybePinned(pfn)).toBe(false);
  });

  it('before pin accounting (v5.4, foll-pin off) a DMA pin is a get_user_pages() reference: +1, not detectable, no MMF_HAS_PINNED', () => {
    const counts = (version: string, features: Record<string, unknown> = {}): [number, boolean, boolean, number] => {
      const { k } = kernel(version, features);
      k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
      k.run(k.write({ map: 'm', page: 0, data: 'A' }));
      const pfn = k.pfnOf({ map: 'm', page: 0 })!;
      k.run(k.gup({ map: 'm', page: 0, write: true, as: 'p' }, true));
      const pinned: [number, boolean, boolean] = [k.refcount(pfn), k.maybePinned(pfn), k.process('init').hasPinned];
      k.run(k.unpin({ name: 'p' }));
      return [...pinned, k.refcount(pfn)];
    };
    // 1 (the mapping's reference) + 1, and unpin gives back exactly what the pin took
    expect(counts('v5.4')).toEqual([2, false, false, 1]);
    // v5.10: GUP_PIN_COUNTING_BIAS (3faa52c03f44, v5.7) and mm->has_pinned (v5.9)
    expect(counts('v5.10')).toEqual([1025, true, true, 1]);
    // the feature alone decides it, on any release
    expect(counts('latest', { 'foll-pin': false })).toEqual([2, false, false, 1]);
    expect(counts('v5.4', { 'foll-pin': true })).toEqual([1025, true, true, 1]);
  });

  it('the first FOLL_PIN sets MMF_HAS_PINNED and it stays set after unpin (not inherited by fork)', () => {
    const { k } = kernel('latest');
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'p' }, true));
    k.run(k.unpin({ name: 'p' }));
    expect(k.process('init').hasPinned).toBe(true);
    k.run(k.fork({ as: 'child' }));
    expect(k.process('child').hasPinned).toBe(false);
  });

  // seed 002: the "GUP after fork" divergence
  const gupAfterFork = (k: Kernel): void => {
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.gup({ map: 'm', page: 0, write: true, longterm: true, as: 'dma' }, true));
    k.run(k.fork({ as: 'child' }));
    k.run(k.write({ map: 'm', page: 0, data: 'B' }));
    k.run(k.dmaWrite({ pin: 'dma', data: 'D' }));
  };

  it('without early COW (v5.4), the parent write after fork moves its page away from the pin', () => {
    const { k, m } = kernel('v5.4');
    gupAfterFork(k);
    expect(m.violations.map((v) => v.invariant)).toEqual(['pinned-page-diverged']);
    // the parent never sees the DMA; the child, which kept the pinned page, does
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('B');
    expect(k.run(k.read({ map: 'm', page: 0, process: 'child' }))).toBe('D');
  });

  it('with early COW (v5.10, fork-cow-pinned) the child gets the copy and the parent keeps the pinned page', () => {
    for (const v of ['v5.10', 'v6.1', 'latest']) {
      const { k, m } = kernel(v);
      gupAfterFork(k);
      expect(m.violations, v).toEqual([]);
      expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('D');
      expect(k.run(k.read({ map: 'm', page: 0, process: 'child' }))).toBe('A');
    }
  });

  it('fork shares an unpinned anon page: rc 2, mapcount 2, both PTEs read-only', () => {
    const { k } = kernel('latest');
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.fork({ as: 'c' }));
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    expect(k.pfnOf({ map: 'm', page: 0, process: 'c' })).toBe(pfn);
    expect(k.refcount(pfn)).toBe(2);
    expect(k.mapcount(pfn)).toBe(2);
    expect(k.anonExclusive(pfn)).toBe(false);
    // the child's write copies; the parent's page drops back to rc 1 after the TLB flush
    k.run(k.write({ map: 'm', page: 0, data: 'C', process: 'c' }));
    expect(k.refcount(pfn)).toBe(1);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('A');
  });

  it('early COW that cannot allocate fails the whole fork with ENOMEM', () => {
    const { k } = kernel('latest');
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    k.ram.limit = k.ram.live.size;
    expect(() => k.run(k.fork({ as: 'child' }))).toThrow(/ENOMEM/);
  });

  it('releasing a FOLL_GET reference with unpin_user_page() underflows the refcount', () => {
    const { k, m } = kernel('latest');
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.gup({ map: 'm', page: 0, as: 'g' }, false));
    k.run(k.unpin({ name: 'g' }));
    expect(m.violations.map((v) => v.invariant)).toEqual(['refcount-underflow']);
  });

  it('a populator oops on probe ends in kernel-oops', async () => {
    const { crashingArch } = await import('../src/testing.js');
    const k = createKernel({ arch: crashingArch(), kernel: 'latest' });
    const m = new Monitor(k);
    expect(() => k.memremap.memremapPages({ device: 'd', type: 'generic', size: 2 * 1024 * 1024, vmemmapShift: 9, altmapPfns: 0 })).toThrow(/paging request/);
    expect(m.violations.map((v) => v.invariant)).toEqual(['kernel-oops']);
  });
});
