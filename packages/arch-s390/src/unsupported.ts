import { kernelAtLeast, type KernelDescription } from '@daxlab/core';

/**
 * Why an s390 kernel with this filesystem/driver cannot exist, or null.
 *
 * ZONE_DEVICE (mm/Kconfig) depended on ARCH_HAS_ZONE_DEVICE and, from 175967318c30 "mm: introduce
 * ARCH_HAS_PTE_DEVMAP" (v5.3 [M]), on ARCH_HAS_PTE_DEVMAP; arch/s390/Kconfig never selected
 * either (s390 PTEs have no devmap bit). Without ZONE_DEVICE memremap_pages() is not built and
 * devm_memremap_pages() is the stub that WARNs and returns -ENXIO, so no pgmap of any type can be
 * probed. The devmap removal ("mm: remove devmap related functions and page table bits", v6.17
 * [M]) dropped that dependency: ZONE_DEVICE is now configurable on s390 (MEMORY_HOTPLUG,
 * MEMORY_HOTREMOVE, SPARSEMEM_VMEMMAP are all there), which makes device-private memory (a
 * software mirror device like lib/test_hmm.c) possible — but still nothing creates a device-dax
 * instance or a pmem namespace on s390.
 *
 * fs-dax: FS_DAX depends on ZONE_DEVICE || FS_DAX_LIMITED; s390's only DAX block device, dcssblk,
 * used FS_DAX_LIMITED (DAX without struct pages: nothing to refcount or pin, not what daxlab
 * models) until "dcssblk: Mark DAX broken, remove FS_DAX_LIMITED support" (v6.15 [M]).
 */
const ZONE_DEVICE_KCONFIG =
  'ZONE_DEVICE cannot be enabled on s390: mm/Kconfig makes it depend on ARCH_HAS_PTE_DEVMAP (175967318c30, v5.3; ARCH_HAS_ZONE_DEVICE before), ' +
  'which arch/s390/Kconfig never selects (no devmap bit in s390 page table entries), so memremap_pages() is not built and devm_memremap_pages() fails with -ENXIO ' +
  '(the dependency went away with the devmap removal, v6.17)';

/** Device-DAX producers and why none exists on s390 (drivers/dax/Kconfig, drivers/nvdimm/Kconfig). */
const NO_DAX_PRODUCER =
  'no s390 platform creates device-dax or pmem memory: DEV_DAX_HMEM needs EFI_SOFT_RESERVE (no EFI on s390), DEV_DAX_CXL needs CXL regions (ACPI CEDT), ' +
  'DEV_DAX_PMEM and the pmem driver need an NVDIMM bus provider (ACPI NFIT, OF pmem, x86 e820 pmem; whether a hypervisor plugs a virtio-pmem device into an s390 guest is not verified)';

export function s390Unsupported(k: KernelDescription): string | null {
  const zoneDevice = kernelAtLeast(k.version, 6, 17);
  const daxDriver = k.driver === 'devdax' || k.driver === 'nvdimm';
  if (daxDriver || k.fs) {
    const what = k.driver === 'devdax' ? 'device-dax' : k.fs ? `fs-dax (${k.fs})` : 'pmem (nvdimm)';
    return zoneDevice
      ? `${what} on s390: ZONE_DEVICE is configurable since the devmap removal (v6.17), but ${NO_DAX_PRODUCER}`
      : `${what} on s390: ${ZONE_DEVICE_KCONFIG}${k.fs ? '; FS_DAX there was only FS_DAX_LIMITED (dcssblk, DAX without struct pages) until v6.15' : ''}`;
  }
  if (k.driver && !zoneDevice) return `${k.driver} on s390: ${ZONE_DEVICE_KCONFIG}`;
  return null;
}
