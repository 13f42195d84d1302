import { Badblocks, createKernel, InputError, parseScenario, type Kernel } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { describe, expect, it } from 'vitest';
import { dataOffset, nvdimm } from '../src/index.js';

// Badblocks in a pmem namespace's pfn metadata (ndctl test/pfn-meta-errors.sh, dax-tests E21).
// Layout used throughout: a 32 MiB namespace (nfit_test's SPA0_SIZE), 4 KiB pages, align 2 MiB.
// nd_pfn_init(): npfns = (32 MiB - 8 KiB) / 4 KiB = 8190; with the memmap on the device the data
// starts at ALIGN(8 KiB + 64 * 8190, 2 MiB) = ALIGN(532352, 2 MiB) = 2 MiB, i.e. block 4096; with
// the memmap in RAM at ALIGN(8 KiB, 2 MiB) = 2 MiB as well. The info block is bytes 4096..8191
// (blocks 8..15); nd_pfn_clear_memmap_errors() looks at blocks 16..4095.

const MiB = 1 << 20;

function namespace(version: string, altmap = true): Kernel {
  const k = createKernel({ arch: testArch(), driver: nvdimm(), kernel: version });
  k.run(k.probe({ size: 32 * MiB, altmap, as: 'ns' }));
  return k;
}

/** ndctl disable-namespace; enable-namespace */
function reenable(k: Kernel): void {
  k.run(k.unbind({ device: 'ns' }));
  k.run(k.bind({ device: 'ns' }));
}

function inject(k: Kernel, block: number, count: number): void {
  k.run(k.memoryFailure({ device: 'ns', block, count }));
}

describe('Badblocks (block/badblocks.c semantics)', () => {
  it('merges touching ranges, reports the first overlapping range whole, splits on clear', () => {
    const bb = new Badblocks();
    bb.set(10, 4); // 10..13
    bb.set(14, 2); // touches: 10..15
    bb.set(20, 1);
    // a request for 12..12 overlaps 10..15: badblocks_check() gives the range's own start and length
    expect(bb.check(12, 1)).toEqual({ first: 10, count: 6 });
    expect(bb.check(16, 4)).toBeNull(); // 16..19 is clean
    bb.clear(12, 2); // 10..11 and 14..15 stay
    expect(bb.countIn(0, 100)).toBe(2 + 2 + 1);
    expect(bb.check(12, 2)).toBeNull();
    expect(bb.check(0, 100)).toEqual({ first: 10, count: 2 });
  });
});

describe('pfn-meta-errors.sh: the memmap area is cleared when the namespace is enabled', () => {
  it('the layout the script reads: dataoff 2 MiB, so it injects at (4096 - 16) / 2 = 2040', () => {
    expect(dataOffset(32 * MiB, 4096, 2 * MiB, true)).toBe(2 * MiB);
  });

  for (const v of ['v5.4', 'v5.10', 'v6.6', 'latest']) {
    it(`${v}: 32 blocks at 2040 are listed after the scrub and gone after enable-namespace`, () => {
      const k = namespace(v);
      inject(k, 2040, 32);
      // the scrub lists them; nothing clears them while the namespace stays enabled
      expect(k.metadataBadblocksIn({ device: 'ns' })).toBe(32);
      reenable(k);
      expect(k.metadataBadblocksIn({ device: 'ns' })).toBe(0);
      expect(k.device('ns').bound).toBe(true);
    });
  }

  // Errors already on the media when create-namespace writes a new info block: nd_pfn_init()
  // clears them there too only from c1f45d86a522 (v5.5), which moved the clear out of
  // nd_pfn_validate() (reached only for an info block that is already there). Why the script
  // first clears old errors itself through the raw block device. The model places the first
  // device range at 64 GiB (memremap.ts placeRange()), so the errors are put there beforehand.
  for (const [v, left] of [['v5.4', 32], ['v5.10', 0], ['latest', 0]] as const) {
    it(`${v}: badblocks already in the memmap area when the namespace is created: ${left} left`, () => {
      const k = createKernel({ arch: testArch(), driver: nvdimm(), kernel: v });
      k.badblocks.set((64 * 1024 * MiB) / 512 + 2040, 32);
      k.run(k.probe({ size: 32 * MiB, altmap: true, as: 'ns' }));
      expect(k.device('ns').pgmap.startPfn * 4096).toBe(64 * 1024 * MiB);
      expect(k.metadataBadblocksIn({ device: 'ns' })).toBe(left);
    });
  }

  it('a range that does not start on a page is zeroed page by page until none is left', () => {
    // blocks 17..24: first pass writes ALIGN_DOWN(17 * 512, 4096) = 8192 for ALIGN(8 * 512, 4096)
    // = 4096 bytes (blocks 16..23), which leaves block 24; the second pass writes 12288..16383
    const k = namespace('latest');
    inject(k, 17, 8);
    reenable(k);
    expect(k.metadataBadblocksIn({ device: 'ns' })).toBe(0);
  });

  it('blocks before the memmap area (the first 4 KiB) are not the clear\'s to touch', () => {
    // meta_start = (SZ_4K + sizeof(struct nd_pfn_sb)) >> 9 = 16: blocks 0..7 stay bad
    const k = namespace('latest');
    inject(k, 0, 8);
    inject(k, 4000, 96); // 4000..4095: the last metadata blocks, right before the data
    expect(k.metadataBadblocksIn({ device: 'ns' })).toBe(104);
    reenable(k);
    expect(k.metadataBadblocksIn({ device: 'ns' })).toBe(8);
  });

  it('with the memmap in RAM (--map=mem, PFN_MODE_RAM) the area is left alone', () => {
    // nd_pfn_clear_memmap_errors() returns at once unless nd_pfn->mode is PFN_MODE_PMEM
    const k = namespace('latest', false);
    inject(k, 2040, 32);
    reenable(k);
    expect(k.metadataBadblocksIn({ device: 'ns' })).toBe(32);
    expect(k.device('ns').bound).toBe(true);
  });

  it('the badblocks outlive the disable: they are the bus\'s list, not the namespace\'s', () => {
    const k = namespace('latest', false);
    inject(k, 100, 1);
    k.run(k.unbind({ device: 'ns' }));
    expect(k.metadataBadblocksIn({ device: 'ns' })).toBe(1);
  });
});

describe('a badblock in the info block', () => {
  it('enable-namespace finds no pfn personality: the namespace attaches raw', () => {
    // nd_pfn_validate(): nvdimm_read_bytes() of 4 KiB at 4096 touches block 12 -> -EIO -> -ENXIO;
    // nd_pfn_probe() and nd_dax_probe() fail, nd_pmem_probe() falls through to a raw disk
    const k = namespace('latest');
    const phys = k.device('ns').pgmap.startPfn * k.mmu.basePageSize;
    inject(k, 12, 1);
    reenable(k);
    expect(k.devices.has('ns')).toBe(false);
    expect(k.rawNamespaces.get('ns')).toEqual({ name: 'ns', size: 32 * MiB, phys });
  });

  it('a badblock right after the info block does not stop validation (it is cleared instead)', () => {
    const k = namespace('latest');
    inject(k, 16, 1);
    reenable(k);
    expect(k.devices.get('ns')?.bound).toBe(true);
    expect(k.metadataBadblocksIn({ device: 'ns' })).toBe(0);
  });
});

describe('memory-failure with block: input errors', () => {
  it('a range across the data offset is metadata as far as it lies before it; a block past the namespace is refused, naming the field', () => {
    const k = namespace('latest');
    // the data starts at block 4096: 4090..4105 is 6 blocks of metadata and 10 of data
    inject(k, 4090, 16);
    expect(k.metadataBadblocksIn({ device: 'ns' })).toBe(6);
    expect(k.badblocksIn({ device: 'ns' })).toBe(16);
    // 32 MiB is blocks 0..65535
    const e = (() => { try { inject(k, 65530, 8); } catch (err) { return err; } return null; })();
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).message).toMatch(/blocks 65530\.\.65537 of 'ns' reach past the namespace: it has blocks 0\.\.65535 \(its pfn metadata is blocks 0\.\.4095/);
  });

  const scenario = (args: string) => `name: t\nsetup:\n  - probe: { size: 32MiB, altmap: true, as: ns }\n  - mmap: { anon: true, length: 4KiB, as: m }\nsteps:\n  - memory-failure: ${args}\n`;
  const message = (args: string): string => {
    try {
      parseScenario(scenario(args), 't.yaml');
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      return (e as Error).message;
    }
    throw new Error('parsed');
  };

  it('block goes with device, without page or map; count goes with block', () => {
    expect(message('{ map: m, block: 3 }')).toMatch(/memory-failure\.block: block counts 512-byte blocks .*without map and page/);
    expect(message('{ device: ns, page: 0, block: 3 }')).toMatch(/memory-failure\.block:/);
    expect(message('{ device: ns, page: 0, count: 3 }')).toMatch(/memory-failure\.count: count goes with block/);
    expect(message('{ device: ns }')).toMatch(/memory-failure\.page: add page: the data page of the device that fails/);
    expect(parseScenario(scenario('{ device: ns, block: 2040, count: 32 }'), 't.yaml').threads[0]!.steps[0]!.op).toBe('memory-failure');
  });

  it('metadataBadblocks looks at a device, without a page', () => {
    const text = 'name: t\nsetup:\n  - probe: { size: 32MiB, altmap: true, as: ns }\nsteps:\n  - check: { metadataBadblocks: { device: ns, page: 0 }, equals: 0 }\n';
    expect(() => parseScenario(text, 't.yaml')).toThrow(/metadataBadblocks is a property of a pmem namespace: write \{ device: <name> \} \(no page\)/);
  });
});
