import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import type { Device, Mm, Pte, Vma } from '../types.js';
import { anonMappingOf, PG } from './pages.js';

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
    const slots: MigrateSlot[] = [];
    for (let v = vpn; v < vpn + nr; v++) {
      const leaf = k.vm.lookup(vma.mm, v);
      const none = (): void => void slots.push({ vpn: v, src: null, write: vma.flags.write, migrate: true, dst: null, places: [], exclusive: true });
      if (!leaf) {
        // pte_none: MIGRATE_PFN_MIGRATE without a page, for anonymous VMAs only (migrate_vma_collect_hole)
        if (select.system && this.anonPrivate(vma)) none();
        continue;
      }
      if (leaf.pte.level !== 'pte') continue; // no device THP migration in the model
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
      // memory"), which includes the COW copies in a private file mapping (hmm.migrate_file_private)
      if (kind !== 'ram' || !select.system || vma.flags.shared || !k.folios.isAnon(k.folios.folio(page))) continue;
      this.collect(slots, v, page, leaf.pte.write);
    }
    return slots;
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
    const extra = 1 + (kind !== 'ram' && k.features['devmem-extra-ref'] ? 1 : 0);
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
      k.pages.mapping[ds] = k.pages.mapping[k.pages.slot(src)]!;
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
    const anonVma = k.pages.mapping[k.pages.slot(head)]! >>> 2;
    slot.dst = k.ram.allocAnon(anonVma, k.pages.data.get(pfn) ?? '');
    this.pages(slots, null);
    this.finalize(slots);
    if (slot.dst === null) throw new KernelError('EBUSY', 'no system page to migrate device-coherent memory to');
    return slot.dst;
  }
}
