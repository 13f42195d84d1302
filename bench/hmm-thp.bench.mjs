// Device-private THP migration in the model (hmm-tests.c benchmark_thp_migration's shape, not its
// timing: the kernel's copy costs are not modelled): one PMD-aligned 2 MiB THP written by the
// CPU, migrated to the mirror device and back (HMM_DMIRROR_MIGRATE_TO_DEV, _TO_SYS) in rounds, on
// `latest` with `migrate-device-thp` compound (one device THP behind one PMD entry) against the
// same kernel with `split` (the THP split, 512 base pages each way) measured in the same run.
// Run after `npm run build`: `node bench/run.mjs hmm-thp`.
import { createKernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { hmm } from '@daxlab/driver-hmm';

const PAGE = 4096;
const NR = 512;

function rounds(mode, n) {
  const k = createKernel({ arch: x86(), driver: hmm(), kernel: 'latest', features: { 'migrate-device-thp': mode } });
  k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 1024 * 1024, as: 'dmirror0' }));
  k.run(k.mmap({ anon: true, length: 2 * NR * PAGE, write: true, as: 'buf' }));
  k.run(k.madvise({ map: 'buf', advice: 'hugepage', offset: 0, length: NR * PAGE }));
  for (let i = 0; i < NR; i++) k.run(k.write({ map: 'buf', page: i, data: `i${i}` }));
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < n; r++) {
    k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'dmirror0' }));
    k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'ram' }));
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  // the data survived every round trip
  if (k.run(k.read({ map: 'buf', page: 511 })) !== 'i511') throw new Error(`${mode}: data lost`);
  return { mode, rounds: n, seconds: s, roundTripsPerSec: n / s };
}

const n = Number(process.argv[2] ?? 20);
rounds('compound', 2); // warm-up
rounds('split', 2);
const split = rounds('split', n);
const compound = rounds('compound', n);
console.log(
  JSON.stringify(
    {
      machine: `${process.platform}-${process.arch}`,
      node: process.version,
      date: new Date().toISOString().slice(0, 10),
      baseline: split,
      compound,
      compoundVsSplit: compound.roundTripsPerSec / split.roundTripsPerSec,
    },
    null,
    2,
  ),
);
