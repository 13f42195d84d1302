import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import type { Device, Mm, Pte, Vma } from '../types.js';
import { anonMappingOf, PG } from './pages.js';
import type { Leaf } from './vm.js';

/** A page-table entry the migration took down and will point at the new page (or back at the old). */
interface Place {
  readonly mm: Mm;
  readonly vpn: number;
  readonly write: boolean;
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
}

/** What migrate_vma_setup() selects: MIGRATE_VMA_SELECT_SYSTEM and/or the device pages of one owner. */
export interface MigrateSelect {
  readonly system: boolean;
  /** MIGRATE_VMA_SELECT_DEVICE_PRIVATE | _DEVICE_COHERENT with pgmap_owner = this device */
  readonly owner: Device | null;
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
    for (let v = vpn; v < vpn + nr; v++) {
      if (select.system && this.compoundHole(vma, v, vpn + nr)) throw this.compoundUnsupported(vma, v, 'the empty PMD');
      let leaf = k.vm.lookup(vma.mm, v);
      if (leaf && leaf.pte.level === 'pmd' && vma.kind === 'anon') {
        // a PMD-mapped THP or the huge zero page: walked as PTEs once split, else the PMD's range is skipped
        if (!this.splitPmdToCollect(vma, leaf, select)) {
          v = Math.min(vpn + nr, leaf.base + leaf.pages) - 1;
          continue;
        }
        leaf = k.vm.lookup(vma.mm, v);
      }
      const none = (): void => void slots.push({ vpn: v, src: null, write: vma.flags.write, migrate: true, dst: null, places: [], exclusive: true });
      if (!leaf) {
        // pte_none: MIGRATE_PFN_MIGRATE without a page, for anonymous VMAs only (migrate_vma_collect_hole)
        if (select.system && this.anonPrivate(vma)) none();
        continue;
      }
      if (leaf.pte.level !== 'pte') continue; // a DAX PMD/PUD: not anonymous, never collected
      const pfn = leaf.pte.pfn;
      if (leaf.pte.devicePrivate) {
        // device-private entry: selected only for its owner (is_device_private_entry, pgmap->owner)
        if (select.owner && k.deviceOfPfn(pfn) === select.owner) this.collect(slots, v, pfn, leaf.pte.write);
        continue;
      }
      if (leaf.pte.special && k.isZeroPfn(pfn)) {
        // the zero page: MIGRATE_PFN_MIGRATE with no page; migrate_vma_insert_page() replaces it
        if (select.system && this.anonPrivate(vma)) none();
        continue;
      }
      const page = k.vm.normalPage(leaf.pte, pfn);
      if (page === null) continue;
      const kind = k.folios.kind(page);
      if (kind === 'coherent') {
        if (select.owner && k.deviceOfPfn(page) === select.owner) this.collect(slots, v, page, leaf.pte.write);
        continue;
      }
      // system pages: SELECT_SYSTEM, anonymous pages only ("For now only support anonymous
      // memory"), which includes the COW copies in a private file mapping (hmm.migrate_file_private).
      // A page-cache folio (shmem) is collected and unmapped by the kernel, then refused by
      // __migrate_device_pages() (a mapping, not anon) and remapped at finalize: skipped here,
      // with the same end state (hmm.migrate_shared: nothing moves, -ENOENT)
      if (kind !== 'ram' || !select.system || vma.flags.shared || !k.folios.isAnon(k.folios.folio(page))) continue;
      if (k.folios.nr(k.folios.folio(page)) > 1 && !this.splitPteMappedThp(k.folios.folio(page))) continue;
      this.collect(slots, v, page, leaf.pte.write);
    }
    return slots;
  }

  /**
   * migrate_vma_collect_pmd() on a PMD leaf of an anonymous VMA. The huge zero page is split into
   * small zero-page PTEs (split_huge_pmd()). A THP (`migrate-device-thp` split, every release up
   * to v6.15) is split whole, folio_get + folio_trylock + split_folio() + folio_put, and its base
   * pages are collected from the PTEs; when the split fails (-EBUSY: a pin or another reference)
   * the whole PMD range is skipped (migrate_vma_collect_skip). With `compound` a driver selecting
   * MIGRATE_VMA_SELECT_COMPOUND moves the THP whole (a PMD-level device-private entry): not
   * modelled, refused. False: skip the PMD's range.
   */
  private splitPmdToCollect(vma: Vma, leaf: Leaf, select: MigrateSelect): boolean {
    const k = this.k;
    const zero = k.thp.isHugeZeroPmd(vma, leaf);
    if (!zero && !k.thp.isAnonPmd(vma, leaf)) return false;
    if (k.features['migrate-device-thp'] === 'compound') {
      // migrate_vma_collect_huge_pmd(): without MIGRATE_VMA_SELECT_SYSTEM the range is skipped
      if (!select.system) return false;
      throw this.compoundUnsupported(vma, leaf.base, zero ? 'the huge zero PMD (collected as a PMD hole)' : 'the PMD-mapped THP');
    }
    if (zero) {
      k.thp.splitZeroPmd(vma, leaf.base);
      return true;
    }
    return k.thp.splitFolioHeld(k.folios.folio(leaf.pte.pfn), 'migrate_vma_collect_pmd');
  }

  /**
   * A page of a THP mapped by PTEs: `split` releases skip it ("FIXME support THP": PageTransCompound,
   * mpfn 0); `compound` ones split the folio during the walk (migrate_vma_split_folio(): folio_get,
   * folio_lock, split_folio, and on failure the page is not collected). True: collect it.
   */
  private splitPteMappedThp(head: number): boolean {
    const k = this.k;
    if (k.features['migrate-device-thp'] === 'split') return false;
    return k.thp.splitFolioHeld(head, 'migrate_vma_split_folio');
  }

  /**
   * migrate_vma_collect_hole() with `compound`: an empty PMD of an anonymous VMA that the range
   * covers whole (start and end PMD-aligned) becomes one MIGRATE_PFN_COMPOUND slot, filled with a
   * device-private THP (a migration that selects only device pages allocates nothing for it:
   * only MIGRATE_VMA_SELECT_SYSTEM callers are refused). The model approximates pmd_none() as no
   * entry in the PMD's range.
   */
  private compoundHole(vma: Vma, v: number, end: number): boolean {
    const k = this.k;
    const n = k.vm.pmdPages;
    if (k.features['migrate-device-thp'] !== 'compound' || !this.anonPrivate(vma) || v % n !== 0) return false;
    if (v + n > end || v + n > vma.start + vma.pages) return false;
    for (let u = v; u < v + n; u++) if (k.vm.lookup(vma.mm, u)) return false;
    return true;
  }

  private compoundUnsupported(vma: Vma, base: number, what: string): KernelError {
    return KernelError.unsupported('EINVAL', `migrate_vma_setup over ${what} at page ${base - vma.start} of '${vma.name}': MIGRATE_VMA_SELECT_COMPOUND (migrate-device-thp compound) migrates it whole to a device-private THP behind a PMD-level device-private entry, which the model does not have`);
  }

  /**
   * migrate_device_range(): collect device pages by pfn (folio_try_get: free pages at refcount 0
   * are skipped), then unmap them wherever they are mapped.
   */
  setupRange(pfns: readonly number[]): MigrateSlot[] {
    const slots: MigrateSlot[] = [];
    for (const pfn of pfns) {
      if (this.k.folios.rc(this.k.folios.folio(pfn)) <= 0) continue;
      this.collect(slots, null, pfn, true);
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
    const exclusive = (k.folios.flags(head) & PG.anonExclusive) !== 0;
    const places: Place[] = [];
    for (const mm of k.processes.values()) {
      if (!mm.alive) continue;
      for (const [v, pte] of [...mm.ptes]) {
        if (pte.pfn !== pfn || (pte.special && !pte.devicePrivate)) continue;
        places.push({ mm, vpn: v, write: pte.write });
        k.vm.clear(mm, v, 'pte');
        k.folios.removeMap(head);
        k.folios.put(head, 1, 'migrate: unmap (try_to_migrate)');
      }
    }
    const slot: MigrateSlot = { vpn, src: pfn, write: vpn === null ? places.some((p) => p.write) : write, migrate: true, dst: null, places, exclusive };
    // migrate_vma_check_page(): device-private pages always pass; others must hold no reference
    // beyond the collect one (and, with the extra ZONE_DEVICE reference, the idle one) once
    // unmapped: a GUP pin keeps the page where it is
    const kind = k.folios.kind(head);
    // a swap-cache page has a mapping (page_mapping(): the swap address space): "extra += 1"
    const extra = 1 + (kind !== 'ram' && k.features['devmem-extra-ref'] ? 1 : 0) + (k.swap.inSwapCache(head) ? 1 : 0);
    if (kind !== 'private' && k.folios.rc(head) - extra > k.folios.mapcount(head)) {
      this.restore(slot, pfn);
      slot.migrate = false;
    }
    slots.push(slot);
  }

  /** Point the slot's entries at `pfn` (remove_migration_ptes): a reference and an rmap each. */
  private restore(slot: MigrateSlot, pfn: number): void {
    const k = this.k;
    const head = k.folios.folio(pfn);
    const devicePrivate = k.folios.kind(head) === 'private';
    for (const p of slot.places) {
      k.folios.get(head, 1, 'migrate: remove_migration_pte');
      k.folios.addMap(head);
      k.vm.install(p.mm, p.vpn, this.entry(pfn, p.write, devicePrivate));
    }
  }

  private entry(pfn: number, write: boolean, devicePrivate: boolean): Pte {
    // device-private: a non-present swap-like entry (make_{writable,readable}_device_private_entry)
    return { pfn, level: 'pte', write, dirty: write && !devicePrivate, special: false, devmap: false, devicePrivate, softDirty: write && !devicePrivate && this.k.softDirtyArch };
  }

  /**
   * migrate_vma_pages() / migrate_device_pages(): move the page's identity to the destination
   * (folio_migrate_mapping: anon mapping, exclusivity) and install it where the source was mapped;
   * a hole or zero page gets the new page inserted (migrate_vma_insert_page). Slots without a
   * destination are restored on the source.
   */
  pages(slots: readonly MigrateSlot[], vma: Vma | null): void {
    const k = this.k;
    for (const s of slots) {
      if (!s.migrate) continue;
      if (s.dst === null) {
        s.migrate = false;
        if (s.src !== null) this.restore(s, s.src);
        continue;
      }
      const dst = k.folios.folio(s.dst);
      const ds = k.pages.slot(dst);
      if (s.src === null) {
        if (!vma || s.vpn === null) throw new Error('migrate: a hole needs its VMA');
        k.vm.anonVmaPrepare(vma);
        const zero = k.vm.lookup(vma.mm, s.vpn);
        if (zero) k.vm.clear(vma.mm, s.vpn, 'pte');
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
      const srcSlot = k.pages.slot(src);
      k.pages.mapping[ds] = k.pages.mapping[srcSlot]!;
      k.folios.setFlag(dst, PG.anonExclusive, s.exclusive);
      this.restore(s, s.dst);
    }
  }

  /**
   * migrate_vma_finalize() / migrate_device_finalize(): unlock and put the source (the collect
   * reference: a migrated source is freed here) and the destination (its allocation reference).
   */
  finalize(slots: readonly MigrateSlot[]): void {
    const k = this.k;
    for (const s of slots) {
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
