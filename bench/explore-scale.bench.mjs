// How the explorer scales (issue 6): N pages in the punched range and K concurrent pins, N and K in
// 1..3, on the scenarios apps/cli/scenarios/explore/spin/scale-n{N}k{K}.yaml (XFS), for V2
// (v6.15: no violation, the whole space must be searched) and B1 (the mapping_mapped() early
// return: stop at the first violation), with the reduction (state hashing over canonical thread
// positions; breadth-first: shortest counterexamples; depth-first: fewer replays), the same
// depth-first search opening a new kernel for every replay instead of putting a finished session
// back to its post-setup snapshot (`sessions: fresh`, V2 only), and without the reduction (every
// schedule as a tree). Run after `npm run build` with `npm run bench explore` or directly.
//
//   MAX_STATES=1000000 cap per reduced run, MAX_TREE=100000 per run without reduction (a capped
//                      run is reported as bounded, with its numbers)
//   ONLY=n1k1,n2k2     some sizes only
//   RUNS=bfs           some searches only (bfs, dfs, fresh, none)
import { join } from 'node:path';
import { daxlab, verdictOf } from './spin-vs-daxlab.mjs';

const ROOT = join(import.meta.dirname, '..');
const cap = Number(process.env.MAX_STATES ?? 1_000_000);
const treeCap = Number(process.env.MAX_TREE ?? 100_000);
const only = process.env.ONLY ? process.env.ONLY.split(',') : null;
const runsWanted = process.env.RUNS ? process.env.RUNS.split(',') : null;
const { core, exploreScenario, catalog } = await daxlab();

// warm the JIT up so the first row is not charged for it
exploreScenario(core.loadScenarioFile(join(ROOT, 'apps/cli/scenarios/explore/spin/scale-n1k2.yaml')), { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'v6.15', features: {} }, catalog, { search: 'dfs' });

const kernels = [
  ['V2', 'v6.15', {}, false],
  ['B1', 'v6.15', { 'dax-busy-mapping-mapped-check': true }, true],
];

console.log(`| N | K | variant | reduction | search | sessions | verdict | complete | states | transitions | depth | ms | µs / transition |`);
console.log(`|---:|---:|---|---|---|---|---|---|---:|---:|---:|---:|---:|`);
for (const n of [1, 2, 3]) {
  for (const k of [1, 2, 3]) {
    if (only && !only.includes(`n${n}k${k}`)) continue;
    const scenario = core.loadScenarioFile(join(ROOT, `apps/cli/scenarios/explore/spin/scale-n${n}k${k}.yaml`));
    for (const [id, version, features, stopAtFirst] of kernels) {
      const runs = [['state-hash', 'bfs', 'restore'], ['state-hash', 'dfs', 'restore'], ...(stopAtFirst ? [] : [['state-hash', 'dfs', 'fresh']]), ['none', 'dfs', 'restore']];
      for (const [reduction, search, sessions] of runs) {
        const what = reduction === 'none' ? 'none' : sessions === 'fresh' ? 'fresh' : search;
        if (runsWanted && !runsWanted.includes(what)) continue;
        const r = exploreScenario(scenario, { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version, features }, catalog, { reduction, search, sessions, maxStates: reduction === 'none' ? treeCap : cap, stopAtFirst });
        const done = r.complete ? 'yes' : r.limits.join(', ');
        const per = r.transitions ? Math.round((r.ms * 1000) / r.transitions) : 0;
        console.log(`| ${n} | ${k} | ${id} | ${reduction} | ${search} | ${sessions} | ${verdictOf(r)} | ${done} | ${r.states} | ${r.transitions} | ${r.depth} | ${Math.round(r.ms)} | ${per} |`);
      }
    }
  }
}
