import { createKernel, kernelAtLeast, Monitor, PRESETS, type Kernel } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { ARCHES, fails } from './selftest-api.js';

// tools/testing/selftests/mm/uffd-wp-mremap.c (docs/selftests.md, "Coverage: uffd-wp-mremap.c"),
// driven through the kernel API: test_one_folio() for each case of testcases[] the model covers,
// per arch and release, with the verdict ksft_test_result_*() prints. The cases it leaves out:
// MAP_SHARED with swapout (shmem swap is not modelled), MAP_SHARED THPs below the PMD size
// (per-size shmem THP controls are not modelled) and arm64's contiguous hugetlb sizes (64 KiB,
// 32 MiB: refused as not modelled).

const RELEASES = PRESETS.map((p) => p.name);
type Verdict = 'pass' | 'FAIL' | 'SKIP';

interface Case {
  readonly size: number;
  readonly private: boolean;
  readonly swapout: boolean;
  readonly hugetlb: boolean;
}

/** "[RUN] test_one_folio(size=…, private=…, swapout=…, hugetlb=…)" */
const label = (c: Case): string => `size=${c.size} private=${c.private} swapout=${c.swapout} hugetlb=${c.hugetlb}`;

/**
 * mmap_aligned(size): mmap twice the size, then munmap what lies before the first size-aligned
 * address and after size bytes from it. Returns the page offset of the aligned part in `as`.
 */
function mmapAligned(k: Kernel, size: number, as: string, shared: boolean): number {
  const page = k.mmu.basePageSize;
  k.run(k.mmap({ anon: true, shared, length: 2 * size, write: true, as }));
  const start = k.process('init').ranges.get(as)!.start;
  const pages = size / page;
  const head = (pages - (start % pages)) % pages;
  if (head > 0) k.run(k.munmap({ map: as, length: head * page }));
  if (pages - head > 0) k.run(k.munmap({ map: as, offset: (head + pages) * page, length: (pages - head) * page }));
  return head;
}

/** check_uffd_wp_state(): PM_UFFD_WP of every page of the range is `expect`. */
function uffdWpIs(k: Kernel, map: string, first: number, pages: number, expect: boolean): boolean {
  for (let p = first; p < first + pages; p++) if (k.isUffdWpIn({ map, page: p }) !== expect) return false;
  return true;
}

/** test_one_folio(size, private, swapout, hugetlb). */
function testOneFolio(k: Kernel, c: Case): Verdict {
  const page = k.mmu.basePageSize;
  const pages = c.size / page;
  // alloc_one_folio(): a THP size is enabled ("always") around an aligned mmap; hugetlb maps
  // MAP_HUGETLB with the size in MAP_HUGE_SHIFT; then mem[0] = 1 must populate every page
  let first = 0;
  if (c.hugetlb) k.run(k.mmap({ anon: true, shared: !c.private, hugetlb: c.size, length: c.size, write: true, as: 'mem' }));
  else if (c.size > page) {
    // settings.hugepages[order] (private) or .shmem_hugepages[order] (shared: the PMD order only
    // here, as the global shmem_enabled, which that order inherits) = always, then popped
    const huge = (on: boolean) => (c.private ? k.thpSize({ size: c.size, enabled: on ? 'always' : 'never' }) : k.shmemEnabled({ mode: on ? 'always' : 'never' }));
    k.run(huge(true));
    first = mmapAligned(k, c.size, 'mem', !c.private);
    k.run(k.write({ map: 'mem', page: first, data: '1' }));
    k.run(huge(false));
  } else k.run(k.mmap({ anon: true, shared: !c.private, length: c.size, write: true, as: 'mem' }));
  if (c.hugetlb || c.size === page) k.run(k.write({ map: 'mem', page: first, data: '1' }));
  for (let p = first; p < first + pages; p++) if (!k.isMappedIn({ map: 'mem', page: p })) return 'FAIL'; // "alloc_one_folio() failed"
  // userfaultfd_open(): UFFDIO_API with no features; uffd_register(wp); UFFDIO_WRITEPROTECT of the range
  k.run(k.uffdApi({}));
  if (fails(() => k.run(k.uffdRegister({ map: 'mem', mode: ['wp'], offset: first * page, length: c.size })))) return 'FAIL';
  if (fails(() => k.run(k.uffdWriteprotect({ map: 'mem', enable: true, offset: first * page, length: c.size })))) return 'FAIL';
  if (c.swapout) {
    k.run(k.madvise({ map: 'mem', advice: 'pageout', offset: first * page, length: c.size }));
    for (let p = first; p < first + pages; p++) if (!k.isSwappedIn({ map: 'mem', page: p })) return 'SKIP'; // "MADV_PAGEOUT did not work"
  }
  if (!uffdWpIs(k, 'mem', first, pages, true)) return 'FAIL'; // "uffd-wp not set for pte N!"
  // a PROT_NONE private anonymous area, aligned, and mremap(MREMAP_FIXED | MREMAP_MAYMOVE) onto it
  const dest = mmapAligned(k, c.size, 'addr', false);
  if (fails(() => k.run(k.mremap({ map: 'mem', offset: first * page, length: c.size, mayMove: true, to: 'addr', toOffset: dest * page, as: 'moved' })))) return 'FAIL';
  // "Since UFFD_FEATURE_EVENT_REMAP is not set, we expect the uffd-wp bit for each PTE to be cleared"
  return uffdWpIs(k, 'moved', 0, pages, false) ? 'pass' : 'FAIL'; // "uffd-wp not clear for pte N!"
}

/** The cases of testcases[] the model covers on this kernel (detect_thp_sizes(), hugetlb_setup()). */
function cases(k: Kernel): Case[] {
  const page = k.mmu.basePageSize;
  const out: Case[] = [];
  for (const [priv, swapout] of [[false, false], [true, false], [true, true]] as const) out.push({ size: page, private: priv, swapout, hugetlb: false });
  // thp_supported_orders(): the hugepages-<size>kB directories (v6.8; none before), every order from 2 to the PMD's
  if (k.mmu.transparentHugepage !== false && kernelAtLeast(k.version, 6, 8)) {
    for (let size = 4 * page; size <= k.vm.pmdPages * page; size *= 2) for (const swapout of [false, true]) out.push({ size, private: true, swapout, hugetlb: false });
    out.push({ size: k.vm.pmdPages * page, private: false, swapout: false, hugetlb: false });
  }
  // hugetlb_setup(1, …): every size of /sys/kernel/mm/hugepages with one page each (the ones mapped by one PMD/PUD leaf)
  for (const size of k.mmu.hugetlbSizes ?? []) {
    if (fails(() => k.hugetlb.hstate(size))) continue; // a contiguous-entry size: not modelled
    for (const priv of [false, true]) out.push({ size, private: priv, swapout: false, hugetlb: true });
  }
  return out;
}

/** main(): SKIP when UFFDIO_API does not report UFFD_FEATURE_PAGEFAULT_FLAG_WP, else each case's verdict. */
function run(arch: string, version: string): Record<string, Verdict> | 'SKIP' {
  const probe = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  if (!probe.uffd.available().has('pagefault-flag-wp')) return 'SKIP';
  const out: Record<string, Verdict> = {};
  for (const c of cases(probe)) {
    const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
    const m = new Monitor(k);
    if (c.hugetlb) k.run(k.hugetlbPool({ size: c.size, pages: 1 }));
    out[label(c)] = testOneFolio(k, c);
    expect(m.violations, `${arch} ${version} ${label(c)}`).toEqual([]);
  }
  return out;
}

/**
 * The verdict of every case the model covers, per release, from the sources (written before the
 * first run):
 * - SKIP (the whole test, "uffd-wp feature not supported") where UFFDIO_API does not report
 *   UFFD_FEATURE_PAGEFAULT_FLAG_WP: v5.4 (the feature is v5.7), and from v5.14 (00b151f21f39)
 *   every arch without HAVE_ARCH_USERFAULTFD_WP: arm64 before v6.10, ppc64 and s390 always.
 * - v5.10 where reported (every arch: before v5.14 it was not masked): FAIL everywhere. The anon
 *   cases write-protect, but pagemap has no PM_UFFD_WP before v5.14 (fb8e37f35a2f): "uffd-wp not
 *   set for pte 0"; shmem and hugetlb refuse UFFDIO_REGISTER_MODE_WP before v5.19
 *   (UFFD_FEATURE_WP_HUGETLBFS_SHMEM): "uffd_register() failed".
 * - v6.1 to v6.6 (x86): every case sets the bit and mremap() moves it along: "uffd-wp not clear"
 *   (FAIL) until 0cef0bb836e3 "mm: clear uffd-wp PTE/PMD state on mremap()" (v6.13 [M],
 *   CVE-2025-21696) clears it in move_ptes(), move_huge_pmd() and move_huge_pte().
 * - v6.15, latest (x86, arm64 from v6.10): pass, THP sizes included (v6.8's per-size controls:
 *   every order from 2 to the PMD's; swapped out, each PTE is a swap entry with the bit).
 */
function expected(arch: string, version: string): Record<string, Verdict> | 'SKIP' {
  const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  if (version === 'v5.4') return 'SKIP';
  const archWp = arch === 'x86' || (arch === 'arm64' && kernelAtLeast(version, 6, 10));
  if (!archWp && kernelAtLeast(version, 5, 14)) return 'SKIP';
  const verdict: Verdict = kernelAtLeast(version, 6, 13) ? 'pass' : 'FAIL';
  return Object.fromEntries(cases(k).map((c) => [label(c), verdict]));
}

describe('uffd-wp-mremap.c: mremap() of a uffd-wp range without UFFD_FEATURE_EVENT_REMAP clears the bit from v6.13', () => {
  for (const arch of Object.keys(ARCHES)) {
    it(`${arch}: every case, every release`, () => {
      for (const version of RELEASES) expect(run(arch, version), `${arch} ${version}`).toEqual(expected(arch, version));
    });
  }

  it('x86 latest covers base pages, 8 THP sizes (16 KiB to 2 MiB, also swapped out) and both hugetlb sizes', () => {
    const got = run('x86', 'latest');
    expect(Object.keys(got)).toHaveLength(3 + 8 * 2 + 1 + 2 * 2);
  });
});
