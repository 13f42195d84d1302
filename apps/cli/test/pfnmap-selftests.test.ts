import { createKernel, devmemIsAllowed, KernelError, Monitor, PRESETS, type Kernel } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { ARCHES, fails } from './selftest-api.js';

// tools/testing/selftests/mm/pfnmap.c (docs/selftests.md, "Coverage: pfnmap.c"), driven through
// the kernel API independently of the scenarios in apps/cli/scenarios/selftests/pfnmap: the
// verdict each TEST_F prints, per arch and release. The scenario library itself runs in
// selftests.test.ts with the other families.

const RELEASES = PRESETS.map((p) => p.name);
type Verdict = 'pass' | 'FAIL' | 'SKIP';

/**
 * FIXTURE_SETUP(pfnmap): open /dev/mem, mmap two pages at physical 0 (PROT_READ, MAP_SHARED) and
 * read each: any failure is a SKIP. Sizes follow the kernel's page size, as getpagesize() does.
 */
function fixture(arch: string, version: string): { k: Kernel; ps: number; m: Monitor } | 'SKIP' {
  const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  const ps = k.mmu.basePageSize;
  if (fails(() => k.run(k.mmap({ devmem: true, length: 2 * ps, shared: true, as: 'addr1' })))) return 'SKIP';
  if (fails(() => [0, 1].forEach((page) => k.run(k.read({ map: 'addr1', page }))))) return 'SKIP';
  return { k, ps, m: new Monitor(k) };
}

/** Each TEST_F's assertions: true when they all hold. */
const TESTS: Record<string, (k: Kernel, ps: number) => boolean> = {
  madvise_disallowed: (k, ps) =>
    (['dontneed', 'dontneed-locked', 'free', 'wipeonfork', 'cold', 'pageout', 'populate-read', 'populate-write'] as const).every((advice) => {
      try {
        k.run(k.madvise({ map: 'addr1', advice, length: ps }));
        return false;
      } catch (e) {
        return e instanceof KernelError && e.code === 'EINVAL';
      }
    }),
  munmap_split: (k, ps) => !fails(() => k.run(k.munmap({ map: 'addr1', length: ps }))) && !fails(() => k.run(k.mmap({ devmem: true, length: ps, shared: true, as: 'addr2' }))),
  mremap_fixed: (k, ps) => !fails(() => k.run(k.mmap({ anon: true, length: 2 * ps, as: 'addr2' }))) && !fails(() => k.run(k.mremap({ map: 'addr1', length: 2 * ps, to: 'addr2', as: 'ret' }))),
  mremap_shrink: (k, ps) => !fails(() => k.run(k.mremap({ map: 'addr1', length: 2 * ps, newLength: ps }))),
  mremap_expand: (k, ps) => fails(() => k.run(k.mremap({ map: 'addr1', length: 2 * ps, newLength: 3 * ps, mayMove: true, as: 'addr2' }))),
  fork: (k) => {
    if (fails(() => k.run(k.fork({ as: 'child' })))) return false;
    const read = !fails(() => [0, 1].forEach((page) => k.run(k.read({ map: 'addr1', page, process: 'child' }))));
    k.run(k.exit({ process: 'child' }));
    return read;
  },
};

function verdict(arch: string, version: string, test: string): Verdict {
  const f = fixture(arch, version);
  if (f === 'SKIP') return 'SKIP';
  const ok = TESTS[test]!(f.k, f.ps);
  // none of this touches a struct page: no invariant can have anything to say
  expect(f.m.violations, `${arch} ${version} ${test}`).toEqual([]);
  return ok ? 'pass' : 'FAIL';
}

describe('selftests/mm/pfnmap.c verdicts per arch and release', () => {
  // x86 maps all of the first MiB (page 0 is firmware-reserved, page 1 RAM shown as zeros to
  // read() but mappable); arm64 (QEMU virt) has no RAM at 0; ppc64 has RAM from 0 and refuses
  // it; s390 has RAM from 0 and refuses it once STRICT_DEVMEM is its default (v6.13)
  const expected: Record<string, Record<string, Verdict>> = {
    x86: Object.fromEntries(RELEASES.map((v) => [v, 'pass'])),
    arm64: Object.fromEntries(RELEASES.map((v) => [v, 'pass'])),
    'ppc-hash': Object.fromEntries(RELEASES.map((v) => [v, 'SKIP'])),
    s390: { 'v5.4': 'pass', 'v5.10': 'pass', 'v6.1': 'pass', 'v6.3': 'pass', 'v6.6': 'pass', 'v6.15': 'SKIP', latest: 'SKIP' },
  };
  for (const test of Object.keys(TESTS)) {
    it(test, () => {
      const got = Object.fromEntries(Object.keys(ARCHES).map((arch) => [arch, Object.fromEntries(RELEASES.map((v) => [v, verdict(arch, v, test)]))]));
      expect(got).toEqual(expected);
    });
  }

  it('the same verdicts with arm64 16K and 64K pages (the sizes follow getpagesize())', () => {
    for (const pageSize of ['16KiB', '64KiB']) {
      const f = (() => {
        const k = createKernel({ arch: arm64({ pageSize }), kernel: 'latest' });
        const ps = k.mmu.basePageSize;
        k.run(k.mmap({ devmem: true, length: 2 * ps, shared: true, as: 'addr1' }));
        return { k, ps };
      })();
      expect(TESTS['mremap_shrink']!(f.k, f.ps), pageSize).toBe(true);
      expect(f.k.process('init').vmas.map((v) => v.pages)).toEqual([1]);
    }
  });
});

describe('devmem_is_allowed() as each arch plugin describes physical memory', () => {
  const answer = (arch: string, version: string, phys: number) => {
    const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
    return devmemIsAllowed(k, phys / k.mmu.basePageSize);
  };
  const KiB = 1024;
  const GiB = 1024 ** 3;

  it('x86: the first MiB is always mappable (reserved page 0: 1; low RAM: 2), RAM above it is refused, holes are not', () => {
    expect([0, 4 * KiB, 636 * KiB, 640 * KiB, 1024 * KiB, 4 * GiB].map((p) => answer('x86', 'latest', p))).toEqual([1, 2, 2, 1, 0, 0]);
  });

  it('arm64 (QEMU virt): flash at 0 is mappable, RAM from 1 GiB is not', () => {
    expect([0, GiB - 4 * KiB, GiB, 4 * GiB].map((p) => answer('arm64', 'latest', p))).toEqual([1, 1, 0, 0]);
  });

  it('ppc64: RAM from 0, refused in every release', () => {
    for (const v of RELEASES) expect(answer('ppc-hash', v, 0), v).toBe(0);
  });

  it('s390: no filter before v6.13 (STRICT_DEVMEM off by default); after, every pfn is refused, RAM or not', () => {
    expect(RELEASES.map((v) => answer('s390', v, 0))).toEqual([null, null, null, null, null, 0, 0]);
    // arch/s390/include/asm/page.h's devmem_is_allowed() refuses any pfn, not only System RAM
    const k = createKernel({ arch: ARCHES['s390']!(), kernel: 'latest' });
    expect(() => k.run(k.mmap({ devmem: true, length: 4 * KiB, shared: true, as: 'm' }))).toThrow(/EPERM.*refuses every physical page on s390/);
  });

  it('the mmap itself: range_is_allowed() over every page, EPERM on the first refused one', () => {
    const k = createKernel({ arch: x86(), kernel: 'latest' });
    // [1020 KiB, 1028 KiB): page 255 is low RAM (2), page 256 is RAM above the first MiB (0)
    const e = (() => {
      try {
        k.run(k.mmap({ devmem: true, offset: 1020 * KiB, length: 8 * KiB, shared: true, as: 'm' }));
      } catch (err) {
        return err;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(KernelError);
    expect((e as KernelError).code).toBe('EPERM');
    expect(k.process('init').vmas).toEqual([]);
  });
});
