import { z } from 'zod';
import type { Errno } from '../errors.js';
import { parseSnapshotFlags } from '../driver.js';
import { FEATURES, PRESETS } from '../features.js';
import { FAULT_SITE_NAMES, type FaultSite } from '../fault-inject.js';
import { MADVISE_ADVICES } from '../mm/madvise.js';
import { MAX_NUMNODES, MPOL_MODES } from '../mm/mempolicy.js';
import { SEAL_NAMES } from '../mm/memfd.js';
import { THP_SIZE_MODES } from '../mm/mthp.js';
import { THP_ENABLED_MODES } from '../mm/thp.js';
import { SHMEM_HUGE_MODES, TMPFS_HUGE_OPTIONS } from '../mm/pagecache.js';
import { DAX_MODES } from '../fs/daxmode.js';
import { ONLINE_TYPES } from '../mm/hotplug.js';
import { formatNodelist, parseNodelist } from '../mm/memtier.js';
import { UFFD_FEATURES, UFFD_MODES, UFFD_RANGE_IOCTLS } from '../mm/userfaultfd.js';
import { PAGE_CATEGORIES, PM_SCAN_FLAGS } from '../mm/pagemapscan.js';
import { isPowerOfTwo, parseSize } from '../units.js';
import type { CheckArgs, CheckWhat, OpName } from './types.js';

/**
 * The scenario file format of SCENARIOS.md as zod schemas. The same schemas validate files
 * (load.ts) and produce the JSON Schema that `daxlab schema` prints for editors. Sizes are
 * normalised to bytes and `unpin: dma` to `{ name: 'dma' }` here; names are resolved in load.ts.
 */

/** The invariants of DESIGN.md: stable names used by `expect.violations` and by reports. */
export const INVARIANTS = [
  { name: 'block-freed-while-pinned', brokenWhen: 'a filesystem block is returned to the allocator while a page backed by it still has a GUP reference (DMA could still write it)' },
  { name: 'dma-to-foreign-block', brokenWhen: 'a DMA write lands in a block that now belongs to another file (the data corruption itself)' },
  { name: 'mapped-page-zero-ref', brokenWhen: 'a PTE/PMD maps a page whose refcount is 0 under a convention where mappings hold references' },
  { name: 'refcount-underflow', brokenWhen: "a put drops a refcount below its convention's floor" },
  { name: 'page-freed-while-mapped', brokenWhen: 'a page is freed (back to its driver or pgmap) while a PTE still maps it' },
  { name: 'pgmap-teardown-while-referenced', brokenWhen: 'memunmap_pages completes while pages of the pgmap are mapped or referenced' },
  { name: 'pinned-page-diverged', brokenWhen: 'after fork/COW, the page a pin refers to is no longer the page mapped at that address in the pinning process' },
  { name: 'longterm-pin-of-fsdax', brokenWhen: 'a FOLL_LONGTERM pin succeeds on an fs-dax page' },
  { name: 'dax-page-seen-as-anon', brokenWhen: 'an fs-dax file page tests as anonymous (PAGE_MAPPING_DAX_SHARED alias)' },
  { name: 'dax-entry-zero-ref', brokenWhen: 'a DAX fault that associated a page with a file fails to map it and leaves the entry associating the page at refcount 0 (seed 004: "not leaving a zero-referenced entry")' },
  { name: 'device-maps-freed-page', brokenWhen: "a page is freed while a device's own page table still maps it (a mirror device relies on the MMU notifier, it holds no reference: test_hmm's atomic entries after make_device_exclusive())" },
  { name: 'devmem-write-to-claimed-range', brokenWhen: 'a store through a /dev/mem mapping reaches memory a driver has claimed (a bound pmem namespace or device-dax instance, or kmem System RAM): what CONFIG_IO_STRICT_DEVMEM revokes from v5.8 (ndctl revoke-devmem.c)' },
  { name: 'wrong-file-page-mapped', brokenWhen: 'a fault maps, at an offset of a shared file mapping, a page the page cache holds for another offset (a lockless lookup took a folio a split left at the wrong index: selftests/mm/folio_split_race_test.c\'s wrong or all-zero page)' },
  { name: 'kernel-oops', brokenWhen: 'the simulated kernel crashed (e.g. walking init_mm vmemmap tables that do not exist)' },
] as const;

export type InvariantName = (typeof INVARIANTS)[number]['name'];
export const INVARIANT_NAMES: readonly InvariantName[] = INVARIANTS.map((i) => i.name);

/** Every errno a step may expect; the Record type keeps it in step with `Errno`. */
const ERRNO_MEANING: Readonly<Record<Errno, string>> = {
  EPERM: 'operation not permitted',
  ENOENT: 'no such entry',
  EIO: 'I/O error',
  ENXIO: 'no such device or address',
  EAGAIN: 'try again',
  ENOMEM: 'out of memory',
  EFAULT: 'bad address',
  EBUSY: 'device or resource busy',
  EEXIST: 'already exists',
  EINVAL: 'invalid argument',
  ENOSPC: 'no space left on device',
  EOPNOTSUPP: 'operation not supported',
  ERESTARTSYS: 'interrupted wait',
  EHWPOISON: 'memory page has a hardware error',
  SIGBUS: 'bus error delivered to the process',
  SIGSEGV: 'segmentation fault delivered to the process',
  EBADE: 'invalid exchange',
  EXDEV: 'cross-device link',
  ENODEV: 'no such device',
  ESRCH: 'no such process',
  EACCES: 'permission denied',
  ENOSYS: 'function not implemented (a syscall the kernel or arch lacks)',
  ETXTBSY: 'text file busy (the file is open for writing)',
  ENOTTY: 'inappropriate ioctl for device (the file has no such ioctl in this release)',
  EFBIG: "file too large (past the filesystem's s_maxbytes)",
  EROFS: 'read-only file system (a change to a filesystem mounted read-only)',
};
export const ERRNO_NAMES = Object.keys(ERRNO_MEANING) as Errno[];

/** The built-in plugins' names; scenarios may also name third-party plugins (checked against the catalog when a cell runs). */
export const ARCH_NAMES = ['x86', 'arm64', 'ppc-hash', 's390'] as const;
export const FS_NAMES = ['xfs', 'ext4', 'fuse'] as const;
export const DRIVER_NAMES = ['nvdimm', 'devdax', 'hmm'] as const;
export const PRESET_NAMES = PRESETS.map((p) => p.name);
/** the /proc/sys entries a `sysctl` step can write */
export const SYSCTL_NAMES = ['vm.hugetlb_optimize_vmemmap', 'vm.enable_soft_offline'] as const;
export const CHECK_WHATS = ['refcount', 'mapcount', 'pinned', 'mapped', 'anon', 'blockFree', 'vmemmap', 'writable', 'softDirty', 'swapped', 'memoryMerge', 'thpDisable', 'mdwe', 'ksmMergingPages', 'ksmZeroPages', 'ksmPagesShared', 'ksmPagesSharing', 'hugetlbFree', 'hugetlbResv', 'hugetlbTotal', 'locked', 'guard', 'uffdWp', 'dax', 'daxFlag', 'node', 'seals', 'sealed', 'filePmdMapped', 'shmemPmdMapped', 'vmaPages', 'vmaStart', 'address', 'anonHugePages', 'folioOrder', 'rssAnon', 'metadataBadblocks', 'badblocks', 'bdevBadblocks', 'bdevFirstBadblock', 'injectedErrors', 'fileBlocks', 'fileSize', 'hardwareCorrupted', 'cgroupFile'] as const satisfies readonly CheckWhat[];

// ---------------------------------------------------------------------------------------------
// scalars

/** Names given with `as:` (and the files, devices, processes they name). */
export const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const SCENARIO_NAME_PATTERN = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const SIZE_PATTERN = /^\s*\d+\s*(?:[KMGT](?:i?B)?|B)?\s*$/i;

const Name = z
  .string()
  .regex(NAME_PATTERN, { error: (iss) => `'${String(iss.input)}' is not a name: use letters, digits, '_', '-' or '.', starting with a letter or '_'` })
  .meta({ id: 'Name', description: 'a name given with `as:` (or a file name)' });

const sizeInput = z.union([
  z.number().int().nonnegative(),
  z.string().regex(SIZE_PATTERN, { error: (iss) => `'${String(iss.input)}' is not a size: write bytes or a number with K, M, G or T (e.g. 4KiB, 2MiB, 1GiB)` }),
], { error: 'expected a size: a whole number of bytes or a string like 4KiB, 2MiB, 1GiB' });

/** A cgroup below the hierarchy's root ('a', 'a/b'), or '/' for the root itself. */
const CgroupPath = z
  .string()
  .refine((p) => p === '/' || p.split('/').every((part) => NAME_PATTERN.test(part)), { error: (iss) => `'${String(iss.input)}' is not a cgroup path: write '/' for the root or names joined by '/' (a, a/b), relative to the hierarchy's root` })
  .meta({ id: 'CgroupPath', description: "a cgroup: '/' (the root) or a path below it, e.g. a/b" });

/** Bytes or `4KiB`/`2M`/`1GiB`… → bytes. */
const Size = sizeInput
  .transform((v, ctx) => {
    try {
      return parseSize(v);
    } catch (e) {
      ctx.issues.push({ code: 'custom', input: v, message: e instanceof Error ? e.message.replace(/^size: /, '') : String(e) });
      return z.NEVER;
    }
  })
  .meta({ id: 'Size', description: 'bytes, or a number with a binary unit: 4KiB, 2MiB, 1GiB, 4TiB (K, M, G, T mean the same)' });

/** MAP_HUGETLB / SHM_HUGETLB / MFD_HUGETLB page size: bytes, or `default` (no size bits: the default hstate). */
const HugetlbSize = z.union([z.literal('default'), Size], { error: 'expected a huge page size (2MiB, 1GiB…) or default' })
  .meta({ id: 'HugetlbSize', description: 'a huge page size the arch offers (the size bits log2(size) << MAP_HUGE_SHIFT), or default: none, the default huge page size (HPAGE_SIZE: x86-64 and arm64 with 4 KiB pages 2 MiB, s390 1 MiB, ppc64 hash 16 MiB); a size without an hstate is EINVAL (mmap, shmget) or ENODEV (memfd_create)' });

/** A user virtual address in bytes (YAML reads 0x… as a number), or -1 for (void *)-1. */
const Address = z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER, { error: 'an address above 2^53 cannot be written exactly: use -1 for (void *)-1' })
  .meta({ id: 'Address', description: 'a virtual address in bytes (0x7ffffffff000 in YAML is a number), or -1 for (void *)-1' });

const PageIndex = z.number().int().nonnegative().describe('a base-page index within the mapping (0-based)');
const PageCount = z.number().int().positive().describe('a number of base pages');
const NodeId = z.number().int().nonnegative().max(MAX_NUMNODES - 1).describe('a NUMA node number');
/** A nodelist as sysfs prints it ("0-1,3"), a node number, or a list of them: normalised to the %*pbl form. */
const Nodelist = z.union([z.string(), NodeId, z.array(NodeId)], { error: 'expected a nodelist: "0-1,3", a node number or a list of them' })
  .transform((v, ctx) => {
    const nodes = parseNodelist(v);
    if (nodes === null) {
      ctx.issues.push({ code: 'custom', input: v, message: `'${String(v)}' is not a nodelist: write ranges and nodes separated by commas, e.g. 0-1,3` });
      return z.NEVER;
    }
    return formatNodelist(nodes);
  });
/** A map keyed by numbers (tier ids, node numbers), which YAML gives as string keys: `what` says what a key is. */
const numberKeyed = <T extends z.ZodType>(value: T, what: string) => z.record(z.string(), value).superRefine((r, ctx) => {
  for (const key of Object.keys(r)) if (!/^\d+$/.test(key)) ctx.addIssue({ code: 'custom', input: key, path: [key], message: `'${key}': ${what}` });
});
const Data = z.string({ error: (iss) => (iss.input === undefined ? undefined : `expected a string of data; quote it (data: '${String(iss.input)}')`) }).describe('the data written or expected (a string)');
const Flag = z.boolean();
/** A protection key: its number, or the `as` name of the pkey-alloc that returned it. */
const PkeyRef = z.union([z.number().int().min(0), Name], { error: 'pkey: a key number or the `as` name of a pkey-alloc' });
/** PKEY_DISABLE_WRITE / PKEY_DISABLE_ACCESS / neither. */
/** A thread of the step's process: a clone-thread `as`; absent: the process's main thread. */
const ThreadRef = Name.optional().describe('the thread (a clone-thread name; default the main thread)');
const PkeyRights = z.enum(['none', 'disable-write', 'disable-access'], { error: 'rights: none, disable-write (PKEY_DISABLE_WRITE) or disable-access (PKEY_DISABLE_ACCESS)' });

/** One page of a device snapshot: `'ZERO|READ'` (HMM_DMIRROR_PROT_* names) or the byte itself → the byte. */
const SnapshotByte = z
  .union([z.string(), z.number().int().min(0).max(255)], { error: 'expected snapshot flags like ZERO|READ, or a byte 0-255' })
  .transform((v, ctx) => {
    if (typeof v === 'number') return v;
    const byte = parseSnapshotFlags(v);
    if (typeof byte === 'string') {
      ctx.issues.push({ code: 'custom', input: v, message: byte });
      return z.NEVER;
    }
    return byte;
  });

// ---------------------------------------------------------------------------------------------
// operations

const obj = z.strictObject;

const pinArgs = obj({
  map: Name,
  page: PageIndex,
  pages: PageCount.optional(),
  write: Flag.optional().describe('FOLL_WRITE'),
  longterm: Flag.optional().describe('FOLL_LONGTERM'),
  fast: Flag.optional().describe('gup-fast (lockless) instead of the slow path'),
  as: Name,
  process: Name.optional().describe('act in this process (after fork: the child)'),
});

const releaseArgs = z
  .union([Name, obj({ name: Name })], { error: 'expected the name of a pin, e.g. `unpin: dma`' })
  .transform((v) => (typeof v === 'string' ? { name: v } : v));

/** pread / pwrite: the file, the file range, and the user buffer in a mapping (fs/rw.ts). */
const fileIoArgs = obj({
  file: Name.optional().describe('a file on a DAX-capable mount (DAX or not), a memfd or a tmpfile'),
  device: Name.optional().describe('instead of a file: the block device of a pmem namespace in fsdax mode (/dev/pmemX): offset 0 is the first page after the info block and memmap reserve (pmem to_offset(): sector * 512 + dataoff); no page cache modelled, the data is on the media at once (what fsync or the last close give); a device-dax instance has no read/write: EINVAL'),
  offset: Size.optional().describe('the file position (default 0); whole pages, except O_DIRECT of a file without DAX on XFS / ext4: any multiple of 512 bytes (else EINVAL)'),
  length: Size.describe('the byte count; whole pages, except as offset'),
  map: Name.describe('the mapping the user buffer is in'),
  page: PageIndex.optional().describe('the page of the mapping the buffer starts at (default 0)'),
  pageOffset: Size.optional().describe('bytes into that page where the buffer starts (default 0; below the page size). O_DIRECT of a file without DAX on XFS / ext4 only (a multiple of 512, else EINVAL); elsewhere refused as not modelled'),
  direct: Flag.optional().describe('O_DIRECT: on a file without S_DAX the buffer is GUPed for the I/O (get_user_pages_fast until v6.4, pinned from v6.5); on a DAX file the same copy as without'),
  process: Name.optional().describe('the calling process, whose address space the buffer is in (default: the one that created the mapping)'),
  bytes: z.number().int().nonnegative().optional().describe('the return value the call must give: the bytes read or written'),
  extentOf: Name.optional().describe('with device: offset counts from the first extent of this file on the namespace\'s filesystem (filefrag -v\'s first physical_offset), as ndctl pmem-errors.sh seeks to the sector it read there'),
})
  .refine((a) => (a.file === undefined) !== (a.device === undefined), { error: 'pread / pwrite one target: give file: <name> or device: <pmem namespace>', path: ['file'] })
  .refine((a) => a.extentOf === undefined || a.device !== undefined, { error: 'extentOf places a block-device I/O at a file\'s extent: give device: <pmem namespace> with it (a file\'s own I/O counts offset from its start)', path: ['extentOf'] });

/** `{map, page, process?}` | `{file, page}` | `{device, page?}` | `{hugetlb}` (one of map/file/device/hugetlb). */
const CheckTarget = obj({
  map: Name.optional(),
  file: Name.optional(),
  device: Name.optional(),
  hugetlb: Size.optional().describe('vmemmap and hugetlbFree / hugetlbResv / hugetlbTotal only: the hugetlb pool of this huge page size'),
  node: NodeId.optional().describe('hugetlbFree / hugetlbTotal only: that node\'s counter (/sys/devices/system/node/node<node>/hugepages/hugepages-<size>kB/free_hugepages, nr_hugepages)'),
  page: PageIndex.optional(),
  process: Name.optional(),
  dir: Name.optional().describe('daxFlag only: a directory'),
  cgroup: CgroupPath.optional().describe('cgroupFile only: the cgroup whose control file `file` is read'),
}).describe('what to look at: {map, page, process?} | {file, page} | {device, page?} | {hugetlb} (vmemmap) | {file} or {dir} (dax, daxFlag) | {cgroup, file} (cgroupFile)');

const VmemmapFigures = obj({
  bytes: Size.optional().describe('memory backing struct pages, bytes'),
  pages: z.number().int().nonnegative().optional().describe('pages of memory backing struct pages'),
  structPagesInitialized: z.number().int().nonnegative().optional().describe('device only: struct pages memmap_init_zone_device() wrote'),
  savedPages: z.number().int().nonnegative().optional().describe('vmemmap pages saved: by compound tail reuse (device) or freed by HVO (hugetlb pool)'),
});

const checkShape = {
  refcount: CheckTarget.optional().describe('the struct page _refcount'),
  mapcount: CheckTarget.optional().describe('the page mapcount'),
  pinned: CheckTarget.optional().describe('folio_maybe_dma_pinned()'),
  mapped: CheckTarget.optional().describe('a PTE/PMD maps it in that process'),
  anon: CheckTarget.optional().describe('folio_test_anon()'),
  blockFree: CheckTarget.optional().describe("{file, page}: the file's block is back in the allocator"),
  vmemmap: CheckTarget.optional().describe("{device}: the device's memmap figures"),
  writable: CheckTarget.optional().describe('{map, page, process?}: the entry mapping it is writable (pte_write)'),
  softDirty: CheckTarget.optional().describe('{map, page, process?}: the page reads soft-dirty in /proc/PID/pagemap (pte_soft_dirty or VM_SOFTDIRTY)'),
  swapped: CheckTarget.optional().describe('{map, page, process?}: /proc/PID/pagemap reports PM_SWAP (a swap entry, a device-private / device-exclusive one, or a guard marker)'),
  memoryMerge: CheckTarget.optional().describe('{process?}: prctl(PR_GET_MEMORY_MERGE) in that process (default init; v6.4, EINVAL before)'),
  mdwe: CheckTarget.optional().describe('{process?}: prctl(PR_GET_MDWE) in that process (default init): 0, 1 (PR_MDWE_REFUSE_EXEC_GAIN) or 3 (with PR_MDWE_NO_INHERIT, v6.7); EINVAL before v6.3'),
  thpDisable: CheckTarget.optional().describe('{process?}: prctl(PR_GET_THP_DISABLE) in that process (default init): 0, 1 (disabled completely) or 3 (PR_THP_DISABLE_EXCEPT_ADVISED, v6.18)'),
  ksmMergingPages: CheckTarget.optional().describe('{process?}: /proc/PID/ksm_merging_pages (v5.19, ENOENT before)'),
  ksmZeroPages: CheckTarget.optional().describe('{process?}: the ksm_zero_pages line of /proc/PID/ksm_stat (v6.6, ENOENT before)'),
  ksmPagesShared: CheckTarget.optional().describe('{}: /sys/kernel/mm/ksm/pages_shared (the KSM pages in use: stable nodes with rmap_items)'),
  ksmPagesSharing: CheckTarget.optional().describe('{}: /sys/kernel/mm/ksm/pages_sharing (the further mappings sharing those KSM pages: the rmap_items beyond each node\'s first)'),
  hugetlbFree: CheckTarget.optional().describe('{hugetlb: <huge page size>}: HugePages_Free of that pool (free_huge_pages: the free pages, reserved ones included)'),
  hugetlbResv: CheckTarget.optional().describe('{hugetlb: <huge page size>}: HugePages_Rsvd of that pool (resv_huge_pages: pages reserved and not allocated yet)'),
  hugetlbTotal: CheckTarget.optional().describe('{hugetlb: <huge page size>}: HugePages_Total of that pool (nr_hugepages, surplus pages included)'),
  locked: CheckTarget.optional().describe('{map, page, process?}: the VMA holding that page is VM_LOCKED (smaps VmFlags "lo": mlock, mlockall, MAP_LOCKED)'),
  dax: CheckTarget.optional().describe('{file}: statx STATX_ATTR_DAX, i.e. S_DAX of the inode a lookup finds (v5.8+)'),
  daxFlag: CheckTarget.optional().describe('{file} or {dir}: FS_XFLAG_DAX as FS_IOC_FSGETXATTR reports it (lsattr -v: x)'),
  uffdWp: CheckTarget.optional().describe('{map, page, process?}: /proc/PID/pagemap reports PM_UFFD_WP (bit 57, v5.14): the entry (present, swap, or a uffd-wp PTE marker) has its uffd-wp bit (UFFDIO_WRITEPROTECT)'),
  guard: CheckTarget.optional().describe('{map, page, process?}: /proc/PID/pagemap reports PM_GUARD_REGION (bit 58, v6.15: a MADV_GUARD_INSTALL marker; always false before)'),
  node: CheckTarget.optional().describe('{map, page, process?} or {file, page}: the memory node the page is on (page_to_nid(); move_pages() with no nodes reports it)'),
  seals: CheckTarget.optional().describe('{file}: fcntl(F_GET_SEALS) of a memfd, the OR of its F_SEAL_* bits (seal 1, shrink 2, grow 4, write 8, future-write 16, exec 32)'),
  sealed: CheckTarget.optional().describe('{map, page, process?}: the VMA holding that page is VM_SEALED (mseal; smaps VmFlags "sl")'),
  vmaPages: CheckTarget.optional().describe('{map, page, process?}: the length in base pages of the VMA holding that page, as /proc/PID/maps shows it (0: nothing mapped there)'),
  address: CheckTarget.optional().describe('{map, process?}: the address (bytes) mmap or mremap returned for the mapping, as /proc/PID/maps shows its start; compare with equals/min/max (0x… in YAML)'),
  vmaStart: CheckTarget.optional().describe('{map, page, process?}: where the VMA holding that page starts, in pages from the start of the mapping (negative: below it), as PROCMAP_QUERY vma_start or /proc/PID/maps shows it; fails when no VMA holds the page'),
  anonHugePages: CheckTarget.optional().describe('{map, page, process?}: the anonymous THPs mapped by a PMD in the VMA holding that page: its smaps AnonHugePages divided by the PMD size (the huge zero page is not counted); the khugepaged selftest\'s check_huge_anon()'),
  filePmdMapped: CheckTarget.optional().describe('{map, page, process?}: the page-cache THPs of a disk file mapped by a PMD in the VMA holding that page: its smaps FilePmdMapped divided by the PMD size; the khugepaged selftest\'s check_huge_file()'),
  shmemPmdMapped: CheckTarget.optional().describe('{map, page, process?}: the shmem (tmpfs, memfd) THPs mapped by a PMD in the VMA holding that page: its smaps ShmemPmdMapped divided by the PMD size; the khugepaged selftest\'s check_huge_shmem()'),
  folioOrder: CheckTarget.optional().describe('{map, page, process?}: the order of the folio mapped there (folio_order(): for a THP what split_huge_page_test.c is_backed_by_folio() reads from /proc/PID/pagemap and /proc/kpageflags); 0 for a small page or the small zero page, the PMD order for the huge zero page, -1 when nothing is present there; device pages report their compound or DAX folio order. {file, page}: the order of the folio a page-cache file (memfd, tmpfile) caches at that page index (filemap_get_folio()), -1 when none. {device, page}: the order of the folio holding data page `page` of a device (/proc/kpageflags of its pfn: device_dax\'s vmemmap_shift, 0 under fsdev_dax), -1 while no driver binds it'),
  rssAnon: CheckTarget.optional().describe('{process?}: RssAnon of /proc/PID/status in kB (MM_ANONPAGES: present anonymous pages; zero pages, swap entries and hugetlb pages do not count); split_huge_page_test.c rss_anon()'),
  metadataBadblocks: CheckTarget.optional().describe('{device}: the bad 512-byte blocks in a pmem namespace\'s pfn metadata (before its data offset), as its raw view lists them (force_raw=1, /sys/block/pmemX/badblocks); the data\'s are not counted'),
  badblocks: CheckTarget.optional().describe('{device}: the bad 512-byte blocks of a pmem namespace, metadata and data, as its region lists them (/sys/bus/nd/devices/regionX/badblocks)'),
  bdevBadblocks: CheckTarget.optional().describe('{device}: the bad sectors /sys/block/pmemX/badblocks lists for a pmem namespace in fsdax or raw mode (pmem->bb: the block device\'s, from the data offset)'),
  bdevFirstBadblock: CheckTarget.optional().describe('{device}: the first sector /sys/block/pmemX/badblocks lists, numbered as the block device\'s sectors (fails when it lists none)'),
  injectedErrors: CheckTarget.optional().describe('{device}: the injected 512-byte blocks ndctl inject-error --status lists for a pmem namespace (nfit_test\'s error list, whether or not a scrub has found them)'),
  fileBlocks: CheckTarget.optional().describe('{file}: the blocks allocated to the file, unwritten ones included (stat st_blocks in filesystem blocks: du -B <block size>); after a log-replay, what the journal had committed'),
  fileSize: CheckTarget.optional().describe('{file}: i_size in bytes (stat st_size)'),
  hardwareCorrupted: CheckTarget.optional().describe('{}: HardwareCorrupted of /proc/meminfo in kB (num_poisoned_pages: the base pages memory failure and soft offline marked PG_hwpoison)'),
  cgroupFile: CheckTarget.optional().describe('{cgroup, file}: the text of a hugetlb controller file, hugetlb.<size>.<name> (v1: limit_in_bytes, usage_in_bytes, max_usage_in_bytes, failcnt and their rsvd.* twins; v2: max, current, events, events.local, rsvd.max, rsvd.current), as cat prints it; equals a number (the file holds that number) or a string (the whole text: max, max 1)'),
  equals: z.union([z.number().int(), z.boolean(), z.string(), VmemmapFigures]).optional(),
  min: z.number().int().optional(),
  max: z.number().int().optional(),
} satisfies Record<CheckWhat | 'equals' | 'min' | 'max', z.ZodType>;

/** properties of a pmem namespace: `{ device }` */
const NAMESPACE_CHECKS: readonly CheckWhat[] = ['metadataBadblocks', 'badblocks', 'bdevBadblocks', 'bdevFirstBadblock', 'injectedErrors'];
const NUMERIC_CHECKS: readonly CheckWhat[] = ['hardwareCorrupted', 'fileBlocks', 'fileSize', 'refcount', 'mapcount', 'node', 'seals', 'filePmdMapped', 'shmemPmdMapped', 'vmaPages', 'vmaStart', 'address', 'anonHugePages', 'folioOrder', 'rssAnon', 'metadataBadblocks', 'badblocks', 'bdevBadblocks', 'bdevFirstBadblock', 'injectedErrors', 'ksmMergingPages', 'ksmZeroPages', 'ksmPagesShared', 'ksmPagesSharing', 'hugetlbFree', 'hugetlbResv', 'hugetlbTotal', 'thpDisable', 'mdwe'];
/** counters of a hugetlb pool: only a { hugetlb } target */
const POOL_CHECKS: readonly CheckWhat[] = ['hugetlbFree', 'hugetlbResv', 'hugetlbTotal'];
/** a cgroup control file's text: { cgroup, file } */
const CGROUP_CHECKS: readonly CheckWhat[] = ['cgroupFile'];
const BOOLEAN_CHECKS: readonly CheckWhat[] = ['pinned', 'mapped', 'anon', 'blockFree', 'writable', 'softDirty', 'swapped', 'memoryMerge', 'locked', 'sealed', 'guard', 'uffdWp', 'dax', 'daxFlag'];
/** properties of an inode (S_DAX, FS_XFLAG_DAX, seals): only a { file } (or, for daxFlag, { dir }) target, no page */
const INODE_CHECKS: readonly CheckWhat[] = ['dax', 'daxFlag', 'seals', 'fileBlocks', 'fileSize'];
/** properties of a process (its mm), not of a page: only a { process } target */
const PROCESS_CHECKS: readonly CheckWhat[] = ['memoryMerge', 'thpDisable', 'mdwe', 'ksmMergingPages', 'ksmZeroPages', 'rssAnon'];
/** system-wide counters of /proc/meminfo: an empty target */
const SYSTEM_CHECKS: readonly CheckWhat[] = ['hardwareCorrupted', 'ksmPagesShared', 'ksmPagesSharing'];
/** properties of a mapping's page-table entry, not of a page: only a { map, page } target */
const ENTRY_CHECKS: readonly CheckWhat[] = ['writable', 'softDirty', 'swapped', 'locked', 'guard', 'uffdWp', 'sealed', 'filePmdMapped', 'shmemPmdMapped', 'vmaPages', 'vmaStart', 'anonHugePages'];

/** the pages of a mapping a uffd-copy, uffd-zeropage or uffd-continue step fills */
const uffdPages = {
  map: Name,
  page: PageIndex,
  pages: PageCount.optional().describe('how many pages (default 1)'),
  process: Name.optional().describe('act in this process (default: the one that created the mapping)'),
};

/** a PAGEMAP_SCAN category mask: PAGE_IS_* names, or a raw number (bits the release lacks: EINVAL) */
const ScanMask = z.union([z.array(z.enum(PAGE_CATEGORIES, { error: `a category is one of ${PAGE_CATEGORIES.join(', ')}` })), z.number().int().nonnegative()], { error: 'a category mask is a list of categories or a number' }).optional();

/** the range of a mapping a uffd-register, uffd-unregister or uffd-writeprotect step covers */
const uffdRange = {
  map: Name,
  offset: Size.optional().describe('where in the mapping the range starts (page aligned; default 0)'),
  length: Size.optional().describe('how much (rounded up to pages; default: to the end of the mapping)'),
  process: Name.optional().describe('act in this process (default: the one that created the mapping)'),
};

const checkArgs = obj(checkShape)
  .superRefine((c, ctx) => {
    const whats = CHECK_WHATS.filter((w) => c[w] !== undefined);
    if (whats.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        input: c,
        message: whats.length === 0
          ? `say what to check: one of ${CHECK_WHATS.join(', ')} (e.g. check: { refcount: { map: m, page: 0 }, equals: 1 })`
          : `check one thing at a time: found ${whats.join(' and ')}; split it into separate check steps`,
      });
      return;
    }
    const what = whats[0]!;
    const t = c[what]!;
    const targets = (['map', 'file', 'device', 'hugetlb'] as const).filter((k) => t[k] !== undefined);
    const form = what === 'vmemmap' ? '{ device } or { hugetlb: <huge page size> }' : what === 'blockFree' ? '{ file, page }' : '{ map, page } or { file, page } or { device, page }';
    const bad = (message: string, path: PropertyKey[] = [what]) => ctx.addIssue({ code: 'custom', input: t, path, message });
    if (CGROUP_CHECKS.includes(what) !== (t.cgroup !== undefined)) {
      return bad(t.cgroup !== undefined ? `cgroup names a cgroup, which only cgroupFile reads` : `cgroupFile reads a control file of a cgroup: write { cgroup: <path>, file: hugetlb.<size>.<name> }`, t.cgroup !== undefined ? [what, 'cgroup'] : [what]);
    }
    if (CGROUP_CHECKS.includes(what)) {
      const others = Object.entries(t).filter(([key, v]) => v !== undefined && key !== 'cgroup' && key !== 'file').map(([key]) => key);
      if (t.file === undefined || others.length > 0) return bad(`cgroupFile reads a control file of a cgroup: write { cgroup: <path>, file: hugetlb.<size>.<name> }${others.length ? ` (remove ${others.join(', ')})` : ''}`);
      if (c.equals === undefined || c.min !== undefined || c.max !== undefined || (typeof c.equals !== 'number' && typeof c.equals !== 'string')) {
        return ctx.addIssue({ code: 'custom', input: c, path: ['equals'], message: 'cgroupFile compares the file with equals: a number (e.g. equals: 10485760) or its whole text (equals: max)' });
      }
      return;
    }
    if (INODE_CHECKS.includes(what)) {
      const named = (['map', 'file', 'device', 'hugetlb', 'dir'] as const).filter((k) => t[k] !== undefined);
      const fileOnly = what !== 'daxFlag';
      const inodeForm = fileOnly ? '{ file }' : '{ file } or { dir }';
      if (named.length !== 1 || (named[0] !== 'file' && (fileOnly || named[0] !== 'dir')) || t.page !== undefined || t.process !== undefined) return bad(`${what} is a property of an inode: write ${inodeForm}`);
    } else if (t.dir !== undefined) {
      return bad('dir names a directory, which only daxFlag looks at', [what, 'dir']);
    } else if (SYSTEM_CHECKS.includes(what)) {
      if (Object.values(t).some((v) => v !== undefined)) return bad(`${what} is a system-wide counter: write ${what}: {}`);
    } else if (PROCESS_CHECKS.includes(what)) {
      if (targets.length > 0 || t.page !== undefined) return bad(`${what} is a property of a process: write { process: <name> }, or {} for init`);
    } else {
      if (targets.length !== 1) return bad(`name one target: ${form}`);
      const target = targets[0]!;
      if (POOL_CHECKS.includes(what) && (target !== 'hugetlb' || t.page !== undefined)) return bad(`${what} is a counter of a hugetlb pool: write { hugetlb: <huge page size> } (no page)`);
      if (t.node !== undefined && what !== 'hugetlbFree' && what !== 'hugetlbTotal') return bad(`node names a node's hugetlb counter, which only hugetlbFree and hugetlbTotal have (reservations are global: hugetlbResv has none)`, [what, 'node']);
      if (what === 'vmemmap' && target !== 'device' && target !== 'hugetlb') return bad(`vmemmap is a property of a device or a hugetlb pool: write ${form}`);
      if (NAMESPACE_CHECKS.includes(what) && (target !== 'device' || t.page !== undefined)) return bad(`${what} is a property of a pmem namespace: write { device: <name> } (no page)`);
      if (target === 'hugetlb' && what !== 'vmemmap' && !POOL_CHECKS.includes(what)) return bad(`hugetlb names a pool, which only vmemmap, ${POOL_CHECKS.join(', ')} look at: write ${form}`, [what, 'hugetlb']);
      if (target === 'hugetlb' && typeof c.equals === 'object' && c.equals.structPagesInitialized !== undefined) {
        return ctx.addIssue({ code: 'custom', input: c.equals, path: ['equals', 'structPagesInitialized'], message: 'structPagesInitialized is a device figure (memmap_init_zone_device): a hugetlb pool has bytes, pages and savedPages' });
      }
      if (what === 'blockFree' && target !== 'file') return bad(`blockFree looks at a file's block: write ${form}`);
      if (ENTRY_CHECKS.includes(what) && target !== 'map') return bad(`${what} looks at the entry that maps a page of a mapping: write { map, page }`);
      if (what === 'folioOrder' && (target === 'hugetlb' || (target === 'device' && t.page === undefined))) return bad('folioOrder looks at the folio mapped at a page of a mapping, cached at a page of a file, or holding a data page of a device: write { map, page }, { file, page } or { device, page }');
      if (what === 'vmemmap' && t.page !== undefined) return bad(`vmemmap is per ${target === 'hugetlb' ? 'pool' : 'device'}: remove page`, [what, 'page']);
      if (what === 'address') {
        if (target !== 'map' || t.page !== undefined) return bad('address is where a mapping starts: write { map, process? } (no page)');
      } else if (target !== 'device' && target !== 'hugetlb' && t.page === undefined) return bad(`add page: the base-page index to look at (${form})`);
      if (t.process !== undefined && target !== 'map') return bad('process only applies to a mapping target { map, page, process }', [what, 'process']);
    }
    const hasRange = c.min !== undefined || c.max !== undefined;
    if ((c.equals === undefined) === !hasRange) {
      return ctx.addIssue({ code: 'custom', input: c, message: hasRange ? 'use equals or min/max, not both' : 'say what to expect: equals, or min and/or max' });
    }
    const expected = NUMERIC_CHECKS.includes(what) ? 'number' : BOOLEAN_CHECKS.includes(what) ? 'boolean' : 'object';
    if (hasRange && expected !== 'number') return ctx.addIssue({ code: 'custom', input: c, path: [c.min !== undefined ? 'min' : 'max'], message: `${what} is not a count: use equals` });
    if (c.equals !== undefined && typeof c.equals !== expected) {
      const example = expected === 'number' ? 'equals: 1' : expected === 'boolean' ? 'equals: true' : 'equals: { pages: 16, bytes: 64KiB }';
      ctx.addIssue({ code: 'custom', input: c.equals, path: ['equals'], message: `${what} compares with a${expected === 'object' ? 'n object' : ` ${expected}`} (${example})` });
    }
  })
  .transform((c): CheckArgs => {
    const what = CHECK_WHATS.find((w) => c[w] !== undefined)!;
    const target: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(c[what]!)) if (v !== undefined) target[k] = v;
    return {
      what,
      target,
      ...(c.equals !== undefined ? { equals: c.equals as CheckArgs['equals'] } : {}),
      ...(c.min !== undefined ? { min: c.min } : {}),
      ...(c.max !== undefined ? { max: c.max } : {}),
    };
  });

/**
 * A device page by index, or the page a mapping maps at `page` (madvise() from `process`):
 * memory-failure (MADV_HWPOISON) and soft-offline (MADV_SOFT_OFFLINE) name their page alike.
 * memory-failure also takes `block` (+ `count`): 512-byte blocks of a pmem namespace.
 */
const injectShape = (verb: string, advice: string, mapEffect: string) => ({
  device: Name.optional().describe(`the device whose page ${verb} (page counts its data pages)`),
  map: Name.optional().describe(`madvise(${advice}) on this mapping: ${mapEffect}`),
  page: PageIndex.optional().describe('the page (required unless block is given)'),
  process: Name.optional().describe('with map: the process that calls madvise (default: the one that mapped it)'),
});

function injectArgs<S extends ReturnType<typeof injectShape>>(verb: string, advice: string, shape: S) {
  return obj(shape).superRefine((parsed, ctx) => {
    const m = parsed as { device?: string; map?: string; page?: number; block?: number; count?: number; process?: string };
    if ((m.device === undefined) === (m.map === undefined)) {
      ctx.addIssue({ code: 'custom', input: m, message: `say which page ${verb}: device: <name> (a device page) or map: <name> (madvise ${advice} of a mapped page), one of them` });
    }
    if (m.process !== undefined && m.map === undefined) {
      ctx.addIssue({ code: 'custom', input: m, path: ['process'], message: 'process goes with map: (the process that calls madvise); a device page has no caller' });
    }
    if (m.block !== undefined && (m.map !== undefined || m.page !== undefined)) {
      ctx.addIssue({ code: 'custom', input: m, path: ['block'], message: 'block counts 512-byte blocks from the start of a namespace (ndctl inject-error --block): write device: <name>, block: <n>, without map and page' });
    } else if (m.block === undefined && m.page === undefined) {
      ctx.addIssue({ code: 'custom', input: m, path: ['page'], message: `add page: the ${m.map !== undefined ? 'page of the mapping' : 'data page of the device'} that ${verb}` });
    }
    if (m.count !== undefined && m.block === undefined) {
      ctx.addIssue({ code: 'custom', input: m, path: ['count'], message: 'count goes with block (ndctl inject-error --block=B --count=N)' });
    }
  });
}

const memoryFailureArgs = injectArgs('fails', 'MADV_HWPOISON', {
  ...injectShape('fails', 'MADV_HWPOISON', 'the page it maps fails and the caller gets SIGBUS'),
  block: z.number().int().nonnegative().optional().describe('with device: ndctl inject-error --block (and the scrub that finds it): this 512-byte block from the start of a pmem namespace (its pfn metadata, then its data from the data offset) is bad; no machine check, no memory_failure()'),
  count: z.number().int().positive().optional().describe('with block: how many 512-byte blocks (--count, default 1)'),
});
const softOfflineArgs = injectArgs('is soft-offlined', 'MADV_SOFT_OFFLINE', injectShape('is soft-offlined', 'MADV_SOFT_OFFLINE', 'the page it maps (faulted in for read if need be) is soft-offlined'));

const mmapArgs = obj({
  process: Name.optional().describe('the process that maps (default init)'),
  file: Name.optional(),
  device: Name.optional().describe('a device-dax device'),
  anon: z.literal(true).optional().describe('anonymous memory'),
  devmem: z.union([z.literal(true), Name], { error: 'devmem is true (/dev/mem at offset) or a device name (/dev/mem at that device\'s physical base plus offset)' }).optional().describe('/dev/mem: physical memory at offset (a VM_PFNMAP mapping; needs shared: true); a device name: at that device\'s physical base plus offset (ndctl_namespace_get_resource())'),
  hugetlb: HugetlbSize.optional().describe('with anon: true, MAP_HUGETLB with this huge page size (MAP_HUGE_SHIFT) or default: hugetlb pages from the pool'),
  length: Size,
  offset: Size.optional(),
  shared: Flag.optional(),
  write: Flag.optional(),
  exec: Flag.optional().describe('PROT_EXEC: VM_EXEC (a read-only file mapped for khugepaged before v6.8 needs it)'),
  populate: Flag.optional().describe('MAP_POPULATE: fault every page in now (a write fault in a private writable mapping, which COWs file pages); errors are ignored as mmap ignores them'),
  locked: Flag.optional().describe('MAP_LOCKED: VM_LOCKED (unless mlock would not lock this kind of mapping: DAX, hugetlb, VM_SPECIAL) and populated as by MAP_POPULATE'),
  sync: Flag.optional().describe('MAP_SHARED_VALIDATE|MAP_SYNC (with file and shared: true): EOPNOTSUPP unless the file is DAX on ext4 or XFS'),
  droppable: z.literal(true).optional().describe('MAP_DROPPABLE (v6.11; EINVAL before) with anon: true instead of MAP_PRIVATE: VM_DROPPABLE and VM_WIPEONFORK, never mlocked; EINVAL with shared, a file, locked or hugetlb'),
  noreserve: Flag.optional().describe('MAP_NORESERVE: a hugetlb mapping reserves (and charges to the rsvd counter of its hugetlb cgroup) nothing at mmap; each fault takes an unreserved free page, or SIGBUS. Elsewhere it only skips overcommit accounting, which is not modelled'),
  fixed: obj({
    map: Name.optional().describe("a mapping of the same process: its range (mapped or not) gives the address"),
    addr: Address.optional().describe('instead of map: the address itself (bytes; 0x… in YAML)'),
    offset: Size.optional().describe('with map: where in that range the new mapping starts (page aligned; default 0)'),
    noreplace: z.literal(true).optional().describe('MAP_FIXED_NOREPLACE (v4.17) instead of MAP_FIXED: EEXIST when any mapping overlaps the range, which stays as it is'),
  }).superRefine((f, ctx) => {
    if ((f.map === undefined) === (f.addr === undefined)) ctx.addIssue({ code: 'custom', input: f, message: 'say where: fixed: { map: <name>, offset? } (an address in a mapping\'s range) or fixed: { addr: <bytes> }, one of them' });
    if (f.offset !== undefined && f.map === undefined) ctx.addIssue({ code: 'custom', input: f, path: ['offset'], message: 'offset goes with map; with addr, write the address itself' });
  }).optional().describe('MAP_FIXED at that address: what is mapped there is unmapped first (EPERM when it is sealed: mseal)'),
  addr: Address.optional().describe('with anon: true, the address hint (mmap\'s first argument, without MAP_FIXED): taken where the kernel takes it, else the mapping goes where the kernel would search (docs/kernel-model.md, "The user address space")'),
  as: Name,
}).superRefine((m, ctx) => {
  if (m.addr !== undefined && m.anon === undefined) {
    ctx.addIssue({ code: 'custom', input: m, path: ['addr'], message: 'an address hint is modelled for anonymous mappings (anon: true) only' });
  }
  if (m.addr !== undefined && m.fixed !== undefined) {
    ctx.addIssue({ code: 'custom', input: m, path: ['addr'], message: 'addr is a hint; for MAP_FIXED at an address write fixed: { addr: <bytes> }' });
  }
  if (m.sync && (m.file === undefined || m.shared !== true)) {
    ctx.addIssue({ code: 'custom', input: m, path: ['sync'], message: 'MAP_SYNC comes with MAP_SHARED_VALIDATE: write it with file: <name> and shared: true' });
  }
  const what = (['file', 'device', 'anon', 'devmem'] as const).filter((k) => m[k] !== undefined);
  if (what.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      input: m,
      message: what.length === 0 ? 'say what to map: file: <name>, device: <name> or anon: true (or devmem: true for /dev/mem)' : `map one thing: found ${what.join(' and ')}`,
    });
  }
  if (m.hugetlb !== undefined && m.anon === undefined) {
    ctx.addIssue({ code: 'custom', input: m, path: ['hugetlb'], message: 'hugetlb (MAP_HUGETLB) goes with anon: true; a memfd created with hugetlb brings its own page size' });
  }
  // mm/devmem.ts maps /dev/mem MAP_SHARED only: say so where the file is read, not when it runs
  if (m.devmem !== undefined && m.shared !== true) {
    ctx.addIssue({ code: 'custom', input: m, path: ['shared'], message: 'a /dev/mem mapping needs shared: true (MAP_SHARED, as selftests/mm/pfnmap.c maps it); a private mapping of raw pfns is not modelled' });
  }
});

/** Each operation's arguments (SCENARIOS.md "Operations"). */
/** A mirror device's ioctl over pages of a named mapping (HMM_DMIRROR_EXCLUSIVE, CHECK_EXCLUSIVE). */
function deviceRangeArgs(pagesDefault: string, process: string) {
  return obj({
    device: Name,
    map: Name,
    page: PageIndex.optional().describe('the first page (default 0)'),
    pages: PageCount.optional().describe(`how many pages (default ${pagesDefault})`),
    process: Name.optional().describe(process),
  });
}

export const OP_ARGS = {
  probe: obj({
    driver: Name.optional().describe('nvdimm | devdax | hmm | a plugin driver; default: the kernel driver'),
    size: Size,
    align: Size.optional(),
    altmap: Flag.optional().describe('memmap on the device (vmem_altmap)'),
    kind: z.enum(['private', 'coherent']).optional().describe('hmm: device-private or device-coherent memory'),
    mode: z.enum(['fsdax', 'devdax', 'raw'], { error: 'mode is fsdax (the default), devdax or raw (ndctl create-namespace -m)' }).optional().describe('a pmem namespace\'s ndctl create-namespace -m; devdax: driver devdax with a dax info block, its data at nd_pfn_init()\'s offset also with altmap: false (-M mem); raw: no pfn device, no struct pages, a block device without DAX (mount -o dax: ext4 refuses, XFS mounts without DAX)'),
    as: Name,
  }).describe('bind a device: pmem namespace (nvdimm) or device-dax instance; memremap_pages'),
  unbind: obj({ device: Name, force: Flag.optional().describe('a device-dax instance in system-ram mode: unbind without ndctl\'s check (its memory stays System RAM until reboot when online)') }).describe('driver unbind: memunmap_pages (waits for references; may block); EBUSY for a system-ram instance with online memory (ndctl disable-namespace)'),
  mount: obj({
    device: Name,
    fs: Name.optional().describe('xfs | ext4 | fuse | a plugin fs'),
    dax: z.union([z.boolean(), z.enum(DAX_MODES, { error: 'dax is true (-o dax, the default), false (no dax option), always, never or inode' })], { error: 'dax is true (-o dax, the default), false (no dax option), always, never or inode' }).optional().describe('true: the legacy -o dax (default); false: no dax option (the filesystem default: per inode on XFS and ext4 from v5.8 and on FUSE from v5.17, no DAX on ext4 and FUSE before); always | never | inode: dax=<mode> (v5.8+)'),
    data: z.enum(['journal', 'ordered', 'writeback'], { error: 'data is journal, ordered or writeback (ext4 data=<mode>)' }).optional().describe('ext4 data=<mode> (default ordered); data=journal refuses -o dax / dax=always and makes no file DAX'),
    delalloc: Flag.optional().describe('ext4 delalloc (true) or nodelalloc (false); default delalloc. With nodelalloc a file flagged chattr +j journals its data (and is not DAX)'),
    inlineData: Flag.optional().describe('mkfs.ext4 -O inline_data: a feature of the filesystem, made at the first mount of the device (a later mount may repeat it or leave it out); -o dax / dax=always then fail'),
    verity: Flag.optional().describe('mkfs.ext4 -O verity: a feature of the filesystem, made at the first mount of the device (as inlineData); fsverity-enable needs it'),
    ro: Flag.optional().describe('mount -o ro: read-only from the start (changes are EROFS; remount: { ro: false } makes it read-write)'),
    fopenDirectIo: Flag.optional().describe('fuse only: the server opens every file FOPEN_DIRECT_IO (virtiofsd --cache=never): read/write of a file without DAX go to the server with the buffer GUPed, shared mmap is ENODEV unless directIoAllowMmap'),
    directIoAllowMmap: Flag.optional().describe('fuse only: the server answers FUSE_INIT with FUSE_DIRECT_IO_ALLOW_MMAP (FUSE_DIRECT_IO_RELAX in v6.6): shared mmap of FOPEN_DIRECT_IO files from v6.6'),
  }).describe('mount the filesystem on the device (fs: default kernel.fs) with -o dax or another dax option; again after umount, what is on the device is found'),
  create: obj({ file: Name, size: Size, device: Name.optional().describe('the mounted device to create it on (default: the first mount)'), dir: Name.optional().describe('the directory it is created in (default: the root); it inherits the FS_XFLAG_DAX of that directory'), inline: Flag.optional().describe('made by a small first write(2) (echo data > file) instead of fallocate: on ext4 with inline_data its data may stay in the inode (then the file is never DAX)') }).describe('create a file and allocate its blocks'),
  umount: obj({ device: Name }).describe('umount(2): EBUSY while a file is open or mapped; sync, evict every inode (S_DAX is decided again after the next mount)'),
  remount: obj({ device: Name, ro: z.boolean({ error: 'ro is true (mount -o remount,ro) or false (mount -o remount,rw)' }).describe('true: mount -o remount,ro; false: mount -o remount,rw') }).describe('mount -o remount,ro|rw: to read-only EBUSY while a file is open for writing or mapped shared and writable (sb_prepare_remount_readonly); then every change to the filesystem is EROFS, mappings stay (private ones keep COWing)'),
  mkdir: obj({ dir: Name, in: Name.optional().describe('the parent directory (default: the root)'), device: Name.optional().describe('the mounted device (default: the one holding in, else the first mount)') }).describe('mkdir(2): the new directory inherits FS_XFLAG_DAX from its parent'),
  chattr: obj({ file: Name.optional(), dir: Name.optional(), dax: Flag.optional().describe('true: chattr +x (set FS_XFLAG_DAX); false: chattr -x'), journal: Flag.optional().describe('ext4 only: true: chattr +j (set FS_JOURNAL_DATA_FL); false: chattr -j. EBUSY on a DAX file') })
    .refine((a) => (a.file === undefined) !== (a.dir === undefined), { error: 'chattr one file or one directory: give file: <name> or dir: <name>' })
    .refine((a) => a.dax !== undefined || a.journal !== undefined, { error: 'chattr needs a flag to change: dax: true|false (+x/-x) or journal: true|false (+j/-j)' })
    .describe('xfs_io -c "chattr +x|-x": FS_IOC_FSSETXATTR of FS_XFLAG_DAX; S_DAX follows once the inode is evicted (I_DONTCACHE on a dax=inode mount, drop-caches, umount)'),
  rename: obj({ file: Name.optional(), dir: Name.optional(), into: z.union([Name, z.literal('/')]).describe("the directory it moves into ('/' is the root); the name stays") })
    .refine((a) => (a.file === undefined) !== (a.dir === undefined), { error: 'rename one file or one directory: give file: <name> or dir: <name>' })
    .describe('rename(2), mv x into/: the same inode in another directory; FS_XFLAG_DAX and S_DAX stay (no inheritance), open files and mappings stay valid'),
  'fsverity-enable': obj({ file: Name }).describe('fsverity enable (FS_IOC_ENABLE_VERITY, ext4): the file becomes read-only and is never DAX again; EINVAL on a DAX file or one with FS_XFLAG_DAX (v5.8+), ETXTBSY while it is open for writing (an open with write, a shared writable mapping)'),
  fsync: obj({ file: Name }).describe('fsync(2) / fdatasync(2) (the same here: timestamps are not modelled): vfs_fsync_range() writes the page cache back and, when the file has uncommitted metadata, commits the journal (every earlier change of the filesystem with it); a memfd: nothing (noop_fsync)'),
  msync: obj({ map: Name, process: Name.optional().describe('the process whose mapping it is (default: the one that created it)') }).describe('msync(MS_SYNC) of the whole mapping: vfs_fsync_range(datasync) of the file behind each shared file VMA in it (as fsync); private and anonymous ones: nothing; ENOMEM when pages of it are no longer mapped'),
  'log-mark': obj({ device: Name, mark: Name.describe('the mark\'s name (log-replay: { mark })') }).describe('dmsetup message <dm-log-writes device> 0 mark <mark> (xfstests _log_writes_mark, xfs_io log_writes -m): the log remembers what the filesystem\'s journal has committed by now. XFS and ext4 on pmem (dm-log-writes passes DAX through from v4.15); FUSE has no block device: unsupported'),
  'log-replay': obj({ device: Name, mark: Name }).describe('replay-log --replay <dev> --end-mark <mark> (xfstests _log_writes_replay_log) onto the unmounted device: the next mount finds the metadata committed at the mark (later files gone, sizes, blocks and unwritten extents as then, later blocks free); EBUSY while mounted, ENOENT for an unknown mark'),
  'dm-create': obj({
    name: Name.describe('the dm device (/dev/mapper/<name>): mount, umount and remount take it'),
    table: z.array(obj({
      start: Size.describe('where the target starts in the dm device (dmsetup: sectors; here bytes, whole pages)'),
      length: Size.describe('its length'),
      device: Name.describe('a pmem namespace: fsdax (DAX) or raw (no DAX: the whole table then has none)'),
      offset: Size.optional().describe('where in that namespace\'s block device it starts (default 0: the first data page)'),
    }), { error: 'table is a list of targets: [{ start, length, device, offset? }]' }).min(1, { error: 'table needs at least one target' }),
  }).describe('dmsetup create <name> with a linear table (ndctl test/dm.sh): the targets adjoin from 0; the dm device offers DAX when every target\'s device does (dm_table_supports_dax()), a DAX page of it is the page of the target\'s namespace (linear_dax_direct_access()); each namespace is claimed (its own mount, disable and reconfigure: EBUSY) until dm-remove'),
  'dm-remove': obj({ name: Name }).describe('dmsetup remove: EBUSY while the dm device is mounted; the namespaces under it are free again'),
  'drop-caches': obj({}).describe('sync; echo 2 > /proc/sys/vm/drop_caches: every in-core inode nothing holds is evicted (S_DAX is decided again at the next lookup)'),
  open: obj({ file: Name, as: Name.describe('the open file (close: <name>)'), write: Flag.optional().describe('O_RDWR (default O_RDONLY): EROFS on a read-only mount; holds write access to the mount until close') }).describe('open(2): the file descriptor holds the inode (no eviction while open)'),
  close: releaseArgs.describe('close(2) of an open file: the last user of an I_DONTCACHE inode evicts it'),
  truncate: obj({ file: Name, size: Size }).describe("truncate (the filesystem's full ordering)"),
  'punch-hole': obj({ file: Name, offset: Size, length: Size }).describe('fallocate punch hole'),
  fallocate: obj({
    file: Name.describe('a memfd (tmpfs, or hugetlbfs with memfd-create hugetlb) or a file on a DAX mount'),
    offset: Size.optional().describe('where the range starts (default 0)'),
    length: Size.describe('how much to allocate, zero or collapse'),
    keepSize: Flag.optional().describe('FALLOC_FL_KEEP_SIZE: i_size stays (default: a range past the end extends the file); not with collapse-range, insert-range or write-zeroes (EINVAL up to v6.11, EOPNOTSUPP from v6.12)'),
    mode: z.enum(['allocate', 'zero-range', 'collapse-range', 'insert-range', 'unshare-range', 'write-zeroes'], { error: 'mode is allocate (the default), zero-range, collapse-range, insert-range, unshare-range or write-zeroes (punch hole is the punch-hole step)' }).optional()
      .describe('allocate (mode 0: unwritten blocks over the holes), zero-range (FALLOC_FL_ZERO_RANGE), collapse-range (FALLOC_FL_COLLAPSE_RANGE: the range removed, what follows shifted down, the file shorter), insert-range (FALLOC_FL_INSERT_RANGE: a hole inserted, what follows shifted up, the file longer), unshare-range (FALLOC_FL_UNSHARE_RANGE: shared blocks of the range copied to private ones, XFS) or write-zeroes (FALLOC_FL_WRITE_ZEROES, v6.17); a memfd takes allocate only'),
  }).describe('fallocate(fd, mode, offset, length): of a memfd, the pages of the range allocated into its page cache (hugetlbfs: huge pages from the pool); of a file on a DAX mount, the filesystem\'s ->fallocate with its break-layouts ordering'),
  reflink: obj({ from: Name, to: Name }).describe("share all of from's blocks with a new file to (XFS)"),
  spawn: obj({ as: Name }).describe('a new process (init always exists)'),
  'memfd-create': obj({
    file: Name.describe('the name the memfd goes by (mmap: { file }, truncate, checks)'),
    size: Size.describe('ftruncate() to this size'),
    fallocate: Flag.optional().describe('fallocate(0, size): allocate every page into the page cache now (default: pages come with the first fault)'),
    hugetlb: HugetlbSize.optional().describe('MFD_HUGETLB with this huge page size (MFD_HUGE_SHIFT) or default: a hugetlbfs file (size a multiple of it) whose pages come from the hugetlb pool'),
    sealing: Flag.optional().describe('MFD_ALLOW_SEALING: add-seals may seal it (default: it starts with F_SEAL_SEAL, so add-seals is EPERM)'),
  }).describe('memfd_create() + ftruncate() [+ fallocate()]: a tmpfs (shmem) file whose page cache is ordinary RAM, or with hugetlb a hugetlbfs file'),
  'memfd-secret': obj({
    file: Name.describe('the name the file goes by (mmap: { file, shared: true }, truncate, checks)'),
    size: Size.optional().describe('ftruncate() to this size (it can be set once; default: i_size 0, truncate later)'),
    flags: z.number({ error: 'flags is a number (O_CLOEXEC is 524288)' }).int().nonnegative().optional().describe('the flags argument (default 0; only O_CLOEXEC, 02000000, is valid: anything else is EINVAL)'),
  }).describe('memfd_secret(flags) [+ ftruncate()]: a file whose pages leave the kernel direct map; MAP_SHARED only, VM_LOCKED, refused by GUP (ENOSYS where the arch or release lacks it)'),
  'add-seals': obj({
    file: Name.describe('a memfd (memfd-create with sealing: true)'),
    seals: z.array(z.enum(SEAL_NAMES, { error: `a seal is one of ${SEAL_NAMES.join(', ')}` }), { error: `seals is a list of seal names: ${SEAL_NAMES.join(', ')}` }).describe('the seals to add (an empty list is fcntl(F_ADD_SEALS, 0))'),
  }).describe('fcntl(fd, F_ADD_SEALS, seals) of a memfd: F_SEAL_WRITE is EBUSY while a shared mapping counts as writable or a page is pinned; EPERM once F_SEAL_SEAL is set'),
  tmpfile: obj({
    file: Name.describe('the name the file goes by (mmap: { file }, truncate, punch-hole, checks)'),
    fs: z.enum(['ext4', 'xfs', 'tmpfs'], { error: 'fs is ext4 or xfs (a disk filesystem mounted without -o dax) or tmpfs' }).describe('the filesystem it lives on: a non-DAX disk filesystem, or a tmpfs of its own'),
    size: Size.describe('ftruncate() to this size'),
    huge: z.enum(TMPFS_HUGE_OPTIONS, { error: `huge is one of ${TMPFS_HUGE_OPTIONS.join(', ')} (deny and force are shmem-enabled modes, not mount options)` }).optional()
      .describe('fs: tmpfs only: mount -t tmpfs -o huge=<huge> (default never): what write(2) allocates over a hole -- a PMD-order folio under always (up to v6.13 and from v6.18; the write size hints at the order in v6.14-v6.17), within_size when it fits in i_size'),
  }).refine((a) => a.huge === undefined || a.fs === 'tmpfs', { error: 'huge is a tmpfs mount option: give fs: tmpfs, or leave huge out', path: ['huge'] })
    .describe('mkstemp() + unlink() + ftruncate() on a disk filesystem mounted without DAX: a page-cache file whose shared writable mappings need dirty tracking (fallocate() would add no page: only blocks); or open(O_CREAT) + ftruncate() of a file on a tmpfs mounted with -o huge= (split_huge_page_test.c split_file_backed_thp)'),
  'hugetlb-pool': obj({
    size: Size.describe('the huge page size (one the arch offers: x86 2MiB, 1GiB)'),
    pages: z.number().int().min(0).describe('nr_hugepages'),
    node: NodeId.optional().describe('write the node\'s own file instead, /sys/devices/system/node/node<node>/hugepages/hugepages-<size>kB/nr_hugepages: pages on that node only (default: the global file, which spreads new pages round-robin over the nodes)'),
  }).describe('echo pages > /sys/kernel/mm/hugepages/hugepages-<size>kB/nr_hugepages: the hugetlb pool of that size'),
  'cgroup-mount': obj({
    version: z.union([z.literal(1), z.literal(2)], { error: 'version is 1 (mount -t cgroup -o hugetlb) or 2 (mount -t cgroup2, +hugetlb in cgroup.subtree_control)' }),
  }).describe('mount a cgroup hierarchy with the hugetlb controller: v1 (mount -t cgroup -o hugetlb), or v2 (mount -t cgroup2 and echo +hugetlb > cgroup.subtree_control: EINVAL before v5.6); the other version afterwards is EBUSY'),
  'cgroup-mkdir': obj({ cgroup: CgroupPath }).describe('mkdir of a cgroup in the hugetlb hierarchy (EEXIST, ENOENT without its parent)'),
  'cgroup-rmdir': obj({ cgroup: CgroupPath }).describe('rmdir of a cgroup: EBUSY with a live process in it or a child cgroup; the fault charges of its huge pages in use move to the parent (hugetlb_cgroup_css_offline()), its reservation charges stay until uncharged'),
  'cgroup-attach': obj({
    cgroup: CgroupPath,
    process: Name.optional().describe('the process that moves (default init)'),
  }).describe('echo PID > <cgroup>/cgroup.procs (v1: or tasks): the process is charged there from now on; what it charged before stays where it is. v2: EBUSY for a cgroup with children (no internal processes)'),
  'cgroup-write': obj({
    cgroup: CgroupPath,
    file: Name.describe('the control file, hugetlb.<size>.<name>: a limit (v1 limit_in_bytes, rsvd.limit_in_bytes; v2 max, rsvd.max), or on v1 max_usage_in_bytes, failcnt and their rsvd.* twins (reset)'),
    value: z.union([z.literal(-1), z.literal('max'), Size], { error: 'value is bytes (a number or a size such as 10MiB), -1 (v1: no limit) or max (v2: no limit)' }).describe('bytes (rounded down to whole huge pages), -1 (v1) or max (v2): no limit'),
  }).describe('echo value > <cgroup>/<file>: set a hugetlb limit (EBUSY below what is charged; EINVAL on the root) or reset a v1 watermark or failcnt'),
  'shmem-enabled': obj({
    mode: z.enum(SHMEM_HUGE_MODES, { error: `mode is one of ${SHMEM_HUGE_MODES.join(', ')}` }).describe('always | within_size | advise | never (the default) | deny | force'),
  }).describe('echo mode > /sys/kernel/mm/transparent_hugepage/shmem_enabled: the huge= policy of the internal tmpfs mount (memfds, shared anonymous memory) khugepaged and write(2) to a memfd (pwrite) follow; MADV_COLLAPSE ignores it; deny and force override the huge= of every tmpfs mount too. A shmem fault over a hole allocates a PMD-order folio under it'),
  'thp-size': obj({
    size: Size.describe('the anonymous THP size (base page times 2^2 up to the PMD size: x86 16KiB .. 2MiB)'),
    enabled: z.enum(THP_SIZE_MODES).describe('always | inherit | madvise | never'),
  }).describe('echo enabled > /sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/enabled (v6.8+): multi-size THP for anonymous memory'),
  'thp-enabled': obj({
    mode: z.enum(THP_ENABLED_MODES, { error: `mode is one of ${THP_ENABLED_MODES.join(', ')}` }).describe('always | madvise (the default) | never'),
  }).describe('echo mode > /sys/kernel/mm/transparent_hugepage/enabled: where anonymous faults and khugepaged make PMD-sized THPs (always: every VMA without MADV_NOHUGEPAGE; madvise: MADV_HUGEPAGE VMAs; never: none), and what the `inherit` sizes follow; MADV_COLLAPSE and DAX faults ignore it. ENOENT where the MMU has no THP'),
  sysctl: obj({
    name: z.enum(SYSCTL_NAMES, { error: `name is one of: ${SYSCTL_NAMES.join(', ')}` }).describe('the /proc/sys entry, with dots for slashes'),
    value: z.union([z.literal(0), z.literal(1)], { error: 'value is 0 or 1' }).describe('the number written'),
  }).describe('echo value > /proc/sys/<name>: vm.hugetlb_optimize_vmemmap (v5.19+; ENOENT before and where HVO optimises no huge page size) switches HugeTLB Vmemmap Optimization for the pages that join a hugetlb pool from now on; vm.enable_soft_offline (v6.11+; ENOENT before) 0 makes soft offline EOPNOTSUPP'),
  'khugepaged-limits': obj({
    maxPtesNone: z.number().int().nonnegative().optional().describe('khugepaged/max_ptes_none: at most this many none or zero-page PTEs in a range khugepaged collapses (default HPAGE_PMD_NR - 1)'),
    maxPtesSwap: z.number().int().nonnegative().optional().describe('khugepaged/max_ptes_swap: at most this many swap entries, swapped in first (default HPAGE_PMD_NR / 8)'),
    maxPtesShared: z.number().int().nonnegative().optional().describe('khugepaged/max_ptes_shared (v5.8+): at most this many pages mapped by another process too (default HPAGE_PMD_NR / 2)'),
  }).describe('echo N > /sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_{none,swap,shared}: the limits khugepaged (not MADV_COLLAPSE) puts on a range it collapses; EINVAL above HPAGE_PMD_NR - 1'),
  'khugepaged-scan': obj({
    map: Name,
    process: Name.optional(),
  }).describe('one khugepaged pass over the mapping (khugepaged_scan_mm_slot): each PMD range of each VMA that hugepage_vma_check() allows with sysfs enforced (VM_HUGEPAGE under enabled=madvise) is scanned and, within the max_ptes_* limits, collapsed into a PMD-mapped THP; never an error: check the outcome'),
  'split-huge-pages': obj({
    map: Name.optional().describe('the pid form: a mapping of the process (its pid)'),
    file: Name.optional().describe('the path form: a file, whose page cache is walked'),
    all: z.literal(true).optional().describe('echo 1: every THP in RAM (split_huge_pages_all), to order 0'),
    offset: Size.optional().describe('where the range starts, in bytes (page aligned; default 0): vaddr_start in the mapping, off_start * page size in the file'),
    length: Size.optional().describe('how much, in bytes (default: the whole mapping, or the file up to i_size)'),
    order: z.number().int().nonnegative().optional().describe('new_order (v6.10; ignored before: order 0); default 0'),
    at: z.number().int().nonnegative().optional().describe('in_folio_offset (v6.15; ignored before): split non-uniformly (folio_split) so that the page at this index of each folio gets a folio of `order`'),
    process: Name.optional().describe('the process of the pid form (default: the one that created the mapping)'),
  }).refine((a) => [a.map, a.file, a.all].filter((x) => x !== undefined).length === 1, { error: 'split-huge-pages needs one target: map: <mapping> (the pid form), file: <name> (the path form) or all: true (echo 1)', path: ['map'] })
    .describe('echo pid,vaddr_start,vaddr_end[,new_order[,in_folio_offset]] (or <path>,off_start,off_end,..., v5.13; EINVAL before; or 1) > /sys/kernel/debug/split_huge_pages: split the THPs of a range whose only references are their mappings; never an error for a folio that stays whole: check the outcome (folioOrder, anonHugePages, rssAnon)'),
  swapoff: obj({}).describe('swapoff(2) of the swap device: every swapped-out page is read back and mapped read-only (try_to_unuse, unuse_pte); later MADV_PAGEOUT swaps nothing. Blocks forever before v5.13 when a swap entry is uffd-wp (pte_same_as_swp)'),
  mmap: mmapArgs.describe('map a file (a DAX file or a memfd), a device-dax device, or anonymous memory (shared: shmem)'),
  munmap: obj({
    map: Name,
    offset: Size.optional().describe('where in the mapping the unmapped range starts (page aligned; default 0)'),
    length: Size.optional().describe('how much to unmap (rounded up to pages; default: to the end of the mapping)'),
    process: Name.optional(),
  }).describe('unmap the mapping or a range of it (split_vma at its ends, zap, deferred reference drop after TLB flush)'),
  shmget: obj({
    as: Name.describe('the name the segment goes by (shmat, shmctl)'),
    size: Size.describe('the segment size in bytes (SHM_HUGETLB rounds the file up to the huge page)'),
    key: z.number().int().nonnegative().optional().describe('the IPC key (default 0, IPC_PRIVATE: always a new segment); a key whose segment exists gives that one (EINVAL if size exceeds it)'),
    hugetlb: HugetlbSize.optional().describe('SHM_HUGETLB with this huge page size (SHM_HUGE_SHIFT) or default: every huge page of the segment is reserved now (HugePages_Rsvd), ENOMEM without enough free ones'),
    process: Name.optional().describe('the calling process (default init): with hugetlb, its hugetlb cgroup is charged the reservation'),
  }).describe('shmget(key, size, IPC_CREAT | 0600 [| SHM_HUGETLB]): a System V shared memory segment, a tmpfs file or with hugetlb a hugetlbfs one (ipc/shm.c newseg()); it lives until shmctl IPC_RMID and its last detach'),
  shmat: obj({
    shm: Name.describe('a segment (shmget as)'),
    as: Name.describe('the name the attached mapping goes by'),
    readonly: Flag.optional().describe('SHM_RDONLY: mapped read-only'),
    process: Name.optional().describe('the process that attaches (default init)'),
  }).describe('shmat(shmid, NULL, 0): the whole segment mapped MAP_SHARED (do_shmat()); a fork inherits the attach'),
  shmdt: obj({ map: Name.describe('a mapping made by shmat'), process: Name.optional() }).describe('shmdt(addr): the segment attached there is unmapped (EINVAL when the mapping is no attach); after IPC_RMID the last detach destroys it'),
  shmctl: obj({
    shm: Name.describe('a segment (shmget as)'),
    cmd: z.literal('IPC_RMID', { error: 'cmd is IPC_RMID (the only shmctl command modelled)' }).describe('IPC_RMID'),
  }).describe('shmctl(shmid, IPC_RMID): the segment is destroyed now, or when its last attach goes (SHM_DEST; the key becomes private): its pages are freed and, with SHM_HUGETLB, its unused reservations return'),
  read: obj({ map: Name, page: PageIndex, process: Name.optional(), thread: ThreadRef, expect: Data.optional() }).describe('CPU read of a base page (faults as needed)'),
  write: obj({ map: Name, page: PageIndex, pages: PageCount.optional().describe('store to this many pages from page on, in order (xfs_io mwrite of a range); default 1'), data: Data, process: Name.optional(), thread: ThreadRef }).describe('CPU write of a base page (faults as needed)'),
  pread: fileIoArgs.describe('pread(2) of a file into a buffer in a mapping (fs/rw.ts): a DAX file is dax_iomap_rw()\'s copy, which faults the buffer in for write (no GUP; O_DIRECT the same); a page-cache file filemap_read(); O_DIRECT of a file without S_DAX GUPs the buffer for the bio (FOLL_WRITE). Returns the bytes read: short when the buffer faults after a first page, EFAULT when nothing was copied (O_DIRECT without DAX: EFAULT whenever GUP fails)'),
  pwrite: fileIoArgs.describe('pwrite(2) of a buffer in a mapping to a file (fs/rw.ts): a DAX file is dax_iomap_rw() (blocks allocated over holes, i_size extended; the buffer read-faulted, no GUP); a page-cache file generic_perform_write(); O_DIRECT of a file without S_DAX GUPs the buffer for the bio. Returns the bytes written (short, or EFAULT, as pread)'),
  fork: obj({ process: Name.optional().describe('the parent (default init)'), as: Name }).describe('fork: copy VMAs and page tables (copy_page_range)'),
  exit: obj({ process: Name }).describe('process exit: unmap everything'),
  kill: obj({ process: Name }).describe('kill(pid, SIGKILL): a fatal signal is pending; the process runs no more user code and its memory stays until exit (process-mrelease may reap it first)'),
  'process-mrelease': obj({
    process: Name.optional().describe('the calling process (default init)'),
    pidfd: Name.describe('a pidfd-open handle on the process to reap'),
    flags: z.number().int().nonnegative().optional().describe('the flags argument (must be 0: EINVAL otherwise)'),
  }).describe('process_mrelease(pidfd, flags) (mm/oom_kill.c, v5.15; ENOSYS before): reap a killed process\'s private and anonymous memory before it exits, as the OOM reaper does (EINVAL for a process not killed, ESRCH once it exited); later faults there that would map new memory are SIGBUS'),
  exec: obj({ process: Name.optional().describe('the process that calls execve() (default init)') }).describe('execve(): the process gets a new, empty mm (the old one is torn down as at exit); PR_SET_MEMORY_MERGE survives it from v6.7'),
  pin: pinArgs.describe('pin_user_pages (FOLL_PIN)'),
  get: pinArgs.describe('get_user_pages (FOLL_GET)'),
  unpin: releaseArgs.describe('release a pin'),
  put: releaseArgs.describe('release a get'),
  'dma-write': obj({ pin: Name, data: Data }).describe('a device writes the pinned pages'),
  'dma-read': obj({ pin: Name, expect: Data.optional() }).describe('a device reads the pinned pages'),
  'iouring-register': obj({
    map: Name,
    page: PageIndex.describe('iov_base: the base page of the mapping the buffer starts at'),
    pages: PageCount.optional().describe('iov_len in base pages (default 1)'),
    as: Name.describe('the buffer: a pin by this name (dma-read / dma-write / iouring-unregister)'),
    process: Name.optional().describe('act in this process (default: the one that created the mapping)'),
  }).describe('io_uring_register_buffers() of one iovec: pin it FOLL_WRITE|FOLL_LONGTERM and apply the release\'s checks (io_sqe_buffer_register)'),
  'iouring-unregister': releaseArgs.describe('io_uring_unregister_buffers(): unpin what the buffer kept'),
  'memory-failure': memoryFailureArgs.describe('poison a device page (memory_failure_dev_pagemap), or a mapped page with madvise(MADV_HWPOISON); or, with block, badblocks in a pmem namespace (ndctl inject-error + scrub)'),
  'inject-error': obj({
    device: Name.describe('a pmem namespace (fsdax, devdax or raw)'),
    block: z.number().int().nonnegative().describe('--block: the first 512-byte block, counted as ndctl counts it: from the data offset of an fsdax or devdax namespace (its pfn / dax resource), from the start of a raw one'),
    count: z.number().int().positive().optional().describe('--count: how many blocks (default 1)'),
    notify: Flag.optional().describe('false: --no-notify, nfit_test queues no notification, so no scrub runs and no badblocks list them yet (default true: the scrub runs)'),
    uninject: Flag.optional().describe('--uninject: nfit_test forgets the blocks (NFIT_CMD_ARS_INJECT_CLEAR); badblocks a scrub found stay'),
  }).describe('ndctl inject-error: nfit_test records the blocks as media errors (NFIT_CMD_ARS_INJECT_SET) and, unless notify: false, the notification scrubs them into the bus\'s list and the badblocks; no machine check, no page poisoned'),
  scrub: obj({}).describe('ndctl start-scrub + wait-scrub: address range scrub reports the platform\'s errors, which join the bus\'s list and the region\'s and namespaces\' badblocks'),
  'set-badblocks': obj({
    device: Name.describe('a pmem namespace with a block device (fsdax or raw)'),
    sector: z.number().int().nonnegative().optional().describe('the first 512-byte sector of the block device (from its data offset); with extentOf, counted from that file\'s first extent (default 0)'),
    count: z.number().int().positive().describe('how many sectors'),
    extentOf: Name.optional().describe('a file on the filesystem mounted on the namespace: sector counts from its first extent (filefrag -v -b512\'s first physical_offset)'),
  })
    .refine((a) => a.sector !== undefined || a.extentOf !== undefined, { error: 'give sector: <n> (the block device\'s sector), or extentOf: <file> (from the file\'s first extent)', path: ['sector'] })
    .describe('echo "<sector> <count>" > /sys/block/pmemX/badblocks (badblocks_store()): the sectors join the disk\'s own list (pmem->bb) only, not the bus\'s or the region\'s; the disk fails reads there until a write clears them, and an enable rebuilds its list without them'),
  'clear-error': obj({
    device: Name.describe('a pmem namespace in devdax mode'),
    block: z.number().int().nonnegative().describe('the first 512-byte block from the start of the namespace'),
    count: z.number().int().positive().optional().describe('how many blocks (default 1)'),
  }).describe('ND_CMD_CLEAR_ERROR to the nvdimm bus over those blocks (ndctl test/daxdev-errors.c): the bus\'s and the region\'s badblocks forget them; no page changes'),
  'soft-offline': softOfflineArgs.describe('soft-offline a device page (sysfs soft_offline_page) or a mapped page (madvise(MADV_SOFT_OFFLINE)): EIO for ZONE_DEVICE memory; a RAM or hugetlb page moves to a new page and the old one is poisoned'),
  migrate: obj({ map: Name, page: PageIndex, pages: PageCount.optional(), to: Name.describe("'ram', the name of a device to migrate to, or 'device' (the only bound device that can)"), process: Name.optional().describe('act in this process (default: the one that created the mapping)') }).describe('migrate anonymous pages to device memory or back (migrate_vma_*)'),
  'device-read': obj({ device: Name, map: Name, page: PageIndex, process: Name.optional().describe('the process whose memory the device mirrors'), expect: Data.optional() }).describe("a mirror device reads a process's page (hmm)"),
  'device-write': obj({ device: Name, map: Name, page: PageIndex, data: Data, process: Name.optional().describe('the process whose memory the device mirrors') }).describe("a mirror device writes a process's page (hmm)"),
  'device-snapshot': obj({
    device: Name,
    map: Name,
    page: PageIndex.optional().describe('the first page (default 0)'),
    pages: PageCount.optional().describe('how many pages (default: as many as expect lists)'),
    process: Name.optional().describe('the process whose page tables the device snapshots'),
    expect: z.array(SnapshotByte).min(1, { error: 'list the flags expected for each page, e.g. expect: [ERROR, ZERO|READ, WRITE]' }).describe('one entry per page: HMM_DMIRROR_PROT_* names joined by |, or the byte'),
  })
    .refine((a) => a.pages === undefined || a.pages === a.expect.length, { error: (iss) => `pages is ${String((iss.input as { pages?: number }).pages)} but expect lists ${(iss.input as { expect: unknown[] }).expect.length} pages: give one entry per page`, path: ['pages'] })
    .describe("a mirror device snapshots a process's page tables without faulting (test_hmm HMM_DMIRROR_SNAPSHOT)"),
  'device-exclusive': deviceRangeArgs('1', 'the process whose pages the device takes').describe('a mirror device takes pages for atomic access: make_device_exclusive() of each, mapped in its own page table (test_hmm HMM_DMIRROR_EXCLUSIVE; v5.14+)'),
  'device-check-exclusive': deviceRangeArgs('to the end of the mapping', 'the process whose pages are checked').describe('-EPERM while the device still maps a page of the range atomically (test_hmm HMM_DMIRROR_CHECK_EXCLUSIVE): expect: { error: EPERM } then'),
  'inject-fault': obj({
    site: z.enum(FAULT_SITE_NAMES as [FaultSite, ...FaultSite[]]).describe('the allocation that fails (fault-inject.ts FAULT_SITES)'),
    nth: z.number().int().positive().optional().describe('the nth call at the site from now fails (default 1, as /proc/<pid>/fail-nth)'),
    times: z.number().int().positive().optional().describe('how many calls fail from there (default 1)'),
  }).describe("arm the kernel's fault injection: an allocation at the site fails (fail_page_alloc with fail-nth)"),
  mprotect: obj({
    map: Name,
    write: z.boolean({ error: 'write: true (PROT_READ|PROT_WRITE) or write: false (PROT_READ)' }).describe('true: PROT_READ|PROT_WRITE; false: PROT_READ (PROT_NONE with read: false)'),
    read: z.boolean().optional().describe('false (with write: false): PROT_NONE; default true'),
    exec: Flag.optional().describe('PROT_EXEC: VM_EXEC (without it VM_EXEC is cleared); EACCES under prctl(PR_SET_MDWE) when the mapping was not executable or is made writable too'),
    offset: Size.optional().describe('where in the mapping the range starts (page aligned; default 0)'),
    length: Size.optional().describe('how much (rounded up to pages; default: to the end of the mapping)'),
    process: Name.optional().describe('act in this process (default: the one that created the mapping)'),
    pkey: PkeyRef.optional().describe('pkey_mprotect() with this key (a number or a pkey-alloc name): EINVAL unless allocated, ENOSYS without protection keys'),
  })
    .refine((a) => a.read !== false || !a.write, { error: 'PROT_WRITE without PROT_READ is not modelled: write read: false with write: false (PROT_NONE)', path: ['read'] })
    .describe('mprotect() of the mapping or a range of it (split_vma at its ends, mprotect_fixup, change_protection)'),
  'clear-refs': obj({
    'soft-dirty': z.literal(true, { error: 'clear-refs only models soft-dirty clearing: write soft-dirty: true (echo 4 > /proc/PID/clear_refs)' }).describe('echo 4 > /proc/PID/clear_refs'),
    process: Name.optional().describe('the process (default init)'),
  }).describe('clear the soft-dirty bits of a process (clear_refs_write, CLEAR_REFS_SOFT_DIRTY)'),
  mremap: obj({
    map: Name,
    offset: Size.optional().describe('where in the mapping the moved range starts (page aligned; default 0)'),
    length: Size.describe('how much to move (old_len)'),
    newLength: Size.optional().describe('new_len when it differs from length: shrinking unmaps the tail (in place, or before a move to to); growing happens in place when the pages after are free, else needs mayMove; a VM_PFNMAP mapping never grows (EFAULT)'),
    mayMove: Flag.optional().describe('MREMAP_MAYMOVE without MREMAP_FIXED: a range that cannot grow in place moves (then name it with as)'),
    to: Name.optional().describe('MREMAP_FIXED: move onto this mapping\'s range (whatever maps it is unmapped first), at toOffset'),
    toOffset: Size.optional().describe('where in the to mapping the range lands (page aligned; default 0)'),
    dontUnmap: Flag.optional().describe('MREMAP_DONTUNMAP: the old range keeps its (emptied) VMA'),
    as: Name.optional().describe('the name of the range mremap returns (needed with to, dontUnmap, or a grow that moves)'),
    process: Name.optional().describe('act in this process (default: the one that created the mapping)'),
  })
    .refine((a) => a.toOffset === undefined || a.to !== undefined, { error: 'toOffset says where in the to mapping the range lands: give to: <mapping> with it', path: ['toOffset'] })
    .refine((a) => a.as !== undefined || (a.to === undefined && !a.dontUnmap), { error: 'a move (to or dontUnmap) makes a new mapping: name it with as', path: ['as'] })
    .describe('mremap(MREMAP_MAYMOVE|MREMAP_FIXED[|MREMAP_DONTUNMAP], or a new length): move or resize a range of a mapping (move_vma, move_page_tables)'),
  madvise: obj({
    map: Name,
    advice: z.enum(MADVISE_ADVICES, { error: `advice is one of ${MADVISE_ADVICES.join(', ')}` }).describe('MADV_* in lower case with - for _ (MADV_DONTNEED_LOCKED: dontneed-locked)'),
    offset: Size.optional().describe('where in the mapping the range starts (page aligned; default 0)'),
    length: Size.optional().describe('how much (rounded up to pages; default: to the end of the mapping)'),
    process: Name.optional().describe('act in this process (default: the one that created the mapping)'),
  }).describe('madvise() of a mapping or a range of it (mm/madvise.c: validity per VMA, zap, VM_DONTCOPY/VM_WIPEONFORK, populate)'),
  mseal: obj({
    map: Name,
    offset: z.union([Size, z.number().int()]).optional().describe('bytes from the start of the mapping where the range starts (default 0; may be negative, before the mapping; not page aligned: EINVAL)'),
    length: Size.optional().describe('bytes (rounded up to pages; default: to the end of the mapping; past it: ENOMEM)'),
    flags: z.number().int().nonnegative().optional().describe('the flags argument (must be 0: EINVAL otherwise)'),
    process: Name.optional().describe('act in this process (default: the one that created the mapping)'),
  }).describe('mseal(addr, len, flags) (v6.10, mm/mseal.c): VM_SEALED on every VMA of a fully mapped range (split at its ends); a sealed VMA refuses munmap, mremap, MAP_FIXED, mprotect and discarding madvise of read-only anonymous memory (EPERM); ENOSYS before v6.10'),
  'pidfd-open': obj({
    target: Name.optional().describe('the process the pidfd refers to (default: the caller itself, pidfd_open(getpid()))'),
    process: Name.optional().describe('the process that calls pidfd_open (default init)'),
    as: Name.describe('the name the pidfd goes by (process-madvise: { pidfd })'),
  }).describe('pidfd_open(pid, 0): a handle on a process (its task: still the same process after exec; ESRCH for one that has exited)'),
  'process-madvise': obj({
    process: Name.optional().describe('the calling process (default init)'),
    pidfd: Name.describe('a pidfd-open handle on the target process (the caller itself or another)'),
    ranges: z.array(obj({
      map: Name.describe("a mapping of the target (looked up in the target's address space)"),
      page: PageIndex.optional().describe('the first page of the range (default 0)'),
      pages: z.number().int().nonnegative().optional().describe('how many base pages (default: to the end of the mapping; 0 is an empty iovec)'),
    }), { error: 'ranges is a list of { map, page?, pages? }: one iovec each' }).describe('the iovec array, one { map, page, pages } per entry, advised in order'),
    advice: z.enum(MADVISE_ADVICES, { error: `advice is one of ${MADVISE_ADVICES.join(', ')}` }).describe('MADV_* in lower case with - for _'),
    flags: z.number().int().nonnegative().optional().describe('the flags argument (must be 0: EINVAL otherwise)'),
    capSysNice: Flag.optional().describe('whether the caller has CAP_SYS_NICE (default true; without it EPERM from v5.12, only for another process from v6.12)'),
    bytes: z.number().int().nonnegative().optional().describe('the return value the call must give: the bytes advised'),
  }).describe('process_madvise(pidfd, iovec, vlen, advice, flags) (mm/madvise.c): madvise() of each range of another process or of itself; advices and permission per release; returns the bytes advised (after a failure, those before it from v5.18)'),
  mlock: obj({
    map: Name,
    offset: Size.optional().describe('where in the mapping the range starts (page aligned; default 0)'),
    length: Size.optional().describe('how much (rounded up to pages; default: to the end of the mapping)'),
    onfault: Flag.optional().describe('mlock2(MLOCK_ONFAULT): VM_LOCKED|VM_LOCKONFAULT, nothing populated now'),
    process: Name.optional().describe('act in this process (default: the one that created the mapping)'),
  }).describe('mlock() / mlock2() of a mapping or a range of it (mm/mlock.c): VM_LOCKED on every VMA mlock_fixup() does not filter (VM_SPECIAL, hugetlb, DAX), then the range is populated (errors: ENOMEM, EAGAIN)'),
  munlock: obj({
    map: Name,
    offset: Size.optional().describe('where in the mapping the range starts (page aligned; default 0)'),
    length: Size.optional().describe('how much (rounded up to pages; default: to the end of the mapping)'),
    process: Name.optional().describe('act in this process (default: the one that created the mapping)'),
  }).describe('munlock() of a mapping or a range of it: VM_LOCKED and VM_LOCKONFAULT cleared (split and merge as mlock)'),
  mlockall: obj({
    current: Flag.optional().describe('MCL_CURRENT: lock every present VMA (and populate them, unless onfault)'),
    future: Flag.optional().describe('MCL_FUTURE: every later mapping comes locked (mm->def_flags)'),
    onfault: Flag.optional().describe('MCL_ONFAULT: lock on fault, populate nothing'),
    process: Name.optional().describe('the calling process (default init)'),
  }).describe('mlockall(MCL_CURRENT|MCL_FUTURE[|MCL_ONFAULT]) (apply_mlockall_flags(); EINVAL without MCL_CURRENT or MCL_FUTURE)'),
  munlockall: obj({
    process: Name.optional().describe('the calling process (default init)'),
  }).describe('munlockall(): every VMA unlocked, mm->def_flags cleared'),
  'ksm-merge': obj({
    scans: z.number().int().positive().optional().describe('how many full scans to wait for (default 2, as ksm_functional_tests.c ksm_merge(): the first only records checksums)'),
    useZeroPages: Flag.optional().describe('echo 1 (or 0) > /sys/kernel/mm/ksm/use_zero_pages first; it stays set: zero-filled pages are merged into the shared zero page'),
    mergeAcrossNodes: Flag.optional().describe('echo 1 (or 0) > /sys/kernel/mm/ksm/merge_across_nodes first; it stays set: 0 keeps one stable and unstable tree per NUMA node, so pages of different nodes never merge (EBUSY while pages_shared is not 0: ksm-unmerge first)'),
  }).describe('echo 1 > /sys/kernel/mm/ksm/run and wait for full scans of ksmd: identical anonymous pages of MADV_MERGEABLE ranges become one read-only KSM page (mm/ksm.c)'),
  'ksm-unmerge': obj({}).describe('echo 2 > /sys/kernel/mm/ksm/run (unmerge_and_remove_all_rmap_items): every KSM page of every process KSM knows is unmerged (VM_MERGEABLE stays), every rmap_item freed; nothing merges until the next ksm-merge'),
  prctl: obj({
    memoryMerge: Flag.optional().describe('PR_SET_MEMORY_MERGE: true merges every compatible VMA of the process, present and future (MMF_VM_MERGE_ANY); false unmerges them'),
    thpDisable: Flag.optional().describe('PR_SET_THP_DISABLE: true disables THP for every VMA of the process (MMF_DISABLE_THP), false gives the sysfs modes and madvise back; fork and exec keep it'),
    exceptAdvised: Flag.optional().describe('with thpDisable: true, PR_THP_DISABLE_EXCEPT_ADVISED (v6.18; EINVAL before, and with thpDisable: false): MADV_HUGEPAGE VMAs and MADV_COLLAPSE still get THPs'),
    mdwe: z.number().int().nonnegative().optional().describe('PR_SET_MDWE (v6.3; EINVAL before) with these bits: 1 PR_MDWE_REFUSE_EXEC_GAIN (no mapping becomes writable and executable, or executable when it was not: EACCES), 3 with PR_MDWE_NO_INHERIT (v6.7: fork and exec drop it); EPERM once set to change it'),
    process: Name.optional().describe('the calling process (default init)'),
  })
    .refine((a) => [a.memoryMerge, a.thpDisable, a.mdwe].filter((o) => o !== undefined).length === 1, { error: 'prctl takes one option: memoryMerge (PR_SET_MEMORY_MERGE), thpDisable (PR_SET_THP_DISABLE) or mdwe (PR_SET_MDWE)', path: ['memoryMerge'] })
    .refine((a) => a.exceptAdvised === undefined || a.thpDisable !== undefined, { error: 'exceptAdvised is a flag of PR_SET_THP_DISABLE: give thpDisable with it', path: ['exceptAdvised'] })
    .describe('prctl(PR_SET_MEMORY_MERGE, 0|1) (kernel/sys.c, v6.4; EINVAL before): ksm_enable_merge_any / ksm_disable_merge_any; or prctl(PR_SET_THP_DISABLE, 0|1, flags) (v3.15; an mm flag, MMF_DISABLE_THP, from v4.13): no THP in the process (faults, khugepaged, MADV_COLLAPSE, DAX PMDs)'),
  'proc-mem-write': obj({
    map: Name,
    page: PageIndex,
    data: Data,
    process: Name.optional().describe('the process whose memory is written (default: the one that created the mapping)'),
  }).describe('pwrite() to /proc/PID/mem as ptrace does: get_user_pages_remote(FOLL_FORCE|FOLL_WRITE), so it writes even where the mapping has no PROT_WRITE (PROT_READ, PROT_NONE) by breaking COW in a private mapping; EIO where GUP fails'),
  'remote-read': obj({
    map: Name,
    page: PageIndex,
    via: z.enum(['process_vm_readv', 'ptrace'], { error: 'via is process_vm_readv or ptrace' }).describe('process_vm_readv() (pin_user_pages_remote, EFAULT on failure) or ptrace(PTRACE_PEEKDATA) (get_user_pages_remote with FOLL_FORCE, EIO on failure)'),
    process: Name.optional().describe('the process whose memory is read (default: the one that created the mapping)'),
    expect: Data.optional(),
  }).describe('another process reads a page through GUP of the target mm (no fault in the reader)'),
  setrlimit: obj({
    memlock: Size.describe('RLIMIT_MEMLOCK, soft and hard (rounded down to pages)'),
    process: Name.optional().describe('the process (default init); a later fork inherits it'),
  }).describe('setrlimit(RLIMIT_MEMLOCK) and cap_set_proc() of an empty set (memfd_secret.c set_cap_limits()): without CAP_IPC_LOCK the limit binds MAP_LOCKED, secretmem mmap, mlock and mlockall'),
  'numa-nodes': obj({
    nodes: z.number().int().min(1).max(MAX_NUMNODES).describe('how many memory nodes the machine has (default 1); node n holds its own range of RAM'),
  }).describe("the machine's NUMA memory nodes (the firmware's SRAT, or numa=fake=N): RAM pages come from node 0 (the CPU's) unless migrated"),
  'pkey-alloc': obj({
    rights: PkeyRights.optional().describe("init_val: the key's rights in the caller's register (default none: PKEY_UNRESTRICTED)"),
    as: Name.optional().describe('a name later steps give as `pkey`'),
    returns: z.number().int().nonnegative().optional().describe('the key pkey_alloc() must return (fails the step otherwise)'),
    process: Name.optional().describe('the calling process (default init)'),
    thread: ThreadRef,
  }).describe('pkey_alloc(0, init_val) (mm/mprotect.c, ARCH_HAS_PKEYS; ENOSYS without): the lowest free key of the allocation map, ENOSPC when none is left'),
  'pkey-free': obj({
    pkey: PkeyRef,
    process: Name.optional().describe('the calling process (default init)'),
  }).describe('pkey_free(pkey): EINVAL unless the key is allocated (mm_pkey_free); VMAs keep it'),
  'pkey-set': obj({
    pkey: PkeyRef,
    rights: PkeyRights.describe('the rights to write'),
    process: Name.optional().describe('the process whose register it is (default init)'),
    thread: ThreadRef,
  }).describe("pkey_set() (glibc): the calling thread's rights register (x86 WRPKRU, powerpc AMR, arm64 POR_EL0), no syscall; EINVAL for a key the register lacks, ENOSYS without protection keys; powerpc ignores writes to key 0 and the execute-only key (UAMOR)"),
  'clone-thread': obj({
    as: Name.describe('the new thread, which later steps give as `thread`'),
    process: Name.optional().describe('the process (default init)'),
    thread: ThreadRef,
  }).describe("clone(CLONE_VM | CLONE_THREAD ...): a new thread of the process with a copy of the caller's protection-key register (its only per-thread state in the model)"),
  execute: obj({ map: Name, page: PageIndex, process: Name.optional(), thread: ThreadRef, expect: Data.optional() }).describe('an instruction fetch from a base page (code run there): SIGSEGV without PROT_EXEC, or where the key forbids execution (powerpc IAMR, arm64 POE; never x86 PKRU)'),
  signal: obj({
    stack: Name.describe("the mapping the frame goes on: the thread's stack, or its sigaltstack for an SA_ONSTACK handler"),
    page: PageIndex.optional().describe('the page of it (default 0)'),
    process: Name.optional().describe('the process (default init)'),
    thread: ThreadRef,
  }).describe('a signal with a handler delivered to the thread (setup_rt_frame()): the frame is written under the register `pkey-sigframe` says, SIGSEGV (force_sigsegv(), the process dies) when that is refused; the handler starts with the init register'),
  sigreturn: obj({
    stack: Name.describe('the mapping the frame is on (as given to signal)'),
    page: PageIndex.optional().describe('the page of it (default 0)'),
    process: Name.optional().describe('the process (default init)'),
    thread: ThreadRef,
  }).describe("rt_sigreturn() from the thread's handler: the frame is read back (SIGSEGV when the register refuses it), then the register saved in it is restored"),
  mbind: obj({
    map: Name,
    offset: Size.optional().describe('where in the mapping the range starts (page aligned; default 0)'),
    length: Size.optional().describe('how much (rounded up to pages; default: to the end of the mapping)'),
    policy: z.enum(MPOL_MODES, { error: `policy is one of ${MPOL_MODES.join(', ')}` }).describe('the mode: MPOL_DEFAULT, _PREFERRED, _BIND, _INTERLEAVE, _LOCAL, _PREFERRED_MANY in lower case'),
    nodes: z.array(NodeId).optional().describe('the nodemask (none for default and local)'),
    move: z.union([Flag, z.literal('all')], { error: "move is true (MPOL_MF_MOVE) or 'all' (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)" }).optional().describe("MPOL_MF_MOVE: migrate the range's pages that are not where the policy wants them and are not shared; 'all' adds MPOL_MF_MOVE_ALL (shared ones too; needs CAP_SYS_NICE)"),
    strict: Flag.optional().describe('MPOL_MF_STRICT: EIO when a misplaced page is not moved'),
    process: Name.optional().describe('act in this process (default: the one that created the mapping)'),
  }).describe('mbind() of a mapping or a range of it (mm/mempolicy.c do_mbind): with move, misplaced pages migrate (errors: EFAULT for a hole, EINVAL, EPERM, EIO with strict)'),
  'move-pages': obj({
    map: Name,
    page: PageIndex.describe('the first page of the mapping passed'),
    pages: PageCount.optional().describe('how many consecutive pages (default 1)'),
    node: z.union([NodeId, z.array(NodeId)], { error: 'node is a node number or one per page' }).optional().describe('the target node (one for all pages, or one per page); none: only report where each page is (do_pages_stat)'),
    all: Flag.optional().describe('MPOL_MF_MOVE_ALL (shared pages too; needs CAP_SYS_NICE)'),
    status: z.array(z.union([NodeId, z.enum(['EFAULT', 'ENOENT', 'EACCES', 'EBUSY', 'ENOMEM']), z.literal('unset')], { error: "a status is a node number, an errno (EFAULT, ENOENT, EACCES, EBUSY, ENOMEM) or 'unset'" })).optional().describe("the status array move_pages() must give: a node, an errno, or 'unset' (left unwritten)"),
    notMigrated: z.number().int().nonnegative().optional().describe('the return value move_pages() must give: the pages not migrated'),
    process: Name.optional().describe('the process whose pages move (default: the one that created the mapping)'),
  }).describe('move_pages(pid, count, pages, nodes, status, flags) (mm/migrate.c): per-page status; ENODEV for a node without memory'),
  'migrate-pages': obj({
    from: z.array(NodeId).min(1).describe('old_nodes'),
    to: z.array(NodeId).min(1).describe('new_nodes'),
    notMigrated: z.number().int().nonnegative().optional().describe('the return value migrate_pages() must give: the pages not migrated'),
    process: Name.optional().describe('the process whose pages move (default init)'),
  }).describe('migrate_pages(pid, maxnode, old_nodes, new_nodes) (mm/mempolicy.c do_migrate_pages): every page of the process on an old node moves to the matching new one'),
  'set-mempolicy': obj({
    policy: z.enum(MPOL_MODES, { error: `policy is one of ${MPOL_MODES.join(', ')}` }).describe('the mode, as for mbind'),
    nodes: z.array(NodeId).optional().describe('the nodemask (none for default and local)'),
    process: Name.optional().describe('the calling process (default init)'),
  }).describe("set_mempolicy(mode, nodemask, maxnode) (mm/mempolicy.c do_set_mempolicy()): the process's task policy, which allocations in VMAs without an mbind policy follow (EINVAL as for mbind)"),
  'uffd-api': obj({
    features: z.array(z.enum(UFFD_FEATURES, { error: `a feature is one of ${UFFD_FEATURES.join(', ')}` })).optional().describe('UFFD_FEATURE_* to enable, lower case with - for _ (PAGEFAULT_FLAG_WP: pagefault-flag-wp); default none'),
    process: Name.optional().describe('the calling process (default init)'),
  }).describe('userfaultfd() then ioctl(UFFDIO_API): the process\'s userfaultfd for the uffd-* steps that follow (EINVAL for a feature the release lacks; from v6.10 also one the arch cannot back)'),
  'uffd-register': obj({
    ...uffdRange,
    mode: z.union([z.enum(UFFD_MODES), z.array(z.enum(UFFD_MODES))], { error: `mode is one of ${UFFD_MODES.join(', ')}, or a list of them` }).transform((m) => (Array.isArray(m) ? m : [m])).describe('UFFDIO_REGISTER_MODE_MISSING / _WP (v5.7) / _MINOR (v5.13); an empty list is mode 0 (EINVAL)'),
    ioctls: z.array(z.enum(UFFD_RANGE_IOCTLS, { error: `an ioctl is one of ${UFFD_RANGE_IOCTLS.join(', ')}` })).optional().describe('uffdio_register.ioctls the registration must report, exactly (the _UFFDIO_* range ioctls, lower case)'),
  }).describe('ioctl(UFFDIO_REGISTER): faults in the range go to the userfaultfd (vma_can_userfault() per release: anonymous, shmem, hugetlb; EINVAL for fs-dax, device-dax and other file mappings)'),
  'uffd-unregister': obj(uffdRange).describe('ioctl(UFFDIO_UNREGISTER): the range leaves its userfaultfd; faults waiting there retry'),
  'uffd-copy': obj({
    ...uffdPages,
    data: Data,
    wp: Flag.optional().describe('UFFDIO_COPY_MODE_WP (v5.7): the new entries are uffd-wp, read-only'),
  }).describe('ioctl(UFFDIO_COPY): each page gets a new page holding data (anonymous; page cache in a shared shmem mapping; on hugetlb whole huge pages, EINVAL when not aligned), which wakes the faults waiting there (EEXIST where something is mapped)'),
  'uffd-zeropage': obj(uffdPages).describe('ioctl(UFFDIO_ZEROPAGE): each page maps the shared zero page read-only (a zeroed page-cache page in a shared shmem mapping); EEXIST where something is mapped, EINVAL on hugetlb'),
  'uffd-continue': obj({
    ...uffdPages,
    wp: Flag.optional().describe('UFFDIO_CONTINUE_MODE_WP (v6.4): the entries are uffd-wp, read-only (EINVAL before v6.4 and on a range not registered for WP)'),
  }).describe('ioctl(UFFDIO_CONTINUE) (v5.13): map the page the shmem or hugetlbfs page cache already holds, resolving a MINOR fault (EFAULT when it holds none, EEXIST where something is mapped, EINVAL for anonymous memory)'),
  'uffd-poison': obj(uffdPages).describe('ioctl(UFFDIO_POISON) (v6.6; EINVAL before): a PTE_MARKER_POISONED in each empty entry, so an access there is SIGBUS (EEXIST where any entry is, a marker too; EFAULT past the end of a shmem file; on hugetlb whole huge pages)'),
  'uffd-move': obj({
    map: Name.describe('the destination mapping (uffdio_move.dst): registered with the process\'s userfaultfd'),
    page: PageIndex.describe('the destination page'),
    src: Name.describe('the source mapping (uffdio_move.src), in the same process'),
    srcPage: PageIndex.optional().describe('the source page (default: `page`)'),
    pages: PageCount.optional().describe('uffdio_move.len in pages (default 1)'),
    allowSrcHoles: Flag.optional().describe('UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES: an unmapped source page counts as moved instead of ENOENT'),
    dontwake: Flag.optional().describe('UFFDIO_MOVE_MODE_DONTWAKE: the faults waiting on the destination keep sleeping (until uffd-wake)'),
    moved: z.number().int().nonnegative().optional().describe('uffdio_move.move the call must report, in bytes (a partial move is EAGAIN: expect that error instead)'),
    process: Name.optional().describe('the calling process, whose userfaultfd and address space are used (default: the one that created the destination mapping)'),
  }).describe('ioctl(UFFDIO_MOVE) (v6.8; EINVAL before): anonymous pages move from src to dst by their page tables, data and struct page kept, the rmap following them (mm/uffdmove.ts): a PMD-mapped THP moves whole when aligned, else it is split; EEXIST where dst is populated, ENOENT for an unmapped source page without allowSrcHoles, EBUSY for a page shared (not PageAnonExclusive: fork, KSM) or maybe pinned, EINVAL for shared, non-anonymous (every DAX mapping), hugetlb or unregistered VMAs; from v6.9 ENOENT where nothing is mapped'),
  'uffd-wake': obj(uffdPages).describe('ioctl(UFFDIO_WAKE): the faults sleeping on the pages after a DONTWAKE ioctl (uffd-move dontwake) filled their entries wake and retry'),
  'uffd-read': obj({
    nonblock: Flag.optional().describe('O_NONBLOCK: EAGAIN when nothing is pending, instead of sleeping until something is'),
    expect: obj({
      event: z.enum(['pagefault', 'fork', 'remap', 'remove', 'unmap'], { error: 'event is pagefault, fork, remap, remove or unmap' }),
      map: Name.optional().describe('pagefault, remap, remove, unmap: the mapping `page` counts in'),
      page: PageIndex.optional().describe('pagefault: the faulting page (of `map`); remap: where the range was (from); remove, unmap: the first page of the range'),
      pages: PageCount.optional().describe('remap: len; remove, unmap: end - start (pages)'),
      to: Name.optional().describe('remap: the mapping `toPage` counts in'),
      toPage: PageIndex.optional().describe('remap: where the range went (to)'),
      write: Flag.optional().describe('pagefault: UFFD_PAGEFAULT_FLAG_WRITE'),
      wp: Flag.optional().describe('pagefault: UFFD_PAGEFAULT_FLAG_WP (a write-protect fault)'),
      minor: Flag.optional().describe('pagefault: UFFD_PAGEFAULT_FLAG_MINOR'),
      child: Name.optional().describe('fork: the child process'),
    }).optional().describe('what the message must say'),
    process: Name.optional().describe('the process whose userfaultfd is read (default init)'),
  }).describe('read() of the userfaultfd: the oldest unread UFFD_EVENT_PAGEFAULT of a sleeping fault, then the events in order: UFFD_EVENT_FORK (reading it lets the fork return and hands over the child\'s userfaultfd), UFFD_EVENT_REMAP, _REMOVE, _UNMAP (reading one lets its mremap, madvise or munmap return)'),
  'uffd-close': obj({
    process: Name.optional().describe('the process whose userfaultfd is closed (default init)'),
  }).describe('close() of the userfaultfd (userfaultfd_release()): every range it has is unregistered and every fault waiting on it is resolved by the kernel'),
  'uffd-writeprotect': obj({
    ...uffdRange,
    enable: Flag.describe('true: UFFDIO_WRITEPROTECT_MODE_WP (write-protect, set uffd-wp); false: resolve (clear uffd-wp, wake the waiting faults)'),
  }).describe('ioctl(UFFDIO_WRITEPROTECT) (v5.7): mwriteprotect_range() on a range registered for WP (anonymous; shmem from v5.19, with PTE markers on empty entries)'),
  'pagemap-scan': obj({
    map: Name.describe('the mapping the range starts in (and pages are counted from)'),
    offset: Size.optional().describe('arg.start: where in the mapping the range starts (not page aligned: EINVAL); default 0'),
    length: Size.optional().describe('arg.end - arg.start (0 is valid; may run past the mapping; rounded up to pages); default: to the end of the mapping'),
    flags: z.union([z.array(z.enum(PM_SCAN_FLAGS, { error: `a flag is one of ${PM_SCAN_FLAGS.join(', ')}` })), z.number().int()], { error: 'flags is a list of wp-matching, check-wpasync, or a number' }).optional().describe('PM_SCAN_WP_MATCHING (wp-matching), PM_SCAN_CHECK_WPASYNC (check-wpasync), or a raw number (unknown bits: EINVAL)'),
    categoryMask: ScanMask.describe('arg.category_mask: every one of these categories (after inversion) is required'),
    anyofMask: ScanMask.describe('arg.category_anyof_mask: at least one of these is required'),
    invertedMask: ScanMask.describe('arg.category_inverted: these categories are tested inverted'),
    returnMask: ScanMask.describe('arg.return_mask: the categories the regions carry'),
    vec: Flag.optional().describe('false: arg.vec is NULL (with vecLen > 0: EINVAL)'),
    vecLen: z.number().int().nonnegative().optional().describe('arg.vec_len: how many page_region entries fit (0: none, nothing is reported); default: one per page of the range'),
    maxPages: z.number().int().nonnegative().optional().describe('arg.max_pages (0: no limit)'),
    size: z.number().int().nonnegative().optional().describe('arg.size (default sizeof(struct pm_scan_arg), 96; anything else EINVAL)'),
    returns: z.number().int().nonnegative().optional().describe('the number of regions the ioctl must return'),
    regions: z.array(obj({
      page: z.number().int().describe('first page, relative to the mapping'),
      pages: PageCount,
      categories: z.array(z.enum(PAGE_CATEGORIES, { error: `a category is one of ${PAGE_CATEGORIES.join(', ')}` })).describe('the region\'s categories (after return_mask)'),
    })).optional().describe('the page_region entries the ioctl must write, in order'),
    walkEnd: z.number().int().optional().describe('arg.walk_end the ioctl must leave, as a page of the mapping'),
    process: Name.optional().describe('whose /proc/PID/pagemap (default: the one that created the mapping)'),
  }).describe('ioctl(PAGEMAP_SCAN) on /proc/PID/pagemap (v6.7; ENOTTY before): the pages of a range whose PAGE_IS_* categories match the masks, as page_region runs; with wp-matching the matched written pages are uffd-wp protected again (mm/pagemapscan.ts)'),
  bind: obj({ device: Name }).describe('ndctl enable-namespace: bind the driver again to the physical range the device had (a disabled namespace, or a device-dax instance whose namespace was disabled); its claim revokes /dev/mem mappings of the range under io-strict-devmem from v5.8; EBUSY while kmem\'s leaked region holds it'),
  'reconfigure-namespace': obj({
    device: Name.describe('a pmem namespace: probed with driver nvdimm (fsdax), or devdax with mode: devdax or altmap: true'),
    mode: z.enum(['fsdax', 'devdax', 'raw'], { error: 'mode is fsdax, devdax or raw (ndctl create-namespace -m)' }),
    align: Size.optional().describe('-a: the new pfn / dax device\'s align (default: the driver\'s, PMD_SIZE where the arch has THP)'),
    altmap: Flag.optional().describe('-M dev (true, the default: the memmap on the device) or -M mem (false: the memmap in RAM, data at ALIGN(8 KiB, align))'),
  }).describe('ndctl create-namespace -f -e <namespace> -m <mode>: disable the namespace (mappings zapped; EBUSY when mounted or System RAM), zero its info block, set up the new personality on the same physical range (nd_pfn_init(): a new info block at 4 KiB); the media past the metadata keeps its data, at the same offset for fsdax and devdax at the same align and map (dax/namespace.ts)'),
  'nd-region': obj({
    size: Size.describe('nd_region->ndr_size: a multiple of PAGE_SIZE times the mappings'),
    id: z.number().int().nonnegative().optional().describe('the region id (default 0): its namespaces are namespace<id>.<n>'),
    mappings: z.number().int().nonnegative().optional().describe('the DIMMs interleaved in it (default 1; nfit_test.0\'s 64 MiB region has 4). 0: a label-less region (e820 memmap=, nfit_test.1): its one namespace, namespace<id>.0, spans it and is enabled raw at once'),
    align: Size.optional().describe('echo A > regionX/align (v5.7; the attribute does not exist before): align / mappings a power of two of at least PAGE_SIZE (EINVAL otherwise); default 16 MiB (MEMREMAP_COMPAT_ALIGN_MAX, times the mappings when they do not divide it)'),
    as: Name,
  }).describe('a pmem region on the nvdimm bus, enabled with zeroed labels (ndctl zero-labels; enable-region): size, available_size and max_available_extent as region_devs.c reports them (dax/nd-region.ts)'),
  'create-namespace': obj({
    region: Name.describe('an nd-region'),
    size: Size.optional().describe('-s (default: max_available_extent; a label-less region: its size, and no other)'),
    mode: z.enum(['fsdax', 'devdax', 'raw'], { error: 'mode is fsdax, devdax or raw (-m; sector mode, BTT, is not modelled)' }).optional().describe('-m (default fsdax)'),
    align: Size.optional().describe('-a: the pfn / dax device\'s align (default PMD_SIZE); the size must be a multiple of it times the mappings'),
    altmap: Flag.optional().describe('-M dev (true, the default) or -M mem'),
    as: Name.describe('the namespace the kernel configures: namespace<region id>.<n>, namespace<id>.0 when idle, else the region\'s seed (fails the step otherwise)'),
  }).describe('ndctl create-namespace -r: EAGAIN when the size exceeds max_available_extent or no namespace is idle, EINVAL off the region align or the interleave width times -a, or under 16 MiB for fsdax / devdax; the DPA comes from the first free range of each DIMM that holds it whole, and the namespace is enabled in its mode at the region\'s start plus that offset times the mappings'),
  'destroy-namespace': obj({
    device: Name.describe('a namespace of an nd-region'),
    force: Flag.optional().describe('-f: also an active (enabled) namespace'),
  }).describe('ndctl destroy-namespace: EBUSY when active without force (or mounted, or System RAM); disable, zero the info block, size 0: its DPA goes back to the region (namespace<id>.0 and the seed stay, with no capacity); a label-less namespace is only disabled'),
  'nd-list': obj({
    region: Name.describe('an nd-region'),
    size: Size.optional().describe('regionX/size'),
    available: Size.optional().describe('regionX/available_size: the free DPA of every DIMM, allocations widened to the region align (v5.7)'),
    maxExtent: Size.optional().describe('regionX/max_available_extent (v4.19): the largest free DPA range of a DIMM, trimmed to the region align (v5.7), times the mappings'),
    align: Size.optional().describe('regionX/align (v5.7)'),
  }).describe('ndctl list -R: fails the step when a given value differs'),
  reconfigure: obj({
    device: Name.describe('a device-dax instance (probe with driver devdax)'),
    mode: z.enum(['system-ram', 'devdax', 'famfs'], { error: 'mode is system-ram, devdax or famfs (daxctl reconfigure-device -m; any other is "unknown mode requested", EINVAL)' }),
    online: Flag.optional().describe('system-ram: false is -N (--no-online: leave the blocks as the kernel added them); default true: daxctl onlines every block'),
    movable: Flag.optional().describe('system-ram: false is --no-movable (online to ZONE_NORMAL); default true: online_movable'),
    force: Flag.optional().describe('-f: devdax offlines the memory first; system-ram ignores the auto-online policy check'),
    memmapOnMemory: Flag.optional().describe('system-ram: the memmap of each added block on the block itself (the device\'s memmap_on_memory attribute with memory_hotplug.memmap_on_memory=Y; v6.8+, ENOENT before); falls back to RAM where the block\'s memmap is not PMD-aligned'),
    node: NodeId.optional().describe('system-ram: the instance\'s target_node, the NUMA node its memory joins (default: the first node without boot RAM, i.e. the numa-nodes count); a node with boot RAM is refused'),
  }).describe('daxctl reconfigure-device: device-dax to System RAM (unbind device_dax, bind kmem: add_memory_driver_managed()) or back (remove_memory(), dev_dax_probe() at the same range); EBUSY when daxctl refuses (memory online, auto-online policy). famfs (feature fsdev-dax): unbind device_dax, bind fsdev_dax (fsdev_dax_probe(): MEMORY_DEVICE_FS_DAX, order-0 folios, no mmap); from system-ram daxctl refuses it (EINVAL); devdax from famfs binds device_dax again'),
  'online-memory': obj({
    device: Name,
    movable: Flag.optional().describe('false is --no-movable (online to ZONE_NORMAL); default true: online_movable'),
    onlined: z.number().int().nonnegative().optional().describe('how many memory blocks must change state (fails the step otherwise)'),
    mapping: z.number().int().nonnegative().optional().describe('only the blocks of the instance\'s mappingN range (each memoryN/state written directly, not daxctl); default every block'),
  }).describe('daxctl online-memory: write online_movable (or online) to the state of each offline memory block of a system-ram instance; ENXIO in devdax mode'),
  'offline-memory': obj({
    device: Name,
    offlined: z.number().int().nonnegative().optional().describe('how many memory blocks must change state (fails the step otherwise)'),
    mapping: z.number().int().nonnegative().optional().describe('only the blocks of the instance\'s mappingN range (each memoryN/state written directly, not daxctl); default every block'),
  }).describe('daxctl offline-memory: write offline to the state of each online memory block of a system-ram instance (offline_pages()); ENXIO in devdax mode'),
  'auto-online-blocks': obj({
    policy: z.enum(ONLINE_TYPES, { error: `policy is one of ${ONLINE_TYPES.join(', ')}` }).describe('online_kernel and online_movable from v5.7 (EINVAL before)'),
  }).describe('echo policy > /sys/devices/system/memory/auto_online_blocks: how the kernel onlines memory it hot-adds from now on (default offline)'),
  'dax-region': obj({
    size: Size,
    align: Size.optional().describe('dax_region->align, every new instance\'s align (default PMD_SIZE, as dax_hmem gives)'),
    id: z.number().int().nonnegative().optional().describe('the region id (default 0): its instances are dax<id>.<n>, instance 0 (dax<id>.0) spanning the region and enabled'),
    as: Name,
  }).describe('a dynamic device-dax region (dax_hmem of soft-reserved memory, v5.10+; unsupported before): alloc_dax_region() and instance 0 of all its space, bound to device_dax'),
  'create-device': obj({
    region: Name.describe('a dax-region'),
    size: Size.optional().describe('-s (default: all the region\'s available space)'),
    align: Size.optional().describe('-a: the instance\'s align'),
    mappings: z.array(obj({ offset: Size.describe('from the region\'s start'), size: Size })).optional().describe('--input: the ranges to claim, in page-offset order (mapping_store() each: ENXIO off the allocation granule, ENOMEM outside the region or taken); the size is set only when they add up to it'),
    as: Name.describe('the name the kernel gives it, dax<region>.<n> with n the lowest free id (fails the step otherwise)'),
  }).describe('daxctl create-device: create_store() on the region (ENOSPC when nothing is available), then the seed instance\'s align and size (dev_dax_resize(): EINVAL misaligned, ENOSPC too large) and enable-device (v5.10+)'),
  'destroy-device': obj({ device: Name }).describe('daxctl destroy-device: EBUSY while enabled; size 0 (every range back to the region), then delete_store() (EBUSY for instance 0)'),
  'resize-device': obj({ device: Name, size: Size }).describe('daxctl reconfigure-device -s: dev_dax_resize() of a disabled instance (EBUSY while enabled, EINVAL misaligned, ENOSPC): shrink from the last range, grow into the lowest free space, extending the last range in place or adding a mappingN'),
  'enable-device': obj({ device: Name }).describe('daxctl enable-device: dax_bus_probe() (ENXIO at size 0) and dev_dax_probe(): memremap_pages() of every range'),
  'disable-device': obj({ device: Name }).describe('daxctl disable-device: kill_dev_dax() and memunmap_pages() of every range'),
  'dax-list': obj({
    region: Name.optional().describe('a dax-region: check its available_size'),
    device: Name.optional().describe('an instance: check its size and mappings'),
    available: Size.optional().describe('the region\'s available_size'),
    size: Size.optional().describe('the instance\'s size'),
    mappings: z.number().int().nonnegative().optional().describe('the instance\'s number of mappingN devices (ranges)'),
    mode: z.enum(['devdax', 'system-ram', 'famfs']).optional().describe('the device\'s "mode" (daxctl/json.c): system-ram while kmem holds it, famfs while fsdev_dax is bound, else devdax; any device-dax instance, a namespace\'s too'),
  }).describe('daxctl list: fails the step when a given value differs'),
  'memory-tiers': obj({
    tiers: numberKeyed(Nodelist, 'a tier is named by its id N (memory_tierN), e.g. 4 or 22').optional().describe('every memory_tierN directory under /sys/devices/virtual/memory_tiering/ (N = abstract distance >> MEMTIER_CHUNK_BITS) and its nodelist; the tiers must be exactly these'),
    demotion: numberKeyed(z.union([z.null(), obj({ preferred: Nodelist, fallback: Nodelist })], { error: 'a node\'s demotion targets are null (none) or { preferred: <nodelist>, fallback: <nodelist> }' }), 'a demotion entry is keyed by a node number').optional().describe('per memory node, its demotion targets as dump_demotion_targets() prints them: node_demotion[].preferred and its tier\'s lower_tier_mask, or null for none'),
  }).describe('read the memory tiers (mm/memory-tiers.c, v6.1; ENOENT before): fails the step when a given value differs'),
  check: checkArgs.describe('assert state now: refcount, mapcount, pinned, mapped, anon, blockFree, vmemmap, writable, softDirty or swapped'),
} satisfies Record<OpName, z.ZodType>;

export const OP_NAMES = Object.keys(OP_ARGS) as OpName[];

/** `expect: { error: CODE }`, `expect: blocks` or `expect: { blocks: true }`. */
export const StepExpectSchema = z
  .union([
    z.literal('blocks').describe('the step must not complete in a sequential run'),
    obj({
      error: z.enum(ERRNO_NAMES as [Errno, ...Errno[]]).describe('the errno the step must fail with'),
      maySucceed: z.literal(true).optional().describe('the step may also succeed: a race whose test accepts either (hmm-tests.c anon_teardown: the read completes, or fails once the munmap won)'),
    }),
    obj({ blocks: z.literal(true) }),
  ], { error: "expected expect: { error: CODE } or expect: blocks" })
  .meta({ id: 'StepExpect', description: 'the step must fail with this errno, or must block (never complete in a sequential run)' })
  .transform((e) => (e === 'blocks' ? { blocks: true as const } : e));

// ---------------------------------------------------------------------------------------------
// kernel, expectations, scenario

/** `{ feature: value }`, one optional field per feature of FEATURES, or lists of values. */
function featureMap(list: boolean) {
  const shape: Record<string, z.ZodType> = {};
  for (const f of FEATURES) {
    const one: z.ZodType = typeof f.values[0] === 'boolean' ? z.boolean() : z.enum(f.values as unknown as [string, ...string[]]);
    shape[f.name] = (list ? z.union([one, z.array(one).min(1)]).transform((v) => (Array.isArray(v) ? v : [v])) : one).optional().describe(f.summary);
  }
  return obj(shape);
}

const KernelSchema = obj({
  arch: Name.optional().describe('x86 | arm64 | ppc-hash | s390 | a plugin arch'),
  pageSize: Size.refine((n) => isPowerOfTwo(n), { error: 'a page size is a power of two (4KiB, 16KiB, 64KiB)' }).optional().describe('for arches with a choice (arm64: 4/16/64KiB)'),
  fs: Name.optional().describe('xfs | ext4 | fuse | a plugin fs'),
  driver: Name.optional().describe('nvdimm | devdax | hmm | a plugin driver'),
  version: z.enum(PRESET_NAMES as [string, ...string[]]).optional().describe('a preset (`daxlab list kernels`)'),
  features: featureMap(false).optional().describe('feature overrides on top of the preset'),
}).describe('defaults for this scenario; CLI flags override');

function oneOrMany<T extends z.ZodType>(one: T) {
  return z.union([one, z.array(one).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]) as z.output<T>[]);
}

const WhenSchema = obj({
  arch: oneOrMany(Name).optional(),
  pageSize: oneOrMany(Size.refine((n) => isPowerOfTwo(n), { error: 'a page size is a power of two (4KiB, 16KiB, 64KiB)' })).optional().describe('PAGE_SIZE of the kernel (the arch default unless --page-size or kernel.pageSize chose one)'),
  fs: oneOrMany(Name).optional(),
  driver: oneOrMany(Name).optional(),
  version: oneOrMany(z.enum(PRESET_NAMES as [string, ...string[]])).optional(),
  features: featureMap(true).optional(),
}).meta({ id: 'When', description: 'matches when the kernel matches all of these (a list means any of)' });

/** One step as written: `{ <op>: args, expect?, when? }`, for each op. */
export const OP_STEP_SCHEMAS = Object.fromEntries(
  OP_NAMES.map((op): [OpName, z.ZodType] => [op, obj({ [op]: OP_ARGS[op], expect: StepExpectSchema.optional(), when: WhenSchema.optional().describe('run this step only on kernels that match (as in expect rules)') })]),
) as Record<OpName, z.ZodType>;

const ExpectRuleSchema = obj({
  when: WhenSchema.optional(),
  violations: z
    .union([z.literal('none'), z.array(z.enum(INVARIANT_NAMES as [InvariantName, ...InvariantName[]]))], { error: 'expected violations: none or a list of invariant names (daxlab list invariants)' })
    .optional()
    .describe('none, or exactly these invariants are broken'),
  outcome: z.enum(['completed', 'oops', 'blocked']).optional(),
  unsupported: z.literal(true).optional().describe('this combination must be refused'),
}).superRefine((r, ctx) => {
  if (r.violations === undefined && r.outcome === undefined && r.unsupported === undefined) {
    ctx.addIssue({ code: 'custom', input: r, message: 'a rule needs violations, outcome or unsupported: true (e.g. - violations: none)' });
  }
});

/**
 * The top level of a scenario file. `step` is the schema of one step: the union of all
 * operations for the JSON Schema, or a loose mapping when load.ts dispatches steps itself.
 */
export function scenarioObject<S extends z.ZodType>(step: S) {
  const Steps = z.array(step).min(1, { error: 'a thread needs at least one step' });
  return obj({
    $schema: z.string().optional().describe('the JSON Schema this file follows (for editors)'),
    name: z.string().regex(SCENARIO_NAME_PATTERN, { error: (iss) => `'${String(iss.input)}' is not kebab-case: use lower-case letters, digits and '-' (e.g. dma-vs-truncate)` }).describe('kebab-case, unique in a library'),
    description: z.string().optional(),
    mode: z.enum(['run', 'explore']).default('run').describe('run: judge one deterministic schedule; explore: judge all interleavings'),
    kernel: KernelSchema.optional(),
    setup: z.array(step).optional().describe('run to completion before the threads, never interleaved'),
    threads: z.array(obj({ name: Name, steps: Steps })).min(1).optional().describe('threads interleaved in one kernel'),
    steps: Steps.optional().describe('a single thread (named main)'),
    expect: z.array(ExpectRuleSchema).optional().describe('rules; none means violations: none and outcome: completed'),
  });
}

/** The whole file, with every operation spelled out (for the JSON Schema). */
export const ScenarioFileSchema = scenarioObject(
  z.union(OP_NAMES.map((op) => OP_STEP_SCHEMAS[op]) as [z.ZodType, z.ZodType, ...z.ZodType[]]).meta({ id: 'Step', description: 'one operation, `- <op>: { … }`, with optional expect and when' }),
);

export const SCENARIO_SCHEMA_ID = 'https://daxlab.dev/schema/scenario.json';

/** JSON Schema (draft 2020-12) of scenario files, for editors (`daxlab schema`). */
export function scenarioJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ScenarioFileSchema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  const { $schema, ...rest } = schema;
  return {
    $schema,
    $id: SCENARIO_SCHEMA_ID,
    title: 'daxlab scenario',
    description: 'A daxlab scenario: a simulated kernel, steps in one or more threads, and the expected outcome (docs/scenarios.md).',
    ...rest,
    required: ['name'],
    oneOf: [{ required: ['threads'] }, { required: ['steps'] }],
  };
}

/** Suggest the nearest of `candidates` to a misspelt `input` (edit distance), or undefined. */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  const a = input.toLowerCase();
  if (a.length >= 3) {
    const prefixed = candidates.filter((c) => c.toLowerCase().startsWith(a)).sort((x, y) => x.length - y.length);
    if (prefixed.length > 0) return prefixed[0];
  }
  const scored = candidates
    .map((c) => ({ c, d: editDistance(a, c.toLowerCase()), common: commonPrefix(a, c.toLowerCase()), diff: Math.abs(c.length - a.length) }))
    .sort((x, y) => x.d - y.d || y.common - x.common || x.diff - y.diff);
  const best = scored[0];
  return best && best.d <= Math.max(1, Math.round(a.length * 0.4)) ? best.c : undefined;
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** Edit distance with adjacent transpositions (optimal string alignment). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
