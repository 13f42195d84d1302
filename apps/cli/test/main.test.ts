import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { FEATURES, INVARIANT_NAMES, PRESETS } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { main } from '../src/main.js';
import { FS_SCENARIO, fakeRunner, memoryIo, namesCatalog, SIMPLE, tempTree } from './helpers.js';

const argv = (...args: string[]) => ['node', 'daxlab', ...args];

/** Run main() in-process on a directory of scenario files with the fake runner. */
async function cli(args: string[], opts: { files?: Record<string, string>; runner?: ReturnType<typeof fakeRunner>; io?: Parameters<typeof memoryIo>[1]; dir?: string } = {}) {
  const dir = opts.dir ?? tempTree(opts.files ?? {});
  const io = memoryIo(dir, opts.io);
  const runner = opts.runner ?? fakeRunner();
  const code = await main(argv(...args), io, { runScenario: runner, catalog: namesCatalog(), version: '9.9.9', libraryDir: join(dir, 'library') });
  return { code, out: io.out(), err: io.err(), calls: runner.calls, dir };
}

describe('exit codes', () => {
  it('0 when every cell passes', async () => {
    const r = await cli(['run', 'a.yaml'], { files: { 'a.yaml': SIMPLE('a') } });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^PASS   a  x86 4KiB no-fs no-driver latest\n\n1 cell: 1 pass, 0 fail, 0 unsupported, 0 error in \d+ms\n$/);
  });

  it('0 with unsupported cells (the runner already decided they are acceptable)', async () => {
    const r = await cli(['run', 'a.yaml'], { files: { 'a.yaml': SIMPLE('a') }, runner: fakeRunner(() => 'unsupported') });
    expect(r.code).toBe(0);
  });

  it('1 when a cell fails or errors', async () => {
    expect((await cli(['run', 'a.yaml'], { files: { 'a.yaml': SIMPLE('a') }, runner: fakeRunner(() => 'fail') })).code).toBe(1);
    expect((await cli(['run', 'a.yaml'], { files: { 'a.yaml': SIMPLE('a') }, runner: fakeRunner(() => 'error') })).code).toBe(1);
  });

  it('1 with an error cell naming file, field and fix for an invalid scenario; the others still run', async () => {
    const r = await cli(['run', '.'], { files: { 'a.yaml': SIMPLE('a'), 'b.yaml': 'name: b\nsteps:\n  - trunc: { file: a, size: 0 }\n' } });
    expect(r.code).toBe(1);
    expect(r.calls.map((c) => c.scenario)).toEqual(['a']);
    expect(r.out).toContain("ERROR  b  x86 no-fs no-driver latest\n       b.yaml:3:5: steps[0].trunc: unknown operation 'trunc'; did you mean 'truncate'?");
  });

  it('a simulator crash becomes an error cell, not a crash of the CLI', async () => {
    const boom = Object.assign(() => {
      throw new Error('page store corrupted');
    }, { calls: [] });
    const r = await cli(['run', 'a.yaml'], { files: { 'a.yaml': SIMPLE('a') }, runner: boom as unknown as ReturnType<typeof fakeRunner> });
    expect(r.code).toBe(1);
    expect(r.out).toContain('internal error: page store corrupted (a bug in daxlab');
  });

  it('2 for usage errors: one line and a hint, no stack', async () => {
    const cases: [string[], RegExp][] = [
      [['run', '--archh', 'x86'], /^error: unknown option '--archh'\n\(Did you mean --arch\?\)\nhint: run 'daxlab run --help' for usage\n$/],
      [['matrix', '--shard', '3/2'], /^error: --shard 3\/2: expected i\/n with 1 <= i <= n/],
      [['run', '--kernel', 'v9'], /^error: --kernel: unknown value 'v9'\nhint: known: v5\.4, /],
      [['run', '--seed', '-1'], /^error: --seed -1: expected a whole number\n$/],
      [['run', '--reporter', 'tap'], /^error: --reporter: unknown reporter 'tap'\nhint: reporters: table, json, junit, html\n$/],
      [['run', '--reporter', 'table,json'], /^error: --reporter table,json: json goes to files when combined with other reporters; add --out DIR/],
      [['run', 'nope.yaml'], /^error: no such file or directory: nope\.yaml\n/],
      [['list', 'kernel'], /^error: command-argument value 'kernel' is invalid for argument 'what'\. Allowed choices are plugins, kernels, features, invariants, scenarios\.\n/],
      [['frobnicate'], /^error: unknown command 'frobnicate'/],
      [['matrix', '--jobs', '0'], /^error: --jobs 0: expected a whole number of at least 1\n$/],
      [['run', '--schedule', '[{"thread": 1}]'], /^error: --schedule: expected a list of/],
    ];
    for (const [args, want] of cases) {
      const r = await cli(args, { files: { 'library/a.yaml': SIMPLE('a') } });
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.err).toMatch(want);
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(r.out).toBe('');
    }
  });

  it('--help and --version exit 0', async () => {
    const h = await cli(['run', '--help']);
    expect(h.code).toBe(0);
    expect(h.out).toContain('--reporter <names>');
    const v = await cli(['--version']);
    expect(v).toMatchObject({ code: 0, out: '9.9.9\n' });
  });
});

describe('run and matrix', () => {
  it('no scenario argument: the built-in library (directories expand sorted, recursively)', async () => {
    const r = await cli(['run'], { files: { 'library/z.yaml': SIMPLE('z'), 'library/sub/b.yml': SIMPLE('b'), 'library/a.json': JSON.stringify({ name: 'a', steps: [{ spawn: { as: 'p' } }] }), 'library/notes.txt': 'x' } });
    expect(r.calls.map((c) => c.scenario)).toEqual(['a', 'b', 'z']);
  });

  it('matrix expands the axes; flags pick lists; --seed reaches the runner', async () => {
    const r = await cli(['matrix', 'f.yaml', '--kernel', 'v6.6,v6.15', '--fs', 'all', '--seed', '3'], { files: { 'f.yaml': FS_SCENARIO('f') } });
    expect(r.calls.map((c) => `${c.kernel.arch} ${c.kernel.fs} ${c.kernel.version} ${c.seed}`)).toEqual([
      'x86 xfs v6.6 3', 'x86 xfs v6.15 3', 'x86 ext4 v6.6 3', 'x86 ext4 v6.15 3',
      'arm64 xfs v6.6 3', 'arm64 xfs v6.15 3', 'arm64 ext4 v6.6 3', 'arm64 ext4 v6.15 3',
    ]);
  });

  it('shards partition the cells deterministically', async () => {
    const files = { 'a.yaml': FS_SCENARIO('a'), 'b.yaml': FS_SCENARIO('b'), 'bad.yaml': 'name: Bad\n' };
    const all = await cli(['matrix', '.', '--kernel', 'v6.1,v6.6,v6.15', '--reporter', 'json'], { files });
    const cells = (JSON.parse(all.out) as { cells: { scenario: string; kernel: object }[] }).cells.map((c) => JSON.stringify([c.scenario, c.kernel]));
    expect(cells).toHaveLength(2 * 2 * 3 * 2 + 1);
    const shards: string[][] = [];
    for (const i of [1, 2, 3]) {
      const r = await cli(['matrix', '.', '--kernel', 'v6.1,v6.6,v6.15', '--reporter', 'json', '--shard', `${i}/3`], { files });
      shards.push((JSON.parse(r.out) as { cells: { scenario: string; kernel: object }[] }).cells.map((c) => JSON.stringify([c.scenario, c.kernel])));
    }
    expect(shards.flat().sort()).toEqual([...cells].sort());
    expect(shards[0]).toEqual(cells.filter((_, i) => i % 3 === 0));
  });

  it('--reporter json alone goes to stdout, exactly the report', async () => {
    const r = await cli(['run', 'a.yaml', '--reporter', 'json'], { files: { 'a.yaml': SIMPLE('a') } });
    const doc = JSON.parse(r.out) as { tool: string; version: string; kind: string; summary: object };
    expect(doc).toMatchObject({ tool: 'daxlab', version: '9.9.9', kind: 'run', summary: { pass: 1, fail: 0, unsupported: 0, error: 0 } });
    expect(r.err).toBe('');
  });

  it('--out DIR writes the machine reports there and the table to stdout', async () => {
    const r = await cli(['matrix', 'a.yaml', '--kernel', 'v6.6', '--reporter', 'table,json,junit', '--out', 'reports'], { files: { 'a.yaml': SIMPLE('a') }, runner: fakeRunner((_s, k) => (k.arch === 'arm64' ? 'fail' : 'pass')) });
    expect(r.code).toBe(1);
    expect(r.out).toContain('FAIL   a  arm64 4KiB no-fs no-driver v6.6');
    const json = JSON.parse(readFileSync(join(r.dir, 'reports', 'daxlab-report.json'), 'utf8')) as { summary: object };
    expect(json.summary).toEqual({ pass: 1, fail: 1, unsupported: 0, error: 0 });
    expect(readFileSync(join(r.dir, 'reports', 'junit.xml'), 'utf8')).toContain('<testsuites name="daxlab matrix" tests="2" failures="1"');
    expect(r.err).toBe('daxlab: [1/1] a: 2 cells, 1 pass, 1 fail\ndaxlab: wrote reports/daxlab-report.json\ndaxlab: wrote reports/junit.xml\n');
  });

  it('the JSON report is byte-identical between two runs apart from ms', async () => {
    const files = { 'a.yaml': FS_SCENARIO('a'), 'b.yaml': SIMPLE('b') };
    const one = await cli(['matrix', '.', '--reporter', 'json'], { files });
    const two = await cli(['matrix', '.', '--reporter', 'json'], { dir: one.dir });
    expect(two.out).toBe(one.out);
  });

  it('--schedule takes JSON or a file, and reaches the runner', async () => {
    let seen: unknown;
    const runner = Object.assign(
      (s: Parameters<ReturnType<typeof fakeRunner>>[0], k: Parameters<ReturnType<typeof fakeRunner>>[1], c: Parameters<ReturnType<typeof fakeRunner>>[2], o?: { schedule?: unknown }) => {
        seen = o?.schedule;
        return fakeRunner()(s, k, c);
      },
      { calls: [] },
    );
    await cli(['run', 'a.yaml', '--schedule', '[{"thread":"app","step":1}]'], { files: { 'a.yaml': SIMPLE('a') }, runner: runner as unknown as ReturnType<typeof fakeRunner> });
    expect(seen).toEqual([{ thread: 'app', step: 1 }]);
    await cli(['run', 'a.yaml', '--schedule', 'cell.json'], { files: { 'a.yaml': SIMPLE('a'), 'cell.json': JSON.stringify({ schedule: [{ thread: 'x', step: 0 }] }) }, runner: runner as unknown as ReturnType<typeof fakeRunner> });
    expect(seen).toEqual([{ thread: 'x', step: 0 }]);
  });

  it('progress: plain lines per scenario on a non-terminal stderr for matrix, nothing with --quiet', async () => {
    const files = { 'a.yaml': SIMPLE('a'), 'b.yaml': SIMPLE('b') };
    const r = await cli(['matrix', '.', '--kernel', 'v6.6,v6.15'], { files, runner: fakeRunner((s, k) => (s.name === 'b' && k.version === 'v6.6' ? 'fail' : 'pass')) });
    expect(r.err).toBe('daxlab: [1/2] a: 4 cells, 4 pass\ndaxlab: [2/2] b: 4 cells, 2 pass, 2 fail\n');
    const q = await cli(['matrix', '.', '--kernel', 'v6.6', '--quiet'], { dir: r.dir });
    expect(q.err).toBe('');
    expect(q.out).not.toContain('PASS');
  });

  it('progress: a redrawn counter on a terminal, cleared before the report', async () => {
    const r = await cli(['matrix', 'a.yaml', '--kernel', 'v6.6'], { files: { 'a.yaml': SIMPLE('a') }, io: { stderrIsTTY: true } });
    // no pace yet after one cell: 'ETA …'
    expect(r.err).toBe('\r\x1b[2K[##########----------] 1/2 1 pass 0 fail 0 unsup 0 error ETA … a\r\x1b[2K[####################] 2/2 2 pass 0 fail 0 unsup 0 error done a\r\x1b[2K');
    const ci = await cli(['matrix', 'a.yaml', '--kernel', 'v6.6'], { dir: r.dir, io: { stderrIsTTY: true, env: { CI: 'true' } } });
    expect(ci.err).toBe('daxlab: [1/1] a: 2 cells, 2 pass\n');
  });

  it('colour only on a terminal stdout without NO_COLOR', async () => {
    const files = { 'a.yaml': SIMPLE('a') };
    const tty = await cli(['run', 'a.yaml'], { files, io: { stdoutIsTTY: true } });
    expect(tty.out).toMatch(/\x1b\[32mPASS/);
    const noColor = await cli(['run', 'a.yaml'], { dir: tty.dir, io: { stdoutIsTTY: true, env: { NO_COLOR: '1' } } });
    expect(noColor.out).not.toMatch(/\x1b\[/);
  });

  it('a duplicate scenario name is an error cell', async () => {
    const r = await cli(['run', '.'], { files: { 'a.yaml': SIMPLE('same'), 'b.yaml': SIMPLE('same') } });
    expect(r.code).toBe(1);
    expect(r.out).toContain("b.yaml: name: 'same' is already the name of a.yaml; scenario names must be unique");
  });
});

describe('--plugin', () => {
  const ARCH = `export default (o = {}) => ({ kind: 'arch', name: 'daxlab-plugin-toy', arch: 'toy', mmu: { basePageSize: o.pageSize ?? 8192 }, populator: { populate() { return { ok: false, oops: 'n/a' }; } } });\n`;

  it('adds an arch the flags and list can name', async () => {
    const r = await cli(['list', 'plugins', '--plugin', './toy.mjs'], { files: { 'toy.mjs': ARCH, 'a.yaml': SIMPLE('a') } });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/\n\s+toy\s+daxlab-plugin-toy\n/);
    const run = await cli(['run', 'a.yaml', '--plugin', './toy.mjs', '--arch', 'toy'], { dir: r.dir });
    expect(run.calls.map((c) => c.kernel.arch)).toEqual(['toy']);
  });

  it('a module that is not a plugin: a usage error naming it and what is missing', async () => {
    const r = await cli(['run', '--plugin', './bad.mjs'], { files: { 'bad.mjs': "export const plugin = { kind: 'fs', name: 'x' };\n", 'library/a.yaml': SIMPLE('a') } });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: --plugin \.\/bad\.mjs: no daxlab plugin found: the export `plugin`: a fs plugin needs fsName \(string\); it has none\nhint: a daxlab plugin is an object/);
  });

  it('a package that cannot be imported', async () => {
    const r = await cli(['run', '--plugin', 'daxlab-plugin-does-not-exist'], { files: { 'library/a.yaml': SIMPLE('a') } });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: --plugin daxlab-plugin-does-not-exist: cannot import it: not found \(is it installed\?\)/);
  });
});

describe('list and schema', () => {
  it('list kernels shows every preset and every feature', async () => {
    const r = await cli(['list', 'kernels']);
    expect(r.code).toBe(0);
    const header = r.out.split('\n').find((l) => l.startsWith('feature'))!;
    expect(header.split(/\s+/)).toEqual(['feature', ...PRESETS.map((p) => p.name)]);
    for (const f of FEATURES) expect(r.out).toMatch(new RegExp(`\\n${f.name}\\s`));
    for (const p of PRESETS) expect(r.out).toContain(`\n${p.name.padEnd(8)}${p.release}`);
  });

  it('list features gives values and meanings; list invariants every name', async () => {
    const f = await cli(['list', 'features']);
    expect(f.out).toContain('fsdax-refcount = legacy | zero-based | entry-holds-ref\n  how fs-dax pages are reference-counted (seed 004)\n  legacy: idle at 1;');
    const i = await cli(['list', 'invariants']);
    for (const n of INVARIANT_NAMES) expect(i.out).toMatch(new RegExp(`\\n${n}\\s+\\S`));
  });

  it('list scenarios names the library, flagging invalid files', async () => {
    const r = await cli(['list', 'scenarios'], { files: { 'library/a.yaml': SIMPLE('a', 'description: First line. Second.\n'), 'library/b.yaml': 'name: b\n' } });
    expect(r.out).toMatch(/\na\s+run\s+library\/a\.yaml\s+First line\.\n/);
    expect(r.out).toMatch(/\nb\s+invalid\s+library\/b\.yaml\s+library\/b\.yaml:1:1: add steps:/);
  });

  it('list with no topic lists everything', async () => {
    const r = await cli(['list'], { files: { 'library/a.yaml': SIMPLE('a') } });
    for (const head of ['Plugins', 'Kernel presets', 'Kernel features', 'Invariants', 'Built-in scenarios']) expect(r.out).toContain(head);
  });

  it('schema prints the JSON Schema', async () => {
    const r = await cli(['schema']);
    const schema = JSON.parse(r.out) as { $schema: string; title: string };
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.title).toBe('daxlab scenario');
  });
});

describe('the shipped library', () => {
  it('exists and every file in it loads', async () => {
    const lib = join(import.meta.dirname, '..', 'scenarios');
    expect(existsSync(lib)).toBe(true);
    const io = memoryIo(join(import.meta.dirname, '..'));
    const code = await main(argv('list', 'scenarios'), io, { runScenario: fakeRunner(), catalog: namesCatalog(), version: '0' });
    expect(code).toBe(0);
    expect(io.out()).not.toMatch(/\sinvalid\s/);
  });
});
