import { createKernel, InputError, KernelError, PG, runScenario, type Kernel, type Scenario } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { xfs } from '@daxlab/fs-xfs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinCatalog } from '../src/catalog.js';
import { LIBRARY_DIR, loadScenarios } from '../src/scenarios.js';
import { errnoOf } from './selftest-api.js';

// Badblocks in the data of a pmem namespace and ND_CMD_CLEAR_ERROR (ndctl daxdev-errors.sh,
// dax-tests E29). Layout throughout: a 64 MiB devdax namespace (nfit_test's SPA1_SIZE), 4 KiB
// pages, -a 4096 with the memmap on the device: nd_pfn_init() aligns to max(4 KiB, 2 MiB) and
// puts the data at ALIGN(8 KiB + 64 * 16382, 2 MiB) = 2 MiB = block 4096, so the namespace has
// 131072 blocks, 4096 of metadata, and data page p is blocks 4096 + 8p .. 4096 + 8p + 7.

const MiB = 1024 * 1024;
const DATA = 4096;
const MID = DATA + 63488; // (62 MiB / 512) / 2 from the data start: data page 7936

function daxNamespace(version = 'latest'): Kernel {
  const k = createKernel({ arch: x86(), driver: devdax(), kernel: version });
  k.run(k.probe({ mode: 'devdax', size: 64 * MiB, align: 4096, altmap: true, as: 'dax0' }));
  return k;
}

function scenario(): Scenario {
  const [l] = loadScenarios([join(LIBRARY_DIR, 'ndctl/daxdev-errors.yaml')], LIBRARY_DIR);
  if (!l?.ok) throw new Error(l ? l.reason : 'not loaded');
  return l.scenario;
}

const cell = { arch: 'x86', fs: null, driver: 'devdax', version: 'latest', features: {} } as const;

describe('ndctl daxdev-errors.sh (E29)', () => {
  it('passes as written, and fails without the ND_CMD_CLEAR_ERROR: the region still lists the 8 blocks', () => {
    const s = scenario();
    expect(runScenario(s, cell, builtinCatalog()).status).toBe('pass');
    const noClear = { ...s, threads: s.threads.map((t) => ({ ...t, steps: t.steps.filter((st) => st.op !== 'clear-error') })) };
    expect(noClear.threads.flatMap((t) => t.steps).length).toBe(s.threads.flatMap((t) => t.steps).length - 1);
    const r = runScenario(noClear, cell, builtinCatalog());
    expect(r.status).toBe('fail');
    expect(r.failures.join('\n')).toMatch(/badblocks\(device=dax0\) is 8, expected 0/);
  });

  it('blocks past the data offset are data badblocks: the region counts them, the metadata area does not', () => {
    const k = daxNamespace();
    k.run(k.memoryFailure({ device: 'dax0', block: MID, count: 8 }));
    expect(k.badblocksIn({ device: 'dax0' })).toBe(8);
    expect(k.metadataBadblocksIn({ device: 'dax0' })).toBe(0);
    // one in the metadata too: both views count it
    k.run(k.memoryFailure({ device: 'dax0', block: DATA - 1 }));
    expect(k.badblocksIn({ device: 'dax0' })).toBe(9);
    expect(k.metadataBadblocksIn({ device: 'dax0' })).toBe(1);
  });

  it('a scrub is no machine check: a device-dax fault on the bad page maps it and nothing is poisoned', () => {
    const k = daxNamespace();
    k.run(k.memoryFailure({ device: 'dax0', block: MID, count: 8 }));
    k.run(k.mmap({ device: 'dax0', length: 4096, offset: 31 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'x' }));
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    // data page 7936 is 31 MiB into the data, 2 MiB past the namespace's first pfn
    expect(pfn - k.device('dax0').pgmap.startPfn).toBe(512 + 7936);
    expect(k.folios.flags(pfn) & PG.hwpoison).toBe(0);
  });

  it('clear-error clears exactly the blocks it names (badblocks_clear splits the range)', () => {
    const k = daxNamespace();
    k.run(k.memoryFailure({ device: 'dax0', block: MID, count: 8 }));
    k.run(k.clearError({ device: 'dax0', block: MID + 2, count: 3 }));
    expect(k.badblocksIn({ device: 'dax0' })).toBe(5);
    k.run(k.clearError({ device: 'dax0', block: MID, count: 8 }));
    expect(k.badblocksIn({ device: 'dax0' })).toBe(0);
  });

  it('clear-error leaves PG_hwpoison alone (no clear_mce_nospec on this path), and a device-dax refault maps the page anyway', () => {
    const k = daxNamespace();
    k.run(k.mmap({ device: 'dax0', length: 4096, offset: 31 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'x' }));
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    // a machine check on real media: memory_failure_dev_pagemap() poisons and unmaps
    k.run(k.memoryFailure({ device: 'dax0', page: 7936 }));
    expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(false);
    k.run(k.clearError({ device: 'dax0', block: MID, count: 8 }));
    expect(k.folios.flags(pfn) & PG.hwpoison).not.toBe(0);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('x');
    expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(true);
  });

  it('refuses blocks past the namespace and devices that are no pmem namespace, naming the field', () => {
    const k = daxNamespace();
    const past = () => k.run(k.clearError({ device: 'dax0', block: 131070, count: 4 }));
    expect(past).toThrow(InputError);
    expect(past).toThrow(/blocks 131070\.\.131073 of 'dax0' reach past the namespace: it has blocks 0\.\.131071/);
    expect(() => k.run(k.memoryFailure({ device: 'dax0', block: 131072 }))).toThrow(/reach past the namespace/);
    const h = createKernel({ arch: x86(), driver: devdax(), kernel: 'latest' });
    h.run(h.probe({ size: 32 * MiB, as: 'hmem' }));
    expect(() => h.run(h.clearError({ device: 'hmem', block: 0 }))).toThrow(/clear-error: 'hmem' \(driver devdax\) is not a pmem namespace/);
  });
});

describe('data badblocks of an fsdax namespace', () => {
  function fsdax(): { k: Kernel; block: number } {
    const k = createKernel({ arch: x86(), fs: xfs(), driver: nvdimm(), kernel: 'latest' });
    k.run(k.probe({ size: 64 * MiB, altmap: true, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    k.run(k.create({ file: 'f', size: 4096 }));
    k.run(k.mmap({ file: 'f', length: 4096, shared: true, write: true, as: 'w' }));
    k.run(k.write({ map: 'w', page: 0, data: 'data' }));
    k.run(k.munmap({ map: 'w' }));
    const pfn = k.pfnOf({ file: 'f', page: 0 })!;
    return { k, block: (pfn - k.device('pmem0').pgmap.startPfn) * 8 };
  }

  it('a scrubbed badblock under a file block fails the DAX fault (__pmem_direct_access: is_bad_pmem), with no page poisoned', () => {
    const { k, block } = fsdax();
    k.run(k.memoryFailure({ device: 'pmem0', block: block + 3 }));
    k.run(k.mmap({ file: 'f', length: 4096, shared: true, as: 'r' }));
    expect(errnoOf(() => k.run(k.read({ map: 'r', page: 0 })))).toBe('SIGBUS');
    expect(k.folios.flags(k.pfnOf({ file: 'f', page: 0 })!) & PG.hwpoison).toBe(0);
  });

  it('read(2) of a DAX file fails on the extent holding a badblock (dax_direct_access over the extent: -EIO), and reads what precedes it', () => {
    const k = createKernel({ arch: x86(), fs: xfs(), driver: nvdimm(), kernel: 'latest' });
    k.run(k.probe({ size: 64 * MiB, altmap: true, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    k.run(k.create({ file: 'f', size: 4 * 4096 }));
    k.run(k.mmap({ file: 'f', length: 4 * 4096, shared: true, write: true, as: 'w' }));
    for (let p = 0; p < 4; p++) k.run(k.write({ map: 'w', page: p, data: `p${p}` }));
    k.run(k.munmap({ map: 'w' }));
    const pfns = [0, 1, 2, 3].map((p) => k.pfnOf({ file: 'f', page: p })!);
    // one extent: the four blocks are contiguous, so one dax_direct_access() covers them
    expect(pfns.map((p) => p - pfns[0]!)).toEqual([0, 1, 2, 3]);
    k.run(k.memoryFailure({ device: 'pmem0', block: (pfns[2]! - k.device('pmem0').pgmap.startPfn) * 8 + 5 }));
    k.run(k.mmap({ anon: true, length: 4 * 4096, write: true, as: 'buf' }));
    expect(errnoOf(() => k.run(k.pread({ file: 'f', offset: 0, length: 4 * 4096, map: 'buf' })))).toBe('EIO');
    expect(k.run(k.pread({ file: 'f', offset: 0, length: 2 * 4096, map: 'buf' }))).toBe(2 * 4096);
    expect(k.run(k.read({ map: 'buf', page: 1 }))).toBe('p1');
    expect(k.run(k.pread({ file: 'f', offset: 3 * 4096, length: 4096, map: 'buf' }))).toBe(4096);
  });

  it('clear-error of a namespace bound to the pmem driver is refused as not modelled (pmem->bb is a list of its own)', () => {
    const { k, block } = fsdax();
    k.run(k.memoryFailure({ device: 'pmem0', block }));
    let err: unknown;
    try {
      k.run(k.clearError({ device: 'pmem0', block }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelError);
    expect((err as KernelError).unsupported).toMatch(/pmem->bb/);
    expect(k.badblocksIn({ device: 'pmem0' })).toBe(1);
  });
});
