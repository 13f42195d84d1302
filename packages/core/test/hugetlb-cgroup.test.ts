import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';

// The hugetlb cgroup controller (mm/hugetlbcg.ts) through the kernel API, with the numbers
// tools/testing/selftests/mm/charge_reserved_hugetlb.sh and hugetlb_reparenting_test.sh assert
// (2 MiB pages: MB=2 in the scripts, so their sizes are pages * 2 MiB in bytes).

const MiB = 2 ** 20;
const HPAGE = 2 * MiB;
const NR = 512; // base pages per huge page

const file = (name: string) => `hugetlb.2MB.${name}`;
const read = (k: Kernel, cg: string, name: string) => k.hugetlbCgroups.read(cg, file(name));
const usage = (k: Kernel, cg: string) => Number(read(k, cg, 'usage_in_bytes'));
const rsvd = (k: Kernel, cg: string) => Number(read(k, cg, 'rsvd.usage_in_bytes'));

/** write_to_hugetlbfs's options: -o (populate), -w (write), -m method, -r (private), -n (MAP_NORESERVE) */
interface Case {
  readonly populate: boolean;
  readonly method: 0 | 1 | 2;
  readonly priv: boolean;
  readonly reserve: boolean;
}

/** run_test()'s setup: nr_hugepages, setup_cgroup() (v1 files), the writer moved into it. */
function setup(version: string, limit: number, rsvdLimit: number, nrHugepages = 10): Kernel {
  const k = createKernel({ arch: testArch(), kernel: version });
  k.run(k.hugetlbPool({ size: HPAGE, pages: nrHugepages }));
  k.run(k.hugetlbCgroups.mount({ version: 1 }));
  k.run(k.hugetlbCgroups.mkdir({ cgroup: 'hugetlb_cgroup_test' }));
  k.run(k.hugetlbCgroups.write({ cgroup: 'hugetlb_cgroup_test', file: file('limit_in_bytes'), value: limit * HPAGE }));
  if (version !== 'v5.4') k.run(k.hugetlbCgroups.write({ cgroup: 'hugetlb_cgroup_test', file: file('rsvd.limit_in_bytes'), value: rsvdLimit * HPAGE }));
  k.run(k.spawn({ as: 'writer' }));
  k.run(k.hugetlbCgroups.attach({ cgroup: 'hugetlb_cgroup_test', process: 'writer' }));
  return k;
}

/** write_to_hugetlbfs -s <pages huge pages> with the case's options, run by 'writer'. */
function writeToHugetlbfs(k: Kernel, c: Case, pages: number, write: boolean): void {
  const length = pages * HPAGE;
  const opts = { process: 'writer', length, write: true, populate: c.populate, noreserve: !c.reserve, as: 'ptr' };
  if (c.method === 0) {
    // open(path, O_CREAT | O_RDWR) on the hugetlbfs mount: an empty file of 2 MiB pages
    k.run(k.memfdCreate({ file: 'test', size: 0, hugetlb: HPAGE }));
    k.run(k.mmap({ ...opts, file: 'test', shared: !c.priv }));
  } else if (c.method === 1) {
    k.run(k.mmap({ ...opts, anon: true, hugetlb: HPAGE }));
  } else {
    k.run(k.shmget({ as: 'shm', size: length, hugetlb: 'default', process: 'writer' }));
    k.run(k.shmat({ shm: 'shm', as: 'ptr', process: 'writer' }));
  }
  // memset(ptr, 1, size): one store per huge page is what the charges see
  if (write) for (let i = 0; i < pages; i++) k.run(k.write({ map: 'ptr', page: i * NR, data: '1', process: 'writer' }));
}

/** cleanup_hugetlb_memory(): the writer killed (SHM: its SIGINT handler detaches and removes the segment), rm -rf /mnt/huge/*. */
function cleanup(k: Kernel, c: Case): void {
  if (c.method === 2) {
    k.run(k.shmdt({ map: 'ptr', process: 'writer' }));
    k.run(k.shmctl({ shm: 'shm', cmd: 'IPC_RMID' }));
  }
  k.run(k.exit({ process: 'writer' }));
  // rm of a file nothing maps or opens: evicted, remove_inode_hugepages(0, LLONG_MAX) as truncate to 0
  if (c.method === 0) k.run(k.truncate({ file: 'test', size: 0 }));
}

/** The loop of charge_reserved_hugetlb.sh: the cases it runs (method 1 shared, populated or MAP_NORESERVE SHM skipped). */
const CASES: Case[] = [];
for (const populate of [false, true]) {
  for (const method of [0, 1, 2] as const) {
    for (const priv of [false, true]) {
      for (const reserve of [true, false]) {
        if (method === 1 && !priv) continue;
        if (method === 2 && (populate || !reserve)) continue;
        CASES.push({ populate, method, priv, reserve });
      }
    }
  }
}
const label = (c: Case) => `method=${c.method}${c.priv ? ' -r' : ''}${c.populate ? ' -o' : ''}${c.reserve ? '' : ' -n'}`;

describe('charge_reserved_hugetlb.sh (cgroup v1 files)', () => {
  it('runs 14 combinations', () => {
    expect(CASES).toHaveLength(14);
  });

  for (const c of CASES) {
    it(`normal case, ${label(c)}: 5 pages under limits of 10`, () => {
      const k = setup('latest', 10, 10);
      writeToHugetlbfs(k, c, 5, false);
      // "Reserved memory charged to hugetlb cgroup": faulted pages only with -o
      expect(usage(k, 'hugetlb_cgroup_test')).toBe(c.populate ? 5 * HPAGE : 0);
      // the reservation, or with -n the pages -o faulted outside any reservation
      expect(rsvd(k, 'hugetlb_cgroup_test')).toBe(c.reserve || c.populate ? 5 * HPAGE : 0);
      cleanup(k, c);
      expect(usage(k, 'hugetlb_cgroup_test')).toBe(0);
      expect(rsvd(k, 'hugetlb_cgroup_test')).toBe(0);
    });

    it(`normal case with write, ${label(c)}: 5 pages under limits of 5`, () => {
      const k = setup('latest', 5, 5);
      writeToHugetlbfs(k, c, 5, true);
      expect(usage(k, 'hugetlb_cgroup_test')).toBe(5 * HPAGE);
      expect(rsvd(k, 'hugetlb_cgroup_test')).toBe(5 * HPAGE);
      cleanup(k, c);
      expect(usage(k, 'hugetlb_cgroup_test')).toBe(0);
      expect(rsvd(k, 'hugetlb_cgroup_test')).toBe(0);
    });
  }

  it('a private mapping keeps its reservation charged while faulted; munmap gives it back', () => {
    const k = setup('latest', 10, 10);
    writeToHugetlbfs(k, { populate: false, method: 1, priv: true, reserve: true }, 3, true);
    // hugetlb_vm_op_close() uncharges the VMA's whole range, faulted or not
    expect(rsvd(k, 'hugetlb_cgroup_test')).toBe(3 * HPAGE);
    k.run(k.munmap({ map: 'ptr', process: 'writer' }));
    expect([usage(k, 'hugetlb_cgroup_test'), rsvd(k, 'hugetlb_cgroup_test')]).toEqual([0, 0]);
  });

  it('more than reservation (dead code after the loop\'s continue): mmap of 5 pages over a rsvd limit of 2 is ENOMEM, nothing charged', () => {
    const k = setup('latest', 10, 2);
    expect(code(() => writeToHugetlbfs(k, { populate: false, method: 1, priv: true, reserve: true }, 5, false))).toBe('ENOMEM');
    expect(rsvd(k, 'hugetlb_cgroup_test')).toBe(0);
    expect(read(k, 'hugetlb_cgroup_test', 'rsvd.failcnt')).toBe('1');
    expect(k.hugetlb.counters(HPAGE).resv).toBe(0);
  });

  it('more than cgroup limit (dead code too): the third write under a limit of 2 pages is SIGBUS', () => {
    const k = setup('latest', 2, 10);
    writeToHugetlbfs(k, { populate: false, method: 1, priv: true, reserve: true }, 5, false);
    k.run(k.write({ map: 'ptr', page: 0, data: '1', process: 'writer' }));
    k.run(k.write({ map: 'ptr', page: NR, data: '1', process: 'writer' }));
    expect(code(() => k.run(k.write({ map: 'ptr', page: 2 * NR, data: '1', process: 'writer' })))).toBe('SIGBUS');
    expect(usage(k, 'hugetlb_cgroup_test')).toBe(2 * HPAGE);
    expect(read(k, 'hugetlb_cgroup_test', 'failcnt')).toBe('1');
    // the refused page went back: 10 - 2 faulted, the 3 reservations left still held
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 10, free: 8, resv: 3 });
  });

  it('v5.4 has no rsvd files, and mmap charges nothing', () => {
    const k = setup('v5.4', 10, 10);
    expect(code(() => read(k, 'hugetlb_cgroup_test', 'rsvd.usage_in_bytes'))).toBe('ENOENT');
    expect(code(() => k.run(k.hugetlbCgroups.write({ cgroup: 'hugetlb_cgroup_test', file: file('rsvd.limit_in_bytes'), value: HPAGE })))).toBe('ENOENT');
    writeToHugetlbfs(k, { populate: true, method: 1, priv: true, reserve: false }, 5, false);
    expect(usage(k, 'hugetlb_cgroup_test')).toBe(5 * HPAGE);
  });

  it('cgroup v2 names the files max / current / rsvd.current and has none on the root', () => {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    k.run(k.hugetlbPool({ size: HPAGE, pages: 4 }));
    k.run(k.hugetlbCgroups.mount({ version: 2 }));
    k.run(k.hugetlbCgroups.mkdir({ cgroup: 't' }));
    expect(k.hugetlbCgroups.read('t', file('max'))).toBe('max');
    k.run(k.hugetlbCgroups.write({ cgroup: 't', file: file('rsvd.max'), value: HPAGE }));
    k.run(k.hugetlbCgroups.attach({ cgroup: 't' }));
    expect(code(() => k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: 2 * HPAGE, write: true, as: 'm' })))).toBe('ENOMEM');
    // hugetlb_event(): events and events.local of the cgroup whose task was refused
    expect(k.hugetlbCgroups.read('t', file('events'))).toBe('max 1');
    expect(code(() => k.hugetlbCgroups.read('/', file('current')))).toBe('ENOENT');
    expect(code(() => k.hugetlbCgroups.read('t', file('usage_in_bytes')))).toBe('ENOENT');
  });
});

describe('hugetlb_reparenting_test.sh', () => {
  /** write_hugetlbfs(): a helper joins the cgroup, writes and populates 25 pages of a file, exits. */
  function writeFile(k: Kernel, cg: string, name: string, proc: string): void {
    k.run(k.spawn({ as: proc }));
    k.run(k.hugetlbCgroups.attach({ cgroup: cg, process: proc }));
    k.run(k.memfdCreate({ file: name, size: 0, hugetlb: HPAGE }));
    k.run(k.mmap({ process: proc, file: name, length: 25 * HPAGE, shared: true, write: true, populate: true, as: `${proc}_m` }));
    k.run(k.exit({ process: proc }));
  }

  function setup(): Kernel {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    k.run(k.hugetlbPool({ size: HPAGE, pages: 100 }));
    k.run(k.hugetlbCgroups.mount({ version: 1 }));
    k.run(k.hugetlbCgroups.mkdir({ cgroup: 'a' }));
    k.run(k.hugetlbCgroups.mkdir({ cgroup: 'a/b' }));
    return k;
  }

  it('parent and child usage, then rmdir of the child moves its pages to the parent', () => {
    const k = setup();
    const size = 25 * HPAGE;
    writeFile(k, 'a', 'test', 'w1');
    expect([usage(k, 'a'), usage(k, 'a/b')]).toEqual([size, 0]);
    writeFile(k, 'a/b', 'test2', 'w2');
    expect([usage(k, 'a'), usage(k, 'a/b')]).toEqual([2 * size, size]);
    k.run(k.hugetlbCgroups.rmdir({ cgroup: 'a/b' }));
    expect(usage(k, 'a')).toBe(2 * size);
    // the reservations of test2's regions stay charged to the removed a/b, so to a as well
    expect(rsvd(k, 'a')).toBe(2 * size);
    k.run(k.truncate({ file: 'test', size: 0 }));
    k.run(k.truncate({ file: 'test2', size: 0 }));
    expect([usage(k, 'a'), rsvd(k, 'a'), usage(k, '/')]).toEqual([0, 0, 0]);
  });

  it('charge, rmdir, uncharge: the pages of a removed cgroup go to the root and leave with the file', () => {
    const k = setup();
    k.run(k.hugetlbCgroups.mkdir({ cgroup: 'test1' }));
    writeFile(k, 'test1', 'test', 'w1');
    k.run(k.hugetlbCgroups.rmdir({ cgroup: 'test1' }));
    k.run(k.hugetlbCgroups.mkdir({ cgroup: 'test1' }));
    expect([usage(k, 'test1'), usage(k, '/')]).toEqual([0, 25 * HPAGE]);
    k.run(k.truncate({ file: 'test', size: 0 }));
    expect([usage(k, '/'), rsvd(k, '/')]).toEqual([0, 0]);
  });

  it('rmdir is EBUSY while a process is in the cgroup or it has children', () => {
    const k = setup();
    expect(code(() => k.run(k.hugetlbCgroups.rmdir({ cgroup: 'a' })))).toBe('EBUSY');
    k.run(k.hugetlbCgroups.attach({ cgroup: 'a/b' }));
    expect(code(() => k.run(k.hugetlbCgroups.rmdir({ cgroup: 'a/b' })))).toBe('EBUSY');
  });
});
