import type { Kernel } from '../kernel.js';
import { InputError, KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Device, DeviceRange } from '../types.js';
import { daxctlMode, type DaxctlMode } from './fsdev.js';

/** The data ranges of a device: several for an instance of a dynamic region (v5.10), else the one it probed. */
export function deviceRanges(device: Device): readonly DeviceRange[] {
  return device.ranges ?? [{ pfn: device.dataPfn, pages: device.dataPages, pgoff: 0, pgmap: device.pgmap }];
}

/**
 * dev_dax_pgoff_to_phys() (drivers/dax/device.c, v5.10): the pfn at device page offset pgoff when
 * the `pages` from there lie inside one range, else -1 (a fault there is SIGBUS).
 */
export function rangePfn(device: Device, pgoff: number, pages: number): number {
  for (const r of deviceRanges(device)) {
    if (pgoff < r.pgoff || pgoff >= r.pgoff + r.pages) continue;
    return pgoff + pages <= r.pgoff + r.pages ? r.pfn + pgoff - r.pgoff : -1;
  }
  return -1;
}

/** The device page offset of pfn, or -1 outside the device's data. */
export function devicePgoff(device: Device, pfn: number): number {
  for (const r of deviceRanges(device)) if (pfn >= r.pfn && pfn < r.pfn + r.pages) return r.pgoff + pfn - r.pfn;
  return -1;
}

/** The pfn of data page `page` of a device as steps name it ({ device, page }). */
export function devicePfn(device: Device, page: number): number {
  if (!device.ranges) return device.dataPfn + page;
  const pfn = rangePfn(device, page, 1);
  if (pfn < 0) throw new InputError(`page ${page} of '${device.name}': it has ${device.dataPages} data pages (0..${device.dataPages - 1})`, undefined, 'page');
  return pfn;
}

/**
 * Dynamic device-dax regions (drivers/dax/bus.c, the "device-dax: add resize support" series of
 * v5.10: create_store(), delete_store(), size_store() -> dev_dax_resize(), alloc_dev_dax_range(),
 * adjust_dev_dax_range(), dev_dax_shrink()). A region (dax_hmem's, dax_region->res) hands out its
 * space to device-dax instances as ranges; an instance may hold several (mappingN), ordered by
 * page offset, and dev_dax_probe() memremaps all of them when it binds. Before v5.10 every region
 * is static: size, align and mapping are read-only and create/delete/seed are absent.
 */

/** struct dev_dax_range: one physical range of an instance and the device offset it starts at. */
export interface DaxRange {
  /** physical start and inclusive end, bytes (struct range) */
  start: number;
  end: number;
  /** bytes of the device before this range (dev_dax_range->pgoff, which counts them in pages) */
  readonly offset: number;
  /** N of its mappingN child device (an ida of the instance) */
  readonly mappingId: number;
}

/** struct dev_dax of a dynamic region. */
export interface DynamicDax {
  /** dax<region>.<id> */
  readonly name: string;
  readonly id: number;
  align: number;
  readonly ranges: DaxRange[];
}

/** dev->driver of an instance: device_dax, kmem (system-ram mode, mm/hotplug.ts), or none. */
export type DaxDriver = 'device_dax' | 'kmem' | null;

export interface DaxRegion {
  readonly id: number;
  /** the scenario's name for it */
  readonly name: string;
  /** dax_region->res: physical start and inclusive end, bytes */
  readonly start: number;
  readonly end: number;
  /** dax_region->align: every instance's initial align */
  readonly align: number;
  /** by id (the region's ida) */
  readonly devices: Map<number, DynamicDax>;
  /** dax_region->seed: the first created instance not bound yet */
  seed: DynamicDax | null;
}

const rangeLen = (r: DaxRange): number => r.end - r.start + 1;
export const daxSize = (d: DynamicDax): number => d.ranges.reduce((n, r) => n + rangeLen(r), 0);

/** The lowest id an ida hands out next (ida_alloc()). */
export function lowestFree(used: Iterable<number>): number {
  const taken = new Set(used);
  let id = 0;
  while (taken.has(id)) id++;
  return id;
}

/** The region's children (dax_region->res child list): every range of every instance, by address. */
function children(region: DaxRegion): { owner: DynamicDax; range: DaxRange }[] {
  const out: { owner: DynamicDax; range: DaxRange }[] = [];
  for (const owner of region.devices.values()) for (const range of owner.ranges) out.push({ owner, range });
  return out.sort((a, b) => a.range.start - b.range.start);
}

/** dax_region_avail_size(): the region's size less every child resource. */
export function availableSize(region: DaxRegion): number {
  return children(region).reduce((n, c) => n - rangeLen(c.range), region.end - region.start + 1);
}

/** alloc_is_aligned(): a multiple of max(dev_dax->align, memremap_compat_align()). */
function allocGranule(k: Kernel, d: DynamicDax): number {
  return Math.max(d.align, k.mmu.memremapCompatAlign ?? k.mmu.subsectionSize);
}

/** alloc_dev_dax_range(): request [start, start + size) from the region and append it as the last range. */
function allocRange(d: DynamicDax, start: number, size: number): void {
  const offset = d.ranges.reduce((n, r) => n + rangeLen(r), 0);
  d.ranges.push({ start, end: start + size - 1, offset, mappingId: lowestFree(d.ranges.map((r) => r.mappingId)) });
}

/** dev_dax_shrink(): give back space from the last range down; the last range kept is trimmed at its end. */
function shrink(d: DynamicDax, size: number): void {
  let toShrink = daxSize(d) - size;
  while (toShrink > 0) {
    const last = d.ranges[d.ranges.length - 1]!;
    if (toShrink >= rangeLen(last)) {
      // unregister_dax_mapping() + trim_dev_dax_range(): the whole range goes
      toShrink -= rangeLen(last);
      d.ranges.pop();
      continue;
    }
    // adjust_dev_dax_range(): adjust_resource() of the last range to its new length
    last.end -= toShrink;
    toShrink = 0;
  }
}

/**
 * dev_dax_resize(): EBUSY while bound, ENOSPC beyond the free space; shrink from the end, grow
 * into free space lowest address first: the region's start, a gap after a child, or its end. When
 * that space follows this instance's last range (adjust_ok(): the same resource, and no earlier
 * range at a larger pgoff) the range is extended in place; else a new range (a new mappingN).
 */
function resize(k: Kernel, region: DaxRegion, d: DynamicDax, size: number): void {
  const devSize = daxSize(d);
  if (size === devSize) return;
  if (size > devSize && size - devSize > availableSize(region)) {
    throw new KernelError('ENOSPC', `${d.name}: growing to ${size} bytes needs ${size - devSize}, region ${region.name} has ${availableSize(region)} available`);
  }
  if (size < devSize) return shrink(d, size);
  let toAlloc = size - devSize;
  while (toAlloc > 0) {
    const kids = children(region);
    let alloc = 0;
    if (kids.length === 0) {
      allocRange(d, region.start, toAlloc);
      return;
    }
    for (let i = 0; i < kids.length; i++) {
      const res = kids[i]!.range;
      const next = kids[i + 1]?.range;
      if (i === 0 && res.start > region.start) {
        // space at the beginning of the region
        alloc = Math.min(res.start - region.start, toAlloc);
        allocRange(d, region.start, alloc);
        break;
      }
      if (next && next.start > res.end + 1) alloc = Math.min(next.start - (res.end + 1), toAlloc);
      if (!alloc && !next && res.end < region.end) alloc = Math.min(region.end - res.end, toAlloc);
      if (!alloc) continue;
      const last = d.ranges[d.ranges.length - 1];
      if (last === res && d.ranges.every((r) => r.offset <= last.offset)) last.end += alloc;
      else allocRange(d, res.end + 1, alloc);
      break;
    }
    // the loop found no space although avail said there was: cannot happen (avail is the complement)
    if (!alloc) throw new KernelError('ENOSPC', `${d.name}: no free space left in region ${region.name}`);
    toAlloc -= alloc;
  }
}

/** The dynamic regions and their instances (the dax bus of one kernel). */
export class DaxBus {
  readonly regions = new Map<string, DaxRegion>();

  constructor(private readonly k: Kernel) {}

  private requireDynamic(what: string): void {
    if (!kernelAtLeast(this.k.version, 5, 10)) {
      throw KernelError.unsupported('EINVAL', `${what}: dynamic device-dax regions arrived in v5.10 (drivers/dax/bus.c "device-dax: add resize support"); before, a region is static and its size/create/delete attributes are read-only or absent`);
    }
  }

  region(name: string): DaxRegion {
    const r = this.regions.get(name);
    if (!r) throw new InputError(`unknown dax region '${name}' (create it with a dax-region step)`, undefined, 'region');
    return r;
  }

  /** The instance named dax<region>.<id>, and its region. */
  instance(name: string): { region: DaxRegion; dev: DynamicDax } {
    for (const region of this.regions.values()) for (const dev of region.devices.values()) if (dev.name === name) return { region, dev };
    throw new InputError(`unknown device-dax instance '${name}' (instances of a dax-region are named dax<region id>.<id>)`, undefined, 'device');
  }

  /**
   * dax_hmem_probe() (drivers/dax/hmem/hmem.c): a dynamic region of soft-reserved memory, aligned
   * to PMD_SIZE, and devm_create_dev_dax() of instance 0 spanning all of it, bound to device_dax.
   */
  *createRegion(a: { size: number; align?: number; id?: number; as: string }): Op {
    this.requireDynamic('dax-region');
    if (this.regions.has(a.as)) throw new InputError(`dax region '${a.as}' already exists`, undefined, 'as');
    const id = a.id ?? 0;
    if ([...this.regions.values()].some((r) => r.id === id)) throw new InputError(`dax region id ${id} is taken; give this region another id`, undefined, 'id');
    const align = a.align ?? this.k.mmu.pmdSize;
    if (a.size <= 0 || a.size % align !== 0) throw new InputError(`dax-region size ${a.size} is not a positive multiple of its align ${align} (alloc_dax_region() refuses it)`, undefined, 'size');
    const start = this.k.memremap.placeRange(a.size);
    const region: DaxRegion = { id, name: a.as, start, end: start + a.size - 1, align, devices: new Map(), seed: null };
    this.regions.set(a.as, region);
    const dev = this.newInstance(region);
    allocRange(dev, region.start, a.size);
    yield* this.enable(dev.name);
  }

  private newInstance(region: DaxRegion): DynamicDax {
    const id = lowestFree(region.devices.keys());
    const dev: DynamicDax = { name: `dax${region.id}.${id}`, id, align: region.align, ranges: [] };
    region.devices.set(id, dev);
    return dev;
  }

  /**
   * daxctl create-device (ndctl daxctl/device.c do_create()): write 1 to the region's create
   * (create_store(): ENOSPC with nothing available; a new 0-size instance, the seed unless one is
   * waiting), take the seed, set its align, its size (default: all available), and enable it.
   */
  *createDevice(a: { region: string; size?: number; align?: number; mappings?: readonly { offset: number; size: number }[] }): Op<string> {
    this.requireDynamic('create-device');
    const region = this.region(a.region);
    if (availableSize(region) === 0) throw new KernelError('ENOSPC', `region ${region.name} has no available space (create_store)`);
    const created = this.newInstance(region);
    if (!region.seed) region.seed = created;
    const dev = region.seed;
    const size = a.size ?? availableSize(region);
    if (a.align !== undefined) this.setAlign(dev, a.align);
    // --input (a device's mappings as daxctl list -M dumped them, in page-offset order): one
    // mapping_store() each; daxctl sets the size only when they add up to it
    for (const m of a.mappings ?? []) this.setMapping(region, dev, region.start + m.offset, m.size);
    const mapped = (a.mappings ?? []).reduce((n, m) => n + m.size, 0);
    if (!a.mappings?.length || a.size === undefined || mapped === a.size) this.setSize(region, dev, a.mappings?.length ? mapped : size);
    yield* this.enable(dev.name);
    return dev.name;
  }

  /** align_store(): dax_align_valid(), EBUSY while bound, every range a multiple of the new align. */
  private setAlign(dev: DynamicDax, align: number): void {
    // as the probe of device-dax: an alignment the arch does not offer is a kernel that cannot have the instance
    if (!this.k.mmu.devdaxAlignments.includes(align)) throw KernelError.unsupported('EINVAL', `${dev.name}: align ${align} is not offered on ${this.k.mmu.arch} (dax_align_valid(): ${this.k.mmu.devdaxAlignments.join(', ')})`);
    if (this.driverOf(dev)) throw new KernelError('EBUSY', `${dev.name} is bound to ${this.driverOf(dev)} (align_store)`);
    const old = dev.align;
    dev.align = align;
    if (dev.ranges.some((r) => rangeLen(r) % allocGranule(this.k, dev) !== 0)) {
      dev.align = old;
      throw new KernelError('EINVAL', `${dev.name}: a range is not a multiple of align ${align} (dev_dax_validate_align)`);
    }
  }

  /**
   * mapping_store() (v5.10): claim exactly [start, start + size) for the instance as its next
   * range; ENXIO unless the size is a multiple of the allocation granule, ENOMEM when
   * __request_region() fails (outside the region, or overlapping a child)
   */
  private setMapping(region: DaxRegion, dev: DynamicDax, start: number, size: number): void {
    if (size === 0 || size % allocGranule(this.k, dev) !== 0) throw new KernelError('ENXIO', `${dev.name}: mapping of ${size} bytes is not a multiple of ${allocGranule(this.k, dev)} (mapping_store)`);
    const end = start + size - 1;
    const clash = children(region).find((c) => c.range.start <= end && start <= c.range.end);
    if (start < region.start || end > region.end || clash) {
      throw new KernelError('ENOMEM', `${dev.name}: ${size} bytes at offset ${start - region.start} of region ${region.name} ${clash ? `overlaps ${clash.owner.name}` : 'is outside it'} (__request_region)`);
    }
    allocRange(dev, start, size);
  }

  /** size_store(): EINVAL unless a multiple of the allocation granule, then dev_dax_resize(). */
  private setSize(region: DaxRegion, dev: DynamicDax, size: number): void {
    const granule = allocGranule(this.k, dev);
    if (size % granule !== 0) throw new KernelError('EINVAL', `${dev.name}: size ${size} is not a multiple of ${granule} (size_store: alloc_is_aligned)`);
    // dev_dax_resize(): any driver, device_dax or kmem, holds the ranges
    const driver = this.driverOf(dev);
    if (driver) throw new KernelError('EBUSY', `${dev.name} is bound to ${driver}: disable it before resizing (dev_dax_resize: dev->driver)`);
    resize(this.k, region, dev, size);
  }

  /** daxctl reconfigure-device -s: size_store() of a disabled instance. */
  *resizeDevice(a: { device: string; size: number }): Op {
    this.requireDynamic('resize-device');
    const { region, dev } = this.instance(a.device);
    yield* [];
    this.setSize(region, dev, a.size);
  }

  /**
   * daxctl destroy-device: refused while enabled, then size 0 (dev_dax_shrink() of every range)
   * and delete_store(): EBUSY for instance 0 (kept so /sys/bus/dax is never empty).
   */
  *destroyDevice(a: { device: string }): Op {
    this.requireDynamic('destroy-device');
    const { region, dev } = this.instance(a.device);
    const driver = this.driverOf(dev);
    if (driver) throw new KernelError('EBUSY', `${dev.name} is bound to ${driver}: disable it before destroying it`);
    this.setSize(region, dev, 0);
    yield* [];
    if (dev.id === 0) throw new KernelError('EBUSY', `${dev.name}: instance 0 of a region cannot be deleted (delete_store)`);
    region.devices.delete(dev.id);
    if (region.seed === dev) region.seed = null;
  }

  /**
   * dev->driver of an instance: device_dax while its Device is bound, kmem while it is in
   * system-ram mode, else none (never enabled, disabled, or left driverless: a kmem probe that
   * failed, a kmem unbind that leaked its memory, a namespace-style unbind).
   */
  driverOf(dev: DynamicDax): DaxDriver {
    if (this.k.hotplug.memoryOf(dev.name)) return 'kmem';
    return this.k.devices.get(dev.name)?.bound ? 'device_dax' : null;
  }

  /**
   * daxctl enable-device: nothing for an instance with a driver (libdaxctl daxctl_dev_enable()),
   * else dax_bus_probe() (ENXIO for a 0-size instance) -> dev_dax_probe(), which requests and
   * memremaps every range of the instance (EBUSY while kmem's leaked region of an earlier binding
   * holds one); the seed is cleared once bound.
   */
  *enable(name: string): Op {
    const { region, dev } = this.instance(name);
    if (this.driverOf(dev)) return;
    if (dev.ranges.length === 0) throw new KernelError('ENXIO', `${dev.name} has size 0 (dax_bus_probe)`);
    for (const r of dev.ranges) {
      const held = this.k.hotplug.rangeAt(r.start, r.end + 1);
      if (held) throw new KernelError('EBUSY', `${dev.name}: could not reserve range [${r.start.toString(16)}-${r.end.toString(16)}]: kmem's ${held.mem.resourceName} region of ${held.mem.device} holds part of it (devm_request_mem_region)`);
    }
    // the Device a driverless instance left behind is replaced by the new binding's
    this.k.devices.delete(dev.name);
    const ranges = dev.ranges.map((r) => ({ phys: r.start, size: rangeLen(r) }));
    yield* this.k.probe({ driver: 'devdax', size: daxSize(dev), align: dev.align, as: dev.name, ranges });
    if (region.seed === dev) region.seed = null;
  }

  /** daxctl list: what differs from the values given (region available_size, instance size and mappings). */
  list(a: { region?: string; device?: string; available?: number; size?: number; mappings?: number; mode?: DaxctlMode }): string[] {
    const out: string[] = [];
    if (a.region !== undefined && a.available !== undefined) {
      const got = availableSize(this.region(a.region));
      if (got !== a.available) out.push(`region ${a.region} available_size ${got}, expected ${a.available}`);
    }
    if (a.device !== undefined && a.mode !== undefined) {
      const got = daxctlMode(this.k, this.k.device(a.device));
      if (got !== a.mode) out.push(`${a.device} mode ${got}, expected ${a.mode}`);
    }
    if (a.device !== undefined && (a.size !== undefined || a.mappings !== undefined)) {
      const { dev } = this.instance(a.device);
      if (a.size !== undefined && daxSize(dev) !== a.size) out.push(`${dev.name} size ${daxSize(dev)}, expected ${a.size}`);
      if (a.mappings !== undefined && dev.ranges.length !== a.mappings) out.push(`${dev.name} has ${dev.ranges.length} mappings, expected ${a.mappings}`);
    }
    return out;
  }

  /**
   * daxctl disable-device: unbind device_dax (kill_dev_dax(), memunmap_pages()); an instance
   * without a driver stays so (daxctl_dev_disable()), and one in system-ram mode is left to kmem
   * (disable_devdax_device(): "is in system-ram mode", nothing unbound: reconfigure it instead).
   */
  *disable(name: string): Op {
    const { dev } = this.instance(name);
    const driver = this.driverOf(dev);
    if (driver === 'kmem') return;
    if (driver) yield* this.k.unbind({ device: dev.name });
    this.k.devices.delete(dev.name);
  }
}
