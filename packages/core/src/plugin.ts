import type { DependencyContainer } from './di.js';
import type { Mmu, VmemmapPopulator } from './arch.js';
import type { FeatureSet } from './features.js';

/** What a kernel is made of, before anything is instantiated (gem5's "describe" phase). */
export interface KernelDescription {
  readonly arch: string;
  readonly pageSize: number;
  readonly fs: string | null;
  readonly driver: string | null;
  readonly version: string;
  readonly features: FeatureSet;
  /** the arch's MMU facts (set by createKernel), for plugins whose Kconfig depends on them */
  readonly mmu?: Mmu;
}

interface PluginBase {
  /** npm package name (or a local name); used in errors. */
  readonly name: string;
  /** The @daxlab/core range this plugin was written against, checked at load time. */
  readonly coreRange?: string;
  /**
   * Why this plugin cannot be part of the described kernel (the real kernel cannot build or
   * run the combination), or null. Called before anything is instantiated.
   */
  unsupported?(kernel: KernelDescription): string | null;
  /** Register implementations into the kernel's own child container. */
  register?(container: DependencyContainer): void;
}

export interface ArchPlugin extends PluginBase {
  readonly kind: 'arch';
  /** Short arch name ('x86', 'arm64', 'ppc-hash', 's390'). */
  readonly arch: string;
  readonly mmu: Mmu;
  readonly populator: VmemmapPopulator;
}

export type PluginKind = 'arch' | 'fs' | 'driver';
