import type { Kernel } from './kernel.js';
import type { Vmf } from './mm/fault.js';
import type { Leaf } from './mm/vm.js';
import type { KernelDescription } from './plugin.js';
import type { Op } from './sched.js';
import type { Device, Vma, VmFlags } from './types.js';

export interface ProbeRequest {
  /** the device's name (`as:`) */
  readonly name: string;
  readonly size: number;
  /** requested alignment (device-dax align, pmem namespace align), bytes */
  readonly align: number | null;
  /** memmap on the device (vmem_altmap) */
  readonly altmap: boolean;
  /** driver-specific kind (hmm: 'private' | 'coherent') */
  readonly kind: string | null;
}

export interface DeviceMmapRequest {
  readonly length: number;
  readonly offset: number;
  readonly shared: boolean;
  readonly write: boolean;
}

/** A driver plugin: the PagemapProvider of DESIGN.md — probe, faults on its mappings, unbind. */
export interface DriverPlugin {
  readonly kind: 'driver';
  readonly name: string;
  /** 'nvdimm', 'devdax', 'hmm' */
  readonly driverName: string;
  readonly coreRange?: string;
  unsupported?(kernel: KernelDescription): string | null;
  /** Bind a device: build its dev_pagemap with memremap_pages(). */
  probe(k: Kernel, req: ProbeRequest): Op<Device>;
  /** Unbind: revoke what the driver revokes, then memunmap_pages(). */
  unbind(k: Kernel, device: Device): Op;
  /** mmap of the device node itself (device-dax); throws the kernel's error when refused. */
  mmapDevice?(k: Kernel, device: Device, req: DeviceMmapRequest): { readonly flags: Partial<VmFlags>; readonly align: number };
  /** A fault on a mapping of the device node, or on one of its device-private entries. */
  fault?(k: Kernel, vmf: Vmf, device: Device, leaf: Leaf | null): Op;
  /** memory_failure() on one of the device's pages. */
  memoryFailure?(k: Kernel, device: Device, pfn: number): Op;
  /** migrate_vma_setup/pages/finalize between a process's anon pages and the device (hmm). */
  migrate?(k: Kernel, device: Device, req: MigrateRequest): Op;
  /** The device itself reads or writes a process's page (a mirror device, as test_hmm). */
  deviceAccess?(k: Kernel, device: Device, req: DeviceAccessRequest): Op<string>;
}

export interface MigrateRequest {
  readonly vma: Vma;
  readonly page: number;
  readonly pages: number;
  readonly to: 'device' | 'ram';
}

export interface DeviceAccessRequest {
  readonly vma: Vma;
  readonly page: number;
  readonly write: boolean;
  readonly data?: string;
}
