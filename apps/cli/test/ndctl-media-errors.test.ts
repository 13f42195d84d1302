import { createKernel, InputError, runScenario, type Kernel, type Scenario } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinCatalog } from '../src/catalog.js';
import { LIBRARY_DIR, loadScenarios } from '../src/scenarios.js';
import { errnoOf } from './selftest-api.js';

// ndctl clear.sh, inject-error.sh and pmem-errors.sh (dax-tests E32-E34): media errors of a pmem
// namespace seen through its block device. Layout throughout: a 64 MiB namespace (nfit_test's
// SPA1_SIZE), 4 KiB pages. Raw, its block device is the whole namespace: 131072 sectors. In
// fsdax mode at ndctl's default 2 MiB align with the memmap on the device, nd_pfn_init() puts the
// data at ALIGN(8 KiB + 64 x 16382, 2 MiB) = 2 MiB, so the block device is 62 MiB and its sector
// s is namespace block 4096 + s.

const MiB = 1024 * 1024;
const cell = { arch: 'x86', fs: null, driver: 'nvdimm', version: 'latest', features: {} } as const;

function scenario(file: string): Scenario {
  const [l] = loadScenarios([join(LIBRARY_DIR, file)], LIBRARY_DIR);
  if (!l?.ok) throw new Error(l ? l.reason : 'not loaded');
  return l.scenario;
}

/** The scenario without the steps `drop` picks. */
function without(s: Scenario, drop: (op: string, args: Record<string, unknown>) => boolean): Scenario {
  return { ...s, threads: s.threads.map((t) => ({ ...t, steps: t.steps.filter((st) => !drop(st.op, st.args as Record<string, unknown>)) })) };
}

function kernel(mode: 'raw' | 'fsdax'): Kernel {
  const k = createKernel({ arch: x86(), driver: nvdimm(), kernel: 'latest' });
  if (mode === 'raw') k.run(k.probeRaw({ size: 64 * MiB, as: 'pmem0' }));
  else k.run(k.probe({ size: 64 * MiB, align: 4096, altmap: true, as: 'pmem0' }));
  k.run(k.mmap({ anon: true, length: 2 * 4096, write: true, as: 'buf' }));
  return k;
}

describe('ndctl clear.sh, inject-error.sh, pmem-errors.sh (E32-E34)', () => {
  for (const file of ['ndctl/clear.yaml', 'ndctl/inject-error.yaml', 'ndctl/pmem-errors.yaml']) {
    it(`${file} passes, and fails when a write does not clear: the block device still lists the 8 sectors`, () => {
      const s = scenario(file);
      // pmem-errors.sh is an ext4 test (its second half mounts ext4 on the namespace)
      const on = { ...cell, fs: s.kernel.fs ?? null };
      expect(runScenario(s, on, builtinCatalog()).status).toBe('pass');
      // the mutation: the clearing write is gone (and the re-read after it, which would fail first)
      const noClear = without(s, (op, a) => op === 'pwrite' || (op === 'pread' && a.bytes !== undefined));
      const r = runScenario(noClear, on, builtinCatalog());
      expect(r.status).toBe('fail');
      expect(r.failures.join('\n')).toMatch(/bdevBadblocks\(device=pmem0\) is 8, expected 0/);
    });
  }

  it('clear.sh: a raw namespace counts its sectors from its start; the fsdax block device from the data offset', () => {
    const k = kernel('raw');
    k.run(k.injectError({ device: 'pmem0', block: 65536, count: 8 }));
    expect(k.bdevFirstBadblockIn({ device: 'pmem0' })).toBe(65536);
    k.run(k.reconfigureNamespace({ device: 'pmem0', mode: 'fsdax' }));
    // 2 MiB of metadata = 4096 sectors before the data: sector_raw - sector = (size_raw - size) / 512
    expect(k.bdevFirstBadblockIn({ device: 'pmem0' })).toBe(65536 - 4096);
    expect(k.device('pmem0').dataPages * 4096).toBe(62 * MiB);
    // the region's list covers the whole namespace: the same 8
    expect(k.badblocksIn({ device: 'pmem0' })).toBe(8);
  });

  it('an O_DIRECT write clears exactly the sectors it writes (pmem_clear_poison over the bvec), a read of any bad one fails whole', () => {
    const k = kernel('raw');
    k.run(k.injectError({ device: 'pmem0', block: 65536, count: 8 }));
    // two sectors in the middle of the range: badblocks_clear() splits it into 2 + 4
    expect(k.run(k.pwrite({ device: 'pmem0', offset: (65536 + 2) * 512, length: 1024, direct: true, map: 'buf' }))).toBe(1024);
    expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(6);
    expect(k.bdevFirstBadblockIn({ device: 'pmem0' })).toBe(65536);
    expect(k.injectedErrorsIn({ device: 'pmem0' })).toBe(6);
    // the cleared sectors read; one sector more reaches a bad one: EIO for the whole request
    expect(k.run(k.pread({ device: 'pmem0', offset: (65536 + 2) * 512, length: 1024, direct: true, map: 'buf' }))).toBe(1024);
    expect(errnoOf(() => k.run(k.pread({ device: 'pmem0', offset: (65536 + 2) * 512, length: 1536, direct: true, map: 'buf' })))).toBe('EIO');
    // a buffered read returns the page before the bad one (filemap_read: the bytes done), else EIO
    expect(k.run(k.pread({ device: 'pmem0', offset: 32 * MiB - 4096, length: 8192, map: 'buf' }))).toBe(4096);
    expect(errnoOf(() => k.run(k.pread({ device: 'pmem0', offset: 32 * MiB, length: 4096, map: 'buf' })))).toBe('EIO');
    // O_DIRECT needs whole sectors (blkdev_dio_invalid)
    expect(errnoOf(() => k.run(k.pwrite({ device: 'pmem0', offset: 32 * MiB + 256, length: 512, direct: true, map: 'buf' })))).toBe('EINVAL');
  });

  it('data written by O_DIRECT sectors reads back through the block device', () => {
    const k = kernel('raw');
    k.run(k.write({ map: 'buf', page: 0, data: 'sector data' }));
    // 42 sectors in: page 5 of the media from byte 1024 on (one datum per page: page 5 takes it)
    expect(k.run(k.pwrite({ device: 'pmem0', offset: 42 * 512, length: 512, direct: true, map: 'buf' }))).toBe(512);
    k.run(k.write({ map: 'buf', page: 1, data: '' }));
    expect(k.run(k.pread({ device: 'pmem0', offset: 5 * 4096, length: 4096, map: 'buf', page: 1 }))).toBe(4096);
    expect(k.run(k.read({ map: 'buf', page: 1 }))).toBe('sector data');
  });

  it('inject-error.sh: --no-notify lists the blocks in --status but no scrub puts them in badblocks; --uninject forgets them', () => {
    const k = kernel('fsdax');
    k.run(k.injectError({ device: 'pmem0', block: 42, count: 8, notify: false }));
    expect(k.injectedErrorsIn({ device: 'pmem0' })).toBe(8);
    expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(0);
    // a read of them succeeds: nothing told the pmem driver (nfit_test's media is RAM)
    expect(k.run(k.pread({ device: 'pmem0', offset: 0, length: 8192, direct: true, map: 'buf' }))).toBe(8192);
    // a scrub would find them; uninject first, and it finds nothing
    k.run(k.injectError({ device: 'pmem0', block: 42, count: 8, uninject: true }));
    expect(k.injectedErrorsIn({ device: 'pmem0' })).toBe(0);
    k.run(k.scrub());
    expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(0);
  });

  it('--uninject after a scrub leaves the badblocks (only a clear forgets them in the bus\'s list)', () => {
    const k = kernel('fsdax');
    k.run(k.injectError({ device: 'pmem0', block: 42, count: 8 }));
    k.run(k.injectError({ device: 'pmem0', block: 42, count: 8, uninject: true }));
    expect(k.injectedErrorsIn({ device: 'pmem0' })).toBe(0);
    expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(8);
    expect(k.bdevFirstBadblockIn({ device: 'pmem0' })).toBe(42);
  });

  it('a clear-error or a memmap clear forgets nfit_test\'s record as well, so a later scrub finds nothing', () => {
    const k = kernel('fsdax');
    // block 20 of the namespace: in the memmap area (after the info block, before 2 MiB)
    k.run(k.memoryFailure({ device: 'pmem0', block: 20 }));
    expect(k.metadataBadblocksIn({ device: 'pmem0' })).toBe(1);
    k.run(k.unbind({ device: 'pmem0' }));
    k.run(k.bind({ device: 'pmem0' }));
    expect(k.metadataBadblocksIn({ device: 'pmem0' })).toBe(0);
    k.run(k.scrub());
    expect(k.metadataBadblocksIn({ device: 'pmem0' })).toBe(0);
  });

  it('refuses what has no block device or lies past the namespace, naming the field', () => {
    const k = kernel('fsdax');
    // 62 MiB of data = 126976 blocks from the data offset
    expect(() => k.run(k.injectError({ device: 'pmem0', block: 126975, count: 2 }))).toThrow(/blocks 126975\.\.126976 of 'pmem0' reach past the namespace: it has blocks 0\.\.126975 \(counted from its data offset/);
    expect(() => k.run(k.injectError({ device: 'nope', block: 0 }))).toThrow(InputError);
    // a devdax namespace has no block device: no /sys/block/pmemX/badblocks, no read(2)
    const d = createKernel({ arch: x86(), driver: devdax(), kernel: 'latest' });
    d.run(d.probe({ mode: 'devdax', size: 64 * MiB, align: 4096, altmap: true, as: 'dax0' }));
    expect(() => d.bdevBadblocksIn({ device: 'dax0' })).toThrow(/'dax0' is a devdax namespace: it has no block device/);
    d.run(d.mmap({ anon: true, length: 4096, write: true, as: 'buf' }));
    expect(errnoOf(() => d.run(d.pread({ device: 'dax0', offset: 0, length: 4096, map: 'buf' })))).toBe('EINVAL');
    expect(() => d.run(d.setBadblocks({ device: 'dax0', sector: 0, count: 1 }))).toThrow(/'dax0' is a devdax namespace: it has no block device/);
  });

  it('pmem-errors.sh after its mkfs (pmem-errors-ext4.yaml) passes on ext4, and fails when the block-device write does not clear the hand-set sectors', () => {
    const s = scenario('ndctl/pmem-errors-ext4.yaml');
    const ext4Cell = { ...cell, fs: 'ext4' } as const;
    expect(runScenario(s, ext4Cell, builtinCatalog()).status).toBe('pass');
    const noClear = without(s, (op, a) => op === 'pwrite' && a.device !== undefined);
    const r = runScenario(noClear, ext4Cell, builtinCatalog());
    expect(r.status).toBe('fail');
    expect(r.failures.join('\n')).toMatch(/bdevBadblocks\(device=pmem0\) is 8, expected 0/);
  });

  it('set-badblocks on an fsdax namespace: pmem->bb alone, read by the disk and by DAX; a disable / enable forgets them (pmem_attach_disk())', () => {
    const k = kernel('fsdax');
    k.run(k.setBadblocks({ device: 'pmem0', sector: 16, count: 8 }));
    expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(8);
    expect(k.bdevFirstBadblockIn({ device: 'pmem0' })).toBe(16);
    expect(k.badblocksIn({ device: 'pmem0' })).toBe(0);
    expect(errnoOf(() => k.run(k.pread({ device: 'pmem0', offset: 8192, length: 4096, direct: true, map: 'buf' })))).toBe('EIO');
    // __pmem_direct_access() reads the same pmem->bb: the data page is poisoned for DAX
    const pfn = k.device('pmem0').dataPfn + 2;
    expect(k.dax.poisoned(pfn, 1)).toBe(true);
    k.run(k.unbind({ device: 'pmem0' }));
    k.run(k.bind({ device: 'pmem0' }));
    expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(0);
    expect(k.dax.poisoned(k.device('pmem0').dataPfn + 2, 1)).toBe(false);
  });
});
