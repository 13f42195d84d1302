import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { preempt, waitUntil, type Op } from '../sched.js';
import type { HugetlbFile, PageCacheFile, Vma } from '../types.js';
import type { Vmf } from './fault.js';
import { mappingOf, PG } from './pages.js';
import { initialSeals, sealCheckFallocate, sealCheckPunchHole, sealCheckResize } from './memfd.js';
import { kernelAtLeast } from '../features.js';
import { splitCacheFolioOp } from './split.js';

/** transparent_hugepage/shmem_enabled: the shmem_huge values (SHMEM_HUGE_*) */
export const SHMEM_HUGE_MODES = ['always', 'within_size', 'advise', 'never', 'deny', 'force'] as const;
export type ShmemHugeMode = (typeof SHMEM_HUGE_MODES)[number];
/** the huge= option of a tmpfs mount (shmem_parse_one(): deny and force are shmem_enabled test modes only) */
export const TMPFS_HUGE_OPTIONS = ['always', 'within_size', 'advise', 'never'] as const;
export type TmpfsHuge = (typeof TMPFS_HUGE_OPTIONS)[number];

/**
 * What getFolio() does when a disk file's folio must be read and the read fails: the caller's
 * error (read(2): EIO, a fault: SIGBUS), or 'overwrite': the caller writes the whole page, so
 * nothing is read.
 */
export type ReadError = 'EIO' | 'SIGBUS' | 'overwrite';

/** mm/memory.c fault_around_bytes: rounddown_pow_of_two(65536), the default since it came (v3.15) */
const FAULT_AROUND_BYTES = 65536;

/**
 * The page cache of the files whose pages are ordinary RAM: tmpfs (shmem), hugetlbfs (mm/hugetlb.ts),
 * secretmem (mm/secretmem.ts) and regular files on a non-DAX disk filesystem. Named after what they
 * share, not after shmem, whose code paths (mm/shmem.c, mm/memfd.c) most of it follows. A memfd
 * (`memfd-create`) and the file behind MAP_SHARED|MAP_ANONYMOUS (shmem_zero_setup) are both shmem
 * inodes; their VMAs are file VMAs (vm_file set, vma_is_anonymous() false), so their page-cache
 * folios are never anon: a private mapping COWs them into anon pages, a shared one maps them.
 *
 * Reference counting, as the kernel does it for an order-0 page-cache folio: the cache holds one
 * reference (shmem_add_to_page_cache: folio_ref_add(nr)); a fault's shmem_get_folio_gfp() hands
 * the caller one more, which finish_fault() keeps as the PTE's (folio_add_file_rmap_pte: +1
 * mapcount). So a page mapped by n PTEs has refcount 1 + n and mapcount n until the inode goes.
 *
 * The same page cache models a regular file on a non-DAX disk filesystem (`tmpfile`, ext4 or
 * xfs; file.writeback): filemap_fault() finds or reads its folios into the cache with the same
 * references, and the VMA is a file VMA like shmem's. What differs is dirty tracking: the
 * mapping can write back and ext4_file_vm_ops / xfs_file_vm_ops have ->page_mkwrite, so
 * vma_wants_writenotify() is true for a shared writable mapping (its PTEs stay read-only until
 * a write fault has called ->page_mkwrite: do_shared_fault / wp_page_shared), and from v6.5
 * vma_needs_dirty_tracking() makes GUP refuse FOLL_LONGTERM|FOLL_WRITE pins there (mm/gup.ts).
 *
 * File seals (F_ADD_SEALS) are mm/memfd.ts's; the checks shmem_setattr() and shmem_fallocate()
 * make of them are called from here.
 *
 * Large folios: the PMD-order ones khugepaged and MADV_COLLAPSE build (mm/collapse.ts
 * collapse_file(), `replaceWithLarge`) and the ones write(2) or fallocate() allocates under a huge
 * policy (`allocSized`) or a fault over a hole (`faultLarge`), which the cache keeps under every index
 * of their range (one reference each) and a fault maps by a PMD over pmd_none (`setPmd`). Not
 * modelled: anonymous shmem's per-size mTHP knobs, swap, zeroing parts of pages (a truncation or hole punch
 * inside a large folio zeroes, splits or keeps it: undoPartial()),
 * closing a memfd (its inode lives for the whole run), userfaultfd; for disk files, readahead
 * (a fault reads only its own page) and, for tmpfiles, writeback (their folios stay dirty) and the
 * blocks; a file on a mounted filesystem has blocks, and fsync cleans its folios (cleanForIo).
 */
export class PageCache {
  /** page-cache files by name: memfds, disk tmpfiles, secretmem files and the anonymous files of shared anonymous (and hugetlb) mappings */
  readonly files = new Map<string, PageCacheFile>();

  constructor(private readonly k: Kernel) {}

  /**
   * memfd_create(name, 0) (mm/memfd.c: shmem_file_setup on the internal tmpfs mount), then
   * ftruncate(size) (shmem_setattr: i_size only, no pages); with `fallocate`, fallocate(fd, 0, 0,
   * size) (shmem_fallocate: every page allocated into the cache, SGP_FALLOC, and the caller's
   * reference put back: refcount 1, the cache's). The inode starts with F_SEAL_SEAL unless
   * `sealing` (MFD_ALLOW_SEALING: mm/memfd.ts).
   */
  create(name: string, size: number, fallocate: boolean, hugetlb?: HugetlbFile, sealing = false): PageCacheFile {
    if (this.files.has(name) || this.k.files.has(name)) throw new KernelError('EEXIST', `file '${name}' exists`);
    const file = this.newFile(name, Math.ceil(size / this.k.mmu.basePageSize), true, hugetlb);
    file.seals = initialSeals(sealing);
    if (!hugetlb) file.size = size;
    // MFD_HUGETLB: a hugetlbfs inode, whose page cache holds huge folios (mm/hugetlb.ts)
    if (fallocate && hugetlb) this.k.hugetlb.fallocate(file);
    else if (fallocate) this.fallocate(file, 0, size, true);
    return file;
  }

  /**
   * fallocate(fd, 0 | FALLOC_FL_KEEP_SIZE, offset, length) of a tmpfs file (shmem_fallocate): every
   * page the byte range touches is allocated into the cache with SGP_FALLOC -- not uptodate (not
   * zeroed) until first used -- and the caller's reference put back; without KEEP_SIZE a range past
   * i_size extends it. (The model sets i_size first; pages kept past i_size by KEEP_SIZE are not
   * modelled.)
   */
  fallocate(file: PageCacheFile, offset: number, length: number, keepSize: boolean): void {
    const k = this.k;
    const ps = k.mmu.basePageSize;
    const end = Math.ceil((offset + length) / ps);
    sealCheckFallocate(file, offset + length, ps);
    if (end > file.pages && keepSize) throw KernelError.unsupported('EOPNOTSUPP', `fallocate(FALLOC_FL_KEEP_SIZE) past the end of '${file.name}' (pages beyond i_size) is not modelled`);
    // shmem_fallocate() writes i_size only after the loop: the huge policy's within_size sees the old one
    const isize = file.size ?? file.pages * ps;
    if (end > file.pages) file.pages = end;
    if (!keepSize && file.size !== undefined && offset + length > file.size) file.size = offset + length;
    // shmem_get_folio(inode, index, offset + len, SGP_FALLOC) (write_end from acd7ccb284b8, v6.14)
    // follows the huge policy as a write does (allocSized); the loop goes on at folio_next_index(),
    // and a new large folio is not uptodate as a whole
    for (let index = Math.floor(offset / ps); index < end; ) {
      const fresh = !file.cache.has(index);
      this.allocSized(file, index, isize, offset + length);
      const pfn = this.getFolio(file, index, 'shmem_fallocate', 'falloc');
      const head = k.folios.folio(pfn);
      const first = index - (pfn - head);
      const next = first + k.folios.nr(head);
      if (fresh) for (let i = first; i < next; i++) file.notUptodate.add(i);
      k.folios.put(head, 1, 'shmem_fallocate: folio_put');
      index = next;
    }
  }

  /**
   * open(O_CREAT) + ftruncate(size) of a regular file on a tmpfs the scenario mounted with
   * -o huge=<huge> (split_huge_page_test.c split_file_backed_thp(): mount("tmpfs", ...,
   * "huge=always,size=4m")). A shmem inode like a memfd's (shmem_get_inode(): seals F_SEAL_SEAL),
   * whose huge policy is its own mount's sb->huge rather than shm_mnt's (shmem_enabled). The
   * mount's size= limit (max_blocks) is not modelled.
   */
  createOnTmpfs(name: string, size: number, huge: TmpfsHuge): PageCacheFile {
    if (this.files.has(name) || this.k.files.has(name)) throw new KernelError('EEXIST', `file '${name}' exists`);
    const file: PageCacheFile = { ...this.newFile(name, Math.ceil(size / this.k.mmu.basePageSize), true), mountHuge: huge, size, seals: initialSeals(false) };
    this.files.set(name, file);
    return file;
  }

  /**
   * A file on a non-DAX ext4 or xfs (gup_longterm.c run_with_local_tmpfile: mkstemp() + unlink(),
   * ftruncate(size)): an empty page cache. fallocate() on a disk filesystem (ext4_fallocate,
   * xfs_file_fallocate) only reserves blocks as unwritten extents and adds no folio to the cache,
   * so `fallocate` is not an option here: the first fault reads a zeroed folio in (filemap_fault).
   */
  createOnDisk(name: string, size: number, fs: 'ext4' | 'xfs'): PageCacheFile {
    if (this.files.has(name) || this.k.files.has(name)) throw new KernelError('EEXIST', `file '${name}' exists`);
    return this.newFile(name, Math.ceil(size / this.k.mmu.basePageSize), true, undefined, fs);
  }

  /**
   * The page cache of a regular file without S_DAX on a DAX-capable ext4 / xfs / FUSE mount
   * (fs/daxmode.ts): like createOnDisk, but its folios are read by `readPage` (the file's
   * blocks, null when the block device fails the read; FUSE_READ from the server). The
   * name (`file@device`) is not one a scenario can give: the file keeps its filesystem's
   * orderings for truncate and punch hole.
   */
  createForInode(name: string, pages: number, fs: 'ext4' | 'xfs' | 'fuse', readPage: (index: number) => string | null): PageCacheFile {
    const file = this.newFile(name, pages, true, undefined, fs);
    const withRead: PageCacheFile = { ...file, readPage };
    this.files.set(name, withRead);
    return withRead;
  }

  /**
   * Writeback of a disk file's folio (write_cache_pages() -> folio_clear_dirty_for_io()): PG_dirty
   * is cleared and folio_mkclean() write-protects and cleans every PTE mapping it, so the next write
   * through a shared mapping faults again (wp_page_shared() -> ->page_mkwrite dirties it).
   */
  cleanForIo(pfn: number): void {
    const k = this.k;
    const head = k.folios.folio(pfn);
    k.folios.setFlag(head, PG.dirty, false);
    for (const mm of k.processes.values()) {
      if (!mm.alive) continue;
      for (const [vpn, pte] of mm.ptes) {
        if (pte.pfn !== pfn || pte.marker || pte.swap || pte.migration || (!pte.write && !pte.dirty)) continue;
        pte.write = false;
        pte.dirty = false;
        k.emit('pte.set', { mm: mm.name, vaddr: vpn, pfn, level: 'pte', write: false, devmap: false, special: false });
      }
    }
  }

  /**
   * evict() -> truncate_inode_pages_final() of a disk file's inode: every folio leaves the cache
   * (the caller wrote the data back and checked that nothing maps or pins them), and the file
   * leaves the registry.
   */
  evict(file: PageCacheFile): void {
    this.dropCache(file, 0);
    this.files.delete(file.name);
  }

  /**
   * shmem_zero_setup() (do_mmap of MAP_SHARED|MAP_ANONYMOUS): a file "dev/zero" of the mapping's
   * length on the internal mount (shmem_kernel_file_setup), held only by the VMAs that map it.
   */
  zeroSetup(as: string, pages: number): PageCacheFile {
    let name = `dev/zero(${as})`;
    for (let n = 2; this.files.has(name); n++) name = `dev/zero(${as})#${n}`;
    return this.newFile(name, pages, false);
  }

  /** A new file in the registry; `hugetlb` makes it a hugetlbfs inode of that page size (mm/hugetlb.ts), `writeback` a file on that disk filesystem. */
  newFile(name: string, pages: number, held: boolean, hugetlb?: HugetlbFile, writeback?: 'ext4' | 'xfs' | 'fuse'): PageCacheFile {
    const file: PageCacheFile = { name, pages, mapping: { id: this.k.newAddressSpaceId(), owner: name, entries: new Map(), mmaps: new Set() }, cache: new Map(), notUptodate: new Set(), held, ...(hugetlb ? { hugetlb } : {}), ...(writeback ? { writeback } : {}) };
    this.files.set(name, file);
    return file;
  }

  /**
   * vma_needs_dirty_tracking() (mm/mmap.c, v6.5): a shared writable mapping of a file that can
   * write back or whose vm_ops have ->page_mkwrite — here a disk file's; tmpfs has neither.
   */
  needsDirtyTracking(vma: Vma): boolean {
    return vma.flags.shared && vma.flags.write && vma.cacheFile?.writeback !== undefined;
  }

  /**
   * The disk file whose page cache holds this folio, if any: gup_fast_folio_allowed() looks at
   * folio->mapping only (no VMA on the fast path) and lets shmem through.
   */
  diskFileOfFolio(head: number): PageCacheFile | null {
    const s = this.k.pages.slot(head);
    const mapping = this.k.pages.mapping[s];
    for (const file of this.files.values()) if (file.writeback && mappingOf(file.mapping.id) === mapping) return file;
    return null;
  }

  /** The memfd named `name`, or null when the name is not one (the files of shared anonymous mappings have no name a scenario can give). */
  named(name: string): PageCacheFile | null {
    const file = this.files.get(name);
    return file?.held ? file : null;
  }

  /**
   * shmem_get_folio_gfp(SGP_CACHE): the cached folio, or a new zeroed one added to the cache
   * (shmem_alloc_and_add_folio); the caller gets a reference. An index at or past i_size is
   * -EINVAL ("sgp <= SGP_CACHE && index >= i_size"), which a fault turns into SIGBUS (vmf_error).
   * SGP_CACHE zeroes a folio that fallocate left not uptodate and marks it uptodate; SGP_FALLOC
   * leaves a new one not uptodate.
   *
   * A disk file's folio that is not uptodate (new, or left so by a failed read) is read in
   * (readFolio()) unless the caller overwrites the whole page (`readError` 'overwrite': a
   * page-sized write's ->write_begin reads no block it covers whole, block_write_begin()). A read
   * that fails leaves the folio in the cache not uptodate and is the caller's error: -EIO from
   * read(2) (filemap_read()), VM_FAULT_SIGBUS from a fault (filemap_fault()).
   */
  getFolio(file: PageCacheFile, index: number, why: string, sgp: 'cache' | 'falloc' = 'cache', readError: ReadError = 'EIO'): number {
    if (index >= file.pages) throw new KernelError('SIGBUS', `page ${index} of file '${file.name}' is past its end (${file.pages} pages): shmem_get_folio_gfp -EINVAL`);
    let pfn = file.cache.get(index);
    if (pfn === undefined) {
      const got = this.k.ram.allocFile(mappingOf(file.mapping.id), index, this.k.numa.fileNode(file, index));
      if (got === null) throw new KernelError('ENOMEM', `out of memory allocating page ${index} of file '${file.name}'`);
      pfn = got;
      file.cache.set(index, pfn);
      if (sgp === 'falloc' || file.readPage) file.notUptodate.add(index);
      // the filesystem whose page cache it is: tmpfs (shmem), hugetlbfs, secretmem, or the disk filesystem
      this.k.emit('page.mapping', { pfn, mapping: `${file.writeback ?? (file.hugetlb ? 'hugetlbfs' : file.secretmem ? 'secretmem' : 'shmem')}:${file.name}`, index, share: 0 });
    } else if (sgp === 'cache' && !file.readPage && file.notUptodate.has(index)) {
      // SGP_CACHE zeroes and marks uptodate the whole folio fallocate left (folio_test_uptodate() is per folio)
      const head = this.k.folios.folio(pfn);
      const first = index - (pfn - head);
      for (let i = first; i < first + this.k.folios.nr(head); i++) file.notUptodate.delete(i);
    }
    if (file.readPage && file.notUptodate.has(index) && readError !== 'overwrite') this.readFolio(file, index, pfn, readError);
    // the reference is the folio's: a PMD-order folio collapse_file() put in the cache holds every index of its range
    this.k.folios.get(this.k.folios.folio(pfn), 1, `${why}: shmem_get_folio`);
    return pfn;
  }

  /**
   * filemap_read_folio() -> ->read_folio of a disk file's folio (ext4_read_folio /
   * iomap_read_folio: a bio to the file's block, none for a hole or an unwritten extent). The
   * block device fails a bio over a bad sector (pmem_do_read(): is_bad_pmem(), BLK_STS_IOERR) and
   * the completion leaves the folio not uptodate (folio_end_read(folio, false)): the folio stays
   * in the cache, and the next lookup reads it again.
   */
  private readFolio(file: PageCacheFile, index: number, pfn: number, readError: 'EIO' | 'SIGBUS'): void {
    const data = file.readPage!(index);
    if (data === null) {
      const where = readError === 'SIGBUS' ? 'filemap_fault: VM_FAULT_SIGBUS' : 'filemap_read: -EIO';
      throw new KernelError(readError, `page ${index} of '${file.name}': the read of its block failed (pmem_do_read: is_bad_pmem, BLK_STS_IOERR), the folio is not uptodate (${where})`);
    }
    if (data) this.k.pages.data.set(pfn, data);
    else this.k.pages.data.delete(pfn);
    file.notUptodate.delete(index);
  }

  /**
   * shmem_get_folio_gfp()'s lookup (getFolio()) while a split of the folio caching `index` is in
   * flight (file.splitting): filemap_get_entry() loads the entry (xas_load()), folio_try_get()s it
   * -- a frozen folio fails and the lookup starts again --, and drops it if the entry changed
   * meanwhile (xas_reload()); then folio_lock() sleeps until the split unlocks the folio, and a
   * folio that left the mapping meanwhile ("Has the folio been truncated or swapped out?") starts
   * it again. The page returned is folio_file_page(folio, index), the folio's page at index's
   * offset within it: nothing checks the folio's own index, so a misplaced entry
   * (`folio-split-misplaced-entries`) hands out another index's page. Each step reads RCU-protected
   * state without the xarray lock, so another thread may run between them. With no split in flight
   * the three reads see one entry, and a split that starts later freezes the folio first (the
   * reader's reference makes its freeze fail): getFolio() as one step.
   */
  private *lookupFolio(file: PageCacheFile, index: number, why: string): Op<number> {
    const k = this.k;
    for (;;) {
      const head = file.splitting?.entries.get(index);
      if (head === undefined) return this.getFolio(file, index, why, 'cache', 'SIGBUS');
      yield preempt('filemap_get_entry: xas_load', () => head);
      const frozen = (): boolean => file.splitting?.frozen.has(head) === true;
      if (frozen()) {
        // folio_try_get() fails: "goto repeat" reloads the entry, the same one until the split moves on
        yield* waitUntil('filemap_get_entry: folio_try_get of a frozen folio', () => !frozen() || this.entryAt(file, index) !== head);
        continue;
      }
      k.folios.get(head, 1, `${why}: filemap_get_entry: folio_try_get`);
      yield preempt('filemap_get_entry: folio_try_get', () => head);
      if (this.entryAt(file, index) !== head) {
        k.folios.put(head, 1, 'filemap_get_entry: xas_reload() names another folio');
        continue;
      }
      yield* waitUntil('shmem_get_folio_gfp: folio_lock', () => file.splitting?.locked.has(head) !== true);
      const slot = k.pages.slot(head);
      if (k.pages.mapping[slot] !== mappingOf(file.mapping.id)) {
        k.folios.put(head, 1, 'shmem_get_folio_gfp: the folio was truncated');
        continue;
      }
      return head + (index & (k.folios.nr(head) - 1));
    }
  }

  /** The folio (first pfn) the xarray names at `index`: an in-flight split's entry, else the cache's. */
  private entryAt(file: PageCacheFile, index: number): number | undefined {
    const inFlight = file.splitting?.entries.get(index);
    if (inFlight !== undefined) return inFlight;
    const pfn = file.cache.get(index);
    return pfn === undefined ? undefined : this.k.folios.folio(pfn);
  }

  /**
   * A read fault (do_read_fault) or a shared write fault (do_shared_fault) on a shmem VMA:
   * __do_fault() -> shmem_fault() -> shmem_get_folio_gfp(SGP_CACHE), then finish_fault() maps the
   * folio with the VMA's vm_page_prot — writable in a shared writable mapping that wants no write
   * notification (shmem has no ->page_mkwrite and no writeback; soft-dirty tracking aside:
   * vma_wants_writenotify()), read-only in a private one (COW) — and a write fault makes the
   * entry writable and dirty (maybe_mkwrite(pte_mkdirty())). The fault's reference is the PTE's.
   * A disk file's fault is filemap_fault() with the same references; its shared write fault calls
   * ->page_mkwrite (ext4_page_mkwrite / xfs_filemap_page_mkwrite: the folio is dirtied) before
   * finish_fault(), and its read faults map read-only (write-notify).
   * A private write fault is do_cow_fault() instead (Faults.cowFault, with `cowData`).
   */
  *fault(vmf: Vmf): Op {
    const k = this.k;
    const { vma, vpn } = vmf;
    const file = this.fileOf(vma);
    // secretmem_vm_ops: its own ->fault, no ->map_pages (mm/secretmem.ts)
    if (file.secretmem) return yield* k.secretmem.fault(vmf);
    // do_read_fault(): ->map_pages() first, ->fault() only if that did not map the address; not in
    // a VMA registered for MINOR (v5.14) or WP (v5.19) faults (uffd_disable_fault_around())
    if (!vmf.write && !k.uffd.disablesFaultAround(vma) && this.faultAround(vmf, file)) return;
    this.faultLarge(vma, file, vmf.pgoff);
    const pfn = yield* this.lookupFolio(file, vmf.pgoff, vmf.write ? 'do_shared_fault' : 'do_read_fault');
    // do_shared_fault(): ->page_mkwrite / fault_dirty_shared_page() mark the folio dirty
    if (vmf.write && file.writeback) k.folios.setFlag(k.folios.folio(pfn), PG.dirty, true);
    // finish_fault(): over pmd_none, a PMD-mappable folio is mapped whole (do_set_pmd); the fault's reference is the PMD's
    if (this.setPmd(vma, vpn, pfn, vmf.write)) return;
    k.folios.addMap(k.folios.folio(pfn));
    k.vm.install(vma.mm, vpn, k.faults.pte(pfn, 'pte', { write: vmf.write || this.sharedWritable(vma), dirty: vmf.write }));
    yield* [];
  }

  /**
   * do_set_pmd() (mm/memory.c) for the folio caching `pfn`, faulted at vpn: a PMD-order folio
   * whose range the PMD-aligned span around vpn maps (thp_vma_suitable_order(): the span inside
   * the VMA, vm_start - vm_pgoff PMD-aligned), over pmd_none (no PTE table there), is mapped
   * whole: mk_huge_pmd() with vm_page_prot (writable in a shared writable shmem mapping), made
   * dirty and writable by a write fault (maybe_pmd_mkwrite(pmd_mkdirty())), folio_add_file_rmap_pmd().
   * The caller's folio reference becomes the PMD's. From 2b0f922323cc "mm: don't install PMD mappings
   * when THPs are disabled by the hw/process/vma" (v6.12 [M]) a VMA with VM_NOHUGEPAGE, or an MMU without
   * PMD leaves, gets VM_FAULT_FALLBACK: PTEs (vma_thp_disabled(): PR_SET_THP_DISABLE too). False: fall back to a PTE.
   */
  setPmd(vma: Vma, vpn: number, pfn: number, write: boolean): boolean {
    const k = this.k;
    const n = k.vm.pmdPages;
    const head = k.folios.folio(pfn);
    if (k.folios.nr(head) !== n) return false;
    if (kernelAtLeast(k.version, 6, 12) && (k.thp.disabled(vma, false) || k.mmu.transparentHugepage === false)) return false;
    const base = vpn - (vpn % n);
    if (base < vma.start || base + n > vma.start + vma.pages || (vma.start - vma.pgoff) % n !== 0) return false;
    if (k.vm.lookup(vma.mm, base)?.pte.level === 'pmd' || k.vm.pteTableAt(vma.mm, base)) return false;
    k.folios.addMap(head);
    k.vm.install(vma.mm, base, k.faults.pte(head, 'pmd', { write: write || this.sharedWritable(vma), dirty: write }));
    return true;
  }

  /**
   * /sys/kernel/mm/transparent_hugepage/shmem_enabled (mm/shmem.c, v4.8): the huge= policy of the
   * internal tmpfs mount that memfds and shared anonymous mappings live on (shmem_enabled_store()
   * copies always / within_size / advise / never to shm_mnt's sb->huge), plus the global test
   * modes deny and force. Default never (SHMEM_HUGE_NEVER).
   */
  shmemEnabled: ShmemHugeMode = 'never';

  /**
   * shmem_huge_enabled() / shmem_is_huge() (v6.2-v6.9; shmem_huge_global_enabled() from v6.11 [M])
   * for the PMD range at `index` of a shmem file mapped by vma: never with VM_NOHUGEPAGE or
   * PR_SET_THP_DISABLE (v5.4 shmem_fault()'s SGP_NOHUGE, vma_thp_disabled() from v6.12 [M]); always
   * when forced (MADV_COLLAPSE: shmem_huge_force) or shmem_enabled is force; never under deny;
   * else the mount's policy, SHMEM_SB(inode->i_sb)->huge -- a scenario's tmpfs mount's huge=, or
   * for shm_mnt what shmem_enabled_store() copied there (only values above SHMEM_HUGE_DENY) --:
   * always, within_size (the PMD range ends inside i_size: `isizePages`), advise (VM_HUGEPAGE).
   */
  shmemHuge(vma: Vma | null, file: PageCacheFile, index: number, force: boolean, isizePages = file.pages): boolean {
    if (vma && this.k.thp.disabled(vma, force)) return false;
    const global = this.shmemEnabled;
    if (force || global === 'force') return true;
    if (global === 'deny') return false;
    switch (file.mountHuge ?? global) {
      case 'always':
        return true;
      case 'within_size':
        if (isizePages >= Math.ceil((index + 1) / this.k.vm.pmdPages) * this.k.vm.pmdPages) return true;
        return vma?.flags.hugepage === true;
      case 'advise':
        return vma?.flags.hugepage === true;
      default:
        return false;
    }
  }

  /**
   * shmem_write_begin() -> shmem_get_folio(SGP_WRITE) of page `index` for generic_perform_write():
   * the cached folio, or over a hole a new one, as large as the huge policy allows
   * (shmem_alloc_and_add_folio(): the order tried first whose naturally aligned range has nothing
   * cached -- xa_find() in shmem_suitable_orders(), -E2BIG / a failed allocation falls back to the
   * next order, then to a small folio). `isize`: i_size in bytes before this write's ->write_end;
   * `writeEnd`: the byte where the write ends. The caller gets a reference.
   */
  writeBegin(file: PageCacheFile, index: number, isize: number, writeEnd: number): number {
    this.allocSized(file, index, isize, writeEnd);
    return this.getFolio(file, index, 'shmem_write_begin', 'cache', 'overwrite');
  }

  /**
   * shmem_get_folio(SGP_WRITE / SGP_FALLOC) over a hole at `index`: the large folio the huge
   * policy and the write size allow (writeOrders(), first order whose allocation succeeds); nothing
   * when the index is cached or no large order applies (the caller's getFolio() adds a small one).
   */
  private allocSized(file: PageCacheFile, index: number, isize: number, writeEnd: number): void {
    if (file.cache.has(index) || file.writeback || file.hugetlb || file.secretmem) return;
    for (const order of this.writeOrders(file, index, isize, writeEnd)) if (this.addLarge(file, index - (index % (1 << order)), order)) return;
  }

  /**
   * The large orders a write's shmem_get_folio() tries at `index`, highest first, whose aligned
   * range holds no cached page. No VMA, so advise never allows one (vm_flags 0). Per release:
   * - up to v6.13: the PMD order when shmem_is_huge() / shmem_huge_global_enabled() says so
   *   (within_size against i_size before the write);
   * - acd7ccb284b8 "mm: shmem: add large folio support for tmpfs" (v6.14 [M]): huge=always /
   *   within_size allow any order the write's size hints at (shmem_mapping_size_orders(): the
   *   order of write_end - index's offset, lowered to the index's alignment), within_size only
   *   those ending inside max(write_end, i_size) (shmem_get_orders_within_size());
   * - "mm: shmem: fix the strategy for the tmpfs 'huge=' options" (Baolin Wang, 2025: v6.18 [M]):
   *   every order up to the PMD one, PMD first (THP_ORDERS_ALL_FILE_DEFAULT), whatever the size.
   * shmem_enabled force: the PMD order (maybe_pmd_order); deny: none. From "mm/shmem: disable
   * PMD-sized page cache if needed" (Gavin Shan, v6.10 [M]) no order passes MAX_PAGECACHE_ORDER,
   * min(HPAGE_PMD_ORDER, MAX_XAS_ORDER = 11): a PMD order above it (arm64 64 KiB pages: 13) is
   * never allocated (maybe_pmd_order 0).
   */
  private writeOrders(file: PageCacheFile, index: number, isize: number, writeEnd: number): number[] {
    const k = this.k;
    if (k.mmu.transparentHugepage === false || this.shmemEnabled === 'deny') return [];
    const ps = k.mmu.basePageSize;
    const pmdOrder = Math.log2(k.vm.pmdPages);
    const maxOrder = kernelAtLeast(k.version, 6, 10) ? Math.min(pmdOrder, 11) : pmdOrder;
    let orders: number[];
    if (this.shmemEnabled === 'force') orders = [pmdOrder];
    else if (!kernelAtLeast(k.version, 6, 14)) orders = this.shmemHuge(null, file, index, false, Math.ceil(isize / ps)) ? [pmdOrder] : [];
    else {
      const mode = file.mountHuge ?? this.shmemEnabled;
      let top = pmdOrder;
      if (!kernelAtLeast(k.version, 6, 18)) {
        // shmem_mapping_size_orders(): filemap_get_order(size) is ilog2(size) - PAGE_SHIFT (0 up to a page)
        const size = writeEnd - index * ps;
        top = size > ps ? Math.floor(Math.log2(size)) - Math.log2(ps) : 0;
        // "If we're not aligned, allocate a smaller folio": __ffs(index)
        if (top > 0 && index % (1 << top) !== 0) top = Math.log2(index & -index);
        top = Math.min(top, pmdOrder);
      }
      orders = [];
      for (let o = top; o >= 1; o--) orders.push(o);
      if (mode === 'within_size') {
        const isizePages = Math.ceil(Math.max(writeEnd, isize) / ps);
        const fits = orders.findIndex((o) => isizePages >= Math.ceil((index + 1) / (1 << o)) * (1 << o));
        orders = fits < 0 ? [] : orders.slice(fits);
      } else if (mode !== 'always') orders = [];
    }
    return orders.filter((o) => o <= maxOrder).filter((o) => {
      const start = index - (index % (1 << o));
      for (let i = start; i < start + (1 << o); i++) if (file.cache.has(i)) return false;
      return true;
    });
  }

  /**
   * shmem_alloc_folio(order) + shmem_add_to_page_cache(): a new folio of 2^order pages at the
   * aligned index `start`, one multi-index entry holding a reference per page (folio_ref_add(nr)),
   * zero-filled and uptodate once written (shmem_write_end() zeroes what the copy did not fill).
   * False when the allocation fails.
   */
  private addLarge(file: PageCacheFile, start: number, order: number): boolean {
    const k = this.k;
    const head = k.ram.allocFileLarge(mappingOf(file.mapping.id), start, order, k.numa.fileNode(file, start));
    if (head === null) return false;
    const n = 1 << order;
    k.folios.get(head, n - 1, 'shmem_add_to_page_cache: folio_ref_add(folio, nr)');
    for (let i = 0; i < n; i++) file.cache.set(start + i, head + i);
    k.emit('page.mapping', { pfn: head, mapping: `shmem:${file.name}`, index: start, share: 0 });
    return true;
  }

  /**
   * shmem_fault() -> shmem_get_folio_gfp(SGP_CACHE) over a hole: a PMD-order folio when the huge
   * policy allows one for this VMA (shmemHuge(): VM_NOHUGEPAGE, deny / force, the mount's huge=,
   * within_size, advise with VM_HUGEPAGE; a fault has no write size, so only the PMD order:
   * maybe_pmd_order) and nothing is cached in its aligned range (xa_find(): -E2BIG, order 0).
   * No order above MAX_PAGECACHE_ORDER (11) from v6.10 [M]. The VMA must hold the whole aligned
   * PMD range (thp_vma_suitable_orders() in shmem_suitable_orders()) only from e7a2ab7b3bb5 "mm:
   * shmem: add mTHP support for anonymous shmem" (v6.11 [M]) for anonymous shmem and from
   * acd7ccb284b8 (v6.14 [M]) for tmpfs files and memfds; before, the folio is allocated and a
   * fault outside a suitable range maps its page by a PTE. The caller's getFolio() then finds it
   * and finish_fault() maps it (setPmd(): by a PMD where it can). Anonymous shmem's per-size
   * hugepages-<size>kB/shmem_enabled knobs are not modelled: the PMD size's default, inherit,
   * follows shmem_enabled as here.
   */
  private faultLarge(vma: Vma, file: PageCacheFile, index: number): void {
    const k = this.k;
    const n = k.vm.pmdPages;
    const order = Math.log2(n);
    if (file.writeback || file.hugetlb || file.secretmem || file.cache.has(index) || k.mmu.transparentHugepage === false) return;
    if (!this.shmemHuge(vma, file, index, false) || (kernelAtLeast(k.version, 6, 10) && order > 11)) return;
    const base = index - (index % n);
    const vmaChecked = file.held ? kernelAtLeast(k.version, 6, 14) : kernelAtLeast(k.version, 6, 11);
    const vbase = vma.start + (base - vma.pgoff);
    if (vmaChecked && (vbase < vma.start || vbase + n > vma.start + vma.pages || (vma.start - vma.pgoff) % n !== 0)) return;
    for (let i = base; i < base + n; i++) if (file.cache.has(i)) return;
    this.addLarge(file, base, order);
  }

  /**
   * collapse_file()'s end (mm/khugepaged.c): the PMD-order folio `head` takes the place of the
   * order-0 folios of [start, start + HPAGE_PMD_NR) in i_pages (one multi-index entry,
   * xas_store()), with HPAGE_PMD_NR references (folio_ref_add(new_folio, HPAGE_PMD_NR - 1) on top
   * of the allocation's), uptodate; each old folio leaves the cache (folio->mapping = NULL, its
   * cache reference put). The caller has unmapped the old folios and copied their data.
   */
  replaceWithLarge(file: PageCacheFile, start: number, head: number): void {
    const k = this.k;
    const n = k.folios.nr(head);
    k.folios.get(head, n - 1, 'collapse_file: folio_ref_add(new_folio, HPAGE_PMD_NR - 1)');
    for (let index = start; index < start + n; index++) {
      const old = file.cache.get(index);
      file.cache.set(index, head + (index - start));
      file.notUptodate.delete(index);
      if (old === undefined) continue;
      const s = k.pages.slot(old);
      k.pages.mapping[s] = 0;
      k.emit('page.mapping', { pfn: old, mapping: 'NULL', index: 0, share: 0 });
      k.folios.put(k.folios.folio(old), 1, 'collapse_file: folio_put_refs of the old folio');
    }
    k.emit('page.mapping', { pfn: head, mapping: `${file.writeback ?? 'shmem'}:${file.name}`, index: start, share: 0 });
  }

  /** vm_page_prot is writable: a shared writable mapping that wants no write notification. */
  private sharedWritable(vma: Vma): boolean {
    return vma.flags.shared && vma.flags.write && !this.k.mprotector.wantsWritenotify(vma);
  }

  /**
   * do_fault_around() -> filemap_map_pages() (shmem_vm_ops and shmem_anon_vm_ops have
   * ->map_pages): a read fault also maps the cached, uptodate folios of the fault_around_bytes
   * (64 KiB) window around the address — aligned to it, inside the VMA, the PTE table and i_size —
   * whose PTEs are empty, each with a reference and a file rmap, clean, with vm_page_prot's write
   * bit. With 64 KiB pages the window is one page and nothing is done. True when the faulting
   * address itself was mapped (VM_FAULT_NOPAGE: no ->fault).
   */
  private faultAround(vmf: Vmf, file: PageCacheFile): boolean {
    const k = this.k;
    const nr = Math.floor(FAULT_AROUND_BYTES / k.mmu.basePageSize);
    if (nr <= 1) return false;
    const { vma, vpn } = vmf;
    const ptrs = k.vm.pmdPages; // PTRS_PER_PTE
    const pteOff = vpn % ptrs;
    const vmaOff = vpn - vma.start;
    const fromPte = Math.max(pteOff - (pteOff % nr), pteOff - Math.min(pteOff, vmaOff));
    const toPte = Math.min(fromPte + nr, ptrs, pteOff + vma.pages - vmaOff) - 1;
    // filemap_map_pages() -> filemap_map_pmd(): the first folio of the window, if PMD-mappable over pmd_none, is mapped by do_set_pmd()
    // next_uptodate_folio() passes over a folio a split has frozen (folio_try_get()) or locked (folio_trylock())
    const splitting = (index: number): boolean => file.splitting?.entries.has(index) === true;
    const first = file.cache.get(vmf.pgoff - pteOff + fromPte);
    if (first !== undefined && !file.notUptodate.has(vmf.pgoff - pteOff + fromPte) && !splitting(vmf.pgoff - pteOff + fromPte)) {
      const head = k.folios.folio(first);
      k.folios.get(head, 1, 'filemap_map_pages: next_uptodate_folio');
      if (this.setPmd(vma, vpn, first + (pteOff - fromPte), false)) return true;
      k.folios.put(head, 1, 'filemap_map_pmd: no PMD');
    }
    let mapped = false;
    for (let pte = fromPte; pte <= toPte; pte++) {
      const at = vpn - pteOff + pte;
      const index = vmf.pgoff - pteOff + pte;
      if (index >= file.pages) break;
      const pfn = file.cache.get(index);
      if (pfn === undefined || file.notUptodate.has(index) || splitting(index) || k.vm.lookup(vma.mm, at)) continue;
      k.folios.get(k.folios.folio(pfn), 1, 'filemap_map_pages');
      k.folios.addMap(k.folios.folio(pfn));
      k.vm.install(vma.mm, at, k.faults.pte(pfn, 'pte', { write: this.sharedWritable(vma) }));
      if (at === vpn) mapped = true;
    }
    return mapped;
  }

  /**
   * do_cow_fault()'s source page: __do_fault() gets the page-cache folio (allocating it on a
   * hole, so the cache keeps it), the contents are copied, and the fault's reference is put.
   */
  cowData(vmf: Vmf): string {
    // shmem_fault()'s shmem_get_folio_gfp() follows the huge policy for a private VMA too
    this.faultLarge(vmf.vma, this.fileOf(vmf.vma), vmf.pgoff);
    const pfn = this.getFolio(this.fileOf(vmf.vma), vmf.pgoff, 'do_cow_fault', 'cache', 'SIGBUS');
    const data = this.k.pages.data.get(pfn) ?? '';
    this.k.folios.put(this.k.folios.folio(pfn), 1, 'do_cow_fault: folio_put of the page-cache folio');
    return data;
  }

  /**
   * ftruncate() of a memfd (shmem_setattr): shrinking unmaps the pages past the new end from
   * every mapping, private COW copies included (unmap_mapping_range(even_cows = 1)), then
   * shmem_truncate_range(newsize, -1) drops them from the cache -- a large folio the new end
   * lands inside is split or zeroed (undoPartial()); growing only sets i_size.
   */
  *truncate(file: PageCacheFile, size: number): Op {
    const ps = this.k.mmu.basePageSize;
    const pages = Math.ceil(size / ps);
    sealCheckResize(file, size, ps);
    if (size < (file.size ?? file.pages * ps)) {
      if (pages < file.pages) yield* this.k.vm.unmapMappingPages(file.mapping, pages, Infinity);
      this.dropCache(file, (yield* this.undoPartial(file, size, Infinity))[0]);
    }
    file.pages = pages;
    if (file.size !== undefined) file.size = size;
  }

  /**
   * fallocate(FALLOC_FL_PUNCH_HOLE) of a memfd (shmem_fallocate): the pages wholly inside the range
   * are unmapped from every mapping but not from private COW copies — unmap_mapping_range() with
   * even_cows = 0, so zap_present_ptes() skips anon folios (should_zap_folio(): "hole-punching
   * leaves COWed pages") — then shmem_truncate_range(offset, offset + len - 1) drops them from the
   * cache, a large folio the range covers in part split or zeroed (undoPartial()), even for a hole
   * inside one page. The kernel zeroes the parts of pages at the ends; the model leaves them as
   * they are (as for DAX punch hole).
   */
  *punchHole(file: PageCacheFile, offset: number, length: number): Op {
    const k = this.k;
    const ps = k.mmu.basePageSize;
    sealCheckPunchHole(file);
    if (length <= 0) return;
    const first = Math.ceil(offset / ps);
    const end = Math.min(Math.floor((offset + length) / ps), file.pages);
    for (const vma of [...file.mapping.mmaps]) {
      const from = Math.max(vma.pgoff, first);
      const to = Math.min(vma.pgoff + vma.pages, end);
      for (let index = from; index < to; index++) {
        const vpn = vma.start + (index - vma.pgoff);
        const leaf = k.vm.lookup(vma.mm, vpn);
        // a swapped-out anon page is a COW copy too: zap_pte_range() skips it (!should_zap_cows)
        if (!leaf || leaf.pte.devicePrivate || leaf.pte.swap) continue;
        const page = k.vm.normalPage(leaf.pte, k.vm.pfnAt(leaf, vpn));
        if (page !== null && k.folios.isAnon(k.folios.folio(page))) continue;
        // even_cows = 0: a UFFDIO_POISON marker stays too (should_zap_cows() false; mm/vm.ts keptMarker)
        yield* k.vm.zap(vma, vpn, vpn + 1, 'unmap_mapping_range', false, false);
      }
    }
    const [start, stop] = yield* this.undoPartial(file, offset, offset + length);
    this.dropCache(file, start, stop);
  }

  /**
   * shmem_undo_range()'s partial folios for the bytes [lstart, lend) (lend Infinity: to the end):
   * the large shmem folio holding lstart and the one holding the range's last byte, when the range
   * covers it only in part, each through truncate_inode_partial_folio() (partialFolio()). Returns
   * the pages [start, end) left for the whole-folio passes (dropCache()): start moves past a folio
   * that stayed whole (folio_next_index()), and end back to its first index when the range ends
   * inside it. Disk files keep dropCache()'s refusal (their split and clean-folio rules differ).
   */
  private *undoPartial(file: PageCacheFile, lstart: number, lend: number): Op<[number, number]> {
    const k = this.k;
    const ps = k.mmu.basePageSize;
    let start = Math.ceil(lstart / ps);
    let end = lend === Infinity ? Infinity : Math.floor(lend / ps);
    if (file.writeback || file.hugetlb || file.secretmem) return [start, end];
    const large = (index: number): { head: number; first: number; nr: number } | null => {
      const pfn = file.cache.get(index);
      if (pfn === undefined) return null;
      const head = k.folios.folio(pfn);
      const nr = k.folios.nr(head);
      return nr > 1 ? { head, first: index - (pfn - head), nr } : null;
    };
    // shmem_get_partial_folio(lstart >> PAGE_SHIFT); same_folio: the range also ends inside it
    const a = large(Math.floor(lstart / ps));
    const sameFolio = a !== null && lend <= (a.first + a.nr) * ps;
    if (a && !(yield* this.partialFolio(file, a.head, a.first, lstart, lend))) {
      start = Math.max(start, a.first + a.nr);
      if (sameFolio) end = Math.min(end, a.first);
    }
    if (!sameFolio && lend !== Infinity) {
      const b = large(Math.ceil(lend / ps) - 1);
      if (b && !(yield* this.partialFolio(file, b.head, b.first, lstart, lend))) end = Math.min(end, b.first);
    }
    return [start, end];
  }

  /**
   * truncate_inode_partial_folio() (mm/truncate.c, b9a8a4195c7d v5.17; shmem_punch_compound()
   * before, from 71725ed10c40 v5.7) on the shmem folio `head` caching [first, first + nr), for
   * the bytes [lstart, lend): a folio wholly inside is left to the whole-folio pass (true).
   * Otherwise folio_zero_range() zeroes the part in the range (the model: the pages wholly inside;
   * parts of pages are not modelled) and the folio is split for the lookup's reference holder
   * (splitCacheFolio(): -EAGAIN while pinned or GUP-held):
   * - v5.7-v6.14: split_huge_page() / split_folio(), uniform to order 0;
   * - 7460b470a131 "mm/truncate: use folio_split() in truncate operation" (v6.15): try_folio_split()
   *   at the range's first page (PAGE_ALIGN_DOWN(offset)), non-uniform (that page order 0, the rest
   *   in buddy halves), then, when the range ends inside the folio (offset + length < size), the
   *   piece holding the page after it the same way (its result ignored), so every piece lies
   *   wholly in or out of the range;
   * - before v5.7 shmem_undo_range() only zeroed the pages (clear_highpage()) and kept the THP.
   * A failed split returns false (shmem_undo_range() marked the folio dirty first, so it is not
   * dropped as a clean one would be): the folio stays whole in the cache, zeroed in the range.
   * fa04f5b60fda (v6.18) unmaps a folio whose split failed, except shmem's ("intentionally mapped
   * with PMDs across i_size"): nothing more here.
   */
  private *partialFolio(file: PageCacheFile, head: number, first: number, lstart: number, lend: number): Op<boolean> {
    const k = this.k;
    const ps = k.mmu.basePageSize;
    const size = k.folios.nr(head) * ps;
    const pos = first * ps;
    const offset = Math.max(lstart - pos, 0);
    const length = Math.min(lend, pos + size) - pos - offset;
    if (length === size) return true;
    for (let i = Math.ceil(offset / ps); i < Math.floor((offset + length) / ps); i++) k.pages.data.delete(head + i);
    if (!kernelAtLeast(k.version, 5, 7)) return false;
    const nonUniform = kernelAtLeast(k.version, 6, 15);
    k.folios.get(head, 1, 'shmem_undo_range: shmem_get_partial_folio');
    const failed = yield* splitCacheFolioOp(k, file, head, nonUniform ? { order: 0, at: Math.floor(offset / ps) } : { order: 0 });
    if (failed === null && nonUniform && offset + length < size) {
      // folio2: the piece holding split_at2 = the page at offset + length (folio_try_get())
      const pfn2 = head + Math.floor((offset + length) / ps);
      const head2 = k.folios.folio(pfn2);
      if (k.folios.nr(head2) > 1) {
        k.folios.get(head2, 1, 'truncate_inode_partial_folio: folio_try_get(folio2)');
        yield* splitCacheFolioOp(k, file, head2, { order: 0, at: pfn2 - head2 });
        k.folios.put(k.folios.folio(head2), 1, 'truncate_inode_partial_folio: folio_put(folio2)');
      }
    }
    // the piece holding the old head keeps the lookup's reference
    k.folios.put(k.folios.folio(head), 1, 'shmem_undo_range: folio_put');
    return failed === null;
  }

  /**
   * A VMA of the file went away. The file of a shared anonymous mapping is referenced only by its
   * VMAs: the last fput() evicts the inode (shmem_evict_inode -> shmem_truncate_range(0, -1)).
   */
  released(file: PageCacheFile): void {
    if (file.held || file.mapping.mmaps.size > 0) return;
    if (file.hugetlb) this.k.hugetlb.evicted(file);
    this.dropCache(file, 0);
    this.files.delete(file.name);
  }

  /**
   * shmem_undo_range() of [from, end): each folio leaves the cache (truncate_inode_folio ->
   * filemap_remove_folio: page->mapping cleared) and the cache's reference is put; a folio still
   * pinned lives on, outside the file, until its last reference goes.
   */
  private dropCache(file: PageCacheFile, from: number, end = Infinity): void {
    const k = this.k;
    // shmem's partial large folios were split or kept by undoPartial(); a disk file's read-only THP
    // only partly inside the range (truncate_inode_partial_folio() -> split, or a clean folio dropped whole): not modelled
    for (const at of [from, end]) {
      const pfn = file.cache.get(at);
      if (pfn !== undefined && at !== Infinity && k.folios.folio(pfn) !== pfn) throw KernelError.unsupported('EINVAL', `truncating '${file.name}' at page ${at}, inside a huge page-cache folio of a disk file (its split) is not modelled`);
    }
    for (const [index, pfn] of [...file.cache].sort((a, b) => a[0] - b[0])) {
      if (index < from || index >= end) continue;
      file.cache.delete(index);
      file.notUptodate.delete(index);
      const s = k.pages.slot(pfn);
      k.pages.mapping[s] = 0;
      k.emit('page.mapping', { pfn, mapping: 'NULL', index: 0, share: 0 });
      // the cache holds one reference per index, a large folio's nr of them (folio_ref_add(nr)): one goes per index
      k.folios.put(k.folios.folio(pfn), 1, 'shmem_undo_range: truncate_inode_folio');
    }
  }

  private fileOf(vma: Vma): PageCacheFile {
    if (!vma.cacheFile) throw new Error(`PageCache: VMA '${vma.name}' has no page-cache file`);
    return vma.cacheFile;
  }
}
