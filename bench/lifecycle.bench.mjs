// Page-lifecycle benchmarks: run after `npm run build` with `npm run bench`.
// Each benchmark reports ops/s; ratios are taken against a baseline measured in the same run
// (a plain Map-based refcount loop doing the same number of page touches), never against a
// fixed number, so the figures compare across machines.
import { createKernel, Monitor } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { xfs } from '@daxlab/fs-xfs';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { devdax } from '@daxlab/driver-devdax';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

function time(fn) {
  const t0 = process.hrtime.bigint();
  const n = fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { n, s, perSec: n / s };
}

/** baseline: the bookkeeping of fault/pin/unpin/zap on a Map, without any kernel rules */
function baseline(iterations) {
  const rc = new Map();
  for (let i = 0; i < iterations; i++) {
    const pfn = i & 511;
    rc.set(pfn, (rc.get(pfn) ?? 0) + 1);
    rc.set(pfn, rc.get(pfn) + 1024);
    rc.set(pfn, rc.get(pfn) - 1024);
    rc.set(pfn, rc.get(pfn) - 1);
  }
  return iterations;
}

/** fault -> pin -> unpin -> zap on an fs-dax file page, one cycle per iteration */
function faultPinUnpinZap(version, iterations, monitored) {
  const k = createKernel({ arch: x86(), fs: xfs(), driver: nvdimm(), kernel: version });
  const m = monitored ? new Monitor(k) : null;
  k.run(k.probe({ size: GiB, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0' }));
  k.run(k.create({ file: 'a', size: 4096 * 64 }));
  k.run(k.mmap({ file: 'a', length: 4096 * 64, shared: true, write: true, as: 'm' }));
  const vma = k.map('m');
  for (let i = 0; i < iterations; i++) {
    const page = i & 63;
    k.run(k.gup({ map: 'm', page, write: true, as: 'p' }, true)); // faults the page in
    k.run(k.unpin({ name: 'p' }));
    k.pins.delete('p');
    k.run(k.vm.zap(vma, vma.start + page, vma.start + page + 1, 'bench'));
  }
  if (m && m.violations.length) throw new Error(`unexpected violations: ${m.violations.map((v) => v.invariant)}`);
  return iterations;
}

function probe(size, align) {
  const before = process.memoryUsage().rss;
  const k = createKernel({ arch: x86(), driver: devdax(), kernel: 'latest' });
  const r = time(() => {
    k.run(k.probe({ size, align, as: 'dax0' }));
    k.run(k.mmap({ device: 'dax0', length: 4 * align, shared: true, write: true, as: 'm' }));
    for (let p = 0; p < 4; p++) k.run(k.write({ map: 'm', page: (p * align) / 4096, data: 'x' }));
    return 1;
  });
  const after = process.memoryUsage().rss;
  return { seconds: r.s, rssDeltaMiB: (after - before) / MiB, materialisedPages: k.pages.materialised };
}

const N = Number(process.env.BENCH_ITERATIONS ?? 20000);
const base = time(() => baseline(N * 4));
const rows = [];
for (const version of ['v6.6', 'latest']) {
  for (const monitored of [false, true]) {
    const r = time(() => faultPinUnpinZap(version, N, monitored));
    rows.push({ bench: `fault->pin->unpin->zap ${version}${monitored ? ' +invariants+trace' : ''}`, opsPerSec: Math.round(r.perSec), vsBaseline: +(r.perSec / base.perSec).toFixed(4) });
  }
}
const p4 = probe(4 * TiB, 2 * MiB);
const p4g = probe(4 * TiB, GiB);
const out = {
  machine: { node: process.version, platform: `${process.platform}-${process.arch}`, cpus: (await import('node:os')).cpus().length },
  date: new Date().toISOString(),
  baselineOpsPerSec: Math.round(base.perSec),
  rows,
  probe4TiB2MiB: p4,
  probe4TiB1GiB: p4g,
  peakRssMiB: Math.round(process.memoryUsage().rss / MiB),
};
console.log(JSON.stringify(out, null, 2));
