import {
  KernelError,
  KernelOops,
  UnsupportedError,
  kernelAtLeast,
  nonPresent,
  preempt,
  SNAPSHOT_FLAGS as PROT,
  type DeviceAccessRequest,
  type DeviceExclusiveRequest,
  type DeviceSnapshotRequest,
  type Device,
  type DriverPlugin,
  type Kernel,
  type KernelDescription,
  type Leaf,
  type MigrateRequest,
  type MigrateSlot,
  type Mm,
  type MmuNotifierRange,
  type Op,
  type ProbeRequest,
  type Vma,
  type Vmf,
} from '@daxlab/core';

export type HmmKind = 'private' | 'coherent';

export interface HmmOptions {
  /** the memory a probe without `kind` creates; default device-private (/dev/hmm_dmirror0) */
  readonly kind?: HmmKind;
}

/**
 * The mirror device's own state (lib/test_hmm.c struct dmirror_device): the free list page_free
 * refills, the pages handed out, and whether its chunks are being removed.
 */
interface MirrorState {
  readonly kind: HmmKind;
  /** pages returned by page_free, reused first (test_hmm pushes them on the head of free_pages) */
  readonly freed: number[];
  /** PMD-sized folios returned by page_free (test_hmm's free_folios, the 2025 device-private THP series) */
  readonly freedHuge: number[];
  /** next never-used page (the rest of the chunk's free list, in pfn order) */
  next: number;
  readonly allocated: Set<number>;
  /** dmirror_chunk->remove: page_free no longer returns pages to the free list */
  removing: boolean;
  calloc: number;
  cfree: number;
  /**
   * The mirror's page-table entries tagged DPT_XA_TAG_ATOMIC (dmirror_atomic_map()), per mirrored
   * mm (test_hmm keeps one xarray per open file, i.e. per process): vpn -> pfn. They hold no page
   * reference; the mmu interval notifier (dmirror_interval_invalidate) erases them. The mirror's
   * other entries (READ/WRITE after hmm_range_fault) are not kept: device accesses look at the
   * CPU page tables each time.
   */
  readonly atomic: Map<number, Map<number, number>>;
  /**
   * The mmu interval notifier's sequence per mirrored mm (dmirror->notifier: test_hmm inserts one
   * over the whole address space at open, dmirror_fops_open()). dmirror_interval_invalidate()
   * advances it (mmu_interval_set_seq) on every invalidation it does not ignore; a range fault
   * read before the change is retried (mmu_interval_read_retry in dmirror_range_fault()).
   */
  readonly notifierSeq: Map<number, number>;
  /**
   * dmirror->flags per mirrored process (HMM_DMIRROR_FLAGS, the 2025 device-private THP series:
   * test_hmm keeps them per open file, i.e. per process): HMM_DMIRROR_FLAG_FAIL_ALLOC makes the
   * next device-page or migrate-to-RAM allocation fail, once
   */
  readonly flags: Map<number, number>;
}

/** HMM_DMIRROR_FLAG_FAIL_ALLOC (lib/test_hmm_uapi.h): 1ULL << 0. */
const FLAG_FAIL_ALLOC = 1;

/**
 * HMM_DMIRROR_FLAGS (test_hmm, the 2025 device-private THP series): set the mirror's flags for
 * one mirrored process (default init). `failAlloc` (HMM_DMIRROR_FLAG_FAIL_ALLOC) makes the next
 * allocation the driver makes for a migration fail, once: dmirror_migrate_alloc_and_copy() then
 * falls back to base device pages for a PMD-sized slot (and skips a base one), and
 * dmirror_devmem_fault_alloc_and_copy() to base system pages (a base slot: VM_FAULT_OOM).
 */
export function setDmirrorFlags(k: Kernel, deviceName: string, flags: { readonly failAlloc: boolean }, process = 'init'): void {
  if (k.features['migrate-device-thp'] !== 'compound') {
    throw new KernelError('EINVAL', `HMM_DMIRROR_FLAGS came with the device-private THP series (migrate-device-thp compound); ${k.version}'s test_hmm has no such ioctl`);
  }
  const device = k.device(deviceName);
  if (device.driver !== 'hmm') throw new KernelError('EINVAL', `${deviceName} is not an hmm mirror device (HMM_DMIRROR_FLAGS is test_hmm's ioctl)`);
  const mm = k.processes.get(process);
  if (!mm) throw new KernelError('ESRCH', `no process '${process}'`);
  mirror(device).flags.set(mm.id, flags.failAlloc ? FLAG_FAIL_ALLOC : 0);
}

/** `if (dmirror->flags & HMM_DMIRROR_FLAG_FAIL_ALLOC) { dmirror->flags &= ~...; dpage = NULL; }` */
function takeFailAlloc(device: Device, mm: Mm): boolean {
  const flags = mirror(device).flags.get(mm.id) ?? 0;
  if ((flags & FLAG_FAIL_ALLOC) === 0) return false;
  mirror(device).flags.set(mm.id, flags & ~FLAG_FAIL_ALLOC);
  return true;
}

function mirror(device: Device): MirrorState {
  return device.state as unknown as MirrorState;
}

/**
 * dmirror_devmem_alloc_page(): take a free device page and make it the driver's. With the extra
 * reference (v5.17 and earlier) the free page sits at 1 and get_page() takes it to 2; 27674ef6c73f
 * (v5.18) dropped that get_page, and since ef233450898f/0dc45ca1ce18 (v6.1) a free page sits at 0
 * and zone_device_page_init() sets 1 (and takes a pgmap reference, which the model keeps as the
 * page's refcount: memunmap_pages waits for it). Both lock the page.
 */
function allocPage(k: Kernel, device: Device): number | null {
  const m = mirror(device);
  if (m.removing) return null;
  const pfn = m.freed.pop() ?? (m.next < device.dataPages ? device.dataPfn + m.next++ : null);
  if (pfn === null) return null;
  m.allocated.add(pfn);
  m.calloc++;
  if (k.features['devmem-extra-ref']) {
    k.folios.get(pfn, 1, 'dmirror_devmem_alloc_page: get_page');
  } else {
    // zone_device_page_init(): WARN_ON_ONCE(!percpu_ref_tryget_live) then set_page_count(page, 1)
    k.memremap.zoneDeviceFolioInit(pfn, 0);
  }
  return pfn;
}

/**
 * dmirror_devmem_alloc_page(dmirror, is_large = true) (the 2025 device-private THP series): a
 * PMD-sized device folio from free_folios, else from a chunk dmirror_allocate_chunk(is_large)
 * carves into HPAGE_PMD_NR-aligned folios (the pfns before the first aligned one go on
 * free_pages); zone_device_folio_init(folio, HPAGE_PMD_ORDER). The model's device is one fixed
 * range: a new folio is the next aligned run of never-used pages.
 */
function allocHugePage(k: Kernel, device: Device): number | null {
  const m = mirror(device);
  if (m.removing) return null;
  // the series' zone_device_folio_init() hands out folios free at 0: with the extra ZONE_DEVICE
  // reference (v5.17 and earlier) device THPs never existed
  if (k.features['devmem-extra-ref']) throw KernelError.unsupported('EINVAL', `${device.name}: a PMD-sized device folio with devmem-extra-ref (free device pages at refcount 1, v5.17 and earlier): the device-private THP series came long after 27674ef6c73f and ef233450898f; no kernel combines them`);
  const nr = k.vm.pmdPages;
  let head = m.freedHuge.pop() ?? null;
  if (head === null) {
    const first = Math.ceil((device.dataPfn + m.next) / nr) * nr;
    if (first + nr > device.dataPfn + device.dataPages) return null;
    for (let pfn = device.dataPfn + m.next; pfn < first; pfn++) m.freed.push(pfn);
    m.next = first + nr - device.dataPfn;
    head = first;
  }
  for (let i = 0; i < nr; i++) m.allocated.add(head + i);
  m.calloc += nr;
  k.memremap.zoneDeviceFolioInit(head, Math.log2(nr));
  return head;
}

/**
 * dmirror_devmem_free() (ops->page_free): the backing data goes, and the page returns to the free
 * list unless its chunk is being removed.
 */
function pageFree(k: Kernel, device: Device, pfn: number): void {
  const m = mirror(device);
  // a large folio goes back whole, on free_folios (dmirror_devmem_free(): cfree += 1 << order)
  const nr = k.folios.nr(pfn);
  for (let i = 0; i < nr; i++) {
    m.allocated.delete(pfn + i);
    k.pages.data.delete(pfn + i);
  }
  if (m.removing) return;
  m.cfree += nr;
  (nr > 1 ? m.freedHuge : m.freed).push(pfn);
}

/**
 * The destination pages of a migration to system memory: alloc_page + copy (…_alloc_and_copy);
 * a compound source gets a folio of its order (vma_alloc_folio() / folio_alloc()) and every page
 * copied. For a migration through the mirror (`owner`: dmirror_devmem_fault_alloc_and_copy())
 * HMM_DMIRROR_FLAG_FAIL_ALLOC fails the next allocation: a compound source then gets a base
 * system page per page (its MIGRATE_PFN_COMPOUND cleared: migrate_vma_pages() splits the source),
 * a base one fails the whole call (VM_FAULT_OOM): false. The eviction at removal
 * (dmirror_device_evict_chunk) does not look at the flags.
 */
function allocAndCopyToRam(k: Kernel, slots: readonly MigrateSlot[], owner?: { device: Device; mm: Mm }): boolean {
  for (const s of slots) {
    if (!s.migrate || s.src === null) continue;
    const srcSlot = k.pages.slot(s.src);
    const anonVma = k.pages.mapping[srcSlot]! >>> 2;
    const fail = owner !== undefined && takeFailAlloc(owner.device, owner.mm);
    if (!s.compound) {
      if (fail) return false;
      s.dst = k.ram.allocAnon(anonVma, k.pages.data.get(s.src) ?? '');
      continue;
    }
    const nr = k.folios.nr(s.src);
    const dst = fail ? null : k.ram.allocAnonLarge(anonVma, Math.log2(nr));
    if (dst === null) {
      // "Try with smaller pages if large allocation fails": one system page per page
      s.fallback = [];
      for (let i = 0; i < nr; i++) s.fallback.push(k.ram.allocAnon(anonVma, k.pages.data.get(s.src + i) ?? ''));
      continue;
    }
    for (let i = 0; i < nr; i++) k.pages.data.set(dst + i, k.pages.data.get(s.src + i) ?? '');
    s.dst = dst;
  }
  return true;
}

/** A migration whose allocation failed (VM_FAULT_OOM / -ENOMEM): migrate_vma_finalize() restores every source. */
function abandon(k: Kernel, slots: readonly MigrateSlot[], what: string): never {
  for (const s of slots) {
    s.dst = null;
    delete s.fallback;
  }
  k.migration.pages(slots, null);
  k.migration.finalize(slots);
  throw new KernelError('ENOMEM', `${what}: the system page allocation failed (HMM_DMIRROR_FLAG_FAIL_ALLOC)`);
}

/**
 * The device's destination pages (dmirror_migrate_alloc_and_copy()): a base device page per
 * slot, a PMD-sized device folio for a compound one (the data of a hole or the zero page is
 * zeroes). HMM_DMIRROR_FLAG_FAIL_ALLOC (or no free device folio) fails the slot's allocation: a
 * base slot is then not migrated, a compound one gets a base device page per page (nr =
 * HPAGE_PMD_NR for a hole, folio_nr_pages() for a folio) and migrate_vma_pages() splits it.
 */
function allocAndCopyToDevice(k: Kernel, device: Device, slots: readonly MigrateSlot[], mm: Mm): void {
  const data = (s: MigrateSlot, i: number): string => (s.src === null ? '' : (k.pages.data.get(s.src + i) ?? ''));
  for (const s of slots) {
    if (!s.migrate) continue;
    const fail = takeFailAlloc(device, mm);
    if (!s.compound) {
      const dpage = fail ? null : allocPage(k, device);
      if (dpage === null) continue;
      k.pages.data.set(dpage, data(s, 0));
      s.dst = dpage;
      continue;
    }
    const head = fail ? null : allocHugePage(k, device);
    if (head === null) {
      const nr = s.src === null ? k.vm.pmdPages : k.folios.nr(s.src);
      s.fallback = [];
      for (let i = 0; i < nr; i++) {
        const dpage = allocPage(k, device);
        if (dpage !== null) k.pages.data.set(dpage, data(s, i));
        s.fallback.push(dpage);
      }
      continue;
    }
    for (let i = 0; i < k.vm.pmdPages; i++) k.pages.data.set(head + i, data(s, i));
    s.dst = head;
  }
}

/**
 * dmirror_migrate_to_{device,system}() with MIGRATE_VMA_SELECT_COMPOUND (`migrate-device-thp`
 * compound): one migrate_vma_setup() per PTRS_PER_PTE pages of the range (src/dst arrays of
 * PTRS_PER_PTE entries), so only a PMD a chunk covers whole moves as one folio. Older test_hmm
 * has no compound selection; the chunking changes nothing there and the range is one call.
 */
function migrateChunks(k: Kernel, start: number, pages: number): [number, number][] {
  if (k.features['migrate-device-thp'] !== 'compound') return [[start, pages]];
  const chunks: [number, number][] = [];
  for (let addr = start; addr < start + pages; addr += k.vm.pmdPages) chunks.push([addr, Math.min(k.vm.pmdPages, start + pages - addr)]);
  return chunks;
}

/**
 * A mirror device modelled on lib/test_hmm.c (dmirror): device-private (MEMORY_DEVICE_PRIVATE) or
 * device-coherent (MEMORY_DEVICE_COHERENT) memory with its own page allocator, page_free and
 * migrate_to_ram, migration both ways with migrate_vma_*, device reads and writes through
 * hmm_range_fault, and chunk removal that evicts in-use pages before memunmap_pages().
 */
export function hmm(options: HmmOptions = {}): DriverPlugin {
  return {
    kind: 'driver',
    name: '@daxlab/driver-hmm',
    driverName: 'hmm',
    coreRange: '>=0.1.0 <1.0.0',

    unsupported(desc: KernelDescription): string | null {
      // mm/Kconfig: DEVICE_PRIVATE depends on ZONE_DEVICE, which depends on ARCH_HAS_PTE_DEVMAP
      // until the pXX_devmap bit was removed (~v6.17 [M]); TEST_HMM selects DEVICE_PRIVATE.
      if (desc.mmu && !desc.mmu.pteBits.devmap && !kernelAtLeast(desc.version, 6, 17)) {
        return `CONFIG_ZONE_DEVICE (needed by DEVICE_PRIVATE and the HMM mirror) depends on ARCH_HAS_PTE_DEVMAP in ${desc.version}, and ${desc.arch} has no devmap PTE bit`;
      }
      // MEMORY_DEVICE_PRIVATE: 5042db43cc26 "mm/ZONE_DEVICE: new type of ZONE_DEVICE for unaddressable memory", v4.14
      if (!kernelAtLeast(desc.version, 4, 14)) return `MEMORY_DEVICE_PRIVATE arrived in v4.14; ${desc.version} has no device-private memory`;
      return null;
    },

    /**
     * dmirror_allocate_chunk(): memremap_pages() of a MEMORY_DEVICE_PRIVATE range (a free
     * physical region, struct pages only) or MEMORY_DEVICE_COHERENT range (real memory at a
     * given address), with page_free (and migrate_to_ram for private) and the device as owner;
     * every page goes on the free list.
     */
    *probe(k: Kernel, req: ProbeRequest): Op<Device> {
      const kind = (req.kind ?? options.kind ?? 'private') as HmmKind;
      if (kind !== 'private' && kind !== 'coherent') throw new KernelError('EINVAL', `hmm: kind '${String(kind)}' is neither private nor coherent`);
      if (kind === 'coherent' && !kernelAtLeast(k.version, 6, 0)) {
        throw new UnsupportedError(`MEMORY_DEVICE_COHERENT arrived in v6.0 (f25cbb7a95a2 "mm: add zone device coherent type memory support"); ${k.version} has no device-coherent memory`);
      }
      // dmirror_allocate_chunk() calls memremap_pages() with neither an altmap nor an alignment
      // so a probe asking for either cannot be served by this driver: the cell is unsupported, with why
      if (req.altmap) throw KernelError.unsupported('EINVAL', `probe ${req.name}: hmm device memory has no altmap (its memmap is in RAM); a scenario for hmm leaves altmap out`);
      if (req.align !== null) throw KernelError.unsupported('EINVAL', `probe ${req.name}: hmm device memory has no alignment (pages are handed out one at a time); a scenario for hmm leaves align out`);
      const state: MirrorState = { kind, flags: new Map(), freed: [], freedHuge: [], next: 0, allocated: new Set(), removing: false, calloc: 0, cfree: 0, atomic: new Map(), notifierSeq: new Map() };
      let device: Device | null = null;
      const pgmap = k.memremap.memremapPages({
        device: req.name,
        type: kind,
        size: req.size,
        vmemmapShift: 0,
        altmapPfns: 0,
        // memremap_pages() refuses PRIVATE without migrate_to_ram and page_free, COHERENT without page_free
        ops: { pageFree: (pfn) => pageFree(k, device!, pfn), ...(kind === 'private' ? { migrateToRam: true as const } : {}) },
      });
      device = {
        name: req.name,
        driver: 'hmm',
        size: req.size,
        align: k.mmu.basePageSize,
        pgmap,
        dataPfn: pgmap.firstPfn,
        dataPages: pgmap.nrPages,
        bound: true,
        fs: null,
        mapping: { id: k.newAddressSpaceId(), owner: req.name, entries: new Map(), mmaps: new Set() },
        state: state as unknown as Record<string, unknown>,
      };
      yield* [];
      return device;
    },

    /**
     * HMM_DMIRROR_MIGRATE_TO_DEV (dmirror_migrate_to_device): migrate_vma_setup(SELECT_SYSTEM),
     * allocate and copy, migrate_vma_pages, map in the device's page table, migrate_vma_finalize;
     * then the range is read back from the device (-ENOENT if a page did not migrate).
     * HMM_DMIRROR_MIGRATE_TO_SYS (dmirror_migrate_to_system): select this device's private and
     * coherent pages (pgmap_owner) and copy them to new system pages.
     */
    *migrate(k: Kernel, device: Device, req: MigrateRequest): Op {
      if (!device.bound) throw new KernelError('ENODEV', `${device.name} is not bound`);
      const { vma } = req;
      const start = vma.start + req.page;
      // dmirror_migrate_to_{device,system}(): `!vma || !(vma->vm_flags & VM_READ)` is -EINVAL (PROT_NONE)
      if (!vma.flags.read) throw new KernelError('EINVAL', `${device.name}: mapping '${vma.name}' is PROT_NONE (no VM_READ)`);
      // dmirror_migrate_to_{device,system}(): every address must be in a VMA (vma_lookup), else -EINVAL
      if (req.page + req.pages > vma.pages) throw new KernelError('EINVAL', `${device.name}: pages ${req.page}..${req.page + req.pages - 1} run past mapping '${vma.name}' (${vma.pages} pages)`);
      if (req.to === 'ram') {
        for (const [from, n] of migrateChunks(k, start, req.pages)) {
          const slots = k.migration.setup(vma, from, n, { system: false, owner: device, compound: true });
          // dmirror_migrate_to_system(): a failed allocation finalizes and returns -ENOMEM
          if (!allocAndCopyToRam(k, slots, { device, mm: vma.mm })) abandon(k, slots, `${device.name}: HMM_DMIRROR_MIGRATE_TO_SYS`);
          k.migration.pages(slots, vma);
          k.migration.finalize(slots);
        }
        yield* [];
        return;
      }
      // MIGRATE_VMA_SELECT_SYSTEM only: device pages (ours or another device's) are not selected
      for (const [from, n] of migrateChunks(k, start, req.pages)) {
        const slots = k.migration.setup(vma, from, n, { system: true, owner: null, compound: true });
        allocAndCopyToDevice(k, device, slots, vma.mm);
        k.migration.pages(slots, vma);
        k.migration.finalize(slots);
      }
      yield* [];
      for (let v = start; v < start + req.pages; v++) {
        const leaf = k.vm.lookup(vma.mm, v);
        if (!leaf || k.deviceOfPfn(leaf.pte.pfn) !== device) throw new KernelError('ENOENT', `page ${v - vma.start} of '${vma.name}' is not in ${device.name}'s memory after migration`);
      }
    },

    /**
     * mmap of /dev/hmm_dmirrorN (dmirror_fops_mmap, hmm.mixedmap): any length and offset; the
     * pages come from populate, and vm_insert_page() marks the VMA VM_MIXEDMAP.
     */
    mmapDevice(k: Kernel, device: Device): { flags: { mixedmap: true }; align: number } {
      if (!device.bound) throw new KernelError('ENODEV', `${device.name} is not bound`);
      return { flags: { mixedmap: true }, align: k.mmu.basePageSize };
    },

    /**
     * dmirror_fops_mmap(): for each page of the VMA, alloc_page(GFP_KERNEL | __GFP_ZERO) and
     * vm_insert_page() (insert_page(): get_page, file rmap, a normal PTE — not special — with
     * vma->vm_page_prot: read-only in a private mapping, COW on write), then put_page(): the PTE
     * holds the page's only reference. System pages, not the device's memory.
     */
    *populate(k: Kernel, _device: Device, vma: Vma): Op {
      const write = vma.flags.shared && vma.flags.write && !k.mprotector.wantsWritenotify(vma);
      for (let vpn = vma.start; vpn < vma.start + vma.pages; vpn++) {
        const pfn = k.ram.allocKernel();
        if (pfn === null) throw new KernelError('ENOMEM', `dmirror_fops_mmap: alloc_page failed for page ${vpn - vma.start} of '${vma.name}'`);
        k.folios.get(pfn, 1, 'vm_insert_page: insert_page');
        k.folios.addMap(pfn);
        k.vm.install(vma.mm, vpn, k.faults.pte(pfn, 'pte', { write }));
        k.folios.put(pfn, 1, 'dmirror_fops_mmap: put_page');
      }
      yield* [];
    },

    /**
     * ops->migrate_to_ram (dmirror_devmem_fault): a CPU fault on a device-private entry migrates
     * that one page back: migrate_vma_setup(SELECT_DEVICE_PRIVATE, owner), alloc_page_vma and copy,
     * migrate_vma_pages, invalidate the device page table, migrate_vma_finalize.
     */
    *fault(k: Kernel, vmf: Vmf, device: Device, leaf: Leaf | null): Op {
      // a mapping of the device node is filled at mmap (populate): an empty entry in it is not modelled
      if (!leaf) throw KernelError.unsupported('SIGBUS', `${device.name}: a fault on an empty entry of a mapping of the mirror device (dmirror_fops_mmap has no ->fault; the kernel would treat the VMA as anonymous) is not modelled`);
      const page = k.vm.pfnAt(leaf, vmf.vpn);
      // dmirror_devmem_fault() starts from vmf->page->zone_device_data: on a page freed since the
      // entry was read (no reference held, v6.0 and earlier) that is the free list's link
      if (!mirror(device).allocated.has(page)) {
        const message = `BUG: KASAN: use-after-free in dmirror_devmem_fault: device page pfn ${page} of ${device.name} was freed before migrate_to_ram ran (do_swap_page held no reference; fixed by 16ce101db85d, v6.1)`;
        k.emit('oops', { message });
        throw new KernelOops(message);
      }
      // the 2025 series: order = folio_order(), but 0 when vmf->pte is set ("When folios are
      // partially mapped, we can't rely on the folio order"): a PMD entry migrates its whole
      // folio back (args.start aligned down, MIGRATE_VMA_SELECT_COMPOUND), a PTE one its page
      const huge = leaf.pte.level === 'pmd';
      const slots = k.migration.setup(vmf.vma, huge ? leaf.base : vmf.vpn, huge ? leaf.pages : 1, { system: false, owner: device, compound: huge, faultPage: page });
      // dmirror_devmem_fault_alloc_and_copy(): VM_FAULT_OOM when a base allocation fails
      if (!allocAndCopyToRam(k, slots, { device, mm: vmf.vma.mm })) abandon(k, slots, `migrate_to_ram of page ${vmf.vpn - vmf.vma.start} of '${vmf.vma.name}'`);
      k.migration.pages(slots, vmf.vma);
      k.migration.finalize(slots);
      // dmirror_devmem_fault() returns 0 whatever migrated, and the CPU retries the access; the
      // model stops a retry that could make no progress: nothing migrated and the entry unchanged
      // (a compound slot whose split was refused has turned its PMD into PTEs: the retry is a PTE fault)
      const migrated = slots.some((s) => (s.split ? s.split.some((p) => p.migrate) : s.migrate));
      if (!migrated && k.vm.lookup(vmf.vma.mm, vmf.vpn)?.pte === leaf.pte) throw new KernelError('SIGBUS', `migrate_to_ram of page ${vmf.vpn - vmf.vma.start} of '${vmf.vma.name}' failed`);
      yield* [];
    },

    /**
     * HMM_DMIRROR_READ / WRITE: look the page up as hmm_range_fault() reports it
     * (dev_private_owner = this device): this device's private entries are used as they are,
     * anything else is faulted in (another device's private page migrates to RAM); a write needs
     * VM_WRITE (-EPERM) and a writable entry.
     */
    *deviceAccess(k: Kernel, device: Device, req: DeviceAccessRequest): Op<string> {
      if (!device.bound) throw new KernelError('ENODEV', `${device.name} is not bound`);
      const mm = req.vma.mm;
      const vpn = req.vma.start + req.page;
      // dmirror_do_read() reads any entry of the mirror, an atomic one too, without faulting;
      // dmirror_do_write() wants DPT_XA_TAG_WRITE, which an atomic entry (tag 1) is not
      const atomic = atomicEntries(device, mm)?.get(vpn);
      if (atomic !== undefined && !req.write) return access(k, atomic, req);
      // dmirror_range_fault(): mmu_interval_read_begin(), hmm_range_fault() under the mmap lock,
      // then under dmirror->mutex mmu_interval_read_retry(): an invalidation since the begin
      // (a munmap, a COW, an mprotect of the range) sends it round again; a walk that faulted
      // (hmm_range_fault -EBUSY after hmm_vma_fault) goes round too. The kernel gives up after
      // HMM_RANGE_DEFAULT_TIMEOUT with -EBUSY; the model, which only ever retries after a real
      // change, bounds the faults instead (EFAULT, as before the notifier was modelled).
      for (let faults = 0; ; ) {
        if (faults === 3) throw new KernelError('EFAULT', `${device.name}: hmm_range_fault could not fault in page ${req.page} of '${req.vma.name}'`);
        const seq = notifierSeq(device, mm);
        const walked = yield* rangeFault(k, device, req, vpn);
        if (walked === null) {
          faults++;
          continue;
        }
        // mutex_lock(&dmirror->mutex): a munmap may run between the walk and here
        yield preempt(`dmirror_range_fault(${device.name}): mutex_lock`, () => `${seq}:${walked}`);
        if (notifierSeq(device, mm) !== seq) continue;
        // dmirror_do_fault() stores the page in the mirror, dmirror_do_read()/_write() use it
        // a write through a present CPU entry dirties it (the device's own private entry is not)
        const leaf = k.vm.lookup(mm, vpn);
        if (req.write && leaf && !leaf.pte.devicePrivate) leaf.pte.dirty = true;
        return access(k, walked, req);
      }
    },

    /**
     * HMM_DMIRROR_SNAPSHOT (dmirror_snapshot -> dmirror_range_snapshot): hmm_range_fault() with
     * default_flags 0, so nothing is faulted, and dmirror_mkentry() turns each pfn into a byte.
     */
    *snapshot(k: Kernel, device: Device, req: DeviceSnapshotRequest): Op<readonly number[]> {
      if (!device.bound) throw new KernelError('ENODEV', `${device.name} is not bound`);
      const out: number[] = [];
      for (let vpn = req.start; vpn < req.start + req.pages; vpn++) out.push(snapshotEntry(k, device, req, vpn));
      yield* [];
      return out;
    },

    /**
     * HMM_DMIRROR_EXCLUSIVE (dmirror_exclusive): make_device_exclusive() of each page, which the
     * mirror maps with DPT_XA_TAG_ATOMIC (dmirror_atomic_map); then the range is read back from
     * the mirror (dmirror_do_read). Pages beyond the VMA are GUP's -EFAULT.
     */
    *exclusive(k: Kernel, device: Device, req: DeviceExclusiveRequest): Op<readonly string[]> {
      const mm = req.vma.mm;
      const start = req.vma.start + req.page;
      let table = mirror(device).atomic.get(mm.id);
      if (!table) mirror(device).atomic.set(mm.id, (table = new Map()));
      for (let vpn = start; vpn < start + req.pages; vpn++) {
        const vma = k.vm.vmaAt(mm, vpn);
        if (!vma) throw new KernelError('EFAULT', `${device.name}: no VMA at page ${vpn - req.vma.start} of '${req.vma.name}' (get_user_pages_remote)`);
        const pfn = yield* k.exclusive.make(vma, vpn, device);
        table.set(vpn, pfn);
      }
      const data: string[] = [];
      for (let vpn = start; vpn < start + req.pages; vpn++) {
        const pfn = table.get(vpn);
        if (pfn === undefined) throw new KernelError('ENOENT', `${device.name}: page ${vpn - req.vma.start} of '${req.vma.name}' lost its atomic mapping before the read-back`);
        data.push(k.pages.data.get(pfn) ?? '');
      }
      return data;
    },

    /** HMM_DMIRROR_CHECK_EXCLUSIVE (dmirror_check_atomic): -EPERM if an entry of the range is still tagged ATOMIC. */
    *checkExclusive(k: Kernel, device: Device, req: DeviceSnapshotRequest): Op {
      const table = atomicEntries(device, req.mm);
      for (let vpn = req.start; vpn < req.start + req.pages; vpn++) {
        if (table?.has(vpn)) throw new KernelError('EPERM', `${device.name} still maps page ${vpn - req.start} of the range atomically`);
      }
      yield* [];
    },

    /**
     * dmirror_interval_invalidate(): erase the mirror's entries in the range (a MMU_NOTIFY_MIGRATE
     * with this device as owner is ignored; migrations do not notify in the model).
     */
    invalidate(_k: Kernel, device: Device, range: MmuNotifierRange): void {
      // mmu_interval_set_seq(): the interval is the whole address space, so every range counts
      const seqs = mirror(device).notifierSeq;
      seqs.set(range.mm.id, (seqs.get(range.mm.id) ?? 0) + 1);
      const table = atomicEntries(device, range.mm);
      if (!table) return;
      for (const vpn of [...table.keys()]) if (vpn >= range.start && vpn < range.end) table.delete(vpn);
    },

    mirrors(_k: Kernel, device: Device, pfn: number): boolean {
      for (const table of mirror(device).atomic.values()) for (const p of table.values()) if (p === pfn) return true;
      return false;
    },

    /**
     * Device removal (dmirror_device_remove_chunks): mark each chunk removed and drop its free
     * pages; evict in-use pages to system memory (dmirror_device_evict_chunk: migrate_device_range,
     * v6.1+); then memunmap_pages(), which waits for what is left.
     */
    *unbind(k: Kernel, device: Device): Op {
      const m = mirror(device);
      m.removing = true;
      m.freed.length = 0;
      if (k.features['migrate-device-range']) {
        const slots = k.migration.setupRange([...m.allocated].sort((a, b) => a - b));
        allocAndCopyToRam(k, slots);
        k.migration.pages(slots, null);
        k.migration.finalize(slots);
      }
      yield* k.memremap.memunmapPages(device.pgmap);
    },
  };
}

/** The mmu interval notifier's sequence for one mirrored process (0 until its first invalidation). */
function notifierSeq(device: Device, mm: Mm): number {
  return mirror(device).notifierSeq.get(mm.id) ?? 0;
}

/**
 * One pass of hmm_range_fault() over the page (mm/hmm.c) with HMM_PFN_REQ_FAULT (and _WRITE for a
 * write), as dmirror_fault() asks: the pfn to use, or null when it faulted the page in and must
 * walk again (-EBUSY). The VMA is looked up afresh each pass, as walk_page_range() does.
 */
function* rangeFault(k: Kernel, device: Device, req: DeviceAccessRequest, vpn: number): Op<number | null> {
  const mm = req.vma.mm;
  const vma = k.vm.vmaAt(mm, vpn);
  // hmm_vma_walk_hole() with no VMA and a fault requested: -EFAULT (a munmap got there first)
  if (!vma) throw new KernelError('EFAULT', `${device.name}: page ${req.page} of '${req.vma.name}' is no longer mapped (hmm_range_fault found a hole)`);
  // hmm_vma_walk_test(): a VMA without VM_READ (PROT_NONE) with a fault requested is -EFAULT,
  // before any PTE is looked at (so before hmm_vma_fault()'s VM_WRITE check)
  if (!vma.flags.read) throw new KernelError('EFAULT', `${device.name}: hmm_range_fault on PROT_NONE mapping '${vma.name}'`);
  if (req.write && !vma.flags.write) throw new KernelError('EPERM', `${device.name}: write to read-only mapping '${vma.name}' (hmm_range_fault needs VM_WRITE)`);
  const leaf = k.vm.lookup(mm, vpn);
  if (leaf?.pte.devicePrivate && k.deviceOfPfn(leaf.pte.pfn) === device) {
    // hmm_vma_handle_pte(): reported with its own permission, never faulted; test_hmm's
    // dmirror_do_fault() refuses a read-only page for a write: WARN_ON(default_flags &
    // HMM_PFN_WRITE), then -EFAULT (lib/test_hmm.c, since the driver's first version)
    if (req.write && !leaf.pte.write) {
      k.warn(`dmirror_do_fault: WARN_ON(range->default_flags & HMM_PFN_WRITE): ${device.name}'s own device-private entry for page ${req.page} of '${vma.name}' is read-only`);
      throw new KernelError('EFAULT', `${device.name}: page ${req.page} of '${vma.name}' is a read-only device-private entry`);
    }
    return k.vm.pfnAt(leaf, vpn);
  }
  // hmm_vma_handle_pte(): a non-present entry that is not swap, device-private, device-exclusive
  // or migration -- a guard marker (mm/guard.ts) -- is "Report error for everything else": -EFAULT
  if (leaf?.pte.guard) throw new KernelError('EFAULT', `${device.name}: page ${req.page} of '${vma.name}' is a guard region (hmm_vma_handle_pte)`);
  // hmm_vma_handle_pte(): a device-exclusive entry is faulted (remove_device_exclusive_entry)
  if (!leaf || nonPresent(leaf.pte) || (req.write && !leaf.pte.write)) {
    yield* k.faults.handle(vma, vpn, req.write);
    return null;
  }
  return k.vm.pfnAt(leaf, vpn);
}

/** The mirror's atomic entries for one mirrored process, if any. */
function atomicEntries(device: Device, mm: Mm): Map<number, number> | undefined {
  return mirror(device).atomic.get(mm.id);
}

function access(k: Kernel, pfn: number, req: DeviceAccessRequest): string {
  if (!req.write) return k.pages.data.get(pfn) ?? '';
  k.pages.data.set(pfn, req.data ?? '');
  return req.data ?? '';
}

/**
 * One page of a snapshot: what hmm_range_fault() reports without faulting (mm/hmm.c), turned
 * into HMM_DMIRROR_PROT_* by dmirror_mkentry() (lib/test_hmm.c).
 */
function snapshotEntry(k: Kernel, device: Device, req: DeviceSnapshotRequest, vpn: number): number {
  const vma = k.vm.vmaAt(req.mm, vpn);
  // hmm_vma_walk_hole(): no VMA -> HMM_PFN_ERROR (so since Jason Gunthorpe's v5.8 rework of the
  // pfn format, when hmm-tests.c's hole expectation moved from NONE to ERROR)
  if (!vma) return PROT.ERROR;
  // hmm_vma_walk_test(): VM_IO / VM_PFNMAP or no VM_READ -> the whole VMA is HMM_PFN_ERROR
  if (vma.flags.io || vma.flags.pfnmap || !vma.flags.read) return PROT.ERROR;
  const leaf = k.vm.lookup(req.mm, vpn);
  // hmm_vma_handle_pte(): pte_none with no fault requested -> 0, which mkentry reads as NONE
  if (!leaf) return PROT.NONE;
  const pte = leaf.pte;
  // hmm_vma_handle_pte(): any other non-present entry (a guard marker too) with no fault requested is left 0
  if (pte.deviceExclusive || pte.swap || pte.guard) return PROT.NONE;
  if (pte.devicePrivate) {
    // only dev_private_owner's entries are reported (with their own write bit); another owner's
    // entry is left 0 when no fault is requested (hmm_vma_handle_pte, owner check since v5.7)
    if (k.deviceOfPfn(pte.pfn) !== device) return PROT.NONE;
    // a device-private PMD (the 2025 series: hmm_vma_walk_pmd() reports its order, as
    // hmm-tests.c's migrate_anon_huge_fault asserts: DEV_PRIVATE_LOCAL | WRITE | PMD)
    return PROT.DEV_PRIVATE_LOCAL | (pte.write ? PROT.WRITE : PROT.READ) | (pte.level === 'pmd' ? PROT.PMD : 0);
  }
  const pfn = k.vm.pfnAt(leaf, vpn);
  // is_zero_pfn(): the small zero page only (a huge zero page PMD is not is_zero_pfn)
  const isSmallZeroPage = pte.level === 'pte' && k.isZeroPfn(pfn);
  if (pte.level === 'pte' && k.vm.normalPage(pte, pfn) === null && !pte.devmap && !isSmallZeroPage) {
    // hmm_vma_handle_pte(): a special PTE with no struct page to hand out (not devmap, not the
    // zero page) is HMM_PFN_ERROR
    return PROT.ERROR;
  }
  // dmirror_mkentry(): the page kind, then READ or WRITE from HMM_PFN_WRITE (pte_write)
  const owner = k.deviceOfPfn(pfn);
  const type = owner?.pgmap.type;
  let byte: number = type === 'coherent'
    ? owner === device ? PROT.DEV_COHERENT_LOCAL : PROT.DEV_COHERENT_REMOTE
    : isSmallZeroPage ? PROT.ZERO : PROT.NONE;
  byte |= pte.write ? PROT.WRITE : PROT.READ;
  // hmm_pfn_to_map_order() ("mm/hmm: provide the page mapping order in hmm_range_fault()", in the
  // hmm pull for v5.9): a PMD or PUD leaf reports its order, and mkentry flags it
  if (kernelAtLeast(k.version, 5, 9)) {
    if (pte.level === 'pmd') byte |= PROT.PMD;
    else if (pte.level === 'pud') byte |= PROT.PUD;
  }
  return byte;
}
