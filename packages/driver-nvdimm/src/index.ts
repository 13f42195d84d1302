import { KernelError, kernelAtLeast, PG, type Device, type DriverPlugin, type Kernel, type Op, type ProbeRequest, type DaxFilesystem } from '@daxlab/core';

/** nd_info_block_reserve(): ALIGN(SZ_8K, PAGE_SIZE) at the start of a pfn namespace (drivers/nvdimm/nd.h). */
export function infoBlockReserve(pageSize: number): number {
  return Math.ceil(8192 / pageSize) * pageSize;
}

/** MAX_STRUCT_PAGE_SIZE (drivers/nvdimm/nd.h): nd_pfn_init() sizes the on-device memmap with 64 bytes per page. */
export const MAX_STRUCT_PAGE_SIZE = 64;

/**
 * Where data starts in an fsdax-mode namespace (drivers/nvdimm/pfn_devs.c nd_pfn_init):
 * PFN_MODE_PMEM (memmap on the device, the altmap) puts info block + memmap first;
 * PFN_MODE_RAM only the info block; both rounded up to the namespace alignment.
 */
export function dataOffset(size: number, pageSize: number, align: number, altmap: boolean): number {
  const reserve = infoBlockReserve(pageSize);
  const npfns = Math.floor((size - reserve) / pageSize);
  const memmap = altmap ? MAX_STRUCT_PAGE_SIZE * npfns : 0;
  return Math.ceil((reserve + memmap) / align) * align;
}

/**
 * nd_pfn_init()'s layout of a pmem namespace (drivers/nvdimm/pfn_devs.c): the alignment it lays
 * out to, max(align, memremap_compat_align()) from v5.7 (SUBSECTION_SIZE before), the end it
 * truncates to that (end_trunc, v5.3) and the data offset. An fsdax (nd_pfn) and a devdax (nd_dax,
 * which embeds an nd_pfn) personality run the same function, so a namespace switched between the
 * modes at the same align and --map keeps its data at the same offset (ndctl device-dax.c).
 */
export function pfnLayout(k: Kernel, size: number, align: number, altmap: boolean): { nsAlign: number; endTrunc: number; dataoff: number } {
  const nsAlign = Math.max(align, kernelAtLeast(k.version, 5, 7) ? (k.mmu.memremapCompatAlign ?? k.mmu.subsectionSize) : k.mmu.subsectionSize);
  return { nsAlign, endTrunc: size % nsAlign, dataoff: dataOffset(size, k.mmu.basePageSize, nsAlign, altmap) };
}

/** struct nd_pfn_sb, the pfn info block: 4 KiB (nd_sb_checksum()'s BUILD_BUG_ON) at SZ_4K into the namespace. */
const INFO_BLOCK_OFFSET = 4096;
const INFO_BLOCK_SIZE = 4096;
const SECTOR = 512;

/**
 * ndctl enable-namespace of an fsdax namespace (DriverPlugin.enableNamespace; driver-devdax's
 * for a devdax one too: nd_pmem_probe() -> nd_dax_probe() validates a DAX_SIG info block the same
 * way, then dax_pmem's nvdimm_setup_pfn() -> nd_pfn_init() clears the memmap area):
 * nd_pfn_validate() (drivers/nvdimm/pfn_devs.c) reads the info block with nvdimm_read_bytes(),
 * and nsio_rw_bytes() (drivers/nvdimm/claim.c) refuses a read that touches a badblock (-EIO):
 * validation fails (-ENXIO), nd_pmem_probe() finds no pfn (nor dax) personality and attaches the
 * namespace as a raw disk (false). An info block that validates is followed, in nd_pfn_init(),
 * by nd_pfn_clear_memmap_errors() (v4.20; until c1f45d86a522, v5.5, the last step of
 * nd_pfn_validate() itself: the same clear at enable).
 */
export function enablePfnNamespace(k: Kernel, device: Device, altmap: boolean): boolean {
  const start = device.pgmap.startPfn * k.mmu.basePageSize;
  if (k.badblocks.check((start + INFO_BLOCK_OFFSET) / SECTOR, INFO_BLOCK_SIZE / SECTOR)) return false;
  if (altmap) clearMemmapErrors(k, start, (device.dataPfn - device.pgmap.startPfn) * k.mmu.basePageSize);
  return true;
}

/**
 * nd_pfn_clear_memmap_errors() (drivers/nvdimm/pfn_devs.c, 48af2f7e52f4, v4.20): with the memmap
 * on the device (PFN_MODE_PMEM) the area from the end of the info block to the data offset is
 * written fresh at every enable, so its badblocks are zeroed first. Each bad range found
 * (badblocks_check() reports it whole) is written with zeroes from its start rounded down to a
 * page, for its length rounded up to pages, a page at a time: nvdimm_write_bytes() of a
 * 512-byte-aligned range clears the poison and the badblocks it covers (nsio_rw_bytes() ->
 * nvdimm_clear_poison(), badblocks_clear()); the loop runs until none is left. nfit_test's clear
 * always succeeds; a failed clear would fail the enable ("error clearing %x badblocks"), which the
 * model has no media to produce. (The kernel checks the region's badblocks at namespace
 * offsets: the same sectors for a namespace at the start of its region, as the model's are.)
 */
export function clearMemmapErrors(k: Kernel, start: number, dataoff: number): void {
  const ps = k.mmu.basePageSize;
  const base = start / SECTOR;
  const metaStart = (INFO_BLOCK_OFFSET + INFO_BLOCK_SIZE) / SECTOR;
  const metaNum = dataoff / SECTOR - metaStart;
  for (let bad = k.badblocks.check(base + metaStart, metaNum); bad; bad = k.badblocks.check(base + metaStart, metaNum)) {
    const nsoff = Math.floor(((bad.first - base) * SECTOR) / ps) * ps;
    const zeroLen = Math.ceil((bad.count * SECTOR) / ps) * ps;
    for (let off = nsoff; off < nsoff + zeroLen; off += ps) k.clearMediaErrors(base + off / SECTOR, ps / SECTOR);
  }
}

export interface NvdimmOptions {
  /** namespace alignment (nd_pfn->align); default PMD_SIZE as ndctl's default for fsdax */
  readonly align?: number;
}

/**
 * A pmem namespace in fsdax mode (drivers/nvdimm/pmem.c pmem_attach_disk): a MEMORY_DEVICE_FS_DAX
 * pgmap over the namespace, the memmap in RAM or on the device (altmap), DAX for a filesystem.
 */
export function nvdimm(options: NvdimmOptions = {}): DriverPlugin {
  return {
    kind: 'driver',
    name: '@daxlab/driver-nvdimm',
    driverName: 'nvdimm',
    coreRange: '>=0.1.0 <1.0.0',

    *probe(k: Kernel, req: ProbeRequest): Op<Device> {
      const ps = k.mmu.basePageSize;
      // nd_pfn_default_alignment(): PMD_SIZE where the arch has THP, else PAGE_SIZE
      const align = req.align ?? options.align ?? (k.mmu.devdaxAlignments.includes(k.mmu.pmdSize) ? k.mmu.pmdSize : ps);
      if (align % ps !== 0) throw new KernelError('EINVAL', `namespace align ${align} is not a multiple of PAGE_SIZE`);
      // align_store() -> nd_size_select_store() takes only nd_pfn_supported_alignments() (PAGE_SIZE,
      // and the PMD / PUD sizes where the arch maps them huge): ndctl create-namespace -a 1G on arm64
      // fails there, so such a namespace cannot exist on this kernel
      if (!k.mmu.devdaxAlignments.includes(align)) throw KernelError.unsupported('EINVAL', `namespace align ${align} is not offered on ${k.mmu.arch} with ${ps}-byte pages (nd_pfn_supported_alignments(): ${k.mmu.devdaxAlignments.join(', ')})`);
      // nd_pfn_init(): the layout aligns to max(nd_pfn->align, memremap_compat_align()) (v5.7;
      // SUBSECTION_SIZE before: 2 MiB, or ppc64 hash's 16 MiB linear-map page from v5.7), and
      // truncates the namespace's end to it (end_trunc, v5.3) rather than refusing the size: ndctl
      // align.sh creates a 1 GiB + 8 KiB namespace with -a 4K and probes 1 GiB of it
      const { nsAlign, endTrunc, dataoff } = pfnLayout(k, req.size, align, req.altmap);
      // "unable to satisfy requested alignment": -ENXIO
      if (dataoff >= req.size - endTrunc) throw new KernelError('ENXIO', `nd_pfn_init: a namespace of ${req.size} bytes has no room for data after its ${dataoff}-byte metadata at align ${nsAlign}`);
      // with an altmap, memmap_init_zone_device() starts after reserve + free (the memmap's own pfns)
      const pgmap = k.memremap.memremapPages({
        device: req.name,
        type: 'fsdax',
        size: req.size - endTrunc,
        vmemmapShift: 0,
        altmapPfns: req.altmap ? dataoff / ps : 0,
        // vmem_altmap.reserve (__nvdimm_setup_pfn): the info block's pfns never hold the memmap
        altmapReservePfns: req.altmap ? infoBlockReserve(ps) / ps : 0,
        ops: { memoryFailure: true },
        // enabled again at its own range (ndctl enable-namespace: core's bind step)
        ...(req.phys !== undefined ? { phys: req.phys } : {}),
      });
      // nd_pfn_init() of a new info block clears the memmap area too from c1f45d86a522 (v5.5; an
      // existing one is enablePfnNamespace()'s). RAM mode (no altmap) leaves the area alone.
      if (req.altmap && (req.phys === undefined || req.newInfoBlock) && kernelAtLeast(k.version, 5, 5)) clearMemmapErrors(k, pgmap.startPfn * ps, dataoff);
      yield* [];
      return {
        name: req.name,
        driver: 'nvdimm',
        size: req.size,
        align,
        pgmap,
        dataPfn: pgmap.startPfn + dataoff / ps,
        dataPages: (req.size - endTrunc - dataoff) / ps,
        pmemNamespace: true,
        bound: true,
        fs: null,
        mapping: { id: k.newAddressSpaceId(), owner: req.name, entries: new Map(), mmaps: new Set() },
        state: { dataOffset: dataoff },
      };
    },

    /**
     * create-namespace -m raw: pmem_attach_disk() without a pfn device. nfit_test's regions (ACPI
     * NFIT) lack ND_REGION_PAGEMAP, so pmem_should_map_pages() is false: devm_memremap() maps the
     * range with no dev_pagemap and no struct pages, pfn_flags stay PFN_DEV (no PFN_MAP), and the
     * block device offers no DAX: v5.17+ QUEUE_FLAG_DAX is set only with PFN_MAP, so
     * fs_dax_get_by_bdev() returns NULL; before, __generic_fsdax_supported() refused a pfn that
     * is not devmap ("dax support not enabled").
     */
    probeRaw(k: Kernel, req: ProbeRequest) {
      return { name: req.name, size: req.size, phys: req.phys ?? k.memremap.placeRange(req.size) };
    },

    enableNamespace(k: Kernel, device: Device): boolean {
      return enablePfnNamespace(k, device, device.pgmap.altmap);
    },

    /**
     * pmem_release_disk() -> kill_dax(): from v6.6 a registered dax holder is told
     * (MF_MEM_PRE_REMOVE) and invalidates every DAX mapping first — XFS does; ext4 registers
     * none, so its user mappings survive, as every filesystem's did before. Then the devm action
     * memunmap_pages() runs.
     */
    *unbind(k: Kernel, device: Device): Op {
      yield* k.dax.killDax(device);
      yield* k.memremap.memunmapPages(device.pgmap);
    },

    /**
     * memory_failure_dev_pagemap(): poison the page, find who maps it (collect_procs() tests
     * PageAnon() to pick the rmap walk) and unmap the file range from them.
     */
    *memoryFailure(k: Kernel, device: Device, pfn: number): Op {
      if (pfn < device.dataPfn || pfn >= device.dataPfn + device.dataPages) throw new KernelError('ENXIO', `pfn ${pfn} holds ${device.name}'s metadata (pgmap_pfn_valid)`);
      const head = k.folios.folio(pfn);
      // PG_hwpoison goes on the failed page, not on the folio head: the flag stands for the
      // badblock that gates the refault (pmem_dax_direct_access() checks badblocks per sector),
      // so in a PMD-sized fs-dax folio (v6.15) a failure at page 256 poisons page 256 only.
      // (mf_generic_kill_procs() / mf_dax_kill_procs() also SetPageHWPoison() the folio or
      // entry head as a "remapped UC" marker; nothing in the DAX fault path reads that.)
      k.folios.setFlag(pfn, PG.hwpoison, true);
      const fs = device.fs as DaxFilesystem | null;
      // pmem_pagemap_memory_failure() -> dax_holder_notify_failure() (v5.19): a filesystem that
      // registered a holder (XFS, assumed formatted with rmapbt) walks its rmap to the owners and
      // calls mf_dax_kill_procs() -> collect_procs_fsdax(), which never asks PageAnon(); without
      // one (-EOPNOTSUPP: ext4, FUSE, older kernels) mf_generic_kill_procs() -> collect_procs()
      // picks the anon or file rmap walk by PageAnon()
      if (!(fs?.daxHolder && kernelAtLeast(k.version, 5, 19))) k.folios.testAnon(head, 'collect_procs');
      if (!fs) return;
      for (const inode of fs.inodes.values()) {
        for (const [index, block] of inode.blocks) {
          if (fs.blocks.pfnOf(block) === pfn) yield* k.vm.unmapMappingPages(inode.mapping, index, 1);
        }
      }
    },
  };
}
