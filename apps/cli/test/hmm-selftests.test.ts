import { createKernel, formatSnapshotFlags, KernelError, Monitor, PRESETS, UnsupportedError, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { hmm, setDmirrorFlags, type HmmKind } from '@daxlab/driver-hmm';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';

// tools/testing/selftests/mm/hmm-tests.c (with lib/test_hmm.c), driven through the kernel API
// independently of the scenarios' own `when:` rules (apps/cli/scenarios/hmm): for each preset,
// the verdict the selftest prints for the case. A case is one function that makes the
// selftest's ASSERTs; the first one that does not hold is the FAIL, an operation that never
// returns is HANG, and a coherent fixture whose device cannot exist is SKIP (FIXTURE_SETUP:
// "DEVICE_COHERENT not available" when /dev/hmm_dmirror2 does not open). docs/selftests.md
// has the table these tests pin down.

const RELEASES = PRESETS.map((p) => p.name);
const PAGE = 4096;

class AssertFailed extends Error {}

/** ASSERT_*(): the selftest stops at the first assertion that does not hold. */
function check(ok: boolean, what: string): void {
  if (!ok) throw new AssertFailed(what);
}

/** ASSERT_EQ(ret, -errno) for an ioctl the test expects to fail. */
function fails(k: Kernel, op: Parameters<Kernel['run']>[0], errno: string, what: string): void {
  try {
    k.run(op);
  } catch (e) {
    if (e instanceof KernelError && e.code === errno) return;
    throw e;
  }
  throw new AssertFailed(`${what}: succeeded, expected -${errno}`);
}

/**
 * One hmm-tests.c case on one release: the mirror devices it opens (hmm fixture: one; hmm2: two,
 * of the same kind), then its body. Private devices are /dev/hmm_dmirror0 and 1, coherent ones
 * /dev/hmm_dmirror2 and 3 (test_hmm's numbering).
 */
function selftest(version: string, kinds: readonly HmmKind[], body: (k: Kernel, dev: string[]) => void): string {
  // xfs on an nvdimm only for migrate_file_private's file (a DAX mount stands in for /tmp)
  const k = createKernel({ arch: x86(), driver: hmm(), drivers: [nvdimm()], fs: xfs(), kernel: version });
  const mon = new Monitor(k);
  const names: string[] = [];
  try {
    kinds.forEach((kind, i) => {
      const name = `dmirror${(kind === 'coherent' ? 2 : 0) + i}`;
      k.run(k.probe({ driver: 'hmm', kind, size: 256 * 1024 * 1024, as: name }));
      names.push(name);
    });
  } catch (e) {
    if (e instanceof UnsupportedError) return 'SKIP';
    throw e;
  }
  try {
    body(k, names);
  } catch (e) {
    if (e instanceof AssertFailed) return `FAIL: ${e.message}`;
    // a kernel path the model refuses to run (device-private THPs): the cell is not covered
    if (e instanceof KernelError && e.unsupported !== null) return 'not modelled';
    if (e instanceof Error && /wait for page references/.test(e.message)) return 'HANG';
    throw e;
  }
  // a pass that broke one of the model's invariants on the way is not a pass
  return mon.violations.length === 0 ? 'pass' : `FAIL: ${mon.violations.map((v) => v.invariant).join(', ')}`;
}

const perRelease = (kinds: readonly HmmKind[], body: (k: Kernel, dev: string[]) => void) => RELEASES.map((v) => selftest(v, kinds, body));
const ALL_PASS = RELEASES.map(() => 'pass');
/** device-coherent memory is v6.0 (f25cbb7a95a2): the coherent fixture SKIPs on v5.4 and v5.10 */
const COHERENT = RELEASES.map((v) => (v === 'v5.4' || v === 'v5.10' ? 'SKIP' : 'pass'));

/** An anonymous private buffer of `pages` pages (PROT_READ|PROT_WRITE unless `write: false`), page i holding `${tag}${i}`. */
function buffer(k: Kernel, as: string, pages: number, opts: { write?: boolean; fill?: string } = {}): void {
  k.run(k.mmap({ anon: true, length: pages * PAGE, write: opts.write ?? true, as }));
  if (opts.fill !== undefined) for (let i = 0; i < pages; i++) k.run(k.write({ map: as, page: i, data: `${opts.fill}${i}` }));
}

const read = (k: Kernel, map: string, page: number, process?: string) => k.run(k.read({ map, page, ...(process ? { process } : {}) }));
const devRead = (k: Kernel, device: string, map: string, page: number, process?: string) => k.run(k.deviceRead({ device, map, page, ...(process ? { process } : {}) }));
/** HMM_DMIRROR_SNAPSHOT of `pages` pages of a mapping by a device, as HMM_DMIRROR_PROT_* names. */
const snapshot = (k: Kernel, device: string, map: string, pages: number, opts: { page?: number; process?: string } = {}) =>
  k.run(k.deviceSnapshot({ device, map, expect: Array<number>(pages).fill(0), ...opts })).map(formatSnapshotFlags);
const devWrite = (k: Kernel, device: string, map: string, page: number, data: string, process?: string) => k.run(k.deviceWrite({ device, map, page, data, ...(process ? { process } : {}) }));

/** TEST_F(hmm, anon_read): pages 0 (pte_none) and 1 (the zero page) read as zeroes, the rest as written. */
function anonRead(k: Kernel, [dev]: string[]): void {
  buffer(k, 'buf', 4);
  for (const i of [2, 3]) k.run(k.write({ map: 'buf', page: i, data: `i${i}` }));
  k.run(k.mprotect({ map: 'buf', write: false }));
  check(read(k, 'buf', 1) === '', 'zero page reads 0');
  for (let i = 0; i < 4; i++) check(devRead(k, dev!, 'buf', i) === (i < 2 ? '' : `i${i}`), `device read of page ${i}`);
}

/** TEST_F(hmm, anon_read_multiple): NTIMES rounds of a new buffer holding i + c, read by the device, unmapped. */
function anonReadMultiple(k: Kernel, [dev]: string[]): void {
  for (let c = 0; c < 10; c++) {
    buffer(k, `buf${c}`, 2, { fill: `r${c}p` });
    for (let i = 0; i < 2; i++) check(devRead(k, dev!, `buf${c}`, i) === `r${c}p${i}`, `round ${c}: device read of page ${i}`);
    k.run(k.munmap({ map: `buf${c}` }));
  }
}

/**
 * TEST_F(hmm, anon_read_prot): the written buffer is made PROT_NONE; HMM_DMIRROR_READ is -EFAULT
 * (hmm_vma_walk_test(): no VM_READ, fault requested) and the mirror stays unwritten; after
 * mprotect(PROT_READ) the CPU reads the data.
 */
function anonReadProt(k: Kernel, [dev]: string[]): void {
  buffer(k, 'buf', 3, { fill: 'i' });
  k.run(k.mprotect({ map: 'buf', write: false, read: false }));
  fails(k, k.deviceRead({ device: dev!, map: 'buf', page: 0 }), 'EFAULT', 'HMM_DMIRROR_READ on PROT_NONE');
  k.run(k.mprotect({ map: 'buf', write: false }));
  for (let i = 0; i < 3; i++) check(read(k, 'buf', i) === `i${i}`, `page ${i} after mprotect(PROT_READ)`);
}

/** TEST_F(hmm, mixedmap): mmap of the device file (dmirror_fops_mmap: vm_insert_page, MAP_PRIVATE), then the snapshot: READ. */
function mixedmap(k: Kernel, [dev]: string[]): void {
  k.run(k.mmap({ device: dev!, length: PAGE, write: true, as: 'buf' }));
  const got = snapshot(k, dev!, 'buf', 1);
  check(got.join() === 'READ', `snapshot [${got.join(', ')}], expected [READ]`);
}

/** TEST_F(hmm, anon_write): the device's write faults in fresh pages, the CPU reads it. */
function anonWrite(k: Kernel, [dev]: string[]): void {
  buffer(k, 'buf', 4);
  for (let i = 0; i < 4; i++) devWrite(k, dev!, 'buf', i, `w${i}`);
  for (let i = 0; i < 4; i++) check(read(k, 'buf', i) === `w${i}`, `CPU reads what the device wrote to page ${i}`);
}

/** TEST_F(hmm, anon_write_prot): -EPERM on a PROT_READ mapping, then the zero page is replaced after mprotect(RW). */
function anonWriteProt(k: Kernel, [dev]: string[]): void {
  buffer(k, 'buf', 4, { write: false });
  check(devRead(k, dev!, 'buf', 0) === '', 'device reads the zero page');
  fails(k, k.deviceWrite({ device: dev!, map: 'buf', page: 0, data: 'w0' }), 'EPERM', 'HMM_DMIRROR_WRITE on PROT_READ');
  for (let i = 0; i < 4; i++) check(read(k, 'buf', i) === '', `page ${i} still reads 0`);
  k.run(k.mprotect({ map: 'buf', write: true }));
  for (let i = 0; i < 4; i++) devWrite(k, dev!, 'buf', i, `w${i}`);
  for (let i = 0; i < 4; i++) check(read(k, 'buf', i) === `w${i}`, `page ${i} holds what the device wrote`);
}

/**
 * TEST_F(hmm, anon_write_child): the child sees the parent's values, writes through its own mirror
 * of /dev/hmm_dmirror0 (a private device even in the coherent fixture), and the parent's buffer
 * does not change. Base-page sub-runs (use_thp = 0) at 2 pages; THP sub-runs (use_thp = 1) at
 * the test's size: one PMD-aligned MADV_HUGEPAGE THP the CPU writes, [migrates], then forks.
 */
function anonWriteChild(migrate: boolean, thp = false) {
  return (k: Kernel, [dev]: string[]): void => {
    // the child's own hmm_open(0): in the coherent fixture that is a second, private, device
    const childDev = dev === 'dmirror0' ? dev : 'dmirror0';
    if (childDev !== dev) k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 1024 * 1024, as: childDev }));
    const pages = thp ? PMD : 2;
    if (thp) thpBuffer(k, 'buf');
    else buffer(k, 'buf', pages);
    for (let i = 0; i < pages; i++) k.run(k.write({ map: 'buf', page: i, data: `i${i}` }));
    if (migrate) migrateToDev(k, 'buf', pages, dev!);
    k.run(k.fork({ as: 'child' }));
    for (let i = 0; i < pages; i++) check(read(k, 'buf', i, 'child') === `i${i}`, `child sees the parent's page ${i}`);
    for (let i = 0; i < pages; i++) devWrite(k, childDev, 'buf', i, `c${i}`, 'child');
    // the test checks the child's data only without migration; the COW copy holds it either way
    for (let i = 0; i < pages; i++) check(read(k, 'buf', i, 'child') === `c${i}`, `child reads the device's write to page ${i}`);
    k.run(k.exit({ process: 'child' }));
    for (let i = 0; i < pages; i++) check(read(k, 'buf', i) === `i${i}`, `parent's page ${i} did not change`);
  };
}

/**
 * TEST_F(hmm, anon_write_child_shared): MAP_SHARED|MAP_ANONYMOUS is shmem (shmem_zero_setup);
 * fork copies no page tables for it (vma_needs_copy), the child faults the same page-cache folios
 * in, and its device write lands in them: the parent sees it (no COW).
 */
function anonWriteChildShared(k: Kernel, [dev]: string[]): void {
  const childDev = dev === 'dmirror0' ? dev : 'dmirror0';
  if (childDev !== dev) k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 1024 * 1024, as: childDev }));
  k.run(k.mmap({ anon: true, shared: true, length: 2 * PAGE, write: true, as: 'buf' }));
  for (let i = 0; i < 2; i++) k.run(k.write({ map: 'buf', page: i, data: `i${i}` }));
  k.run(k.fork({ as: 'child' }));
  for (let i = 0; i < 2; i++) check(read(k, 'buf', i, 'child') === `i${i}`, `child sees the parent's page ${i}`);
  for (let i = 0; i < 2; i++) devWrite(k, childDev, 'buf', i, `c${i}`, 'child');
  for (let i = 0; i < 2; i++) check(read(k, 'buf', i, 'child') === `c${i}`, `child reads the device's write to page ${i}`);
  const pfn = k.pfnOf({ map: 'buf', page: 0 })!;
  check(k.pfnOf({ map: 'buf', page: 0, process: 'child' }) === pfn, 'parent and child map the same page-cache folio');
  k.run(k.exit({ process: 'child' }));
  for (let i = 0; i < 2; i++) check(read(k, 'buf', i) === `c${i}`, `parent's page ${i} changed`);
}

/**
 * TEST_F(hmm, migrate_shared): migrating a MAP_SHARED|MAP_ANONYMOUS buffer is -ENOENT (holes of a
 * file VMA are not collected; page-cache folios are not moved to device memory).
 */
function migrateShared(k: Kernel, [dev]: string[]): void {
  k.run(k.mmap({ anon: true, shared: true, length: 4 * PAGE, write: true, as: 'buf' }));
  fails(k, k.migrate({ map: 'buf', page: 0, pages: 4, to: dev! }), 'ENOENT', 'migrate_shared');
}

/**
 * TEST_F(hmm, file_read) with /tmp on tmpfs: hmm_create_file()'s O_TMPFILE is a shmem file;
 * pwrite() fills its page cache (here through a mapping unmapped again), the device reads a
 * PROT_READ MAP_SHARED mapping of it (read faults map the cache folios).
 */
function fileRead(k: Kernel, [dev]: string[]): void {
  k.run(k.memfdCreate({ file: 'tmpfile', size: 2 * PAGE }));
  k.run(k.mmap({ file: 'tmpfile', length: 2 * PAGE, shared: true, write: true, as: 'pwrite' }));
  for (let i = 0; i < 2; i++) k.run(k.write({ map: 'pwrite', page: i, data: `i${i}` }));
  k.run(k.munmap({ map: 'pwrite' }));
  k.run(k.mmap({ file: 'tmpfile', length: 2 * PAGE, shared: true, as: 'buf' }));
  for (let i = 0; i < 2; i++) check(devRead(k, dev!, 'buf', i) === `i${i}`, `device reads the file's page ${i}`);
}

/** TEST_F(hmm, file_write) with /tmp on tmpfs: the device's write lands in the page cache, which pread() reads. */
function fileWrite(k: Kernel, [dev]: string[]): void {
  k.run(k.memfdCreate({ file: 'tmpfile', size: 2 * PAGE }));
  k.run(k.mmap({ file: 'tmpfile', length: 2 * PAGE, shared: true, write: true, as: 'buf' }));
  for (let i = 0; i < 2; i++) devWrite(k, dev!, 'buf', i, `i${i}`);
  for (let i = 0; i < 2; i++) check(read(k, 'buf', i) === `i${i}`, `CPU reads the device's write to page ${i}`);
  k.run(k.mmap({ file: 'tmpfile', length: 2 * PAGE, shared: true, as: 'pread' }));
  for (let i = 0; i < 2; i++) check(read(k, 'pread', i) === `i${i}`, `the file holds the device's write to page ${i}`);
}

/** TEST_F(hmm, migrate_multiple): NTIMES rounds of migrate to the device and back (CPU fault, or MIGRATE_TO_SYS for coherent). */
function migrateMultiple(k: Kernel, [dev]: string[]): void {
  const coherent = dev !== 'dmirror0';
  for (let c = 0; c < 10; c++) {
    buffer(k, `buf${c}`, 2, { fill: `r${c}p` });
    k.run(k.migrate({ map: `buf${c}`, page: 0, pages: 2, to: dev! }));
    check(devRead(k, dev!, `buf${c}`, 1) === `r${c}p1`, `round ${c}: the device read`);
    if (coherent) k.run(k.migrate({ map: `buf${c}`, page: 0, pages: 2, to: 'ram' }));
    for (let i = 0; i < 2; i++) check(read(k, `buf${c}`, i) === `r${c}p${i}`, `round ${c}: page ${i} back in system memory`);
    k.run(k.munmap({ map: `buf${c}` }));
  }
}

/** TEST_F(hmm2, double_map): two devices read a R/O buffer; device 1 takes it; device 0 reads it again. */
function doubleMap(k: Kernel, [dev0, dev1]: string[]): void {
  buffer(k, 'buf', 3, { fill: 'i' });
  k.run(k.mprotect({ map: 'buf', write: false }));
  for (const d of [dev0!, dev1!]) for (let i = 0; i < 3; i++) check(devRead(k, d, 'buf', i) === `i${i}`, `${d} reads page ${i}`);
  k.run(k.migrate({ map: 'buf', page: 0, pages: 3, to: dev1! }));
  for (let i = 0; i < 3; i++) check(devRead(k, dev0!, 'buf', i) === `i${i}`, `${dev0} reads page ${i} after the migration to ${dev1}`);
}

/** hmm2.migrate_mixed and hmm2.snapshot: "Reserve a range of addresses" PROT_NONE; page 0 stays so. */
function protNonePage(k: Kernel): void {
  buffer(k, 'page0', 1, { write: false });
  k.run(k.mprotect({ map: 'page0', write: false, read: false }));
}

/**
 * hmm2.migrate_mixed and hmm2.snapshot: "Page 2 will be a read-only zero page" (PROT_READ, read)
 * and "Page 3 will be read-only" (written, then PROT_READ), each its own VMA.
 */
function zeroAndReadOnlyPages(k: Kernel): void {
  buffer(k, 'page2', 1, { write: false });
  check(read(k, 'page2', 0) === '', 'page 2 is the zero page');
  buffer(k, 'page3', 1);
  k.run(k.write({ map: 'page3', page: 0, data: '3' }));
  k.run(k.mprotect({ map: 'page3', write: false }));
}

/** TEST_F(hmm2, migrate_mixed) from "Page 2 will be a read-only zero page" on: one VMA per mprotect()ed piece. */
function migrateMixed(k: Kernel, [dev0, dev1]: string[]): void {
  protNonePage(k);
  // "Migrating a protected area" and, after the hole, "the vma doesn't cover the range": both
  // start in page 0's VMA, without VM_READ: dmirror_migrate_to_device() returns -EINVAL there
  fails(k, k.migrate({ map: 'page0', page: 0, to: dev1! }), 'EINVAL', 'migrating the PROT_NONE range');
  zeroAndReadOnlyPages(k);
  buffer(k, 'pages45', 2);
  for (const i of [0, 1]) k.run(k.write({ map: 'pages45', page: i, data: '3' }));
  // dmirror_migrate_to_device() walks the range VMA by VMA; its read-back needs all four on dev1
  k.run(k.migrate({ map: 'page2', page: 0, to: dev1! }));
  k.run(k.migrate({ map: 'page3', page: 0, to: dev1! }));
  k.run(k.migrate({ map: 'pages45', page: 0, pages: 2, to: dev1! }));
  fails(k, k.migrate({ map: 'pages45', page: 1, to: dev0! }), 'ENOENT', "page 5 to device 0 while it is on device 1");
}

/** TEST_F(hmm, migrate_fault): migrate, CPU reads half, migrate all again: cpages == npages. */
function migrateFault(k: Kernel, [dev]: string[]): void {
  buffer(k, 'buf', 4, { fill: 'i' });
  k.run(k.migrate({ map: 'buf', page: 0, pages: 4, to: dev! }));
  for (let i = 0; i < 2; i++) check(read(k, 'buf', i) === `i${i}`, `CPU reads page ${i}`);
  k.run(k.migrate({ map: 'buf', page: 0, pages: 4, to: dev! }));
  for (let i = 0; i < 4; i++) check(devRead(k, dev!, 'buf', i) === `i${i}`, `device reads page ${i}`);
}

/** TEST_F(hmm, migrate): after MIGRATE_TO_DEV the device reads every page from its own memory. */
function migrate(k: Kernel, [dev]: string[]): void {
  buffer(k, 'buf', 4, { fill: 'i' });
  k.run(k.migrate({ map: 'buf', page: 0, pages: 4, to: dev! }));
  for (let i = 0; i < 4; i++) check(k.deviceOfPfn(k.pfnOf({ map: 'buf', page: i })!)?.name === dev, `page ${i} is in ${dev}'s memory`);
  for (let i = 0; i < 4; i++) check(devRead(k, dev!, 'buf', i) === `i${i}`, `device reads page ${i}`);
}

/** TEST_F(hmm, migrate_file_private): a private file mapping's COW copies migrate (the file on a DAX mount). */
function migrateFilePrivate(k: Kernel, [dev]: string[]): void {
  k.run(k.probe({ driver: 'nvdimm', size: 1024 * 1024 * 1024, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0' }));
  k.run(k.create({ file: 'f', size: 2 * PAGE }));
  k.run(k.mmap({ file: 'f', length: 2 * PAGE, write: true, as: 'buf' }));
  for (let i = 0; i < 2; i++) k.run(k.write({ map: 'buf', page: i, data: `i${i}` }));
  k.run(k.migrate({ map: 'buf', page: 0, pages: 2, to: dev! }));
  for (let i = 0; i < 2; i++) check(devRead(k, dev!, 'buf', i) === `i${i}`, `device reads page ${i}`);
}

/**
 * TEST_F(hmm, hmm_gup_test): GUP_BASIC_TEST, GUP_FAST_BENCHMARK, PIN_FAST_BENCHMARK with
 * FOLL_LONGTERM and PIN_LONGTERM_BENCHMARK on pages 0-3 (each released inside its ioctl), then
 * the snapshot: private pages all back in system memory (PROT_WRITE); coherent pages 0-1 still
 * on the device (DEV_COHERENT_LOCAL|WRITE), 2-3 moved by the longterm pins (PROT_WRITE).
 */
function gupTest(k: Kernel, [dev]: string[]): void {
  const coherent = dev !== 'dmirror0';
  buffer(k, 'buf', 4, { fill: 'i' });
  k.run(k.migrate({ map: 'buf', page: 0, pages: 4, to: dev! }));
  const gups = [{ write: true }, { write: true, fast: true }, { write: true, longterm: true, fast: true }, { write: true, longterm: true }];
  gups.forEach((g, i) => {
    const pin = i >= 2;
    k.run(k.gup({ map: 'buf', page: i, as: `g${i}`, ...g }, pin));
    k.run(pin ? k.unpin({ name: `g${i}` }) : k.put({ name: `g${i}` }));
  });
  const want = coherent ? ['DEV_COHERENT_LOCAL|WRITE', 'DEV_COHERENT_LOCAL|WRITE', 'WRITE', 'WRITE'] : ['WRITE', 'WRITE', 'WRITE', 'WRITE'];
  const got = snapshot(k, dev!, 'buf', 4);
  check(got.join() === want.join(), `snapshot [${got.join(', ')}], expected [${want.join(', ')}]`);
  for (let i = 0; i < 4; i++) check(read(k, 'buf', i) === `i${i}`, `page ${i} not corrupted`);
}

/** TEST_F(hmm, hmm_cow_in_device): fork, the parent writes every page, the child is killed; the snapshot shows system pages, writable. */
function cowInDevice(k: Kernel, [dev]: string[]): void {
  buffer(k, 'buf', 4, { fill: 'i' });
  k.run(k.migrate({ map: 'buf', page: 0, pages: 4, to: dev! }));
  k.run(k.fork({ as: 'child' }));
  for (let i = 0; i < 4; i++) k.run(k.write({ map: 'buf', page: i, data: `i${i}` }));
  k.run(k.exit({ process: 'child' }));
  const got = snapshot(k, dev!, 'buf', 4);
  check(got.every((m) => m === 'WRITE'), `snapshot [${got.join(', ')}], expected WRITE for every page`);
}

/**
 * TEST_F(hmm2, snapshot), one mapping per VMA: the PROT_NONE page 0 and the hole are ERROR, the read zero page ZERO|READ, the written-then-PROT_READ page
 * READ, the written page WRITE, device 0's page DEV_*_LOCAL|WRITE; device 1's page is NONE when
 * device-private (another owner's entry, not faulted) and DEV_COHERENT_REMOTE|WRITE when coherent.
 */
function snapshotTest(k: Kernel, [dev0, dev1]: string[]): void {
  const coherent = dev0 !== 'dmirror0';
  protNonePage(k);
  buffer(k, 'page1', 1, { write: false });
  k.run(k.munmap({ map: 'page1' }));
  zeroAndReadOnlyPages(k);
  buffer(k, 'pages456', 3);
  k.run(k.write({ map: 'pages456', page: 0, data: '3' }));
  k.run(k.migrate({ map: 'pages456', page: 1, to: dev0! }));
  k.run(k.migrate({ map: 'pages456', page: 2, to: dev1! }));
  const got = [...snapshot(k, dev0!, 'page0', 1), ...snapshot(k, dev0!, 'page1', 1), ...snapshot(k, dev0!, 'page2', 1), ...snapshot(k, dev0!, 'page3', 1), ...snapshot(k, dev0!, 'pages456', 3)];
  const want = ['ERROR', 'ERROR', 'ZERO|READ', 'READ', 'WRITE', ...(coherent ? ['DEV_COHERENT_LOCAL|WRITE', 'DEV_COHERENT_REMOTE|WRITE'] : ['DEV_PRIVATE_LOCAL|WRITE', 'NONE'])];
  check(got.join() === want.join(), `snapshot of pages 0-6 [${got.join(', ')}], expected [${want.join(', ')}]`);
}

/**
 * The test's TWOMEG and offsets[] = { 0, 512 * ONEKB, ONEMEG } in 4 KiB pages, scaled by 1/8 (64
 * pages, offsets 0, 16, 32) to keep the runs short: with use_thp = 0 nothing depends on the size
 * (the model's rmap walk, which every fault home does, grows with the number of mapped pages)
 */
const TWOMEG = 64;

/**
 * TEST_F(hmm, migrate_partial_unmap_fault): for each offset (0, size / 4, size / 2), a 2 * size
 * buffer (map = ALIGN(ptr, size) is its start here; use_thp = 1: MADV_HUGEPAGE on it, so the
 * writes fault one THP in; use_thp = 0: MADV_NOHUGEPAGE, nothing to do in the model), size written
 * and migrated, size / 2 at the offset unmapped (split_vma, zap of the device entries), then every
 * other page read back (faulted home from a device-private page). use_thp = 0 runs at TWOMEG
 * (scaled), use_thp = 1 at the test's size (one PMD).
 */
function migratePartialUnmapFault(thp: boolean) {
  return (k: Kernel, [dev]: string[]): void => {
    const size = thp ? PMD : TWOMEG;
    [0, size / 4, size / 2].forEach((off, j) => {
      if (thp) thpBuffer(k, `buf${j}`);
      else buffer(k, `buf${j}`, 2 * size);
      for (let i = 0; i < size; i++) k.run(k.write({ map: `buf${j}`, page: i, data: `${j}:${i}` }));
      migrateToDev(k, `buf${j}`, size, dev!);
      for (const i of [0, size - 1]) check(devRead(k, dev!, `buf${j}`, i) === `${j}:${i}`, `offset ${off}: the device read page ${i}`);
      k.run(k.munmap({ map: `buf${j}`, offset: off * PAGE, length: (size / 2) * PAGE }));
      for (let i = 0; i < size; i++) if (i < off || i >= off + size / 2) check(read(k, `buf${j}`, i) === `${j}:${i}`, `offset ${off}: page ${i} after the munmap`);
      k.run(k.munmap({ map: `buf${j}` }));
    });
  };
}

/**
 * TEST_F(hmm, migrate_remap_fault): before/after the migration, without and with
 * MREMAP_DONTUNMAP, each offset (0, size / 4, size / 2): an 8 * size reservation (use_thp = 1:
 * MADV_HUGEPAGE on its first PMD) with 2 * size unmapped after the buffer, the buffer written and
 * mremap(MREMAP_MAYMOVE | MREMAP_FIXED)'d into that hole at size + offset, then every page read at
 * the new address. A refused mremap() is the ASSERT_NE(MAP_FAILED), a failed migration the
 * ASSERT_EQ(ret, 0). use_thp = 0 runs at TWOMEG (scaled), use_thp = 1 at the test's size.
 */
function migrateRemapFault(thp: boolean) {
  return (k: Kernel, [dev]: string[]): void => {
    const size = thp ? PMD : TWOMEG;
    let run = 0;
    for (const before of [false, true]) {
      for (const dontUnmap of [false, true]) {
        for (const off of [0, size / 4, size / 2]) {
          const [res, moved] = [`res${run}`, `new${run}`];
          if (thp) thpBuffer(k, res, 8 * size);
          else buffer(k, res, 8 * size);
          k.run(k.munmap({ map: res, offset: size * PAGE, length: 2 * size * PAGE }));
          for (let i = 0; i < size; i++) k.run(k.write({ map: res, page: i, data: `${run}:${i}` }));
          const remap = (): void => {
            try {
              k.run(k.mremap({ map: res, length: size * PAGE, to: res, toOffset: (size + off) * PAGE, ...(dontUnmap ? { dontUnmap } : {}), as: moved }));
            } catch (e) {
              if (e instanceof KernelError) throw new AssertFailed(`mremap(${dontUnmap ? 'MREMAP_DONTUNMAP' : 'MREMAP_FIXED'}): ${e.code}`);
              throw e;
            }
          };
          if (before) remap();
          try {
            migrateToDev(k, before ? moved : res, size, dev!);
          } catch (e) {
            if (e instanceof AssertFailed) throw new AssertFailed(`run ${run} (before ${Number(before)}, dont_unmap ${Number(dontUnmap)}, offset ${off}): ${e.message}`);
            throw e;
          }
          if (!before) remap();
          for (let i = 0; i < size; i++) check(read(k, moved, i) === `${run}:${i}`, `run ${run}: page ${i} at the new address`);
          k.run(k.munmap({ map: moved }));
          k.run(k.munmap({ map: res }));
          run++;
        }
      }
    }
  };
}

/** TEST_F(hmm, migrate_release): HMM_DMIRROR_RELEASE with the pages on the device, then the CPU reads them. */
function migrateRelease(k: Kernel, [dev]: string[]): void {
  buffer(k, 'buf', 2, { fill: 'i' });
  k.run(k.migrate({ map: 'buf', page: 0, pages: 2, to: dev! }));
  k.run(k.unbind({ device: dev! }));
  for (let i = 0; i < 2; i++) check(read(k, 'buf', i) === `i${i}`, `page ${i} after the release`);
}
/** read_pmd_pagesize() on x86 with 4 KiB pages, in pages: HPAGE_PMD_NR. The THP sub-runs keep the test's sizes. */
const PMD = 512;

/**
 * The THP sub-runs' buffer: mmap(2 * size) (or `reserve` pages), MADV_HUGEPAGE on map =
 * ALIGN(ptr, size) for size. The model places a mapping of a PMD or more PMD-aligned, so map is
 * the buffer's start: page 0, and the VMA splits at page PMD.
 */
function thpBuffer(k: Kernel, as: string, reserve = 2 * PMD): void {
  k.run(k.mmap({ anon: true, length: reserve * PAGE, write: true, as }));
  k.run(k.madvise({ map: as, advice: 'hugepage', offset: 0, length: PMD * PAGE }));
}

/** hmm_migrate_sys_to_dev(): ASSERT_EQ(ret, 0) — an errno (-ENOENT: a page did not migrate) fails the test. */
function migrateToDev(k: Kernel, map: string, pages: number, dev: string): void {
  try {
    k.run(k.migrate({ map, page: 0, pages, to: dev }));
  } catch (e) {
    if (e instanceof KernelError && e.unsupported === null) throw new AssertFailed(`HMM_DMIRROR_MIGRATE_TO_DEV: -${e.code}`);
    throw e;
  }
}

/**
 * TEST_F(hmm, anon_write_huge): the device writes a MADV_HUGEPAGE range nobody touched:
 * hmm_range_fault()'s write fault maps a THP (do_huge_pmd_anonymous_page), which the CPU reads.
 */
function anonWriteHuge(k: Kernel, [dev]: string[]): void {
  thpBuffer(k, 'buf');
  for (let i = 0; i < PMD; i++) devWrite(k, dev!, 'buf', i, `i${i}`);
  for (let i = 0; i < PMD; i++) check(read(k, 'buf', i) === `i${i}`, `CPU reads what the device wrote to page ${i}`);
}

/**
 * TEST_F(hmm, migrate_anon_huge_empty / _zero / _free): a PMD-aligned MADV_HUGEPAGE buffer,
 * PROT_READ and never touched (empty), PROT_READ with one read (the huge zero page), or written
 * (a THP, then MADV_FREE after the migration); the migration gets every page (cpages == npages),
 * the device reads zeroes or the data, and for _zero the CPU reads the zeroes back.
 */
function migrateAnonHuge(kind: 'empty' | 'zero' | 'free') {
  return (k: Kernel, [dev]: string[]): void => {
    k.run(k.mmap({ anon: true, length: 2 * PMD * PAGE, write: kind === 'free', as: 'buf' }));
    k.run(k.madvise({ map: 'buf', advice: 'hugepage', offset: 0, length: PMD * PAGE }));
    if (kind === 'zero') check(read(k, 'buf', 0) === '', 'the huge zero page reads 0');
    if (kind === 'free') for (let i = 0; i < PMD; i++) k.run(k.write({ map: 'buf', page: i, data: `i${i}` }));
    migrateToDev(k, 'buf', PMD, dev!);
    for (let i = 0; i < PMD; i++) check(devRead(k, dev!, 'buf', i) === (kind === 'free' ? `i${i}` : ''), `the device read page ${i}`);
    if (kind === 'zero') for (let i = 0; i < PMD; i++) check(read(k, 'buf', i) === '', `page ${i} faults back as zeroes`);
    if (kind === 'free') k.run(k.madvise({ map: 'buf', advice: 'free', offset: 0, length: PMD * PAGE }));
  };
}

/**
 * TEST_F(hmm, migrate_anon_huge_fault): a 2 * size buffer without MADV_HUGEPAGE, its first PMD
 * written, MADV_COLLAPSE (ASSERT_EQ(ret, 0)), HMM_DMIRROR_MIGRATE_TO_DEV, the device read; then,
 * for a device-private fixture only, HMM_DMIRROR_SNAPSHOT (every page DEV_PRIVATE_LOCAL | WRITE |
 * PMD) and pagemap (PM_SWAP, not present) of every page; then the CPU reads each page back.
 */
function migrateAnonHugeFault(k: Kernel, [dev]: string[]): void {
  k.run(k.mmap({ anon: true, length: 2 * PMD * PAGE, write: true, as: 'buf' }));
  for (let i = 0; i < PMD; i++) k.run(k.write({ map: 'buf', page: i, data: `i${i}` }));
  try {
    k.run(k.madvise({ map: 'buf', advice: 'collapse', offset: 0, length: PMD * PAGE }));
  } catch (e) {
    if (e instanceof KernelError && e.unsupported === null) throw new AssertFailed(`MADV_COLLAPSE: ${e.code}`);
    throw e;
  }
  migrateToDev(k, 'buf', PMD, dev!);
  for (let i = 0; i < PMD; i++) check(devRead(k, dev!, 'buf', i) === `i${i}`, `the device read page ${i}`);
  if (dev === 'dmirror0') {
    const want = 'DEV_PRIVATE_LOCAL|WRITE|PMD';
    const got = snapshot(k, dev, 'buf', PMD);
    got.forEach((m, i) => check(m === want, `snapshot of page ${i}: ${m}, expected ${want}`));
    for (let i = 0; i < PMD; i++) check(k.isSwappedIn({ map: 'buf', page: i }) && !k.isMappedIn({ map: 'buf', page: i }), `pagemap of page ${i}: PM_SWAP, not present`);
  }
  for (let i = 0; i < PMD; i++) check(read(k, 'buf', i) === `i${i}`, `page ${i} faulted back`);
}

/** HMM_DMIRROR_FLAGS with HMM_DMIRROR_FLAG_FAIL_ALLOC: ASSERT_EQ(ret, 0); -EINVAL where test_hmm has no such ioctl. */
function failNextAlloc(k: Kernel, dev: string): void {
  try {
    setDmirrorFlags(k, dev, { failAlloc: true });
  } catch (e) {
    if (e instanceof KernelError) throw new AssertFailed(`HMM_DMIRROR_FLAGS: ${e.code}`);
    throw e;
  }
}

/** hmm_migrate_dev_to_sys(): HMM_DMIRROR_MIGRATE_TO_SYS, ASSERT_EQ(ret, 0). */
function migrateToSys(k: Kernel, map: string, pages: number): void {
  try {
    k.run(k.migrate({ map, page: 0, pages, to: 'ram' }));
  } catch (e) {
    if (e instanceof KernelError && e.unsupported === null) throw new AssertFailed(`HMM_DMIRROR_MIGRATE_TO_SYS: -${e.code}`);
    throw e;
  }
}

/**
 * TEST_F(hmm, migrate_anon_huge_err): a written MADV_HUGEPAGE THP migrated to the device with the
 * next allocation failing (test_hmm falls back to base device pages, migrate_vma_pages() splits
 * the THP), the device read and the CPU's read of ptr[2048] (page 2); then, on a fresh buffer,
 * the THP migrated whole and brought back by HMM_DMIRROR_MIGRATE_TO_SYS with the allocation of
 * the system THP failing (base system pages, the device folio split), and ptr[2048] read.
 */
function migrateAnonHugeErr(k: Kernel, [dev]: string[]): void {
  for (const round of [0, 1]) {
    const map = `buf${round}`;
    thpBuffer(k, map);
    for (let i = 0; i < PMD; i++) k.run(k.write({ map, page: i, data: `${round}:${i}` }));
    if (round === 0) failNextAlloc(k, dev!);
    migrateToDev(k, map, PMD, dev!);
    for (let i = 0; i < PMD; i++) check(devRead(k, dev!, map, i) === `${round}:${i}`, `round ${round}: the device read page ${i}`);
    if (round === 1) {
      failNextAlloc(k, dev!);
      migrateToSys(k, map, PMD);
    }
    check(read(k, map, 2) === `${round}:2`, `round ${round}: ptr[2048] faulted back`);
    k.run(k.munmap({ map }));
  }
}

/**
 * TEST_F(hmm, migrate_anon_huge_zero_err): a PROT_READ MADV_HUGEPAGE PMD migrated with the next
 * allocation failing, first empty (the compound hole filled page by page), then holding the huge
 * zero page (split by the first page's migrate_vma_insert_page()); the device reads zeroes and
 * the CPU reads ptr[2048], then every page, back as zeroes.
 */
function migrateAnonHugeZeroErr(k: Kernel, [dev]: string[]): void {
  for (const round of [0, 1]) {
    const map = `buf${round}`;
    k.run(k.mmap({ anon: true, length: 2 * PMD * PAGE, as: map }));
    k.run(k.madvise({ map, advice: 'hugepage', offset: 0, length: PMD * PAGE }));
    if (round === 1) check(read(k, map, 0) === '', 'the huge zero page reads 0');
    failNextAlloc(k, dev!);
    migrateToDev(k, map, PMD, dev!);
    if (round === 0) {
      for (let i = 0; i < PMD; i++) check(devRead(k, dev!, map, i) === '', `the device read page ${i}`);
      check(read(k, map, 2) === '', 'ptr[2048] faulted back as 0');
    } else for (let i = 0; i < PMD; i++) check(read(k, map, i) === '', `page ${i} faulted back as 0`);
    k.run(k.munmap({ map }));
  }
}

/** HMM_BUFFER_SIZE (4 MiB) in 4 KiB pages: the exclusive cases run at the test's size. */
const HMM_BUFFER_PAGES = 1024;

/**
 * HMM_DMIRROR_EXCLUSIVE of `pages` pages with ASSERT_EQ(ret, 0), ASSERT_EQ(cpages, npages) and
 * "Check what the device read": the ioctl's read-back must be page i's `i${i}`. On a kernel
 * without make_device_exclusive() (before v5.14) the ioctl is unknown: -EINVAL.
 */
function exclusiveIoctl(k: Kernel, dev: string, map: string, pages: number): void {
  let got: readonly string[];
  try {
    got = k.run(k.deviceExclusive({ device: dev, map, pages }));
  } catch (e) {
    if (e instanceof KernelError) throw new AssertFailed(`HMM_DMIRROR_EXCLUSIVE: ${e.code}`);
    throw e;
  }
  check(got.length === pages, `cpages ${got.length}, expected ${pages}`);
  got.forEach((d, i) => check(d === `i${i}`, `the device read '${d}' from page ${i}`));
}

/** HMM_DMIRROR_CHECK_EXCLUSIVE: 0, or -EPERM while the device maps a page of the buffer atomically. */
function checkExclusive(k: Kernel, dev: string, map: string): number {
  try {
    k.run(k.deviceCheckExclusive({ device: dev, map }));
    return 0;
  } catch (e) {
    if (e instanceof KernelError && e.code === 'EPERM') return -1;
    throw e;
  }
}

/** The CPU loop of exclusive and exclusive_cow: ASSERT_EQ(ptr[i]++, i), then ptr[i] == i + 1. */
function incrementAll(k: Kernel, map: string, pages: number, process?: string): void {
  for (let i = 0; i < pages; i++) {
    check(read(k, map, i, process) === `i${i}`, `${process ?? 'parent'}: page ${i} before the increment`);
    k.run(k.write({ map, page: i, data: `i${i}+1`, ...(process ? { process } : {}) }));
  }
  for (let i = 0; i < pages; i++) check(read(k, map, i, process) === `i${i}+1`, `${process ?? 'parent'}: page ${i} after the increment`);
}

/**
 * TEST_F(hmm, exclusive): make_device_exclusive() of the whole buffer, the CPU faults every page
 * back (remove_device_exclusive_entry: the notifier erases the atomic entry, the PTE comes back
 * writable), and CHECK_EXCLUSIVE finds no atomic entry left.
 */
function exclusive(k: Kernel, [dev]: string[]): void {
  buffer(k, 'buf', HMM_BUFFER_PAGES, { fill: 'i' });
  exclusiveIoctl(k, dev!, 'buf', HMM_BUFFER_PAGES);
  incrementAll(k, 'buf', HMM_BUFFER_PAGES);
  check(checkExclusive(k, dev!, 'buf') === 0, 'CHECK_EXCLUSIVE: atomic access not revoked');
}

/** TEST_F(hmm, exclusive_mprotect): after mprotect(PROT_READ) the device's write is -EPERM (hmm_vma_fault: no VM_WRITE). */
function exclusiveMprotect(k: Kernel, [dev]: string[]): void {
  buffer(k, 'buf', HMM_BUFFER_PAGES, { fill: 'i' });
  exclusiveIoctl(k, dev!, 'buf', HMM_BUFFER_PAGES);
  k.run(k.mprotect({ map: 'buf', write: false }));
  // dmirror_write() stops at the first page that fails
  fails(k, k.deviceWrite({ device: dev!, map: 'buf', page: 0, data: 'w0' }), 'EPERM', 'HMM_DMIRROR_WRITE after mprotect(PROT_READ)');
}

/**
 * TEST_F(hmm, exclusive_cow): fork() restores the parent's entries (copy_nonpresent_pte ->
 * try_restore_exclusive_pte) and shares them; the child and the parent each increment every page.
 */
function exclusiveCow(k: Kernel, [dev]: string[]): void {
  buffer(k, 'buf', HMM_BUFFER_PAGES, { fill: 'i' });
  exclusiveIoctl(k, dev!, 'buf', HMM_BUFFER_PAGES);
  k.run(k.fork({ as: 'child' }));
  incrementAll(k, 'buf', HMM_BUFFER_PAGES, 'child');
  incrementAll(k, 'buf', HMM_BUFFER_PAGES);
  k.run(k.exit({ process: 'child' }));
}

describe('hmm-tests.c verdicts per release (releases v5.4 v5.10 v6.1 v6.3 v6.6 v6.15 latest)', () => {
  it('the presets are the releases these tables are written for', () => {
    expect(RELEASES).toEqual(['v5.4', 'v5.10', 'v6.1', 'v6.3', 'v6.6', 'v6.15', 'latest']);
  });

  /**
   * The cases whose verdict is pass on every release in the device-private fixture, and pass
   * from v6.0 (SKIP before) in the device-coherent one: [case, how many devices (hmm: 1, hmm2:
   * 2), the selftest]. Why each passes is the comment above it.
   */
  const EVERY_RELEASE: readonly [string, 1 | 2, (k: Kernel, dev: string[]) => void][] = [
    // the device reads and writes system memory through hmm_range_fault(): its own memory
    // plays no part, and read faults map the zero page, write faults fresh anon pages
    ['anon_read', 1, anonRead],
    ['anon_read_multiple (ten rounds)', 1, anonReadMultiple],
    // PROT_NONE: hmm_vma_walk_test() refuses a VMA without VM_READ when a fault is requested
    ['anon_read_prot', 1, anonReadProt],
    ['anon_write', 1, anonWrite],
    // hmm_vma_fault() refuses a write fault on a VMA without VM_WRITE (-EPERM); after
    // mprotect(RW) the zero page (not anon: never upgraded by can_change_pte_writable) is
    // write-faulted and replaced
    ['anon_write_prot', 1, anonWriteProt],
    // without migration nothing is in device memory; fork write-protects the anon pages and
    // the child's device write copies them (mapcount 2 before v5.9, page_count 2 to v5.18,
    // !PageAnonExclusive after: a copy in every era)
    ['anon_write_child without migration', 1, anonWriteChild(false)],
    // private: copy_nonpresent_pte shares the device page read-only; the child's CPU read moves
    // it home for both (rmap walk), the device write copies it. coherent: present anon pages,
    // the child's write through dmirror0 copies the coherent page into a system page
    ['anon_write_child with migration', 1, anonWriteChild(true)],
    ['migrate', 1, migrate],
    // shmem: a file VMA, so nothing is collected or moved: -ENOENT from the read-back
    ['migrate_shared', 1, migrateShared],
    // shmem again: no page tables copied at fork, no COW; the device write is seen by the parent
    ['anon_write_child_shared', 1, anonWriteChildShared],
    // /tmp on tmpfs: the O_TMPFILE is shmem; the device faults its page-cache folios in
    ['file_read', 1, fileRead],
    ['file_write', 1, fileWrite],
    // the COW copies of a private file mapping are anonymous pages (the file on a DAX mount)
    ['migrate_file_private', 1, migrateFilePrivate],
    // coherent: CPU reads do not fault, so the second migration finds every page on the device
    ['migrate_fault', 1, migrateFault],
    ['migrate_multiple (ten rounds)', 1, migrateMultiple],
    // a range starting in a VMA without VM_READ is -EINVAL (dmirror_migrate_to_device());
    // MIGRATE_VMA_SELECT_SYSTEM never selects a device page: page 5, on device 1, stays there
    ['migrate_mixed', 2, migrateMixed],
    // private: device 0's hmm_range_fault() faults device 1's private entries home
    // (do_swap_page -> migrate_to_ram); coherent: present pages, read in place
    ['double_map', 2, doubleMap],
    // GUP faults a device-private entry home whatever the flags; a device-coherent page is taken
    // where it is unless FOLL_LONGTERM, which migrates it first (folio_is_longterm_pinnable()
    // is false: check_and_migrate_movable_pages)
    ['hmm_gup_test', 1, gupTest],
    // private: the parent's write faults the shared device page home, then copies it; coherent:
    // wp_page_copy copies straight out of device memory. The parent ends on system pages.
    ['hmm_cow_in_device', 1, cowInDevice],
    // hmm_range_fault() without a fault request: a hole or a VMA without VM_READ is ERROR,
    // pte_none NONE; the owner's device-private entry is reported, another owner's left 0;
    // coherent pages are present, so both devices see them (LOCAL / REMOTE)
    ['snapshot', 2, snapshotTest],
    // vm_insert_page() maps the driver's zeroed system page with the private mapping's
    // read-only vm_page_prot, in a normal PTE: a present page without a kind, READ
    ['mixedmap', 1, mixedmap],
  ];
  for (const [name, devices, body] of EVERY_RELEASE) {
    it(`${name}: private on every release, coherent from v6.0`, () => {
      expect(perRelease(Array<HmmKind>(devices).fill('private'), body)).toEqual(ALL_PASS);
      expect(perRelease(Array<HmmKind>(devices).fill('coherent'), body)).toEqual(COHERENT);
    });
  }

  it('migrate_multiple leaves the device pages idle at the era\'s free count: 1 before v5.18 (27674ef6c73f), 0 from v6.1 (ef233450898f)', () => {
    for (const v of RELEASES) {
      const k = createKernel({ arch: x86(), driver: hmm(), kernel: v });
      const d = k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 1024 * 1024, as: 'dmirror0' }));
      migrateMultiple(k, ['dmirror0']);
      const idle = v === 'v5.4' || v === 'v5.10' ? 1 : 0;
      // every round took pages 0 and 1 off the free list and page_free put them back
      expect([k.refcount(d.dataPfn), k.refcount(d.dataPfn + 1), k.mapcount(d.dataPfn)]).toEqual([idle, idle, 0]);
    }
  });

  it('double_map, private: device 1\'s pages are back in system memory, read-only, after device 0 read them', () => {
    const k = createKernel({ arch: x86(), driver: hmm(), kernel: 'latest' });
    const d1 = (['dmirror0', 'dmirror1'] as const).map((as) => k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 1024 * 1024, as })))[1]!;
    doubleMap(k, ['dmirror0', 'dmirror1']);
    expect(k.folios.kind(k.pfnOf({ map: 'buf', page: 1 })!)).toBe('ram');
    expect(k.isWritableIn({ map: 'buf', page: 1 })).toBe(false);
    expect(k.refcount(d1.dataPfn + 1)).toBe(0);
  });

  // TEST_F(hmm, compound) snapshots a hugetlb page (not modelled); a device-dax PMD mapping is
  // the same leaf for hmm_range_fault(): hmm_vma_handle_pmd() reports the PMD order, which
  // dmirror_mkentry() turns into PMD, for every base page of the leaf. The order was added to
  // hmm_range_fault() for v5.9 ("mm/hmm: provide the page mapping order in hmm_range_fault()"),
  // so v5.4 reports the same pages without it.
  it('compound, on a device-dax PMD: WRITE|PMD, then READ|PMD after mprotect(PROT_READ); no PMD flag before v5.9', () => {
    const pmdPages = (2 * 1024 * 1024) / PAGE;
    const seen = RELEASES.map((v) => {
      const k = createKernel({ arch: x86(), driver: hmm(), drivers: [devdax()], kernel: v });
      k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 1024 * 1024, as: 'dmirror0' }));
      k.run(k.probe({ driver: 'devdax', size: 1024 * 1024 * 1024, align: 2 * 1024 * 1024, as: 'dax0' }));
      // two PMDs' worth; only the first is faulted in (by the write to page 0)
      k.run(k.mmap({ device: 'dax0', length: 2 * pmdPages * PAGE, shared: true, write: true, as: 'm' }));
      k.run(k.write({ map: 'm', page: 0, data: 'x' }));
      const rw = snapshot(k, 'dmirror0', 'm', 2 * pmdPages);
      k.run(k.mprotect({ map: 'm', write: false }));
      const ro = snapshot(k, 'dmirror0', 'm', 2 * pmdPages);
      const uniform = (m: string[], from: number) => (m.slice(from, from + pmdPages).every((x) => x === m[from]) ? m[from] : 'mixed');
      return [uniform(rw, 0), uniform(rw, pmdPages), uniform(ro, 0), uniform(ro, pmdPages)].join(' ');
    });
    expect(seen).toEqual(RELEASES.map((v) => (v === 'v5.4' ? 'WRITE NONE READ NONE' : 'WRITE|PMD NONE READ|PMD NONE')));
  });

  // hmm_vma_handle_pte() hands out a PTE without a normal page only if it is devmap or the zero
  // page ("Bypass devmap pte such as DAX page"); from v6.15 fs-dax pages are normal pages with no
  // devmap bit. Either way a snapshot of a DAX file mapping reports each PTE's permission and no
  // ERROR: the shared mapping's written page WRITE, its read page READ (write-notify keeps it
  // read-only until the first write), the private mapping's read page READ (the file page) and
  // its written page WRITE (the COW copy), untouched pages NONE.
  it('snapshot of fs-dax mappings: devmap (before v6.15) or normal (after) PTEs are reported, never ERROR', () => {
    const seen = RELEASES.map((v) => {
      const k = createKernel({ arch: x86(), driver: hmm(), drivers: [nvdimm()], fs: xfs(), kernel: v });
      k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 1024 * 1024, as: 'dmirror0' }));
      k.run(k.probe({ driver: 'nvdimm', size: 1024 * 1024 * 1024, as: 'pmem0' }));
      k.run(k.mount({ device: 'pmem0' }));
      k.run(k.create({ file: 'f', size: 3 * PAGE }));
      k.run(k.mmap({ file: 'f', length: 3 * PAGE, shared: true, write: true, as: 'shared' }));
      k.run(k.mmap({ file: 'f', length: 3 * PAGE, write: true, as: 'private' }));
      k.run(k.write({ map: 'shared', page: 0, data: 'x' }));
      read(k, 'shared', 1);
      read(k, 'private', 0);
      k.run(k.write({ map: 'private', page: 1, data: 'y' }));
      return [...snapshot(k, 'dmirror0', 'shared', 3), ...snapshot(k, 'dmirror0', 'private', 3)].join(' ');
    });
    expect(seen).toEqual(RELEASES.map(() => 'WRITE READ NONE READ WRITE NONE'));
  });

  // HMM_DMIRROR_RELEASE came with migrate_device_range() (v6.1). Before, removal could not
  // reach the mapped pages and memunmap_pages() waits for their references: what the same
  // operations do on v5.4/v5.10 is a hang (with the extra reference, after a page_free of a
  // mapped page, which the model reports as a violation before the wait).
  it('migrate_release: passes from v6.1; on v5.4 and v5.10 the same operations hang in memunmap_pages()', () => {
    expect(perRelease(['private'], migrateRelease)).toEqual(['HANG', 'HANG', 'pass', 'pass', 'pass', 'pass', 'pass']);
    expect(perRelease(['coherent'], migrateRelease)).toEqual(COHERENT);
  });

  // split_vma() at the unmapped range's ends and zap_pte_range() of the device entries inside
  // (device-private: rmap and reference dropped at once, page_free); the kept pages fault home
  it('migrate_partial_unmap_fault (use_thp = 0): private on every release, coherent from v6.0', () => {
    expect(perRelease(['private'], migratePartialUnmapFault(false))).toEqual(ALL_PASS);
    expect(perRelease(['coherent'], migratePartialUnmapFault(false))).toEqual(COHERENT);
  });

  // move_ptes() moves system PTEs and device-private entries alike; the fault at the new address
  // finds the device page through the moved entry. MREMAP_DONTUNMAP is v5.7 (e346b3813067): on
  // v5.4 the flag is unknown and the first DONTUNMAP run's mremap() fails
  it('migrate_remap_fault (use_thp = 0): pass from v5.10; v5.4 has no MREMAP_DONTUNMAP', () => {
    expect(perRelease(['private'], migrateRemapFault(false))).toEqual(['FAIL: mremap(MREMAP_DONTUNMAP): EINVAL', ...ALL_PASS.slice(1)]);
    expect(perRelease(['coherent'], migrateRemapFault(false))).toEqual(COHERENT);
  });

  // The THP sub-runs (use_thp = 1), at the test's sizes (one 2 MiB THP: 512 pages). A device
  // write through hmm_range_fault() faults like the CPU: do_huge_pmd_anonymous_page() maps the
  // THP by a PMD in every release; fork shares it (copy_huge_pmd) and the child's device write
  // COWs it: the whole THP copied up to v5.7 (do_huge_pmd_wp_page), the PMD split and each page
  // copied from v5.8 (3917c80280c9). Either way the parent's THP keeps its data.
  it('anon_write_huge and anon_write_child (use_thp = 1, migrate = 0): private on every release, coherent from v6.0', () => {
    for (const body of [anonWriteHuge, anonWriteChild(false, true)]) {
      expect(perRelease(['private'], body)).toEqual(ALL_PASS);
      expect(perRelease(['coherent'], body)).toEqual(COHERENT);
    }
  });

  // Migration of a PMD-mapped THP: migrate_vma_collect_pmd() splits the folio (split_folio())
  // and the base pages migrate as in the use_thp = 0 runs, up to v6.15. The newest kernels
  // (latest) move it whole to a device THP (MIGRATE_VMA_SELECT_COMPOUND, 2025): fork shares the
  // device-private PMD (copy_huge_pmd) and the child's read brings the folio home whole
  // (do_huge_pmd_device_private); the munmap of half of it splits the device-private PMD and the
  // first kept page's fault splits the device folio (migrate_vma_split_folio). Either way the
  // selftest's ASSERTs hold: it was written with the series, for kernels that have it.
  it('anon_write_child (use_thp = 1, migrate = 1) and migrate_partial_unmap_fault (use_thp = 1): pass on every release (split first up to v6.15, a device THP on latest)', () => {
    for (const body of [anonWriteChild(true, true), migratePartialUnmapFault(true)]) {
      expect(perRelease(['private'], body)).toEqual(ALL_PASS);
      expect(perRelease(['coherent'], body)).toEqual(COHERENT);
    }
  });

  // The cases that came with the device-private THP series, on the releases before it: an empty
  // PMD migrates as 512 holes (device pages mapped read-only: the VMA has no VM_WRITE), the huge
  // zero PMD is split into zero-page PTEs first (split_huge_pmd()) and migrates as holes, a THP is
  // split and migrated, and MADV_FREE leaves the device-private entries alone. The newest kernels
  // make each one device THP behind one PMD (migrate_vma_collect_hole / _collect_huge_pmd with
  // MIGRATE_VMA_SELECT_COMPOUND, migrate_vma_insert_huge_pmd_page), which a CPU fault brings home
  // whole and MADV_FREE leaves alone (madvise_free_huge_pmd(): !pmd_present, "goto out").
  it('migrate_anon_huge_empty, _zero and _free: pass on every release (holes, the split zero PMD, the split THP up to v6.15; device THPs on latest)', () => {
    for (const kind of ['empty', 'zero', 'free'] as const) {
      expect(perRelease(['private'], migrateAnonHuge(kind))).toEqual(ALL_PASS);
      expect(perRelease(['coherent'], migrateAnonHuge(kind))).toEqual(COHERENT);
    }
  });

  // migrate_anon_huge_fault: MADV_COLLAPSE (v6.1, 7d8faaf15545) makes the written buffer one THP;
  // the migration must leave it one device THP: the private fixture's snapshot wants
  // DEV_PRIVATE_LOCAL|WRITE|PMD for every page and pagemap PM_SWAP. v5.4 and v5.10 have no
  // MADV_COLLAPSE (-EINVAL, the first ASSERT); v6.1-v6.15 split the THP and migrate 512 base
  // pages, so the snapshot has no PMD flag and the private fixture FAILs there; the coherent
  // fixture skips the snapshot and reads the data back: pass wherever it exists.
  it('migrate_anon_huge_fault: FAIL without MADV_COLLAPSE (v5.4, v5.10) or without device THPs (v6.1-v6.15, no PMD in the snapshot); pass on latest; coherent from v6.1', () => {
    const noCollapse = 'FAIL: MADV_COLLAPSE: EINVAL';
    const noPmd = 'FAIL: snapshot of page 0: DEV_PRIVATE_LOCAL|WRITE, expected DEV_PRIVATE_LOCAL|WRITE|PMD';
    expect(perRelease(['private'], migrateAnonHugeFault)).toEqual(RELEASES.map((v) => (v === 'v5.4' || v === 'v5.10' ? noCollapse : v === 'latest' ? 'pass' : noPmd)));
    expect(perRelease(['coherent'], migrateAnonHugeFault)).toEqual(COHERENT);
  });

  // HMM_DMIRROR_FLAGS (HMM_DMIRROR_FLAG_FAIL_ALLOC) came with the series: older test_hmm answers
  // an unknown ioctl with -EINVAL, the first ASSERT. On latest the failed huge allocations fall
  // back to base pages and migrate_vma_pages() splits the source (migrate_vma_split_unmapped_folio)
  // or fills the hole page by page; every ASSERT holds. A coherent device's THP is present memory
  // the CPU reads in place, and MIGRATE_TO_SYS leaves a coherent PMD where it is (the collect of a
  // present PMD wants MIGRATE_VMA_SELECT_SYSTEM): pass too
  it('migrate_anon_huge_err and _zero_err: FAIL (no HMM_DMIRROR_FLAGS) before latest; pass on latest', () => {
    const noFlags = 'FAIL: HMM_DMIRROR_FLAGS: EINVAL';
    for (const body of [migrateAnonHugeErr, migrateAnonHugeZeroErr]) {
      expect(perRelease(['private'], body)).toEqual(RELEASES.map((v) => (v === 'latest' ? 'pass' : noFlags)));
      expect(perRelease(['coherent'], body)).toEqual(COHERENT.map((c, i) => (c === 'pass' && RELEASES[i] !== 'latest' ? noFlags : c)));
    }
  });

  // mremap() before the migration to an address that is not PMD-aligned splits the PMD
  // (move_page_tables -> split_huge_pmd) and leaves a PTE-mapped THP, which
  // migrate_vma_collect_pmd() does not collect before the 2025 series ("FIXME support THP":
  // PageTransCompound): the pages stay in RAM and test_hmm's read-back is -ENOENT. The moves to
  // offset 0 keep the PMD whole; after the migration only base device pages are moved.
  // latest: migrate_vma_split_folio() splits the PTE-mapped THP during the walk (the series'
  // "handle partially mapped folios during collection"), so every run migrates; after the
  // migration a device THP moved to an unaligned address has its PMD split into device-private
  // PTEs, each of which faults its page home (dmirror_devmem_fault: order 0 when vmf->pte)
  it('migrate_remap_fault (use_thp = 1): FAILs v5.10-v6.15 at the first unaligned move before migration; v5.4 no MREMAP_DONTUNMAP; pass on latest', () => {
    const unaligned = 'FAIL: run 7 (before 1, dont_unmap 0, offset 128): HMM_DMIRROR_MIGRATE_TO_DEV: -ENOENT';
    const latest = (cells: string[]) => cells.map((c, i) => (RELEASES[i] === 'latest' ? 'pass' : c));
    expect(perRelease(['private'], migrateRemapFault(true))).toEqual(latest(['FAIL: mremap(MREMAP_DONTUNMAP): EINVAL', ...RELEASES.slice(1).map(() => unaligned)]));
    expect(perRelease(['coherent'], migrateRemapFault(true))).toEqual(latest(COHERENT.map((c) => (c === 'pass' ? unaligned : c))));
  });

  // HMM_DMIRROR_EXCLUSIVE / CHECK_EXCLUSIVE came with make_device_exclusive() (v5.14 [M]): on
  // v5.4 and v5.10 the first ioctl is -EINVAL, the ASSERT_EQ(ret, 0) fails. From v6.1 each case
  // passes: the device's memory plays no part (the pages stay in system memory), so the coherent
  // fixture passes wherever it exists
  const EXCLUSIVE_VERDICTS = RELEASES.map((v) => (v === 'v5.4' || v === 'v5.10' ? 'FAIL: HMM_DMIRROR_EXCLUSIVE: EINVAL' : 'pass'));
  for (const [name, body] of [['exclusive', exclusive], ['exclusive_mprotect', exclusiveMprotect], ['exclusive_cow', exclusiveCow]] as const) {
    it(`${name}: FAIL (no HMM_DMIRROR_EXCLUSIVE) on v5.4 and v5.10, pass from v6.1; coherent from v6.0`, () => {
      expect(perRelease(['private'], body)).toEqual(EXCLUSIVE_VERDICTS);
      expect(perRelease(['coherent'], body)).toEqual(COHERENT);
    });
  }
});
