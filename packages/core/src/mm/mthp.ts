import type { Kernel } from '../kernel.js';
import { InputError, KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Vma } from '../types.js';
import type { Vmf } from './fault.js';
import { PG } from './pages.js';

/** /sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/enabled (mm/huge_memory.c thpsize_enabled_store()). */
export const THP_SIZE_MODES = ['always', 'inherit', 'madvise', 'never'] as const;
export type ThpSizeMode = (typeof THP_SIZE_MODES)[number];

/**
 * Multi-size THP for anonymous memory (mTHP): 19eaf44954df "mm: thp: support allocation of
 * anonymous multi-size THP" (v6.8) added the per-size sysfs directories and alloc_anon_folio().
 * Each anonymous order from 2 up to PMD_ORDER (THP_ORDERS_ALL_ANON: order 1 is left out) has its
 * own `enabled` knob. At boot (hugepage_init_sysfs()) the PMD order is `inherit` and every smaller
 * order `never`, so nothing changes until a size is switched on. The top-level
 * transparent_hugepage/enabled (`madvise` at boot in the model, mm/thp.ts) is what `inherit` follows.
 * Before v6.8 the directories do not exist and the only THP size is the PMD's.
 */
export class AnonThpSizes {
  /** order -> mode; an order not in the map has its boot default */
  private readonly modes = new Map<number, ThpSizeMode>();

  constructor(private readonly k: Kernel) {}

  /** HPAGE_PMD_ORDER */
  private get pmdOrder(): number {
    return Math.log2(this.k.vm.pmdPages);
  }

  /**
   * Whether the per-size knobs exist: v6.8+, and hugepage_init() got that far
   * (has_transparent_hugepage(): no THP at all on, e.g., ppc64 hash with 4 KiB pages).
   */
  get exist(): boolean {
    return kernelAtLeast(this.k.version, 6, 8) && this.k.mmu.transparentHugepage !== false;
  }

  /** The order's mode: what was written, else the boot default (PMD order inherit, the rest never). */
  mode(order: number): ThpSizeMode {
    return this.modes.get(order) ?? (order === this.pmdOrder ? 'inherit' : 'never');
  }

  /**
   * echo <mode> > hugepages-<size>kB/enabled. `size` in bytes must be the base page size times
   * 2^order for an order in 2..PMD_ORDER (the directories sysfs has).
   */
  set(size: number, mode: ThpSizeMode): void {
    const k = this.k;
    const ps = k.mmu.basePageSize;
    const kb = size / 1024;
    const where = `/sys/kernel/mm/transparent_hugepage/hugepages-${kb}kB/enabled`;
    if (!this.exist) {
      const why = kernelAtLeast(k.version, 6, 8)
        ? 'this MMU has no transparent huge pages (has_transparent_hugepage() is false)'
        : 'per-size THP knobs came with v6.8 (19eaf44954df); before, the only THP size is the PMD size and it follows transparent_hugepage/enabled';
      // the cell is `unsupported` (cow.c detects no such size and does not run it), not a failure
      throw KernelError.unsupported('ENOENT', `${where}: no such file on ${k.version}: ${why}`);
    }
    const order = Math.log2(size / ps);
    if (!Number.isInteger(order) || order < 2 || order > this.pmdOrder) {
      const sizes = [];
      for (let o = 2; o <= this.pmdOrder; o++) sizes.push(`${(ps << o) / 1024}KiB`);
      throw new InputError(`thp-size: no directory ${where}: the anonymous THP sizes here are ${sizes.join(', ')} (base page times 2^2 .. 2^${this.pmdOrder})`, undefined, 'size');
    }
    if (!(THP_SIZE_MODES as readonly string[]).includes(mode)) throw new InputError(`thp-size: enabled must be one of ${THP_SIZE_MODES.join(', ')}, not '${mode}'`, undefined, 'enabled');
    this.modes.set(order, mode);
  }

  /**
   * thp_vma_allowable_orders() for an anonymous VMA at a fault or a khugepaged scan
   * (include/linux/huge_mm.h, v6.8+): the always orders, plus the madvise orders in a VM_HUGEPAGE
   * VMA, plus the inherit orders when the global mode allows THP here (Thp.globalAllows); none at
   * all when vma_thp_disabled() (VM_NOHUGEPAGE, PR_SET_THP_DISABLE: Thp.disabled). Before v6.8
   * the PMD order alone, as the global mode allows it.
   */
  allowed(vma: Vma, order: number): boolean {
    const thp = this.k.thp;
    if (vma.kind !== 'anon' || vma.flags.shared || thp.disabled(vma, false)) return false;
    if (!this.exist) return order === this.pmdOrder && thp.globalAllows(vma);
    switch (this.mode(order)) {
      case 'always':
        return true;
      case 'madvise':
        return vma.flags.hugepage;
      case 'inherit':
        return thp.globalAllows(vma);
      case 'never':
        return false;
    }
  }

  /**
   * do_anonymous_page() -> alloc_anon_folio() for a write fault (v6.8+; a read fault maps the
   * zero page first and never gets here). The enabled orders below PMD_ORDER, highest first; an
   * order is taken when its naturally aligned range lies in the VMA (thp_vma_suitable_orders())
   * and none of its PTEs is set (pte_range_none()); the allocation may fail and fall to the next
   * order, then to order 0. The folio (zeroed) is mapped by nr_pages writable dirty PTEs at once:
   * folio_ref_add(nr_pages - 1) (one reference per PTE), folio_add_new_anon_rmap() (every page
   * mapped once and PageAnonExclusive), set_ptes(). Returns false when no large order fits.
   */
  fault(vmf: Vmf): boolean {
    const k = this.k;
    const { vma, vpn } = vmf;
    if (!this.exist || !vmf.write) return false;
    for (let order = this.pmdOrder - 1; order >= 2; order--) {
      if (!this.allowed(vma, order)) continue;
      const nr = 1 << order;
      const base = vpn - (vpn % nr);
      if (base < vma.start || base + nr > vma.start + vma.pages) continue;
      let none = true;
      for (let v = base; v < base + nr && none; v++) if (vma.mm.ptes.has(v)) none = false;
      if (!none) continue;
      const head = k.ram.allocAnonLarge(k.vm.anonVmaPrepare(vma), order, k.numa.allocNode(vma, base, order));
      if (head === null) continue; // vma_alloc_folio() failed: next order
      k.folios.get(head, nr - 1, `do_anonymous_page: folio_ref_add(nr_pages - 1) for an order-${order} folio`);
      for (let i = 0; i < nr; i++) {
        k.folios.setFlag(head + i, PG.anonExclusive, true);
        k.folios.addMap(head);
        k.vm.install(vma.mm, base + i, k.faults.pte(head + i, 'pte', { write: true, dirty: true }));
      }
      return true;
    }
    return false;
  }
}
