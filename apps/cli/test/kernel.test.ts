import { parseScenario, PRESETS } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { kernelsFor, parseKernelFlags, parseShard, takeShard } from '../src/kernel.js';
import { UsageError } from '../src/usage.js';
import { FS_SCENARIO, namesCatalog, SIMPLE } from './helpers.js';

const catalog = namesCatalog();
const usage = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as UsageError).message;
  }
  throw new Error('expected a UsageError');
};

describe('parseKernelFlags', () => {
  it('run takes one value per flag', () => {
    expect(parseKernelFlags({ arch: 'arm64', fs: 'ext4', kernel: 'v6.6', pageSize: '16KiB', feature: ['fsdax-refcount=legacy', 'pte-devmap=false'] }, catalog, false)).toEqual({
      arch: ['arm64'],
      fs: ['ext4'],
      version: ['v6.6'],
      pageSize: 16384,
      features: [['fsdax-refcount', ['legacy']], ['pte-devmap', [false]]],
    });
    expect(usage(() => parseKernelFlags({ arch: 'x86,arm64' }, catalog, false))).toMatch(/'run' takes one value; use 'daxlab matrix'/);
    expect(usage(() => parseKernelFlags({ kernel: 'all' }, catalog, false))).toMatch(/'run' takes one value/);
    expect(usage(() => parseKernelFlags({ feature: ['fsdax-refcount=legacy,zero-based'] }, catalog, false))).toMatch(/'run' takes one value/);
  });

  it('matrix takes lists and all', () => {
    const a = parseKernelFlags({ arch: 'all', kernel: 'v5.10,v6.15', fs: 'all', feature: ['fsdax-refcount=all', 'pte-devmap=true,false'] }, catalog, true);
    expect(a.arch).toEqual(['x86', 'arm64']);
    expect(a.fs).toEqual(['xfs', 'ext4']);
    expect(a.version).toEqual(['v5.10', 'v6.15']);
    expect(a.features).toEqual([['fsdax-refcount', ['legacy', 'zero-based', 'entry-holds-ref']], ['pte-devmap', [true, false]]]);
    expect(parseKernelFlags({ kernel: 'all' }, catalog, true).version).toEqual(PRESETS.map((p) => p.name));
  });

  it('unknown names are usage errors with a suggestion', () => {
    expect(usage(() => parseKernelFlags({ arch: 'x68' }, catalog, true))).toBe("--arch: unknown value 'x68'; did you mean 'x86'?");
    expect(usage(() => parseKernelFlags({ kernel: 'v6.16' }, catalog, true))).toBe("--kernel: unknown value 'v6.16'; did you mean 'v6.15'?");
    expect(usage(() => parseKernelFlags({ driver: 'pmem' }, catalog, false))).toBe("--driver: unknown value 'pmem'");
    expect(usage(() => parseKernelFlags({ feature: ['fsdax-refcnt=legacy'] }, catalog, false))).toMatch(/unknown feature 'fsdax-refcnt'/);
    expect(usage(() => parseKernelFlags({ feature: ['fsdax-refcount=zero'] }, catalog, false))).toMatch(/'zero' is not a value of fsdax-refcount; use one of legacy, zero-based, entry-holds-ref/);
    expect(usage(() => parseKernelFlags({ feature: ['pte-devmap'] }, catalog, false))).toMatch(/expected name=value/);
    expect(usage(() => parseKernelFlags({ feature: ['pte-devmap=true', 'pte-devmap=false'] }, catalog, true))).toMatch(/given twice/);
    expect(usage(() => parseKernelFlags({ pageSize: '3000' }, catalog, false))).toMatch(/power of two/);
    expect(usage(() => parseKernelFlags({ pageSize: 'big' }, catalog, false))).toMatch(/'big' is not a size/);
  });
});

describe('kernelsFor: precedence flag > scenario > default', () => {
  const plain = parseScenario(FS_SCENARIO('plain'), 'p.yaml');
  const pinned = parseScenario(FS_SCENARIO('pinned', 'kernel: { arch: arm64, fs: ext4, driver: devdax, version: v6.1, features: { pte-devmap: false } }\n'), 'q.yaml');
  const none = { features: [] };

  it('run: defaults x86 / xfs / nvdimm / latest', () => {
    expect(kernelsFor(plain, none, catalog, false)).toEqual([{ arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'latest', features: {} }]);
  });

  it("run: the scenario's kernel beats the defaults (its features are applied by the runner)", () => {
    expect(kernelsFor(pinned, none, catalog, false)).toEqual([{ arch: 'arm64', fs: 'ext4', driver: 'devdax', version: 'v6.1', features: {} }]);
  });

  it('run: flags beat the scenario', () => {
    const axes = parseKernelFlags({ arch: 'x86', fs: 'xfs', driver: 'nvdimm', kernel: 'v5.4', pageSize: '4K', feature: ['pte-devmap=true'] }, catalog, false);
    expect(kernelsFor(pinned, axes, catalog, false)).toEqual([{ arch: 'x86', pageSize: 4096, fs: 'xfs', driver: 'nvdimm', version: 'v5.4', features: { 'pte-devmap': true } }]);
  });

  it('matrix: every arch, fs and preset unless the scenario or a flag pins one; the driver stays the scenario’s', () => {
    const cells = kernelsFor(plain, none, catalog, true);
    expect(cells).toHaveLength(2 * 2 * PRESETS.length);
    expect(new Set(cells.map((c) => c.driver))).toEqual(new Set(['nvdimm']));
    expect(cells[0]).toEqual({ arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: PRESETS[0]!.name, features: {} });
    expect(kernelsFor(pinned, none, catalog, true)).toEqual([{ arch: 'arm64', fs: 'ext4', driver: 'devdax', version: 'v6.1', features: {} }]);
    const axes = parseKernelFlags({ kernel: 'v6.6,v6.15', feature: ['fsdax-refcount=legacy,zero-based'] }, catalog, true);
    expect(kernelsFor(pinned, axes, catalog, true).map((c) => `${c.version}/${String(c.features['fsdax-refcount'])}`)).toEqual(['v6.6/legacy', 'v6.6/zero-based', 'v6.15/legacy', 'v6.15/zero-based']);
  });

  it('a scenario that never mounts or probes runs without fs and driver, whatever the flags say', () => {
    const anon = parseScenario(SIMPLE('anon'), 'a.yaml');
    const axes = parseKernelFlags({ fs: 'all', driver: 'all' }, catalog, true);
    expect(kernelsFor(anon, axes, catalog, true).map((c) => [c.fs, c.driver])).toEqual(PRESETS.flatMap(() => [[null, null]]).concat(PRESETS.flatMap(() => [[null, null]])));
  });

  it('the fs and driver a scenario names in its steps are its defaults', () => {
    const s = parseScenario('name: d\nsetup:\n  - probe: { driver: devdax, size: 2MiB, as: d }\n  - mount: { device: d, fs: ext4 }\nsteps:\n  - spawn: { as: p }\n', 'd.yaml');
    expect(kernelsFor(s, none, catalog, false)).toEqual([{ arch: 'x86', fs: 'ext4', driver: 'devdax', version: 'latest', features: {} }]);
  });
});

describe('shards', () => {
  it('parse i/n, 1-based', () => {
    expect(parseShard('2/3')).toEqual({ index: 2, count: 3 });
    for (const bad of ['0/3', '4/3', '1/0', '1', 'a/b', '1/2/3']) expect(usage(() => parseShard(bad))).toMatch(/expected i\/n/);
  });

  it('split the sorted list round-robin: disjoint, complete, the same every time', () => {
    const cells = Array.from({ length: 23 }, (_, i) => `cell-${i}`);
    const shards = [1, 2, 3, 4].map((i) => takeShard(cells, { index: i, count: 4 }));
    expect(shards[0]).toEqual(['cell-0', 'cell-4', 'cell-8', 'cell-12', 'cell-16', 'cell-20']);
    expect(shards.flat().sort()).toEqual([...cells].sort());
    expect(shards.map((s) => s.length)).toEqual([6, 6, 6, 5]);
    expect(takeShard(cells, { index: 3, count: 4 })).toEqual(shards[2]);
    expect(takeShard(cells, undefined)).toEqual(cells);
  });
});
