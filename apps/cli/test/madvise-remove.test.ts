import { createKernel, KernelError, PRESETS } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { ext4 } from '@daxlab/fs-ext4';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';

// MADV_REMOVE on DAX mappings (mm/madvise.ts remove()): madvise_remove() ->
// vfs_fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE), which for an fs-dax file is the
// filesystem's punch hole (xfs_file_fallocate / ext4_punch_hole: the DAX entries unmapped, the
// blocks freed), and for a device-dax or /dev/mem mapping -ENODEV (a character device:
// !S_ISREG && !S_ISBLK in vfs_fallocate()).

const RELEASES = PRESETS.map((p) => p.name);

function errno(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    if (e instanceof KernelError) return e.code;
    throw e;
  }
}

describe('MADV_REMOVE on DAX mappings', () => {
  for (const [name, fs] of [['xfs', xfs], ['ext4', ext4]] as const) {
    it(`fs-dax on ${name}: a shared mapping's range is a punch hole (its block freed), every release`, () => {
      for (const version of RELEASES) {
        const k = createKernel({ arch: x86(), fs: fs(), driver: nvdimm(), kernel: version });
        k.run(k.probe({ size: 2 ** 30, as: 'pmem0' }));
        k.run(k.mount({ device: 'pmem0' }));
        k.run(k.create({ file: 'f', size: 8192 }));
        k.run(k.mmap({ file: 'f', length: 8192, shared: true, write: true, as: 'm' }));
        k.run(k.write({ map: 'm', page: 0, data: 'a' }));
        k.run(k.write({ map: 'm', page: 1, data: 'b' }));
        k.run(k.madvise({ map: 'm', advice: 'remove', length: 4096 }));
        // the filesystem first breaks the DAX layouts of the whole file (xfs_break_layouts /
        // ext4_break_layouts -> dax_layout_busy_page(): every mapping of the file unmapped), then
        // frees the blocks inside the range: page 1 keeps its block and data and faults back in
        const got = { version, mapped: k.isMappedIn({ map: 'm', page: 0 }), blockFree: [k.blockFree({ file: 'f', page: 0 }), k.blockFree({ file: 'f', page: 1 })] };
        expect(got).toEqual({ version, mapped: false, blockFree: [true, false] });
        expect([k.run(k.read({ map: 'm', page: 0 })), k.run(k.read({ map: 'm', page: 1 }))]).toEqual(['', 'b']);
        // a private mapping of the same file: EACCES before anything is punched
        k.run(k.mmap({ file: 'f', length: 8192, write: true, as: 'p' }));
        expect(errno(() => k.run(k.madvise({ map: 'p', advice: 'remove', offset: 4096, length: 4096 })))).toBe('EACCES');
        expect(k.blockFree({ file: 'f', page: 1 })).toBe(false);
      }
    });
  }

  it('device-dax: ENODEV (vfs_fallocate of a character device), every release', () => {
    for (const version of RELEASES) {
      const k = createKernel({ arch: x86(), driver: devdax(), kernel: version });
      k.run(k.probe({ driver: 'devdax', size: 2 ** 30, align: 2 ** 21, as: 'dax0' }));
      k.run(k.mmap({ device: 'dax0', length: 2 ** 21, shared: true, write: true, as: 'mem' }));
      k.run(k.write({ map: 'mem', page: 0, data: 'x' }));
      expect([version, errno(() => k.run(k.madvise({ map: 'mem', advice: 'remove' })))]).toEqual([version, 'ENODEV']);
      expect(k.isMappedIn({ map: 'mem', page: 0 })).toBe(true);
    }
  });
});
