import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { preempt, type Op } from '../sched.js';
import type { Mm, PageCacheFile, Pte, Vma } from '../types.js';
import { nonPresent } from './exclusive.js';
import { mappingOf, PG } from './pages.js';
import { vmasIn } from './vm.js';

/**
 * The scan results (mm/khugepaged.c enum scan_result) the model can reach: madvise_collapse()
 * turns them into an errno; khugepaged only goes on to the next PMD range.
 */
export type ScanResult =
  | 'succeed' | 'pmd-mapped' | 'pmd-null' | 'page-null' | 'page-anon' | 'page-count' | 'page-ro' | 'page-compound'
  | 'exceed-none-pte' | 'exceed-swap-pte' | 'exceed-shared-pte' | 'pte-uffd-wp' | 'lack-referenced-page'
  | 'alloc-huge-page-fail' | 'pte-non-present' | 'pte-mapped-hugepage' | 'truncated' | 'vma-check' | 'fail';

/**
 * madvise_collapse()'s "whitelisted set of results where continuing OK": any other result ends
 * the walk over the range (goto out_maybelock) with it as last_fail.
 */
const COLLAPSE_GOES_ON: ReadonlySet<ScanResult> = new Set<ScanResult>(['pmd-null', 'pte-non-present', 'pte-uffd-wp', 'page-ro', 'lack-referenced-page', 'page-null', 'page-count', 'page-compound']);

/** struct collapse_control's is_khugepaged (d8ea7cc85475, v6.1): the khugepaged-only heuristics apply. */
interface CollapseControl {
  readonly isKhugepaged: boolean;
}

/** /sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_{none,swap,shared} */
export interface KhugepagedLimits {
  maxPtesNone: number;
  maxPtesSwap: number;
  maxPtesShared: number;
}

/**
 * madvise_collapse_errno() (v6.1, 7d8faaf15545): no huge page -ENOMEM; an unexpected reference
 * (SCAN_PAGE_COUNT) -EINVAL in v6.1 and -EAGAIN from "mm/MADV_COLLAPSE: set EAGAIN on unexpected
 * page refcount" (a v6.2 fix of 7d8faaf15545 [M]); anything else intrinsic to the range -EINVAL
 * (SCAN_PAGE_RO, SCAN_PTE_UFFD_WP, SCAN_PMD_NULL, ... are in its EINVAL list).
 */
function collapseErrno(k: Kernel, r: ScanResult): 'ENOMEM' | 'EAGAIN' | 'EINVAL' {
  if (r === 'alloc-huge-page-fail') return 'ENOMEM';
  if (r === 'page-count' && kernelAtLeast(k.version, 6, 2)) return 'EAGAIN';
  return 'EINVAL';
}

/**
 * hugepage_vma_check() / thp_vma_allowable_order() (v6.8+) for an anonymous VMA: private
 * anonymous memory (for MADV_COLLAPSE with an anon_vma already, as the model always had it), not
 * vma_thp_disabled() (VM_NOHUGEPAGE, PR_SET_THP_DISABLE; MADV_COLLAPSE, `!enforceSysfs`, is the
 * forced collapse EXCEPT_ADVISED spares: mm/thp.ts disabled), THP on this MMU, and
 * transhuge_vma_suitable(): one PMD-aligned range fits. `enforceSysfs` (TVA_ENFORCE_SYSFS,
 * khugepaged) also asks the sysfs `enabled` mode (or the PMD order's own knob from v6.8:
 * mm/mthp.ts). DAX VMAs
 * (vma_is_dax(): fs-dax and device-dax) are refused outside a page fault in every release
 * (`if (vma_is_dax(vma)) return in_pf;`, v5.4 __transparent_hugepage_enabled() has no DAX
 * collapse either): they are not 'anon' here.
 */
function vmaAllowsCollapse(k: Kernel, vma: Vma, enforceSysfs: boolean): boolean {
  const n = k.vm.pmdPages;
  const end = vma.start + vma.pages;
  const base = end - n - ((end - n) % n);
  const suitable = base >= vma.start && base + n <= end;
  if (vma.kind !== 'anon' || vma.flags.shared || vma.hugetlb || k.thp.disabled(vma, !enforceSysfs) || k.mmu.transparentHugepage === false || !suitable) return false;
  // khugepaged scans a VMA with no anon_vma yet (zero-page PTEs only: SCAN_PAGE_RO; nothing:
  // SCAN_PMD_NULL); only a collapse would need one (hugepage_vma_revalidate(expect_anon))
  if (!enforceSysfs && vma.anonVma === 0) return false;
  return !enforceSysfs || k.thp.sizes.allowed(vma, k.thp.order);
}

/**
 * MADV_COLLAPSE on one VMA's part [s, e) of the range (mm/khugepaged.c madvise_collapse(), v6.1,
 * 7d8faaf15545): synchronous khugepaged collapse of every PMD-aligned, PMD-sized range inside
 * [s, e) into a PMD-mapped anonymous THP, ignoring the sysfs `enabled` modes (the collapse was
 * asked for) but not VM_NOHUGEPAGE; is_khugepaged is false, so none of the max_ptes_none / swap /
 * shared limits nor the young-page heuristic apply (d8ea7cc85475, v6.1, in every release that has
 * MADV_COLLAPSE). A shmem or disk-file range goes through hpage_collapse_scan_file() and
 * collapse_file(), then collapse_pte_mapped_thp() maps the new folio (34488399fa08 "mm/madvise:
 * add file and shmem support to MADV_COLLAPSE", in v6.1 with MADV_COLLAPSE itself).
 */
export function* madviseCollapse(k: Kernel, vma: Vma, s: number, e: number): Op {
  const n = k.vm.pmdPages;
  const file = collapsibleCache(vma);
  if (file) {
    if (!fileVmaAllowsCollapse(k, vma, file, false)) {
      throw new KernelError('EINVAL', `madvise collapse of '${vma.name}': thp_vma_allowable_order() refuses the VMA (no VM_NOHUGEPAGE nor PR_SET_THP_DISABLE, an aligned PMD range inside it; a disk file needs CONFIG_READ_ONLY_THP_FOR_FS, no writer${kernelAtLeast(k.version, 6, 8) ? '' : ' and PROT_EXEC'})`);
    }
  } else if (!vmaAllowsCollapse(k, vma, false)) {
    throw new KernelError('EINVAL', `madvise collapse of '${vma.name}': hugepage_vma_check() refuses the VMA (needs private anonymous memory with pages, no VM_NOHUGEPAGE nor PR_SET_THP_DISABLE, an aligned ${n}-page range inside it; never DAX)`);
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
    const r = file ? yield* collapseFileRange(k, vma, file, addr, { isKhugepaged: false }) : yield* collapseRange(k, vma, addr, { isKhugepaged: false });
    if (r === 'succeed' || r === 'pmd-mapped') thps++;
    else lastFail = r;
    // a result outside the whitelist (a failed allocation, SCAN_FAIL, SCAN_TRUNCATED, ...) ends the loop
    if (r !== 'succeed' && r !== 'pmd-mapped' && !COLLAPSE_GOES_ON.has(r)) break;
  }
  if (thps !== (hend - hstart) / n) throw new KernelError(collapseErrno(k, lastFail), `madvise collapse of '${vma.name}': ${thps} of ${(hend - hstart) / n} PMD range(s) collapsed (last scan result: ${lastFail})`);
}

/**
 * khugepaged (mm/khugepaged.c): its sysfs limits, and one scan pass over an mm. The scan sleep,
 * pages_to_scan and the mm_slot list are time, not state: a pass stands for "khugepaged got to
 * this mm" (khugepaged_scan_mm_slot()), visiting every PMD range of every VMA in the range once.
 */
export class Khugepaged {
  private set: Partial<KhugepagedLimits> = {};

  constructor(private readonly k: Kernel) {}

  /**
   * The current limits. khugepaged_init(): max_ptes_none = HPAGE_PMD_NR - 1, max_ptes_swap =
   * HPAGE_PMD_NR / 8, max_ptes_shared = HPAGE_PMD_NR / 2 (511 / 64 / 256 with 4 KiB pages on x86).
   */
  get limits(): KhugepagedLimits {
    const n = this.k.vm.pmdPages;
    return { maxPtesNone: this.set.maxPtesNone ?? n - 1, maxPtesSwap: this.set.maxPtesSwap ?? n / 8, maxPtesShared: this.set.maxPtesShared ?? n / 2 };
  }

  /**
   * echo N > .../khugepaged/max_ptes_{none,swap,shared} (max_ptes_*_store(): -EINVAL above
   * HPAGE_PMD_NR - 1). max_ptes_shared arrived with the sharing it limits ("khugepaged:
   * introduce 'max_ptes_shared' tunable", 71a2c112a0f6, v5.8): ENOENT before.
   */
  configure(a: Partial<KhugepagedLimits>): void {
    const n = this.k.vm.pmdPages;
    if (a.maxPtesShared !== undefined && !kernelAtLeast(this.k.version, 5, 8)) throw new KernelError('ENOENT', 'khugepaged/max_ptes_shared does not exist before v5.8 (71a2c112a0f6)');
    for (const key of ['maxPtesNone', 'maxPtesSwap', 'maxPtesShared'] as const) {
      const v = a[key];
      if (v === undefined) continue;
      // kstrtoul() takes no negative number, max_ptes_*_store() nothing above HPAGE_PMD_NR - 1
      if (!Number.isInteger(v) || v < 0 || v > n - 1) throw new KernelError('EINVAL', `khugepaged ${key} ${v} is not a whole number from 0 to HPAGE_PMD_NR - 1 = ${n - 1} (max_ptes_*_store)`);
    }
    this.set = { ...this.set, ...a };
  }

  /**
   * khugepaged_scan_mm_slot() over the VMAs of mm in [start, end): a VMA hugepage_vma_check()
   * refuses with sysfs enforced (no VM_HUGEPAGE under `enabled=madvise`, VM_NOHUGEPAGE, DAX; for
   * shmem shmem_enabled / huge=, for a disk file CONFIG_READ_ONLY_THP_FOR_FS and no writer) is
   * passed over; in the others every PMD-aligned range (hstart = round_up(vm_start), hend =
   * round_down(vm_end)) goes through hpage_collapse_scan_pmd() with is_khugepaged
   * (khugepaged_scan_pmd() before v6.1), or for a shmem or file VMA (vm_file set)
   * hpage_collapse_scan_file(). Nothing is reported: the outcome is the page tables and the page
   * cache. Returns the scan results.
   */
  *scan(mm: Mm, start: number, end: number): Op<ScanResult[]> {
    const k = this.k;
    const n = k.vm.pmdPages;
    const results: ScanResult[] = [];
    const vmas = vmasIn(mm, start, end);
    for (const vma of vmas) {
      const file = collapsibleCache(vma);
      if (file ? !fileVmaAllowsCollapse(k, vma, file, true) : !vmaAllowsCollapse(k, vma, true)) continue;
      const hstart = Math.ceil(Math.max(vma.start, start) / n) * n;
      const hend = Math.min(vma.start + vma.pages, end);
      for (let addr = hstart; addr + n <= hend; addr += n) {
        // hugepage_vma_revalidate(): the collapse drops mmap_lock, and another thread may have changed the VMA meanwhile
        if (k.vm.vmaAt(mm, addr) !== vma) break;
        results.push(file ? yield* collapseFileRange(k, vma, file, addr, { isKhugepaged: true }) : yield* collapseRange(k, vma, addr, { isKhugepaged: true }));
      }
    }
    return results;
  }
}

interface ScanOutcome {
  readonly result: ScanResult;
  /** is_swap_pte() entries the collapse swaps in first (`unmapped`) */
  readonly swapped: number[];
  /** a guard marker in the old scan (before v6.18): __collapse_huge_page_swapin() fails on it */
  readonly guard: boolean;
}

/**
 * hpage_collapse_scan_pmd() (khugepaged_scan_pmd() before v6.1) over the PTEs of the PMD range at
 * base, and with `isolate` the re-check __collapse_huge_page_isolate() makes once swap entries are
 * swapped in (same none/zero, shared, refcount and writable rules). Per PTE, in the kernel's order:
 * - is_swap_pte(): counted as `unmapped`; more than max_ptes_swap (khugepaged only) is
 *   SCAN_EXCEED_SWAP_PTE; a uffd-wp swap entry or marker SCAN_PTE_UFFD_WP; a guard marker see
 *   below; other non-present entries (device-private/exclusive, migration) are not modelled;
 * - none or the zero page: counted; on a userfaultfd-armed VMA, or above max_ptes_none
 *   (khugepaged only), SCAN_EXCEED_NONE_PTE;
 * - a uffd-wp PTE is SCAN_PTE_UFFD_WP; pte_write() makes the range `writable`;
 * - vm_normal_page() none or ZONE_DEVICE: SCAN_PAGE_NULL; not anon: SCAN_PAGE_ANON;
 * - a page mapped more than once (page_mapcount() > 1, v5.8 "khugepaged: allow to collapse a page
 *   shared across fork"; folio_likely_mapped_shared() later, the same answer for the cases here)
 *   counts as shared; above max_ptes_shared (khugepaged only) SCAN_EXCEED_SHARED_PTE;
 * - the folio's references must be its mappings plus the swap cache's (is_refcount_suitable(),
 *   v5.8): a GUP get or pin is SCAN_PAGE_COUNT. Before v5.8 (v5.4) a compound page is
 *   SCAN_PAGE_COMPOUND and the page must have one reference (+ swap cache): page_count() !=
 *   1 + PageSwapCache(), so a page shared over fork is SCAN_PAGE_COUNT;
 * - khugepaged counts young pages (`referenced`): the model keeps no accessed bit and every
 *   present PTE was mapped by a fault or a swap-in, i.e. young, so each normal page counts.
 * Then: no writable PTE is SCAN_PAGE_RO; for khugepaged no young page, or swap entries with fewer
 * than HPAGE_PMD_NR / 2 young pages, is SCAN_LACK_REFERENCED_PAGE (in __collapse_huge_page_swapin()
 * before v6.1: "no swapin, referenced < 50%", the same outcome).
 */
function scanPmd(k: Kernel, vma: Vma, base: number, cc: CollapseControl): ScanOutcome {
  const mm = vma.mm;
  const n = k.vm.pmdPages;
  const limits = k.thp.khugepaged.limits;
  const sharing = kernelAtLeast(k.version, 5, 8);
  const armed = vma.flags.uffdMissing === true || vma.flags.uffdWp === true || vma.flags.uffdMinor === true;
  const swapped: number[] = [];
  const folios = new Set<number>();
  let guard = false;
  let noneOrZero = 0;
  let shared = 0;
  let referenced = 0;
  let writable = false;
  const out = (result: ScanResult): ScanOutcome => ({ result, swapped, guard });
  for (let v = base; v < base + n; v++) {
    const pte = mm.ptes.get(v);
    if (pte && nonPresent(pte)) {
      if (pte.guard) {
        // a guard marker (mm/guard.ts) is a swap PTE to the scan: MADV_COLLAPSE used to go past it
        // and fail at __collapse_huge_page_swapin() (do_swap_page: VM_FAULT_SIGSEGV -> SCAN_FAIL);
        // "mm/khugepaged: abort collapse scan on guard PTEs" (Sep 2025, v6.18 [M]) stops the scan
        // there: SCAN_PTE_NON_PRESENT. Both are EINVAL, but only the old scan lets a later page's
        // result (an unexpected reference: EAGAIN) come first
        if (kernelAtLeast(k.version, 6, 18)) return out('pte-non-present');
        guard = true;
        continue;
      }
      if (pte.swap === undefined && pte.uffdWp !== true) throw KernelError.unsupported('EINVAL', `collapse: page ${v} of ${mm.name} holds a device, migration or poison entry; its swap-in by __collapse_huge_page_swapin() is not modelled`);
      if (cc.isKhugepaged && swapped.length + 1 > limits.maxPtesSwap) return out('exceed-swap-pte');
      // a uffd-wp swap entry is never swapped in for a collapse ("khugepaged: skip collapse if
      // uffd-wp detected", v5.7, with pte_uffd_wp() below; pte_swp_uffd_wp_any()
      // adds the PTE markers from v5.19)
      if (pte.uffdWp === true) return out('pte-uffd-wp');
      swapped.push(v);
      continue;
    }
    if (!pte || (pte.special && k.isZeroPfn(pte.pfn))) {
      noneOrZero++;
      if (armed || (cc.isKhugepaged && noneOrZero > limits.maxPtesNone)) return out('exceed-none-pte');
      continue;
    }
    if (pte.uffdWp === true) return out('pte-uffd-wp');
    if (pte.write) writable = true;
    const page = k.vm.normalPage(pte, pte.pfn);
    if (page === null || k.folios.kind(page) !== 'ram') return out('page-null');
    const head = k.folios.folio(page);
    if (!k.folios.isAnon(head)) return out('page-anon');
    if (!sharing) {
      // v5.4 khugepaged_scan_pmd(): PageCompound() and page_count() != 1 + PageSwapCache()
      if (k.folios.nr(head) > 1) return out('page-compound');
      if (k.folios.rc(head) !== 1 + (k.swap.inSwapCache(head) ? 1 : 0)) return out('page-count');
    } else if (k.vm.pageMapcount(page, head) > 1) {
      shared++;
      if (cc.isKhugepaged && shared > limits.maxPtesShared) return out('exceed-shared-pte');
    }
    if (!folios.has(head)) {
      folios.add(head);
      const swapCache = k.swap.inSwapCache(head) ? k.folios.nr(head) : 0;
      if (k.folios.rc(head) !== k.folios.mapcount(head) + swapCache) return out('page-count');
    }
    if (cc.isKhugepaged) referenced++;
  }
  if (!writable) return out('page-ro');
  if (cc.isKhugepaged && (referenced === 0 || (swapped.length > 0 && referenced < n / 2))) return out('lack-referenced-page');
  return out('succeed');
}

/**
 * The scan of the anonymous PMD range at base, then collapse_huge_page():
 * - find_pmd_or_thp_or_none(): a present PMD leaf is SCAN_PMD_MAPPED (done); no page table (no PTE
 *   in the range, as the model approximates pmd_none) is SCAN_PMD_NULL; then scanPmd();
 * - alloc_charge_folio() (SCAN_ALLOC_HUGE_PAGE_FAIL), then __collapse_huge_page_swapin() when the
 *   scan found swap entries: do_swap_page() as a read fault (FAULT_FLAG_ALLOW_RETRY, no write) for
 *   each, the same swap-in a touch would do (mm/swap.ts); then __collapse_huge_page_isolate()
 *   re-checks the range;
 * - the range's PTEs are cleared and flushed (pmdp_collapse_flush() under MMU_NOTIFY_CLEAR), each
 *   page copied into the new folio (__collapse_huge_page_copy(): a none or zero PTE gives a zeroed
 *   subpage) and its old mapping and reference dropped (folio_remove_rmap_pte +
 *   free_page_and_swap_cache: an unmapped swap-cache folio leaves the swap cache), and the new
 *   folio mapped by a dirty PMD, writable when the VMA is (maybe_pmd_mkwrite(pmd_mkdirty())),
 *   PageAnonExclusive (folio_add_new_anon_rmap), rc 1 and entire mapcount 1. An anonymous collapse
 *   never reuses the old folio, even when the range was one PTE-mapped THP: pages still mapped by
 *   a fork child (or parent) stay theirs.
 */
function* collapseRange(k: Kernel, vma: Vma, base: number, cc: CollapseControl): Op<ScanResult> {
  const mm = vma.mm;
  const n = k.vm.pmdPages;
  const pmd = mm.pmds.get(base);
  // find_pmd_or_thp_or_none(): a non-present PMD (a migration or device-private entry) is
  // SCAN_PMD_NULL; a present huge PMD is pmd_trans_huge(), the huge zero page's included:
  // SCAN_PMD_MAPPED, which madvise_collapse() counts as collapsed
  if (pmd) return pmd.migration || pmd.devicePrivate ? 'pmd-null' : 'pmd-mapped';
  let any = false;
  for (let v = base; v < base + n && !any; v++) any = mm.ptes.has(v);
  if (!any) return 'pmd-null';
  const scan = scanPmd(k, vma, base, cc);
  if (scan.result !== 'succeed') return scan.result;
  // collapse_huge_page(): the swap-in of the marker fails (the model checks it before
  // alloc_charge_folio(), which the kernel calls first: only an allocation failure would differ)
  if (scan.guard) return 'fail';
  const hpage = k.ram.allocAnonLarge(k.vm.anonVmaPrepare(vma), Math.log2(n));
  if (hpage === null) return 'alloc-huge-page-fail';
  const drop = (why: string): void => k.folios.put(hpage, 1, why);
  if (scan.swapped.length > 0) {
    for (const v of scan.swapped) {
      const leaf = k.vm.lookup(mm, v);
      if (!leaf?.pte.swap) continue; // gone since the scan (pte_same() in do_swap_page)
      yield* k.swap.fault({ vma, vpn: v, pgoff: vma.pgoff + (v - vma.start), write: false }, leaf);
    }
    // __collapse_huge_page_isolate() under the PMD lock, on what the swap-in left
    const again = scanPmd(k, vma, base, cc);
    const left = again.result === 'succeed' && again.swapped.length > 0 ? 'pte-non-present' : again.result;
    if (left !== 'succeed') {
      drop('collapse_huge_page: folio_put after a failed isolate');
      return left;
    }
  }
  const ptes: [number, Pte][] = [];
  for (let v = base; v < base + n; v++) {
    const pte = mm.ptes.get(v);
    if (pte) ptes.push([v, pte]);
  }
  k.mmuNotify({ mm, start: base, end: base + n, event: 'clear', owner: null });
  // pmdp_collapse_flush() takes the page table away before __collapse_huge_page_isolate() counts
  // the references (the model's scan above, in the same step: every release orders them so). A
  // GUP-fast walk that read a PTE before and grabs after finds its entry still in the detached
  // table (Mm.collapsing) until the copy clears it: only the PMD re-check (70cbc3cc78a9) or a
  // flush that waits for GUP-fast (Mmu.collapseFlushWaitsForGupFast) keeps it off the old page
  mm.collapsing = base;
  yield preempt('collapse_huge_page: copy');
  delete mm.collapsing;
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
    // free_page_and_swap_cache() / free_swap_cache(): an unmapped swap-cache folio leaves the cache
    k.swap.freeSwapCache(head);
    k.folios.put(head, 1, '__collapse_huge_page_copy: free_page_and_swap_cache');
  }
  k.emit('tlb.flush', { mm: mm.name });
  k.folios.addMap(hpage);
  k.vm.install(mm, base, k.faults.pte(hpage, 'pmd', { write: vma.flags.write, dirty: true }));
  return 'succeed';
}

/**
 * The page cache a VMA maps that collapse_file() works on: shmem (shmem_file(): memfds and
 * shared anonymous memory) or a regular file of a disk filesystem (CONFIG_READ_ONLY_THP_FOR_FS).
 * hugetlbfs (VM_HUGETLB is in VM_NO_KHUGEPAGED) and secretmem (open for write, no THP) never.
 */
function collapsibleCache(vma: Vma): PageCacheFile | null {
  const f = vma.cacheFile;
  if (vma.kind !== 'pagecache' || !f || f.hugetlb || f.secretmem) return null;
  return f;
}

/**
 * inode_is_open_for_write() as the model can tell it: a `tmpfile` keeps its mkstemp() descriptor
 * (O_RDWR) open; any other disk file is open for write while a shared writable mapping of it
 * exists (the model has no file descriptor modes: such a mapping needed an O_RDWR one, and a
 * private or read-only mapping is taken to come from an O_RDONLY one).
 */
function openForWrite(file: PageCacheFile): boolean {
  if (file.readPage === undefined) return true;
  for (const vma of file.mapping.mmaps) if (vma.flags.shared && vma.flags.write) return true;
  return false;
}

/**
 * hugepage_vma_check() / thp_vma_allowable_order() for a VMA of a shmem or disk file: not
 * vma_thp_disabled() (as for anonymous memory), THP on this MMU, and thp_vma_suitable_order() for the last PMD of the VMA (a
 * PMD-aligned range inside it, vm_start - vm_pgoff PMD-aligned so the file's huge folios line
 * up). Then:
 * - shmem: shmem_huge_enabled(vma, shmem_huge_force = !enforce_sysfs) (mm/pagecache.ts shmemHuge:
 *   MADV_COLLAPSE ignores shmem_enabled and huge=, khugepaged follows them);
 * - a regular file: with sysfs enforced the global `enabled` (Thp.globalAllows: always, or madvise and VM_HUGEPAGE),
 *   then file_thp_enabled(): CONFIG_READ_ONLY_THP_FOR_FS, S_ISREG and !inode_is_open_for_write();
 *   before eb6ecbed0aa2 "mm, thp: relax the VM_DENYWRITE constraint on file-backed THPs" (v5.14 [M]) the VMA
 *   had to be VM_DENYWRITE, which only execve()'s own mappings of the binary were (never here),
 *   and until 7fbb5e188248 "mm: remove VM_EXEC requirement for THP eligibility" (v6.8) VM_EXEC (PROT_EXEC).
 */
function fileVmaAllowsCollapse(k: Kernel, vma: Vma, file: PageCacheFile, enforceSysfs: boolean): boolean {
  const n = k.vm.pmdPages;
  const end = vma.start + vma.pages;
  const base = end - n - ((end - n) % n);
  const suitable = base >= vma.start && base + n <= end && (vma.start - vma.pgoff) % n === 0;
  if (k.thp.disabled(vma, !enforceSysfs) || vma.flags.pfnmap || vma.flags.mixedmap || vma.flags.io || k.mmu.transparentHugepage === false || !suitable) return false;
  if (!file.writeback) return k.pageCache.shmemHuge(vma, file, vma.pgoff, !enforceSysfs);
  if (enforceSysfs && !k.thp.globalAllows(vma)) return false;
  if (!k.features['read-only-thp-for-fs'] || openForWrite(file)) return false;
  if (!kernelAtLeast(k.version, 5, 14)) return false;
  return kernelAtLeast(k.version, 6, 8) || vma.flags.exec === true;
}

/** Whether the page-cache folio caching index is dirty: PG_dirty, or a dirty PTE/PMD of a VMA mapping it (moved to the folio when it is unmapped). */
function cacheFolioDirty(k: Kernel, file: PageCacheFile, index: number, head: number): boolean {
  if ((k.folios.flags(head) & PG.dirty) !== 0) return true;
  for (const vma of file.mapping.mmaps) {
    const vpn = vma.start + (index - vma.pgoff);
    if (vpn < vma.start || vpn >= vma.start + vma.pages) continue;
    const leaf = k.vm.lookup(vma.mm, vpn);
    if (leaf && !nonPresent(leaf.pte) && leaf.pte.dirty && k.folios.folio(k.vm.pfnAt(leaf, vpn)) === head) return true;
  }
  return false;
}

/**
 * A large folio in the range: a PMD-order one starting at `start` only needs mapping
 * (SCAN_PTE_MAPPED_HUGEPAGE: 58ac9a8993a1 "mm/khugepaged: attempt to map file/shmem-backed
 * pte-mapped THPs by pmds", v6.1, with the file/shmem MADV_COLLAPSE series); anything else, and
 * every large folio before, is SCAN_PAGE_COMPOUND.
 */
function largeFolioResult(k: Kernel, file: PageCacheFile, start: number, head: number): ScanResult {
  const pmdOrder = k.folios.nr(head) === k.vm.pmdPages && file.cache.get(start) === head;
  return pmdOrder && kernelAtLeast(k.version, 6, 1) ? 'pte-mapped-hugepage' : 'page-compound';
}

/**
 * hpage_collapse_scan_file() (khugepaged_scan_file() before v6.1) over the page cache of
 * [start, start + HPAGE_PMD_NR): the cached folios, in index order. A large folio ends the scan:
 * a PMD-order one starting at `start` is SCAN_PTE_MAPPED_HUGEPAGE (it only needs mapping), any
 * other SCAN_PAGE_COMPOUND; a folio with references beyond the cache's and its mappings
 * (folio_ref_count() != 1 + folio_mapcount(): a GUP pin or get) SCAN_PAGE_COUNT. Holes are not
 * visited: for khugepaged fewer than HPAGE_PMD_NR - max_ptes_none cached pages is
 * SCAN_EXCEED_NONE_PTE (MADV_COLLAPSE has no limit). shmem swap entries are not modelled.
 */
function scanFile(k: Kernel, file: PageCacheFile, start: number, cc: CollapseControl): ScanResult {
  const n = k.vm.pmdPages;
  let present = 0;
  for (let index = start; index < start + n; index++) {
    const pfn = file.cache.get(index);
    if (pfn === undefined) continue;
    const head = k.folios.folio(pfn);
    if (k.folios.nr(head) > 1) return largeFolioResult(k, file, start, head);
    if (k.folios.rc(head) !== 1 + k.folios.mapcount(head)) return 'page-count';
    present++;
  }
  if (cc.isKhugepaged && present < n - k.thp.khugepaged.limits.maxPtesNone) return 'exceed-none-pte';
  return 'succeed';
}

/**
 * collapse_file() (mm/khugepaged.c; collapse_shmem() for tmpfs only before v5.4): a new PMD-order
 * folio (alloc_charge_folio: SCAN_ALLOC_HUGE_PAGE_FAIL) replaces the range's order-0 folios in the
 * page cache. Per index, in order:
 * - shmem: a hole (nr_none) becomes a zeroed subpage, unless the whole range is empty
 *   (SCAN_TRUNCATED); a folio fallocate() left !uptodate is instantiated (shmem_get_folio);
 * - a regular file: an uncached page is read in (page_cache_sync_readahead(): the model reads the
 *   one page); a dirty folio is SCAN_FAIL ("khugepaged only works on read-only fd": filemap_flush()
 *   starts its writeback for a later visit; the model does no writeback, so it stays dirty);
 * - a large folio: SCAN_PTE_MAPPED_HUGEPAGE (PMD order at start) or SCAN_PAGE_COMPOUND;
 * - a mapped folio is unmapped from every VMA (try_to_unmap(TTU_IGNORE_MLOCK)), and then its
 *   references must be the cache's alone (folio_ref_count() != 3 with collapse_file's own two:
 *   SCAN_PAGE_COUNT; the unmapping is not undone).
 * A regular file open for write is SCAN_FAIL (inode_is_open_for_write() after
 * filemap_nr_thps_inc()). A shmem range with holes in a file some VMA has registered for
 * userfaultfd MISSING faults is SCAN_EXCEED_NONE_PTE (userspace may be waiting for those faults).
 * Then the data is copied, the new folio goes into the cache (mm/pagecache.ts replaceWithLarge;
 * shmem marks it dirty) and retract_page_tables() drops the now empty PTE tables of the VMAs
 * that could map it by a PMD; nothing maps the new folio yet. khugepaged's result is
 * SCAN_SUCCEED (the next fault maps the PMD); MADV_COLLAPSE's SCAN_PTE_MAPPED_HUGEPAGE, for
 * collapse_pte_mapped_thp() to map it in the caller's mm.
 */
function* collapseFile(k: Kernel, vma: Vma, file: PageCacheFile, start: number, cc: CollapseControl): Op<ScanResult> {
  const n = k.vm.pmdPages;
  const shmem = !file.writeback;
  const hpage = k.ram.allocFileLarge(mappingOf(file.mapping.id), start, Math.log2(n), k.numa.fileNode(file, start));
  if (hpage === null) return 'alloc-huge-page-fail';
  const fail = (r: ScanResult): ScanResult => {
    k.folios.put(hpage, 1, 'collapse_file: folio_put of the new folio (rollback)');
    return r;
  };
  let nrNone = 0;
  for (let index = start; index < start + n; index++) {
    let pfn = file.cache.get(index);
    if (pfn === undefined) {
      if (shmem) {
        let any = false;
        for (let i = index; i < start + n && !any; i++) any = file.cache.has(i);
        if (index === start && !any) return fail('truncated');
        nrNone++;
        continue;
      }
      // page_cache_sync_readahead() + filemap_lock_folio(): the page is read into the cache
      if (index >= file.pages) return fail('fail');
      try {
        pfn = k.pageCache.getFolio(file, index, 'collapse_file: page_cache_sync_readahead');
      } catch (e) {
        // the read failed (a bad sector): "!folio_test_uptodate(folio)" is SCAN_FAIL
        if (e instanceof KernelError && e.code === 'EIO') return fail('fail');
        throw e;
      }
      k.folios.put(k.folios.folio(pfn), 1, 'collapse_file: readahead reference');
    }
    const head = k.folios.folio(pfn);
    if (shmem && file.notUptodate.has(index)) file.notUptodate.delete(index); // shmem_get_folio(SGP_NOALLOC) zeroes it
    if (!shmem && cacheFolioDirty(k, file, index, head)) return fail('fail');
    if (k.folios.nr(head) > 1) return fail(largeFolioResult(k, file, start, head));
    if (k.folios.mapcount(head) > 0) yield* unmapCacheFolio(k, file, index, head);
    if (k.folios.rc(head) !== 1) return fail('page-count');
  }
  if (!shmem && openForWrite(file)) return fail('fail');
  if (nrNone > 0 && [...file.mapping.mmaps].some((v) => v.flags.uffdMissing === true)) return fail('exceed-none-pte');
  yield preempt('collapse_file: copy');
  for (let index = start; index < start + n; index++) {
    const old = file.cache.get(index);
    k.pages.data.set(hpage + (index - start), old === undefined ? '' : (k.pages.data.get(old) ?? ''));
  }
  k.pageCache.replaceWithLarge(file, start, hpage);
  if (shmem) k.folios.setFlag(hpage, PG.dirty, true);
  retractPageTables(k, file, start);
  return cc.isKhugepaged ? 'succeed' : 'pte-mapped-hugepage';
}

/**
 * try_to_unmap() of a page-cache folio in collapse_file(): every PTE of every VMA of the file
 * mapping it is cleared (MMU_NOTIFY_CLEAR), its rmap and reference dropped after the flush
 * (TTU_BATCH_FLUSH); a dirty PTE marks the folio dirty.
 */
function* unmapCacheFolio(k: Kernel, file: PageCacheFile, index: number, head: number): Op {
  for (const vma of [...file.mapping.mmaps]) {
    const vpn = vma.start + (index - vma.pgoff);
    if (vpn < vma.start || vpn >= vma.start + vma.pages) continue;
    const leaf = k.vm.lookup(vma.mm, vpn);
    if (!leaf || nonPresent(leaf.pte) || leaf.pte.level !== 'pte' || k.folios.folio(leaf.pte.pfn) !== head) continue;
    k.mmuNotify({ mm: vma.mm, start: vpn, end: vpn + 1, event: 'clear', owner: null });
    const pte = k.vm.clear(vma.mm, vpn, 'pte')!;
    if (pte.dirty) k.folios.setFlag(head, PG.dirty, true);
    k.folios.removeMap(head);
    k.emit('tlb.flush', { mm: vma.mm.name });
    k.folios.put(head, 1, 'try_to_unmap: folio_put');
  }
  yield* [];
}

/**
 * retract_page_tables() (mm/khugepaged.c; without mmap_lock from v6.6, "mm/khugepaged:
 * retract_page_tables() without mmap or vma lock"): each VMA of the file whose PMD-aligned span
 * maps the range at `start` loses its PTE table there (pmdp_collapse_flush(), pmd_none after),
 * so the next fault maps the huge folio by a PMD. Skipped: a VMA with an anon_vma (a private
 * mapping written to: its COW pages live in that table), one registered for uffd-wp, a span that
 * is not PMD-aligned or not inside the VMA, and one already mapped by a PMD or without a table.
 * A table still holding an entry (a marker) is left too.
 */
function retractPageTables(k: Kernel, file: PageCacheFile, start: number): void {
  const n = k.vm.pmdPages;
  for (const vma of [...file.mapping.mmaps]) {
    if (vma.anonVma !== 0 || vma.flags.uffdWp === true) continue;
    const addr = vma.start + (start - vma.pgoff);
    if (addr % n !== 0 || addr < vma.start || addr + n > vma.start + vma.pages) continue;
    if (vma.mm.pmds.has(addr) || !k.vm.pteTableAt(vma.mm, addr)) continue;
    let used = false;
    for (let v = addr; v < addr + n && !used; v++) used = vma.mm.ptes.has(v);
    if (used) continue;
    k.mmuNotify({ mm: vma.mm, start: addr, end: addr + n, event: 'clear', owner: null });
    k.vm.freePteTable(vma.mm, addr);
    k.emit('tlb.flush', { mm: vma.mm.name });
  }
}

/**
 * collapse_pte_mapped_thp() (mm/khugepaged.c, v5.4; install_pmd from 34488399fa08, v6.1) at the
 * PMD range `addr` of vma,
 * whose page cache already holds a PMD-order folio there: a PMD leaf is SCAN_PMD_MAPPED; the VMA
 * check is thp_vma_allowable_order() without sysfs (a fault would map the folio whole anyway);
 * uffd-wp keeps its PTE table (SCAN_PTE_UFFD_WP); a folio that is not PMD-order at that index is
 * SCAN_PAGE_COMPOUND. With a PTE table, every present PTE must map the folio's own subpage (a swap
 * entry: SCAN_PTE_NON_PRESENT; a COW copy or another page: SCAN_FAIL); they are cleared (rmap and
 * reference dropped) and the table freed. Then, for MADV_COLLAPSE, set_huge_pmd() maps the folio
 * (do_set_pmd(): mm/pagecache.ts setPmd, its refusals SCAN_FAIL); khugepaged leaves it to the next fault.
 */
function* collapsePteMappedThp(k: Kernel, vma: Vma, file: PageCacheFile, addr: number, installPmd: boolean): Op<ScanResult> {
  const n = k.vm.pmdPages;
  const mm = vma.mm;
  if (k.vm.vmaAt(mm, addr) !== vma || addr < vma.start || addr + n > vma.start + vma.pages) return 'vma-check';
  const pmd = mm.pmds.get(addr);
  if (pmd) return pmd.migration ? 'pmd-null' : 'pmd-mapped';
  if (!fileVmaAllowsCollapse(k, vma, file, false)) return 'vma-check';
  if (vma.flags.uffdWp === true) return 'pte-uffd-wp';
  const index = vma.pgoff + (addr - vma.start);
  const pfn = file.cache.get(index);
  if (pfn === undefined) return 'page-null';
  const head = k.folios.folio(pfn);
  if (k.folios.nr(head) !== n || pfn !== head) return 'page-compound';
  if (k.vm.pteTableAt(mm, addr)) {
    const ptes: [number, Pte][] = [];
    for (let i = 0; i < n; i++) {
      const pte = mm.ptes.get(addr + i);
      if (!pte) continue;
      if (nonPresent(pte)) return 'pte-non-present';
      if (k.vm.normalPage(pte, pte.pfn) !== head + i) return 'fail';
      ptes.push([addr + i, pte]);
    }
    k.mmuNotify({ mm, start: addr, end: addr + n, event: 'clear', owner: null });
    for (const [v] of ptes) {
      k.vm.clear(mm, v, 'pte');
      k.folios.removeMap(head);
    }
    if (ptes.length > 0) k.folios.put(head, ptes.length, 'collapse_pte_mapped_thp: folio_ref_sub(nr_ptes)');
    k.vm.freePteTable(mm, addr);
    k.emit('tlb.flush', { mm: mm.name });
  }
  if (!installPmd) return 'succeed';
  // set_huge_pmd(): do_set_pmd() with no fault flags, then get_page() for the new mapping
  k.folios.get(head, 1, 'set_huge_pmd: get_page');
  if (k.pageCache.setPmd(vma, addr, head, false)) return 'succeed';
  k.folios.put(head, 1, 'set_huge_pmd: do_set_pmd fell back');
  return 'fail';
}

/**
 * One PMD range at addr of a shmem or file VMA, as khugepaged_scan_mm_slot() and
 * madvise_collapse() take it (the VMA itself, not the range's page tables, is what the scan reads):
 * hpage_collapse_scan_file(), then collapse_file(); SCAN_PTE_MAPPED_HUGEPAGE goes on to
 * collapse_pte_mapped_thp() with install_pmd for MADV_COLLAPSE only (khugepaged turns its
 * SCAN_PMD_MAPPED into SCAN_SUCCEED).
 */
function* collapseFileRange(k: Kernel, vma: Vma, file: PageCacheFile, addr: number, cc: CollapseControl): Op<ScanResult> {
  const start = vma.pgoff + (addr - vma.start);
  let r = scanFile(k, file, start, cc);
  if (r === 'succeed') r = yield* collapseFile(k, vma, file, start, cc);
  if (r !== 'pte-mapped-hugepage') return r;
  const again = yield* collapsePteMappedThp(k, vma, file, addr, !cc.isKhugepaged);
  return cc.isKhugepaged && again === 'pmd-mapped' ? 'succeed' : again;
}
