import { formatSize, InputError, MiB, parseSize, type ArchPlugin, type KernelDescription } from '@daxlab/core';
import { ppcHashMmu } from './mmu.js';
import { hashPopulator, VMEMMAP_PAGE_SIZES, type VmemmapPageSize } from './vmemmap.js';

export { H_PUD_SIZE_4K, H_PUD_SIZE_64K, PAGE_SIZES, PPC_HASH_4K_MMU, PPC_HASH_64K_MMU, PPC_SECTION_SIZE, ppcHashMmu } from './mmu.js';
export { compoundPathOops, hashArchModel, hashPopulator, hashVmemmapStart, VMEMMAP_PAGE_SIZES, type VmemmapPageSize } from './vmemmap.js';

export interface PpcHashOptions {
  /** PAGE_SIZE: 64KiB (default, PPC_64K_PAGES) or 4KiB (PPC_4K_PAGES) */
  readonly pageSize?: number | string;
  /**
   * mmu_vmemmap_psize: 16MiB (default: 16M pages and >= 1 GiB of RAM at boot) or 64KiB; 4KiB
   * only with 4 KiB pages. Not smaller than PAGE_SIZE.
   */
  readonly vmemmapPageSize?: number | string;
}

function vmemmapPageSizeOf(raw: number | string | undefined, pageSize: number): VmemmapPageSize {
  if (raw === undefined) return 16 * MiB;
  const bytes = typeof raw === 'number' ? raw : parseSize(raw, 'vmemmapPageSize');
  const ok = (VMEMMAP_PAGE_SIZES as readonly number[]).includes(bytes) && bytes >= pageSize;
  if (!ok) {
    const allowed = VMEMMAP_PAGE_SIZES.filter((s) => s >= pageSize).map(formatSize);
    throw new InputError(`@daxlab/arch-ppc-hash: vmemmapPageSize ${raw} is not an mmu_vmemmap_psize for ${formatSize(pageSize)} pages; use ${allowed.join(' or ')}`, undefined, 'vmemmapPageSize');
  }
  return bytes as VmemmapPageSize;
}

/**
 * The powerpc64 book3s hash-MMU arch plugin. ppc64 has had ZONE_DEVICE (and, as PPC_BOOK3S_64,
 * ARCH_HAS_PTE_DEVMAP) since before the oldest preset, so every preset builds; what differs is
 * the vmemmap: bolted hash entries instead of init_mm page tables (seed 003).
 */
export function ppcHash(options: PpcHashOptions = {}): ArchPlugin {
  const mmu = ppcHashMmu(options.pageSize);
  const populator = hashPopulator(vmemmapPageSizeOf(options.vmemmapPageSize, mmu.basePageSize));
  return {
    kind: 'arch',
    name: '@daxlab/arch-ppc-hash',
    arch: 'ppc-hash',
    coreRange: '>=0.1.0 <1.0.0',
    mmu,
    populator,
    unsupported(_k: KernelDescription): string | null {
      return null;
    },
  };
}
