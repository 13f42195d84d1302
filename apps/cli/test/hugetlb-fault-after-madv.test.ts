import { exploreScenario, isExploreResult, PRESETS, type ExploreResult, type PluginCatalog } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { endSummary, exploreScenarioFile, inOrder } from './explore-family.js';

// tools/testing/selftests/mm/hugetlb_fault_after_madv.c (docs/selftests.md, "Coverage:
// hugetlb_fault_after_madv.c") as explore/hugetlb-fault-vs-madv.yaml: every interleaving of two
// writes of the first byte and one MADV_DONTNEED of a private huge page, the pool's only one. The
// test passes when no write is ever SIGBUS: on v6.1 and v6.3 one interleaving is (the fault runs
// between the zap's unmap and its TLB flush, which is when the page goes back to the pool); from
// v6.6 the zap holds the hugetlb VMA lock until the page is freed and no interleaving is.

const catalog: PluginCatalog = { arch: { x86: () => x86(), arm64: () => arm64() }, fs: {}, driver: {} };
const FILE = 'hugetlb-fault-vs-madv.yaml';

function explore(arch: string, version: string): ExploreResult {
  const r = exploreScenario(exploreScenarioFile(FILE), { arch, fs: null, driver: null, version, features: {} }, catalog);
  if (!isExploreResult(r)) throw new Error(`${FILE} on ${arch} ${version}: ${r.status}: ${r.reason}`);
  return r;
}

const sigbus = (r: ExploreResult): string[] => r.allowedFailures.flatMap((f) => f.messages).filter((m) => /SIGBUS/.test(m));
/** The verdict the test prints: FAIL when some interleaving kills the writer with SIGBUS. */
const verdict = (r: ExploreResult): 'pass' | 'FAIL' => (sigbus(r).length > 0 ? 'FAIL' : 'pass');
const EXPECTED: Record<string, 'pass' | 'FAIL'> = { 'v5.4': 'pass', 'v5.10': 'pass', 'v6.1': 'FAIL', 'v6.3': 'FAIL', 'v6.6': 'pass', 'v6.15': 'pass', latest: 'pass' };

describe('hugetlb_fault_after_madv.c: a write fault racing MADV_DONTNEED of the pool\'s only huge page', () => {
  for (const arch of ['x86', 'arm64']) {
    it(`${arch}: every interleaving explored; SIGBUS on v6.1 and v6.3 only`, () => {
      const got: Record<string, 'pass' | 'FAIL'> = {};
      for (const { name } of PRESETS) {
        const r = explore(arch, name);
        // no invariant broken and every schedule completes; on v6.6+ a SIGBUS would fail the step (no maySucceed there)
        expect({ ...endSummary(r), failures: [] }, `${arch} ${name}`).toMatchObject({ status: 'pass', complete: true, outcome: 'completed', violations: [] });
        got[name] = verdict(r);
      }
      expect(got).toEqual(EXPECTED);
    });
  }

  it('v6.3: the SIGBUS comes from a fault after the zap cleared the entry and before its TLB flush freed the page', () => {
    const r = explore('x86', 'v6.3');
    const failure = r.allowedFailures.find((f) => f.messages.some((m) => /SIGBUS/.test(m)))!;
    expect(failure.messages.join('\n')).toMatch(/hugetlb_no_page: no free huge page/);
    // the first write maps the page, the zap clears the PMD, the second write faults, and the
    // zap's reference drop (tlb_finish_mmu: the page back to the pool) never came before it
    expect(inOrder(failure.trace, [/step thread=touch index=0/, /pte\.clear .*level=pmd/, /step thread=touch index=1/, /fault .*kind=hugetlb/])).toBe(true);
    const cleared = failure.trace.findIndex((l) => /pte\.clear/.test(l));
    expect(failure.trace.slice(cleared).some((l) => /page\.ref .*delta=-1/.test(l))).toBe(false);
  });

  it('v6.6: the fault that comes during the zap waits on the hugetlb VMA lock and takes the freed page', () => {
    const r = explore('x86', 'v6.6');
    expect(sigbus(r)).toEqual([]);
    expect(r.stepFailures).toEqual([]);
  });
});
