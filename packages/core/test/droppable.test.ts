import { describe, expect, it } from 'vitest';
import { createKernel, PRESETS, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';

// MAP_DROPPABLE (9651fcedf7b9 "mm: add MAP_DROPPABLE for designating always lazily freeable
// mappings", v6.11; mm/mmap.c do_mmap(), mm/mlock.c mlock_fixup(), mm/madvise.c) and the two rows of
// tools/testing/selftests/mm/mlock2-tests.c about it: test_mlock_droppable and
// test_mlockall_future_droppable ("droppable memory not locked": smaps VmFlags without "lo").

const PAGE = 4096;
const RELEASES = PRESETS.map((p) => p.name);

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

const droppable = (k: Kernel, as: string, more: Partial<Parameters<Kernel['mmap']>[0]> = {}) => k.run(k.mmap({ anon: true, droppable: true, length: 2 * PAGE, write: true, as, ...more }));

describe('MAP_DROPPABLE', () => {
  it('is a mapping type from v6.11: EINVAL before (the selftests SKIP on it), a VMA in v6.15 and latest', () => {
    const table = Object.fromEntries(RELEASES.map((v) => [v, code(() => droppable(kernel(v), 'd')) ?? 'ok']));
    expect(table).toEqual({ 'v5.4': 'EINVAL', 'v5.10': 'EINVAL', 'v6.1': 'EINVAL', 'v6.3': 'EINVAL', 'v6.6': 'EINVAL', 'v6.15': 'ok', latest: 'ok' });
  });

  it('private anonymous memory only: shared, a file, MAP_LOCKED and MAP_HUGETLB are EINVAL (do_mmap())', () => {
    const k = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: 2 * PAGE }));
    expect(code(() => droppable(k, 'a', { shared: true }))).toBe('EINVAL');
    expect(code(() => k.run(k.mmap({ file: 'fd', droppable: true, length: 2 * PAGE, as: 'b' })))).toBe('EINVAL');
    expect(code(() => droppable(k, 'c', { locked: true }))).toBe('EINVAL');
    expect(code(() => droppable(k, 'e', { hugetlb: 2 * 1024 * 1024 }))).toBe('EINVAL');
  });

  it('test_mlock_droppable: mlock2(0) succeeds and leaves it unlocked (mlock_fixup() filters VM_DROPPABLE), v6.15 and latest', () => {
    for (const v of ['v6.15', 'latest']) {
      const k = kernel(v);
      droppable(k, 'map');
      k.run(k.mlock({ map: 'map' }));
      expect([v, k.isLockedIn({ map: 'map', page: 0 }), k.isLockedIn({ map: 'map', page: 1 })]).toEqual([v, false, false]);
    }
  });

  it('test_mlockall_future_droppable: under mlockall(MCL_CURRENT | MCL_FUTURE) v6.15 locks (and populates) it -- the selftest FAILs -- and latest does not ("mm: prevent droppable mappings from being locked")', () => {
    const at = (v: string) => {
      const k = kernel(v);
      k.run(k.mlockall({ current: true, future: true }));
      droppable(k, 'map');
      return { lo: k.isLockedIn({ map: 'map', page: 0 }), populated: k.isMappedIn({ map: 'map', page: 1 }) };
    };
    // v6.15: __mmap_complete() keeps VM_LOCKED and do_mmap() populates both pages
    expect(at('v6.15')).toEqual({ lo: true, populated: true });
    expect(at('latest')).toEqual({ lo: false, populated: false });
  });

  it('VM_WIPEONFORK comes with it: the fork child sees an empty VMA (zero page), and MADV_KEEPONFORK is EINVAL', () => {
    const k = kernel();
    droppable(k, 'map');
    k.run(k.write({ map: 'map', page: 0, data: 'secret' }));
    k.run(k.fork({ as: 'child' }));
    expect(k.run(k.read({ map: 'map', page: 0, process: 'child' }))).toBe('');
    expect(k.run(k.read({ map: 'map', page: 0 }))).toBe('secret');
    expect(code(() => k.run(k.madvise({ map: 'map', advice: 'keeponfork' })))).toBe('EINVAL');
  });
});
