import { createKernel, formatSnapshotFlags, PRESETS, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { hmm } from '@daxlab/driver-hmm';
import { describe, expect, it } from 'vitest';

// hmm-tests.c's two hugetlb cases (docs/selftests.md, hmm-tests.c coverage), through the kernel API
// on every preset: x86, 4 KiB pages, the default huge page size 2 MiB (Hugepagesize: in
// /proc/meminfo), a pool of one page so that the MAP_HUGETLB mmap does not SKIP.

const NR = 512;
const HPAGE = 2 * 2 ** 20;

function kernel(version: string): Kernel {
  const k = createKernel({ arch: x86(), driver: hmm(), kernel: version });
  k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 2 ** 20, as: 'dmirror0' }));
  k.run(k.hugetlbPool({ size: HPAGE, pages: 1 }));
  k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'buf' }));
  return k;
}

const snapshot = (k: Kernel, pages: number[]) => pages.map((page) => formatSnapshotFlags(k.run(k.deviceSnapshot({ device: 'dmirror0', map: 'buf', page, expect: [0] }))[0]!));

describe('hmm-tests.c on hugetlb', () => {
  // TEST_F(hmm, anon_write_hugetlbfs): HMM_DMIRROR_WRITE of the untouched MAP_HUGETLB buffer.
  // hmm_range_fault() write-faults the first page: hugetlb_fault() -> hugetlb_no_page() allocates
  // the anon hugetlb folio and (private write) hugetlb_wp() reuses it writable: the other 511
  // pages need no fault (the test's faults == 1). The CPU then reads what the device wrote.
  it('anon_write_hugetlbfs: one fault maps the whole huge page; the CPU reads the device\'s data; every release', () => {
    for (const { name } of PRESETS) {
      const k = kernel(name);
      k.run(k.deviceWrite({ device: 'dmirror0', map: 'buf', page: 0, data: 'i0' }));
      const head = k.pfnOf({ map: 'buf', page: 0 })!;
      // one folio of 512 pages, mapped by one PMD: rc 1, mapcount 1
      expect([k.pfnOf({ map: 'buf', page: NR - 1 }), k.refcount(head), k.mapcount(head), k.folios.nr(head)]).toEqual([head + NR - 1, 1, 1, NR]);
      k.run(k.deviceWrite({ device: 'dmirror0', map: 'buf', page: NR - 1, data: `i${NR - 1}` }));
      expect([k.run(k.read({ map: 'buf', page: 0 })), k.run(k.read({ map: 'buf', page: NR - 1 })), k.refcount(head)]).toEqual(['i0', `i${NR - 1}`, 1]);
      expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 1, free: 0, resv: 0 });
      k.run(k.munmap({ map: 'buf' }));
      expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 1, free: 1, resv: 0 });
    }
  });

  // TEST_F(hmm, compound): the CPU writes every byte, the device snapshots: every page
  // WRITE|PMD (hmm_vma_walk_hugetlb_entry() reports huge_page_order(hstate) as the map order,
  // dmirror_mkentry() turns order 9 into PMD); mprotect(PROT_READ); snapshot: READ|PMD. The order
  // is reported from v5.9 (hmm_pfn_to_map_order()): v5.4's snapshot has no PMD bit, the test's
  // first ASSERT_EQ fails there.
  it('compound: WRITE|PMD, then READ|PMD after mprotect(PROT_READ), from v5.9; no PMD bit on v5.4', () => {
    for (const { name } of PRESETS) {
      const k = kernel(name);
      k.run(k.write({ map: 'buf', page: 0, data: '0' }));
      k.run(k.write({ map: 'buf', page: NR - 1, data: `${NR - 1}` }));
      const before = snapshot(k, [0, 300, NR - 1]);
      k.run(k.mprotect({ map: 'buf', write: false }));
      const after = snapshot(k, [0, 300, NR - 1]);
      const pmd = name === 'v5.4' ? '' : '|PMD';
      expect([name, before, after]).toEqual([name, Array(3).fill(`WRITE${pmd}`), Array(3).fill(`READ${pmd}`)]);
    }
  });

  // migrate_vma_setup() refuses a hugetlb VMA (is_vm_hugetlb_page -> -EINVAL): HMM_DMIRROR_MIGRATE_TO_DEV fails
  it('a hugetlb buffer cannot be migrated to the device: EINVAL, the page stays', () => {
    for (const { name } of PRESETS) {
      const k = kernel(name);
      k.run(k.write({ map: 'buf', page: 0, data: 'x' }));
      const head = k.pfnOf({ map: 'buf', page: 0 })!;
      let errno = 'ok';
      try {
        k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'dmirror0' }));
      } catch (e) {
        errno = (e as { code?: string }).code ?? String(e);
      }
      expect([name, errno, k.pfnOf({ map: 'buf', page: 0 }), k.refcount(head)]).toEqual([name, 'EINVAL', head, 1]);
    }
  });
});
