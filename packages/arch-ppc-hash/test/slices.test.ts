import { createKernel, MiB, type Kernel } from '@daxlab/core';
import { errnoOf } from '@daxlab/core/testing';
import { describe, expect, it } from 'vitest';
import { ppcHash } from '../src/index.js';

// Address-space slices (arch/powerpc/mm/book3s64/slice.c, core mm/slices.ts) with 64K pages:
// user mappings start at 1 TiB, high slices are 1 TiB (SLICE_HIGH_SHIFT 40) = 2^24 base pages,
// a 16 MiB huge page is 256 of them.
const TIB_PAGES = 2 ** 24;

const kernelWithPool = (version = 'v6.6', pages = 2): Kernel => {
  const k = createKernel({ arch: ppcHash(), kernel: version });
  k.run(k.hugetlbPool({ size: 16 * MiB, pages }));
  return k;
};
const startOf = (k: Kernel, name: string, process = 'init'): number => k.processes.get(process)!.vmas.find((v) => v.name === name)!.start;
describe('ppc64 hash slices: a hugetlb mapping needs slices of its page size', () => {
  it('a 16 MiB hugetlb mapping skips the 1 TiB slice holding a 64K mapping, and the next 64K mapping skips the converted one', () => {
    const k = kernelWithPool();
    k.run(k.mmap({ anon: true, length: MiB, write: true, as: 'a' }));
    k.run(k.mmap({ anon: true, hugetlb: 16 * MiB, length: 16 * MiB, write: true, as: 'h' }));
    k.run(k.mmap({ anon: true, length: MiB, write: true, as: 'b' }));
    // a in slice 1 (64K), h converts the free slice 2, b goes on to slice 3
    expect([startOf(k, 'a'), startOf(k, 'h'), startOf(k, 'b')]).toEqual([TIB_PAGES, 2 * TIB_PAGES, 3 * TIB_PAGES]);
    expect(k.processes.get('init')!.slicePsize).toEqual(new Map([['H2', 256]]));
  });

  it('MAP_FIXED of a hugetlb mapping over a 64K VMA is EBUSY: get_unmapped_area() runs before mmap_region() unmaps it', () => {
    const k = kernelWithPool();
    k.run(k.mmap({ anon: true, length: 32 * MiB, write: true, as: 'a' }));
    k.run(k.write({ map: 'a', page: 0, data: 'x' }));
    expect(errnoOf(() => k.run(k.mmap({ anon: true, hugetlb: 16 * MiB, length: 16 * MiB, write: true, fixed: { map: 'a' }, as: 'h' })))).toBe('EBUSY');
    // nothing was unmapped
    expect(k.run(k.read({ map: 'a', page: 0 }))).toBe('x');
  });

  it('mremap(MREMAP_FIXED) of a hugetlb VMA converts a destination slice its unmap left free, and a 64K mapping placed later avoids it', () => {
    const k = kernelWithPool();
    k.run(k.mmap({ anon: true, hugetlb: 16 * MiB, length: 16 * MiB, write: true, as: 'h' }));
    k.run(k.write({ map: 'h', page: 0, data: 'y' }));
    k.run(k.mmap({ anon: true, shared: true, length: 16 * MiB, write: true, as: 'v' }));
    expect(startOf(k, 'v')).toBe(2 * TIB_PAGES);
    k.run(k.mremap({ map: 'h', length: 16 * MiB, to: 'v', as: 'addr' }));
    expect(k.run(k.read({ map: 'addr', page: 0 }))).toBe('y');
    expect(k.processes.get('init')!.slicePsize).toEqual(new Map([['H1', 256], ['H2', 256]]));
    // slice 1 is free again and keeps 16 MiB pages until a 64K mapping converts it back; the model
    // places upwards from its next free page, so the new mapping goes to slice 3
    k.run(k.mmap({ anon: true, length: MiB, write: true, as: 'w' }));
    expect(startOf(k, 'w')).toBe(3 * TIB_PAGES);
  });

  it('mremap(MREMAP_FIXED) into a slice another 64K VMA holds is EBUSY, after the destination was unmapped (hugepage-mremap.c from v5.16)', () => {
    const k = kernelWithPool();
    k.run(k.mmap({ anon: true, hugetlb: 16 * MiB, length: 16 * MiB, write: true, as: 'h' }));
    k.run(k.mmap({ anon: true, shared: true, length: 16 * MiB, write: true, as: 'v' }));
    k.run(k.mmap({ anon: true, length: MiB, write: true, as: 'u' }));
    expect(startOf(k, 'u') - startOf(k, 'v')).toBeLessThan(TIB_PAGES);
    expect(errnoOf(() => k.run(k.mremap({ map: 'h', length: 16 * MiB, to: 'v', as: 'addr' })))).toBe('EBUSY');
    // mremap_to() unmapped new_addr before get_unmapped_area() refused it; the old range stays
    expect(errnoOf(() => k.run(k.read({ map: 'v', page: 0 })))).toBe('SIGSEGV');
    expect(errnoOf(() => k.run(k.read({ map: 'h', page: 0 })))).toBe('no error');
  });

  it('a fork child inherits the slice sizes (hash__init_new_context() copies the hash context)', () => {
    const k = kernelWithPool();
    k.run(k.mmap({ anon: true, hugetlb: 16 * MiB, length: 16 * MiB, write: true, as: 'h' }));
    k.run(k.fork({ as: 'child' }));
    expect(k.processes.get('child')!.slicePsize).toEqual(new Map([['H1', 256]]));
    // the child's own 64K mapping avoids slice 1, which its copy of h holds
    k.run(k.mmap({ process: 'child', anon: true, length: MiB, write: true, as: 'c' }));
    expect(startOf(k, 'c', 'child')).toBe(2 * TIB_PAGES);
  });
});
