import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import type { Vmf } from '../mm/fault.js';
import { mappingOf, PAGE_MAPPING_DAX_SHARED, PG } from '../mm/pages.js';
import { preempt, waitUntil, type Op } from '../sched.js';
import type { DaxFilesystem } from '../fs/filesystem.js';
import type { AddressSpace, DaxEntry, Device, Inode } from '../types.js';

/** What a filesystem's iomap_begin() says about one file page (include/linux/iomap.h). */
export interface Iomap {
  readonly type: 'hole' | 'mapped';
  /** device pfn backing the page (mapped) */
  readonly pfn: number;
  /** physically contiguous pages from this one within the extent */
  readonly contiguous: number;
  /** IOMAP_F_SHARED: the extent is shared with another file (reflink), or is a CoW destination */
  readonly shared: boolean;
  /**
   * A write to a shared extent: the filesystem gave a new (CoW) block in `pfn` and the old data
   * in this srcmap pfn, which dax_iomap_copy_around() copies before the page is mapped.
   */
  readonly srcPfn?: number;
  /** IOMAP_F_DIRTY: the file has metadata the journal has not committed (fs/journal.ts) */
  readonly dirty?: boolean;
}

/**
 * VM_FAULT_NEEDDSYNC (dax_fault_synchronous_pfnp): a MAP_SYNC write fault whose iomap is
 * IOMAP_F_DIRTY leaves the page unmapped and hands its pfn back, so the metadata is committed
 * first and dax_finish_sync_fault() maps it (finishSyncFault).
 */
interface NeedDsync {
  readonly pfn: number;
  readonly level: 'pte' | 'pmd';
}

/** The filesystem side of a DAX fault: its iomap and the locks it holds around the fault. */
export interface DaxIomapOps {
  /**
   * iomap_begin() for `pages` pages from `index` (a PTE fault asks for 1, a PMD fault for
   * PMD_SIZE): the extent at index, which a write allocates when it is a hole (up to `pages`
   * pages, or to the next allocated block).
   */
  iomapBegin(inode: Inode, index: number, write: boolean, pages?: number): Op<Iomap>;
  /** vfs_fsync_range() of the file (XFS and ext4: fs/journal.ts); only a MAP_SYNC fault needs it */
  fsync?(inode: Inode, caller: string): void;
}

/**
 * How a waiter drops and retakes the filesystem's fault lock around schedule()
 * (xfs_wait_dax_page, ext4_wait_dax_page, fuse_wait_dax_page).
 */
export interface WaitCallbacks {
  release(): void;
  reacquire(): Op;
}

/**
 * fs/dax.c: the per-file DAX entries, associating pages with files under each refcount
 * convention, the fault path, the busy-page scan and the idle wait that break layouts.
 */
export class Dax {
  private readonly wakeCounts = new Map<number, number>();

  constructor(private readonly k: Kernel) {}

  /**
   * wake_up_var() on an fs-dax page's refcount (the folio put that makes it idle, mm/folio.ts):
   * break layouts' idle wait (`waitPageIdle`) sleeps until the page's count of wake-ups moves.
   * Called directly, not through the bus: the bus is for observers only (bus.ts).
   */
  wake(pfn: number): void {
    this.wakeCounts.set(pfn, (this.wakeCounts.get(pfn) ?? 0) + 1);
  }

  get pmdPages(): number {
    return this.k.vm.pmdPages;
  }

  /** The entry covering index: a PTE entry at index or a PMD entry at its aligned start. */
  lookup(mapping: AddressSpace, index: number): { index: number; entry: DaxEntry } | null {
    const e = mapping.entries.get(index);
    if (e) return { index, entry: e };
    const base = index - (index % this.pmdPages);
    const pmd = mapping.entries.get(base);
    if (pmd?.pmd) return { index: base, entry: pmd };
    return null;
  }

  private kindOf(e: DaxEntry): string {
    return `${e.pmd ? 'pmd ' : ''}${e.empty ? 'empty' : e.zero ? 'zero' : 'pfn'}`;
  }

  private event(inode: Inode | AddressSpace, index: number, op: 'create' | 'insert' | 'delete' | 'lock' | 'unlock', e: DaxEntry): void {
    const file = 'owner' in inode ? inode.owner : inode.name;
    this.k.emit('dax.entry', { file, index, op, pfn: e.pfn, kind: this.kindOf(e) });
  }

  /**
   * grab_mapping_entry(): wait for an unlocked entry, lock it or create a locked empty one.
   * Returns 'fallback' when a PMD request meets PTE entries (VM_FAULT_FALLBACK).
   */
  *grabEntry(inode: Inode, index: number, pmd: boolean): Op<{ index: number; entry: DaxEntry } | 'fallback'> {
    const mapping = inode.mapping;
    yield preempt(`grab_mapping_entry(${inode.name}, ${index})`);
    for (;;) {
      const found = pmd ? (mapping.entries.get(index) ? { index, entry: mapping.entries.get(index)! } : null) : this.lookup(mapping, index);
      if (pmd && !found) {
        for (let i = index; i < index + this.pmdPages; i++) if (mapping.entries.has(i)) return 'fallback';
      }
      if (found?.entry.locked) {
        yield* waitUntil(`DAX entry ${inode.name}[${found.index}] locked`, () => !found.entry.locked || mapping.entries.get(found.index) !== found.entry);
        continue;
      }
      if (found && pmd && !found.entry.pmd) return 'fallback';
      if (found && !pmd && found.entry.pmd && (found.entry.zero || found.entry.empty)) {
        // a PTE fault inside a zero/empty PMD entry downgrades it ("we always favor PTE entries")
        mapping.entries.delete(found.index);
        yield* this.k.vm.unmapMappingPages(mapping, found.index, this.pmdPages);
        continue;
      }
      if (found) {
        found.entry.locked = true;
        this.event(inode, found.index, 'lock', found.entry);
        return found;
      }
      const entry: DaxEntry = { pfn: 0, pmd, zero: false, empty: true, locked: true, dirty: false };
      mapping.entries.set(index, entry);
      this.event(inode, index, 'create', entry);
      return { index, entry };
    }
  }

  unlockEntry(inode: Inode, index: number, entry: DaxEntry): void {
    entry.locked = false;
    this.event(inode, index, 'unlock', entry);
  }

  /**
   * dax_insert_entry(): replace an empty/zero entry with a pfn (or zero) entry and associate the
   * page(s) with the file; a shared extent (IOMAP_F_SHARED) always re-associates.
   */
  *insertEntry(inode: Inode, at: { index: number; entry: DaxEntry }, pfn: number, opts: { zero: boolean; dirty: boolean; shared: boolean }): Op<boolean> {
    const { entry, index } = at;
    const replacing = entry.empty || entry.zero || opts.shared;
    // v6.x: a shared (or CoW) insert, or a zero entry getting a block, unmaps the old translation
    if ((entry.zero && !opts.zero) || (opts.shared && !entry.empty && entry.pfn !== pfn)) {
      yield* this.k.vm.unmapMappingPages(inode.mapping, index, entry.pmd ? this.pmdPages : 1);
    }
    let associated = false;
    if (replacing) {
      if (!entry.empty && !entry.zero && !(opts.shared && entry.pfn === pfn)) this.disassociate(inode, entry, false);
      const sameShared = opts.shared && !entry.empty && !entry.zero && entry.pfn === pfn;
      entry.pfn = pfn;
      entry.zero = opts.zero;
      entry.empty = false;
      if (!opts.zero && !sameShared) {
        this.associate(inode, entry, index, opts.shared);
        associated = true;
      }
      this.event(inode, index, 'insert', entry);
    }
    if (opts.dirty) entry.dirty = true;
    return associated;
  }

  /**
   * dax_associate_entry(). Legacy (eras a/b): page->mapping/index on every page of the entry, or
   * the DAX_SHARED share count. Zero-based / entry-holds-ref (era c): dax_folio_init() builds the
   * folio (compound for a PMD entry), mapping/index on the folio; shared = mapping NULL + share.
   */
  private associate(inode: Inode, entry: DaxEntry, index: number, shared: boolean): void {
    const k = this.k;
    const p = k.pages;
    const nr = entry.pmd ? this.pmdPages : 1;
    const legacy = k.features['fsdax-refcount'] === 'legacy';
    const alias = k.features['dax-shared-anon-alias'];
    const heads: number[] = [];
    if (legacy) for (let i = 0; i < nr; i++) heads.push(entry.pfn + i);
    else {
      this.folioInit(entry.pfn, entry.pmd ? Math.log2(this.pmdPages) : 0);
      heads.push(entry.pfn);
    }
    heads.forEach((pfn, i) => {
      const s = p.slot(pfn);
      const mapping = p.mapping[s]!;
      const isShared = alias ? mapping === PAGE_MAPPING_DAX_SHARED : mapping === 0 && p.share[s]! > 0;
      if (shared && (mapping !== 0 || isShared)) {
        if (!isShared) {
          // the page was mapped regularly before: it now belongs to two files
          p.share[s] = 1;
          p.mapping[s] = alias ? PAGE_MAPPING_DAX_SHARED : 0;
        }
        p.share[s]! += 1;
      } else {
        if (mapping !== 0) k.warn(`dax_associate_entry: pfn ${pfn} already has a mapping`);
        p.mapping[s] = mappingOf(inode.mapping.id);
        p.index[s] = index + i;
      }
      k.emit('page.mapping', { pfn, mapping: this.describeMapping(pfn), index: p.index[s]!, share: p.share[s]! });
    });
    if (k.convention.entryHoldsRef) k.folios.get(entry.pfn, 1, 'dax_create_folio: the entry holds a reference');
  }

  /**
   * dax_disassociate_entry() / dax_folio_put(): drop the page <-> file association; a shared
   * page only loses one share. Era (c) splits a PMD folio back to order-0 pages.
   */
  disassociate(inode: Inode, entry: DaxEntry, trunc: boolean): void {
    if (entry.empty || entry.zero) return;
    const k = this.k;
    const p = k.pages;
    const legacy = k.features['fsdax-refcount'] === 'legacy';
    const alias = k.features['dax-shared-anon-alias'];
    const nr = legacy && entry.pmd ? this.pmdPages : 1;
    if (k.convention.entryHoldsRef) k.folios.put(entry.pfn, 1, 'dax entry deleted');
    let cleared = true;
    for (let i = 0; i < nr; i++) {
      const pfn = entry.pfn + i;
      const s = p.slot(pfn);
      if (trunc && legacy && p.rc[s]! > 1) k.warn(`dax_disassociate_entry: truncating busy pfn ${pfn} (refcount ${p.rc[s]})`);
      const mapping = p.mapping[s]!;
      const isShared = alias ? mapping === PAGE_MAPPING_DAX_SHARED : mapping === 0 && p.share[s]! > 0;
      if (isShared && --p.share[s]! > 0) {
        cleared = false;
        continue;
      }
      p.mapping[s] = 0;
      p.index[s] = 0;
      p.share[s] = 0;
      k.emit('page.mapping', { pfn, mapping: 'NULL', index: 0, share: 0 });
    }
    if (!legacy && cleared) this.folioResetOrder(entry.pfn);
  }

  /** dax_folio_init(): make the pages of an entry one folio of the entry's order. */
  private folioInit(head: number, order: number): void {
    const p = this.k.pages;
    if (order === 0 || p.orderOf(head) === order) return;
    const nr = 2 ** order;
    for (let i = 0; i < nr; i++) {
      const s = p.slot(head + i);
      if (p.rc[s] !== 0 && i > 0) this.k.warn(`dax_folio_init: tail pfn ${head + i} has refcount ${p.rc[s]}`);
      p.head[s] = head;
      p.mapping[s] = i === 0 ? p.mapping[s]! : 0;
      p.flags[s] = (p.flags[s]! & ~(PG.head | PG.tail)) | (i === 0 ? PG.head : PG.tail);
      p.order[s] = i === 0 ? order : 0;
    }
  }

  /** dax_folio_reset_order(): split back to order-0 pages once nothing references them. */
  private folioResetOrder(head: number): void {
    const p = this.k.pages;
    const order = p.orderOf(head);
    if (order === 0) return;
    const hs = p.slot(head);
    if (p.rc[hs] !== 0) this.k.warn(`dax_folio_reset_order: folio ${head} still has refcount ${p.rc[hs]}`);
    for (let i = 0; i < 2 ** order; i++) {
      const s = p.slot(head + i);
      p.head[s] = head + i;
      p.order[s] = 0;
      p.flags[s] = p.flags[s]! & ~(PG.head | PG.tail);
    }
  }

  describeMapping(pfn: number): string {
    const s = this.k.pages.slot(pfn);
    const m = this.k.pages.mapping[s]!;
    if (m === 0) return 'NULL';
    if (m === PAGE_MAPPING_DAX_SHARED) return 'PAGE_MAPPING_DAX_SHARED(0x1)';
    return (m & 1) === 1 ? `anon_vma ${Math.floor(m / 4)}` : `address_space ${Math.floor(m / 4)}`;
  }

  /**
   * dax_iomap_pte_fault(): lock the entry, ask the filesystem, map a hole read to the zero page,
   * associate and install the page. Eras (a)/(b) install a devmap PTE without a reference
   * (vmf_insert_mixed); era (c) takes a temporary reference around vmf_insert_page_mkwrite(),
   * which takes the mapping's own reference and mapcount. A write to a shared extent gets the
   * filesystem's CoW block and the old data copied into it (dax_iomap_copy_around, copy_all).
   */
  *pteFault(vmf: Vmf, inode: Inode, ops: DaxIomapOps): Op {
    const k = this.k;
    const { vma, vpn, write } = vmf;
    const index = vmf.pgoff;
    // __do_fault(): with no PTE table under the PMD yet, prealloc_pte first (mm/memory.c)
    if (this.needsPteTable(vmf) && k.faultInject.shouldFail('insert-pgtable')) throw new KernelError('ENOMEM', `VM_FAULT_OOM: __do_fault() could not preallocate a page table for ${inode.name}[${index}]`);
    if (index * k.mmu.basePageSize >= inode.size) throw new KernelError('SIGBUS', `fault beyond EOF of ${inode.name}`);
    const at = yield* this.grabEntry(inode, index, false);
    if (at === 'fallback') throw new Error('unreachable: PTE faults never fall back');
    let deleted = false;
    let dsync: NeedDsync | null = null;
    try {
      if (k.vm.lookup(vma.mm, vpn)?.pte.level === 'pmd') return; // a PMD appeared meanwhile: VM_FAULT_NOPAGE
      const iomap = yield* ops.iomapBegin(inode, index, write, 1);
      if (iomap.type === 'hole' && !write) {
        // dax_load_hole(): zero entry, the zero page mapped special with no reference
        yield* this.insertEntry(inode, at, k.zeroPfn, { zero: true, dirty: false, shared: false });
        if (!k.vm.lookup(vma.mm, vpn)) {
          if (this.needsPteTable(vmf) && k.faultInject.shouldFail('insert-pgtable')) throw new KernelError('ENOMEM', `VM_FAULT_OOM: dax_load_hole() could not insert the zero page for ${inode.name}[${index}]`);
          k.vm.install(vma.mm, vpn, k.faults.pte(k.zeroPfn, 'pte', { special: true }));
        }
        return;
      }
      const pfn = at.entry.pmd ? at.entry.pfn + (index - at.index) : iomap.pfn;
      // dax_iomap_direct_access() -> pmem_dax_direct_access(): a poisoned page (badblock) is
      // -EHWPOISON -> VM_FAULT_HWPOISON: SIGBUS (BUS_MCEERR_AR), nothing inserted
      if (this.poisoned(pfn, 1)) throw new KernelError('SIGBUS', `VM_FAULT_HWPOISON: ${inode.name}[${index}] is on a poisoned page (pfn ${pfn})`);
      let associated = false;
      if (!at.entry.pmd) associated = yield* this.insertEntry(inode, at, iomap.pfn, { zero: false, dirty: write, shared: iomap.shared });
      else if (write) at.entry.dirty = true;
      if (write && iomap.srcPfn !== undefined) k.pages.data.set(pfn, k.pages.data.get(iomap.srcPfn) ?? '');
      if (this.synchronous(vmf, iomap)) {
        dsync = { pfn, level: 'pte' };
      } else {
        yield preempt('dax_fault_iter: insert');
        // insert_page()/insert_pfn(): get_locked_pte() allocates the PTE table if there is none
        const allocFails = !k.vm.lookup(vma.mm, vpn) && this.needsPteTable(vmf) && k.faultInject.shouldFail('insert-pgtable');
        if (!this.installPage(vmf, pfn, 'pte', allocFails)) deleted = this.insertFailed(inode, at, associated);
      }
    } finally {
      if (!deleted) this.unlockEntry(inode, at.index, at.entry);
    }
    if (dsync) return yield* this.finishSyncFault(vmf, inode, ops, dsync);
    if (deleted || !k.vm.lookup(vma.mm, vpn)) throw new KernelError('ENOMEM', `VM_FAULT_OOM: vmf_insert_page failed for ${inode.name}[${index}]`);
  }

  /**
   * dax_fault_is_synchronous(): a write (IOMAP_WRITE; a private COW fault never gets here) to a
   * VM_SYNC mapping whose iomap is IOMAP_F_DIRTY. Read faults are never synchronous.
   */
  private synchronous(vmf: Vmf, iomap: Iomap): boolean {
    return vmf.write && vmf.vma.flags.sync === true && iomap.dirty === true;
  }

  /**
   * dax_finish_sync_fault(), which the filesystem's fault handler calls on VM_FAULT_NEEDDSYNC
   * still holding its fault lock (XFS, ext4): vfs_fsync_range(datasync) commits the metadata,
   * then dax_insert_pfn_mkwrite() looks the entry up again (waiting while it is locked); none, or
   * one of another size (a PMD entry under a PTE fault, PTE entries under a PMD one), is
   * VM_FAULT_NOPAGE and the access retries. Otherwise the entry is dirtied and the page mapped
   * writable.
   */
  private *finishSyncFault(vmf: Vmf, inode: Inode, ops: DaxIomapOps, d: NeedDsync): Op {
    if (!ops.fsync) throw new Error(`MAP_SYNC fault on ${inode.name}: its filesystem has no fsync`);
    ops.fsync(inode, 'dax_finish_sync_fault');
    const pmd = d.level === 'pmd';
    const vpn = pmd ? vmf.vpn - (vmf.vpn % this.pmdPages) : vmf.vpn;
    const index = vmf.pgoff - (vmf.vpn - vpn);
    const entries = inode.mapping.entries;
    const entry = entries.get(index);
    if (entry?.locked) yield* waitUntil(`DAX entry ${inode.name}[${index}] locked`, () => !entry.locked || entries.get(index) !== entry);
    if (!entry || entries.get(index) !== entry || entry.empty || entry.zero || entry.pmd !== pmd) return;
    entry.dirty = true;
    entry.locked = true;
    this.event(inode, index, 'lock', entry);
    this.installPage({ ...vmf, vpn, write: true }, d.pfn, d.level);
    this.unlockEntry(inode, index, entry);
  }

  /**
   * Whether a page of [pfn, pfn + nr) is poisoned: memory_failure() set PG_hwpoison (a machine
   * check), or a sector of it is in the badblocks (a scrub found it: __pmem_direct_access()'s
   * is_bad_pmem() of pmem->bb fails the access: -EIO, -EHWPOISON in later releases; SIGBUS either way).
   * A DAX read(2) asks the same of each extent it copies (fs/rw.ts).
   */
  poisoned(pfn: number, nr: number): boolean {
    const ps = this.k.mmu.basePageSize;
    if (this.k.pmemBadblock((pfn * ps) / 512, (nr * ps) / 512)) return true;
    const p = this.k.pages;
    for (let i = 0; i < nr; i++) if (p.has(pfn + i) && (p.flags[p.slot(pfn + i)]! & PG.hwpoison) !== 0) return true;
    return false;
  }

  /**
   * The page-table page a PTE insert needs: none exists for this PMD range yet (pmd_none). The
   * model keeps no page tables, so "exists" means some PTE of the range is present.
   */
  private needsPteTable(vmf: Vmf): boolean {
    if (!this.k.faultInject.isArmed('insert-pgtable')) return false;
    const mm = vmf.vma.mm;
    const base = vmf.vpn - (vmf.vpn % this.pmdPages);
    if (mm.pmds.has(base)) return false;
    for (let v = base; v < base + this.pmdPages; v++) if (mm.ptes.has(v)) return false;
    return true;
  }

  /**
   * vmf_insert_*() failed after dax_insert_entry() (the injected page-table allocation): every
   * release returns the error and leaves the entry (dax_fault_iter); with
   * dax-insert-failure-cleanup the fault deletes an entry it associated itself, the cleanup seed
   * 004 asked for. Returns whether the entry is gone.
   */
  private insertFailed(inode: Inode, at: { index: number; entry: DaxEntry }, associated: boolean): boolean {
    const k = this.k;
    const cleanup = associated && k.features['dax-insert-failure-cleanup'];
    if (cleanup) {
      this.disassociate(inode, at.entry, false);
      inode.mapping.entries.delete(at.index);
      this.event(inode, at.index, 'delete', at.entry);
    }
    // entryLeft: the association this fault made outlives it (an entry that was there before stays as it was)
    k.emit('dax.insert-failed', { file: inode.name, index: at.index, pfn: at.entry.pfn, entryLeft: associated && !cleanup });
    return cleanup;
  }

  /**
   * dax_iomap_pmd_fault(): the fallback checks (dax_fault_check_fallback), the PMD entry
   * (grab_mapping_entry: PTE entries in the range fall back), then iomap_begin for PMD_SIZE —
   * a write allocates the hole — and a PMD mapping when the extent is PMD_SIZE long and aligned;
   * a read of a PMD-sized hole maps the huge zero page. Shared (reflinked) extents fall back to
   * PTEs here (the kernel CoWs a whole PMD: not modelled).
   */
  *pmdFault(vmf: Vmf, inode: Inode, ops: DaxIomapOps): Op<'done' | 'fallback'> {
    const k = this.k;
    const n = this.pmdPages;
    const { vma, write } = vmf;
    const base = vmf.vpn - (vmf.vpn % n);
    const index = vmf.pgoff - (vmf.vpn - base);
    // hardware without THP (ppc64 hash with 4K pages): __transparent_hugepage_enabled() is false
    // for DAX VMAs too (TRANSPARENT_HUGEPAGE_NEVER_DAX), so ->huge_fault is never tried
    if (k.mmu.transparentHugepage === false) return 'fallback';
    // __handle_mm_fault() asks thp_vma_allowable_order() (v5.4: __transparent_hugepage_enabled())
    // first: vma_thp_disabled() -- MADV_NOHUGEPAGE or PR_SET_THP_DISABLE -- means PTE faults only
    if (!vma.flags.hugepage || k.thp.disabled(vma, false) || base < vma.start || base + n > vma.start + vma.pages) return 'fallback';
    if (index % n !== 0) return 'fallback'; // file offset colour differs from the address colour
    if (write && !vma.flags.shared) return 'fallback'; // private writes COW through PTEs
    if ((index + n) * k.mmu.basePageSize > inode.size) return 'fallback';
    // __handle_mm_fault() only tries ->huge_fault while pmd_none(): a PTE table means PTE faults
    for (let v = base; v < base + n; v++) if (vma.mm.ptes.has(v)) return 'fallback';
    const at = yield* this.grabEntry(inode, index, true);
    if (at === 'fallback') return 'fallback';
    let dsync: NeedDsync | null = null;
    try {
      // raced with a PTE fault while waiting for the entry: the fault is retried (at PTE level)
      for (let v = base; v < base + n; v++) if (vma.mm.ptes.has(v)) return 'fallback';
      const iomap = yield* ops.iomapBegin(inode, index, write, n);
      if (iomap.type === 'hole' && !write) return yield* this.pmdLoadHole(vmf, inode, at, base, iomap);
      if (iomap.type !== 'mapped' || iomap.contiguous < n || iomap.pfn % n !== 0 || iomap.shared) return 'fallback';
      // a badblock in the range: pmem_dax_direct_access() returns fewer pages than PMD_SIZE
      if (this.poisoned(iomap.pfn, n)) return 'fallback';
      if (at.entry.empty || at.entry.zero) yield* this.insertEntry(inode, at, iomap.pfn, { zero: false, dirty: write, shared: false });
      else if (write) at.entry.dirty = true;
      if (this.synchronous(vmf, iomap)) {
        dsync = { pfn: at.entry.pfn, level: 'pmd' };
      } else {
        yield preempt('dax_fault_iter: insert pmd');
        // vmf_insert_folio_pmd() allocates only the deposit table arches like ppc64 need: not x86
        this.installPage({ ...vmf, vpn: base }, at.entry.pfn, 'pmd');
      }
    } finally {
      this.unlockEntry(inode, at.index, at.entry);
    }
    if (dsync) yield* this.finishSyncFault(vmf, inode, ops, dsync);
    return 'done';
  }

  /**
   * dax_pmd_load_hole(): a read of a PMD-sized hole maps the huge zero page (special, no
   * reference) under a DAX_PMD|DAX_ZERO_PAGE entry. A shorter hole (iomap length < PMD_SIZE)
   * falls back. A later PTE fault inside it downgrades the entry (grab_mapping_entry),
   * unmapping the zero PMD.
   */
  private *pmdLoadHole(vmf: Vmf, inode: Inode, at: { index: number; entry: DaxEntry }, base: number, iomap: Iomap): Op<'done' | 'fallback'> {
    const k = this.k;
    if (iomap.contiguous < this.pmdPages) return 'fallback';
    if (at.entry.empty) yield* this.insertEntry(inode, at, k.hugeZeroPfn, { zero: true, dirty: false, shared: false });
    if (!at.entry.zero) return 'fallback';
    if (!k.vm.lookup(vmf.vma.mm, base)) k.vm.install(vmf.vma.mm, base, k.faults.pte(k.hugeZeroPfn, 'pmd', { special: true }));
    return 'done';
  }

  /**
   * Install (or upgrade) the leaf for a DAX page: devmap without a reference when the era uses the
   * devmap bit, else folio_ref_inc + insert (folio_get + rmap) + folio_put. `allocFails`: the
   * insert's page-table allocation fails (fault injection); it returns false (VM_FAULT_OOM).
   */
  installPage(vmf: Vmf, pfn: number, level: 'pte' | 'pmd' | 'pud', allocFails = false): boolean {
    const k = this.k;
    const { vma, vpn, write } = vmf;
    const existing = k.vm.lookup(vma.mm, vpn);
    if (existing && existing.pte.level === level && existing.pte.pfn === pfn) {
      if (write && !existing.pte.write) {
        // insert_pfn/insert_page_into_pte_locked(mkwrite): same pfn -> upgrade in place, no new ref
        // (maybe_mkwrite(pte_mkdirty()): dirty and, where the arch has it, soft-dirty)
        existing.pte.write = true;
        existing.pte.dirty = true;
        existing.pte.softDirty = k.softDirtyArch;
        k.emit('pte.set', { mm: vma.mm.name, vaddr: existing.base, pfn, level, write: true, devmap: existing.pte.devmap, special: existing.pte.special });
      }
      return true;
    }
    if (existing) return true; // another translation is there: VM_FAULT_NOPAGE
    if (k.features['pte-devmap']) {
      if (allocFails) return false;
      // pte_mkdevmap() sets _PAGE_SPECIAL too on x86; pmd_mkdevmap() only _PAGE_DEVMAP
      k.vm.install(vma.mm, vpn, k.faults.pte(pfn, level, { write, dirty: write, devmap: true, special: level === 'pte' && k.mmu.pteBits.special }));
      return true;
    }
    const head = k.folios.folio(pfn);
    k.folios.get(head, 1, 'dax_fault_iter: folio_ref_inc (temporary)');
    if (!allocFails) {
      k.folios.get(head, 1, `vmf_insert_${level === 'pte' ? 'page_mkwrite' : `folio_${level}`}`);
      k.folios.addMap(head);
      k.vm.install(vma.mm, vpn, k.faults.pte(pfn, level, { write, dirty: write }));
    }
    k.folios.put(head, 1, 'dax_fault_iter: folio_put (temporary)');
    return !allocFails;
  }

  /**
   * dax_busy_page(): the first page of the entry someone holds beyond what the convention
   * accounts for (legacy: rc > 1 on any pfn; era c: rc - mapcount != 0 on the folio).
   */
  busyPage(entry: DaxEntry): number | null {
    if (entry.empty || entry.zero) return null;
    const k = this.k;
    const legacy = k.features['fsdax-refcount'] === 'legacy';
    const nr = legacy && entry.pmd ? this.pmdPages : 1;
    for (let i = 0; i < nr; i++) {
      const head = k.folios.folio(entry.pfn + i);
      if (k.convention.isBusy(k.folios.rc(head), k.folios.mapcount(head))) return head;
    }
    return null;
  }

  /**
   * dax_layout_busy_page_range(): unmap the range from every process, then scan its entries for a
   * busy page. Eras (a)/(b) return at once when no VMA maps the file (mapping_mapped()).
   */
  *layoutBusyPageRange(inode: Inode, start: number, end: number): Op<number | null> {
    const k = this.k;
    const mapping = inode.mapping;
    if (k.features['dax-busy-mapping-mapped-check'] && mapping.mmaps.size === 0) {
      k.emit('dax.busy', { file: inode.name, pfn: null });
      return null;
    }
    yield* k.vm.unmapMappingPages(mapping, start, end === Infinity ? Infinity : end - start + 1);
    if (k.features['dax-delete-entries-before-wait']) yield* this.deleteMappingRange(inode, start, end);
    const indices = [...mapping.entries.keys()].filter((i) => i >= start && i <= end).sort((a, b) => a - b);
    for (const i of indices) {
      let entry = mapping.entries.get(i);
      if (entry?.locked) {
        yield* waitUntil(`DAX entry ${inode.name}[${i}] locked`, () => !mapping.entries.get(i)?.locked);
        entry = mapping.entries.get(i);
      }
      if (!entry) continue;
      const page = this.busyPage(entry);
      if (page !== null) {
        k.emit('dax.busy', { file: inode.name, pfn: page });
        return page;
      }
    }
    k.emit('dax.busy', { file: inode.name, pfn: null });
    return null;
  }

  /**
   * Wait for a busy page to become idle, ___wait_var_event() style: check the condition, and if
   * it does not hold drop the fault lock, sleep until the page is woken, retake the lock,
   * re-check. A condition that becomes true without a wake_up_var() is never noticed.
   */
  *waitPageIdle(inode: Inode, head: number, cb: WaitCallbacks): Op {
    const k = this.k;
    const idle = (): boolean => k.convention.isIdle(k.folios.rc(head));
    k.emit('dax.wait', { file: inode.name, pfn: head, until: `idle (${k.convention.name})` });
    while (!idle()) {
      const seen = this.wakeCounts.get(head) ?? 0;
      cb.release();
      yield* waitUntil(`wait for pfn ${head} of ${inode.name} to become idle`, () => (this.wakeCounts.get(head) ?? 0) > seen);
      yield* cb.reacquire();
    }
  }

  /**
   * dax_break_layout() (v6.15+): loop scan/wait until no page in the range is busy, then delete
   * the range's entries. Without a callback (NOWAIT) a busy page ends it with -ERESTARTSYS.
   */
  *breakLayout(inode: Inode, start: number, end: number, cb: WaitCallbacks | null): Op {
    for (;;) {
      const page = yield* this.layoutBusyPageRange(inode, start, end);
      if (page === null) break;
      if (!cb) throw new KernelError('ERESTARTSYS', `busy DAX page ${page} in ${inode.name} (NOWAIT)`);
      yield* this.waitPageIdle(inode, page, cb);
    }
    yield* this.deleteMappingRange(inode, start, end);
  }

  /** dax_delete_mapping_range() / dax_delete_mapping_entry() for every entry in [start, end]. */
  *deleteMappingRange(inode: Inode, start: number, end: number): Op {
    const mapping = inode.mapping;
    const indices = [...mapping.entries.keys()].filter((i) => i >= start && i <= end).sort((a, b) => a - b);
    for (const i of indices) {
      const entry = mapping.entries.get(i);
      if (!entry) continue;
      if (entry.locked) yield* waitUntil(`DAX entry ${inode.name}[${i}] locked`, () => !mapping.entries.get(i)?.locked);
      const e = mapping.entries.get(i);
      if (!e) continue;
      this.disassociate(inode, e, true);
      mapping.entries.delete(i);
      this.event(inode, i, 'delete', e);
    }
  }

  /**
   * invalidate_inode_pages2_range() on a DAX mapping [mm/truncate.c]: each clean entry is
   * invalidated (dax_invalidate_mapping_entry_sync -> __dax_invalidate_entry(trunc = false):
   * waits for a locked entry, keeps dirty ones), then the range is unmapped, after.
   */
  *invalidateInodePages2Range(inode: Inode, start: number, end: number): Op {
    const mapping = inode.mapping;
    const indices = [...mapping.entries.keys()].filter((i) => i >= start && i <= end).sort((a, b) => a - b);
    for (const i of indices) {
      if (mapping.entries.get(i)?.locked) yield* waitUntil(`DAX entry ${inode.name}[${i}] locked`, () => !mapping.entries.get(i)?.locked);
      const e = mapping.entries.get(i);
      if (!e || e.dirty) continue;
      this.disassociate(inode, e, false);
      mapping.entries.delete(i);
      this.event(inode, i, 'delete', e);
    }
    yield* this.k.vm.unmapMappingPages(mapping, start, end === Infinity ? Infinity : end - start + 1);
  }

  /**
   * kill_dax() [drivers/dax/super.c] when a DAX device goes away (pmem_release_disk,
   * virtio_fs_cleanup_dax): from v6.6 a registered holder is told first,
   * dax_holder_notify_failure(dax_dev, 0, U64_MAX, MF_MEM_PRE_REMOVE). Only XFS registers one
   * (xfs_dax_holder_operations); ext4 (fs_dax_get_by_bdev(..., NULL, NULL)) and FUSE do not, so
   * their mappings survive into memunmap_pages().
   */
  *killDax(device: Device): Op {
    const holder = (device.fs as DaxFilesystem | null)?.daxHolder ?? null;
    if (holder && this.k.features['dax-pre-remove-notify']) yield* holder.notifyFailure(0, Infinity, 'pre-remove');
  }

  /**
   * truncate_pagecache_range(): unmap, truncate_inode_pages_range() — which deletes DAX entries in
   * eras (a)/(b) and only finds (and WARNs about) leftovers in era (c) — then unmap again.
   */
  *truncatePagecache(inode: Inode, start: number, end: number): Op {
    const k = this.k;
    const nr = end === Infinity ? Infinity : end - start + 1;
    yield* k.vm.unmapMappingPages(inode.mapping, start, nr);
    const left = [...inode.mapping.entries.keys()].filter((i) => i >= start && i <= end);
    if (left.length > 0 && k.features['fsdax-refcount'] !== 'legacy') {
      k.warn(`truncate_inode_pages_range: ${left.length} DAX entries of ${inode.name} left after dax_break_layout`);
    }
    yield* this.deleteMappingRange(inode, start, end);
    yield* k.vm.unmapMappingPages(inode.mapping, start, nr);
  }
}
