import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { preempt, type Op } from '../sched.js';
import type { Vma } from '../types.js';
import { nonPresent } from './exclusive.js';

/**
 * The scan results madvise_collapse() turns into an errno (mm/khugepaged.c enum scan_result) —
 * the ones the model can reach.
 */
type ScanResult = 'succeed' | 'pmd-mapped' | 'pmd-null' | 'page-null' | 'page-anon' | 'page-count' | 'alloc-huge-page-fail' | 'pte-non-present' | 'fail';

/**
 * madvise_collapse_errno() (v6.1, 7d8faaf15545): no huge page -ENOMEM; an unexpected reference
 * (SCAN_PAGE_COUNT) -EINVAL in v6.1 and -EAGAIN from "mm/MADV_COLLAPSE: set EAGAIN on unexpected
 * page refcount" (a v6.2 fix of 7d8faaf15545 [M]); anything else intrinsic to the range -EINVAL.
 */
function collapseErrno(k: Kernel, r: ScanResult): 'ENOMEM' | 'EAGAIN' | 'EINVAL' {
  if (r === 'alloc-huge-page-fail') return 'ENOMEM';
  if (r === 'page-count' && kernelAtLeast(k.version, 6, 2)) return 'EAGAIN';
  return 'EINVAL';
}

/**
 * MADV_COLLAPSE on one VMA's part [s, e) of the range (mm/khugepaged.c madvise_collapse(), v6.1,
 * 7d8faaf15545): synchronous khugepaged collapse of every PMD-aligned, PMD-sized range inside
 * [s, e) into a PMD-mapped anonymous THP, ignoring the sysfs `enabled` modes (the collapse was
 * asked for) but not VM_NOHUGEPAGE; none of khugepaged's max_ptes_none/swap/shared limits apply.
 * Only anonymous memory: a shmem or file range (collapse_file()) is not modelled.
 */
export function* madviseCollapse(k: Kernel, vma: Vma, s: number, e: number): Op {
  const n = k.vm.pmdPages;
  // hugepage_vma_check(vma, vm_flags, smaps = false, in_pf = false, enforce_sysfs = false):
  // VM_NOHUGEPAGE, no THP on this MMU, a VMA too small to hold one aligned PMD range
  // (transhuge_vma_suitable(vma, vm_end - HPAGE_PMD_SIZE)), DAX (in_pf only), no anon_vma yet
  if (vma.kind === 'pagecache' && !vma.hugetlb) throw KernelError.unsupported('EINVAL', `madvise collapse of '${vma.name}': collapse_file() (shmem/file THP) is not modelled`);
  const suitable = (() => {
    const end = vma.start + vma.pages;
    const base = end - n - ((end - n) % n);
    return base >= vma.start && base + n <= end;
  })();
  if (vma.kind !== 'anon' || vma.flags.shared || vma.hugetlb || vma.flags.nohugepage || k.mmu.transparentHugepage === false || !suitable || vma.anonVma === 0) {
    throw new KernelError('EINVAL', `madvise collapse of '${vma.name}': hugepage_vma_check() refuses the VMA (needs private anonymous memory with pages, no VM_NOHUGEPAGE, an aligned ${n}-page range inside it)`);
  }
  const hstart = Math.ceil(s / n) * n;
  const hend = e - (e % n);
  let thps = 0;
  let lastFail: ScanResult = 'succeed';
  for (let addr = hstart; addr < hend; addr += n) {
    // hugepage_vma_revalidate(): the VMA must still cover the whole PMD range
    const at = k.vm.vmaAt(vma.mm, addr);
    if (at !== vma || addr + n > vma.start + vma.pages) {
      lastFail = 'pmd-null';
      continue;
    }
    const r = yield* collapseRange(k, vma, addr);
    if (r === 'succeed' || r === 'pmd-mapped') thps++;
    else lastFail = r;
    // the whole range's memory is what a failed allocation tells: stop there (SCAN_ALLOC_HUGE_PAGE_FAIL ends the loop)
    if (r === 'alloc-huge-page-fail') break;
  }
  if (thps !== (hend - hstart) / n) throw new KernelError(collapseErrno(k, lastFail), `madvise collapse of '${vma.name}': ${thps} of ${(hend - hstart) / n} PMD range(s) collapsed (last scan result: ${lastFail})`);
}

/**
 * hpage_collapse_scan_pmd() + collapse_huge_page() for the anonymous PMD range at base:
 * - find_pmd_or_thp_or_none(): a PMD leaf is SCAN_PMD_MAPPED (done); no page table (no PTE in the
 *   range, as the model approximates pmd_none) is SCAN_PMD_NULL;
 * - every PTE: none or the zero page is fine (no max_ptes_none for MADV_COLLAPSE); a swap or other
 *   non-present entry would be swapped in first (__collapse_huge_page_swapin: not modelled); no
 *   normal page or a ZONE_DEVICE one is SCAN_PAGE_NULL; not anon SCAN_PAGE_ANON; a folio with
 *   references beyond its mappings (is_refcount_suitable(): a GUP get or pin, the swap cache's) is
 *   SCAN_PAGE_COUNT. Pages shared with another mm are fine (no max_ptes_shared here).
 * - then a new order-HPAGE_PMD_ORDER folio (alloc_charge_folio(): SCAN_ALLOC_HUGE_PAGE_FAIL), the
 *   range's PTEs are cleared and flushed (pmdp_collapse_flush() under MMU_NOTIFY_CLEAR), each page
 *   copied into it (__collapse_huge_page_copy(): a none or zero PTE gives a zeroed subpage) and its
 *   old mapping and reference dropped (folio_remove_rmap_pte + free_page_and_swap_cache), and the
 *   new folio mapped by a dirty PMD, writable when the VMA is (map_anon_folio_pmd /
 *   maybe_pmd_mkwrite(pmd_mkdirty())), PageAnonExclusive (folio_add_new_anon_rmap), rc 1 and
 *   entire mapcount 1. An anonymous collapse never reuses the old folio, even when the range was
 *   one PTE-mapped THP: pages still mapped by a fork child stay the child's.
 */
function* collapseRange(k: Kernel, vma: Vma, base: number): Op<ScanResult> {
  const mm = vma.mm;
  const n = k.vm.pmdPages;
  const pmd = mm.pmds.get(base);
  if (pmd) return pmd.special || !k.thp.isAnonPmd(vma, { pte: pmd, base, pages: n }) ? 'page-null' : 'pmd-mapped';
  const ptes = [];
  for (let v = base; v < base + n; v++) {
    const pte = mm.ptes.get(v);
    if (pte) ptes.push([v, pte] as const);
  }
  if (ptes.length === 0) return 'pmd-null';
  const folios = new Set<number>();
  let guard = false;
  for (const [v, pte] of ptes) {
    if (pte.guard) {
      // a guard marker (mm/guard.ts) is a swap PTE to the scan: MADV_COLLAPSE used to go past it
      // and fail at __collapse_huge_page_swapin() (do_swap_page: VM_FAULT_SIGSEGV -> SCAN_FAIL);
      // "mm/khugepaged: abort collapse scan on guard PTEs" (Sep 2025, v6.18 [M]) stops the scan
      // there: SCAN_PTE_NON_PRESENT. Both are EINVAL, but only the old scan lets a later page's
      // result (an unexpected reference: EAGAIN) come first
      if (kernelAtLeast(k.version, 6, 18)) return 'pte-non-present';
      guard = true;
      continue;
    }
    if (nonPresent(pte)) throw KernelError.unsupported('EINVAL', `madvise collapse: page ${v} of ${mm.name} holds a non-present entry; __collapse_huge_page_swapin() is not modelled`);
    if (pte.special && k.isZeroPfn(pte.pfn)) continue;
    const page = k.vm.normalPage(pte, pte.pfn);
    if (page === null || k.folios.kind(page) !== 'ram') return 'page-null';
    const head = k.folios.folio(page);
    if (!k.folios.isAnon(head)) return 'page-anon';
    folios.add(head);
  }
  for (const head of folios) {
    const swapCache = k.swap.inSwapCache(head) ? k.folios.nr(head) : 0;
    if (k.folios.rc(head) !== k.folios.mapcount(head) + swapCache) return 'page-count';
  }
  // collapse_huge_page(): the swap-in of the marker fails (the model checks it before
  // alloc_charge_folio(), which the kernel calls first: only an allocation failure would differ)
  if (guard) return 'fail';
  const hpage = k.ram.allocAnonLarge(k.vm.anonVmaPrepare(vma), Math.log2(n));
  if (hpage === null) return 'alloc-huge-page-fail';
  k.mmuNotify({ mm, start: base, end: base + n, event: 'clear', owner: null });
  yield preempt('collapse_huge_page: copy');
  for (let i = 0; i < n; i++) k.pages.data.set(hpage + i, '');
  for (const [v, pte] of ptes) if (!pte.special) k.pages.data.set(hpage + (v - base), k.pages.data.get(pte.pfn) ?? '');
  for (const [v, pte] of ptes) {
    k.vm.clear(mm, v, 'pte');
    // __collapse_huge_page_copy_succeeded(): a zero-page PTE goes with ksm_might_unmap_zero_page() (v6.6)
    if (pte.special) {
      k.ksm.unmapZeroPage(mm, pte);
      continue;
    }
    const head = k.folios.folio(pte.pfn);
    k.folios.removeMap(head);
    k.folios.put(head, 1, '__collapse_huge_page_copy: free_page_and_swap_cache');
  }
  k.emit('tlb.flush', { mm: mm.name });
  k.folios.addMap(hpage);
  k.vm.install(mm, base, k.faults.pte(hpage, 'pmd', { write: vma.flags.write, dirty: true }));
  return 'succeed';
}
