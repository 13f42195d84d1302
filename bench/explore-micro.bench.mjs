import { join } from 'node:path';
import { openReplay, PREFIX as prefix } from './explore-replay.mjs';
const { session: s, memento: m, replay: go, walker: w, hash: h } = await openReplay(join(import.meta.dirname, '..'), 'latest');
go();
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
