import type { Kernel } from '../kernel.js';
import { InputError, KernelError } from '../errors.js';
import type { Op } from '../sched.js';
import type { Device, DeviceRange } from '../types.js';

/**
 * One line of a dm-linear table, `<start> <length> linear <device> <offset>` (dmsetup create),
 * in bytes here where dmsetup writes 512-byte sectors.
 */
export interface DmTarget {
  readonly start: number;
  readonly length: number;
  /** a pmem namespace: fsdax (a DAX block device) or raw (a block device without DAX) */
  readonly device: string;
  readonly offset: number;
}

/** A device-mapper device made of linear targets (drivers/md/dm-linear.c). */
export interface DmDevice {
  readonly name: string;
  readonly targets: readonly DmTarget[];
  /**
   * The dm device as the DAX block device a filesystem mounts: one data range per target, the
   * target's pages of its namespace. Null when dm_table_supports_dax() is false.
   */
  readonly dax: Device | null;
  /** why the table offers no DAX (null when it does) */
  readonly noDax: string | null;
}

/** The dm device whose table holds the namespace `name` (dm_get_device()'s exclusive claim), if any. */
export function dmHolder(k: Kernel, name: string): DmDevice | null {
  for (const dm of k.dmDevices.values()) if (dm.targets.some((t) => t.device === name)) return dm;
  return null;
}

/**
 * ndctl_namespace_disable_safe() opens the namespace's block device O_EXCL before it disables
 * it; dm holds that device claimed (dm_get_device()), so the open fails with EBUSY.
 */
export function refuseWhileInDmTable(k: Kernel, name: string, what: string): void {
  const dm = dmHolder(k, name);
  if (dm) throw new KernelError('EBUSY', `${what} ${name}: its block device is claimed by device-mapper device ${dm.name} (ndctl_namespace_disable_safe(): open(O_EXCL) fails); dm-remove it first`);
}

/**
 * dmsetup create <name> with a linear table. dm_table_add_target() wants the targets to adjoin
 * from sector 0 ("Gap in table"), linear_ctr() -> dm_get_device() claims each device
 * exclusively (a mounted one: EBUSY) and device_area_is_invalid() refuses a target past its end.
 * The table offers DAX when dm_table_supports_dax() holds: every target has ->direct_access
 * (linear does) and no underlying device fails device_not_dax_capable() -- from v5.17 a device
 * with no dax_dev (fs_dax_get_by_bdev(): no QUEUE_FLAG_DAX), before that one whose
 * dax_supported() is false (a raw namespace's pfns are not devmap). The dm device's DAX
 * pass-through is linear_dax_direct_access() (v4.12 dax_operations; linear_dax_pgoff() from
 * v5.17): device page offset pgoff of a target is page offset + (pgoff - start) of its device,
 * whose own ->direct_access (pmem_dax_direct_access()) adds the namespace's data offset.
 */
export function* dmCreate(k: Kernel, a: { name: string; table: readonly DmTarget[] }): Op<DmDevice> {
  yield* [];
  if (k.devices.has(a.name) || k.rawNamespaces.has(a.name) || k.dmDevices.has(a.name)) throw new InputError(`'${a.name}' already names a device; give the dm device another name`, undefined, 'name');
  const ps = k.mmu.basePageSize;
  const ranges: DeviceRange[] = [];
  let noDax: string | null = null;
  let end = 0;
  a.table.forEach((t, i) => {
    const at = `table[${i}]`;
    for (const f of ['start', 'length', 'offset'] as const) {
      if (t[f] % ps !== 0) throw new InputError(`${t[f]} bytes is not a multiple of the page size (${ps}); targets of sectors that split a page are not modelled (DAX maps whole pages)`, undefined, `${at}.${f}`);
    }
    if (t.length === 0) throw new InputError('a target of length 0 maps nothing; leave it out', undefined, `${at}.length`);
    if (t.start !== end) throw new InputError(`the target starts at ${t.start} bytes but the one before ends at ${end}; dm_table_add_target() refuses a gap or an overlap ("Gap in table"): start it at ${end}`, undefined, `${at}.start`);
    end = t.start + t.length;
    const raw = k.rawNamespaces.get(t.device);
    const device = raw ? null : k.devices.get(t.device);
    if (!raw && !device) throw new InputError(`unknown device '${t.device}'; probe a pmem namespace first (probe: { size, as: ${t.device} })`, undefined, `${at}.device`);
    if (device && (device.driver !== 'nvdimm' || device.pgmap.type !== 'fsdax')) throw new InputError(`'${t.device}' (driver ${device.driver}) has no block device; a linear target sits on a pmem namespace in fsdax or raw mode`, undefined, `${at}.device`);
    const capacity = raw ? raw.size : device!.dataPages * ps;
    if (t.offset + t.length > capacity) throw new InputError(`${t.offset} + ${t.length} bytes reaches past the end of '${t.device}' (${capacity} bytes of data); device_area_is_invalid() refuses it: shorten the target`, undefined, `${at}.length`);
    if (device && !device.bound) throw new KernelError('ENXIO', `dmsetup create ${a.name}: '${t.device}' is disabled: its block device is gone (enable it first)`);
    if (((device ?? raw?.disk)?.fs as { mounted?: boolean } | null | undefined)?.mounted) throw new KernelError('EBUSY', `dmsetup create ${a.name}: '${t.device}' is mounted: dm_get_device() cannot claim its block device (umount it first)`);
    if (raw) noDax ??= `target ${i} is the raw-mode namespace ${t.device}, whose block device has no DAX (device_not_dax_capable())`;
    else ranges.push({ pfn: device!.dataPfn + t.offset / ps, pages: t.length / ps, pgoff: t.start / ps, pgmap: device!.pgmap });
  });
  const dm: DmDevice = { name: a.name, targets: a.table, noDax, dax: noDax === null ? daxDevice(k, a.name, ranges) : null };
  k.dmDevices.set(a.name, dm);
  return dm;
}

/** The dm device's block device with DAX: its data is the targets' ranges, in device page order. */
function daxDevice(k: Kernel, name: string, ranges: readonly DeviceRange[]): Device {
  const first = ranges[0]!;
  const pages = ranges.reduce((n, r) => n + r.pages, 0);
  return {
    name,
    driver: 'device-mapper',
    size: pages * k.mmu.basePageSize,
    align: k.mmu.basePageSize,
    pgmap: first.pgmap,
    dataPfn: first.pfn,
    dataPages: pages,
    ranges,
    bound: true,
    fs: null,
    mapping: { id: k.newAddressSpaceId(), owner: name, entries: new Map(), mmaps: new Set() },
    state: {},
  };
}

/** dmsetup remove: dm_lock_for_deletion() refuses a device that is open (mounted): EBUSY. */
export function* dmRemove(k: Kernel, a: { name: string }): Op {
  yield* [];
  const dm = k.dmDevices.get(a.name);
  if (!dm) throw new InputError(`'${a.name}' is not a device-mapper device (make it with dm-create)`, undefined, 'name');
  if ((dm.dax?.fs as { mounted?: boolean } | null | undefined)?.mounted) throw new KernelError('EBUSY', `dmsetup remove ${a.name}: the device is open (mounted): umount it first`);
  k.dmDevices.delete(a.name);
}
