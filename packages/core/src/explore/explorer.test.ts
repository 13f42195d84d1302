import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../scenario/load.js';
import { runScenario, type PluginCatalog } from '../scenario/run.js';
import type { Scenario } from '../scenario/types.js';
import { testArch } from '../testing.js';
import { describeSchedule, exploreScenario, isExploreResult } from './explorer.js';
import type { ExploreOptions, ExploreResult } from './types.js';

// the anonymous-memory scenarios of the explore library need no filesystem and no driver
const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: {}, driver: {} };
const file = fileURLToPath(new URL('../../../../apps/cli/scenarios/explore/gup-fast-vs-fork.yaml', import.meta.url));
const scenario: Scenario = loadScenarioFile(file, 'explore/gup-fast-vs-fork.yaml');
const req = (version: string, features: Record<string, string | boolean> = {}) => ({ arch: 'x86', fs: null, driver: null, version, features });

function explore(version: string, features: Record<string, string | boolean> = {}, options: ExploreOptions = {}): ExploreResult {
  const r = exploreScenario(scenario, req(version, features), catalog, options);
  if (!isExploreResult(r)) throw new Error(`${version}: ${r.status} ${r.reason}`);
  return r;
}

describe('GUP-fast racing fork (seed 002) under explore', () => {
  it('without the early COW of pinned pages (v5.4) some interleaving leaves the pin on a page the parent no longer maps', () => {
    const r = explore('v5.4');
    expect({ status: r.status, complete: r.complete, violations: r.violations.map((v) => v.invariant) }).toEqual({ status: 'pass', complete: true, violations: ['pinned-page-diverged'] });
    const v = r.violations[0]!;
    // the pin comes first, then the fork write-protects the page, then the write copies it away
    expect(describeSchedule(v.schedule)).toBe('app×2 → forker×2 → app×2');
    expect(v.trace.at(-1)).toMatch(/pte\.set mm=init .* write=true/);
    expect(v.trace.some((l) => / fork parent=init child=child/.test(l))).toBe(true);
    expect(v.trace.some((l) => / gup\.pin mm=init name=rdma /.test(l))).toBe(true);
    // each event of the trace with the thread that emitted it (for timelines)
    expect(v.threads).toHaveLength(v.trace.length);
    expect([v.threads[0], v.threads.at(-1)]).toEqual(['setup', 'app']);
    expect(v.threads[v.trace.findIndex((l) => / fork parent=init/.test(l))]).toBe('forker');
    const again = runScenario(scenario, req('v5.4'), catalog, { schedule: v.schedule });
    expect(again.violations.map((x) => x.invariant)).toEqual(['pinned-page-diverged']);
  });

  for (const [version, features] of [['v5.10', {}], ['v6.1', {}], ['v6.15', {}], ['v5.10', { 'gup-fast-fork-seq': true }]] as const) {
    it(`with the early COW (${version} ${JSON.stringify(features)}) no interleaving diverges`, () => {
      const r = explore(version, features);
      expect({ status: r.status, complete: r.complete, outcome: r.outcome, violations: r.violations }).toEqual({ status: 'pass', complete: true, outcome: 'completed', violations: [] });
    });
  }

  it('the fix alone decides: v6.15 without it diverges', () => {
    expect(explore('v6.15', { 'fork-cow-pinned': false }).violations.map((v) => v.invariant)).toEqual(['pinned-page-diverged']);
  });

  it('state hashing and the search of every schedule agree; hashing stores fewer states', () => {
    for (const [version, features] of [['v5.4', {}], ['v6.15', {}]] as const) {
      const hashed = explore(version, features, { reduction: 'state-hash' });
      const all = explore(version, features, { reduction: 'none' });
      expect(hashed.violations.map((v) => [v.invariant, v.length])).toEqual(all.violations.map((v) => [v.invariant, v.length]));
      expect(hashed.outcome).toBe(all.outcome);
      expect(hashed.states).toBeLessThan(all.states);
      expect(all.transitions).toBe(all.states - 1); // a tree: one transition into every state but the root
    }
  });

  it('depth-first over the same hashed states: the same states, transitions and findings', () => {
    for (const version of ['v5.4', 'v6.15']) {
      const bfs = explore(version, {}, { search: 'bfs' });
      const dfs = explore(version, {}, { search: 'dfs' });
      expect({ search: dfs.search, states: dfs.states, transitions: dfs.transitions, violations: dfs.violations.map((v) => v.invariant), ends: dfs.ends }).toEqual({ search: 'dfs', states: bfs.states, transitions: bfs.transitions, violations: bfs.violations.map((v) => v.invariant), ends: bfs.ends });
      for (const v of dfs.violations) expect(v.length).toBeGreaterThanOrEqual(bfs.violations.find((x) => x.invariant === v.invariant)!.length);
    }
  });

  it('a preemption bound of 0 runs each thread until it blocks or ends: the divergence needs one preemption', () => {
    expect(explore('v5.4', {}, { preemptions: 0 }).violations).toEqual([]);
    const one = explore('v5.4', {}, { preemptions: 1 });
    expect(one.violations.map((v) => v.invariant)).toEqual(['pinned-page-diverged']);
    expect(one.violations[0]!.preemptions).toBe(1);
    expect({ complete: one.complete, limits: one.limits }).toEqual({ complete: false, limits: ['preemptions'] });
  });

  it('onTransition hands out the explored state graph: one call per transition plus the root, one distinct key per state', () => {
    for (const search of ['bfs', 'dfs'] as const) {
      const calls: { from: string | null; to: string; runnable: readonly number[] }[] = [];
      const r = explore('v6.15', {}, { search, onTransition: (from, _thread, to, runnable) => calls.push({ from: from && from.join(':'), to: to.join(':'), runnable }) });
      expect(calls.length).toBe(r.transitions + 1);
      expect(calls[0]!.from).toBeNull();
      expect(new Set(calls.map((c) => c.to)).size).toBe(r.states);
      // every transition leaves a state reached before it (a tree grows from the root)
      const reached = new Set<string>();
      for (const c of calls) {
        if (c.from !== null) expect(reached.has(c.from)).toBe(true);
        reached.add(c.to);
      }
      // the end states are the keys from which nothing is runnable
      expect(new Set(calls.filter((c) => c.runnable.length === 0).map((c) => c.to)).size).toBe(r.ends.completed + r.ends.blocked + r.ends.oops + r.ends.failed);
    }
  });

  it('a result reports the size of the search and how the schedules ended', () => {
    const r = explore('v6.15');
    expect(r).toMatchObject({ mode: 'explore', reduction: 'state-hash', search: 'bfs', preemptionBound: null, limits: [], blocked: null, oops: null, stepFailures: [] });
    expect(r.transitions).toBeGreaterThanOrEqual(r.states - 1);
    expect(r.ends.completed).toBeGreaterThan(0);
    expect(r.ends.blocked + r.ends.oops + r.ends.failed).toBe(0);
  });
});
