import type { Kernel } from '../kernel.js';
import { InputError, KernelError } from '../errors.js';
import type { Op } from '../sched.js';
import type { Device } from '../types.js';
import type { RawNamespace } from '../driver.js';
import { refuseWhileInDmTable } from './dm.js';

/** The personalities `reconfigure-namespace` switches a pmem namespace between (ndctl create-namespace -m). */
export type NamespaceMode = 'fsdax' | 'devdax' | 'raw';

export interface ReconfigureNamespaceArgs {
  readonly device: string;
  readonly mode: NamespaceMode;
  /** -a: the new pfn/dax device's align (default: the driver's, nd_pfn_default_alignment()) */
  readonly align?: number;
  /** -M dev (true, ndctl's default) or -M mem: the memmap on the device or in RAM */
  readonly altmap?: boolean;
}

/**
 * The block device of a raw namespace as the device of a filesystem mounted there without DAX
 * (ext4: mkfs.ext4 + mount without -o dax, ndctl pmem-errors.sh): the whole namespace, block b
 * at byte b * PAGE_SIZE (pmem->data_offset 0), made at the first mount and kept while the
 * namespace is (a later mount finds the filesystem again). No dev_pagemap backs it: its `pgmap`
 * throws, so a path that would treat the disk as DAX memory fails loudly instead of reading one.
 */
export function rawDisk(k: Kernel, raw: RawNamespace): Device {
  if (raw.disk) return raw.disk;
  const ps = k.mmu.basePageSize;
  raw.disk = {
    name: raw.name,
    driver: 'nvdimm',
    size: raw.size,
    align: ps,
    get pgmap(): never {
      throw new Error(`${raw.name} is a raw-mode namespace: its block device has no dev_pagemap`);
    },
    dataPfn: raw.phys / ps,
    dataPages: raw.size / ps,
    bound: true,
    fs: null,
    mapping: { id: k.newAddressSpaceId(), owner: raw.name, entries: new Map(), mmaps: new Set() },
    state: {},
  };
  return raw.disk;
}

/** A filesystem is mounted on the raw namespace's block device. */
export function rawMounted(raw: RawNamespace | undefined): boolean {
  return (raw?.disk?.fs as { mounted?: boolean } | null | undefined)?.mounted === true;
}

/** The size of the info block area ndctl's zero_info_block() writes zeroes over (8 KiB at offset 0). */
const INFO_BLOCK_AREA = 8192;
const SECTOR = 512;

/**
 * ndctl create-namespace -f -e <namespace> -m <mode> (ndctl/namespace.c namespace_reconfig() ->
 * namespace_prep_reconfig()): ndctl_namespace_disable_safe() refuses a namespace whose block
 * device is mounted (the O_EXCL open fails: EBUSY) or whose device-dax memory is System RAM
 * (kmem); otherwise the namespace is disabled (ndctl_namespace_disable_invalidate(): the driver
 * unbinds, mappings are zapped), zero_info_block() writes zeroes over its first 8 KiB through the
 * raw block device (O_DIRECT: pmem_do_write() clears the poison there), and the new personality's
 * seed is set up and enabled on the same namespace: nd_pfn_init() writes a new info block at
 * SZ_4K (drivers/nvdimm/pfn_devs.c), and the pfn (fsdax) or dax (devdax, drivers/dax/pmem.c
 * __dax_pmem_probe()) device maps the same physical range. Nothing else of the media is written:
 * data past the info block and memmap reserve stays, and at the same align and --map both
 * personalities put it at the same dataoff, so what the block device wrote at offset 0 is the
 * device-dax instance's offset 0 (ndctl test/device-dax.c). The model's pmem namespaces are the
 * nvdimm driver's devices and the devdax driver's namespaces (`Device.pmemNamespace`: probed with
 * mode devdax or altmap, dax_pmem), with the memmap on the device (PFN_MODE_PMEM) or in RAM
 * (PFN_MODE_RAM, -M mem: data at ALIGN(8 KiB, align)). A raw namespace (ndctl clear.sh: -m raw,
 * then -m fsdax) has only its block device to drop and takes the personality at its own range.
 */
export function* reconfigureNamespace(k: Kernel, a: ReconfigureNamespaceArgs): Op<Device | null> {
  // a raw namespace (no pfn device, only its block device) takes a personality at its own range
  const raw = k.rawNamespaces.get(a.device);
  const old = raw ? null : k.device(a.device);
  if (old && (!old.pmemNamespace || old.ranges)) throw new InputError(`reconfigure-namespace.device: '${a.device}' (driver ${old.driver}) is not a pmem namespace; probe it with driver nvdimm (fsdax), or devdax with mode: devdax or altmap: true (a namespace in devdax mode)`, undefined, 'device');
  const altmap = a.altmap ?? true;
  if (a.mode === 'raw' && (a.align !== undefined || a.altmap !== undefined)) throw new InputError(`reconfigure-namespace.${a.align !== undefined ? 'align' : 'altmap'}: a raw-mode namespace has no pfn device: leave it out with mode: raw`, undefined, a.align !== undefined ? 'align' : 'altmap');
  // ndctl_namespace_disable_safe(): "is active as system-ram" / the mounted block device
  if (k.hotplug.memoryOf(a.device)) throw new KernelError('EBUSY', `${a.device}: active as system-ram, refusing to disable (reconfigure the device-dax instance to devdax first)`);
  refuseWhileInDmTable(k, a.device, 'reconfigure-namespace of');
  if (((old?.fs as { mounted?: boolean } | null | undefined)?.mounted && old?.bound) || rawMounted(raw)) throw new KernelError('EBUSY', `${a.device}: the block device is mounted (ndctl_namespace_disable_safe: open(O_EXCL) fails): umount it first`);
  if (k.hotplug.leakedOf(a.device)) throw new KernelError('EBUSY', `${a.device}: kmem's region of it was never released: the range cannot be claimed again`);
  if (old?.bound) yield* k.unbind({ device: a.device });
  k.diskBadblocks.delete(a.device); // a raw namespace's disk goes too (pmem_release_disk())
  const ps = k.mmu.basePageSize;
  const phys = raw ? raw.phys : old!.pgmap.startPfn * ps;
  const size = raw ? raw.size : old!.size;
  // zero_info_block(): an O_DIRECT write of 8 KiB of zeroes at offset 0 of the raw block device
  k.clearMediaErrors(phys / SECTOR, INFO_BLOCK_AREA / SECTOR);
  const restore = (): void => {
    if (raw) k.rawNamespaces.set(a.device, raw);
    else k.devices.set(a.device, old!);
  };
  k.rawNamespaces.delete(a.device);
  k.devices.delete(a.device);
  if (a.mode === 'raw') {
    k.rawNamespaces.set(a.device, { name: a.device, size, phys });
    return null;
  }
  const driver = a.mode === 'fsdax' ? 'nvdimm' : 'devdax';
  try {
    return yield* k.probe({ driver, ...(a.mode === 'devdax' ? { mode: 'devdax' as const } : {}), size, ...(a.align !== undefined ? { align: a.align } : {}), altmap, as: a.device, phys, newInfoBlock: true });
  } catch (e) {
    // create-namespace failed after the disable: the namespace stays, disabled (a raw one as it was)
    restore();
    throw e;
  }
}
