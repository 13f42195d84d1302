import type { Kernel } from '../kernel.js';
import { KernelError, KernelOops } from '../errors.js';
import { waitUntil, type Op } from '../sched.js';
import type { Pgmap, PgmapType } from '../types.js';
import { GiB } from '../units.js';
import { PG, type PageInit } from './pages.js';

export interface MemremapRequest {
  readonly device: string;
  readonly type: PgmapType;
  readonly size: number;
  /** pgmap->vmemmap_shift: compound page order of the memmap */
  readonly vmemmapShift: number;
  /** pfns at the start of the range that hold the memmap itself (vmem_altmap reserve + free) */
  readonly altmapPfns: number;
  /** of altmapPfns, those the memmap may not use (vmem_altmap reserve: nd_pfn's info block); default 0 */
  readonly altmapReservePfns?: number;
  readonly ops?: Pgmap['ops'];
  /** physical start, bytes, of a range that was placed before (a device binding again); absent: a new range */
  readonly phys?: number;
}

/**
 * dev_pagemap registration and teardown (mm/memremap.c memremap_pages / memunmap_pages) and the
 * initial struct page state memmap_init_zone_device() gives each page (mm/mm_init.c).
 */
export class Memremap {
  /** Device physical ranges start at 64 GiB, each aligned to 1 GiB (and to a section). */
  private nextPhys = 64 * GiB;
  private nextId = 1;
  readonly pgmaps: Pgmap[] = [];

  constructor(private readonly k: Kernel) {}

  pgmapOf(pfn: number): Pgmap | null {
    for (const p of this.pgmaps) if (!p.gone && pfn >= p.startPfn && pfn < p.startPfn + p.nrPages) return p;
    return null;
  }

  /** The state memmap_init_zone_device() / __init_zone_device_page() leave a page in. */
  initialPage(pfn: number): PageInit {
    const k = this.k;
    if (k.isZeroPfn(pfn)) return { rc: 1, headPfn: pfn, order: 0, flags: PG.reserved, pgmap: -1 };
    const pgmap = this.pgmapOf(pfn);
    // RAM: a tail of a huge folio in use (mm/hugetlb.ts materialises them lazily), else a free page
    if (!pgmap) return k.hugetlb?.initialPage(pfn) ?? { rc: 0, headPfn: pfn, order: 0, flags: 0, pgmap: -1 };
    // __init_zone_device_page(): init_page_count() (1), then 0 for types whose free state is 0.
    const rc =
      pgmap.type === 'fsdax'
        ? k.convention.initialRefcount
        : pgmap.type === 'generic'
          ? 1
          : k.features['devmem-extra-ref']
            ? 1
            : 0;
    if (pgmap.vmemmapShift === 0) return { rc, headPfn: pfn, order: 0, flags: PG.reserved, pgmap: pgmap.id };
    // memmap_init_compound(): tails get set_page_count(0) and point at their head.
    const nr = 2 ** pgmap.vmemmapShift;
    const head = pgmap.firstPfn + Math.floor((pfn - pgmap.firstPfn) / nr) * nr;
    if (head === pfn) return { rc, headPfn: pfn, order: pgmap.vmemmapShift, flags: PG.reserved | PG.head, pgmap: pgmap.id };
    return { rc: 0, headPfn: head, order: 0, flags: PG.reserved | PG.tail, pgmap: pgmap.id };
  }

  /**
   * zone_device_folio_init(folio, order) (mm/memremap.c; zone_device_page_init() for order 0 before
   * the 2025 device-private THP series): a free device folio of `order` pages handed to its driver
   * at refcount 1 (a WARN when it was not free at 0), its tails pointing at the head.
   */
  zoneDeviceFolioInit(head: number, order: number): void {
    const k = this.k;
    const p = k.pages;
    if (k.folios.rc(head) !== 0) k.warn(`zone_device_page_init: pfn ${head} has refcount ${k.folios.rc(head)}, expected 0`);
    const nr = 2 ** order;
    for (let i = 0; i < nr; i++) {
      const s = p.slot(head + i);
      p.head[s] = head;
      p.order[s] = i === 0 ? order : 0;
      p.flags[s] = (p.flags[s]! & ~(PG.head | PG.tail)) | (order === 0 ? 0 : i === 0 ? PG.head : PG.tail);
    }
    k.folios.get(head, 1 - k.folios.rc(head), order === 0 ? 'zone_device_page_init' : `zone_device_folio_init(order ${order})`);
  }

  /**
   * A new device physical range of `size` bytes: the next free address aligned to 1 GiB (and a
   * section). A dynamic dax region (dax/region.ts) places its whole resource here once and its
   * instances memremap parts of it with `phys`.
   */
  placeRange(size: number): number {
    const align = Math.max(GiB, this.k.mmu.sectionSize);
    const start = Math.ceil(this.nextPhys / align) * align;
    this.nextPhys = start + Math.ceil(size / align) * align;
    return start;
  }

  /** memremap_pages(): place the range, populate its memmap (may oops), publish the pgmap. */
  memremapPages(req: MemremapRequest): Pgmap {
    const k = this.k;
    const pageSize = k.mmu.basePageSize;
    if (req.size <= 0 || req.size % pageSize !== 0) throw new KernelError('EINVAL', `device size ${req.size} is not a multiple of PAGE_SIZE`);
    const start = req.phys ?? this.placeRange(req.size);
    const outcome = k.populator.populate(k.mmu, {
      start,
      size: req.size,
      vmemmapShift: req.vmemmapShift,
      altmap: req.altmapPfns > 0,
      ...(req.altmapPfns > 0 ? { altmapLayout: { reserve: req.altmapReservePfns ?? 0, free: req.altmapPfns - (req.altmapReservePfns ?? 0) } } : {}),
      present: this.pgmaps.filter((p) => !p.gone).map((p) => ({ start: p.startPfn * pageSize, size: p.nrPages * pageSize })),
      features: k.features,
      version: k.version,
    });
    if (!outcome.ok) {
      // pagemap_range() -> arch_add_memory() failed: memremap_pages() returns the errno
      if ('errno' in outcome) throw new KernelError(outcome.errno, outcome.message);
      k.emit('oops', { message: outcome.oops });
      throw new KernelOops(outcome.oops);
    }
    const startPfn = start / pageSize;
    const pgmap: Pgmap = {
      id: this.nextId++,
      device: req.device,
      type: req.type,
      startPfn,
      nrPages: req.size / pageSize,
      firstPfn: startPfn + req.altmapPfns,
      vmemmapShift: req.vmemmapShift,
      altmap: req.altmapPfns > 0,
      vmemmap: outcome.figures,
      killed: false,
      gone: false,
      ops: req.ops ?? {},
    };
    this.pgmaps.push(pgmap);
    k.emit('pgmap.probe', { device: req.device, type: req.type, startPfn, nrPages: pgmap.nrPages, vmemmapShift: req.vmemmapShift });
    return pgmap;
  }

  /**
   * memunmap_pages(). Era (a) (memunmap-waits-page-refs): kill the pgmap ref, put every page's
   * initial reference, wait until every page reference is gone — pins delay teardown, PTEs (which
   * hold no reference) do not. Eras (b)/(c): kill, drop the FS_DAX/GENERIC per-folio pgmap refs
   * in bulk regardless of page refcounts, and wait only for the refs allocated device-private /
   * coherent pages hold.
   */
  *memunmapPages(pgmap: Pgmap): Op {
    const k = this.k;
    pgmap.killed = true;
    k.emit('pgmap.kill', { device: pgmap.device });
    const touched = [...k.pages.touched(pgmap.firstPfn, pgmap.nrPages - (pgmap.firstPfn - pgmap.startPfn))];
    const heads = touched.filter((pfn) => k.pages.headOf(pfn) === pfn);
    const waitsForPages = k.features['memunmap-waits-page-refs'] || pgmap.type === 'private' || pgmap.type === 'coherent';
    if (k.features['memunmap-waits-page-refs']) {
      for (const head of heads) if (k.folios.rc(head) > 0) k.folios.put(head, 1, 'memunmap_pages: put initial ref');
    }
    if (waitsForPages) {
      // device-private/coherent pages hold a pgmap reference from allocation to page_free: with
      // the extra reference (and no put of the initial one) a freed page idles at 1, not 0
      const idle = !k.features['memunmap-waits-page-refs'] && k.features['devmem-extra-ref'] ? 1 : 0;
      yield* waitUntil(`memunmap_pages(${pgmap.device}): wait for page references`, () => heads.every((h) => k.folios.rc(h) <= idle));
    }
    // pageunmap_range(): arch_remove_memory() frees the memmap — the struct pages are gone.
    k.emit('pgmap.teardown', { device: pgmap.device, type: pgmap.type });
    pgmap.gone = true;
    // the memory keeps its contents: pageunmap_range() frees the struct pages, not the media, so a
    // pgmap over the same range later (a pmem namespace switched from fsdax to devdax, ndctl
    // device-dax.c; a device-dax instance bound again) reads what was written. Device-private and
    // coherent pfns stand for device memory the model's hmm driver hands out anew page by page
    // (zone_device_folio_init): their data goes, as before.
    const media = pgmap.type === 'fsdax' || pgmap.type === 'generic';
    for (const pfn of touched) {
      const data = k.pages.data.get(pfn);
      k.pages.drop(pfn);
      if (media && data !== undefined) k.pages.data.set(pfn, data);
    }
  }
}
