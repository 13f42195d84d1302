import { PRESETS, runScenario, type CellKernelRequest, type PluginCatalog } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { ppcHash } from '@daxlab/arch-ppc-hash';
import { s390 } from '@daxlab/arch-s390';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { exploreScenario, isExploreResult } from '@daxlab/core';
import { CLEAN, endSummary, exploreScenarioFile } from './explore-family.js';

// GUP-fast racing a khugepaged collapse (apps/cli/scenarios/explore/collapse-vs-gup-fast.yaml;
// mm/collapse.ts collapseRange(), mm/gup.ts fast()): 70cbc3cc78a9 "mm: gup: fix the fast GUP race
// against THP collapse". Its commit message draws the race: GUP-fast sees a valid PMD and works on
// the PTE; the collapse clears the PMD and flushes, then checks the page is not pinned; GUP-fast
// pins the page and finds the PTE unchanged; the collapse copies the data, maps the huge page and
// discards the small one; GUP-fast returns the stale page. It needs a TLB flush that does not wait
// for GUP-fast: arm64 and s390, not x86 (IPI) or ppc64 hash (serialize_against_pte_lookup()).

const catalog: PluginCatalog = { arch: { x86: () => x86(), arm64: () => arm64(), s390: () => s390(), 'ppc-hash': () => ppcHash() }, fs: {}, driver: {} };
const FILE = 'collapse-vs-gup-fast.yaml';
const req = (arch: string, version: string): CellKernelRequest => ({ arch, fs: null, driver: null, version, features: {} });
const explore = (arch: string, version: string) => {
  const r = exploreScenario(exploreScenarioFile(FILE), req(arch, version), catalog);
  if (!isExploreResult(r)) throw new Error(`${FILE} on ${arch} ${version}: ${r.status}: ${r.reason}`);
  return r;
};
const beforeFix = (version: string) => version === 'v5.4' || version === 'v5.10';

describe('GUP-fast racing a THP collapse, under every interleaving', () => {
  for (const version of PRESETS.map((p) => p.name)) {
    for (const arch of ['x86', 'ppc-hash']) {
      it(`${arch} ${version}: the collapse flush waits for GUP-fast: no stale pin`, () => {
        const r = explore(arch, version);
        expect(endSummary(r)).toEqual(CLEAN);
        // two ends: the pin came first and the collapse gave up on the extra reference
        // (SCAN_PAGE_COUNT), or the collapse came first and the pin (GUP-fast found no PMD, the
        // slow path waited for mmap_lock) is of the huge page
        expect(r.ends.completed).toBe(2);
      });
    }
    for (const arch of ['arm64', 's390']) {
      if (beforeFix(version)) {
        it(`${arch} ${version}: the PTE-only re-check lets GUP-fast return the old page`, () => {
          const r = explore(arch, version);
          expect(r.complete).toBe(true);
          expect(r.violations.map((v) => v.invariant)).toEqual(['pinned-page-diverged']);
          // the commit message's order, shortest: the walk reads the PTE; the collapse clears the
          // PMD and counts the references; the walk grabs and re-checks; the collapse copies
          const v = r.violations[0]!;
          expect(v.schedule.map((s) => [s.thread, s.slices ?? 1])).toEqual([['app', 1], ['khugepaged', 1], ['app', 2], ['khugepaged', 1]]);
          const again = runScenario(exploreScenarioFile(FILE), req(arch, version), catalog, { schedule: v.schedule });
          expect(again.violations.map((x) => x.invariant)).toContain('pinned-page-diverged');
        });
      } else {
        it(`${arch} ${version}: the PMD re-check backs GUP-fast off`, () => {
          const r = explore(arch, version);
          expect(endSummary(r)).toEqual(CLEAN);
          // a third end: the walk read the PTE before the flush, grabbed after the count, saw the
          // PMD gone and dropped its reference, then pinned the huge page through the slow path
          expect(r.ends.completed).toBe(3);
        });
      }
    }
  }
});
