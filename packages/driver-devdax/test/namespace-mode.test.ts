import { createKernel, InputError, KernelError, type Kernel } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { devdax } from '../src/index.js';

// A pmem namespace switched between fsdax and devdax (ndctl create-namespace -f -e -m ...,
// `reconfigure-namespace`) and the block device of an fsdax one (pread / pwrite { device }).
// dax-tests row E10 (ndctl test/device-dax.c).
//
// Layout with 4 KiB pages and the memmap on the device (nd_pfn_init(), the same for the pfn and
// the dax personality): npfns = (size - 8 KiB) / 4 KiB, data at ALIGN(8 KiB + 64 * npfns, align').
//  - 128 MiB at 2 MiB: 8192 + 64 * 32766 = 2105216 -> 4 MiB, so block-device byte 0 is namespace
//    page 1024 and the capacity is 124 MiB.
//  - 4 GiB at 2 MiB: 8192 + 64 * 1048574 = 67116928, just past 64 MiB -> 66 MiB; at 1 GiB: -> 1 GiB.
//  - 128 MiB at 4 KiB: the layout aligns to max(4 KiB, 2 MiB SUBSECTION_SIZE) -> 4 MiB, or to ppc64
//    hash's 16 MiB memremap_compat_align() from v5.7.

const KiB = 1024;
const MiB = 1 << 20;
const GiB = 1 << 30;
const PS = 4096;

function kernel(version = 'latest', arch = testArch()): Kernel {
  return createKernel({ arch, driver: nvdimm(), drivers: [devdax()], kernel: version });
}

/** An fsdax namespace `ns` and a one-page anonymous buffer `buf`. */
function fsdax(k: Kernel, size = 128 * MiB, align = 2 * MiB): void {
  k.run(k.probe({ driver: 'nvdimm', size, align, altmap: true, as: 'ns' }));
  k.run(k.mmap({ anon: true, length: PS, write: true, as: 'buf' }));
}

/** write(2) of one page holding `data` to /dev/pmemX at `offset`. */
function bdevWrite(k: Kernel, offset: number, data: string, direct = false): number {
  k.run(k.write({ map: 'buf', page: 0, data }));
  return k.run(k.pwrite({ device: 'ns', offset, length: PS, map: 'buf', direct }));
}

/** pread(2) of one page of /dev/pmemX at `offset` into the buffer; the data read. */
function bdevRead(k: Kernel, offset: number, direct = false): string {
  k.run(k.write({ map: 'buf', page: 0, data: 'stale' }));
  k.run(k.pread({ device: 'ns', offset, length: PS, map: 'buf', direct }));
  return k.run(k.read({ map: 'buf', page: 0 }));
}

function errno(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    if (e instanceof KernelError) return `${e.code}${e.unsupported ? ' (unsupported)' : ''}`;
    throw e;
  }
}

describe('pread / pwrite of a pmem namespace\'s block device (pmem_do_write: sector * 512 + dataoff)', () => {
  it('block-device byte 0 is the first data page, after the info block and the 4 MiB memmap reserve', () => {
    const k = kernel();
    fsdax(k);
    const ns = k.device('ns');
    expect((ns.dataPfn - ns.pgmap.startPfn) * PS).toBe(4 * MiB);
    expect(bdevWrite(k, 0, 'chunk0')).toBe(PS);
    expect(bdevWrite(k, 8 * KiB, 'chunk2')).toBe(PS);
    // the media pages: namespace page 1024 (+ 2)
    expect(k.pages.data.get(ns.pgmap.startPfn + 1024)).toBe('chunk0');
    expect(k.pages.data.get(ns.pgmap.startPfn + 1026)).toBe('chunk2');
    expect(bdevRead(k, 0)).toBe('chunk0');
    expect(bdevRead(k, 4 * KiB)).toBe(''); // never written: zeroes
  });

  it('the capacity is the data (124 MiB): a write at its end is ENOSPC, one across it is cut, a read there returns 0', () => {
    const k = kernel();
    fsdax(k);
    expect(errno(() => bdevWrite(k, 124 * MiB, 'x'))).toBe('ENOSPC');
    k.run(k.mmap({ anon: true, length: 2 * PS, write: true, as: 'two' }));
    expect(k.run(k.pwrite({ device: 'ns', offset: 124 * MiB - PS, length: 2 * PS, map: 'two' }))).toBe(PS);
    expect(k.run(k.pread({ device: 'ns', offset: 124 * MiB, length: PS, map: 'buf' }))).toBe(0);
  });

  it('O_DIRECT takes 512-byte multiples (EINVAL otherwise) and GUPs the buffer for the bio; the data lands alike', () => {
    const k = kernel();
    fsdax(k);
    expect(errno(() => k.run(k.pwrite({ device: 'ns', offset: 100, length: PS, map: 'buf', direct: true })))).toBe('EINVAL');
    const pins: string[] = [];
    k.bus.on('gup.pin').subscribe((e) => pins.push(e.data.name));
    expect(bdevWrite(k, PS, 'direct', true)).toBe(PS);
    expect(pins).toHaveLength(1);
    expect(bdevRead(k, PS, true)).toBe('direct');
    expect(pins).toHaveLength(2);
  });

  it('a badblock fails a read (EIO, pmem_do_read) and is cleared by a write over it (pmem_clear_poison)', () => {
    const k = kernel();
    fsdax(k);
    const ns = k.device('ns');
    // the data page 3 is namespace page 1027: sectors (start + 1027 pages) / 512, one bad sector in it
    k.badblocks.set(((ns.pgmap.startPfn + 1027) * PS) / 512 + 5, 1);
    expect(errno(() => bdevRead(k, 3 * PS))).toBe('EIO');
    expect(bdevWrite(k, 3 * PS, 'fresh')).toBe(PS);
    expect(bdevRead(k, 3 * PS)).toBe('fresh');
  });

  it('a device-dax instance has no read/write (EINVAL); a disabled namespace has no block device (ENOENT)', () => {
    const k = kernel();
    fsdax(k);
    k.run(k.reconfigureNamespace({ device: 'ns', mode: 'devdax', align: 2 * MiB }));
    expect(errno(() => bdevWrite(k, 0, 'x'))).toBe('EINVAL');
    k.run(k.reconfigureNamespace({ device: 'ns', mode: 'fsdax', align: 2 * MiB }));
    k.run(k.unbind({ device: 'ns' }));
    expect(errno(() => bdevWrite(k, 0, 'x'))).toBe('ENOENT');
  });
});

describe('reconfigure-namespace: the same range in a new mode, the media kept', () => {
  it('ndctl device-dax.c: data written through /dev/pmemX at offset i is /dev/dax offset i at the same align', () => {
    const k = kernel();
    fsdax(k);
    const start = k.device('ns').pgmap.startPfn;
    bdevWrite(k, 0, 'salt+0x0');
    bdevWrite(k, 2 * MiB, 'salt+0x200000');
    bdevWrite(k, 4 * MiB - PS, 'salt+0x3ff000');
    k.run(k.reconfigureNamespace({ device: 'ns', mode: 'devdax', align: 2 * MiB }));
    const dax = k.device('ns');
    expect(dax.driver).toBe('devdax');
    expect(dax.pgmap.startPfn).toBe(start); // the same physical range
    expect(dax.dataPfn).toBe(start + 1024); // the same 4 MiB dataoff
    k.run(k.mmap({ device: 'ns', length: 4 * MiB, shared: true, as: 'm' }));
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('salt+0x0');
    expect(k.run(k.read({ map: 'm', page: 512 }))).toBe('salt+0x200000');
    expect(k.run(k.read({ map: 'm', page: 1023 }))).toBe('salt+0x3ff000');
  });

  it('at another align the offsets differ: fsdax at 2 MiB has data at 66 MiB, devdax at 1 GiB at 1 GiB, so block-device byte 958 MiB is device-dax page 0', () => {
    const k = kernel();
    fsdax(k, 4 * GiB, 2 * MiB);
    bdevWrite(k, 0, 'bdev 0');
    bdevWrite(k, GiB - 66 * MiB, 'bdev 958M');
    k.run(k.reconfigureNamespace({ device: 'ns', mode: 'devdax', align: GiB }));
    k.run(k.mmap({ device: 'ns', length: GiB, shared: true, as: 'm' }));
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('bdev 958M');
  });

  it('back to fsdax: what a device-dax store wrote is read through the block device', () => {
    const k = kernel();
    fsdax(k);
    k.run(k.reconfigureNamespace({ device: 'ns', mode: 'devdax' }));
    k.run(k.mmap({ device: 'ns', length: 2 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 7, data: 'from devdax' }));
    // the mapping is zapped by the disable; a store after it is SIGBUS (check_vma: !dax_alive)
    k.run(k.reconfigureNamespace({ device: 'ns', mode: 'fsdax' }));
    expect(k.vm.isMapped(k.device('ns').dataPfn + 7)).toBe(false);
    expect(errno(() => k.run(k.write({ map: 'm', page: 7, data: 'late' })))).toBe('SIGBUS');
    expect(bdevRead(k, 7 * PS)).toBe('from devdax');
  });

  it('ppc64 hash 4K v5.4: both personalities lay out to SUBSECTION_SIZE (memremap_compat_align() is v5.7), so the offsets still match', () => {
    const a = testArch();
    const hash = { ...a, mmu: { ...a.mmu, devdaxAlignments: [PS], memremapCompatAlign: 16 * MiB } };
    for (const [version, dataoff] of [['v5.4', 4 * MiB], ['v6.6', 16 * MiB]] as const) {
      const k = kernel(version, hash);
      fsdax(k, 128 * MiB, PS);
      bdevWrite(k, 0, 'first');
      expect((k.device('ns').dataPfn - k.device('ns').pgmap.startPfn) * PS).toBe(dataoff);
      k.run(k.reconfigureNamespace({ device: 'ns', mode: 'devdax', align: PS }));
      expect((k.device('ns').dataPfn - k.device('ns').pgmap.startPfn) * PS).toBe(dataoff);
      k.run(k.mmap({ device: 'ns', length: PS, shared: true, as: 'm' }));
      expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('first');
    }
  });

  it('zero_info_block() clears the info block\'s badblocks; a new fsdax info block clears the memmap area\'s (v5.5+)', () => {
    const k = kernel('v6.6');
    fsdax(k);
    k.run(k.reconfigureNamespace({ device: 'ns', mode: 'devdax' }));
    const startSector = (k.device('ns').pgmap.startPfn * PS) / 512;
    k.badblocks.set(startSector + 9, 1); // in the info block (bytes 4096..8191: sectors 8..15)
    k.badblocks.set(startSector + 2040, 4); // in the memmap reserve
    k.run(k.reconfigureNamespace({ device: 'ns', mode: 'fsdax' }));
    expect(k.badblocks.countIn(startSector, 8192)).toBe(0);
  });

  it('a new devdax info block clears the memmap area\'s badblocks from v5.5 (nd_pfn_init() for DAX_SIG too), not on v5.4', () => {
    for (const [version, left] of [['v5.4', 4], ['v6.6', 0]] as const) {
      const k = kernel(version);
      fsdax(k);
      const startSector = (k.device('ns').pgmap.startPfn * PS) / 512;
      // sectors 2040..2043: in the memmap reserve (sectors 16 .. 4 MiB / 512 = 8192)
      k.badblocks.set(startSector + 2040, 4);
      k.run(k.reconfigureNamespace({ device: 'ns', mode: 'devdax' }));
      expect(k.badblocks.countIn(startSector, 8192)).toBe(left);
    }
  });

  it('unbind and bind of an fsdax namespace keep its data (memunmap_pages() frees struct pages, not media)', () => {
    const k = kernel();
    fsdax(k);
    bdevWrite(k, 5 * PS, 'persistent');
    k.run(k.unbind({ device: 'ns' }));
    k.run(k.bind({ device: 'ns' }));
    expect(bdevRead(k, 5 * PS)).toBe('persistent');
  });

  it('refusals: a devdax instance without a namespace (no mode: devdax, no altmap) is no pmem namespace; raw mode takes no align', () => {
    const k = kernel();
    k.run(k.probe({ driver: 'devdax', size: 128 * MiB, as: 'hmem' }));
    expect(() => k.run(k.reconfigureNamespace({ device: 'hmem', mode: 'fsdax' }))).toThrow(InputError);
    fsdax(k);
    expect(() => k.run(k.reconfigureNamespace({ device: 'ns', mode: 'raw', align: PS }))).toThrow(InputError);
    // -m raw: a block device without a pfn device, the whole namespace from byte 0
    bdevWrite(k, 0, 'fsdax byte 0');
    k.run(k.reconfigureNamespace({ device: 'ns', mode: 'raw' }));
    expect(k.rawNamespaces.has('ns')).toBe(true);
    // the fsdax data offset of a 128 MiB namespace at 2 MiB align: ALIGN(8 KiB + 64 x 32766, 2 MiB) = 4 MiB
    expect(bdevRead(k, 4 * MiB)).toBe('fsdax byte 0');
    // and back (ndctl clear.sh): the fsdax personality at the same range finds it at its byte 0
    bdevWrite(k, 4 * MiB + PS, 'raw view');
    k.run(k.reconfigureNamespace({ device: 'ns', mode: 'fsdax' }));
    expect(bdevRead(k, 0)).toBe('fsdax byte 0');
    expect(bdevRead(k, PS)).toBe('raw view');
  });

  it('a failed setup leaves the namespace disabled, not gone (1 GiB align on an arch without it)', () => {
    const a = testArch();
    const k = kernel('latest', { ...a, mmu: { ...a.mmu, devdaxAlignments: [PS, 2 * MiB] } });
    fsdax(k);
    bdevWrite(k, 0, 'kept');
    expect(errno(() => k.run(k.reconfigureNamespace({ device: 'ns', mode: 'devdax', align: GiB })))).toBe('EINVAL (unsupported)');
    expect(k.device('ns').bound).toBe(false);
    k.run(k.reconfigureNamespace({ device: 'ns', mode: 'fsdax' }));
    expect(bdevRead(k, 0)).toBe('kept');
  });
});

// -M mem (PFN_MODE_RAM): the memmap in RAM, so nd_pfn_init() reserves only the 8 KiB info block,
// aligned up: data at ALIGN(8 KiB, max(align, memremap_compat_align())) (drivers/nvdimm/pfn_devs.c;
// max(align, SUBSECTION_SIZE) before v5.7). With 4 KiB pages that is 2 MiB at align 4 KiB or
// 2 MiB, 1 GiB at align 1 GiB, and 16 MiB on ppc64 hash from v5.7. dax_pmem's range starts there
// (__dax_pmem_probe(): range.start += offset); the pgmap and its struct pages cover the whole
// namespace, none of them on the device.
describe('devdax namespaces with the memmap in RAM (-M mem)', () => {
  it('probe { mode: devdax, altmap: false }: data at 2 MiB (align 4 KiB and 2 MiB) or 1 GiB (align 1 GiB); struct pages for the whole namespace, all in RAM', () => {
    for (const [align, dataoff] of [[PS, 2 * MiB], [2 * MiB, 2 * MiB], [GiB, GiB]] as const) {
      const k = kernel();
      k.run(k.probe({ mode: 'devdax', size: 4 * GiB, align, altmap: false, as: 'd' }));
      const d = k.device('d');
      expect(d.pmemNamespace).toBe(true);
      expect((d.dataPfn - d.pgmap.startPfn) * PS).toBe(dataoff);
      expect(d.dataPages).toBe((4 * GiB - dataoff) / PS);
      expect(d.pgmap.altmap).toBe(false);
      expect(d.pgmap.nrPages).toBe((4 * GiB) / PS);
    }
    // without mode: devdax an instance has no namespace metadata (hmem, a dynamic region): data at 0
    const k = kernel();
    k.run(k.probe({ driver: 'devdax', size: 128 * MiB, align: 2 * MiB, as: 'hmem' }));
    expect(k.device('hmem').dataPfn).toBe(k.device('hmem').pgmap.startPfn);
    expect(k.device('hmem').dataPages).toBe((128 * MiB) / PS);
  });

  it('fsdax -M mem to devdax -M mem keeps the data at the same offset (both at ALIGN(8 KiB, 2 MiB) = 2 MiB); devdax -M dev moves it to 4 MiB', () => {
    for (const [altmap, page0] of [[false, 'bdev 0'], [true, 'bdev 2M']] as const) {
      const k = kernel();
      k.run(k.probe({ driver: 'nvdimm', size: 128 * MiB, align: 2 * MiB, altmap: false, as: 'ns' }));
      k.run(k.mmap({ anon: true, length: PS, write: true, as: 'buf' }));
      expect((k.device('ns').dataPfn - k.device('ns').pgmap.startPfn) * PS).toBe(2 * MiB);
      bdevWrite(k, 0, 'bdev 0');
      bdevWrite(k, 2 * MiB, 'bdev 2M');
      k.run(k.reconfigureNamespace({ device: 'ns', mode: 'devdax', align: 2 * MiB, altmap }));
      k.run(k.mmap({ device: 'ns', length: 2 * MiB, shared: true, as: 'm' }));
      expect(k.run(k.read({ map: 'm', page: 0 }))).toBe(page0);
    }
  });

  it('back from devdax -M mem to fsdax -M dev: the namespace takes the new layout (4 MiB), so device-dax page 512 (namespace 4 MiB) is block-device byte 0', () => {
    const k = kernel();
    k.run(k.probe({ mode: 'devdax', size: 128 * MiB, align: 2 * MiB, altmap: false, as: 'ns' }));
    k.run(k.mmap({ device: 'ns', length: 4 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 512, data: 'at 4M' }));
    k.run(k.reconfigureNamespace({ device: 'ns', mode: 'fsdax' }));
    k.run(k.mmap({ anon: true, length: PS, write: true, as: 'buf' }));
    expect(bdevRead(k, 0)).toBe('at 4M');
  });

  it('enable-namespace reads the info block (a badblock there: the namespace comes back raw) but clears no memmap area (nd_pfn_clear_memmap_errors() is PFN_MODE_PMEM only)', () => {
    const k = kernel('v6.6');
    k.run(k.probe({ mode: 'devdax', size: 128 * MiB, align: 2 * MiB, altmap: false, as: 'ns' }));
    const startSector = (k.device('ns').pgmap.startPfn * PS) / 512;
    // sectors 16..4095 lie between the info block and the 2 MiB dataoff: no memmap there, left alone
    k.badblocks.set(startSector + 2040, 4);
    k.run(k.unbind({ device: 'ns' }));
    k.run(k.bind({ device: 'ns' }));
    expect(k.device('ns').bound).toBe(true);
    expect(k.badblocks.countIn(startSector, 4096)).toBe(4);
    // a bad sector in the info block (bytes 4096..8191): nd_pfn_validate() fails, the namespace is a raw disk
    k.badblocks.set(startSector + 9, 1);
    k.run(k.unbind({ device: 'ns' }));
    k.run(k.bind({ device: 'ns' }));
    expect(k.rawNamespaces.has('ns')).toBe(true);
  });

  it('mode: devdax names the devdax driver: with driver nvdimm it is an input error', () => {
    const k = kernel();
    expect(() => k.run(k.probe({ driver: 'nvdimm', mode: 'devdax', size: 128 * MiB, as: 'x' }))).toThrow(InputError);
  });
});
