import { createKernel, PRESETS, type Kernel } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { ARCHES, errnoOf, fails } from './selftest-api.js';

// tools/testing/selftests/mm/memfd_secret.c (docs/selftests.md, "Coverage: memfd_secret.c"),
// driven through the kernel API independently of the scenarios in
// apps/cli/scenarios/selftests/memfd-secret: the verdict each test prints, per arch and release,
// in the order main() runs them on one fd.

const RELEASES = PRESETS.map((p) => p.name);
type Verdict = 'pass' | 'FAIL' | 'SKIP';
const TESTS = ['mlock limit', 'vmsplice fresh page', 'vmsplice existing page', 'process_vm_read', 'ptrace'] as const;

/** main(): prepare() (RLIMIT_MEMLOCK 8 MiB, no CAP_IPC_LOCK), memfd_secret(0) (ENOSYS: SKIP all), ftruncate(page_size), then each test. */
function run(arch: string, version: string, features: Record<string, unknown> = {}): Record<(typeof TESTS)[number], Verdict> | 'SKIP' {
  const k: Kernel = createKernel({ arch: ARCHES[arch]!(), kernel: version, features });
  const ps = k.mmu.basePageSize;
  const MiB = 2 ** 20;
  k.run(k.setrlimit({ memlock: 8 * MiB }));
  if (errnoOf(() => k.run(k.memfdSecret({ file: 'fd', size: ps }))) === 'ENOSYS') return 'SKIP';
  const map = (as: string, length = ps) => k.run(k.mmap({ file: 'fd', length, shared: true, write: true, as }));
  const verdict = (ok: boolean): Verdict => (ok ? 'pass' : 'FAIL');
  // test_mlock_limit: the soft limit maps, twice the hard limit does not
  const mlock = verdict(!fails(() => map('lim', 8 * MiB)) && !fails(() => k.run(k.munmap({ map: 'lim' }))) && fails(() => map('big', 16 * MiB)));
  // test_vmsplice: mmap, memset, vmsplice must be EFAULT; close(pipe), munmap
  const vmsplice = (as: string): Verdict => {
    map(as);
    k.run(k.write({ map: as, page: 0, data: '0x55' }));
    const e = errnoOf(() => k.run(k.gup({ map: as, page: 0, fast: true, as: `${as}-pipe` }, false)));
    if (e === 'ok') k.run(k.put({ name: `${as}-pipe` }));
    k.run(k.munmap({ map: as }));
    return verdict(e === 'EFAULT');
  };
  const fresh = vmsplice('fresh');
  const existing = vmsplice('existing');
  // test_remote_access: fork, the parent maps and fills the page, the child reads it remotely; blocked = an error
  const remote = (via: 'process_vm_readv' | 'ptrace'): Verdict => {
    k.run(k.fork({ as: `${via}-child` }));
    map(via);
    k.run(k.write({ map: via, page: 0, data: '0x55' }));
    const blocked = fails(() => k.run(k.remoteRead({ map: via, page: 0, via })));
    k.run(k.exit({ process: `${via}-child` }));
    return verdict(blocked);
  };
  return { 'mlock limit': mlock, 'vmsplice fresh page': fresh, 'vmsplice existing page': existing, process_vm_read: remote('process_vm_readv'), ptrace: remote('ptrace') };
}

describe('memfd_secret.c verdicts per arch and release', () => {
  // memfd_secret() exists from v5.14 on x86-64 and arm64 and from v6.4 on s390, never on powerpc,
  // and is on by default from v6.5: among the presets, v6.6 on. Before v6.9 GUP-fast let a page
  // still in the LRU add batch through (65291dcfcf89): v6.6 FAILs "vmsplice fresh page" only.
  const allPass = Object.fromEntries(TESTS.map((t) => [t, 'pass']));
  const want = (arch: string, version: string) => {
    if (arch === 'ppc-hash' || !['v6.6', 'v6.15', 'latest'].includes(version)) return 'SKIP';
    return version === 'v6.6' ? { ...allPass, 'vmsplice fresh page': 'FAIL' } : allPass;
  };
  for (const arch of Object.keys(ARCHES)) {
    it(arch, () => {
      expect(Object.fromEntries(RELEASES.map((v) => [v, run(arch, v)]))).toEqual(Object.fromEntries(RELEASES.map((v) => [v, want(arch, v)])));
    });
  }

  it('with secretmem.enable=1, v6.1 and v6.3 run the tests, with v6.6\'s verdicts', () => {
    for (const v of ['v6.1', 'v6.3']) expect(run('x86', v, { secretmem: 'enabled' })).toEqual(want('x86', 'v6.6'));
  });
});
