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

/**
 * get_pointer_to_instructions(): a page of the selftest's own code (lots_o_noops_around_write(), in
 * its PROT_READ|PROT_EXEC text); the model maps two pages of anonymous memory PROT_READ|PROT_EXEC
 * with the "code" on page 1 (written before PROT_WRITE is dropped).
 */
function mapCode(k: Kernel): void {
  k.run(k.mmap({ anon: true, length: 2 * k.mmu.basePageSize, write: true, exec: true, as: 'code' }));
  k.run(k.write({ map: 'code', page: 1, data: 'nops' }));
  k.run(k.mprotect({ map: 'code', write: false, exec: true }));
}

/** mprotect(p1, PAGE_SIZE, PROT_EXEC [, pkey]) of the code page, or another protection of it. */
function protectCode(k: Kernel, prot: { read: boolean; exec: boolean }, pkey?: number | string): void {
  k.run(k.mprotect({ map: 'code', offset: k.mmu.basePageSize, length: k.mmu.basePageSize, write: false, ...prot, ...(pkey !== undefined ? { pkey } : {}) }));
}

/** What a fault's message names as si_pkey. */
function siPkey(f: () => unknown): number | null {
  try {
    f();
    return null;
  } catch (e) {
    const m = e instanceof KernelError ? /si_pkey (\d+)/.exec(e.message) : null;
    if (!m) throw e;
    return Number(m[1]);
  }
}

describe('execute-only memory: test_executing_on_unreadable_memory, test_implicit_mprotect_exec_only_memory', () => {
  const arches = ['x86', 'ppc-hash', 'arm64'];
  const fetch = (k: Kernel) => outcome(() => k.run(k.execute({ map: 'code', page: 1 })));
  const load = (k: Kernel) => outcome(() => k.run(k.read({ map: 'code', page: 1 })));

  for (const arch of arches) {
    it(`${arch}: PROT_EXEC with the test's key, access-disabled: the code runs, a load faults on that key`, () => {
      const { k, key } = setup(arch, 'latest');
      mapCode(k);
      expect(load(k)).toBe('ok');
      protectCode(k, { read: false, exec: true }, 'k');
      k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' }));
      // x86: PKRU never restricts a fetch; powerpc: pkey_alloc(0, 0) cleared the key's IAMR bit;
      // arm64: PKEY_DISABLE_ACCESS leaves POE_X
      expect(k.run(k.execute({ map: 'code', page: 1 }))).toBe('nops');
      // expect_fault_on_read_execonly_key(p1, pkey): asserted on x86; the AMR and POE_X deny it too
      expect(siPkey(() => k.run(k.read({ map: 'code', page: 1 })))).toBe(key);
      // back to PROT_EXEC|PROT_READ with the key: still access-disabled for loads, still runs
      protectCode(k, { read: true, exec: true }, 'k');
      expect([load(k), fetch(k)]).toEqual(['SEGV_PKUERR', 'ok']);
    });
  }

  it('x86: plain mprotect(PROT_EXEC) takes the execute-only key from the map, hides it and denies it loads', () => {
    const { k, key } = setup('x86', 'latest');
    mapCode(k);
    protectCode(k, { read: false, exec: true });
    expect(fetch(k)).toBe('ok');
    // __execute_only_pkey(): mm_pkey_alloc() gives the lowest free key (the test holds key 1)
    const execOnly = siPkey(() => k.run(k.read({ map: 'code', page: 1 })));
    expect([key, execOnly]).toEqual([1, 2]);
    // mm_pkey_is_allocated() is false for it: pkey_free and pkey_mprotect refuse it; pkey_alloc skips it
    expect(errnoOf(() => k.run(k.pkeyFree({ pkey: 2 })))).toBe('EINVAL');
    expect(errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: true, pkey: 2 })))).toBe('EINVAL');
    // test_pkey_alloc_exhaust's "one possibly consumed by an execute-only mapping": 16 - 3 = 13 more
    expect(exhaust(k)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    // a second PROT_EXEC mapping reuses the key (the register already denies it)
    k.run(k.mmap({ anon: true, length: 4096, exec: true, as: 'code2' }));
    k.run(k.mprotect({ map: 'code2', write: false, read: false, exec: true }));
    expect(siPkey(() => k.run(k.read({ map: 'code2', page: 0 })))).toBe(2);
    // PROT_NONE moves the VMA back to key 0 (vma_is_pkey_exec_only()), so PROT_READ|PROT_EXEC reads
    protectCode(k, { read: false, exec: false });
    protectCode(k, { read: true, exec: true });
    expect([load(k), fetch(k)]).toEqual(['ok', 'ok']);
  });

  it('x86: with every key taken, PROT_EXEC alone stays on key 0 and remains readable (no execute-only entries)', () => {
    const k = createKernel({ arch: ARCHES.x86!(), kernel: 'v6.6' });
    mapCode(k);
    expect(exhaust(k).length).toBe(15);
    protectCode(k, { read: false, exec: true });
    expect([load(k), fetch(k)]).toEqual(['ok', 'ok']);
  });

  it('x86: a PROT_EXEC-only VMA leaving that protection for PROT_READ goes back to key 0', () => {
    const { k } = setup('x86', 'v5.4');
    mapCode(k);
    protectCode(k, { read: false, exec: true });
    expect(load(k)).toBe('SEGV_PKUERR');
    protectCode(k, { read: true, exec: false });
    expect([load(k), fetch(k)]).toEqual(['ok', 'SIGSEGV']);
  });

  it('ppc-hash: the execute-only key is key 2 from boot; user space cannot open it (UAMOR)', () => {
    const { k } = setup('ppc-hash', 'v5.10');
    mapCode(k);
    protectCode(k, { read: false, exec: true });
    expect(fetch(k)).toBe('ok');
    expect(siPkey(() => k.run(k.read({ map: 'code', page: 1 })))).toBe(2);
    k.run(k.pkeySet({ pkey: 2, rights: 'none' }));
    expect(load(k)).toBe('SEGV_PKUERR');
    // a key pkey_alloc() did not open stays closed to fetches in IAMR, whatever pkey_set() writes
    // to AMR: the test key, freed and re-attached by number, is open; key 5 was never allocated
    k.run(k.pkeySet({ pkey: 5, rights: 'none' }));
    expect(k.pkeys.permitsFetch({ ...k.process(undefined).vmas[0]!, flags: { ...k.process(undefined).vmas[0]!.flags, pkey: 5 } })).toBe(false);
  });

  it('arm64: plain mprotect(PROT_EXEC) keeps the VMA key (execute_only_pkey() is -1); the EPAN load is not modelled', () => {
    const { k } = setup('arm64', 'v6.15');
    mapCode(k);
    protectCode(k, { read: false, exec: true });
    expect(fetch(k)).toBe('ok');
    expect(() => k.run(k.read({ map: 'code', page: 1 }))).toThrow(/not modelled/);
  });

  it('a thread cloned before pkey_alloc() keeps the init register: the key is closed to its fetches on powerpc and arm64, not on x86', () => {
    // arch_set_user_pkey_access() writes the caller's register only; POR_EL0_INIT and default_iamr give keys 1-7 no execute
    const want: Record<string, string> = { x86: 'ok', 'ppc-hash': 'SEGV_PKUERR', arm64: 'SEGV_PKUERR' };
    for (const arch of arches) {
      const k = createKernel({ arch: ARCHES[arch]!(), kernel: 'latest' });
      mapCode(k);
      k.run(k.cloneThread({ as: 't' }));
      k.run(k.pkeyAlloc({ as: 'k' }));
      protectCode(k, { read: true, exec: true }, 'k');
      const run = (thread?: string) => outcome(() => k.run(k.execute({ map: 'code', page: 1, ...(thread ? { thread } : {}) })));
      expect([arch, run(), run('t')]).toEqual([arch, 'ok', want[arch]]);
    }
  });

  it('a fetch from memory without PROT_EXEC is SEGV_ACCERR on every arch', () => {
    for (const arch of Object.keys(ARCHES)) {
      const k = createKernel({ arch: ARCHES[arch]!(), kernel: 'latest' });
      k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'data' }));
      expect([arch, errnoOf(() => k.run(k.execute({ map: 'data', page: 0 })))]).toEqual([arch, 'SIGSEGV']);
    }
  });
});

describe('threads: each has its register; clone() copies the caller\'s; exec leaves one thread', () => {
  for (const arch of ['x86', 'ppc-hash', 'arm64']) {
    it(arch, () => {
      const { k } = setup(arch, 'latest');
      k.run(k.write({ map: 'ptr', page: 0, data: 'x' }));
      k.run(k.pkeySet({ pkey: 'k', rights: 'disable-write' }));
      k.run(k.cloneThread({ as: 't' }));
      // inherited: t cannot write either
      expect(outcome(() => k.run(k.write({ map: 'ptr', page: 0, data: 'y', thread: 't' })))).toBe('SEGV_PKUERR');
      // t's writes to its register leave the main thread's alone, and the other way round
      k.run(k.pkeySet({ pkey: 'k', rights: 'none', thread: 't' }));
      expect(outcome(() => k.run(k.write({ map: 'ptr', page: 0, data: 'y', thread: 't' })))).toBe('ok');
      expect(outcome(() => k.run(k.write({ map: 'ptr', page: 0, data: 'z' })))).toBe('SEGV_PKUERR');
      k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' }));
      expect(k.run(k.read({ map: 'ptr', page: 0, thread: 't' }))).toBe('y');
      expect(() => k.run(k.cloneThread({ as: 't' }))).toThrow(/already has a thread 't'/);
      expect(() => k.run(k.read({ map: 'ptr', page: 0, thread: 'nobody' }))).toThrow(/clone-thread/);
      // execve(): de_thread() leaves the caller alone in a new mm
      k.run(k.exec({}));
      k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'after' }));
      expect(() => k.run(k.read({ map: 'after', page: 0, thread: 't' }))).toThrow(/no thread 't'/);
    });
  }
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
  'test_executing_on_unreadable_memory',
  'test_implicit_mprotect_exec_only_memory',
  'test_mprotect_with_pkey_0',
  'test_ptrace_of_child',
  'test_pkey_init_state',
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
  // mprotect_pkey(p1, PROT_EXEC, pkey) and pkey_access_deny(): the code runs
  // (do_not_expect_pkey_fault); x86 also expects a pkey fault on a load (expect_fault_on_read_execonly_key)
  test_executing_on_unreadable_memory: (k, key) => {
    mapCode(k);
    protectCode(k, { read: false, exec: true }, key);
    k.run(k.pkeySet({ pkey: key, rights: 'disable-access' }));
    k.run(k.madvise({ map: 'code', offset: k.mmu.basePageSize, length: k.mmu.basePageSize, advice: 'dontneed' }));
    if (outcome(() => k.run(k.execute({ map: 'code', page: 1 }))) !== 'ok') return false;
    if (k.mmu.arch === 'x86' && siPkey(() => k.run(k.read({ map: 'code', page: 1 }))) !== key) return false;
    return errnoOf(() => protectCode(k, { read: true, exec: true }, key)) === 'ok';
  },
  // a plain mprotect(PROT_EXEC): the code runs; x86 expects a pkey fault on a load (UNKNOWN_PKEY);
  // PROT_NONE then PROT_READ|PROT_EXEC must read without a pkey fault
  test_implicit_mprotect_exec_only_memory: (k) => {
    mapCode(k);
    protectCode(k, { read: false, exec: true });
    k.run(k.madvise({ map: 'code', offset: k.mmu.basePageSize, length: k.mmu.basePageSize, advice: 'dontneed' }));
    if (outcome(() => k.run(k.execute({ map: 'code', page: 1 }))) !== 'ok') return false;
    if (k.mmu.arch === 'x86' && outcome(() => k.run(k.read({ map: 'code', page: 1 }))) !== 'SEGV_PKUERR') return false;
    protectCode(k, { read: false, exec: false });
    protectCode(k, { read: true, exec: true });
    return outcome(() => k.run(k.read({ map: 'code', page: 1 }))) === 'ok';
  },
  test_mprotect_with_pkey_0: (k) => errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: true, pkey: 0 }))) === 'ok' && errnoOf(() => k.run(k.mprotect({ map: 'ptr', write: true, pkey: 'k' }))) === 'ok',
  test_ptrace_of_child: (k) => {
    k.run(k.write({ map: 'ptr', page: 0, data: 'x' }));
    k.run(k.fork({ as: 'child' }));
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access' }));
    const peek = errnoOf(() => k.run(k.remoteRead({ map: 'ptr', page: 0, process: 'child', via: 'ptrace' })));
    return peek === 'ok' && outcome(() => k.run(k.read({ map: 'ptr', page: 0 }))) === 'SEGV_PKUERR';
  },
  // allocate what NR_PKEYS tries give, spin reading the register while other tasks run (the model:
  // another thread writes its own register), which must read as the thread left it (shadow
  // checking: the allocations left every new key open, so the test's page stays writable), then
  // every key frees
  test_pkey_init_state: (k) => {
    const got = exhaust(k);
    k.run(k.cloneThread({ as: 'other' }));
    for (const p of got) k.run(k.pkeySet({ pkey: p, rights: 'disable-access', thread: 'other' }));
    k.run(k.pkeySet({ pkey: 'k', rights: 'disable-access', thread: 'other' }));
    k.run(k.pkeySet({ pkey: 'k', rights: 'none' }));
    if (outcome(() => k.run(k.write({ map: 'ptr', page: 0, data: 'x' }))) !== 'ok') return false;
    return got.every((p) => errnoOf(() => k.run(k.pkeyFree({ pkey: p }))) === 'ok');
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

// ---- tools/testing/selftests/mm/pkey_sighandler_tests.c (docs/selftests.md) ----------------
// x86 and aarch64 only (syscall_raw() has no other version). Each test on a fresh process: a
// 'globals' page (key 0) stands for the siginfo the handler stores, 'tstack' for a pthread stack.

/** __write_pkey_reg(pkey_reg_restrictive_default()) with `open` keys PKEY_UNRESTRICTED: every other key access-disabled (key 0 too). */
function restrictive(k: Kernel, open: number[], thread?: string): void {
  for (let key = 0; key < k.mmu.pkeys!.total; key++) k.run(k.pkeySet({ pkey: key, rights: open.includes(key) ? 'none' : 'disable-access', ...(thread ? { thread } : {}) }));
}

/** The main thread's register as the selftest reads it back: each key's rights. */
function registerOf(k: Kernel): string[] {
  const r = k.pkeys.thread(k.process(undefined), undefined).rights;
  return Array.from({ length: k.mmu.pkeys!.total }, (_, key) => r.data.get(key) ?? 'disable-access');
}

const SIGHANDLER_TESTS = {
  // a thread with every key denied faults (SEGV_MAPERR): the handler runs on the thread's stack (key 0) and stores siginfo
  test_sigsegv_handler_with_pkey0_disabled: (k: Kernel) => {
    k.run(k.cloneThread({ as: 't' }));
    restrictive(k, [], 't');
    k.run(k.signal({ stack: 'tstack', thread: 't' }));
    k.run(k.write({ map: 'globals', page: 0, data: 'siginfo', thread: 't' }));
    return true;
  },
  // the thread returns through a stack its register denies: SEGV_PKUERR, delivered on that stack
  test_sigsegv_handler_cannot_access_stack: (k: Kernel) => {
    k.run(k.cloneThread({ as: 't' }));
    restrictive(k, [], 't');
    if (outcome(() => k.run(k.read({ map: 'tstack', page: 0, thread: 't' }))) !== 'SEGV_PKUERR') return false;
    k.run(k.signal({ stack: 'tstack', thread: 't' }));
    k.run(k.write({ map: 'globals', page: 0, data: 'siginfo', thread: 't' }));
    return true;
  },
  // a clone()d thread on a key-1 stack, only key 1 open, SA_ONSTACK with a key-0 sigaltstack
  test_sigsegv_handler_with_different_pkey_for_stack: (k: Kernel) => {
    k.run(k.mmap({ anon: true, length: 4 * k.mmu.basePageSize, write: true, as: 'stack' }));
    restrictive(k, [0, 1]);
    if (k.run(k.pkeyAlloc({ as: 'p' })) !== 1) return false;
    k.run(k.mprotect({ map: 'stack', write: true, pkey: 'p' }));
    k.run(k.mmap({ anon: true, length: 4 * k.mmu.basePageSize, write: true, exec: true, as: 'sigstack' }));
    k.run(k.cloneThread({ as: 't' }));
    restrictive(k, [1], 't');
    k.run(k.signal({ stack: 'sigstack', thread: 't' }));
    k.run(k.write({ map: 'globals', page: 0, data: 'siginfo', thread: 't' }));
    return true;
  },
  // the main thread, keys 0, 3 and 7 open, raises SIGUSR1: after sigreturn the register is as written
  test_pkru_preserved_after_sigusr1: (k: Kernel) => {
    restrictive(k, [0, 3, 7]);
    const before = registerOf(k);
    k.run(k.signal({ stack: 'tstack' }));
    k.run(k.write({ map: 'globals', page: 0, data: 'siginfo' }));
    k.run(k.sigreturn({ stack: 'tstack' }));
    return JSON.stringify(registerOf(k)) === JSON.stringify(before);
  },
  // a clone()d thread with only key 2 (its stack's) open takes SIGUSR2 on a key-0 sigaltstack,
  // returns from the handler and writes from its own stack
  test_pkru_sigreturn: (k: Kernel) => {
    k.run(k.mmap({ anon: true, length: 4 * k.mmu.basePageSize, write: true, as: 'stack' }));
    restrictive(k, [0, 2]);
    k.run(k.pkeyAlloc({})); // the program's earlier test kept key 1
    if (k.run(k.pkeyAlloc({ as: 'p' })) !== 2) return false;
    k.run(k.mprotect({ map: 'stack', write: true, pkey: 'p' }));
    k.run(k.mmap({ anon: true, length: 4 * k.mmu.basePageSize, write: true, exec: true, as: 'sigstack' }));
    k.run(k.cloneThread({ as: 't' }));
    restrictive(k, [2], 't');
    k.run(k.write({ map: 'stack', page: 0, data: 'Resuming after SIGUSR2...', thread: 't' }));
    k.run(k.signal({ stack: 'sigstack', thread: 't' }));
    k.run(k.write({ map: 'globals', page: 0, data: 'printf', thread: 't' }));
    k.run(k.sigreturn({ stack: 'sigstack', thread: 't' }));
    // write(1, str, ...): copy_from_user() of the thread's stack under its restored register
    return k.run(k.read({ map: 'stack', page: 0, thread: 't' })) === 'Resuming after SIGUSR2...';
  },
} as const;
type SighandlerTest = keyof typeof SIGHANDLER_TESTS;

/** Each test on a fresh process: 'pass', or 'FAIL' when it returns false or the process dies (SIGSEGV). */
function sighandlerVerdicts(arch: string, version: string): Record<SighandlerTest, string> | '—' {
  if (arch !== 'x86' && arch !== 'arm64') return '—';
  const probe = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  if (errnoOf(() => probe.run(probe.pkeyAlloc({}))) !== 'ok') return '—';
  return Object.fromEntries((Object.keys(SIGHANDLER_TESTS) as SighandlerTest[]).map((t) => {
    const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
    k.run(k.mmap({ anon: true, length: 4 * k.mmu.basePageSize, write: true, as: 'globals' }));
    k.run(k.mmap({ anon: true, length: 4 * k.mmu.basePageSize, write: true, as: 'tstack' }));
    const r = outcome(() => SIGHANDLER_TESTS[t](k));
    return [t, r === 'ok' ? 'pass' : 'FAIL'];
  })) as Record<SighandlerTest, string>;
}

describe('pkey_sighandler_tests.c verdicts per arch and release', () => {
  // `pkey-sigframe` all-keys (x86 v6.12, arm64 v6.13 [M]): every test passes; before, the frame is
  // written under the thread's register, and the four tests whose thread denies the stack the
  // frame goes on die (force_sigsegv); test_pkru_preserved_after_sigusr1's main thread keeps key 0 open
  const fixed = Object.fromEntries(Object.keys(SIGHANDLER_TESTS).map((t) => [t, 'pass']));
  const old = { ...fixed, test_sigsegv_handler_with_pkey0_disabled: 'FAIL', test_sigsegv_handler_cannot_access_stack: 'FAIL', test_sigsegv_handler_with_different_pkey_for_stack: 'FAIL', test_pkru_sigreturn: 'FAIL' };
  const want = (arch: string, v: string) => {
    if (arch === 'x86') return ['v6.15', 'latest'].includes(v) ? fixed : old;
    return arch === 'arm64' && ['v6.15', 'latest'].includes(v) ? fixed : '—';
  };
  for (const arch of Object.keys(ARCHES)) {
    it(arch, () => {
      expect(Object.fromEntries(RELEASES.map((v) => [v, sighandlerVerdicts(arch, v)]))).toEqual(Object.fromEntries(RELEASES.map((v) => [v, want(arch, v)])));
    });
  }

  it('the feature decides, not the release: x86 v6.6 with pkey-sigframe all-keys delivers; the handler starts with the init register', () => {
    const k = createKernel({ arch: ARCHES.x86!(), kernel: 'v6.6', features: { 'pkey-sigframe': 'all-keys' } });
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'tstack' }));
    k.run(k.pkeyAlloc({ as: 'p' }));
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'mine' }));
    k.run(k.mprotect({ map: 'mine', write: true, pkey: 'p' }));
    k.run(k.cloneThread({ as: 't' }));
    restrictive(k, [1], 't');
    k.run(k.signal({ stack: 'tstack', thread: 't' }));
    // init_pkru_value: key 0 open, key 1 access-disabled, whatever the thread had
    expect(outcome(() => k.run(k.read({ map: 'tstack', page: 0, thread: 't' })))).toBe('ok');
    expect(outcome(() => k.run(k.read({ map: 'mine', page: 0, thread: 't' })))).toBe('SEGV_PKUERR');
    // a handler that closes key 0 cannot return through a key-0 frame (x86 reads it under the handler's register)
    k.run(k.pkeySet({ pkey: 0, rights: 'disable-access', thread: 't' }));
    expect(errnoOf(() => k.run(k.sigreturn({ stack: 'tstack', thread: 't' })))).toBe('SIGSEGV');
    k.run(k.pkeySet({ pkey: 0, rights: 'none', thread: 't' }));
    k.run(k.sigreturn({ stack: 'tstack', thread: 't' }));
    expect(outcome(() => k.run(k.read({ map: 'mine', page: 0, thread: 't' })))).toBe('ok');
    expect(outcome(() => k.run(k.read({ map: 'tstack', page: 0, thread: 't' })))).toBe('SEGV_PKUERR');
    expect(() => k.run(k.sigreturn({ stack: 'tstack', thread: 't' }))).toThrow(/in no signal handler/);
  });

  it('arm64 rt_sigreturn opens every key to read the frame (save_reset_user_access_state())', () => {
    const k = createKernel({ arch: ARCHES.arm64!(), kernel: 'latest' });
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'tstack' }));
    k.run(k.signal({ stack: 'tstack' }));
    k.run(k.pkeySet({ pkey: 0, rights: 'disable-access' }));
    k.run(k.sigreturn({ stack: 'tstack' }));
    expect(registerOf(k)[0]).toBe('none');
  });

  it('powerpc: signal delivery with keys is not modelled; s390 (no keys) delivers', () => {
    const ppc = createKernel({ arch: ARCHES['ppc-hash']!(), kernel: 'latest' });
    ppc.run(ppc.mmap({ anon: true, length: 65536, write: true, as: 'tstack' }));
    expect(() => ppc.run(ppc.signal({ stack: 'tstack' }))).toThrow(/not modelled/);
    const s390 = createKernel({ arch: ARCHES.s390!(), kernel: 'latest' });
    s390.run(s390.mmap({ anon: true, length: 4096, write: true, as: 'tstack' }));
    s390.run(s390.signal({ stack: 'tstack' }));
    s390.run(s390.sigreturn({ stack: 'tstack' }));
    expect(s390.run(s390.read({ map: 'tstack', page: 0 }))).toBe('sigframe');
  });
});
