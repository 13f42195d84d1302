import { daxlab } from './spin-vs-daxlab.mjs';
const { core, catalog } = await daxlab();
const ex = await import('../packages/core/dist/explore/index.js');
const { Memento } = await import('../packages/core/dist/explore/memento.js');
const scenario = core.loadScenarioFile('apps/cli/scenarios/explore/spin/scale-n1k3.yaml');
const s = core.ScenarioSession.open(scenario, { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'latest', features: {} }, catalog, { trace: false });
s.runSetup();
const m = Memento.take(s, [scenario, s.kernel.container]);
const prefix = [0, 0, 3, 3, 1, 3, 2, 1, 0, 0, 2, 3, 1, 2, 3, 3, 2, 1, 0];
const go = () => { m.restore(); for (const i of prefix) if (s.runnable().includes(i)) s.step(i); };
go();
const w = new ex.StateWalker(s.kernel); const h = new ex.Hash64();
const N = 20000;
for (let i = 0; i < 2000; i++) { h.reset(); w.hashKernel(h); }
let t = performance.now(); for (let i = 0; i < N; i++) { h.reset(); w.hashKernel(h); } const th = (performance.now() - t) / N * 1000;
const d = h.digest();
for (let i = 0; i < 200; i++) go();
t = performance.now(); for (let i = 0; i < 2000; i++) m.restore(); const tr = (performance.now() - t) / 2000 * 1000;
// restore of a session that ran the prefix (what every replay pays), timed alone
let td = 0; for (let i = 0; i < 2000; i++) { go(); const t0 = performance.now(); m.restore(); td += performance.now() - t0; } td = td / 2000 * 1000;
t = performance.now(); for (let i = 0; i < 2000; i++) go(); const tg = (performance.now() - t) / 2000 * 1000;
console.log(`hash ${th.toFixed(1)} µs  restore ${tr.toFixed(1)} µs  restore after steps ${td.toFixed(1)} µs  restore+${prefix.length} steps ${tg.toFixed(1)} µs  (step ≈ ${((tg - tr) / prefix.length).toFixed(2)} µs) digest ${d}`);
const kinds = {}; for (const r of m.records) { kinds[r.kind] = kinds[r.kind] ?? { n: 0, size: 0 }; kinds[r.kind].n++; kinds[r.kind].size += (r.kind === 'object' ? r.keys : r.data ?? r.keys).length; }
console.log(kinds);
const big = m.records.filter((r) => r.kind !== 'object').map((r) => [r.kind, (r.data ?? r.keys).length, r.o.constructor.name]).sort((a, b) => b[1] - a[1]).slice(0, 15); console.log(big);
