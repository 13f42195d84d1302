import { createKernel, KernelError, PRESETS, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { memset, runWithThp, snapshot, verdict, type Mem, type Verdict } from './cow-cases.js';
import { errnoOf } from './selftest-api.js';

// cow.c's anon_thp_test_cases[] (do_test_anon_thp_collapse) on x86's 2 MiB THP, through the API,
// per preset (docs/selftests.md, "cow.c — verdicts per release (anonymous THP collapse)", written
// before this ran): SKIP before v6.1 (no MADV_COLLAPSE), pass from v6.1 -- but "fully shared" SKIPs
// in every release: right after fork() every PTE of the range is write-protected, and
// hpage_collapse_scan_pmd() wants one writable PTE (SCAN_PAGE_RO -> EINVAL), as the run published
// with the test shows ("ok 170 # SKIP MADV_COLLAPSE failed: Invalid argument").

const NR = 512;
const PAGE = 4096;
type Collapse = 'unshared' | 'fully-shared' | 'lower-shared' | 'upper-shared';
type Outcome = Verdict | 'SKIP';

function collapse(k: Kernel, m: Mem): boolean {
  try {
    k.run(k.madvise({ map: 'mem', advice: 'collapse', offset: m.first * PAGE, length: m.pages * PAGE }));
    return true;
  } catch (e) {
    // "MADV_COLLAPSE failed" -> KSFT_SKIP
    if (e instanceof KernelError) return false;
    throw e;
  }
}

function run(version: string, test: Collapse): Outcome {
  const k = createKernel({ arch: x86(), kernel: version });
  const m = runWithThp(k, 'pmd', NR);
  const at = (page: number): number => (m.first + page) * PAGE;
  const half = m.pages / 2;
  // mprotect(mem + pagesize, pagesize, PROT_READ) and back: PTE-map the THP
  k.run(k.mprotect({ map: 'mem', offset: at(1), length: PAGE, write: false }));
  k.run(k.mprotect({ map: 'mem', offset: at(1), length: PAGE, write: true }));
  if (test === 'unshared' && !collapse(k, m)) return 'SKIP';
  if (test === 'lower-shared') k.run(k.madvise({ map: 'mem', advice: 'dontfork', offset: at(half), length: half * PAGE }));
  if (test === 'upper-shared') k.run(k.madvise({ map: 'mem', advice: 'dontfork', offset: at(0), length: half * PAGE }));
  k.run(k.fork({ as: 'child' }));
  // child_memcmp_fn() on what the child shares: all of it, its lower or its upper half
  const shared: Mem = test === 'lower-shared' ? { first: m.first, pages: half } : test === 'upper-shared' ? { first: m.first + half, pages: half } : m;
  const old = snapshot(k, shared, 'child');
  if (test === 'lower-shared' || test === 'upper-shared') k.run(k.madvise({ map: 'mem', advice: 'dofork', offset: at(0), length: m.pages * PAGE }));
  if (test !== 'unshared' && !collapse(k, m)) return 'SKIP';
  memset(k, m, '0xff');
  return verdict(JSON.stringify(snapshot(k, shared, 'child')) === JSON.stringify(old));
}

describe('cow.c anon THP collapse cases, per release (x86, 2 MiB THP)', () => {
  for (const { name: version } of PRESETS) {
    it(`${version}: ${['v5.4', 'v5.10'].includes(version) ? 'SKIP (no MADV_COLLAPSE before v6.1)' : 'three pass, fully shared SKIPs (SCAN_PAGE_RO)'}`, () => {
      const want: Outcome = ['v5.4', 'v5.10'].includes(version) ? 'SKIP' : 'pass';
      const got = (['unshared', 'fully-shared', 'lower-shared', 'upper-shared'] as const).map((t) => [t, run(version, t)]);
      expect(got).toEqual(['unshared', 'fully-shared', 'lower-shared', 'upper-shared'].map((t) => [t, t === 'fully-shared' ? 'SKIP' : want]));
    });
  }

  it('the collapse: a new THP mapped by one PMD (rc 1, mapcount 1, exclusive) with the old data; the child keeps the old folio', () => {
    const k = createKernel({ arch: x86(), kernel: 'latest' });
    const m = runWithThp(k, 'pmd', NR);
    const old = k.pfnOf({ map: 'mem', page: m.first })!;
    k.run(k.mprotect({ map: 'mem', offset: (m.first + 1) * PAGE, length: PAGE, write: false }));
    k.run(k.mprotect({ map: 'mem', offset: (m.first + 1) * PAGE, length: PAGE, write: true }));
    // the one-page mprotect split the THP's VMA in three; back to read-write they merge again
    expect(k.processes.get('init')!.vmas.map((v) => v.pages)).toEqual([NR, NR]);
    k.run(k.fork({ as: 'child' }));
    expect([k.refcount(old), k.mapcount(old)]).toEqual([2 * NR, 2 * NR]);
    // every PTE is write-protected now: SCAN_PAGE_RO
    expect(collapse(k, m)).toBe(false);
    // one write COWs subpage 7 into a writable page of its own (old: 2 * NR - 1), which the scan needs
    k.run(k.write({ map: 'mem', page: m.first + 7, data: 'seven' }));
    expect(collapse(k, m)).toBe(true);
    const head = k.pfnOf({ map: 'mem', page: m.first })!;
    expect(head).not.toBe(old);
    expect(k.processes.get('init')!.pmds.get(k.processes.get('init')!.ranges.get('mem')!.start + m.first)).toMatchObject({ level: 'pmd', pfn: head, write: true, dirty: true });
    expect([k.refcount(head), k.mapcount(head), k.anonExclusive(head)]).toEqual([1, 1, true]);
    expect(k.run(k.read({ map: 'mem', page: m.first + 7 }))).toBe('seven');
    expect(k.run(k.read({ map: 'mem', page: m.first + NR - 1 }))).toBe('0x01');
    // the parent's 511 remaining PTE references and mappings went; the child's 512 stay
    expect([k.refcount(old), k.mapcount(old)]).toEqual([NR, NR]);
    expect(k.pfnOf({ map: 'mem', page: m.first, process: 'child' })).toBe(old);
  });

  it('a pinned page stops the collapse (is_refcount_suitable): EINVAL on v6.1, EAGAIN from v6.2; VM_NOHUGEPAGE refuses with EINVAL', () => {
    const errno = (version: string, how: 'pin' | 'nohugepage'): string => {
      const k = createKernel({ arch: x86(), kernel: version });
      const m = runWithThp(k, 'pte', NR);
      if (how === 'pin') k.run(k.gup({ map: 'mem', page: m.first + 3, pages: 1, longterm: true, as: 'p' }, true));
      else k.run(k.madvise({ map: 'mem', advice: 'nohugepage', offset: m.first * PAGE, length: m.pages * PAGE }));
      return errnoOf(() => k.run(k.madvise({ map: 'mem', advice: 'collapse', offset: m.first * PAGE, length: m.pages * PAGE })));
    };
    expect([errno('v6.1', 'pin'), errno('v6.3', 'pin'), errno('latest', 'pin')]).toEqual(['EINVAL', 'EAGAIN', 'EAGAIN']);
    expect(errno('latest', 'nohugepage')).toBe('EINVAL');
    expect(errno('v5.10', 'pin')).toBe('EINVAL');
  });
});
