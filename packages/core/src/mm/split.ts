import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { preempt, runToCompletion, waitUntil, type Op } from '../sched.js';
import type { FolioSplitInFlight, Mm, PageCacheFile, Pte, Vma } from '../types.js';
import { PG } from './pages.js';

/** What split_huge_pages_pid() / split_huge_pages_in_file() count and pr_debug() ("%lu of %lu THP split"). */
export interface SplitCount {
  /** folios split */
  split: number;
  /** large folios the walk counted (the pid form: those above the target order, once per page it finds them at) */
  total: number;
}

/** How an anonymous large folio is split (mm/huge_memory.c __folio_split()). */
export interface AnonSplit {
  /** new_order: the order of the folios made (the one holding `at` for a non-uniform split) */
  order: number;
  /**
   * folio_split() (v6.15 [M], "mm/huge_memory: add buddy allocator like (non-uniform)
   * folio_split()"): the pfn the order-`order` folio must hold; the rest of the folio stays as
   * large as it can (orders old - 1 down to `order`). Omitted: the uniform split.
   */
  at?: number;
  /**
   * The model splits where the kernel swaps a large folio out whole (mm/swap.ts: THP_SWAP,
   * add_to_swap() of the folio, and from v6.10 an mTHP too): the kernel has no split there, so no
   * zero-filled page goes to the zero page.
   */
  standsForWholeSwapout?: true;
}

/**
 * __folio_split() (split_huge_page_to_list_to_order() up to v6.14) of a large anonymous folio for
 * a caller holding one reference on it. The checks first (folio_check_splittable()): the huge zero
 * folio and order 1 for anon are -EINVAL; then every reference but the caller's must be a
 * mapping's (folio_expected_ref_count() == folio_ref_count() - 1; can_split_folio() before v6.15),
 * else -EAGAIN: a pin or a GUP get stops it. unmap_folio() turns each PMD mapping into PTEs
 * (TTU_SPLIT_HUGE_PMD) and each PTE into a migration entry that remap_page() restores, so the
 * model remaps the PMDs as PTEs at once (Thp.splitAnonPmd). __split_unmapped_folio() then gives the
 * pages new folios; each holds one reference per mapping (folio_ref_unfreeze(new_folio, 1) plus
 * the restored PTEs), the folio holding the old head keeps the caller's reference (lock_at), and
 * data, anon mapping and per-page PageAnonExclusive stay. A new folio nothing maps is freed at the
 * end (free_folio_and_swap_cache(); a device-private one goes back to its driver). Returns the
 * errno, or null when split.
 */
export function splitAnonFolio(k: Kernel, head: number, how: AnonSplit): 'EINVAL' | 'EAGAIN' | null {
  const old = k.folios.order(head);
  if (old === 0) return null;
  if (how.order >= old || how.order === 1 || k.isZeroPfn(head)) return 'EINVAL';
  if (k.folios.mapcount(head) !== k.folios.rc(head) - 1) return 'EAGAIN';
  for (const mm of k.processes.values()) {
    if (!mm.alive) continue;
    for (const [base, pmd] of [...mm.pmds]) if (pmd.pfn === head && !pmd.special) k.thp.splitAnonPmd(k.vm.requireVma(mm, base), base);
  }
  const pieces = splitPieces(head, old, how.order, how.at);
  // one reference and one mapcount per restored PTE; the head page's folio keeps the caller's too
  reform(k, pieces, (start, _n, ptes) => [ptes + (start === head ? 1 : 0), ptes]);
  const made = how.at === undefined ? `${pieces.length} order-${how.order} pages` : `folios of orders ${pieces.map(([, o]) => o).join(',')}`;
  k.emit('page.ref', { pfn: head, rc: k.folios.rc(head), delta: 0, why: `__split_huge_page: order ${old} -> ${made}` });
  if (!how.standsForWholeSwapout && remapsZeroFilled(k, head)) remapZeroFilled(k, head, pieces);
  // folios nothing maps any more (a partly unmapped THP, zero-filled pages remapped) lose their
  // last reference at the end of the split
  const device = k.folios.kind(head) !== 'ram';
  for (const [start] of pieces) {
    if (k.folios.rc(start) !== 0) continue;
    if (device) {
      k.folios.zoneDeviceFree(start);
      continue;
    }
    k.emit('page.free', { pfn: start, type: 'ram' });
    k.ram.free(start);
  }
  return null;
}

/**
 * __split_folio_to_order(): the pages of each piece become one folio of its order (PG_head on its
 * first page, the rest tails pointing at it), with the reference count and mapcount `counts` gives
 * it from its page count and the PTEs mapping its pages.
 */
function reform(k: Kernel, pieces: readonly [number, number][], counts: (start: number, n: number, ptes: number) => [number, number]): void {
  const p = k.pages;
  for (const [start, order] of pieces) {
    const n = 1 << order;
    let ptes = 0;
    for (let i = 0; i < n; i++) {
      const s = p.slot(start + i);
      ptes += p.ptes[s]!;
      p.order[s] = i === 0 ? order : 0;
      p.head[s] = start;
      p.flags[s]! &= ~(PG.head | PG.tail);
      if (order > 0) p.flags[s]! |= i === 0 ? PG.head : PG.tail;
      p.mapcount[s] = 0;
      p.rc[s] = 0;
    }
    const [rc, mapcount] = counts(start, n, ptes);
    const s = p.slot(start);
    p.rc[s] = rc;
    p.mapcount[s] = mapcount;
  }
}

/**
 * The folios a split leaves, as [first pfn, order] in address order. Uniform: every piece of
 * order `order`. Non-uniform (__split_unmapped_folio() with SPLIT_TYPE_NON_UNIFORM): the folio
 * holding `at` is halved one order at a time down to `order`, the half without `at` kept at each
 * step; an anonymous folio is never made order 1 (that step is skipped: the order-2 folio goes
 * straight to order 0).
 */
function splitPieces(head: number, old: number, order: number, at: number | undefined, anon = true): [number, number][] {
  const pieces: [number, number][] = [];
  if (at === undefined) {
    for (let pfn = head; pfn < head + (1 << old); pfn += 1 << order) pieces.push([pfn, order]);
    return pieces;
  }
  let cur = head;
  let curOrder = old;
  for (let so = old - 1; so >= order; so--) {
    if (so === 1 && anon) continue;
    const n = 1 << so;
    for (let pfn = cur; pfn < cur + (1 << curOrder); pfn += n) if (at < pfn || at >= pfn + n) pieces.push([pfn, so]);
    cur = head + Math.floor((at - head) / n) * n;
    curOrder = so;
  }
  pieces.push([cur, curOrder]);
  return pieces.sort((a, b) => a[0] - b[0]);
}

/**
 * __folio_split() of a large page-cache folio (shmem, or a disk file's read-only THP) for a caller
 * holding one reference. folio_check_splittable(): order 1 is fine for a file folio; a shmem folio
 * goes only to order 0 from v6.10 ("Cannot split shmem folio to non-0 order") until "mm/huge_memory:
 * allow split shmem large folio to any lower order" (v6.14 [M]); a disk file's THP (no large-folio
 * support in its mapping) to order 0 only (refused here as not modelled). Every reference but the
 * caller's must be the cache's (one per page) or a mapping's (folio_expected_ref_count()), else
 * -EAGAIN. unmap_folio() unmaps a file folio (try_to_unmap(), no migration entries: "file pages
 * can simply be left unmapped, then faulted back on demand"), so every PMD and PTE mapping it goes,
 * a dirty one marking the folio dirty. The new folios keep one cache reference per page (the one
 * holding the old head the caller's too), no mapping; a piece past i_size leaves the cache.
 * Run to completion: the split as one step (the debugfs writes, split_huge_pages_all()).
 */
export function splitCacheFolio(k: Kernel, file: PageCacheFile, head: number, how: { order: number; at?: number }): 'EINVAL' | 'EAGAIN' | null {
  return runToCompletion(splitCacheFolioOp(k, file, head, how));
}

/**
 * splitCacheFolio() with the preemption points a lockless reader can meet (a hole punch's split,
 * PageCache.partialFolio()). After unmap_folio(), folio_ref_freeze() and __split_unmapped_folio()
 * every after-split folio is frozen and locked, and the xarray (split under xas_lock(), which
 * RCU readers do not take) names, per index, the folio splitXarrayEntries() gives. Then, in
 * address order, each after-split folio but the original is unfrozen and __xa_store()d at its
 * index (or dropped past EOF), the original is unfrozen last ("Unfreeze @folio only after all
 * page cache entries, which used to point to it, have been updated"), and the split unlocks the
 * folios (the caller keeps the original's lock: lock_at; the model ends its wait with the split).
 */
export function* splitCacheFolioOp(k: Kernel, file: PageCacheFile, head: number, how: { order: number; at?: number }): Op<'EINVAL' | 'EAGAIN' | null> {
  // __folio_split() holds the mapping's xas_lock() from the freeze to the last store: a split of
  // another folio of the file waits for it (the model takes the wait before its checks)
  yield* waitUntil('__folio_split: xas_lock of the mapping', () => file.splitting === undefined);
  const old = k.folios.order(head);
  const nr = 1 << old;
  if (old === 0) return null;
  if (how.order >= old) return 'EINVAL';
  const shmem = file.writeback === undefined;
  if (shmem && (how.order !== 0 || how.at !== undefined) && kernelAtLeast(k.version, 6, 10) && !kernelAtLeast(k.version, 6, 14)) return 'EINVAL';
  if (!shmem && (how.order !== 0 || how.at !== undefined)) throw KernelError.unsupported('EINVAL', `splitting the read-only THP of '${file.name}' to order ${how.order}${how.at === undefined ? '' : ' non-uniformly'} is not modelled`);
  if (k.folios.rc(head) - 1 !== k.folios.mapcount(head) + nr) return 'EAGAIN';
  let dirty = (k.folios.flags(head) & PG.dirty) !== 0;
  for (const mm of k.processes.values()) {
    if (!mm.alive) continue;
    let flush = false;
    for (const [base, pmd] of [...mm.pmds]) {
      if (pmd.pfn !== head || pmd.special || pmd.devmap) continue;
      k.vm.clear(mm, base, 'pmd');
      dirty ||= pmd.dirty;
      k.folios.removeMap(head);
      k.folios.put(head, 1, 'try_to_unmap_one: folio_remove_rmap_pmd + folio_put');
      flush = true;
    }
    for (const [vpn, pte] of [...mm.ptes]) {
      if (pte.pfn < head || pte.pfn >= head + nr || pte.special || pte.swap || pte.migration || pte.marker || pte.devicePrivate) continue;
      k.vm.clear(mm, vpn, 'pte');
      dirty ||= pte.dirty;
      k.folios.removeMap(head);
      k.folios.put(head, 1, 'try_to_unmap_one: folio_remove_rmap_pte + folio_put');
      flush = true;
    }
    if (flush) k.emit('tlb.flush', { mm: mm.name });
  }
  const pieces = splitPieces(head, old, how.order, how.at === undefined ? undefined : head + how.at, false);
  // one cache reference per page, no mapping; the head page's folio keeps the caller's reference too
  reform(k, pieces, (start, n) => [n + (start === head ? 1 : 0), 0]);
  // the tails copy PG_dirty from the head (__split_folio_to_order())
  if (dirty) for (const [start] of pieces) k.folios.setFlag(start, PG.dirty, true);
  k.emit('page.ref', { pfn: head, rc: k.folios.rc(head), delta: 0, why: `__folio_split: page-cache folio of '${file.name}', order ${old} -> orders ${pieces.map(([, o]) => o).join(',')}, unmapped` });
  const first = [...file.cache].find(([, pfn]) => pfn === head)?.[0];
  if (first === undefined) return null;
  const misplaced = how.at !== undefined && k.features['folio-split-misplaced-entries'];
  const entries = new Map<number, number>();
  for (const [pfn, folio] of splitXarrayEntries(head, old, how.order, misplaced ? head + how.at! : undefined)) entries.set(first + (pfn - head), folio);
  const inFlight: FolioSplitInFlight = { entries, frozen: new Set(pieces.map(([start]) => start)), locked: new Set(pieces.map(([start]) => start)) };
  file.splitting = inFlight;
  yield preempt('__split_unmapped_folio: after-split folios frozen, xarray split');
  for (const [start, order] of pieces) {
    if (start === head) continue;
    const index = first + (start - head);
    inFlight.frozen.delete(start);
    // a reader can tell this point from the store that follows only through an entry naming the
    // folio outside its own range (elsewhere it meets the frozen original, then this folio)
    if (misplacedAt(entries, start, index, 1 << order)) yield preempt('__folio_split: folio_ref_unfreeze(new_folio) before __xa_store()');
    if (index < file.pages) {
      for (let i = 0; i < 1 << order; i++) entries.set(index + i, start);
      continue;
    }
    // a new folio past i_size leaves the cache (shmem: i_size or fallocend) and its cache references go
    for (let i = 0; i < 1 << order; i++) {
      file.cache.delete(index + i);
      entries.delete(index + i);
    }
    k.folios.put(start, 1 << order, '__filemap_remove_folio: a split folio past EOF');
  }
  file.splitting = undefined;
  return null;
}

/** Whether an xarray entry outside [index, index + nr) names the folio `start`. */
function misplacedAt(entries: ReadonlyMap<number, number>, start: number, index: number, nr: number): boolean {
  for (const [i, folio] of entries) if (folio === start && (i < index || i >= index + nr)) return true;
  return false;
}

/**
 * The xarray entries of a page-cache folio once __split_unmapped_folio() has split it, as
 * [pfn, first pfn of the folio the entry of that page names]. Uniform (xas_split() of the original
 * folio) and the fixed non-uniform split (577a1f495fd7: xas_try_split() with the original folio):
 * every entry names the original. `at` given (00527733d0dc): each halving step's xas_try_split()
 * stores the folio being halved -- the original first, then the after-split folio holding `at` --
 * into both halves, so an upper half keeps naming the folio it was cut from (an order-9 split at
 * page 50 leaves 51 -> the folio of 50 and 52-63 -> that of 48, each unfrozen before the right one is stored).
 */
function splitXarrayEntries(head: number, old: number, order: number, at: number | undefined): [number, number][] {
  const named = new Map<number, number>();
  for (let pfn = head; pfn < head + (1 << old); pfn++) named.set(pfn, head);
  if (at === undefined) return [...named];
  let cur = head;
  let curOrder = old;
  for (let so = old - 1; so >= order; so--) {
    for (let pfn = cur; pfn < cur + (1 << curOrder); pfn++) named.set(pfn, cur);
    cur = head + Math.floor((at - head) / (1 << so)) * (1 << so);
    curOrder = so;
  }
  return [...named];
}

/**
 * Whether a successful split of this anonymous folio restores its mappings with
 * RMP_USE_SHARED_ZEROPAGE. From b1f202060afe ("mm: remap unused subpages to shared zeropage when
 * splitting isolated thp", v6.12) __split_huge_page() passes it for every anon folio
 * (`remap_page(folio, nr, PageAnon(head) ? RMP_USE_SHARED_ZEROPAGE : 0)`); __folio_split()
 * (v6.15) keeps that for a split that succeeded (the -EAGAIN path remaps with 0). So every anon
 * caller gets it: the debugfs file, KSM's try_to_merge_one_page(), migrate_pages()'
 * try_split_folio() (NUMA, move_pages, mbind), migrate_vma_collect_pmd()'s split_folio() (device
 * migration), MADV_PAGEOUT and reclaim (split_folio_to_list()). "mm: support device-private THP
 * migration" (after v6.15 [M]) leaves a device-private folio out (`!folio_is_device_private()`:
 * the CPU cannot read it); a device-coherent one is CPU memory and stays in.
 */
function remapsZeroFilled(k: Kernel, head: number): boolean {
  const kind = k.folios.kind(head);
  return kernelAtLeast(k.version, 6, 12) && k.folios.isAnon(head) && (kind === 'ram' || kind === 'coherent');
}

/**
 * try_to_map_unused_to_zeropage() (mm/migrate.c, b1f202060afe v6.12), from remove_migration_pte()
 * for each migration entry of an order-0 piece (a compound one is left alone: "if
 * (PageCompound(page)) return false", Zi Yan's fix of the same release): a page whose contents are
 * all zero (memchr_inv(); pages_identical() with the zero page later) is replaced by the shared
 * zero page (pte_mkspecial; its soft-dirty and uffd-wp bits are dropped until Lance Yang's 2025
 * fix [M]), and its mapping and reference go (dec_mm_counter; no folio_get for it). Refused when
 * the mapping VMA is VM_LOCKED or the folio is mlocked (folio_test_mlocked(): PG_mlocked, which
 * __split_huge_page_tail() copies to every tail; the model has no PG_mlocked and takes the old
 * folio as mlocked when any of its mappings, in any process, lies in a VM_LOCKED VMA: mlock_folio()
 * at map time). Nothing else is checked -- not userfaultfd (a uffd-missing range keeps the zero
 * page: no MISSING fault follows), not shared or forked mappings (each mm's entry is replaced);
 * mm_forbids_zeropage() is s390 KVM only.
 */
function remapZeroFilled(k: Kernel, head: number, pieces: readonly [number, number][]): void {
  const zeroFilled = new Set<number>();
  for (const [start, order] of pieces) if (order === 0 && (k.pages.data.get(start) ?? '') === '') zeroFilled.add(start);
  if (zeroFilled.size === 0) return;
  const last = pieces[pieces.length - 1]!;
  const end = last[0] + (1 << last[1]);
  const mine = (pte: Pte): boolean => pte.pfn >= head && pte.pfn < end && !pte.special && !pte.swap && !pte.migration && !pte.marker;
  const live = [...k.processes.values()].filter((mm) => mm.alive);
  const mlocked = live.some((mm) => [...mm.ptes].some(([vpn, pte]) => mine(pte) && k.vm.vmaAt(mm, vpn)?.flags.locked === true));
  if (mlocked) return;
  for (const mm of live) {
    for (const [vpn, pte] of [...mm.ptes]) {
      if (!mine(pte) || !zeroFilled.has(pte.pfn)) continue;
      k.vm.clear(mm, vpn, 'pte');
      // the migration entry's soft-dirty and uffd-wp bits are carried over only from Lance Yang's
      // fix of b1f202060afe (2025, Cc stable: v6.18 [M]); before, pte_mkspecial(zero pfn) alone
      const keep = kernelAtLeast(k.version, 6, 18);
      k.vm.install(mm, vpn, k.faults.pte(k.zeroPfn, 'pte', { special: true, softDirty: keep && pte.softDirty, uffdWp: keep && pte.uffdWp === true }));
      k.folios.removeMap(pte.pfn);
      k.folios.put(pte.pfn, 1, 'try_to_map_unused_to_zeropage: a zero-filled subpage maps the shared zero page');
    }
  }
}

/**
 * vma_not_suitable_for_thp_split() (with the pid form, v5.13 [M]): vma_is_special_huge() -- a DAX VMA
 * (fs-dax, device-dax: vma_is_dax()) or a file VMA with VM_PFNMAP | VM_MIXEDMAP --, VM_IO, hugetlb.
 * The walk skips such a VMA whole: a DAX PMD maps no THP folio it could split.
 */
function notSuitableForSplit(vma: Vma): boolean {
  if (vma.kind === 'file' || vma.kind === 'device') return true;
  if (vma.kind !== 'anon' && (vma.flags.pfnmap || vma.flags.mixedmap)) return true;
  return vma.flags.io || vma.hugetlb !== undefined;
}

/** The arguments of the debugfs write as the kernel of this release parses them. */
function parsedArgs(k: Kernel, order: number, at: number | undefined): { order: number; at: number | undefined } {
  if (!kernelAtLeast(k.version, 5, 13)) {
    // split_huge_pages_set() (DEFINE_DEBUGFS_ATTRIBUTE): a number, and only 1 ("split every THP")
    throw new KernelError('EINVAL', 'split_huge_pages takes only "1" (split every THP) before v5.13: the pid,vaddr_start,vaddr_end and file-path forms came with "mm: huge_memory: a new debugfs interface for splitting THP tests" and its file-backed sequel');
  }
  // before v6.10 sscanf() reads three fields ("%d,0x%lx,0x%lx"): a new_order is ignored and every
  // folio goes to order 0; in_folio_offset is read from v6.15 [M]
  return { order: kernelAtLeast(k.version, 6, 10) ? order : 0, at: kernelAtLeast(k.version, 6, 15) ? at : undefined };
}

/**
 * echo pid,vaddr_start,vaddr_end[,new_order[,in_folio_offset]] > /sys/kernel/debug/split_huge_pages
 * (mm/huge_memory.c split_huge_pages_pid()). Every base page of [start, end) in turn: no VMA there
 * ends the walk; an unsuitable VMA is skipped whole; the folio mapped there (follow_page(FOLL_GET |
 * FOLL_DUMP), folio_walk_start() from v6.12 [M]: no zero page, no swap or migration entry) counts
 * when it is a THP (is_transparent_hugepage(): folio_test_large_rmappable() from v6.8, which
 * includes mTHP) larger than the target order; it is split when every reference is a mapping's,
 * to the target order (uniform) or, with `at` (an in-folio page index, v6.15), by folio_split()
 * around that page. The write never fails for a folio that stays whole.
 */
export function* splitHugePagesPid(k: Kernel, mm: Mm, start: number, end: number, order: number, at?: number): Op<SplitCount> {
  const args = parsedArgs(k, order, at);
  const count: SplitCount = { split: 0, total: 0 };
  for (let vpn = start; vpn < end; vpn++) {
    const vma = k.vm.vmaAt(mm, vpn);
    if (!vma) break;
    if (notSuitableForSplit(vma)) {
      vpn = vma.start + vma.pages - 1;
      continue;
    }
    const leaf = k.vm.lookup(mm, vpn);
    if (!leaf || leaf.pte.special || leaf.pte.swap || leaf.pte.migration || leaf.pte.marker || leaf.pte.devicePrivate || leaf.pte.devmap) continue;
    const pfn = leaf.pte.pfn + (leaf.pte.level === 'pte' ? 0 : vpn - leaf.base);
    const head = k.folios.folio(pfn);
    if (k.folios.kind(head) !== 'ram' || (k.folios.flags(head) & PG.hugetlb) !== 0) continue;
    const old = k.folios.order(head);
    if (old === 0 || args.order >= old) continue;
    count.total++;
    if (!k.folios.isAnon(head)) {
      // a page-cache folio (shmem, a disk file's read-only THP): every reference is the cache's or a mapping's
      const file = vma.cacheFile;
      if (!file || k.folios.rc(head) !== k.folios.mapcount(head) + (1 << old)) continue;
      k.folios.get(head, 1, 'split_huge_pages_pid: folio_get');
      const failed = splitCacheFolio(k, file, head, { order: args.order, at: args.at !== undefined && args.at < 1 << old ? args.at : undefined });
      if (failed === null) count.split++;
      k.folios.put(head, 1, 'split_huge_pages_pid: folio_put');
      yield* [];
      continue;
    }
    // can_split_folio() / folio_expected_ref_count() before folio_get(): all references are mappings
    if (k.folios.mapcount(head) !== k.folios.rc(head)) continue;
    k.folios.get(head, 1, 'split_huge_pages_pid: folio_get');
    const failed = splitAnonFolio(k, head, {
      order: args.order,
      at: args.at !== undefined && args.at < 1 << old ? head + args.at : undefined,
    });
    if (failed === null) count.split++;
    k.folios.put(head, 1, 'split_huge_pages_pid: folio_put');
    yield* [];
  }
  k.emit('thp.split', { mm: mm.name, split: count.split, total: count.total });
  return count;
}

/**
 * echo <path>,off_start,off_end[,new_order[,in_folio_offset]] > /sys/kernel/debug/split_huge_pages
 * (split_huge_pages_in_file()): filemap_get_folio() at each index of [start, end), stepping over a
 * large folio whole. A DAX file's i_pages hold DAX entries (xa_is_value()), never folios, so nothing
 * is found. A large page-cache folio (a shmem THP or a disk file's read-only THP, which the model
 * builds by collapse_file()) counts and is split to the target order (splitCacheFolio()); order-0
 * folios are passed over. A hugetlbfs file is refused as not modelled.
 */
export function splitHugePagesInFile(k: Kernel, file: string, start: number, end: number, order: number, at?: number): SplitCount {
  const args = parsedArgs(k, order, at);
  const cached = k.pageCache.named(file);
  if (!cached && !k.files.has(file)) throw new KernelError('EINVAL', `split_huge_pages: file_open_name('${file}') fails: no such file`);
  if (cached?.hugetlb) throw KernelError.unsupported('EINVAL', `split_huge_pages of the hugetlbfs file '${file}' is not modelled`);
  const count: SplitCount = { split: 0, total: 0 };
  for (let index = start, nrPages = 1; cached && index < end; index += nrPages) {
    nrPages = 1;
    const pfn = cached.cache.get(index);
    if (pfn === undefined) continue;
    const head = k.folios.folio(pfn);
    const order = k.folios.order(head);
    if (order === 0) continue;
    count.total++;
    nrPages = 1 << order;
    if (args.order >= order) continue;
    // filemap_get_folio()'s reference is the caller's
    k.folios.get(head, 1, 'split_huge_pages_in_file: filemap_get_folio');
    const failed = splitCacheFolio(k, cached, head, { order: args.order, at: args.at !== undefined && args.at < nrPages ? args.at : undefined });
    if (failed === null) count.split++;
    k.folios.put(head, 1, 'split_huge_pages_in_file: folio_put');
  }
  k.emit('thp.split', { file, split: count.split, total: count.total });
  return count;
}

/**
 * echo 1 > /sys/kernel/debug/split_huge_pages (split_huge_pages_all(), in every release modelled):
 * every large folio in RAM, in pfn order, that a reference can be taken on (folio_try_get()) and is
 * on an LRU -- anonymous THPs and mTHPs, page-cache THPs; not hugetlb, not the huge zero folio, not
 * device memory -- counts, and split_folio() splits it to order 0 unless it is pinned.
 */
export function splitHugePagesAll(k: Kernel): SplitCount {
  const count: SplitCount = { split: 0, total: 0 };
  const heads = [...k.ram.live].filter((pfn) => k.folios.folio(pfn) === pfn).sort((a, b) => a - b);
  for (const head of heads) {
    if (!k.ram.live.has(head) || k.folios.folio(head) !== head || k.folios.rc(head) === 0) continue;
    if (k.folios.order(head) === 0 || k.isZeroPfn(head) || (k.folios.flags(head) & PG.hugetlb) !== 0) continue;
    count.total++;
    k.folios.get(head, 1, 'split_huge_pages_all: folio_try_get');
    let failed: string | null;
    if (k.folios.isAnon(head)) failed = splitAnonFolio(k, head, { order: 0 });
    else {
      const file = [...k.pageCache.files.values()].find((f) => [...f.cache.values()].includes(head));
      failed = file ? splitCacheFolio(k, file, head, { order: 0 }) : 'EBUSY';
    }
    if (failed === null) count.split++;
    k.folios.put(head, 1, 'split_huge_pages_all: folio_put');
  }
  k.emit('thp.split', { split: count.split, total: count.total });
  return count;
}
