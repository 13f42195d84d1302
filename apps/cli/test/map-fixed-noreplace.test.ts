import { createKernel, PRESETS, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { ARCHES, errnoOf } from './selftest-api.js';

// tools/testing/selftests/mm/map_fixed_noreplace.c main() through the kernel API on every arch at
// its own page size (the test's offsets are in pages), independently of the 4 KiB scenario
// selftests/map-fixed-noreplace: do_mmap() returns EEXIST for MAP_FIXED_NOREPLACE when
// find_vma_intersection() finds a VMA in [addr, addr + len) (a4ff8e8620d3, v4.17), so every preset
// passes every step (docs/selftests.md, "Coverage: tools/testing/selftests/mm/map_fixed_noreplace.c").

const RELEASES = PRESETS.map((p) => p.name);

/** mmap(base + at pages, n pages, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE): 'ok' or the errno. */
function noreplace(k: Kernel, at: number, n: number, as: string): string {
  const ps = k.mmu.basePageSize;
  return errnoOf(() => k.run(k.mmap({ anon: true, length: n * ps, fixed: { map: 'base', offset: at * ps, noreplace: true }, as })));
}

/** The steps of main() in order: what each mmap()/munmap() returned. */
function mainSteps(k: Kernel): string[] {
  k.run(k.mmap({ anon: true, length: 5 * k.mmu.basePageSize, as: 'base' })); // find_base_addr()
  k.run(k.munmap({ map: 'base' }));
  const out = [noreplace(k, 0, 5, 'all5')];
  k.run(k.munmap({ map: 'all5' }));
  out.push(noreplace(k, 1, 3, 'mid'));
  out.push(noreplace(k, 0, 5, 'a'), noreplace(k, 2, 1, 'b'), noreplace(k, 3, 2, 'c'), noreplace(k, 0, 2, 'd'));
  out.push(`${k.vmaPagesIn({ map: 'mid', page: 0 })} pages`);
  out.push(noreplace(k, 0, 1, 'below'), noreplace(k, 4, 1, 'above'));
  out.push(`${k.vmaPagesIn({ map: 'mid', page: 0 })} pages from ${k.vmaStartIn({ map: 'base', page: 2 })}`);
  out.push(errnoOf(() => k.run(k.munmap({ map: 'base' }))));
  return out;
}

describe('map_fixed_noreplace.c on every arch and preset', () => {
  for (const arch of Object.keys(ARCHES)) {
    it(`${arch}: main()`, () => {
      for (const v of RELEASES) {
        const k = createKernel({ arch: ARCHES[arch]!(), kernel: v });
        // the four overlapping probes fail, the 3-page mapping stays; the two adjacent pages merge with it
        expect([v, ...mainSteps(k)]).toEqual([v, 'ok', 'ok', 'EEXIST', 'EEXIST', 'EEXIST', 'EEXIST', '3 pages', 'ok', 'ok', '5 pages from 0', 'ok']);
        expect(k.vmaPagesIn({ map: 'base', page: 2 })).toBe(0);
      }
    });
  }
});

describe('MAP_FIXED_NOREPLACE beyond the selftest', () => {
  it('over a sealed mapping: EEXIST (do_mmap() asks before mmap_region()), where MAP_FIXED is EPERM', () => {
    const k = createKernel({ arch: x86(), kernel: 'latest' });
    k.run(k.mmap({ anon: true, length: 4096, as: 'base' }));
    k.run(k.mseal({ map: 'base' }));
    expect(errnoOf(() => k.run(k.mmap({ anon: true, length: 4096, fixed: { map: 'base', noreplace: true }, as: 'n' })))).toBe('EEXIST');
    expect(errnoOf(() => k.run(k.mmap({ anon: true, length: 4096, fixed: { map: 'base' }, as: 'f' })))).toBe('EPERM');
  });

  it('under MDWE a PROT_WRITE|PROT_EXEC request over a mapping is EEXIST, into a hole EACCES', () => {
    const k = createKernel({ arch: x86(), kernel: 'v6.6' });
    k.run(k.mmap({ anon: true, length: 2 * 4096, write: true, as: 'base' }));
    k.run(k.munmap({ map: 'base', offset: 4096, length: 4096 }));
    k.run(k.prctl({ mdwe: 1 }));
    const wx = (offset: number, as: string) => errnoOf(() => k.run(k.mmap({ anon: true, length: 4096, write: true, exec: true, fixed: { map: 'base', offset, noreplace: true }, as })));
    expect([wx(0, 'over'), wx(4096, 'hole')]).toEqual(['EEXIST', 'EACCES']);
    // neither call unmapped anything
    expect(k.vmaPagesIn({ map: 'base', page: 0 })).toBe(1);
  });

  it('an unaligned address is EINVAL (get_unmapped_area() with MAP_FIXED), not EEXIST', () => {
    const k = createKernel({ arch: x86(), kernel: 'v6.15' });
    k.run(k.mmap({ anon: true, length: 2 * 4096, as: 'base' }));
    expect(errnoOf(() => k.run(k.mmap({ anon: true, length: 4096, fixed: { map: 'base', offset: 100, noreplace: true }, as: 'n' })))).toBe('EINVAL');
  });
});
