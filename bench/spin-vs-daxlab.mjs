// Spin vs daxlab on the same questions (issue 6): the Promela model of shared/baselines/spin and
// the equivalent daxlab scenarios (apps/cli/scenarios/explore/spin), on this machine, in one go.
//
//   npm run build && node bench/spin-vs-daxlab.mjs            # everything (Spin: about 3-5 minutes)
//   QUICK=1 node bench/spin-vs-daxlab.mjs                       # without the three largest scaled models
//   ONLY=B1,V2 node bench/spin-vs-daxlab.mjs                    # some variants (Spin still runs run.sh)
//   SPIN_RESULTS=/tmp/daxlab-spin-XXXX node bench/...            # reuse that folder's Spin run (out/results.tsv)
//                                                                 instead of running run.sh again (say so when reporting)
//   PAIRED=1 REPEAT=3 node bench/spin-vs-daxlab.mjs             # the scaled V2 models with K >= 2 only,
//       each Spin build + pan and each daxlab explore run back to back, alternating, REPEAT times
//       (medians): on a machine other jobs load unevenly, the two sides of a row then see the same load
//   PAIRED=1 ROWS=1x3,2x3 node bench/spin-vs-daxlab.mjs       # paired, only those N x K rows
//   PAIRED=1 DAXLAB_JOBS=1,2 node bench/spin-vs-daxlab.mjs     # paired, a daxlab column per `explore --jobs` value
//
// Spin side: the baseline folder is copied to a scratch folder under os.tmpdir() (run.sh writes
// out/ and trails/ beside itself) and its run.sh runs there, one build at a time (JOBS=1, so a
// build has a core to itself); per variant we take the `safety` run with partial-order reduction
// (pan -m10000, stops at the first error, like daxlab's verdict below) from out/results.tsv: the
// time to a verdict is build_s (spin -a + gcc -O2) + the pan process's wall time.
//
// daxlab side: one process per variant, timed from spawn to exit (node start-up, module loading,
// kernel construction, the search, the report), searching as pan does for a verdict: depth-first
// over hashed states, stopping at the first violation or blocked run (`daxlab explore --search dfs
// --stop-at-first`; a variant without a finding is searched completely). The built CLI is used when the built
// CLI has the explore command and an x86 arch plugin; until then this script's own --explore mode,
// which imports the built @daxlab/core and plugins and calls the same explorer.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BASELINE = process.env.SPIN_BASELINE ?? '/work/shared/baselines/spin';
const SCENARIOS = join(ROOT, 'apps/cli/scenarios/explore');
const CLI = join(ROOT, 'apps/cli/dist/bin.js');

// ---- daxlab, as a library ---------------------------------------------------------------------

/**
 * x86-64's MMU constants (arch/x86/include/asm/pgtable_64_types.h), used only while
 * @daxlab/arch-x86 exports no plugin: the explore scenarios do not look at vmemmap figures.
 */
function x86Mmu() {
  const mmu = {
    arch: 'x86', basePageSize: 4096, pmdSize: 2 ** 21, pudSize: 2 ** 30, levels: 4, structPageSize: 64,
    sectionSize: 2 ** 27, subsectionSize: 2 ** 21, pteBits: { special: true, devmap: true }, devdaxAlignments: [4096, 2 ** 21, 2 ** 30],
  };
  const populator = {
    vmemmapInInitMm: true,
    optsInToDaxVmemmapOptimization: () => true,
    populate: (m, req) => {
      const pages = req.size / m.basePageSize;
      return { ok: true, figures: { structPages: pages, structPagesInitialized: pages, vmemmapPages: Math.ceil((pages * m.structPageSize) / m.basePageSize), vmemmapBytes: pages * m.structPageSize, savedPages: 0, optimized: false } };
    },
  };
  return { kind: 'arch', name: 'bench-x86', arch: 'x86', mmu, populator };
}

/** The built explorer and a catalog (x86, xfs/ext4/fuse, nvdimm/devdax). */
export async function daxlab() {
  await import('reflect-metadata');
  const core = await import('@daxlab/core');
  const explore = core.exploreScenario ? core : await import(pathToFileURL(join(ROOT, 'packages/core/dist/explore/index.js')).href);
  const archMod = await import('@daxlab/arch-x86');
  const x86 = typeof archMod.x86 === 'function' ? () => archMod.x86() : x86Mmu;
  const { xfs } = await import('@daxlab/fs-xfs');
  const { ext4 } = await import('@daxlab/fs-ext4');
  const { fuse } = await import('@daxlab/fs-fuse');
  const { nvdimm } = await import('@daxlab/driver-nvdimm');
  const { devdax } = await import('@daxlab/driver-devdax');
  const catalog = { arch: { x86 }, fs: { xfs: () => xfs(), ext4: () => ext4(), fuse: () => fuse() }, driver: { nvdimm: () => nvdimm(), devdax: () => devdax() } };
  return { core, exploreScenario: explore.exploreScenario, catalog, archPlugin: typeof archMod.x86 === 'function' ? '@daxlab/arch-x86' : 'bench x86-64 constants' };
}

/** The Promela model's verdict vocabulary: OK, INV (block freed or reused under a pin), HANG (truncate stuck), UFL. */
export function verdictOf(r) {
  const names = r.violations.map((v) => v.invariant);
  if (names.includes('block-freed-while-pinned') || names.includes('dma-to-foreign-block')) return 'INV';
  if (names.includes('refcount-underflow')) return 'UFL';
  if (r.outcome === 'blocked') return 'HANG';
  if (names.length) return `VIOL(${names.join(',')})`;
  return 'OK';
}

/** `--explore file version [name=value…] [--stop-at-first]`: one exploration, one JSON line. */
async function exploreMode(args) {
  const [file, version, ...rest] = args;
  const stopAtFirst = rest.includes('--stop-at-first');
  const search = rest.includes('--dfs') ? 'dfs' : 'bfs';
  const features = Object.fromEntries(rest.filter((x) => x.includes('=')).map((kv) => {
    const [k, v] = kv.split('=');
    return [k, v === 'true' ? true : v === 'false' ? false : v];
  }));
  const { core, exploreScenario, catalog } = await daxlab();
  const scenario = core.loadScenarioFile(file);
  const r = exploreScenario(scenario, { arch: 'x86', fs: scenario.kernel.fs ?? null, driver: scenario.kernel.driver ?? null, version, features }, catalog, { stopAtFirst, search, maxStates: Number(process.env.MAX_STATES ?? 5e6) });
  console.log(JSON.stringify({ verdict: verdictOf(r), status: r.status, complete: r.complete, states: r.states, transitions: r.transitions, ms: r.ms, limits: r.limits }));
}

// ---- the variants -----------------------------------------------------------------------------

const V1 = ['v6.6', { 'dax-busy-mapping-mapped-check': false }];
const V2 = ['v6.15', {}];
const V3 = ['v6.15', { 'fsdax-refcount': 'entry-holds-ref' }];
const w = ([v, f], more) => [v, { ...f, ...more }];
const B1 = { 'dax-busy-mapping-mapped-check': true };
const B2 = { 'dax-delete-entries-before-wait': true };

/** [Spin run id, daxlab scenario, kernel, note] */
export const VARIANTS = [
  ['V1', 'spin/punch-vs-dma.yaml', V1],
  ['V2', 'spin/punch-vs-dma.yaml', V2],
  ['V3', 'spin/punch-vs-dma.yaml', V3],
  ['B1', 'spin/punch-vs-dma.yaml', w(V2, B1)],
  ['B1-V1', 'spin/punch-vs-dma.yaml', ['v6.6', {}]],
  ['B1-V3', 'spin/punch-vs-dma.yaml', w(V3, B1)],
  ['B2', 'spin/punch-vs-dma.yaml', w(V2, B2)],
  ['B2-V1', 'spin/punch-vs-dma.yaml', w(V1, B2)],
  ['B2-V3', 'spin/punch-vs-dma.yaml', w(V3, B2)],
  ['B3', 'spin/punch-vs-dma.yaml', w(V2, { 'dax-wait-refcount-one': true })],
  ['V1-keepmap', 'spin/punch-keepmap.yaml', V1],
  ['V2-keepmap', 'spin/punch-keepmap.yaml', V2],
  ['V3-keepmap', 'spin/punch-keepmap.yaml', V3],
  ['V2-keepmap-1fault', 'spin/punch-keepmap-pinned.yaml', V2],
  ['V2-keepmap-1fault', 'spin/punch-keepmap-1fault.yaml', V2, 'GUP races the punch: its slow path re-faults the page'],
  ...[1, 2, 3].flatMap((n) => [1, 2, 3].flatMap((k) => [
    [`scale-V2-N${n}K${k}`, `spin/scale-n${n}k${k}.yaml`, V2],
    [`scale-B1-N${n}K${k}`, `spin/scale-n${n}k${k}.yaml`, w(V2, B1)],
  ])),
];

// ---- running both -----------------------------------------------------------------------------

function cliHasExplore() {
  if (!existsSync(CLI)) return false;
  const help = spawnSync(process.execPath, [CLI, 'explore', '--help'], { encoding: 'utf8' });
  const plugins = spawnSync(process.execPath, [CLI, 'list', 'plugins'], { encoding: 'utf8' });
  return help.status === 0 && /\bx86\b/.test(plugins.stdout ?? '');
}

function readSpinResults(dir) {
  const [head, ...lines] = readFileSync(join(dir, 'out/results.tsv'), 'utf8').trim().split('\n');
  const cols = head.split('\t');
  return lines.map((l) => Object.fromEntries(l.split('\t').map((v, i) => [cols[i], v])));
}

function runSpin() {
  if (process.env.SPIN_RESULTS) {
    const rows = readSpinResults(process.env.SPIN_RESULTS);
    return { dir: process.env.SPIN_RESULTS, wall: NaN, rows, allExpected: rows.every((r) => r.verdict === r.expected), tail: 'reused, not run again' };
  }
  const dir = mkdtempSync(join(tmpdir(), 'daxlab-spin-'));
  cpSync(BASELINE, dir, { recursive: true });
  const env = { ...process.env, JOBS: process.env.SPIN_JOBS ?? '1', QUICK: process.env.QUICK ?? '0' };
  const t0 = performance.now();
  const r = spawnSync('bash', ['run.sh'], { cwd: dir, env, encoding: 'utf8', maxBuffer: 1 << 26 });
  const wall = (performance.now() - t0) / 1000;
  if (!existsSync(join(dir, 'out/results.tsv'))) throw new Error(`run.sh did not produce out/results.tsv:\n${r.stdout}\n${r.stderr}`);
  const [head, ...lines] = readFileSync(join(dir, 'out/results.tsv'), 'utf8').trim().split('\n');
  const cols = head.split('\t');
  const rows = lines.map((l) => Object.fromEntries(l.split('\t').map((v, i) => [cols[i], v])));
  return { dir, wall, rows, allExpected: /all verdicts as expected/.test(r.stdout), tail: r.stdout.trim().split('\n').slice(-2).join(' | ') };
}

function runDaxlab(file, [version, features], useCli, jobs = 1) {
  const path = join(SCENARIOS, file);
  const flags = Object.entries(features).map(([k, v]) => `${k}=${v}`);
  const args = useCli
    ? [CLI, 'explore', path, '--kernel', version, ...flags.flatMap((f) => ['--feature', f]), '--search', 'dfs', '--stop-at-first', '--reporter', 'json', '--quiet', ...(jobs > 1 ? ['--jobs', String(jobs)] : [])]
    : [fileURLToPath(import.meta.url), '--explore', path, version, ...flags, '--dfs', '--stop-at-first'];
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 28, timeout: Number(process.env.DAXLAB_TIMEOUT_S ?? 900) * 1000 });
  const wall = (performance.now() - t0) / 1000;
  if (r.error?.code === 'ETIMEDOUT' || r.signal) return { wall, verdict: 'TIMEOUT', states: null, transitions: null, complete: false };
  if (useCli) {
    const cell = JSON.parse(r.stdout).cells[0];
    return { wall, verdict: verdictOf(cell), states: cell.states, transitions: cell.transitions, complete: cell.complete };
  }
  const line = r.stdout.trim().split('\n').at(-1);
  if (!line?.startsWith('{')) throw new Error(`daxlab run failed for ${file}: ${r.stderr}`);
  return { wall, ...JSON.parse(line) };
}

async function main() {
  const only = process.env.ONLY ? process.env.ONLY.split(',') : null;
  const quick = process.env.QUICK === '1';
  const cpu = (readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? cpus()[0]?.model;
  const spinVersion = spawnSync('spin', ['-V'], { encoding: 'utf8' }).stdout?.trim();
  if (!spinVersion) throw new Error('spin not found: apt-get install -y spin');
  const useCli = cliHasExplore();
  const { archPlugin } = await daxlab();
  console.log(`# Spin vs daxlab explore, ${new Date().toISOString().slice(0, 10)}: ${cpus().length} cores (${cpu}), node ${process.version}, ${spinVersion}, gcc ${spawnSync('gcc', ['-dumpversion'], { encoding: 'utf8' }).stdout.trim()}`);
  console.log(`# daxlab via ${useCli ? 'daxlab explore (built CLI)' : 'bench/spin-vs-daxlab.mjs --explore (built @daxlab/core + plugins)'}, arch: ${archPlugin}`);
  const spin = runSpin();
  console.log(`# Spin run.sh (JOBS=${process.env.SPIN_JOBS ?? 1}${quick ? ', QUICK=1' : ''}) in ${spin.dir}: ${spin.wall.toFixed(1)} s; ${spin.tail}`);
  console.log('');
  console.log('| variant | daxlab scenario (kernel) | Spin verdict | daxlab verdict | same | Spin s (build + pan) | daxlab s (end to end) | daxlab / Spin | Spin states | daxlab states | daxlab transitions |');
  console.log('|---|---|---|---|---|---:|---:|---:|---:|---:|---:|');
  const results = [];
  for (const [id, file, kernel, note] of VARIANTS) {
    if (only && !only.includes(id)) continue;
    const s = spin.rows.find((r) => r.id === id && r.mode === 'safety' && r.red === 'por');
    if (!s) continue; // QUICK=1 skips some scaled models
    const d = runDaxlab(file, kernel, useCli);
    const spinS = Number(s.build_s) + Number(s.pan_wall_ms) / 1000;
    const row = { id, file, kernel, note, spin: { verdict: s.verdict, s: spinS, states: Number(s.states) }, daxlab: d };
    results.push(row);
    const flags = Object.entries(kernel[1]).map(([k, v]) => `${k}=${v}`).join(' ');
    const verdictD = d.verdict + (d.complete ? '' : d.verdict === 'TIMEOUT' ? '' : ' (first found)');
    console.log(`| ${id}${note ? ` (${note})` : ''} | ${file.replace('spin/', '')} (${kernel[0]}${flags ? ` ${flags}` : ''}) | ${s.verdict} | ${verdictD} | ${s.verdict === d.verdict ? 'yes' : '**no**'} | ${spinS.toFixed(2)} | ${d.wall.toFixed(2)} | ${(d.wall / spinS).toFixed(2)} | ${s.states} | ${d.states ?? '—'} | ${d.transitions ?? '—'} |`);
  }
  const same = results.filter((r) => r.spin.verdict === r.daxlab.verdict).length;
  const faster = results.filter((r) => r.daxlab.wall <= r.spin.s).length;
  console.log('');
  console.log(`# ${results.length} variants: same verdict ${same}, daxlab/Spin <= 1 on ${faster}; Spin verdicts as run.sh expects: ${spin.allExpected ? 'yes' : 'NO'}`);
}

/** One Spin safety run of the scaled model, as run.sh does it (spin -a, gcc -O2, pan -m10000 -wW), timed end to end. */
function spinOnce(dir, n, k) {
  const defs = ['-DV2', `-DNPAGES=${n}`, `-DNUSERS=${k}`, '-DMAXF=2', '-DMAXP=1'];
  const w = { 1: 18, 2: 18, 3: 20, 4: 20, 6: 22 }[n * k] ?? 24;
  const t0 = performance.now();
  const run = (cmd, args) => {
    const r = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0 && cmd !== './pan') throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  run('spin', ['-a', ...defs, 'dax_truncate.pml']);
  run('gcc', ['-O2', '-w', '-DSAFETY', '-DNOCLAIM', '-o', 'pan', 'pan.c']);
  const out = run('./pan', ['-m10000', `-w${w}`]);
  const s = (performance.now() - t0) / 1000;
  const states = Number((out.match(/(\d+) states, stored/) ?? [])[1]);
  return { s, verdict: /errors: 0/.test(out) ? 'OK' : 'INV', states };
}

async function paired() {
  const repeat = Number(process.env.REPEAT ?? 3);
  const useCli = cliHasExplore();
  const dir = mkdtempSync(join(tmpdir(), 'daxlab-spin-paired-'));
  cpSync(BASELINE, dir, { recursive: true });
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`# Spin vs daxlab, paired (each row: Spin build + pan, then daxlab explore, ${repeat} times, medians), ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores`);
  console.log('');
  // DAXLAB_JOBS=1,2: a daxlab column per --jobs value (threads of one explore process)
  const jobsList = (process.env.DAXLAB_JOBS ?? '1').split(',').map(Number);
  const cols = jobsList.map((j) => (j > 1 ? ` --jobs ${j}` : ''));
  console.log(`| variant | Spin verdict | daxlab verdict | Spin s (median) |${cols.map((c) => ` daxlab${c} s (median) | daxlab${c} / Spin |`).join('')} Spin states | daxlab states | daxlab transitions |`);
  console.log(`|---|---|---|---:|${cols.map(() => '---:|---:|').join('')}---:|---:|---:|`);
  // ROWS=1x3,2x3: only those N×K rows
  const rows = process.env.ROWS ? process.env.ROWS.split(',').map((r) => r.split('x').map(Number)) : [[1, 2], [2, 2], [3, 2], [1, 3], [2, 3], [3, 3]];
  for (const [n, k] of rows) {
    const spin = [];
    const dax = jobsList.map(() => []);
    for (let i = 0; i < repeat; i++) {
      spin.push(spinOnce(dir, n, k));
      jobsList.forEach((j, c) => dax[c].push(runDaxlab(`spin/scale-n${n}k${k}.yaml`, V2, useCli, j)));
    }
    const sp = median(spin.map((x) => x.s));
    const d = dax[0][0];
    const cells = dax.map((runs) => {
      const dx = median(runs.map((x) => x.wall));
      return ` ${dx.toFixed(2)} | ${(dx / sp).toFixed(2)} |`;
    });
    console.log(`| scale-V2-N${n}K${k} | ${spin[0].verdict} | ${d.verdict} | ${sp.toFixed(2)} |${cells.join('')} ${spin[0].states} | ${d.states} | ${d.transitions} |`);
  }
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  if (process.argv[2] === '--explore') await exploreMode(process.argv.slice(3));
  else if (process.env.PAIRED === '1') await paired();
  else await main();
}
