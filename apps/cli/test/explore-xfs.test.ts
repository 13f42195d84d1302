import { exploreScenario, isExploreResult, type PluginCatalog } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '@daxlab/fs-xfs';
import { testArch } from '@daxlab/core/testing';
import { exploreOn, exploreScenarioFile, exploreSeed004Family, expectReplays } from './explore-family.js';

const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: { xfs: () => xfs() }, driver: { nvdimm: () => nvdimm() } };

exploreSeed004Family('xfs', catalog);

const BROKEN = ['block-freed-while-pinned', 'dma-to-foreign-block'];
type Features = Record<string, string | boolean>;
const spin = (file: string, version: string, features: Features = {}) => exploreOn(catalog, `spin/${file}`, 'xfs', 'nvdimm', version, features);

describe('the shared/baselines/spin questions on XFS (punch hole vs GUP-fast and DMA)', () => {
  const variants: readonly [string, string, Features, { violations: string[]; outcome: string }][] = [
    ['V1 legacy', 'v6.6', { 'dax-busy-mapping-mapped-check': false }, { violations: [], outcome: 'completed' }],
    ['V2 zero-based', 'v6.15', {}, { violations: [], outcome: 'completed' }],
    ['V3 entry-holds-ref', 'v6.15', { 'fsdax-refcount': 'entry-holds-ref' }, { violations: [], outcome: 'completed' }],
    ['B1 on V1', 'v6.6', {}, { violations: BROKEN, outcome: 'completed' }],
    ['B1 on V2', 'v6.15', { 'dax-busy-mapping-mapped-check': true }, { violations: BROKEN, outcome: 'completed' }],
    ['B1 on V3', 'v6.15', { 'fsdax-refcount': 'entry-holds-ref', 'dax-busy-mapping-mapped-check': true }, { violations: BROKEN, outcome: 'completed' }],
    ['B2 on V2', 'v6.15', { 'dax-delete-entries-before-wait': true }, { violations: BROKEN, outcome: 'completed' }],
    ['B3 (wait for refcount 1 on V2)', 'v6.15', { 'dax-wait-refcount-one': true }, { violations: [], outcome: 'blocked' }],
  ];
  for (const [id, version, features, want] of variants) {
    it(`${id}: ${want.violations.length ? want.violations.join(' + ') : 'no violation'}, ${want.outcome}`, () => {
      const r = spin('punch-vs-dma.yaml', version, features);
      expect({ status: r.status, complete: r.complete, violations: r.violations.map((v) => v.invariant), outcome: r.outcome }).toEqual({ status: 'pass', complete: true, ...want });
    });
  }

  it('KEEPMAP: legacy completes; zero-based and entry-holds-ref can wait forever', () => {
    expect(spin('punch-keepmap.yaml', 'v6.6', { 'dax-busy-mapping-mapped-check': false }).outcome).toBe('completed');
    for (const f of [{}, { 'fsdax-refcount': 'entry-holds-ref' }] as Features[]) {
      const r = spin('punch-keepmap.yaml', 'v6.15', f);
      expect({ status: r.status, outcome: r.outcome }).toEqual({ status: 'pass', outcome: 'blocked' });
    }
  });

  it('no second touch, but a GUP-fast that backs off falls back to the slow path, which faults the page in during the wait: still blocked on V2', () => {
    const r = spin('punch-keepmap-1fault.yaml', 'v6.15');
    expect(r.outcome).toBe('blocked');
    const t = r.blocked!.trace.join('\n');
    expect(t).toMatch(/why=gup-fast: pte changed/);
    expect(t).toMatch(/why=pin_user_pages/);
  });

  it('N = 2 pages, K = 1 pin: V2 completes with none; B1 breaks both invariants', () => {
    const v2 = spin('scale-n2k1.yaml', 'v6.15');
    expect(v2.violations).toEqual([]);
    expect({ status: v2.status, complete: v2.complete, outcome: v2.outcome, violations: v2.violations.length }).toEqual({ status: 'pass', complete: true, outcome: 'completed', violations: 0 });
    const b1 = spin('scale-n2k1.yaml', 'v6.15', { 'dax-busy-mapping-mapped-check': true });
    expect({ status: b1.status, violations: b1.violations.map((v) => v.invariant) }).toEqual({ status: 'pass', violations: ['block-freed-while-pinned'] });
  });

  it('N = 1 page, K = 2 pins: B1 frees a pinned block once both users have unmapped the file', () => {
    const r = exploreScenario(exploreScenarioFile('spin/scale-n1k2.yaml'), { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'v6.15', features: { 'dax-busy-mapping-mapped-check': true } }, catalog, { stopAtFirst: true });
    if (!isExploreResult(r)) throw new Error('not explored');
    const v = r.violations[0]!;
    expect(v.invariant).toBe('block-freed-while-pinned');
    expect(v.trace.filter((l) => / step thread=user\d index=1 op=munmap/.test(l))).toHaveLength(2);
    expect(v.trace.filter((l) => / gup\.pin /.test(l)).length).toBeGreaterThan(0);
  });
});

describe('the explorer on XFS scenarios', () => {
  it('state hashing finds exactly what the unreduced search of every schedule finds, in fewer states', () => {
    const cases: readonly [string, string, Features][] = [
      ['truncate-vs-dma.yaml', 'v6.6', {}],
      ['truncate-vs-dma.yaml', 'v6.15', {}],
      ['truncate-vs-dma.yaml', 'v6.15', { 'dax-wait-refcount-one': true }],
      ['truncate-refault.yaml', 'v6.15', {}],
      ['spin/punch-vs-dma.yaml', 'v6.15', { 'dax-busy-mapping-mapped-check': true }],
      ['spin/punch-keepmap.yaml', 'v6.15', {}],
    ];
    for (const [file, version, features] of cases) {
      const req = { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version, features };
      const hashed = exploreScenario(exploreScenarioFile(file), req, catalog, { reduction: 'state-hash' });
      const all = exploreScenario(exploreScenarioFile(file), req, catalog, { reduction: 'none' });
      if (!isExploreResult(hashed) || !isExploreResult(all)) throw new Error('not explored');
      const verdict = (r: typeof hashed) => ({ complete: r.complete, outcome: r.outcome, violations: r.violations.map((v) => [v.invariant, v.length]), blocked: r.blocked?.length ?? null });
      expect(verdict(hashed), `${file} ${version} ${JSON.stringify(features)}`).toEqual(verdict(all));
      expect(hashed.states).toBeLessThan(all.states);
      // the tree counts every end of every schedule; merged states share their ends
      expect(all.ends.completed + all.ends.blocked).toBeGreaterThanOrEqual(hashed.ends.completed + hashed.ends.blocked);
    }
  });

  it('a shortest counterexample: B1 needs the unmap before the scan, so the schedule starts with the application', () => {
    const r = exploreOn(catalog, 'truncate-vs-dma.yaml', 'xfs', 'nvdimm', 'v6.6');
    const v = r.violations.find((x) => x.invariant === 'block-freed-while-pinned')!;
    expect(v.schedule[0]).toEqual({ thread: 'app', step: 0, slices: 2 });
    expect(v.schedule.at(-1)).toMatchObject({ thread: 'trunc', step: 0 });
    // no schedule of fewer steps frees the block: a preemption bound of 0 (run each thread until it
    // blocks or ends) still finds it, because the munmap ends the application's first step
    expect(v.preemptions).toBeLessThanOrEqual(1);
    expectReplays(catalog, 'truncate-vs-dma.yaml', { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'v6.6', features: {} }, r);
  });

  it('bounds: --max-states stops early and says so; a preemption bound of 0 explores only whole slices', () => {
    const scenario = exploreScenarioFile('truncate-vs-dma.yaml');
    const req = { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'v6.15', features: {} };
    const capped = exploreScenario(scenario, req, catalog, { maxStates: 10 });
    const full = exploreScenario(scenario, req, catalog);
    const none = exploreScenario(scenario, req, catalog, { preemptions: 0 });
    if (!isExploreResult(capped) || !isExploreResult(full) || !isExploreResult(none)) throw new Error('not explored');
    expect({ complete: capped.complete, limits: capped.limits, states: capped.states }).toEqual({ complete: false, limits: ['max-states'], states: 10 });
    expect(none.limits).toEqual(['preemptions']);
    expect(none.states).toBeLessThan(full.states);
    expect(full.complete).toBe(true);
  });

  it('stop at first: the verdict of a buggy kernel without the whole state space', () => {
    const r = exploreScenario(exploreScenarioFile('truncate-vs-dma.yaml'), { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'v6.6', features: {} }, catalog, { stopAtFirst: true });
    if (!isExploreResult(r)) throw new Error('not explored');
    expect({ complete: r.complete, limits: r.limits, found: r.violations.map((v) => v.invariant) }).toEqual({ complete: false, limits: ['stop-at-first'], found: ['block-freed-while-pinned'] });
  });
});
