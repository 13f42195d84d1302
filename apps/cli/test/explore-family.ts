import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exploreScenario, isExploreResult, loadScenarioFile, runScenario, type CellKernelRequest, type ExploreResult, type PluginCatalog, type Scenario } from '@daxlab/core';
import { describe, expect, it } from 'vitest';

/** The explore scenarios shipped with the CLI (apps/cli/scenarios/explore). */
export const EXPLORE_DIR = fileURLToPath(new URL('../scenarios/explore/', import.meta.url));

export function exploreScenarioFile(name: string): Scenario {
  return loadScenarioFile(join(EXPLORE_DIR, name), `explore/${name}`);
}

type Features = Record<string, string | boolean>;

/** Explore a scenario file on one kernel; fails the test if the cell could not be built. */
export function exploreOn(catalog: PluginCatalog, file: string, fs: string | null, driver: string | null, version: string, features: Features = {}): ExploreResult {
  const r = exploreScenario(exploreScenarioFile(file), { arch: 'x86', fs, driver, version, features }, catalog);
  if (!isExploreResult(r)) throw new Error(`${file} on ${fs} ${version}: ${r.status}: ${r.reason}`);
  return r;
}

const names = (r: ExploreResult): string[] => r.violations.map((v) => v.invariant);

/** What an explore run says at the end: status, completeness, outcome, broken invariants, failed steps, a blocked run. */
export const endSummary = (r: ExploreResult) => ({ status: r.status, complete: r.complete, outcome: r.outcome, violations: names(r), failures: r.stepFailures.flatMap((f) => f.messages), blocked: r.blocked });
/** endSummary() of a run that explored every interleaving and found nothing wrong. */
export const CLEAN = { status: 'pass', complete: true, outcome: 'completed', violations: [], failures: [], blocked: null };

/** Whether trace lines matching each pattern occur in this order. */
export function inOrder(trace: readonly string[], patterns: readonly RegExp[]): boolean {
  let at = 0;
  for (const p of patterns) {
    while (at < trace.length && !p.test(trace[at]!)) at++;
    if (at++ >= trace.length) return false;
  }
  return true;
}

/** Every violation's and the blocked run's schedule, replayed by `run`, gives the same finding. */
export function expectReplays(catalog: PluginCatalog, file: string, req: CellKernelRequest, r: ExploreResult): void {
  const scenario = exploreScenarioFile(file);
  for (const v of r.violations) {
    const again = runScenario(scenario, req, catalog, { schedule: v.schedule });
    expect(again.violations.map((x) => x.invariant), `${v.invariant} replayed`).toContain(v.invariant);
  }
  if (r.blocked) {
    const again = runScenario(scenario, req, catalog, { schedule: r.blocked.schedule });
    expect(again.outcome, 'blocked run replayed').toBe('blocked');
  }
}

const BROKEN = ['block-freed-while-pinned', 'dma-to-foreign-block'];

/** The three refcount conventions with the release orderings (no bug variant). */
const CORRECT: readonly [string, string, Features][] = [
  ['legacy (v6.6 without the mapping_mapped() early return)', 'v6.6', { 'dax-busy-mapping-mapped-check': false }],
  ['zero-based (v6.15)', 'v6.15', {}],
  ['entry-holds-ref', 'v6.15', { 'fsdax-refcount': 'entry-holds-ref' }],
];

/**
 * The seed-004 family under `explore` on one filesystem (issue 6): the bug variants break the
 * invariants in some interleaving, the release orderings never do, and the liveness question
 * of the zero-based convention is answered with a schedule.
 */
export function exploreSeed004Family(fs: string, catalog: PluginCatalog): void {
  const driver = 'nvdimm';
  const req = (version: string, features: Features = {}): CellKernelRequest => ({ arch: 'x86', fs, driver, version, features });
  const explore = (file: string, version: string, features: Features = {}) => exploreOn(catalog, file, fs, driver, version, features);

  describe(`seed 004 under explore on ${fs}: map, pin, truncate, end DMA`, () => {
    for (const [what, version, features] of CORRECT) {
      it(`${what}: every interleaving completes with no violation`, () => {
        const r = explore('truncate-vs-dma.yaml', version, features);
        expect({ status: r.status, complete: r.complete, outcome: r.outcome, violations: names(r), failures: r.failures }).toEqual({ status: 'pass', complete: true, outcome: 'completed', violations: [], failures: [] });
        expect(r.ends.completed).toBeGreaterThan(0);
        expect(r.states).toBeGreaterThan(r.depth);
      });
    }

    const bugs: readonly [string, string, Features][] = [
      ['the mapping_mapped() early return (v6.6)', 'v6.6', {}],
      ['the mapping_mapped() early return on zero-based counting', 'v6.15', { 'dax-busy-mapping-mapped-check': true }],
      ['the DAX entries deleted before the wait (zero-based)', 'v6.15', { 'dax-delete-entries-before-wait': true }],
      ['the DAX entries deleted before the wait (legacy)', 'v6.6', { 'dax-busy-mapping-mapped-check': false, 'dax-delete-entries-before-wait': true }],
    ];
    for (const [what, version, features] of bugs) {
      it(`${what}: some interleaving frees the pinned block and the DMA lands in another file`, () => {
        const r = explore('truncate-vs-dma.yaml', version, features);
        expect({ status: r.status, complete: r.complete, violations: names(r) }).toEqual({ status: 'pass', complete: true, violations: BROKEN });
        // the first counterexample is a shortest one: the free comes before the DMA into the reused block
        const [freed, dma] = r.violations;
        expect(freed!.length).toBeLessThan(dma!.length);
        expect(freed!.trace.at(-1)).toMatch(/block\.free/);
        expect(dma!.trace.at(-1)).toMatch(/dma\.write/);
        expectReplays(catalog, 'truncate-vs-dma.yaml', req(version, features), r);
      });
    }

    it('the off-by-one idle wait (refcount 1 under zero-based counting) misses a FOLL_GET reference', () => {
      const r = explore('truncate-vs-get.yaml', 'v6.15', { 'dax-wait-refcount-one': true });
      expect({ status: r.status, complete: r.complete, violations: names(r) }).toEqual({ status: 'pass', complete: true, violations: BROKEN });
      expectReplays(catalog, 'truncate-vs-get.yaml', req('v6.15', { 'dax-wait-refcount-one': true }), r);
    });

    it('the off-by-one idle wait never ends for a pin (the unpin takes the page from 1024 to 0): blocked', () => {
      const r = explore('truncate-vs-dma.yaml', 'v6.15', { 'dax-wait-refcount-one': true });
      expect({ status: r.status, outcome: r.outcome, violations: names(r) }).toEqual({ status: 'pass', outcome: 'blocked', violations: [] });
      expect(r.blocked!.messages.join()).toMatch(/become idle/);
      expectReplays(catalog, 'truncate-vs-dma.yaml', req('v6.15', { 'dax-wait-refcount-one': true }), r);
    });

    for (const [what, version, features] of CORRECT) {
      it(`${what}: a FOLL_GET reference is waited for too`, () => {
        const r = explore('truncate-vs-get.yaml', version, features);
        expect({ status: r.status, outcome: r.outcome, violations: names(r) }).toEqual({ status: 'pass', outcome: 'completed', violations: [] });
      });
    }
  });

  describe(`break-layouts liveness under explore on ${fs} (shared/baselines/spin finding 1)`, () => {
    it('legacy counting: a page faulted back in during the wait does not stop truncate', () => {
      const r = explore('truncate-refault.yaml', 'v6.6', { 'dax-busy-mapping-mapped-check': false });
      expect({ status: r.status, complete: r.complete, outcome: r.outcome, blocked: r.blocked }).toEqual({ status: 'pass', complete: true, outcome: 'completed', blocked: null });
    });

    for (const [what, version, features] of CORRECT.slice(1)) {
      it(`${what}: truncate can wait forever once the process re-faults the page and keeps it mapped`, () => {
        const r = explore('truncate-refault.yaml', version, features);
        expect({ status: r.status, complete: r.complete, outcome: r.outcome, violations: names(r) }).toEqual({ status: 'pass', complete: true, outcome: 'blocked', violations: [] });
        const b = r.blocked!;
        expect(b.messages).toEqual([expect.stringMatching(/^threads\[1\]\.steps\[0\]: blocked — wait for pfn \d+ of a to become idle$/)]);
        // the hang: truncate waits, the application faults the page back in, then unpins
        expect(inOrder(b.trace, [/ dax\.wait /, / fault mm=init /, / gup\.unpin /])).toBe(true);
        // and some other interleaving still completes
        expect(r.ends.completed).toBeGreaterThan(0);
        expectReplays(catalog, 'truncate-refault.yaml', req(version, features), r);
      });

      it(`${what}: the same run completes when the process unmaps after the unpin`, () => {
        const r = explore('truncate-refault-munmap.yaml', version, features);
        expect({ status: r.status, complete: r.complete, outcome: r.outcome }).toEqual({ status: 'pass', complete: true, outcome: 'completed' });
      });
    }
  });
}
