import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PRESETS } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { BIN, BUILT as built, CLI_DIR, daxlab as spawnDaxlab, tempTree } from './helpers.js';

if (!built) console.warn(`e2e: skipped, ${BIN} is not built (run 'npm run build' or the root 'npm test', which builds first)`);

const daxlab = (args: string[], cwd = CLI_DIR) => {
  const r = spawnDaxlab(args, cwd);
  return { code: r.code, out: r.out, err: r.err };
};

// each test spawns node (one to three times): on a loaded machine one spawn alone can take seconds
describe.skipIf(!built)('the built daxlab command (dist/bin.js)', { timeout: 60_000 }, () => {
  it('prints its version', () => {
    const pkg = JSON.parse(readFileSync(join(CLI_DIR, 'package.json'), 'utf8')) as { version: string };
    expect(daxlab(['--version'])).toEqual({ code: 0, out: `${pkg.version}\n`, err: '' });
  });

  it('lists every kernel preset', () => {
    const r = daxlab(['list', 'kernels']);
    expect(r.code).toBe(0);
    for (const p of PRESETS) expect(r.out).toContain(`\n${p.name.padEnd(8)}${p.release}`);
  });

  it('usage errors exit 2 with one line and a hint, no stack', () => {
    const r = daxlab(['matrix', '--kernel', 'v6.16']);
    expect(r).toEqual({ code: 2, out: '', err: "error: --kernel: unknown value 'v6.16'; did you mean 'v6.15'?\nhint: known: " + PRESETS.map((p) => p.name).join(', ') + ', or all\n' });
  });

  it('an invalid scenario is an error cell in the JSON report, exit 1', () => {
    const dir = tempTree({ 'bad.yaml': 'name: bad\nsteps:\n  - truncate: { file: a, sise: 0 }\n' });
    const r = daxlab(['run', 'bad.yaml', '--reporter', 'json'], dir);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.out) as { tool: string; cells: { status: string; reason: string; file: string }[]; summary: object };
    expect(doc.tool).toBe('daxlab');
    expect(doc.summary).toEqual({ pass: 0, fail: 0, unsupported: 0, error: 1 });
    expect(doc.cells[0]).toMatchObject({ status: 'error', file: 'bad.yaml', reason: "bad.yaml:3:26: steps[0].truncate.sise: unknown field 'sise'; did you mean 'size'? (fields here: { file, size })" });
  });

  it('prints the scenario JSON Schema', () => {
    const r = daxlab(['schema']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as { $schema: string }).$schema).toBe('https://json-schema.org/draft/2020-12/schema');
  });

  it('runs scenarios end to end with a --plugin arch: pass exits 0, an unmet check exits 1 with the reason', () => {
    const steps = (bound: string) =>
      `name: anon-pin\nsteps:\n  - mmap: { anon: true, length: 8KiB, write: true, as: m }\n  - write: { map: m, page: 0, data: A }\n  - pin: { map: m, page: 0, write: true, as: dma }\n  - check: { pinned: { map: m, page: 0 }, equals: true }\n  - check: { refcount: { map: m, page: 0 }, ${bound} }\n  - dma-read: { pin: dma, expect: A }\n  - unpin: dma\n`;
    const dir = tempTree({ 'ok.yaml': steps('min: 2'), 'bad/no.yaml': steps('max: 1').replace('anon-pin', 'anon-pin-wrong') });
    const plugin = ['--plugin', join(CLI_DIR, 'test', 'fixtures', 'toy-arch.mjs'), '--arch', 'toy'];
    const ok = daxlab(['run', 'ok.yaml', ...plugin, '--reporter', 'json'], dir);
    const doc = JSON.parse(ok.out) as { cells: { status: string; outcome: string; kernel: { arch: string; pageSize: number; fs: string | null } }[] };
    expect({ code: ok.code, cells: doc.cells.map((c) => [c.status, c.outcome, c.kernel.arch, c.kernel.pageSize, c.kernel.fs]) }).toEqual({ code: 0, cells: [['pass', 'completed', 'toy', 4096, null]] });
    const no = daxlab(['matrix', 'bad', ...plugin, '--kernel', 'v5.10,v6.15'], dir);
    expect(no.code).toBe(1);
    expect(no.out).toMatch(/^FAIL   anon-pin-wrong  toy 4KiB no-fs no-driver v5\.10\n {7}steps\[4\]: refcount\(map=m page=0\) is 1025, expected at most 1\n {7}replay: daxlab run bad\/no\.yaml --arch toy --page-size 4KiB --kernel v5\.10 --seed 0 --plugin \S+toy-arch\.mjs\n/);
    expect(no.out).toMatch(/\n2 cells: 0 pass, 2 fail, 0 unsupported, 0 error in \d+/);
  });
});
