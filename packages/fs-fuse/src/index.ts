import {
  DaxFilesystem,
  KernelError,
  kernelAtLeast,
  preempt,
  RwSem,
  waitUntil,
  type DaxIomapOps,
  type DaxMode,
  type DaxMountOption,
  type Directory,
  type DirectIoCoherence,
  type FileServerOptions,
  type FallocateMode,
  FALLOC_FLAG,
  type Device,
  type DriverPlugin,
  type FilesystemPlugin,
  type Inode,
  type Iomap,
  type Kernel,
  type KernelDescription,
  type Op,
  type ProbeRequest,
  type Vmf,
} from '@daxlab/core';
import { DaxRanges, FUSE_DAX_RECLAIM_CHUNK, FUSE_DAX_SHIFT, FUSE_DAX_SZ, type Dmap } from './window.js';

export { DaxRanges, FUSE_DAX_RECLAIM_CHUNK, FUSE_DAX_RECLAIM_THRESHOLD, FUSE_DAX_SHIFT, FUSE_DAX_SZ, type Dmap } from './window.js';

/**
 * A virtio-fs device's DAX cache window (drivers: fs/fuse/virtio_fs.c virtio_fs_setup_dax):
 * the VIRTIO_FS_SHMCAP_ID_CACHE shared-memory region registered with devm_memremap_pages() as a
 * MEMORY_DEVICE_FS_DAX pgmap, memmap in RAM (no altmap: nothing of the window is reserved), every
 * page usable as window. `size` is the window size; `align` and `altmap` of a pmem probe have no
 * meaning for a PCI BAR and are ignored, so a scenario written for pmem runs unchanged.
 */
export function virtiofs(): DriverPlugin {
  return {
    kind: 'driver',
    name: '@daxlab/fs-fuse/virtiofs',
    driverName: 'virtiofs',
    coreRange: '>=0.1.0 <1.0.0',

    *probe(k: Kernel, req: ProbeRequest): Op<Device> {
      const ps = k.mmu.basePageSize;
      const pgmap = k.memremap.memremapPages({ device: req.name, type: 'fsdax', size: req.size, vmemmapShift: 0, altmapPfns: 0 });
      yield* [];
      return {
        name: req.name,
        driver: 'virtiofs',
        size: req.size,
        align: FUSE_DAX_SZ,
        pgmap,
        dataPfn: pgmap.startPfn,
        dataPages: req.size / ps,
        bound: true,
        fs: null,
        mapping: { id: k.newAddressSpaceId(), owner: req.name, entries: new Map(), mmaps: new Set() },
        state: { window: 'VIRTIO_FS_SHMCAP_ID_CACHE' },
      };
    },

    /**
     * Device removal: the devm actions run in reverse, virtio_fs_cleanup_dax() (kill_dax(): FUSE
     * registers no dax holder, so no MF_MEM_PRE_REMOVE reaches the filesystem and its mappings
     * survive) and then memunmap_pages().
     */
    *unbind(k: Kernel, device: Device): Op {
      yield* k.dax.killDax(device);
      yield* k.memremap.memunmapPages(device.pgmap);
    },
  };
}

/** Per-inode DAX state (struct fuse_inode_dax) and the host file behind the inode. */
interface FuseInodeDax {
  /** fi->dax->sem: protects the dmap tree */
  readonly sem: RwSem;
  /** fi->dax->tree (interval tree of 2 MiB chunks); its size is fi->dax->nr */
  readonly tree: Map<number, Dmap>;
  /** the host file's data as virtiofsd sees it, by file page; pages not listed read as zeroes */
  readonly host: Map<number, string>;
  /**
   * What each page-cache folio held when it last agreed with the host (read in by FUSE_READ, or
   * written back): a folio that still holds it is clean. The model keeps no PG_dirty for page-cache
   * files, and a clean folio may be stale (an FOPEN_DIRECT_IO write changed the host under it), so
   * writeback must not send it.
   */
  readonly synced: Map<number, string>;
}

const HOLE: Iomap = { type: 'hole', pfn: 0, contiguous: 1, shared: false };

/**
 * FUSE (virtio-fs) with DAX: file data lives in host files; the guest maps 2 MiB chunks of a
 * file into ranges of the DAX window (FUSE_SETUPMAPPING), and those window pages are what the
 * page tables map and what DMA reaches. Orderings follow fs/fuse/dax.c (fuse_iomap_begin,
 * __fuse_dax_fault, fuse_dax_break_layouts, lookup_and_reclaim_dmap), fs/fuse/dir.c
 * fuse_do_setattr (truncate) and fs/fuse/file.c fuse_file_fallocate (punch hole).
 *
 * What "block" and "free" mean here: `create` asks the server for a host file (no window range is
 * touched); the first DAX fault in a 2 MiB chunk sets up a window range for it (`block.alloc` of
 * its pages); truncate and punch hole free *host* blocks on the server (FUSE_SETATTR /
 * FUSE_FALLOCATE) and leave the inode's ranges set up; a range is released (`block.free`) only
 * by range reclaim, which then hands it to another file. So on FUSE the stale-DMA hazard is the
 * reclaim of a range with a pinned page, and truncate alone never reuses a window page.
 */
export class Fuse extends DaxFilesystem {
  readonly name = 'fuse';
  /** fuse_dax_mmap(): VM_MIXEDMAP | VM_HUGEPAGE (MIXEDMAP: fork copies the page tables) */
  readonly mmapFlags = { mixedmap: true, hugepage: true };
  declare readonly blocks: DaxRanges;

  constructor(k: Kernel, device: Device) {
    super(k, device);
    this.blocks = new DaxRanges(k, device);
  }

  /**
   * virtio-fs's dax option (fuse_parse_param, virtio_fs_fill_super): `-o dax` (v5.10: every file
   * through the DAX window; without it no file is DAX). 780b1b959f9b "fuse: make DAX mount option a
   * tri-state" (v5.17) adds dax=always|never|inode, and no option becomes FUSE_DAX_INODE_DEFAULT:
   * per inode as with dax=inode (fuse_is_inode_dax_mode), the window being there.
   */
  override parseDaxOption(option: DaxMountOption): DaxMode {
    const tri = kernelAtLeast(this.k.version, 5, 17);
    if (option === true) return 'always';
    if (option === false) return tri ? 'inode' : 'never';
    if (!tri) throw KernelError.unsupported('EINVAL', `virtio-fs before v5.17 knows only -o dax: dax=${option} is an unknown option`);
    return option;
  }

  /**
   * fuse_dax_inode_init() -> fuse_should_enable_dax() [v5.17 fs/fuse/dax.c]: never under
   * dax=never; not without a DAX window (the model's virtio-fs device always has one); always
   * under dax=always; per inode (dax=inode or no option) when the server both answered FUSE_INIT
   * with FUSE_HAS_INODE_DAX (fc->inode_dax) and marks the file FUSE_ATTR_DAX in its attributes.
   * The model's server is a virtiofsd that does both: it reports FUSE_ATTR_DAX for a file whose
   * host file has FS_XFLAG_DAX (the inode's daxFlag), which `chattr` sets through FUSE_IOCTL.
   */
  protected override shouldEnableDax(inode: Inode): boolean {
    if (this.daxMode === 'never') return false;
    return this.daxMode === 'always' || inode.daxFlag;
  }

  /**
   * FS_IOC_FSSETXATTR of FS_XFLAG_DAX on a FUSE file (fuse_fileattr_set -> FUSE_IOCTL, v5.13): the
   * server sets the flag on its host file. The kernel learns it only from the file's attributes
   * (FUSE_ATTR_DAX at the next lookup: see iget), so the ioctl itself marks nothing. Before
   * v5.17 there is no per-inode DAX to change; a directory's flag is the host filesystem's
   * business (what its new files inherit there), not modelled.
   */
  override checkDaxFlagChange(target: Inode | Directory, on: boolean): { dontcache: boolean } {
    if (!kernelAtLeast(this.k.version, 5, 17)) return super.checkDaxFlagChange(target, on);
    if (!('blocks' in target)) throw KernelError.unsupported('EOPNOTSUPP', `fuse: FS_XFLAG_DAX of directory '${target.name}' is the server's host flag (inheritance on the host): not modelled`);
    return { dontcache: false };
  }

  /**
   * A lookup of the file revalidates it with the server (the model's virtiofsd answers with
   * entry and attribute timeouts of 0, as with --cache=never): fuse_change_attributes() ->
   * fuse_dax_dontcache() marks the inode I_DONTCACHE when FUSE_ATTR_DAX differs from IS_DAX
   * under a per-inode mode (v5.17, "fuse: mark inode DONT_CACHE when per inode DAX hint
   * changes"). Nothing else holding it, the model lets the inode go at once and sets it up
   * again, so this lookup already sees the new S_DAX (the kernel's statx that revalidates still
   * reports the old one, the next the new); an open or mapped file keeps it until its last user.
   */
  override iget(inode: Inode): Inode {
    if (this.mounted && inode.incore && this.daxMode === 'inode' && inode.sDax !== inode.daxFlag) inode.dontcache = true;
    return super.iget(inode);
  }

  /** A page-cache read of a file without S_DAX: FUSE_READ, the host file's data. */
  protected override readCachedPage(inode: Inode, index: number): string {
    const data = this.hostData(inode, index);
    this.daxOf(inode).synced.set(index, data);
    return data;
  }

  /**
   * Writeback of a file without S_DAX (fuse_writepages: FUSE_WRITE): every dirty cached page inside
   * i_size goes to the host file; a folio holding what it held when it last agreed with the host
   * is clean and stays out, even where the host has changed since.
   */
  protected override writeback(inode: Inode): void {
    const cache = inode.cache;
    if (!cache || cache.cache.size === 0) return;
    const { host, synced } = this.daxOf(inode);
    const dirty = [...cache.cache].filter(([index, pfn]) => index < this.pages(inode.size) && synced.get(index) !== (this.k.pages.data.get(pfn) ?? ''));
    if (dirty.length === 0) return;
    this.step(inode, 'FUSE_WRITE');
    for (const [index, pfn] of dirty) {
      const data = this.k.pages.data.get(pfn) ?? '';
      host.set(index, data);
      synced.set(index, data);
    }
  }

  /**
   * fuse_evict_inode(): truncate_inode_pages_final() (the base: page cache written back and
   * dropped, or the DAX entries deleted), then for a DAX inode fuse_dax_inode_cleanup() ->
   * inode_reclaim_dmap_range(0, -1): every window range of the inode is removed
   * (FUSE_REMOVEMAPPING, its data in the host file) and goes back to the free pool.
   */
  override *evict(inode: Inode): Op {
    yield* super.evict(inode);
    const dax = this.daxOf(inode);
    const rp = this.rangePages;
    for (const dmap of [...dax.tree.values()]) {
      dax.tree.delete(dmap.chunk);
      for (let i = dmap.chunk * rp; i < dmap.chunk * rp + rp; i++) inode.blocks.delete(i);
      yield* this.removeMapping(inode, dmap);
      this.blocks.reinitAddToFreePool(dmap);
    }
  }

  // ---- FOPEN_DIRECT_IO files (fs/fuse/file.c) --------------------------------------------

  /** What the server answered on this connection (the mount's server fields). */
  private server: Required<FileServerOptions> = { fopenDirectIo: false, directIoAllowMmap: false };

  override applyServerOptions(o: FileServerOptions): void {
    this.server = { fopenDirectIo: o.fopenDirectIo ?? false, directIoAllowMmap: o.directIoAllowMmap ?? false };
  }

  /**
   * fuse_do_open() keeps the open_flags of the FUSE_OPEN reply: the model's server sets
   * FOPEN_DIRECT_IO on every open of a regular file when asked to (virtiofsd --cache=never). It is
   * the open file's flag, so it holds for a DAX file too; fuse_file_read_iter,
   * fuse_file_write_iter and fuse_file_mmap test FUSE_IS_DAX() first (the callers' S_DAX test).
   */
  override fopenDirectIo(_inode: Inode): boolean {
    return this.server.fopenDirectIo;
  }

  /**
   * fc->direct_io_allow_mmap: process_init_reply() sets it from FUSE_DIRECT_IO_RELAX, e78662e818f9
   * "fuse: add a new fuse init flag to relax restrictions in no cache mode" (v6.6), renamed
   * FUSE_DIRECT_IO_ALLOW_MMAP (the same bit) by c55e0a55b165 (v6.7, in 6.6.y too). An older kernel
   * does not know the bit: the server's answer has no effect.
   */
  private get directIoAllowMmap(): boolean {
    return this.server.directIoAllowMmap && kernelAtLeast(this.k.version, 6, 6);
  }

  /**
   * fuse_direct_io() of an FOPEN_DIRECT_IO file (fuse_direct_read_iter, fuse_direct_write_iter):
   * before v6.6 it leaves the page cache alone (only fuse_sync_writes for writeback in flight,
   * which the model has none of); v6.6 writes the range back first when the connection allows
   * mmap (b5a2a3a0b776, for reads and writes) and invalidates it before a write (80e4f25262f9);
   * v6.19 writes back whatever the connection (1ce120dcefc0) and invalidates the whole range again
   * after a write that did something (b359af8275a9, generic/209).
   */
  override fopenDirectIoCoherence(): DirectIoCoherence {
    if (kernelAtLeast(this.k.version, 6, 19)) return { writeback: true, invalidateBefore: true, invalidateAfter: 'range' };
    if (kernelAtLeast(this.k.version, 6, 6)) return { writeback: this.directIoAllowMmap, invalidateBefore: true, invalidateAfter: false };
    return { writeback: false, invalidateBefore: false, invalidateAfter: false };
  }

  /**
   * fuse_file_mmap() of a file without DAX opened FOPEN_DIRECT_IO: MAP_SHARED (VM_MAYSHARE,
   * read-only or not) is -ENODEV unless the connection allows mmap (v6.6); then
   * invalidate_inode_pages2() of the whole file (dirty folios laundered to the server, every
   * mapping's PTEs of them zapped, COW copies kept) and a page-cache mapping
   * (generic_file_mmap; a shared one gets fuse_file_vm_ops from 9511176bbaee, v6.9, not
   * modelled apart).
   */
  override *mmapPageCache(inode: Inode, shared: boolean): Op {
    if (!this.server.fopenDirectIo) return;
    if (shared && !this.directIoAllowMmap) {
      const why = kernelAtLeast(this.k.version, 6, 6) ? 'the server did not answer FUSE_INIT with FUSE_DIRECT_IO_ALLOW_MMAP' : 'no FUSE_DIRECT_IO_ALLOW_MMAP before v6.6';
      throw new KernelError('ENODEV', `mmap MAP_SHARED of '${inode.name}', opened FOPEN_DIRECT_IO (fuse_file_mmap): ${why}`);
    }
    this.step(inode, 'invalidate_inode_pages2');
    yield* this.invalidateInodePages2(inode);
  }

  /** FUSE_DAX_PAGES */
  get rangePages(): number {
    return this.blocks.rangePages;
  }

  /** fuse_dax_inode_alloc() state, created with the inode */
  private daxOf(inode: Inode): FuseInodeDax {
    const s = inode.state['fuseDax'] as FuseInodeDax | undefined;
    if (s) return s;
    const created: FuseInodeDax = { sem: new RwSem(`${inode.name}:dax->sem`, () => this.k.currentThread), tree: new Map(), host: new Map(), synced: new Map() };
    inode.state['fuseDax'] = created;
    return created;
  }

  /** The host file's contents for file page `index` (what the server would return). */
  hostData(inode: Inode, index: number): string {
    return this.daxOf(inode).host.get(index) ?? '';
  }

  // ---- files ---------------------------------------------------------------------------

  /**
   * open(O_CREAT) + fallocate: FUSE_CREATE and FUSE_FALLOCATE make a host file of `size` bytes
   * on the server. Nothing in the DAX window is assigned until a DAX access needs it.
   */
  override *create(name: string, size: number, dir = '/'): Op<Inode> {
    const inode = this.newInode(name, size, dir);
    this.daxOf(inode);
    this.step(inode, 'FUSE_CREATE');
    yield preempt('FUSE_CREATE');
    this.step(inode, 'FUSE_FALLOCATE');
    return inode;
  }

  // ---- iomap: the DAX window ranges ------------------------------------------------------

  /**
   * fuse_iomap_begin() for one fault (IOMAP_FAULT): under fi->dax->sem shared, use the range set
   * up for the chunk (upgrading a read-only one for a write), or set one up; beyond EOF it is a
   * hole. The dmap reference fuse_fill_iomap() takes goes in `held` for fuse_iomap_end().
   */
  private *iomapBeginFault(inode: Inode, index: number, write: boolean, held: Dmap[]): Op<Iomap> {
    const dax = this.daxOf(inode);
    const pos = index * this.pageSize;
    const chunk = Math.floor(pos / FUSE_DAX_SZ);
    yield* dax.sem.downRead();
    const dmap = dax.tree.get(chunk);
    if (dmap) {
      if (write && !dmap.writable) {
        dmap.refcnt++; // keep it from range reclaim while the lock is dropped
        dax.sem.upRead();
        return yield* this.upgradeDaxMapping(inode, index, dmap, held);
      }
      const map = this.fillIomap(inode, index, dmap, held);
      dax.sem.upRead();
      return map;
    }
    dax.sem.upRead();
    if (pos >= inode.size) return HOLE;
    return yield* this.setupNewDaxMapping(inode, index, write, held);
  }

  /** fuse_iomap_begin() never sets IOMAP_F_NEW: the host file's blocks are the server's. */
  override writeAllocates(_inode: Inode, _index: number): boolean {
    return false;
  }

  /** fuse_direct_io(): FUSE_READ / FUSE_WRITE requests carry the user's pages to the server. */
  override get directIoToServer(): boolean {
    return true;
  }

  /**
   * fuse_dax_write_iter(): a write that extends the file (file_extending_write: it starts at or
   * ends past i_size) goes to fuse_dax_direct_write(), a FUSE_WRITE of the user pages to the
   * server, not dax_iomap_rw() (v5.10, c2d0ad00d948).
   */
  override daxWriteToServer(inode: Inode, start: number, end: number): boolean {
    return start >= inode.size || end > inode.size;
  }

  /** FUSE_READ of a file page: the host file's data (a file without DAX: its cache was written back first). */
  override serverRead(inode: Inode, index: number): string {
    return this.hostData(inode, index);
  }

  /**
   * FUSE_WRITE of a file page: the server writes its host file, and a window range mapping that
   * part of it (the window is a shared mapping of the host file) shows the new data at once.
   */
  override serverWrite(inode: Inode, index: number, data: string): void {
    this.step(inode, 'FUSE_WRITE');
    this.daxOf(inode).host.set(index, data);
    const block = inode.blocks.get(index);
    if (block !== undefined) this.k.pages.data.set(this.blocks.pfnOf(block), data);
  }

  /** fuse_iomap_end(): drop the reference fuse_fill_iomap() took (it never reaches 0). */
  private iomapEnd(dmap: Dmap): void {
    if (--dmap.refcnt <= 0) throw new Error(`fuse_iomap_end: dmap ${dmap.range} refcount hit 0`);
  }

  /**
   * DaxIomapOps for callers other than this filesystem's faults: one complete iteration,
   * fuse_iomap_begin() then fuse_iomap_end(), as a DAX fault runs it (IOMAP_FAULT: no free range
   * is -EAGAIN). read(2)/write(2) (fs/rw.ts) use it too, although their iomap would reclaim one of
   * the inode's own ranges inline (alloc_dax_mapping_reclaim) where a fault gets -EAGAIN.
   */
  override *iomapBegin(inode: Inode, index: number, write: boolean): Op<Iomap> {
    const held: Dmap[] = [];
    try {
      return yield* this.iomapBeginFault(inode, index, write, held);
    } finally {
      for (const d of held) this.iomapEnd(d);
    }
  }

  /**
   * fuse_fill_iomap(): the window address of `index` within its range (window_offset + offset),
   * clipped to EOF (a range past EOF is a hole); takes a dmap reference.
   */
  private fillIomap(inode: Inode, index: number, dmap: Dmap, held: Dmap[]): Iomap {
    const rp = this.rangePages;
    const inRange = index - dmap.chunk * rp;
    const toEof = this.pages(inode.size) - index;
    const pages = Math.min(rp - inRange, toEof);
    if (pages <= 0) return HOLE;
    dmap.refcnt++;
    held.push(dmap);
    return { type: 'mapped', pfn: this.blocks.pfnOf(dmap.range * rp + inRange), contiguous: pages, shared: false };
  }

  /**
   * fuse_setup_new_dax_mapping() in a fault: alloc_dax_mapping() — no free range is -EAGAIN (a
   * fault cannot reclaim inline: it holds the fault lock shared) — then under fi->dax->sem
   * exclusive re-check the tree (another thread may have set it up: the range goes back to the
   * free pool) and fuse_setup_one_mapping().
   */
  private *setupNewDaxMapping(inode: Inode, index: number, write: boolean, held: Dmap[]): Op<Iomap> {
    const dax = this.daxOf(inode);
    const chunk = Math.floor((index * this.pageSize) / FUSE_DAX_SZ);
    const alloc = this.blocks.allocDaxMapping();
    if (!alloc) throw new KernelError('EAGAIN', `fuse: no free DAX range for ${inode.name} chunk ${chunk}`);
    yield* dax.sem.downWrite();
    try {
      const node = dax.tree.get(chunk);
      if (node) {
        this.blocks.addToFreePool(alloc);
        return this.fillIomap(inode, index, node, held);
      }
      yield* this.setupOneMapping(inode, chunk, alloc, write, false);
      return this.fillIomap(inode, index, alloc, held);
    } finally {
      dax.sem.upWrite();
    }
  }

  /** fuse_upgrade_dax_mapping(): re-send FUSE_SETUPMAPPING with WRITE for a read-only range. */
  private *upgradeDaxMapping(inode: Inode, index: number, dmap: Dmap, held: Dmap[]): Op<Iomap> {
    const dax = this.daxOf(inode);
    yield* dax.sem.downWrite();
    try {
      if (dax.tree.get(dmap.chunk) !== dmap) throw new KernelError('EIO', `fuse: dmap of ${inode.name} chunk ${dmap.chunk} vanished during upgrade`);
      dmap.refcnt--; // the extra reference is not needed under the lock
      if (!dmap.writable) yield* this.setupOneMapping(inode, dmap.chunk, dmap, true, true);
      return this.fillIomap(inode, index, dmap, held);
    } finally {
      dax.sem.upWrite();
    }
  }

  /**
   * fuse_setup_one_mapping(): FUSE_SETUPMAPPING {foffset = chunk << 21, moffset = window_offset,
   * len = FUSE_DAX_SZ, READ [| WRITE]}. The server maps that part of the host file into the
   * window, so the window pages now show the host file's data. Unless upgrading, the range joins
   * the inode's tree and the busy list.
   */
  private *setupOneMapping(inode: Inode, chunk: number, dmap: Dmap, writable: boolean, upgrade: boolean): Op {
    this.step(inode, `FUSE_SETUPMAPPING(foffset=${chunk}<<${FUSE_DAX_SHIFT}, moffset=${dmap.range}<<${FUSE_DAX_SHIFT}, ${writable ? 'rw' : 'r'})`);
    yield preempt('FUSE_SETUPMAPPING');
    dmap.writable = writable;
    if (upgrade) return;
    const rp = this.rangePages;
    const blocks = this.blocks.assign(dmap, inode, chunk);
    this.daxOf(inode).tree.set(chunk, dmap);
    blocks.forEach((block, i) => {
      const index = chunk * rp + i;
      inode.blocks.set(index, block);
      this.k.pages.data.set(this.blocks.pfnOf(block), this.hostData(inode, index));
    });
  }

  /**
   * FUSE_REMOVEMAPPING {moffset, len}: the server unmaps the range from the window. What was
   * written through it is in the host file (the window was a shared mapping of it), up to EOF;
   * the window pages are unbacked until the range is set up again.
   */
  private *removeMapping(inode: Inode, dmap: Dmap): Op {
    this.step(inode, `FUSE_REMOVEMAPPING(moffset=${dmap.range}<<${FUSE_DAX_SHIFT})`);
    yield preempt('FUSE_REMOVEMAPPING');
    const rp = this.rangePages;
    const host = this.daxOf(inode).host;
    for (let i = 0; i < rp; i++) {
      const index = dmap.chunk * rp + i;
      const pfn = this.blocks.pfnOf(dmap.range * rp + i);
      if (index < this.pages(inode.size)) host.set(index, this.k.pages.data.get(pfn) ?? '');
      this.k.pages.data.set(pfn, '');
    }
  }

  // ---- faults ----------------------------------------------------------------------------

  /**
   * __fuse_dax_fault(): the fault lock shared around dax_iomap_fault() ("serialize against not
   * only truncate but also against fuse dax memory range reclaim"); -EAGAIN (no free range)
   * drops the lock, waits for a free range (range_waitq) and retries. fuse_iomap_end() runs
   * for every range fuse_iomap_begin() used.
   */
  private *fuseDaxFault(vmf: Vmf, inode: Inode, huge: boolean): Op<'done' | 'fallback'> {
    return yield* this.underFaultLock(inode, function* (this: Fuse, ops: DaxIomapOps): Op<'done' | 'fallback'> {
      if (huge) return yield* this.k.dax.pmdFault(vmf, inode, ops);
      yield* this.k.dax.pteFault(vmf, inode, ops);
      return 'done';
    }.bind(this));
  }

  /**
   * The frame of __fuse_dax_fault() around dax_iomap_fault(): the fault lock shared, the iomap
   * ops whose dmap references fuse_iomap_end() drops afterwards, and on -EAGAIN (no free range)
   * unlock, wait for a free range and retry.
   */
  private *underFaultLock<T>(inode: Inode, body: (ops: DaxIomapOps) => Op<T>): Op<T> {
    let retry = false;
    for (;;) {
      if (retry && this.blocks.nrFree === 0) yield* this.waitForFreeRange();
      yield* inode.mmaplock.downRead();
      const held: Dmap[] = [];
      const ops: DaxIomapOps = { iomapBegin: (i, index, write) => this.iomapBeginFault(i, index, write, held) };
      try {
        return yield* body(ops);
      } catch (e) {
        if (!(e instanceof KernelError) || e.code !== 'EAGAIN') throw e;
        retry = true;
      } finally {
        for (const d of held) this.iomapEnd(d);
        inode.mmaplock.upRead();
      }
    }
  }

  /**
   * A private write fault's copy (do_cow_fault -> __fuse_dax_fault -> dax_fault_cow_page):
   * fuse_iomap_begin() sets up a window range for the chunk if it has none, so the copy is the
   * host file's data as the server maps it; beyond EOF is SIGBUS.
   */
  override *cowData(vmf: Vmf, inode: Inode): Op<string> {
    if (vmf.pgoff * this.pageSize >= inode.size) throw new KernelError('SIGBUS', `fault beyond EOF of ${inode.name}`);
    return yield* this.underFaultLock(inode, function* (this: Fuse, ops: DaxIomapOps): Op<string> {
      const map = yield* ops.iomapBegin(inode, vmf.pgoff, false);
      return map.type === 'hole' ? '' : (this.k.pages.data.get(map.pfn) ?? '');
    }.bind(this));
  }

  /** fuse_dax_huge_fault() for the PMD, then fuse_dax_fault() for a PTE if it falls back. */
  *fault(vmf: Vmf, inode: Inode): Op {
    if ((yield* this.fuseDaxFault(vmf, inode, true)) === 'fallback') yield* this.fuseDaxFault(vmf, inode, false);
  }

  /**
   * fuse_dax_pfn_mkwrite() -> __fuse_dax_fault(PTE, write); a write to a read-only PMD comes in
   * through ->huge_fault instead (wp_huge_pmd).
   */
  *pfnMkwrite(vmf: Vmf, inode: Inode): Op {
    const w = { ...vmf, write: true };
    const leaf = this.k.vm.lookup(vmf.vma.mm, vmf.vpn);
    if (leaf?.pte.level === 'pmd' && (yield* this.fuseDaxFault(w, inode, true)) === 'done') return;
    yield* this.fuseDaxFault(w, inode, false);
  }

  // ---- range reclaim ---------------------------------------------------------------------

  /**
   * wait_event(fcd->range_waitq, nr_free_ranges > 0) in __fuse_dax_fault(). Ranges come back
   * from fuse_dax_free_mem_worker, which alloc_dax_mapping() queues once fewer than
   * FUSE_DAX_RECLAIM_THRESHOLD % of the ranges are free; daxlab runs the worker's pass
   * (try_to_free_dmap_chunks) where the fault waits for it, in the faulting thread: the worker's
   * own kernel thread is not modelled, so the pass happens when a range is needed rather than as
   * soon as the window runs low.
   */
  private *waitForFreeRange(): Op {
    while (this.blocks.nrFree === 0) {
      const tried = yield* this.tryToFreeDmapChunks(FUSE_DAX_RECLAIM_CHUNK);
      if (this.blocks.nrFree > 0) return;
      if (tried === 0) yield* waitUntil('fuse: wait for a free DAX range (range_waitq)', () => this.blocks.nrFree > 0 || this.blocks.hasReclaimable());
    }
  }

  /**
   * try_to_free_dmap_chunks(): up to `nr` times, pick the first busy range not in use and
   * reclaim it with lookup_and_reclaim_dmap(). Returns how many it tried.
   */
  private *tryToFreeDmapChunks(nr: number): Op<number> {
    let tried = 0;
    while (tried < nr) {
      const dmap = this.blocks.pickReclaimable();
      if (!dmap?.inode) return tried;
      yield* this.lookupAndReclaimDmap(dmap.inode, dmap.chunk);
      tried++;
    }
    return tried;
  }

  /**
   * lookup_and_reclaim_dmap(): "1. Take mapping->invalidate_lock to block dax faults. 2. Take
   * fi->dax->sem to protect interval tree" — fault lock exclusive, fuse_dax_break_layouts() over
   * the 2 MiB of the range, dax->sem exclusive, then the range is skipped if it is gone or in use
   * (refcnt > 1), else reclaim_one_dmap_locked() and dmap_reinit_add_to_free_pool().
   */
  private *lookupAndReclaimDmap(inode: Inode, chunk: number): Op {
    const rp = this.rangePages;
    this.step(inode, `lookup_and_reclaim_dmap(chunk=${chunk})`);
    yield* this.lockFaults(inode);
    try {
      yield* this.breakLayouts(inode, chunk * rp, chunk * rp + rp - 1);
      const dax = this.daxOf(inode);
      yield* dax.sem.downWrite();
      try {
        const dmap = dax.tree.get(chunk);
        if (!dmap || dmap.refcnt > 1) return;
        yield* this.reclaimOneDmapLocked(inode, dmap);
        this.blocks.reinitAddToFreePool(dmap);
      } finally {
        dax.sem.upWrite();
      }
    } finally {
      this.unlockFaults(inode);
    }
  }

  /**
   * reclaim_one_dmap_locked(): dmap_writeback_invalidate() — filemap_fdatawrite_range (DAX
   * writeback cleans the entries) then invalidate_inode_pages2_range() over the range — then
   * out of the inode's tree, and FUSE_REMOVEMAPPING.
   */
  private *reclaimOneDmapLocked(inode: Inode, dmap: Dmap): Op {
    const rp = this.rangePages;
    const first = dmap.chunk * rp;
    for (const [i, e] of inode.mapping.entries) if (i >= first && i < first + rp) e.dirty = false;
    yield* this.k.dax.invalidateInodePages2Range(inode, first, first + rp - 1);
    this.daxOf(inode).tree.delete(dmap.chunk);
    for (let i = first; i < first + rp; i++) inode.blocks.delete(i);
    yield* this.removeMapping(inode, dmap);
  }

  // ---- break layouts, truncate, punch hole -----------------------------------------------

  /**
   * fuse_dax_break_layouts(inode, dmap_start, dmap_end) over file pages [start, end], with the
   * fault lock held exclusively. Eras (a)/(b): the do/while of __fuse_dax_break_layouts() —
   * dax_layout_busy_page_range(), then wait for rc == 1 with fuse_wait_dax_page() dropping the
   * fault lock. Era (c): dax_break_layout(inode, start, end, fuse_wait_dax_page), which deletes
   * the range's DAX entries once idle.
   */
  private *breakLayouts(inode: Inode, start: number, end: number): Op {
    this.step(inode, `fuse_dax_break_layouts(${start}, ${end === Infinity ? -1 : end})`);
    yield* this.breakDaxLayouts(inode, start, end); // fuse_wait_dax_page()
  }

  /**
   * The range truncate and punch hole break: (inode, 0, -1) — the whole file — with 7851bf649d42
   * "fuse: fix dax truncate/punch_hole fault path" (v6.15); (inode, 0, 0) before (6ae330cad6ef,
   * v5.10-v6.14), whose comment "dmap_end == 0 leads to unmapping of whole file" is false: only
   * page index 0 is unmapped and scanned.
   */
  private truncateBreakEnd(): number {
    return this.k.features['fuse-break-whole-file'] ? Infinity : 0;
  }

  /**
   * fuse_do_setattr(ATTR_SIZE) [5.10 and 7.2 fs/fuse/dir.c]: the VFS holds inode_lock; for a DAX
   * inode the fault lock (fault_blocked) and fuse_dax_break_layouts() (FUSE_IS_DAX only: a
   * page-cache file takes neither); the FUSE_SETATTR request (the server truncates the host file
   * and frees its blocks), i_size from the reply, truncate_pagecache() and
   * invalidate_inode_pages2() when the size changed, unlock. A DAX inode's window ranges stay
   * set up.
   */
  *truncate(inode: Inode, size: number): Op {
    const dax = inode.cache === null;
    yield* this.lockInode(inode);
    try {
      if (dax) yield* this.lockFaults(inode);
      try {
        if (dax) yield* this.breakLayouts(inode, 0, this.truncateBreakEnd());
        yield* this.serverSetattr(inode, size);
        const oldsize = inode.size;
        inode.size = size;
        this.step(inode, 'i_size_write');
        if (oldsize !== size) {
          this.step(inode, 'truncate_pagecache');
          yield* this.truncatePagecacheTo(inode, size);
          this.step(inode, 'invalidate_inode_pages2');
          yield* this.invalidateInodePages2(inode);
        }
      } finally {
        if (dax) this.unlockFaults(inode);
      }
    } finally {
      this.unlockInode(inode);
    }
  }

  /**
   * invalidate_inode_pages2() of the whole file: every mapping unmapped and every DAX entry or
   * page-cache folio dropped; a dirty folio is written to the host first (fuse_launder_folio).
   */
  private *invalidateInodePages2(inode: Inode): Op {
    const cache = inode.cache;
    if (!cache) return yield* this.k.dax.invalidateInodePages2Range(inode, 0, Infinity);
    this.writeback(inode);
    yield* this.k.pageCache.punchHole(cache, 0, cache.pages * this.pageSize);
  }

  /**
   * FUSE_SETATTR(size): the server truncates the host file. Host pages past the new EOF are gone,
   * and so is what the window showed of them.
   */
  private *serverSetattr(inode: Inode, size: number): Op {
    this.step(inode, `FUSE_SETATTR(size=${size})`);
    yield preempt('FUSE_SETATTR');
    const from = this.pages(size);
    this.dropHostPages(inode, (i) => i >= from);
  }

  /** The server dropped host file pages: forget their data, in the host and in any window page showing them. */
  private dropHostPages(inode: Inode, gone: (index: number) => boolean): void {
    const host = this.daxOf(inode).host;
    for (const i of [...host.keys()]) if (gone(i)) host.delete(i);
    for (const [i, block] of inode.blocks) if (gone(i)) this.k.pages.data.set(this.blocks.pfnOf(block), '');
  }

  /**
   * fuse_file_fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) [5.10 and 7.2 fs/fuse/file.c]:
   * inode_lock; block_faults (FUSE_IS_DAX only): the fault lock and fuse_dax_break_layouts();
   * write back the range (fuse_writeback_range: DAX writeback is not modelled, a page-cache file
   * is written to the host whole); FUSE_FALLOCATE (the server punches the host file and frees
   * its blocks); truncate_pagecache_range() of the whole pages; unlock.
   */
  *punchHole(inode: Inode, offset: number, length: number): Op {
    const ps = this.pageSize;
    const dax = inode.cache === null;
    yield* this.withFaultsBlocked(inode, dax, function* (this: Fuse): Op {
      if (!dax) this.writeback(inode);
      const first = Math.ceil(offset / ps);
      const stop = Math.floor((offset + length) / ps);
      this.step(inode, `FUSE_FALLOCATE(PUNCH_HOLE|KEEP_SIZE, ${offset}, ${length})`);
      yield preempt('FUSE_FALLOCATE');
      this.dropHostPages(inode, (i) => i >= first && i < stop);
      if (stop > first) {
        this.step(inode, 'truncate_pagecache_range');
        yield* this.truncatePagecacheRange(inode, first, stop - 1);
      }
    }.bind(this));
  }

  /**
   * fuse_file_fallocate()'s frame: inode_lock; with `blockFaults` (a DAX inode, for the modes
   * that need it) the fault lock and fuse_dax_break_layouts() over the range truncate breaks;
   * the work; unlock.
   */
  private *withFaultsBlocked(inode: Inode, blockFaults: boolean, body: () => Op): Op {
    yield* this.lockInode(inode);
    try {
      if (blockFaults) yield* this.lockFaults(inode);
      try {
        if (blockFaults) yield* this.breakLayouts(inode, 0, this.truncateBreakEnd());
        yield* body();
      } finally {
        if (blockFaults) this.unlockFaults(inode);
      }
    } finally {
      this.unlockInode(inode);
    }
  }

  /**
   * fuse_file_fallocate() for mode 0 and FALLOC_FL_ZERO_RANGE [5.10 and 7.2 fs/fuse/file.c].
   * The mode mask is KEEP_SIZE | PUNCH_HOLE, with ZERO_RANGE from 6b1bdb56b17c ("fuse: allow
   * fallocate(FALLOC_FL_ZERO_RANGE)", v5.14): anything else, COLLAPSE_RANGE in every release, is
   * -EOPNOTSUPP before any lock. A DAX inode blocks faults and breaks layouts
   * (fuse_dax_break_layouts, the same range as punch hole) when the file may grow (no
   * KEEP_SIZE) or the range is zeroed; zero range writes the range back first, then
   * FUSE_FALLOCATE (the server allocates or zeroes the host file: what the window shows of the
   * zeroed pages is zeroes), i_size from the request unless KEEP_SIZE, and for zero range
   * truncate_pagecache_range() of the whole pages as read in later releases (v2 of the v5.14
   * patch said it left the page cache alone; the merged version was not read). The inode lock
   * is taken for every mode here (5.10 skipped it for KEEP_SIZE preallocation).
   */
  *fallocate(inode: Inode, mode: FallocateMode, offset: number, length: number, keepSize: boolean): Op {
    const ps = this.pageSize;
    // the mode mask, before any lock: COLLAPSE_RANGE, INSERT_RANGE, UNSHARE_RANGE and WRITE_ZEROES never
    if (mode !== 'allocate' && mode !== 'zero-range') throw new KernelError('EOPNOTSUPP', `fallocate(${FALLOC_FLAG[mode]}) of '${inode.name}': fuse_file_fallocate() takes only KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE`);
    const zero = mode === 'zero-range';
    if (zero && !kernelAtLeast(this.k.version, 5, 14)) throw new KernelError('EOPNOTSUPP', `fallocate(ZERO_RANGE) of '${inode.name}': fuse_file_fallocate() takes ZERO_RANGE from v5.14 (6b1bdb56b17c)`);
    const blockFaults = inode.cache === null && (!keepSize || zero);
    yield* this.withFaultsBlocked(inode, blockFaults, function* (this: Fuse): Op {
      if (zero && inode.cache) this.writeback(inode);
      const newSize = this.fallocNewSize(inode, offset, length, keepSize);
      this.step(inode, `FUSE_FALLOCATE(${zero ? 'ZERO_RANGE' : '0'}${keepSize ? '|KEEP_SIZE' : ''}, ${offset}, ${length})`);
      yield preempt('FUSE_FALLOCATE');
      const first = Math.ceil(offset / ps);
      const stop = Math.floor((offset + length) / ps);
      if (zero) this.dropHostPages(inode, (i) => i >= first && i < stop);
      if (newSize) {
        inode.size = newSize;
        this.step(inode, 'fuse_write_update_attr');
      }
      if (zero && stop > first) {
        this.step(inode, 'truncate_pagecache_range');
        yield* this.truncatePagecacheRange(inode, first, stop - 1);
      }
    }.bind(this));
  }
}

export interface FuseOptions {}

/**
 * The FUSE (virtio-fs DAX) filesystem plugin. Its probe driver brings up the virtio-fs DAX
 * window, so `probe` + `mount` in a scenario written for pmem give a virtiofs mount with DAX.
 */
export function fuse(_options: FuseOptions = {}): FilesystemPlugin {
  return {
    kind: 'fs',
    name: '@daxlab/fs-fuse',
    fsName: 'fuse',
    coreRange: '>=0.1.0 <1.0.0',
    probeDriver: virtiofs(),
    unsupported: (kernel: KernelDescription) => (kernelAtLeast(kernel.version, 5, 10) ? null : 'virtio-fs DAX (fs/fuse/dax.c: the DAX window, FUSE_SETUPMAPPING) arrived in v5.10'),
    mount: (k, device) => {
      if (device.driver !== 'virtiofs') throw new KernelError('EINVAL', `virtiofs -o dax: ${device.name} is a ${device.driver} device, not a virtio-fs DAX window`);
      return new Fuse(k, device);
    },
  };
}
