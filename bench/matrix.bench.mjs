// The default matrix (`daxlab matrix` with no arguments: the whole built-in library across
// every plugin and preset) with --jobs 1 and --jobs 2: wall time of the whole command, spawn
// to exit (Node start-up, planning, worker start-up and reports included), cells per second,
// and the --jobs 2 run as a ratio of the --jobs 1 run measured alternately in the same go.
// Run after `npm run build`: `node bench/matrix.bench.mjs [rounds]` (default 3 rounds).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'apps', 'cli', 'dist', 'bin.js');
const rounds = Number(process.argv[2] ?? 3);
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

function run(jobs, out) {
  const env = { ...process.env };
  delete env.CI;
  const args = [bin, 'matrix', '--quiet', '--jobs', String(jobs), '--reporter', 'json', '--out', out];
  // CPU seconds (user + system, all threads) through GNU time when installed: on a shared machine
  // they say what the work costs, whatever else runs
  const cpuFile = join(out, 'cpu.txt');
  const [cmd, argv] = TIME ? [TIME, ['-f', '%U %S', '-o', cpuFile, process.execPath, ...args]] : [process.execPath, args];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { cwd: root, env, encoding: 'utf8', maxBuffer: 1 << 30 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0 && r.status !== 1) throw new Error(`daxlab matrix --jobs ${jobs} exited ${r.status}: ${r.stderr}`);
  const cpu = TIME ? readFileSync(cpuFile, 'utf8').trim().split(/\s+/).map(Number).reduce((a, b) => a + b, 0) : null;
  const doc = JSON.parse(readFileSync(join(out, 'daxlab-report.json'), 'utf8'));
  const simulated = doc.cells.reduce((t, c) => t + c.ms, 0) / 1000;
  const untimed = (x) => JSON.stringify(x, (k, v) => (k === 'ms' ? 0 : v));
  return { s, cpu, cells: doc.cells.length, summary: doc.summary, simulated, plan: doc.plan.id, cellTexts: doc.cells.map(untimed) };
}

/** Why two runs' reports differ: another plan (the library or a plugin changed meanwhile), or the first differing cell. */
function difference(a, b) {
  if (a.plan !== b.plan) return `the plans differ (${a.plan} vs ${b.plan}): scenarios or plugins changed during the benchmark`;
  const i = a.cellTexts.findIndex((t, j) => t !== b.cellTexts[j]);
  return i < 0 ? null : `cell ${i} differs:\n${a.cellTexts[i]}\n${b.cellTexts[i]}`;
}

// Each round runs --jobs 1 then --jobs 2 and checks the two reports are the same. Other work may
// change the library or a plugin between runs (another plan): such a round is run again.
const results = { 1: [], 2: [] };
for (let i = 0, tries = 0; i < rounds; tries++) {
  if (tries > rounds * 3) throw new Error('the library kept changing during the benchmark');
  const pair = [1, 2].map((jobs) => {
    const out = mkdtempSync(join(tmpdir(), 'daxlab-bench-matrix-'));
    try {
      return run(jobs, out);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
  if (pair[0].plan !== pair[1].plan) continue;
  // the point of --jobs: the same report
  const diff = difference(pair[0], pair[1]);
  if (diff) throw new Error(`round ${i + 1}: --jobs 2 gave another report than --jobs 1: ${diff}`);
  results[1].push(pair[0]);
  results[2].push(pair[1]);
  i++;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const row = (jobs) => {
  const s = median(results[jobs].map((r) => r.s));
  // the library may have grown between rounds: the rate is taken per run
  const rate = median(results[jobs].map((r) => r.cells / r.s));
  const cpu = TIME ? Number(median(results[jobs].map((r) => r.cpu)).toFixed(2)) : null;
  return { jobs, wallSeconds: Number(s.toFixed(2)), cellsPerSecond: Math.round(rate), cpuSeconds: cpu, simulatedSeconds: Number(median(results[jobs].map((r) => r.simulated)).toFixed(2)) };
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
      cells: [...new Set(results[1].map((r) => r.cells))],
      summary: results[1].at(-1).summary,
      jobs1: one,
      jobs2: two,
      speedup: Number((one.wallSeconds / two.wallSeconds).toFixed(2)),
      identicalReports: true,
      loadAverage: loadavg().map((x) => Number(x.toFixed(1))),
    },
    null,
    2,
  ),
);
