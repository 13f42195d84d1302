import type { Kernel } from './kernel.js';
import type { MmuNotifierRange } from './mm/exclusive.js';
import type { Vmf } from './mm/fault.js';
import type { Leaf } from './mm/vm.js';
import type { KernelDescription } from './plugin.js';
import type { Op } from './sched.js';
import type { Device, Mm, Vma, VmFlags } from './types.js';

export interface ProbeRequest {
  /** the device's name (`as:`) */
  readonly name: string;
  readonly size: number;
  /** requested alignment (device-dax align, pmem namespace align), bytes */
  readonly align: number | null;
  /** memmap on the device (vmem_altmap) */
  readonly altmap: boolean;
  /**
   * device-dax: a pmem namespace in devdax mode (ndctl create-namespace -m devdax, dax_pmem),
   * which has a dax info block and its data at nd_pfn_init()'s dataoff even with the memmap in RAM
   * (-M mem, PFN_MODE_RAM); with altmap it is one anyway (PFN_MODE_PMEM)
   */
  readonly namespace?: boolean;
  /** driver-specific kind (hmm: 'private' | 'coherent') */
  readonly kind: string | null;
  /**
   * the physical address of the range, bytes, when the device binds again to the range it had
   * (device-dax back from kmem, mm/hotplug.ts); absent: a new range
   */
  readonly phys?: number;
  /**
   * with `phys`: a new pfn/dax info block is written there (ndctl create-namespace -f -e, a mode
   * change: nd_pfn_init() of a zeroed info block) instead of the old one being validated
   */
  readonly newInfoBlock?: boolean;
  /**
   * device-dax of a dynamic region (dax/region.ts): the instance's physical ranges in page-offset
   * order (dev_dax->ranges, v5.10), each memremapped; size is their sum and phys the first's start
   */
  readonly ranges?: readonly { readonly phys: number; readonly size: number }[];
}

export interface DeviceMmapRequest {
  readonly length: number;
  readonly offset: number;
  readonly shared: boolean;
  readonly write: boolean;
}

/**
 * A pmem namespace in raw mode (`ndctl create-namespace -m raw`): pmem_attach_disk() with no pfn
 * device (drivers/nvdimm/pmem.c). On a region without ND_REGION_PAGEMAP (ACPI NFIT, nfit_test)
 * pmem_should_map_pages() is false: devm_memremap(), no dev_pagemap and no struct pages, pfns
 * PFN_DEV without PFN_MAP, so the block device offers no DAX. Only a block device.
 */
export interface RawNamespace {
  readonly name: string;
  readonly size: number;
  /** physical start, bytes: the namespace's range, which its block device reads and writes from byte 0 */
  readonly phys: number;
  /** its block device as a filesystem's device, once one was mounted there without DAX (dax/namespace.ts rawDisk()) */
  disk?: Device;
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
  /** Bind a pmem namespace in raw mode (`probe { mode: raw }`); drivers without it have no raw mode. */
  probeRaw?(k: Kernel, req: ProbeRequest): RawNamespace;
  /**
   * ndctl enable-namespace of a pmem namespace with a pfn info block (`bind`), before the probe:
   * nd_pfn_init()'s checks of the info block that is there. Returns false when the info block
   * cannot be read (nd_pmem_probe() then finds no personality and attaches the namespace raw);
   * otherwise does what the driver does to the metadata at enable (clears the memmap area).
   */
  enableNamespace?(k: Kernel, device: Device): boolean;
  /** Unbind: revoke what the driver revokes, then memunmap_pages(). */
  unbind(k: Kernel, device: Device): Op;
  /** mmap of the device node itself (device-dax); throws the kernel's error when refused. */
  mmapDevice?(k: Kernel, device: Device, req: DeviceMmapRequest): { readonly flags: Partial<VmFlags>; readonly align: number };
  /**
   * vm_ops->may_split of a mapping of the device node: may the VMA be split at page `vpn`?
   * Throws the kernel's error when not (device-dax: dev_dax_may_split(), -EINVAL off the align).
   */
  maySplit?(k: Kernel, device: Device, vma: Vma, vpn: number): void;
  /** Fill a new mapping of the device node at mmap time (test_hmm: vm_insert_page of its own pages). */
  populate?(k: Kernel, device: Device, vma: Vma): Op;
  /** A fault on a mapping of the device node, or on one of its device-private entries. */
  fault?(k: Kernel, vmf: Vmf, device: Device, leaf: Leaf | null): Op;
  /** memory_failure() on one of the device's pages. */
  memoryFailure?(k: Kernel, device: Device, pfn: number): Op;
  /** migrate_vma_setup/pages/finalize between a process's anon pages and the device (hmm). */
  migrate?(k: Kernel, device: Device, req: MigrateRequest): Op;
  /** The device itself reads or writes a process's page (a mirror device, as test_hmm). */
  deviceAccess?(k: Kernel, device: Device, req: DeviceAccessRequest): Op<string>;
  /**
   * The device snapshots a process's page tables without faulting (test_hmm's
   * HMM_DMIRROR_SNAPSHOT): one byte of SNAPSHOT_FLAGS per page.
   */
  snapshot?(k: Kernel, device: Device, req: DeviceSnapshotRequest): Op<readonly number[]>;
  /**
   * The device takes pages for atomic access (test_hmm's HMM_DMIRROR_EXCLUSIVE:
   * make_device_exclusive(), then its own page table maps them); returns what it reads there.
   */
  exclusive?(k: Kernel, device: Device, req: DeviceExclusiveRequest): Op<readonly string[]>;
  /** HMM_DMIRROR_CHECK_EXCLUSIVE: throws EPERM while the device maps a page of the range atomically. */
  checkExclusive?(k: Kernel, device: Device, req: DeviceSnapshotRequest): Op;
  /** The device's mmu interval notifier: process pages [start, end) are about to change. */
  invalidate?(k: Kernel, device: Device, range: MmuNotifierRange): void;
  /** Whether the device's own page table maps this pfn now (for invariants). */
  mirrors?(k: Kernel, device: Device, pfn: number): boolean;
}

export interface DeviceExclusiveRequest {
  readonly vma: Vma;
  readonly page: number;
  readonly pages: number;
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

/** A range of a process's address space, by virtual page: it may cover holes and other VMAs. */
export interface DeviceSnapshotRequest {
  readonly mm: Mm;
  readonly start: number;
  readonly pages: number;
}

/**
 * The per-page bytes of HMM_DMIRROR_SNAPSHOT (lib/test_hmm_uapi.h HMM_DMIRROR_PROT_*): ERROR and
 * NONE stand alone; otherwise a page kind (none, ZERO, DEV_*) or-ed with READ or WRITE and, for a
 * huge leaf, PMD or PUD. DEV_PRIVATE_REMOTE (0x30) and DEV_COHERENT_REMOTE (0x50) share bits
 * with ZERO, so the kind is the whole high nibble, not a bit set.
 */
export const SNAPSHOT_FLAGS = {
  ERROR: 0xff,
  NONE: 0x00,
  READ: 0x01,
  WRITE: 0x02,
  PMD: 0x04,
  PUD: 0x08,
  ZERO: 0x10,
  DEV_PRIVATE_LOCAL: 0x20,
  DEV_PRIVATE_REMOTE: 0x30,
  DEV_COHERENT_LOCAL: 0x40,
  DEV_COHERENT_REMOTE: 0x50,
} as const;

export type SnapshotFlagName = keyof typeof SNAPSHOT_FLAGS;
const SNAPSHOT_KINDS: readonly SnapshotFlagName[] = ['ZERO', 'DEV_PRIVATE_LOCAL', 'DEV_PRIVATE_REMOTE', 'DEV_COHERENT_LOCAL', 'DEV_COHERENT_REMOTE'];
const SNAPSHOT_GROUPS: readonly (readonly SnapshotFlagName[])[] = [SNAPSHOT_KINDS, ['READ', 'WRITE'], ['PMD', 'PUD']];

/** `'ZERO|READ'` → 0x11; a message naming the problem when the names do not make a snapshot byte. */
export function parseSnapshotFlags(text: string): number | string {
  const names = text.split('|').map((n) => n.trim().toUpperCase().replace(/^HMM_DMIRROR_PROT_/, ''));
  const unknown = names.find((n) => !(n in SNAPSHOT_FLAGS));
  if (unknown !== undefined) return `'${unknown}' is not a snapshot flag (one of ${Object.keys(SNAPSHOT_FLAGS).join(', ')})`;
  const known = names as SnapshotFlagName[];
  if (known.length > 1 && known.some((n) => n === 'ERROR' || n === 'NONE')) return `${known.includes('ERROR') ? 'ERROR' : 'NONE'} stands alone: write it without other flags`;
  for (const group of SNAPSHOT_GROUPS) {
    const both = known.filter((n) => group.includes(n));
    if (both.length > 1) return `${both.join(' and ')} exclude each other: a page has one of ${group.join(', ')}`;
  }
  const alone = known.length === 1 && (known[0] === 'ERROR' || known[0] === 'NONE');
  // dmirror_mkentry() ors READ or WRITE into every entry that is neither ERROR nor NONE
  if (!alone && !known.includes('READ') && !known.includes('WRITE')) return `a mapped page is READ or WRITE: add one of them to '${text}'`;
  return known.reduce((byte, n) => byte | SNAPSHOT_FLAGS[n], 0);
}

/** 0x22 → 'DEV_PRIVATE_LOCAL|WRITE' (the kind from the high nibble, then the low bits). */
export function formatSnapshotFlags(byte: number): string {
  if (byte === SNAPSHOT_FLAGS.ERROR) return 'ERROR';
  if (byte === SNAPSHOT_FLAGS.NONE) return 'NONE';
  const kind = SNAPSHOT_KINDS.find((n) => SNAPSHOT_FLAGS[n] === (byte & 0xf0));
  const low = (['READ', 'WRITE', 'PMD', 'PUD'] as const).filter((n) => byte & SNAPSHOT_FLAGS[n]);
  const unnamed = byte & 0xf0 && !kind ? [`0x${(byte & 0xf0).toString(16)}`] : [];
  return [...(kind ? [kind] : []), ...unnamed, ...low].join('|');
}
