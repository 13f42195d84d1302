import { describe, expect, it } from 'vitest';
import { createKernel, PRESETS, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code, errorOf, written } from './vm-helpers.js';

// process_madvise() (mm/pmadvise.ts). Values from mm/madvise.c as read per release (comments):
// the syscall (v5.10), the CAP_SYS_NICE rule (96cfe2c0fd23, v5.12), MADV_COLLAPSE (v6.1), the
// partial-progress return (5bd009c7c9a9, v5.18), CAP_SYS_NICE only for another process (22af8caff7d1,
// v6.12) and any advice on the caller itself (v6.13).

const KiB = 1024;
const PAGE = 4 * KiB;
const RELEASES = PRESETS.map((p) => p.name);

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

type Args = Parameters<Kernel['processMadvise']>[0];
const pmadvise = (k: Kernel, a: Args): number => k.run(k.processMadvise(a));
/** 'ok <bytes>' or the errno. */
const outcome = (k: Kernel, a: Args): string => code(() => pmadvise(k, a)) ?? `ok ${pmadvise(k, a)}`;

/** A process `c` with `pages` written anonymous pages in mapping `m` (spawned: nothing shared with init), and init's pidfd `pc` on it. */
function child(k: Kernel, pages: number): number[] {
  k.run(k.spawn({ as: 'c' }));
  k.run(k.pidfdOpen({ target: 'c', as: 'pc' }));
  return written(k, 'm', pages, 'c');
}

/** init's pidfd on itself, `self` (pidfd_open(getpid(), 0)). */
const selfPidfd = (k: Kernel): void => k.run(k.pidfdOpen({ as: 'self' }));

describe('process_madvise(MADV_PAGEOUT) of another process', () => {
  it('swaps out the ranges given, one madvise() per iovec, and returns their bytes: 2 ranges of 1 and 2 pages = 3 * 4096 (v5.10 on; ENOSYS in v5.4)', () => {
    const k4 = kernel('v5.4');
    child(k4, 1);
    expect(outcome(k4, { pidfd: 'pc', ranges: [{ map: 'm' }], advice: 'pageout' })).toBe('ENOSYS');
    for (const v of RELEASES.filter((r) => r !== 'v5.4')) {
      const k = kernel(v);
      child(k, 4);
      const bytes = pmadvise(k, { pidfd: 'pc', ranges: [{ map: 'm', page: 0, pages: 1 }, { map: 'm', page: 2, pages: 2 }], advice: 'pageout' });
      // pages 0, 2, 3 swapped (each mapped by c alone: reclaim_pages() unmaps and writes them); page 1 stays
      const swapped = [0, 1, 2, 3].map((page) => k.isSwappedIn({ map: 'm', page, process: 'c' }));
      expect([bytes, swapped, k.swap.used], v).toEqual([3 * PAGE, [true, false, true, true], 3]);
    }
  });

  it('MADV_COLD is accepted from v5.10 and changes nothing the model shows (no LRU); an empty iovec counts 0 bytes', () => {
    for (const v of RELEASES.filter((r) => r !== 'v5.4')) {
      const k = kernel(v);
      child(k, 2);
      expect(pmadvise(k, { pidfd: 'pc', ranges: [{ map: 'm', page: 0, pages: 0 }, { map: 'm' }], advice: 'cold' }), v).toBe(2 * PAGE);
      expect(k.isMappedIn({ map: 'm', page: 1, process: 'c' }), v).toBe(true);
    }
  });

  it('other advices on another process: EINVAL from v5.10 on (process_madvise_behavior_valid / _remote_valid); nothing is zapped', () => {
    for (const v of RELEASES.filter((r) => r !== 'v5.4')) {
      const k = kernel(v);
      child(k, 1);
      expect([outcome(k, { pidfd: 'pc', ranges: [{ map: 'm' }], advice: 'dontneed' }), k.isMappedIn({ map: 'm', page: 0, process: 'c' })], v).toEqual(['EINVAL', true]);
    }
  });

  it('MADV_COLLAPSE: EINVAL up to v6.0 (v5.4, v5.10 presets), accepted from v6.1 (7ec952341312): 512 written pages of c become one PMD-mapped THP', () => {
    const table = Object.fromEntries(RELEASES.map((v) => {
      const k = kernel(v);
      k.run(k.spawn({ as: 'c' }));
      k.run(k.pidfdOpen({ target: 'c', as: 'pc' }));
      // a 2 MiB anonymous VMA, PMD-aligned by placement, every base page written (collapse needs no allocation of zero pages)
      k.run(k.mmap({ anon: true, length: 512 * PAGE, write: true, as: 'm', process: 'c' }));
      for (let page = 0; page < 512; page++) k.run(k.write({ map: 'm', page, data: `p${page}`, process: 'c' }));
      const r = outcome(k, { pidfd: 'pc', ranges: [{ map: 'm' }], advice: 'collapse' });
      // the level of the entry mapping page 0 afterwards: still a PTE where the call failed
      return [v, `${r} ${k.vm.lookup(k.process('c'), k.map('m', 'c').start)?.pte.level}`];
    }));
    const ok = `ok ${512 * PAGE} pmd`;
    expect(table).toEqual({ 'v5.4': 'ENOSYS pte', 'v5.10': 'EINVAL pte', 'v6.1': ok, 'v6.3': ok, 'v6.6': ok, 'v6.15': ok, latest: ok });
  });
});

describe('permission: CAP_SYS_NICE', () => {
  it('v5.10 has no CAP_SYS_NICE check (ptrace attach only); from v5.12 every call needs it: EPERM, until 22af8caff7d1 (v6.12) lets a process advise itself without it', () => {
    const table = Object.fromEntries(RELEASES.map((v) => {
      const k = kernel(v);
      child(k, 1);
      written(k, 'own', 1);
      selfPidfd(k);
      const remote = outcome(k, { pidfd: 'pc', ranges: [{ map: 'm' }], advice: 'cold', capSysNice: false });
      const self = outcome(k, { pidfd: 'self', ranges: [{ map: 'own' }], advice: 'cold', capSysNice: false });
      return [v, [remote, self]];
    }));
    const ok = `ok ${PAGE}`;
    // v5.4 has no process_madvise() at all: ENOSYS
    expect(table).toEqual({ 'v5.4': ['ENOSYS', 'ENOSYS'], 'v5.10': [ok, ok], 'v6.1': ['EPERM', 'EPERM'], 'v6.3': ['EPERM', 'EPERM'], 'v6.6': ['EPERM', 'EPERM'], 'v6.15': ['EPERM', ok], latest: ['EPERM', ok] });
  });
});

describe('the self-process rule (v6.13: "mm/madvise: unrestrict process_madvise() for current process")', () => {
  it('MADV_GUARD_INSTALL through process_madvise on the caller itself: EINVAL before (not in process_madvise_behavior_valid), 2 pages guarded in v6.15 and latest', () => {
    const table = Object.fromEntries(RELEASES.map((v) => {
      const k = kernel(v);
      written(k, 'own', 3);
      selfPidfd(k);
      const r = outcome(k, { pidfd: 'self', ranges: [{ map: 'own', page: 0, pages: 1 }, { map: 'own', page: 2, pages: 1 }], advice: 'guard-install' });
      return [v, r];
    }));
    const old = 'EINVAL';
    expect(table).toEqual({ 'v5.4': 'ENOSYS', 'v5.10': old, 'v6.1': old, 'v6.3': old, 'v6.6': old, 'v6.15': `ok ${2 * PAGE}`, latest: `ok ${2 * PAGE}` });
  });

  it('still EINVAL on another process in latest (process_madvise_remote_valid)', () => {
    const k = kernel();
    child(k, 1);
    expect(outcome(k, { pidfd: 'pc', ranges: [{ map: 'm' }], advice: 'guard-install' })).toBe('EINVAL');
  });
});

describe('errors and partial progress', () => {
  it('flags other than 0 are EINVAL; more than UIO_MAXIOV (1024) iovecs are EINVAL', () => {
    const k = kernel();
    child(k, 1);
    expect(outcome(k, { pidfd: 'pc', ranges: [{ map: 'm' }], advice: 'cold', flags: 1 })).toBe('EINVAL');
    expect(outcome(k, { pidfd: 'pc', ranges: Array.from({ length: 1025 }, () => ({ map: 'm', pages: 0 })), advice: 'cold' })).toBe('EINVAL');
    expect(outcome(k, { pidfd: 'pc', ranges: Array.from({ length: 1024 }, () => ({ map: 'm', pages: 0 })), advice: 'cold' })).toBe('ok 0');
  });

  it('a pidfd of a process that exited: ESRCH, and so is pidfd_open() of it', () => {
    const k = kernel();
    child(k, 1);
    k.run(k.exit({ process: 'c' }));
    expect(outcome(k, { pidfd: 'pc', ranges: [{ map: 'm' }], advice: 'pageout' })).toBe('ESRCH');
    expect(code(() => k.run(k.pidfdOpen({ target: 'c', as: 'late' })))).toBe('ESRCH');
  });

  it('the pidfd names the task: after exec it reaches the new mm, where the old mapping is not mapped (ENOMEM)', () => {
    const k = kernel();
    child(k, 1);
    k.run(k.exec({ process: 'c' }));
    expect(outcome(k, { pidfd: 'pc', ranges: [{ map: 'm' }], advice: 'pageout' })).toBe('ENOMEM');
    written(k, 'n', 1, 'c');
    expect(outcome(k, { pidfd: 'pc', ranges: [{ map: 'n' }], advice: 'pageout' })).toBe(`ok ${PAGE}`);
  });

  it('an unknown pidfd is an input error saying how to open one', () => {
    const k = kernel();
    written(k, 'own', 1);
    expect(String(errorOf(() => pmadvise(k, { pidfd: 'nope', ranges: [{ map: 'own' }], advice: 'cold' })))).toMatch(/unknown pidfd 'nope': open it with pidfd-open/);
  });

  it('a range over a hole after one advised range: the error up to v5.10; the first range\'s 4096 bytes from v5.18 (5bd009c7c9a9); the error when the first range fails', () => {
    const table = Object.fromEntries(RELEASES.map((v) => {
      const k = kernel(v);
      child(k, 4);
      k.run(k.munmap({ map: 'm', offset: 2 * PAGE, length: PAGE, process: 'c' }));
      // range 1: page 0 (advised); range 2: pages 1-3 with page 2 unmapped: do_madvise() advises 1
      // and 3 and returns -ENOMEM (madvise_walk_vmas: unmapped_error); range 3 is never reached
      const later = outcome(k, { pidfd: 'pc', ranges: [{ map: 'm', page: 0, pages: 1 }, { map: 'm', page: 1, pages: 3 }, { map: 'm', page: 3, pages: 1 }], advice: 'pageout' });
      const swapped = [0, 1, 3].map((page) => k.isSwappedIn({ map: 'm', page, process: 'c' }));
      const first = outcome(k, { pidfd: 'pc', ranges: [{ map: 'm', page: 1, pages: 2 }, { map: 'm', page: 0, pages: 1 }], advice: 'pageout' });
      return [v, [later, swapped, first]];
    }));
    const all = [true, true, true];
    const old = ['ENOMEM', all, 'ENOMEM'];
    const fixed = [`ok ${PAGE}`, all, 'ENOMEM'];
    expect(table).toEqual({ 'v5.4': ['ENOSYS', [false, false, false], 'ENOSYS'], 'v5.10': old, 'v6.1': fixed, 'v6.3': fixed, 'v6.6': fixed, 'v6.15': fixed, latest: fixed });
  });

  it('a range outside its mapping is an input error naming ranges[i] and the fix', () => {
    const k = kernel();
    child(k, 2);
    expect(String(errorOf(() => pmadvise(k, { pidfd: 'pc', ranges: [{ map: 'm' }, { map: 'm', page: 1, pages: 5 }], advice: 'cold' })))).toMatch(/ranges\[1\]: 5 page\(s\) at page 1 run outside mapping 'm' \(2 pages\)/);
  });
});
