import { describe, expect, it } from 'vitest';
import { createKernel, PRESETS, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';

// mlock(2) and friends (mm/mlock.ts): the VMA side of mm/mlock.c. The expectations follow
// tools/testing/selftests/mm/mlock2-tests.c. Its lock_check() reads smaps: VmFlags "lo" and
// Rss == Size. Its is_vma_lock_on_fault() wants "lo" and Rss < Size after one touched page. The
// VMA checks come from /proc/self/maps. Every call exists in every modelled release (v4.4).

const PAGE = 4096;
const RELEASES = PRESETS.map((p) => p.name);

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

const locked = (k: Kernel, map: string, page: number, process?: string) => k.isLockedIn({ map, page, ...(process ? { process } : {}) });
/** smaps Rss in pages: the pages of [0, pages) of the mapping that a PTE maps */
const rss = (k: Kernel, map: string, pages: number) => Array.from({ length: pages }, (_, page) => k.isMappedIn({ map, page })).filter(Boolean).length;
/** the VMA (by its start) holding page `page` of mapping `map` in init */
const vmaStart = (k: Kernel, map: string, page: number) => k.vm.vmaAt(k.process(undefined), k.process(undefined).ranges.get(map)!.start + page)!.start;

describe('mlock2-tests.c', () => {
  it('test_mlock_lock: mlock2(0) locks and populates both pages ("Locked"); munlock clears "lo" ("Unlocked"), in every release', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'map' }));
      k.run(k.mlock({ map: 'map' }));
      expect({ version, lo: locked(k, 'map', 0), rss: rss(k, 'map', 2) }).toEqual({ version, lo: true, rss: 2 });
      // populated by write faults (a private writable mapping): pages of its own, not the zero page
      expect(k.isZeroPfn(k.pfnOf({ map: 'map', page: 1 })!)).toBe(false);
      k.run(k.munlock({ map: 'map' }));
      expect([locked(k, 'map', 0), locked(k, 'map', 1)]).toEqual([false, false]);
    }
  });

  it('test_mlock_onfault: MLOCK_ONFAULT sets "lo" but populates nothing; after one write Rss < Size; munlock clears it', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'map' }));
    k.run(k.mlock({ map: 'map', onfault: true }));
    expect(rss(k, 'map', 2)).toBe(0);
    k.run(k.write({ map: 'map', page: 0, data: 'a' }));
    expect({ lo: locked(k, 'map', 0), rss: rss(k, 'map', 2) }).toEqual({ lo: true, rss: 1 });
    k.run(k.munlock({ map: 'map' }));
    expect([locked(k, 'map', 0), locked(k, 'map', 1)]).toEqual([false, false]);
  });

  it('test_lock_onfault_of_present: a present page stays, the other stays unpopulated, the VMA is lock-on-fault', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'map' }));
    k.run(k.write({ map: 'map', page: 0, data: 'a' }));
    k.run(k.mlock({ map: 'map', onfault: true }));
    expect({ lo: locked(k, 'map', 1), rss: rss(k, 'map', 2) }).toEqual({ lo: true, rss: 1 });
  });

  it('test_munlockall0 / test_munlockall1: MCL_CURRENT locks and populates, MCL_ONFAULT only locks, munlockall unlocks; MCL_FUTURE reaches later mmaps', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'map' }));
    k.run(k.mlockall({ current: true, onfault: true }));
    expect({ lo: locked(k, 'map', 0), rss: rss(k, 'map', 2) }).toEqual({ lo: true, rss: 0 });
    k.run(k.munlockall({}));
    expect(locked(k, 'map', 0)).toBe(false);
    k.run(k.mlockall({ current: true, future: true }));
    expect({ lo: locked(k, 'map', 1), rss: rss(k, 'map', 2) }).toEqual({ lo: true, rss: 2 });
    // mm->def_flags: a new mapping comes locked and populated (do_mmap() -> mm_populate())
    k.run(k.mmap({ anon: true, length: 3 * PAGE, write: true, as: 'later' }));
    expect({ lo: locked(k, 'later', 2), rss: rss(k, 'later', 3) }).toEqual({ lo: true, rss: 3 });
    k.run(k.munlockall({}));
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'after' }));
    expect([locked(k, 'map', 0), locked(k, 'later', 0), locked(k, 'after', 0), rss(k, 'after', 1)]).toEqual([false, false, false, 0]);
  });

  it('mlockall without MCL_CURRENT or MCL_FUTURE is EINVAL (MCL_ONFAULT alone too)', () => {
    const k = kernel();
    expect(code(() => k.run(k.mlockall({})))).toBe('EINVAL');
    expect(code(() => k.run(k.mlockall({ onfault: true })))).toBe('EINVAL');
  });

  it('test_vma_management: munlock of the middle page splits the locked VMA in three; munlock of all merges them back', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 3 * PAGE, write: true, as: 'map' }));
    k.run(k.mlock({ map: 'map', onfault: true }));
    const one = [0, 1, 2].map((p) => vmaStart(k, 'map', p));
    expect(new Set(one).size).toBe(1);
    k.run(k.munlock({ map: 'map', offset: PAGE, length: PAGE }));
    const three = [0, 1, 2].map((p) => vmaStart(k, 'map', p));
    expect(new Set(three).size).toBe(3);
    expect([locked(k, 'map', 0), locked(k, 'map', 1), locked(k, 'map', 2)]).toEqual([true, false, true]);
    k.run(k.munlock({ map: 'map' }));
    expect(new Set([0, 1, 2].map((p) => vmaStart(k, 'map', p))).size).toBe(1);
  });
});

describe('what VM_LOCKED changes elsewhere', () => {
  it('MADV_DONTNEED, FREE, COLD and PAGEOUT refuse a locked VMA with EINVAL; MADV_DONTNEED_LOCKED zaps it', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'map' }));
    k.run(k.mlock({ map: 'map' }));
    for (const advice of ['dontneed', 'free', 'cold', 'pageout'] as const) expect({ advice, errno: code(() => k.run(k.madvise({ map: 'map', advice }))) }).toEqual({ advice, errno: 'EINVAL' });
    expect(rss(k, 'map', 2)).toBe(2);
    k.run(k.madvise({ map: 'map', advice: 'dontneed-locked' }));
    expect({ rss: rss(k, 'map', 2), lo: locked(k, 'map', 0) }).toEqual({ rss: 0, lo: true });
  });

  it('fork: the child\'s copy is not locked, the parent\'s stays locked (dup_mmap)', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'map' }));
    k.run(k.mlock({ map: 'map' }));
    k.run(k.fork({ as: 'child' }));
    expect([locked(k, 'map', 0), locked(k, 'map', 0, 'child')]).toEqual([true, false]);
  });

  it('MAP_LOCKED: locked and populated at mmap; a shared mapping read-faults the cache page', () => {
    const k = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: 2 * PAGE }));
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, locked: true, as: 'm' }));
    expect({ lo: locked(k, 'm', 0), rss: rss(k, 'm', 2), cache: k.pfnOf({ map: 'm', page: 1 }) === k.pfnOf({ file: 'fd', page: 1 }) }).toEqual({ lo: true, rss: 2, cache: true });
  });

  it('MAP_POPULATE into a lock-on-fault VMA (mlockall(MCL_FUTURE | MCL_ONFAULT)) populates nothing: populate_vma_page_range() skips VM_LOCKONFAULT', () => {
    const k = kernel();
    k.run(k.mlockall({ future: true, onfault: true }));
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, populate: true, as: 'm' }));
    expect({ lo: locked(k, 'm', 0), rss: rss(k, 'm', 2) }).toEqual({ lo: true, rss: 0 });
    // without the lock-on-fault default the same mmap populates both pages
    k.run(k.munlockall({}));
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, populate: true, as: 'n' }));
    expect(rss(k, 'n', 2)).toBe(2);
  });

  it('mlock of a hole in the range is ENOMEM after the VMA before it was locked (apply_vma_lock_flags)', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 3 * PAGE, write: true, as: 'map' }));
    k.run(k.munmap({ map: 'map', offset: PAGE, length: PAGE }));
    expect(code(() => k.run(k.mlock({ map: 'map' })))).toBe('ENOMEM');
    expect([locked(k, 'map', 0), locked(k, 'map', 2)]).toEqual([true, false]);
  });
});
