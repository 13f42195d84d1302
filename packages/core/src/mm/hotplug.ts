import type { VmemmapFigures } from '../arch.js';
import type { Kernel } from '../kernel.js';
import { InputError, KernelError, KernelOops } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { waitUntil, type Op } from '../sched.js';
import type { Device } from '../types.js';
import { deviceRanges } from '../dax/region.js';
import { boundToFsdev, FSDEV_DAX } from '../dax/fsdev.js';
import { revokeDevmem } from './devmem.js';

/**
 * Device-dax as System RAM: the kmem driver (drivers/dax/kmem.c) hot-adds a device-dax range as
 * memory blocks (mm/memory_hotplug.c, drivers/base/memory.c), and daxctl (ndctl's
 * daxctl/device.c) switches an instance between devdax and system-ram mode around it.
 *
 * Modelled: the block-aligned range (each range of a multi-range instance on its own, v5.10),
 * the blocks' online state and zone, the auto-online policy, the memmap of the added memory (in
 * RAM, or on the memory itself with memmap_on_memory), the one-shot remove_memory() per range
 * that leaks a range when one of its blocks is online, and the resource that
 * then keeps device_dax from binding again. The pages of an online block join the RAM allocator
 * (mm/ram.ts) on the device's target node, in the block's zone, so a policy for that node
 * allocates there; offline_pages() migrates what is in use to another node and waits for pages
 * that cannot move yet (a pin); the node's memory tier follows (mm/memtier.ts). Not modelled:
 * demotion, a target node that also has boot RAM, the auto-movable online policy, signals that
 * end offline_pages() with EINTR.
 */

/** The values auto_online_blocks and a memory block's state file take (online_type_to_str[]). */
export const ONLINE_TYPES = ['offline', 'online', 'online_kernel', 'online_movable'] as const;
export type OnlineType = (typeof ONLINE_TYPES)[number];

/** drivers/base/memory.c struct memory_block: one memoryN directory. */
export interface MemoryBlock {
  /** memory_block id: physical address / memory_block_size_bytes() */
  readonly id: number;
  state: 'online' | 'offline';
  /** the zone its pages joined at online (null while offline) */
  zone: 'Normal' | 'Movable' | null;
}

/**
 * One range kmem holds for a device-dax instance: dev_dax->ranges[i] aligned inward to memory
 * blocks (dax_kmem_range()), its resource (dax_kmem_data->res[i]) and the blocks
 * add_memory_driver_managed() made of it.
 */
export interface KmemRange {
  /** i: the instance's mappingN (its range in page-offset order) */
  readonly mapping: number;
  /** physical start and size of the block-aligned range, bytes */
  readonly start: number;
  readonly size: number;
  readonly blocks: readonly MemoryBlock[];
  /** the memmap add_memory_driver_managed() populated for this range */
  readonly vmemmap: VmemmapFigures;
}

/**
 * What dev_dax_kmem_probe() added for one device-dax instance: one range per dev_dax range that
 * holds a whole block (v5.10; a single range before). Plain fields, not getters: the explorer's
 * snapshots write an object's fields back (explore/memento.ts).
 */
export interface KmemMemory {
  readonly device: string;
  /** the ranges whose resource kmem holds, by mapping: added, or left after a failed remove_memory() */
  ranges: KmemRange[];
  /**
   * ranges dax_kmem_range() found big enough but the probe went past after another range was
   * added (the `mapped` counter): request_mem_region() failed or add_memory_driver_managed()
   * returned an errno; data->res[i] stays NULL
   */
  readonly skipped: readonly { readonly mapping: number; readonly start: number; readonly size: number }[];
  /** the first range's physical start (0 with none), and the bytes of all ranges */
  start: number;
  size: number;
  /** every range's blocks, by address */
  blocks: readonly MemoryBlock[];
  /** the NUMA node the memory joins: dev_dax->target_node (add_memory_driver_managed(numa_node, ...)) */
  readonly node: number;
  /** the memmap of all ranges (sparse_add_section() -> vmemmap population) */
  vmemmap: VmemmapFigures;
  /** the memmap sits in the first pages of each block (MHP_MEMMAP_ON_MEMORY) */
  readonly memmapOnMemory: boolean;
  /** the /proc/iomem name of the added memory (add_memory_driver_managed()'s resource_name) */
  readonly resourceName: string;
  /**
   * kmem unbound but remove_memory() failed for some range (a block was online), or the release
   * has no hot-remove for kmem: those ranges stay System RAM and requested until reboot.
   */
  leaked: boolean;
}

/** Device.state key: the parent namespace of a system-ram instance was disabled (unbind). */
const NAMESPACE_DISABLED = 'kmem.namespaceDisabled';

export class MemoryHotplug {
  /**
   * mhp_default_online_type (memhp_auto_online, a bool, before v5.7): CONFIG_MEMORY_HOTPLUG_DEFAULT_ONLINE
   * is off in mainline's defaults (from v6.14 the MHP_DEFAULT_ONLINE_TYPE choice defaults to
   * OFFLINE), so hot-added memory stays offline until someone onlines it.
   */
  autoOnline: OnlineType = 'offline';
  /** per device-dax instance: the memory kmem added for it (leaked ranges stay here) */
  readonly added = new Map<string, KmemMemory>();

  constructor(private readonly k: Kernel) {}

  /**
   * memory_block_size_bytes(): MIN_MEMORY_BLOCK_SIZE = 1 << SECTION_SIZE_BITS of the release by
   * default (drivers/base/memory.c): 128 MiB on x86-64, on arm64 1 GiB before v5.12 and 128 MiB
   * (4K) / 512 MiB (64K) after. x86-64 picks up to 2 GiB on bare metal with 64 GiB or more
   * (probe_memory_block_size()), which the model's small machines do not have; powerpc's LMB
   * size and s390's storage increment are not modelled.
   */
  get blockSize(): number {
    return this.k.populator.sectionSize?.(this.k.mmu, this.k.version) ?? this.k.mmu.sectionSize;
  }

  /** The memory kmem holds for `device` now (not a leaked range of an earlier binding). */
  memoryOf(device: string): KmemMemory | null {
    const m = this.added.get(device);
    return m && !m.leaked ? m : null;
  }

  /**
   * echo value > /sys/devices/system/memory/auto_online_blocks (auto_online_blocks_store()):
   * "online" and "offline" only until v5.7, which added online_kernel and online_movable
   * ("mm/memory_hotplug: allow to specify a default online_type"); anything else is EINVAL.
   */
  setAutoOnline(value: OnlineType): void {
    if ((value === 'online_kernel' || value === 'online_movable') && !kernelAtLeast(this.k.version, 5, 7)) {
      throw new KernelError('EINVAL', `auto_online_blocks takes only online or offline before v5.7 (memhp_auto_online was a bool), not ${value}`);
    }
    this.autoOnline = value;
  }

  /**
   * dev_dax_kmem_probe() (drivers/dax/kmem.c, v5.1; every range of the instance from v5.10,
   * "device-dax: add dis-contiguous resource support"): each range aligned inward to memory
   * blocks (dax_kmem_range()), then for each in turn request_mem_region() (EBUSY while another
   * binding's range is still requested) and add_memory_driver_managed() ("System RAM (kmem)",
   * v5.8; add_memory() and a plain "System RAM" before) -> add_memory_resource(): the memmap of
   * every section, the memory blocks offline, then online_memory_block() on each unless the policy
   * is offline. Once one range is added (`mapped`), a range that fails either call is skipped
   * ("once some memory has been onlined we can't assume that it can be un-onlined safely");
   * before that the probe fails with the errno.
   */
  kmemProbe(device: Device, a: { memmapOnMemory: boolean; node?: number }): KmemMemory {
    const k = this.k;
    if (!kernelAtLeast(k.version, 5, 1)) throw KernelError.unsupported('ENODEV', `no kmem driver before v5.1 ("device-dax: Hotplug persistent memory for use like normal RAM"): ${device.name} cannot become System RAM`);
    // dev_dax->target_node (the region's proximity domain): by default the first node without
    // boot RAM, the memory-only node a pmem or CXL device's SRAT entry usually gives
    const node = a.node ?? k.numa.nodes;
    if (node < k.numa.nodes) throw new InputError(`reconfigure '${device.name}': node ${node} has boot RAM (numa-nodes: ${k.numa.nodes}); the model puts kmem memory on a node of its own (node ${k.numa.nodes} or higher)`, undefined, 'node');
    const ps = k.mmu.basePageSize;
    const bs = this.blockSize;
    // dax_kmem_range(): start rounded up, end down to memory_block_size_bytes(); from v5.10 a
    // range with nothing left is "too small after alignment" and skipped (-ENOSPC)
    const aligned = deviceRanges(device).map((r, mapping) => {
      const first = r.pfn * ps;
      return { mapping, start: Math.ceil(first / bs) * bs, end: Math.floor((first + r.pages * ps) / bs) * bs };
    });
    const usable = aligned.filter((r) => r.end > r.start);
    if (usable.length === 0) {
      const what = `${device.name}: its ${device.dataPages * ps}-byte range${aligned.length > 1 ? 's hold' : ' holds'} no whole ${bs}-byte memory block (dax_kmem_range())`;
      // v5.1-v5.9: request_mem_region() of the empty (or wrapped, negative) length finds a
      // conflict (__request_resource(): end < start) -> "could not reserve region", -EBUSY
      if (!kernelAtLeast(k.version, 5, 10)) throw new KernelError('EBUSY', `${what}: could not reserve region`);
      // v5.15 ("dax/kmem: use a single static memory group for a single probed unit" sums the
      // ranges first): "rejecting DAX region without any memory after alignment", -EINVAL
      if (kernelAtLeast(k.version, 5, 15)) throw new KernelError('EINVAL', `${what}: rejecting DAX region without any memory after alignment`);
      // v5.10-v5.14: every range is skipped and the probe returns 0: bound to kmem, nothing added
    }
    const mom = a.memmapOnMemory && this.memmapOnMemoryFits();
    const skipped: { mapping: number; start: number; size: number }[] = [];
    const mem: KmemMemory = {
      device: device.name,
      ranges: [],
      skipped,
      start: 0,
      size: 0,
      blocks: [],
      node,
      vmemmap: this.sumFigures([]),
      memmapOnMemory: mom,
      resourceName: kernelAtLeast(k.version, 5, 8) ? 'System RAM (kmem)' : 'System RAM',
      leaked: false,
    };
    // a range an earlier binding of this instance leaked stays where it is, under a key of its own
    const old = this.added.get(device.name);
    if (old?.leaked) {
      this.added.delete(device.name);
      this.added.set(`${device.name}@${old.start.toString(16)}`, old);
    }
    for (const { mapping, start, end } of usable) {
      const owner = this.rangeAt(start, end);
      if (owner) {
        const busy = new KernelError('EBUSY', `${device.name}: mapping${mapping}: could not reserve region [${start.toString(16)}-${(end - 1).toString(16)}]: ${owner.mem.device}'s range is still requested (${owner.mem.leaked ? 'leaked until reboot' : 'in use'})`);
        if (mem.ranges.length === 0) throw busy;
        skipped.push({ mapping, start, size: end - start });
        continue;
      }
      let figures: VmemmapFigures;
      try {
        figures = this.addMemory(start, end, mem, mom);
      } catch (e) {
        // "memory add failed": the resource is released; fatal only while nothing was added
        if (mem.ranges.length === 0 || !(e instanceof KernelError)) throw e;
        skipped.push({ mapping, start, size: end - start });
        continue;
      }
      const blocks: MemoryBlock[] = [];
      for (let b = start / bs; b < end / bs; b++) blocks.push({ id: b, state: 'offline', zone: null });
      mem.ranges.push({ mapping, start, size: end - start, blocks, vmemmap: figures });
      this.summarise(mem);
      this.added.set(device.name, mem);
      // add_memory_resource(): "online pages if requested" with the default online type
      // (online_memory_block(); before v5.7 memhp_auto_online -> device_online(), MMOP_ONLINE_KEEP)
      if (this.autoOnline !== 'offline') for (const b of blocks) this.onlineBlock(mem, b, this.autoOnline);
    }
    this.added.set(device.name, mem);
    return mem;
  }

  /** The added range (any instance's, leaked or not) that overlaps [start, end), bytes. */
  rangeAt(start: number, end: number): { mem: KmemMemory; range: KmemRange } | null {
    for (const mem of this.added.values()) for (const range of mem.ranges) if (range.start < end && start < range.start + range.size) return { mem, range };
    return null;
  }

  /**
   * add_memory_driver_managed() of [start, end): arch_add_memory() populates the memmap of its
   * sections, next to what is present (the pgmaps, the ranges added before it), in RAM or with
   * memmap_on_memory (v5.13 for ACPI, kmem from v6.8) in each block's own first pages, a
   * vmem_altmap of exactly the memmap per block (memory_block_memmap_on_memory_pages()).
   */
  private addMemory(start: number, end: number, mem: KmemMemory, mom: boolean): VmemmapFigures {
    const k = this.k;
    const ps = k.mmu.basePageSize;
    const bs = this.blockSize;
    const present = [...k.memremap.pgmaps.filter((p) => !p.gone).map((p) => ({ start: p.startPfn * ps, size: p.nrPages * ps })), ...[...new Set([...this.added.values(), mem])].flatMap((m) => m.ranges.map((r) => ({ start: r.start, size: r.size })))];
    return mom
      ? this.sumFigures(Array.from({ length: (end - start) / bs }, (_, i) => this.populate(start + i * bs, bs, present, (bs / ps) * k.mmu.structPageSize / ps)))
      : this.populate(start, end - start, present, 0);
  }

  /** The device-wide fields of `mem` from its ranges: first start, total size, all blocks, the memmap's sum. */
  private summarise(mem: KmemMemory): void {
    mem.start = mem.ranges[0]?.start ?? 0;
    mem.size = mem.ranges.reduce((n, r) => n + r.size, 0);
    mem.blocks = mem.ranges.flatMap((r) => r.blocks);
    // one range: its own figures, exactly as the single-range kmem reported them
    mem.vmemmap = mem.ranges.length === 1 ? mem.ranges[0]!.vmemmap : this.sumFigures(mem.ranges.map((r) => r.vmemmap));
  }

  /**
   * echo <type> > /sys/devices/system/memory/memoryN/state (state_store() ->
   * memory_block_change_state() -> online_pages()): nothing to do when already online;
   * online_movable puts the pages in ZONE_MOVABLE, online_kernel in ZONE_NORMAL, and plain
   * online in the default zone, ZONE_NORMAL for memory that no movable zone spans
   * (zone_for_pfn_range() / default_kernel_zone_for_pfn()). The block's pages, past its memmap
   * with memmap_on_memory (mhp_init_memmap_on_memory() keeps those out), are freed to the buddy
   * of mem.node (online_pages_range()), which node_states_set_node() makes a memory node.
   */
  onlineBlock(mem: KmemMemory, block: MemoryBlock, type: Exclude<OnlineType, 'offline'>): boolean {
    if (block.state === 'online') return false;
    block.state = 'online';
    block.zone = type === 'online_movable' ? 'Movable' : 'Normal';
    const r = this.pfnsOf(mem, block);
    this.k.ram.addHotplugged(mem.node, block.zone, r.start, r.end);
    return true;
  }

  /**
   * echo offline > .../memoryN/state -> offline_pages() (mm/memory_hotplug.c, the v5.x-v6.x
   * loop): start_isolate_page_range() (free pages leave the allocator, freed ones stay out), then
   * scan_movable_pages() + do_migrate_range() until no page is in use: each in-use folio is
   * isolated and migrated (MR_MEMORY_HOTPLUG) by alloc_migration_target() to the nearest other
   * memory node (do_migrate_range(): node_clear(mtc.nid, nmask)). A folio that does not move
   * (a pin: folio_migrate_mapping()'s refcount check, or try_to_migrate_one()'s
   * PageAnonExclusive check from v5.19) is retried: the loop has no limit and ends only with a
   * pending signal (-EINTR, not modelled), so the write to memoryN/state sleeps until the pin is
   * gone. A PG_hwpoison page that was freed stays off the allocator and goes with the range
   * (has_unmovable_pages() / test_pages_isolated() skip it under MEMORY_OFFLINE). Then
   * __offline_isolated_pages(): the range leaves the node.
   */
  *offlineBlock(mem: KmemMemory, block: MemoryBlock): Op<boolean> {
    if (block.state === 'offline') return false;
    const k = this.k;
    const r = this.pfnsOf(mem, block);
    k.ram.isolateHotplugged(r.start);
    for (;;) {
      const heads = [...new Set(k.ram.liveIn(r.start, r.end).map((pfn) => k.folios.folio(pfn)))];
      if (heads.length === 0) break;
      const stuck: { head: number; rc: number }[] = [];
      for (const head of heads) {
        if (!k.ram.liveIn(head, head + 1).length) continue;
        const moved = yield* k.numa.migrateOut(head, k.numa.nearestOtherNode(mem.node));
        // the references it had when it failed: one going (an unpin) is what lets it move
        if (moved !== 'moved') stuck.push({ head, rc: k.folios.rc(head) });
      }
      // do_migrate_range() gave up on some folio this pass: the loop scans again; the model
      // sleeps until one of them changed (a reference went, it was freed) instead of spinning
      if (stuck.length > 0) {
        yield* waitUntil(`offline_pages: memory${block.id} has a page that cannot be migrated yet (pinned?); the loop retries until it can`, () => stuck.some((s) => !k.ram.liveIn(s.head, s.head + 1).length || k.folios.rc(s.head) < s.rc));
      }
    }
    k.ram.removeHotplugged(r.start);
    block.state = 'offline';
    block.zone = null;
    return true;
  }

  /** The pfns of `block` online_pages() gives the allocator: after its memmap with memmap_on_memory. */
  private pfnsOf(mem: KmemMemory, block: MemoryBlock): { start: number; end: number } {
    const mmu = this.k.mmu;
    const per = this.blockSize / mmu.basePageSize;
    const memmap = mem.memmapOnMemory ? (per * mmu.structPageSize) / mmu.basePageSize : 0;
    return { start: block.id * per + memmap, end: (block.id + 1) * per };
  }

  /**
   * dev_dax_kmem_remove() (v5.3, "device-dax: Hotremove persistent memory that is used like
   * normal RAM"; per range from v5.10): remove_memory() of each range refuses while any of its
   * blocks is online (try_remove_memory() -> check_memblock_offlined_cb(): -EBUSY), and that is
   * the one shot: the driver unbinds anyway ("cannot be hotremoved until the next reboot") and the
   * range's resource stays requested; a range whose blocks are all offline goes with its
   * resource. v5.1/v5.2 had no hot-remove: everything leaked. Returns whether all memory went.
   */
  kmemRemove(mem: KmemMemory): boolean {
    if (!kernelAtLeast(this.k.version, 5, 3)) {
      mem.leaked = true;
      return false;
    }
    for (const s of mem.skipped) {
      // the loop calls remove_memory() on a range the probe skipped too (dax_kmem_range() is all
      // it asks): with a block of another binding online there it is -EBUSY and logged; else it
      // goes through and remove_resource(data->res[i]) dereferences the NULL resource
      const online = this.rangeAt(s.start, s.start + s.size)?.range.blocks.some((b) => b.state === 'online');
      if (online) continue;
      const msg = `dev_dax_kmem_remove(): ${mem.device} mapping${s.mapping} was skipped at probe (no resource), remove_memory() of it succeeded and remove_resource(NULL) dereferences a NULL pointer`;
      this.k.emit('oops', { message: msg });
      throw new KernelOops(msg);
    }
    mem.ranges = mem.ranges.filter((r) => r.blocks.some((b) => b.state === 'online'));
    if (mem.ranges.length === 0) {
      this.added.delete(mem.device);
      return true;
    }
    this.summarise(mem);
    mem.leaked = true;
    return false;
  }

  /** The memory an earlier kmem binding of `device` left requested (remove_memory() failed), if any. */
  leakedOf(device: string): KmemMemory | null {
    for (const m of this.added.values()) if (m.device === device && m.leaked) return m;
    return null;
  }

  /**
   * mhp_supports_memmap_on_memory(memory_block_size_bytes()) (mm/memory_hotplug.c, v6.6 form):
   * the memmap of one block must fill whole pageblocks and, per arch_supports_memmap_on_memory()
   * (x86, arm64, powerpc radix), be PMD-aligned so the vmemmap maps it with PMD leaves. When it
   * does not, add_memory_resource() quietly falls back to a memmap in RAM.
   */
  memmapOnMemoryFits(): boolean {
    const mmu = this.k.mmu;
    const bytes = (this.blockSize / mmu.basePageSize) * mmu.structPageSize;
    return bytes % mmu.pmdSize === 0;
  }

  private populate(start: number, size: number, present: readonly { start: number; size: number }[], altmapPfns: number): VmemmapFigures {
    const k = this.k;
    const outcome = k.populator.populate(k.mmu, {
      start,
      size,
      vmemmapShift: 0,
      altmap: altmapPfns > 0,
      ...(altmapPfns > 0 ? { altmapLayout: { reserve: 0, free: altmapPfns } } : {}),
      present,
      features: k.features,
      version: k.version,
    });
    if (outcome.ok) return outcome.figures;
    // arch_add_memory() failed: add_memory_resource() returns the errno
    if ('errno' in outcome) throw new KernelError(outcome.errno, outcome.message);
    k.emit('oops', { message: outcome.oops });
    throw new KernelOops(outcome.oops);
  }

  private sumFigures(all: readonly VmemmapFigures[]): VmemmapFigures {
    const sum = (f: (x: VmemmapFigures) => number) => all.reduce((n, x) => n + f(x), 0);
    const detail = (f: (d: NonNullable<VmemmapFigures['detail']>) => number) => sum((x) => (x.detail ? f(x.detail) : 0));
    const via = [...new Set(all.flatMap((x) => x.detail?.via ?? []))];
    return {
      structPages: sum((x) => x.structPages),
      structPagesInitialized: sum((x) => x.structPagesInitialized),
      vmemmapPages: sum((x) => x.vmemmapPages),
      vmemmapBytes: sum((x) => x.vmemmapBytes),
      savedPages: 0,
      optimized: false,
      detail: { sections: detail((d) => d.sections), ramPages: detail((d) => d.ramPages), altmapPages: detail((d) => d.altmapPages), altmapAlignPages: detail((d) => d.altmapAlignPages), compoundNrPages: null, via },
    };
  }
}

/**
 * daxctl reconfigure-device -m system-ram|devdax|famfs [-N] [--no-movable] [-f] (ndctl
 * daxctl/device.c reconfig_mode_system_ram() / reconfig_mode_devdax() / reconfig_mode_famfs()):
 * daxctl's own refusals, then the driver switch it makes through sysfs (unbind from device_dax
 * or fsdev_dax, bind to kmem, or back) and the onlining it does itself.
 */
export function* reconfigureDevice(
  k: Kernel,
  a: { device: string; mode: 'system-ram' | 'devdax' | 'famfs'; online?: boolean; movable?: boolean; force?: boolean; memmapOnMemory?: boolean; node?: number },
): Op {
  const hp = k.hotplug;
  const device = k.device(a.device);
  if (device.state[NAMESPACE_DISABLED]) throw new KernelError('ENXIO', `${a.device}: its namespace was disabled, so the device-dax instance is gone`);
  if (device.driver !== 'devdax') throw new InputError(`reconfigure '${a.device}': only a device-dax instance (driver devdax) switches between devdax, system-ram and famfs; it is ${device.driver}`, undefined, 'device');
  const online = a.online ?? true;
  const movable = a.movable ?? true;
  const mem = hp.memoryOf(a.device);
  if (a.mode === 'famfs') return yield* reconfigureFamfs(k, device, a);
  if (a.mode === 'system-ram') {
    if (a.memmapOnMemory && !kernelAtLeast(k.version, 6, 8)) {
      throw new KernelError('ENOENT', `${a.device}: no memmap_on_memory attribute before v6.8 ("dax/bus: Introduce a memmap_on_memory sysfs attribute"): kmem always puts the memmap in RAM`);
    }
    // "kernel policy will auto-online memory, aborting": -N (or onlining to ZONE_MOVABLE, the
    // default) cannot be honoured once the kernel onlines the blocks itself
    if ((!online || movable) && !a.force && hp.autoOnline !== 'offline') {
      throw new KernelError('EBUSY', `${a.device}: kernel policy will auto-online memory (auto_online_blocks = ${hp.autoOnline}), aborting (daxctl: add --force or set auto_online_blocks to offline)`);
    }
    let target = mem;
    if (!target) {
      if (device.bound) {
        // daxctl_dev_disable(): unbind the instance from device_dax (kill_dev_dax(),
        // memunmap_pages()); its namespace stays enabled
        yield* k.driverOf(device).unbind(k, device);
        device.bound = false;
      }
      // daxctl_dev_enable_ram(): bind to kmem -> dev_dax_kmem_probe(); its request_mem_region()
      // revokes /dev/mem mappings of the range as any claim does
      target = hp.kmemProbe(device, { memmapOnMemory: a.memmapOnMemory ?? false, ...(a.node !== undefined ? { node: a.node } : {}) });
      for (const r of target.ranges) yield* revokeDevmem(k, r.start / k.mmu.basePageSize, r.size / k.mmu.basePageSize);
    }
    // dev_online_memory(): daxctl_memory_online() writes online_movable (online with --no-movable)
    if (online) for (const b of target.blocks) hp.onlineBlock(target, b, movable ? 'online_movable' : 'online');
    return;
  }
  if (a.online === false) throw new InputError(`reconfigure '${a.device}': --no-online is incompatible with --mode=devdax (daxctl parse_device_options())`, undefined, 'online');
  if (!mem) {
    // disable_famfs_device(): unbind fsdev_dax, then device_dax binds below
    if (boundToFsdev(device)) {
      yield* k.driverOf(device).unbind(k, device);
      device.bound = false;
    }
    // "was already in devdax mode": nothing to do
    if (device.bound) return yield* [];
  } else {
    // disable_system_ram_device(): --force offlines first; with a block still online daxctl
    // refuses ("refusing to change modes"), so the kernel's one-shot remove never sees it
    if (a.force) for (const b of mem.blocks) yield* hp.offlineBlock(mem, b);
    const stillOnline = mem.blocks.filter((b) => b.state === 'online').length;
    if (stillOnline > 0) throw new KernelError('EBUSY', `${a.device}: found ${stillOnline} memory block${stillOnline === 1 ? '' : 's'} online, refusing to change modes (daxctl: add --force to offline them first)`);
    hp.kmemRemove(mem);
  }
  yield* bindAgain(k, device);
}

/**
 * daxctl reconfigure-device -m famfs (ndctl daxctl/device.c reconfig_mode_famfs(), the famfs
 * patch): userspace refuses an instance kmem holds (EINVAL "must be in devdax mode to convert to
 * famfs", even with its memory offline: the kernel would let fsdev_dax bind once kmem let go);
 * otherwise the driver bound now (device_dax, or fsdev_dax itself: "just re-enable") is unbound
 * and fsdev_dax bound at the same range (daxctl_dev_enable_famfs()). Without the driver
 * (feature fsdev-dax) the test skips: unsupported.
 */
function* reconfigureFamfs(k: Kernel, device: Device, a: { device: string; online?: boolean }): Op {
  if (!k.features['fsdev-dax']) throw KernelError.unsupported('ENOENT', `${a.device}: no fsdev_dax module (drivers/dax/fsdev.c arrived in v7.1), so there is no famfs mode (ndctl daxctl-famfs.sh skips)`);
  if (a.online === false) throw new InputError(`reconfigure '${a.device}': --no-online is incompatible with --mode=famfs (daxctl parse_device_options())`, undefined, 'online');
  if (k.hotplug.memoryOf(a.device)) throw new KernelError('EINVAL', `${a.device} is in system-ram mode, must be in devdax mode to convert to famfs (daxctl reconfig_mode_famfs())`);
  if (device.bound) {
    yield* k.driverOf(device).unbind(k, device);
    device.bound = false;
  }
  yield* bindAgain(k, device, FSDEV_DAX);
}

/**
 * Bind a device's driver again to the physical range it had: ndctl enable-namespace, or daxctl
 * bringing a device-dax instance back from kmem (daxctl_dev_enable_devdax() -> dev_dax_probe()).
 * The driver's devm_request_mem_region() fails with EBUSY while kmem's leaked region still holds
 * the range; otherwise memremap_pages() builds a new pgmap there (a new Device: a filesystem that
 * was on the namespace is not found again by `mount`), and the claim revokes /dev/mem mappings.
 */
export function* bindAgain(k: Kernel, old: Device, kind: string | null = null): Op {
  if (old.bound) throw new KernelError('EBUSY', `${old.name} is already bound`);
  if (old.state[NAMESPACE_DISABLED] && !k.hotplug.leakedOf(old.name)) delete old.state[NAMESPACE_DISABLED];
  if (k.hotplug.memoryOf(old.name)) throw new KernelError('EBUSY', `${old.name} is in system-ram mode: kmem holds it (reconfigure it to devdax)`);
  const ps = k.mmu.basePageSize;
  // dev_dax_probe(): devm_request_mem_region() of each range meets the range kmem left requested
  const leaked = k.hotplug.leakedOf(old.name);
  const r = leaked?.ranges[0];
  if (leaked && r) throw new KernelError('EBUSY', `${old.name}: could not reserve range: kmem's ${leaked.resourceName} region [${r.start.toString(16)}-${(r.start + r.size - 1).toString(16)}] (mapping${r.mapping}) was never released (remove_memory() failed while memory was online)`);
  const driver = k.driverOf(old);
  // an instance of a dynamic region binds all its ranges again, in page-offset order
  const ranges = old.ranges?.map((x) => ({ phys: x.pfn * ps, size: x.pages * ps }));
  const device = yield* driver.probe(k, { name: old.name, size: old.size, align: old.align, altmap: old.pgmap.altmap, kind, ...(old.pmemNamespace ? { namespace: true } : {}), phys: ranges?.[0]?.phys ?? old.pgmap.startPfn * ps, ...(ranges ? { ranges } : {}) });
  k.devices.set(old.name, device);
  for (const r of deviceRanges(device)) yield* revokeDevmem(k, r.pgmap.startPfn, r.pgmap.nrPages);
}

/**
 * daxctl online-memory / offline-memory (dev_online_memory() / dev_offline_memory()): write each
 * block's state; ENXIO for an instance in devdax mode ("memory operations are not applicable").
 * With `mapping`, only the blocks of that range of the instance, each memoryN/state written as a
 * script looping over them would. Returns how many blocks changed state.
 */
export function* changeMemoryState(k: Kernel, a: { device: string; online: boolean; movable?: boolean; mapping?: number }): Op<number> {
  const mem = k.hotplug.memoryOf(a.device);
  k.device(a.device);
  if (!mem) throw new KernelError('ENXIO', `${a.device}: memory operations are not applicable in devdax mode (reconfigure it to system-ram first)`);
  const range = a.mapping === undefined ? null : mem.ranges.find((r) => r.mapping === a.mapping);
  if (range === undefined) throw new InputError(`mapping ${a.mapping} of '${a.device}' has no memory blocks: kmem added ${mem.ranges.length ? `mapping ${mem.ranges.map((r) => r.mapping).join(', ')}` : 'none'}`, undefined, 'mapping');
  let n = 0;
  for (const b of range?.blocks ?? mem.blocks) if (a.online ? k.hotplug.onlineBlock(mem, b, a.movable ?? true ? 'online_movable' : 'online') : yield* k.hotplug.offlineBlock(mem, b)) n++;
  return n;
}

/**
 * ndctl disable-namespace (the `unbind` step) of a device-dax instance in system-ram mode.
 * ndctl_namespace_disable_safe() refuses with EBUSY while its memory is online ("active as
 * system-ram, refusing to disable"); `force` is the kernel's own unbind without that check:
 * dax_pmem goes, kmem's remove_memory() fails and the range stays System RAM until reboot.
 */
export function unbindSystemRam(k: Kernel, device: Device, force: boolean): void {
  const mem = k.hotplug.memoryOf(device.name);
  if (!mem) return;
  if (!force && mem.blocks.some((b) => b.state === 'online')) {
    throw new KernelError('EBUSY', `${device.name}: active as system-ram, refusing to disable (ndctl_namespace_disable_safe(); offline the memory or reconfigure to devdax first)`);
  }
  k.hotplug.kmemRemove(mem);
  markNamespaceDisabled(device);
}

/** ndctl disable-namespace (the `unbind` step) went through: a device-dax instance is gone with its namespace until `bind`. */
export function markNamespaceDisabled(device: Device): void {
  device.state[NAMESPACE_DISABLED] = true;
}
