import { describe, expect, it } from 'vitest';
import { createKernel, Monitor, PRESETS, type Kernel } from '../src/index.js';
import { isDiscard, refuseSealedUnmap } from '../src/mm/mseal.js';
import { testArch } from '../src/testing.js';
import { code, written } from './vm-helpers.js';

// mseal(2) (mm/mseal.ts). The expectations are those of tools/testing/selftests/mm/mseal_test.c
// (its get_vma_size() reads /proc/self/maps: vmaPagesIn here) and of mm/mseal.c, mm/vma.c,
// mm/mprotect.c, mm/mremap.c and mm/madvise.c as read (the comments say which function).

const PAGE = 4096;
const RELEASES = PRESETS.map((p) => p.name);

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/** setup_single_address(): `pages` pages of private anonymous PROT_READ memory */
const ro = (k: Kernel, as: string, pages: number) => k.run(k.mmap({ anon: true, length: pages * PAGE, as }));
const seal = (k: Kernel, map: string, page = 0, pages?: number) => k.run(k.mseal({ map, offset: page * PAGE, ...(pages !== undefined ? { length: pages * PAGE } : {}) }));
const size = (k: Kernel, map: string, page: number) => k.vmaPagesIn({ map, page });
const sealed = (k: Kernel, map: string, page: number) => k.isSealedIn({ map, page });
const mprotect = (k: Kernel, map: string, page: number, pages: number, write: boolean, read = true) => k.run(k.mprotect({ map, offset: page * PAGE, length: pages * PAGE, write, read }));
const munmap = (k: Kernel, map: string, page: number, pages: number) => k.run(k.munmap({ map, offset: page * PAGE, length: pages * PAGE }));

describe('mseal() per release (8be7258aad44, v6.10)', () => {
  it('is ENOSYS in the presets before v6.10 and seals in v6.15 and latest (seal_support())', () => {
    const table = Object.fromEntries(RELEASES.map((v) => {
      const k = kernel(v);
      ro(k, 'p', 1);
      return [v, code(() => seal(k, 'p')) ?? 'ok'];
    }));
    expect(table).toEqual({ 'v5.4': 'ENOSYS', 'v5.10': 'ENOSYS', 'v6.1': 'ENOSYS', 'v6.3': 'ENOSYS', 'v6.6': 'ENOSYS', 'v6.15': 'ok', latest: 'ok' });
  });

  it('is_madv_discard(): v6.10 OR-ed the MADV_* values (31) and so took nearly every advice; v6.11 lists six; v6.13 adds MADV_GUARD_INSTALL', () => {
    // MADV_RANDOM is 1 and MADV_HUGEPAGE 14: both share bits with 31; MADV_NORMAL (0) does not
    expect([isDiscard('v6.10', 'random'), isDiscard('v6.10', 'hugepage'), isDiscard('v6.10', 'normal')]).toEqual([true, true, false]);
    expect([isDiscard('v6.11', 'random'), isDiscard('v6.11', 'dontneed'), isDiscard('v6.11', 'wipeonfork'), isDiscard('v6.11', 'cold')]).toEqual([false, true, true, false]);
    expect([isDiscard('v6.12', 'guard-install'), isDiscard('v6.13', 'guard-install'), isDiscard('latest', 'guard-remove')]).toEqual([false, true, false]);
  });
});

describe('do_mseal() (mseal_test.c, latest)', () => {
  it('test_seal_invalid_input: flags 0x20, an unaligned start, a length past the mapping, an overflowing length, a start before the mapping all fail', () => {
    const k = kernel();
    ro(k, 'p', 8);
    munmap(k, 'p', 4, 4); // 4 mapped pages, then a hole
    expect(code(() => k.run(k.mseal({ map: 'p', length: 4 * PAGE, flags: 0x20 })))).toBe('EINVAL');
    expect(code(() => k.run(k.mseal({ map: 'p', offset: 1, length: 2 * PAGE })))).toBe('EINVAL');
    expect(code(() => seal(k, 'p', 0, 5))).toBe('ENOMEM');
    // UINT64_MAX / page_size bytes: no wrap from a 1 TiB start (2^40 + 2^52 < 2^64), just unmapped memory
    expect(code(() => k.run(k.mseal({ map: 'p', length: Math.floor((2 ** 64 - 1) / PAGE) })))).toBe('ENOMEM');
    expect(code(() => k.run(k.mseal({ map: 'p', offset: -PAGE, length: 5 * PAGE })))).toBe('ENOMEM');
    // none of the failures sealed anything (check_mm_seal() runs before any VMA changes)
    expect([0, 1, 2, 3].map((p) => sealed(k, 'p', p))).toEqual([false, false, false, false]);
  });

  it('test_seal_zero_length / test_seal_twice / test_seal_mprotect_unalign_len: len 0 is a no-op, a second seal is fine, len is rounded up', () => {
    const k = kernel();
    ro(k, 'p', 4);
    k.run(k.mseal({ map: 'p', length: 0 }));
    mprotect(k, 'p', 0, 4, true); // not sealed by the empty call
    ro(k, 'q', 4);
    seal(k, 'q');
    seal(k, 'q');
    // 2 pages - 1 byte rounds up to 2 pages: the VMA splits into a sealed [0, 2) and a plain [2, 4)
    ro(k, 'r', 4);
    k.run(k.mseal({ map: 'r', length: 2 * PAGE - 1 }));
    expect([sealed(k, 'r', 1), sealed(k, 'r', 2), size(k, 'r', 0), size(k, 'r', 2)]).toEqual([true, false, 2, 2]);
    expect(code(() => mprotect(k, 'r', 0, 2, true))).toBe('EPERM');
    mprotect(k, 'r', 2, 1, true);
  });

  it('test_seal_merge_and_split: sealed pieces split off and merge back with sealed neighbours (vma_modify_flags())', () => {
    const k = kernel();
    ro(k, 'p', 24);
    mprotect(k, 'p', 0, 1, false, false); // (1 NONE) (22 RO) (1 NONE)
    mprotect(k, 'p', 23, 1, false, false);
    expect(size(k, 'p', 1)).toBe(22);
    seal(k, 'p', 1, 1); // (1 NONE) (1 RO_SEAL) (21 RO) (1 NONE)
    expect([size(k, 'p', 1), size(k, 'p', 2)]).toEqual([1, 21]);
    seal(k, 'p', 22, 1); // ... (20 RO) (1 RO_SEAL) (1 NONE)
    expect([size(k, 'p', 22), size(k, 'p', 2)]).toEqual([1, 20]);
    seal(k, 'p', 2, 1); // merge with prev: (2 RO_SEAL)
    expect(size(k, 'p', 1)).toBe(2);
    seal(k, 'p', 21, 1); // merge with next: (2 RO_SEAL)
    expect(size(k, 'p', 21)).toBe(2);
    seal(k, 'p', 2, 2); // split and merge from prev: (3 RO_SEAL) (17 RO)
    expect(size(k, 'p', 1)).toBe(3);
    expect(code(() => munmap(k, 'p', 1, 1))).toBe('EPERM');
    expect(code(() => mprotect(k, 'p', 2, 1, false, false))).toBe('EPERM');
    seal(k, 'p', 20, 2); // split and merge from next: (3 RO_SEAL) at 20
    expect(size(k, 'p', 20)).toBe(3);
    seal(k, 'p', 2, 20); // everything between the NONE pages: one sealed VMA of 22
    expect(size(k, 'p', 1)).toBe(22);
  });
});

describe('what a seal refuses (latest: the per-VMA checks of v6.12)', () => {
  it('munmap is EPERM and never partial: the pages stay mapped with their data; v6.12+ keeps the split of an unsealed first VMA, v6.10 refused before it', () => {
    const k = kernel();
    const m = new Monitor(k);
    const pfns = written(k, 'p', 12);
    seal(k, 'p', 4, 4);
    // test_seal_munmap_partial_across_vmas (the 12-page version): 4 + 4 sealed + 4, nothing goes
    expect(code(() => munmap(k, 'p', 0, 12))).toBe('EPERM');
    expect([size(k, 'p', 0), size(k, 'p', 4), size(k, 'p', 8)]).toEqual([4, 4, 4]);
    expect(pfns.map((_, i) => k.pfnOf({ map: 'p', page: i }))).toEqual(pfns);
    expect(pfns.map((pfn) => k.refcount(pfn))).toEqual(pfns.map(() => 1));
    // from page 2: vms_gather_munmap_vmas() splits [0, 4) at 2 before it meets the sealed VMA
    expect(code(() => munmap(k, 'p', 2, 10))).toBe('EPERM');
    expect([size(k, 'p', 0), size(k, 'p', 2), size(k, 'p', 4)]).toEqual([2, 2, 4]);
    expect(k.run(k.read({ map: 'p', page: 2 }))).toBe('p2');
    // v6.10-v6.11: can_modify_mm() before anything: no split (a kernel object reading v6.10)
    const old = kernel();
    written(old, 'p', 12);
    seal(old, 'p', 4, 4);
    const mm = old.process(undefined);
    const start = mm.ranges.get('p')!.start;
    expect(code(() => refuseSealedUnmap({ ...old, version: 'v6.10' } as unknown as Kernel, mm, start + 2, start + 12, 'munmap'))).toBe('EPERM');
    expect(size(old, 'p', 0)).toBe(4);
    expect(m.violations).toEqual([]);
  });

  it('test_munmap_start_freed / middle_freed: a munmap over a hole and a sealed VMA is EPERM and leaves the sealed VMA whole', () => {
    const k = kernel();
    ro(k, 'p', 4);
    munmap(k, 'p', 0, 1);
    seal(k, 'p', 1, 3);
    expect(code(() => munmap(k, 'p', 0, 4))).toBe('EPERM');
    expect(size(k, 'p', 1)).toBe(3);
    ro(k, 'q', 4);
    munmap(k, 'q', 1, 2);
    seal(k, 'q', 0, 1);
    expect(code(() => munmap(k, 'q', 0, 4))).toBe('EPERM');
    expect([size(k, 'q', 0), size(k, 'q', 3)]).toEqual([1, 1]);
  });

  it('mprotect: EPERM on a sealed VMA even when nothing would change; the VMAs before it keep their change (mprotect_fixup(), v6.12)', () => {
    const k = kernel();
    ro(k, 'p', 2);
    seal(k, 'p', 1, 1);
    expect(code(() => mprotect(k, 'p', 1, 1, false))).toBe('EPERM'); // PROT_READ again: no change, still refused
    // test_seal_mprotect_partial_mprotect_tail: the sealed page keeps PROT_READ; the first page
    // was changed before the walk reached it (undefined for the selftest, what v6.12+ does)
    expect(code(() => mprotect(k, 'p', 0, 2, true))).toBe('EPERM');
    const vma = (page: number) => k.vm.vmaAt(k.process(undefined), k.process(undefined).ranges.get('p')!.start + page)!;
    expect([vma(0).flags.write, vma(1).flags.write, vma(1).flags.sealed]).toEqual([true, false, true]);
  });

  it('seal_elf.c: a read-only MAP_PRIVATE file mapping may become writable (VM_MAYWRITE) and COW its page; sealed, mprotect is EPERM and the copy stays', () => {
    const k = kernel();
    k.run(k.tmpfile({ file: 'bin', fs: 'ext4', size: 3 * PAGE }));
    k.run(k.mmap({ file: 'bin', length: 3 * PAGE, shared: true, write: true, as: 'cp' }));
    k.run(k.write({ map: 'cp', page: 1, data: 'READONLY' }));
    k.run(k.mmap({ file: 'bin', length: 3 * PAGE, as: 'rodata' }));
    // do_mmap() removes VM_MAYWRITE only from a shared mapping of a file not open for writing
    mprotect(k, 'rodata', 1, 1, true);
    k.run(k.write({ map: 'rodata', page: 1, data: 'AEADONLY' }));
    mprotect(k, 'rodata', 1, 1, false);
    seal(k, 'rodata');
    expect([sealed(k, 'rodata', 0), sealed(k, 'rodata', 1), sealed(k, 'rodata', 2)]).toEqual([true, true, true]);
    expect(code(() => mprotect(k, 'rodata', 1, 1, true))).toBe('EPERM');
    // the store was a COW fault: the process keeps its copy, the file its bytes
    expect([k.run(k.read({ map: 'rodata', page: 1 })), k.run(k.read({ map: 'cp', page: 1 }))]).toEqual(['AEADONLY', 'READONLY']);
  });

  it('madvise: a discarding advice on sealed read-only anonymous memory is EPERM; writable, shared and file-backed (MAP_PRIVATE too) memory, and MADV_RANDOM, are fine', () => {
    const k = kernel();
    ro(k, 'ro', 4);
    seal(k, 'ro');
    expect(['dontneed', 'dontneed-locked', 'free', 'dontfork', 'wipeonfork', 'guard-install'].map((advice) => code(() => k.run(k.madvise({ map: 'ro', advice: advice as 'dontneed' }))))).toEqual(['EPERM', 'EPERM', 'EPERM', 'EPERM', 'EPERM', 'EPERM']);
    // test_seal_madvise_nodiscard: MADV_RANDOM only sets VM_RAND_READ; MADV_COLD is not a discard either
    k.run(k.madvise({ map: 'ro', advice: 'random' }));
    k.run(k.madvise({ map: 'ro', advice: 'cold' }));
    const rw = written(k, 'rw', 4);
    seal(k, 'rw');
    k.run(k.madvise({ map: 'rw', advice: 'dontneed' })); // test_seal_discard_ro_anon_on_rw: zapped
    expect(k.isMappedIn({ map: 'rw', page: 0 })).toBe(false);
    expect(k.ram.live.has(rw[0]!)).toBe(false);
    k.run(k.mmap({ anon: true, shared: true, length: 4 * PAGE, as: 'shm' }));
    seal(k, 'shm');
    k.run(k.madvise({ map: 'shm', advice: 'dontneed' }));
    k.run(k.memfdCreate({ file: 'fd', size: 4 * PAGE }));
    k.run(k.mmap({ file: 'fd', length: 4 * PAGE, as: 'priv' }));
    seal(k, 'priv');
    k.run(k.madvise({ map: 'priv', advice: 'dontneed' })); // test_seal_discard_ro_anon_on_filebacked
    expect(['ro', 'rw', 'shm', 'priv'].map((m) => code(() => k.run(k.munmap({ map: m }))))).toEqual(['EPERM', 'EPERM', 'EPERM', 'EPERM']);
  });

  it('test_seal_discard_across_vmas: the unsealed VMA before the sealed one is zapped first, then EPERM (madvise_vma_behavior(), v6.12)', () => {
    const k = kernel();
    ro(k, 'p', 2);
    k.run(k.read({ map: 'p', page: 0 })); // the zero page, mapped
    seal(k, 'p', 1, 1);
    expect(code(() => k.run(k.madvise({ map: 'p', advice: 'dontneed' })))).toBe('EPERM');
    expect(k.isMappedIn({ map: 'p', page: 0 })).toBe(false);
  });

  it('mremap: shrink, expand, move and MREMAP_DONTUNMAP of a sealed range, and a move onto a sealed destination, are EPERM', () => {
    const k = kernel();
    ro(k, 'p', 4);
    seal(k, 'p');
    expect(code(() => k.run(k.mremap({ map: 'p', length: 4 * PAGE, newLength: 2 * PAGE })))).toBe('EPERM');
    expect(code(() => k.run(k.mremap({ map: 'p', length: 4 * PAGE, newLength: 8 * PAGE, mayMove: true, as: 'big' })))).toBe('EPERM');
    expect(code(() => k.run(k.mremap({ map: 'p', length: 4 * PAGE, dontUnmap: true, as: 'copy' })))).toBe('EPERM');
    ro(k, 'dst', 4);
    expect(code(() => k.run(k.mremap({ map: 'p', length: 4 * PAGE, to: 'dst', as: 'moved' })))).toBe('EPERM');
    // test_seal_mremap_move_fixed: the destination is sealed, the source is not
    ro(k, 'src', 4);
    seal(k, 'dst');
    expect(code(() => k.run(k.mremap({ map: 'src', length: 4 * PAGE, to: 'dst', as: 'moved' })))).toBe('EPERM');
    expect([size(k, 'p', 0), size(k, 'src', 0), size(k, 'dst', 0)]).toEqual([4, 4, 4]);
  });

  it('MAP_FIXED over a sealed VMA is EPERM (test_seal_mmap_overwrite_prot / _expand / _shrink); over an unsealed one it replaces it in place', () => {
    const k = kernel();
    ro(k, 'p', 12);
    munmap(k, 'p', 8, 4);
    seal(k, 'p', 0, 8);
    expect(code(() => k.run(k.mmap({ anon: true, length: 12 * PAGE, fixed: { map: 'p' }, as: 'over' })))).toBe('EPERM');
    expect(code(() => k.run(k.mmap({ anon: true, length: 4 * PAGE, fixed: { map: 'p', offset: 4 * PAGE }, as: 'over' })))).toBe('EPERM');
    expect(size(k, 'p', 0)).toBe(8);
    // unsealed: mmap_region() unmaps and maps the new VMA at exactly that address
    const old = written(k, 'q', 2);
    const start = k.process(undefined).ranges.get('q')!.start;
    k.run(k.mmap({ anon: true, length: PAGE, write: true, fixed: { map: 'q', offset: PAGE }, as: 'new' }));
    expect(k.process(undefined).ranges.get('new')!.start).toBe(start + 1);
    expect(k.ram.live.has(old[1]!)).toBe(false);
    expect(k.run(k.read({ map: 'new', page: 0 }))).toBe('');
    expect(k.run(k.read({ map: 'q', page: 0 }))).toBe('q0');
  });
});

describe('what a seal does not refuse', () => {
  it('reads, writes and pins work; fork gives the child a sealed copy (vm_area_dup()); exit unmaps sealed VMAs and frees their pages', () => {
    const k = kernel();
    const m = new Monitor(k);
    const [p0] = written(k, 'p', 2);
    seal(k, 'p');
    k.run(k.write({ map: 'p', page: 1, data: 'again' }));
    k.run(k.gup({ map: 'p', page: 0, write: true, as: 'pin' }, true));
    k.run(k.unpin({ name: 'pin' }));
    // mlock is no VMA change mseal() blocks (mlock_fixup() has no seal check); its population
    // finds both pages present and writable already, so nothing changes
    k.run(k.mlock({ map: 'p' }));
    k.run(k.fork({ as: 'child' }));
    expect(k.isSealedIn({ map: 'p', page: 0, process: 'child' })).toBe(true);
    expect(k.refcount(p0!)).toBe(2); // shared COW with the child
    expect(code(() => k.run(k.munmap({ map: 'p', process: 'child' })))).toBe('EPERM');
    k.run(k.exit({ process: 'child' }));
    expect(k.refcount(p0!)).toBe(1); // the child's share is gone; the parent's mapping remains
    k.run(k.exit({ process: 'init' }));
    expect(k.ram.live.has(p0!)).toBe(false);
    expect(m.violations).toEqual([]);
  });
});
