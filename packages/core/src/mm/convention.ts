import type { FeatureSet } from '../features.js';

/**
 * How fs-dax pages are reference-counted (seed 004). The convention decides what idle means,
 * what a DAX entry and a mapping hold, and which put wakes a truncate waiting for the page.
 * Whether a PTE holds a reference is the PTE's business (devmap PTEs never do, see
 * feature `pte-devmap`); the convention says whether it *should* (`mappingsHoldRefs`).
 */
export interface RefcountConvention {
  readonly name: string;
  /** _refcount of a free fs-dax page after memmap_init_zone_device() */
  readonly initialRefcount: number;
  /** lowest _refcount a live (bound) fs-dax page may have */
  readonly floor: number;
  /** whether, by this convention, each PTE/PMD mapping holds a reference and a mapcount */
  readonly mappingsHoldRefs: boolean;
  /** whether the DAX mapping entry holds a reference while the page is associated */
  readonly entryHoldsRef: boolean;
  /** dax_busy_page(): someone other than mappings and the entry holds the folio */
  isBusy(rc: number, mapcount: number): boolean;
  /** the condition break-layouts waits for */
  isIdle(rc: number): boolean;
  /** true when a put from `before` to `after` must wake_up_var() idle waiters */
  wakes(before: number, after: number): boolean;
}

/** Eras (a)/(b): put_devmap_managed_page() wakes on 2->1 (mm/memremap.c, mm/swap.c <= v6.14). */
export const legacyConvention: RefcountConvention = {
  name: 'legacy',
  initialRefcount: 1,
  floor: 1,
  mappingsHoldRefs: false,
  entryHoldsRef: false,
  // fs/dax.c dax_busy_page() (<= v6.14): any pfn with page_ref_count() > 1
  isBusy: (rc) => rc > 1,
  isIdle: (rc) => rc === 1,
  wakes: (before, after) => after === 1 && before > 1,
};

/** Era (c), v6.15+: idle at 0, free_zone_device_folio() wakes (fs/dax.c dax_page_is_idle). */
export const zeroBasedConvention: RefcountConvention = {
  name: 'zero-based',
  initialRefcount: 0,
  floor: 0,
  mappingsHoldRefs: true,
  entryHoldsRef: false,
  // fs/dax.c dax_busy_page() (v6.15+): folio_ref_count() - folio_mapcount() != 0
  isBusy: (rc, mapcount) => rc - mapcount !== 0,
  isIdle: (rc) => rc === 0,
  wakes: (_before, after) => after === 0,
};

/**
 * The alternative Dan Williams argued for in seed 004: dax_create_folio() allocates the folio
 * (0 -> 1) when the entry is created, mappings add theirs, and "DMA idle" is refcount 1,
 * like an idle page-cache page; deleting the entry drops the last reference.
 */
export const entryHoldsRefConvention: RefcountConvention = {
  name: 'entry-holds-ref',
  initialRefcount: 0,
  floor: 0,
  mappingsHoldRefs: true,
  entryHoldsRef: true,
  isBusy: (rc, mapcount) => rc - mapcount > 1,
  isIdle: (rc) => rc <= 1,
  wakes: (before, after) => after === 1 && before > 1,
};

/**
 * Feature `dax-wait-refcount-one`: the legacy thresholds (busy rc > 1, idle rc == 1) applied to
 * whatever counting the kernel does — the v1 series' dax_wait_page_idle() (== 1).
 */
function withRefcountOneWait(c: RefcountConvention): RefcountConvention {
  return {
    ...c,
    name: `${c.name}+refcount-one-wait`,
    isBusy: (rc) => rc > 1,
    isIdle: (rc) => rc === 1,
    wakes: (before, after) => (after === 1 && before > 1) || c.wakes(before, after),
  };
}

export function conventionFor(features: FeatureSet): RefcountConvention {
  const base =
    features['fsdax-refcount'] === 'legacy'
      ? legacyConvention
      : features['fsdax-refcount'] === 'zero-based'
        ? zeroBasedConvention
        : entryHoldsRefConvention;
  return features['dax-wait-refcount-one'] ? withRefcountOneWait(base) : base;
}
