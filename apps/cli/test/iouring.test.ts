import { createKernel, KernelError, Monitor, PRESETS } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';

// io_uring fixed buffers over an anon page and a page of a private fs-dax mapping (mm/iouring.ts):
// io_pin_pages() turns a partial pin into -EFAULT, while before v5.12 GUP's fs-dax refusal came
// after the whole walk (check_dax_vmas) and covered the call.

const PAGE = 4096;
const RELEASES = PRESETS.map((p) => p.name);

/** mem: 2 pages of a private mapping of a file on DAX xfs, one of them replaced by an anon page (mremap MREMAP_FIXED). */
function anonAndFsdax(version: string, anonPage: 0 | 1): { errno: string; rc: number; violations: number } {
  const k = createKernel({ arch: x86(), fs: xfs(), driver: nvdimm(), kernel: version });
  const m = new Monitor(k);
  k.run(k.probe({ size: 2 ** 30, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0' }));
  k.run(k.create({ file: 'f', size: 2 * PAGE }));
  k.run(k.mmap({ file: 'f', length: 2 * PAGE, shared: false, write: true, as: 'mem' }));
  k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'a' }));
  k.run(k.mremap({ map: 'a', length: PAGE, to: 'mem', toOffset: anonPage * PAGE, as: 'moved' }));
  k.run(k.write({ map: 'mem', page: anonPage, data: 'A' }));
  const anon = k.pfnOf({ map: 'mem', page: anonPage })!;
  expect(k.isAnon(anon)).toBe(true);
  let errno = 'none';
  try {
    k.run(k.iouringRegister({ map: 'mem', page: 0, pages: 2, as: 'buf' }));
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    errno = e.code;
  }
  return { errno, rc: k.refcount(anon), violations: m.violations.length };
}

describe('io_uring: a buffer over an anon page and a private fs-dax page', () => {
  it('anon first: the anon page is pinned, the fs-dax VMA refused: -EFAULT (partial map) from v5.12, -EOPNOTSUPP before (check_dax_vmas after the walk)', () => {
    // every release: nothing stays pinned (the anon page is back to its PTE's reference) and no fs-dax page was ever longterm-pinned
    const got = RELEASES.map((v) => anonAndFsdax(v, 0));
    expect(got.map((g) => g.errno)).toEqual(['EOPNOTSUPP', 'EOPNOTSUPP', 'EFAULT', 'EFAULT', 'EFAULT', 'EFAULT', 'EFAULT']);
    expect(got.map((g) => [g.rc, g.violations])).toEqual(RELEASES.map(() => [1, 0]));
  });

  it('fs-dax first: nothing is pinned before the refusal, so its own -EOPNOTSUPP in every release (GUP-fast finds no page there and falls back)', () => {
    const got = RELEASES.map((v) => anonAndFsdax(v, 1));
    expect(got.map((g) => g.errno)).toEqual(RELEASES.map(() => 'EOPNOTSUPP'));
    expect(got.map((g) => [g.rc, g.violations])).toEqual(RELEASES.map(() => [1, 0]));
  });
});
