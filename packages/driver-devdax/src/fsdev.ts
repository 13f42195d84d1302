import { devicePgoff, FSDEV_DAX, KernelError, type Device, type Kernel, type MemremapRequest, type ProbeRequest } from '@daxlab/core';

/**
 * What fsdev_dax_probe() (drivers/dax/fsdev.c, d5406bd458b0, v7.1 [M]) asks of memremap_pages()
 * where dev_dax_probe() asks for a MEMORY_DEVICE_GENERIC pgmap with vmemmap_shift from the align:
 * MEMORY_DEVICE_FS_DAX with vmemmap_shift 0 (fsdev_acquire_pgmap() zeroes it in the static pgmap
 * device_dax left), so every folio starts at order 0 and fs-dax builds larger ones per mapping
 * (dax_folio_init()); pgmap->ops carries ->memory_failure (fsdev_pagemap_ops). The model's
 * memremap_pages() writes fresh struct pages, so the compound state fsdev_clear_folio_state()
 * resets with dax_folio_reset_order() (at probe and again on unbind) has nothing left over here;
 * the outcome, order-0 folios without ->mapping, is the same. Null for a device_dax probe.
 */
export function fsdevPgmap(k: Kernel, req: ProbeRequest): Pick<MemremapRequest, 'type' | 'vmemmapShift' | 'ops'> | null {
  if (req.kind !== FSDEV_DAX) return null;
  if (!k.features['fsdev-dax']) throw KernelError.unsupported('ENODEV', `${req.name}: this kernel has no fsdev_dax driver (drivers/dax/fsdev.c, v7.1)`);
  return { type: 'fsdax', vmemmapShift: 0, ops: { memoryFailure: true } };
}

/**
 * fsdev_fops has no ->mmap ("all access is through fs-dax/iomap"): do_mmap() of the character
 * device fails ENODEV before any driver code runs (mm/mmap.c: !file->f_op->mmap, spelled
 * !file_has_valid_mmap_hooks(file) since the mmap_prepare rework).
 */
export function refuseFsdevMmap(device: Device): never {
  throw new KernelError('ENODEV', `${device.name} is bound to fsdev_dax (famfs mode), whose file_operations have no mmap: reconfigure it to devdax for raw mmap`);
}

/**
 * memory_failure_dev_pagemap() on a page of an fsdev_dax instance: pgmap->ops->memory_failure is
 * fsdev_pagemap_memory_failure(), which turns the pfn into a device offset (fsdev_pfn_to_offset())
 * and calls dax_holder_notify_failure() (drivers/dax/super.c). A holder is a filesystem that took
 * the dax_device with fs_dax_get() (famfs, not modelled), so there is none: -EOPNOTSUPP, and
 * memory_failure_dev_pagemap() falls back to mf_generic_kill_procs(), whose dax_lock_folio()
 * needs folio->mapping. Nothing sets it without a filesystem (fsdev has no fault handler and
 * cleared what device_dax had set), so the failure is -EBUSY and no page is poisoned.
 */
export function fsdevMemoryFailure(device: Device, pfn: number): never {
  const pgoff = devicePgoff(device, pfn);
  if (pgoff < 0) throw new KernelError('ENXIO', `pfn ${pfn} is outside ${device.name}'s data`);
  throw new KernelError('EBUSY', `${device.name}: page ${pgoff} has no folio->mapping (fsdev_dax with no fs-dax holder: dax_holder_notify_failure() -EOPNOTSUPP, then dax_lock_folio() fails)`);
}
