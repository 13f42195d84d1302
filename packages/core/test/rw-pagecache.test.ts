import { describe, expect, it } from 'vitest';
import { createKernel, Monitor, type Kernel } from '../src/index.js';
import { parseScenario } from '../src/scenario/load.js';
import { testArch } from '../src/testing.js';
import { code, errorOf } from './vm-helpers.js';

// pread(2) / pwrite(2) of page-cache files (fs/rw.ts): a memfd (shmem_file_read_iter /
// generic_perform_write via shmem_write_begin), a disk tmpfile (filemap_read), secretmem and
// hugetlbfs refusals, with the user buffer in anonymous memory or in a mapping of the same file.
// The copies are user accesses: the buffer is faulted in (write fault for a read's destination,
// read fault for a write's source) and never GUPed.

const PAGE = 4096;

function kernel(version = 'latest'): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), kernel: version });
  return { k, m: new Monitor(k) };
}

/** An anonymous private read-write buffer of `pages` pages named `buf`. */
function anonBuffer(k: Kernel, pages: number, as = 'buf'): void {
  k.run(k.mmap({ anon: true, length: pages * PAGE, write: true, as }));
}

describe('pread/pwrite of a memfd', () => {
  it('pwrite copies the buffer into the page cache and extends i_size page by page; pread reads it back into another buffer', () => {
    const { k, m } = kernel();
    k.run(k.memfdCreate({ file: 'f', size: 0 }));
    anonBuffer(k, 2);
    k.run(k.write({ map: 'buf', page: 0, data: 'A' }));
    k.run(k.write({ map: 'buf', page: 1, data: 'B' }));
    // two pages at offset one page: i_size 0 -> 3 pages (generic_write_end's i_size_write), page 0 a hole
    expect(k.run(k.pwrite({ file: 'f', offset: PAGE, length: 2 * PAGE, map: 'buf' }))).toBe(2 * PAGE);
    expect(k.pageCache.named('f')!.size).toBe(3 * PAGE);
    // the hole is not filled: shmem_write_begin allocated folios 1 and 2 only
    expect(k.pfnOf({ file: 'f', page: 0 })).toBeNull();
    const pfn1 = k.pfnOf({ file: 'f', page: 1 })!;
    // the cache's own reference only: write_begin's reference was put at write_end
    expect(k.refcount(pfn1)).toBe(1);
    anonBuffer(k, 3, 'dst');
    // three pages from 0: the hole reads as zeroes (SGP_READ: nothing allocated), then A, B
    expect(k.run(k.pread({ file: 'f', offset: 0, length: 3 * PAGE, map: 'dst' }))).toBe(3 * PAGE);
    expect(k.pfnOf({ file: 'f', page: 0 })).toBeNull();
    expect(k.run(k.read({ map: 'dst', page: 0 }))).toBe('');
    expect(k.run(k.read({ map: 'dst', page: 1 }))).toBe('A');
    expect(k.run(k.read({ map: 'dst', page: 2 }))).toBe('B');
    // the buffer pages are the process's own anonymous pages (copy_to_user faulted them in), not the cache's
    expect(k.pfnOf({ map: 'dst', page: 1 })).not.toBe(pfn1);
    expect(k.isAnon(k.pfnOf({ map: 'dst', page: 1 })!)).toBe(true);
    expect(m.violations).toEqual([]);
  });

  it('a read stops at i_size: 4 pages asked of a 2-page file return 2 pages (8192 bytes); at or past i_size, 0', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'f', size: 2 * PAGE, fallocate: true }));
    anonBuffer(k, 4);
    expect(k.run(k.pread({ file: 'f', length: 4 * PAGE, map: 'buf' }))).toBe(2 * PAGE);
    expect(k.run(k.pread({ file: 'f', offset: 2 * PAGE, length: PAGE, map: 'buf' }))).toBe(0);
    // pages 2 and 3 of the buffer were never touched
    expect(k.pfnOf({ map: 'buf', page: 2 })).toBeNull();
  });

  it('a buffer that runs into a PROT_READ page: pread returns the pages before it, EFAULT when it is the first', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'f', size: 2 * PAGE, fallocate: true }));
    anonBuffer(k, 2);
    k.run(k.mprotect({ map: 'buf', write: false, offset: PAGE, length: PAGE }));
    // copy_folio_to_iter() of page 1 faults (access_error: no VM_WRITE): filemap_read returns already_read
    expect(k.run(k.pread({ file: 'f', length: 2 * PAGE, map: 'buf' }))).toBe(PAGE);
    expect(code(() => k.run(k.pread({ file: 'f', length: PAGE, map: 'buf', page: 1 })))).toBe('EFAULT');
  });

  it('the source of a pwrite is read-faulted: a MAP_PRIVATE mapping of the same memfd is copied onto the file at another offset', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'f', size: 2 * PAGE }));
    k.run(k.mmap({ file: 'f', length: 2 * PAGE, write: true, as: 'm' }));
    // a private store COWs page 1: the file keeps zeroes there, the buffer holds 'X'
    k.run(k.write({ map: 'm', page: 1, data: 'X' }));
    expect(k.run(k.pwrite({ file: 'f', offset: 0, length: PAGE, map: 'm', page: 1 }))).toBe(PAGE);
    // file page 0 now holds X; the mapping's page 0 was never faulted, so a load reads the file
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('X');
    expect(k.pageCache.named('f')!.size).toBe(2 * PAGE);
  });

  it('seals: F_SEAL_WRITE refuses any pwrite (EPERM), F_SEAL_GROW one that ends past i_size; pread is allowed', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'f', size: PAGE, sealing: true }));
    anonBuffer(k, 2);
    k.run(k.addSeals({ file: 'f', seals: ['grow'] }));
    expect(code(() => k.run(k.pwrite({ file: 'f', offset: PAGE, length: PAGE, map: 'buf' })))).toBe('EPERM');
    expect(k.run(k.pwrite({ file: 'f', offset: 0, length: PAGE, map: 'buf' }))).toBe(PAGE);
    k.run(k.addSeals({ file: 'f', seals: ['write'] }));
    expect(code(() => k.run(k.pwrite({ file: 'f', offset: 0, length: PAGE, map: 'buf' })))).toBe('EPERM');
    expect(k.run(k.pread({ file: 'f', length: PAGE, map: 'buf' }))).toBe(PAGE);
  });

  it('O_DIRECT on tmpfs: EINVAL before v6.6 (no FMODE_CAN_ODIRECT), the buffered copy from v6.6', () => {
    for (const [version, want] of [['v6.1', 'EINVAL'], ['v6.6', null]] as const) {
      const { k } = kernel(version);
      k.run(k.memfdCreate({ file: 'f', size: PAGE, fallocate: true }));
      anonBuffer(k, 1);
      if (want) expect(code(() => k.run(k.pread({ file: 'f', length: PAGE, map: 'buf', direct: true })))).toBe(want);
      else expect(k.run(k.pread({ file: 'f', length: PAGE, map: 'buf', direct: true }))).toBe(PAGE);
    }
  });

  it('secretmem has no read_iter/write_iter and hugetlbfs no write_iter: EINVAL', () => {
    const { k } = kernel();
    anonBuffer(k, 1);
    k.run(k.memfdSecret({ file: 's', size: PAGE }));
    expect(code(() => k.run(k.pread({ file: 's', length: PAGE, map: 'buf' })))).toBe('EINVAL');
    expect(code(() => k.run(k.pwrite({ file: 's', length: PAGE, map: 'buf' })))).toBe('EINVAL');
    k.run(k.hugetlbPool({ size: 512 * PAGE, pages: 1 }));
    k.run(k.memfdCreate({ file: 'h', size: 512 * PAGE, hugetlb: 512 * PAGE }));
    expect(code(() => k.run(k.pwrite({ file: 'h', length: PAGE, map: 'buf' })))).toBe('EINVAL');
  });

  it('hugetlbfs_read_iter: a huge page not in the cache reads as zeroes without taking one from the pool; a cached one is copied from the subpage at the offset', () => {
    const { k } = kernel();
    k.run(k.hugetlbPool({ size: 512 * PAGE, pages: 2 }));
    k.run(k.memfdCreate({ file: 'h', size: 1024 * PAGE, hugetlb: 512 * PAGE }));
    anonBuffer(k, 1);
    k.run(k.write({ map: 'buf', page: 0, data: 'junk' }));
    expect(k.run(k.pread({ file: 'h', offset: 513 * PAGE, length: PAGE, map: 'buf' }))).toBe(PAGE);
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('');
    expect(k.pageCache.named('h')!.cache.size).toBe(0);
    // a store through a shared mapping at page 513 faults huge page 1 in; pread of that page copies subpage 1
    k.run(k.mmap({ file: 'h', length: 1024 * PAGE, shared: true, write: true, as: 'hm' }));
    k.run(k.write({ map: 'hm', page: 513, data: 'sub1' }));
    expect(k.run(k.pread({ file: 'h', offset: 513 * PAGE, length: PAGE, map: 'buf' }))).toBe(PAGE);
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('sub1');
    // past i_size (1024 pages): 0
    expect(k.run(k.pread({ file: 'h', offset: 1024 * PAGE, length: PAGE, map: 'buf' }))).toBe(0);
  });
});

describe('pread/pwrite of a disk tmpfile and input errors', () => {
  it('filemap_read brings the folio into the cache (refcount: the cache 1), then copies it', () => {
    const { k } = kernel();
    k.run(k.tmpfile({ file: 't', fs: 'xfs', size: 2 * PAGE }));
    anonBuffer(k, 1);
    expect(k.run(k.pread({ file: 't', offset: PAGE, length: PAGE, map: 'buf' }))).toBe(PAGE);
    const pfn = k.pfnOf({ file: 't', page: 1 })!;
    expect(pfn).not.toBeNull();
    expect(k.refcount(pfn)).toBe(1);
    // O_DIRECT would be block I/O of blocks the model does not keep for a tmpfile
    const e = errorOf(() => k.run(k.pwrite({ file: 't', length: PAGE, map: 'buf', direct: true })));
    expect((e as { unsupported: string | null }).unsupported).toMatch(/blocks are not modelled/);
  });

  it('sub-page I/O is refused as not modelled; an unmapped buffer page is EFAULT', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'f', size: PAGE, fallocate: true }));
    anonBuffer(k, 2);
    const e = errorOf(() => k.run(k.pread({ file: 'f', offset: 512, length: 512, map: 'buf' })));
    expect((e as { unsupported: string | null }).unsupported).toMatch(/part of a page is not modelled/);
    k.run(k.munmap({ map: 'buf', offset: 0, length: PAGE }));
    expect(code(() => k.run(k.pwrite({ file: 'f', length: PAGE, map: 'buf' })))).toBe('EFAULT');
  });

  it('the scenario steps parse and check their return value with bytes', () => {
    const s = parseScenario('name: t\nsteps:\n  - memfd-create: { file: f, size: 4KiB }\n  - mmap: { anon: true, length: 4KiB, write: true, as: b }\n  - pwrite: { file: f, length: 4KiB, map: b, bytes: 4096 }\n  - pread: { file: f, offset: 0, length: 4KiB, map: b, page: 0, direct: false, bytes: 4096 }\n', 't.yaml');
    expect(s.threads[0]!.steps.map((st) => st.op)).toEqual(['memfd-create', 'mmap', 'pwrite', 'pread']);
    expect(() => parseScenario('name: t\nsteps:\n  - mmap: { anon: true, length: 4KiB, write: true, as: b }\n  - pread: { file: nofile, length: 4KiB, map: b }\n', 't.yaml')).toThrow(/a file named 'nofile' is used before it is defined/);
    expect(() => parseScenario('name: t\nsteps:\n  - memfd-create: { file: f, size: 4KiB }\n  - pread: { file: f, map: b }\n', 't.yaml')).toThrow(/length/);
  });
});
