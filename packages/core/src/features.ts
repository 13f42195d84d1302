import { InputError } from './errors.js';

/**
 * Kernel features: each a behaviour of the real kernel that changed at a known commit, switchable
 * on its own like a Kconfig option or a patch. Values are documented with the commit and the
 * mainline release that introduced them. Presets combine them the way mainline releases did
 * (not their later stable backports). Sources: shared/reference/kernel-reference.md sections
 * cited per feature, checked against the kernel source; [M] marks a release that was taken from
 * the commit date rather than read in that release's tree.
 */
export interface FeatureSpec {
  readonly name: string;
  readonly values: readonly (string | boolean)[];
  readonly summary: string;
  /** What each value means, with the kernel commit/release it corresponds to. */
  readonly meaning: Readonly<Record<string, string>>;
}

export const FEATURES = [
  {
    name: 'fsdax-refcount',
    values: ['legacy', 'zero-based', 'entry-holds-ref'],
    summary: 'how fs-dax pages are reference-counted (seed 004)',
    meaning: {
      legacy: 'idle at 1; PTE/PMD mappings hold no reference (devmap PTEs); put_page wakes waiters on 2->1 (put_devmap_managed_page, mm/memremap.c; <= v6.14)',
      'zero-based': 'idle at 0; each PTE/PMD mapping holds a reference and a mapcount; the DAX entry holds none; free_zone_device_folio wakes waiters at 1->0 ("fs/dax: Properly refcount fs dax pages", series "fs/dax: Fix ZONE_DEVICE page reference counts" v9, merged v6.15)',
      'entry-holds-ref': 'the alternative argued in seed 004 (Dan Williams): dax_create_folio() takes a reference when the entry is created (idle-but-tracked at 1), mappings add theirs, deleting the entry drops it; never merged',
    },
  },
  {
    name: 'devmem-extra-ref',
    values: [true, false],
    summary: 'device-private/coherent/p2pdma pages idle at refcount 1 with an extra reference (seeds 000/001)',
    meaning: {
      true: 'free device pages sit at rc 1, allocated at 2, ops->page_free on 2->1 (put_devmap_managed_page; <= v5.17)',
      false: 'in-use device pages hold no extra reference: ops->page_free on the 1->0 put (free_zone_device_page; 27674ef6c73f "mm: remove the extra ZONE_DEVICE struct page refcount", v5.18); free pages sit at rc 0 and the driver allocates with zone_device_page_init() (set 1, take a pgmap reference; ef233450898f "mm: free device private pages have zero refcount" and 0dc45ca1ce18, v6.1). v5.18-v6.0 reset a freed page to 1 instead; no preset covers those releases. GENERIC (device-dax) pages stay idle at 1 in every era (mm/mm_init.c __init_zone_device_page)',
    },
  },
  {
    name: 'foll-pin',
    values: [true, false],
    summary: 'a DMA pin is counted as a pin (FOLL_PIN), not as a plain page reference',
    meaning: {
      true: 'pin_user_pages*() adds GUP_PIN_COUNTING_BIAS to a small folio\'s _refcount, or 1 plus _pincount on a large one, and page_maybe_dma_pinned() can tell a pinned page (3faa52c03f44 "mm/gup: track FOLL_PIN pages" and 47e29d32afba "mm/gup: page->hpage_pinned_refcount: exact pin counts for huge pages", v5.7 [M])',
      false: 'no pin accounting: drivers pinned DMA pages with get_user_pages[_fast]() (FOLL_GET), one reference per page, and nothing can tell a pinned page from a referenced one; pin_user_pages() first appeared in v5.6 (eddb1c228f79) still counting as FOLL_GET (v5.6 and earlier [M])',
    },
  },
  {
    name: 'fork-cow-pinned',
    values: [true, false],
    summary: 'fork copies maybe-DMA-pinned anonymous pages eagerly (seed 002)',
    meaning: {
      true: 'copy_present_page() copies an anon page for the child when mm->has_pinned and page_maybe_dma_pinned() (70e806e4e645 "mm: Do early cow for pinned pages during fork() for ptes", v5.9 [M]); later page_try_dup_anon_rmap() -EBUSY (v5.19). hugetlb pages only from v5.12 (4eae4efa2c29 "hugetlb: do early cow when page pinned on src mm"): with this value, a v5.10 kernel still shares them (mm/hugetlb.ts asks the release)',
      false: 'fork shares every anon page and write-protects both PTEs; a later write fault in the parent moves it away from the pin (v5.8 and earlier)',
    },
  },
  {
    name: 'gup-fast-fork-seq',
    values: [true, false],
    summary: 'GUP-fast FOLL_PIN checks mm->write_protect_seq against a concurrent fork',
    meaning: {
      true: 'lockless GUP-fast samples write_protect_seq, bails if a fork is copying, and unpins if one ran meanwhile (57efa1fe5957 "mm/gup: prevent gup_fast from racing with COW during fork", v5.11 [M]; mm/gup.c lockless_pages_from_mm)',
      false: 'no sequence count: a GUP-fast pin can land between fork deciding to share a page and write-protecting it (v5.10 and earlier)',
    },
  },
  {
    name: 'gup-fast-pmd-recheck',
    values: [true, false],
    summary: 'GUP-fast re-checks the PMD it walked, not only the PTE, after taking its reference',
    meaning: {
      true: 'gup_fast_pte_range() backs off when the PMD changed since it was read, as when collapse_huge_page() took the page table away (70cbc3cc78a9 "mm: gup: fix the fast GUP race against THP collapse", Sep 2022: v6.1 [M], also in 5.10/5.15 stable)',
      false: 'only the PTE is re-checked: where the collapse flush does not wait for GUP-fast (arm64, s390), a reference taken after the collapse counted them pins the old small page while the process maps the new huge one (v5.10 and earlier)',
    },
  },
  {
    name: 'wp-reuse',
    values: ['mapcount', 'refcount', 'anon-exclusive'],
    summary: 'when do_wp_page() reuses an anonymous page instead of copying it',
    meaning: {
      mapcount: 'reuse when the page is mapped once (reuse_swap_page(); <= v5.8)',
      refcount: 'reuse only when page_count() == 1 (09854ba94c6a "mm: do_wp_page() simplification", v5.9 [M]); a pinned page is always copied',
      'anon-exclusive': 'reuse when PageAnonExclusive, else when the refcount says nobody else holds it (6c287605fd56 "mm/memory: remember exclusively mapped anonymous pages with PG_anon_exclusive", v5.19 [M])',
    },
  },
  {
    name: 'thp-cow',
    values: ['copy-huge', 'split'],
    summary: 'what a write fault on a COW-shared anonymous THP mapped by a PMD does (do_huge_pmd_wp_page)',
    meaning: {
      'copy-huge': 'reuse when page_trans_huge_mapcount() == 1, else copy the whole THP into a new one (v5.7 and earlier)',
      split: 'reuse when the THP is mapped once (reuse_swap_page(), a mapcount test; page_count() == 1 from v5.18, PageAnonExclusive with `wp-reuse` anon-exclusive), else split the PMD and COW only the faulting PTE (3917c80280c9 "thp: change CoW semantics for anon-THP", v5.8)',
    },
  },
  {
    name: 'gup-unshare',
    values: ['off', 'anon', 'cow-mapping'],
    summary: 'a R/O FOLL_PIN on a R/O-mapped page first breaks COW (FAULT_FLAG_UNSHARE), so the pin stays coherent with the page table',
    meaning: {
      off: 'GUP pins whatever page is mapped: a later write fault in a COW mapping replaces it and the R/O pin reads stale data (v5.18 and earlier)',
      anon: 'gup_must_unshare(): R/O FOLL_PIN of an anon page that is not PageAnonExclusive faults with FAULT_FLAG_UNSHARE first (a7f226604170 "mm/gup: trigger FAULT_FLAG_UNSHARE when R/O-pinning a possibly shared anonymous page", v5.19 [M]); non-anon pages and the zero page are pinned as mapped',
      'cow-mapping': 'also R/O FOLL_LONGTERM pins of non-anon pages (shared zero page, page cache) in a COW mapping unshare into an exclusive anon page; GUP-fast, without the VMA, always falls back for them (84209e87c696 "mm/gup: reliable R/O long-term pinning in COW mappings" and 8d6a0ac09a16, v6.2 [M])',
    },
  },
  {
    name: 'mprotect-anon-writable',
    values: ['off', 'dirty', 'clean'],
    summary: 'mprotect(PROT_WRITE) maps a PageAnonExclusive page of a private mapping writable at once (the "mprotect() optimization" of cow.c)',
    meaning: {
      off: 'change_protection() leaves every PTE of a private mapping read-only; the next write faults (do_wp_page). Shared mappings with writenotify: dirty_accountable makes dirty PTEs writable, with the pre-fix soft-dirty test (pte_soft_dirty || !VM_SOFTDIRTY) (v5.19 and earlier)',
      dirty: 'can_change_pte_writable(): a dirty PTE of an exclusive anon page is made writable unless soft-dirty tracking needs the fault (vma_soft_dirty_enabled && !pte_soft_dirty); shared writenotify mappings as before, with the fixed soft-dirty test (64fe24a3e05e "mm/mprotect: try avoiding write faults for exclusive anonymous pages when changing protection" and 76aefad628aa "mm/mprotect: fix soft-dirty check in can_change_pte_writable()", v6.0 [M]); PMD leaves get newprot only',
      clean: 'also a clean PTE of an exclusive anon page; only shared mappings still need the dirty bit (d84887739d5c "mm/mprotect: allow clean exclusive anon pages to be writable"), and change_huge_pmd() upgrades PMD leaves by the same rules (can_change_pmd_writable(), "mm/huge_memory: try avoiding write faults when changing PMD protection"), both v6.2 [M]',
    },
  },
  {
    name: 'clear-refs-skip-pinned',
    values: [true, false],
    summary: 'clearing soft-dirty (clear_refs 4) leaves a writable, maybe-DMA-pinned anon PTE writable',
    meaning: {
      true: 'clear_soft_dirty() skips pte_is_pinned() PTEs: writable, in a COW mapping, mm MMF_HAS_PINNED, folio_maybe_dma_pinned() (fs/proc/task_mmu.c, 9348b73c2e1b, v5.11 [M])',
      false: 'every present PTE is write-protected, pinned or not, so the next write fault may copy the page away from the pin (v5.10 and earlier)',
    },
  },
  {
    name: 'compound-devmap',
    values: [true, false],
    summary: 'device-dax uses compound pages from its alignment (vmemmap_shift)',
    meaning: {
      true: 'dev_dax_probe() sets pgmap->vmemmap_shift = order_base_2(align >> PAGE_SHIFT) and memmap_init_zone_device() builds compound pages (c4386bd8ee3a "mm/memremap: add ZONE_DEVICE support for compound pages", v5.17 [M])',
      false: 'every device-dax page is an order-0 page (v5.16 and earlier)',
    },
  },
  {
    name: 'vmemmap-optimize',
    values: ['off', 'unguarded', 'arch-opt-in'],
    summary: 'compound devmap vmemmap tail-page reuse (seed 003)',
    meaning: {
      off: 'vmemmap_populate() maps every struct page (no compound devmap tail reuse)',
      unguarded: 'vmemmap_populate_compound_pages() whenever sizeof(struct page) is a power of two, the pgmap is compound and there is no altmap, on every arch (6fd3620b3428/4917f55b4ef9, the v9 series of Apr 2022: v5.19-v6.3 [M]; seed 003 dates the affected trees from v5.19 too): it maps the vmemmap through init_mm page tables, which the ppc64 hash MMU never walks for the vmemmap (bolted HPTEs): oops',
      'arch-opt-in': 'only where the arch selects ARCH_WANT_OPTIMIZE_VMEMMAP (vmemmap_can_optimize(), 87a7ae75d738 "mm/vmemmap/devdax: fix kernel crash when probing devdax devices", v6.4 [M])',
    },
  },
  {
    name: 'hugetlb-free-vmemmap',
    values: [false, true],
    summary: 'HugeTLB Vmemmap Optimization (HVO) switched on: hugetlb_free_vmemmap=on / vm.hugetlb_optimize_vmemmap=1',
    meaning: {
      false: 'vmemmap_optimize_enabled is off, the default of every release: CONFIG_HUGETLB_PAGE_OPTIMIZE_VMEMMAP_DEFAULT_ON (HUGETLB_PAGE_FREE_VMEMMAP_DEFAULT_ON before v5.19) is "default n" (fs/Kconfig); every hugetlb page keeps all its vmemmap pages',
      true: 'booted with hugetlb_free_vmemmap=on (v5.14+), or vm.hugetlb_optimize_vmemmap=1 (v5.19+) before the pool is filled: each page joining a hugetlb pool has its tail vmemmap pages remapped onto the reserved one and freed (hugetlb_vmemmap_optimize_folio), and they are allocated again when it leaves the pool (hugetlb_vmemmap_restore_folio); only where the arch and release have HVO (vmemmap/hugetlb.ts: x86-64 from v5.14, arm64 v5.19-v6.2, s390 v6.2-v6.17), elsewhere the parameter changes nothing',
    },
  },
  {
    name: 'dax-busy-mapping-mapped-check',
    values: [true, false],
    summary: 'dax_layout_busy_page_range() returns early when !mapping_mapped() (seed 004)',
    meaning: {
      true: 'no scan when the file has no VMA: a page pinned and then unmapped is never waited for (fs/dax.c dax_layout_busy_page_range, v4.18-v6.14)',
      false: 'the scan always runs ("fs/dax: Return unmapped busy pages from dax_layout_busy_page_range()", v6.15)',
    },
  },
  {
    name: 'pte-devmap',
    values: [true, false],
    summary: 'the PTE/PMD devmap bit is used for device pages',
    meaning: {
      true: 'fs-dax and device-dax install devmap PTEs/PMDs with vmf_insert_mixed()/vmf_insert_pfn_pmd(): vm_normal_page() returns NULL, no reference, no mapcount; GUP takes a pgmap reference (<= v6.14)',
      false: 'device pages are mapped as normal pages (vmf_insert_page_mkwrite(), vmf_insert_folio_pmd/pud(): folio_get + rmap) (v6.15; the bit itself was removed later, ~v6.17 [M])',
    },
  },
  {
    name: 'memunmap-waits-page-refs',
    values: [true, false],
    summary: 'memunmap_pages() waits until every page reference is gone',
    meaning: {
      true: 'memunmap_pages() put_page()s every page and waits for all per-page pgmap references: pins delay teardown, PTEs (no refs) do not (mm/memremap.c, <= v5.17)',
      false: 'FS_DAX/GENERIC per-folio pgmap refs are dropped in bulk and only other pgmap refs are waited for: pins do not delay teardown (v5.18+, 27674ef6c73f [M])',
    },
  },
  {
    name: 'migrate-device-range',
    values: [true, false],
    summary: 'a device-memory driver can migrate its in-use pages back to RAM before memunmap_pages() (hmm unbind)',
    meaning: {
      true: 'migrate_device_range()/migrate_device_pages()/migrate_device_finalize() evict every in-use device-private/coherent page of a chunk by pfn, then memunmap_pages() finds no page reference to wait for (series "Fix several device private page reference counting issues", mm/migrate_device.c, with lib/test_hmm.c dmirror_device_evict_chunk and HMM_DMIRROR_RELEASE; v6.1 [M])',
      false: 'only migrate_vma_*() by virtual address exists: a driver being removed cannot reach pages still mapped by processes, so memunmap_pages() waits for their references (v6.0 and earlier)',
    },
  },
  {
    name: 'device-fault-page-ref',
    values: [true, false],
    summary: 'a CPU fault on a device-private entry holds the page across ->migrate_to_ram()',
    meaning: {
      true: 'do_swap_page() re-checks the entry under the PTE lock (pte_same) and takes a page reference before calling pgmap->ops->migrate_to_ram(), dropped after (16ce101db85d "mm/memory.c: fix race when faulting a device private page", v6.1; CVE-2022-3523)',
      false: 'migrate_to_ram() runs on the page of an entry read without the PTE lock and with no reference: if the page was migrated or unmapped meanwhile the driver uses a freed page (v6.0 and earlier)',
    },
  },
  {
    name: 'device-exclusive',
    values: ['off', 'rmap', 'folio-walk'],
    summary: 'make_device_exclusive(): a device maps anonymous system pages atomically behind device-exclusive swap entries (hmm-tests.c exclusive*)',
    meaning: {
      off: 'no device-exclusive entries (before v5.14): HMM_DMIRROR_EXCLUSIVE does not exist',
      rmap: 'make_device_exclusive_range() (b756a3b5e7ea "mm: device exclusive memory access", v5.14 [M]): GUP(FOLL_GET | FOLL_WRITE | FOLL_SPLIT_PMD), then an rmap walk replaces every PTE of the folio with a SWP_DEVICE_EXCLUSIVE_WRITE/_READ entry and drops its mapcount (the entry keeps the reference); mprotect() makes a writable entry readable; restore_exclusive_pte() maps the page R/W (maybe_mkwrite(pte_mkdirty())) from a writable entry and adds the rmap back',
      'folio-walk': 'series "mm: fixes for device-exclusive entries (hmm)" (David Hildenbrand, in the MM pull for v6.15-rc1): make_device_exclusive() one page at a time through folio_walk (the one writable PTE, -EBUSY replaced by a retry), a single SWP_DEVICE_EXCLUSIVE type that mprotect() leaves alone, mapcount kept while the entry exists ("mm/rmap: keep mapcount untouched for device-exclusive entries"), restore_exclusive_pte() decides writability with can_change_pte_writable() and sets dirty only for a dirty folio',
    },
  },
  {
    name: 'dax-pre-remove-notify',
    values: [true, false],
    summary: 'kill_dax() tells the filesystem (MF_MEM_PRE_REMOVE) before a pmem device goes away',
    meaning: {
      true: 'the holder (XFS/ext4) invalidates and unmaps every DAX mapping before memunmap_pages() (fe2da7a52b9d-era "mm: pmem: notify on pre-remove", v6.6 [M])',
      false: 'kill_dax() only marks the dax device dead: user mappings of the fs survive the unbind (v6.5 and earlier)',
    },
  },
  {
    name: 'fsdax-reflink',
    values: [true, false],
    summary: 'XFS may share (reflink) extents between DAX files',
    meaning: {
      true: 'fsdax reflink/dedupe with PAGE_MAPPING_DAX_COW/SHARED share counts (v6.0 [M])',
      false: 'xfs_reflink_remap_prep() refuses DAX files with -EINVAL ("Don\'t share DAX file data for now", v5.10 fs/xfs/xfs_reflink.c)',
    },
  },
  {
    name: 'dax-shared-anon-alias',
    values: [true, false],
    summary: 'a shared fs-dax page is marked with PAGE_MAPPING_DAX_SHARED = 0x1 = PAGE_MAPPING_ANON (seed 004)',
    meaning: {
      true: 'page->mapping = 0x1 and page->share counts the files: folio_test_anon() is true for it (v6.0-v6.14)',
      false: 'shared = mapping NULL and share > 0 ("fs/dax: Remove PAGE_MAPPING_DAX_SHARED mapping flag", v6.15)',
    },
  },
  {
    name: 'longterm-fsdax-folio-check',
    values: [true, false],
    summary: 'folio_is_longterm_pinnable() refuses fs-dax folios (GUP-fast without the devmap bail)',
    meaning: {
      true: '"mm/gup: Don\'t allow FOLL_LONGTERM pinning of FS DAX pages" (v6.15): the fast path refuses fs-dax folios itself',
      false: 'only check_vma_flags() (slow path, -EOPNOTSUPP) and the pte_devmap bail of GUP-fast refuse fs-dax (<= v6.14)',
    },
  },
  {
    name: 'dax-delete-entries-before-wait',
    values: [false, true],
    summary: 'bug variant: truncate deletes the DAX entries before waiting for busy pages',
    meaning: {
      false: 'the busy-page scan and wait run while the entries still exist (break layouts, then truncate_pagecache / dax_delete_mapping_range), as every release does',
      true: 'steps 2 and 3 of the seed-004 proposal reversed: entries are gone, so the scan finds no busy page and nothing waits',
    },
  },
  {
    name: 'dax-wait-refcount-one',
    values: [false, true],
    summary: 'bug variant: dax_busy_page() tests rc > 1 and the wait is for rc == 1 whatever the convention',
    meaning: {
      false: 'busy/idle follow the convention (legacy rc > 1 / rc == 1; zero-based rc - mapcount != 0 / rc == 0)',
      true: 'the v1 series helper dax_wait_page_idle() (rc == 1) and "keep checking refcount > 1" applied to zero-based counting: a GET or a large-folio pin (rc 1) is missed',
    },
  },
  {
    name: 'dax-insert-failure-cleanup',
    values: [false, true],
    summary: 'a DAX fault whose vmf_insert_*() fails deletes the entry it associated (seed 004)',
    meaning: {
      false: 'dax_fault_iter() returns the insert\'s error and the entry stays, associating the page (v6.15: folio_ref_inc, vmf_insert_page_mkwrite() fails, folio_put() takes the page to 0 while tracked; every release does this)',
      true: 'the "full cleanup on vmf_insert_XXX() failure" agreed in seed 004 (Dan Williams: "not leaving a zero-referenced entry"; Alistair Popple: "deletion on insert failure makes sense"): the failed fault deletes the entry; never merged',
    },
  },
  {
    name: 'fuse-break-whole-file',
    values: [true, false],
    summary: 'FUSE truncate/punch break layouts over the whole file',
    meaning: {
      true: 'fuse_dax_break_layouts(inode, 0, -1) (7851bf649d42 "fuse: fix dax truncate/punch_hole fault path", v6.15)',
      false: 'fuse_dax_break_layouts(inode, 0, 0): only page index 0 is unmapped and scanned (6ae330cad6ef, v5.10-v6.14)',
    },
  },
  {
    name: 'mremap-devmap-pmd',
    values: [true, false],
    summary: 'mremap() treats a devmap (DAX) PMD as a huge leaf: moved whole or split, never walked as a PTE table',
    meaning: {
      true: 'move_page_tables() tests pmd_devmap() next to pmd_trans_huge() (5bfea2d9b17f "mm: Fix mremap not considering huge pmd devmap", v5.8; CVE-2020-10757): a DAX PMD the move covers only in part is split (zapped) first',
      false: 'x86 pmd_trans_huge() is false for a devmap PMD, so move_ptes() reads the DAX huge page as a page table: the kernel crashes (v5.7 and earlier; ndctl dax-pmd.c skips test_dax_remap before v5.8: "may crash")',
    },
  },
  {
    name: 'mremap-may-split-check',
    values: [true, false],
    summary: 'mremap() asks vm_ops->may_split() before moving part of a VMA',
    meaning: {
      true: 'move_vma() calls ->may_split() at both ends of the moved range before copy_vma(): a device-dax mapping refuses an address off its align with -EINVAL and nothing moves (73d5e0629919 "mremap: check if it\'s possible to split original vma", v5.11)',
      false: 'the copy is made and the page tables moved, then do_munmap() of the old range fails to split it; mremap() still returns the new address and both VMAs map the device (v5.10 and earlier; ndctl test_dax_remap: "got expected SIGBUS after mremap() of device-dax")',
    },
  },
  {
    name: 'migrate-device-thp',
    values: ['split', 'compound'],
    summary: 'what migrate_vma_setup() does with an anonymous THP in the range (mm/migrate_device.c migrate_vma_collect_pmd)',
    meaning: {
      split: 'a PMD-mapped THP is split whole first (split_huge_page() / split_folio(), -EBUSY with references beyond its mappings: the PMD range is skipped) and its base pages migrate; a THP already mapped by PTEs is not collected ("FIXME support THP": PageTransCompound, since migrate_vma arrived in v4.14) (v4.14-v6.15 and later [M])',
      compound: 'a THP mapped by PTEs is split during the walk (migrate_vma_split_folio()), and a driver passing MIGRATE_VMA_SELECT_COMPOUND (lib/test_hmm.c does) moves a PMD-mapped THP, the huge zero PMD or an empty PMD the range covers whole to a device-private THP behind a PMD-level device-private entry (migrate_vma_collect_huge_pmd / migrate_vma_collect_hole / migrate_vma_insert_huge_pmd_page; Balbir Singh\'s "mm: support device-private THP migration" series, 2025, merged after v6.15 [M]): a CPU fault brings it home whole (do_huge_pmd_device_private), fork shares it (copy_huge_pmd), a partial munmap/mprotect/mremap splits the entry into device-private PTEs and a fault or migration there splits the device folio (one that selects only device pages skips a PMD-mapped THP, as the kernel does); when the driver\'s huge allocation fails it falls back to base pages and migrate_vma_pages() splits the source (migrate_vma_split_unmapped_folio) or fills the hole page by page',
    },
  },
  {
    name: 'read-only-thp-for-fs',
    values: [false, true],
    summary: 'CONFIG_READ_ONLY_THP_FOR_FS: khugepaged and MADV_COLLAPSE may collapse the page cache of a regular file nobody has open for write',
    meaning: {
      false: 'not built (the Kconfig default, n): file_thp_enabled() is false, so only shmem and anonymous memory collapse',
      true: 'built (99cb0dbd47a1 "mm,thp: add read-only THP support for (non-shmem) FS", v5.4): collapse_file() builds PMD-sized folios in the page cache of a regular file that no one has open for write (and, per release, mapped VM_DENYWRITE before v5.14 [M] or VM_EXEC before v6.8, 7fbb5e188248); the khugepaged selftest\'s file tests need it',
    },
  },
  {
    name: 'secretmem',
    values: ['absent', 'disabled', 'enabled'],
    summary: 'memfd_secret(2) (mm/secretmem.c): whether the syscall exists and is enabled at boot (secretmem.enable)',
    meaning: {
      absent: 'no memfd_secret(): ENOSYS (before 1507f51255c9 "mm: introduce memfd_secret system call to create \"secret\" memory areas", v5.14)',
      disabled: 'the syscall exists but secretmem_enable defaults to 0: ENOSYS unless the kernel was booted with secretmem.enable=1 (v5.14-v6.4); setting the feature to enabled is that boot parameter',
      enabled: 'secretmem_enable defaults to 1 (b758fe6df50d "mm/secretmem: make it on by default", v6.5 [M]); the arch must still have it (Mmu.memfdSecretSince: ARCH_HAS_SET_DIRECT_MAP and the syscall-table entry), else ENOSYS',
    },
  },
  {
    name: 'pkey-sigframe',
    values: ['thread-register', 'all-keys'],
    summary: 'the protection-key rights the kernel writes a signal frame under (the signal handler itself always starts with the init register)',
    meaning: {
      'thread-register': "the frame goes on the stack (or sigaltstack) under the interrupted thread's own register: a stack whose key it denies makes setup_rt_frame() fail and force_sigsegv() kill the process (x86 before v6.12, arm64 POE in v6.12 [M])",
      'all-keys': 'every key is opened first (x86 sig_prepare_pkru() writes PKRU 0, 70044df250d0 "x86/pkeys: Update PKRU to enable all pkeys before XSAVE", v6.12 [M]; arm64 save_reset_user_access_state(), 2e8a1acea859 "arm64: signal: Improve POR_EL0 handling to avoid uaccess failures", v6.13 [M]) and the interrupted value is written into the frame for sigreturn; arm64 rt_sigreturn opens every key to read the frame too, x86 reads it under the handler\'s register. The v6.12 x86 frame held the opened value instead until 6a1853bdf178 and ae6012d72fa6 (v6.13, 6.12.5 stable) [M]; no preset is a v6.12',
    },
  },
  {
    name: 'io-strict-devmem',
    values: [true, false],
    summary: 'CONFIG_IO_STRICT_DEVMEM: /dev/mem may not touch iomem a driver has claimed, and (v5.8+) a claim revokes existing /dev/mem mappings',
    meaning: {
      true: 'built (90a545e98126 "restrict /dev/mem to idle io memory ranges", v4.5): iomem_is_exclusive() treats every IORESOURCE_BUSY range as exclusive, so devmem_is_allowed() refuses a range a driver requested (mmap of /dev/mem there: EPERM); from v5.8 (3234ac664a87 "/dev/mem: Revoke mappings when a driver claims the region") __request_region() also zaps the /dev/mem mappings of the claimed range (revoke_devmem(); revoke_iomem() in kernel/resource.c from v5.12), so the next access is SIGBUS. ndctl\'s test kernels and most distributions build it',
      false: 'not built (the Kconfig default, n): a busy range stays mappable through /dev/mem and nothing is revoked',
    },
  },
  {
    name: 'large-user-va',
    values: [false, true],
    summary: 'the wider user address space: x86-64 5-level paging (LA57), arm64 52-bit VA; mmap goes above the default window only for a hint above it or MAP_FIXED',
    meaning: {
      false: 'x86-64 with 4-level paging: TASK_SIZE and DEFAULT_MAP_WINDOW both (1 << 47) - PAGE_SIZE; arm64 with CONFIG_ARM64_VA_BITS_48: both 1 << 48 (ppc64 hash and s390 have one layout each: Mmu.userVa)',
      true: 'x86-64 with CONFIG_X86_5LEVEL on an LA57 CPU (77ef56e4f0fb and b569bab78d8d "x86/mm: Prepare to expose larger address space to userspace", v4.14 [M]): TASK_SIZE_MAX (1 << 56) - PAGE_SIZE, DEFAULT_MAP_WINDOW still (1 << 47) - PAGE_SIZE; arm64 with CONFIG_ARM64_VA_BITS_52 on a CPU with 52-bit VA: TASK_SIZE 1 << 52, DEFAULT_MAP_WINDOW 1 << VA_BITS_MIN (48; 47 with 16K pages), with 64K pages from 67e7fdfcc682 "arm64: mm: introduce 52-bit userspace support" (v5.0 [M]), with 4K and 16K pages (LPA2) from v6.9 [M] (the arm64 plugin refuses the cell before)',
    },
  },
  {
    name: 'ext4-dax-cow-journal',
    values: [false, true],
    summary: 'ext4\'s DAX fault handler takes a private (COW) write fault for a write to the file and starts a journal handle (xfstests generic/452)',
    meaning: {
      false: 'ext4_dax_huge_fault() counts a fault as a write only with FAULT_FLAG_WRITE on a VM_SHARED mapping: a COW fault takes just the fault lock, so it works on a read-only mount (fd96b8da68d3 "ext4: fix fault handling when mounted with -o dax,ro", v4.12 [M]: every preset)',
      true: 'before fd96b8da68d3: every FAULT_FLAG_WRITE fault takes sb_start_pagefault(), file_update_time() and ext4_journal_start_sb(), which fails on a read-only filesystem (ext4_journal_check_start(): EROFS), so the fault is VM_FAULT_SIGBUS: a program on -o dax,ro dies (\'Segmentation fault\' in the fix\'s report) when execve() or the program first writes its private data segment',
    },
  },
  {
    name: 'bio-release-pages',
    values: ['spanned', 'length'],
    summary: 'how many buffer-page references a direct I/O bio drops at completion per folio segment (__bio_release_pages(); selftests/mm/hugetlb_dio.c)',
    meaning: {
      spanned: 'one per page the segment touches, the pages the bio GUPed: bio_for_each_segment_all() releases each page up to v6.7; from 38b43539d64b "block: Fix page refcounts for unaligned buffers in __bio_release_pages()" (for-6.9/block, v6.9) the folio loop counts the pages from fi.offset to fi.offset + fi.length - 1 (every preset)',
      length: 'v6.8 only, between 1b151e2435fc "block: Remove special-casing of compound pages" (applied December 2023 for v6.8; backported to the stable trees) and its fix: bio_for_each_folio_all() releases one page per PAGE_SIZE of fi.length from the segment\'s first page (at least one), one too few when a multi-page segment of a large folio starts inside a page and its last page holds no more bytes than that offset: the last page keeps its pin, and a hugetlb folio never returns to the pool (hugetlb_dio case 4)',
    },
  },
  {
    name: 'hugetlb-cgroup',
    values: ['v1', 'v2', 'rsvd'],
    summary: 'the hugetlb cgroup controller (mm/hugetlb_cgroup.c): the hierarchies it offers and whether it counts reservations (selftests/mm/charge_reserved_hugetlb.sh, hugetlb_reparenting_test.sh)',
    meaning: {
      v1: 'cgroup v1 only ("mm/hugetlb: add new HugeTLB cgroup", v3.6 [M]): one counter per huge page size, charged when alloc_huge_page() takes a page (hugetlb.<size>.limit_in_bytes, usage_in_bytes, max_usage_in_bytes, failcnt), moved to the parent when a cgroup is removed (hugetlb_cgroup_css_offline()). No rsvd.* files: what mmap reserves is not charged (v5.4)',
      v2: 'also on cgroup v2 (faced7e0806c "mm: hugetlb controller for cgroups v2", v5.6 [M]): hugetlb.<size>.max, current, events, events.local below the root; still no reservation counters. No preset is v5.6',
      rsvd: 'plus a reservation counter per size (cdc2fcfea79b, 1adc4d419aa2, e9fe92ae0cd2 private mappings, 075a61d07a8e shared mappings, 08cf9faf7558 MAP_NORESERVE; v5.7): hugetlb_reserve_pages() charges what an mmap or shmget reserves to rsvd.* (over its limit the mmap is ENOMEM), an allocation that consumes no reservation charges it with the page; a private mapping\'s charge stays until its VMA closes, a shared file\'s until hole punch, truncate or eviction drops the region',
    },
  },
  {
    name: 'folio-split-misplaced-entries',
    values: [false, true],
    summary: 'a non-uniform folio_split() of a page-cache folio leaves xarray entries naming an after-split folio that is unfrozen before the right one is stored (selftests/mm/folio_split_race_test.c)',
    meaning: {
      false: 'every xarray entry of the folio keeps naming the original folio, frozen until each after-split folio is stored at its own index: a lockless filemap_get_entry() waits in folio_try_get() (uniform split: xas_split() of the original folio, every release; non-uniform: 577a1f495fd7 "mm/huge_memory: fix a folio_split() race condition with folio_try_get()", mm-hotfixes for v7.0 [M], Cc stable)',
      true: '__split_unmapped_folio() calls xas_try_split() with the after-split folio it is halving at each step, so the upper half\'s entries name that folio; __folio_split() unfreezes it before __xa_store() puts the right folio there, and a lookup in between takes it and maps folio_file_page() of the wrong folio: a wrong or all-zero page (00527733d0dc, used by truncate_inode_partial_folio() from 7460b470a131, both v6.15; effective only where the split is non-uniform: truncate and hole punch from v6.15, the split_huge_pages in_folio_offset form)',
    },
  },
  {
    name: 'fsdev-dax',
    values: [false, true],
    summary: 'the fsdev_dax driver (drivers/dax/fsdev.c, CONFIG_DEV_DAX_FSDEV): a device-dax instance bound for fs-dax use by famfs (daxctl reconfigure-device -m famfs)',
    meaning: {
      false: 'no third driver on the DAX bus: only device_dax and kmem bind a device-dax instance; ndctl test/daxctl-famfs.sh skips ("fsdev_dax module not available")',
      true: 'fsdev_dax_probe() (d5406bd458b0 "dax: add fsdev.c driver for fs-dax on character dax", with 099c81a1f0ab dax_operations and 700ecbc1f5aa dax_set_ops(); merged for v7.1 [M]): a MEMORY_DEVICE_FS_DAX pgmap with vmemmap_shift 0 (order-0 folios, stale compound state cleared by dax_folio_reset_order() at probe and unbind), no ->mmap in its file_operations (mmap of the chardev: ENODEV), pgmap->ops->memory_failure forwarding to dax_holder_notify_failure(); never bound automatically (dax_match_type())',
    },
  },
] as const satisfies readonly FeatureSpec[];

export type FeatureName = (typeof FEATURES)[number]['name'];
type SpecOf<N extends FeatureName> = Extract<(typeof FEATURES)[number], { name: N }>;
export type FeatureValue<N extends FeatureName> = SpecOf<N>['values'][number];
export type FeatureSet = { readonly [N in FeatureName]: FeatureValue<N> };
export type FeatureOverrides = { [N in FeatureName]?: FeatureValue<N> };

export interface Preset {
  readonly name: string;
  readonly release: string;
  readonly features: FeatureSet;
  /** Why each value is what it is in this release. */
  readonly notes: string;
}

const V5_4: FeatureSet = {
  'io-strict-devmem': false,
  'large-user-va': false,
  'fsdax-refcount': 'legacy',
  'foll-pin': false,
  'devmem-extra-ref': true,
  'fork-cow-pinned': false,
  'gup-fast-fork-seq': false,
  'gup-fast-pmd-recheck': false,
  'wp-reuse': 'mapcount',
  'thp-cow': 'copy-huge',
  'gup-unshare': 'off',
  'mprotect-anon-writable': 'off',
  'clear-refs-skip-pinned': false,
  'compound-devmap': false,
  'vmemmap-optimize': 'off',
  'hugetlb-free-vmemmap': false,
  'dax-busy-mapping-mapped-check': true,
  'pte-devmap': true,
  'memunmap-waits-page-refs': true,
  'migrate-device-range': false,
  'device-fault-page-ref': false,
  'device-exclusive': 'off',
  'dax-pre-remove-notify': false,
  'fsdax-reflink': false,
  'dax-shared-anon-alias': false,
  'longterm-fsdax-folio-check': false,
  'dax-delete-entries-before-wait': false,
  'dax-wait-refcount-one': false,
  'dax-insert-failure-cleanup': false,
  'fuse-break-whole-file': false,
  'mremap-devmap-pmd': false,
  'mremap-may-split-check': false,
  'migrate-device-thp': 'split',
  'bio-release-pages': 'spanned',
  secretmem: 'absent',
  'read-only-thp-for-fs': false,
  'ext4-dax-cow-journal': false,
  'fsdev-dax': false,
  'folio-split-misplaced-entries': false,
  'hugetlb-cgroup': 'v1',
  'pkey-sigframe': 'thread-register',
};
// v5.6 hugetlb on cgroup v2 (faced7e0806c), v5.7 its reservation counters (cdc2fcfea79b ...)
const V5_10: FeatureSet = { ...V5_4, 'hugetlb-cgroup': 'rsvd', 'foll-pin': true, 'fork-cow-pinned': true, 'wp-reuse': 'refcount', 'thp-cow': 'split', 'mremap-devmap-pmd': true };
const V6_1: FeatureSet = {
  ...V5_10,
  'devmem-extra-ref': false,
  'gup-fast-fork-seq': true,
  'gup-fast-pmd-recheck': true,
  'wp-reuse': 'anon-exclusive',
  'gup-unshare': 'anon',
  'mprotect-anon-writable': 'dirty',
  'clear-refs-skip-pinned': true,
  'compound-devmap': true,
  'vmemmap-optimize': 'unguarded',
  'memunmap-waits-page-refs': false,
  'migrate-device-range': true,
  'device-fault-page-ref': true,
  'device-exclusive': 'rmap',
  'fsdax-reflink': true,
  'dax-shared-anon-alias': true,
  'mremap-may-split-check': true,
  secretmem: 'disabled',
};
// v6.2: clean exclusive anon PTEs and PMD leaves made writable by mprotect() too; R/O long-term
// pins of anything in a COW mapping unshare first (84209e87c696, merged for v6.2)
const V6_3: FeatureSet = { ...V6_1, 'mprotect-anon-writable': 'clean', 'gup-unshare': 'cow-mapping' };
// v6.5: secretmem on by default (b758fe6df50d)
const V6_6: FeatureSet = { ...V6_3, 'vmemmap-optimize': 'arch-opt-in', 'dax-pre-remove-notify': true, secretmem: 'enabled' };
const V6_15: FeatureSet = {
  ...V6_6,
  'fsdax-refcount': 'zero-based',
  'dax-busy-mapping-mapped-check': false,
  'pte-devmap': false,
  'dax-shared-anon-alias': false,
  'longterm-fsdax-folio-check': true,
  'fuse-break-whole-file': true,
  'device-exclusive': 'folio-walk',
  // 00527733d0dc + 7460b470a131: truncate's non-uniform folio_split() with misplaced xarray entries
  'folio-split-misplaced-entries': true,
  // x86 70044df250d0 (v6.12 [M]) and arm64 2e8a1acea859 (v6.13 [M]): signal frames under all keys
  'pkey-sigframe': 'all-keys',
};

// the 2025 device-private THP series (MIGRATE_VMA_SELECT_COMPOUND) came after v6.15 [M]
// 577a1f495fd7 (v7.0 [M]): xas_try_split() with the original folio
// fsdev_dax (d5406bd458b0 and the rest of the famfs dax series) came with the v7.1 merge window [M]
const LATEST: FeatureSet = { ...V6_15, 'migrate-device-thp': 'compound', 'folio-split-misplaced-entries': false, 'fsdev-dax': true };

export const PRESETS: readonly Preset[] = [
  { name: 'v5.4', release: 'Linux 5.4 (Nov 2019)', features: V5_4, notes: 'era (a): every ZONE_DEVICE page idle at 1, devmap PTEs, no pin accounting (a DMA pin is a plain reference), no early COW at fork, COW reuse by mapcount' },
  { name: 'v5.10', release: 'Linux 5.10 (Dec 2020)', features: V5_10, notes: 'era (a) plus early COW of pinned pages at fork and page_count-based COW reuse (v5.9); write_protect_seq came in v5.11' },
  { name: 'v6.1', release: 'Linux 6.1 (Dec 2022)', features: V6_1, notes: 'era (b): device-private 0-based, fs-dax still 1-based; compound devmaps with unguarded vmemmap tail reuse; fsdax reflink with PAGE_MAPPING_DAX_COW' },
  { name: 'v6.3', release: 'Linux 6.3 (Apr 2023)', features: V6_3, notes: 'as v6.1 plus two v6.2 changes (mprotect() also upgrades clean exclusive anon PTEs; R/O long-term pins in COW mappings unshare non-anon pages too): the last release before the vmemmap_can_optimize() arch opt-in (seed 003 crashes here on ppc64 hash)' },
  { name: 'v6.6', release: 'Linux 6.6 (Oct 2023)', features: V6_6, notes: 'era (b) with the seed-003 fix (arch opt-in) and MF_MEM_PRE_REMOVE notification on pmem unbind' },
  { name: 'v6.15', release: 'Linux 6.15 (May 2025)', features: V6_15, notes: 'era (c): fs-dax and device-dax pages refcounted normally, no mapping_mapped() shortcut, no DAX_SHARED alias, FUSE breaks the whole file' },
  { name: 'latest', release: 'mainline as read (7.2)', features: LATEST, notes: 'as v6.15; pte_devmap and pfn_t removed altogether; device-private THP migration (migrate-device-thp compound); the fsdev_dax driver (famfs mode)' },
];

export const DEFAULT_PRESET = 'latest';

/**
 * Whether a preset is mainline release major.minor or later ('latest' is newer than every
 * numbered preset). For facts that follow the release rather than a switchable feature: a lock's
 * name, an arch's section size, when a driver or memory type arrived.
 */
export function kernelAtLeast(version: string, major: number, minor: number): boolean {
  if (version === 'latest') return true;
  const m = /^v(\d+)\.(\d+)/.exec(version);
  if (!m) throw new InputError(`kernel version '${version}' is not a release: use one of ${PRESETS.map((x) => x.name).join(', ')}`, undefined, 'version');
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

export function featureSpec(name: string): FeatureSpec | undefined {
  return FEATURES.find((f) => f.name === name);
}

export function presetNamed(name: string): Preset {
  const p = PRESETS.find((x) => x.name === name);
  if (!p) throw new InputError(`unknown kernel version '${name}': use one of ${PRESETS.map((x) => x.name).join(', ')} (see 'daxlab list kernels')`, undefined, 'version');
  return p;
}

/** Parse a feature value given as text (CLI `--feature k=v`, YAML scalars). */
export function parseFeatureValue(name: string, raw: unknown, where = 'features'): string | boolean {
  const spec = featureSpec(name);
  if (!spec) {
    throw new InputError(`${where}: unknown feature '${name}'; known features: ${FEATURES.map((f) => f.name).join(', ')}`, undefined, `${where}.${name}`);
  }
  const v = raw === 'true' ? true : raw === 'false' ? false : raw;
  if (!spec.values.includes(v as never)) {
    throw new InputError(`${where}.${name}: '${String(raw)}' is not a value of ${name}; use one of ${spec.values.join(', ')}`, undefined, `${where}.${name}`);
  }
  return v as string | boolean;
}

export function resolveFeatures(version: string, overrides: Readonly<Record<string, unknown>> = {}): FeatureSet {
  const base: Record<string, unknown> = { ...presetNamed(version).features };
  for (const [k, v] of Object.entries(overrides)) base[k] = parseFeatureValue(k, v);
  return base as FeatureSet;
}

/** The overrides that differ from the preset (for reports). */
export function featureDiff(version: string, features: FeatureSet): FeatureOverrides {
  const base = presetNamed(version).features as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(features)) if (base[k] !== v) out[k] = v;
  return out as FeatureOverrides;
}
