// The default matrix (`daxlab matrix` with no arguments: the whole built-in library across
// every plugin and preset) with --jobs 1 and --jobs 2: wall time of the whole command, spawn
// to exit (Node start-up, planning, worker start-up and reports included), cells per second,
// and the --jobs 2 run as a ratio of the --jobs 1 run measured alternately in the same go.
// Run after `npm run build`: `node bench/matrix.bench.mjs [rounds]` (default 3 rounds).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'apps', 'cli', 'dist', 'bin.js');
const rounds = Number(process.argv[2] ?? 3);

function run(jobs, out) {
  const env = { ...process.env };
  delete env.CI;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [bin, 'matrix', '--quiet', '--jobs', String(jobs), '--reporter', 'json', '--out', out], { cwd: root, env, encoding: 'utf8', maxBuffer: 1 << 30 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0 && r.status !== 1) throw new Error(`daxlab matrix --jobs ${jobs} exited ${r.status}: ${r.stderr}`);
  const doc = JSON.parse(readFileSync(join(out, 'daxlab-report.json'), 'utf8'));
  const simulated = doc.cells.reduce((t, c) => t + c.ms, 0) / 1000;
  return { s, cells: doc.cells.length, summary: doc.summary, simulated, untimed: JSON.stringify(doc, (k, v) => (k === 'ms' ? 0 : v)) };
}

const results = { 1: [], 2: [] };
let reference = null;
for (let i = 0; i < rounds; i++) {
  for (const jobs of [1, 2]) {
    const out = mkdtempSync(join(tmpdir(), 'daxlab-bench-matrix-'));
    const r = run(jobs, out);
    rmSync(out, { recursive: true, force: true });
    // the point of --jobs: the same report
    if (reference === null) reference = r.untimed;
    else if (r.untimed !== reference) throw new Error(`--jobs ${jobs} round ${i + 1}: the report differs from the first run's`);
    results[jobs].push(r);
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const row = (jobs) => {
  const s = median(results[jobs].map((r) => r.s));
  const cells = results[jobs][0].cells;
  return { jobs, wallSeconds: Number(s.toFixed(2)), cellsPerSecond: Math.round(cells / s), simulatedSeconds: Number(median(results[jobs].map((r) => r.simulated)).toFixed(2)) };
};
const one = row(1);
const two = row(2);
console.log(
  JSON.stringify(
    {
      benchmark: 'default matrix',
      machine: { cpus: cpus().length, availableParallelism: availableParallelism(), model: cpus()[0]?.model, node: process.version, platform: `${process.platform}-${process.arch}` },
      date: new Date().toISOString().slice(0, 10),
      rounds,
      cells: results[1][0].cells,
      summary: results[1][0].summary,
      jobs1: one,
      jobs2: two,
      speedup: Number((one.wallSeconds / two.wallSeconds).toFixed(2)),
      identicalReports: true,
    },
    null,
    2,
  ),
);
