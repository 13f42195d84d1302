import { createKernel, KernelError, PRESETS, type Kernel } from '@daxlab/core';
import { ppcHash } from '@daxlab/arch-ppc-hash';
import { describe, expect, it } from 'vitest';
import { ARCHES, errnoOf } from './selftest-api.js';

// tools/testing/selftests/mm/protection_keys.c (docs/selftests.md, "Coverage: protection_keys.c"),
// driven through the kernel API independently of apps/cli/scenarios/selftests/protection-keys:
// the deterministic tests, per arch and release, each on a fresh process as run_tests_once() gives
// it: one key from pkey_alloc() and a mapping attached to it with pkey_mprotect().

const RELEASES = PRESETS.map((p) => p.name);

/** The errno, or for a SIGSEGV the si_code the model reports with it. */
function outcome(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    return e.code === 'SIGSEGV' && /SEGV_PKUERR/.test(e.message) ? 'SEGV_PKUERR' : e.code;
  }
}

/** run_tests_once(): a key and 4 pages of anonymous memory attached to it (malloc_pkey_with_mprotect()). */
function setup(arch: string, version: string, k = createKernel({ arch: ARCHES[arch]!(), kernel: version })): { k: Kernel; key: number } {
  const key = k.run(k.pkeyAlloc({ as: 'k' }));
  k.run(k.mmap({ anon: true, length: 4 * k.mmu.basePageSize, write: true, as: 'ptr' }));
  k.run(k.mprotect({ map: 'ptr', write: true, pkey: 'k' }));
  return { k, key };
}

/** test_pkey_alloc_exhaust(): how many more keys pkey_alloc() hands out after the test's own. */
function exhaust(k: Kernel): number[] {
  const got: number[] = [];
  while (errnoOf(() => got.push(k.run(k.pkeyAlloc({})))) === 'ok');
  return got;
}

describe('protection_keys.c: which releases have pkeys, per arch', () => {
  // ARCH_HAS_PKEYS: x86 from v4.9, powerpc (hash) from v4.16, arm64 (POE) from v6.12, s390 never
  const since: Record<string, string | null> = { x86: 'v5.4', 'ppc-hash': 'v5.4', arm64: 'v6.15', s390: null };
  for (const arch of Object.keys(ARCHES)) {
    it(arch, () => {
      const have = (v: string) => since[arch] !== null && RELEASES.indexOf(v) >= RELEASES.indexOf(since[arch]!);
      for (const v of RELEASES) {
        const k = createKernel({ arch: ARCHES[arch]!(), kernel: v });
        expect([v, errnoOf(() => k.run(k.pkeyAlloc({})))]).toEqual([v, have(v) ? 'ok' : 'ENOSYS']);
      }
    });
  }
});

describe('test_pkey_alloc_exhaust: keys a fresh process can allocate', () => {
  // x86: 16 keys, key 0 preallocated (mm_pkey_alloc from map 0x1): 1..15. arm64 POE: 8 keys, 1..7.
  // powerpc PowerNV/KVM, 64K pages: 32 keys, 0 preallocated, 1 (ISA note) and 2 (execute-only)
  // reserved, and 3 from v5.11 (hash KUAP): 3..31 then 4..31; 4K pages keep 8 keys: 3..7 then 4..7.
  const range = (lo: number, hi: number) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  it('x86, every release', () => {
    for (const v of RELEASES) expect(exhaust(createKernel({ arch: ARCHES.x86!(), kernel: v }))).toEqual(range(1, 15));
  });
  it('arm64 v6.15 and latest', () => {
    for (const v of ['v6.15', 'latest']) expect(exhaust(createKernel({ arch: ARCHES.arm64!(), kernel: v }))).toEqual(range(1, 7));
  });
  it('ppc-hash 64K and 4K pages, before and after v5.11', () => {
    for (const v of RELEASES) {
      const first = v === 'v5.4' || v === 'v5.10' ? 3 : 4;
      expect(exhaust(createKernel({ arch: ppcHash(), kernel: v }))).toEqual(range(first, 31));
      expect(exhaust(createKernel({ arch: ppcHash({ pageSize: '4KiB' }), kernel: v }))).toEqual(range(first, 7));
    }
  });
  it('the selftest: after its own key, NR_PKEYS - reserved - 1 more; the allocation map survives fork() and pkey_free', () => {
    // x86 NR_PKEYS 16, NR_RESERVED_PKEYS 2 (key 0, the execute-only key, never taken here): at least 13; the model gives 14
    const { k, key } = setup('x86', 'latest');
    expect(key).toBe(1);
    const more = exhaust(k);
    expect(more.length).toBe(14);
    k.run(k.fork({ as: 'child' }));
    expect(errnoOf(() => k.run(k.pkeyAlloc({ process: 'child' })))).toBe('ENOSPC');
    k.run(k.pkeyFree({ pkey: 9, process: 'child' }));
    expect(k.run(k.pkeyAlloc({ process: 'child' }))).toBe(9);
    // the parent's map is its own
    expect(errnoOf(() => k.run(k.pkeyAlloc({})))).toBe('ENOSPC');
  });
});

describe('the syscalls on keys that are not allocated', () => {
  for (const arch of ['x86', 'ppc-hash', 'arm64']) {
    it(`${arch}: test_pkey_syscalls_on_non_allocated_pkey, _bad_args, test_pkey_alloc_free_attach_pkey0`, () => {
      const { k, key } = setup(arch, 'latest');
      const total = k.mmu.pkeys!.total;
      for (let i = 1; i < total; i++) {
        if (i === key) continue;
        expect([i, errnoOf(() => k.run(k.pkeyFree({ pkey: i })))]).toEqual([i, 'EINVAL']);
        expect([i, errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: false, pkey: i })))]).toEqual([i, 'EINVAL']);
      }
      expect(errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: false, pkey: total + 99 })))).toBe('EINVAL');
      // allocate every key (none is 0), free them, attach key 0 (allocated implicitly) in the modelled modes
      const all = exhaust(k);
      expect(all).not.toContain(0);
      for (const p of all) k.run(k.pkeyFree({ pkey: p }));
      expect(errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: false, pkey: 0 })))).toBe('ok');
      expect(errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: true, pkey: 0 })))).toBe('ok');
      // and the test's own key is still allocated
      expect(errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: true, pkey: key })))).toBe('ok');
    });
  }
  it('s390: pkey_mprotect is ENOSYS, plain mprotect works', () => {
    const k = createKernel({ arch: ARCHES.s390!(), kernel: 'latest' });
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'ptr' }));
    expect(errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: false, pkey: 0 })))).toBe('ENOSYS');
    expect(errnoOf(() => k.run(k.pkeySet({ pkey: 1, rights: 'disable-access' })))).toBe('ENOSYS');
    expect(errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: false })))).toBe('ok');
  });
});

describe('accesses under the rights register, per arch', () => {
  const arches = ['x86', 'ppc-hash', 'arm64'];
  const access = (k: Kernel, write: boolean) => outcome(() => (write ? k.run(k.write({ map: 'ptr', page: 0, data: 'x' })) : k.run(k.read({ map: 'ptr', page: 0 }))));
  for (const arch of arches) {
    it(`${arch}: reads and writes, with the page mapped already and not`, () => {
      for (const mapped of [false, true]) {
        for (const rights of ['none', 'disable-write', 'disable-access'] as const) {
          const { k } = setup(arch, 'latest');
          if (mapped) k.run(k.write({ map: 'ptr', page: 0, data: 'old' }));
          k.run(k.pkeySet({ pkey: 'k', rights }));
          // test_read_of_write_disabled_region reads fine; test_read_of_access_disabled_region*,
          // test_write_of_write_disabled_region*, test_write_of_access_disabled_region*: SEGV_PKUERR
          expect([mapped, rights, access(k, false), access(k, true)]).toEqual([mapped, rights, rights === 'disable-access' ? 'SEGV_PKUERR' : 'ok', rights === 'none' ? 'ok' : 'SEGV_PKUERR']);
        }
      }
    });
  }

  it('a key allocated with init_val denies from the start; pkey_set() of key 0 is the register too', () => {
    const k = createKernel({ arch: ARCHES.x86!(), kernel: 'v6.6' });
    k.run(k.pkeyAlloc({ rights: 'disable-access', as: 'ad' }));
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'ptr' }));
    expect(access(k, true)).toBe('ok');
    k.run(k.mprotect({ map: 'ptr', write: true, pkey: 'ad' }));
    expect(access(k, false)).toBe('SEGV_PKUERR');
    // pkey_free() leaves the VMA's key and the register as they were
    k.run(k.pkeyFree({ pkey: 'ad' }));
    expect(access(k, false)).toBe('SEGV_PKUERR');
  });

  it('test_kernel_gup_of_access_disabled_region: vmsplice (GUP-fast, then the slow path) is EFAULT; a read GUP of a write-disabled key works', () => {
    for (const arch of arches) {
      const { k } = setup(arch, 'latest');
      k.run(k.write({ map: 'ptr', page: 0, data: 'x' }));
      k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' }));
      expect([arch, errnoOf(() => k.run(k.gup({ map: 'ptr', page: 0, fast: true, as: 'pipe' }, false)))]).toEqual([arch, 'EFAULT']);
      k.run(k.pkeySet({ pkey: 'k', rights: 'disable-write' }));
      // test_kernel_gup_write_to_write_disabled_region: futex(FUTEX_WAIT) only reads the word
      expect(errnoOf(() => k.run(k.gup({ map: 'ptr', page: 0, fast: true, as: 'futex' }, false)))).toBe('ok');
      expect(errnoOf(() => k.run(k.gup({ map: 'ptr', page: 0, write: true, as: 'w' }, true)))).toBe('EFAULT');
    }
  });

  // the model's pread moves whole pages: a page stands in for the selftest's 1 and 100 bytes
  it('test_kernel_write_of_access_disabled_region: read(fd, ptr, 1) into the denied buffer is EFAULT', () => {
    const { k } = setup('x86', 'latest');
    k.run(k.memfdCreate({ file: 'passwd', size: 4096 }));
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' }));
    expect(errnoOf(() => k.run(k.pread({ file: 'passwd', length: 4096, map: 'ptr' })))).toBe('EFAULT');
    // test_kernel_write_of_write_disabled_region: the same for a write-disabled key
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-write' }));
    expect(errnoOf(() => k.run(k.pread({ file: 'passwd', length: 4096, map: 'ptr' })))).toBe('EFAULT');
    k.run(k.pkeySet({ pkey: 'k', rights: 'none' }));
    expect(k.run(k.pread({ file: 'passwd', length: 4096, map: 'ptr' }))).toBe(4096);
  });

  it('test_ptrace_of_child: PTRACE_PEEKDATA of the child works where the child itself faults (foreign mm)', () => {
    for (const arch of arches) {
      const { k } = setup(arch, 'latest');
      k.run(k.write({ map: 'ptr', page: 0, data: 'secret' }));
      k.run(k.fork({ as: 'child' }));
      // the child inherits the register: deny it there
      k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access', process: 'child' }));
      expect(outcome(() => k.run(k.read({ map: 'ptr', page: 0, process: 'child' })))).toBe('SEGV_PKUERR');
      expect(k.run(k.remoteRead({ map: 'ptr', page: 0, process: 'child', via: 'ptrace' }))).toBe('secret');
      expect(k.run(k.remoteRead({ map: 'ptr', page: 0, process: 'child', via: 'process_vm_readv' }))).toBe('secret');
      // the parent's register is its own
      expect(k.run(k.read({ map: 'ptr', page: 0 }))).toBe('secret');
    }
  });

  it('fork: the child has the parent key, its rights and the VMA key', () => {
    const { k } = setup('arm64', 'v6.15');
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-write' }));
    k.run(k.fork({ as: 'child' }));
    expect(outcome(() => k.run(k.write({ map: 'ptr', page: 0, data: 'y', process: 'child' })))).toBe('SEGV_PKUERR');
    expect(errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: true, pkey: 'k', process: 'child' })))).toBe('ok');
  });

  it('pkey_mprotect of part of a VMA splits it; setting the key back merges the pieces', () => {
    const { k } = setup('x86', 'latest');
    const vmas = () => k.process(undefined).vmas.length;
    const before = vmas();
    k.run(k.mprotect({ map: 'ptr', write: true, pkey: 0, offset: 4096, length: 4096 }));
    expect(vmas()).toBe(before + 2);
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' }));
    expect(outcome(() => k.run(k.read({ map: 'ptr', page: 0 })))).toBe('SEGV_PKUERR');
    expect(outcome(() => k.run(k.read({ map: 'ptr', page: 1 })))).toBe('ok');
    k.run(k.mprotect({ map: 'ptr', write: true, pkey: 'k', offset: 4096, length: 4096 }));
    expect(vmas()).toBe(before);
  });
});

// ---- the verdict table (docs/selftests.md, "Coverage: protection_keys.c") ------------------

const TESTS = [
  'test_read_of_write_disabled_region',
  'test_read_of_access_disabled_region',
  'test_read_of_access_disabled_region_with_page_already_mapped',
  'test_write_of_write_disabled_region',
  'test_write_of_write_disabled_region_with_page_already_mapped',
  'test_write_of_access_disabled_region',
  'test_write_of_access_disabled_region_with_page_already_mapped',
  'test_kernel_write_of_access_disabled_region',
  'test_kernel_write_of_write_disabled_region',
  'test_kernel_gup_of_access_disabled_region',
  'test_kernel_gup_write_to_write_disabled_region',
  'test_mprotect_with_pkey_0',
  'test_ptrace_of_child',
  'test_pkey_syscalls_on_non_allocated_pkey',
  'test_pkey_syscalls_bad_args',
  'test_pkey_alloc_exhaust',
  'test_pkey_alloc_free_attach_pkey0',
] as const;
type Test = (typeof TESTS)[number];

/** pkey_assert() as each test asserts it: true = pass. */
const CHECKS: Record<Test, (k: Kernel, key: number) => boolean> = {
  test_read_of_write_disabled_region: (k) => (k.run(k.pkeySet({ pkey: 'k', rights: 'disable-write' })), outcome(() => k.run(k.read({ map: 'ptr', page: 0 }))) === 'ok'),
  test_read_of_access_disabled_region: (k) => (k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' })), outcome(() => k.run(k.read({ map: 'ptr', page: 0 }))) === 'SEGV_PKUERR'),
  test_read_of_access_disabled_region_with_page_already_mapped: (k) => {
    k.run(k.read({ map: 'ptr', page: 0 }));
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' }));
    return outcome(() => k.run(k.read({ map: 'ptr', page: 0 }))) === 'SEGV_PKUERR';
  },
  test_write_of_write_disabled_region: (k) => (k.run(k.pkeySet({ pkey: 'k', rights: 'disable-write' })), outcome(() => k.run(k.write({ map: 'ptr', page: 0, data: 'x' }))) === 'SEGV_PKUERR'),
  test_write_of_write_disabled_region_with_page_already_mapped: (k) => {
    k.run(k.write({ map: 'ptr', page: 0, data: 'x' }));
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-write' }));
    return outcome(() => k.run(k.write({ map: 'ptr', page: 0, data: 'y' }))) === 'SEGV_PKUERR';
  },
  test_write_of_access_disabled_region: (k) => (k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' })), outcome(() => k.run(k.write({ map: 'ptr', page: 0, data: 'x' }))) === 'SEGV_PKUERR'),
  test_write_of_access_disabled_region_with_page_already_mapped: (k) => {
    k.run(k.write({ map: 'ptr', page: 0, data: 'x' }));
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' }));
    return outcome(() => k.run(k.write({ map: 'ptr', page: 0, data: 'y' }))) === 'SEGV_PKUERR';
  },
  // read(fd, ptr, n): pkey_assert(ret), any non-zero return; the model's is -1 (EFAULT)
  test_kernel_write_of_access_disabled_region: (k) => {
    k.run(k.memfdCreate({ file: 'passwd', size: k.mmu.basePageSize }));
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' }));
    return errnoOf(() => k.run(k.pread({ file: 'passwd', length: k.mmu.basePageSize, map: 'ptr' }))) === 'EFAULT';
  },
  test_kernel_write_of_write_disabled_region: (k) => {
    k.run(k.memfdCreate({ file: 'passwd', size: k.mmu.basePageSize }));
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-write' }));
    return errnoOf(() => k.run(k.pread({ file: 'passwd', length: k.mmu.basePageSize, map: 'ptr' }))) === 'EFAULT';
  },
  test_kernel_gup_of_access_disabled_region: (k) => (k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' })), errnoOf(() => k.run(k.gup({ map: 'ptr', page: 0, fast: true, as: 'pipe' }, false))) === 'EFAULT'),
  // futex(FUTEX_WAIT) reads the word; the test asserts nothing but must not die
  test_kernel_gup_write_to_write_disabled_region: (k) => {
    k.run(k.write({ map: 'ptr', page: 0, data: 'x' }));
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-write' }));
    return errnoOf(() => k.run(k.gup({ map: 'ptr', page: 0, fast: true, as: 'futex' }, false))) === 'ok';
  },
  test_mprotect_with_pkey_0: (k) => errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: true, pkey: 0 }))) === 'ok' && errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: true, pkey: 'k' }))) === 'ok',
  test_ptrace_of_child: (k) => {
    k.run(k.write({ map: 'ptr', page: 0, data: 'x' }));
    k.run(k.fork({ as: 'child' }));
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' }));
    const peek = errnoOf(() => k.run(k.remoteRead({ map: 'ptr', page: 0, process: 'child', via: 'ptrace' })));
    return peek === 'ok' && outcome(() => k.run(k.read({ map: 'ptr', page: 0 }))) === 'SEGV_PKUERR';
  },
  test_pkey_syscalls_on_non_allocated_pkey: (k, key) => {
    for (let i = 1; i < k.mmu.pkeys!.total; i++) {
      if (i === key) continue;
      if (errnoOf(() => k.run(k.pkeyFree({ pkey: i }))) === 'ok' || errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: false, pkey: i }))) === 'ok') return false;
    }
    return true;
  },
  test_pkey_syscalls_bad_args: (k) => errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: false, pkey: k.mmu.pkeys!.total + 99 }))) !== 'ok',
  // successes never exceed NR_PKEYS; the fork half-way keeps the map; each key frees once
  test_pkey_alloc_exhaust: (k) => {
    const got = exhaust(k);
    k.run(k.fork({ as: 'child' }));
    const childFull = errnoOf(() => k.run(k.pkeyAlloc({ process: 'child' }))) === 'ENOSPC';
    return got.length < k.mmu.pkeys!.total && childFull && got.every((p) => errnoOf(() => k.run(k.pkeyFree({ pkey: p, process: 'child' }))) === 'ok');
  },
  test_pkey_alloc_free_attach_pkey0: (k) => {
    const all = exhaust(k);
    if (all.includes(0) || all.some((p) => errnoOf(() => k.run(k.pkeyFree({ pkey: p }))) !== 'ok')) return false;
    return [false, true].every((write) => errnoOf(() => k.run(k.mprotect({ map: 'ptr', write, pkey: 0 }))) === 'ok');
  },
};

/** Each test on a fresh run_tests_once() setup; '—' where the kernel has no pkeys (the selftest is not built or cannot allocate). */
function verdicts(arch: string, version: string): Record<Test, string> | '—' {
  const probe = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  if (errnoOf(() => probe.run(probe.pkeyAlloc({}))) !== 'ok') return '—';
  return Object.fromEntries(TESTS.map((t) => {
    const { k, key } = setup(arch, version);
    return [t, CHECKS[t](k, key) ? 'pass' : 'FAIL'];
  })) as Record<Test, string>;
}

describe('protection_keys.c verdicts per arch and release', () => {
  const allPass = Object.fromEntries(TESTS.map((t) => [t, 'pass']));
  // x86 from v4.9 and powerpc hash from v4.16: every preset; arm64 POE from v6.12: v6.15, latest; s390 never
  const want = (arch: string, version: string) => (arch === 's390' || (arch === 'arm64' && !['v6.15', 'latest'].includes(version)) ? '—' : allPass);
  for (const arch of Object.keys(ARCHES)) {
    it(arch, () => {
      expect(Object.fromEntries(RELEASES.map((v) => [v, verdicts(arch, v)]))).toEqual(Object.fromEntries(RELEASES.map((v) => [v, want(arch, v)])));
    });
  }
  it('ppc-hash with 4K pages (8 keys) gives the same verdicts', () => {
    for (const v of RELEASES) {
      const { k } = setup('ppc-hash', v, createKernel({ arch: ppcHash({ pageSize: '4KiB' }), kernel: v }));
      expect(CHECKS.test_pkey_alloc_exhaust(k, 0)).toBe(true);
    }
  });
});
