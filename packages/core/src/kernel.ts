import type { ArchPlugin, KernelDescription } from './plugin.js';
import type { Mmu, VmemmapPopulator } from './arch.js';
import { EventBus } from './bus.js';
import { Dax } from './dax/dax.js';
import { createKernelContainer, token, type DependencyContainer } from './di.js';
import { SNAPSHOT_FLAGS, type DriverPlugin, type ProbeRequest, type RawNamespace } from './driver.js';
import { InputError, KernelError, UnsupportedError, type Errno } from './errors.js';
import { FaultInjection, type FaultSite } from './fault-inject.js';
import type { KernelEvents } from './events.js';
import { DEFAULT_PRESET, kernelAtLeast, presetNamed, resolveFeatures, type FeatureSet } from './features.js';
import { FALLOC_FLAG, type DaxFilesystem, type FallocateMode, type FileServerOptions, type FilesystemPlugin, type FsMountOptions } from './fs/filesystem.js';
import { fileRead, fileWrite, type BdevIoArgs, type FileIoArgs } from './fs/rw.js';
import { checkMapSync, chattr, closeFile, dropCaches, mkdir, mountedFilesystems, mountedOn, openFile, remount, rename, umount, type DaxMountOption } from './fs/daxmode.js';
import { markLog, replayLog } from './fs/journal.js';
import { conventionFor, type RefcountConvention } from './mm/convention.js';
import { DeviceExclusive, nonPresent, type MmuNotifierRange } from './mm/exclusive.js';
import { pagemapGuard } from './mm/guard.js';
import { Faults, type Vmf } from './mm/fault.js';
import { Folios } from './mm/folio.js';
import { Fork } from './mm/fork.js';
import { Gup, type GupRequest } from './mm/gup.js';
import { Memremap } from './mm/memremap.js';
import { DeviceMigration } from './mm/migrate.js';
import { Mprotect } from './mm/mprotect.js';
import { mremap } from './mm/mremap.js';
import { madvise, type Advice } from './mm/madvise.js';
import { processMadvise } from './mm/pmadvise.js';
import { processMrelease } from './mm/mrelease.js';
import { isDevmemVma, mapDevmem, revokeDevmem } from './mm/devmem.js';
import { addSeals, getSeals, sealCheckMmap, type SealName } from './mm/memfd.js';
import { mmPopulate } from './mm/populate.js';
import { lockNewVma, mlockall, mlockFutureOk, mlockRange } from './mm/mlock.js';
import { inheritMdwe, refuseWriteExec, setMdwe } from './mm/mdwe.js';
import { mseal } from './mm/mseal.js';
import { PageStore, PG } from './mm/pages.js';
import { Ram } from './mm/ram.js';
import { PageCache, type ShmemHugeMode, type TmpfsHuge } from './mm/pagecache.js';
import { IoUring } from './mm/iouring.js';
import { Hugetlb } from './mm/hugetlb.js';
import { HugetlbCgroups } from './mm/hugetlbcg.js';
import { SysvShm } from './ipc/shm.js';
import { Secretmem } from './mm/secretmem.js';
import { Pkeys, type PkeyRegister, type PkeyRights } from './mm/pkeys.js';
import { sliceFixed } from './mm/slices.js';
import { fixedPage, hintPage } from './mm/vaspace.js';
import { Swap } from './mm/swap.js';
import { Ksm } from './mm/ksm.js';
import { Numa, type MbindFlags, type MpolMode } from './mm/mempolicy.js';
import { MemoryFailure } from './mm/memfailure.js';
import { SoftOffline } from './mm/softoffline.js';
import { bindAgain, changeMemoryState, markNamespaceDisabled, MemoryHotplug, reconfigureDevice, unbindSystemRam, type OnlineType } from './mm/hotplug.js';
import { Thp, type ThpEnabledMode } from './mm/thp.js';
import { uffdMove } from './mm/uffdmove.js';
import { splitHugePagesAll, splitHugePagesInFile, splitHugePagesPid, type SplitCount } from './mm/split.js';
import { Userfaultfd, type UffdFeature, type UffdMode, type UffdRangeIoctl } from './mm/userfaultfd.js';
import { PagemapScan, PM_SCAN_ARG_SIZE, PM_SCAN_FLAGS, categoryNames, maskBits, type Mask } from './mm/pagemapscan.js';
import type { ThpSizeMode } from './mm/mthp.js';
import { Vm, type Leaf } from './mm/vm.js';
import { runToCompletion, type Op } from './sched.js';
import { DaxBus, devicePfn, deviceRanges } from './dax/region.js';
import { NdBus } from './dax/nd-region.js';
import { rawDisk, reconfigureNamespace, type ReconfigureNamespaceArgs } from './dax/namespace.js';
import { dmCreate, dmHolder, dmRemove, refuseWhileInDmTable, type DmDevice, type DmTarget } from './dax/dm.js';
import { Badblocks } from './badblocks.js';
import { bdevBadblocks, injectError, injectedIn, namespaceBlocks, pmemExtent, scrub, setBadblocks, type InjectErrorArgs, type SetBadblocksArgs } from './dax/media-errors.js';
import type { Device, GupHandle, Inode, MappingRange, Mm, PageCacheFile, Pte, UffdCtx, Vma } from './types.js';

/** Injection tokens: what plugins provide and core consumes, one child container per kernel. */
export const TOKENS = {
  Mmu: token<Mmu>('Mmu'),
  VmemmapPopulator: token<VmemmapPopulator>('VmemmapPopulator'),
  Features: token<FeatureSet>('Features'),
  RefcountConvention: token<RefcountConvention>('RefcountConvention'),
  EventBus: token<EventBus<KernelEvents>>('EventBus'),
  Filesystem: token<FilesystemPlugin>('Filesystem'),
  PagemapProvider: token<DriverPlugin>('PagemapProvider'),
} as const;

export interface CreateKernelOptions {
  readonly arch: ArchPlugin;
  readonly fs?: FilesystemPlugin | null;
  readonly driver?: DriverPlugin | null;
  /** more drivers a `probe { driver }` may name (the default is `driver`) */
  readonly drivers?: readonly DriverPlugin[];
  /** more filesystems a `mount { fs }` may name */
  readonly filesystems?: readonly FilesystemPlugin[];
  /** a preset name (`daxlab list kernels`) */
  readonly kernel?: string;
  readonly features?: Readonly<Record<string, unknown>>;
}

/**
 * Compose a kernel from plugins (describe, check, instantiate). Throws UnsupportedError with the
 * reason when the real kernel could not be built that way.
 */
export function createKernel(options: CreateKernelOptions): Kernel {
  const version = options.kernel ?? DEFAULT_PRESET;
  presetNamed(version);
  const features = resolveFeatures(version, options.features ?? {});
  const desc: KernelDescription = {
    arch: options.arch.arch,
    pageSize: options.arch.mmu.basePageSize,
    fs: options.fs?.fsName ?? null,
    driver: options.driver?.driverName ?? null,
    version,
    features,
    mmu: options.arch.mmu,
  };
  const reason = unsupportedReason(desc, [options.arch, options.fs ?? null, options.driver ?? null]);
  if (reason) throw new UnsupportedError(reason);
  return new Kernel(desc, options);
}

/** The first reason any part gives for why this kernel cannot exist. */
export function unsupportedReason(desc: KernelDescription, parts: readonly ({ name: string; unsupported?(k: KernelDescription): string | null } | null)[]): string | null {
  if (desc.features['fsdax-refcount'] === 'legacy' && !desc.features['pte-devmap'] && desc.fs) {
    return 'fsdax-refcount=legacy needs pte-devmap=true: legacy fs-dax pages are mapped with devmap PTEs that hold no reference (vm_normal_page() must not return them)';
  }
  for (const p of parts) {
    const r = p?.unsupported?.(desc);
    if (r) return `${p!.name}: ${r}`;
  }
  return null;
}

/** The arguments of Kernel.mmap (the scenario step's). */
export interface MmapArgs {
  process?: string;
  file?: string;
  device?: string;
  anon?: boolean;
  /** /dev/mem at `offset`; a device name: at that device's physical base plus `offset` (ndctl_namespace_get_resource()) */
  devmem?: boolean | string;
  /** MAP_HUGETLB with this huge page size (MAP_HUGE_SHIFT), or 'default' (no size bits: default_hstate) */
  hugetlb?: number | 'default';
  length: number;
  offset?: number;
  shared?: boolean;
  write?: boolean;
  /** PROT_EXEC: VM_EXEC */
  exec?: boolean;
  populate?: boolean;
  locked?: boolean;
  sync?: boolean;
  /** MAP_DROPPABLE (v6.11) instead of MAP_PRIVATE: anonymous memory reclaim may drop */
  droppable?: boolean;
  /** MAP_NORESERVE: VM_NORESERVE (hugetlb reserves nothing at mmap; elsewhere only overcommit accounting, not modelled) */
  noreserve?: boolean;
  /**
   * MAP_FIXED at page `offset` (bytes, page aligned) of mapping `map`'s range, or at byte address
   * `addr`; MAP_FIXED_NOREPLACE with `noreplace`
   */
  fixed?: { map?: string; addr?: number; offset?: number; noreplace?: boolean };
  /** the address hint (bytes; -1 for (void *)-1) of an anonymous mapping without MAP_FIXED (mm/vaspace.ts) */
  addr?: number;
  as: string;
}

/** Faults one CPU access may take in all (Kernel.faultUntil): a model bug cannot loop forever. */
const FAULTS_PER_ACCESS = 64;

/**
 * The simulated kernel: one per run, with its own DI container, event bus and state.
 * Operations are generators (see sched.ts); the methods without a `*` run one to completion.
 */
export class Kernel {
  readonly container: DependencyContainer;
  readonly desc: KernelDescription;
  readonly version: string;
  readonly features: FeatureSet;
  readonly mmu: Mmu;
  readonly populator: VmemmapPopulator;
  readonly convention: RefcountConvention;
  readonly bus: EventBus<KernelEvents>;
  readonly pages: PageStore;
  readonly folios: Folios;
  readonly ram: Ram;
  readonly memremap: Memremap;
  readonly vm: Vm;
  readonly faults: Faults;
  readonly gupper: Gup;
  readonly forker: Fork;
  readonly dax: Dax;
  /** should_fail() sites armed by `inject-fault` steps (fault-inject.ts) */
  readonly faultInject = new FaultInjection();
  /**
   * pmem media errors in physical 512-byte sectors: the nvdimm bus's list, which a namespace's
   * badblocks are populated from at each enable (nvdimm_badblocks_populate()), so they outlive a
   * disable; `memory-failure: { device, block }` adds to it (badblocks.ts)
   */
  readonly badblocks = new Badblocks();
  /** the platform's media errors, what ARS reports: nfit_test's injected list (dax/media-errors.ts) */
  readonly injectedErrors = new Badblocks();
  /**
   * Sectors written by hand into a namespace's /sys/block/pmemX/badblocks (`set-badblocks`:
   * badblocks_store() into pmem->bb alone), by namespace, in physical sectors. Neither the bus's
   * list nor the region's has them; the disk's list is rebuilt from the bus's when the namespace
   * is enabled again (pmem_attach_disk()), so they go with the disk (dax/media-errors.ts).
   */
  readonly diskBadblocks = new Map<string, Badblocks>();
  readonly migration: DeviceMigration;
  readonly mprotector: Mprotect;
  /** userfaultfd registration, userfaults, UFFDIO_COPY / ZEROPAGE / WRITEPROTECT (mm/userfaultfd.ts) */
  readonly uffd: Userfaultfd;
  /** ioctl(PAGEMAP_SCAN) (mm/pagemapscan.ts) */
  readonly pagemap: PagemapScan;
  /** device-exclusive entries (mm/exclusive.ts) */
  readonly exclusive: DeviceExclusive;
  /** anonymous THPs mapped by PMDs (mm/thp.ts) */
  readonly thp: Thp;
  readonly pageCache: PageCache;
  /** hugetlb pools, MAP_HUGETLB and MFD_HUGETLB (mm/hugetlb.ts) */
  readonly hugetlb: Hugetlb;
  /** the hugetlb cgroup controller: cgroups, their counters and who is charged (mm/hugetlbcg.ts) */
  readonly hugetlbCgroups: HugetlbCgroups;
  /** System V shared memory segments (ipc/shm.ts) */
  readonly shm: SysvShm;
  /** shmget's `as` names -> shmid */
  private readonly shmIds = new Map<string, number>();
  readonly secretmem: Secretmem;
  /** protection keys (mm/pkeys.ts) */
  readonly pkeys: Pkeys;
  /** the keys pkey-alloc steps named (`as`) */
  private readonly pkeyNames = new Map<string, number>();
  /** the swap device and swap cache (mm/swap.ts) */
  readonly swap: Swap;
  /** KSM: MADV_MERGEABLE, ksmd's merging, unmerging (mm/ksm.ts) */
  readonly ksm: Ksm;
  /** io_uring fixed buffers (mm/iouring.ts) */
  readonly iouring: IoUring;
  /** memory nodes and NUMA page migration: mbind, move_pages, migrate_pages (mm/mempolicy.ts) */
  readonly numa: Numa;
  /** soft offline of RAM and hugetlb pages, vm.enable_soft_offline (mm/softoffline.ts) */
  readonly softOffliner: SoftOffline;
  /** memory_failure() of RAM pages (madvise(MADV_HWPOISON)) and num_poisoned_pages (mm/memfailure.ts) */
  readonly memoryFailures: MemoryFailure;
  /** memory blocks hot-added by kmem from device-dax, and the auto-online policy (mm/hotplug.ts) */
  readonly hotplug: MemoryHotplug;
  /** dynamic device-dax regions and their instances (daxctl create-device etc., dax/region.ts) */
  readonly daxBus: DaxBus;
  /** libnvdimm pmem regions and the namespaces allocated in them (ndctl create-namespace, dax/nd-region.ts) */
  readonly ndBus: NdBus;
  /** pfn of the shared zero page */
  get zeroPfn(): number {
    return this.ram.basePfn;
  }
  /** first pfn of the huge zero page (mm_get_huge_zero_folio), PMD-aligned after the zero page */
  get hugeZeroPfn(): number {
    return this.ram.basePfn + this.vm.pmdPages;
  }

  /** CONFIG_MEM_SOFT_DIRTY: the arch has a soft-dirty PTE bit (HAVE_ARCH_SOFT_DIRTY) */
  get softDirtyArch(): boolean {
    return this.mmu.pteBits.softDirty === true;
  }

  /** is_zero_pfn() || is_huge_zero_pfn(): never refcounted, never pinned */
  isZeroPfn(pfn: number): boolean {
    return pfn === this.zeroPfn || (pfn >= this.hugeZeroPfn && pfn < this.hugeZeroPfn + this.vm.pmdPages);
  }
  readonly devices = new Map<string, Device>();
  /** raw-mode pmem namespaces (`probe { mode: raw }`): block devices with no dev_pagemap */
  readonly rawNamespaces = new Map<string, RawNamespace>();
  /** device-mapper devices (`dm-create`, dax/dm.ts): block devices over pmem namespaces */
  readonly dmDevices = new Map<string, DmDevice>();
  readonly files = new Map<string, { fs: DaxFilesystem; inode: Inode }>();
  readonly processes = new Map<string, Mm>();
  /** pidfd_open() handles: pidfd name -> the process (task) it refers to */
  readonly pidfds = new Map<string, string>();
  readonly pins = new Map<string, GupHandle>();
  /** the names in `pins` that are io_uring fixed buffers */
  private readonly fixedBuffers = new Set<string>();
  /** which process created each named mapping */
  readonly mapOwners = new Map<string, Mm>();
  readonly warnings: string[] = [];
  /** the simulated thread now running (set by the scheduler) */
  currentThread = 0;
  private readonly driverPlugins = new Map<string, DriverPlugin>();
  private readonly fsPlugins = new Map<string, FilesystemPlugin>();
  private readonly defaultDriver: DriverPlugin | null;
  private readonly defaultFs: FilesystemPlugin | null;
  private nextSpaceId = 1;

  constructor(desc: KernelDescription, options: CreateKernelOptions) {
    this.desc = desc;
    this.version = desc.version;
    const c = (this.container = createKernelContainer());
    c.register(TOKENS.Mmu, { useValue: options.arch.mmu });
    c.register(TOKENS.VmemmapPopulator, { useValue: options.arch.populator });
    c.register(TOKENS.Features, { useValue: desc.features });
    c.register(TOKENS.RefcountConvention, { useValue: conventionFor(desc.features) });
    c.register(TOKENS.EventBus, { useValue: new EventBus<KernelEvents>() });
    if (options.fs) c.register(TOKENS.Filesystem, { useValue: options.fs });
    if (options.driver) c.register(TOKENS.PagemapProvider, { useValue: options.driver });
    // plugins may override what core registered (a proposed convention, a patched populator)
    for (const p of [options.arch, options.fs, options.driver]) (p as { register?(c: DependencyContainer): void } | null | undefined)?.register?.(c);
    this.mmu = c.resolve(TOKENS.Mmu);
    this.populator = c.resolve(TOKENS.VmemmapPopulator);
    this.features = c.resolve(TOKENS.Features);
    this.convention = c.resolve(TOKENS.RefcountConvention);
    this.bus = c.resolve(TOKENS.EventBus);
    this.defaultFs = c.isRegistered(TOKENS.Filesystem) ? c.resolve(TOKENS.Filesystem) : null;
    this.defaultDriver = c.isRegistered(TOKENS.PagemapProvider) ? c.resolve(TOKENS.PagemapProvider) : null;
    for (const d of [this.defaultDriver, ...(options.drivers ?? [])]) if (d && !this.driverPlugins.has(d.driverName)) this.driverPlugins.set(d.driverName, d);
    for (const f of [this.defaultFs, ...(options.filesystems ?? [])]) if (f && !this.fsPlugins.has(f.fsName)) this.fsPlugins.set(f.fsName, f);

    this.memremap = new Memremap(this);
    this.pages = new PageStore((pfn) => this.memremap.initialPage(pfn));
    this.folios = new Folios(this);
    this.ram = new Ram(this);
    this.vm = new Vm(this);
    this.faults = new Faults(this);
    this.gupper = new Gup(this);
    this.forker = new Fork(this);
    this.dax = new Dax(this);
    this.migration = new DeviceMigration(this);
    this.mprotector = new Mprotect(this);
    this.uffd = new Userfaultfd(this);
    this.pagemap = new PagemapScan(this);
    this.exclusive = new DeviceExclusive(this);
    this.thp = new Thp(this);
    this.pageCache = new PageCache(this);
    this.hugetlb = new Hugetlb(this);
    this.hugetlbCgroups = new HugetlbCgroups(this);
    this.shm = new SysvShm(this);
    this.secretmem = new Secretmem(this);
    this.pkeys = new Pkeys(this);
    this.swap = new Swap(this);
    this.ksm = new Ksm(this);
    this.iouring = new IoUring(this);
    this.numa = new Numa(this);
    this.softOffliner = new SoftOffline(this);
    this.memoryFailures = new MemoryFailure(this);
    this.hotplug = new MemoryHotplug(this);
    this.daxBus = new DaxBus(this);
    this.ndBus = new NdBus(this);
    this.processes.set('init', this.vm.newMm('init'));
  }

  // ---- plumbing ------------------------------------------------------------------------

  emit<K extends keyof KernelEvents>(type: K, data: KernelEvents[K]): void {
    this.bus.emit(type, data);
  }

  /** WARN_ON_ONCE(): recorded and emitted; the kernel carries on. */
  warn(message: string): void {
    this.warnings.push(message);
    this.emit('warn', { message });
  }

  lockEvent(lock: string, op: string): void {
    if (this.bus.wants('lock')) this.emit('lock', { lock, op, thread: this.currentThread });
  }

  newAddressSpaceId(): number {
    return this.nextSpaceId++;
  }

  /** Run one operation alone to completion (throws BlockedError if it would wait forever). */
  run<T>(op: Op<T>): T {
    return runToCompletion(op);
  }

  /**
   * mmu_notifier_invalidate_range_start(): every bound device whose driver mirrors process page
   * tables (DriverPlugin.invalidate) hears of the range first. A direct call, not a bus
   * subscription: the explorer replays with the bus muted.
   */
  mmuNotify(range: MmuNotifierRange): void {
    // an unbound mirror's open files still hear of it (test_hmm's notifier belongs to the file)
    for (const device of this.devices.values()) this.driverOf(device).invalidate?.(this, device, range);
  }

  /** A device whose own page table still maps pfn (DriverPlugin.mirrors), or null. */
  deviceMapping(pfn: number): Device | null {
    for (const device of this.devices.values()) if (this.driverOf(device).mirrors?.(this, device, pfn)) return device;
    return null;
  }

  /** The pfn's pgmap was torn down: its struct page no longer exists. */
  isGone(pfn: number): boolean {
    // kmem hot-added the range again as System RAM (mm/hotplug.ts): new struct pages, a RAM page
    if (this.ram.isHotplugged(pfn)) return false;
    // a live pgmap over the range again (a driver bound again, a namespace in a new mode): new struct pages
    if (this.memremap.pgmapOf(pfn)) return false;
    for (const p of this.memremap.pgmaps) if (p.gone && pfn >= p.startPfn && pfn < p.startPfn + p.nrPages) return true;
    return false;
  }

  // ---- hooks the mm code calls into plugins -------------------------------------------

  /** ->fault / ->huge_fault of a DAX file mapping. */
  *fileFault(vmf: Vmf): Op {
    const inode = vmf.vma.inode!;
    yield* this.fsOf(inode).fault(vmf, inode);
  }

  /** ->pfn_mkwrite of a DAX file mapping. */
  *pfnMkwrite(vmf: Vmf): Op {
    const inode = vmf.vma.inode!;
    yield* this.fsOf(inode).pfnMkwrite(vmf, inode);
  }

  /** A fault on a device mapping (device-dax) or on a device-private entry (migrate_to_ram). */
  *deviceFault(vmf: Vmf, leaf: Leaf | null): Op {
    const device = leaf ? this.deviceOfPfn(leaf.pte.pfn) : vmf.vma.device;
    if (!device) throw new KernelError('SIGBUS', `no device behind the fault at ${vmf.vma.name}`);
    const driver = this.driverOf(device);
    if (!driver.fault) throw new KernelError('SIGBUS', `${driver.name} has no fault handler`);
    yield* driver.fault(this, vmf, device, leaf);
  }

  /**
   * copy_nonpresent_pte() for a device-private entry (mm/memory.c, v4.14+): get_page + rss + dup
   * rmap (v5.19+: folio_try_dup_anon_rmap, which never refuses device-private pages and clears
   * PageAnonExclusive); a writable entry in a COW mapping becomes readable in parent and child.
   */
  *copyDevicePrivateEntry(src: Vma, dst: Vma, vpn: number, pte: Pte): Op {
    const head = this.folios.folio(pte.pfn);
    this.folios.get(head, 1, 'copy_nonpresent_pte');
    this.folios.addMap(head);
    // PageAnonExclusive is the page's (a PTE of a PTE-mapped large device folio: its own subpage)
    this.folios.setFlag(pte.pfn, PG.anonExclusive, false);
    const cow = !src.flags.shared && src.flags.write;
    if (cow && pte.write) {
      pte.write = false; // make_readable_device_private_entry + set_pte_at(src_mm)
      this.emit('pte.set', { mm: src.mm.name, vaddr: vpn, pfn: pte.pfn, level: pte.level, write: false, devmap: false, special: false, device: true });
    }
    this.vm.install(dst.mm, vpn, { ...pte });
    yield* [];
  }

  /**
   * check_and_migrate_movable_pages() for FOLL_LONGTERM (mm/gup.c, v6.0+ for device-coherent):
   * a device-coherent page's pin becomes a plain reference and migrate_device_coherent_folio()
   * moves it to system memory; every other pin is released and the caller re-pins (-EAGAIN).
   * Returns true when the caller must retry.
   */
  *checkAndMigrateLongterm(req: GupRequest, pfns: number[]): Op<boolean> {
    if (!pfns.some((pfn) => this.folios.kind(pfn) === 'coherent' || this.onMovableZone(pfn))) return false;
    // collect_longterm_unpinnable_folios(): the ZONE_MOVABLE folios, each once
    const movable = new Set<number>();
    for (let i = 0; i < pfns.length; i++) {
      const pfn = pfns[i]!;
      if (this.isZeroPfn(pfn)) continue;
      const head = this.folios.folio(pfn);
      if (this.folios.kind(head) !== 'coherent') {
        if (this.onMovableZone(head)) movable.add(head);
        this.gupper.ungrab(head, req.pin, 'check_and_migrate_movable_pages: unpin for retry');
        continue;
      }
      this.folios.get(head, 1, 'check_and_migrate_movable_pages: pin -> reference');
      this.gupper.ungrab(head, req.pin, 'check_and_migrate_movable_pages: unpin device-coherent');
      try {
        this.migration.migrateCoherentToRam(pfn);
      } catch (e) {
        // -EBUSY: unpin the pages not looked at yet and fail the whole GUP (goto unpin_pages)
        for (const rest of pfns.slice(i + 1)) if (!this.isZeroPfn(rest)) this.gupper.ungrab(this.folios.folio(rest), req.pin, 'check_and_migrate_movable_pages: unpin on error');
        throw e;
      }
    }
    // migrate_pages(MR_LONGTERM_PIN, alloc_migration_target) with mtc.nid = NUMA_NO_NODE (the
    // folio's own node) and GFP_USER (no __GFP_MOVABLE): a ZONE_NORMAL page of the folio's node if
    // it has ZONE_NORMAL kmem blocks, else of the nearest other node (the zonelist); a folio that
    // does not move fails the pin with -ENOMEM ("ret > 0 ? -ENOMEM : ret"; the v6.x
    // migrate_longterm_unpinnable_folios() the same)
    for (const head of movable) {
      const node = this.numa.nodeOf(head);
      const target = this.ram.hasHotplugged(node, 'Normal') ? node : this.numa.nearestOtherNode(node);
      const r = yield* this.ram.withoutMovable(this.numa.migrateOut(head, target));
      if (r !== 'moved') throw new KernelError('ENOMEM', `FOLL_LONGTERM pin '${req.name}': the ZONE_MOVABLE folio at pfn ${head} could not be migrated (check_and_migrate_movable_pages)`);
    }
    yield* [];
    return true;
  }

  /**
   * A RAM page on ZONE_MOVABLE (a kmem block onlined movable, mm/hotplug.ts) that FOLL_LONGTERM
   * may not pin in place: from v5.13, d1e153fea2a8 "mm/gup: migrate pinned pages out of movable
   * zone" (is_pinnable_page(), now folio_is_longterm_pinnable(): "!folio_is_zone_movable()");
   * before, only CMA pages were moved (check_and_migrate_cma_pages()).
   */
  onMovableZone(pfn: number): boolean {
    return kernelAtLeast(this.version, 5, 13) && this.folios.kind(pfn) === 'ram' && !this.isZeroPfn(pfn) && this.ram.zoneOf(pfn) === 'Movable';
  }

  /** folio_is_longterm_pinnable(). */
  longtermPinnable(head: number): boolean {
    const kind = this.folios.kind(head);
    if (kind === 'zero') return true;
    if (kind === 'coherent') return false;
    if (kind === 'fsdax' && this.features['longterm-fsdax-folio-check']) return false;
    if (this.onMovableZone(head)) return false;
    return true;
  }

  /** vma_is_fsdax(): a DAX file that is not a character device. */
  isFsdaxVma(vma: Vma): boolean {
    return vma.kind === 'file' && vma.inode !== null;
  }

  /** `file[index]` owning the block behind a pfn, for DMA ownership checks. */
  blockOwner(pfn: number): string | null {
    const device = this.deviceOfPfn(pfn);
    const fs = device?.fs as DaxFilesystem | null | undefined;
    return fs ? fs.ownerOfPfn(pfn) : null;
  }

  /**
   * do_cow_fault() of a DAX file: the filesystem's ->fault with vmf->cow_page reads the file page
   * through its iomap (dax_fault_cow_page: a hole is zeroes, a mapped extent is copied), so FUSE
   * reads the host file through a window range it sets up.
   */
  *fileData(vmf: Vmf): Op<string> {
    if (vmf.vma.cacheFile) return this.pageCache.cowData(vmf);
    const inode = vmf.vma.inode;
    if (!inode) return '';
    return yield* this.fsOf(inode).cowData(vmf, inode);
  }

  deviceOfPfn(pfn: number): Device | null {
    const pgmap = this.memremap.pgmapOf(pfn);
    return pgmap ? (this.devices.get(pgmap.device) ?? null) : null;
  }

  fsOf(inode: Inode): DaxFilesystem {
    return inode.device.fs as DaxFilesystem;
  }

  driverOf(device: Device): DriverPlugin {
    const d = this.driverPlugins.get(device.driver);
    if (!d) throw new Error(`no driver plugin '${device.driver}'`);
    return d;
  }

  // ---- names (scenario objects) ---------------------------------------------------------

  device(name: string): Device {
    const d = this.devices.get(name);
    if (!d && this.rawNamespaces.has(name)) throw new InputError(`'${name}' is a raw-mode pmem namespace: it has no dev_pagemap and no struct pages, so only mount (and the files of a filesystem mounted there), block I/O (pread / pwrite with device), the badblocks steps and checks and reconfigure-namespace take it (probe it without mode: raw for an fsdax namespace)`, undefined, 'device');
    if (!d && this.dmDevices.has(name)) throw new InputError(`'${name}' is a device-mapper device: only mount, umount, remount, create, mkdir and dm-remove take it (name the pmem namespace under it instead)`, undefined, 'device');
    if (!d) throw new InputError(`unknown device '${name}'`, undefined, 'device');
    return d;
  }

  /**
   * The block device a filesystem is (or may be) on: a pmem namespace's, or a device-mapper
   * device's that offers DAX. EINVAL for a dm device without DAX: nothing is ever mounted there.
   */
  blockDevice(name: string): Device {
    const disk = this.rawNamespaces.get(name)?.disk;
    if (disk) return disk;
    const dm = this.dmDevices.get(name);
    if (!dm) return this.device(name);
    if (!dm.dax) throw new KernelError('EINVAL', `${name} is not mounted (${dm.noDax})`);
    return dm.dax;
  }

  /** Every block device a filesystem may be on: the bound devices, the dm devices with DAX, then the raw namespaces' disks a filesystem was made on. */
  *blockDevices(): Iterable<Device> {
    yield* this.devices.values();
    for (const dm of this.dmDevices.values()) if (dm.dax) yield dm.dax;
    for (const raw of this.rawNamespaces.values()) if (raw.disk) yield raw.disk;
  }

  file(name: string): { fs: DaxFilesystem; inode: Inode } {
    const f = this.files.get(name);
    if (!f && this.pageCache.named(name)) throw new InputError(`'${name}' is a page-cache file (a memfd, or a tmpfile on a non-DAX disk filesystem), not a file on a DAX mount: only mmap, truncate, punch-hole and checks of refcount, mapcount, mapped, anon take it`, undefined, 'file');
    if (!f) throw new KernelError('ENOENT', `no file '${name}'`);
    f.fs.iget(f.inode); // a lookup sets the inode up again after eviction (fs/daxmode.ts)
    return f;
  }

  process(name: string | undefined): Mm {
    const mm = this.processes.get(name ?? 'init');
    if (!mm) throw new InputError(`unknown process '${name}'`, undefined, 'process');
    if (!mm.alive) throw new KernelError('ESRCH', `process '${name}' has exited`);
    return mm;
  }

  /**
   * A VMA of the named mapping in the given process (default: the process that created it): the
   * one at its start, else any piece munmap or mremap left of it.
   */
  map(name: string, process?: string, noVma: Errno = 'EFAULT'): Vma {
    const mm = this.mapOwner(name, process);
    const pieces = mm.vmas.filter((v) => v.name === name);
    const start = mm.ranges.get(name)?.start;
    // a mapping merged into the VMA below it (Vm.mergeAround) is that VMA now
    const merged = pieces.length === 0 && start !== undefined ? this.vm.vmaAt(mm, start) : null;
    if (merged) return merged;
    if (pieces.length === 0) throw new KernelError(noVma, `mapping '${name}' is not mapped in ${mm.name}`);
    return pieces.find((v) => v.start === start) ?? pieces[0]!;
  }

  /** The process a mapping name is looked up in: the one given, else the one that created it. */
  private mapOwner(name: string, process?: string): Mm {
    const mm = process ? this.process(process) : this.mapOwners.get(name);
    if (!mm) throw new InputError(`unknown mapping '${name}'`, undefined, 'map');
    return mm;
  }

  /**
   * Page `page` of a named mapping: the address origin.start + page (what the program's pointer
   * arithmetic gives) and the VMA covering it now, whichever mapping that is after munmap, split
   * or mremap of parts of it. No VMA there fails with `noVma` (a CPU access: SIGSEGV).
   */
  mapPage(name: string, page: number, process?: string, noVma: Errno = 'EFAULT'): { vma: Vma; vpn: number } {
    const { mm, vpn } = this.mapAddress(name, page, process, noVma);
    const vma = this.vm.vmaAt(mm, vpn);
    if (!vma) throw new KernelError(noVma, `page ${page} of mapping '${name}' is not mapped in ${mm.name} (munmap or mremap took it)`);
    return { vma, vpn };
  }

  /**
   * The address range a mapping name stands for in its process, even when no VMA of that name is
   * left (another mapping moved over all of it). Fails with `noVma` when the process never had it.
   */
  private mapRange(name: string, process?: string, noVma: Errno = 'EFAULT'): { mm: Mm; origin: MappingRange } {
    const mm = this.mapOwner(name, process);
    const origin = mm.ranges.get(name);
    if (!origin) throw new KernelError(noVma, `mapping '${name}' is not mapped in ${mm.name}`);
    return { mm, origin };
  }

  /** The process and virtual page of page `page` of a named mapping, mapped or not. */
  private mapAddress(name: string, page: number, process?: string, noVma: Errno = 'EFAULT'): { mm: Mm; vpn: number } {
    const { origin, mm } = this.mapRange(name, process, noVma);
    if (!Number.isInteger(page) || page < 0 || page >= origin.pages) throw new KernelError('EFAULT', `page ${page} is outside mapping '${name}' (${origin.pages} pages)`);
    return { mm, vpn: origin.start + page };
  }

  pin(name: string): GupHandle {
    const h = this.pins.get(name);
    if (!h) throw new InputError(`unknown pin '${name}'`, undefined, 'pin');
    return h;
  }

  // ---- operations -------------------------------------------------------------------------

  *probe(a: { driver?: string; size: number; align?: number; altmap?: boolean; kind?: string; mode?: 'fsdax' | 'devdax'; as: string; ranges?: ProbeRequest['ranges']; phys?: number; newInfoBlock?: boolean }): Op<Device> {
    if (this.devices.has(a.as) || this.rawNamespaces.has(a.as) || this.dmDevices.has(a.as)) throw new InputError(`device '${a.as}' already exists`, undefined, 'as');
    // ndctl create-namespace -m devdax: a namespace dax_pmem binds as a device-dax instance
    const modeDriver = a.mode === 'devdax' ? 'devdax' : undefined;
    if (modeDriver && a.driver !== undefined && a.driver !== modeDriver) throw new InputError(`probe.mode: a devdax-mode pmem namespace is bound by driver devdax, not ${a.driver}: leave driver out or make it devdax`, undefined, 'mode');
    const fsDriver = a.driver === undefined && !modeDriver ? this.defaultFs?.probeDriver : undefined;
    const name = a.driver ?? modeDriver ?? fsDriver?.driverName ?? this.defaultDriver?.driverName;
    const driver = fsDriver ?? (name ? this.driverPlugins.get(name) : undefined);
    if (fsDriver && !this.driverPlugins.has(fsDriver.driverName)) this.driverPlugins.set(fsDriver.driverName, fsDriver);
    if (!driver) throw new InputError(`no driver plugin '${name ?? '(none)'}' in this kernel`, undefined, 'driver');
    const req: ProbeRequest = { name: a.as, size: a.size, align: a.align ?? null, altmap: a.altmap ?? false, kind: a.kind ?? null, ...(a.mode === 'devdax' ? { namespace: true } : {}), ...(a.ranges?.length ? { ranges: a.ranges, phys: a.ranges[0]!.phys } : {}), ...(a.phys !== undefined ? { phys: a.phys, newInfoBlock: a.newInfoBlock ?? false } : {}) };
    const device = yield* driver.probe(this, req);
    this.devices.set(a.as, device);
    // the driver's devm_request_mem_region() of each range revokes /dev/mem mappings of it (mm/devmem.ts)
    for (const r of deviceRanges(device)) yield* revokeDevmem(this, r.pgmap.startPfn, r.pgmap.nrPages);
    return device;
  }

  /**
   * ndctl create-namespace -m raw: a pmem namespace without a pfn device (RawNamespace); only a
   * pmem driver (nvdimm) has the mode.
   */
  *probeRaw(a: { driver?: string; size: number; as: string; align?: number; altmap?: boolean; kind?: string }): Op<RawNamespace> {
    if (this.devices.has(a.as) || this.rawNamespaces.has(a.as) || this.dmDevices.has(a.as)) throw new InputError(`device '${a.as}' already exists`, undefined, 'as');
    // align and the memmap's place are the pfn device's (nd_pfn): a raw namespace has none
    const extra = (['align', 'altmap', 'kind'] as const).find((f) => a[f] !== undefined);
    if (extra) throw new InputError(`probe.${extra}: a raw-mode namespace has no pfn device, so no ${extra}: leave it out (or leave mode: raw out)`, undefined, extra);
    const name = a.driver ?? this.defaultDriver?.driverName;
    const driver = name ? this.driverPlugins.get(name) : undefined;
    if (!driver) throw new InputError(`no driver plugin '${name ?? '(none)'}' in this kernel`, undefined, 'driver');
    if (!driver.probeRaw) throw new InputError(`probe.mode: driver ${driver.driverName} has no raw mode (a pmem namespace mode: use driver nvdimm, or leave mode out)`, undefined, 'mode');
    const ns = driver.probeRaw(this, { name: a.as, size: a.size, align: null, altmap: false, kind: null });
    this.rawNamespaces.set(a.as, ns);
    yield* [];
    return ns;
  }

  /** ndctl enable-namespace: bind the driver again to the range the device had (mm/hotplug.ts bindAgain()). */
  *bind(a: { device: string }): Op {
    const device = this.device(a.device);
    const driver = this.driverOf(device);
    // Nothing probes a namespace kmem still holds (its instance left device_dax only: bindAgain()'s
    // EBUSY). One whose kmem region leaked is probed again: before v5.5 nd_pmem_probe() ->
    // devm_nsio_enable() claims the whole namespace and fails EBUSY first (bindAgain()'s check);
    // from 8f4b01fcded2 (v5.5) devm_namespace_enable() claims only nd_info_block_reserve() and
    // nd_pfn_clear_memmap_errors() the metadata up to dataoff, so the info block is read and the
    // memmap area cleared before dev_dax_probe() meets the leaked data range (bindAgain()'s EBUSY)
    const leaked = this.hotplug.leakedOf(device.name) !== null;
    const probed = !device.bound && !this.hotplug.memoryOf(device.name) && (!leaked || kernelAtLeast(this.version, 5, 5));
    // nd_pmem_probe() (drivers/nvdimm/pmem.c): nd_pfn_probe() and nd_dax_probe() find no
    // personality when the info block reads back -EIO (nd_pfn_validate() fails with -ENXIO), so
    // the namespace attaches as a raw disk (pmem_attach_disk()): no pfn device, no dev_pagemap, no DAX
    if (probed && driver.enableNamespace?.(this, device) === false) {
      // pmem_attach_disk() claims the whole namespace: the range kmem left requested refuses it
      if (leaked) throw new KernelError('EBUSY', `${device.name}: its info block is unreadable, so nd_pmem_probe() attaches it as a raw disk, and pmem_attach_disk() could not reserve the namespace: kmem's region of it was never released`);
      this.devices.delete(device.name);
      this.rawNamespaces.set(device.name, { name: device.name, size: device.size, phys: device.pgmap.startPfn * this.mmu.basePageSize });
      return yield* [];
    }
    yield* bindAgain(this, device);
  }

  *unbind(a: { device: string; force?: boolean }): Op {
    const device = this.device(a.device);
    // a device-dax instance in system-ram mode: its device_dax side is already gone (mm/hotplug.ts)
    if (this.hotplug.memoryOf(a.device)) {
      unbindSystemRam(this, device, a.force ?? false);
      return yield* [];
    }
    if (!device.bound) throw new KernelError('ENODEV', `${a.device} is not bound`);
    refuseWhileInDmTable(this, a.device, 'disable-namespace');
    yield* this.driverOf(device).unbind(this, device);
    // the disk goes (pmem_release_disk()), and what was set by hand in its badblocks with it
    this.diskBadblocks.delete(a.device);
    device.bound = false;
    markNamespaceDisabled(device);
  }

  /** ndctl create-namespace -f -e: a pmem namespace to another mode on the same range, its data kept (dax/namespace.ts). */
  *reconfigureNamespace(a: ReconfigureNamespaceArgs): Op {
    yield* reconfigureNamespace(this, a);
  }

  /** daxctl reconfigure-device: device-dax to System RAM (kmem) and back (mm/hotplug.ts). */
  *reconfigure(a: { device: string; mode: 'system-ram' | 'devdax' | 'famfs'; online?: boolean; movable?: boolean; force?: boolean; memmapOnMemory?: boolean; node?: number }): Op {
    yield* reconfigureDevice(this, a);
  }

  /** daxctl online-memory / offline-memory: the number of memory blocks whose state changed. */
  *memoryState(a: { device: string; online: boolean; movable?: boolean; mapping?: number }): Op<number> {
    return yield* changeMemoryState(this, a);
  }

  /** echo policy > /sys/devices/system/memory/auto_online_blocks */
  *autoOnlineBlocks(a: { policy: OnlineType }): Op {
    yield* [];
    this.hotplug.setAutoOnline(a.policy);
  }

  /**
   * mount(2) of the device's filesystem with a dax option (fs/daxmode.ts): `true` (the default) is
   * the legacy `-o dax`, `false` no dax option, or dax=always|never|inode where the release has it.
   * Mounting again after `umount` finds what is on the device. `ro`: mount -o ro (SB_RDONLY from
   * the start; `remount` changes it); without it every mount is read-write. `fopenDirectIo` and
   * `directIoAllowMmap` are what a FUSE server answers on this connection (FileServerOptions).
   */
  *mount(a: { device: string; fs?: string; dax?: DaxMountOption; ro?: boolean } & FsMountOptions & FileServerOptions): Op {
    const options: FsMountOptions = { data: a.data, delalloc: a.delalloc, inlineData: a.inlineData, verity: a.verity };
    const server: FileServerOptions = { fopenDirectIo: a.fopenDirectIo, directIoAllowMmap: a.directIoAllowMmap };
    const name = a.fs ?? this.defaultFs?.fsName;
    const plugin = name ? this.fsPlugins.get(name) : undefined;
    if (!plugin) throw new InputError(`no filesystem plugin '${name ?? '(none)'}' in this kernel`, undefined, 'fs');
    // a raw namespace's block device has no DAX: fs_dax_get_by_bdev() finds no dax_device
    // (v5.17+: no QUEUE_FLAG_DAX without PFN_MAP; before, __generic_fsdax_supported() refused
    // pfns that are not devmap); each filesystem answers its dax option on its own, and one that
    // mounts without DAX on a raw namespace is a page-cache filesystem on its disk (rawDisk():
    // every file through the page cache and bios); over a dm device that is not modelled.
    // A namespace in a dm table: dm_get_device() holds its block device claimed, so the mount's
    // exclusive open (get_tree_bdev()) fails
    const holder = dmHolder(this, a.device);
    if (holder) throw new KernelError('EBUSY', `${a.device} is in the table of device-mapper device ${holder.name}, which holds its block device: mount ${holder.name} instead`);
    const dm = this.dmDevices.get(a.device);
    const raw = this.rawNamespaces.get(a.device);
    const noDax = raw ? { name: raw.name, why: 'a raw-mode namespace has no dax_device' } : dm?.noDax ? { name: dm.name, why: `a dm device whose table offers no DAX: ${dm.noDax}` } : null;
    if (noDax) {
      if (plugin.mountWithoutDaxDevice) plugin.mountWithoutDaxDevice(this, noDax, a.dax ?? true);
      if (!raw || !plugin.mountWithoutDaxDevice) throw KernelError.unsupported('EOPNOTSUPP', `${plugin.fsName} on ${noDax.name} (${noDax.why}) without DAX is not modelled`);
    }
    const device = raw ? rawDisk(this, raw) : this.blockDevice(a.device);
    const old = device.fs as DaxFilesystem | null;
    if (old && !old.mounted) {
      if (old.name !== plugin.fsName) throw new KernelError('EINVAL', `${a.device} holds ${old.name}, not ${plugin.fsName}`);
      const mode = old.parseDaxOption(a.dax ?? true);
      old.applyMountOptions(mode, options);
      old.applyServerOptions(server);
      old.daxMode = mode;
      old.mounted = true;
      old.readOnly = a.ro ?? false;
      return yield* [];
    }
    if (device.fs) throw new KernelError('EBUSY', `${a.device} is already mounted`);
    // fs_dax_get_by_bdev() finds no dax_device behind anything but an fsdax-mode pmem namespace (or
    // virtio-fs's window): -o dax cannot mount, so a kernel composed that way cannot run the scenario
    if (!raw && device.pgmap.type !== 'fsdax') throw KernelError.unsupported('EINVAL', `${a.device} has a ${device.pgmap.type} dev_pagemap, not fsdax: mount -o dax needs a pmem namespace in fsdax mode (or virtio-fs's DAX window)`);
    const fs = plugin.mount(this, device);
    fs.bdevDax = !raw;
    const mode = fs.parseDaxOption(a.dax ?? true);
    fs.applyMountOptions(mode, options);
    fs.applyServerOptions(server);
    fs.daxMode = mode;
    fs.readOnly = a.ro ?? false;
    device.fs = fs;
    yield* [];
  }

  /** dmsetup create with a linear table / dmsetup remove (dax/dm.ts). */
  *dmCreate(a: { name: string; table: readonly (Omit<DmTarget, 'offset'> & { offset?: number })[] }): Op {
    yield* dmCreate(this, { name: a.name, table: a.table.map((t) => ({ ...t, offset: t.offset ?? 0 })) });
  }

  *dmRemove(a: { name: string }): Op {
    yield* dmRemove(this, a);
  }

  /** umount, mkdir, chattr, drop-caches, open and close (fs/daxmode.ts) */
  *umount(a: { device: string }): Op {
    yield* umount(this, a);
  }

  /** mount -o remount,ro / remount,rw (fs/daxmode.ts) */
  *remount(a: { device: string; ro: boolean }): Op {
    yield* remount(this, a);
  }

  *mkdir(a: { dir: string; in?: string; device?: string }): Op {
    yield* mkdir(this, a);
  }

  *chattr(a: { file?: string; dir?: string; dax?: boolean; journal?: boolean }): Op {
    yield* chattr(this, a);
  }

  *rename(a: { file?: string; dir?: string; into: string }): Op {
    yield* rename(this, a);
  }

  /** FS_IOC_ENABLE_VERITY of a file (`fsverity enable`, which opens it read-only). */
  *fsverityEnable(a: { file: string }): Op {
    const { fs, inode } = this.file(a.file);
    yield* fs.enableVerity(inode);
  }

  *dropCaches(_a: Record<string, never>): Op {
    yield* dropCaches(this);
  }

  /** fsync(2) of a file (fs/journal.ts); a memfd's f_op is noop_fsync. */
  *fsync(a: { file: string }): Op {
    yield* [];
    if (this.pageCache.named(a.file)) return;
    const { fs, inode } = this.file(a.file);
    fs.fsync(inode, 'vfs_fsync_range');
  }

  /**
   * msync(MS_SYNC) of a whole mapping (mm/msync.c): vfs_fsync_range(datasync) of the file of every
   * VM_SHARED file VMA in its range, DAX or page cache; private and anonymous VMAs need nothing.
   * Pages of the range no VMA covers (unmapped since) make it fail with ENOMEM, after the rest.
   */
  *msync(a: { map: string; process?: string }): Op {
    yield* [];
    const { origin, mm } = this.mapRange(a.map, a.process, 'ENOMEM');
    const end = origin.start + origin.pages;
    let covered = 0;
    for (const vma of mm.vmas) {
      if (vma.start >= end || vma.start + vma.pages <= origin.start) continue;
      covered += Math.min(end, vma.start + vma.pages) - Math.max(origin.start, vma.start);
      if (!vma.flags.shared) continue;
      const f = [...this.files.values()].find((x) => x.inode === vma.inode || (vma.cacheFile !== undefined && x.inode.cache === vma.cacheFile));
      if (f) f.fs.fsync(f.inode, 'msync');
    }
    if (covered < origin.pages) throw new KernelError('ENOMEM', `msync of '${a.map}': ${origin.pages - covered} of its pages are not mapped`);
  }

  /** dm-log-writes: mark the log, replay it to a mark (fs/journal.ts). */
  *logMark(a: { device: string; mark: string }): Op {
    yield* [];
    markLog(this.filesystemOn(a.device), a.mark);
  }

  *logReplay(a: { device: string; mark: string }): Op {
    yield* [];
    replayLog(this, this.filesystemOn(a.device), a.mark);
  }

  /** The filesystem made on a device, mounted or not (EINVAL when none ever was). */
  private filesystemOn(device: string): DaxFilesystem {
    const fs = this.blockDevice(device).fs as DaxFilesystem | null;
    if (!fs) throw new KernelError('EINVAL', `no filesystem on ${device}: mount it first (mkfs and mount)`);
    return fs;
  }

  *open(a: { file: string; as: string; write?: boolean }): Op {
    yield* openFile(this, a);
  }

  *close(a: { name: string }): Op {
    yield* closeFile(this, a);
  }

  private mountedFs(): DaxFilesystem {
    const mounted = mountedFilesystems(this);
    if (mounted.length === 0) throw new KernelError('ENOENT', 'no filesystem is mounted');
    return mounted[0]!;
  }

  *create(a: { file: string; size: number; device?: string; dir?: string; inline?: boolean }): Op {
    if (this.files.has(a.file) || this.pageCache.named(a.file)) throw new KernelError('EEXIST', `file '${a.file}' exists`);
    const fs = a.device ? mountedOn(this, a.device) : this.mountedFs();
    fs.checkWritable(`create '${a.file}'`); // lookup_open(): O_CREAT without write access to the mount
    const inode = yield* fs.create(a.file, a.size, a.dir, { inline: a.inline ?? false });
    this.files.set(a.file, { fs, inode });
  }

  *truncate(a: { file: string; size: number }): Op {
    const memfd = this.pageCache.named(a.file);
    if (memfd?.hugetlb) return yield* this.hugetlb.truncate(memfd, a.size);
    if (memfd?.secretmem) return this.secretmem.setSize(memfd, a.size);
    if (memfd) return yield* this.pageCache.truncate(memfd, a.size);
    const { fs, inode } = this.file(a.file);
    fs.checkWritable(`truncate '${a.file}'`); // vfs_truncate() -> mnt_want_write()
    yield* fs.truncate(inode, a.size);
  }

  *punchHole(a: { file: string; offset: number; length: number }): Op {
    const memfd = this.pageCache.named(a.file);
    if (memfd?.secretmem) throw new KernelError('EOPNOTSUPP', `punch hole of secretmem file '${a.file}' (vfs_fallocate: secretmem_fops has no ->fallocate)`);
    if (memfd?.hugetlb) return yield* this.hugetlb.punchHole(memfd, a.offset, a.length);
    if (memfd) return yield* this.pageCache.punchHole(memfd, a.offset, a.length);
    const { fs, inode } = this.file(a.file);
    fs.checkWritable(`open '${a.file}' for fallocate`); // the descriptor must be open for writing
    yield* fs.punchHole(inode, a.offset, a.length);
  }

  *reflink(a: { from: string; to: string }): Op {
    const { fs, inode } = this.file(a.from);
    if (this.files.has(a.to)) throw new KernelError('EEXIST', `file '${a.to}' exists`);
    fs.checkWritable(`create '${a.to}' for FICLONE`); // the destination is created and opened for writing
    const dst = yield* fs.reflink(inode, a.to);
    this.files.set(a.to, { fs, inode: dst });
  }

  /** memfd_secret(flags) [+ ftruncate(size)]: a secretmem file (mm/secretmem.ts). */
  *memfdSecret(a: { file: string; size?: number; flags?: number }): Op {
    this.secretmem.create(a.file, a.flags ?? 0, a.size);
    yield* [];
  }

  /**
   * setrlimit(RLIMIT_MEMLOCK, { limit, limit }) and cap_set_proc() of an empty set, as
   * memfd_secret.c's set_cap_limits() does: the process loses CAP_IPC_LOCK, so the limit binds
   * mmap(MAP_LOCKED), secretmem mmap, mlock and mlockall (mm/mlock.ts). Bytes, rounded down to pages.
   */
  *setrlimit(a: { memlock: number; process?: string }): Op {
    this.process(a.process).memlockLimit = Math.floor(a.memlock / this.mmu.basePageSize);
    yield* [];
  }

  /** pkey_alloc(0, init_val) (mm/pkeys.ts): returns the key, remembered under `as`. */
  *pkeyAlloc(a: { rights?: PkeyRights; as?: string; process?: string; thread?: string }): Op<number> {
    const key = this.pkeys.alloc(this.process(a.process), a.rights ?? 'none', a.thread);
    if (a.as !== undefined) this.pkeyNames.set(a.as, key);
    yield* [];
    return key;
  }

  /** pkey_free(key) (mm/pkeys.ts). */
  *pkeyFree(a: { pkey: number | string; process?: string }): Op {
    this.pkeys.free(this.process(a.process), this.pkeyNumber(a.pkey));
    yield* [];
  }

  /** pkey_set(key, rights): the calling thread's rights register (x86 WRPKRU, powerpc AMR, arm64 POR_EL0; mm/pkeys.ts). */
  *pkeySet(a: { pkey: number | string; rights: PkeyRights; process?: string; thread?: string }): Op {
    this.pkeys.set(this.process(a.process), this.pkeyNumber(a.pkey), a.rights, a.thread);
    yield* [];
  }

  /** A key as a step names it: a number, or the `as` of a pkey-alloc. */
  pkeyNumber(ref: number | string): number {
    if (typeof ref === 'number') return ref;
    const key = this.pkeyNames.get(ref);
    if (key === undefined) throw new InputError(`no pkey-alloc named '${ref}' ran before: give its \`as\` name or a key number`, undefined, 'pkey');
    return key;
  }

  /** memfd_create() + ftruncate() [+ fallocate()]: a tmpfs file (mm/pagecache.ts); `sealing` is MFD_ALLOW_SEALING (mm/memfd.ts). */
  *memfdCreate(a: { file: string; size: number; fallocate?: boolean; hugetlb?: number | 'default'; sealing?: boolean }): Op {
    // MFD_HUGETLB (with the size in MFD_HUGE_SHIFT): a hugetlbfs file (mm/hugetlb.ts)
    this.pageCache.create(a.file, a.size, a.fallocate ?? false, a.hugetlb === undefined ? undefined : this.hugetlb.memfdHstate(a.hugetlb, a.size), a.sealing ?? false);
    yield* [];
  }

  /** fcntl(fd, F_ADD_SEALS, seals) of a memfd (mm/memfd.ts). */
  *addSeals(a: { file: string; seals: readonly SealName[] }): Op {
    addSeals(this, this.sealable(a.file, 'F_ADD_SEALS'), a.seals);
    yield* [];
  }

  /** fcntl(fd, F_GET_SEALS) of a memfd (mm/memfd.ts). */
  getSeals(name: string): number {
    return getSeals(this.sealable(name, 'F_GET_SEALS'));
  }

  /** The page-cache file a seal command names; a file on a DAX mount has no seals (memfd_file_seals_ptr: EINVAL). */
  private sealable(name: string, op: string): PageCacheFile {
    const memfd = this.pageCache.named(name);
    if (memfd) return memfd;
    this.file(name); // ENOENT for a name that is no file
    throw new KernelError('EINVAL', `${op} of '${name}': only a memfd has seals (memfd_file_seals_ptr)`);
  }

  /**
   * fallocate(fd, mode, offset, length). A memfd: pages allocated into a tmpfs (mm/pagecache.ts)
   * or hugetlbfs (mm/hugetlb.ts) page cache. A file on a DAX mount: the filesystem's ->fallocate
   * (allocate, zero, collapse, insert and unshare range; fs/filesystem.ts). vfs_fallocate()
   * [fs/open.c] refuses an empty range (-EINVAL), the mode combinations checkFallocateMode()
   * lists, and a range past s_maxbytes (-EFBIG). A tmpfile on a non-DAX disk only reserves
   * blocks: not modelled.
   */
  *fallocate(a: { file: string; offset?: number; length: number; keepSize?: boolean; mode?: FallocateMode }): Op {
    const mode = a.mode ?? 'allocate';
    const memfd = this.pageCache.named(a.file);
    // open(O_WRONLY) of a file on a read-only mount fails before vfs_fallocate() is reached
    if (!memfd) this.file(a.file).fs.checkWritable(`open '${a.file}' for fallocate`);
    if (a.length <= 0) throw new KernelError('EINVAL', `fallocate of '${a.file}': length ${a.length} (vfs_fallocate wants len > 0)`);
    this.checkFallocateMode(a.file, mode, a.keepSize ?? false);
    // vfs_fallocate() asks for ->fallocate after the range and mode checks
    if (memfd?.secretmem) throw new KernelError('EOPNOTSUPP', `fallocate of secretmem file '${a.file}' (vfs_fallocate: secretmem_fops has no ->fallocate)`);
    if (!memfd) {
      const { fs, inode } = this.file(a.file);
      // vfs_fallocate(): "Check for wraparound", then offset + len past s_maxbytes
      if ((a.offset ?? 0) + a.length > fs.maxBytes) throw new KernelError('EFBIG', `fallocate of '${a.file}' at ${a.offset ?? 0}+${a.length}: past ${fs.name}'s s_maxbytes ${fs.maxBytes} (vfs_fallocate)`);
      return yield* fs.fallocate(inode, mode, a.offset ?? 0, a.length, a.keepSize ?? false);
    }
    if (memfd.writeback) throw KernelError.unsupported('EOPNOTSUPP', `fallocate of '${a.file}' (a tmpfile on a non-DAX disk filesystem: blocks, no page cache) is not modelled`);
    // shmem_fallocate() and hugetlbfs_fallocate() take FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE only
    if (mode !== 'allocate') throw new KernelError('EOPNOTSUPP', `fallocate(${FALLOC_FLAG[mode]}) of memfd '${a.file}' (${memfd.hugetlb ? 'hugetlbfs_fallocate' : 'shmem_fallocate'} takes only KEEP_SIZE and PUNCH_HOLE)`);
    if (memfd.hugetlb) this.hugetlb.fallocate(memfd, a.offset ?? 0, a.length, a.keepSize ?? false);
    else this.pageCache.fallocate(memfd, a.offset ?? 0, a.length, a.keepSize ?? false);
    yield* [];
  }

  /**
   * vfs_fallocate()'s mode checks [fs/open.c]. Up to v6.11 COLLAPSE_RANGE and INSERT_RANGE take
   * no other flag (-EINVAL) and UNSHARE_RANGE only KEEP_SIZE. v6.12 (2f6369068139 "fs: sort out
   * the fallocate mode vs flag mess") switches on the mode: KEEP_SIZE with COLLAPSE_RANGE or
   * INSERT_RANGE (and WRITE_ZEROES) is -EOPNOTSUPP. FALLOC_FL_WRITE_ZEROES (0x80) came in v6.17
   * ("fs: introduce FALLOC_FL_WRITE_ZEROES to fallocate" [M: release from the 6.17 notes]); before
   * it the bit is outside FALLOC_FL_SUPPORTED_MASK: -EOPNOTSUPP.
   */
  private checkFallocateMode(file: string, mode: FallocateMode, keepSize: boolean): void {
    const what = `fallocate(${FALLOC_FLAG[mode]}${keepSize ? ' | FALLOC_FL_KEEP_SIZE' : ''}) of '${file}'`;
    if (mode === 'write-zeroes' && !kernelAtLeast(this.version, 6, 17)) throw new KernelError('EOPNOTSUPP', `${what}: FALLOC_FL_WRITE_ZEROES arrived in v6.17 (vfs_fallocate: unknown mode bit)`);
    if (!keepSize || !['collapse-range', 'insert-range', 'write-zeroes'].includes(mode)) return;
    if (kernelAtLeast(this.version, 6, 12)) throw new KernelError('EOPNOTSUPP', `${what}: the mode takes no KEEP_SIZE (vfs_fallocate, v6.12+)`);
    throw new KernelError('EINVAL', `${what}: the mode takes no other flag (vfs_fallocate up to v6.11)`);
  }

  /**
   * A file in the page cache of a non-DAX ext4 / xfs (mm/pagecache.ts createOnDisk), or of a tmpfs
   * mounted with -o huge=<huge> (createOnTmpfs; default huge=never, tmpfs_huge's default). A tmpfs
   * mount needs CONFIG_TRANSPARENT_HUGEPAGE for any huge= other than never (shmem_parse_one():
   * "huge=" is rejected without it -- here: an MMU without THP).
   */
  *tmpfile(a: { file: string; fs: 'ext4' | 'xfs' | 'tmpfs'; size: number; huge?: TmpfsHuge }): Op {
    if (a.fs !== 'tmpfs') this.pageCache.createOnDisk(a.file, a.size, a.fs);
    else {
      const huge = a.huge ?? 'never';
      if (huge !== 'never' && this.mmu.transparentHugepage === false) throw new KernelError('EINVAL', `mount -t tmpfs -o huge=${huge}: this MMU has no THP (shmem_parse_one() refuses huge=)`);
      this.pageCache.createOnTmpfs(a.file, a.size, huge);
    }
    yield* [];
  }

  /** echo N > /sys/kernel/mm/hugepages/hugepages-<size>kB/nr_hugepages, or node<n>'s own file with `node` (mm/hugetlb.ts). */
  *hugetlbPool(a: { size: number; pages: number; node?: number }): Op {
    this.hugetlb.setPool(a.size, a.pages, a.node);
    yield* [];
  }

  /**
   * echo value > /proc/sys/<name>: vm.hugetlb_optimize_vmemmap (HVO for pages joining a hugetlb
   * pool from now on: mm/hugetlb.ts), vm.enable_soft_offline (v6.11: mm/softoffline.ts).
   */
  *sysctl(a: { name: 'vm.hugetlb_optimize_vmemmap' | 'vm.enable_soft_offline'; value: 0 | 1 }): Op {
    if (a.name === 'vm.enable_soft_offline') this.softOffliner.setEnabled(a.value === 1);
    else this.hugetlb.setOptimizeVmemmap(a.value === 1);
    yield* [];
  }

  /** echo <enabled> > /sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/enabled (v6.8+: mm/mthp.ts). */
  *thpSize(a: { size: number; enabled: ThpSizeMode }): Op {
    this.thp.sizes.set(a.size, a.enabled);
    yield* [];
  }

  /**
   * echo mode > /sys/kernel/mm/transparent_hugepage/shmem_enabled (mm/shmem.c shmem_enabled_store,
   * v4.8): ENOENT where the MMU has no THP (hugepage_init() fails, no sysfs directory).
   */
  *shmemEnabled(a: { mode: ShmemHugeMode }): Op {
    if (this.mmu.transparentHugepage === false) throw new KernelError('ENOENT', 'transparent_hugepage/shmem_enabled does not exist: this MMU has no THP (hugepage_init() failed)');
    this.pageCache.shmemEnabled = a.mode;
    yield* [];
  }

  /** echo N > /sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_{none,swap,shared} (mm/collapse.ts). */
  *khugepagedLimits(a: { maxPtesNone?: number; maxPtesSwap?: number; maxPtesShared?: number }): Op {
    this.thp.khugepaged.configure(a);
    yield* [];
  }

  /** One khugepaged pass over a mapping's VMAs (khugepaged_scan_mm_slot(): mm/collapse.ts). */
  *khugepagedScan(a: { map: string; process?: string }): Op {
    const { origin, mm } = this.mapRange(a.map, a.process);
    const { start, pages } = this.rangeIn(a.map, origin);
    yield* this.thp.khugepaged.scan(mm, start, start + pages);
  }

  /**
   * A write to /sys/kernel/debug/split_huge_pages (mm/split.ts): `pid,vaddr_start,vaddr_end,new_order
   * [,in_folio_offset]` over `length` bytes at `offset` in a mapping (default all of it) of its
   * process, `<path>,off_start,off_end,...` over a file's page cache (offsets in bytes, default
   * to i_size), or `1` (`all`: every THP in RAM). The "split of total" count it would pr_debug() is returned and on the bus.
   */
  *splitHugePages(a: { map?: string; file?: string; all?: boolean; offset?: number; length?: number; order?: number; at?: number; process?: string }): Op<SplitCount> {
    const order = a.order ?? 0;
    if (a.all) {
      yield* [];
      return splitHugePagesAll(this);
    }
    if (a.file !== undefined) {
      const ps = this.mmu.basePageSize;
      const first = Math.floor((a.offset ?? 0) / ps);
      const end = a.length === undefined ? (this.pageCache.named(a.file)?.pages ?? 0) : Math.ceil(((a.offset ?? 0) + a.length) / ps);
      yield* [];
      return splitHugePagesInFile(this, a.file, first, end, order, a.at);
    }
    if (a.map === undefined) throw new InputError('split-huge-pages needs a map (the pid form) or a file (the path form)', undefined, 'map');
    const { origin, mm } = this.mapRange(a.map, a.process);
    const { start, pages } = this.rangeIn(a.map, origin, a.offset, a.length);
    return yield* splitHugePagesPid(this, mm, start, start + pages, order, a.at);
  }

  /** swapoff(2) of the swap device (mm/swap.ts). */
  *swapoff(): Op {
    yield* this.swap.swapoff();
  }

  *spawn(a: { as: string }): Op {
    if (this.processes.has(a.as)) throw new InputError(`process '${a.as}' already exists`, undefined, 'as');
    this.processes.set(a.as, this.vm.newMm(a.as));
    this.hugetlbCgroups.forked('init', a.as); // a new process is init's descendant: its cgroup
    yield* [];
  }

  /**
   * mmap(2). With `fixed`, MAP_FIXED at page `offset` of another mapping's range (mapped or not):
   * mmap_region() unmaps what is there first -- a sealed VMA makes it EPERM (mm/mseal.ts), returned
   * as it is; the unmap's other failures are ENOMEM -- and the new VMA takes exactly that place.
   * With `fixed.noreplace`, MAP_FIXED_NOREPLACE (a4ff8e8620d3, v4.17): do_mmap() returns EEXIST
   * when any VMA intersects the range (find_vma_intersection()) and unmaps nothing.
   */
  *mmap(a: MmapArgs): Op<Vma> {
    return yield* this.mmapWith(a, a.file !== undefined ? this.pageCache.named(a.file) : null);
  }

  /** mmap() of `a` with the page-cache file it maps (a memfd, a SysV shm segment's file), if any. */
  private *mmapWith(a: MmapArgs, memfd: PageCacheFile | null): Op<Vma> {
    const mm = this.process(a.process);
    try {
      // ksys_mmap_pgoff(): MAP_HUGETLB's size bits through hstate_sizelog(), 0 the default hstate
      const { hugetlb, ...rest } = a;
      return yield* this.mmapPlaced({ ...rest, ...(hugetlb !== undefined ? { hugetlb: this.hugetlb.pageSize(hugetlb) } : {}) }, memfd);
    } finally {
      // one-shot: never left for a later placement
      delete mm.fixedPlacement;
      delete mm.fixedAbsolute;
      delete mm.addressHint;
    }
  }

  private *mmapPlaced(a: Omit<MmapArgs, 'hugetlb'> & { hugetlb?: number }, memfd: PageCacheFile | null): Op<Vma> {
    const mm = this.process(a.process);
    if (mm.vmas.some((v) => v.name === a.as)) throw new InputError(`mapping '${a.as}' already exists in ${mm.name}`, undefined, 'as');
    const ps = this.mmu.basePageSize;
    if (a.length <= 0) throw new KernelError('EINVAL', 'mmap length must be positive');
    const offset = a.offset ?? 0;
    if (offset % ps !== 0) throw new KernelError('EINVAL', `mmap offset ${offset} is not page aligned`);
    const pages = Math.ceil(a.length / ps);
    const shared = a.shared ?? false;
    const write = a.write ?? false;
    let vma: Vma;
    // do_mmap(MAP_SHARED_VALIDATE): shmem_file_operations have no mmap_supported_flags
    if (a.sync && memfd) throw new KernelError('EOPNOTSUPP', `mmap MAP_SYNC of '${a.file}': a memfd's f_op has no MAP_SYNC in mmap_supported_flags`);
    // do_mmap(): MAP_LOCKED (or mlockall(MCL_FUTURE)'s def_flags) must fit RLIMIT_MEMLOCK: can_do_mlock() EPERM, mlock_future_ok() EAGAIN
    if ((a.locked || mm.lockFuture) && mm.memlockLimit !== undefined) {
      if (a.locked && mm.memlockLimit === 0) throw new KernelError('EPERM', `mmap '${a.as}' with MAP_LOCKED: RLIMIT_MEMLOCK is 0 and the process lacks CAP_IPC_LOCK (can_do_mlock)`);
      if (!mlockFutureOk(mm, pages)) throw new KernelError('EAGAIN', `mmap '${a.as}' locked: ${pages} page(s) exceed RLIMIT_MEMLOCK (${mm.memlockLimit} pages) without CAP_IPC_LOCK (mlock_future_ok)`);
    }
    if (a.droppable) {
      // do_mmap(): MAP_DROPPABLE (0x08) is a MAP_TYPE of its own from 9651fcedf7b9 (v6.11); before
      // it, and for a file (only SHARED, SHARED_VALIDATE, PRIVATE there) or with MAP_SHARED (type
      // 0x09), the type switch ends in "default: return -EINVAL"
      if (!kernelAtLeast(this.version, 6, 11)) throw new KernelError('EINVAL', `mmap '${a.as}' MAP_DROPPABLE: not a mapping type before v6.11 (9651fcedf7b9)`);
      if (!a.anon || shared) throw new KernelError('EINVAL', `mmap '${a.as}' MAP_DROPPABLE: private anonymous memory only (do_mmap() MAP_TYPE switch)`);
      // "A locked or stack area makes no sense to be droppable ... And don't attempt to combine with hugetlb for now"
      if (a.locked || a.hugetlb !== undefined) throw new KernelError('EINVAL', `mmap '${a.as}' MAP_DROPPABLE with ${a.locked ? 'MAP_LOCKED' : 'MAP_HUGETLB'}`);
    }
    const prot = { write, exec: a.exec ?? false };
    const mdweFirst = kernelAtLeast(this.version, 6, 12);
    if (a.addr !== undefined) {
      if (a.fixed) throw new InputError(`mmap '${a.as}': addr is a hint; MAP_FIXED at an address is fixed: { addr }`, undefined, 'addr');
      if (!a.anon) throw new InputError(`mmap '${a.as}': an address hint is modelled for anonymous mappings (anon: true) only`, undefined, 'addr');
      const hint = hintPage(this, a.addr);
      if (hint !== 0) mm.addressHint = hint;
    }
    if (a.fixed) {
      const huge = memfd?.hugetlb ?? (a.hugetlb !== undefined ? this.hugetlb.hstate(a.hugetlb) : null);
      const span = huge ? Math.ceil(pages / huge.pages) * huge.pages : pages;
      let at: number;
      if (a.fixed.addr !== undefined) {
        at = fixedPage(this, a.fixed.addr, span);
      } else {
        const map = a.fixed.map ?? '';
        const target = this.mapRange(map, a.process);
        if (target.mm !== mm) throw new InputError(`mmap MAP_FIXED places a mapping in its own process: '${map}' is mapped in ${target.mm.name}, not ${mm.name}`, undefined, 'fixed');
        const fixedOffset = a.fixed.offset ?? 0;
        if (fixedOffset % ps !== 0) throw new KernelError('EINVAL', `mmap MAP_FIXED at offset ${fixedOffset} of '${map}': not page aligned`);
        at = target.origin.start + fixedOffset / ps;
      }
      // do_mmap() -> get_unmapped_area(MAP_FIXED) before mmap_region() unmaps the old VMAs: on an
      // MMU with slices, those still count against a slice of another page size (mm/slices.ts)
      sliceFixed(this.mmu, mm, at, span, huge?.pages ?? 1);
      // do_mmap(): MAP_FIXED_NOREPLACE is MAP_FIXED for get_unmapped_area(), then EEXIST on any
      // overlap -- before mmap_region(), so neither a seal nor MDWE is asked
      if (a.fixed.noreplace) {
        const hit = mm.vmas.find((v) => v.start < at + pages && at < v.start + v.pages);
        if (hit) throw new KernelError('EEXIST', `mmap MAP_FIXED_NOREPLACE at pages ${at}..${at + pages - 1} of ${mm.name}: '${hit.name}' maps pages ${hit.start}..${hit.start + hit.pages - 1} (find_vma_intersection)`);
      }
      if (mdweFirst) refuseWriteExec(mm, prot, prot, `mmap '${a.as}'`);
      try {
        if (!a.fixed.noreplace) yield* this.vm.munmapRange(mm, at, at + pages);
      } catch (e) {
        // mmap_region(): "if (error == -EPERM) return error; else if (error) return -ENOMEM" (v6.10; the error itself from v6.12)
        if (e instanceof KernelError && e.code !== 'EPERM' && e.unsupported === null) throw new KernelError('ENOMEM', `mmap MAP_FIXED over pages ${at}..${at + pages - 1}: ${e.message}`);
        throw e;
      }
      mm.fixedPlacement = at;
      if (a.fixed.addr !== undefined) mm.fixedAbsolute = true;
    }
    // mmap_region(): map_deny_write_exec() of the new VMA's flags; until v6.12 [M] ("mm: resolve
    // faulty mmap_region() error path behaviour") after MAP_FIXED had unmapped the old range
    if (!mdweFirst || !a.fixed) refuseWriteExec(mm, prot, prot, `mmap '${a.as}'`);
    if (memfd?.secretmem) {
      vma = this.secretmem.mmap(mm, { pages, pgoff: offset / ps, shared, write, as: a.as }, memfd);
    } else if (memfd?.hugetlb || a.hugetlb !== undefined) {
      // MAP_HUGETLB, or a memfd made with MFD_HUGETLB: a hugetlbfs mapping (mm/hugetlb.ts)
      if (a.hugetlb !== undefined && !a.anon) throw new InputError(`mmap '${a.as}': hugetlb (MAP_HUGETLB) goes with anon: true; a hugetlbfs memfd brings its own page size`, undefined, 'hugetlb');
      vma = this.hugetlb.mmap(mm, { length: a.length, offset, shared, write, as: a.as, noreserve: a.noreserve ?? false, ...(a.hugetlb !== undefined ? { hugetlb: a.hugetlb } : {}) }, memfd);
    } else if (memfd || (a.anon && shared)) {
      // a memfd (shmem_mmap), or MAP_SHARED|MAP_ANONYMOUS: do_mmap() -> shmem_zero_setup() gives the
      // VMA a tmpfs file of its length (and pgoff 0), so it is a file VMA whose pages live in the page cache
      // shmem_mmap()'s seal check and mapping_map_writable() (mm/memfd.ts)
      const sealed = memfd ? sealCheckMmap(this, memfd, { shared, write, as: a.as }) : { noMayWrite: false };
      const file = memfd ?? this.pageCache.zeroSetup(a.as, pages);
      const start = this.vm.placeVma(mm, pages, 1);
      vma = this.vm.addVma(mm, { name: a.as, start, pages, pgoff: memfd ? offset / ps : 0, flags: this.vm.flags({ write, shared, ...(sealed.noMayWrite ? { nomaywrite: true } : {}) }), kind: 'pagecache', inode: null, device: null, cacheFile: file, anonVma: 0 });
    } else if (a.file !== undefined && this.file(a.file).inode.cache) {
      // a file without S_DAX on a DAX-capable mount: its page cache (filemap_fault, ->page_mkwrite)
      const { fs, inode } = this.file(a.file);
      const nomaywrite = this.openForMmap(fs, inode, shared, write);
      if (a.sync) checkMapSync(fs, inode);
      yield* fs.mmapPageCache(inode, shared);
      const start = this.vm.placeVma(mm, pages, 1);
      vma = this.vm.addVma(mm, { name: a.as, start, pages, pgoff: offset / ps, flags: this.vm.flags({ write, shared, ...nomaywrite }), kind: 'pagecache', inode: null, device: null, cacheFile: inode.cache!, anonVma: 0 });
    } else if (a.file !== undefined) {
      const { fs, inode } = this.file(a.file);
      const nomaywrite = this.openForMmap(fs, inode, shared, write);
      if (a.sync) checkMapSync(fs, inode);
      const start = this.vm.placeVma(mm, pages, 1);
      vma = this.vm.addVma(mm, { name: a.as, start, pages, pgoff: offset / ps, flags: this.vm.flags({ write, shared, ...fs.mmapFlags, ...nomaywrite, ...(a.sync ? { sync: true } : {}) }), kind: 'file', inode, device: null, anonVma: 0 });
    } else if (a.devmem) {
      // /dev/mem: a VM_PFNMAP mapping of physical pages at `offset` (mm/devmem.ts)
      const base = typeof a.devmem === 'string' ? this.device(a.devmem).pgmap.startPfn * ps : 0;
      vma = mapDevmem(this, mm, { offset: base + offset, length: a.length, shared, write, as: a.as });
    } else if (a.device !== undefined) {
      const device = this.device(a.device);
      const driver = this.driverOf(device);
      if (!driver.mmapDevice) throw new KernelError('ENODEV', `${a.device} cannot be mmapped directly (${driver.driverName})`);
      const { flags, align } = driver.mmapDevice(this, device, { length: a.length, offset, shared, write });
      const start = this.vm.placeVma(mm, pages, align / ps);
      vma = this.vm.addVma(mm, { name: a.as, start, pages, pgoff: offset / ps, flags: this.vm.flags({ write, shared, ...flags }), kind: 'device', inode: null, device, anonVma: 0 });
      if (driver.populate) yield* driver.populate(this, device, vma);
    } else {
      const start = this.vm.placeVma(mm, pages, 1);
      // MAP_DROPPABLE: VM_DROPPABLE, and VM_WIPEONFORK ("they're volatile enough that they
      // shouldn't survive forks or coredumps"; VM_NORESERVE and VM_DONTDUMP have nothing to show here)
      // do_mmap(): a private anonymous mapping's vm_pgoff is its address (pgoff = addr >> PAGE_SHIFT),
      // so VMAs mapped or moved next to one another line up for merging (Vm.mergeAround)
      vma = this.vm.addVma(mm, { name: a.as, start, pages, pgoff: start, flags: this.vm.flags({ write, shared, ...(a.droppable ? { droppable: true, wipeonfork: true } : {}) }), kind: 'anon', inode: null, device: null, anonVma: 0 });
    }
    if (a.exec) vma.flags.exec = true; // PROT_EXEC: VM_EXEC
    const mergeableBeforeKsm = vma.flags.mergeable === true;
    this.ksm.addVma(vma); // mmap_region() -> ksm_add_vma(): VM_MERGEABLE under PR_SET_MEMORY_MERGE
    if (!a.process || !this.mapOwners.has(a.as)) this.mapOwners.set(a.as, mm);
    // vm_mmap_pgoff(): mm_populate() once the VMA is in place and mmap_lock dropped (mm/populate.ts)
    // do_mmap(): VM_LOCKED (MAP_LOCKED, or mm->def_flags after mlockall(MCL_FUTURE)) asks for population too
    const locked = lockNewVma(this, vma, a.locked ?? false);
    // a secretmem VMA: populate_vma_page_range()'s check_vma_flags() fails, and mm_populate() ignores it
    if (a.populate || locked) yield* mmPopulate(this, vma); // a secretmem VMA populates nothing: GUP refuses it, and mmap ignores errors
    yield* [];
    // mmap_region(): vma_merge_new_range() with the VMAs right below and above (only MAP_FIXED
    // puts a mapping next to another here: placement leaves a gap). The model merges after the
    // population above, which only looks at the new range, as mm_populate(addr, len) does
    if (!vma.flags.mergeable || mergeableBeforeKsm || kernelAtLeast(this.version, 6, 16)) return this.vm.mergeAround(vma, 'new');
    // before v6.16 ("mm: prevent KSM from breaking VMA merging for new VMAs" [M]: ksm_vma_flags()
    // up front) the merge was tried with the flags ksm_add_vma() had not set yet, so under
    // PR_SET_MEMORY_MERGE a new VMA never merged with a VM_MERGEABLE neighbour; the VMA that
    // results gets VM_MERGEABLE afterwards
    vma.flags.mergeable = false;
    const merged = this.vm.mergeAround(vma, 'new');
    merged.flags.mergeable = true;
    return merged;
  }

  /**
   * The open(2) an mmap step of a file implies: O_RDWR for a shared writable mapping, else
   * O_RDONLY. On a read-only mount the O_RDWR open is EROFS (may_open), and a shared mapping of
   * the O_RDONLY file gets no VM_MAYWRITE (do_mmap() clears it, and VM_SHARED, keeping
   * VM_MAYSHARE, for a file not open for writing): mprotect(PROT_WRITE) of it is EACCES.
   */
  private openForMmap(fs: DaxFilesystem, inode: Inode, shared: boolean, write: boolean): { nomaywrite?: true } {
    if (shared && write) fs.checkWritable(`open(O_RDWR) of '${inode.name}' for a shared writable mapping`);
    fs.checkOpen(inode, shared && write);
    return shared && fs.readOnly ? { nomaywrite: true } : {};
  }

  /**
   * munmap(addr, len) of a named mapping's range, or of `length` bytes at `offset` in it: the VMAs
   * straddling either end are split (mm/vm.ts munmapRange); whatever lies inside is unmapped.
   */
  *munmap(a: { map: string; offset?: number; length?: number; process?: string }): Op {
    const { origin, mm } = this.mapRange(a.map, a.process);
    const { start, pages } = this.rangeIn(a.map, origin, a.offset, a.length);
    this.secretmem.drainLru(); // unmap_region() -> lru_add_drain()
    yield* this.vm.munmapRange(mm, start, start + pages);
  }

  /**
   * shmget(key, size, IPC_CREAT | 0600 [| SHM_HUGETLB | log2(hugetlb) << SHM_HUGE_SHIFT]): a System
   * V shared memory segment (ipc/shm.ts), named `as` for shmat and shmctl; `hugetlb` 'default'
   * is SHM_HUGETLB without size bits. An unsupported size is EINVAL (newseg(): hstate_sizelog()).
   */
  *shmget(a: { as: string; size: number; key?: number; hugetlb?: number | 'default'; process?: string }): Op {
    this.shmIds.set(a.as, this.shm.get(a.key ?? 0, a.size, a.hugetlb, this.process(a.process)));
    yield* [];
  }

  /** shmat(shmid, NULL, readonly ? SHM_RDONLY : 0): the segment's file mapped MAP_SHARED, its whole i_size (do_shmat()), as mapping `as`. */
  *shmat(a: { shm: string; as: string; readonly?: boolean; process?: string }): Op<Vma> {
    const file = this.shm.fileOf(this.shmId(a.shm));
    return yield* this.mmapWith({ length: file.pages * this.mmu.basePageSize, shared: true, write: !a.readonly, as: a.as, ...(a.process !== undefined ? { process: a.process } : {}) }, file);
  }

  /** shmdt(addr) (do_shmdt()): the segment attached at that mapping's start is unmapped; EINVAL when no attach starts there. */
  *shmdt(a: { map: string; process?: string }): Op {
    const { origin, mm } = this.mapRange(a.map, a.process, 'EINVAL');
    const vma = mm.vmas.find((v) => v.start === origin.start && v.pgoff === 0);
    if (!vma || !this.shm.isSegmentFile(vma.cacheFile)) throw new KernelError('EINVAL', `shmdt of '${a.map}': no shared memory segment is attached at its address`);
    yield* this.vm.munmapRange(mm, origin.start, origin.start + vma.cacheFile!.pages);
  }

  /** shmctl(shmid, IPC_RMID) (ipc/shm.ts): destroyed now, or with its last detach. */
  *shmctl(a: { shm: string; cmd: 'IPC_RMID' }): Op {
    this.shm.rmid(this.shmId(a.shm));
    yield* [];
  }

  private shmId(name: string): number {
    const id = this.shmIds.get(name);
    if (id === undefined) throw new InputError(`no shared memory segment named '${name}': make it with shmget: { as: ${name}, size: … }`, undefined, 'shm');
    return id;
  }

  /** [offset, offset + length) of a mapping in pages: offset page aligned (EINVAL), length rounded up (PAGE_ALIGN). */
  private rangeIn(name: string, origin: MappingRange, offset = 0, length?: number): { start: number; pages: number } {
    const ps = this.mmu.basePageSize;
    if (offset % ps !== 0) throw new KernelError('EINVAL', `offset ${offset} in mapping '${name}' is not page aligned`);
    const first = offset / ps;
    const pages = length === undefined ? origin.pages - first : Math.ceil(length / ps);
    if (pages <= 0 || first + pages > origin.pages) throw new InputError(`range of ${pages} page(s) at page ${first} runs outside mapping '${name}' (${origin.pages} pages): give an offset and length inside it`, undefined, 'length');
    return { start: origin.start + first, pages };
  }

  /**
   * mremap(addr, len, len, MREMAP_MAYMOVE | MREMAP_FIXED [| MREMAP_DONTUNMAP], new_addr) of
   * `length` bytes at `offset` in a mapping, to `toOffset` in mapping `to` (its range, mapped or
   * not), or with only `dontUnmap` to a free range; the moved range becomes mapping `as`
   * (mm/mremap.ts). With `newLength` (new_len) the range is resized: shrinking unmaps the tail,
   * growing happens in place when the pages after the VMA are free, else with `mayMove`
   * (MREMAP_MAYMOVE) by a move, and never for VM_DONTEXPAND | VM_PFNMAP. The range mremap returns
   * becomes mapping `as` when given (needed for a move); a resize in place keeps the old name too.
   * An unchanged length without `to` or `dontUnmap` moves nothing and returns the old address
   * (from v5.16 -EFAULT when nothing is mapped there). Hugetlb mappings follow their own rules.
   */
  *mremap(a: { map: string; offset?: number; length: number; newLength?: number; mayMove?: boolean; to?: string; toOffset?: number; dontUnmap?: boolean; as?: string; process?: string }): Op<Vma | null> {
    // the name's range, mapped or not: a range an earlier mremap resized in place (`as`) has no VMA
    // of that name; mm/mremap.ts says EFAULT when no single VMA holds the range
    const { mm, origin } = this.mapRange(a.map, a.process);
    if (a.as !== undefined && mm.vmas.some((v) => v.name === a.as)) throw new InputError(`mapping '${a.as}' already exists in ${mm.name}`, undefined, 'as');
    const { start, pages } = this.rangeIn(a.map, origin, a.offset, a.length);
    // mremap(): new_len = PAGE_ALIGN(new_len), and 0 is -EINVAL
    const newPages = a.newLength === undefined ? pages : Math.ceil(a.newLength / this.mmu.basePageSize);
    if (newPages === 0) throw new KernelError('EINVAL', `mremap of '${a.map}' to a new length of 0`);
    const moves = a.to !== undefined || a.dontUnmap === true;
    let to: number | null = null;
    if (a.to !== undefined) {
      const target = this.mapRange(a.to, a.process);
      if (target.mm !== mm) throw new InputError(`mremap moves within one process: '${a.to}' is mapped in ${target.mm.name}, '${a.map}' in ${mm.name}`, undefined, 'to');
      to = this.rangeIn(a.to, target.origin, a.toOffset, newPages * this.mmu.basePageSize).start;
    } else if (!a.dontUnmap && newPages === pages && a.as !== undefined) {
      throw new InputError(`mremap of '${a.map}' without to: (MREMAP_FIXED), dontUnmap: true or a newLength moves nothing (an unchanged length returns the old address): as names nothing new; name the destination mapping`, undefined, 'to');
    }
    if (moves && a.as === undefined) throw new InputError(`mremap of '${a.map}' moves the range: name the moved mapping with as`, undefined, 'as');
    const before = a.as !== undefined ? mm.ranges.get(a.as) : undefined;
    const vma = yield* mremap(this, { mm, start, pages, newPages, mayMove: a.mayMove ?? false, to, dontUnmap: a.dontUnmap ?? false, ...(a.as !== undefined ? { as: a.as } : {}) });
    if (a.as !== undefined) {
      // resized in place: the returned address, new_len long, is the new name's range (a move
      // gave the name its new range when it made the copy, merged or not)
      if (mm.ranges.get(a.as) === before) mm.ranges.set(a.as, { start, pages: newPages });
      this.mapOwners.set(a.as, mm);
    }
    return vma;
  }

  /**
   * echo 1 > /sys/kernel/mm/ksm/run, then wait for `scans` full scans of ksmd (mm/ksm.ts; default
   * 2); with `useZeroPages`, echo 0|1 > /sys/kernel/mm/ksm/use_zero_pages first (it stays set);
   * with `mergeAcrossNodes`, echo 0|1 > /sys/kernel/mm/ksm/merge_across_nodes (EBUSY while pages
   * are shared).
   */
  *ksmMerge(a: { scans?: number; useZeroPages?: boolean; mergeAcrossNodes?: boolean }): Op {
    if (a.useZeroPages !== undefined) this.ksm.useZeroPages = a.useZeroPages;
    if (a.mergeAcrossNodes !== undefined) this.ksm.setMergeAcrossNodes(a.mergeAcrossNodes);
    yield* this.ksm.scan(a.scans ?? 2);
  }

  /** echo 2 > /sys/kernel/mm/ksm/run: unmerge every KSM page and forget every rmap_item (mm/ksm.ts unmergeAll). */
  *ksmUnmerge(_a: Record<string, never>): Op {
    yield* this.ksm.unmergeAll();
  }

  /**
   * prctl() in a process: PR_SET_MEMORY_MERGE (mm/ksm.ts setMemoryMerge; v6.4, -EINVAL before) or
   * PR_SET_THP_DISABLE with PR_THP_DISABLE_EXCEPT_ADVISED when `exceptAdvised` (mm/thp.ts setDisable),
   * or PR_SET_MDWE with the bits `mdwe` (mm/mdwe.ts).
   */
  *prctl(a: { process?: string; memoryMerge?: boolean; thpDisable?: boolean; exceptAdvised?: boolean; mdwe?: number }): Op {
    const mm = this.process(a.process);
    if ([a.memoryMerge, a.thpDisable, a.mdwe].filter((o) => o !== undefined).length !== 1) throw new InputError('prctl: give one option, memoryMerge (PR_SET_MEMORY_MERGE), thpDisable (PR_SET_THP_DISABLE) or mdwe (PR_SET_MDWE)', undefined, 'memoryMerge');
    if (a.exceptAdvised !== undefined && a.thpDisable === undefined) throw new InputError('prctl: exceptAdvised is a flag of PR_SET_THP_DISABLE: give thpDisable with it', undefined, 'exceptAdvised');
    if (a.thpDisable !== undefined) this.thp.setDisable(mm, a.thpDisable, a.exceptAdvised ?? false);
    else if (a.mdwe !== undefined) setMdwe(this.version, mm, a.mdwe);
    else yield* this.ksm.setMemoryMerge(mm, a.memoryMerge!);
  }

  /** echo mode > /sys/kernel/mm/transparent_hugepage/enabled (mm/thp.ts setEnabled). */
  *thpEnabled(a: { mode: ThpEnabledMode }): Op {
    this.thp.setEnabled(a.mode);
    yield* [];
  }

  /** userfaultfd() + ioctl(UFFDIO_API) in a process: the userfaultfd its later uffd-* steps use (mm/userfaultfd.ts). */
  *uffdApi(a: { process?: string; features?: readonly UffdFeature[] }): Op {
    const mm = this.process(a.process);
    this.uffd.byProcess.set(mm.name, this.uffd.api(mm, a.features ?? []));
    yield* [];
  }

  /** The process's userfaultfd and the range of a mapping the uffd-* step names. */
  private uffdRange(a: { map: string; offset?: number; length?: number; process?: string }): { ctx: UffdCtx; start: number; pages: number } {
    const { origin, mm } = this.mapRange(a.map, a.process);
    return { ctx: this.uffdCtxOf(mm), ...this.rangeIn(a.map, origin, a.offset, a.length) };
  }

  private uffdCtxOf(mm: Mm): UffdCtx {
    const ctx = this.uffd.byProcess.get(mm.name);
    if (!ctx) throw new InputError(`process '${mm.name}' has no userfaultfd: add a uffd-api step first (or read the fork event that hands it over)`, undefined, 'process');
    return ctx;
  }

  /**
   * read() of a process's userfaultfd (`nonblock`: O_NONBLOCK, EAGAIN when nothing is pending): the
   * message, with the page named relative to `map` when given (mm/userfaultfd.ts read()).
   */
  *uffdRead(a: { process?: string; nonblock?: boolean; map?: string; to?: string }): Op<{ event: string; page?: number; pages?: number; toPage?: number; write?: boolean; wp?: boolean; minor?: boolean; child?: string }> {
    const mm = this.process(a.process);
    const msg = yield* this.uffd.read(this.uffdCtxOf(mm), a.nonblock ?? false);
    if (msg.event === 'fork') return { event: 'fork', child: msg.child };
    const origin = a.map !== undefined ? mm.ranges.get(a.map) : undefined;
    // UFFD_EVENT_REMAP's from / to / len and REMOVE's / UNMAP's start / end, as pages of `map` (`to`)
    const rel = (name: string | undefined, vpn: number) => vpn - (name !== undefined ? (mm.ranges.get(name)?.start ?? 0) : 0);
    if (msg.event === 'remap') return { event: 'remap', page: rel(a.map, msg.from), toPage: rel(a.to, msg.to), pages: msg.len };
    if (msg.event === 'remove' || msg.event === 'unmap') return { event: msg.event, page: rel(a.map, msg.start), pages: msg.end - msg.start };
    return { event: 'pagefault', page: origin ? msg.vpn - origin.start : msg.vpn, write: msg.write, wp: msg.wp, minor: msg.minor };
  }

  /** ioctl(UFFDIO_REGISTER) of a mapping's range with the given modes. */
  *uffdRegister(a: { map: string; mode: readonly UffdMode[]; offset?: number; length?: number; process?: string }): Op<UffdRangeIoctl[]> {
    const { ctx, start, pages } = this.uffdRange(a);
    const ioctls = this.uffd.register(ctx, start, start + pages, new Set(a.mode));
    yield* [];
    return ioctls;
  }

  /** close() of the process's userfaultfd (userfaultfd_release()): its ranges are unregistered and its waiters woken. */
  *uffdClose(a: { process?: string }): Op {
    this.uffd.close(this.uffdCtxOf(this.process(a.process)));
    yield* [];
  }

  /** ioctl(UFFDIO_UNREGISTER) of a mapping's range. */
  *uffdUnregister(a: { map: string; offset?: number; length?: number; process?: string }): Op {
    const { ctx, start, pages } = this.uffdRange(a);
    this.uffd.unregister(ctx, start, start + pages);
    yield* [];
  }

  /** The process's userfaultfd and pages [page, page + pages) of a mapping (uffd-copy, -zeropage, -continue). */
  private uffdPages(a: { map: string; page: number; pages?: number; process?: string }): { ctx: UffdCtx; start: number; pages: number } {
    const ps = this.mmu.basePageSize;
    return this.uffdRange({ map: a.map, offset: a.page * ps, length: (a.pages ?? 1) * ps, ...(a.process !== undefined ? { process: a.process } : {}) });
  }

  /** ioctl(UFFDIO_COPY) of `data` into pages of a mapping (MODE_WP with `wp`). */
  *uffdCopy(a: { map: string; page: number; pages?: number; data: string; wp?: boolean; process?: string }): Op {
    const { ctx, start, pages } = this.uffdPages(a);
    yield* this.uffd.copy(ctx, start, pages, a.data, a.wp ?? false);
  }

  /** ioctl(UFFDIO_POISON) of pages of a mapping (v6.6): PTE_MARKER_POISONED in each empty entry. */
  *uffdPoison(a: { map: string; page: number; pages?: number; process?: string }): Op {
    const { ctx, start, pages } = this.uffdPages(a);
    yield* this.uffd.poison(ctx, start, pages);
  }

  /** ioctl(UFFDIO_ZEROPAGE) of pages of a mapping. */
  *uffdZeropage(a: { map: string; page: number; pages?: number; process?: string }): Op {
    const { ctx, start, pages } = this.uffdPages(a);
    yield* this.uffd.zeropage(ctx, start, pages);
  }

  /** ioctl(UFFDIO_CONTINUE) of pages of a mapping: map what the page cache holds (MINOR faults); MODE_WP with `wp` (v6.4). */
  *uffdContinue(a: { map: string; page: number; pages?: number; wp?: boolean; process?: string }): Op {
    const { ctx, start, pages } = this.uffdPages(a);
    yield* this.uffd.continueMinor(ctx, start, pages, a.wp ?? false);
  }

  /**
   * ioctl(UFFDIO_MOVE) (v6.8) in the process's address space: `pages` pages from page `srcPage` of
   * mapping `src` to page `page` of mapping `map` (mm/uffdmove.ts). Returns uffdio_move.move, the
   * bytes moved.
   */
  *uffdMove(a: { map: string; page: number; src: string; srcPage?: number; pages?: number; allowSrcHoles?: boolean; dontwake?: boolean; process?: string }): Op<number> {
    const dst = this.mapAddress(a.map, a.page, a.process);
    const src = this.mapAddress(a.src, a.srcPage ?? a.page, a.process);
    const moved = yield* uffdMove(this, this.uffdCtxOf(dst.mm), src.mm, dst.vpn, src.vpn, a.pages ?? 1, { allowSrcHoles: a.allowSrcHoles ?? false, dontwake: a.dontwake ?? false });
    return moved * this.mmu.basePageSize;
  }

  /** ioctl(UFFDIO_WAKE) of pages of a mapping: the faults sleeping there after a DONTWAKE ioctl wake. */
  *uffdWake(a: { map: string; page: number; pages?: number; process?: string }): Op {
    const { ctx, start, pages } = this.uffdPages(a);
    this.uffd.wake(ctx, start, pages);
    yield* [];
  }

  /** ioctl(UFFDIO_WRITEPROTECT) of a mapping's range: MODE_WP (`enable`) or resolve. */
  *uffdWriteprotect(a: { map: string; enable: boolean; offset?: number; length?: number; process?: string }): Op {
    const { ctx, start, pages } = this.uffdRange(a);
    this.uffd.writeprotect(ctx, start, pages, a.enable);
    yield* [];
  }

  /**
   * ioctl(PAGEMAP_SCAN) on a process's /proc/PID/pagemap over [offset, offset + length) of a
   * mapping (mm/pagemapscan.ts): the regions, pages counted from the mapping's start.
   */
  *pagemapScan(a: { map: string; offset?: number; length?: number; flags?: readonly string[] | number; categoryMask?: Mask; anyofMask?: Mask; invertedMask?: Mask; returnMask?: Mask; vec?: boolean; vecLen?: number; maxPages?: number; size?: number; process?: string }): Op<{ regions: { page: number; pages: number; categories: string[] }[]; walkEnd: number }> {
    const { origin, mm } = this.mapRange(a.map, a.process);
    const ps = this.mmu.basePageSize;
    const start = origin.start * ps + (a.offset ?? 0);
    const end = a.length === undefined ? (origin.start + origin.pages) * ps : start + a.length;
    const flags = typeof a.flags === 'number' ? a.flags : (a.flags ?? []).reduce((bits, f) => bits | (1 << PM_SCAN_FLAGS.indexOf(f as (typeof PM_SCAN_FLAGS)[number])), 0);
    const vec = a.vec ?? true;
    const r = this.pagemap.scan(mm, {
      size: a.size ?? PM_SCAN_ARG_SIZE, flags, start, end, vec,
      vecLen: a.vecLen ?? (vec ? Math.max(1, Math.ceil((end - start) / ps)) : 0),
      maxPages: a.maxPages ?? 0,
      categoryMask: maskBits(a.categoryMask), categoryAnyofMask: maskBits(a.anyofMask), categoryInverted: maskBits(a.invertedMask), returnMask: maskBits(a.returnMask),
    });
    yield* [];
    return { regions: r.regions.map((g) => ({ page: g.start - origin.start, pages: g.pages, categories: categoryNames(g.categories) })), walkEnd: r.walkEnd - origin.start };
  }

  /** mlock(addr, len) or mlock2(addr, len, MLOCK_ONFAULT) of a mapping's range (mm/mlock.ts). */
  *mlock(a: { map: string; offset?: number; length?: number; onfault?: boolean; process?: string }): Op {
    const { origin, mm } = this.mapRange(a.map, a.process, 'ENOMEM');
    const { start, pages } = this.rangeIn(a.map, origin, a.offset, a.length);
    yield* mlockRange(this, mm, start, start + pages, a.onfault ? 'onfault' : 'lock');
  }

  /** munlock(addr, len) of a mapping's range (mm/mlock.ts). */
  *munlock(a: { map: string; offset?: number; length?: number; process?: string }): Op {
    const { origin, mm } = this.mapRange(a.map, a.process, 'ENOMEM');
    const { start, pages } = this.rangeIn(a.map, origin, a.offset, a.length);
    yield* mlockRange(this, mm, start, start + pages, 'unlock');
  }

  /** mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) in a process (mm/mlock.ts). */
  *mlockall(a: { current?: boolean; future?: boolean; onfault?: boolean; process?: string }): Op {
    yield* mlockall(this, this.process(a.process), { current: a.current ?? false, future: a.future ?? false, onfault: a.onfault ?? false });
  }

  /** The machine's memory nodes (mm/mempolicy.ts): node n's RAM is its own pfn range. */
  *numaNodes(a: { nodes: number }): Op {
    this.numa.setNodes(a.nodes);
    yield* [];
  }

  /** mbind(addr, len, mode, nodemask, maxnode, flags) of a mapping's range (mm/mempolicy.ts). */
  *mbind(a: { map: string; offset?: number; length?: number; policy: MpolMode; nodes?: number[]; process?: string } & MbindFlags): Op {
    const { origin, mm } = this.mapRange(a.map, a.process);
    const { start, pages } = this.rangeIn(a.map, origin, a.offset, a.length);
    yield* this.numa.mbind(mm, start, start + pages, a.policy, a.nodes ?? [], { move: a.move ?? false, strict: a.strict ?? false });
  }

  /**
   * move_pages(pid, count, pages, nodes, status, flags) over pages of a mapping (mm/mempolicy.ts):
   * the status array (a node, an errno name, or null where the kernel left it unwritten) and how
   * many pages were not migrated (the syscall's return value).
   */
  *movePages(a: { map: string; page: number; pages?: number; node?: number | number[]; all?: boolean; process?: string }): Op<{ status: (number | string | null)[]; notMigrated: number }> {
    const { origin, mm } = this.mapRange(a.map, a.process);
    const n = a.pages ?? 1;
    if (a.page + n > origin.pages) throw new InputError(`pages ${a.page}..${a.page + n - 1} run outside mapping '${a.map}' (${origin.pages} pages)`, undefined, 'pages');
    const vpns = Array.from({ length: n }, (_, i) => origin.start + a.page + i);
    const nodes = a.node === undefined ? null : Array.isArray(a.node) ? a.node : vpns.map(() => a.node as number);
    return yield* this.numa.movePages(mm, vpns, nodes, a.all ?? false);
  }

  /** set_mempolicy(mode, nodemask, maxnode) in a process (mm/mempolicy.ts): its task policy. */
  *setMempolicy(a: { policy: MpolMode; nodes?: number[]; process?: string }): Op {
    this.numa.setMempolicy(this.process(a.process), a.policy, a.nodes ?? []);
    yield* [];
  }

  /** migrate_pages(pid, maxnode, old_nodes, new_nodes) (mm/mempolicy.ts): the number of pages not migrated. */
  *migratePages(a: { from: number[]; to: number[]; process?: string }): Op<number> {
    return yield* this.numa.migratePages(this.process(a.process), a.from, a.to);
  }

  /** page_to_nid() of the page a check target names. */
  nodeOf(pfn: number): number {
    return this.numa.nodeOf(pfn);
  }

  /** munlockall() in a process (mm/mlock.ts). */
  *munlockall(a: { process?: string }): Op {
    yield* mlockall(this, this.process(a.process), null);
  }

  /**
   * mseal(addr, len, flags) of `length` bytes at `offset` bytes in a mapping's range (default: the
   * whole range) (mm/mseal.ts). The range may run outside the mapping (`offset` may be negative):
   * any page no VMA covers is ENOMEM, which is what mseal_test.c checks.
   */
  *mseal(a: { map: string; offset?: number; length?: number; flags?: number; process?: string }): Op {
    const { origin, mm } = this.mapRange(a.map, a.process, 'ENOMEM');
    const ps = this.mmu.basePageSize;
    const offset = a.offset ?? 0;
    const length = a.length ?? origin.pages * ps - offset;
    yield* mseal(this, mm, origin.start * ps + offset, length, a.flags ?? 0);
  }

  /** madvise(addr, len, advice) of a mapping, or of `length` bytes at `offset` in it (mm/madvise.ts). */
  *madvise(a: { map: string; advice: Advice; offset?: number; length?: number; process?: string }): Op {
    const { origin, mm } = this.mapRange(a.map, a.process);
    const { start, pages } = this.rangeIn(a.map, origin, a.offset, a.length);
    yield* madvise(this, mm, start, pages, a.advice);
  }

  /**
   * pidfd_open(pid, 0) (kernel/pid.c, v5.3: older than every preset): a handle on the task of a
   * scenario process, which stays valid through exec; ESRCH for a process that has exited.
   */
  *pidfdOpen(a: { process?: string; target?: string; as: string }): Op {
    if (this.pidfds.has(a.as)) throw new InputError(`pidfd '${a.as}' already exists`, undefined, 'as');
    this.process(a.process);
    const target = a.target ?? a.process ?? 'init';
    this.process(target); // ESRCH once it exited
    this.pidfds.set(a.as, target);
  }

  /** The process a pidfd-open handle names. */
  private pidfdTask(pidfd: string): string {
    const task = this.pidfds.get(pidfd);
    if (task === undefined) throw new InputError(`unknown pidfd '${pidfd}': open it with pidfd-open: { target: <process>, as: ${pidfd} }`, undefined, 'pidfd');
    return task;
  }

  /**
   * process_madvise() from `process` (default init) on the process a pidfd names, over ranges of
   * that process's mappings (mm/pmadvise.ts): the bytes advised.
   */
  *processMadvise(a: { process?: string; pidfd: string; ranges: readonly { map: string; page?: number; pages?: number }[]; advice: Advice; flags?: number; capSysNice?: boolean }): Op<number> {
    const caller = this.process(a.process);
    const task = this.pidfdTask(a.pidfd);
    return yield* processMadvise(this, {
      caller,
      target: () => this.process(task),
      vlen: a.ranges.length,
      ranges: (target) =>
        a.ranges.map((r, i) => {
          // a mapping the target does not have (another process's, or gone with exec): addresses
          // not mapped there, do_madvise()'s ENOMEM
          const { origin } = this.mapRange(r.map, target.name, 'ENOMEM');
          const page = r.page ?? 0;
          const pages = r.pages ?? origin.pages - page;
          if (page + pages > origin.pages) throw new InputError(`ranges[${i}]: ${pages} page(s) at page ${page} run outside mapping '${r.map}' (${origin.pages} pages): give a page and pages inside it`, undefined, 'ranges');
          return { start: origin.start + page, pages };
        }),
      advice: a.advice,
      flags: a.flags ?? 0,
      capSysNice: a.capSysNice ?? true,
    });
  }

  /**
   * mprotect(addr, len, PROT_NONE | PROT_READ [| PROT_WRITE]) of a mapping's range, or of `length`
   * bytes at `offset` in it (mm/vm.ts mprotectRange, mm/mprotect.ts); `read: false` is PROT_NONE.
   */
  *mprotect(a: { map: string; write: boolean; read?: boolean; exec?: boolean; offset?: number; length?: number; process?: string; pkey?: number | string }): Op {
    const { origin, mm } = this.mapRange(a.map, a.process);
    const { start, pages } = this.rangeIn(a.map, origin, a.offset, a.length);
    // pkey_mprotect(): ENOSYS without ARCH_HAS_PKEYS, EINVAL for a key not allocated, before any VMA
    const key = a.pkey === undefined ? null : this.pkeyNumber(a.pkey);
    if (key !== null) this.pkeys.checkMprotectKey(mm, key);
    yield* this.vm.mprotectRange(mm, start, start + pages, { write: a.write, read: a.read ?? true, exec: a.exec ?? false }, key);
  }

  /** echo 4 > /proc/PID/clear_refs: clear soft-dirty in the whole process (mm/mprotect.ts). */
  *clearRefs(a: { process?: string }): Op {
    yield* this.mprotector.clearSoftDirty(this.process(a.process));
  }

  /**
   * A CPU access to `vpn` faults until `allows` the entry: handle_mm_fault() returns and the
   * instruction runs again. A fault that changed the entry (it mapped something, or it lost a race:
   * the entry was replaced while it slept, as a migration's retries do to a COW that re-checks it)
   * made progress, and a wait on a migration entry lasts until the migration is over: neither is a
   * try. `tries` faults that left the entry as it was mean the access cannot succeed (EFAULT, where
   * the kernel would loop).
   */
  private *faultUntil(vma: Vma, vpn: number, write: boolean, tries: number, allows: (leaf: Leaf) => boolean, what: string): Op<Leaf> {
    let leaf = this.vm.lookup(vma.mm, vpn);
    for (let spent = 0, faults = 0; !leaf || !allows(leaf); faults++) {
      if (spent === tries || faults === FAULTS_PER_ACCESS) throw new KernelError('EFAULT', `${what} could not be faulted in`);
      const before = leaf?.pte;
      yield* this.faults.handle(vma, vpn, write);
      leaf = this.vm.lookup(vma.mm, vpn);
      spent += 1 - (before?.migration ? 1 : 0) - (leaf?.pte !== before ? 1 : 0);
    }
    return leaf;
  }

  /**
   * A CPU access the process's protection-key register denies: the MMU faults on a present entry
   * too (x86 X86_PF_PK, powerpc AMR, arm64 POE), and access_error() / arch_vma_access_permitted()
   * (bad_area_access_error(): SEGV_PKUERR with si_pkey) decides before handle_mm_fault(), ahead
   * of the VM_READ / VM_WRITE checks (SEGV_ACCERR). copy_to_user / copy_from_user meet the same
   * check and end short (fs/rw.ts).
   */
  private refusePkeyAccess(vma: Vma, page: number, write: boolean, thread?: string, register?: PkeyRegister): void {
    if (!this.pkeys.permits(vma, write, false, thread, register)) throw new KernelError('SIGSEGV', `${write ? 'write to' : 'read of'} page ${page} of '${vma.name}': ${this.pkeys.denial(vma, write ? 'write' : 'read', thread, register)}`);
  }

  /** A CPU load by the process's main thread or `thread`: fault in if needed, return the page's data. */
  *read(a: { map: string; page: number; process?: string; thread?: string }): Op<string> {
    // no VMA at the address: do_user_addr_fault() -> bad_area(): SIGSEGV (SEGV_MAPERR)
    const { vma, vpn } = this.mapPage(a.map, a.page, a.process, 'SIGSEGV');
    this.refusePkeyAccess(vma, a.page, false, a.thread);
    // access_error() (arch/x86/mm/fault.c): a load from a VMA that is not vma_is_accessible()
    // (PROT_NONE) never reaches handle_mm_fault(): SIGSEGV (SEGV_ACCERR)
    if (!vma.flags.read && !vma.flags.exec) throw new KernelError('SIGSEGV', `read of page ${a.page} of '${vma.name}', which is mapped PROT_NONE`);
    // PROT_EXEC alone (Mmu.execOnlyLoads)
    if (!vma.flags.read && this.mmu.execOnlyLoads !== 'readable') throw KernelError.unsupported('EINVAL', `read of page ${a.page} of '${vma.name}', mapped PROT_EXEC alone: execute-only entries on ${this.mmu.arch} are not modelled`);
    // the access is retried until a page is present
    const leaf = yield* this.faultUntil(vma, vpn, false, 2, (l) => !nonPresent(l.pte), `read of page ${a.page} of '${vma.name}'`);
    return this.pages.data.get(this.vm.pfnAt(leaf, vpn)) ?? '';
  }

  /**
   * An instruction fetch by the process's main thread or `thread` (the selftest calls code in the
   * page): arch_vma_access_permitted(execute) -- never refused on x86, powerpc IAMR and arm64 POE
   * X otherwise (SEGV_PKUERR) -- then a VMA without VM_EXEC is SEGV_ACCERR (the entry is NX); the
   * page is faulted in like a load. Returns the page's data.
   */
  *execute(a: { map: string; page: number; process?: string; thread?: string }): Op<string> {
    const { vma, vpn } = this.mapPage(a.map, a.page, a.process, 'SIGSEGV');
    if (!this.pkeys.permitsFetch(vma, a.thread)) throw new KernelError('SIGSEGV', `instruction fetch from page ${a.page} of '${vma.name}': ${this.pkeys.denial(vma, 'fetch', a.thread)}`);
    if (!vma.flags.exec) throw new KernelError('SIGSEGV', `instruction fetch from page ${a.page} of '${vma.name}', which is mapped without PROT_EXEC (SEGV_ACCERR)`);
    const leaf = yield* this.faultUntil(vma, vpn, false, 2, (l) => !nonPresent(l.pte), `instruction fetch from page ${a.page} of '${vma.name}'`);
    return this.pages.data.get(this.vm.pfnAt(leaf, vpn)) ?? '';
  }

  /** clone(CLONE_VM | CLONE_THREAD ...) by the main thread or `thread`: a thread `as` with a copy of the caller's rights register (mm/pkeys.ts). */
  *cloneThread(a: { as: string; process?: string; thread?: string }): Op {
    this.pkeys.cloneThread(this.process(a.process), a.thread, a.as);
    yield* [];
  }

  /**
   * A signal with a handler delivered to the main thread or `thread` (handle_signal() ->
   * setup_rt_frame()): the frame is stored on page `page` of `stack` -- the thread's stack, or its
   * sigaltstack for an SA_ONSTACK handler -- under the register `pkey-sigframe` says (mm/pkeys.ts).
   * A frame that cannot be written is force_sigsegv(): SIGSEGV kills the process. Written, the
   * handler starts with the init register; the interrupted one waits in the frame for sigreturn.
   */
  *signal(a: { stack: string; page?: number; process?: string; thread?: string }): Op {
    const mm = this.process(a.process);
    const register = this.pkeys.frameRegister(mm, a.thread);
    if (!register) throw KernelError.unsupported('EINVAL', `signal delivery's handling of the ${this.mmu.arch} protection-key register is not modelled`);
    const page = a.page ?? 0;
    try {
      yield* this.store({ map: a.stack, page, data: 'sigframe', process: a.process }, register);
    } catch (e) {
      if (e instanceof KernelError && e.code === 'SIGSEGV') {
        mm.dying = true; // force_sigsegv(): SIGSEGV with the default action, fatal
        throw new KernelError('SIGSEGV', `the signal frame could not be written (setup_rt_frame() failed, force_sigsegv() kills ${mm.name}): ${e.message}`);
      }
      throw e;
    }
    this.pkeys.enterHandler(mm, a.thread);
  }

  /**
   * rt_sigreturn() from the handler of the main thread or `thread`: the frame on page `page` of
   * `stack` is read back (x86: under the handler's register, arm64 from the `all-keys` fix: every
   * key open), then the register saved in it is restored. A frame that cannot be read is SIGSEGV.
   */
  *sigreturn(a: { stack: string; page?: number; process?: string; thread?: string }): Op {
    const mm = this.process(a.process);
    const register = this.pkeys.sigreturnRegister(mm, a.thread);
    if (!register) throw new InputError(`sigreturn: ${a.thread ? `thread '${a.thread}'` : `the main thread of ${mm.name}`} is in no signal handler (give a signal step first)`, undefined, 'thread');
    const { vma } = this.mapPage(a.stack, a.page ?? 0, a.process, 'SIGSEGV');
    try {
      this.refusePkeyAccess(vma, a.page ?? 0, false, a.thread, register);
    } catch (e) {
      throw new KernelError('SIGSEGV', `rt_sigreturn could not read the signal frame (badframe: SIGSEGV): ${(e as Error).message}`);
    }
    this.pkeys.leaveHandler(mm, a.thread);
    yield* [];
  }

  /** A CPU store by the process's main thread or `thread`: write-fault as needed, then the data lands in the mapped page. */
  *write(a: { map: string; page: number; data: string; process?: string; thread?: string }): Op {
    const { vma } = this.mapPage(a.map, a.page, a.process, 'SIGSEGV');
    this.refusePkeyAccess(vma, a.page, true, a.thread);
    yield* this.store(a);
  }

  /** The store itself, after the register allowed it (`register`: the one a kernel store of a signal frame runs under). */
  private *store(a: { map: string; page: number; data: string; process?: string }, register?: PkeyRegister): Op {
    const { vma, vpn } = this.mapPage(a.map, a.page, a.process, 'SIGSEGV');
    if (register) this.refusePkeyAccess(vma, a.page, true, undefined, register);
    const found = this.vm.lookup(vma.mm, vpn);
    // the MMU lets a store through a present, writable entry without a fault, whatever the VMA says
    // (so a PTE made writable in a VMA without VM_WRITE is visible: mkdirty.c); one that faults in
    // a VMA without VM_WRITE (PROT_READ, or after mprotect) meets the arch fault handler's
    // access_error() and never reaches handle_mm_fault(): SIGSEGV (SEGV_ACCERR)
    const storable = found !== null && found.pte.write && !nonPresent(found.pte);
    if (!vma.flags.write && !storable) throw new KernelError('SIGSEGV', `write to page ${a.page} of '${vma.name}', which is mapped without PROT_WRITE`);
    // the access is retried until the PTE allows it (a device-private entry first migrates back; a
    // uffd-wp marker is faulted in write-protected, then the userfault, then do_wp_page: three)
    const leaf = yield* this.faultUntil(vma, vpn, true, 3, (l) => l.pte.write && !nonPresent(l.pte), `write to page ${a.page} of '${vma.name}'`);
    leaf.pte.dirty = true;
    this.pages.data.set(this.vm.pfnAt(leaf, vpn), a.data);
    // a store through /dev/mem: which physical page it reached (mm/devmem.ts)
    if (isDevmemVma(vma)) this.emit('devmem.write', { mm: vma.mm.name, vaddr: vpn, pfn: this.vm.pfnAt(leaf, vpn) });
  }

  /** pread(2) of a file, or of a pmem namespace's block device, into a buffer in a mapping; returns the bytes read (fs/rw.ts). */
  *pread(a: FileIoArgs | BdevIoArgs): Op<number> {
    return yield* fileRead(this, a);
  }

  /** pwrite(2) of a buffer in a mapping to a file or a pmem namespace's block device; returns the bytes written (fs/rw.ts). */
  *pwrite(a: FileIoArgs | BdevIoArgs): Op<number> {
    return yield* fileWrite(this, a);
  }

  /**
   * pwrite() of `data` to a page through /proc/PID/mem (mem_rw() -> access_remote_vm()): a
   * get_user_pages_remote(FOLL_FORCE | FOLL_WRITE) of the page -- which may write where the VMA has
   * no VM_WRITE, even PROT_NONE, by breaking COW in a private mapping (mm/gup.ts) -- the data
   * copied in (copy_to_user_page), set_page_dirty_lock() and put_page(). A GUP failure is the
   * write's -EIO (nothing copied).
   */
  *procMemWrite(a: { map: string; page: number; data: string; process?: string }): Op {
    const { vma, vpn } = this.mapPage(a.map, a.page, a.process, 'EIO');
    let h: GupHandle;
    try {
      // access_remote_vm(): get_user_pages_remote() with a NULL `locked`: no retry (a userfault is EFAULT here, EIO to the writer)
      h = yield* this.gupper.gup({ name: '/proc/PID/mem', vma, vpn, nr: 1, pin: false, write: true, longterm: false, fast: false, force: true, retry: false, remote: true });
    } catch (e) {
      if (e instanceof KernelError && e.unsupported === null) throw new KernelError('EIO', `write to page ${a.page} of '${a.map}' through /proc/PID/mem: ${e.message}`);
      throw e;
    }
    this.pages.data.set(h.pfns[0]!, a.data);
    this.gupper.release(h, false);
  }

  /**
   * A read of another process's page as `via` does it: process_vm_readv() (process_vm_rw_pages:
   * pin_user_pages_remote() without FOLL_FORCE, get_user_pages_remote() before v5.8 [M]; a GUP
   * failure is EFAULT) or ptrace(PTRACE_PEEKDATA) (ptrace_access_vm() -> __access_remote_vm():
   * get_user_pages_remote(FOLL_FORCE); nothing copied is EIO). Returns the page's data.
   */
  *remoteRead(a: { map: string; page: number; process?: string; via: 'process_vm_readv' | 'ptrace' }): Op<string> {
    const errno = a.via === 'ptrace' ? 'EIO' : 'EFAULT';
    const { vma, vpn } = this.mapPage(a.map, a.page, a.process, errno);
    const ptrace = a.via === 'ptrace';
    let h: GupHandle;
    try {
      // ptrace: access_remote_vm() (NULL `locked`, no retry); process_vm_readv: pin_user_pages_remote(&locked)
      h = yield* this.gupper.gup({ name: a.via, vma, vpn, nr: 1, pin: !ptrace && kernelAtLeast(this.version, 5, 8), write: false, longterm: false, fast: false, retry: !ptrace, remote: true, ...(ptrace ? { force: true } : {}) });
    } catch (e) {
      if (e instanceof KernelError && e.unsupported === null) throw new KernelError(errno, `${a.via} read of page ${a.page} of '${a.map}': ${e.message}`);
      throw e;
    }
    const data = this.pages.data.get(h.pfns[0]!) ?? '';
    this.gupper.release(h, h.pin); // unpin_user_pages() / put_page()
    return data;
  }

  *fork(a: { process?: string; as: string }): Op {
    if (this.processes.has(a.as)) throw new InputError(`process '${a.as}' already exists`, undefined, 'as');
    const parent = this.process(a.process);
    const child = yield* this.forker.fork(parent, a.as);
    this.processes.set(a.as, child);
    this.hugetlbCgroups.forked(parent.name, a.as);
    // the child exists (its userfaultfd too) while fork() waits for the monitor to read UFFD_EVENT_FORK
    yield* this.uffd.awaitForkEvents(a.as);
  }

  /**
   * execve() in a process: exec_mmap() gives it a new mm (mm_alloc() -> mm_init(): flags from
   * MMF_INIT_MASK) and drops the old one (mmput() -> exit_mmap(): every mapping unmapped, as exit
   * does). The new program starts with none of the old mappings (the model maps no binary or
   * stack): their names fault (SIGSEGV) from then on. KSM: ksm_execve() (mm/ksm.ts).
   */
  *exec(a: { process?: string }): Op {
    const old = this.process(a.process);
    const mm = this.vm.newMm(old.name);
    // the task (and its mempolicy) outlives the old mm
    if (old.taskPolicy) mm.taskPolicy = old.taskPolicy;
    // mm_init() copies current->mm->flags & MMF_INIT_MASK: PR_SET_THP_DISABLE survives execve
    if (old.thpDisable) mm.thpDisable = old.thpDisable;
    inheritMdwe(old, mm); // mmf_init_flags(): MMF_HAS_MDWE unless MMF_HAS_MDWE_NO_INHERIT
    this.ksm.execve(old, mm);
    this.secretmem.drainLru(); // mmput() -> exit_mmap() -> lru_add_drain()
    for (const vma of [...old.vmas]) yield* this.vm.unmapVma(vma);
    old.alive = false;
    this.processes.set(old.name, mm);
  }

  /**
   * kill(pid, SIGKILL): the process has a fatal signal pending and runs no more user code
   * (task_will_free_mem() is true); its address space stays until it exits (`exit`), which
   * process_mrelease() may get ahead of.
   */
  *kill(a: { process: string }): Op {
    this.process(a.process).dying = true;
    yield* [];
  }

  /** process_mrelease() from `process` (default init) of the process a pidfd names (mm/mrelease.ts). */
  *processMrelease(a: { process?: string; pidfd: string; flags?: number }): Op {
    this.process(a.process);
    const task = this.pidfdTask(a.pidfd);
    yield* processMrelease(this, () => this.process(task), a.flags ?? 0);
  }

  *exit(a: { process: string }): Op {
    const mm = this.process(a.process);
    this.secretmem.drainLru(); // exit_mmap() -> lru_add_drain()
    for (const vma of [...mm.vmas]) yield* this.vm.unmapVma(vma);
    mm.alive = false;
  }

  *gup(a: { map: string; page: number; pages?: number; write?: boolean; longterm?: boolean; fast?: boolean; as: string; process?: string }, pin: boolean): Op<GupHandle> {
    if (this.pins.has(a.as)) throw new InputError(`pin '${a.as}' already exists`, undefined, 'as');
    const { vma, vpn } = this.mapPage(a.map, a.page, a.process);
    const h = yield* this.gupper.gup({ name: a.as, vma, vpn, nr: a.pages ?? 1, pin, write: a.write ?? false, longterm: a.longterm ?? false, fast: a.fast ?? false });
    this.pins.set(a.as, h);
    return h;
  }

  *unpin(a: { name: string }): Op {
    this.gupper.release(this.gupPin(a.name, 'unpin'), true);
    yield* [];
  }

  *put(a: { name: string }): Op {
    this.gupper.release(this.gupPin(a.name, 'put'), false);
    yield* [];
  }

  /** A pin taken by a pin/get step: an io_uring buffer's pins belong to io_uring. */
  private gupPin(name: string, op: string): GupHandle {
    if (this.fixedBuffers.has(name)) throw new InputError(`'${name}' is an io_uring fixed buffer, whose pins only io_uring drops: write iouring-unregister: ${name} instead of ${op}: ${name}`, undefined, 'name');
    return this.pin(name);
  }

  /**
   * io_uring_register(IORING_REGISTER_BUFFERS) of one iovec: `pages` pages of a mapping from
   * `page` on (mm/iouring.ts). The buffer is a pin by that name (dma-read / dma-write through it).
   */
  *iouringRegister(a: { map: string; page: number; pages?: number; as: string; process?: string }): Op<GupHandle> {
    if (this.pins.has(a.as)) throw new InputError(`pin '${a.as}' already exists`, undefined, 'as');
    const { vma, vpn } = this.mapPage(a.map, a.page, a.process);
    const h = yield* this.iouring.register({ name: a.as, vma, vpn, nr: a.pages ?? 1 });
    this.pins.set(a.as, h);
    this.fixedBuffers.add(a.as);
    return h;
  }

  /** io_uring_register(IORING_UNREGISTER_BUFFERS): the buffer's pins go (io_buffer_unmap). */
  *iouringUnregister(a: { name: string }): Op {
    if (!this.fixedBuffers.has(a.name)) throw new InputError(`'${a.name}' is not an io_uring fixed buffer: register it with iouring-register: { …, as: ${a.name} }, or release a pin with unpin`, undefined, 'name');
    this.iouring.unregister(this.pin(a.name));
    yield* [];
  }

  /** A device writes through its GUP reference: the data lands in the physical pages. */
  *dmaWrite(a: { pin: string; data: string }): Op {
    const h = this.pin(a.pin);
    if (h.released) throw new KernelError('EFAULT', `DMA through released pin '${a.pin}'`);
    for (const pfn of h.pfns) {
      this.pages.data.set(pfn, a.data);
      this.emit('dma.write', { name: h.name, pfn, data: a.data });
    }
    yield* [];
  }

  *dmaRead(a: { pin: string }): Op<string> {
    const h = this.pin(a.pin);
    if (h.released) throw new KernelError('EFAULT', `DMA through released pin '${a.pin}'`);
    const data = this.pages.data.get(h.pfns[0]!) ?? '';
    for (const pfn of h.pfns) this.emit('dma.read', { name: h.name, pfn, data: this.pages.data.get(pfn) ?? '' });
    yield* [];
    return data;
  }

  /**
   * Migrate anonymous pages to a device's memory (`to: <device>`) or back (`to: ram`), through
   * the device's driver (`migrate_vma_*`). Back to RAM, each device migrates the pages it owns
   * (migrate_vma_setup selects device pages by pgmap_owner).
   */
  *migrate(a: { map: string; page: number; pages?: number; to: string; process?: string }): Op {
    // dmirror_migrate_to_*(): vma_lookup() finds no VMA at the address: -EINVAL
    const { vma, vpn } = this.mapPage(a.map, a.page, a.process, 'EINVAL');
    const page = vpn - vma.start; // the page within the VMA now covering it
    const pages = a.pages ?? 1;
    const devices: Device[] = [];
    if (a.to === 'ram') {
      for (let v = vpn; v < vpn + pages; v++) {
        const leaf = this.vm.lookup(vma.mm, v);
        const d = leaf ? this.deviceOfPfn(leaf.pte.pfn) : null;
        if (d && !devices.includes(d) && this.driverOf(d).migrate) devices.push(d);
      }
    } else if (a.to === 'device' && !this.devices.has('device')) {
      // SCENARIOS.md's `to: device`: the one bound device that can take the pages
      const able = [...this.devices.values()].filter((d) => d.bound && this.driverOf(d).migrate);
      if (able.length !== 1) throw new InputError(`migrate to: device needs exactly one bound device that can migrate pages (found ${able.length}); name it instead (to: <device>)`, undefined, 'to');
      devices.push(able[0]!);
    } else devices.push(this.device(a.to));
    for (const device of devices) {
      const driver = this.driverOf(device);
      if (!driver.migrate) throw new KernelError('EOPNOTSUPP', `${device.name} (${driver.driverName}) cannot migrate pages`);
      yield* driver.migrate(this, device, { vma, page, pages, to: a.to === 'ram' ? 'ram' : 'device' });
    }
  }

  private *deviceAccess(a: { device: string; map: string; page: number; process?: string }, write: boolean, data?: string): Op<string> {
    const device = this.device(a.device);
    const driver = this.driverOf(device);
    if (!driver.deviceAccess) throw new KernelError('EOPNOTSUPP', `${driver.name} cannot access process memory`);
    const { vma, vpn } = this.mapPage(a.map, a.page, a.process);
    return yield* driver.deviceAccess(this, device, { vma, page: vpn - vma.start, write, ...(data !== undefined ? { data } : {}) });
  }

  *deviceRead(a: { device: string; map: string; page: number; process?: string }): Op<string> {
    return yield* this.deviceAccess(a, false);
  }

  *deviceWrite(a: { device: string; map: string; page: number; data: string; process?: string }): Op {
    yield* this.deviceAccess(a, true, a.data);
  }

  /**
   * HMM_DMIRROR_EXCLUSIVE (test_hmm dmirror_exclusive()): make_device_exclusive() of each page,
   * mapped atomically in the device, then read back through the device; the data of each page.
   */
  *deviceExclusive(a: { device: string; map: string; page?: number; pages?: number; process?: string }): Op<readonly string[]> {
    const device = this.device(a.device);
    const driver = this.driverOf(device);
    if (!driver.exclusive) throw new KernelError('EOPNOTSUPP', `${driver.name} cannot map pages exclusively`);
    const { vma, vpn } = this.mapPage(a.map, a.page ?? 0, a.process, 'EINVAL');
    return yield* driver.exclusive(this, device, { vma, page: vpn - vma.start, pages: a.pages ?? 1 });
  }

  /** HMM_DMIRROR_CHECK_EXCLUSIVE (dmirror_check_atomic()): -EPERM while the device maps a page of the range atomically. */
  *deviceCheckExclusive(a: { device: string; map: string; page?: number; pages?: number; process?: string }): Op {
    const device = this.device(a.device);
    const driver = this.driverOf(device);
    if (!driver.checkExclusive) throw new KernelError('EOPNOTSUPP', `${driver.name} has no atomic mappings to check`);
    const mm = this.mapOwner(a.map, a.process);
    const origin = mm.ranges.get(a.map);
    if (!origin) throw new InputError(`mapping '${a.map}' does not exist in ${mm.name}`, undefined, 'map');
    const page = a.page ?? 0;
    const pages = a.pages ?? origin.pages - page;
    if (page + pages > origin.pages) throw new InputError(`device-check-exclusive of pages ${page}..${page + pages - 1} runs past mapping '${a.map}' (${origin.pages} pages)`, undefined, 'pages');
    yield* driver.checkExclusive(this, device, { mm, start: origin.start + page, pages });
  }

  /**
   * A mirror device snapshots page tables without faulting (test_hmm HMM_DMIRROR_SNAPSHOT) over
   * pages of a named mapping. A munmapped mapping's addresses have no VMA (mmap placement never
   * reuses them: Vm.placeVma), so every page is a hole: HMM_PFN_ERROR (mm/hmm.c hmm_vma_walk_hole()
   * with no VMA and no fault requested).
   */
  *deviceSnapshot(a: { device: string; map: string; page?: number; expect: readonly number[]; process?: string }): Op<readonly number[]> {
    const device = this.device(a.device);
    const driver = this.driverOf(device);
    if (!driver.snapshot) throw new KernelError('EOPNOTSUPP', `${driver.name} cannot snapshot page tables`);
    const mm = this.mapOwner(a.map, a.process);
    const page = a.page ?? 0;
    const pages = a.expect.length;
    // the name's address range, whatever VMAs (or holes) munmap and mremap left in it
    if (!mm.vmas.some((v) => v.name === a.map)) return Array<number>(pages).fill(SNAPSHOT_FLAGS.ERROR);
    const origin = mm.ranges.get(a.map)!;
    if (page + pages > origin.pages) throw new InputError(`device-snapshot of pages ${page}..${page + pages - 1} runs past mapping '${a.map}' (${origin.pages} page${origin.pages === 1 ? '' : 's'}): list at most ${origin.pages - page} in expect`, undefined, 'expect');
    return yield* driver.snapshot(this, device, { mm, start: origin.start + page, pages });
  }

  /** Arm a fault-injection site: its `nth` call from now fails, and the `times - 1` after it. */
  *injectFault(a: { site: FaultSite; nth?: number; times?: number }): Op {
    this.faultInject.arm(a.site, a.nth ?? 1, a.times ?? 1);
    yield* [];
  }

  /**
   * memory_failure() of a device page: `device` + `page`, or `map` + `page` for
   * madvise(MADV_HWPOISON) (mm/madvise.c madvise_inject_error(): get_user_pages_fast() of the page
   * — a read fault if nothing maps it — then memory_failure()). A device page is
   * memory_failure_dev_pagemap(), whose MF_ACTION_REQUIRED | MF_MUST_KILL has kill_proc() send the
   * caller SIGBUS with BUS_MCEERR_AR (delivered when madvise returns); a RAM page is mm/memfailure.ts.
   */
  *memoryFailure(a: { device?: string; map?: string; page?: number; block?: number; count?: number; process?: string }): Op {
    if (a.map === undefined) {
      if (a.block !== undefined) return yield* injectError(this, { device: a.device!, block: a.block, count: a.count ?? 1 }, 'namespace');
      const device = this.device(a.device!);
      yield* this.deviceMemoryFailure(device, devicePfn(device, a.page!));
      return;
    }
    const at = { map: a.map, page: a.page!, ...(a.process !== undefined ? { process: a.process } : {}) };
    yield* this.read(at);
    const pfn = this.pfnOf(at)!;
    const pgmap = this.memremap.pgmapOf(pfn);
    if (pgmap === null) {
      if (yield* this.memoryFailures.madvise(pfn, this.mapAddress(a.map, a.page!, a.process).mm)) {
        throw new KernelError('SIGBUS', `BUS_MCEERR_AR: MADV_HWPOISON of ${a.map}[${a.page}] (pfn ${pfn}) kills the caller (kill_proc: MF_ACTION_REQUIRED, t == current)`);
      }
      return;
    }
    const device = [...this.devices.values()].find((d) => deviceRanges(d).some((r) => r.pgmap === pgmap));
    if (!device) throw KernelError.unsupported('EOPNOTSUPP', `memory failure of ${a.map}[${a.page}] (pfn ${pfn}): a device page of no device the model knows`);
    yield* this.deviceMemoryFailure(device, pfn);
    throw new KernelError('SIGBUS', `BUS_MCEERR_AR: MADV_HWPOISON of ${a.map}[${a.page}] (pfn ${pfn}) kills the caller (kill_proc: MF_ACTION_REQUIRED, t == current)`);
  }

  /**
   * Soft offline (mm/memory-failure.c soft_offline_page()): `device` + `page` (from its first data
   * page) as /sys/devices/system/memory/soft_offline_page gets a physical address
   * (soft_offline_page_store()), or `map` + `page` as madvise(MADV_SOFT_OFFLINE) does
   * (madvise_inject_error(): get_user_pages_fast() of the page -- a read fault if nothing maps
   * it -- then soft_offline_page(pfn, MF_COUNT_INCREASED), whose refusal drops that reference).
   * Only online memory can be soft-offlined: pfn_to_online_page() is NULL for ZONE_DEVICE
   * memory, which is EIO (after pfn_valid(): ENXIO for a pfn with no memmap) -- in v5.4 from the sysfs
   * store's own check (641fe2e9387a) and, for madvise, soft_offline_page()'s is_zone_device_page()
   * test; from the 2020 rework (v5.9 [M]) soft_offline_page() takes the pfn and checks both. So
   * every device page (pmem, device-dax, a FUSE DAX window, device-private memory) is refused on
   * every preset, its mappings and references as they were. A RAM page (anonymous, page cache,
   * hugetlb) is migrated to a new page and the old one poisoned (mm/softoffline.ts).
   */
  *softOffline(a: { device?: string; map?: string; page: number; process?: string }): Op {
    let pfn: number;
    if (a.map === undefined) {
      const device = this.device(a.device!);
      if (a.page >= device.dataPages) throw new InputError(`soft-offline of page ${a.page} of '${device.name}': it has ${device.dataPages} data pages (0..${device.dataPages - 1})`, undefined, 'page');
      pfn = devicePfn(device, a.page);
    } else {
      const { vma, vpn } = this.mapPage(a.map, a.page, a.process);
      // get_user_pages_fast(start, 1, 0, &page): FOLL_GET for read (GUP faults a device-private page home)
      const h = yield* this.gupper.gup({ name: `madvise(MADV_SOFT_OFFLINE) of ${a.map}[${a.page}]`, vma, vpn, nr: 1, pin: false, write: false, longterm: false, fast: true });
      pfn = h.pfns[0]!;
      // put_ref_page() when soft offline refuses a device page; a RAM page's GUP reference is
      // MF_COUNT_INCREASED's, handed to soft_offline_page() (taken again before anything can run)
      this.gupper.release(h, false);
      if (this.memremap.pgmapOf(pfn) === null) {
        this.folios.get(this.folios.folio(pfn), 1, 'madvise_inject_error: MF_COUNT_INCREASED (the GUP reference)');
        yield* this.softOffliner.offline(pfn, { vma, vpn }, true);
        return;
      }
    }
    throw new KernelError('EIO', `soft offline of pfn ${pfn}: a ZONE_DEVICE page is not online memory (pfn_to_online_page() is NULL)`);
  }

  /**
   * ndctl inject-error [--no-notify | --uninject] (dax/media-errors.ts): `block` counted as ndctl
   * counts --block, from the data offset of an fsdax or devdax namespace (memory-failure's
   * `block` is the same injection and scrub, counted from the namespace's start).
   */
  *injectError(a: InjectErrorArgs): Op {
    yield* injectError(this, a, 'ndctl');
  }

  /** ndctl start-scrub + wait-scrub: the platform's errors join the bus's list and the badblocks (dax/media-errors.ts). */
  *scrub(): Op {
    yield* [];
    scrub(this);
  }

  /**
   * A clear of physical sectors [first, first + count) that the platform accepted
   * (nvdimm_clear_poison() -> the bus provider, then nvdimm_account_cleared_poison()): the
   * platform's list (nfit_test_cmd_clear_error(): badrange_forget()), the bus's list and the
   * region's and namespaces' badblocks all forget them.
   */
  clearMediaErrors(first: number, count: number): void {
    this.injectedErrors.clear(first, count);
    this.badblocks.clear(first, count);
    // pmem_clear_poison() -> badblocks_clear(&pmem->bb): the disk forgets what was set by hand too
    for (const bb of this.diskBadblocks.values()) bb.clear(first, count);
  }

  /**
   * is_bad_pmem() of a pmem block device's pmem->bb over physical sectors [first, first + count):
   * the first bad range there, from the bus's list (populated into every enabled namespace's
   * disk) or set by hand into a disk (`set-badblocks`), or null.
   */
  pmemBadblock(first: number, count: number): { first: number; count: number } | null {
    const bus = this.badblocks.check(first, count);
    if (bus) return bus;
    for (const bb of this.diskBadblocks.values()) {
      const r = bb.check(first, count);
      if (r) return r;
    }
    return null;
  }

  /** echo "<sector> <count>" > /sys/block/pmemX/badblocks (dax/media-errors.ts setBadblocks()). */
  *setBadblocks(a: SetBadblocksArgs): Op {
    yield* [];
    setBadblocks(this, a);
  }

  /**
   * ND_CMD_CLEAR_ERROR sent to the nvdimm bus (ndctl_bus_cmd_new_clear_error(), as ndctl
   * test/daxdev-errors.c sends it for the range ARS reported) over 512-byte blocks from the
   * namespace's start. __nd_ioctl() (drivers/nvdimm/bus.c) asks nd_cmd_clear_to_send() first:
   * nd_pmem_forget_poison_check() skips nd_dax devices, and for the others compares against
   * [address, address + cleared - 1], whose `cleared` is the command's output field, zero as
   * libndctl sends it: the range is empty and nothing is refused. The bus provider clears
   * (nfit_test_cmd_clear_error(): address and length in units of its clear_err_unit, 256 bytes,
   * cleared = length), then nvdimm_account_cleared_poison() forgets the range in the bus's list
   * (badrange_forget()) and clears whole sectors of the region's badblocks
   * (nvdimm_clear_badblocks_region(), the range lying inside the region). Both came in v4.12
   * ("libnvdimm: add support for clear poison list and badblocks for device dax", Dave Jiang).
   * No page is touched: PG_hwpoison stays where memory_failure() set it (the ioctl has no
   * clear_mce_nospec(), unlike pmem_clear_poison()), and device-dax faults look at neither.
   * Only a devdax namespace is modelled: one bound to the pmem driver (fsdax, raw) keeps its
   * disk's own list (pmem->bb, which this path does not clear) apart from the region's, and the
   * model holds one list.
   */
  *clearError(a: { device: string; block: number; count?: number }): Op {
    const device = this.device(a.device);
    const count = a.count ?? 1;
    const ext = pmemExtent(this, a.device, 'clear-error'); // no pmem namespace: an input error before the driver's refusal
    if (device.driver !== 'devdax') throw KernelError.unsupported('EOPNOTSUPP', `clear-error on ${device.name} (driver ${device.driver}): a namespace bound to the pmem driver keeps its disk's badblocks (pmem->bb) apart from the region's, which ND_CMD_CLEAR_ERROR clears alone; the model holds one list, so only a devdax namespace is modelled`);
    const first = namespaceBlocks(ext, a.block, count, 'namespace');
    yield* [];
    this.clearMediaErrors(first, count);
  }

  /**
   * The bad sectors in a namespace's pfn metadata (before its data offset), as its raw view lists
   * them (force_raw=1: /sys/block/pmemX/badblocks covers the whole namespace; ndctl
   * pfn-meta-errors.sh reads it there).
   */
  metadataBadblocksIn(t: { device: string }): number {
    const ext = pmemExtent(this, t.device, 'check metadataBadblocks');
    return this.badblocks.countIn(ext.start, ext.metadata);
  }

  /**
   * The bad sectors the region's badblocks (/sys/bus/nd/devices/regionX/badblocks, v4.12) list
   * over the whole namespace, metadata and data: what ndctl daxdev-errors.sh reads.
   */
  badblocksIn(t: { device: string }): number {
    const ext = pmemExtent(this, t.device, 'check badblocks');
    return this.badblocks.countIn(ext.start, ext.sectors);
  }

  /** The bad sectors /sys/block/pmemX/badblocks lists: the block device's (pmem->bb, from the data offset). */
  bdevBadblocksIn(t: { device: string }): number {
    return bdevBadblocks(this, t.device, 'check bdevBadblocks').count;
  }

  /** The first sector /sys/block/pmemX/badblocks lists (the block device's sector number), null when it lists none. */
  bdevFirstBadblockIn(t: { device: string }): number | null {
    return bdevBadblocks(this, t.device, 'check bdevFirstBadblock').first;
  }

  /** ndctl inject-error --status: the injected sectors in the namespace's injection bounds (dax/media-errors.ts). */
  injectedErrorsIn(t: { device: string }): number {
    return injectedIn(this, t.device);
  }

  private *deviceMemoryFailure(device: Device, pfn: number): Op {
    // the way from a namespace's dax_device up through dm to the filesystem on top (which holder,
    // if any, dax_holder_notify_failure() reaches) is not modelled
    const dm = dmHolder(this, device.name);
    if (dm?.dax?.fs) throw KernelError.unsupported('EOPNOTSUPP', `memory failure of pfn ${pfn} of ${device.name}, under the filesystem on device-mapper device ${dm.name}, is not modelled`);
    const driver = this.driverOf(device);
    if (!driver.memoryFailure) throw new KernelError('EOPNOTSUPP', `${driver.name} does not handle memory failure`);
    yield* driver.memoryFailure(this, device, pfn);
  }

  // ---- state queries (check steps) -------------------------------------------------------

  /** The pfn behind a check target: a mapped page, a file page (mapped or not), a device page. */
  pfnOf(t: { map?: string; page?: number; process?: string; file?: string; device?: string }): number | null {
    if (t.map !== undefined) {
      const { mm, vpn } = this.mapAddress(t.map, t.page ?? 0, t.process);
      const leaf = this.vm.lookup(mm, vpn);
      // a swap entry names a swap slot, not a page (pagemap gives its swap offset, no pfn)
      return leaf && !leaf.pte.swap && !leaf.pte.marker ? this.vm.pfnAt(leaf, vpn) : null;
    }
    if (t.file !== undefined) {
      const memfd = this.pageCache.named(t.file);
      // a hugetlbfs cache holds one folio per huge page: the base page inside it
      if (memfd?.hugetlb) {
        const head = memfd.cache.get(Math.floor((t.page ?? 0) / memfd.hugetlb.pages));
        return head === undefined ? null : head + ((t.page ?? 0) % memfd.hugetlb.pages);
      }
      if (memfd) return memfd.cache.get(t.page ?? 0) ?? null;
      const { fs, inode } = this.file(t.file);
      // a file without S_DAX: the folio caching that page, if any
      if (inode.cache) return inode.cache.cache.get(t.page ?? 0) ?? null;
      const block = inode.blocks.get(t.page ?? 0);
      return block === undefined ? null : fs.blocks.pfnOf(block);
    }
    if (t.device !== undefined) return devicePfn(this.device(t.device), t.page ?? 0);
    throw new InputError('check target needs map, file or device', undefined, 'check');
  }

  /** folio_ref_count(page_folio(page)) */
  refcount(pfn: number): number {
    return this.folios.rc(this.folios.folio(pfn));
  }

  mapcount(pfn: number): number {
    return this.folios.mapcount(this.folios.folio(pfn));
  }

  maybePinned(pfn: number): boolean {
    return this.folios.maybeDmaPinned(this.folios.folio(pfn));
  }

  isAnon(pfn: number): boolean {
    return this.folios.testAnon(this.folios.folio(pfn), 'check');
  }

  isMappedIn(t: { map: string; page: number; process?: string }): boolean {
    return this.presentLeaf(t) !== null;
  }

  /** The entry mapping a page of a named mapping, or null (none, or a non-present device-private one). */
  private presentLeaf(t: { map: string; page: number; process?: string }): Leaf | null {
    const { mm, vpn } = this.mapAddress(t.map, t.page, t.process);
    const leaf = this.vm.lookup(mm, vpn);
    return leaf && !nonPresent(leaf.pte) ? leaf : null;
  }

  /**
   * pagemap's PM_SWAP (pagemap_is_swapped() in the selftests' vm_util.c): the entry is a swap
   * entry, or any other non-present swap-type entry (device-private, device-exclusive), which
   * pagemap_pte_range() reports the same way.
   */
  isSwappedIn(t: { map: string; page: number; process?: string }): boolean {
    const { mm, vpn } = this.mapAddress(t.map, t.page, t.process);
    const leaf = this.vm.lookup(mm, vpn);
    return leaf !== null && nonPresent(leaf.pte);
  }

  /** pagemap's PM_GUARD_REGION for the page (mm/guard.ts pagemapGuard: v6.15 on). */
  isGuardIn(t: { map: string; page: number; process?: string }): boolean {
    const { mm, vpn } = this.mapAddress(t.map, t.page, t.process);
    return pagemapGuard(this, mm, vpn);
  }

  /** pte_write() of the entry mapping the page (false when nothing maps it). */
  /** VM_LOCKED of the VMA holding the page (smaps VmFlags "lo"); false when no VMA holds it. */
  /** VM_SEALED on the VMA holding the page (smaps VmFlags "sl"; mm/mseal.ts). */
  isSealedIn(t: { map: string; page: number; process?: string }): boolean {
    const { mm, vpn } = this.mapAddress(t.map, t.page, t.process);
    return this.vm.vmaAt(mm, vpn)?.flags.sealed ?? false;
  }

  /**
   * Where the VMA holding the page starts, in pages from the mapping's start (negative: below it),
   * as PROCMAP_QUERY's vma_start or the page's /proc/PID/maps line shows it; null when no VMA is there.
   */
  /** The address (bytes) of the range mmap or mremap returned for the mapping: its /proc/PID/maps start. */
  addressIn(t: { map: string; process?: string }): number {
    return this.mapRange(t.map, t.process).origin.start * this.mmu.basePageSize;
  }

  vmaStartIn(t: { map: string; page: number; process?: string }): number | null {
    const { mm, vpn } = this.mapAddress(t.map, t.page, t.process);
    const vma = this.vm.vmaAt(mm, vpn);
    return vma ? vma.start - mm.ranges.get(t.map)!.start : null;
  }

  /** The length in pages of the VMA holding the page, as its /proc/PID/maps line shows it (0: no VMA there). */
  vmaPagesIn(t: { map: string; page: number; process?: string }): number {
    const { mm, vpn } = this.mapAddress(t.map, t.page, t.process);
    return this.vm.vmaAt(mm, vpn)?.pages ?? 0;
  }

  /**
   * smaps AnonHugePages of the VMA holding the page, in PMD-sized THPs: smaps_pmd_entry() counts
   * each PMD that maps an anonymous folio (the huge zero page is no normal page: not counted).
   */
  /**
   * smaps FilePmdMapped / ShmemPmdMapped of the VMA holding the page, in PMD-sized THPs
   * (smaps_pmd_entry(): a PMD-mapped folio that is not anon counts as shmem when swap-backed, else
   * as file): the khugepaged selftest's check_huge_file() / check_huge_shmem().
   */
  pmdMappedCacheThpsIn(t: { map: string; page: number; process?: string }, kind: 'file' | 'shmem'): number {
    const { mm, vpn } = this.mapAddress(t.map, t.page, t.process);
    const vma = this.vm.vmaAt(mm, vpn);
    const file = vma?.cacheFile;
    if (!vma || !file || file.hugetlb || (kind === 'shmem') !== (file.writeback === undefined)) return 0;
    let thps = 0;
    for (const [base, pmd] of mm.pmds) {
      if (base < vma.start || base >= vma.start + vma.pages || nonPresent(pmd)) continue;
      if (!this.folios.isAnon(this.folios.folio(pmd.pfn))) thps++;
    }
    return thps;
  }

  anonHugePagesIn(t: { map: string; page: number; process?: string }): number {
    const { mm, vpn } = this.mapAddress(t.map, t.page, t.process);
    const vma = this.vm.vmaAt(mm, vpn);
    if (!vma) return 0;
    const n = this.vm.pmdPages;
    let thps = 0;
    for (const [base, pmd] of mm.pmds) if (base >= vma.start && base < vma.start + vma.pages && this.thp.isAnonPmd(vma, { pte: pmd, base, pages: n })) thps++;
    return thps;
  }

  /**
   * The order of the folio mapped at the page, as /proc/PID/pagemap and /proc/kpageflags show it
   * (KPF_THP with KPF_COMPOUND_HEAD / KPF_COMPOUND_TAIL over 2^order pages: the selftests'
   * is_backed_by_folio()); -1 when no page is present there. The zero pages read as order 0 (no KPF_THP).
   */
  folioOrderIn(t: { map?: string; file?: string; device?: string; page: number; process?: string }): number {
    if (t.file !== undefined) return this.cachedFolioOrder(t.file, t.page);
    if (t.device !== undefined) return this.deviceFolioOrder(t.device, t.page);
    const leaf = this.presentLeaf({ map: t.map!, page: t.page, process: t.process });
    if (!leaf || leaf.pte.pfn < 0) return -1;
    // kpageflags marks the huge zero folio KPF_THP too (stable_page_flags())
    if (this.isZeroPfn(leaf.pte.pfn)) return leaf.pte.level === 'pmd' ? this.thp.order : 0;
    return this.folios.order(this.folios.folio(leaf.pte.pfn));
  }

  /**
   * The order of the folio holding data page `page` of a device: its ZONE_DEVICE struct page as
   * the bound driver's memremap_pages() laid it out (compound per vmemmap_shift for device_dax,
   * order 0 for fsdev_dax and pmem until fs-dax builds a folio), -1 when no driver binds it (no
   * pgmap: unbound, or kmem's System RAM).
   */
  private deviceFolioOrder(name: string, page: number): number {
    const device = this.device(name);
    if (page >= device.dataPages) throw new InputError(`folioOrder: page ${page} of '${name}': it has ${device.dataPages} data pages`, undefined, 'page');
    if (!device.bound) return -1;
    return this.folios.order(this.folios.folio(devicePfn(device, page)));
  }

  /**
   * The order of the folio a page-cache file caches at page `index` (filemap_get_folio(): a large
   * folio sits under every index of its range; a hugetlbfs file's cache is keyed by huge page),
   * -1 for a hole.
   */
  private cachedFolioOrder(name: string, index: number): number {
    const file = this.pageCache.named(name);
    if (!file) throw new InputError(`folioOrder: '${name}' is not a page-cache file (a memfd or a tmpfile): a DAX file's page cache holds DAX entries, no folios`, undefined, 'file');
    const pfn = file.hugetlb ? file.cache.get(Math.floor(index / file.hugetlb.pages)) : file.cache.get(index);
    return pfn === undefined ? -1 : this.folios.order(this.folios.folio(pfn));
  }

  /**
   * RssAnon of /proc/PID/status in kB: get_mm_counter(mm, MM_ANONPAGES), the anonymous pages the
   * mm maps present (a PMD-mapped THP counts HPAGE_PMD_NR); zero pages, swap entries, device-private
   * entries and hugetlb pages (HugetlbPages) do not count.
   */
  rssAnonIn(t: { process?: string }): number {
    const mm = this.process(t.process);
    const anon = (pfn: number): boolean => {
      const head = this.folios.folio(pfn);
      return this.folios.isAnon(head) && (this.folios.flags(head) & PG.hugetlb) === 0;
    };
    let pages = 0;
    for (const pte of mm.ptes.values()) if (!nonPresent(pte) && !pte.special && anon(pte.pfn)) pages++;
    for (const pmd of mm.pmds.values()) if (!nonPresent(pmd) && !pmd.special && anon(pmd.pfn)) pages += this.vm.pmdPages;
    return (pages * this.mmu.basePageSize) / 1024;
  }

  isLockedIn(t: { map: string; page: number; process?: string }): boolean {
    const { mm, vpn } = this.mapAddress(t.map, t.page, t.process);
    return this.vm.vmaAt(mm, vpn)?.flags.locked ?? false;
  }

  isWritableIn(t: { map: string; page: number; process?: string }): boolean {
    return this.presentLeaf(t)?.pte.write ?? false;
  }

  /** The uffd-wp bit of the entry at the page (present, swap or PTE marker), as /proc/PID/pagemap bit 57 (PM_UFFD_WP, v5.14) shows it. */
  isUffdWpIn(t: { map: string; page: number; process?: string }): boolean {
    const { mm, vpn } = this.mapAddress(t.map, t.page, t.process);
    return this.uffd.pagemapWp(mm, vpn);
  }

  /** pte_soft_dirty() of the entry mapping the page, as /proc/PID/pagemap bit 55 shows it. */
  isSoftDirtyIn(t: { map: string; page: number; process?: string }): boolean {
    const { mm, vpn } = this.mapAddress(t.map, t.page, t.process);
    const vma = this.vm.vmaAt(mm, vpn);
    const leaf = this.vm.lookup(mm, vpn);
    // pte_to_pagemap_entry() / pagemap_pte_hole(): VM_SOFTDIRTY makes every page of the VMA,
    // mapped or not, read as soft-dirty (an address with no VMA reads as nothing)
    return (leaf?.pte.softDirty ?? false) || (vma?.flags.softdirty ?? false);
  }

  blockFree(t: { file: string; page: number }): boolean {
    const { fs, inode } = this.file(t.file);
    const block = inode.blocks.get(t.page);
    return block === undefined || fs.blocks.isFree(block);
  }

  /** The anon-exclusive bit, for checks and tests. */
  anonExclusive(pfn: number): boolean {
    return (this.folios.flags(this.folios.folio(pfn)) & PG.anonExclusive) !== 0;
  }
}
