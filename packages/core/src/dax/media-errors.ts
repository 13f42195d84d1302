import type { Kernel } from '../kernel.js';
import { InputError, KernelError } from '../errors.js';
import { Badblocks } from '../badblocks.js';
import type { Op } from '../sched.js';

/**
 * Media errors of pmem namespaces as nfit_test and libnvdimm keep them. Three lists hold them:
 *
 * - the platform's: what nfit_test answers ARS with (tools/testing/nvdimm/test/nfit.c
 *   `t->badrange`): ND_CMD_CALL's NFIT_CMD_ARS_INJECT_SET adds a range
 *   (nfit_test_cmd_ars_error_inject()), NFIT_CMD_ARS_INJECT_CLEAR forgets it
 *   (nfit_test_cmd_ars_inject_clear(), `ndctl inject-error --uninject`), NFIT_CMD_ARS_INJECT_GET
 *   lists it (`--status`), and ND_CMD_CLEAR_ERROR forgets it too (nfit_test_cmd_clear_error():
 *   badrange_forget(), cleared = length). `Kernel.injectedErrors`.
 * - the bus's (drivers/nvdimm/badrange.c), which only a scrub adds to: ARS start / status
 *   report the platform's list (post_ars_status()) and ars_complete() hands each record to
 *   nvdimm_bus_add_badrange(); the region's and each namespace's badblocks are populated from
 *   it (nvdimm_badblocks_populate(): at enable, and on NVDIMM_REVALIDATE_POISON after a scrub).
 *   `Kernel.badblocks`, in physical sectors: the model keeps the region's and a namespace's
 *   lists as views of it.
 * - a pmem block device's own (pmem->bb, /sys/block/pmemX/badblocks): populated over the
 *   namespace's data, from pmem->data_offset (pmem_attach_disk(): bb_range starts at
 *   res->start + data_offset), so its sector 0 is the block device's sector 0.
 *
 * A clear (a write through the block device, ND_CMD_CLEAR_ERROR, nd_pfn_clear_memmap_errors())
 * goes to the platform and, once it answers, forgets the range in the bus's list and the
 * region's badblocks (nvdimm_account_cleared_poison(), v4.12; the bus's list forgets it through
 * nvdimm_forget_poison(), badrange_forget() from v4.15, since v4.9 [M]: the release from which
 * ndctl clear.sh expects a disable / enable not to bring cleared badblocks back). Every preset
 * has all of it: Kernel.clearMediaErrors.
 */

/** A pmem namespace's sectors: the physical sector it starts at, its sectors, and the sectors before its data. */
export interface PmemExtent {
  readonly name: string;
  /** physical 512-byte sector of the namespace's first byte */
  readonly start: number;
  /** the namespace's sectors, metadata and data */
  readonly sectors: number;
  /** sectors before the data: the pfn info block and memmap reserve (0 for a raw namespace) */
  readonly metadata: number;
}

const SECTOR = 512;

/**
 * A pmem namespace by name: an fsdax or devdax one (a Device with `pmemNamespace`) or a raw one
 * (RawNamespace, its whole range a block device). Anything else has no badblocks: InputError.
 */
export function pmemExtent(k: Kernel, name: string, step: string): PmemExtent {
  const raw = k.rawNamespaces.get(name);
  if (raw) return { name, start: raw.phys / SECTOR, sectors: raw.size / SECTOR, metadata: 0 };
  const device = k.device(name);
  if (!device.pmemNamespace || device.ranges) throw new InputError(`${step}: '${device.name}' (driver ${device.driver}) is not a pmem namespace, so it has no badblocks: probe it with driver nvdimm (fsdax), or devdax with mode: devdax or altmap: true (or mode: raw for a raw namespace)`, undefined, 'device');
  const ps = k.mmu.basePageSize;
  const metadata = ((device.dataPfn - device.pgmap.startPfn) * ps) / SECTOR;
  return { name, start: (device.pgmap.startPfn * ps) / SECTOR, sectors: metadata + (device.dataPages * ps) / SECTOR, metadata };
}

/**
 * The physical sector of block `block` of a namespace once blocks [block, block + count) are
 * checked to lie inside it. `from`: 'namespace' counts from the namespace's first byte (its raw
 * view), 'ndctl' as ndctl inject-error counts --block: from ndctl_namespace_get_injection_bounds(),
 * the pfn / dax resource (the data offset) of an fsdax or devdax namespace, the start of a raw one.
 */
export function namespaceBlocks(ext: PmemExtent, block: number, count: number, from: 'namespace' | 'ndctl'): number {
  const base = from === 'ndctl' ? ext.metadata : 0;
  const last = ext.sectors - base - 1;
  const where = from === 'ndctl' ? (ext.metadata ? `counted from its data offset (block ${ext.metadata} of the namespace), as ndctl inject-error counts --block` : 'counted from its start') : `its pfn metadata is blocks 0..${ext.metadata - 1}, the data from there`;
  if (block + count > last + 1) throw new InputError(`blocks ${block}..${block + count - 1} of '${ext.name}' reach past the namespace: it has blocks 0..${last} (${where})`, undefined, 'block');
  return ext.start + base + block;
}

/** ndctl inject-error's arguments: --block, --count, --no-notify, --uninject. */
export interface InjectErrorArgs {
  readonly device: string;
  readonly block: number;
  readonly count?: number;
  /** false: --no-notify (no ARS_ERR_INJ_OPT_NOTIFY, so no scrub runs) */
  readonly notify?: boolean;
  /** --uninject: NFIT_CMD_ARS_INJECT_CLEAR */
  readonly uninject?: boolean;
}

/**
 * ndctl inject-error (ndctl/lib/inject.c): the blocks become one platform range per block
 * (ndctl_namespace_inject_error2(): a clear-unit-long range at each block's start, which ARS
 * reports and nvdimm_badblocks_populate() rounds out to the sector). With the notify option
 * (the default) nfit_test queues uc_error_notify(): __acpi_nfit_notify(NFIT_NOTIFY_UC_MEMORY_ERROR)
 * -> acpi_nfit_uc_error_notify() -> acpi_nfit_ars_rescan(), a scrub; --no-notify queues nothing,
 * so no badblocks list them until something scrubs. --uninject forgets them in the platform's
 * list only: the bus's list and the badblocks keep what a scrub had found (nothing forgets there
 * but a clear). Nothing here is a machine check: no memory_failure(), no page poisoned.
 */
export function* injectError(k: Kernel, a: InjectErrorArgs, from: 'namespace' | 'ndctl'): Op {
  const count = a.count ?? 1;
  const step = from === 'namespace' ? 'memory-failure' : a.uninject ? 'inject-error --uninject' : 'inject-error';
  const first = namespaceBlocks(pmemExtent(k, a.device, step), a.block, count, from);
  yield* [];
  if (a.uninject) {
    if (a.notify === false) throw new InputError('inject-error: --uninject takes no --no-notify (it notifies nothing): leave notify out', undefined, 'notify');
    k.injectedErrors.clear(first, count);
    return;
  }
  k.injectedErrors.set(first, count);
  if (a.notify !== false) scrub(k);
}

/**
 * ndctl start-scrub + wait-scrub (acpi_nfit_ars_rescan(), ARS start / status): every range the
 * platform reports joins the bus's list (nvdimm_bus_add_badrange(); the list only grows here)
 * and the badblocks are populated again from it.
 */
export function scrub(k: Kernel): void {
  for (const r of k.injectedErrors) k.badblocks.set(r.first, r.count);
}

/** The data sectors of a namespace's block device: [first physical sector, count); null when it has none. */
function disk(k: Kernel, ext: PmemExtent): { first: number; count: number } | null {
  if (k.devices.get(ext.name)?.driver === 'devdax') return null;
  return { first: ext.start + ext.metadata, count: ext.sectors - ext.metadata };
}

/** The namespace's disk, or an InputError for a devdax namespace (no block device, no /sys/block/pmemX). */
function diskOf(k: Kernel, ext: PmemExtent, step: string): { first: number; count: number } {
  const d = disk(k, ext);
  if (!d) throw new InputError(`${step}: '${ext.name}' is a devdax namespace: it has no block device, so no /sys/block/pmemX/badblocks (check badblocks reads the region's list)`, undefined, 'device');
  return d;
}

/**
 * /sys/block/pmemX/badblocks of a namespace (pmem->bb): its ranges over the block device's
 * sectors, from the data offset: what the bus's list populated, and what was set there by hand.
 * A devdax namespace has no block device: InputError.
 */
export function bdevBadblocks(k: Kernel, name: string, step: string): { count: number; first: number | null } {
  const d = diskOf(k, pmemExtent(k, name, step), step);
  const bb = new Badblocks();
  for (const list of [k.badblocks, k.diskBadblocks.get(name)]) for (const r of list ?? []) bb.set(r.first, r.count);
  const r = bb.check(d.first, d.count);
  return { count: bb.countIn(d.first, d.count), first: r ? Math.max(r.first, d.first) - d.first : null };
}

/**
 * The block device sector of the first extent of a file on a filesystem mounted on the namespace
 * `device`: what `filefrag -v -b512 <file>` prints as the first physical_offset (FS_IOC_FIEMAP's
 * fe_physical of the lowest logical extent, in 512-byte units), as ndctl pmem-errors.sh reads it.
 * A file elsewhere, or one without a block (filefrag lists no extent), is an input error.
 */
export function fileExtentSector(k: Kernel, device: string, file: string, step: string): number {
  const { fs, inode } = k.file(file);
  if (fs.device.name !== device) throw new InputError(`${step}.extentOf: '${file}' is on ${fs.device.name}, not on ${device}: name the namespace its filesystem is mounted on`, undefined, 'extentOf');
  const first = Math.min(...inode.blocks.keys());
  if (!Number.isFinite(first)) throw new InputError(`${step}.extentOf: '${file}' has no block (filefrag lists no extent): write it first`, undefined, 'extentOf');
  const d = diskOf(k, pmemExtent(k, device, step), step);
  return (fs.blocks.pfnOf(inode.blocks.get(first)!) * k.mmu.basePageSize) / SECTOR - d.first;
}

/** echo "<sector> <count>" > /sys/block/pmemX/badblocks: the sector counted from the start of the disk, or from a file's first extent. */
export interface SetBadblocksArgs {
  readonly device: string;
  readonly sector?: number;
  readonly count: number;
  /** the sector counts from this file's first extent (filefrag), as the script's $start_sect */
  readonly extentOf?: string;
}

/**
 * A write to /sys/block/pmemX/badblocks (disk_badblocks_store() -> badblocks_store() ->
 * badblocks_set(), block/genhd.c and block/badblocks.c, older than every preset): the sectors
 * join the disk's own list (disk->bb is pmem->bb) and nothing else: not the bus's list, not the
 * region's badblocks, not nfit_test's. From then on the disk fails reads there (pmem_do_read(),
 * DAX's __pmem_direct_access()), lists them, and a write over them clears them like any other
 * (pmem_clear_poison(): nvdimm_clear_poison() is asked to clear a range the platform never
 * reported; nfit_test answers cleared = length). A disable / enable rebuilds the disk's list
 * from the bus's (pmem_attach_disk()), so they go with the disk. The kernel accepts sectors past
 * the disk's end (badblocks_set() does not check): not modelled, an input error.
 */
export function setBadblocks(k: Kernel, a: SetBadblocksArgs): void {
  const step = 'set-badblocks';
  const ext = pmemExtent(k, a.device, step);
  const d = diskOf(k, ext, step);
  const device = k.devices.get(a.device);
  if (device && !device.bound) throw new KernelError('ENOENT', `${step}: ${a.device} is disabled: it has no block device, so no /sys/block/pmemX/badblocks`);
  const sector = (a.extentOf !== undefined ? fileExtentSector(k, a.device, a.extentOf, step) : 0) + (a.sector ?? 0);
  if (sector + a.count > d.count) throw new InputError(`${step}: sectors ${sector}..${sector + a.count - 1} reach past the ${d.count} sectors of ${a.device}'s block device (badblocks_set() would record them, but no I/O reaches them: not modelled)`, undefined, 'sector');
  let list = k.diskBadblocks.get(a.device);
  if (!list) k.diskBadblocks.set(a.device, (list = new Badblocks()));
  list.set(d.first + sector, a.count);
}

/** ndctl inject-error --status: the platform's ranges inside the namespace's injection bounds, in sectors. */
export function injectedIn(k: Kernel, name: string): number {
  const ext = pmemExtent(k, name, 'check injectedErrors');
  return k.injectedErrors.countIn(ext.start + ext.metadata, ext.sectors - ext.metadata);
}
