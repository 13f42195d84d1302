import { createKernel, InputError } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { describe, expect, it } from 'vitest';
import { devdax } from '../src/index.js';

// memory-failure { device, block } injects badblocks into a pmem namespace's pfn metadata (the
// info block and the memmap reserve before the data offset). A device-dax device without the
// memmap on a namespace (no altmap: hmem, or devdax with its memmap in RAM in this model) starts
// its data at its first page, so it has no such area and every block is refused.

describe('memory-failure with block on device-dax', () => {
  it('without an altmap there is no metadata area: the block is refused, naming the fix', () => {
    const k = createKernel({ arch: testArch(), driver: devdax(), kernel: 'latest' });
    k.run(k.probe({ size: 32 << 20, as: 'dax0' }));
    const run = () => k.run(k.memoryFailure({ device: 'dax0', block: 0 }));
    expect(run).toThrow(InputError);
    expect(run).toThrow(/dax0 has no metadata area \(its data starts at its first page\); a badblock in the data is memory-failure: \{ device, page \}/);
  });

  it('with the memmap on the namespace (devdax -M dev) the blocks before the data take badblocks', () => {
    // 32 MiB at align 2 MiB: data at ALIGN(8 KiB + 64 * 8190, 2 MiB) = 2 MiB, blocks 0..4095 metadata
    const k = createKernel({ arch: testArch(), driver: devdax(), kernel: 'latest' });
    k.run(k.probe({ size: 32 << 20, altmap: true, as: 'dax0' }));
    k.run(k.memoryFailure({ device: 'dax0', block: 4095 }));
    expect(k.metadataBadblocksIn({ device: 'dax0' })).toBe(1);
    expect(() => k.run(k.memoryFailure({ device: 'dax0', block: 4096 }))).toThrow(/blocks 4096\.\.4096 of 'dax0' reach past its metadata/);
  });
});
