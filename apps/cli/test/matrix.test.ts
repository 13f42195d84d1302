import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ArchPlugin, CellResult, CellStatus } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { mergeReports } from '../src/commands/merge.js';
import { defaultJobs, type Deps } from '../src/execute.js';
import { readLog } from '../src/matrix/log.js';
import type { CellExecutor } from '../src/matrix/pool.js';
import { main } from '../src/main.js';
import { formatEta, Progress } from '../src/progress.js';
import type { Report } from '../src/report/index.js';
import { FS_SCENARIO, fakeRunner, memoryIo, namesCatalog, SIMPLE, tempTree } from './helpers.js';

const argv = (...args: string[]) => ['node', 'daxlab', ...args];

async function cli(args: string[], dir: string, deps: Partial<Deps> = {}, runner = fakeRunner(), io: Parameters<typeof memoryIo>[1] = {}) {
  const mio = memoryIo(dir, io);
  const code = await main(argv(...args), mio, { runScenario: runner, catalog: namesCatalog(), version: '9.9.9', libraryDir: join(dir, 'library'), ...deps });
  return { code, out: mio.out(), err: mio.err(), calls: runner.calls };
}

const cell = (scenario: string, status: CellStatus = 'pass', version = 'v6.6'): CellResult => ({
  scenario,
  file: `${scenario}.yaml`,
  kernel: { arch: 'x86', pageSize: 4096, fs: null, driver: null, version, features: {} },
  status,
  outcome: status === 'pass' || status === 'fail' ? 'completed' : status,
  violations: [],
  failures: status === 'fail' ? ['expect[0]: violations [x], expected none'] : [],
  reason: status === 'unsupported' || status === 'error' ? 'why' : null,
  ms: 1,
});

const shardReport = (id: string, total: number, index: number, count: number, cells: CellResult[]): Report => ({ kind: 'matrix', version: '1.0.0', cells, plugins: [], plan: { id, cells: total, shard: { index, count } } });

describe('merge', () => {
  // a 5-cell run in 2 shards: shard 1 holds cells 0, 2, 4 and shard 2 holds cells 1, 3
  const c = [0, 1, 2, 3, 4].map((i) => cell(`s${i}`));
  const s1 = { file: 'a/daxlab-report.json', report: shardReport('p', 5, 1, 2, [c[0]!, c[2]!, c[4]!]) };
  const s2 = { file: 'b/daxlab-report.json', report: shardReport('p', 5, 2, 2, [c[1]!, c[3]!]) };

  it('puts every cell back where the whole run has it, whatever the order of the shards; the plan loses its shard', () => {
    const m = mergeReports([s2, s1]);
    expect(m.cells.map((x) => x.scenario)).toEqual(['s0', 's1', 's2', 's3', 's4']);
    expect(m.plan).toEqual({ id: 'p', cells: 5 });
    expect(m.kind).toBe('matrix');
  });

  it('refuses reports of different runs, overlapping, missing or differently split shards, and cut-short reports', () => {
    const msg = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(msg(() => mergeReports([s1, { file: 'x.json', report: shardReport('q', 5, 2, 2, [c[1]!, c[3]!]) }]))).toBe('a/daxlab-report.json and x.json are reports of different runs (plan p, 5 cells vs plan q, 5 cells)');
    expect(msg(() => mergeReports([s1, { ...s1, file: 'again.json' }]))).toBe('a/daxlab-report.json and again.json are both shard 1/2: shards overlap');
    expect(msg(() => mergeReports([s1]))).toBe('shard 2/2 missing: a merge needs every shard of the run');
    expect(msg(() => mergeReports([s1, { file: 't.json', report: shardReport('p', 5, 2, 3, [c[1]!, c[4]!]) }]))).toBe('a/daxlab-report.json is shard 1/2 but t.json is shard 2/3: shards of different splits');
    expect(msg(() => mergeReports([s1, { file: 'short.json', report: shardReport('p', 5, 2, 2, [c[1]!]) }]))).toBe('short.json: shard 2/2 of a 5-cell run holds 2 cells, the report has 1 (an unfinished or edited report?)');
    expect(msg(() => mergeReports([{ file: 'old.json', report: { kind: 'matrix', version: '0', cells: [] } }]))).toMatch(/^old\.json: the report has no plan/);
    const whole = { file: 'whole.json', report: { ...s1.report, plan: { id: 'p', cells: 5 }, cells: c } };
    expect(msg(() => mergeReports([whole, s2]))).toBe('whole.json holds the whole run; it overlaps b/daxlab-report.json (shard 2/2)');
    expect(mergeReports([whole]).cells).toEqual(c);
  });

  it('through the CLI: shard reports written with --out merge into the unsharded JSON report', async () => {
    const dir = tempTree({ 'a.yaml': FS_SCENARIO('a'), 'b.yaml': SIMPLE('b'), 'bad.yaml': 'name: Bad\n' });
    const args = ['matrix', 'a.yaml', 'b.yaml', 'bad.yaml', '--kernel', 'v6.1,v6.6,v6.15'];
    const whole = await cli([...args, '--reporter', 'json'], dir);
    for (const i of [1, 2, 3, 4]) await cli([...args, '--shard', `${i}/4`, '--out', `s${i}`, '--quiet'], dir);
    const merged = await cli(['merge', 's1', 's2', 's3', 's4', '--reporter', 'json'], dir);
    expect(merged.code).toBe(whole.code);
    expect(merged.out).toBe(whole.out);
    const doc = JSON.parse(whole.out) as { plan: { cells: number }; cells: unknown[] };
    // a: 2 arches × 2 filesystems × 3 presets; b: 2 arches × 3 presets; bad.yaml: one error cell
    expect(doc.plan.cells).toBe(12 + 6 + 1);
    expect(doc.cells).toHaveLength(19);
    // a shard killed before its reports: only its cell log is there
    rmSync(join(dir, 's4', 'daxlab-report.json'));
    const unfinished = await cli(['merge', 's1', 's2', 's3', 's4'], dir);
    expect({ code: unfinished.code, err: unfinished.err }).toEqual({ code: 2, err: "error: s4: no daxlab-report.json in this directory (did that shard finish?)\nhint: a killed shard finishes with 'daxlab matrix … --out DIR --resume'\n" });
    const notReport = await cli(['merge', 'a.yaml'], dir);
    expect(notReport.code).toBe(2);
    expect(notReport.err).toMatch(/^error: a\.yaml: not valid JSON \(.+\); give daxlab-report\.json files written by 'daxlab matrix --reporter json'\n$/s);
  });
});

describe('cell log (--out DIR/cells.ndjson)', () => {
  const plan = { id: 'p', cells: 4 };
  const header = `${JSON.stringify({ format: 'daxlab-cells/1', plan })}\n`;
  const line = (index: number, status: CellStatus = 'pass') => `${JSON.stringify({ index, cell: cell(`s${index}`, status) })}\n`;

  it('keeps whole lines only: a line cut short by a kill is dropped (and the file truncated to the rest)', () => {
    const text = header + line(2) + line(0, 'fail') + line(3).slice(0, 25);
    const r = readLog(text, 'out/cells.ndjson', plan);
    expect([...r.done.keys()]).toEqual([2, 0]);
    expect(r.done.get(0)!.status).toBe('fail');
    expect(r.validBytes).toBe(Buffer.byteLength(header + line(2) + line(0, 'fail')));
  });

  it('refuses the log of another plan, another shard, or a damaged log, saying how to start over', () => {
    const err = (text: string, p = plan) => {
      try {
        readLog(text, 'out/cells.ndjson', p);
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(err(header, { id: 'other', cells: 4 })).toMatch(/^--resume: out\/cells\.ndjson belongs to a different matrix \(4 cells, plan p\); this command plans 4 cells, plan other\./);
    expect(err(header, { id: 'p', cells: 4, shard: { index: 1, count: 2 } } as typeof plan)).toMatch(/different matrix \(4 cells, plan p\); this command plans 4 cells, shard 1\/2, plan p/);
    expect(err(header + line(1) + line(1))).toBe('out/cells.ndjson:3: cell 1 is in the log twice; remove it or use another --out DIR to start over');
    expect(err(header + line(9))).toBe('out/cells.ndjson:2: index 9 is not a cell of this plan (0…3); remove it or use another --out DIR to start over');
    expect(err('{"hello":1}\n')).toBe('out/cells.ndjson:1: not a daxlab cell log (format undefined, expected "daxlab-cells/1"); remove it or use another --out DIR to start over');
    expect(err(`${header}{"index":0,"cell":{"scenario":"x"}}\n`)).toMatch(/^out\/cells\.ndjson:2: cell\.status undefined is not one of pass, fail, unsupported, error/);
  });

  it('--resume in-process: runs only the cells missing from the log, and the report is the whole run', async () => {
    const dir = tempTree({ 'a.yaml': FS_SCENARIO('a'), 'b.yaml': SIMPLE('b') });
    // out/ lies inside the scanned directory: its reports must not be taken for scenarios
    const args = ['matrix', '.', '--kernel', 'v6.6,v6.15', '--reporter', 'json', '--out', 'out', '--quiet'];
    const first = await cli(args, dir);
    const report = readFileSync(join(dir, 'out', 'daxlab-report.json'), 'utf8');
    const log = readFileSync(join(dir, 'out', 'cells.ndjson'), 'utf8').split('\n');
    // keep the header and 3 cells, and half of a 4th line: as a kill during a write leaves it
    writeFileSync(join(dir, 'out', 'cells.ndjson'), `${log.slice(0, 4).join('\n')}\n${log[4]!.slice(0, 10)}`);
    const runner = fakeRunner();
    const again = await cli([...args, '--resume'], dir, {}, runner);
    expect(again.code).toBe(first.code);
    expect(first.calls.length).toBe(12);
    expect(runner.calls.length).toBe(12 - 3);
    expect(readFileSync(join(dir, 'out', 'daxlab-report.json'), 'utf8')).toBe(report);
    // resuming a finished run runs nothing
    const done = fakeRunner();
    await cli([...args, '--resume'], dir, {}, done);
    expect(done.calls).toEqual([]);
  });

  it('--resume without --out is a usage error', async () => {
    const r = await cli(['matrix', 'a.yaml', '--resume'], tempTree({ 'a.yaml': SIMPLE('a') }));
    expect({ code: r.code, err: r.err }).toEqual({ code: 2, err: 'error: --resume needs --out DIR: the directory of the run to finish\nhint: daxlab matrix … --out DIR --resume\n' });
  });
});

describe('--jobs', () => {
  /** A stand-in for the worker pool: finishes the cells last to first, as threads may. */
  const reversed = (seen: { jobs?: number; plugins?: readonly string[] }) => (jobs: number, setup: { plugins: readonly string[] }) => {
    seen.jobs = jobs;
    seen.plugins = setup.plugins;
    const exec: CellExecutor = async (tasks, onCell) => {
      const runner = fakeRunner((s, k) => (s.name === 'a' && k.arch === 'arm64' ? 'fail' : 'pass'));
      for (const t of [...tasks].reverse()) onCell(t.index, runner(t.scenario, t.kernel, namesCatalog()));
    };
    return exec;
  };

  it('cells finishing in any order give the report of --jobs 1, in plan order', async () => {
    const dir = tempTree({ 'a.yaml': FS_SCENARIO('a'), 'b.yaml': SIMPLE('b') });
    const args = ['matrix', '.', '--kernel', 'v6.6,v6.15', '--reporter', 'json'];
    const status = (s: { name: string }, k: { arch: string }) => (s.name === 'a' && k.arch === 'arm64' ? 'fail' : 'pass');
    const one = await cli([...args, '--jobs', '1'], dir, { parallel: reversed({}) }, fakeRunner(status));
    const seen: { jobs?: number } = {};
    const two = await cli([...args, '--jobs', '3'], dir, { parallel: reversed(seen) }, fakeRunner(status));
    expect(seen.jobs).toBe(3);
    expect(one.calls.length).toBe(12);
    expect(two.calls.length).toBe(0); // every cell ran in the "pool"
    expect(two.out).toBe(one.out);
    expect(two.code).toBe(1);
  });

  it('without --jobs a run below DEFAULT_WORKERS_MIN_CELLS stays in the main thread; --jobs is always honoured', async () => {
    const dir = tempTree({ 'a.yaml': SIMPLE('a') });
    const seen: { jobs?: number } = {};
    const small = await cli(['matrix', 'a.yaml', '--kernel', 'v6.6,v6.15'], dir, { parallel: reversed(seen) });
    expect(small.calls.length).toBe(4);
    expect(seen.jobs).toBeUndefined();
    const asked = await cli(['matrix', 'a.yaml', '--kernel', 'v6.6,v6.15', '--jobs', '2'], dir, { parallel: reversed(seen) });
    expect(asked.calls.length).toBe(0);
    expect(seen.jobs).toBe(2);
  });

  it('the default --jobs leaves the main thread a core: none on one or two cores, 7 on 8', () => {
    expect([1, 2, 3, 8].map((cores) => defaultJobs(cores))).toEqual([1, 1, 2, 7]);
  });

  it('progress lines come per scenario as each completes, whatever the order', async () => {
    const dir = tempTree({ 'a.yaml': SIMPLE('a'), 'b.yaml': SIMPLE('b') });
    const r = await cli(['matrix', '.', '--kernel', 'v6.6', '--jobs', '2'], dir, { parallel: reversed({}) });
    expect(r.err).toBe('daxlab: [1/2] b: 2 cells, 2 pass\ndaxlab: [2/2] a: 2 cells, 1 pass, 1 fail\n');
  });
});

describe('--page-size lists', () => {
  // an arch that, like x86-64, has 4KiB pages only: its factory refuses any other size
  const catalog = namesCatalog();
  const strict = {
    ...catalog,
    arch: {
      ...catalog.arch,
      x86: (o: { pageSize?: number }) => {
        if (o.pageSize !== undefined && o.pageSize !== 4096) throw new Error(`pageSize ${o.pageSize} is not supported; x86-64 has 4KiB pages only`);
        return { name: '@test/x86' } as unknown as ArchPlugin;
      },
    },
  };

  it('each size is a cell; a size the arch plugin refuses is unsupported with its reason, not an error', async () => {
    const dir = tempTree({ 'a.yaml': SIMPLE('a') });
    const r = await cli(['matrix', 'a.yaml', '--kernel', 'v6.6', '--page-size', '4KiB,16KiB', '--reporter', 'json'], dir, { catalog: strict });
    const doc = JSON.parse(r.out) as { cells: { kernel: { arch: string; pageSize: number }; status: string; reason: string | null }[] };
    expect(doc.cells.map((c) => [c.kernel.arch, c.kernel.pageSize, c.status])).toEqual([
      ['x86', 4096, 'pass'],
      ['x86', 16384, 'unsupported'],
      ['arm64', 4096, 'pass'],
      ['arm64', 16384, 'pass'],
    ]);
    expect(doc.cells[1]!.reason).toBe('x86 cannot be built with 16KiB base pages: pageSize 16384 is not supported; x86-64 has 4KiB pages only');
    expect(r.code).toBe(0);
  });

  it("all: each arch's own sizes, as its plugin accepts them (no list of arches in the CLI)", async () => {
    const granules = (o: { pageSize?: number }) => {
      const size = o.pageSize ?? 4096;
      if (![4096, 16384, 65536].includes(size)) throw new Error(`pageSize ${size} is not an arm64 granule`);
      return { name: '@test/arm64', mmu: { basePageSize: size } } as unknown as ArchPlugin;
    };
    // a plugin that ignores the option: its one size, once
    const fixed = () => ({ name: '@test/fixed', mmu: { basePageSize: 8192 } }) as unknown as ArchPlugin;
    const dir = tempTree({ 'a.yaml': SIMPLE('a') });
    const r = await cli(['matrix', 'a.yaml', '--kernel', 'v6.6', '--page-size', 'all', '--reporter', 'json'], dir, { catalog: { ...namesCatalog(), arch: { granules, fixed } } });
    const doc = JSON.parse(r.out) as { cells: { kernel: { arch: string; pageSize: number }; status: string }[] };
    expect(doc.cells.map((c) => `${c.kernel.arch} ${c.kernel.pageSize} ${c.status}`)).toEqual(['granules 4096 pass', 'granules 16384 pass', 'granules 65536 pass', 'fixed 8192 pass']);
  });

  it("'run' takes one page size", async () => {
    const r = await cli(['run', 'a.yaml', '--page-size', '4KiB,16KiB'], tempTree({ 'a.yaml': SIMPLE('a') }));
    expect({ code: r.code, err: r.err }).toEqual({ code: 2, err: "error: --page-size 4KiB,16KiB: 'run' takes one value; use 'daxlab matrix' to try several\n" });
  });
});

describe('the plan id', () => {
  const idOf = async (dir: string, extra: string[] = []) => (JSON.parse((await cli(['matrix', '.', '--kernel', 'v6.6', '--reporter', 'json', ...extra], dir)).out) as { plan: { id: string } }).plan.id;

  it('is shared by the shards of a run, and changes with a scenario, a seed or the cell list', async () => {
    const dir = tempTree({ 'a.yaml': SIMPLE('a'), 'b.yaml': SIMPLE('b') });
    const id = await idOf(dir);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(await idOf(dir, ['--shard', '2/3'])).toBe(id);
    expect(await idOf(dir, ['--seed', '4'])).not.toBe(id);
    expect(await idOf(dir, ['--arch', 'x86'])).not.toBe(id);
    writeFileSync(join(dir, 'b.yaml'), SIMPLE('b', 'description: edited\n'));
    expect(await idOf(dir)).not.toBe(id);
  });
});

describe('progress', () => {
  const clockIo = (tty: boolean) => {
    let t = 0;
    const io = memoryIo('/', { stderrIsTTY: tty, now: () => t });
    return { io, advance: (ms: number) => (t += ms) };
  };

  it('on a terminal: a bar with counts per status and an ETA at the pace so far; fail and error lines above it', () => {
    const { io, advance } = clockIo(true);
    const p = new Progress(io, 4, new Map([['a.yaml#a', 2], ['b.yaml#b', 2]]), 'bar');
    advance(5000); // start-up: not part of the pace
    p.cell(cell('a'));
    expect(io.err()).toBe('\r\x1b[2K[#####---------------] 1/4 1 pass 0 fail 0 unsup 0 error ETA … a');
    advance(1000);
    p.cell(cell('a', 'fail'));
    // one cell per second since the first, 2 to go: 2 s
    expect(io.err().endsWith('\r\x1b[2KFAIL a x86 4KiB no-fs no-driver v6.6\n\r\x1b[2K[##########----------] 2/4 1 pass 1 fail 0 unsup 0 error ETA 2s a')).toBe(true);
    advance(10);
    p.cell(cell('b', 'unsupported'));
    // redrawn at most every 50 ms, except for the last cell
    expect(io.err()).not.toContain('3/4');
    advance(10);
    p.cell(cell('b'));
    p.finish();
    expect(io.err().endsWith('[####################] 4/4 2 pass 1 fail 1 unsup 0 error done b\r\x1b[2K')).toBe(true);
  });

  it('restored cells (--resume) count toward the bar but not toward the pace', () => {
    const { io, advance } = clockIo(true);
    const p = new Progress(io, 12, new Map([['s0.yaml#s0', 12]]), 'bar');
    for (let i = 0; i < 8; i++) p.restore(cell('s0'));
    advance(1000);
    p.cell(cell('s0'));
    advance(2000);
    p.cell(cell('s0'));
    // 2 s per cell run now, 2 to go
    expect(io.err().endsWith('\r\x1b[2K[#################---] 10/12 10 pass 0 fail 0 unsup 0 error ETA 4s s0')).toBe(true);
  });

  it('the bar fits the terminal width when known', () => {
    const io = memoryIo('/', { stderrIsTTY: true, stderrColumns: 40, now: () => 0 });
    const p = new Progress(io, 2, new Map([['a.yaml#a', 2]]), 'bar');
    p.cell(cell('a-scenario-with-a-long-name'));
    expect(io.err()).toBe('\r\x1b[2K[##########----------] 1/2 1 pass 0 fa…'); // 39 columns
  });

  it('--quiet: a line for each cell that did not pass, nothing else', () => {
    const { io } = clockIo(false);
    const p = new Progress(io, 3, new Map([['a.yaml#a', 3]]), 'problems');
    p.cell(cell('a'));
    p.cell(cell('a', 'unsupported', 'v5.4'));
    p.cell(cell('a', 'error', 'v6.1'));
    expect(io.err()).toBe('daxlab: UNSUP a x86 4KiB no-fs no-driver v5.4\ndaxlab: ERROR a x86 4KiB no-fs no-driver v6.1\n');
  });

  it('ETA reads in seconds, then minutes and seconds', () => {
    expect([formatEta(0), formatEta(59_400), formatEta(65_000), formatEta(3_600_000)]).toEqual(['0s', '59s', '1m05s', '60m00s']);
  });
});
