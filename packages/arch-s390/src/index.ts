import type { ArchPlugin, KernelDescription } from '@daxlab/core';
import { s390Mmu } from './mmu.js';
import { s390Unsupported } from './unsupported.js';
import { s390Populator } from './vmemmap.js';

export { S390_MMU, S390_PAGE_SIZE, S390_PUD_SIZE, s390Mmu, s390SectionSize } from './mmu.js';
export { s390Unsupported } from './unsupported.js';
export { s390ArchModel, s390CompoundPathOops, s390Populator } from './vmemmap.js';

export interface S390Options {
  /** s390 has 4KiB pages only */
  readonly pageSize?: number | string;
  /** the machine has EDAT1 (1 MiB segment frames; every machine since z10): default true */
  readonly edat1?: boolean;
}

/**
 * The s390 arch plugin. Its vmemmap arithmetic always answers (`daxlab vmemmap --arch s390`);
 * kernels with a DAX filesystem or a ZONE_DEVICE driver are refused with the Kconfig reason
 * (see unsupported.ts).
 */
export function s390(options: S390Options = {}): ArchPlugin {
  return {
    kind: 'arch',
    name: '@daxlab/arch-s390',
    arch: 's390',
    coreRange: '>=0.1.0 <1.0.0',
    mmu: s390Mmu(options.pageSize),
    populator: s390Populator(options.edat1 ?? true),
    unsupported: (k: KernelDescription) => s390Unsupported(k),
  };
}
