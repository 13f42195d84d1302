import { describe, expect, it } from 'vitest';
import { createKernel, KernelError, Monitor, PRESETS, type Kernel } from '../src/index.js';
import { guardRefusal } from '../src/mm/guard.js';
import { testArch } from '../src/testing.js';
import { code, written } from './vm-helpers.js';

// MADV_GUARD_INSTALL / MADV_GUARD_REMOVE (mm/guard.ts): the expectations are those of
// tools/testing/selftests/mm/guard-regions.c and of mm/madvise.c / mm/memory.c as read (comments).

const KiB = 1024;
const RELEASES = PRESETS.map((p) => p.name);

function kernel(version = 'latest'): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), kernel: version });
  return { k, m: new Monitor(k) };
}

const advise = (k: Kernel, map: string, advice: Parameters<Kernel['madvise']>[0]['advice'], more: { offset?: number; length?: number; process?: string } = {}) => k.run(k.madvise({ map, advice, ...more }));
const pages = (n: number) => n * 4 * KiB;
/** 'ok' or the errno of a read / write of one page (SIGSEGV is a signal the model reports as an error). */
const access = (k: Kernel, map: string, page: number, write: boolean, process?: string): string =>
  code(() => (write ? k.run(k.write({ map, page, data: 'x', ...(process ? { process } : {}) })) : k.run(k.read({ map, page, ...(process ? { process } : {}) })))) ?? 'ok';
const guarded = (k: Kernel, map: string, n: number, process?: string): boolean[] => Array.from({ length: n }, (_, i) => access(k, map, i, false, process) === 'SIGSEGV');

describe('MADV_GUARD_INSTALL / MADV_GUARD_REMOVE per release (madvise_behavior_valid: 662df3e5c376, v6.13)', () => {
  it('is EINVAL before v6.13 (the presets up to v6.6) and works in v6.15 and latest', () => {
    const table = Object.fromEntries(RELEASES.map((v) => {
      const { k } = kernel(v);
      written(k, 'm', 2);
      return [v, [code(() => advise(k, 'm', 'guard-install')) ?? 'ok', code(() => advise(k, 'm', 'guard-remove')) ?? 'ok']];
    }));
    const old = ['EINVAL', 'EINVAL'];
    expect(table).toEqual({ 'v5.4': old, 'v5.10': old, 'v6.1': old, 'v6.3': old, 'v6.6': old, 'v6.15': ['ok', 'ok'], latest: ['ok', 'ok'] });
  });

  it('is_valid_guard_vma(): v6.13/v6.14 want vma_is_anonymous(); "allow guard regions in file-backed and read-only mappings" (v6.15) drops it; VM_SPECIAL and VM_HUGETLB always, VM_LOCKED for an install only', () => {
    const { k } = kernel('latest');
    k.run(k.memfdCreate({ file: 'fd', size: pages(2) }));
    k.run(k.mmap({ file: 'fd', length: pages(2), shared: true, write: true, as: 'shm' }));
    written(k, 'anon', 1);
    const vmaOf = (name: string) => k.process('init').vmas.find((v) => v.name === name)!;
    // a kernel object whose version reads v6.13 / v6.14: the rule between the presets v6.6 and v6.15
    const at = (version: string) => ({ ...k, version }) as unknown as Kernel;
    expect(guardRefusal(at('v6.13'), vmaOf('anon'), false)).toBeNull();
    expect(guardRefusal(at('v6.14'), vmaOf('shm'), false)).toMatch(/not anonymous memory/);
    expect(guardRefusal(at('v6.15'), vmaOf('shm'), false)).toBeNull();
    const locked = { ...vmaOf('anon'), flags: { ...vmaOf('anon').flags, locked: true } };
    expect(guardRefusal(k, locked, false)).toMatch(/VM_LOCKED/);
    expect(guardRefusal(k, locked, true)).toBeNull(); // removal is allowed under mlock()
    const io = { ...vmaOf('anon'), flags: { ...vmaOf('anon').flags, io: true } };
    expect(guardRefusal(k, io, true)).toMatch(/VM_SPECIAL/);
  });
});

describe('guard markers (guard-regions.c on anonymous memory, latest)', () => {
  it('basic: installing over a written page zaps it first (freed: refcount and mapcount 1 -> 0), then every access is SIGSEGV; removal leaves an empty PTE', () => {
    const { k, m } = kernel();
    const [p0] = written(k, 'm', 10);
    advise(k, 'm', 'guard-install', { length: pages(1) });
    // guard_install_pte_entry() met a present page: zap_page_range_single(), then the marker
    expect(k.ram.live.has(p0!)).toBe(false);
    expect(k.mapcount(p0!)).toBe(0);
    expect([access(k, 'm', 0, false), access(k, 'm', 0, true)]).toEqual(['SIGSEGV', 'SIGSEGV']);
    expect(guarded(k, 'm', 10)).toEqual([true, false, false, false, false, false, false, false, false, false]);
    // pagemap: PM_GUARD_REGION and, as for every swap-type entry, PM_SWAP; not present
    expect([k.isGuardIn({ map: 'm', page: 0 }), k.isSwappedIn({ map: 'm', page: 0 }), k.isMappedIn({ map: 'm', page: 0 })]).toEqual([true, true, false]);
    expect(k.pfnOf({ map: 'm', page: 0 })).toBeNull();
    // installing again over the marker is a no-op (guard_install_pte_entry counts it)
    advise(k, 'm', 'guard-install', { length: pages(1) });
    advise(k, 'm', 'guard-remove');
    expect(k.isGuardIn({ map: 'm', page: 0 })).toBe(false);
    // the page was zapped: a read maps the shared zero page (''), the other pages kept their data
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('');
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('m1');
    expect(m.violations).toEqual([]);
  });

  it('a guard page inside a PMD-mapped anonymous THP: the walk meets the PMD (guard_install_pmd_entry), zap_page_range_single() splits it into PTEs of the same folio and zaps the one page', () => {
    const { k } = kernel();
    // cow.c's do_run_with_thp() layout: 4 MiB, MADV_HUGEPAGE on the PMD-aligned second half, one write there
    k.run(k.mmap({ anon: true, length: 4 * 1024 * KiB, write: true, as: 'mem' }));
    advise(k, 'mem', 'hugepage', { offset: 2 * 1024 * KiB, length: 2 * 1024 * KiB });
    k.run(k.write({ map: 'mem', page: 512, data: 'T' }));
    const head = k.pfnOf({ map: 'mem', page: 512 })!;
    expect(k.vm.lookup(k.process('init'), k.process('init').ranges.get('mem')!.start + 512)?.pte.level).toBe('pmd');
    expect(k.refcount(head)).toBe(1); // one reference for the PMD mapping
    advise(k, 'mem', 'guard-install', { offset: pages(513), length: pages(1) });
    // __split_huge_pmd_locked(): folio_ref_add(HPAGE_PMD_NR - 1), one PTE per subpage: 512; the zap
    // of subpage 1's PTE drops one after the TLB flush: 511. The folio stays whole, PTE-mapped
    expect(k.refcount(head)).toBe(511);
    expect(k.folios.order(head)).toBe(9);
    expect(access(k, 'mem', 513, false)).toBe('SIGSEGV');
    expect(k.run(k.read({ map: 'mem', page: 512 }))).toBe('T');
    expect(k.pfnOf({ map: 'mem', page: 514 })).toBe(head + 2);
  });

  it('MADV_COLLAPSE over a guard marker is EINVAL and leaves it; with a pinned page after it, v6.15 scans on and says EAGAIN (SCAN_PAGE_COUNT), latest stops at the marker (SCAN_PTE_NON_PRESENT): EINVAL', () => {
    const got = (['v6.15', 'latest'] as const).map((v) => {
      const { k } = kernel(v);
      // a PMD-aligned 2 MiB range of base pages (no VM_HUGEPAGE: the faults map base pages)
      k.run(k.mmap({ anon: true, length: 4 * 1024 * KiB, write: true, as: 'mem' }));
      for (let page = 512; page < 520; page++) k.run(k.write({ map: 'mem', page, data: `p${page}` }));
      advise(k, 'mem', 'guard-install', { offset: pages(512), length: pages(1) });
      const plain = code(() => advise(k, 'mem', 'collapse', { offset: 2 * 1024 * KiB, length: 2 * 1024 * KiB }));
      k.run(k.gup({ map: 'mem', page: 513, as: 'pin' }, true));
      const pinned = code(() => advise(k, 'mem', 'collapse', { offset: 2 * 1024 * KiB, length: 2 * 1024 * KiB }));
      return [plain, pinned, k.isGuardIn({ map: 'mem', page: 512 }), k.run(k.read({ map: 'mem', page: 514 }))];
    });
    expect(got).toEqual([
      ['EINVAL', 'EAGAIN', true, 'p514'],
      ['EINVAL', 'EINVAL', true, 'p514'],
    ]);
  });

  it('GUP on a marker is -EFAULT (faultin_page: VM_FAULT_SIGSEGV), slow and fast (gup-fast bails on the non-present entry); MADV_POPULATE_(READ|WRITE) is -EFAULT', () => {
    const { k } = kernel();
    written(k, 'm', 2);
    advise(k, 'm', 'guard-install', { length: pages(1) });
    expect(code(() => k.run(k.gup({ map: 'm', page: 0, as: 'a' }, true)))).toBe('EFAULT');
    expect(code(() => k.run(k.gup({ map: 'm', page: 0, write: true, fast: true, as: 'b' }, true)))).toBe('EFAULT');
    expect(code(() => advise(k, 'm', 'populate-read'))).toBe('EFAULT');
    expect(code(() => advise(k, 'm', 'populate-write'))).toBe('EFAULT');
    // the page after the marker is untouched
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('m1');
  });

  it('a pinned page is zapped from under its pin (the pin keeps it: refcount 1025 -> 1024), and no invariant reports the marker as a diverged pin', () => {
    const { k, m } = kernel();
    const [p0] = written(k, 'm', 1);
    k.run(k.gup({ map: 'm', page: 0, as: 'dma' }, true));
    // FOLL_PIN on a small folio: GUP_PIN_COUNTING_BIAS (1024) plus the mapping's 1
    expect(k.refcount(p0!)).toBe(1 + 1024);
    advise(k, 'm', 'guard-install');
    expect([k.refcount(p0!), k.mapcount(p0!)]).toEqual([1024, 0]);
    expect(k.run(k.dmaRead({ pin: 'dma' }))).toBe('m0');
    expect(m.violations).toEqual([]);
  });

  it('MADV_DONTNEED, MADV_FREE, MADV_COLD and MADV_PAGEOUT keep the markers (zap_pte_range without ZAP_FLAG_DROP_MARKER; madvise_free_pte_range skips them)', () => {
    const { k } = kernel();
    written(k, 'm', 10);
    for (let i = 0; i < 10; i += 2) advise(k, 'm', 'guard-install', { offset: pages(i), length: pages(1) });
    const every = [true, false, true, false, true, false, true, false, true, false];
    for (const advice of ['dontneed', 'free', 'cold', 'pageout'] as const) {
      advise(k, 'm', advice);
      expect(guarded(k, 'm', 10), advice).toEqual(every);
    }
    // after MADV_DONTNEED the odd pages read the zero page (dontneed test: '\0' for anon)
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('');
  });

  it('munmap drops the markers (unmap_vmas: ZAP_FLAG_DROP_MARKER): nothing is left in the page tables', () => {
    const { k } = kernel();
    written(k, 'm', 10);
    advise(k, 'm', 'guard-install', { length: pages(1) });
    advise(k, 'm', 'guard-install', { offset: pages(9), length: pages(1) });
    k.run(k.munmap({ map: 'm', length: pages(1) }));
    k.run(k.munmap({ map: 'm', offset: pages(9), length: pages(1) }));
    const mm = k.process('init');
    expect([...mm.ptes.values()].filter((p) => p.guard).length).toBe(0);
    // the middle of the mapping still works
    expect(access(k, 'm', 5, true)).toBe('ok');
  });

  it('mprotect keeps the markers (change_pte_range skips guard entries), before and after a split and merge of the VMA', () => {
    const { k } = kernel();
    written(k, 'm', 10);
    advise(k, 'm', 'guard-install', { offset: pages(5), length: pages(2) });
    k.run(k.mprotect({ map: 'm', offset: pages(5), length: pages(2), write: false }));
    expect([access(k, 'm', 5, false), access(k, 'm', 6, false)]).toEqual(['SIGSEGV', 'SIGSEGV']);
    k.run(k.mprotect({ map: 'm', offset: pages(5), length: pages(2), write: true }));
    // merged back into one VMA, the markers still there
    expect(k.process('init').vmas.filter((v) => v.name === 'm').length).toBe(1);
    expect(guarded(k, 'm', 10)).toEqual([false, false, false, false, false, true, true, false, false, false]);
  });

  it('mlock: an install on a VM_LOCKED range is EINVAL; after munlock it works; a removal under mlock is allowed', () => {
    const { k } = kernel();
    written(k, 'm', 10);
    k.run(k.mlock({ map: 'm' }));
    expect(code(() => advise(k, 'm', 'guard-install'))).toBe('EINVAL');
    k.run(k.munlock({ map: 'm' }));
    advise(k, 'm', 'guard-install', { length: pages(5) });
    k.run(k.mlock({ map: 'm', offset: pages(5), length: pages(5) }));
    advise(k, 'm', 'guard-remove');
    expect(guarded(k, 'm', 10)).toEqual(Array(10).fill(false));
  });

  it('mlock() over a guard page: __mm_populate() faults it (SIGSEGV, EFAULT to GUP), which mlock() returns as ENOMEM (__mlock_posix_error_return); the VMA stays VM_LOCKED', () => {
    const { k } = kernel();
    written(k, 'm', 4);
    advise(k, 'm', 'guard-install', { offset: pages(2), length: pages(1) });
    expect(code(() => k.run(k.mlock({ map: 'm' })))).toBe('ENOMEM');
    expect(k.isLockedIn({ map: 'm', page: 0 })).toBe(true);
    // the marker is still there; and the locked VMA now refuses a new install (VM_LOCKED) but not a removal
    expect(k.isGuardIn({ map: 'm', page: 2 })).toBe(true);
    expect(code(() => advise(k, 'm', 'guard-install', { length: pages(1) }))).toBe('EINVAL');
    advise(k, 'm', 'guard-remove');
    expect(k.isGuardIn({ map: 'm', page: 2 })).toBe(false);
  });

  it('mremap moves the markers with the page tables (move_ptes), and a shrink drops those past the new end', () => {
    const { k } = kernel();
    k.run(k.mmap({ anon: true, length: pages(5), write: true, as: 'm' }));
    advise(k, 'm', 'guard-install', { length: pages(1) });
    advise(k, 'm', 'guard-install', { offset: pages(4), length: pages(1) });
    k.run(k.mmap({ anon: true, length: pages(5), as: 'dst' }));
    k.run(k.mremap({ map: 'm', length: pages(5), mayMove: true, to: 'dst', as: 'moved' }));
    expect(guarded(k, 'moved', 5)).toEqual([true, false, false, false, true]);
    k.run(k.mremap({ map: 'moved', length: pages(5), newLength: pages(3), as: 'small' }));
    expect(guarded(k, 'small', 3)).toEqual([true, false, false]);
    expect([...k.process('init').ptes.values()].filter((p) => p.guard).length).toBe(1);
  });

  it('fork copies the markers (copy_pte_marker; the install gave the VMA an anon_vma, so vma_needs_copy() is true); the child removing its own leaves the parent guarded', () => {
    const { k, m } = kernel();
    k.run(k.mmap({ anon: true, length: pages(10), write: true, as: 'm' }));
    advise(k, 'm', 'guard-install', { length: pages(5) });
    k.run(k.fork({ as: 'child' }));
    const half = [true, true, true, true, true, false, false, false, false, false];
    expect(guarded(k, 'm', 10, 'child')).toEqual(half);
    advise(k, 'm', 'guard-remove', { process: 'child' });
    expect(guarded(k, 'm', 10, 'child')).toEqual(Array(10).fill(false));
    expect(guarded(k, 'm', 10)).toEqual(half);
    expect(m.violations).toEqual([]);
  });

  it('VM_WIPEONFORK: the child gets the VMA empty, markers included', () => {
    const { k } = kernel();
    k.run(k.mmap({ anon: true, length: pages(10), write: true, as: 'm' }));
    advise(k, 'm', 'wipeonfork');
    advise(k, 'm', 'guard-install', { length: pages(5) });
    k.run(k.fork({ as: 'child' }));
    expect(guarded(k, 'm', 10, 'child')).toEqual(Array(10).fill(false));
    expect(guarded(k, 'm', 10)).toEqual([true, true, true, true, true, false, false, false, false, false]);
  });

  it('fork_cow: the child installs and removes over pages it shares with the parent: its PTEs go (the parent keeps its pages), the child reads zeroes', () => {
    const { k } = kernel();
    const pfns = written(k, 'm', 3);
    k.run(k.fork({ as: 'child' }));
    // shared after fork: the parent's PTE and the child's each hold a reference
    expect(k.refcount(pfns[0]!)).toBe(2);
    advise(k, 'm', 'guard-install', { process: 'child' });
    advise(k, 'm', 'guard-remove', { process: 'child' });
    expect(k.refcount(pfns[0]!)).toBe(1);
    expect([0, 1, 2].map((page) => k.run(k.read({ map: 'm', page, process: 'child' })))).toEqual(['', '', '']);
    expect([0, 1, 2].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['m0', 'm1', 'm2']);
  });
});

describe('guard markers in file-backed mappings (v6.15+)', () => {
  it('shmem: installing zaps the PTE, not the page-cache folio (it keeps the cache reference, 2 -> 1); removal re-faults the same data', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: pages(10) }));
    k.run(k.mmap({ file: 'fd', length: pages(10), shared: true, write: true, as: 'm' }));
    for (let i = 0; i < 10; i++) k.run(k.write({ map: 'm', page: i, data: `p${i}` }));
    const folio = k.pfnOf({ file: 'fd', page: 0 })!;
    expect(k.refcount(folio)).toBe(2); // the cache and the PTE
    advise(k, 'm', 'guard-install', { length: pages(5) });
    expect([k.refcount(folio), k.mapcount(folio)]).toEqual([1, 0]);
    expect(guarded(k, 'm', 10)).toEqual([true, true, true, true, true, false, false, false, false, false]);
    advise(k, 'm', 'guard-remove');
    expect(Array.from({ length: 10 }, (_, i) => k.run(k.read({ map: 'm', page: i })))).toEqual(Array.from({ length: 10 }, (_, i) => `p${i}`));
  });

  it('truncation and hole punching keep the markers (unmap_mapping_range zaps without ZAP_FLAG_DROP_MARKER); the punched pages read zeroes after removal', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: pages(100) }));
    k.run(k.mmap({ file: 'fd', length: pages(10), shared: true, write: true, as: 'm' }));
    for (let i = 0; i < 10; i++) k.run(k.write({ map: 'm', page: i, data: `p${i}` }));
    advise(k, 'm', 'guard-install', { offset: pages(3), length: pages(4) });
    advise(k, 'm', 'remove', { offset: pages(3), length: pages(4) });
    const middle = [false, false, false, true, true, true, true, false, false, false];
    expect(guarded(k, 'm', 10)).toEqual(middle);
    k.run(k.truncate({ file: 'fd', size: pages(10) }));
    expect(guarded(k, 'm', 10)).toEqual(middle);
    advise(k, 'm', 'guard-remove');
    expect(Array.from({ length: 10 }, (_, i) => k.run(k.read({ map: 'm', page: i })))).toEqual(['p0', 'p1', 'p2', '', '', '', '', 'p7', 'p8', 'p9']);
  });

  it('hugetlb mappings refuse both advices: EINVAL (VM_HUGETLB)', () => {
    const { k } = kernel();
    k.run(k.hugetlbPool({ size: 2 * 1024 * KiB, pages: 1 }));
    k.run(k.mmap({ anon: true, hugetlb: 2 * 1024 * KiB, length: 2 * 1024 * KiB, write: true, as: 'huge' }));
    expect([code(() => advise(k, 'huge', 'guard-install')), code(() => advise(k, 'huge', 'guard-remove'))]).toEqual(['EINVAL', 'EINVAL']);
    const e = (() => { try { advise(k, 'huge', 'guard-install'); } catch (x) { return x; } return null; })();
    expect(e).toBeInstanceOf(KernelError);
    expect((e as KernelError).unsupported).toBeNull(); // the kernel's refusal, not a gap of the model
  });
});
