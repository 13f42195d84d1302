import type { Kernel } from '../kernel.js';
import { InputError, KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import { rawMounted, reconfigureNamespace, type NamespaceMode } from './namespace.js';
import { lowestFree } from './region.js';

/**
 * libnvdimm pmem regions and the namespaces carved out of them (drivers/nvdimm/region_devs.c,
 * dimm_devs.c, namespace_devs.c; ndctl/namespace.c). A region interleaves `mappings` DIMMs; every
 * DIMM gives the same share (region size / mappings) and every namespace takes the same DPA range
 * of each (grow_dpa_allocation() runs scan_allocate() per mapping over identical DPA state), so
 * one list of per-DIMM extents describes all of them. A region without DIMM mappings (e820
 * memmap=, nfit_test.1's SPA range) has no labels: its one namespace, namespace<id>.0, is the
 * whole region (create_namespace_io(), ND_DEVICE_NAMESPACE_IO).
 */

/** A labelled namespace's DPA allocation in each DIMM, from the DIMM's share of the region. */
interface Extent {
  readonly start: number;
  readonly size: number;
}

interface NdNamespace {
  readonly id: number;
  readonly name: string;
  /** per DIMM; null: the namespace device exists with no capacity (namespace<id>.0 after a destroy, a seed) */
  extent: Extent | null;
}

export interface NdRegion {
  readonly id: number;
  /** the scenario's name for it */
  readonly name: string;
  /** nd_region->ndr_start: physical address, bytes */
  readonly start: number;
  /** nd_region->ndr_size */
  readonly size: number;
  /** nd_region->ndr_mappings: the interleave ways; 0 for a label-less region */
  readonly mappings: number;
  /** nd_region->align (v5.7; null before: the attribute does not exist) */
  align: number | null;
  /** namespace devices by id (nd_region->ns_ida); a deleted one is gone */
  readonly namespaces: Map<number, NdNamespace>;
  /** nd_region->ns_seed: null for a label-less region (nd_region_create_ns_seed() makes none) */
  seed: number | null;
}

/** MEMREMAP_COMPAT_ALIGN_MAX (region_devs.c): powerpc's memremap_pages() alignment, the largest of any arch. */
const MEMREMAP_COMPAT_ALIGN_MAX = 16 << 20;
/** ndctl validate_namespace_options(): fsdax and devdax namespaces must be at least 16 MiB ("see nd_namespace_store()"). */
const MIN_PFN_NAMESPACE = 16 << 20;

const alignUp = (x: number, a: number): number => Math.ceil(x / a) * a;
const alignDown = (x: number, a: number): number => Math.floor(x / a) * a;

/** Each DIMM's share of the region. */
const share = (r: NdRegion): number => r.size / Math.max(1, r.mappings);

/** dpa_align() (dimm_devs.c, v5.7): the region align split over the DIMMs; 1 (no trimming) before the attribute existed. */
const dpaAlign = (r: NdRegion): number => (r.align === null ? 1 : r.align / Math.max(1, r.mappings));

/** The allocated extents of one DIMM, by DPA (for_each_dpa_resource()). */
function extents(r: NdRegion): Extent[] {
  return [...r.namespaces.values()].flatMap((ns) => (ns.extent ? [ns.extent] : [])).sort((a, b) => a.start - b.start);
}

/**
 * The free DPA ranges of one DIMM, each trimmed to dpa_align() (space_valid() in
 * namespace_devs.c, v5.7: ALIGN the start, ALIGN_DOWN the end), in DPA order: what
 * __reserve_free_pmem() reserves as "pmem-reserve" and scan_allocate() walks.
 */
function freeRanges(r: NdRegion): Extent[] {
  const a = dpaAlign(r);
  const out: Extent[] = [];
  let from = 0;
  for (const e of [...extents(r), { start: share(r), size: 0 }]) {
    const start = alignUp(from, a);
    const end = alignDown(e.start, a);
    if (end > start) out.push({ start, size: end - start });
    from = e.start + e.size;
  }
  return out;
}

/**
 * nd_region_available_dpa() -> nd_pmem_available_dpa() per DIMM: the DIMM's share less every
 * allocation, each widened to dpa_align() (ALIGN_DOWN its start, ALIGN its end), the rest
 * ALIGN_DOWN'ed (v5.7, 2522afb86a8c; plain byte counts before), summed over the DIMMs.
 */
export function availableSize(r: NdRegion): number {
  const a = dpaAlign(r);
  const busy = extents(r).reduce((n, e) => n + alignUp(e.start + e.size, a) - alignDown(e.start, a), 0);
  const free = busy < share(r) ? alignDown(share(r) - busy, a) : 0;
  return free * r.mappings;
}

/**
 * nd_region_allocatable_dpa() (region_devs.c): the largest free extent of a DIMM
 * (nd_pmem_max_contiguous_dpa(): the largest "pmem-reserve" range, trimmed to dpa_align() from
 * v5.7) times the interleave ways: the largest namespace the region can still take.
 */
export function maxAvailableExtent(r: NdRegion): number {
  return freeRanges(r).reduce((m, f) => Math.max(m, f.size), 0) * r.mappings;
}

/**
 * default_align() (region_devs.c, v5.7): MEMREMAP_COMPAT_ALIGN_MAX, times the interleave ways
 * when they do not divide it, so that every DIMM's part is a whole number of bytes.
 */
function defaultAlign(mappings: number): number {
  const ways = Math.max(1, mappings);
  return MEMREMAP_COMPAT_ALIGN_MAX % ways === 0 ? MEMREMAP_COMPAT_ALIGN_MAX : MEMREMAP_COMPAT_ALIGN_MAX * ways;
}

export interface CreateNamespaceArgs {
  readonly region: string;
  readonly size?: number;
  readonly mode?: NamespaceMode;
  readonly align?: number;
  readonly altmap?: boolean;
}

/** The pmem regions of one kernel's nvdimm bus (ndctl create-namespace / destroy-namespace / list -R). */
export class NdBus {
  readonly regions = new Map<string, NdRegion>();

  constructor(private readonly k: Kernel) {}

  region(name: string): NdRegion {
    const r = this.regions.get(name);
    if (!r) throw new InputError(`unknown nvdimm region '${name}' (create it with an nd-region step)`, undefined, 'region');
    return r;
  }

  /**
   * A pmem region as the bus registers it (nd_region_create(): size, mappings, align =
   * default_align() from v5.7), enabled with no labels on its DIMMs (ndctl zero-labels +
   * enable-region): namespace<id>.0 is its seed with no capacity, or for a label-less region the
   * whole region (its size is the region's).
   */
  create(a: { size: number; id?: number; mappings?: number; align?: number; as: string }): void {
    if (this.regions.has(a.as)) throw new InputError(`nd-region '${a.as}' already exists`, undefined, 'as');
    const id = a.id ?? 0;
    if ([...this.regions.values()].some((r) => r.id === id)) throw new InputError(`region id ${id} is taken; give this region another id`, undefined, 'id');
    const mappings = a.mappings ?? 1;
    const unit = this.k.mmu.basePageSize * Math.max(1, mappings);
    if (a.size <= 0 || a.size % unit !== 0) throw new InputError(`nd-region size ${a.size} is not a positive multiple of ${unit} (PAGE_SIZE x ${Math.max(1, mappings)} DIMM mappings): every DIMM gives whole pages`, undefined, 'size');
    const region: NdRegion = {
      id,
      name: a.as,
      start: this.k.memremap.placeRange(a.size),
      size: a.size,
      mappings,
      align: kernelAtLeast(this.k.version, 5, 7) ? defaultAlign(mappings) : null,
      namespaces: new Map([[0, { id: 0, name: `namespace${id}.0`, extent: null }]]),
      seed: mappings > 0 ? 0 : null,
    };
    if (a.align !== undefined) this.setAlign(region, a.align);
    this.regions.set(a.as, region);
    // nd_region_register_namespaces() -> create_namespace_io(): the label-less namespace spans the
    // region and nd_pmem binds it at once, a raw block device (pmem_attach_disk())
    if (mappings === 0) this.k.rawNamespaces.set(`namespace${id}.0`, { name: `namespace${id}.0`, size: a.size, phys: region.start });
  }

  /**
   * align_store() (region_devs.c, 2522afb86a8c "libnvdimm/region: Introduce an 'align'
   * attribute", v5.7 [M]): EINVAL unless align / mappings is a power of two of at least
   * PAGE_SIZE, divides evenly, and align is no larger than the region.
   */
  private setAlign(r: NdRegion, align: number): void {
    if (r.align === null) throw KernelError.unsupported('ENOENT', `region${r.id}/align: the attribute arrived in v5.7 (2522afb86a8c); before it the allocation unit is PAGE_SIZE per DIMM`);
    const ways = Math.max(1, r.mappings);
    const dpa = align / ways;
    const pow2 = Number.isInteger(dpa) && dpa > 0 && (dpa & (dpa - 1)) === 0;
    if (!pow2 || dpa < this.k.mmu.basePageSize || align > r.size) throw new KernelError('EINVAL', `region${r.id}/align ${align}: align / ${ways} mappings must be a power of two of at least PAGE_SIZE, and align no more than the region's ${r.size} bytes (align_store)`);
    r.align = align;
  }

  /** The region holding namespace `name`, and the namespace. */
  private namespace(name: string): { region: NdRegion; ns: NdNamespace } {
    for (const region of this.regions.values()) for (const ns of region.namespaces.values()) if (ns.name === name) return { region, ns };
    throw new InputError(`'${name}' is not a namespace of an nd-region (namespaces of a region are named namespace<region id>.<n>)`, undefined, 'device');
  }

  private active(name: string): boolean {
    return this.k.devices.get(name)?.bound === true || this.k.rawNamespaces.has(name) || this.k.hotplug.memoryOf(name) !== null;
  }

  /**
   * ndctl create-namespace -r <region> [-s size] [-m mode] (ndctl/namespace.c namespace_create()):
   * validate_available_capacity() takes max_available_extent (the region size for a label-less
   * region) as the default size and refuses a larger one (-EAGAIN, "insufficient capacity");
   * validate_namespace_options() refuses a size off the region align or off the interleave
   * width times the mode's align, a pfn / dax namespace under 16 MiB, and any size but the
   * region's on a label-less region (EINVAL). region_get_namespace() picks namespace<id>.0 when
   * it is idle, else the region's seed; none idle: -EAGAIN. The kernel's size_store() then
   * allocates the same DPA range in every DIMM: the first free range, in DPA order, that holds
   * the whole per-DIMM size (scan_allocate(): "allocation needs to be contiguous"), and the
   * namespace's physical start is the region's plus its DPA offset times the ways
   * (nd_namespace_pmem_set_resource()). The namespace is then enabled in its mode
   * (fsdax: nd_pfn, devdax: nd_dax, raw: the block device alone). Returns its name.
   */
  *createNamespace(a: CreateNamespaceArgs): Op<string> {
    const r = this.region(a.region);
    const mode = a.mode ?? 'fsdax';
    const labelless = r.mappings === 0;
    const available = labelless ? r.size : maxAvailableExtent(r);
    if (available === 0 || (a.size ?? 0) > available) throw new KernelError('EAGAIN', `region${r.id}: insufficient capacity: size ${a.size ?? 0}, max_available_extent ${available} (ndctl validate_available_capacity)`);
    // -s 0 is no size: the default
    const size = a.size || available;
    if (labelless && size !== r.size) throw new KernelError('EINVAL', `region${r.id}: label-less namespaces do not support sub-dividing a region: leave size out (ndctl validate_namespace_options)`);
    if (r.align !== null && size % r.align !== 0) throw new KernelError('EINVAL', `region${r.id}: align setting is ${r.align} and size ${size} is misaligned (ndctl validate_namespace_options)`);
    // -a, else the pfn / dax seed's align: nd_pfn_default_alignment(), PMD_SIZE where the arch maps it huge
    const ps = this.k.mmu.basePageSize;
    const modeAlign = a.align ?? (mode !== 'raw' && this.k.mmu.devdaxAlignments.includes(this.k.mmu.pmdSize) ? this.k.mmu.pmdSize : ps);
    if (size % (modeAlign * Math.max(1, r.mappings)) !== 0) throw new KernelError('EINVAL', `'--size=' ${size} must align to interleave-width ${Math.max(1, r.mappings)} and alignment ${modeAlign} (ndctl validate_namespace_options)`);
    if (mode !== 'raw' && size < MIN_PFN_NAMESPACE) throw new KernelError(a.size === undefined ? 'EAGAIN' : 'EINVAL', `region${r.id}: a ${mode} namespace must be at least 16 MiB, ${size} asked (ndctl validate_namespace_options)`);
    const zero = r.namespaces.get(0);
    const target = zero && !this.active(zero.name) && (labelless || zero.extent === null) ? zero : r.seed !== null ? r.namespaces.get(r.seed) : undefined;
    if (!target || this.active(target.name)) throw new KernelError('EAGAIN', `region${r.id}: no idle namespace to configure (ndctl region_get_namespace): destroy one first`);
    if (!labelless) target.extent = this.allocate(r, size / r.mappings);
    const phys = r.start + (target.extent?.start ?? 0) * Math.max(1, r.mappings);
    // setup_namespace() -> check_dax_align(): a pfn or dax personality wants its namespace on a
    // 16 MiB boundary ("misaligned to 16M, adjust region alignment and retry"); the size is set
    // already, so the namespace keeps its capacity, disabled. From v5.7 the region align keeps it so.
    if (mode !== 'raw' && phys % MEMREMAP_COMPAT_ALIGN_MAX !== 0) throw new KernelError('EINVAL', `${target.name} at offset ${phys - r.start} of region${r.id} is misaligned to 16M, adjust region alignment and retry (ndctl check_dax_align)`);
    // a personality that fails to enable leaves the namespace disabled, its capacity allocated
    if (mode === 'raw') yield* this.k.probeRaw({ size, as: target.name });
    else yield* this.k.probe({ ...(mode === 'devdax' ? { mode: 'devdax' as const } : { driver: 'nvdimm' }), size, ...(a.align !== undefined ? { align: a.align } : {}), altmap: a.altmap ?? true, as: target.name, phys, newInfoBlock: true });
    const raw = this.k.rawNamespaces.get(target.name);
    if (raw) this.k.rawNamespaces.set(target.name, { ...raw, phys });
    // nd_region_advance_seeds() on the enable: the seed was used, a new one takes the lowest free id
    if (target.id === r.seed) {
      r.seed = lowestFree(r.namespaces.keys());
      r.namespaces.set(r.seed, { id: r.seed, name: `namespace${r.id}.${r.seed}`, extent: null });
    }
    return target.name;
  }

  /**
   * __size_store() -> grow_dpa_allocation() -> scan_allocate() for a new namespace: the first
   * free range of every DIMM, in DPA order, with room for all of `perDimm`, from its start.
   */
  private allocate(r: NdRegion, perDimm: number): Extent {
    const free = freeRanges(r).find((f) => f.size >= perDimm);
    // validate_available_capacity() checked the size against the largest free range
    if (!free) throw new KernelError('ENOSPC', `region${r.id}: no free range of ${perDimm} bytes per DIMM (__size_store)`);
    return { start: free.start, size: perDimm };
  }

  /**
   * ndctl destroy-namespace [-f] (namespace_prep_reconfig() + namespace_destroy()): an active
   * namespace needs -f (else EBUSY, "is active, specify --force"); ndctl_namespace_disable_safe()
   * refuses a mounted or System-RAM one; the info block is zeroed; a labelled namespace's size is
   * set to 0 (ndctl_namespace_delete()): __size_store() frees its DPA and deletes the device
   * unless it is namespace<id>.0 or the seed, which stay with no capacity. A label-less
   * namespace is only disabled: its capacity is the region's.
   */
  *destroyNamespace(a: { device: string; force?: boolean }): Op {
    const { region, ns } = this.namespace(a.device);
    if (this.active(ns.name) && !a.force) throw new KernelError('EBUSY', `${ns.name} is active, specify force: true (ndctl destroy-namespace -f)`);
    // namespace_prep_reconfig() is reconfigure's too: disable_safe, zero the info block; the raw
    // personality it leaves is then deleted (a raw one has nothing of its own to undo)
    if (this.k.devices.has(ns.name)) yield* reconfigureNamespace(this.k, { device: ns.name, mode: 'raw' });
    if (rawMounted(this.k.rawNamespaces.get(ns.name))) throw new KernelError('EBUSY', `${ns.name}: the block device is mounted (ndctl_namespace_disable_safe: open(O_EXCL) fails): umount it first`);
    this.k.rawNamespaces.delete(ns.name);
    this.k.diskBadblocks.delete(ns.name);
    if (region.mappings === 0) return;
    ns.extent = null;
    if (ns.id !== 0 && ns.id !== region.seed) region.namespaces.delete(ns.id);
  }

  /** What ndctl list -R shows of a region: size, available_size, max_available_extent, align (null before v5.7). */
  attributes(name: string): { size: number; available: number; maxExtent: number; align: number | null } {
    const r = this.region(name);
    return { size: r.size, available: availableSize(r), maxExtent: maxAvailableExtent(r), align: r.align };
  }

  /** ndctl list -R: the failures of the given expectations (none when they all hold). */
  list(a: { region: string; size?: number; available?: number; maxExtent?: number; align?: number }): string[] {
    const got = this.attributes(a.region);
    const attr = { size: 'size', available: 'available_size', maxExtent: 'max_available_extent', align: 'align' } as const;
    return (['size', 'available', 'maxExtent', 'align'] as const).filter((f) => a[f] !== undefined && got[f] !== a[f]).map((f) => `region${this.region(a.region).id} ${attr[f]} ${got[f] ?? '(no attribute before v5.7)'}, expected ${a[f]}`);
  }
}
