// Two builds of daxlab side by side in one process, alternating, so a VM whose speed drifts by
// tens of percent within minutes still shows a few percent between them (BENCHMARKS.md, explore).
//
//   node bench/explore-ab.mjs <root A> <root B> [replay|search] [scenario] [rounds]
//
// Each root is a built checkout (npm ci && npm run build), e.g. a clone at an older commit.
// `replay` (default): one replay's work — restore to the post-setup snapshot, 19 muted steps,
// one state walk — 1,500 times per round. `search`: one complete depth-first explore per round.
// Prints B's time over A's per round and the median.
import { pathToFileURL } from 'node:url';
import { openReplay } from './explore-replay.mjs';

const [rootA, rootB, mode = 'replay', name = 'scale-n1k3', roundsArg] = process.argv.slice(2);
if (!rootA || !rootB) throw new Error('usage: node bench/explore-ab.mjs <root A> <root B> [replay|search] [scenario] [rounds]');
const rounds = Number(roundsArg ?? (mode === 'search' ? 4 : 12));
const kernel = { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'v6.15', features: {} };

async function load(root) {
  const { daxlab } = await import(pathToFileURL(`${root}/bench/spin-vs-daxlab.mjs`).href);
  const { core, exploreScenario, catalog } = await daxlab();
  const scenario = core.loadScenarioFile(`${root}/apps/cli/scenarios/explore/spin/${name}.yaml`);
  if (mode === 'search') return () => exploreScenario(scenario, kernel, catalog, { search: 'dfs', stopAtFirst: true }).ms;
  const { replay, walker, hash } = await openReplay(root, kernel.version, name);
  const once = () => {
    replay(true);
    hash.reset();
    walker.hashKernel(hash);
  };
  return () => {
    const t = performance.now();
    for (let i = 0; i < 1500; i++) once();
    return performance.now() - t;
  };
}

const a = await load(rootA);
const b = await load(rootB);
if (mode !== 'search') {
  a();
  b();
}
const ratios = [];
for (let r = 0; r < rounds; r++) {
  const ta = a();
  const tb = b();
  ratios.push(tb / ta);
  console.log(`round ${r}: A ${ta.toFixed(0)} ms, B ${tb.toFixed(0)} ms, B/A ${(tb / ta).toFixed(3)}`);
}
const sorted = [...ratios].sort((x, y) => x - y);
console.log(`B/A median ${sorted[sorted.length >> 1].toFixed(3)} (min ${sorted[0].toFixed(3)}, max ${sorted[sorted.length - 1].toFixed(3)})`);
