import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE } from '../src/mm/memfd.js';
import { code } from './vm-helpers.js';

// memfd file seals (mm/memfd.ts). Values reasoned from mm/memfd.c memfd_add_seals(), mm/shmem.c
// shmem_mmap() / shmem_setattr() / shmem_fallocate() and mm/mmap.c mapping_map_writable():
// F_GET_SEALS is the OR of include/uapi/linux/fcntl.h's bits (SEAL 1, SHRINK 2, GROW 4, WRITE 8,
// FUTURE_WRITE 16); an order-0 shmem page has refcount 1 (the cache's) + one per PTE, and a pin adds
// GUP_PIN_COUNTING_BIAS (1024).

const PAGE = 4096;

function kernel(version = 'latest', features: Record<string, unknown> = {}): Kernel {
  return createKernel({ arch: testArch(), kernel: version, features });
}

function memfd(k: Kernel, sealing = true, pages = 2): void {
  k.run(k.memfdCreate({ file: 'fd', size: pages * PAGE, sealing }));
}

const vma = (k: Kernel, name: string) => k.process(undefined).vmas.find((v) => v.name === name)!;

describe('F_ADD_SEALS / F_GET_SEALS', () => {
  it('the uapi bits are the kernel\'s', () => {
    expect([F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE, F_SEAL_FUTURE_WRITE]).toEqual([1, 2, 4, 8, 16]);
  });

  it('without MFD_ALLOW_SEALING the inode keeps F_SEAL_SEAL (shmem_get_inode), so sealing is EPERM', () => {
    const k = kernel();
    memfd(k, false);
    expect(k.getSeals('fd')).toBe(1);
    expect(code(() => k.run(k.addSeals({ file: 'fd', seals: ['shrink'] })))).toBe('EPERM');
    // an empty F_ADD_SEALS is refused too: the F_SEAL_SEAL test comes before the seals are looked at
    expect(code(() => k.run(k.addSeals({ file: 'fd', seals: [] })))).toBe('EPERM');
    expect(k.getSeals('fd')).toBe(1);
  });

  it('seals only accumulate; F_SEAL_SEAL stops further sealing', () => {
    const k = kernel();
    memfd(k);
    expect(k.getSeals('fd')).toBe(0);
    k.run(k.addSeals({ file: 'fd', seals: ['shrink'] }));
    k.run(k.addSeals({ file: 'fd', seals: ['grow'] }));
    expect(k.getSeals('fd')).toBe(2 | 4);
    k.run(k.addSeals({ file: 'fd', seals: ['seal'] }));
    expect(code(() => k.run(k.addSeals({ file: 'fd', seals: ['write'] })))).toBe('EPERM');
    expect(k.getSeals('fd')).toBe(1 | 2 | 4);
  });

  it('F_SEAL_FUTURE_WRITE is EINVAL before v5.1 only: every preset has it', () => {
    for (const v of ['v5.4', 'v6.6', 'latest']) {
      const k = kernel(v);
      memfd(k);
      k.run(k.addSeals({ file: 'fd', seals: ['future-write'] }));
      expect(k.getSeals('fd')).toBe(16);
    }
  });

  it('a secretmem file or a disk tmpfile has no seals: EINVAL (memfd_file_seals_ptr)', () => {
    const k = kernel();
    k.run(k.tmpfile({ file: 'tmp', fs: 'ext4', size: PAGE }));
    expect(code(() => k.getSeals('tmp'))).toBe('EINVAL');
    expect(code(() => k.run(k.addSeals({ file: 'tmp', seals: ['write'] })))).toBe('EINVAL');
    k.run(k.memfdSecret({ file: 'secret', size: PAGE }));
    expect(code(() => k.run(k.addSeals({ file: 'secret', seals: ['grow'] })))).toBe('EINVAL');
  });
});

describe('F_SEAL_WRITE: mapping_deny_writable() and memfd_wait_for_pins()', () => {
  it('is EBUSY while a read-write MAP_SHARED mapping exists, and goes through once it is unmapped', () => {
    const k = kernel();
    memfd(k);
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, as: 'rw' }));
    k.run(k.write({ map: 'rw', page: 0, data: 'x' }));
    expect(code(() => k.run(k.addSeals({ file: 'fd', seals: ['write'] })))).toBe('EBUSY');
    expect(k.getSeals('fd')).toBe(0);
    k.run(k.munmap({ map: 'rw' }));
    k.run(k.addSeals({ file: 'fd', seals: ['write'] }));
    expect(k.getSeals('fd')).toBe(8);
  });

  it('a read-only MAP_SHARED mapping counts as writable until v6.6 (VM_SHARED), not from v6.7 once it lacks VM_MAYWRITE', () => {
    // made before any seal, the read-only shared mapping has VM_MAYWRITE: it counts in every release
    for (const v of ['v6.6', 'v6.15']) {
      const k = kernel(v);
      memfd(k);
      k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, as: 'ro' }));
      expect(code(() => k.run(k.addSeals({ file: 'fd', seals: ['write'] }))), v).toBe('EBUSY');
    }
    // made after F_SEAL_FUTURE_WRITE, it lost VM_MAYWRITE (seal_check_future_write): from v6.7 it no
    // longer counts, so F_SEAL_WRITE can follow; until v6.6 VM_SHARED alone counted (EBUSY)
    const expected: Record<string, string | null> = { 'v6.6': 'EBUSY', 'v6.15': null };
    for (const v of ['v6.6', 'v6.15']) {
      const k = kernel(v);
      memfd(k);
      k.run(k.addSeals({ file: 'fd', seals: ['future-write'] }));
      k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, as: 'ro' }));
      expect(vma(k, 'ro').flags.nomaywrite).toBe(true);
      expect(code(() => k.run(k.addSeals({ file: 'fd', seals: ['write'] }))), v).toBe(expected[v]);
    }
  });

  it('a private mapping never counts, even read-write and written', () => {
    const k = kernel('v5.4');
    memfd(k);
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, write: true, as: 'priv' }));
    k.run(k.write({ map: 'priv', page: 0, data: 'cow' }));
    // do_cow_fault() left the page-cache page with the cache's reference alone: 1 - 0 == 1, not tagged
    expect(k.refcount(k.pfnOf({ file: 'fd', page: 0 })!)).toBe(1);
    k.run(k.addSeals({ file: 'fd', seals: ['write'] }));
    expect(k.getSeals('fd')).toBe(8);
    // the COW copy is anon memory of the process: writing it is not writing the file
    k.run(k.write({ map: 'priv', page: 1, data: 'y' }));
  });

  it('a pinned page-cache page makes it EBUSY after the mapping is gone: refcount - mapcount = 1025 - 0, not 1', () => {
    const k = kernel();
    memfd(k);
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, as: 'rw' }));
    k.run(k.write({ map: 'rw', page: 1, data: 'x' }));
    k.run(k.gup({ map: 'rw', page: 1, longterm: true, as: 'p' }, true));
    k.run(k.munmap({ map: 'rw' }));
    const pfn = k.pfnOf({ file: 'fd', page: 1 })!;
    expect([k.refcount(pfn), k.mapcount(pfn)]).toEqual([1 + 1024, 0]);
    expect(code(() => k.run(k.addSeals({ file: 'fd', seals: ['write'] })))).toBe('EBUSY');
    k.run(k.unpin({ name: 'p' }));
    k.run(k.addSeals({ file: 'fd', seals: ['write'] }));
    expect(k.getSeals('fd')).toBe(8);
  });

  it('a mapped page is not a pin: refcount 2 - mapcount 1 == 1 (the scan subtracts the mappings)', () => {
    const k = kernel();
    memfd(k);
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, write: true, as: 'priv' }));
    k.run(k.read({ map: 'priv', page: 0 })); // a read fault maps the page-cache page itself
    const pfn = k.pfnOf({ file: 'fd', page: 0 })!;
    expect([k.refcount(pfn), k.mapcount(pfn)]).toEqual([2, 1]);
    k.run(k.addSeals({ file: 'fd', seals: ['write'] }));
    expect(k.getSeals('fd')).toBe(8);
  });

  it('F_SEAL_FUTURE_WRITE checks neither: an existing writable mapping and a pin stay, and the mapping keeps writing', () => {
    const k = kernel();
    memfd(k);
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, as: 'rw' }));
    k.run(k.gup({ map: 'rw', page: 0, write: true, longterm: true, as: 'p' }, true));
    k.run(k.addSeals({ file: 'fd', seals: ['future-write'] }));
    k.run(k.write({ map: 'rw', page: 1, data: 'still' }));
    expect(k.isWritableIn({ map: 'rw', page: 1 })).toBe(true);
  });
});

describe('what a write seal refuses', () => {
  it('mmap(PROT_WRITE, MAP_SHARED) is EPERM; MAP_PRIVATE read-write is allowed', () => {
    for (const seal of ['write', 'future-write'] as const) {
      const k = kernel('v5.10');
      memfd(k);
      k.run(k.addSeals({ file: 'fd', seals: [seal] }));
      expect(code(() => k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'rw' }))), seal).toBe('EPERM');
      expect(code(() => k.run(k.mmap({ file: 'fd', length: PAGE, write: true, as: 'priv' }))), seal).toBeNull();
    }
  });

  it('read-only MAP_SHARED after F_SEAL_WRITE: EPERM until v6.6, allowed without VM_MAYWRITE from v6.7', () => {
    const got: Record<string, string | null> = {};
    for (const v of ['v5.4', 'v6.6', 'v6.15', 'latest']) {
      const k = kernel(v);
      memfd(k);
      k.run(k.addSeals({ file: 'fd', seals: ['write'] }));
      got[v] = code(() => k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, as: 'ro' })));
      if (got[v] === null) {
        expect(vma(k, 'ro').flags.nomaywrite).toBe(true);
        expect(code(() => k.run(k.mprotect({ map: 'ro', write: true })))).toBe('EACCES');
        expect(vma(k, 'ro').flags.write).toBe(false);
      }
    }
    expect(got).toEqual({ 'v5.4': 'EPERM', 'v6.6': 'EPERM', 'v6.15': null, latest: null });
  });

  it('F_SEAL_FUTURE_WRITE: a read-only MAP_SHARED mapping is allowed in every release, and cannot become writable', () => {
    for (const v of ['v5.4', 'latest']) {
      const k = kernel(v);
      memfd(k);
      k.run(k.addSeals({ file: 'fd', seals: ['future-write'] }));
      k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, as: 'ro' }));
      expect(code(() => k.run(k.mprotect({ map: 'ro', write: true }))), v).toBe('EACCES');
      // a write pin of it is EFAULT like any read-only shared mapping's (check_vma_flags)
      expect(code(() => k.run(k.gup({ map: 'ro', page: 0, write: true, as: 'p' }, true))), v).toBe('EFAULT');
    }
  });

  it('a read-only shared mapping made before any seal keeps VM_MAYWRITE: mprotect(PROT_WRITE) works', () => {
    const k = kernel();
    memfd(k);
    k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, as: 'ro' }));
    k.run(k.mprotect({ map: 'ro', write: true }));
    expect(vma(k, 'ro').flags.write).toBe(true);
  });

  it('punch hole and MADV_REMOVE are EPERM under either write seal (shmem_fallocate)', () => {
    for (const seal of ['write', 'future-write'] as const) {
      const k = kernel();
      memfd(k);
      k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, as: 'rw' }));
      k.run(k.write({ map: 'rw', page: 0, data: 'kept' }));
      if (seal === 'write') {
        k.run(k.munmap({ map: 'rw' }));
        k.run(k.addSeals({ file: 'fd', seals: [seal] }));
      } else {
        k.run(k.addSeals({ file: 'fd', seals: [seal] }));
        // MADV_REMOVE needs a shared writable VMA: only one made before F_SEAL_FUTURE_WRITE can try
        expect(code(() => k.run(k.madvise({ map: 'rw', advice: 'remove' })))).toBe('EPERM');
      }
      expect(code(() => k.run(k.punchHole({ file: 'fd', offset: 0, length: 2 * PAGE }))), seal).toBe('EPERM');
      expect(k.pfnOf({ file: 'fd', page: 0 })).not.toBeNull();
    }
  });
});

describe('F_SEAL_FUTURE_WRITE and private mappings before v5.5 (05d351102dbe)', () => {
  it('v5.4: a private mapping loses VM_MAYWRITE, so fork() does not COW it and the child\'s write reaches the parent', () => {
    const reads: Record<string, string> = {};
    for (const v of ['v5.4', 'v5.10']) {
      const k = kernel(v);
      memfd(k);
      k.run(k.addSeals({ file: 'fd', seals: ['future-write'] }));
      k.run(k.mmap({ file: 'fd', length: PAGE, write: true, as: 'priv' }));
      expect(vma(k, 'priv').flags.nomaywrite ?? false, v).toBe(v === 'v5.4');
      k.run(k.write({ map: 'priv', page: 0, data: '22' }));
      k.run(k.fork({ as: 'child' }));
      // not a COW mapping: the parent's PTE stays writable and the child gets a writable one too
      expect(k.isWritableIn({ map: 'priv', page: 0 }), v).toBe(v === 'v5.4');
      k.run(k.write({ map: 'priv', page: 0, data: '33', process: 'child' }));
      reads[v] = k.run(k.read({ map: 'priv', page: 0 }));
    }
    expect(reads).toEqual({ 'v5.4': '33', 'v5.10': '22' });
  });

  it('v5.4: mprotect(PROT_WRITE) of a read-only private mapping is EACCES, and FOLL_FORCE cannot write it', () => {
    const k = kernel('v5.4');
    memfd(k);
    k.run(k.addSeals({ file: 'fd', seals: ['future-write'] }));
    k.run(k.mmap({ file: 'fd', length: PAGE, as: 'ro' }));
    expect(code(() => k.run(k.mprotect({ map: 'ro', write: true })))).toBe('EACCES');
    // /proc/PID/mem (FOLL_FORCE|FOLL_WRITE): check_vma_flags() wants a COW mapping (VM_MAYWRITE) -> -EFAULT, EIO to the writer
    expect(code(() => k.run(k.procMemWrite({ map: 'ro', page: 0, data: 'x' })))).toBe('EIO');
    // from v5.5 the same mapping keeps VM_MAYWRITE: FOLL_FORCE COWs the page (an anon copy)
    const k2 = kernel('v5.10');
    k2.run(k2.memfdCreate({ file: 'fd', size: PAGE, sealing: true }));
    k2.run(k2.addSeals({ file: 'fd', seals: ['future-write'] }));
    k2.run(k2.mmap({ file: 'fd', length: PAGE, as: 'ro' }));
    k2.run(k2.procMemWrite({ map: 'ro', page: 0, data: 'x' }));
    expect(k2.isAnon(k2.pfnOf({ map: 'ro', page: 0 })!)).toBe(true);
  });

  it('a child\'s copy of a shared mapping counts in i_mmap_writable: F_SEAL_WRITE is EBUSY until the child unmaps it too', () => {
    const k = kernel();
    memfd(k);
    k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'rw' }));
    k.run(k.fork({ as: 'child' }));
    k.run(k.munmap({ map: 'rw' }));
    expect(code(() => k.run(k.addSeals({ file: 'fd', seals: ['write'] })))).toBe('EBUSY');
    k.run(k.munmap({ map: 'rw', process: 'child' }));
    k.run(k.addSeals({ file: 'fd', seals: ['write'] }));
    expect(k.getSeals('fd')).toBe(8);
  });
});

describe('F_SEAL_EXEC (v6.3)', () => {
  it('is EINVAL before v6.3; on a memfd with exec bits it brings SHRINK, GROW, WRITE and FUTURE_WRITE: 32|2|4|8|16 = 62', () => {
    const old = kernel('v6.1');
    memfd(old);
    expect(code(() => old.run(old.addSeals({ file: 'fd', seals: ['exec'] })))).toBe('EINVAL');
    const k = kernel('v6.6');
    memfd(k);
    k.run(k.addSeals({ file: 'fd', seals: ['exec'] }));
    expect(k.getSeals('fd')).toBe(62);
    expect(code(() => k.run(k.truncate({ file: 'fd', size: PAGE })))).toBe('EPERM');
    expect(code(() => k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'rw' })))).toBe('EPERM');
  });

  it('until v7.1 the implied F_SEAL_WRITE skipped its checks: a writable shared mapping and a pin stay (3b041514cb6e fixed it)', () => {
    const got: Record<string, string | null> = {};
    for (const v of ['v6.15', 'latest']) {
      const k = kernel(v);
      memfd(k);
      k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'rw' }));
      k.run(k.write({ map: 'rw', page: 0, data: 'x' }));
      got[v] = code(() => k.run(k.addSeals({ file: 'fd', seals: ['exec'] })));
      if (got[v] === null) {
        // "write-sealed", and the old mapping still writes the file
        expect(k.getSeals('fd') & F_SEAL_WRITE).toBe(F_SEAL_WRITE);
        k.run(k.write({ map: 'rw', page: 0, data: 'changed' }));
        expect(k.isWritableIn({ map: 'rw', page: 0 })).toBe(true);
      } else expect(k.getSeals('fd')).toBe(0);
    }
    expect(got).toEqual({ 'v6.15': null, latest: 'EBUSY' });
  });
});

describe('F_SEAL_SHRINK and F_SEAL_GROW (shmem_setattr, shmem_fallocate)', () => {
  it('ftruncate: a smaller size is EPERM under SHRINK, a larger one under GROW, the same size never', () => {
    const k = kernel();
    memfd(k, true, 4);
    k.run(k.addSeals({ file: 'fd', seals: ['shrink'] }));
    expect(code(() => k.run(k.truncate({ file: 'fd', size: 2 * PAGE })))).toBe('EPERM');
    k.run(k.truncate({ file: 'fd', size: 8 * PAGE }));
    k.run(k.addSeals({ file: 'fd', seals: ['grow'] }));
    expect(code(() => k.run(k.truncate({ file: 'fd', size: 9 * PAGE })))).toBe('EPERM');
    expect(code(() => k.run(k.truncate({ file: 'fd', size: 8 * PAGE })))).toBeNull();
  });

  it('i_size is compared in bytes: a shrink inside the last page is still a shrink (8192 -> 8000 bytes, two pages either way)', () => {
    const k = kernel();
    memfd(k, true, 2);
    k.run(k.addSeals({ file: 'fd', seals: ['shrink', 'grow'] }));
    expect(code(() => k.run(k.truncate({ file: 'fd', size: 8000 })))).toBe('EPERM');
    // fallocate(0, 8000, 100): ends at 8100 <= 8192, inside i_size: allowed under GROW
    k.run(k.fallocate({ file: 'fd', offset: 8000, length: 100 }));
    expect(code(() => k.run(k.fallocate({ file: 'fd', offset: 8000, length: 193 })))).toBe('EPERM');
  });

  it('fallocate past i_size is EPERM under GROW; inside it is allowed', () => {
    const k = kernel();
    memfd(k, true, 4);
    k.run(k.addSeals({ file: 'fd', seals: ['grow'] }));
    expect(code(() => k.run(k.fallocate({ file: 'fd', offset: 2 * PAGE, length: 3 * PAGE })))).toBe('EPERM');
    k.run(k.fallocate({ file: 'fd', offset: 0, length: 4 * PAGE }));
    // the four pages are in the cache now, each with the cache's reference only
    expect(k.refcount(k.pfnOf({ file: 'fd', page: 3 })!)).toBe(1);
  });

  it('a truncate refused by a seal unmaps nothing', () => {
    const k = kernel();
    memfd(k, true, 2);
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, as: 'rw' }));
    k.run(k.write({ map: 'rw', page: 1, data: 'x' }));
    k.run(k.addSeals({ file: 'fd', seals: ['shrink'] }));
    expect(code(() => k.run(k.truncate({ file: 'fd', size: PAGE })))).toBe('EPERM');
    expect(k.isMappedIn({ map: 'rw', page: 1 })).toBe(true);
  });
});
