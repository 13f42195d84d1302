import { BlockAllocator, KernelError, type BlockOwner, type Device, type Inode, type Kernel } from '@daxlab/core';

/** FUSE_DAX_SHIFT / FUSE_DAX_SZ (fs/fuse/dax.c): the window is handed out in 2 MiB ranges, on every arch. */
export const FUSE_DAX_SHIFT = 21;
export const FUSE_DAX_SZ = 2 ** FUSE_DAX_SHIFT;
/** FUSE_DAX_RECLAIM_CHUNK: ranges the reclaim worker tries to free in one pass */
export const FUSE_DAX_RECLAIM_CHUNK = 10;
/** FUSE_DAX_RECLAIM_THRESHOLD: % of free ranges below which the reclaim worker is kicked */
export const FUSE_DAX_RECLAIM_THRESHOLD = 20;

/** struct fuse_dax_mapping: one 2 MiB range of the DAX window. */
export interface Dmap {
  /** window_offset >> FUSE_DAX_SHIFT */
  readonly range: number;
  /** the inode the range is set up for (no reference held), null while free */
  inode: Inode | null;
  /** itn.start == itn.last: the file offset >> FUSE_DAX_SHIFT it maps */
  chunk: number;
  /** set up with FUSE_SETUPMAPPING_FLAG_WRITE */
  writable: boolean;
  /** 1 while unused; fuse_fill_iomap() adds one per iomap operation using the range */
  refcnt: number;
}

/**
 * The virtio-fs DAX window as the filesystem's "blocks" (struct fuse_conn_dax): its pages are
 * what DAX maps and DMA reaches, and a page belongs to a file only while its range is set up
 * for that file (FUSE_SETUPMAPPING). A range assigned to a file chunk is `block.alloc` of its
 * pages; a range released to the free pool after FUSE_REMOVEMAPPING is `block.free`: that
 * reuse of window pages for another file is FUSE's block reuse, so the invariants
 * `block-freed-while-pinned` and `dma-to-foreign-block` mean what they mean on pmem. Host blocks
 * are allocated and freed by the server (virtiofsd) and never seen by the guest.
 *
 * Free ranges are a FIFO (fcd->free_ranges: alloc_dax_mapping() takes the first, freed ranges
 * are added at the tail), busy ranges a list in setup order (fcd->busy_ranges).
 */
export class DaxRanges extends BlockAllocator {
  /** FUSE_DAX_PAGES */
  readonly rangePages: number;
  readonly dmaps: readonly Dmap[];
  private readonly free: Dmap[];
  private readonly busy: Dmap[] = [];

  constructor(
    private readonly kernel: Kernel,
    device: Device,
  ) {
    super(kernel, device);
    this.rangePages = FUSE_DAX_SZ / kernel.mmu.basePageSize;
    // fuse_dax_mem_range_init(): nr_ranges = nr_pages / FUSE_DAX_PAGES, window_offset = i * FUSE_DAX_SZ
    const nr = Math.floor(device.dataPages / this.rangePages);
    const dmaps: Dmap[] = [];
    for (let range = 0; range < nr; range++) dmaps.push({ range, inode: null, chunk: 0, writable: false, refcnt: 1 });
    this.dmaps = dmaps;
    this.free = [...dmaps];
  }

  get nrRanges(): number {
    return this.dmaps.length;
  }

  /** fcd->nr_free_ranges */
  get nrFree(): number {
    return this.free.length;
  }

  /** window pages set up for some file */
  override get used(): number {
    return this.busy.length * this.rangePages;
  }

  private dmapOf(block: number): Dmap | undefined {
    return this.dmaps[Math.floor(block / this.rangePages)];
  }

  override isFree(block: number): boolean {
    return this.dmapOf(block)?.inode == null;
  }

  override ownersOf(block: number): readonly BlockOwner[] {
    const d = this.dmapOf(block);
    if (!d?.inode) return [];
    return [{ file: d.inode.name, index: d.chunk * this.rangePages + (block % this.rangePages) }];
  }

  /** Window pages are never allocated one by one: FUSE_SETUPMAPPING assigns whole ranges. */
  override alloc(file: string): number[] {
    throw new KernelError('EOPNOTSUPP', `virtio-fs DAX window pages are assigned in ${FUSE_DAX_SZ}-byte ranges by FUSE_SETUPMAPPING, not allocated for '${file}'`);
  }

  override share(block: number): void {
    throw new KernelError('EOPNOTSUPP', `virtio-fs DAX window page ${block} cannot be shared (FUSE has no reflink)`);
  }

  /** Window pages are never released one by one: FUSE_REMOVEMAPPING releases whole ranges. */
  override release(block: number, file: string): void {
    throw new KernelError('EOPNOTSUPP', `virtio-fs DAX window page ${block} of '${file}' is released with its range (FUSE_REMOVEMAPPING)`);
  }

  /** alloc_dax_mapping(): the first free range, or null (the caller decides: -EAGAIN, reclaim). */
  allocDaxMapping(): Dmap | null {
    return this.free.shift() ?? null;
  }

  /** dmap_add_to_free_pool(): back to the tail of the free list (a range that was never set up). */
  addToFreePool(d: Dmap): void {
    this.free.push(d);
  }

  /**
   * The bookkeeping half of fuse_setup_one_mapping() after the server said yes: the range
   * belongs to (inode, chunk) and joins the busy list; its pages are allocated to the file.
   */
  assign(d: Dmap, inode: Inode, chunk: number): number[] {
    d.inode = inode;
    d.chunk = chunk;
    this.busy.push(d);
    const blocks: number[] = [];
    for (let i = 0; i < this.rangePages; i++) {
      const block = d.range * this.rangePages + i;
      blocks.push(block);
      this.kernel.emit('block.alloc', { device: this.device.name, block, file: inode.name, index: chunk * this.rangePages + i });
    }
    return blocks;
  }

  /** dmap_reinit_add_to_free_pool(): off the busy list, no inode, to the tail of the free list. */
  reinitAddToFreePool(d: Dmap): void {
    const file = d.inode?.name ?? '';
    const at = this.busy.indexOf(d);
    if (at >= 0) this.busy.splice(at, 1);
    d.inode = null;
    d.chunk = 0;
    d.writable = false;
    this.free.push(d);
    for (let i = 0; i < this.rangePages; i++) {
      const block = d.range * this.rangePages + i;
      this.kernel.emit('block.free', { device: this.device.name, block, pfn: this.pfnOf(block), file });
    }
  }

  /**
   * try_to_free_dmap_chunks()' pick: the first busy range not in use by an iomap operation
   * (refcnt <= 1), moved to the tail of the busy list so the next pick tries another.
   */
  pickReclaimable(): Dmap | null {
    const at = this.busy.findIndex((d) => d.refcnt <= 1);
    if (at < 0) return null;
    const [d] = this.busy.splice(at, 1);
    this.busy.push(d!);
    return d!;
  }

  /** Whether a reclaim pass could pick something. */
  hasReclaimable(): boolean {
    return this.busy.some((d) => d.refcnt <= 1);
  }
}
