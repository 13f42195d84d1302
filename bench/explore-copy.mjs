// Would copyable sessions pay? The explorer replays a schedule wherever it needs a second session
// in one state (sessions cannot be copied: operations are live generators). This times, in one
// process and alternating, what a copy of the kernel's object graph would cost (every object the
// state hash walks, prototypes kept, plumbing shared; the suspended operations not even counted)
// against the replay that stands in for it today and against one state hash.
//
//   node bench/explore-copy.mjs [rounds]
//
// Run on a built tree (npm ci && npm run build). Results: BENCHMARKS.md, explore, eleventh session.
import { join } from 'node:path';
import { openReplay, PREFIX } from './explore-replay.mjs';

const rounds = Number(process.argv[2] ?? 7);
const { session, replay, walker, hash } = await openReplay(join(import.meta.dirname, '..'), 'v6.15');
replay(true);
const kernel = session.kernel;

// the Kernel fields the state hash leaves out as plumbing (explore/state.ts KERNEL_PLUMBING): shared, not copied
const PLUMBING = ['container', 'bus', 'desc', 'version', 'features', 'mmu', 'populator', 'convention', 'driverPlugins', 'fsPlugins', 'defaultDriver', 'defaultFs', 'currentThread'];
const shared = new Set(PLUMBING.map((p) => kernel[p]).filter((v) => typeof v === 'object' && v !== null));

/** A copy of everything reachable from `root` (identity kept: an object met twice is copied once). */
function copyGraph(root) {
  const copies = new Map();
  const copy = (v) => {
    if (v === null || typeof v !== 'object' || shared.has(v)) return v;
    let c = copies.get(v);
    if (c !== undefined) return c;
    if (typeof v.subscribe === 'function' || typeof v.unsubscribe === 'function' || v instanceof WeakMap || v instanceof WeakSet) return v;
    if (ArrayBuffer.isView(v)) c = v.slice();
    else if (Array.isArray(v)) c = new Array(v.length);
    else if (v instanceof Map) c = new Map();
    else if (v instanceof Set) c = new Set();
    else c = Object.create(Object.getPrototypeOf(v));
    copies.set(v, c);
    if (ArrayBuffer.isView(v)) return c;
    if (Array.isArray(v)) for (let i = 0; i < v.length; i++) c[i] = copy(v[i]);
    else if (v instanceof Map) for (const [key, val] of v) c.set(copy(key), copy(val));
    else if (v instanceof Set) for (const x of v) c.add(copy(x));
    else for (const key of Object.keys(v)) c[key] = copy(v[key]);
    return c;
  };
  copy(root);
  return copies.size;
}

const micros = (f, reps) => {
  const t = performance.now();
  for (let i = 0; i < reps; i++) f();
  return ((performance.now() - t) / reps) * 1000;
};
const objects = copyGraph(kernel);
for (let i = 0; i < 2000; i++) {
  copyGraph(kernel);
  replay(true);
}
// the words one state walk mixes, and the same number of words hashed from one flat array (what a
// state kept as a Spin-like vector would cost to hash)
let words = 0;
const u32 = hash.u32;
hash.u32 = function (x) {
  words++;
  return u32.call(this, x);
};
hash.reset();
walker.hashKernel(hash);
delete hash.u32;
const flat = new Uint32Array(words).map((_, i) => i * 2654435761);
const rows = [];
for (let r = 0; r < rounds; r++) {
  const copyUs = micros(() => copyGraph(kernel), 3000);
  const replayUs = micros(() => replay(true), 3000);
  const hashUs = micros(() => {
    hash.reset();
    walker.hashKernel(hash);
  }, 3000);
  const flatUs = micros(() => {
    hash.reset();
    for (let i = 0; i < flat.length; i++) hash.u32(flat[i]);
  }, 3000);
  rows.push({ copyUs, replayUs, hashUs, flatUs });
  console.log(`round ${r}: copy ${copyUs.toFixed(1)} µs, replay ${replayUs.toFixed(1)} µs, hash ${hashUs.toFixed(1)} µs (flat ${flatUs.toFixed(1)} µs), copy / replay ${(copyUs / replayUs).toFixed(2)}`);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(
  `${objects} objects; medians: copy ${median(rows.map((x) => x.copyUs)).toFixed(1)} µs, replay (restore + ${PREFIX.length} steps) ${median(rows.map((x) => x.replayUs)).toFixed(1)} µs, hash ${median(rows.map((x) => x.hashUs)).toFixed(1)} µs (the same ${words} words from one flat array: ${median(rows.map((x) => x.flatUs)).toFixed(1)} µs), copy / replay ${median(rows.map((x) => x.copyUs / x.replayUs)).toFixed(2)}`,
);
