// How far sleep sets could cut an exploration, at best (issue 6): record the whole state graph of
// a depth-first state-hash search (ExploreOptions.onTransition), then replay the search on that
// graph as a sleep-set depth-first search with state caching, where two steps count as
// independent at a state exactly when both orders reach the same state and neither disables the
// other. No footprint relation can find more independent pairs than that oracle, so its
// transition count is the floor for any sleep-set reduction of daxlab's searches.
//
//   npm run build && node bench/explore-sleep-ceiling.mjs [scenario…]   (default: the K = 3 scaled models)
//
// Sleep sets with state caching (Godefroid, "Partial-Order Methods for the Verification of
// Concurrent Systems", LNCS 1032, ch. 5): a state keeps the sleep set it was first explored with;
// reached again with sleep set Z, it explores the steps asleep then but not in Z, and keeps the
// intersection. Every state stays reachable (the count is checked against the search's).
import { join } from 'node:path';
import { daxlab } from './spin-vs-daxlab.mjs';

const ROOT = join(import.meta.dirname, '..');
const files = process.argv.slice(2);
const scenarios = files.length ? files : ['scale-n1k3', 'scale-n2k3', 'scale-n3k3'].map((n) => join(ROOT, `apps/cli/scenarios/explore/spin/${n}.yaml`));
const { core, exploreScenario, catalog } = await daxlab();

function ceiling(file) {
  const key = (k) => `${k[0]}:${k[1]}`;
  const succ = new Map();
  const enabled = new Map();
  let root = null;
  const onTransition = (from, thread, to, runnable) => {
    const t = key(to);
    if (from === null) root = t;
    else {
      const f = key(from);
      if (!succ.has(f)) succ.set(f, new Map());
      succ.get(f).set(thread, t);
    }
    if (!enabled.has(t)) enabled.set(t, [...runnable]);
  };
  const scenario = core.loadScenarioFile(file);
  const req = { arch: 'x86', fs: scenario.kernel.fs ?? null, driver: scenario.kernel.driver ?? null, version: 'v6.15', features: {} };
  const r = exploreScenario(scenario, req, catalog, { search: 'dfs', onTransition });
  const next = (s, t) => succ.get(s)?.get(t);
  const independent = (s, a, b) => {
    const sa = next(s, a);
    const sb = next(s, b);
    if (sa === undefined || sb === undefined) return false;
    const ab = next(sa, b);
    return ab !== undefined && ab === next(sb, a);
  };
  const slept = new Map();
  let transitions = 0;
  const visit = (s, sleep) => {
    const en = enabled.get(s) ?? [];
    let todo;
    const had = slept.get(s);
    if (had) {
      todo = en.filter((t) => had.has(t) && !sleep.has(t));
      slept.set(s, new Set([...had].filter((t) => sleep.has(t))));
    } else {
      slept.set(s, new Set(sleep));
      todo = en.filter((t) => !sleep.has(t));
    }
    const done = [];
    for (const t of todo) {
      transitions++;
      visit(next(s, t), new Set([...sleep, ...done].filter((u) => u !== t && independent(s, u, t))));
      done.push(t);
    }
  };
  visit(root, new Set());
  return { states: r.states, transitions: r.transitions, sleepStates: slept.size, sleepTransitions: transitions };
}

console.log('| scenario (v6.15) | states | transitions | with oracle sleep sets: states | transitions | ratio |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const f of scenarios) {
  const c = ceiling(f);
  console.log(`| ${f.split('/').pop()} | ${c.states} | ${c.transitions} | ${c.sleepStates} | ${c.sleepTransitions} | ${(c.sleepTransitions / c.transitions).toFixed(2)} |`);
}
