/**
 * Fault injection, the way the kernel's works (Documentation/fault-injection/): a call site asks
 * should_fail() before an allocation, and a test arms it. daxlab's sites are the allocations it
 * models; a scenario arms one with the `inject-fault` step, as a test writes N to
 * /proc/<pid>/fail-nth with fail_page_alloc enabled: the nth call at the site from then on
 * fails, and so do the `times - 1` calls after it.
 */
export const FAULT_SITES = {
  'page-alloc': 'alloc_page() for an anonymous page or a COW copy (do_anonymous_page, do_cow_fault, wp_page_copy, fork\'s early COW): the allocation returns NULL and the fault or fork fails with -ENOMEM (fail_page_alloc)',
  'insert-pgtable':
    "the page-table page vmf_insert_*() allocates when the fault's PMD has no PTE table yet (insert_page()/insert_pfn() -> get_locked_pte() -> __pte_alloc(), the allocation after __do_fault()'s prealloc_pte): the insert fails and the DAX fault returns VM_FAULT_OOM (fail_page_alloc with fail-nth)",
  'hugetlb-vmemmap-restore':
    "the vmemmap pages hugetlb_vmemmap_restore_folio() allocates for an HVO-optimised hugetlb page leaving its pool (alloc_vmemmap_page_list(), GFP_KERNEL | __GFP_RETRY_MAYFAIL): the restore fails with -ENOMEM and the page goes back to the pool as a surplus page (add_hugetlb_folio(h, folio, true))",
} as const;

export type FaultSite = keyof typeof FAULT_SITES;
export const FAULT_SITE_NAMES = Object.keys(FAULT_SITES) as FaultSite[];

interface Armed {
  /** calls to let through before the first failure */
  skip: number;
  /** failures left */
  times: number;
}

/** should_fail() per site; nothing fails until a site is armed. */
export class FaultInjection {
  private readonly armed = new Map<FaultSite, Armed>();
  /** failures injected so far, per site (what /proc/<pid>/fail-nth reads back as 0) */
  readonly injected = new Map<FaultSite, number>();

  /** Make the `nth` call at `site` from now fail, and the `times - 1` calls after it. */
  arm(site: FaultSite, nth = 1, times = 1): void {
    if (!Number.isInteger(nth) || nth < 1 || !Number.isInteger(times) || times < 1) throw new RangeError(`fault injection at ${site}: nth and times must be whole numbers >= 1`);
    this.armed.set(site, { skip: nth - 1, times });
  }

  /** Whether a call at `site` could fail now (lets a caller skip work when nothing is armed). */
  isArmed(site: FaultSite): boolean {
    return this.armed.has(site);
  }

  /** should_fail(): whether this call at `site` fails. */
  shouldFail(site: FaultSite): boolean {
    const a = this.armed.get(site);
    if (!a) return false;
    if (a.skip > 0) {
      a.skip--;
      return false;
    }
    if (--a.times === 0) this.armed.delete(site);
    this.injected.set(site, (this.injected.get(site) ?? 0) + 1);
    return true;
  }
}
