import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILT, CLI_DIR, daxlab, tempTree } from './helpers.js';

// The matrix runner end to end, through the built CLI and the real simulator: a library subset
// keeps each run to a few seconds: the 10 fs scenarios on x86 with xfs, ext4 and fuse, on v5.4
// and v6.15 (60 cells and more as the library grows; the fuse cells on v5.4 are unsupported).
const SUBSET = ['matrix', 'scenarios/fs', '--arch', 'x86', '--fs', 'xfs,ext4,fuse', '--kernel', 'v5.4,v6.15', '--quiet'];
const SLOW = 120_000;

interface Doc {
  plan: { id: string; cells: number; shard?: { index: number; count: number } };
  cells: { scenario: string; status: string; reason: string | null; kernel: { arch: string; fs: string | null; version: string } }[];
  summary: Record<string, number>;
}

/** The report with every timing zeroed: everything else must match byte for byte. */
const untimed = (text: string) => JSON.stringify(JSON.parse(text), (k, v: unknown) => (k === 'ms' ? 0 : v), 2);

function scratch(): string {
  return tempTree({});
}

describe.skipIf(!BUILT)('daxlab matrix: jobs, shards, merge, --out and --resume (built CLI)', () => {
  let full: string;
  const fullRun = () => {
    if (full === undefined) {
      const r = daxlab([...SUBSET, '--jobs', '1', '--reporter', 'json']);
      expect(r.code).toBe(0);
      full = r.out;
    }
    return full;
  };

  it('--jobs 2 (worker threads) gives the report of --jobs 1, in the same order', () => {
    const one = fullRun();
    const doc = JSON.parse(one) as Doc;
    expect(doc.cells.length).toBe(doc.plan.cells);
    expect(doc.cells.length).toBeGreaterThanOrEqual(60);
    // fs/fuse/dax.c (virtio-fs DAX windows) arrived in v5.10: on v5.4 every fuse cell is unsupported
    const fuseOld = doc.cells.filter((c) => c.kernel.fs === 'fuse' && c.kernel.version === 'v5.4');
    expect(fuseOld.length).toBeGreaterThanOrEqual(10);
    expect(fuseOld.every((c) => c.status === 'unsupported')).toBe(true);
    const two = daxlab([...SUBSET, '--jobs', '2', '--reporter', 'json']);
    expect(two.code).toBe(0);
    expect(untimed(two.out)).toBe(untimed(one));
  }, SLOW);

  it('three shards merged give the report of the whole run', () => {
    const dir = scratch();
    for (const i of [1, 2, 3]) {
      const r = daxlab([...SUBSET, '--jobs', '1', '--shard', `${i}/3`, '--out', join(dir, `s${i}`)]);
      expect(r.code).toBe(0);
      expect((JSON.parse(readFileSync(join(dir, `s${i}`, 'daxlab-report.json'), 'utf8')) as Doc).plan.shard).toEqual({ index: i, count: 3 });
    }
    // shard order on the command line does not matter
    const merged = daxlab(['merge', join(dir, 's3'), join(dir, 's1'), join(dir, 's2', 'daxlab-report.json'), '--reporter', 'json']);
    expect(merged.code).toBe(0);
    expect(untimed(merged.out)).toBe(untimed(fullRun()));
    const missing = daxlab(['merge', join(dir, 's1'), join(dir, 's3')]);
    expect({ code: missing.code, err: missing.err }).toEqual({ code: 2, err: 'error: shard 2/3 missing: a merge needs every shard of the run\nhint: give all 3 shard reports\n' });
    rmSync(dir, { recursive: true, force: true });
  }, SLOW);

  it('a run killed after 7 cells keeps them; --resume runs only the rest and writes the whole report', () => {
    const dir = scratch();
    const out = join(dir, 'out');
    const killed = daxlab([...SUBSET, '--jobs', '1', '--out', out], CLI_DIR, { DAXLAB_ABORT_AFTER_CELLS: '7' });
    expect(killed.signal).toBe('SIGKILL');
    const log = readFileSync(join(out, 'cells.ndjson'), 'utf8').split('\n');
    expect(log.length).toBe(1 + 7 + 1); // header, 7 cells, the empty string after the last newline
    const total = (JSON.parse(fullRun()) as Doc).cells.length;
    const resumed = daxlab([...SUBSET, '--jobs', '2', '--out', out, '--resume']);
    expect(resumed.code).toBe(0);
    expect(untimed(readFileSync(join(out, 'daxlab-report.json'), 'utf8'))).toBe(untimed(fullRun()));
    // every cell is in the log once: 7 from the killed run, the rest from the resumed one
    const indices = readFileSync(join(out, 'cells.ndjson'), 'utf8').trim().split('\n').slice(1).map((l) => (JSON.parse(l) as { index: number }).index);
    expect(indices.slice(0, 7)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect([...indices].sort((a, b) => a - b)).toEqual([...Array(total).keys()]);
    rmSync(dir, { recursive: true, force: true });
  }, SLOW);

  it('--resume refuses a directory of another matrix, naming both', () => {
    const dir = scratch();
    const out = join(dir, 'out');
    expect(daxlab([...SUBSET, '--jobs', '1', '--out', out]).code).toBe(0);
    const other = daxlab(['matrix', 'scenarios/fs', '--arch', 'x86', '--kernel', 'v6.15', '--quiet', '--out', out, '--resume']);
    expect(other.code).toBe(2);
    expect(other.err).toMatch(/^error: --resume: \S+cells\.ndjson belongs to a different matrix \(\d+ cells, plan [0-9a-f]{12}\); this command plans \d+ cells, plan [0-9a-f]{12}\. Resume with the same scenarios, flags, plugins and daxlab version, or drop --resume/);
    rmSync(dir, { recursive: true, force: true });
  }, SLOW);

  /** The matrix of one anon pin scenario on the crash arch (its v5.10 kernel ends the worker thread), two workers. */
  const crashMatrix = (kernels: string): { code: number | null; cells: Doc['cells'] } => {
    const scenario = 'name: anon-pin\nsteps:\n  - mmap: { anon: true, length: 8KiB, write: true, as: m }\n  - pin: { map: m, page: 0, write: true, as: dma }\n  - unpin: dma\n';
    const dir = tempTree({ 'anon.yaml': scenario });
    const plugin = join(CLI_DIR, 'test', 'fixtures', 'crash-arch.mjs');
    const r = daxlab(['matrix', 'anon.yaml', '--plugin', plugin, '--arch', 'crash', '--kernel', kernels, '--jobs', '2', '--reporter', 'json'], dir);
    rmSync(dir, { recursive: true, force: true });
    return { code: r.code, cells: (JSON.parse(r.out) as Doc).cells };
  };

  it('a worker thread that dies mid-cell: that cell is an error naming the cause, the others run, no hang', () => {
    const { code, cells } = crashMatrix('v5.4,v5.10,v6.15');
    expect(code).toBe(1);
    expect(cells.map((c) => [c.kernel.version, c.status])).toEqual([['v5.4', 'pass'], ['v5.10', 'error'], ['v6.15', 'pass']]);
    expect(cells[1]!.reason).toBe('the worker thread running this cell crashed: it exited with code 70 (the other cells ran on)');
  }, SLOW);

  it('cells queued behind the one that crashed a worker run elsewhere and pass', () => {
    // two cells in flight per worker: the worker that crashes on v5.10 holds the next cell too
    const { code, cells } = crashMatrix('all');
    expect(code).toBe(1);
    expect(cells.map((c) => [c.kernel.version, c.status])).toEqual([
      ['v5.4', 'pass'], ['v5.10', 'error'], ['v6.1', 'pass'], ['v6.3', 'pass'], ['v6.6', 'pass'], ['v6.15', 'pass'], ['latest', 'pass'],
    ]);
  }, SLOW);

  it('workers that cannot start: every cell is an error naming why, no hang', () => {
    const dir = tempTree({ 'a.yaml': 'name: a\nsteps:\n  - spawn: { as: p }\n' });
    const plugin = join(CLI_DIR, 'test', 'fixtures', 'main-thread-only-arch.mjs');
    const r = daxlab(['matrix', 'a.yaml', '--plugin', plugin, '--arch', 'toy', '--kernel', 'v6.6,v6.15', '--jobs', '2', '--reporter', 'json'], dir);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.out) as Doc;
    expect(doc.cells.map((c) => [c.kernel.version, c.status, c.reason])).toEqual(
      ['v6.6', 'v6.15'].map((v) => [v, 'error', `no worker thread could start: --plugin ${plugin}: cannot import it: main-thread-only-arch: this plugin cannot be loaded in a worker thread`]),
    );
    // the same cells in the main thread pass
    const here = daxlab(['matrix', 'a.yaml', '--plugin', plugin, '--arch', 'toy', '--kernel', 'v6.6,v6.15', '--jobs', '1', '--reporter', 'json'], dir);
    expect((JSON.parse(here.out) as Doc).cells.map((c) => c.status)).toEqual(['pass', 'pass']);
    rmSync(dir, { recursive: true, force: true });
  }, SLOW);
});
