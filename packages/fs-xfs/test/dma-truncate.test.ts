import { createKernel, Monitor, runScenario, type Kernel, type PluginCatalog, type Scenario, type Step } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '../src/index.js';
import { testArch } from '@daxlab/core/testing';

const MiB = 1024 * 1024;

function boot(version: string, features: Record<string, unknown> = {}): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: version, features });
  const m = new Monitor(k);
  k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0' }));
  k.run(k.create({ file: 'a', size: 2 * MiB }));
  k.run(k.mmap({ file: 'a', length: 2 * MiB, shared: true, write: true, as: 'm' }));
  k.run(k.write({ map: 'm', page: 0, data: 'A' }));
  return { k, m };
}

const names = (m: Monitor): string[] => m.violations.map((v) => v.invariant).sort();

describe('fs-dax refcount conventions on XFS (seed 004)', () => {
  it('legacy (v6.6): a PMD-mapped page stays at rc 1 with no mapcount; a pin adds 1024 to the 4 KiB page', () => {
    const { k } = boot('v6.6');
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    expect(k.vm.lookup(k.process('init'), k.map('m').start)!.pte.level).toBe('pmd');
    expect(k.refcount(pfn)).toBe(1);
    expect(k.mapcount(pfn)).toBe(0);
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    expect(k.refcount(pfn)).toBe(1025);
  });

  it('zero-based (v6.15): the PMD maps one order-9 folio holding one reference; a pin adds 1 and _pincount 1', () => {
    const { k } = boot('v6.15');
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    expect(k.folios.order(pfn)).toBe(9);
    expect(k.refcount(pfn)).toBe(1);
    expect(k.mapcount(pfn)).toBe(1);
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    expect(k.refcount(pfn)).toBe(2);
    expect(k.pages.pincount[k.pages.slot(pfn)]).toBe(1);
    k.run(k.munmap({ map: 'm' }));
    expect(k.refcount(pfn)).toBe(1); // the pin only: mapping's reference dropped after the TLB flush
  });

  it('entry-holds-ref: associated and mapped is 2 (entry + mapping), idle-but-tracked is 1', () => {
    const { k } = boot('v6.15', { 'fsdax-refcount': 'entry-holds-ref' });
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    expect(k.refcount(pfn)).toBe(2);
    k.run(k.munmap({ map: 'm' }));
    expect(k.refcount(pfn)).toBe(1);
  });

  it('zero-based with devmap PTEs (the 2021 attempt): a mapped page at rc 0, and GUP fails with the WARN', () => {
    const { k, m } = boot('v6.15', { 'pte-devmap': true });
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    expect(k.refcount(pfn)).toBe(0);
    expect(names(m)).toEqual(['mapped-page-zero-ref']);
    expect(() => k.run(k.gup({ map: 'm', page: 0, as: 'g' }, false))).toThrow(/ENOMEM/);
    expect(k.warnings.some((w) => w.includes('try_grab_folio'))).toBe(true);
  });
});

describe('map -> pin -> munmap -> truncate -> reuse -> DMA (seed 004)', () => {
  const race = (k: Kernel): void => {
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    k.run(k.munmap({ map: 'm' }));
    k.run(k.truncate({ file: 'a', size: 0 }));
    k.run(k.create({ file: 'b', size: 2 * MiB }));
    k.run(k.dmaWrite({ pin: 'dma', data: 'X' }));
  };

  it('v6.6 with the mapping_mapped() early return: the block is freed under the pin and reused by b', () => {
    const { k, m } = boot('v6.6');
    race(k);
    expect(names(m)).toEqual(['block-freed-while-pinned', 'dma-to-foreign-block']);
    // the corruption itself: b's first page now holds the stale DMA data
    k.run(k.mmap({ file: 'b', length: 2 * MiB, shared: true, as: 'mb' }));
    expect(k.run(k.read({ map: 'mb', page: 0 }))).toBe('X');
  });

  it('every kernel without the early return waits for the pin instead (truncate cannot complete alone)', () => {
    for (const [v, f] of [['v6.6', { 'dax-busy-mapping-mapped-check': false }], ['v6.15', {}], ['v6.15', { 'fsdax-refcount': 'entry-holds-ref' }]] as const) {
      const { k, m } = boot(v, f);
      k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
      k.run(k.munmap({ map: 'm' }));
      expect(() => k.run(k.truncate({ file: 'a', size: 0 })), `${v} ${JSON.stringify(f)}`).toThrow(/idle/);
      expect(names(m)).toEqual([]);
    }
  });

  it('deleting the DAX entries before the wait loses track of the pinned page (v6.15 variant)', () => {
    const { k, m } = boot('v6.15', { 'dax-delete-entries-before-wait': true });
    race(k);
    expect(names(m)).toEqual(['block-freed-while-pinned', 'dma-to-foreign-block']);
  });

  it('waiting for refcount 1 under zero-based counting misses a large-folio pin (rc 1)', () => {
    const { k, m } = boot('v6.15', { 'dax-wait-refcount-one': true });
    race(k);
    expect(names(m)).toEqual(['block-freed-while-pinned', 'dma-to-foreign-block']);
  });
});

describe('the same race under the scheduler', () => {
  const s = (path: string, op: Step['op'], args: Record<string, unknown>): Step => ({ op, args, path });
  const scenario: Scenario = {
    name: 'dma-vs-truncate',
    kernel: {},
    mode: 'run',
    setup: [
      s('setup[0]', 'probe', { size: 1024 * MiB, as: 'pmem0' }),
      s('setup[1]', 'mount', { device: 'pmem0' }),
      s('setup[2]', 'create', { file: 'a', size: 2 * MiB }),
      s('setup[3]', 'mmap', { file: 'a', length: 2 * MiB, shared: true, write: true, as: 'm' }),
      s('setup[4]', 'write', { map: 'm', page: 0, data: 'A' }),
      s('setup[5]', 'pin', { map: 'm', page: 0, write: true, as: 'dma' }),
      s('setup[6]', 'munmap', { map: 'm' }),
    ],
    threads: [
      { name: 'trunc', steps: [s('threads[0].steps[0]', 'truncate', { file: 'a', size: 0 }), s('threads[0].steps[1]', 'create', { file: 'b', size: 2 * MiB })] },
      { name: 'app', steps: [s('threads[1].steps[0]', 'dma-write', { pin: 'dma', data: 'B' }), s('threads[1].steps[1]', 'unpin', { name: 'dma' })] },
    ],
    expect: [],
  };
  const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: { xfs: () => xfs() }, driver: { nvdimm: () => nvdimm() } };
  const req = (version: string, features = {}) => ({ arch: 'x86', fs: 'xfs', driver: 'nvdimm', version, features });

  it('v6.15: truncate waits for the unpin; every seed passes with no violation', () => {
    for (const seed of [0, 1, 2, 3, 4, 5, 6, 7]) {
      const r = runScenario(scenario, req('v6.15'), catalog, { seed });
      expect(r.failures, `seed ${seed}`).toEqual([]);
      expect(r.status).toBe('pass');
    }
  });

  it('v6.6: seed 0 runs trunc first, which frees the pinned block', () => {
    const r = runScenario(scenario, req('v6.6'), catalog, { seed: 0 });
    expect(r.violations.map((v) => v.invariant).sort()).toEqual(['block-freed-while-pinned', 'dma-to-foreign-block']);
    expect(r.status).toBe('fail');
    expect(r.violations[0]!.trace.some((l) => l.includes('block.free'))).toBe(true);
  });

  it('the same scenario and seed give identical results twice', () => {
    const a = runScenario(scenario, req('v6.6'), catalog, { seed: 3, trace: true });
    const b = runScenario(scenario, req('v6.6'), catalog, { seed: 3, trace: true });
    expect(JSON.stringify({ ...a, ms: 0 })).toBe(JSON.stringify({ ...b, ms: 0 }));
  });
});

describe('schedule replay', () => {
  it('a recorded schedule replays to the same result under another seed', async () => {
    const { runScenario: run } = await import('@daxlab/core');
    const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: { xfs: () => xfs() }, driver: { nvdimm: () => nvdimm() } };
    const s = (path: string, op: Step['op'], args: Record<string, unknown>): Step => ({ op, args, path });
    const scenario: Scenario = {
      name: 'replay', kernel: {}, mode: 'run', expect: [],
      setup: [
        s('setup[0]', 'probe', { size: 1024 * MiB, as: 'pmem0' }), s('setup[1]', 'mount', { device: 'pmem0' }),
        s('setup[2]', 'create', { file: 'a', size: 2 * MiB }), s('setup[3]', 'mmap', { file: 'a', length: 2 * MiB, shared: true, write: true, as: 'm' }),
        s('setup[4]', 'write', { map: 'm', page: 0, data: 'A' }), s('setup[5]', 'pin', { map: 'm', page: 0, write: true, as: 'dma' }), s('setup[6]', 'munmap', { map: 'm' }),
      ],
      threads: [
        { name: 'trunc', steps: [s('t0', 'truncate', { file: 'a', size: 0 }), s('t1', 'create', { file: 'b', size: 2 * MiB })] },
        { name: 'app', steps: [s('a0', 'dma-write', { pin: 'dma', data: 'B' }), s('a1', 'unpin', { name: 'dma' })] },
      ],
    };
    const req = { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'v6.6', features: {} };
    for (const seed of [1, 2, 3, 4, 5]) {
      const first = run(scenario, req, catalog, { seed, trace: true });
      const again = run(scenario, req, catalog, { seed: 99, schedule: first.schedule!, trace: true });
      expect(again.trace, `seed ${seed}`).toEqual(first.trace);
      expect(again.violations.map((v) => v.invariant)).toEqual(first.violations.map((v) => v.invariant));
    }
  });
});
