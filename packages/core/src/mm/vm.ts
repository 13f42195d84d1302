import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { preempt, type Op } from '../sched.js';
import type { AddressSpace, MappingRange, Mm, Pte, PteLevel, Vma, VmFlags } from '../types.js';
import { samePolicy } from './mempolicy.js';
import { PG } from './pages.js';
import { refuseWriteExec } from './mdwe.js';
import type { Protection } from './mprotect.js';
import { refuseSealedMprotect, refuseSealedUnmap } from './mseal.js';
import { slicePlace } from './slices.js';
import { placeHinted } from './vaspace.js';
import type { UnmapEvents } from './userfaultfd.js';
import { setVmaPkey } from './pkeys.js';

export interface Leaf {
  readonly pte: Pte;
  /** vpn of the first page the entry maps */
  readonly base: number;
  /** pages it maps */
  readonly pages: number;
}

/**
 * Processes, VMAs and page tables: installing and clearing entries at each level, the lookup a
 * page walk does, and zap with the reference drop deferred until after the TLB flush
 * (mm/memory.c zap_pte_range, mm/mmu_gather.c).
 */
/** The VMAs overlapping pages [start, end) of `mm`, in address order (for_each_vma_range()). */
export function vmasIn(mm: Mm, start: number, end: number): Vma[] {
  return mm.vmas.filter((v) => v.start < end && v.start + v.pages > start).sort((a, b) => a.start - b.start);
}

/**
 * vmf->orig_pte: the value of an entry as a fault read it, copied, because the model rewrites
 * some entries in place where the kernel writes a new value (UFFDIO_WRITEPROTECT, PAGEMAP_SCAN's
 * WP, mprotect, KSM's write_protect_page, fork clearing a swap entry's exclusive bit).
 */
export function origPte(pte: Pte): Pte {
  return pte.swap ? { ...pte, swap: { ...pte.swap } } : { ...pte };
}

/**
 * The `holds` of a fault's yield between reading an entry and pteSame(): whether the entry object
 * it read is still the one installed at `vpn`. The kernel graph shows entries' values, not which
 * object a suspended fault keeps, so two states that differ only there would merge in `daxlab
 * explore` and then behave differently (sched.ts preempt: hashed with the thread's position).
 */
export function entryStillRead(vm: Vm, mm: Mm, vpn: number, read: Pte): () => boolean {
  return () => vm.lookup(mm, vpn)?.pte === read;
}

/**
 * pte_same() under the PTE lock (mm/memory.c: do_swap_page, wp_page_copy,
 * remove_device_exclusive_entry): the entry now at the address is the one the fault read
 * (`read`) and still holds the value it had then (`orig`, from origPte()). The kernel compares
 * values only; the model also asks for the same entry object, so an entry zapped and installed
 * again with the same value counts as changed and the fault is retried, which reads the new entry
 * and does what the kernel's fault would have done with it.
 */
export function pteSame(now: Pte | undefined, read: Pte, orig: Pte): boolean {
  if (now !== read) return false;
  const a = now as unknown as Record<string, unknown>;
  const b = orig as unknown as Record<string, unknown>;
  let n = 0;
  for (const key in a) {
    const x = a[key];
    const y = b[key];
    n++;
    if (x === y) continue;
    // the swap entry is the one nested value rewritten in place (its exclusive bit)
    if (key !== 'swap' || typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return false;
    const sx = x as Record<string, unknown>;
    const sy = y as Record<string, unknown>;
    for (const f in sx) if (sx[f] !== sy[f]) return false;
  }
  return n === Object.keys(b).length;
}

/** The VMAs ending right below and starting right above `vma` (null where there is a gap). */
function neighbours(vma: Vma): { prev: Vma | null; next: Vma | null } {
  const vmas = vma.mm.vmas;
  return { prev: vmas.find((v) => v.start + v.pages === vma.start) ?? null, next: vmas.find((v) => v.start === vma.start + vma.pages) ?? null };
}

/** Flags a merge ignores (is_mergeable_vma(): VM_SOFTDIRTY). */
const MERGE_IGNORES: ReadonlySet<keyof VmFlags> = new Set(['softdirty']);
/** Flags anon_vma_compatible() ignores (VM_ACCESS_FLAGS: VM_READ / VM_WRITE / VM_EXEC, and VM_SOFTDIRTY; every release). */
const ANON_VMA_COMPATIBLE_IGNORES: ReadonlySet<keyof VmFlags> = new Set(['read', 'write', 'exec', 'softdirty']);

/**
 * Two non-hugetlb VMAs of the same vm_file (the same DAX inode, device or page-cache file; none
 * for private anonymous memory), `lo` ending where `hi` starts with contiguous pgoffs, with the
 * same mempolicy and the same flags except `ignored`: what a VMA merge (is_mergeable_vma(),
 * can_vma_merge_after() / _before()) and anon_vma_compatible() both ask of the two. hugetlb VMAs
 * never line up: hugetlb_vm_ops has ->close, and a VMA with ->close did not merge
 * (is_mergeable_vma()) until can_merge_remove_vma() let one that is not removed do so (the VMA
 * code's move to mm/vma.c, v6.12 [M]); the model keeps them apart in every release.
 */
function lineUp(lo: Vma, hi: Vma, ignored: ReadonlySet<keyof VmFlags>): boolean {
  return (
    lo.kind === hi.kind && lo.inode === hi.inode && lo.device === hi.device && (lo.cacheFile ?? null) === (hi.cacheFile ?? null) &&
    !lo.hugetlb && !hi.hugetlb && samePolicy(lo.policy, hi.policy) &&
    lo.start + lo.pages === hi.start && lo.pgoff + lo.pages === hi.pgoff &&
    (Object.keys({ ...lo.flags, ...hi.flags }) as (keyof VmFlags)[]).every((f) => ignored.has(f) || (lo.flags[f] ?? false) === (hi.flags[f] ?? false))
  );
}

/** VM_SPECIAL (VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP): vma_merge() and its successors never merge such a VMA. */
function special(v: Vma): boolean {
  return v.flags.io || v.flags.dontexpand || v.flags.pfnmap || v.flags.mixedmap;
}

/**
 * Whether a zap leaves a PTE marker in place (mm/memory.c zap_nonpresent_ptes(), zap_pte_range()
 * before v6.12 [M]; the same rules in v6.6, v6.15 and the newest tree's softleaf_* spelling):
 * - PTE_MARKER_UFFD_WP: an anonymous VMA's always goes ("For anon: always drop the marker"); a file
 *   VMA's only under ZAP_FLAG_DROP_MARKER (zap_drop_markers(): unmap_vmas() for munmap and exit;
 *   zap_drop_file_uffd_wp() before v6.13);
 * - PTE_MARKER_GUARD (v6.13): only under ZAP_FLAG_DROP_MARKER ("Ordinary zapping should not remove
 *   guard PTE markers");
 * - PTE_MARKER_POISONED (v6.6, "is_hwpoison_entry(entry) || is_poisoned_swp_entry(entry)") is
 *   dropped when should_zap_cows(details): details NULL (MADV_DONTNEED's zap_page_range_single()
 *   up to v6.12) or even_cows (MADV_DONTNEED from v6.13, unmap_vmas(), truncation's
 *   unmap_mapping_range(.., 1)); hole punching (truncate_pagecache_range(), shmem_fallocate(),
 *   MADV_REMOVE: even_cows = 0) leaves it, in shared and private file VMAs alike.
 * A hugetlb VMA (__unmap_hugepage_range(), mm/hugetlb.c) clears every non-present entry, a poison
 * marker included, except that a uffd-wp one is put back as a PTE_MARKER_UFFD_WP unless
 * ZAP_FLAG_DROP_MARKER (munmap, exit, hugetlbfs truncation).
 */
function keptMarker(vma: Vma, pte: Pte, dropMarkers: boolean, evenCows: boolean): boolean {
  if (vma.hugetlb) return pte.uffdWp === true && !dropMarkers;
  if (pte.uffdWp) return vma.kind !== 'anon' && !dropMarkers;
  if (pte.guard) return !dropMarkers;
  if (pte.poisoned) return !evenCows;
  return !dropMarkers;
}

export class Vm {
  private nextMmId = 1;
  private nextVmaId = 1;
  private nextAnonVma = 1;
  /** ground truth for invariants: huge leaves currently installed, by first pfn */
  private readonly hugeMapped = new Map<number, { pages: number; count: number }>();

  constructor(private readonly k: Kernel) {}

  get pmdPages(): number {
    return this.k.mmu.pmdSize / this.k.mmu.basePageSize;
  }
  get pudPages(): number {
    return (this.k.mmu.pudSize ?? 0) / this.k.mmu.basePageSize;
  }

  newMm(name: string): Mm {
    // user mappings start at 1 TiB of virtual space; placement keeps PUD alignment available
    const start = (2 ** 40) / this.k.mmu.basePageSize;
    return { id: this.nextMmId++, name, vmas: [], ptes: new Map(), pmds: new Map(), puds: new Map(), hasPinned: false, writeProtectSeq: 0, nextVpn: start, alive: true, ranges: new Map() };
  }

  newAnonVma(): number {
    return this.nextAnonVma++;
  }

  /**
   * anon_vma_prepare(): the VMA's anon_vma, set on its first anonymous page. __anon_vma_prepare()
   * first asks find_mergeable_anon_vma() (mm/mmap.c; mm/vma.c from v6.12 [M], every release) for
   * the anon_vma of the next, then the previous VMA when reusable_anon_vma() allows: adjacent,
   * anon_vma_compatible() (the same file and mempolicy, flags equal but VM_READ / VM_WRITE /
   * VM_EXEC / VM_SOFTDIRTY, pgoffs in line) and that VMA's anon_vma_chain singular (faulted, not a
   * fork child). So two such VMAs faulted apart share one anon_vma and may merge later.
   */
  anonVmaPrepare(vma: Vma): number {
    if (!vma.anonVma) vma.anonVma = this.findMergeableAnonVma(vma) || this.newAnonVma();
    return vma.anonVma;
  }

  private findMergeableAnonVma(vma: Vma): number {
    const reusable = (old: Vma): number => (old.anonVma && !old.anonForked ? old.anonVma : 0);
    const { prev, next } = neighbours(vma);
    if (next && lineUp(vma, next, ANON_VMA_COMPATIBLE_IGNORES) && reusable(next)) return next.anonVma;
    if (prev && lineUp(prev, vma, ANON_VMA_COMPATIBLE_IGNORES) && reusable(prev)) return prev.anonVma;
    return 0;
  }

  /**
   * get_unmapped_area() with THP-style alignment: align to the largest leaf the length allows,
   * bottom-up from 1 TiB (the kernel goes top-down from mmap_base: mm/vaspace.ts); an address
   * hint (Mm.addressHint) goes first.
   * `psize` is the mapping's MMU page size in base pages (a hugetlb mapping's huge page, else 1),
   * which an MMU with slices must fit (mm/slices.ts).
   */
  placeVma(mm: Mm, pages: number, align: number, psize = 1): number {
    // mmap(MAP_FIXED): the address is the caller's (kernel.ts mmap checked its slices, then
    // unmapped what was there)
    if (mm.fixedPlacement !== undefined) {
      const at = mm.fixedPlacement;
      const absolute = mm.fixedAbsolute;
      delete mm.fixedPlacement;
      delete mm.fixedAbsolute;
      if (at % align !== 0) throw new KernelError('EINVAL', `mmap MAP_FIXED at page ${at} of ${mm.name}: not aligned to the mapping's ${align} pages`);
      if (!absolute && mm.nextVpn < at + pages + this.pmdPages) mm.nextVpn = at + pages + this.pmdPages;
      return at;
    }
    // mmap() with an address hint: where the kernel takes it, or searches above DEFAULT_MAP_WINDOW (mm/vaspace.ts)
    if (mm.addressHint !== undefined) {
      const hint = mm.addressHint;
      delete mm.addressHint;
      const at = placeHinted(this.k, mm, hint, pages, align, psize);
      if (at !== null) return at;
    }
    const a = Math.max(align, pages >= this.pudPages && this.pudPages > 0 ? this.pudPages : pages >= this.pmdPages ? this.pmdPages : 1);
    let start = slicePlace(this.k.mmu, mm, mm.nextVpn, pages, a, psize);
    // past a mapping a hint or MAP_FIXED at an address put above the model's own placement
    for (let hit = this.overlapping(mm, start, pages); hit; hit = this.overlapping(mm, start, pages)) start = slicePlace(this.k.mmu, mm, hit.start + hit.pages, pages, a, psize);
    mm.nextVpn = start + pages + this.pmdPages; // leave a guard gap
    return start;
  }

  private overlapping(mm: Mm, start: number, pages: number): Vma | undefined {
    return mm.vmas.find((v) => v.start < start + pages && start < v.start + v.pages);
  }

  /**
   * A new VMA. A new mapping (re)defines what its name stands for (Mm.ranges): its own range. A
   * piece of a mapping (a split, a fork's copy) passes the range it `shares`, which a name the mm
   * already has keeps.
   */
  addVma(mm: Mm, v: Omit<Vma, 'id' | 'mm'> & { readonly mm?: Mm }, shares?: MappingRange): Vma {
    const vma: Vma = { ...v, id: this.nextVmaId++, mm };
    if (!shares) mm.ranges.set(vma.name, { start: vma.start, pages: vma.pages });
    else if (!mm.ranges.has(vma.name)) mm.ranges.set(vma.name, shares);
    mm.vmas.push(vma);
    this.mappingOf(vma)?.mmaps.add(vma);
    return vma;
  }

  mappingOf(vma: Vma): AddressSpace | null {
    return vma.inode?.mapping ?? vma.device?.mapping ?? vma.cacheFile?.mapping ?? null;
  }

  vmaAt(mm: Mm, vpn: number): Vma | null {
    for (const v of mm.vmas) if (vpn >= v.start && vpn < v.start + v.pages) return v;
    return null;
  }

  /** Whether vpn lies in the PMD range whose page table a collapse has taken away (Mm.collapsing). */
  collapsingAt(mm: Mm, vpn: number): boolean {
    return mm.collapsing !== undefined && vpn - (vpn % this.pmdPages) === mm.collapsing;
  }

  /** The leaf entry translating vpn, at whatever level. */
  lookup(mm: Mm, vpn: number): Leaf | null {
    if (this.pudPages > 0) {
      const base = vpn - (vpn % this.pudPages);
      const pud = mm.puds.get(base);
      if (pud) return { pte: pud, base, pages: this.pudPages };
    }
    const pbase = vpn - (vpn % this.pmdPages);
    const pmd = mm.pmds.get(pbase);
    if (pmd) return { pte: pmd, base: pbase, pages: this.pmdPages };
    const pte = mm.ptes.get(vpn);
    return pte ? { pte, base: vpn, pages: 1 } : null;
  }

  /** The pfn a present leaf maps at vpn. */
  pfnAt(leaf: Leaf, vpn: number): number {
    return leaf.pte.pfn + (vpn - leaf.base);
  }

  /**
   * the PMD-sized spans of each mm that have a PTE table (pteTableAt). A Map, not a WeakMap: it is
   * kernel state, which the explorer hashes and puts back (Memento) by walking enumerable fields;
   * a WeakMap's entries are invisible to both, so a table a run left made the next replay diverge.
   */
  private readonly pteTables = new Map<Mm, Set<number>>();

  /**
   * Whether a PTE table covers vpn: pte_alloc() gave one to the first PTE-level entry of the span;
   * zapping entries leaves it (MADV_DONTNEED, unmap_mapping_range), a huge leaf installed there
   * replaces it (THP collapse), and free_pgtables() frees it once no VMA is left in the span.
   * PAGEMAP_SCAN tells a pte_none inside a table from a hole without one (mm/pagemapscan.ts).
   */
  pteTableAt(mm: Mm, vpn: number): boolean {
    const base = vpn - (vpn % this.pmdPages);
    const tables = this.pteTables.get(mm);
    if (!tables?.has(base)) return false;
    if (mm.vmas.some((v) => v.start < base + this.pmdPages && v.start + v.pages > base)) return true;
    tables.delete(base);
    return false;
  }

  /**
   * pmdp_collapse_flush() + pte_free_defer() of an emptied PTE table (khugepaged's
   * retract_page_tables() and collapse_pte_mapped_thp()): the span is pmd_none again, so a
   * fault there may map a PMD. The caller has cleared the entries.
   */
  freePteTable(mm: Mm, vpn: number): void {
    this.pteTables.get(mm)?.delete(vpn - (vpn % this.pmdPages));
  }

  /**
   * pte_alloc() of an empty PTE table over vpn where the PMD is none (no huge leaf there): what
   * do_anonymous_page() does before it hands a fault to the userfaultfd, and UFFDIO_MOVE's
   * __pte_alloc() of its source and destination (mm/uffdmove.ts). The span is no longer
   * pmd_none.
   */
  allocPteTable(mm: Mm, vpn: number): void {
    const base = vpn - (vpn % this.pmdPages);
    if (mm.pmds.has(base)) return;
    let tables = this.pteTables.get(mm);
    if (!tables) this.pteTables.set(mm, (tables = new Set()));
    tables.add(base);
  }

  /** set_pte_at / set_pmd_at / set_pud_at. Reference and rmap accounting is the caller's. */
  install(mm: Mm, base: number, pte: Pte): void {
    const table = pte.level === 'pte' ? mm.ptes : pte.level === 'pmd' ? mm.pmds : mm.puds;
    table.set(base, pte);
    if (pte.level !== 'pud') {
      let tables = this.pteTables.get(mm);
      if (!tables) this.pteTables.set(mm, (tables = new Set()));
      if (pte.level === 'pte') tables.add(base - (base % this.pmdPages));
      else tables.delete(base);
    }
    if (pte.marker) {
      if (pte.guard) this.k.emit('guard.marker', { mm: mm.name, vaddr: base, op: 'set' });
      return;
    }
    if (pte.swap) return this.k.emit('swap.entry', { mm: mm.name, vaddr: base, slot: pte.swap.slot, exclusive: pte.swap.exclusive, op: 'set' });
    // a migration entry maps nothing (the page's mapcount went with try_to_migrate_one)
    if (pte.migration) return;
    this.track(pte, +1);
    this.k.emit('pte.set', { mm: mm.name, vaddr: base, pfn: pte.pfn, level: pte.level, write: pte.write, devmap: pte.devmap, special: pte.special, device: pte.devicePrivate || undefined });
  }

  /** ptep_get_and_clear(): remove the leaf at base. */
  clear(mm: Mm, base: number, level: PteLevel): Pte | null {
    const table = level === 'pte' ? mm.ptes : level === 'pmd' ? mm.pmds : mm.puds;
    const pte = table.get(base);
    if (!pte) return null;
    table.delete(base);
    if (pte.marker) {
      if (pte.guard) this.k.emit('guard.marker', { mm: mm.name, vaddr: base, op: 'clear' });
      return pte;
    }
    if (pte.swap) {
      this.k.emit('swap.entry', { mm: mm.name, vaddr: base, slot: pte.swap.slot, exclusive: pte.swap.exclusive, op: 'clear' });
      return pte;
    }
    if (pte.migration) return pte;
    this.track(pte, -1);
    this.k.emit('pte.clear', { mm: mm.name, vaddr: base, pfn: pte.pfn, level });
    return pte;
  }

  private track(pte: Pte, d: number): void {
    if (pte.special && this.k.isZeroPfn(pte.pfn)) return;
    if (pte.level === 'pte') {
      const p = this.k.pages;
      const s = p.slot(pte.pfn);
      p.ptes[s]! += d;
      return;
    }
    const pages = pte.level === 'pmd' ? this.pmdPages : this.pudPages;
    const e = this.hugeMapped.get(pte.pfn) ?? { pages, count: 0 };
    e.count += d;
    if (e.count === 0) this.hugeMapped.delete(pte.pfn);
    else this.hugeMapped.set(pte.pfn, e);
  }

  /**
   * page_mapcount() of one page, from the page tables: the PTEs mapping it plus the PMD/PUD
   * leaves mapping the folio whole (a THP's entire mapcount).
   */
  pageMapcount(pfn: number, head: number): number {
    const p = this.k.pages;
    const ptes = p.has(pfn) ? p.ptes[p.slot(pfn)]! : 0;
    return ptes + (this.hugeMapped.get(head)?.count ?? 0);
  }

  /** Ground truth: does any page-table entry of any process map this pfn? */
  isMapped(pfn: number): boolean {
    const p = this.k.pages;
    if (p.has(pfn) && p.ptes[p.slot(pfn)]! > 0) return true;
    for (const [start, e] of this.hugeMapped) if (pfn >= start && pfn < start + e.pages) return true;
    return false;
  }

  /** vm_normal_page(): the struct page behind a present PTE, or null for special/devmap PTEs. */
  normalPage(pte: Pte, pfn: number): number | null {
    if (pte.devicePrivate || pte.deviceExclusive || pte.swap || pte.marker || pte.migration) return null;
    if (pte.special || pte.devmap) return null;
    return pfn;
  }

  /**
   * zap_page_range(): clear every leaf in [start, end) of the VMA; mapcounts drop at once, the
   * page references only after the TLB flush (tlb_finish_mmu -> tlb_flush_mmu -> folios_put).
   * Guard markers stay unless `dropMarkers`: zap_pte_range() removes them only under
   * ZAP_FLAG_DROP_MARKER (zap_drop_markers()), which unmap_vmas() passes for munmap and exit;
   * MADV_DONTNEED, truncation and hole punching (unmap_mapping_range) keep them (v6.13). A
   * PTE_MARKER_UFFD_WP goes the same way, except that an anonymous VMA's always goes ("For anon:
   * always drop the marker", v6.4); and without ZAP_FLAG_DROP_MARKER a uffd-wp entry of a file VMA
   * leaves one behind (zap_install_uffd_wp_if_needed(), v5.19: mm/userfaultfd.ts). A
   * PTE_MARKER_POISONED (UFFDIO_POISON) goes with the COW copies, `evenCows` (keptMarker()). A
   * hugetlb VMA is __unmap_hugepage_range()'s.
   */
  *zap(vma: Vma, start: number, end: number, why: string, dropMarkers = false, evenCows = true): Op {
    const k = this.k;
    const mm = vma.mm;
    const gathered: number[] = [];
    const leaves = this.leavesIn(mm, start, end);
    // unmap_vmas() / zap_page_range_single(): mmu_notifier_invalidate_range_start(MMU_NOTIFY_UNMAP
    // / _CLEAR) first: mirror devices drop what they map in the range
    if (leaves.length > 0) k.mmuNotify({ mm, start, end, event: 'unmap', owner: null });
    for (const leaf of leaves) {
      if (leaf.pte.marker && keptMarker(vma, leaf.pte, dropMarkers, evenCows)) continue;
      const pte = this.clear(mm, leaf.base, leaf.pte.level);
      if (!pte) continue;
      if (!dropMarkers) k.uffd.keepWpAfterZap(vma, leaf.base, pte);
      // zap_nonpresent_ptes(): a migration entry holds no reference; it just goes (the migration's
      // remove_migration_ptes() then finds one mapping fewer)
      if (pte.marker || pte.migration) continue;
      if (pte.swap) {
        k.swap.zapEntry(pte); // free_swap_and_cache()
        continue;
      }
      if (pte.devicePrivate || pte.deviceExclusive) {
        // device-private and device-exclusive swap entries: reference dropped at once, no TLB
        // involved; the rmap too, except for a device-exclusive entry before v6.15, whose
        // make_device_exclusive() had dropped it already (zap_pte_range)
        const head = k.folios.folio(pte.pfn);
        if (pte.devicePrivate || k.features['device-exclusive'] !== 'rmap') k.folios.removeMap(head);
        k.folios.put(head, 1, `${why}: zap ${pte.devicePrivate ? 'device-private' : 'device-exclusive'} entry`);
        continue;
      }
      const page = this.normalPage(pte, pte.pfn);
      // zap_present_ptes(): no struct page -- a KSM-placed zero page is uncounted (ksm_might_unmap_zero_page)
      if (page === null) k.ksm.unmapZeroPage(mm, pte);
      if (page === null || k.isGone(page)) continue;
      const head = k.folios.folio(page);
      // zap_present_folio_ptes(): a file folio takes the dirty bit of the entry (folio_mark_dirty)
      if (!k.folios.testAnon(head, 'zap_present_folio_ptes') && pte.dirty && vma.kind === 'pagecache') k.folios.setFlag(head, PG.dirty, true);
      k.folios.removeMap(head);
      gathered.push(head);
    }
    if (leaves.length === 0) return;
    yield preempt(`tlb_finish_mmu(${mm.name})`);
    k.emit('tlb.flush', { mm: mm.name });
    for (const head of gathered) {
      // free_pages_and_swap_cache() -> free_swap_cache(): an unmapped folio leaves the swap cache
      k.swap.freeSwapCache(head);
      k.folios.put(head, 1, `${why}: tlb_flush_mmu_free`);
    }
  }

  /**
   * zap_page_range_single() as madvise calls it (MADV_DONTNEED, MADV_GUARD_INSTALL): a huge leaf
   * the range covers only in part is split first, as zap_pmd_range() does (__split_huge_pmd: a
   * DAX PMD is cleared and re-faults as PTEs), then the range is zapped.
   */
  *zapRangeSingle(vma: Vma, s: number, e: number, why: string): Op {
    for (const leaf of this.leavesIn(vma.mm, s, e)) {
      if (leaf.base >= s && leaf.base + leaf.pages <= e) continue;
      if (leaf.pte.level === 'pud') throw KernelError.unsupported('EINVAL', `${why} of part of a 1 GiB PUD leaf of '${vma.name}': split_huge_pud() is not modelled`);
      this.splitHugePmd(vma, leaf.base);
    }
    yield* this.zap(vma, s, e, why);
  }

  /** Every leaf translating some page of [start, end), at whatever level, in address order (a page walk). */
  leavesIn(mm: Mm, start: number, end: number): Leaf[] {
    const leaves: Leaf[] = [];
    for (let vpn = start; vpn < end; ) {
      const leaf = this.lookup(mm, vpn);
      if (!leaf) {
        vpn = this.nextMapped(mm, vpn, end);
        continue;
      }
      leaves.push(leaf);
      vpn = leaf.base + leaf.pages;
    }
    return leaves;
  }

  private nextMapped(mm: Mm, from: number, end: number): number {
    let next = end;
    for (const table of [mm.ptes, mm.pmds, mm.puds]) for (const base of table.keys()) if (base > from && base < next) next = base;
    return next;
  }

  /**
   * Tear a VMA down: zap it, then take it out of the mm and its file's i_mmap. munmap detaches it
   * from the mm before the zap (`detachFirst`: do_munmap()'s detach_vmas_to_be_unmapped() before
   * unmap_region(), mm/mmap.c; vms_gather_munmap_vmas() before vms_complete_munmap_vmas() since
   * the VMA code moved to mm/vma.c, v6.12 [M]), so a walk of the mm while the entries go (an HMM
   * mirror's hmm_range_fault) finds a hole; exit_mmap() zaps with the VMAs still in the tree.
   */
  *unmapVma(vma: Vma, detachFirst = false): Op {
    const detach = () => {
      const i = vma.mm.vmas.indexOf(vma);
      if (i >= 0) vma.mm.vmas.splice(i, 1);
    };
    if (detachFirst) detach();
    yield* this.zap(vma, vma.start, vma.start + vma.pages, 'munmap', true);
    detach();
    this.mappingOf(vma)?.mmaps.delete(vma);
    if (vma.hugetlb) this.k.hugetlb.close(vma); // hugetlb_vm_op_close(): unused reservations back
    // the last VMA of a shared anonymous mapping's file was its last reference (mm/pagecache.ts)
    if (vma.cacheFile) this.k.pageCache.released(vma.cacheFile);
  }

  /**
   * __split_vma(vma, addr, new_below = 0) (mm/mmap.c; mm/vma.c since the 2024 move of the VMA
   * code [M]): the VMA keeps [start, at) and a copy takes [at, end) with vm_pgoff advanced, the
   * same flags, anon_vma, file (and a place in its i_mmap). vm_ops->may_split may refuse first
   * (device-dax: EINVAL off its align); then vma_adjust_trans_huge() splits a huge PMD that straddles `at`
   * (split_huge_pmd_if_needed). Returns the new upper piece.
   */
  splitVma(vma: Vma, at: number): Vma {
    if (at <= vma.start || at >= vma.start + vma.pages) throw new Error(`splitVma: page ${at} is not inside '${vma.name}' (${vma.start}..${vma.start + vma.pages - 1})`);
    if (vma.device) this.k.driverOf(vma.device).maySplit?.(this.k, vma.device, vma, at);
    // hugetlb_vm_op_split(): a hugetlb VMA splits only on a huge page boundary
    if (vma.hugetlb && (at - vma.start) % vma.hugetlb.pages !== 0) throw new KernelError('EINVAL', `'${vma.name}' is a hugetlb mapping: it can only be split at a multiple of its ${(vma.hugetlb.pages * this.k.mmu.basePageSize) / 2 ** 20} MiB page size (hugetlb_vm_op_split)`);
    const base = at - (at % this.pmdPages);
    // split_huge_pmd_if_needed(): only a PMD range inside the VMA can hold a huge leaf; a PUD leaf
    // (device-dax 1 GiB) is never straddled, as dev_dax_may_split() refuses any unaligned address
    if (base !== at && base >= vma.start && base + this.pmdPages <= vma.start + vma.pages) this.splitHugePmd(vma, base);
    const offset = at - vma.start;
    const i = vma.mm.vmas.indexOf(vma);
    const upper = this.addVma(vma.mm, { ...vma, start: at, pages: vma.pages - offset, pgoff: vma.pgoff + offset, flags: { ...vma.flags } }, vma.mm.ranges.get(vma.name)!);
    // keep mm.vmas in address order, as the maple tree walks it
    vma.mm.vmas.splice(vma.mm.vmas.indexOf(upper), 1);
    vma.mm.vmas.splice(i + 1, 0, upper);
    vma.pages = offset;
    this.k.emit('vma.split', { mm: vma.mm.name, map: vma.name, vaddr: at });
    return upper;
  }

  /**
   * VMA merging (mm/vma.c vma_merge_existing_range() / vma_merge_new_range() since the VMA code
   * moved there, v6.12 [M]; vma_merge() in mm/mmap.c before). `vma` is the VMA just changed:
   * - 'existing' (vmg->middle): a piece mprotect_fixup(), madvise_update_vma(), mlock or mseal
   *   gave new flags (vma_modify_flags() from v6.7);
   * - 'new': a range just mapped (mmap_region(); vma_merge_new_range() with no middle);
   * - 'extend': a VMA mremap() grew in place, with the VMA right above only (vma_merge_extend():
   *   a new-range merge of the extension, whose prev is the VMA itself);
   * - { copiedFrom }: the copy mremap()'s copy_vma() made of `copiedFrom` (vma_merge_copied_range(),
   *   61f67c230a5e, v6.19 [M]; a new-range merge before).
   * It joins the VMA ending right below it and the one starting right above it when
   * is_mergeable_vma() allows (the same flags but VM_SOFTDIRTY, the same file, the same
   * userfaultfd context, an equal mempolicy), the pgoffs are contiguous (can_vma_merge_after() /
   * _before()), the anon_vmas may share a VMA (anonVmasMergeable()) and, when both sides would
   * join, prev's and next's anon_vmas are compatible with each other (can_vma_merge_right()).
   * Anonymous, file, shmem and device VMAs merge alike (the same vm_file; lineUp()); hugetlb and
   * VM_SPECIAL VMAs never do. The lower VMA grows and keeps its name and flags. Returns the VMA
   * that covers `vma`'s range now.
   */
  mergeAround(vma: Vma, how: 'existing' | 'new' | 'extend' | { readonly copiedFrom: Vma } = 'existing'): Vma {
    const mm = vma.mm;
    const proposed = vma.anonVma;
    // the VMA whose anon_vma the merged one would take: the middle of an existing-range merge, the
    // copied-from VMA of an mremap() from v6.19, none for a new range
    const src = how === 'existing' ? vma : how === 'new' || how === 'extend' || !kernelAtLeast(this.k.version, 6, 19) ? null : how.copiedFrom;
    // is_mergeable_vma(): the same userfaultfd context too
    const alike = (lo: Vma, hi: Vma): boolean => lo.uffd === hi.uffd && !special(lo) && lineUp(lo, hi, MERGE_IGNORES);
    const around = neighbours(vma);
    const prev = how === 'extend' ? null : around.prev;
    const next = around.next;
    const left = prev !== null && alike(prev, vma) && this.anonVmasMergeable(proposed, src, prev);
    // can_vma_merge_right(): with both sides, prev's and next's anon_vmas must go together too
    const right = next !== null && alike(vma, next) && this.anonVmasMergeable(proposed, src, next) && (!left || prev!.anonVma === 0 || next.anonVma === 0 || prev!.anonVma === next.anonVma);
    const join = (lo: Vma, hi: Vma): Vma => {
      lo.pages += hi.pages;
      // dup_anon_vma(): the VMA that grows takes the anon_vma of the pages it now covers
      if (!lo.anonVma) {
        lo.anonVma = hi.anonVma;
        if (hi.anonForked) lo.anonForked = true;
      }
      mm.vmas.splice(mm.vmas.indexOf(hi), 1);
      // vma_complete(): the removed VMA leaves its file's i_mmap
      this.mappingOf(hi)?.mmaps.delete(hi);
      this.k.emit('vma.merge', { mm: mm.name, map: lo.name, vaddr: hi.start });
      return lo;
    };
    let merged = left ? join(prev!, vma) : vma;
    if (right) merged = join(merged, next!);
    return merged;
  }

  /**
   * is_mergeable_anon_vma(): may `tgt` (prev or next) and the range joining it, whose anon_vma is
   * `proposed` (that of `src`; 0: unfaulted), end up in one VMA.
   * - Before 879bca0a2c4f ("mm/vma: fix incorrectly disallowed anonymous VMA merges", v6.16 [M])
   *   a missing anon_vma on either side was allowed only when tgt's anon_vma_chain was singular:
   *   tgt faulted and no fork child. An unfaulted tgt (empty chain) merged only with another
   *   unfaulted range, so a faulted VMA never merged into an unfaulted neighbour ("for ~15 years
   *   we did not", merge.c).
   * - From v6.16 the VMA whose anon_vma the merged VMA takes must not be a fork child
   *   (vma_had_uncowed_parents(), renamed vma_is_fork_child() in v6.19): src when only the
   *   joining range is faulted, tgt when only tgt is.
   * Both faulted: the same anon_vma.
   */
  private anonVmasMergeable(proposed: number, src: Vma | null, tgt: Vma): boolean {
    if (!kernelAtLeast(this.k.version, 6, 16)) {
      if (proposed !== 0 && tgt.anonVma !== 0) return proposed === tgt.anonVma;
      return (tgt.anonVma !== 0 && !tgt.anonForked) || proposed === tgt.anonVma;
    }
    if (tgt.anonVma === 0 && proposed !== 0) return !(src?.anonForked ?? false);
    if (tgt.anonVma !== 0 && proposed === 0) return !tgt.anonForked;
    return proposed === tgt.anonVma;
  }

  /** split_vma() at whichever ends of [start, end) fall inside the VMA; the piece covering the range. */
  isolate(vma: Vma, start: number, end: number): Vma {
    const piece = start > vma.start ? this.splitVma(vma, start) : vma;
    if (end < piece.start + piece.pages) this.splitVma(piece, end);
    return piece;
  }

  /**
   * __split_huge_pmd() of a file or device VMA (mm/huge_memory.c __split_huge_pmd_locked(),
   * !vma_is_anonymous): the huge leaf is cleared and flushed (pmdp_huge_clear_flush), never
   * remapped as PTEs: DAX re-faults the range at PTE level. A special or devmap leaf (the huge zero
   * page; a DAX PMD before v6.15) held no reference. From v6.15 ("fs/dax: properly refcount fs dax
   * pages": vma_is_special_huge() no longer returns early for vma_is_dax()) a DAX folio PMD
   * drops its rmap and reference at once (folio_remove_rmap_pmd, folio_put), like zap_huge_pmd()
   * but without the mmu_gather. No-op when no huge leaf is there.
   */
  splitHugePmd(vma: Vma, base: number): void {
    const k = this.k;
    const mm = vma.mm;
    const pmd = mm.pmds.get(base);
    if (!pmd) return;
    // an anonymous THP is remapped by PTEs, not zapped (mm/thp.ts splitAnonPmd)
    const leaf = { pte: pmd, base, pages: this.pmdPages };
    if (k.thp.isAnonPmd(vma, leaf)) return k.thp.splitAnonPmd(vma, base);
    // a device-private PMD (the 2025 device-private THP series, "mm/huge_memory: implement
    // device-private THP splitting"): HPAGE_PMD_NR device-private PTEs with the entry's write bit,
    // folio_ref_add(HPAGE_PMD_NR - 1) and a PTE rmap each, PageAnonExclusive carried; the folio
    // stays large
    if (pmd.devicePrivate && vma.kind === 'anon') return k.thp.splitAnonPmd(vma, base);
    if (k.thp.isHugeZeroPmd(vma, leaf)) return k.thp.splitZeroPmd(vma, base);
    const pte = this.clear(mm, base, 'pmd')!;
    k.emit('tlb.flush', { mm: mm.name });
    const page = this.normalPage(pte, pte.pfn);
    if (page === null || k.isGone(page)) return;
    const head = k.folios.folio(page);
    k.folios.removeMap(head);
    k.folios.put(head, 1, '__split_huge_pmd_locked');
  }

  /**
   * munmap(start, len) (do_vmi_munmap -> do_vmi_align_munmap): split the VMA straddling `start`,
   * then the one straddling `end` (a refused second split leaves the first done, as the kernel
   * does), then unmap every VMA inside. An empty range is no error.
   */
  *munmapRange(mm: Mm, start: number, end: number, uf?: UnmapEvents): Op {
    refuseSealedUnmap(this.k, mm, start, end, 'munmap'); // mseal(2): EPERM before anything is unmapped (mm/mseal.ts)
    const first = mm.vmas.find((v) => v.start < start && v.start + v.pages > start);
    if (first) this.splitVma(first, start);
    const last = mm.vmas.find((v) => v.start < end && v.start + v.pages > end);
    if (last) this.splitVma(last, end);
    // userfaultfd_unmap_prep() (vms_gather_munmap_vmas(), after the splits): the
    // UFFD_FEATURE_EVENT_UNMAP ctxs of the VMAs going away
    const unmaps = { ctxs: this.k.uffd.unmapPrep(mm, start, end), start, end };
    const inside = mm.vmas.filter((v) => v.start >= start && v.start + v.pages <= end);
    for (const vma of inside) yield* this.unmapVma(vma, true);
    // userfaultfd_unmap_complete(): UFFD_EVENT_UNMAP, read before munmap() returns -- or, for
    // mremap(), at its end (`uf`: the caller's uf_unmap list)
    if (uf) uf.push(unmaps);
    else yield* this.k.uffd.completeUnmaps([unmaps]);
  }

  /**
   * mprotect(start, len) (do_mprotect_pkey): the VMAs covering the range, in order, each through
   * mprotect_fixup(): a VMA whose flags change is split at the range's ends first (a VMA whose
   * flags stay is left alone, unsplit), then change_protection() (mm/mprotect.ts). A hole is
   * -ENOMEM: at the start before anything changes, later after the VMAs before it changed.
   */
  *mprotectRange(mm: Mm, start: number, end: number, prot: Protection, pkey: number | null = null): Op {
    const { write, read, exec } = prot;
    for (let at = start; at < end; ) {
      let vma = this.vmaAt(mm, at);
      if (!vma) throw new KernelError('ENOMEM', `mprotect: page ${at} of ${mm.name} is not mapped`);
      // mseal(2): v6.10-v6.11 ask of the whole range once the first VMA is found (mm/mseal.ts)
      if (at === start) refuseSealedMprotect(this.k, mm, start, end, null);
      // calc_vm_prot_bits(prot, pkey): pkey_mprotect() sets the key; a plain mprotect() asks
      // arch_override_mprotect_pkey() (execute-only keys: mm/pkeys.ts) before the checks below
      const key = pkey ?? this.k.pkeys.mprotectKey(vma, prot);
      // do_mprotect_pkey(): a VM_WRITE the VMA's VM_MAYWRITE does not allow is EACCES (a mapping of
      // a write-sealed memfd: mm/memfd.ts; a shared mapping of a file opened read-only: kernel.ts openForMmap)
      if (write && vma.flags.nomaywrite) throw new KernelError('EACCES', `mprotect(PROT_WRITE) of '${vma.name}': VM_MAYWRITE is clear (${vma.cacheFile ? `'${vma.cacheFile.name}' is write-sealed or ` : ''}its file was opened read-only)`);
      // do_mprotect_pkey(): then map_deny_write_exec(vma->vm_flags, newflags) (mm/mdwe.ts); the
      // VMAs before this one keep their new protection
      refuseWriteExec(mm, { write: vma.flags.write, exec: vma.flags.exec === true }, prot, `mprotect of '${vma.name}'`);
      // mprotect_fixup(): from v6.12 a sealed VMA is EPERM even when its flags would not change
      refuseSealedMprotect(this.k, mm, start, end, vma);
      if (vma.flags.write !== write || vma.flags.read !== read || (vma.flags.exec === true) !== exec || (vma.flags.pkey ?? 0) !== key) {
        vma = this.isolate(vma, at, end);
        setVmaPkey(vma, key);
        yield* this.k.mprotector.mprotect(vma, prot);
        vma = this.mergeAround(vma);
      }
      at = vma.start + vma.pages;
    }
  }

  /**
   * unmap_mapping_pages(mapping, start, nr): zap every VMA of the file in the index range, each a
   * full gather/zap/flush cycle, so references are dropped by the time it returns.
   */
  *unmapMappingPages(mapping: AddressSpace, startIndex: number, nr: number): Op {
    const endIndex = nr === Infinity ? Infinity : startIndex + nr;
    for (const vma of [...mapping.mmaps]) {
      const from = Math.max(vma.pgoff, startIndex);
      const to = Math.min(vma.pgoff + vma.pages, endIndex);
      if (from >= to) continue;
      yield* this.zap(vma, vma.start + (from - vma.pgoff), vma.start + (to - vma.pgoff), 'unmap_mapping_pages');
    }
  }

  /** A new VMA's flags; mmap_region() sets VM_SOFTDIRTY on every new VMA (0 without soft-dirty). */
  flags(partial: Partial<VmFlags>): VmFlags {
    return { read: true, write: false, shared: false, mixedmap: false, pfnmap: false, hugepage: false, io: false, softdirty: this.k.softDirtyArch, dontcopy: false, wipeonfork: false, dontexpand: false, ...partial };
  }

  requireVma(mm: Mm, vpn: number): Vma {
    const v = this.vmaAt(mm, vpn);
    if (!v) throw new KernelError('EFAULT', `no VMA at page ${vpn} of ${mm.name}`);
    return v;
  }
}
