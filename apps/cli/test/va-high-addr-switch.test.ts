import { createKernel, PRESETS, type ArchPlugin, type Kernel } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { ppcHash } from '@daxlab/arch-ppc-hash';
import { s390 } from '@daxlab/arch-s390';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { errnoOf } from './selftest-api.js';

// tools/testing/selftests/mm/va_high_addr_switch.c through the kernel API: testcases_init()'s two
// tables run by run_test() in one process, as `va_high_addr_switch --run-hugetlb` does (the
// hugetlb table after the other). Each case is OK, MAP_FAILED, or FAILED because a mapping that
// must stay below addr_switch_hint did not. The expected verdicts come from reading
// get_unmapped_area() per arch (docs/selftests.md, "Coverage: va_high_addr_switch.c"):
// - MAP_FIXED at or above the switch is ENOMEM where TASK_SIZE is the window itself (x86 4-level
//   paging, arm64 48-bit VA, ppc64 4K pages), which the selftest reports as FAILED;
// - a hint one page below the switch with two pages never lands above it: x86 refuses a hint that
//   crosses DEFAULT_MAP_WINDOW (mmap_address_hint_valid()), arm64 and powerpc a hint that ends
//   above the window the hint itself is in — except the hugetlb case on x86 from v6.13 [M]:
//   hugetlbfs aligns the hint up to the huge page, i.e. to the switch itself, which is valid.

const KiB = 1024;
const MiB = 1024 * KiB;

interface Case {
  readonly msg: string;
  readonly addr: number | null;
  readonly size: number;
  readonly fixed?: boolean;
  readonly huge?: boolean;
  readonly low?: boolean;
  readonly keep?: boolean;
}

/** testcases_init(): the arch's switch hint (ADDR_MARK_256TB on arm64 unless 16K pages) and high address. */
function tables(arch: string, ps: number, huge: number): { switchHint: number; cases: Case[]; hugeCases: Case[] } {
  const wide = arch === 'arm64' && ps !== 16 * KiB;
  const switchHint = wide ? 2 ** 48 : 2 ** 47;
  const high = wide ? 2 ** 49 : 2 ** 48;
  const low = 2 ** 30;
  const cases: Case[] = [
    { msg: 'mmap(addr_switch_hint - pagesize, pagesize)', addr: switchHint - ps, size: ps, low: true },
    { msg: 'mmap(addr_switch_hint - pagesize, (2 * pagesize))', addr: switchHint - ps, size: 2 * ps, low: true },
    { msg: 'mmap(addr_switch_hint, pagesize)', addr: switchHint, size: ps, keep: true },
    { msg: 'mmap(addr_switch_hint, 2 * pagesize, MAP_FIXED)', addr: switchHint, size: 2 * ps, fixed: true },
    { msg: 'mmap(NULL)', addr: null, size: 2 * ps, low: true },
    { msg: 'mmap(low_addr)', addr: low, size: 2 * ps, low: true },
    { msg: 'mmap(high_addr)', addr: high, size: 2 * ps, keep: true },
    { msg: 'mmap(high_addr) again', addr: high, size: 2 * ps, keep: true },
    { msg: 'mmap(high_addr, MAP_FIXED)', addr: high, size: 2 * ps, fixed: true },
    { msg: 'mmap(-1)', addr: -1, size: 2 * ps, keep: true },
    { msg: 'mmap(-1) again', addr: -1, size: 2 * ps },
    { msg: 'mmap(addr_switch_hint - pagesize, pagesize)', addr: switchHint - ps, size: ps, low: true },
    { msg: 'mmap(addr_switch_hint - pagesize, 2 * pagesize)', addr: switchHint - ps, size: 2 * ps, low: true, keep: true },
    { msg: 'mmap(addr_switch_hint - pagesize/2 , 2 * pagesize)', addr: switchHint - ps / 2, size: 2 * ps, low: true, keep: true },
    { msg: 'mmap(addr_switch_hint, pagesize)', addr: switchHint, size: ps },
    { msg: 'mmap(addr_switch_hint, 2 * pagesize, MAP_FIXED)', addr: switchHint, size: 2 * ps, fixed: true },
  ];
  const hugeCases: Case[] = [
    { msg: 'mmap(NULL, MAP_HUGETLB)', addr: null, size: huge, huge: true, low: true },
    { msg: 'mmap(low_addr, MAP_HUGETLB)', addr: low, size: huge, huge: true, low: true },
    { msg: 'mmap(high_addr, MAP_HUGETLB)', addr: high, size: huge, huge: true, keep: true },
    { msg: 'mmap(high_addr, MAP_HUGETLB) again', addr: high, size: huge, huge: true, keep: true },
    { msg: 'mmap(high_addr, MAP_FIXED | MAP_HUGETLB)', addr: high, size: huge, huge: true, fixed: true },
    { msg: 'mmap(-1, MAP_HUGETLB)', addr: -1, size: huge, huge: true, keep: true },
    { msg: 'mmap(-1, MAP_HUGETLB) again', addr: -1, size: huge, huge: true },
    { msg: 'mmap(addr_switch_hint - pagesize, 2*hugepagesize, MAP_HUGETLB)', addr: switchHint - ps, size: 2 * huge, huge: true, low: true, keep: true },
    { msg: 'mmap(addr_switch_hint , 2*hugepagesize, MAP_FIXED | MAP_HUGETLB)', addr: switchHint, size: 2 * huge, huge: true, fixed: true },
  ];
  return { switchHint, cases, hugeCases };
}

let n = 0;
/** run_test(): 'OK', the errno of a MAP_FAILED, or 'HIGH' for a mapping at or above the switch that had to stay below it. */
function runTest(k: Kernel, cases: readonly Case[], switchHint: number): string[] {
  return cases.map((t) => {
    const as = `p${n++}`;
    const where = t.addr === null ? {} : t.fixed ? { fixed: { addr: t.addr } } : { addr: t.addr };
    const err = errnoOf(() => k.run(k.mmap({ anon: true, length: t.size, write: true, ...(t.huge ? { hugetlb: 'default' as const } : {}), ...where, as })));
    if (err !== 'ok') return err;
    const p = k.addressIn({ map: as });
    const verdict = t.low && p >= switchHint ? 'HIGH' : 'OK';
    // memset(p, 0, size): a write fault in every base page
    if (verdict === 'OK') for (let page = 0; page < t.size / k.mmu.basePageSize; page++) k.run(k.write({ map: as, page, data: 'x' }));
    if (!t.keep) k.run(k.munmap({ map: as }));
    return verdict;
  });
}

/** Both tables in one process; the huge page pool holds what the kept hugetlb mappings need (run_vmtests.sh sets 6 pages on arm64). */
function run(arch: ArchPlugin, version: string, large: boolean): { cases: string[]; huge: string[]; addresses: Map<string, number>; k: Kernel } {
  const k = createKernel({ arch, kernel: version, features: { 'large-user-va': large } });
  const huge = k.mmu.defaultHugetlbSize ?? k.mmu.pmdSize;
  // ppc64 hash's 16 MiB pages are mapped by a hugepd, which the model refuses: no hugetlb table there
  const pool = errnoOf(() => k.run(k.hugetlbPool({ size: huge, pages: 8 })));
  const t = tables(k.mmu.arch, k.mmu.basePageSize, huge);
  const first = n;
  const cases = runTest(k, t.cases, t.switchHint);
  const hugeResults = pool === 'ok' ? runTest(k, t.hugeCases, t.switchHint) : [pool];
  const addresses = new Map<string, number>();
  for (let i = first; i < n; i++) if (k.processes.get('init')!.ranges.has(`p${i}`)) addresses.set(`p${i - first}`, k.addressIn({ map: `p${i}` }));
  return { cases, huge: hugeResults, addresses, k };
}

const ALL_OK = Array(16).fill('OK');
const RELEASES = PRESETS.map((p) => p.name);

describe('va_high_addr_switch.c: the user address space per arch', () => {
  it('x86 with 5-level paging (large-user-va): every case OK; the hugetlb hint below the switch stays low until v6.13 [M]', () => {
    for (const v of RELEASES) {
      const r = run(x86(), v, true);
      expect([v, ...r.cases]).toEqual([v, ...ALL_OK]);
      // before v6.13 arch/x86 masks the hint down to the huge page (2^47 - 2 MiB, crossing the window:
      // refused); hugetlbfs's ALIGN() after it puts the hint at 2^47, valid on its side of the window
      const eighth = v === 'v6.15' || v === 'latest' ? 'HIGH' : 'OK';
      expect([v, ...r.huge]).toEqual([v, 'OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'OK', eighth, 'OK']);
    }
  });

  it('x86 with 4-level paging: MAP_FIXED at 128 TiB and 256 TiB is ENOMEM (TASK_SIZE is the window); the .sh skips the test', () => {
    for (const v of RELEASES) {
      const r = run(x86(), v, false);
      const fixedFails = ALL_OK.map((x, i) => ([3, 8, 15].includes(i) ? 'ENOMEM' : x));
      expect([v, ...r.cases]).toEqual([v, ...fixedFails]);
      expect([v, ...r.huge]).toEqual([v, 'OK', 'OK', 'OK', 'OK', 'ENOMEM', 'OK', 'OK', 'OK', 'ENOMEM']);
    }
  });

  it('x86 5-level: where the hints land (ASLR off: mmap_base = (1 << 47) - PAGE_SIZE - 128 MiB)', () => {
    const r = run(x86(), 'v6.6', true);
    const task = 2 ** 56 - 4 * KiB;
    const window = 2 ** 47 - 4 * KiB;
    // the search a hint above the window opens starts at mmap_base + TASK_SIZE_MAX - DEFAULT_MAP_WINDOW
    const highBase = window - 128 * MiB + task - window;
    expect(r.addresses.get('p2')).toBe(2 ** 47); // mmap(addr_switch_hint, pagesize): exact, free
    expect(r.addresses.get('p6')).toBe(2 ** 48); // mmap(high_addr): exact
    expect(r.addresses.get('p7')).toBe(highBase - 8 * KiB); // again: top-down below the high base
    expect(r.addresses.get('p9')).toBe(highBase - 16 * KiB); // mmap(-1): invalid hint, above the window
    expect(r.addresses.get('p5')).toBe(2 ** 30); // mmap(low_addr): exact
    expect(r.addresses.get('p12')).toBeLessThan(2 ** 47); // the model's own placement, below the window
  });

  it('arm64 48-bit VA: the three MAP_FIXED cases above 256 TiB fail (TASK_SIZE 1 << 48); 52-bit with 64K pages passes', () => {
    for (const v of RELEASES) {
      const r = run(arm64(), v, false);
      expect([v, ...r.cases]).toEqual([v, ...ALL_OK.map((x, i) => ([3, 8, 15].includes(i) ? 'ENOMEM' : x))]);
      expect([v, ...r.huge]).toEqual([v, 'OK', 'OK', 'OK', 'OK', 'ENOMEM', 'OK', 'OK', 'OK', 'ENOMEM']);
      const w = run(arm64({ pageSize: '64KiB' }), v, true);
      // generic_get_unmapped_area_topdown(): a hint at exactly 1 << 48 is not above the window, so
      // mmap(addr_switch_hint) searches low; every case still passes its check
      expect([v, ...w.cases]).toEqual([v, ...ALL_OK]);
      expect([v, ...w.huge]).toEqual([v, ...Array(9).fill('OK')]);
      expect(w.addresses.get('p2')).toBeLessThan(2 ** 48);
      expect(w.addresses.get('p6')).toBe(2 ** 49);
    }
  });

  it('arm64 52-bit VA with 4K pages exists from v6.9 (LPA2): refused before', () => {
    expect(() => createKernel({ arch: arm64(), kernel: 'v6.6', features: { 'large-user-va': true } })).toThrow(/LPA2/);
    expect(run(arm64(), 'v6.15', true).cases).toEqual(ALL_OK);
  });

  it('ppc64 hash 64K: 128 TiB window, 4 PiB TASK_SIZE, every case OK; 4K pages (64 TiB): the fixed cases ENOMEM', () => {
    for (const v of RELEASES) {
      const r = run(ppcHash(), v, false);
      expect([v, ...r.cases, ...r.huge]).toEqual([v, ...ALL_OK, ...Array(9).fill('OK')]);
      // slice_get_unmapped_area(): a hint at 128 TiB is at the window (>=): high_limit is TASK_SIZE
      expect(r.addresses.get('p2')).toBe(2 ** 47);
      const small = run(ppcHash({ pageSize: '4KiB' }), v, false);
      expect([v, ...small.cases]).toEqual([v, ...ALL_OK.map((x, i) => ([3, 8, 15].includes(i) ? 'ENOMEM' : x))]);
      // with 4K pages the 16 MiB huge page is mapped by a hugepd: refused as not modelled
      expect(small.huge).toEqual(['EINVAL']);
    }
  });

  it('s390: any free hint below TASK_SIZE is taken (crst_table_upgrade()); the test itself is skipped there', () => {
    const r = run(s390(), 'latest', false);
    // mmap(addr_switch_hint - pagesize, pagesize) lands right there: below the switch, so OK
    expect(r.cases[0]).toBe('OK');
    expect(r.addresses.get('p6')).toBe(2 ** 48);
    // 2 pages at switch - 1 page are taken too, across 2^47, with nothing there: the selftest's
    // low_addr_required holds only because the mapping starts below the switch
    expect(r.cases).toEqual(ALL_OK);
  });
});
