import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';
import { finish, forkWithMonitor, protectedPage, pte, startBlocked } from './uffd-helpers.js';

// uffd-wp beyond present anonymous PTEs (mm/userfaultfd.ts): PTE_MARKER_UFFD_WP on shmem (v5.19)
// and, with UFFD_FEATURE_WP_UNPOPULATED, anonymous memory (v6.4); the bit on swap entries (v5.7);
// what zap, fork and UFFDIO_UNREGISTER do with both. The test arch is x86-64 (uffd-wp bit from v5.7).

const PAGE = 4096;
type Feature = 'pagefault-flag-wp' | 'event-fork' | 'wp-unpopulated';

function kernel(version: string): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

function wpBit(k: Kernel, map: string, page: number, process?: string): boolean {
  return k.isUffdWpIn({ map, page, ...(process ? { process } : {}) });
}

/** A 2-page memfd mapped as 'm' (shared unless told), registered for WP (plus `modes`). */
function shmem(version: string, opts: { shared?: boolean; features?: Feature[]; modes?: ('missing' | 'wp')[] } = {}): Kernel {
  const k = kernel(version);
  k.run(k.memfdCreate({ file: 'fd', size: 2 * PAGE }));
  k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: opts.shared ?? true, write: true, as: 'm' }));
  k.run(k.uffdApi({ features: opts.features ?? ['pagefault-flag-wp'] }));
  k.run(k.uffdRegister({ map: 'm', mode: opts.modes ?? ['wp'] }));
  return k;
}

describe('uffd-wp on shmem: PTE_MARKER_UFFD_WP (v5.19)', () => {
  it('UFFDIO_WRITEPROTECT of an empty entry installs a marker; the read maps the cached page uffd-wp and read-only; the write sleeps until resolved', () => {
    const k = shmem('latest');
    k.run(k.uffdWriteprotect({ map: 'm', offset: 0, length: PAGE, enable: true }));
    // change_pte_range(): a none PTE of a file VMA gets make_pte_marker(PTE_MARKER_UFFD_WP); page 1 was not in the range
    expect([pte(k, 'm', 0)?.marker, pte(k, 'm', 0)?.uffdWp, wpBit(k, 'm', 0), pte(k, 'm', 1)]).toEqual([true, true, true, null]);
    // the read fault on the marker is do_fault(): shmem_fault() allocates the page (the cache had
    // none, and the VMA is not MISSING-registered), set_pte_range() maps it pte_mkuffd_wp(pte_wrprotect())
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('');
    expect([pte(k, 'm', 0)!.marker ?? false, pte(k, 'm', 0)!.write, pte(k, 'm', 0)!.uffdWp]).toEqual([false, false, true]);
    const writer = startBlocked(k.write({ map: 'm', page: 0, data: 'w' }));
    expect(k.run(k.uffdRead({ nonblock: true, map: 'm' }))).toEqual({ event: 'pagefault', page: 0, write: true, wp: true, minor: false });
    k.run(k.uffdWriteprotect({ map: 'm', offset: 0, length: PAGE, enable: false }));
    finish(writer);
    // the write landed in the page cache (a shared mapping: wp_page_shared reuses the cached page)
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(k.pfnOf({ file: 'fd', page: 0 }));
    expect(k.pages.data.get(k.pfnOf({ file: 'fd', page: 0 })!)).toBe('w');
  });

  it('a write fault straight on the marker populates the page write-protected, then sleeps in the userfault', () => {
    const k = shmem('v6.6');
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    const writer = startBlocked(k.write({ map: 'm', page: 1, data: 'w' }));
    // first fault: do_shared_fault() mapped the new cached page, uffd-wp and read-only; second: do_wp_page() -> handle_userfault(VM_UFFD_WP)
    expect([pte(k, 'm', 1)!.marker ?? false, pte(k, 'm', 1)!.uffdWp, k.pfnOf({ file: 'fd', page: 1 }) !== null]).toEqual([false, true, true]);
    k.run(k.uffdWriteprotect({ map: 'm', enable: false }));
    finish(writer);
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('w');
  });

  it('MADV_DONTNEED of a uffd-wp page leaves a marker (zap_install_uffd_wp_if_needed); the next read maps the same cached page, still protected', () => {
    const k = shmem('v6.1');
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    const cached = k.pfnOf({ file: 'fd', page: 0 });
    k.run(k.uffdWriteprotect({ map: 'm', offset: 0, length: PAGE, enable: true }));
    k.run(k.madvise({ map: 'm', advice: 'dontneed', offset: 0, length: PAGE }));
    expect([pte(k, 'm', 0)?.marker, wpBit(k, 'm', 0), k.pfnOf({ file: 'fd', page: 0 })]).toEqual([true, true, cached]);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('a');
    expect([k.pfnOf({ map: 'm', page: 0 }), pte(k, 'm', 0)!.write, wpBit(k, 'm', 0)]).toEqual([cached, false, true]);
  });

  it('a read fault in a shared VM_UFFD_WP mapping maps the page writable in v6.1, read-only from v6.2 (writenotify: 51d3d5eb74ff)', () => {
    const writable = (version: string) => {
      const k = shmem(version);
      k.run(k.read({ map: 'm', page: 0 }));
      return pte(k, 'm', 0)!.write;
    };
    expect([writable('v6.1'), writable('v6.3')]).toEqual([true, false]);
  });

  it('hole punching keeps the marker (unmap_mapping_range() passes no ZAP_FLAG_DROP_MARKER); munmap drops it', () => {
    const k = shmem('latest');
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    k.run(k.punchHole({ file: 'fd', offset: 0, length: PAGE }));
    expect([pte(k, 'm', 0)?.marker, pte(k, 'm', 0)?.uffdWp, k.pfnOf({ file: 'fd', page: 0 })]).toEqual([true, true, null]);
    const mm = k.processes.get('init')!;
    const start = mm.ranges.get('m')!.start;
    k.run(k.munmap({ map: 'm' }));
    expect([mm.ptes.has(start), mm.ptes.has(start + 1)]).toEqual([false, false]);
  });

  it('UFFDIO_UNREGISTER resets the protection from v6.0 (f369b07c8614): the marker goes', () => {
    const k = shmem('v6.1');
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    expect(wpBit(k, 'm', 1)).toBe(true);
    k.run(k.uffdUnregister({ map: 'm' }));
    expect([pte(k, 'm', 0), pte(k, 'm', 1)]).toEqual([null, null]);
  });

  it('before v6.0 UFFDIO_UNREGISTER leaves the bit in the PTE; close() resets it only from v6.9 ("reset ptes when close() for wr-protected ones")', () => {
    const unregistered = (version: string) => {
      const k = protectedPage(version);
      k.run(k.uffdUnregister({ map: 'm' }));
      return pte(k, 'm', 0)!.uffdWp === true;
    };
    const closed = (version: string) => {
      const k = protectedPage(version);
      k.run(k.uffdClose({}));
      return pte(k, 'm', 0)!.uffdWp === true;
    };
    expect([unregistered('v5.10'), unregistered('v6.1')]).toEqual([true, false]);
    expect([closed('v6.6'), closed('v6.15')]).toEqual([true, false]);
  });

  it('UFFDIO_COPY over a marker: a MISSING fault treats the marker as none (pte_none_mostly()), the copy overwrites it without MODE_WP', () => {
    const k = shmem('latest', { modes: ['missing', 'wp'] });
    k.run(k.uffdWriteprotect({ map: 'm', offset: 0, length: PAGE, enable: true }));
    const reader = startBlocked(k.read({ map: 'm', page: 0 }));
    expect(pte(k, 'm', 0)?.marker).toBe(true); // the marker stays while the fault sleeps
    k.run(k.uffdCopy({ map: 'm', page: 0, data: 'c' }));
    expect(finish(reader)).toBe('c');
    expect([pte(k, 'm', 0)!.uffdWp ?? false, wpBit(k, 'm', 0)]).toEqual([false, false]);
  });
});

describe('fork and uffd-wp markers (uffd-unit-tests.c wp-fork on shmem)', () => {
  /** the shared mapping's page 0 written, write-protected and zapped: a marker */
  function zapped(version: string, features: Feature[]): Kernel {
    const k = shmem(version, { features });
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    k.run(k.uffdWriteprotect({ map: 'm', offset: 0, length: PAGE, enable: true }));
    k.run(k.madvise({ map: 'm', advice: 'dontneed', offset: 0, length: PAGE }));
    return k;
  }

  it('with UFFD_FEATURE_EVENT_FORK the child VMA stays VM_UFFD_WP, so vma_needs_copy() copies the shared VMA and the marker: pagemap shows uffd-wp', () => {
    const k = zapped('latest', ['pagefault-flag-wp', 'event-fork']);
    forkWithMonitor(k);
    expect([pte(k, 'm', 0, 'child')?.marker, wpBit(k, 'm', 0, 'child')]).toEqual([true, true]);
  });

  it('without it the shared VMA is not copied (no anon_vma, no VM_UFFD_WP): the child has no bit', () => {
    const k = zapped('latest', ['pagefault-flag-wp']);
    k.run(k.fork({ as: 'child' }));
    expect([pte(k, 'm', 0, 'child'), wpBit(k, 'm', 0, 'child')]).toEqual([null, false]);
  });

  it('a private shmem VMA with an anon_vma is copied: v6.1 copies the marker into the unregistered child; "fix pte marker when fork() without fork event" (v6.2) does not', () => {
    const child = (version: string) => {
      const k = shmem(version, { shared: false });
      k.run(k.write({ map: 'm', page: 1, data: 'cow' })); // a COW page: the VMA gets an anon_vma
      k.run(k.uffdWriteprotect({ map: 'm', offset: 0, length: PAGE, enable: true }));
      k.run(k.fork({ as: 'child' }));
      return { marker: pte(k, 'm', 0, 'child')?.marker ?? false, pagemap: wpBit(k, 'm', 0, 'child'), k };
    };
    const old = child('v6.1');
    expect([old.marker, old.pagemap]).toEqual([true, true]);
    // the child's VMA is not VM_UFFD_WP: pte_marker_handle_uffd_wp() clears the leftover marker and
    // the read faults the file page in normally
    expect(old.k.run(old.k.read({ map: 'm', page: 0, process: 'child' }))).toBe('');
    expect(wpBit(old.k, 'm', 0, 'child')).toBe(false);
    const now = child('v6.3');
    expect([now.marker, now.pagemap]).toEqual([false, false]);
  });
});

describe('UFFD_FEATURE_WP_UNPOPULATED (v6.4): markers on empty anonymous entries (uffd-unit-tests.c wp-unpopulated)', () => {
  function anon(version: string, features: Feature[]): Kernel {
    const k = kernel(version);
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    k.run(k.uffdApi({ features }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
    return k;
  }

  it('the selftest sequence: protect, unprotect, protect + DONTNEED, write, protect + read', () => {
    const k = anon('v6.6', ['pagefault-flag-wp', 'wp-unpopulated']);
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    expect(wpBit(k, 'm', 0)).toBe(true); // "Test applying pte marker to anon unpopulated"
    k.run(k.uffdWriteprotect({ map: 'm', enable: false }));
    expect([wpBit(k, 'm', 0), pte(k, 'm', 0)]).toEqual([false, null]); // the resolve drops the marker
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    k.run(k.madvise({ map: 'm', advice: 'dontneed' }));
    expect([wpBit(k, 'm', 0), pte(k, 'm', 0)]).toEqual([false, null]); // "For anon: always drop the marker"
    k.run(k.write({ map: 'm', page: 0, data: '1' }));
    expect(wpBit(k, 'm', 0)).toBe(false);
    k.run(k.madvise({ map: 'm', advice: 'dontneed' }));
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    // "Test read-zero-page upon pte marker": do_anonymous_page() maps the zero page, uffd-wp (setpte:)
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('');
    expect([k.isZeroPfn(k.pfnOf({ map: 'm', page: 0 })!), wpBit(k, 'm', 0)]).toEqual([true, true]);
    // and a write on it traps: do_wp_page() asks userfaultfd_pte_wp() before anything else
    const writer = startBlocked(k.write({ map: 'm', page: 0, data: '2' }));
    k.run(k.uffdWriteprotect({ map: 'm', enable: false }));
    finish(writer);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('2');
  });

  it('without the feature an empty anonymous entry stays empty: nothing is protected, the write does not trap', () => {
    const k = anon('latest', ['pagefault-flag-wp']);
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    expect([pte(k, 'm', 0), wpBit(k, 'm', 0)]).toEqual([null, false]);
    k.run(k.write({ map: 'm', page: 0, data: 'x' }));
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('x');
  });

  it('UFFDIO_API refuses the feature before v6.4 (it is not in UFFD_API_FEATURES)', () => {
    const k = kernel('v6.3');
    expect(code(() => k.run(k.uffdApi({ features: ['pagefault-flag-wp', 'wp-unpopulated'] })))).toBe('EINVAL');
  });
});

describe('the uffd-wp bit across swap (try_to_unmap_one() / do_swap_page(), v5.7)', () => {
  /** page 0 written, write-protected and paged out (MADV_PAGEOUT) */
  function swapped(version: string, features: Feature[] = ['pagefault-flag-wp']): Kernel {
    const k = protectedPage(version, features);
    k.run(k.madvise({ map: 'm', advice: 'pageout' }));
    return k;
  }

  it('the swap entry keeps the bit (pte_swp_mkuffd_wp); pagemap shows it from v5.14', () => {
    for (const v of ['v5.10', 'v6.1', 'latest']) {
      const k = swapped(v);
      expect({ v, swap: pte(k, 'm', 0)?.swap !== undefined, bit: pte(k, 'm', 0)?.uffdWp, pagemap: wpBit(k, 'm', 0) }).toEqual({ v, swap: true, bit: true, pagemap: v !== 'v5.10' });
    }
  });

  it('a read swaps the page in uffd-wp and read-only (also v6.15, which maps an exclusive page writable on a read otherwise); the write then sleeps until resolved', () => {
    for (const v of ['v5.10', 'v6.1', 'v6.15']) {
      const k = swapped(v);
      expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('a');
      expect({ v, write: pte(k, 'm', 0)!.write, bit: pte(k, 'm', 0)!.uffdWp }).toEqual({ v, write: false, bit: true });
      const writer = startBlocked(k.write({ map: 'm', page: 0, data: 'b' }));
      k.run(k.uffdWriteprotect({ map: 'm', enable: false }));
      finish(writer);
      expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('b');
    }
  });

  it('a write straight on the swap entry traps too: the swap-in maps it protected, the retried write meets the userfault', () => {
    const k = swapped('latest');
    const writer = startBlocked(k.write({ map: 'm', page: 0, data: 'b' }));
    expect(pte(k, 'm', 0)!.swap).toBeUndefined();
    k.run(k.uffdWriteprotect({ map: 'm', enable: false }));
    finish(writer);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('b');
  });

  it('fork: the child\'s swap entry keeps the bit with EVENT_FORK, loses it without (v5.14+); v5.10 copied the entry as it was', () => {
    const without = swapped('latest');
    without.run(without.fork({ as: 'child' }));
    expect([wpBit(without, 'm', 0), wpBit(without, 'm', 0, 'child')]).toEqual([true, false]);
    const withEvent = swapped('latest', ['pagefault-flag-wp', 'event-fork']);
    forkWithMonitor(withEvent);
    expect(wpBit(withEvent, 'm', 0, 'child')).toBe(true);
    const old = swapped('v5.10');
    old.run(old.fork({ as: 'child' }));
    expect(pte(old, 'm', 0, 'child')!.uffdWp).toBe(true);
  });

  it('unprotecting clears the swap entry\'s bit (pte_swp_clear_uffd_wp): the page faults back in unprotected', () => {
    const k = swapped('latest');
    k.run(k.uffdWriteprotect({ map: 'm', enable: false }));
    expect([pte(k, 'm', 0)!.swap !== undefined, wpBit(k, 'm', 0)]).toEqual([true, false]);
    k.run(k.write({ map: 'm', page: 0, data: '2' }));
    expect([wpBit(k, 'm', 0), k.run(k.read({ map: 'm', page: 0 }))]).toEqual([false, '2']);
  });
});

describe('UFFDIO_COPY and UFFDIO_CONTINUE into hugetlbfs (mfill_atomic_hugetlb)', () => {
  const HPAGE = 2 * 1024 * 1024;
  const HP = HPAGE / PAGE; // 512 base pages per huge page

  /** a 2-huge-page hugetlbfs memfd mapped as 'm' (and optionally as 'other', unregistered) */
  function hugeFd(version: string, opts: { shared?: boolean; modes: ('missing' | 'minor')[]; other?: boolean }): Kernel {
    const k = kernel(version);
    k.run(k.hugetlbPool({ size: HPAGE, pages: 4 }));
    k.run(k.memfdCreate({ file: 'fd', size: 2 * HPAGE, hugetlb: HPAGE }));
    if (opts.other) k.run(k.mmap({ file: 'fd', length: 2 * HPAGE, shared: true, write: true, as: 'other' }));
    k.run(k.mmap({ file: 'fd', length: 2 * HPAGE, shared: opts.shared ?? true, write: true, as: 'm' }));
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'm', mode: opts.modes }));
    return k;
  }

  it('shared: the copy is a huge page-cache folio mapped writable and dirty; a second copy of the index is EEXIST; a misaligned start is EINVAL', () => {
    const k = hugeFd('v6.6', { modes: ['missing'] });
    expect(code(() => k.run(k.uffdCopy({ map: 'm', page: 1, pages: HP, data: 'c' })))).toBe('EINVAL');
    k.run(k.uffdCopy({ map: 'm', page: HP, pages: HP, data: 'c' }));
    const p = k.pfnOf({ map: 'm', page: HP })!;
    // the cache's reference and the mapping's; the whole huge page holds the data
    expect([k.pfnOf({ file: 'fd', page: HP }) === p, k.folios.rc(p), pte(k, 'm', HP)!.write, pte(k, 'm', HP)!.dirty, k.run(k.read({ map: 'm', page: 2 * HP - 1 }))]).toEqual([true, 2, true, true, 'c']);
    expect(code(() => k.run(k.uffdCopy({ map: 'm', page: HP, pages: HP, data: 'again' })))).toBe('EEXIST');
  });

  it('MINOR on hugetlbfs (v5.13): the read of a cached huge page waits; UFFDIO_CONTINUE maps the cached folio', () => {
    const k = hugeFd('v6.1', { modes: ['minor'], other: true });
    k.run(k.write({ map: 'other', page: 0, data: 'cached' }));
    const reader = startBlocked(k.read({ map: 'm', page: 0 }));
    expect(code(() => k.run(k.uffdContinue({ map: 'm', page: HP, pages: HP })))).toBe('EFAULT'); // index 1 is not cached
    k.run(k.uffdContinue({ map: 'm', page: 0, pages: HP }));
    expect(finish(reader)).toBe('cached');
    expect([k.pfnOf({ map: 'm', page: 0 }), pte(k, 'm', 0)!.write]).toEqual([k.pfnOf({ file: 'fd', page: 0 }), true]);
  });

  it('CONTINUE into a private mapping maps the cached folio read-only (is_continue && !vm_shared)', () => {
    const k = hugeFd('v6.1', { shared: false, modes: ['minor'], other: true });
    k.run(k.write({ map: 'other', page: 0, data: 'cached' }));
    k.run(k.uffdContinue({ map: 'm', page: 0, pages: HP }));
    expect([pte(k, 'm', 0)!.write, k.pfnOf({ map: 'm', page: 0 }) === k.pfnOf({ file: 'fd', page: 0 })]).toEqual([false, true]);
  });

  it('a copy into a PROT_READ mapping is read-only; dirty only when writable up to v5.18, always from v5.19 ("Always mark UFFDIO_COPY page dirty")', () => {
    const dirty = (version: string) => {
      const k = kernel(version);
      k.run(k.hugetlbPool({ size: HPAGE, pages: 1 }));
      k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: false, as: 'm' }));
      k.run(k.uffdApi({}));
      k.run(k.uffdRegister({ map: 'm', mode: ['missing'] }));
      k.run(k.uffdCopy({ map: 'm', page: 0, pages: HP, data: 'c' }));
      return [pte(k, 'm', 0)!.write, pte(k, 'm', 0)!.dirty];
    };
    expect([dirty('v5.10'), dirty('v6.1')]).toEqual([[false, false], [false, true]]);
  });
});

describe('uffd-wp on hugetlbfs (hugetlb_change_protection(), v5.19)', () => {
  const HPAGE = 2 * 1024 * 1024;
  const HP = HPAGE / PAGE;

  /** a 2-huge-page hugetlbfs memfd mapped as 'm', registered for WP */
  function huge(version: string, opts: { shared?: boolean; features?: Feature[] } = {}): Kernel {
    const k = kernel(version);
    k.run(k.hugetlbPool({ size: HPAGE, pages: 4 }));
    k.run(k.memfdCreate({ file: 'fd', size: 2 * HPAGE, hugetlb: HPAGE }));
    k.run(k.mmap({ file: 'fd', length: 2 * HPAGE, shared: opts.shared ?? true, write: true, as: 'm' }));
    k.run(k.uffdApi({ features: opts.features ?? ['pagefault-flag-wp'] }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
    return k;
  }

  it('a protected huge entry is read-only and uffd-wp; the write sleeps; the resolve gives it vm_page_prot: writable in v6.1, read-only once VM_UFFD_WP means writenotify (v6.2)', () => {
    for (const [v, writableAfterResolve] of [['v6.1', true], ['v6.6', false]] as const) {
      const k = huge(v);
      k.run(k.write({ map: 'm', page: 0, data: 'a' }));
      k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
      expect([pte(k, 'm', 0)!.level, pte(k, 'm', 0)!.write, wpBit(k, 'm', 5)]).toEqual(['pmd', false, true]);
      const writer = startBlocked(k.write({ map: 'm', page: 5, data: 'b' }));
      expect(k.run(k.uffdRead({ nonblock: true, map: 'm' }))).toEqual({ event: 'pagefault', page: 5, write: true, wp: true, minor: false });
      k.run(k.uffdWriteprotect({ map: 'm', enable: false }));
      expect({ v, write: pte(k, 'm', 0)!.write }).toEqual({ v, write: writableAfterResolve });
      // the write retried: hugetlb_wp() on a shared mapping makes the entry writable
      finish(writer);
      expect([k.run(k.read({ map: 'm', page: 0 })), k.run(k.read({ map: 'm', page: 5 }))]).toEqual(['a', 'b']);
    }
  });

  it('an empty huge entry gets a huge marker; until v6.2 only where a page table already was (pre-allocation fix)', () => {
    const markerAt = (version: string, touchFirst: boolean) => {
      const k = huge(version);
      if (touchFirst) k.run(k.write({ map: 'm', page: 0, data: 'a' }));
      k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
      const p = pte(k, 'm', HP);
      return p ? `${p.level}:${p.marker === true && p.uffdWp === true}` : 'none';
    };
    expect([markerAt('v6.1', false), markerAt('v6.1', true), markerAt('v6.3', false)]).toEqual(['none', 'pmd:true', 'pmd:true']);
  });

  it('MADV_DONTNEED of a protected huge page leaves a huge marker ("Restore the PTE marker if it was uffd-wp"); the refault maps the cached page uffd-wp', () => {
    const k = huge('latest');
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    const cached = k.pfnOf({ file: 'fd', page: 0 });
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    k.run(k.madvise({ map: 'm', advice: 'dontneed', offset: 0, length: HPAGE }));
    expect([pte(k, 'm', 0)?.marker, wpBit(k, 'm', 0)]).toEqual([true, true]);
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('');
    expect([k.pfnOf({ map: 'm', page: 0 }), pte(k, 'm', 0)!.write, wpBit(k, 'm', 0)]).toEqual([cached, false, true]);
  });

  it('fork: the child of a private mapping keeps the bit only with EVENT_FORK; a shared mapping is copied only then (vma_needs_copy)', () => {
    const child = (shared: boolean, event: boolean) => {
      const k = huge('v6.6', { shared, features: event ? ['pagefault-flag-wp', 'event-fork'] : ['pagefault-flag-wp'] });
      k.run(k.write({ map: 'm', page: 0, data: 'a' }));
      k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
      if (event) forkWithMonitor(k);
      else k.run(k.fork({ as: 'child' }));
      return [pte(k, 'm', 0, 'child') !== null, wpBit(k, 'm', 0, 'child')];
    };
    expect([child(false, false), child(false, true), child(true, false), child(true, true)]).toEqual([[true, false], [true, true], [false, false], [true, true]]);
  });

  it('before "mm/hugetlb: fix uffd-wp during fork()" (v6.4) the child of a private mapping kept the bit without EVENT_FORK, and the early-COW copy of a pinned page lost it with EVENT_FORK', () => {
    const stale = (version: string) => {
      const k = huge(version, { shared: false });
      k.run(k.write({ map: 'm', page: 0, data: 'a' }));
      k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
      k.run(k.fork({ as: 'child' }));
      return wpBit(k, 'm', 0, 'child');
    };
    const earlyCow = (version: string) => {
      const k = huge(version, { shared: false, features: ['pagefault-flag-wp', 'event-fork'] });
      k.run(k.write({ map: 'm', page: 0, data: 'a' }));
      k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
      k.run(k.gup({ map: 'm', page: 0, longterm: true, as: 'p' }, true)); // a R/O long-term pin of the exclusive page
      forkWithMonitor(k);
      const copied = k.pfnOf({ map: 'm', page: 0, process: 'child' }) !== k.pfnOf({ map: 'm', page: 0 });
      return [copied, wpBit(k, 'm', 0, 'child'), pte(k, 'm', 0, 'child')!.write];
    };
    expect([stale('v6.3'), stale('v6.6')]).toEqual([true, false]);
    expect([earlyCow('v6.3'), earlyCow('v6.6')]).toEqual([[true, false, true], [true, true, false]]);
  });
});

describe('swapoff(2) and the uffd-wp bit (try_to_unuse() -> unuse_pte())', () => {
  /** page 0 written (soft-dirty after clear_refs), write-protected with the bit, paged out */
  function swappedWp(version: string): Kernel {
    const k = kernel(version);
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    k.run(k.clearRefs({}));
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    k.run(k.uffdApi({ features: ['pagefault-flag-wp'] }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    k.run(k.madvise({ map: 'm', advice: 'pageout' }));
    return k;
  }

  it('from v5.19 the page comes back read-only, old, with its uffd-wp and soft-dirty bits ("fix lost swap bits in unuse_pte()"); the swap is empty and PAGEOUT no longer swaps', () => {
    const k = swappedWp('v6.1');
    k.run(k.swapoff());
    const p = pte(k, 'm', 0)!;
    expect([p.swap === undefined, p.write, p.uffdWp, k.isSoftDirtyIn({ map: 'm', page: 0 }), k.swap.used]).toEqual([true, false, true, true, 0]);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('a');
    k.run(k.uffdWriteprotect({ map: 'm', enable: false }));
    k.run(k.madvise({ map: 'm', advice: 'pageout' }));
    expect([pte(k, 'm', 0)!.swap, k.swap.used]).toEqual([undefined, 0]);
  });

  it('v5.10: pte_same_as_swp() does not ignore the uffd-wp bit (fixed in v5.13), the entry never matches and try_to_unuse() retries forever', () => {
    const k = swappedWp('v5.10');
    const off = startBlocked(k.swapoff());
    expect(pte(k, 'm', 0)!.swap).toBeDefined();
    expect(() => finish(off)).toThrow(/still blocked: swapoff: try_to_unuse\(\) retries forever/);
  });

  it('v5.10 without uffd-wp: swapoff brings the page back but loses its soft-dirty bit (restored by unuse_pte() only from v5.19)', () => {
    const k = kernel('v5.10');
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    k.run(k.clearRefs({}));
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    k.run(k.madvise({ map: 'm', advice: 'pageout' }));
    expect(k.isSoftDirtyIn({ map: 'm', page: 0 })).toBe(true); // pte_swp_mksoft_dirty() at swap-out
    k.run(k.swapoff());
    expect([pte(k, 'm', 0)!.swap, k.isSoftDirtyIn({ map: 'm', page: 0 }), k.run(k.read({ map: 'm', page: 0 }))]).toEqual([undefined, false, 'a']);
  });
});

describe('UFFDIO_WRITEPROTECT of hugetlb wants whole huge pages', () => {
  it('a range that is not a multiple of the huge page is EINVAL (mwriteprotect_range: page_mask)', () => {
    const k = kernel('latest');
    k.run(k.hugetlbPool({ size: 2 * 1024 * 1024, pages: 1 }));
    k.run(k.memfdCreate({ file: 'fd', size: 2 * 1024 * 1024, hugetlb: 2 * 1024 * 1024 }));
    k.run(k.mmap({ file: 'fd', length: 2 * 1024 * 1024, shared: true, write: true, as: 'm' }));
    k.run(k.uffdApi({ features: ['pagefault-flag-wp'] }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
    expect(code(() => k.run(k.uffdWriteprotect({ map: 'm', offset: 0, length: PAGE, enable: true })))).toBe('EINVAL');
    expect(code(() => k.run(k.uffdWriteprotect({ map: 'm', enable: true })))).toBe(null);
  });
});
