import { createKernel, getMdwe, PRESETS, setMdwe, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ARCHES, errnoOf } from './selftest-api.js';

// tools/testing/selftests/mm/mdwe_test.c (torvalds/linux, as of 2dc539ac4d2f "kselftest: vm: add
// tests for no-inherit memory-deny-write-execute", v6.7) through the kernel API, independently of
// the scenarios in apps/cli/scenarios/selftests/mdwe: every TEST and TEST_F of every variant on
// every preset, its verdict compared with the table docs/selftests.md ("Coverage:
// tools/testing/selftests/mm/mdwe_test.c") wrote from kernel/sys.c prctl_set_mdwe() /
// prctl_get_mdwe() and include/linux/mman.h map_deny_write_exec() before the model ran them.

const RELEASES = PRESETS.map((p) => p.name);
type Verdict = 'pass' | 'FAIL' | 'SKIP';
const REFUSE_EXEC_GAIN = 1;
const NO_INHERIT = 2;

class AssertFailed extends Error {}

/** The harness's assertions: an EXPECT or ASSERT that does not hold fails the test (EXPECTs are counted the same way). */
function check(ok: boolean, what: string): void {
  if (!ok) throw new AssertFailed(what);
}

function verdictOf(body: () => void): Verdict {
  try {
    body();
    return 'pass';
  } catch (e) {
    if (e instanceof AssertFailed) return 'FAIL';
    throw e;
  }
}

/** prctl(PR_SET_MDWE, bits, rest...): 0, or the errno (-1 with errno set). */
function set(k: Kernel, proc: string, bits: number, rest: readonly number[] = []): string {
  return errnoOf(() => setMdwe(k.version, k.process(proc), bits, rest));
}

/** prctl(PR_GET_MDWE, args...): the value, or the errno. */
function get(k: Kernel, proc: string, args: readonly number[] = []): number | string {
  try {
    return getMdwe(k.version, k.process(proc), args);
  } catch (e) {
    return errnoOf(() => {
      throw e;
    });
  }
}

/** TEST(prctl_flags): each call returns < 0 with errno EINVAL. */
function prctlFlags(k: Kernel): void {
  check(set(k, 'init', NO_INHERIT, [0, 0, 7]) === 'EINVAL', 'PR_SET_MDWE NO_INHERIT with arg5');
  check(set(k, 'init', 7) === 'EINVAL', 'PR_SET_MDWE 7');
  for (const rest of [[7, 0, 0], [0, 7, 0], [0, 0, 7]]) check(set(k, 'init', 0, rest) === 'EINVAL', `PR_SET_MDWE 0 ${rest}`);
  for (const args of [[7, 0, 0, 0], [0, 7, 0, 0], [0, 0, 7, 0], [0, 0, 0, 7]]) check(get(k, 'init', args) === 'EINVAL', `PR_GET_MDWE ${args}`);
}

const CONSECUTIVE: Record<string, [first: number, second: number, shouldWork: boolean]> = {
  can_keep_no_flags: [0, 0, true],
  can_keep_exec_gain: [REFUSE_EXEC_GAIN, REFUSE_EXEC_GAIN, true],
  can_keep_both_flags: [REFUSE_EXEC_GAIN | NO_INHERIT, REFUSE_EXEC_GAIN | NO_INHERIT, true],
  cant_disable_mdwe: [REFUSE_EXEC_GAIN, 0, false],
  cant_disable_mdwe_no_inherit: [REFUSE_EXEC_GAIN | NO_INHERIT, 0, false],
  cant_disable_no_inherit: [REFUSE_EXEC_GAIN | NO_INHERIT, REFUSE_EXEC_GAIN, false],
  cant_enable_no_inherit: [REFUSE_EXEC_GAIN, REFUSE_EXEC_GAIN | NO_INHERIT, false],
};

/** TEST_F(consecutive_prctl_flags, two_prctls). */
function twoPrctls(k: Kernel, [first, second, shouldWork]: [number, number, boolean]): void {
  check(set(k, 'init', first) === 'ok', 'first PR_SET_MDWE');
  const ret = set(k, 'init', second);
  if (shouldWork) {
    check(ret === 'ok', 'second PR_SET_MDWE');
    check(get(k, 'init') === second, 'PR_GET_MDWE');
  } else {
    check(ret !== 'ok', 'second PR_SET_MDWE succeeded');
    check(ret === 'EPERM', `errno ${ret}, not EPERM`);
  }
}

interface Variant {
  enabled: boolean;
  forked: boolean;
  inherit: boolean;
}
const VARIANTS: Record<string, Variant> = {
  stock: { enabled: false, forked: false, inherit: false },
  enabled: { enabled: true, forked: false, inherit: true },
  inherited: { enabled: true, forked: true, inherit: true },
  not_inherited: { enabled: true, forked: true, inherit: false },
};
const shouldFail = (v: Variant) => v.enabled && (!v.forked || v.inherit);

/** One-page MAP_SHARED|MAP_ANONYMOUS mappings, as self->flags and self->size. */
class Fixture {
  private n = 0;
  proc = 'init';
  constructor(readonly k: Kernel) {}

  mmap(prot: { write?: boolean; exec?: boolean }, fixedOver?: string): string | null {
    const as = `p${this.n++}`;
    const ok = errnoOf(() => this.k.run(this.k.mmap({ anon: true, shared: true, length: this.k.mmu.basePageSize, ...prot, ...(fixedOver ? { fixed: { map: fixedOver } } : {}), process: this.proc, as }))) === 'ok';
    return ok ? as : null;
  }

  mprotect(map: string, prot: { write: boolean; exec: boolean }): boolean {
    return errnoOf(() => this.k.run(this.k.mprotect({ map, ...prot, process: this.proc }))) === 'ok';
  }
}

const MDWE_TESTS: Record<string, (f: Fixture, v: Variant) => void> = {
  mmap_READ_EXEC: (f) => check(f.mmap({ exec: true }) !== null, 'mmap PROT_READ|PROT_EXEC'),
  mmap_WRITE_EXEC: (f, v) => check((f.mmap({ write: true, exec: true }) === null) === shouldFail(v), 'mmap PROT_WRITE|PROT_EXEC'),
  mprotect_stay_EXEC: (f) => {
    const p = f.mmap({ exec: true });
    check(p !== null, 'mmap');
    check(f.mprotect(p!, { write: false, exec: true }), 'mprotect PROT_READ|PROT_EXEC');
  },
  mprotect_add_EXEC: (f, v) => {
    const p = f.mmap({});
    check(p !== null, 'mmap');
    check(f.mprotect(p!, { write: false, exec: true }) !== shouldFail(v), 'mprotect PROT_READ|PROT_EXEC');
  },
  mprotect_WRITE_EXEC: (f, v) => {
    const p = f.mmap({ write: true });
    check(p !== null, 'mmap');
    check(f.mprotect(p!, { write: true, exec: true }) !== shouldFail(v), 'mprotect PROT_WRITE|PROT_EXEC');
  },
  mmap_FIXED: (f) => {
    const p = f.mmap({});
    check(p !== null, 'mmap');
    const q = f.mmap({ exec: true }, p!);
    // EXPECT_EQ(p, self->p): the new mapping starts where the old one did
    check(q !== null && f.k.vmaStartIn({ map: p!, page: 0, process: f.proc }) === 0, 'MAP_FIXED PROT_READ|PROT_EXEC');
  },
  // no modelled CPU reports HWCAP2_BTI (and PROT_BTI is 0 elsewhere): SKIP after FIXTURE_SETUP
  arm64_BTI: () => {
    throw new Skip();
  },
};
class Skip extends Error {}

/** FIXTURE_SETUP(mdwe), then the TEST_F body in the test process or its fork child. */
function mdweTestF(arch: string, version: string, variant: Variant, test: string): Verdict {
  const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  const f = new Fixture(k);
  return verdictOf(() => {
    if (variant.enabled) {
      const bits = REFUSE_EXEC_GAIN | (variant.inherit ? 0 : NO_INHERIT);
      check(set(k, 'init', bits) === 'ok', 'PR_SET_MDWE failed or unsupported');
      check(get(k, 'init') === bits, 'PR_GET_MDWE');
      if (variant.forked) {
        k.run(k.fork({ as: 'child' }));
        f.proc = 'child';
      }
    }
    MDWE_TESTS[test]!(f, variant); // a Skip leaves verdictOf() for verdict()
  });
}

function verdict(arch: string, version: string, row: string): Verdict {
  const [group, name] = row.split('.') as [string, string | undefined];
  if (group === 'prctl_flags') return verdictOf(() => prctlFlags(createKernel({ arch: ARCHES[arch]!(), kernel: version })));
  if (group === 'consecutive_prctl_flags') return verdictOf(() => twoPrctls(createKernel({ arch: ARCHES[arch]!(), kernel: version }), CONSECUTIVE[name!]!));
  const [variant, test] = name!.split(':') as [string, string];
  try {
    return mdweTestF(arch, version, VARIANTS[variant]!, test);
  } catch (e) {
    if (e instanceof Skip) return 'SKIP';
    throw e;
  }
}

/** Every row the harness prints: "prctl_flags", "consecutive_prctl_flags.<variant>", "mdwe.<variant>:<test>". */
const ROWS = [
  'prctl_flags',
  ...Object.keys(CONSECUTIVE).map((v) => `consecutive_prctl_flags.${v}`),
  ...Object.keys(VARIANTS).flatMap((v) => Object.keys(MDWE_TESTS).map((t) => `mdwe.${v}:${t}`)),
];

/** docs/selftests.md's table: "row release" -> verdict; a row's first cell may name several tests ("mdwe.enabled:{a, b}"). */
function documented(): Record<string, Verdict> {
  const md = readFileSync(join(__dirname, '../../../docs/selftests.md'), 'utf8');
  const section = md.split('## Coverage: tools/testing/selftests/mm/mdwe_test.c')[1]!.split('\n## ')[0]!;
  const lines = section.split('\n').filter((l) => l.startsWith('|'));
  const header = lines[0]!.split('|').slice(2, -2).map((c) => c.split(',').map((v) => v.trim()));
  const out: Record<string, Verdict> = {};
  for (const line of lines.slice(2)) {
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    const names = expand(cells[0]!.replace(/`/g, ''));
    header.forEach((versions, i) => {
      const v = /^\**(pass|FAIL|SKIP)\**$/.exec(cells[i + 1]!)?.[1] as Verdict | undefined;
      if (!v) throw new Error(`docs/selftests.md mdwe_test.c: '${cells[i + 1]}' is not a verdict in row ${cells[0]}`);
      for (const n of names) for (const r of versions) out[`${n} ${r}`] = v;
    });
  }
  return out;
}

/** "mdwe.{enabled, inherited}:{a, b}" -> the four names. */
function expand(cell: string): string[] {
  const m = /^(.*?)\{([^}]*)\}(.*)$/.exec(cell);
  if (!m) return [cell];
  return m[2]!.split(',').flatMap((x) => expand(`${m[1]}${x.trim()}${m[3]}`));
}

describe('mdwe_test.c: every TEST and TEST_F per preset, as docs/selftests.md says', () => {
  const table = documented();

  it('the table names every test once for every preset', () => {
    expect(Object.keys(table).sort()).toEqual(ROWS.flatMap((r) => RELEASES.map((v) => `${r} ${v}`)).sort());
  });

  for (const arch of Object.keys(ARCHES)) {
    it(`${arch}: ${ROWS.length} tests x ${RELEASES.length} presets`, () => {
      const got: Record<string, Verdict> = {};
      for (const r of ROWS) for (const v of RELEASES) got[`${r} ${v}`] = verdict(arch, v, r);
      expect(got).toEqual(table);
    });
  }
});

describe('PR_SET_MDWE beyond the selftest', () => {
  it('execve keeps MMF_HAS_MDWE (MMF_INIT_MASK) and drops it with PR_MDWE_NO_INHERIT (mmf_init_flags())', () => {
    for (const [bits, after] of [[1, 1], [3, 0]] as const) {
      const k = createKernel({ arch: x86(), kernel: 'latest' });
      k.run(k.prctl({ mdwe: bits }));
      k.run(k.exec({}));
      expect([bits, getMdwe(k.version, k.process('init'))]).toEqual([bits, after]);
      const wx = errnoOf(() => k.run(k.mmap({ anon: true, length: 4096, write: true, exec: true, as: 'wx' })));
      expect(wx).toBe(after ? 'EACCES' : 'ok');
    }
  });

  it('MAP_FIXED with PROT_WRITE|PROT_EXEC over a mapping: EACCES; before v6.12 the old mapping was already unmapped, from v6.12 it stays', () => {
    const run = (version: string) => {
      const k = createKernel({ arch: x86(), kernel: version });
      k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'old' }));
      k.run(k.write({ map: 'old', page: 0, data: 'kept' }));
      k.run(k.prctl({ mdwe: 1 }));
      const e = errnoOf(() => k.run(k.mmap({ anon: true, length: 4096, write: true, exec: true, fixed: { map: 'old' }, as: 'wx' })));
      return [e, k.vmaPagesIn({ map: 'old', page: 0 })];
    };
    // mmap_region() unmapped the range (do_vmi_munmap()) before the check, which came after ->mmap
    expect(run('v6.6')).toEqual(['EACCES', 0]);
    // "mm: resolve faulty mmap_region() error path behaviour": the check is the first thing mmap_region() does
    expect(run('v6.15')).toEqual(['EACCES', 1]);
  });

  it('mprotect(PROT_EXEC) over two VMAs: the first (already executable) changes, the second is refused, EACCES', () => {
    const k = createKernel({ arch: x86(), kernel: 'v6.15' });
    k.run(k.mmap({ anon: true, length: 2 * 4096, as: 'm' }));
    k.run(k.mprotect({ map: 'm', length: 4096, write: false, exec: true }));
    expect(k.vmaPagesIn({ map: 'm', page: 0 })).toBe(1);
    k.run(k.prctl({ mdwe: 1 }));
    // PROT_READ|PROT_EXEC again on the first page is allowed, PROT_EXEC gained on the second is not
    expect(errnoOf(() => k.run(k.mprotect({ map: 'm', write: false, exec: true })))).toBe('EACCES');
    // dropping PROT_EXEC is always allowed; gaining it back is not
    k.run(k.mprotect({ map: 'm', length: 4096, write: false }));
    expect(errnoOf(() => k.run(k.mprotect({ map: 'm', length: 4096, write: false, exec: true })))).toBe('EACCES');
  });

  it('PR_MDWE_NO_INHERIT is EINVAL before v6.7 and alone; PR_GET_MDWE and PR_SET_MDWE are EINVAL before v6.3', () => {
    const k = (v: string) => createKernel({ arch: x86(), kernel: v });
    expect(errnoOf(() => setMdwe('v6.6', k('v6.6').process('init'), 3))).toBe('EINVAL');
    expect(errnoOf(() => setMdwe('latest', k('latest').process('init'), 2))).toBe('EINVAL');
    expect(errnoOf(() => getMdwe('v6.1', k('v6.1').process('init')))).toBe('EINVAL');
    const old = k('v6.1');
    expect(errnoOf(() => old.run(old.prctl({ mdwe: 1 })))).toBe('EINVAL');
  });
});
