import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { preempt, type Op } from '../sched.js';
import type { Device, Mm, Pte, Vma } from '../types.js';
import type { Vmf } from './fault.js';
import { entryStillRead, origPte, pteSame, type Leaf } from './vm.js';

/** enum mmu_notifier_event, the ones the model raises. */
export type MmuNotifyEvent = 'unmap' | 'clear' | 'protection-vma' | 'protection-page' | 'soft-dirty' | 'exclusive';

/**
 * struct mmu_notifier_range as mmu_interval_notifier callbacks see it: virtual pages
 * [start, end) of an mm are about to change. `owner` is mmu_notifier_range_init_owner()'s: a
 * driver may ignore the events it caused itself (test_hmm ignores only MMU_NOTIFY_MIGRATE ones).
 */
export interface MmuNotifierRange {
  readonly mm: Mm;
  readonly start: number;
  readonly end: number;
  readonly event: MmuNotifyEvent;
  readonly owner: Device | null;
}

/** Not present in the CPU page table: a swap, device-private, device-exclusive or migration entry, or a PTE marker (!pte_present()). */
export function nonPresent(pte: Pte): boolean {
  return pte.devicePrivate || pte.deviceExclusive === true || pte.swap !== undefined || pte.marker === true || pte.migration !== undefined;
}

/**
 * Device-exclusive entries (mm/rmap.c make_device_exclusive[_range](), mm/memory.c
 * restore_exclusive_pte() / remove_device_exclusive_entry()): a device gets atomic access to an
 * anonymous system page by taking the CPU's PTE away; the next CPU access (or fork) puts it back
 * and tells the device through the MMU notifier. Per release: feature `device-exclusive`.
 */
export class DeviceExclusive {
  constructor(private readonly k: Kernel) {}

  /**
   * make_device_exclusive() for the page at vpn, on behalf of `owner`; returns its pfn (what the
   * driver maps atomically). The GUP reference is dropped before returning, as test_hmm's
   * dmirror_exclusive() does right after dmirror_atomic_map(): the entry keeps the PTE's reference.
   */
  *make(vma: Vma, vpn: number, owner: Device): Op<number> {
    const k = this.k;
    const mode = k.features['device-exclusive'];
    if (mode === 'off') throw KernelError.unsupported('EINVAL', `make_device_exclusive() arrived in v5.14 (b756a3b5e7ea "mm: device exclusive memory access"); ${k.version} has no device-exclusive entries (HMM_DMIRROR_EXCLUSIVE is an unknown ioctl: -EINVAL)`);
    for (let tries = 0; ; tries++) {
      if (tries === 3) throw new KernelError('EBUSY', `make_device_exclusive: page ${vpn - vma.start} of '${vma.name}' keeps changing under the folio walk`);
      // get_user_pages_remote() / get_user_page_vma_remote(FOLL_GET | FOLL_WRITE | FOLL_SPLIT_PMD):
      // faults the page in writable (a device-exclusive entry already there is restored first,
      // COW broken), then follow_pmd_mask() splits a PMD-mapped THP
      const h = yield* k.gupper.gup({ name: `make_device_exclusive(${vma.name}+${vpn - vma.start})`, vma, vpn, nr: 1, pin: false, write: true, longterm: false, fast: false });
      const put = (): void => k.gupper.release(h, false);
      const pfn = h.pfns[0]!;
      const pmd = k.vm.lookup(vma.mm, vpn);
      if (pmd && k.thp.isAnonPmd(vma, pmd)) k.thp.splitAnonPmd(vma, pmd.base);
      const folio = k.folios.folio(pfn);
      if (!k.folios.isAnon(folio)) {
        put();
        // v5.14-v6.14 page_make_device_exclusive() refuses (pages[i] = NULL: dmirror_exclusive()
        // says -EBUSY); v6.15 make_device_exclusive() returns -EOPNOTSUPP
        throw new KernelError(mode === 'rmap' ? 'EBUSY' : 'EOPNOTSUPP', `make_device_exclusive: page ${vpn - vma.start} of '${vma.name}' is not anonymous`);
      }
      if (mode === 'rmap') {
        const ok = this.rmapConvert(vma, vpn, pfn, owner);
        put();
        // page_make_device_exclusive() false: pages[i] = NULL, and dmirror_exclusive() says -EBUSY
        if (!ok) throw new KernelError('EBUSY', `make_device_exclusive_range: page ${vpn - vma.start} of '${vma.name}' could not be made exclusive (the rmap walk stopped, or the folio is still mapped)`);
        return pfn;
      }
      // v6.15 folio_walk_start(): the same page still mapped writable by one PTE, else GUP again
      // ("mm/rmap: avoid -EBUSY from make_device_exclusive()")
      const leaf = k.vm.lookup(vma.mm, vpn);
      if (!leaf || leaf.pte.level !== 'pte' || nonPresent(leaf.pte) || leaf.pte.pfn !== pfn || !leaf.pte.write) {
        put();
        continue;
      }
      // MMU_NOTIFY_EXCLUSIVE with the caller as owner: every secondary MMU drops the page
      k.mmuNotify({ mm: vma.mm, start: vpn, end: vpn + 1, event: 'exclusive', owner });
      this.convert(vma, vpn, leaf.pte);
      put();
      return pfn;
    }
  }

  /**
   * ptep_clear_flush(), then the device-exclusive entry: pte_dirty -> folio_mark_dirty(), kept in
   * the entry; soft-dirty and the write bit carried over (v6.15: always writable, one type).
   */
  private convert(vma: Vma, vpn: number, pte: Pte): void {
    const k = this.k;
    k.vm.clear(vma.mm, vpn, 'pte');
    k.emit('tlb.flush', { mm: vma.mm.name });
    k.vm.install(vma.mm, vpn, { ...pte, deviceExclusive: true });
  }

  /**
   * v5.14-v6.14 page_make_device_exclusive(): rmap_walk() of the folio with
   * page_make_device_exclusive_one(): MMU_NOTIFY_EXCLUSIVE (the caller as owner) over the folio's
   * range in the VMA, then every PTE mapping a page of the folio, in address order, becomes a
   * device-exclusive entry and loses its rmap (folio_remove_rmap_pte: the entry keeps the PTE's
   * reference); a non-present entry there (one made exclusive before) stops the walk. Succeeds
   * when the target address was converted from a writable PTE and !folio_mapcount(). For a large
   * folio this converts every PTE at once: what made hmm-tests' exclusive cases fail with THP
   * (David Hildenbrand's cover letter for the v6.15 series). The walk covers the folio's linear
   * range in this VMA only (not other processes' mappings, nor pages moved by mremap).
   */
  private rmapConvert(vma: Vma, vpn: number, pfn: number, owner: Device): boolean {
    const k = this.k;
    const folio = k.folios.folio(pfn);
    const first = vpn - (pfn - folio);
    const from = Math.max(first, vma.start);
    const to = Math.min(first + k.folios.nr(folio), vma.start + vma.pages);
    k.mmuNotify({ mm: vma.mm, start: from, end: to, event: 'exclusive', owner });
    let valid = false;
    for (let v = from; v < to; v++) {
      const leaf = k.vm.lookup(vma.mm, v);
      // page_vma_mapped_walk(): only PTEs of this folio's pages (check_pte)
      if (!leaf || leaf.pte.level !== 'pte' || leaf.pte.pfn !== folio + (v - first)) continue;
      if (nonPresent(leaf.pte)) break; // "if (!pte_present(ptent)) { ret = false; ... break; }"
      if (v === vpn && leaf.pte.write) valid = true; // args->valid
      this.convert(vma, v, leaf.pte);
      k.folios.removeMap(folio);
    }
    return valid && k.folios.mapcount(folio) === 0;
  }

  /**
   * remove_device_exclusive_entry() (do_swap_page on a device-exclusive entry): the MMU notifier
   * (MMU_NOTIFY_EXCLUSIVE, MMU_NOTIFY_CLEAR from v6.15's cleanups; owner NULL, so every device
   * drops its atomic mapping), then, if the entry is still the one faulted on, restore_exclusive_pte().
   */
  *remove(vmf: Vmf, leaf: Leaf): Op {
    const k = this.k;
    const orig = origPte(leaf.pte);
    // folio_lock_or_retry(): the fault may sleep on the folio lock before it takes the PTE lock
    yield preempt('remove_device_exclusive_entry', entryStillRead(k.vm, vmf.vma.mm, vmf.vpn, leaf.pte));
    k.mmuNotify({ mm: vmf.vma.mm, start: vmf.vpn, end: vmf.vpn + 1, event: k.features['device-exclusive'] === 'folio-walk' ? 'clear' : 'exclusive', owner: null });
    if (!pteSame(k.vm.lookup(vmf.vma.mm, vmf.vpn)?.pte, leaf.pte, orig)) return; // !pte_same(): the fault is retried
    this.restore(vmf.vma, vmf.vpn, leaf.pte);
  }

  /**
   * restore_exclusive_pte(): a present PTE for the entry's page with vm_page_prot (read-only in a
   * private mapping), soft-dirty carried over; writable per release, the rmap per release. The
   * entry's reference becomes the PTE's.
   */
  restore(vma: Vma, vpn: number, entry: Pte): void {
    const k = this.k;
    const folio = k.folios.folio(entry.pfn);
    const base = k.faults.pte(entry.pfn, 'pte', { softDirty: entry.softDirty });
    let write = false;
    let dirty = false;
    if (k.features['device-exclusive'] === 'rmap') {
      // a SWP_DEVICE_EXCLUSIVE_WRITE entry: maybe_mkwrite(pte_mkdirty()) -- writable if VM_WRITE
      if (entry.write) [write, dirty] = [vma.flags.write, true];
    } else if (vma.flags.write && k.mprotector.canChangePteWritable(vma, { pte: base, base: vpn, pages: 1 })) {
      // v6.15: (VM_WRITE && can_change_pte_writable()) -> pte_mkwrite, pte_mkdirty only for a dirty folio
      [write, dirty] = [true, entry.dirty];
    }
    k.vm.clear(vma.mm, vpn, 'pte');
    k.vm.install(vma.mm, vpn, { ...base, write, dirty, softDirty: entry.softDirty || (dirty && k.softDirtyArch) });
    // v5.14-v6.14: page_add_anon_rmap() (make_device_exclusive had removed it); v6.15 kept it
    if (k.features['device-exclusive'] === 'rmap') k.folios.addMap(folio);
  }
}
