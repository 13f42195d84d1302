import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../scenario/load.js';
import type { PluginCatalog } from '../scenario/run.js';
import { testArch } from '../testing.js';
import { exploreScenario, isExploreResult, mergeExploreResults } from './explorer.js';
import { createExploreShare, exploreShareStates, SharedVisited, workerOrder } from './shared.js';
import type { ExploreOptions, ExploreResult } from './types.js';

const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: {}, driver: {} };
const file = fileURLToPath(new URL('../../../../apps/cli/scenarios/explore/gup-fast-vs-fork.yaml', import.meta.url));
const scenario = loadScenarioFile(file, 'explore/gup-fast-vs-fork.yaml');
const req = { arch: 'x86', fs: null, driver: null, version: 'v5.4', features: {} };

function explore(options: ExploreOptions): ExploreResult {
  const r = exploreScenario(scenario, req, catalog, options);
  if (!isExploreResult(r)) throw new Error(`${r.status} ${r.reason}`);
  return r;
}

describe('the visited table a shared search keeps in shared memory', () => {
  it('gives a state to the first worker that claims it and counts each state once', () => {
    const buffer = createExploreShare(100);
    const a = new SharedVisited(buffer);
    const b = new SharedVisited(buffer);
    expect([a.visit([1, 2]), b.visit([1, 2]), b.visit([1, 3]), a.visit([1, 3])]).toEqual(['new', 'seen', 'new', 'seen']);
    // the key 0:0 is stored (as 1) although 0 marks an empty slot
    expect([a.visit([0, 0]), b.visit([0, 0])]).toEqual(['new', 'seen']);
    expect(a.states).toBe(3);
    expect(exploreShareStates(buffer)).toBe(3);
    expect(b.stopped).toBe(false);
    a.stop();
    expect(b.stopped).toBe(true);
  });

  it('sizes the table at twice the state limit at least (linear probing stays short)', () => {
    expect(createExploreShare(1_000_000).byteLength).toBe(16 + 8 * 2 ** 21);
    expect(createExploreShare(10).byteLength).toBe(16 + 8 * 2 ** 16);
    expect(() => createExploreShare(2 ** 26 + 1)).toThrow(/at most 67108864 states/);
  });

  it('sends each worker down its own order of threads', () => {
    expect(workerOrder([0, 1, 2, 3], 0)).toEqual([0, 1, 2, 3]);
    expect(workerOrder([0, 1, 2, 3], 1)).toEqual([3, 2, 1, 0]);
    expect(workerOrder([0, 1, 2, 3], 2)).toEqual([1, 2, 3, 0]);
    expect(workerOrder([0, 1, 2, 3], 3)).toEqual([2, 1, 0, 3]);
  });
});

describe('a search split over workers, folded into one result', () => {
  it('adds up to the one-thread search: the same states, transitions, ends and findings', () => {
    const one = explore({ search: 'dfs' });
    // two workers, here one after the other: the second finds every state claimed (only the root's
    // steps, which count for the first), the first claims them all; merged, nothing is lost or counted twice
    const buffer = createExploreShare(1_000_000);
    const options: ExploreOptions = { search: 'dfs' };
    const w1 = explore({ ...options, share: { buffer, worker: 1, workers: 2 } });
    const w0 = explore({ ...options, share: { buffer, worker: 0, workers: 2 } });
    expect([w1.states, w0.states, w0.transitions]).toEqual([one.states, 0, 0]);
    const merged = mergeExploreResults(scenario, req, catalog, options, [w0, w1]);
    if (!isExploreResult(merged)) throw new Error(merged.reason ?? 'not explored');
    const size = (r: ExploreResult) => ({ states: r.states, transitions: r.transitions, ends: r.ends, complete: r.complete, status: r.status, violations: r.violations.map((v) => v.invariant) });
    expect(size(merged)).toEqual(size(one));
    expect(size(one).violations).toEqual(['pinned-page-diverged']);
    // the finding is traced again from its schedule: its trace ends at the write that broke it
    expect(merged.violations[0]!.trace.at(-1)).toMatch(/pte\.set mm=init .* write=true/);
  });

  it('is refused for searches it cannot share (breadth-first, a preemption bound)', () => {
    const share = { buffer: createExploreShare(10), worker: 0, workers: 2 };
    expect(() => explore({ search: 'bfs', share })).toThrow(/depth-first/);
    expect(() => explore({ search: 'dfs', preemptions: 2, share })).toThrow(/depth-first/);
  });
});
