import { createKernel, KernelError, PRESETS, type ArchPlugin, type Kernel } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { ppcHash } from '@daxlab/arch-ppc-hash';
import { s390 } from '@daxlab/arch-s390';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { xfs } from '@daxlab/fs-xfs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errnoOf } from './selftest-api.js';

// tools/testing/selftests/mm/prctl_thp_disable.c through the kernel API, independently of the
// scenarios in apps/cli/scenarios/selftests/prctl-thp-disable: each TEST_F (nofork and fork of
// the prctl_thp_disable_completely and prctl_thp_disable_except_madvise fixtures, each with the
// never / madvise / always variants) on every preset, its verdict compared with the table
// docs/selftests.md ("Coverage: tools/testing/selftests/mm/prctl_thp_disable.c") wrote from
// kernel/sys.c, vma_thp_disabled() and madvise_collapse() before the model ran them.

const RELEASES = PRESETS.map((p) => p.name);
const MiB = 2 ** 20;
type Policy = 'never' | 'madvise' | 'always';
type Madv = 'none' | 'nohugepage' | 'hugepage' | 'collapse';
type Fixture = 'completely' | 'except_madvise';
type Verdict = 'pass' | 'FAIL' | 'SKIP';

/** The arches with THP at 4 KiB base pages (PMD 2 MiB, s390 1 MiB), and ppc64 hash's 64 KiB pages (16 MiB PMD). */
const ARCHES: Record<string, () => ArchPlugin> = { x86: () => x86(), arm64: () => arm64(), s390: () => s390(), 'ppc-hash-64k': () => ppcHash() };

class AssertFailed extends Error {}

/** The selftest's process: its kernel, the process the test body runs in, a counter for mapping names. */
class Run {
  private n = 0;
  proc = 'init';
  constructor(readonly k: Kernel) {}

  /**
   * test_mmap_thp(): mmap 2 * pmdsize, the PMD-aligned `mem` inside, MADV_HUGEPAGE / MADV_NOHUGEPAGE
   * before the memset, MADV_COLLAPSE after it (its return value is not checked), mprotect(PROT_READ)
   * of mem alone, check_huge_anon(mem, 1, pmdsize): 1 when smaps' AnonHugePages of that VMA is
   * one PMD, else 0.
   */
  mmapThp(madv: Madv): 0 | 1 {
    const k = this.k;
    const p = { process: this.proc };
    const pmd = k.mmu.pmdSize;
    const n = pmd / k.mmu.basePageSize;
    const map = `mmap_mem${this.n++}`;
    k.run(k.mmap({ anon: true, length: 2 * pmd, write: true, as: map, ...p }));
    const start = k.process(this.proc).ranges.get(map)!.start;
    // mem = (mmap_mem + pmdsize) & ~(pmdsize - 1), as a page of the mapping
    const mem = Math.floor((start + n) / n) * n - start;
    const range = { map, offset: mem * k.mmu.basePageSize, length: pmd, ...p };
    if (madv === 'hugepage' || madv === 'nohugepage') k.run(k.madvise({ ...range, advice: madv }));
    for (let i = mem; i < mem + n; i++) k.run(k.write({ map, page: i, data: '1', ...p }));
    if (madv === 'collapse') errnoOf(() => k.run(k.madvise({ ...range, advice: 'collapse' })));
    k.run(k.mprotect({ ...range, write: false }));
    const huge = k.anonHugePagesIn({ map, page: mem, ...p }) === 1 ? 1 : 0;
    k.run(k.munmap({ map, ...p }));
    return huge;
  }

  eq(got: number, want: number): void {
    if (got !== want) throw new AssertFailed(`${got} != ${want}`);
  }

  /** prctl(PR_GET_THP_DISABLE) */
  getThpDisable(): number {
    return this.k.thp.getDisable(this.k.process(this.proc));
  }

  /** prctl(PR_SET_THP_DISABLE, disable, flags): 0 or -1 (errno) */
  setThpDisable(disable: boolean, exceptAdvised = false): number {
    return errnoOf(() => this.k.run(this.k.prctl({ thpDisable: disable, ...(exceptAdvised ? { exceptAdvised } : {}), process: this.proc }))) === 'ok' ? 0 : -1;
  }
}

/**
 * prctl_thp_disable_completely_test() / prctl_thp_disable_except_madvise_test(): the asserts in
 * order. With the prctl: GET is 1 (3 except advised); nothing gets a THP, except (EXCEPT_ADVISED)
 * MADV_HUGEPAGE where the policy is not never, and MADV_COLLAPSE. After PR_SET_THP_DISABLE 0, the
 * global policy alone: no madvise gets one under always only, MADV_HUGEPAGE unless never,
 * MADV_NOHUGEPAGE never, MADV_COLLAPSE always (it ignores the sysfs mode).
 */
function body(r: Run, fixture: Fixture, policy: Policy): void {
  const except = fixture === 'except_madvise';
  r.eq(r.getThpDisable(), except ? 3 : 1);
  r.eq(r.mmapThp('none'), 0);
  r.eq(r.mmapThp('nohugepage'), 0);
  r.eq(r.mmapThp('hugepage'), except && policy !== 'never' ? 1 : 0);
  r.eq(r.mmapThp('collapse'), except ? 1 : 0);
  r.eq(r.setThpDisable(false), 0);
  r.eq(r.mmapThp('none'), policy === 'always' ? 1 : 0);
  r.eq(r.mmapThp('nohugepage'), 0);
  r.eq(r.mmapThp('hugepage'), policy === 'never' ? 0 : 1);
  r.eq(r.mmapThp('collapse'), 1);
}

/** One TEST_F: FIXTURE_SETUP (SKIPs), then the body in this process (nofork) or in a fork child. */
function testF(arch: string, version: string, fixture: Fixture, policy: Policy, fork: boolean): Verdict {
  const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  const r = new Run(k);
  // thp_available(): /sys/kernel/mm/transparent_hugepage exists
  if (k.mmu.transparentHugepage === false) return 'SKIP';
  if (r.setThpDisable(true, fixture === 'except_madvise') !== 0) return 'SKIP';
  // thp_write_settings(): enabled = policy; the PMD order's own knob (v6.8+) inherit
  k.run(k.thpEnabled({ mode: policy }));
  if (k.thp.sizes.exist) k.run(k.thpSize({ size: k.mmu.pmdSize, enabled: 'inherit' }));
  try {
    if (fork) {
      k.run(k.fork({ as: 'child' }));
      r.proc = 'child';
    }
    body(r, fixture, policy);
    return 'pass';
  } catch (e) {
    if (e instanceof AssertFailed) return 'FAIL';
    throw e;
  }
}

/** docs/selftests.md's verdict table: fixture -> "release policy" -> verdict (nofork and fork alike). */
function documented(): Record<Fixture, Record<string, Verdict>> {
  const md = readFileSync(join(__dirname, '../../../docs/selftests.md'), 'utf8');
  const section = md.split('## Coverage: tools/testing/selftests/mm/prctl_thp_disable.c')[1]!.split('\n## ')[0]!;
  const out = { completely: {}, except_madvise: {} } as Record<Fixture, Record<string, Verdict>>;
  const list = (cell: string) => cell.split(',').map((x) => x.trim());
  for (const line of section.split('\n')) {
    const m = /^\| prctl_thp_disable_(completely|except_madvise) \| ([^|]+) \| ([^|]+) \| (pass|FAIL|SKIP) \|/.exec(line);
    if (!m) continue;
    for (const policy of list(m[2]!)) for (const v of list(m[3]!)) out[m[1] as Fixture][`${v} ${policy}`] = m[4] as Verdict;
  }
  return out;
}

describe('prctl_thp_disable.c: every TEST_F per preset, as docs/selftests.md says', () => {
  const table = documented();

  it('the table names every preset and policy once for both fixtures', () => {
    const all = RELEASES.flatMap((v) => ['never', 'madvise', 'always'].map((p) => `${v} ${p}`)).sort();
    expect(Object.keys(table.completely).sort()).toEqual(all);
    expect(Object.keys(table.except_madvise).sort()).toEqual(all);
  });

  for (const arch of Object.keys(ARCHES)) {
    for (const fixture of ['completely', 'except_madvise'] as const) {
      it(`${arch}: prctl_thp_disable_${fixture} {nofork, fork} x {never, madvise, always}`, () => {
        const got: Record<string, Verdict> = {};
        const want: Record<string, Verdict> = {};
        for (const v of RELEASES) {
          for (const policy of ['never', 'madvise', 'always'] as const) {
            for (const fork of [false, true]) {
              const name = `${v} ${policy}.${fork ? 'fork' : 'nofork'}`;
              got[name] = testF(arch, v, fixture, policy, fork);
              want[name] = table[fixture][`${v} ${policy}`]!;
            }
          }
        }
        expect(got).toEqual(want);
      });
    }
  }

  it('ppc64 hash with 4 KiB pages has no THP: every TEST_F skips ("Transparent Hugepages not available")', () => {
    const k = createKernel({ arch: ppcHash({ pageSize: '4KiB' }), kernel: 'latest' });
    expect(k.mmu.transparentHugepage).toBe(false);
    // the prctl itself works there (kernel/sys.c knows nothing of THP support)
    k.run(k.prctl({ thpDisable: true }));
    expect(k.thp.getDisable(k.process('init'))).toBe(1);
    expect(errnoOf(() => k.run(k.thpEnabled({ mode: 'always' })))).toBe('ENOENT');
  });
});

describe('PR_SET_THP_DISABLE beyond the selftest', () => {
  it('PR_GET_THP_DISABLE reads 0, 1 or 3; EXCEPT_ADVISED is EINVAL before v6.18 and with disable = 0', () => {
    const old = createKernel({ arch: x86(), kernel: 'v6.15' });
    expect(errnoOf(() => old.run(old.prctl({ thpDisable: true, exceptAdvised: true })))).toBe('EINVAL');
    expect(old.thp.getDisable(old.process('init'))).toBe(0);
    const k = createKernel({ arch: x86(), kernel: 'latest' });
    const get = () => k.thp.getDisable(k.process('init'));
    expect(get()).toBe(0);
    k.run(k.prctl({ thpDisable: true, exceptAdvised: true }));
    expect(get()).toBe(3);
    // setting it again without the flag switches to completely (the other bit cleared)
    k.run(k.prctl({ thpDisable: true }));
    expect(get()).toBe(1);
    expect(errnoOf(() => k.run(k.prctl({ thpDisable: false, exceptAdvised: true })))).toBe('EINVAL');
    expect(get()).toBe(1);
    k.run(k.prctl({ thpDisable: false }));
    expect(get()).toBe(0);
  });

  it('execve keeps the setting (MMF_DISABLE_THP_MASK is in MMF_INIT_MASK): the new program faults no THP', () => {
    for (const v of RELEASES) {
      const k = createKernel({ arch: x86(), kernel: v });
      k.run(k.prctl({ thpDisable: true }));
      k.run(k.fork({ as: 'child' }));
      k.run(k.exec({ process: 'child' }));
      expect(k.thp.getDisable(k.process('child'))).toBe(1);
      k.run(k.mmap({ anon: true, length: 2 * MiB, write: true, as: 'm', process: 'child' }));
      k.run(k.madvise({ map: 'm', advice: 'hugepage', process: 'child' }));
      k.run(k.write({ map: 'm', page: 0, data: 'x', process: 'child' }));
      expect(k.anonHugePagesIn({ map: 'm', page: 0, process: 'child' })).toBe(0);
    }
  });

  it('khugepaged skips a disabled process; the setting is read at each scan, not stored in the VMAs', () => {
    const k = createKernel({ arch: x86(), kernel: 'v6.6' });
    k.run(k.mmap({ anon: true, length: 2 * MiB, write: true, as: 'm' }));
    for (let p = 0; p < 512; p++) k.run(k.write({ map: 'm', page: p, data: `${p}` }));
    k.run(k.madvise({ map: 'm', advice: 'hugepage' }));
    k.run(k.prctl({ thpDisable: true }));
    k.run(k.khugepagedScan({ map: 'm' }));
    expect(k.anonHugePagesIn({ map: 'm', page: 0 })).toBe(0);
    k.run(k.prctl({ thpDisable: false }));
    k.run(k.khugepagedScan({ map: 'm' }));
    expect(k.anonHugePagesIn({ map: 'm', page: 0 })).toBe(1);
  });

  it("khugepaged.c alloc_at_fault(): under enabled=always a store to a fresh PMD mapping gets a THP; MADV_DONTNEED of one page splits the PMD (every preset)", () => {
    for (const v of RELEASES) {
      const k = createKernel({ arch: x86(), kernel: v });
      k.run(k.thpEnabled({ mode: 'always' }));
      k.run(k.mmap({ anon: true, length: 2 * MiB, write: true, as: 'p' }));
      k.run(k.write({ map: 'p', page: 0, data: '1' }));
      const before = k.anonHugePagesIn({ map: 'p', page: 0 });
      k.run(k.thpEnabled({ mode: 'madvise' })); // thp_pop_settings()
      k.run(k.madvise({ map: 'p', advice: 'dontneed', length: 4096 }));
      expect([v, before, k.anonHugePagesIn({ map: 'p', page: 0 })]).toEqual([v, 1, 0]);
    }
  });

  it('a read fault under enabled=always maps the huge zero page, and none under the prctl', () => {
    const k = createKernel({ arch: x86(), kernel: 'v6.6' });
    k.run(k.thpEnabled({ mode: 'always' }));
    k.run(k.mmap({ anon: true, length: 2 * MiB, as: 'm' }));
    k.run(k.read({ map: 'm', page: 3 }));
    expect(k.folioOrderIn({ map: 'm', page: 3 })).toBe(9);
    k.run(k.prctl({ thpDisable: true }));
    k.run(k.mmap({ anon: true, length: 2 * MiB, as: 'n' }));
    k.run(k.read({ map: 'n', page: 3 }));
    expect(k.folioOrderIn({ map: 'n', page: 3 })).toBe(0);
  });

  // DAX VMAs are VM_HUGEPAGE (xfs_file_mmap, dev_dax_mmap) and faults ignore the sysfs mode, but
  // thp_vma_allowable_order() asks vma_thp_disabled() first in every release
  function devdaxKernel(version: string): Kernel {
    const k = createKernel({ arch: x86(), driver: devdax(), kernel: version });
    k.run(k.probe({ driver: 'devdax', size: 64 * MiB, align: 2 * MiB, as: 'dax0' }));
    return k;
  }
  /** the level of the entry mapping page 0 of an init mapping */
  const level = (k: Kernel, map: string) => k.vm.lookup(k.process('init'), k.process('init').ranges.get(map)!.start)?.pte.level;

  it('fs-dax (XFS -o dax): a disabled process maps the file by PTEs; cleared, or EXCEPT_ADVISED (the VMA is VM_HUGEPAGE), by a PMD', () => {
    const map = (v: string, prctl: { thpDisable: boolean; exceptAdvised?: boolean } | null) => {
      const k = createKernel({ arch: x86(), fs: xfs(), driver: nvdimm(), kernel: v });
      k.run(k.probe({ size: 256 * MiB, as: 'pmem0' }));
      k.run(k.mount({ device: 'pmem0' }));
      k.run(k.create({ file: 'f', size: 2 * MiB }));
      if (prctl) k.run(k.prctl(prctl));
      k.run(k.mmap({ file: 'f', length: 2 * MiB, shared: true, write: true, as: 'f' }));
      k.run(k.write({ map: 'f', page: 0, data: 'x' }));
      return level(k, 'f');
    };
    for (const v of RELEASES) expect([v, map(v, null), map(v, { thpDisable: true })]).toEqual([v, 'pmd', 'pte']);
    expect(map('latest', { thpDisable: true, exceptAdvised: true })).toBe('pmd');
  });

  it('device-dax with 2 MiB align: a disabled process SIGBUSes (the PTE fault is smaller than the align); EXCEPT_ADVISED does not touch it', () => {
    for (const v of RELEASES) {
      const k = devdaxKernel(v);
      k.run(k.prctl({ thpDisable: true }));
      k.run(k.mmap({ device: 'dax0', length: 2 * MiB, shared: true, write: true, as: 'd' }));
      expect(errnoOf(() => k.run(k.write({ map: 'd', page: 0, data: 'x' })))).toBe('SIGBUS');
      k.run(k.prctl({ thpDisable: false }));
      k.run(k.write({ map: 'd', page: 0, data: 'x' }));
      expect(level(k, 'd')).toBe('pmd');
    }
    const k = devdaxKernel('latest');
    k.run(k.prctl({ thpDisable: true, exceptAdvised: true }));
    k.run(k.mmap({ device: 'dax0', length: 2 * MiB, shared: true, write: true, as: 'd' }));
    k.run(k.write({ map: 'd', page: 0, data: 'x' }));
    expect(level(k, 'd')).toBe('pmd');
  });
});
