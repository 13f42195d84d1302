import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/main.js';
import { CORE_VERSION, findConfig, pluginSpecs, readConfig, satisfiesRange, type Importer } from '../src/plugins.js';
import { memoryIo, tempTree } from './helpers.js';

const argv = (...args: string[]) => ['node', 'daxlab', ...args];
const TOY = readFileSync(join(import.meta.dirname, 'fixtures', 'toy-arch.mjs'), 'utf8');
const ANON = 'name: anon-pin\nsteps:\n  - mmap: { anon: true, length: 8KiB, write: true, as: m }\n  - write: { map: m, page: 0, data: A }\n  - pin: { map: m, page: 0, write: true, as: dma }\n  - check: { pinned: { map: m, page: 0 }, equals: true }\n  - unpin: dma\n';

/** main() in-process with the built-in runner and catalog, on one cell at a time (no workers). */
async function cli(dir: string, args: string[], importer?: Importer) {
  const io = memoryIo(dir);
  const code = await main(argv(...args), io, { libraryDir: join(dir, 'library'), ...(importer ? { importer } : {}) });
  return { code, out: io.out(), err: io.err() };
}

describe('daxlab.config.{json,yaml}: plugins: loads plugin packages as --plugin does', () => {
  it('a config file in the working directory: its plugins are loaded for run, matrix and list; paths are relative to the file', async () => {
    const dir = tempTree({ 'plugins/toy.mjs': TOY, 'daxlab.config.yaml': 'plugins:\n  - ./plugins/toy.mjs\n', 'a.yaml': ANON });
    const listed = await cli(dir, ['list', 'plugins']);
    expect(listed.out).toMatch(/\n\s+toy\s+daxlab-plugin-toy\n/);
    const run = await cli(dir, ['matrix', 'a.yaml', '--arch', 'toy', '--kernel', 'v6.6,latest', '--reporter', 'json', '--jobs', '1', '--quiet']);
    expect(run.err).toBe('');
    const doc = JSON.parse(run.out) as { plugins: string[]; cells: { status: string; kernel: { arch: string } }[] };
    expect(doc.cells.map((c) => [c.kernel.arch, c.status])).toEqual([['toy', 'pass'], ['toy', 'pass']]);
    // the report names the plugin as the config resolved it, so a replay loads the same file
    expect(doc.plugins).toEqual([join(dir, 'plugins', 'toy.mjs')]);
    expect(run.code).toBe(0);
  });

  it('--config FILE names another file; a spec given in both places loads once', async () => {
    const dir = tempTree({ 'cfg/toy.mjs': TOY, 'cfg/daxlab.json': '{ "plugins": ["./toy.mjs"] }' });
    expect(pluginSpecs(dir, [join(dir, 'cfg', 'toy.mjs')], 'cfg/daxlab.json')).toEqual([join(dir, 'cfg', 'toy.mjs')]);
    expect(pluginSpecs(dir, ['daxlab-plugin-x'], 'cfg/daxlab.json')).toEqual([join(dir, 'cfg', 'toy.mjs'), 'daxlab-plugin-x']);
    expect(findConfig(dir)).toBeNull();
    const r = await cli(dir, ['list', 'plugins', '--config', 'cfg/daxlab.json']);
    expect(r.out).toMatch(/\n\s+toy\s+daxlab-plugin-toy\n/);
  });

  it('package names stay names (resolved from the working directory like --plugin); json before yaml', () => {
    const dir = tempTree({ 'daxlab.config.json': '{ "$schema": "x", "plugins": ["@acme/daxlab-plugin-riscv64"] }', 'daxlab.config.yaml': 'plugins: [other]\n' });
    expect(readConfig(findConfig(dir)!, dir)).toEqual({ file: join(dir, 'daxlab.config.json'), plugins: ['@acme/daxlab-plugin-riscv64'] });
  });

  it('a bad config file: exit 2 with the file, the field and the fix; nothing runs', async () => {
    const cases: [Record<string, string>, string[], RegExp][] = [
      [{ 'daxlab.config.yaml': 'plugin: [x]\n' }, ['run'], /^error: daxlab\.config\.yaml: plugin: unknown field; did you mean 'plugins'\? \(fields: plugins\)\nhint: write \{ "plugins": \["package-name", "\.\/path\/to\/plugin\.mjs"\] \}\n$/],
      [{ 'daxlab.config.yaml': 'plugins: [42]\n' }, ['matrix'], /^error: daxlab\.config\.yaml: plugins\[0\]: expected a package name or a path \(a non-empty string\), got 42\n/],
      [{ 'daxlab.config.json': '{ "plugins": "x" }' }, ['list'], /^error: daxlab\.config\.json: plugins: expected a list of package names or paths, got string\n/],
      [{ 'daxlab.config.json': '{ "plugins": [' }, ['run'], /^error: daxlab\.config\.json: cannot read it: /],
      [{}, ['explore', 'a.yaml', '--config', 'nope.json'], /^error: --config nope\.json: no such file\n/],
    ];
    for (const [files, args, err] of cases) {
      const r = await cli(tempTree({ ...files, 'a.yaml': ANON, 'library/a.yaml': ANON }), args);
      expect({ code: r.code, out: r.out }).toEqual({ code: 2, out: '' });
      expect(r.err).toMatch(err);
    }
  });
});

describe('scenario files never load code', () => {
  it('a scenario naming an arch, fs or driver that no loaded plugin provides is an error cell; nothing is imported', async () => {
    const marker = 'imported.txt';
    const evil = `import { writeFileSync } from 'node:fs';\nwriteFileSync(new URL('./${marker}', import.meta.url), 'loaded');\nexport default () => ({ kind: 'arch', name: 'evil', arch: 'evil' });\n`;
    const dir = tempTree({
      'evil.mjs': evil,
      'node_modules/daxlab-plugin-evil/package.json': '{ "name": "daxlab-plugin-evil", "type": "module", "main": "index.mjs" }',
      'node_modules/daxlab-plugin-evil/index.mjs': evil,
      'scenarios/by-path.yaml': ANON.replace('name: anon-pin', 'name: by-path\nkernel: { arch: ../evil.mjs }'),
      'scenarios/by-package.yaml': ANON.replace('name: anon-pin', 'name: by-package\nkernel: { arch: daxlab-plugin-evil }'),
      'scenarios/fs.yaml': ANON.replace('name: anon-pin', 'name: by-fs\nkernel: { fs: daxlab-plugin-evil }'),
    });
    const imported: string[] = [];
    const spy: Importer = (s) => {
      imported.push(s);
      return import(s) as Promise<Record<string, unknown>>;
    };
    const r = await cli(dir, ['run', 'scenarios', '--reporter', 'json'], spy);
    expect(imported).toEqual([]);
    expect(existsSync(join(dir, marker))).toBe(false);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.out) as { cells: { scenario: string; status: string; reason: string }[] };
    expect(doc.cells.map((c) => c.status)).toEqual(['error', 'error', 'error']);
    // a name that no loaded plugin has: refused when the kernel is built
    expect(doc.cells[0]!.reason).toMatch(/^scenarios\/by-package\.yaml: kernel\.arch: no arch plugin is named 'daxlab-plugin-evil' \(known: x86, arm64, ppc-hash, s390; /);
    // a path is not even a name: refused by the loader, with the file, line and field
    expect(doc.cells[1]!.reason).toBe("scenarios/by-path.yaml:2:17: kernel.arch: '../evil.mjs' is not a name: use letters, digits, '_', '-' or '.', starting with a letter or '_'");
    // an fs name is a name too (a third-party fs may be named): refused when the cell runs, with the field
    expect(doc.cells[2]!.reason).toMatch(/^scenarios\/fs\.yaml: kernel\.fs: no fs plugin is named 'daxlab-plugin-evil' \(known: xfs, ext4, fuse; /);
  });
});

describe('a plugin written for another @daxlab/core is refused (its coreRange)', () => {
  it('npm ranges: comparators, caret, tilde, partial versions, ||', () => {
    const cases: [string, string, boolean | null][] = [
      ['0.2.0', '>=0.1.0 <1.0.0', true],
      ['1.0.0', '>=0.1.0 <1.0.0', false],
      ['0.2.5', '^0.2.0', true],
      ['0.3.0', '^0.2.0', false], // a 0.x caret allows patch releases only within the minor
      ['1.9.0', '^1.2', true],
      ['2.0.0', '^1.2', false],
      ['0.0.4', '^0.0.3', false],
      ['1.2.9', '~1.2.3', true],
      ['1.3.0', '~1.2.3', false],
      ['1.2.7', '1.2.x', true],
      ['1.3.0', '1.2', false],
      ['3.0.0', '^1.0.0 || ^3.0.0', true],
      ['0.5.0', '*', true],
      ['0.5.0', '>= 0.5.0', true],
      ['1.3.0', '>1.2', true],
      ['1.2.9', '>1.2', false],
      ['0.1.0', 'not a range', null],
    ];
    for (const [version, range, want] of cases) expect([version, range, satisfiesRange(version, range)]).toEqual([version, range, want]);
  });

  it('--plugin with a coreRange this core is outside of: exit 2 naming the plugin, both versions and the fix', async () => {
    const plugin = (range: string) => TOY.replace("name: 'daxlab-plugin-toy',", `name: 'daxlab-plugin-toy', coreRange: '${range}',`);
    const dir = tempTree({ 'old.mjs': plugin('>=9.0.0'), 'ok.mjs': plugin(`^${CORE_VERSION}`), 'bad.mjs': plugin('whenever') });
    const old = await cli(dir, ['list', 'plugins', '--plugin', './old.mjs']);
    expect(old.code).toBe(2);
    expect(old.err).toBe(`error: --plugin ./old.mjs: daxlab-plugin-toy is written for @daxlab/core >=9.0.0, and this daxlab runs @daxlab/core ${CORE_VERSION}\nhint: install a version of the plugin made for this @daxlab/core (or a daxlab whose core it supports)\n`);
    expect((await cli(dir, ['list', 'plugins', '--plugin', './bad.mjs'])).err).toMatch(/^error: --plugin \.\/bad\.mjs: its coreRange 'whenever' is not a version range\n/);
    const ok = await cli(dir, ['list', 'plugins', '--plugin', './ok.mjs']);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/\n\s+toy\s+daxlab-plugin-toy\n/);
  });
});
