import { createKernel, InputError } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { describe, expect, it } from 'vitest';
import { devdax } from '../src/index.js';

// memory-failure { device, block } injects badblocks into a pmem namespace: its pfn metadata (the
// info block and the memmap reserve before the data offset), then its data. A device-dax device
// that is no namespace (no altmap and no mode: devdax: hmem) has no badblocks at all, and every
// block is refused.

describe('memory-failure with block on device-dax', () => {
  it('a device-dax device that is no pmem namespace has no badblocks: the block is refused, naming the fix', () => {
    const k = createKernel({ arch: testArch(), driver: devdax(), kernel: 'latest' });
    k.run(k.probe({ size: 32 << 20, as: 'dax0' }));
    const run = () => k.run(k.memoryFailure({ device: 'dax0', block: 0 }));
    expect(run).toThrow(InputError);
    expect(run).toThrow(/memory-failure: 'dax0' \(driver devdax\) is not a pmem namespace, so it has no badblocks: probe it with driver nvdimm \(fsdax\), or devdax with mode: devdax or altmap: true/);
  });

  it('with the memmap on the namespace (devdax -M dev) the blocks before the data take badblocks', () => {
    // 32 MiB at align 2 MiB: data at ALIGN(8 KiB + 64 * 8190, 2 MiB) = 2 MiB, blocks 0..4095 metadata
    const k = createKernel({ arch: testArch(), driver: devdax(), kernel: 'latest' });
    k.run(k.probe({ size: 32 << 20, altmap: true, as: 'dax0' }));
    k.run(k.memoryFailure({ device: 'dax0', block: 4095 }));
    expect(k.metadataBadblocksIn({ device: 'dax0' })).toBe(1);
    // block 4096 is the first of the data: the region lists it, the metadata area does not
    k.run(k.memoryFailure({ device: 'dax0', block: 4096 }));
    expect(k.metadataBadblocksIn({ device: 'dax0' })).toBe(1);
    expect(k.badblocksIn({ device: 'dax0' })).toBe(2);
    expect(() => k.run(k.memoryFailure({ device: 'dax0', block: 65536 }))).toThrow(/blocks 65536\.\.65536 of 'dax0' reach past the namespace/);
  });
});
