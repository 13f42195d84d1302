import { boundToFsdev, deviceRanges, devicePgoff, formatSize, fsdevState, KernelError, kernelAtLeast, mappingOf, orderBase2, PG, rangePfn, type Device, type DeviceRange, type Pgmap, type DeviceMmapRequest, type DriverPlugin, type Kernel, type MemremapRequest, type Op, type ProbeRequest, type Vma, type Vmf } from '@daxlab/core';
import { clearMemmapErrors, enablePfnNamespace, infoBlockReserve, pfnLayout } from '@daxlab/driver-nvdimm';
import { fsdevMemoryFailure, fsdevPgmap, refuseFsdevMmap } from './fsdev.js';

export interface DevdaxOptions {
  /** dev_dax->align: 4KiB, 2MiB or 1GiB (the arch decides which it offers); default PMD_SIZE */
  readonly align?: number;
}

/** Where the model keeps page->mapping of the leaf holding pfn: its folio head, or the leaf's first page without compound pages. */
function leafHead(k: Kernel, device: Device, pfn: number, leafPages: number): number {
  if (device.pgmap.vmemmapShift) return k.folios.folio(pfn);
  return pfn - (devicePgoff(device, pfn) % leafPages);
}

/**
 * device-dax (drivers/dax/device.c): a MEMORY_DEVICE_GENERIC pgmap whose vmemmap_shift follows
 * the alignment (compound pages, v5.17+), a character device mmapped shared only, and faults that
 * map exactly `align`-sized leaves (smaller faults SIGBUS, larger ones fall back).
 */
export function devdax(options: DevdaxOptions = {}): DriverPlugin {
  return {
    kind: 'driver',
    name: '@daxlab/driver-devdax',
    driverName: 'devdax',
    coreRange: '>=0.1.0 <1.0.0',

    /**
     * dev_dax_probe(): GENERIC pgmap, vmemmap_shift = order_base_2(align >> PAGE_SHIFT) when align >
     * PAGE_SIZE; or fsdev_dax_probe() of the same instance (kind fsdev_dax: fsdev.ts).
     */
    *probe(k: Kernel, req: ProbeRequest): Op<Device> {
      const ps = k.mmu.basePageSize;
      // nd_pfn_default_alignment() (drivers/nvdimm/pfn_devs.c): PMD_SIZE when the arch has THP, else PAGE_SIZE
      const align = req.align ?? options.align ?? (k.mmu.devdaxAlignments.includes(k.mmu.pmdSize) ? k.mmu.pmdSize : ps);
      if (!k.mmu.devdaxAlignments.includes(align)) {
        // dax_align_valid() (drivers/dax/dax-private.h) refuses it: this kernel cannot have such a device
        throw KernelError.unsupported('EINVAL', `device-dax align ${align} is not offered on ${k.mmu.arch} with ${formatSize(ps)} pages (dax_align_valid(): ${k.mmu.devdaxAlignments.join(', ')})`);
      }
      if (req.size % align !== 0) throw new KernelError('EINVAL', `device-dax size ${req.size} is not a multiple of its align ${align}`);
      const pgmapKind = fsdevPgmap(k, req) ?? { type: 'generic' as const, vmemmapShift: k.features['compound-devmap'] && align > ps ? orderBase2(align / ps) : 0 };
      if (req.ranges && req.ranges.length > 0) return yield* probeRanges(k, req, align, pgmapKind);
      // a pmem namespace in devdax mode (dax_pmem -> nvdimm_setup_pfn(), drivers/dax/pmem.c
      // __dax_pmem_probe()): the info block, then with the memmap on the device (altmap,
      // PFN_MODE_PMEM) the memmap, data from the nd_pfn_init() offset aligned to max(align,
      // memremap_compat_align()); with it in RAM (-M mem, PFN_MODE_RAM) the data starts at the
      // info block's reserve aligned the same way. The pgmap covers the whole namespace and the
      // dax region starts at dataoff (range.start += offset). Not a namespace: no metadata
      const namespace = req.altmap || req.namespace === true;
      const dataoff = namespace ? pfnLayout(k, req.size, align, req.altmap).dataoff : 0;
      if (dataoff >= req.size) throw new KernelError('ENXIO', `nd_pfn_init: a ${req.size}-byte namespace has no room for data after its ${dataoff} bytes of info block and memmap`);
      const pgmap = k.memremap.memremapPages({
        device: req.name,
        ...pgmapKind,
        size: req.size,
        altmapPfns: req.altmap ? dataoff / ps : 0,
        ...(req.altmap ? { altmapReservePfns: infoBlockReserve(ps) / ps } : {}),
        // bound again to its own range (back from kmem: mm/hotplug.ts)
        ...(req.phys !== undefined ? { phys: req.phys } : {}),
      });
      // dax_pmem -> nvdimm_setup_pfn() -> nd_pfn_init() writing a new info block (DAX_SIG): from
      // c1f45d86a522 (v5.5) it clears the memmap area's badblocks as for an fsdax one
      if (req.altmap && (req.phys === undefined || req.newInfoBlock) && kernelAtLeast(k.version, 5, 5)) clearMemmapErrors(k, pgmap.startPfn * ps, dataoff);
      yield* [];
      return { ...boundDevice(k, req, align, pgmap, pgmap.startPfn + dataoff / ps, pgmap.nrPages - dataoff / ps), ...(namespace ? { pmemNamespace: true } : {}) };
    },

    /** dax_mmap() -> check_vma(): shared only, start/end aligned to the device align; VM_HUGEPAGE. */
    mmapDevice(k: Kernel, device: Device, req: DeviceMmapRequest) {
      if (boundToFsdev(device)) refuseFsdevMmap(device);
      if (!device.bound) throw new KernelError('ENXIO', `${device.name} is not alive`);
      if (!req.shared) throw new KernelError('EINVAL', `${device.name}: attempted private mapping (device-dax needs MAP_SHARED)`);
      if (req.length % device.align !== 0 || req.offset % device.align !== 0) {
        throw new KernelError('EINVAL', `${device.name}: mapping of ${req.length} bytes at offset ${req.offset} is not aligned to ${device.align}`);
      }
      return { flags: { hugepage: true }, align: Math.max(device.align, k.mmu.basePageSize) };
    },

    /**
     * dev_dax_may_split() (the ->split() of 9702cffdbf21, v4.15 [M]; renamed ->may_split() by
     * dd3b614f858d, v5.11): a VMA of the device splits only at an address aligned to its align.
     */
    maySplit(k: Kernel, device: Device, _vma: Vma, vpn: number) {
      if ((vpn * k.mmu.basePageSize) % device.align !== 0) throw new KernelError('EINVAL', `${device.name}: a mapping of it cannot be split at a ${device.align}-byte unaligned address (dev_dax_may_split)`);
    },

    /**
     * dev_dax_huge_fault(): serve a fault of exactly the device's align — PUD, PMD or PTE. A fault
     * smaller than align is SIGBUS, larger falls back; dax_set_mapping() associates the head page.
     */
    *fault(k: Kernel, vmf: Vmf, device: Device): Op {
      // check_vma(): !dax_alive() once kill_dev_dax() ran -> VM_FAULT_SIGBUS (ndctl device-dax.c
      // "fault after device-dax reset": the zapped mapping must not be refilled)
      if (!device.bound || device.pgmap.killed) throw new KernelError('SIGBUS', `${device.name}: fault on a dead device-dax instance (check_vma: !dax_alive)`);
      const ps = k.mmu.basePageSize;
      const level = device.align === ps ? 'pte' : device.align === k.mmu.pmdSize ? 'pmd' : device.align === k.mmu.pudSize ? 'pud' : null;
      if (!level) throw new KernelError('SIGBUS', `${device.name}: no ${device.align}-byte fault size on ${k.mmu.arch}`);
      const n = device.align / ps;
      const base = vmf.vpn - (vmf.vpn % n);
      const pgoff = vmf.pgoff - (vmf.vpn - base);
      if (base < vmf.vma.start || base + n > vmf.vma.start + vmf.vma.pages) throw new KernelError('SIGBUS', `${device.name}: ${level} fault outside the VMA`);
      // thp_vma_allowable_order() refuses a huge fault where vma_thp_disabled() (MADV_NOHUGEPAGE,
      // PR_SET_THP_DISABLE): the PTE fault that comes instead is smaller than the align (VM_FAULT_SIGBUS)
      if (level !== 'pte' && k.thp.disabled(vmf.vma, false)) throw new KernelError('SIGBUS', `${device.name}: THP is disabled for '${vmf.vma.name}' (VM_NOHUGEPAGE or PR_SET_THP_DISABLE), so the fault comes at PTE size, smaller than the device's ${device.align}-byte alignment (__dev_dax_pte_fault)`);
      // __handle_mm_fault(): a huge fault only where the PUD/PMD is none; a lower table there (a
      // guard marker's PTE table, mm/guard.ts) makes it a smaller fault, which __dev_dax_pte_fault /
      // __dev_dax_pmd_fault refuse when dev_dax->align is larger: VM_FAULT_SIGBUS
      const lower = (t: ReadonlyMap<number, unknown>): boolean => {
        if (t.size < n) {
          for (const v of t.keys()) if (v >= base && v < base + n) return true;
          return false;
        }
        for (let v = base; v < base + n; v++) if (t.has(v)) return true;
        return false;
      };
      if ((level === 'pmd' && lower(vmf.vma.mm.ptes)) || (level === 'pud' && (lower(vmf.vma.mm.ptes) || lower(vmf.vma.mm.pmds)))) {
        throw new KernelError('SIGBUS', `${device.name}: a page table under the ${level} range of page ${vmf.vpn - vmf.vma.start} of '${vmf.vma.name}' makes the fault smaller than the device's ${device.align}-byte alignment`);
      }
      const pfn = rangePfn(device, pgoff, n);
      if (pfn < 0) throw new KernelError('SIGBUS', `${device.name}: offset ${pgoff} is beyond the device or its ${level} leaf crosses a range (dev_dax_pgoff_to_phys)`);
      yield* [];
      // dax_set_mapping() (dev_dax_huge_fault()'s loop before v5.17): page->mapping/index on the
      // head with compound pages (vmemmap_shift), else on every page of the leaf at once — which
      // the model stores on the leaf's first page only (a 1 GiB leaf is 262144 struct pages) and
      // reads from there (leafHead())
      const s = k.pages.slot(k.folios.folio(pfn));
      if (k.pages.mapping[s] === 0) {
        k.pages.mapping[s] = mappingOf(device.mapping.id);
        k.pages.index[s] = pgoff;
      }
      k.dax.installPage({ ...vmf, vpn: base, pgoff }, pfn, level);
    },

    /**
     * memory_failure_dev_pagemap() -> mf_generic_kill_procs() (mm/memory-failure.c; inline in
     * memory_failure_dev_pagemap() before v5.19): dax_lock_folio() needs folio->mapping, which only
     * a fault set (dax_set_mapping()), else -EBUSY; PG_hwpoison on the folio head ("remapped UC");
     * unmap_and_kill() unmaps the mapping's range of the size the page is mapped with (the
     * device's align: dev_pagemap_mapping_shift()), from every process. The SIGBUS to the caller
     * (MF_ACTION_REQUIRED | MF_MUST_KILL) has no process to go to here. dev_dax_huge_fault() does
     * not look at PG_hwpoison, so a later fault maps the page again.
     */
    *memoryFailure(k: Kernel, device: Device, pfn: number): Op {
      if (boundToFsdev(device)) fsdevMemoryFailure(device, pfn);
      const pgoff = devicePgoff(device, pfn);
      if (pgoff < 0) throw new KernelError('ENXIO', `pfn ${pfn} is outside ${device.name}'s data`);
      const head = k.folios.folio(pfn);
      const n = Math.max(device.align, k.mmu.basePageSize) / k.mmu.basePageSize;
      const leaf = leafHead(k, device, pfn, n);
      const s = k.pages.has(leaf) ? k.pages.slot(leaf) : -1;
      if (s < 0 || k.pages.mapping[s] === 0) throw new KernelError('EBUSY', `${device.name}: page ${pgoff} was never faulted (dax_lock_folio: no folio->mapping)`);
      k.folios.setFlag(head, PG.hwpoison, true);
      yield* k.vm.unmapMappingPages(device.mapping, pgoff - (pgoff % n), n);
    },

    /**
     * ndctl enable-namespace of a devdax namespace (the `bind` step of a disabled one): the same
     * info-block read and memmap-area clear as for fsdax (driver-nvdimm enablePfnNamespace()).
     * nd_pmem_probe() (drivers/nvdimm/pmem.c) tries nd_pfn_probe() then nd_dax_probe()
     * (drivers/nvdimm/dax_devs.c), whose nd_pfn_validate(DAX_SIG) fails -ENXIO when the info
     * block reads back -EIO: nd_pmem_probe() has no dax_pmem-specific failure and falls through
     * to pmem_attach_disk(), the namespace's raw disk (false). A valid info block registers the
     * nd_dax device; dax_pmem's __dax_pmem_probe() -> nvdimm_setup_pfn() -> nd_pfn_init()
     * validates it again and runs nd_pfn_clear_memmap_errors() (v5.5, c1f45d86a522; v4.20-v5.4
     * the tail of nd_pfn_validate(): the same clear at the same enable). An instance
     * with no namespace (hmem, a dynamic region) has no info block, so nothing is read; a namespace
     * with its memmap in RAM (-M mem) has one to read and no memmap area to clear
     * (nd_pfn_clear_memmap_errors() returns early unless PFN_MODE_PMEM).
     */
    enableNamespace(k: Kernel, device: Device): boolean {
      if (!device.pmemNamespace || device.ranges) return true;
      return enablePfnNamespace(k, device, device.pgmap.altmap);
    },

    /** kill_dev_dax(): unmap every user mapping of the device, then memunmap_pages(). */
    *unbind(k: Kernel, device: Device): Op {
      yield* k.vm.unmapMappingPages(device.mapping, 0, Infinity);
      // memunmap_pages() tears down every range of the pgmap
      for (const r of deviceRanges(device)) yield* k.memremap.memunmapPages(r.pgmap);
    },
  };
}

/**
 * dev_dax_probe() of an instance of a dynamic region (drivers/dax/device.c, v5.10): one pgmap
 * with nr_range = dev_dax->nr_range, and memremap_pages() maps every range in turn (pagemap_range()
 * for each: its own memmap, no altmap), undoing those done when one fails. The model keeps one
 * Pgmap per range; faults find the range with dev_dax_pgoff_to_phys().
 */
function* probeRanges(k: Kernel, req: ProbeRequest, align: number, pgmapKind: Pick<MemremapRequest, 'type' | 'vmemmapShift' | 'ops'>): Op<Device> {
  const ps = k.mmu.basePageSize;
  const ranges: DeviceRange[] = [];
  let pgoff = 0;
  for (const r of req.ranges!) {
    if (r.size % align !== 0) throw new KernelError('EINVAL', `${req.name}: a ${r.size}-byte range is not a multiple of its align ${align}`);
    let pgmap: Pgmap;
    try {
      pgmap = k.memremap.memremapPages({ device: req.name, ...pgmapKind, size: r.size, altmapPfns: 0, phys: r.phys });
    } catch (e) {
      for (const done of ranges) yield* k.memremap.memunmapPages(done.pgmap);
      throw e;
    }
    ranges.push({ pfn: pgmap.firstPfn, pages: r.size / ps, pgoff, pgmap });
    pgoff += r.size / ps;
  }
  const first = ranges[0]!;
  return boundDevice(k, req, align, first.pgmap, first.pfn, pgoff, ranges);
}

/** The Device dev_dax_probe() leaves bound: its data pages from `dataPfn`, an empty address space. */
function boundDevice(k: Kernel, req: ProbeRequest, align: number, pgmap: Pgmap, dataPfn: number, dataPages: number, ranges?: DeviceRange[]): Device {
  return {
    name: req.name,
    driver: 'devdax',
    size: req.size,
    align,
    pgmap,
    dataPfn,
    dataPages,
    bound: true,
    fs: null,
    mapping: { id: k.newAddressSpaceId(), owner: req.name, entries: new Map(), mmaps: new Set() },
    ...(ranges ? { ranges } : {}),
    state: pgmap.type === 'fsdax' ? fsdevState() : {},
  };
}
