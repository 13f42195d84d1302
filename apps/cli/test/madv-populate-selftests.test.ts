import { createKernel, Monitor, PRESETS, type Kernel } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { ARCHES, errnoOf } from './selftest-api.js';

// tools/testing/selftests/mm/madv_populate.c (docs/selftests.md, "Coverage: madv_populate.c"),
// driven through the kernel API: every ksft_test_result() of the test functions the model covers,
// per arch and release, on the whole 2 MiB (every page checked, not a sample as in the scenarios
// of apps/cli/scenarios/selftests/madv-populate).

const RELEASES = PRESETS.map((p) => p.name);
const SIZE = 2 * 1024 * 1024;

type Verdict = 'pass' | 'FAIL' | 'SKIP';

/** sense_support(): both advices on one page of private anonymous memory, else ksft_exit_skip. */
function sensed(arch: string, version: string): { k: Kernel; ps: number; pages: number; m: Monitor } | 'SKIP' {
  const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  const ps = k.mmu.basePageSize;
  k.run(k.mmap({ anon: true, length: ps, write: true, as: 'sense' }));
  if (errnoOf(() => k.run(k.madvise({ map: 'sense', advice: 'populate-read' }))) !== 'ok') return 'SKIP';
  if (errnoOf(() => k.run(k.madvise({ map: 'sense', advice: 'populate-write' }))) !== 'ok') return 'SKIP';
  k.run(k.munmap({ map: 'sense' }));
  return { k, ps, pages: SIZE / ps, m: new Monitor(k) };
}

const every = (pages: number, f: (page: number) => boolean) => Array.from({ length: pages }, (_, page) => page).every(f);

/** Each test function's ksft_test_result() conditions, in order. */
const TESTS: Record<string, (k: Kernel, ps: number, pages: number) => boolean[]> = {
  test_prot_read: (k) => {
    k.run(k.mmap({ anon: true, length: SIZE, as: 'addr' }));
    return [errnoOf(() => k.run(k.madvise({ map: 'addr', advice: 'populate-read' }))) === 'ok', errnoOf(() => k.run(k.madvise({ map: 'addr', advice: 'populate-write' }))) === 'EINVAL'];
  },
  test_holes: (k, ps) => {
    k.run(k.mmap({ anon: true, length: SIZE, write: true, as: 'addr' }));
    k.run(k.munmap({ map: 'addr', offset: ps, length: ps }));
    const enomem = (more: { offset?: number; length?: number }) => (['populate-read', 'populate-write'] as const).map((advice) => errnoOf(() => k.run(k.madvise({ map: 'addr', advice, ...more }))) === 'ENOMEM');
    // in the middle, at the end, at the beginning
    return [...enomem({}), ...enomem({ length: 2 * ps }), ...enomem({ offset: ps, length: ps })];
  },
  test_populate_read: (k, _ps, pages) => {
    k.run(k.mmap({ anon: true, length: SIZE, write: true, as: 'addr' }));
    const populated = () => every(pages, (page) => k.isMappedIn({ map: 'addr', page }));
    const before = every(pages, (page) => !k.isMappedIn({ map: 'addr', page }));
    return [before, errnoOf(() => k.run(k.madvise({ map: 'addr', advice: 'populate-read' }))) === 'ok', populated()];
  },
  test_populate_write: (k, _ps, pages) => {
    k.run(k.mmap({ anon: true, length: SIZE, write: true, as: 'addr' }));
    const before = every(pages, (page) => !k.isMappedIn({ map: 'addr', page }));
    return [before, errnoOf(() => k.run(k.madvise({ map: 'addr', advice: 'populate-write' }))) === 'ok', every(pages, (page) => k.isMappedIn({ map: 'addr', page }))];
  },
  test_softdirty: (k, _ps, pages) => {
    k.run(k.mmap({ anon: true, length: SIZE, write: true, as: 'addr' }));
    const soft = (want: boolean) => every(pages, (page) => k.isSoftDirtyIn({ map: 'addr', page }) === want);
    k.run(k.clearRefs({}));
    const clean = soft(false);
    const read = errnoOf(() => k.run(k.madvise({ map: 'addr', advice: 'populate-read' }))) === 'ok';
    const stillClean = soft(false);
    const write = errnoOf(() => k.run(k.madvise({ map: 'addr', advice: 'populate-write' }))) === 'ok';
    return [clean, read, stillClean, write, soft(true)];
  },
};

function verdict(arch: string, version: string, test: string): Verdict {
  const s = sensed(arch, version);
  if (s === 'SKIP') return 'SKIP';
  const results = TESTS[test]!(s.k, s.ps, s.pages);
  expect(s.m.violations, `${arch} ${version} ${test}`).toEqual([]);
  return results.every(Boolean) ? 'pass' : 'FAIL';
}

describe('selftests/mm/madv_populate.c verdicts per arch and release', () => {
  // MADV_POPULATE_(READ|WRITE) are v5.14 (4ca9b3859dac): sense_support() skips before
  const allPass = Object.fromEntries(RELEASES.map((v) => [v, v === 'v5.4' || v === 'v5.10' ? 'SKIP' : 'pass']));
  for (const test of Object.keys(TESTS)) {
    it(test, () => {
      const got = Object.fromEntries(Object.keys(ARCHES).map((arch) => [arch, Object.fromEntries(RELEASES.map((v) => [v, verdict(arch, v, test)]))]));
      // arm64 has no soft-dirty bit (no HAVE_ARCH_SOFT_DIRTY): pagemap never shows one, so
      // "range is softdirty" after MADV_POPULATE_WRITE fails there
      const arm64 = test === 'test_softdirty' ? Object.fromEntries(Object.entries(allPass).map(([v, r]) => [v, r === 'pass' ? 'FAIL' : r])) : allPass;
      expect(got).toEqual({ x86: allPass, arm64, 'ppc-hash': allPass, s390: allPass });
    });
  }

  it('a hole: up to v6.9 the VMAs after it are populated before ENOMEM (madvise_walk_vmas), from v6.10 the call stops at it (faultin_page_range)', () => {
    const after = Object.fromEntries(RELEASES.filter((v) => v !== 'v5.4' && v !== 'v5.10').map((v) => {
      const s = sensed('x86', v);
      if (s === 'SKIP') throw new Error(`${v} has the advices`);
      const { k, ps, pages } = s;
      k.run(k.mmap({ anon: true, length: SIZE, write: true, as: 'addr' }));
      k.run(k.munmap({ map: 'addr', offset: ps, length: ps }));
      expect(errnoOf(() => k.run(k.madvise({ map: 'addr', advice: 'populate-write' }))), v).toBe('ENOMEM');
      expect(k.isWritableIn({ map: 'addr', page: 0 }), v).toBe(true);
      return [v, [2, pages - 1].map((page) => k.isMappedIn({ map: 'addr', page }))];
    }));
    expect(after).toEqual({ 'v6.1': [true, true], 'v6.3': [true, true], 'v6.6': [true, true], 'v6.15': [false, false], latest: [false, false] });
  });
});
