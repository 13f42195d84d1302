import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';

// System V shared memory (ipc/shm.ts) and hugetlb page-size selection (hstate_sizelog()). Counts
// reasoned from ipc/shm.c and mm/hugetlb.c: newseg() -> hugetlb_file_setup() reserves every huge
// page of a SHM_HUGETLB segment at shmget (hugetlb_reserve_pages() on the inode's resv_map: Rsvd
// up, Free unchanged: HugePages_Free counts reserved pages); a fault consumes a reservation (Rsvd
// down, Free down); the segment's destruction (IPC_RMID with nothing attached, or the last detach
// after it) evicts the file: its pages go back (Free up) with what was still reserved (Rsvd down).

const MiB = 2 ** 20;
const HPAGE = 2 * MiB;
const NR = 512; // 4 KiB pages in a 2 MiB huge page

function kernel(pool = 4): Kernel {
  const k = createKernel({ arch: testArch(), kernel: 'latest' });
  k.run(k.hugetlbPool({ size: HPAGE, pages: pool }));
  return k;
}

const counters = (k: Kernel) => k.hugetlb.counters(HPAGE);

describe('shmget(SHM_HUGETLB): the reservation is taken at shmget, the pages go with the segment', () => {
  it('reserves every huge page of the segment (size rounded up to the huge page) before any attach', () => {
    const k = kernel();
    // 3 MiB rounds up to 2 huge pages (newseg(): hugesize = ALIGN(size, huge_page_size(hs)))
    k.run(k.shmget({ as: 'seg', size: 3 * MiB, hugetlb: HPAGE }));
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 2 });
    const vma = k.run(k.shmat({ shm: 'seg', as: 'm' }));
    expect(vma.pages).toBe(2 * NR); // do_shmat() maps the file's i_size, the rounded size
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 2 }); // the mmap finds the file's pages reserved already
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    expect(counters(k)).toEqual({ nr: 4, free: 3, resv: 1 });
  });

  it('is ENOMEM when the pool has too few free unreserved pages, and nothing is left behind', () => {
    const k = kernel(2);
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'other' })); // 1 reserved
    expect(code(() => k.run(k.shmget({ as: 'seg', size: 2 * HPAGE, hugetlb: HPAGE })))).toBe('ENOMEM');
    expect(counters(k)).toEqual({ nr: 2, free: 2, resv: 1 });
    k.run(k.shmget({ as: 'seg', size: HPAGE, hugetlb: HPAGE }));
    expect(counters(k)).toEqual({ nr: 2, free: 2, resv: 2 });
  });

  it('IPC_RMID with nothing attached destroys the segment at once: its reservation returns', () => {
    const k = kernel();
    k.run(k.shmget({ as: 'seg', size: 2 * HPAGE, hugetlb: HPAGE }));
    k.run(k.shmctl({ shm: 'seg', cmd: 'IPC_RMID' }));
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 0 });
    expect(code(() => k.run(k.shmat({ shm: 'seg', as: 'm' })))).toBe('EINVAL');
  });

  it('a detach without IPC_RMID keeps the segment and its data; IPC_RMID then destroys it', () => {
    const k = kernel();
    k.run(k.shmget({ as: 'seg', size: 2 * HPAGE, hugetlb: HPAGE }));
    k.run(k.shmat({ shm: 'seg', as: 'a' }));
    k.run(k.write({ map: 'a', page: NR, data: 'kept' }));
    k.run(k.shmdt({ map: 'a' }));
    expect(counters(k)).toEqual({ nr: 4, free: 3, resv: 1 });
    k.run(k.shmat({ shm: 'seg', as: 'b' }));
    expect(k.run(k.read({ map: 'b', page: NR }))).toBe('kept');
    k.run(k.shmdt({ map: 'b' }));
    k.run(k.shmctl({ shm: 'seg', cmd: 'IPC_RMID' }));
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 0 });
  });

  it('after IPC_RMID the segment lives while attached (a fork inherits the attach) and goes with the last detach', () => {
    const k = kernel();
    k.run(k.shmget({ as: 'seg', size: HPAGE, hugetlb: HPAGE }));
    k.run(k.shmat({ shm: 'seg', as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'x' }));
    k.run(k.fork({ as: 'child' }));
    k.run(k.shmctl({ shm: 'seg', cmd: 'IPC_RMID' }));
    k.run(k.shmdt({ map: 'm' }));
    // the child's VMA still counts in shm_nattch: the page stays, and the child sees the data
    expect(counters(k)).toEqual({ nr: 4, free: 3, resv: 0 });
    expect(k.run(k.read({ map: 'm', page: 0, process: 'child' }))).toBe('x');
    k.run(k.exit({ process: 'child' }));
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 0 });
  });

  it('IPC_RMID makes the key private: shmget of that key then makes a new segment', () => {
    const k = kernel();
    k.run(k.shmget({ as: 'one', key: 2, size: HPAGE, hugetlb: HPAGE }));
    k.run(k.shmat({ shm: 'one', as: 'm1' }));
    k.run(k.write({ map: 'm1', page: 0, data: 'first' }));
    // ipcget_public(): the existing segment of key 2, no new reservation
    k.run(k.shmget({ as: 'same', key: 2, size: HPAGE, hugetlb: HPAGE }));
    expect(counters(k).resv).toBe(0);
    k.run(k.shmat({ shm: 'same', as: 'm2' }));
    expect(k.run(k.read({ map: 'm2', page: 0 }))).toBe('first');
    // shm_more_checks(): a larger size than the segment's is EINVAL
    expect(code(() => k.run(k.shmget({ as: 'bigger', key: 2, size: 2 * HPAGE, hugetlb: HPAGE })))).toBe('EINVAL');
    k.run(k.shmctl({ shm: 'one', cmd: 'IPC_RMID' }));
    k.run(k.shmget({ as: 'fresh', key: 2, size: HPAGE, hugetlb: HPAGE }));
    expect(counters(k)).toEqual({ nr: 4, free: 3, resv: 1 });
  });

  it('shmdt of a mapping that is no attach is EINVAL', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'plain' }));
    expect(code(() => k.run(k.shmdt({ map: 'plain' })))).toBe('EINVAL');
  });
});

describe('shmget without SHM_HUGETLB: a tmpfs segment', () => {
  it('two attaches share its pages; the last detach after IPC_RMID frees them', () => {
    const k = kernel();
    k.run(k.shmget({ as: 'seg', size: 6000 }));
    const a = k.run(k.shmat({ shm: 'seg', as: 'a' }));
    expect(a.pages).toBe(2); // i_size 6000 bytes: two base pages mapped
    k.run(k.shmat({ shm: 'seg', as: 'b', readonly: true }));
    k.run(k.write({ map: 'a', page: 1, data: 'shared' }));
    expect(k.run(k.read({ map: 'b', page: 1 }))).toBe('shared');
    expect(code(() => k.run(k.write({ map: 'b', page: 1, data: 'no' })))).toBe('SIGSEGV');
    const pfn = k.pfnOf({ map: 'a', page: 1 })!;
    // the page cache's reference and one per mapping
    expect(k.refcount(pfn)).toBe(3);
    k.run(k.shmctl({ shm: 'seg', cmd: 'IPC_RMID' }));
    k.run(k.shmdt({ map: 'a' }));
    expect(k.refcount(pfn)).toBe(2);
    k.run(k.shmdt({ map: 'b' }));
    expect(k.refcount(pfn)).toBe(0);
  });
});

describe('hstate_sizelog(): the huge page size of MAP_HUGETLB, SHM_HUGETLB and MFD_HUGETLB', () => {
  it('an unsupported size is EINVAL from mmap and shmget (checked first), ENODEV from memfd_create (hugetlb_file_setup())', () => {
    const k = kernel();
    expect(code(() => k.run(k.mmap({ anon: true, hugetlb: MiB, length: MiB, write: true, as: 'm' })))).toBe('EINVAL');
    expect(code(() => k.run(k.shmget({ as: 's', size: MiB, hugetlb: MiB })))).toBe('EINVAL');
    expect(code(() => k.run(k.memfdCreate({ file: 'f', size: 0, hugetlb: MiB })))).toBe('ENODEV');
    // the default size works everywhere: MAP_HUGETLB without size bits on x86 is 2 MiB
    k.run(k.mmap({ anon: true, hugetlb: 'default', length: 1, write: true, as: 'd' }));
    expect(counters(k).resv).toBe(1);
  });
});
