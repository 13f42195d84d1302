import { describe, expect, it } from 'vitest';
import { BlockedError, createKernel, PRESETS, type ArchPlugin, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';
import { finish, forkWithMonitor, protectedPage, pte, startBlocked } from './uffd-helpers.js';

// userfaultfd (mm/userfaultfd.ts): UFFDIO_API, UFFDIO_REGISTER per release, MISSING and WP
// userfaults, UFFDIO_COPY / ZEROPAGE / WRITEPROTECT, fork, KSM unmerging and GUP. The test arch is
// x86-64 (HAVE_ARCH_USERFAULTFD_WP from v5.7, _MINOR from v5.13); `noWpArch` is one without a
// uffd-wp PTE bit (ppc64, s390; arm64 before v6.10).

const PAGE = 4096;
const HPAGE = 2 * 1024 * 1024;
const RELEASES = PRESETS.map((p) => p.name);

function noWpArch(): ArchPlugin {
  const a = testArch();
  const { uffdWpSince: _, ...mmu } = a.mmu;
  return { ...a, name: 'no-uffd-wp-arch', mmu };
}

function kernel(version = 'latest', arch: ArchPlugin = testArch()): Kernel {
  return createKernel({ arch, kernel: version });
}

/** A private anonymous mapping of `pages` pages registered with a fresh userfaultfd. */
function registered(k: Kernel, opts: { pages?: number; write?: boolean; mode?: ('missing' | 'wp' | 'minor')[]; features?: ('pagefault-flag-wp' | 'event-fork' | 'sigbus')[] } = {}): void {
  k.run(k.mmap({ anon: true, length: (opts.pages ?? 1) * PAGE, write: opts.write ?? true, as: 'm' }));
  k.run(k.uffdApi({ features: opts.features ?? [] }));
  k.run(k.uffdRegister({ map: 'm', mode: opts.mode ?? ['missing'] }));
}

describe('UFFDIO_API: the features reported per release and arch', () => {
  it('x86-64: fork, remap, remove and unmap events and SIGBUS everywhere, PAGEFAULT_FLAG_WP from v5.7, MINOR_HUGETLBFS v5.13, MINOR_SHMEM v5.14, WP_HUGETLBFS_SHMEM v5.19, WP_UNPOPULATED v6.4, POISON v6.6, WP_ASYNC v6.7, MOVE v6.8', () => {
    const got = Object.fromEntries(RELEASES.map((v) => [v, [...kernel(v).uffd.available()].sort()]));
    const events = ['event-fork', 'event-remap', 'event-remove', 'event-unmap'];
    const upTo63 = [...events, 'minor-hugetlbfs', 'minor-shmem', 'missing-hugetlbfs', 'missing-shmem', 'pagefault-flag-wp', 'sigbus', 'wp-hugetlbfs-shmem'];
    expect(got).toEqual({
      'v5.4': [...events, 'missing-hugetlbfs', 'missing-shmem', 'sigbus'],
      'v5.10': [...events, 'missing-hugetlbfs', 'missing-shmem', 'pagefault-flag-wp', 'sigbus'],
      ...Object.fromEntries(['v6.1', 'v6.3'].map((v) => [v, upTo63])),
      'v6.6': [...upTo63, 'poison', 'wp-unpopulated'].sort(),
      // d61ea1cb0095 (v6.7), masked with the markers like WP_UNPOPULATED; MOVE (v6.8, no arch mask)
      ...Object.fromEntries(RELEASES.filter((v) => !['v5.4', 'v5.10', 'v6.1', 'v6.3', 'v6.6'].includes(v)).map((v) => [v, [...upTo63, 'move', 'poison', 'wp-async', 'wp-unpopulated'].sort()])),
    });
  });

  it('an arch without the uffd-wp bit still reports PAGEFAULT_FLAG_WP on v5.10 (UFFD_API_FEATURES unmasked), not from v5.14', () => {
    expect(kernel('v5.10', noWpArch()).uffd.available().has('pagefault-flag-wp')).toBe(true);
    expect(kernel('v6.1', noWpArch()).uffd.available().has('pagefault-flag-wp')).toBe(false);
    expect(kernel('v6.1', noWpArch()).uffd.available().has('wp-hugetlbfs-shmem')).toBe(false);
  });

  it('asking for a feature the release lacks is EINVAL; one masked for the arch only from v6.10', () => {
    expect(code(() => kernel('v5.4').run(kernel('v5.4').uffdApi({ features: ['pagefault-flag-wp'] })))).toBe('EINVAL');
    const old = kernel('v6.6', noWpArch());
    expect(code(() => old.run(old.uffdApi({ features: ['pagefault-flag-wp'] })))).toBe(null); // accepted, inert
    const now = kernel('v6.15', noWpArch());
    expect(code(() => now.run(now.uffdApi({ features: ['pagefault-flag-wp'] })))).toBe('EINVAL');
  });
});

describe('UFFDIO_REGISTER: vma_can_userfault() per release', () => {
  /** the errno of registering a fresh mapping of this kind with these modes, or 'ok' */
  function reg(version: string, kind: 'anon' | 'shmem' | 'hugetlb', mode: ('missing' | 'wp' | 'minor')[], arch = testArch()): string {
    const k = kernel(version, arch);
    if (kind === 'hugetlb') k.run(k.hugetlbPool({ size: HPAGE, pages: 1 }));
    if (kind === 'hugetlb') k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, shared: true, as: 'm' }));
    else k.run(k.mmap({ anon: true, length: 4 * PAGE, write: true, shared: kind === 'shmem', as: 'm' }));
    k.run(k.uffdApi({}));
    return code(() => k.run(k.uffdRegister({ map: 'm', mode }))) ?? 'ok';
  }

  it('MISSING: anonymous, shmem and hugetlb memory in every release', () => {
    for (const v of RELEASES) for (const kind of ['anon', 'shmem', 'hugetlb'] as const) expect({ v, kind, r: reg(v, kind, ['missing']) }).toEqual({ v, kind, r: 'ok' });
  });

  it('WP: EINVAL before v5.7; anonymous from v5.7; shmem and hugetlb from v5.19 (PTE markers)', () => {
    const table = Object.fromEntries(RELEASES.map((v) => [v, (['anon', 'shmem', 'hugetlb'] as const).map((kind) => reg(v, kind, ['wp']))]));
    expect(table['v5.4']).toEqual(['EINVAL', 'EINVAL', 'EINVAL']);
    expect(table['v5.10']).toEqual(['ok', 'EINVAL', 'EINVAL']);
    for (const v of RELEASES.filter((x) => x !== 'v5.4' && x !== 'v5.10')) expect({ v, r: table[v] }).toEqual({ v, r: ['ok', 'ok', 'ok'] });
  });

  it('WP without the arch bit: accepted (and inert) up to v5.13, EINVAL from v5.14 (00b151f21f39)', () => {
    expect(reg('v5.10', 'anon', ['wp'], noWpArch())).toBe('ok');
    expect(reg('v6.1', 'anon', ['wp'], noWpArch())).toBe('EINVAL');
  });

  it('MINOR: never anonymous; hugetlbfs from v5.13, shmem from v5.14 (EINVAL before, and on v5.4/v5.10 the mode does not exist)', () => {
    expect(['v5.4', 'v5.10'].map((v) => reg(v, 'hugetlb', ['minor']))).toEqual(['EINVAL', 'EINVAL']);
    expect(['v6.1', 'latest'].map((v) => [reg(v, 'anon', ['minor']), reg(v, 'shmem', ['minor']), reg(v, 'hugetlb', ['minor'])])).toEqual([
      ['EINVAL', 'ok', 'ok'],
      ['EINVAL', 'ok', 'ok'],
    ]);
  });

  it('registering part of a VMA splits it: the flags are on the range only; unregister merges it back', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 4 * PAGE, write: true, as: 'm' }));
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'm', mode: ['missing'], offset: PAGE, length: 2 * PAGE }));
    const mm = k.process(undefined);
    expect(mm.vmas.filter((v) => v.name === 'm').map((v) => [v.pages, v.flags.uffdMissing === true])).toEqual([[1, false], [2, true], [1, false]]);
    k.run(k.uffdUnregister({ map: 'm', offset: PAGE, length: 2 * PAGE }));
    expect(mm.vmas.filter((v) => v.name === 'm').map((v) => v.pages)).toEqual([4]);
  });

  it('a VMA registered with another userfaultfd is EBUSY; nothing in the range is EINVAL', () => {
    const k = kernel();
    registered(k);
    k.run(k.uffdApi({})); // a second userfaultfd of the same process
    expect(code(() => k.run(k.uffdRegister({ map: 'm', mode: ['missing'] })))).toBe('EBUSY');
  });
});

describe('MISSING userfaults and UFFDIO_COPY / UFFDIO_ZEROPAGE', () => {
  it('a read of an empty registered page sleeps (a sequential run blocks) instead of mapping the zero page', () => {
    const k = kernel();
    registered(k);
    expect(() => k.run(k.read({ map: 'm', page: 0 }))).toThrow(BlockedError);
    expect(pte(k, 'm', 0)).toBeNull();
  });

  it('the handler\'s UFFDIO_COPY resolves it: the sleeping read wakes and returns the copied data', () => {
    for (const v of RELEASES) {
      const k = kernel(v);
      registered(k);
      const reader = startBlocked(k.read({ map: 'm', page: 0 }));
      k.run(k.uffdCopy({ map: 'm', page: 0, data: 'handler' }));
      expect({ v, data: finish(reader) }).toEqual({ v, data: 'handler' });
      // a new exclusive anon page: refcount 1, mapcount 1; writable and dirty in a PROT_WRITE VMA
      const p = k.pfnOf({ map: 'm', page: 0 })!;
      expect([k.folios.rc(p), k.folios.mapcount(p), k.folios.isAnon(p), pte(k, 'm', 0)!.write, pte(k, 'm', 0)!.dirty]).toEqual([1, 1, true, true, true]);
    }
  });

  it('mkdirty.c test_uffdio_copy: in a PROT_READ VMA the page is never writable, so the store is SIGSEGV and the page unchanged', () => {
    for (const v of RELEASES) {
      const k = kernel(v);
      registered(k, { write: false });
      k.run(k.uffdCopy({ map: 'm', page: 0, data: '0x01' }));
      const e = pte(k, 'm', 0)!;
      // pte_mkdirty() unconditionally from v5.7 (292924b26024); v5.4 dirtied only with VM_WRITE
      expect({ v, write: e.write, dirty: e.dirty }).toEqual({ v, write: false, dirty: v !== 'v5.4' });
      expect(code(() => k.run(k.write({ map: 'm', page: 0, data: '0x02' })))).toBe('SIGSEGV');
      expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('0x01');
    }
  });

  it('a store through a writable PTE needs no VM_WRITE: the model checks the entry first, as the MMU does', () => {
    // the check mkdirty.c relies on: if UFFDIO_COPY had mapped the page writable, the store would land
    const k = kernel();
    registered(k, { write: false });
    k.run(k.uffdCopy({ map: 'm', page: 0, data: '0x01' }));
    pte(k, 'm', 0)!.write = true; // what a buggy pte_mkdirty() (sparc64 before v6.5) did
    k.run(k.write({ map: 'm', page: 0, data: '0x02' }));
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('0x02');
  });

  it('UFFDIO_COPY onto a mapped page is EEXIST; a copy that meets one after placing pages is EAGAIN; an unregistered range ENOENT', () => {
    const k = kernel();
    registered(k, { pages: 3 });
    k.run(k.uffdCopy({ map: 'm', page: 1, data: 'b' }));
    expect(code(() => k.run(k.uffdCopy({ map: 'm', page: 1, data: 'x' })))).toBe('EEXIST');
    expect(code(() => k.run(k.uffdCopy({ map: 'm', page: 0, pages: 3, data: 'x' })))).toBe('EAGAIN');
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('x'); // page 0 was placed before page 1 stopped it
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'plain' }));
    expect(code(() => k.run(k.uffdCopy({ map: 'plain', page: 0, data: 'x' })))).toBe('ENOENT');
  });

  it('UFFDIO_ZEROPAGE maps the shared zero page read-only; the read wakes and sees zeroes', () => {
    const k = kernel();
    registered(k);
    const reader = startBlocked(k.read({ map: 'm', page: 0 }));
    k.run(k.uffdZeropage({ map: 'm', page: 0 }));
    expect(finish(reader)).toBe('');
    expect(k.isZeroPfn(k.pfnOf({ map: 'm', page: 0 })!)).toBe(true);
    expect(pte(k, 'm', 0)!.write).toBe(false);
  });

  it('UFFD_FEATURE_SIGBUS: the fault is SIGBUS at once instead of sleeping', () => {
    const k = kernel();
    registered(k, { features: ['sigbus'] });
    expect(code(() => k.run(k.write({ map: 'm', page: 0, data: 'x' })))).toBe('SIGBUS');
  });

  it('GUP faults sleep too: a pin of an empty registered page waits for UFFDIO_COPY, then pins the copied page', () => {
    const k = kernel();
    registered(k);
    const pin = startBlocked(k.gup({ map: 'm', page: 0, write: true, as: 'p' }, true));
    k.run(k.uffdCopy({ map: 'm', page: 0, data: 'dma' }));
    finish(pin);
    const p = k.pfnOf({ map: 'm', page: 0 })!;
    expect(k.folios.rc(p)).toBe(1 + 1024); // the mapping's reference + GUP_PIN_COUNTING_BIAS
  });
});

describe('uffd-wp: UFFDIO_WRITEPROTECT and write faults', () => {
  it('write-protect sets the bit and clears write; the write then sleeps; resolving wakes it and the write lands in the same page', () => {
    for (const v of RELEASES.filter((x) => x !== 'v5.4')) {
      const k = protectedPage(v);
      const before = k.pfnOf({ map: 'm', page: 0 })!;
      // pagemap shows the bit (PM_UFFD_WP) only from v5.14; the PTE has it from v5.7
      expect({ v, pte: [pte(k, 'm', 0)!.write, pte(k, 'm', 0)!.uffdWp], pagemap: k.isUffdWpIn({ map: 'm', page: 0 }) }).toEqual({ v, pte: [false, true], pagemap: v !== 'v5.10' });
      const writer = startBlocked(k.write({ map: 'm', page: 0, data: 'b' }));
      k.run(k.uffdWriteprotect({ map: 'm', enable: false }));
      // v6.0+ (MM_CP_TRY_CHANGE_WRITABLE) maps the exclusive anon page writable at once; before,
      // the entry stays read-only and the retried write fault reuses it (do_wp_page)
      expect({ v, writableAfterResolve: pte(k, 'm', 0)!.write }).toEqual({ v, writableAfterResolve: !['v5.10'].includes(v) });
      finish(writer);
      expect({ v, same: k.pfnOf({ map: 'm', page: 0 }) === before, data: k.run(k.read({ map: 'm', page: 0 })) }).toEqual({ v, same: true, data: 'b' });
    }
  });

  it('a FOLL_WRITE pin of a uffd-wp page sleeps like the CPU write (follow_page_pte() needs pte_write())', () => {
    const k = protectedPage('latest');
    const pin = startBlocked(k.gup({ map: 'm', page: 0, write: true, as: 'p' }, true));
    k.run(k.uffdWriteprotect({ map: 'm', enable: false }));
    finish(pin);
    expect(k.folios.rc(k.pfnOf({ map: 'm', page: 0 })!)).toBe(1 + 1024);
  });

  it('mprotect(PROT_WRITE) does not make a uffd-wp PTE writable (can_change_pte_writable(): "Do we need write faults for uffd-wp tracking?")', () => {
    const k = protectedPage('latest');
    k.run(k.mprotect({ map: 'm', write: false }));
    k.run(k.mprotect({ map: 'm', write: true }));
    expect([pte(k, 'm', 0)!.write, k.isUffdWpIn({ map: 'm', page: 0 })]).toEqual([false, true]);
  });

  it('UFFDIO_COPY with MODE_WP places a uffd-wp, read-only page; a range not registered for WP is EINVAL', () => {
    const k = kernel();
    registered(k, { mode: ['missing', 'wp'], features: ['pagefault-flag-wp'] });
    k.run(k.uffdCopy({ map: 'm', page: 0, data: 'x', wp: true }));
    expect([pte(k, 'm', 0)!.write, pte(k, 'm', 0)!.uffdWp]).toEqual([false, true]);
    const k2 = kernel();
    registered(k2);
    expect(code(() => k2.run(k2.uffdCopy({ map: 'm', page: 0, data: 'x', wp: true })))).toBe('EINVAL');
  });

  it('without the arch bit (v5.10, ppc64/s390) write-protect only makes the PTE read-only: the write fault reuses the page, nobody sleeps', () => {
    const k = kernel('v5.10', noWpArch());
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    k.run(k.uffdApi({ features: ['pagefault-flag-wp'] }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    expect([pte(k, 'm', 0)!.write, k.isUffdWpIn({ map: 'm', page: 0 })]).toEqual([false, false]);
    k.run(k.write({ map: 'm', page: 0, data: 'b' }));
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('b');
  });
});

describe('fork: dup_userfaultfd() and the uffd-wp bit', () => {
  function forked(version: string, features: ('pagefault-flag-wp' | 'event-fork')[]): Kernel {
    const k = protectedPage(version, features);
    if (features.includes('event-fork')) forkWithMonitor(k);
    else k.run(k.fork({ as: 'child' }));
    return k;
  }
  const childVma = (k: Kernel) => k.processes.get('child')!.vmas.find((v) => v.name === 'm')!;

  it('without UFFD_FEATURE_EVENT_FORK the child VMA is unregistered; v5.14+ drops the bit (dst VMA), v5.10 kept it (src VMA asked)', () => {
    const old = forked('v5.10', ['pagefault-flag-wp']);
    expect([childVma(old).flags.uffdWp === true, pte(old, 'm', 0, 'child')!.uffdWp === true]).toEqual([false, true]);
    const now = forked('latest', ['pagefault-flag-wp']);
    expect([childVma(now).flags.uffdWp === true, pte(now, 'm', 0, 'child')!.uffdWp === true]).toEqual([false, false]);
    // the child's write is an ordinary COW: it never sleeps
    now.run(now.write({ map: 'm', page: 0, data: 'c', process: 'child' }));
    expect(now.run(now.read({ map: 'm', page: 0 }))).toBe('a');
  });

  it('with UFFD_FEATURE_EVENT_FORK the child keeps VM_UFFD_WP (a new ctx) and the bit: its write sleeps for the monitor', () => {
    const k = forked('latest', ['pagefault-flag-wp', 'event-fork']);
    const parentVma = k.process(undefined).vmas.find((v) => v.name === 'm')!;
    expect([childVma(k).flags.uffdWp, pte(k, 'm', 0, 'child')!.uffdWp, childVma(k).uffd !== parentVma.uffd]).toEqual([true, true, true]);
    expect(() => k.run(k.write({ map: 'm', page: 0, data: 'c', process: 'child' }))).toThrow(BlockedError);
  });
});

describe('ksm_functional_tests.c test_unmerge_uffd_wp: break_ksm() on uffd-wp KSM pages', () => {
  /** 4 identical pages merged, WP-registered and write-protected, then MADV_UNMERGEABLE; returns how many PTEs still map a KSM page */
  function stillMerged(version: string): number {
    const k = kernel(version);
    k.run(k.mmap({ anon: true, length: 4 * PAGE, write: true, as: 'm' }));
    for (let page = 0; page < 4; page++) k.run(k.write({ map: 'm', page, data: 'cf' }));
    k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
    k.run(k.ksmMerge({}));
    k.run(k.uffdApi({ features: ['pagefault-flag-wp'] }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    k.run(k.madvise({ map: 'm', advice: 'unmergeable' }));
    return [0, 1, 2, 3].filter((page) => k.ksm.isKsm(k.folios.folio(k.pfnOf({ map: 'm', page })!))).length;
  }

  it('v5.10 and v6.1: the FAULT_FLAG_WRITE fault meets the uffd-wp bit without ALLOW_RETRY, VM_FAULT_SIGBUS ends break_ksm(): all 4 stay merged', () => {
    expect([stillMerged('v5.10'), stillMerged('v6.1')]).toEqual([4, 4]);
  });

  it('v6.2+ (6cce3314b928): FAULT_FLAG_UNSHARE skips the uffd-wp check and copies: nothing stays merged, the copies keep the bit', () => {
    for (const v of RELEASES.filter((x) => !['v5.4', 'v5.10', 'v6.1'].includes(x))) expect({ v, merged: stillMerged(v) }).toEqual({ v, merged: 0 });
  });
});

describe('shmem and hugetlb userfaults, unregistering, and unshare', () => {
  it('shmem MISSING: a read of a page the memfd lacks sleeps; UFFDIO_UNREGISTER wakes it and shmem_fault() then supplies a zeroed page', () => {
    const k = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: 2 * PAGE }));
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'm', mode: ['missing'] }));
    const reader = startBlocked(k.read({ map: 'm', page: 0 }));
    k.run(k.uffdUnregister({ map: 'm' }));
    expect(finish(reader)).toBe('');
    expect(k.folios.isAnon(k.folios.folio(k.pfnOf({ map: 'm', page: 0 })!))).toBe(false); // a page-cache folio, not anon
  });

  it('shmem MINOR (v5.14+): a page already in the cache (written through another mapping) still sleeps in the registered one; v6.1 and later only', () => {
    const k = kernel('v6.1');
    k.run(k.memfdCreate({ file: 'fd', size: PAGE }));
    k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'other' }));
    k.run(k.write({ map: 'other', page: 0, data: 'cached' }));
    k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'm', mode: ['minor'] }));
    expect(() => k.run(k.read({ map: 'm', page: 0 }))).toThrow(BlockedError);
    // MISSING alone would not fire: the page cache has the page
    const k2 = kernel('v6.1');
    k2.run(k2.memfdCreate({ file: 'fd', size: PAGE }));
    k2.run(k2.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'other' }));
    k2.run(k2.write({ map: 'other', page: 0, data: 'cached' }));
    k2.run(k2.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'm' }));
    k2.run(k2.uffdApi({}));
    k2.run(k2.uffdRegister({ map: 'm', mode: ['missing'] }));
    expect(k2.run(k2.read({ map: 'm', page: 0 }))).toBe('cached');
  });

  it('hugetlb MISSING: hugetlb_no_page() hands an empty huge page to the handler; a whole-huge-page UFFDIO_COPY resolves it, a base-page one and ZEROPAGE are EINVAL', () => {
    const k = kernel();
    k.run(k.hugetlbPool({ size: HPAGE, pages: 1 }));
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'm' }));
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'm', mode: ['missing'] }));
    expect(() => k.run(k.write({ map: 'm', page: 3, data: 'x' }))).toThrow(BlockedError);
    const writer = startBlocked(k.write({ map: 'm', page: 3, data: 'x' }));
    // mfill_atomic_hugetlb(): len (one 4 KiB page) is not a multiple of the 2 MiB huge page
    expect(code(() => k.run(k.uffdCopy({ map: 'm', page: 0, data: 'c' })))).toBe('EINVAL');
    expect(code(() => k.run(k.uffdZeropage({ map: 'm', page: 0, pages: HPAGE / PAGE })))).toBe('EINVAL');
    expect(k.run(k.uffdCopy({ map: 'm', page: 0, pages: HPAGE / PAGE, data: 'c' }))).toBeUndefined();
    finish(writer);
    // the private mapping's copy is an anon huge folio that consumed the VMA's reservation (resv 1 -> 0)
    const p = k.pfnOf({ map: 'm', page: 0 })!;
    expect([k.folios.isAnon(p), k.hugetlb.counters(HPAGE), k.run(k.read({ map: 'm', page: 1 })), k.run(k.read({ map: 'm', page: 3 }))]).toEqual([true, { nr: 1, free: 0, resv: 0 }, 'c', 'x']);
  });

  it('a R/O longterm pin unshares a uffd-wp page shared with a fork child: the copy keeps the uffd-wp bit (wp_page_copy(), v5.19+)', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    k.run(k.uffdApi({ features: ['pagefault-flag-wp', 'event-fork'] }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    forkWithMonitor(k);
    const shared = k.pfnOf({ map: 'm', page: 0 })!;
    k.run(k.gup({ map: 'm', page: 0, longterm: true, as: 'p' }, true));
    const now = pte(k, 'm', 0)!;
    expect([k.pfnOf({ map: 'm', page: 0 }) !== shared, now.write, now.uffdWp]).toEqual([true, false, true]);
  });
});

describe('uffd-unit-tests.c wp-fork-pin: a pinned uffd-wp page copied at fork', () => {
  // the parent pins its uffd-wp page, so fork gives the child an early copy (copy_present_page());
  // from v5.14 (8f34f1eac382) "Uffd-wp needs to be delivered to dest pte as well" when the child's
  // VMA stays registered (EVENT_FORK); without the event the child's VMA is unregistered: no bit
  function pinnedFork(features: ('pagefault-flag-wp' | 'event-fork')[]) {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    k.run(k.uffdApi({ features }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    k.run(k.gup({ map: 'm', page: 0, as: 'p' }, true));
    if (features.includes('event-fork')) forkWithMonitor(k);
    else k.run(k.fork({ as: 'child' }));
    const c = pte(k, 'm', 0, 'child')!;
    return { copied: k.pfnOf({ map: 'm', page: 0, process: 'child' }) !== k.pfnOf({ map: 'm', page: 0 }), write: c.write, wp: c.uffdWp === true };
  }

  it('with UFFD_FEATURE_EVENT_FORK the child\'s copy is uffd-wp and read-only; without it, an ordinary writable copy', () => {
    expect(pinnedFork(['pagefault-flag-wp', 'event-fork'])).toEqual({ copied: true, write: false, wp: true });
    expect(pinnedFork(['pagefault-flag-wp'])).toEqual({ copied: true, write: true, wp: false });
  });
});

describe('UFFDIO_COPY, ZEROPAGE and CONTINUE into shmem (mfill_atomic)', () => {
  /** a 2-page memfd, optionally page 0 written through a second mapping, and 'm' registered with these modes */
  function memfd(version: string, mode: ('missing' | 'minor')[], opts: { shared?: boolean; cached?: boolean } = {}): Kernel {
    const k = kernel(version);
    k.run(k.memfdCreate({ file: 'fd', size: 2 * PAGE }));
    if (opts.cached) {
      k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, as: 'other' }));
      k.run(k.write({ map: 'other', page: 0, data: 'cached' }));
    }
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: opts.shared ?? true, write: true, as: 'm' }));
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'm', mode }));
    return k;
  }

  it('shared: the copy is a page-cache page (the cache\'s reference and the PTE\'s), writable and dirty; the waiting read wakes', () => {
    const k = memfd('latest', ['missing']);
    const reader = startBlocked(k.read({ map: 'm', page: 0 }));
    k.run(k.uffdCopy({ map: 'm', page: 0, data: 'copied' }));
    expect(finish(reader)).toBe('copied');
    const p = k.pfnOf({ map: 'm', page: 0 })!;
    expect([k.folios.isAnon(p), k.folios.rc(p), k.pfnOf({ file: 'fd', page: 0 }) === p, pte(k, 'm', 0)!.write, pte(k, 'm', 0)!.dirty]).toEqual([false, 2, true, true, true]);
    // a second copy of the same index meets the page in the cache: EEXIST (shmem_add_to_page_cache)
    k.run(k.munmap({ map: 'm' }));
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, as: 'm2' }));
    k.run(k.uffdRegister({ map: 'm2', mode: ['missing'] }));
    expect(code(() => k.run(k.uffdCopy({ map: 'm2', page: 0, data: 'again' })))).toBe('EEXIST');
  });

  it('shared: UFFDIO_ZEROPAGE puts a zeroed page in the cache (not the zero page)', () => {
    const k = memfd('latest', ['missing']);
    k.run(k.uffdZeropage({ map: 'm', page: 1 }));
    const p = k.pfnOf({ map: 'm', page: 1 })!;
    expect([k.isZeroPfn(p), k.pfnOf({ file: 'fd', page: 1 }) === p, k.run(k.read({ map: 'm', page: 1 }))]).toEqual([false, true, '']);
  });

  it('private: the copy is an anonymous page (the file is untouched); past i_size is EFAULT', () => {
    const k = memfd('latest', ['missing'], { shared: false });
    k.run(k.uffdCopy({ map: 'm', page: 0, data: 'private' }));
    const p = k.pfnOf({ map: 'm', page: 0 })!;
    expect([k.folios.isAnon(p), k.pfnOf({ file: 'fd', page: 0 })]).toEqual([true, null]);
    k.run(k.truncate({ file: 'fd', size: PAGE }));
    expect(code(() => k.run(k.uffdCopy({ map: 'm', page: 1, data: 'x' })))).toBe('EFAULT');
  });

  it('MINOR + UFFDIO_CONTINUE maps the cached page itself: shared writable, private read-only (page_in_cache && !vm_shared)', () => {
    const k = memfd('latest', ['minor'], { cached: true });
    const reader = startBlocked(k.read({ map: 'm', page: 0 }));
    k.run(k.uffdContinue({ map: 'm', page: 0 }));
    expect(finish(reader)).toBe('cached');
    const cachedPfn = k.pfnOf({ map: 'other', page: 0 });
    expect([k.pfnOf({ map: 'm', page: 0 }) === cachedPfn, pte(k, 'm', 0)!.write]).toEqual([true, true]);
    const priv = memfd('latest', ['minor'], { shared: false, cached: true });
    priv.run(priv.uffdContinue({ map: 'm', page: 0 }));
    expect([priv.pfnOf({ map: 'm', page: 0 }) === priv.pfnOf({ map: 'other', page: 0 }), pte(priv, 'm', 0)!.write]).toEqual([true, false]);
  });

  it('UFFDIO_CONTINUE: EFAULT where the cache has no page, EINVAL on anonymous memory, EINVAL (unknown ioctl) before v5.13', () => {
    const k = memfd('latest', ['minor']);
    expect(code(() => k.run(k.uffdContinue({ map: 'm', page: 1 })))).toBe('EFAULT');
    const a = kernel();
    registered(a);
    expect(code(() => a.run(a.uffdContinue({ map: 'm', page: 0 })))).toBe('EINVAL');
    const old = memfd('v5.10', ['missing']);
    expect(code(() => old.run(old.uffdContinue({ map: 'm', page: 0 })))).toBe('EINVAL');
  });
});

describe('GUP and userfaults: FAULT_FLAG_ALLOW_RETRY needs a `locked` GUP may drop', () => {
  /** what a pin of an empty MISSING-registered page does: 'sleeps' or the errno */
  function pinOutcome(version: string, opts: { fast?: boolean; longterm?: boolean }): string {
    const k = kernel(version);
    registered(k);
    const op = k.gup({ map: 'm', page: 0, write: true, as: 'p', ...opts }, true);
    try {
      for (;;) {
        const r = op.next();
        if (r.done) return 'pinned';
        if (r.value.kind === 'block' && !r.value.ready()) return 'sleeps';
      }
    } catch (e) {
      return (e as { code?: string }).code ?? String(e);
    }
  }

  it('pin_user_pages() before v6.3 passes no `locked`: VM_FAULT_SIGBUS, EFAULT; from v6.3 it sleeps like the CPU fault', () => {
    expect(['v5.10', 'v6.1', 'v6.3', 'latest'].map((v) => pinOutcome(v, {}))).toEqual(['EFAULT', 'EFAULT', 'sleeps', 'sleeps']);
  });

  it('pin_user_pages_fast() falls back to get_user_pages_unlocked(): sleeps in every release, except FOLL_LONGTERM before v6.3 (__gup_longterm_locked without `locked`)', () => {
    expect(['v5.10', 'v6.1', 'latest'].map((v) => pinOutcome(v, { fast: true }))).toEqual(['sleeps', 'sleeps', 'sleeps']);
    expect(['v5.10', 'v6.1', 'latest'].map((v) => pinOutcome(v, { fast: true, longterm: true }))).toEqual(['EFAULT', 'EFAULT', 'sleeps']);
  });

  it('/proc/PID/mem (access_remote_vm(), NULL `locked`) never sleeps: the write fails with EIO in every release', () => {
    for (const v of ['v5.10', 'latest']) {
      const k = kernel(v);
      registered(k);
      expect({ v, e: code(() => k.run(k.procMemWrite({ map: 'm', page: 0, data: 'x' }))) }).toEqual({ v, e: 'EIO' });
    }
  });
});

describe('read() of the userfaultfd (uffd-read)', () => {
  it('a sleeping fault\'s UFFD_EVENT_PAGEFAULT: its page and FLAG_WRITE; read once; nothing else pending is EAGAIN with O_NONBLOCK', () => {
    const k = kernel();
    registered(k, { pages: 2 });
    expect(code(() => k.run(k.uffdRead({ nonblock: true })))).toBe('EAGAIN');
    const writer = startBlocked(k.write({ map: 'm', page: 1, data: 'w' }));
    expect(k.run(k.uffdRead({ nonblock: true, map: 'm' }))).toEqual({ event: 'pagefault', page: 1, write: true, wp: false, minor: false });
    expect(code(() => k.run(k.uffdRead({ nonblock: true })))).toBe('EAGAIN'); // read already: the fault still sleeps
    k.run(k.uffdCopy({ map: 'm', page: 1, data: 'h' }));
    finish(writer);
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('w'); // the retried write lands on the copied page
  });

  it('a WP fault says FLAG_WP; a fault woken before anyone read it leaves no message behind', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    k.run(k.uffdApi({ features: ['pagefault-flag-wp'] }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    const writer = startBlocked(k.write({ map: 'm', page: 0, data: 'b' }));
    expect(k.run(k.uffdRead({ map: 'm' }))).toEqual({ event: 'pagefault', page: 0, write: true, wp: true, minor: false });
    k.run(k.uffdWriteprotect({ map: 'm', enable: false }));
    finish(writer);
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    const again = startBlocked(k.write({ map: 'm', page: 0, data: 'c' }));
    k.run(k.uffdWriteprotect({ map: 'm', enable: false }));
    finish(again);
    expect(code(() => k.run(k.uffdRead({ nonblock: true })))).toBe('EAGAIN');
  });

  it('EVENT_FORK: fork() sleeps until the monitor reads UFFD_EVENT_FORK, which hands over the child\'s userfaultfd', () => {
    const k = kernel();
    registered(k, { features: ['event-fork'] });
    expect(() => k.run(k.fork({ as: 'child' }))).toThrow(BlockedError);
    const k2 = kernel();
    registered(k2, { features: ['event-fork'] });
    const fork = startBlocked(k2.fork({ as: 'child' }));
    expect(k2.run(k2.uffdRead({}))).toEqual({ event: 'fork', child: 'child' });
    finish(fork);
    // the child's VMA stays registered (MISSING) with the handed-over ctx: the monitor resolves its faults
    const reader = startBlocked(k2.read({ map: 'm', page: 0, process: 'child' }));
    k2.run(k2.uffdCopy({ map: 'm', page: 0, data: 'for-child', process: 'child' }));
    expect(finish(reader)).toBe('for-child');
  });
});

describe('close() of the userfaultfd (uffd-close)', () => {
  it('unregisters every range and wakes the sleeping fault, which the kernel then resolves (the zero page)', () => {
    const k = kernel();
    registered(k, { pages: 2 });
    const reader = startBlocked(k.read({ map: 'm', page: 0 }));
    k.run(k.uffdClose({}));
    expect(finish(reader)).toBe('');
    expect(k.isZeroPfn(k.pfnOf({ map: 'm', page: 0 })!)).toBe(true);
    const mm = k.process(undefined);
    expect(mm.vmas.filter((v) => v.name === 'm').map((v) => [v.pages, v.uffd === undefined, v.flags.uffdMissing === undefined])).toEqual([[2, true, true]]);
  });

  it('a fork waiting for its UFFD_EVENT_FORK to be read returns once the userfaultfd is closed', () => {
    const k = kernel();
    registered(k, { features: ['event-fork'] });
    const fork = startBlocked(k.fork({ as: 'child' }));
    k.run(k.uffdClose({}));
    finish(fork);
    // release_new_ctx: the child's copy of the registration goes with the unread event
    expect(k.processes.get('child')!.vmas.find((v) => v.name === 'm')!.uffd).toBeUndefined();
  });
});

describe('UFFDIO_COPY_MODE_WP in a VMA without VM_WRITE', () => {
  it('the uffd-wp bit only inside the VM_WRITE branch up to v5.17; from v5.18 regardless of VM_WRITE (so a later mprotect(PROT_WRITE) still reports the write)', () => {
    const bit = (version: string) => {
      const k = kernel(version);
      registered(k, { write: false, mode: ['missing', 'wp'], features: ['pagefault-flag-wp'] });
      k.run(k.uffdCopy({ map: 'm', page: 0, data: 'x', wp: true }));
      k.run(k.mprotect({ map: 'm', write: true }));
      return [pte(k, 'm', 0)!.uffdWp === true, pte(k, 'm', 0)!.write];
    };
    expect([bit('v5.10'), bit('v6.1')]).toEqual([[false, false], [true, false]]);
  });
});

describe('wp_page_copy() re-checks the entry it read (pte_same), in-place changes included', () => {
  it('a COW write paused after allocating its copy, then UFFDIO_WRITEPROTECT of the page: the copy is dropped and the retried write goes to the handler', () => {
    // The parent's page is shared with a fork child, so the parent's write COWs (wp_page_copy).
    // UFFDIO_WRITEPROTECT runs under mmap_read_lock, so it may set the uffd-wp bit while the fault
    // sleeps between allocating the copy and taking the PTE lock; pte_same() then fails, the copy
    // is freed and the fault retried, and the retry meets the uffd-wp bit: handle_userfault().
    const k = kernel('v6.6');
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    k.run(k.uffdApi({ features: ['pagefault-flag-wp'] }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
    k.run(k.fork({ as: 'child' }));
    const shared = k.pfnOf({ map: 'm', page: 0 })!;
    const rcBefore = k.folios.rc(shared); // parent's and child's mappings
    const write = k.write({ map: 'm', page: 0, data: 'b' });
    for (;;) {
      const r = write.next();
      if (r.done) throw new Error('the write completed before wp_page_copy');
      if (r.value.kind === 'preempt' && r.value.point === 'wp_page_copy') break;
    }
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    const r = write.next();
    expect(r.done).toBe(false);
    expect(!r.done && r.value.kind === 'block' && !r.value.ready()).toBe(true);
    // no copy was mapped: the parent still maps the shared page, write-protected, contents 'a'
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(shared);
    expect(k.folios.rc(shared)).toBe(rcBefore);
    expect(pte(k, 'm', 0)!.uffdWp).toBe(true);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('a');
  });
});

describe('UFFDIO_WRITEPROTECT over several VMAs (v6.4) goes VMA by VMA in address order', () => {
  it('a VMA not registered for WP above a registered one: ENOENT after the lower one was protected', () => {
    // mwriteprotect_range() walks for_each_vma_range() and calls uffd_wp_range() on each VMA before
    // it looks at the next, so the refusal of the upper VMA comes after the lower one changed.
    // 'hi' is mapped first, 'lo' below it second: the model's VMA list is then not in address
    // order, and the walk must sort it. Different protections keep the two VMAs from merging.
    // Up to v6.3 the range must lie in one VMA (find_dst_vma()): ENOENT, nothing changed.
    const result = (v: string): [string | null, boolean | undefined] => {
      const k = kernel(v);
      k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'area' }));
      k.run(k.mmap({ anon: true, length: PAGE, fixed: { map: 'area', offset: PAGE }, as: 'hi' }));
      k.run(k.mmap({ anon: true, length: PAGE, write: true, fixed: { map: 'area', offset: 0 }, as: 'lo' }));
      k.run(k.write({ map: 'lo', page: 0, data: 'x' }));
      k.run(k.uffdApi({ features: ['pagefault-flag-wp'] }));
      k.run(k.uffdRegister({ map: 'lo', mode: ['wp'] }));
      return [code(() => k.run(k.uffdWriteprotect({ map: 'area', enable: true }))), pte(k, 'lo', 0)!.uffdWp];
    };
    expect(result('v6.1')).toEqual(['ENOENT', undefined]);
    expect(result('v6.6')).toEqual(['ENOENT', true]);
    expect(result('latest')).toEqual(['ENOENT', true]);
  });
});
