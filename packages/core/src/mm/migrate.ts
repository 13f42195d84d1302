import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { waitUntil, type Op } from '../sched.js';
import type { Device, Mm, Pte, Vma } from '../types.js';
import { anonMappingOf, PG } from './pages.js';
import type { Leaf } from './vm.js';

/**
 * The migration entry try_to_migrate_one() / set_pmd_migration_entry() (mm/rmap.c,
 * mm/huge_memory.c) puts where `pte` mapped a page: non-present, naming the same pfn, writable
 * when the PTE was (make_writable_migration_entry), else readable-exclusive for a
 * PageAnonExclusive page (make_readable_exclusive_migration_entry, v5.19) or readable. The
 * soft-dirty and uffd-wp bits go along (pte_swp_mksoft_dirty / pte_swp_mkuffd_wp), and from
 * v6.1 the dirty bit too (make_migration_entry_dirty(), 2e3468778dbe [M]); before, the PTE that
 * comes back is clean.
 */
export function migrationEntry(k: Kernel, pte: Pte, exclusive: boolean): Pte {
  return { ...pte, dirty: kernelAtLeast(k.version, 6, 1) && pte.dirty, migration: { exclusive: exclusive && !pte.write } };
}

/**
 * A CPU fault on a migration entry (mm/memory.c do_swap_page() -> migration_entry_wait(); a PMD
 * one: __handle_mm_fault() -> pmd_migration_entry_wait()): sleep on the source folio's lock,
 * which the migration holds until remove_migration_ptes() has replaced every entry, then return
 * 0 so the access is retried. GUP's slow path meets it the same way (follow_page_pte() finds no
 * page, faultin_page() -> handle_mm_fault(); FOLL_MIGRATION, while it existed, was never set by
 * __get_user_pages()), and GUP-fast backs off at the non-present entry (gup_fast_pte_range()).
 */
export function* migrationEntryWait(k: Kernel, mm: Mm, vpn: number, entry: Pte, write: boolean): Op {
  k.emit('fault', { mm: mm.name, vaddr: vpn, write, kind: 'migration-entry' });
  yield* waitUntil('migration_entry_wait', () => k.vm.lookup(mm, vpn)?.pte !== entry);
}

/**
 * fork() meeting a migration entry (mm/memory.c copy_nonpresent_pte(), mm/huge_memory.c
 * copy_huge_pmd()): the child gets the entry; in a COW mapping a writable one (and from v5.19 a
 * readable-exclusive one: "!is_readable_migration_entry()") is made readable first, in the
 * parent too (set_pte_at(src_mm)), keeping soft-dirty and uffd-wp (the child keeps uffd-wp only
 * where its VMA does). No reference or mapcount is taken: remove_migration_ptes() later maps
 * whichever folio the migration ends on in both.
 */
export function copyMigrationEntry(k: Kernel, src: Vma, dst: Vma, at: number, entry: Pte, cow: boolean): void {
  if (cow && (entry.write || entry.migration!.exclusive)) {
    const readable: Pte = { ...entry, write: false, migration: { exclusive: false } };
    k.vm.clear(src.mm, at, entry.level);
    k.vm.install(src.mm, at, readable);
    entry = readable;
  }
  const { uffdWp: _, ...rest } = entry;
  k.vm.install(dst.mm, at, { ...rest, migration: { ...entry.migration! }, ...(k.uffd.childKeepsWp(src, dst, entry) ? { uffdWp: true } : {}) });
}

/** A page-table entry the migration took down and will point at the new page (or back at the old). */
interface Place {
  readonly mm: Mm;
  readonly vpn: number;
  readonly write: boolean;
  /** a PMD (set_pmd_migration_entry / remove_migration_pmd) or a PTE of the folio */
  readonly level: 'pte' | 'pmd';
  /** the page of the folio the entry mapped (0 for a PMD) */
  readonly offset: number;
}

/** One slot of migrate->src/dst (include/linux/migrate.h MIGRATE_PFN_*). */
export interface MigrateSlot {
  /** the virtual page the walk found it at (migrate_vma_*), or null when collected by pfn */
  readonly vpn: number | null;
  /** the page collected; null for pte_none or the zero page (MIGRATE_PFN_MIGRATE without a page) */
  readonly src: number | null;
  /** MIGRATE_PFN_WRITE: the entry it came from was writable */
  readonly write: boolean;
  /** MIGRATE_PFN_MIGRATE: still migrating */
  migrate: boolean;
  /** the page the driver allocated and filled (alloc_and_copy), or null */
  dst: number | null;
  /** entries unmapped by migrate_vma_collect / try_to_migrate (the rmap walk) */
  readonly places: Place[];
  readonly exclusive: boolean;
  /**
   * MIGRATE_PFN_COMPOUND: the slot stands for a whole PMD-sized folio (or an empty / huge-zero PMD
   * range) and the HPAGE_PMD_NR - 1 slots after it are folded into it (mm/migrate_device.c, the
   * 2025 device-private THP series)
   */
  readonly compound: boolean;
  /**
   * A compound slot's base-page destinations, one per page, when the driver's huge allocation
   * failed (test_hmm's fallback): migrate_vma_pages() then splits the source
   * (migrate_vma_split_unmapped_folio) or inserts a hole page by page
   */
  fallback?: (number | null)[];
  /** the per-page slots migrate_vma_pages() made of a compound slot with a fallback */
  split?: MigrateSlot[];
}

/** What migrate_vma_setup() selects: MIGRATE_VMA_SELECT_SYSTEM and/or the device pages of one owner. */
export interface MigrateSelect {
  readonly system: boolean;
  /** MIGRATE_VMA_SELECT_DEVICE_PRIVATE | _DEVICE_COHERENT with pgmap_owner = this device */
  readonly owner: Device | null;
  /** MIGRATE_VMA_SELECT_COMPOUND (only kernels with `migrate-device-thp` compound know it) */
  readonly compound?: boolean;
  /** migrate_vma->fault_page: the pfn a CPU fault is migrating (its folio's lock and reference are the fault's) */
  readonly faultPage?: number;
}

/**
 * Migration of anonymous pages to and from device memory (mm/migrate_device.c): collect and unmap
 * (migrate_vma_setup / migrate_device_range), the driver allocates and copies, install the new page
 * wherever the old one was mapped (migrate_vma_pages / migrate_device_pages, remove_migration_ptes),
 * then drop the collect and allocation references (migrate_vma_finalize / migrate_device_finalize).
 */
export class DeviceMigration {
  constructor(private readonly k: Kernel) {}

  /** An anonymous private mapping: the only kind migrate_vma_insert_page() fills holes in (vma_is_anonymous). */
  private anonPrivate(vma: Vma): boolean {
    return vma.kind === 'anon' && !vma.flags.shared;
  }

  /**
   * migrate_vma_setup(): walk [vpn, vpn + nr) of the VMA (migrate_vma_collect_pmd), take a reference
   * on each selected page and unmap it everywhere (migrate_vma_unmap -> try_to_migrate).
   */
  setup(vma: Vma, vpn: number, nr: number, select: MigrateSelect): MigrateSlot[] {
    const k = this.k;
    // migrate_vma_setup(): is_vm_hugetlb_page(args->vma) -> -EINVAL (mm/hugetlb.ts)
    if (vma.hugetlb) throw new KernelError('EINVAL', `migrate_vma_setup: '${vma.name}' is a hugetlb mapping`);
    const slots: MigrateSlot[] = [];
    const end = vpn + nr;
    for (let v = vpn; v < end; v++) {
      if (select.system && this.compoundHole(vma, v, end, select)) {
        // migrate_vma_collect_hole() with MIGRATE_VMA_SELECT_COMPOUND over a whole empty PMD: one
        // MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND slot, the rest collected as skipped holes
        slots.push(this.holeSlot(vma, v, true));
        v += k.vm.pmdPages - 1;
        continue;
      }
      let leaf = k.vm.lookup(vma.mm, v);
      if (leaf && leaf.pte.level === 'pmd' && vma.kind === 'anon') {
        // a PMD-mapped THP, the huge zero page or a device-private PMD: collected whole, walked as
        // PTEs once split, or the PMD's range is skipped
        const walk = k.features['migrate-device-thp'] === 'compound' ? this.collectHugePmd(slots, vma, leaf, v, end, select) : this.splitPmdToCollect(vma, leaf, select) ? 'ptes' : 'skip';
        if (walk !== 'ptes') {
          v = Math.min(end, leaf.base + leaf.pages) - 1;
          continue;
        }
        leaf = k.vm.lookup(vma.mm, v);
      }
      if (!leaf) {
        // pte_none: MIGRATE_PFN_MIGRATE without a page, for anonymous VMAs only (migrate_vma_collect_hole)
        if (select.system && this.anonPrivate(vma)) slots.push(this.holeSlot(vma, v, false));
        continue;
      }
      if (leaf.pte.level !== 'pte') continue; // a DAX PMD/PUD: not anonymous, never collected
      const pfn = leaf.pte.pfn;
      if (leaf.pte.devicePrivate) {
        // device-private entry: selected only for its owner (is_device_private_entry, pgmap->owner);
        // a page of a large device folio mapped by PTEs (a split PMD: a partial munmap) splits the
        // folio first (migrate_vma_collect_pmd -> migrate_vma_split_folio, "handle partially
        // mapped folios during collection"), and is not collected if that fails
        if (!select.owner || k.deviceOfPfn(pfn) !== select.owner) continue;
        if (k.folios.nr(k.folios.folio(pfn)) > 1 && !this.splitFolioForCollect(k.folios.folio(pfn), select)) continue;
        this.collect(slots, v, pfn, leaf.pte.write);
        continue;
      }
      if (leaf.pte.special && k.isZeroPfn(pfn)) {
        // the zero page: MIGRATE_PFN_MIGRATE with no page; migrate_vma_insert_page() replaces it
        if (select.system && this.anonPrivate(vma)) slots.push(this.holeSlot(vma, v, false));
        continue;
      }
      const page = k.vm.normalPage(leaf.pte, pfn);
      if (page === null) continue;
      const kind = k.folios.kind(page);
      if (kind === 'coherent') {
        // a page of a PTE-mapped large coherent folio is split first, as any present large folio
        if (!select.owner || k.deviceOfPfn(page) !== select.owner) continue;
        if (k.folios.nr(k.folios.folio(page)) > 1 && !this.splitPteMappedThp(k.folios.folio(page), select)) continue;
        this.collect(slots, v, page, leaf.pte.write);
        continue;
      }
      // system pages: SELECT_SYSTEM, anonymous pages only ("For now only support anonymous
      // memory"), which includes the COW copies in a private file mapping (hmm.migrate_file_private).
      // A page-cache folio (shmem) is collected and unmapped by the kernel, then refused by
      // __migrate_device_pages() (a mapping, not anon) and remapped at finalize: skipped here,
      // with the same end state (hmm.migrate_shared: nothing moves, -ENOENT)
      if (kind !== 'ram' || !select.system || vma.flags.shared || !k.folios.isAnon(k.folios.folio(page))) continue;
      if (k.folios.nr(k.folios.folio(page)) > 1 && !this.splitPteMappedThp(k.folios.folio(page), select)) continue;
      this.collect(slots, v, page, leaf.pte.write);
    }
    return slots;
  }

  /** A hole or zero-page slot: MIGRATE_PFN_MIGRATE with no page (the VMA's write permission decides the new entry's). */
  private holeSlot(vma: Vma, v: number, compound: boolean): MigrateSlot {
    return { vpn: v, src: null, write: vma.flags.write, migrate: true, dst: null, places: [], exclusive: true, compound };
  }

  /**
   * migrate_vma_collect_pmd() on a PMD leaf of an anonymous VMA, `migrate-device-thp` split (every
   * release up to v6.15). The huge zero page is split into small zero-page PTEs (split_huge_pmd()).
   * A THP is split whole, folio_get + folio_trylock + split_folio() + folio_put, and its base
   * pages are collected from the PTEs; when the split fails (-EBUSY: a pin or another reference)
   * the whole PMD range is skipped (migrate_vma_collect_skip). False: skip the PMD's range.
   */
  private splitPmdToCollect(vma: Vma, leaf: Leaf, select: MigrateSelect): boolean {
    const k = this.k;
    const zero = k.thp.isHugeZeroPmd(vma, leaf);
    if (!zero && !k.thp.isAnonPmd(vma, leaf)) return false;
    if (zero) {
      k.thp.splitZeroPmd(vma, leaf.base);
      return true;
    }
    // a migration that selects only device pages never collects a THP (the pages are skipped)
    if (!select.system) return false;
    return k.thp.splitFolioHeld(k.folios.folio(leaf.pte.pfn), 'migrate_vma_collect_pmd');
  }

  /**
   * migrate_vma_collect_huge_pmd() (`migrate-device-thp` compound; read in Balbir Singh's v7
   * posting of "mm/migrate_device: implement THP migration of zone device pages", 2025, merged
   * after v6.15 [M]). A present PMD (THP or huge zero page) needs MIGRATE_VMA_SELECT_SYSTEM, a
   * device-private PMD MIGRATE_VMA_SELECT_DEVICE_PRIVATE and the caller's pgmap owner; else the
   * range is skipped. The huge zero page is a hole (migrate_vma_collect_hole(): one compound slot
   * when the walk covers the PMD whole and the caller selects COMPOUND, else one slot per page,
   * the first of whose inserts splits the zero PMD). A folio the walk covers whole
   * (start and end PMD-aligned) with COMPOUND is collected as one MIGRATE_PFN_COMPOUND slot
   * (set_pmd_migration_entry); otherwise the fallback split_folio() and the PTE walk go on, a
   * failed split skipping the range. A device-coherent PMD (present, not anonymous system memory)
   * is skipped: the kernel collects it with SELECT_SYSTEM and test_hmm refuses to copy a device
   * page to the device (WARN, "page already in device"), so it ends where it was.
   */
  private collectHugePmd(slots: MigrateSlot[], vma: Vma, leaf: Leaf, v: number, end: number, select: MigrateSelect): 'done' | 'skip' | 'ptes' {
    const k = this.k;
    const n = k.vm.pmdPages;
    const whole = select.compound === true && v === leaf.base && leaf.base + n <= end;
    if (leaf.pte.devicePrivate) {
      if (!select.owner || k.deviceOfPfn(leaf.pte.pfn) !== select.owner) return 'skip';
    } else if (k.thp.isHugeZeroPmd(vma, leaf)) {
      if (!select.system) return 'skip';
      if (!this.anonPrivate(vma)) return 'skip';
      if (whole) {
        slots.push(this.holeSlot(vma, v, true));
        return 'done';
      }
      // migrate_vma_collect_hole() page by page, the zero PMD left in place: the first
      // migrate_vma_insert_page() splits it (split_huge_pmd())
      for (let u = v; u < Math.min(end, leaf.base + leaf.pages); u++) slots.push(this.holeSlot(vma, u, false));
      return 'done';
    } else if (!k.thp.isAnonPmd(vma, leaf) || !select.system || k.folios.kind(leaf.pte.pfn) !== 'ram') {
      return 'skip';
    }
    const head = k.folios.folio(leaf.pte.pfn);
    if (whole) {
      this.collectCompound(slots, v, head, leaf.pte.write);
      return 'done';
    }
    // fallback: split_folio() (the fault's folio keeps the fault's lock and reference)
    return this.splitFolioForCollect(head, select) ? 'ptes' : 'skip';
  }

  /**
   * A page of a THP mapped by PTEs: `split` releases skip it ("FIXME support THP": PageTransCompound,
   * mpfn 0); `compound` ones split the folio during the walk (migrate_vma_split_folio(): folio_get,
   * folio_lock, split_folio, and on failure the page is not collected). True: collect it.
   */
  private splitPteMappedThp(head: number, select: MigrateSelect): boolean {
    if (this.k.features['migrate-device-thp'] === 'split') return false;
    return this.splitFolioForCollect(head, select);
  }

  /**
   * migrate_vma_split_folio(folio, fault_page): split_folio() with a reference of the caller's
   * own (folio_get ... folio_put), unless the folio is the fault's, whose reference do_swap_page()
   * holds: after the split that reference moves to the folio the fault page is now in
   * (folio_get(new_fault_folio), folio_put(folio)). True when the split succeeded.
   */
  private splitFolioForCollect(head: number, select: MigrateSelect): boolean {
    const k = this.k;
    const fault = select.faultPage;
    if (fault === undefined || k.folios.folio(fault) !== head) return k.thp.splitFolioHeld(head, 'migrate_vma_split_folio');
    if (!k.thp.splitFolio(head)) return false;
    const now = k.folios.folio(fault);
    if (now !== head) {
      k.folios.get(now, 1, 'migrate_vma_split_folio: folio_get(new_fault_folio)');
      k.folios.put(head, 1, 'migrate_vma_split_folio: folio_put(folio)');
    }
    return true;
  }

  /**
   * migrate_vma_collect_hole() with `compound`: an empty PMD of an anonymous VMA that the range
   * covers whole (start and end PMD-aligned) becomes one MIGRATE_PFN_COMPOUND slot when the
   * caller passes MIGRATE_VMA_SELECT_COMPOUND (and thp_migration_supported()). The model
   * approximates pmd_none() as no entry in the PMD's range.
   */
  private compoundHole(vma: Vma, v: number, end: number, select: MigrateSelect): boolean {
    const k = this.k;
    const n = k.vm.pmdPages;
    if (k.features['migrate-device-thp'] !== 'compound' || select.compound !== true || !this.anonPrivate(vma) || v % n !== 0) return false;
    if (k.mmu.transparentHugepage === false) return false;
    if (v + n > end || v + n > vma.start + vma.pages) return false;
    for (let u = v; u < v + n; u++) if (k.vm.lookup(vma.mm, u)) return false;
    return true;
  }

  /**
   * migrate_device_range(): collect device pages by pfn (folio_try_get: free pages at refcount 0
   * are skipped), then unmap them wherever they are mapped. A large folio is one slot
   * (migrate_device_unmap(): MIGRATE_PFN_COMPOUND when folio_nr_pages() > 1); its other pfns are
   * folded into it.
   */
  setupRange(pfns: readonly number[]): MigrateSlot[] {
    const k = this.k;
    const slots: MigrateSlot[] = [];
    for (const pfn of pfns) {
      const head = k.folios.folio(pfn);
      if (head !== pfn || k.folios.rc(head) <= 0) continue;
      if (k.folios.nr(head) > 1) this.collectCompound(slots, null, head, true);
      else this.collect(slots, null, pfn, true);
    }
    return slots;
  }

  /**
   * get_page() for the migration (unless the caller's reference serves as it), then replace every
   * mapping with a migration entry (rmap walk).
   */
  private collect(slots: MigrateSlot[], vpn: number | null, pfn: number, write: boolean, refHeld = false): void {
    const k = this.k;
    const head = k.folios.folio(pfn);
    if (!refHeld) k.folios.get(head, 1, 'migrate: collect');
    const places: Place[] = [];
    for (const mm of k.processes.values()) {
      if (!mm.alive) continue;
      for (const [v, pte] of [...mm.ptes]) {
        if (pte.pfn !== pfn || (pte.special && !pte.devicePrivate)) continue;
        places.push({ mm, vpn: v, write: pte.write, level: 'pte', offset: 0 });
        k.vm.clear(mm, v, 'pte');
        k.folios.removeMap(head);
        k.folios.put(head, 1, 'migrate: unmap (try_to_migrate)');
      }
    }
    this.collected(slots, vpn, head, vpn === null ? places.some((p) => p.write) : write, places, false);
  }

  /**
   * A whole large folio (migrate_vma_collect_huge_pmd(): folio_get, set_pmd_migration_entry();
   * migrate_device_unmap() -> try_to_migrate() for its other mappings): every PMD and PTE mapping
   * it, in every process, becomes a migration entry (its rmap and reference dropped).
   */
  private collectCompound(slots: MigrateSlot[], vpn: number | null, head: number, write: boolean): void {
    const k = this.k;
    const nr = k.folios.nr(head);
    k.folios.get(head, 1, 'migrate_vma_collect_huge_pmd: folio_get');
    const places: Place[] = [];
    for (const mm of k.processes.values()) {
      if (!mm.alive) continue;
      for (const [level, table] of [['pmd', mm.pmds], ['pte', mm.ptes]] as const) {
        for (const [v, pte] of [...table]) {
          if (pte.pfn < head || pte.pfn >= head + nr || (pte.special && !pte.devicePrivate) || pte.swap) continue;
          places.push({ mm, vpn: v, write: pte.write, level, offset: pte.pfn - head });
          k.vm.clear(mm, v, level);
          k.folios.removeMap(head);
          k.folios.put(head, 1, level === 'pmd' ? 'migrate: set_pmd_migration_entry' : 'migrate: unmap (try_to_migrate)');
        }
      }
    }
    this.collected(slots, vpn, head, vpn === null ? places.some((p) => p.write) : write, places, true);
  }

  /**
   * migrate_vma_check_page(): device-private pages always pass; others must hold no reference
   * beyond the collect one (and, with the extra ZONE_DEVICE reference, the idle one) once
   * unmapped: a GUP pin keeps the page where it is (the series dropped the "FIXME support THP"
   * refusal of large folios, so a THP is checked the same way).
   */
  private collected(slots: MigrateSlot[], vpn: number | null, head: number, write: boolean, places: Place[], compound: boolean): void {
    const k = this.k;
    const exclusive = (k.folios.flags(head) & PG.anonExclusive) !== 0;
    const slot: MigrateSlot = { vpn, src: head, write, migrate: true, dst: null, places, exclusive, compound };
    const kind = k.folios.kind(head);
    // a swap-cache page has a mapping (page_mapping(): the swap address space): "extra += 1"
    const extra = 1 + (kind !== 'ram' && k.features['devmem-extra-ref'] ? 1 : 0) + (k.swap.inSwapCache(head) ? 1 : 0);
    if (kind !== 'private' && k.folios.rc(head) - extra > k.folios.mapcount(head)) {
      this.restore(slot, head);
      slot.migrate = false;
    }
    slots.push(slot);
  }

  /** Point the slot's entries at the folio at `head` (remove_migration_ptes / remove_migration_pmd): a reference and an rmap each. */
  private restore(slot: MigrateSlot, head: number): void {
    const k = this.k;
    const devicePrivate = k.folios.kind(head) === 'private';
    for (const p of slot.places) {
      k.folios.get(head, 1, p.level === 'pmd' ? 'migrate: remove_migration_pmd' : 'migrate: remove_migration_pte');
      k.folios.addMap(head);
      k.vm.install(p.mm, p.vpn, this.entry(head + p.offset, p.write, devicePrivate, p.level));
    }
  }

  private entry(pfn: number, write: boolean, devicePrivate: boolean, level: 'pte' | 'pmd' = 'pte'): Pte {
    // device-private: a non-present swap-like entry (make_{writable,readable}_device_private_entry)
    return { pfn, level, write, dirty: write && !devicePrivate, special: false, devmap: false, devicePrivate, softDirty: write && !devicePrivate && this.k.softDirtyArch };
  }

  /**
   * migrate_vma_pages() / migrate_device_pages(): move the page's identity to the destination
   * (folio_migrate_mapping: anon mapping, exclusivity) and install it where the source was mapped;
   * a hole or zero page gets the new page inserted (migrate_vma_insert_page, or
   * migrate_vma_insert_huge_pmd_page for a compound slot). Slots without a destination are
   * restored on the source.
   */
  pages(slots: readonly MigrateSlot[], vma: Vma | null): void {
    const k = this.k;
    for (const s of slots) {
      if (!s.migrate) continue;
      // a compound source with a base-page destination: dst[0] and whatever the driver put in
      // the slots after it (test_hmm's fallback fills them all)
      if (s.compound && !s.fallback && s.dst !== null && k.folios.nr(k.folios.folio(s.dst)) === 1) s.fallback = [s.dst, ...Array<null>(k.vm.pmdPages - 1).fill(null)];
      if (s.compound && s.fallback) {
        this.pagesSplit(s, vma);
        continue;
      }
      if (s.dst === null) {
        s.migrate = false;
        if (s.src !== null) this.restore(s, s.src);
        continue;
      }
      const dst = k.folios.folio(s.dst);
      // __migrate_device_pages(): a compound destination for a small source clears
      // MIGRATE_PFN_MIGRATE (the source stays where it is)
      if (!s.compound && k.folios.nr(dst) > 1) {
        s.migrate = false;
        if (s.src !== null) this.restore(s, s.src);
        continue;
      }
      if (s.src === null) {
        if (!vma || s.vpn === null) throw new Error('migrate: a hole needs its VMA');
        if (s.compound) {
          this.insertHugePmd(vma, s, dst);
          continue;
        }
        k.vm.anonVmaPrepare(vma);
        let zero = k.vm.lookup(vma.mm, s.vpn);
        // migrate_vma_insert_page(): a huge zero PMD is split first (split_huge_pmd()); a page of
        // a compound hole filled page by page meets it (the driver's fallback)
        if (zero && k.thp.isHugeZeroPmd(vma, zero)) {
          k.thp.splitZeroPmd(vma, zero.base);
          zero = k.vm.lookup(vma.mm, s.vpn);
        }
        if (zero) k.vm.clear(vma.mm, s.vpn, 'pte');
        const ds = k.pages.slot(dst);
        k.pages.mapping[ds] = anonMappingOf(vma.anonVma);
        k.folios.setFlag(dst, PG.anonExclusive, true);
        k.folios.get(dst, 1, 'migrate_vma_insert_page');
        k.folios.addMap(dst);
        k.vm.install(vma.mm, s.vpn, this.entry(s.dst, vma.flags.write, k.folios.kind(dst) === 'private'));
        continue;
      }
      const src = k.folios.folio(s.src);
      // migrate_vma_pages(): to device memory only "folios that are not in the swap cache":
      // folio_free_swap() must succeed (no swap entry names the slot), else the page stays
      const toDevice = k.folios.kind(dst) === 'private' || k.folios.kind(dst) === 'coherent';
      if (toDevice && k.swap.inSwapCache(src) && !k.swap.freeSwap(src)) {
        s.migrate = false;
        this.restore(s, s.src);
        continue;
      }
      const ss = k.pages.slot(src);
      const mapping = k.pages.mapping[ss]!;
      for (let i = 0; i < k.folios.nr(dst); i++) {
        const ds = k.pages.slot(dst + i);
        k.pages.mapping[ds] = mapping;
      }
      k.folios.setFlag(dst, PG.anonExclusive, s.exclusive);
      this.restore(s, dst);
    }
  }

  /**
   * __migrate_device_pages() for a compound slot whose destination is base pages (the driver's
   * huge allocation failed; read in linux-mm/linux-mm 08ea4eaefa56 mm/migrate_device.c): a hole
   * is inserted page by page (migrate_vma_insert_page(), HPAGE_PMD_NR of them); a folio is split
   * first, migrate_vma_split_unmapped_folio(): folio_get, split_huge_pmd_address(freeze) turns
   * each PMD migration entry into HPAGE_PMD_NR PTE migration entries (and drops the reference
   * the freeze takes), folio_split_unmapped(folio, 0) makes order-0 folios, each holding one
   * reference (the collect's); a split that fails (other references) leaves the slot unmigrated.
   * Only migrate_vma_pages() splits: migrate_device_pages() (no VMA) does not migrate the slot.
   * Each page then migrates as a base slot.
   */
  private pagesSplit(s: MigrateSlot, vma: Vma | null): void {
    const k = this.k;
    const fallback = s.fallback!;
    if (!vma) {
      s.migrate = false;
      if (s.src !== null) this.restore(s, s.src);
      return;
    }
    if (s.src !== null) {
      // split_huge_pmd_address(freeze): each PMD migration entry is HPAGE_PMD_NR PTE ones now,
      // whether the folio split then succeeds or not
      const ptes: Place[] = [];
      for (const p of s.places) {
        if (p.level !== 'pmd') ptes.push(p);
        else for (let i = 0; i < fallback.length; i++) ptes.push({ mm: p.mm, vpn: p.vpn + i, write: p.write, level: 'pte', offset: i });
      }
      s.places.splice(0, s.places.length, ...ptes);
      // folio_split_unmapped(): can_split_folio() with the caller's pin: -EAGAIN while another
      // reference is held (a CPU fault's on the folio); the slot is not migrated and its PTE
      // migration entries come back on the still-large folio (the reference the split took is
      // dropped again: Usama Arif's fix, "Added a folio_put(folio) on the split failure path")
      if (!k.thp.splitUnmapped(s.src)) {
        s.migrate = false;
        this.restore(s, s.src);
        return;
      }
    }
    const subs: MigrateSlot[] = fallback.map((dst, i) => {
      const places: Place[] = [];
      for (const p of s.places) if (p.offset === i || p.level === 'pmd') places.push({ ...p, vpn: p.level === 'pmd' ? p.vpn + i : p.vpn, level: 'pte', offset: 0 });
      return { vpn: s.vpn === null ? null : s.vpn + i, src: s.src === null ? null : s.src + i, write: s.write, migrate: true, dst, places, exclusive: s.exclusive, compound: false };
    });
    s.split = subs;
    this.pages(subs, vma);
  }

  /**
   * migrate_vma_insert_huge_pmd_page(): the empty PMD (or the huge zero PMD, replaced and flushed)
   * gets the new large folio: anon_vma_prepare(), folio_add_new_anon_rmap(RMAP_EXCLUSIVE) (entire
   * mapcount 1, PageAnonExclusive), folio_get(), and a device-private PMD entry, writable when the
   * VMA has VM_WRITE (a device-coherent folio: a present PMD, pmd_mkwrite(pmd_mkdirty())). Anything
   * else in the PMD by now aborts the slot (MIGRATE_PFN_MIGRATE cleared).
   */
  private insertHugePmd(vma: Vma, s: MigrateSlot, dst: number): void {
    const k = this.k;
    const base = s.vpn!;
    const leaf = k.vm.lookup(vma.mm, base);
    if (leaf && !(leaf.pte.level === 'pmd' && k.thp.isHugeZeroPmd(vma, leaf))) {
      s.migrate = false;
      return;
    }
    const anonVma = k.vm.anonVmaPrepare(vma);
    if (leaf) {
      k.vm.clear(vma.mm, base, 'pmd'); // pmdp_invalidate() of the huge zero PMD
      k.emit('tlb.flush', { mm: vma.mm.name });
    }
    for (let i = 0; i < k.folios.nr(dst); i++) {
      const ds = k.pages.slot(dst + i);
      k.pages.mapping[ds] = anonMappingOf(anonVma);
    }
    k.folios.setFlag(dst, PG.anonExclusive, true);
    k.folios.addMap(dst);
    k.folios.get(dst, 1, 'migrate_vma_insert_huge_pmd_page: folio_get');
    k.vm.install(vma.mm, base, this.entry(dst, vma.flags.write, k.folios.kind(dst) === 'private', 'pmd'));
  }

  /**
   * migrate_vma_finalize() / migrate_device_finalize(): unlock and put the source (the collect
   * reference: a migrated source is freed here) and the destination (its allocation reference).
   */
  finalize(slots: readonly MigrateSlot[]): void {
    const k = this.k;
    for (const s of slots) {
      if (s.split) {
        this.finalize(s.split);
        continue;
      }
      if (s.src !== null) k.folios.put(k.folios.folio(s.src), 1, s.migrate ? 'migrate_finalize: put source' : 'migrate_finalize: put source (not migrated)');
      if (s.dst !== null) k.folios.put(k.folios.folio(s.dst), 1, 'migrate_finalize: put destination');
    }
  }

  /**
   * migrate_device_coherent_folio() (mm/migrate_device.c, v6.0+): move one device-coherent page to
   * a new system page, the caller's reference serving as the collect reference. Used by
   * check_and_migrate_movable_pages() for FOLL_LONGTERM. Throws EBUSY when it cannot.
   */
  migrateCoherentToRam(pfn: number): number {
    const k = this.k;
    // a large coherent folio (a device-coherent THP, `migrate-device-thp` compound):
    // WARN_ON_ONCE(folio_test_large(folio)), then migrate_device_pages() (no VMA) does not move a
    // compound source to the order-0 destination: finalize restores it and drops the caller's
    // reference, -EBUSY
    const large = k.folios.folio(pfn);
    if (k.folios.nr(large) > 1) {
      k.warn(`migrate_device_coherent_folio: WARN_ON_ONCE(folio_test_large(folio)) for the device-coherent folio at pfn ${large}`);
      k.folios.put(large, 1, 'migrate_device_coherent_folio: finalize, not migrated');
      throw new KernelError('EBUSY', `device-coherent pfn ${pfn} is part of a large folio, which migrate_device_coherent_folio() cannot migrate for FOLL_LONGTERM`);
    }
    const slots: MigrateSlot[] = [];
    this.collect(slots, null, pfn, true, true);
    const slot = slots[0]!;
    if (!slot.migrate) this.finalize(slots);
    if (!slot.migrate) throw new KernelError('EBUSY', `device-coherent pfn ${pfn} has other references and cannot be migrated for FOLL_LONGTERM`);
    const head = k.folios.folio(pfn);
    const headSlot = k.pages.slot(head);
    const anonVma = k.pages.mapping[headSlot]! >>> 2;
    slot.dst = k.ram.allocAnon(anonVma, k.pages.data.get(pfn) ?? '');
    this.pages(slots, null);
    this.finalize(slots);
    if (slot.dst === null) throw new KernelError('EBUSY', 'no system page to migrate device-coherent memory to');
    return slot.dst;
  }
}
