import { createKernel, KernelError, Monitor, PG, PRESETS, runScenario, type CellKernelRequest, type Kernel, type Op } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { ext4 } from '@daxlab/fs-ext4';
import { fuse } from '@daxlab/fs-fuse';
import { xfs } from '@daxlab/fs-xfs';
import { basename, dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinCatalog } from '../src/catalog.js';
import { kernelsFor } from '../src/kernel.js';
import { collectScenarioFiles, LIBRARY_DIR, loadScenarios } from '../src/scenarios.js';
import { errnoOf } from './selftest-api.js';

// Conformance with the kernel's own mm selftests (docs/selftests.md): the scenario library in
// apps/cli/scenarios/selftests must pass in every cell of the default matrix, and — checked
// independently of the scenarios' own `when` rules — the model must give, release by release,
// the verdict the selftest itself prints on that release.

const RELEASES = PRESETS.map((p) => p.name);
const catalog = builtinCatalog();

/** An arch plugin's own refusal of a kernel (ArchPlugin.unsupported: e.g. no ZONE_DEVICE in that release). */
const archRefusal = (k: CellKernelRequest, r: { status: string; reason: string | null }) => r.status === 'unsupported' && (r.reason ?? '').startsWith(`${catalog.arch[k.arch]!({}).name}:`);

describe('the selftests scenario library passes the default matrix', () => {
  const dir = join(LIBRARY_DIR, 'selftests');
  const loaded = loadScenarios(collectScenarioFiles([dir], dir), dir);
  const scenarios = loaded.map((l) => {
    if (!l.ok) throw new Error(l.reason);
    return l.scenario;
  });

  it('has one scenario per modelled case of each family (one directory per family)', () => {
    const count: Record<string, number> = {};
    for (const l of loaded) count[basename(dirname(l.file))] = (count[basename(dirname(l.file))] ?? 0) + 1;
    // cow.c: 14 anon cases on a base page and 14 in each of the five THP contexts (cow-thp: PMD-mapped, PTE-mapped, single PTE, partially mremap()ed, partially shared) and the 3 non-anon cases on the huge zeropage; 3 non-anon cases with the shared zeropage and 3 with
    // a tmpfile on fs-dax; gup_longterm.c: 8 GUP cases on fs-dax, 4 on device-dax; gup_test: 5
    // ioctls on private anon memory, the same 5 on anonymous THPs (-t) and one run on a shared
    // fs-dax file; soft-dirty.c: 3 anon cases, test_hugepage and the file case on fs-dax; gaps: 1 case no shipped test covers (a R/O pin of a
    // reflinked fs-dax page); pfnmap.c: its 6 TEST_Fs on /dev/mem; madv_populate.c: 5 of its 6
    // test functions (not test_prot_write: PROT_WRITE without PROT_READ is not modelled)
    // cow.c and gup_longterm.c with memfd (shmem): 3 non-anon cases, 8 GUP cases; gup_test -S (shmem): 1;
    // soft-dirty.c test_mprotect_file on tmpfs: 1
    // hugetlb: cow.c's 14 anon cases and 3 non-anon cases with a hugetlbfs memfd (cow-hugetlb);
    // gup_longterm.c's 8 GUP cases with memfd-hugetlb; its 8 GUP cases on a page-cache tmpfile on
    // non-DAX ext4 and on xfs (16); cow.c's 3 non-anon cases with tmpfile() on non-DAX ext4 and xfs (6)
    // cow.c's 14 anon cases on a swapped-out base page and "vmsplice() + unmap in child" in the three
    // swapped-out THP contexts (cow-swap); cow.c's 14 anon cases on a PTE-mapped 64 KiB mTHP (cow-mthp);
    // cow.c's 4 anon THP collapse cases (cow-collapse); ksm_functional_tests.c: test_unmerge, test_unmerge_discarded,
    // test_unmerge_zero_pages, test_prot_none, test_prctl, test_prctl_fork, test_prctl_fork_exec, test_prctl_unmerge, test_fork_ksm_merging_page_count, test_unmerge_uffd_wp (ksm)
    // mkdirty.c: test_ptrace_write, test_ptrace_write_thp, test_pte_mapped_thp, test_page_migration, test_page_migration_thp, test_uffdio_copy (mkdirty: 6)
    // migration.c: private_anon, shared_anon, private_anon_thp, shared_anon_thp, private_anon_htlb, shared_anon_htlb on two nodes (migration: 6)
    // map_populate.c on a memfd, a non-DAX ext4 and xfs tmpfile and a DAX file (map-populate: 4)
    // gup_longterm.c's 2 io_uring cases on memfd, memfd-hugetlb, non-DAX ext4 and xfs, fs-dax, and MAP_SHARED on device-dax (11)
    // hugetlb-madvise.c as one scenario (its main() is one sequence); hugetlb_madv_vs_map.c as the interleaving that fails
    // hugetlb-soft-offline.c as one scenario (main(): enable_soft_offline 1, then 0)
    // memory-failure.c: TEST_F(memory_failure, anon) in its madv_hard and madv_soft variants, and clean_pagecache in both on xfs and on ext4 (memory-failure: 6)
    // hugetlb-read-hwpoison.c: its three cases (read, read HWPOISON, seek then read HWPOISON) with 4-page chunks (hugetlb-read-hwpoison: 3)
    // hugetlb_dio.c's four cases in one scenario per non-DAX filesystem /tmp may be on (hugetlb-dio: xfs, ext4)
    // memfd_secret.c: test_mlock_limit, test_vmsplice fresh and existing page, test_process_vm_read, test_ptrace (memfd-secret: 5; not test_file_apis)
    // guard-regions.c: 15 TEST_Fs on each of anon, shmem and local file (basic, multi_vma, process_madvise, munmap, mprotect, split_merge, dontneed, mlock, mremap_move/expand/shrink, fork, populate, cold_pageout, pagemap),
    // map_private, truncation, hole_punch on shmem and file, anon_zeropage and uffd on anon and shmem, fork_cow, fork_wipeonfork, lazyfree, readonly_file (guard-regions: 59)
    // guard-regions.c memfd_write_seal (shmem); memfd_test.c: test_basic, test_seal_write, test_seal_future_write, test_seal_write_map_read_shared,
    // test_seal_shrink, test_seal_grow, test_seal_resize, and two cases no shipped test covers (F_SEAL_WRITE against a long-term pin and an io_uring buffer) (memfd: 9)
    // mseal_test.c: 48 of its 50 test functions (the sealed half of each seal/no-seal pair; not test_seal_zero_address, test_seal_mremap_move_fixed_zero: address 0), and two cases it does not have: a sealed fs-dax and a sealed device-dax mapping (mseal: 50)
    // uffd-unit-tests.c: wp-fork, wp-fork-with-event, wp-fork-pin and wp-fork-pin-with-event on anon, shmem, shmem-private, hugetlb, hugetlb-private; wp-unpopulated on anon; minor and minor-wp on shmem and hugetlb, minor-collapse on shmem; sigbus, sigbus-wp, register-ioctls, zeropage and poison on all five; events and events-wp on all five; move, move-pmd and move-pmd-split on anon (uffd: 64)
    // pagemap_ioctl.c: sanity_tests_sd (parts 1-8, and the walk_end tester), sanity_tests (1-6, 8-10), base_tests on anon, private and shared hugetlb, a private disk file and a private memfd, hpage_unit_tests 1.-7., zeropfn_tests, mprotect_tests, userfaultfd_tests with unmapped_region_tests, unpopulated_scan_test, unpopulated_thp_hole_test, transact_test's single-threaded start; guard-regions.c pagemap_scan on anon, shmem and file; fs-dax, device-dax, /dev/mem (VM_PFNMAP) and PAGE_IS_SOFT_DIRTY cases it does not have (pagemap: 23)
    // khugepaged.c: 11 anonymous cases in both the khugepaged and the madvise context (not collapse_compound_extreme), madvise_collapse_existing_thps (madvise only) and an fs-dax case it does not have; its file and shmem types: collapse_full and collapse_single_pte_entry in both contexts on both, collapse_max_ptes_none and collapse_single_pte_entry_compound in both contexts on file, madvise_collapse_existing_thps and madvise_retracted_page_tables on both, and its file type on fs-dax (khugepaged: 41)
    // merge.c: 18 of its 19 TEST_Fs (not handle_uprobe_upon_merged_vma: no uprobes) and the forked variants of the 4 merge_with_fork tests (merge: 22)
    // mremap_test.c: the 3 expected failures, 5 remap_region() cases, expand merge (+ offset), move within range, move 1mb from start, move multiple vmas (+ dontunmap), shrink multiple vmas (+ inplace), move multiple vmas split (+ dontunmap), move multi invalid vmas (mremap: 19)
    // hugepage-mremap.c as run_vmtests.sh runs it (10 MB) on 2 MiB and 1 MiB huge pages (hugepage-mremap: 1)
    // rmap.c: migrate.anon, migrate.shm, migrate.file, migrate.ksm and linux-next's migrate.ksm_and_mremap on two nodes (rmap: 5)
    // mrelease_test.c's main() (mrelease: 1)
    // on-fault-limit.c's test_limit (mlock-limits: 1; mlock-random-test.c is in packages/core/test/mlock.test.ts)
    // ksm_tests.c as run_vmtests.sh runs it: -M -p 10, -U, -Z -p 10 -z 0 and -z 1, -N -m 1 and -m 0 on two nodes (ksm-tests: 6; -H, -P, -D, -C and -t 1 in ksm-tests-selftests.test.ts)
    // uffd-wp-mremap.c: test_one_folio() on a base page (shared, private, private swapped out), THPs (64 KiB and 2 MiB private, 2 MiB private swapped out, 2 MiB shmem) and hugetlb (shared, private) (uffd-wp-mremap: 9)
    // split_huge_page_test.c: split_pmd_thp_to_order for orders 0 and 2..8, split_pmd_zero_pages, split_pte_mapped_thp, split_thp_in_pagecache_to_order's steps at orders 0 and 4 on a MADV_COLLAPSE-built shmem THP, split_file_backed_thp at orders 0 and 1 on a huge=always tmpfs, and three cases it does not have: a pinned THP, fs-dax and device-dax PMDs (split-huge-page: 17)
    // folio_split_race_test.c's run_iteration() without the readers (folio-split-race: 1; the race itself is explore/folio-split-race.yaml)
    // thuge-gen.c, hugetlb-mmap.c (run as 'hugetlb-mmap 16') and hugetlb-shm.c (16 MB), one block per arch (thuge-gen: 1, hugetlb-mmap: 1, hugetlb-shm: 1)
    // prctl_thp_disable.c: both fixtures in the never, madvise and always variants, nofork then fork in each (prctl-thp-disable: 6)
    // seal_elf.c's test_seal_elf on a page-cache binary (seal-elf: 1)
    // protection_keys.c: the access, kernel-access, syscall, ptrace, exhaust, execute-only and thread (init-state) tests in 7 scenarios (protection-keys: 7);
    // pkey_sighandler_tests.c's five tests, one process each (pkey-sighandler: 1)
    // map_fixed_noreplace.c's main() (map-fixed-noreplace: 1); mdwe_test.c: prctl_flags, consecutive_prctl_flags' seven variants (one process each), the mdwe fixture's stock, enabled, inherited and not_inherited variants (mdwe: 6)
    // charge_reserved_hugetlb.sh: its loop's 13 distinct iterations (-m 2 -r runs as -m 2) with cgroup v1 and with -cgroup-v2, and the two cases after its "continue" (charge-reserved-hugetlb: 28);
    // hugetlb_reparenting_test.sh: its three tests, the v1-only one once (hugetlb-reparenting: 5)
    // va_high_addr_switch.c: its testcases and hugetlb_testcases tables, each on the default kernel and with large-user-va (va-high-addr-switch: 4)
    expect(count).toEqual({ 'charge-reserved-hugetlb': 28, 'hugetlb-reparenting': 5, 'cow-anon': 14, 'cow-swap': 17, 'cow-thp': 73, 'cow-mthp': 14, 'cow-collapse': 4, 'cow-hugetlb': 17, 'cow-non-anon': 15, 'gup-longterm': 55, 'gup-test': 12, 'soft-dirty': 6, gaps: 1, pfnmap: 6, 'madv-populate': 5, ksm: 10, 'ksm-tests': 6, 'map-populate': 4, 'hugetlb-madvise': 1, 'hugetlb-madv-vs-map': 1, 'hugetlb-soft-offline': 1, 'hugetlb-read-hwpoison': 3, 'memory-failure': 6, 'hugetlb-dio': 2, mkdirty: 6, migration: 6, 'memfd-secret': 5, 'guard-regions': 60, memfd: 9, mseal: 50, uffd: 64, pagemap: 23, khugepaged: 41, 'split-huge-page': 17, merge: 22, mremap: 19, 'hugepage-mremap': 1, rmap: 5, 'uffd-wp-mremap': 9, 'prctl-thp-disable': 6, 'mlock-limits': 1, mrelease: 1, 'folio-split-race': 1, 'thuge-gen': 1, 'hugetlb-mmap': 1, 'hugetlb-shm': 1, 'seal-elf': 1, 'protection-keys': 7, 'pkey-sighandler': 1, 'map-fixed-noreplace': 1, mdwe: 6, 'va-high-addr-switch': 4 });
    expect(scenarios.every((s) => s.name.startsWith('selftest-'))).toBe(true);
  });

  for (const s of scenarios) {
    it(s.name, () => {
      const cells = kernelsFor(s, { features: [] }, catalog, true);
      const refusedByArch: CellKernelRequest[] = [];
      const statuses = cells.map((k) => {
        const r = runScenario(s, k, catalog);
        if (archRefusal(k, r)) refusedByArch.push(k);
        const tag = `${k.arch}/${k.fs ?? 'no-fs'}/${k.driver ?? 'no-driver'}/${k.version}`;
        return r.status === 'pass' ? 'pass' : `${tag}: ${r.status} ${[...r.failures, r.reason ?? ''].join('; ')}`;
      });
      // FUSE DAX (virtio-fs) arrived in v5.10, and an arch may refuse a release (its own
      // unsupported(): arm64 has no ZONE_DEVICE before v5.7): those cells are refused, every other passes
      const refused = cells.filter((k) => (k.fs === 'fuse' && k.version === 'v5.4') || refusedByArch.includes(k));
      expect(statuses.filter((x) => x !== 'pass')).toEqual(refused.map((k) => expect.stringContaining(`${k.arch}/${k.fs ?? 'no-fs'}/${k.driver ?? 'no-driver'}/${k.version}: unsupported`)));
      const mounts = s.setup.some((st) => st.op === 'mount') || s.threads.some((t) => t.steps.some((st) => st.op === 'mount'));
      const arches = Object.keys(catalog.arch).length;
      // a scenario that mounts runs on every filesystem unless it names one
      const filesystems = mounts ? (s.kernel.fs ? 1 : 3) : 1;
      expect(cells.length).toBe(RELEASES.length * filesystems * arches);
      expect(cells.filter((k) => k.fs === 'fuse' && k.version === 'v5.4').length).toBe(mounts && !s.kernel.fs ? arches : 0);
    });
  }
});

// ---- the selftests, driven through the kernel API ---------------------------------------

function anonKernel(version: string, features: Record<string, unknown> = {}): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: x86(), kernel: version, features });
  return { k, m: new Monitor(k) };
}

/** do_run_with_base_page(): one private anonymous page, memset(mem, 1). */
function basePage(k: Kernel): void {
  k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'mem' }));
  k.run(k.write({ map: 'mem', page: 0, data: '0x01' }));
}

/**
 * cow.c do_test_cow_in_parent(do_mprotect): "mprotect() optimizations might try avoiding
 * write-faults by directly mapping pages writable" -- PROT_READ, then PROT_READ|PROT_WRITE.
 */
function mprotectReadThenWrite(k: Kernel): void {
  k.run(k.mprotect({ map: 'mem', write: false }));
  k.run(k.mprotect({ map: 'mem', write: true }));
}

/** cow.c RO_PIN_TEST_RO_EXCLUSIVE / do_test_iouring(!use_fork): mprotect(PROT_READ); clear_softdirty(); mprotect(PROT_READ|PROT_WRITE). */
function roMapExclusive(k: Kernel): void {
  k.run(k.mprotect({ map: 'mem', write: false }));
  k.run(k.clearRefs({}));
  k.run(k.mprotect({ map: 'mem', write: true }));
}

/** cow.c do_test_cow_in_parent(child_memcmp_fn): true = "No leak from parent into child". */
function cowInParent(k: Kernel, doMprotect = false): boolean {
  basePage(k);
  k.run(k.fork({ as: 'child' }));
  const old = k.run(k.read({ map: 'mem', page: 0, process: 'child' }));
  if (doMprotect) mprotectReadThenWrite(k);
  k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
  return k.run(k.read({ map: 'mem', page: 0, process: 'child' })) === old;
}

/** cow.c do_test_cow_in_parent(child_vmsplice_memcmp_fn): vmsplice = R/O FOLL_GET held by the pipe. */
function vmspliceInChild(k: Kernel, doMprotect = false): boolean {
  basePage(k);
  k.run(k.fork({ as: 'child' }));
  k.run(k.gup({ map: 'mem', page: 0, fast: true, process: 'child', as: 'pipe' }, false));
  k.run(k.munmap({ map: 'mem', process: 'child' }));
  if (doMprotect) mprotectReadThenWrite(k);
  k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
  return k.run(k.dmaRead({ pin: 'pipe' })) === '0x01';
}

/** cow.c do_test_vmsplice_in_parent(before_fork): true = "No leak from child into parent". */
function vmspliceInParent(k: Kernel, beforeFork: boolean): boolean {
  basePage(k);
  if (beforeFork) k.run(k.gup({ map: 'mem', page: 0, fast: true, as: 'pipe' }, false));
  k.run(k.fork({ as: 'child' }));
  if (!beforeFork) k.run(k.gup({ map: 'mem', page: 0, fast: true, as: 'pipe' }, false));
  k.run(k.munmap({ map: 'mem' }));
  k.run(k.write({ map: 'mem', page: 0, process: 'child', data: '0xff' }));
  k.run(k.exit({ process: 'child' }));
  return k.run(k.dmaRead({ pin: 'pipe' })) === '0x01';
}

/** cow.c do_test_iouring(use_fork): true = "Longterm R/W pin is reliable". */
function iouringFork(k: Kernel): boolean {
  basePage(k);
  k.run(k.gup({ map: 'mem', page: 0, write: true, longterm: true, as: 'fixed' }, true));
  k.run(k.fork({ as: 'child' }));
  k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
  return k.run(k.dmaRead({ pin: 'fixed' })) === k.run(k.read({ map: 'mem', page: 0 }));
}

/** cow.c do_test_iouring(use_fork = false): true = "Longterm R/W pin is reliable". */
function iouringRo(k: Kernel): boolean {
  basePage(k);
  k.run(k.gup({ map: 'mem', page: 0, write: true, longterm: true, as: 'fixed' }, true));
  roMapExclusive(k);
  k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
  return k.run(k.dmaRead({ pin: 'fixed' })) === k.run(k.read({ map: 'mem', page: 0 }));
}

/** cow.c do_test_ro_pin(RO_PIN_TEST_RO_EXCLUSIVE): true = "Longterm R/O pin is reliable". */
function roPinExclusive(k: Kernel, fast: boolean): boolean {
  basePage(k);
  roMapExclusive(k);
  k.run(k.gup({ map: 'mem', page: 0, longterm: true, fast, as: 'ro' }, true));
  k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
  return k.run(k.dmaRead({ pin: 'ro' })) === k.run(k.read({ map: 'mem', page: 0 }));
}

/** cow.c do_test_ro_pin(RO_PIN_TEST_SHARED / _PREVIOUSLY_SHARED): true = "Longterm R/O pin is reliable". */
function roPin(k: Kernel, test: 'shared' | 'previously-shared', fast: boolean): boolean {
  basePage(k);
  k.run(k.fork({ as: 'child' }));
  if (test === 'previously-shared') k.run(k.exit({ process: 'child' }));
  k.run(k.gup({ map: 'mem', page: 0, longterm: true, fast, as: 'ro' }, true));
  k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
  return k.run(k.dmaRead({ pin: 'ro' })) === k.run(k.read({ map: 'mem', page: 0 }));
}

/** cow.c run_with_zeropage + test_ro_pin / test_ro_fast_pin (RO_PIN_TEST). */
function zeropageRoPin(k: Kernel, fast: boolean): boolean {
  k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'mem' }));
  k.run(k.read({ map: 'mem', page: 0 }));
  k.run(k.gup({ map: 'mem', page: 0, longterm: true, fast, as: 'ro' }, true));
  k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
  return k.run(k.dmaRead({ pin: 'ro' })) === k.run(k.read({ map: 'mem', page: 0 }));
}

/**
 * cow.c run_with_memfd: a fallocated one-page memfd, mapped private RW (`mem`) and shared R/O
 * (`smem`), both read; then test_cow (`pin` null) or test_ro_pin / test_ro_fast_pin.
 */
function memfdCase(k: Kernel, pin: 'slow' | 'fast' | null): boolean {
  k.run(k.memfdCreate({ file: 'fd', size: 4096, fallocate: true }));
  k.run(k.mmap({ file: 'fd', length: 4096, write: true, as: 'mem' }));
  k.run(k.mmap({ file: 'fd', length: 4096, shared: true, as: 'smem' }));
  k.run(k.read({ map: 'mem', page: 0 }));
  k.run(k.read({ map: 'smem', page: 0 }));
  if (pin === null) {
    k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
    return k.run(k.read({ map: 'smem', page: 0 })) === ''; // "Other mapping not modified"
  }
  k.run(k.gup({ map: 'mem', page: 0, longterm: true, fast: pin === 'fast', as: 'ro' }, true));
  k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
  return k.run(k.dmaRead({ pin: 'ro' })) === k.run(k.read({ map: 'mem', page: 0 }));
}

const verdicts = (run: (k: Kernel) => boolean) => RELEASES.map((v) => (run(anonKernel(v).k) ? 'pass' : 'FAIL'));
const P = 'pass';
const F = 'FAIL';

describe('cow.c verdicts per release (base page; releases v5.4 v5.10 v6.1 v6.3 v6.6 v6.15 latest)', () => {
  it('the presets are the releases these tables are written for', () => {
    expect(RELEASES).toEqual(['v5.4', 'v5.10', 'v6.1', 'v6.3', 'v6.6', 'v6.15', 'latest']);
  });

  it('Basic COW after fork(): no leak on any release', () => {
    expect(verdicts(cowInParent)).toEqual([P, P, P, P, P, P, P]);
  });

  // CVE-2020-29374: v5.4 reuses a page mapped once even with a pipe's reference on it;
  // 09854ba94c6a (v5.9) reuses only at page_count() == 1
  it('vmsplice() + unmap in child: leaks on v5.4 only', () => {
    expect(verdicts(vmspliceInChild)).toEqual([F, P, P, P, P, P, P]);
  });

  // The parent's mprotect(PROT_READ) + mprotect(PROT_READ|PROT_WRITE) changes nothing here: the
  // page lost PageAnonExclusive at fork, so can_change_pte_writable() (v6.0) never maps it
  // writable, and v5.x never upgrades private PTEs; the write faults and decides as before
  it('the two "with mprotect() optimization" cases have the verdicts of their plain variants', () => {
    expect(verdicts((k) => cowInParent(k, true))).toEqual([P, P, P, P, P, P, P]);
    expect(verdicts((k) => vmspliceInChild(k, true))).toEqual([F, P, P, P, P, P, P]);
  });

  it('vmsplice() before fork(), unmap in parent after fork(): leaks on v5.4 only', () => {
    expect(verdicts((k) => vmspliceInParent(k, true))).toEqual([F, P, P, P, P, P, P]);
  });

  it('vmsplice() + unmap in parent after fork(): leaks on v5.4 only', () => {
    expect(verdicts((k) => vmspliceInParent(k, false))).toEqual([F, P, P, P, P, P, P]);
  });

  // seed 002: early COW of maybe-pinned pages at fork (v5.9)
  it('fork() with an iouring fixed buffer: unreliable on v5.4 only', () => {
    expect(verdicts(iouringFork)).toEqual([F, P, P, P, P, P, P]);
  });

  // a7f226604170 (v5.19): R/O pins unshare a possibly shared anon page first
  it('R/O GUP (and GUP-fast) pin on R/O-mapped shared page: reliable from v5.19 (v6.1 preset)', () => {
    expect(verdicts((k) => roPin(k, 'shared', false))).toEqual([F, F, P, P, P, P, P]);
    expect(verdicts((k) => roPin(k, 'shared', true))).toEqual([F, F, P, P, P, P, P]);
  });

  // v5.4 reuses by mapcount (1) so the write stays in the pinned page; v5.10 copies because the
  // pin raises page_count(); v5.19+ unshares by reuse (page_count() == 1) before pinning
  it('R/O GUP (and GUP-fast) pin on R/O-mapped previously-shared page: fails on v5.10 only', () => {
    expect(verdicts((k) => roPin(k, 'previously-shared', false))).toEqual([P, F, P, P, P, P, P]);
    expect(verdicts((k) => roPin(k, 'previously-shared', true))).toEqual([P, F, P, P, P, P, P]);
  });

  // 84209e87c696 (v6.2): R/O longterm pins in COW mappings unshare non-anon pages too
  it('non-anon R/O longterm GUP (and GUP-fast) pin with the shared zeropage: reliable from v6.2 (84209e87c696; the v6.3 preset on)', () => {
    expect(verdicts((k) => zeropageRoPin(k, false))).toEqual([F, F, F, P, P, P, P]);
    expect(verdicts((k) => zeropageRoPin(k, true))).toEqual([F, F, F, P, P, P, P]);
  });

  // the memfd's page-cache folio is non-anon like the zero page: the same rule decides, and up to
  // v6.1 the pin stays on the cache page while the write COWs `mem` into an anon page
  it('non-anon cases with memfd (shmem): Basic COW passes everywhere; the R/O longterm pins are reliable from v6.2', () => {
    expect(verdicts((k) => memfdCase(k, null))).toEqual([P, P, P, P, P, P, P]);
    expect(verdicts((k) => memfdCase(k, 'slow'))).toEqual([F, F, F, P, P, P, P]);
    expect(verdicts((k) => memfdCase(k, 'fast'))).toEqual([F, F, F, P, P, P, P]);
  });

  // mprotect(PROT_READ) + clear_softdirty() + mprotect(PROT_READ|PROT_WRITE) leave an exclusive
  // page mapped R/O, so the write faults with the pin held. v5.4: the pin is one reference and
  // reuse is by mapcount (1): the write stays in the pinned page. v5.10: page_count() is
  // 1 + 1024 != 1, do_wp_page() copies and the pin keeps the old data. v5.19+: PageAnonExclusive
  // is reused whatever the refcount (and the R/O pin needs no unshare: the page is exclusive).
  it('R/O-mapping a page registered as iouring fixed buffer: fails on v5.10 only', () => {
    expect(verdicts(iouringRo)).toEqual([P, F, P, P, P, P, P]);
  });

  it('R/O GUP (and GUP-fast) pin on R/O-mapped exclusive page: fails on v5.10 only', () => {
    expect(verdicts((k) => roPinExclusive(k, false))).toEqual([P, F, P, P, P, P, P]);
    expect(verdicts((k) => roPinExclusive(k, true))).toEqual([P, F, P, P, P, P, P]);
  });

  it('the soft-dirty trick works on x86: the exclusive page really is mapped R/O before the write, which faults and reuses it (v6.1+)', () => {
    for (const v of ['v6.1', 'v6.3', 'latest']) {
      const { k, m } = anonKernel(v);
      basePage(k);
      const pfn = k.pfnOf({ map: 'mem', page: 0 })!;
      roMapExclusive(k);
      expect(k.isWritableIn({ map: 'mem', page: 0 }), v).toBe(false);
      k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
      // the write fault (do_wp_page) reused the exclusive page: no copy, now writable
      expect(m.trace.filter((l) => /^#\d+ cow /.test(l)), v).toEqual([]);
      expect(k.pfnOf({ map: 'mem', page: 0 })).toBe(pfn);
      expect(k.isWritableIn({ map: 'mem', page: 0 })).toBe(true);
    }
    // without clear_softdirty() the v6.0 optimization maps it writable and the write does not fault
    const { k } = anonKernel('latest');
    basePage(k);
    mprotectReadThenWrite(k);
    expect(k.isWritableIn({ map: 'mem', page: 0 })).toBe(true);
  });

  it('arm64 has no soft-dirty: the R/O trick does not work there from v6.0 (the page is mapped writable), and the verdicts are the same', () => {
    const arm = (v: string) => createKernel({ arch: catalog.arch['arm64']!({}), kernel: v });
    // arm64 has no ZONE_DEVICE before v5.7, so its kernels start at v5.10 here
    const later = RELEASES.slice(1);
    expect(later.map((v) => (iouringRo(arm(v)) ? P : F))).toEqual([F, P, P, P, P, P]);
    expect(later.map((v) => (roPinExclusive(arm(v), true) ? P : F))).toEqual([F, P, P, P, P, P]);
    expect(later.map((v) => {
      const k = arm(v);
      basePage(k);
      roMapExclusive(k);
      return k.isWritableIn({ map: 'mem', page: 0 });
    })).toEqual([false, true, true, true, true, true]);
  });

  it('an unreliable R/O pin is the pinned-page-diverged invariant; a reliable one leaves the copy exclusive', () => {
    const bad = anonKernel('v5.10');
    roPin(bad.k, 'shared', false);
    expect(bad.m.violations.map((v) => v.invariant)).toEqual(['pinned-page-diverged']);
    const good = anonKernel('v6.1');
    roPin(good.k, 'shared', false);
    expect(good.m.violations).toEqual([]);
    const pfn = good.k.pfnOf({ map: 'mem', page: 0 })!;
    // the parent's exclusive copy: mapped once, one mapping reference + GUP_PIN_COUNTING_BIAS
    expect([good.k.refcount(pfn), good.k.mapcount(pfn), good.k.anonExclusive(pfn)]).toEqual([1 + 1024, 1, true]);
    // the child keeps the old page alone (rc 1 after the parent's copy dropped its reference)
    const old = good.k.pfnOf({ map: 'mem', page: 0, process: 'child' })!;
    expect(old).not.toBe(pfn);
    expect([good.k.refcount(old), good.k.mapcount(old)]).toEqual([1, 1]);
  });

  it('the feature alone decides: latest without unsharing fails, v5.10 with the v5.19 rules passes', () => {
    expect(roPin(anonKernel('latest', { 'gup-unshare': 'off' }).k, 'shared', false)).toBe(false);
    expect(roPin(anonKernel('v5.10', { 'gup-unshare': 'anon', 'wp-reuse': 'anon-exclusive' }).k, 'shared', false)).toBe(true);
    expect(zeropageRoPin(anonKernel('v6.1', { 'gup-unshare': 'cow-mapping' }).k, false)).toBe(true);
    expect(zeropageRoPin(anonKernel('latest', { 'gup-unshare': 'anon' }).k, false)).toBe(false);
  });

  it('unsharing happens on R/O FOLL_PIN only: a R/O FOLL_GET on a shared page still takes the shared page', () => {
    const { k } = anonKernel('latest');
    basePage(k);
    k.run(k.fork({ as: 'child' }));
    const shared = k.pfnOf({ map: 'mem', page: 0 })!;
    k.run(k.gup({ map: 'mem', page: 0, as: 'g' }, false));
    expect(k.pfnOf({ map: 'mem', page: 0 })).toBe(shared);
    // parent + child mappings, and the GET
    expect(k.refcount(shared)).toBe(3);
  });
});

// ---- soft-dirty.c ------------------------------------------------------------------------

/**
 * soft-dirty.c test_mprotect(): the five pagemap checks, true where the test passes them
 * ("dirty bit of new written page", "clear after clear_refs", "clear after marking RO", "clear
 * after marking RW", "soft-dirty after rewritten").
 */
function softDirtyMprotect(k: Kernel, file: boolean | 'tmpfs'): boolean[] {
  if (file === 'tmpfs') {
    // the test file on tmpfs: a shmem file (a memfd in the model)
    k.run(k.memfdCreate({ file: 'test', size: 4096 }));
    k.run(k.mmap({ file: 'test', length: 4096, shared: true, write: true, as: 'map' }));
  } else if (file) {
    k.run(k.probe({ size: 2 ** 30, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    k.run(k.create({ file: 'test', size: 4096 }));
    k.run(k.mmap({ file: 'test', length: 4096, shared: true, write: true, as: 'map' }));
  } else k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'map' }));
  const t = { map: 'map', page: 0 };
  const got: boolean[] = [];
  k.run(k.write({ ...t, data: '1' }));
  got.push(k.isSoftDirtyIn(t));
  k.run(k.clearRefs({}));
  got.push(!k.isSoftDirtyIn(t));
  k.run(k.mprotect({ map: 'map', write: false }));
  got.push(!k.isSoftDirtyIn(t));
  k.run(k.mprotect({ map: 'map', write: true }));
  got.push(!k.isSoftDirtyIn(t));
  k.run(k.write({ ...t, data: '2' }));
  got.push(k.isSoftDirtyIn(t));
  return got;
}

describe('soft-dirty.c verdicts per release (x86-64)', () => {
  const all = [true, true, true, true, true];
  it('test_mprotect_anon passes every check on every release (private PTEs are never upgraded while tracked)', () => {
    for (const v of RELEASES) expect({ v, got: softDirtyMprotect(anonKernel(v).k, false) }).toEqual({ v, got: all });
  });

  // dirty_accountable (<= v5.19) upgraded a dirty PTE when !(vm_flags & VM_SOFTDIRTY), i.e. exactly
  // while soft-dirty is tracked; 76aefad628aa (v6.0) tests vma_soft_dirty_enabled() && !pte_soft_dirty()
  it('test_mprotect_file on fs-dax: "soft-dirty after rewritten" fails before v6.0 (v5.4, v5.10), passes from v6.0', () => {
    for (const fs of [xfs, ext4] as const) {
      const got = RELEASES.map((v) => softDirtyMprotect(createKernel({ arch: x86(), fs: fs(), driver: nvdimm(), kernel: v }), true));
      expect(got).toEqual(RELEASES.map((v) => (v === 'v5.4' || v === 'v5.10' ? [true, true, true, true, false] : all)));
    }
  });

  // a shared tmpfs mapping wants write notification only while soft-dirty is tracked, which is
  // when the test mprotect()s: the old dirty_accountable upgrade hits it as it hits fs-dax
  it('test_mprotect_file on tmpfs: the same verdicts as on fs-dax', () => {
    const got = RELEASES.map((v) => softDirtyMprotect(anonKernel(v).k, 'tmpfs'));
    expect(got).toEqual(RELEASES.map((v) => (v === 'v5.4' || v === 'v5.10' ? [true, true, true, true, false] : [true, true, true, true, true])));
  });

  it('on arm64 (no soft-dirty) pagemap never shows the bit: the first check fails, the clearing ones trivially pass', () => {
    const k = createKernel({ arch: catalog.arch['arm64']!({}), kernel: 'latest' });
    expect(softDirtyMprotect(k, false)).toEqual([false, true, true, true, false]);
  });
});

type Result = 'pass' | 'FAIL' | 'SKIP';

/**
 * soft-dirty.c test_hugepage(): [ "huge page allocation", "huge page dirty bit" ]. memalign() of
 * one PMD size, MADV_HUGEPAGE, a write to every byte; check_huge_anon() wants one THP; then
 * `iterations` rounds of: clean after clear_refs? clear_refs, map[0]++, soft-dirty?
 */
function softDirtyHugepage(k: Kernel, iterations: number): [Result, Result] {
  const n = k.vm.pmdPages;
  // the model places the 2-PMD mapping PMD-aligned; its second PMD is memalign()'s aligned part
  k.run(k.mmap({ anon: true, length: 2 * n * 4096, write: true, as: 'map' }));
  k.run(k.madvise({ map: 'map', advice: 'hugepage', offset: n * 4096, length: n * 4096 }));
  const t = { map: 'map', page: n };
  k.run(k.write({ ...t, data: '0' }));
  const head = k.pfnOf(t)!;
  if (k.folios.nr(k.folios.folio(head)) !== n || k.pfnOf({ map: 'map', page: 2 * n - 1 }) !== head + n - 1) return ['SKIP', 'SKIP'];
  k.run(k.clearRefs({}));
  let i = 0;
  for (; i < iterations; i++) {
    if (k.isSoftDirtyIn(t)) break;
    k.run(k.clearRefs({}));
    const v = Number(k.run(k.read(t)));
    k.run(k.write({ ...t, data: String(v + 1) }));
    if (!k.isSoftDirtyIn(t)) break;
    k.run(k.clearRefs({}));
  }
  return ['pass', i === iterations ? 'pass' : 'FAIL'];
}

describe('soft-dirty.c test_hugepage per release and arch (4 KiB pages)', () => {
  // clear_soft_dirty_pmd() write-protects the PMD and clears its bit; the write fault reuses the
  // THP (mapped once / exclusive) with pmd_mkdirty(), which sets _PAGE_SOFT_DIRTY on x86-64 and
  // _SEGMENT_ENTRY_SOFT_DIRTY on s390
  it('x86-64 and s390 pass both results on every release', () => {
    for (const arch of ['x86', 's390'] as const) {
      for (const v of RELEASES) {
        const k = createKernel({ arch: catalog.arch[arch]!({}), kernel: v });
        expect({ arch, v, got: softDirtyHugepage(k, 5) }).toEqual({ arch, v, got: ['pass', 'pass'] });
      }
    }
  });

  it('arm64 (no HAVE_ARCH_SOFT_DIRTY) gets its THP but fails "huge page dirty bit" at the first write', () => {
    for (const v of RELEASES.filter((r) => r !== 'v5.4')) {
      expect({ v, got: softDirtyHugepage(createKernel({ arch: catalog.arch['arm64']!({}), kernel: v }), 5) }).toEqual({ v, got: ['pass', 'FAIL'] });
    }
  });

  it('ppc64 hash with 4 KiB pages has no THP: check_huge_anon() fails and both results SKIP', () => {
    for (const v of RELEASES) expect({ v, got: softDirtyHugepage(createKernel({ arch: catalog.arch['ppc-hash']!({ pageSize: 4096 }), kernel: v }), 5) }).toEqual({ v, got: ['SKIP', 'SKIP'] });
  });
});

// ---- gup_longterm.c with the local tmpfile on a DAX filesystem, and on device-dax -----------

type Outcome = 'works' | string;

/**
 * `mprotectRo`: the newer gup_longterm.c (109364fce504) maps the page R/O with mprotect(PROT_READ)
 * before a R/O pin ("cover more cases regarding unsharing decisions").
 */
function longtermOnFsdax(fs: 'xfs' | 'ext4' | 'fuse', version: string, shared: boolean, rw: boolean, fast: boolean, mprotectRo = false): Outcome {
  const plugin = fs === 'xfs' ? xfs() : fs === 'ext4' ? ext4() : fuse();
  const k = createKernel({ arch: x86(), fs: plugin, driver: nvdimm(), kernel: version });
  const m = new Monitor(k);
  k.run(k.probe({ size: 2 ** 30, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0' }));
  k.run(k.create({ file: 'tmpfile', size: 4096 }));
  k.run(k.mmap({ file: 'tmpfile', length: 4096, shared, write: true, as: 'mem' }));
  k.run(k.write({ map: 'mem', page: 0, data: '0x00' }));
  if (mprotectRo && !rw) k.run(k.mprotect({ map: 'mem', write: false }));
  try {
    k.run(k.gup({ map: 'mem', page: 0, longterm: true, write: rw, fast, as: 'p' }, true));
  } catch (e) {
    if (e instanceof KernelError) return e.code;
    throw e;
  }
  expect(m.violations).toEqual([]); // never a longterm pin of an fs-dax page
  return 'works';
}

describe('gup_longterm.c on fs-dax: only GUP-fast in a MAP_PRIVATE mapping (an anon COW copy) pins', () => {
  const cases = [
    // [shared, rw, fast] in gup_longterm.c's test_cases[] order
    [true, true, false], [true, true, true], [true, false, false], [true, false, true],
    [false, true, false], [false, true, true], [false, false, false], [false, false, true],
  ] as const;
  for (const fs of ['xfs', 'ext4', 'fuse'] as const) {
    it(fs, () => {
      for (const version of RELEASES) {
        if (fs === 'fuse' && version === 'v5.4') continue; // virtio-fs DAX: v5.10+
        // check_vma_flags() -EOPNOTSUPP wherever the slow path runs; GUP-fast needs no VMA. With
        // the newer test's mprotect(PROT_READ) the private page is still the exclusive anon COW
        // copy (gup_must_unshare() false), so GUP-fast pins it R/O all the same
        for (const mprotectRo of [false, true]) {
          const got = cases.map(([shared, rw, fast]) => longtermOnFsdax(fs, version, shared, rw, fast, mprotectRo));
          expect({ version, mprotectRo, got }).toEqual({ version, mprotectRo, got: ['EOPNOTSUPP', 'EOPNOTSUPP', 'EOPNOTSUPP', 'EOPNOTSUPP', 'EOPNOTSUPP', 'works', 'EOPNOTSUPP', 'works'] });
        }
      }
    });
  }

  it('device-dax (MEMORY_DEVICE_GENERIC) is longterm-pinnable on every release, GUP and GUP-fast, R/O and R/W', () => {
    for (const version of RELEASES) {
      for (const [rw, fast] of [[true, false], [true, true], [false, false], [false, true]] as const) {
        const k = createKernel({ arch: x86(), driver: devdax(), kernel: version });
        k.run(k.probe({ driver: 'devdax', size: 2 ** 30, align: 2 ** 21, as: 'dax0' }));
        k.run(k.mmap({ device: 'dax0', length: 2 ** 21, shared: true, write: true, as: 'mem' }));
        k.run(k.write({ map: 'mem', page: 0, data: '0x00' }));
        // the newer gup_longterm.c: mprotect(PROT_READ) before the R/O cases; a PMD devmap leaf
        // has no page for gup_must_unshare() to look at (follow_devmap_pmd), so nothing changes
        if (!rw) k.run(k.mprotect({ map: 'mem', write: false }));
        k.run(k.gup({ map: 'mem', page: 0, longterm: true, write: rw, fast, as: 'p' }, true));
        const pfn = k.pfnOf({ device: 'dax0', page: 0 })!;
        // no FOLL_PIN accounting before v5.7 (3faa52c03f44): the pin is one more reference on the
        // order-0 page, idle at 1 under a devmap PTE that holds none
        if (version === 'v5.4') expect(k.refcount(pfn)).toBe(2);
        else expect(k.maybePinned(pfn)).toBe(true);
      }
    }
  });
});

describe('gup_longterm.c with memfd (tmpfs): every case works on every release', () => {
  // [shared, rw, fast] in gup_longterm.c's test_cases[] order; should_work holds for all of them on
  // tmpfs: shmem needs no dirty tracking (writable_file_mapping_allowed(), gup_fast_folio_allowed():
  // "the only remaining allowed file system is shmem", v6.5), so even the shared R/W pins work
  const cases = [
    [true, true, false], [true, true, true], [true, false, false], [true, false, true],
    [false, true, false], [false, true, true], [false, false, false], [false, false, true],
  ] as const;
  it('pins the page-cache folio in a shared mapping and the anon COW copy in a private one, with and without the newer mprotect(PROT_READ)', () => {
    for (const version of RELEASES) {
      for (const mprotectRo of [false, true]) {
        const got = cases.map(([shared, rw, fast]) => {
          const k = createKernel({ arch: x86(), kernel: version });
          const m = new Monitor(k);
          k.run(k.memfdCreate({ file: 'memfd', size: 4096, fallocate: true }));
          k.run(k.mmap({ file: 'memfd', length: 4096, shared, write: true, as: 'mem' }));
          k.run(k.write({ map: 'mem', page: 0, data: '0x00' }));
          if (mprotectRo && !rw) k.run(k.mprotect({ map: 'mem', write: false }));
          const h = k.run(k.gup({ map: 'mem', page: 0, longterm: true, write: rw, fast, as: 'p' }, true));
          const cache = k.pfnOf({ file: 'memfd', page: 0 })!;
          expect(m.violations).toEqual([]);
          // shared: the memfd's own page; private: memset() already COWed it into an anon page
          return h.pfns[0] === cache ? 'cache page' : k.isAnon(h.pfns[0]!) ? 'anon copy' : 'other';
        });
        expect({ version, mprotectRo, got }).toEqual({ version, mprotectRo, got: [...Array<string>(4).fill('cache page'), ...Array<string>(4).fill('anon copy')] });
      }
    }
  });
});

describe('gup_longterm.c with the local tmpfile on a non-DAX ext4 / xfs (page cache): shared R/W longterm pins are EFAULT from v6.5', () => {
  // [shared, rw, fast] in gup_longterm.c's test_cases[] order. should_work is false only for the
  // two shared R/W cases (fs_supports_writable_longterm_pinning(): tmpfs and hugetlbfs only); the
  // kernel refuses them from v6.5 (check_vma_flags -> writable_file_mapping_allowed, 8ac268436e6d;
  // GUP-fast: folio_fast_pin_allowed, a6e79df92e4a, then the slow path's EFAULT), and gup_longterm.c
  // counts EFAULT as PASS there; before v6.5 the pin is taken and the test reports FAIL.
  const cases = [
    [true, true, false], [true, true, true], [true, false, false], [true, false, true],
    [false, true, false], [false, true, true], [false, false, false], [false, false, true],
  ] as const;
  const refuses = (version: string) => !['v5.4', 'v5.10', 'v6.1', 'v6.3'].includes(version);
  for (const fs of ['ext4', 'xfs'] as const) {
    it(`${fs}: the cache page in a shared mapping, the anon COW copy in a private one; EFAULT for the shared R/W pins where the release refuses them`, () => {
      for (const version of RELEASES) {
        for (const mprotectRo of [false, true]) {
          const got = cases.map(([shared, rw, fast]) => {
            const k = createKernel({ arch: x86(), kernel: version });
            const m = new Monitor(k);
            k.run(k.tmpfile({ file: 'tmpfile', fs, size: 4096 }));
            k.run(k.mmap({ file: 'tmpfile', length: 4096, shared, write: true, as: 'mem' }));
            k.run(k.write({ map: 'mem', page: 0, data: '0x00' }));
            if (mprotectRo && !rw) k.run(k.mprotect({ map: 'mem', write: false }));
            let h;
            try {
              h = k.run(k.gup({ map: 'mem', page: 0, longterm: true, write: rw, fast, as: 'p' }, true));
            } catch (e) {
              if (e instanceof KernelError) return e.code;
              throw e;
            }
            expect(m.violations).toEqual([]);
            const cache = k.pfnOf({ file: 'tmpfile', page: 0 })!;
            return h.pfns[0] === cache ? 'cache page' : k.isAnon(h.pfns[0]!) ? 'anon copy' : 'other';
          });
          const sharedRw = refuses(version) ? 'EFAULT' : 'cache page';
          expect({ version, mprotectRo, got }).toEqual({ version, mprotectRo, got: [sharedRw, sharedRw, 'cache page', 'cache page', ...Array<string>(4).fill('anon copy')] });
        }
      }
    });
  }
});

// ---- gup_longterm.c's io_uring rows (TEST_TYPE_IOURING), every backing ---------------------

type IouringBacking = 'memfd' | 'memfd-hugetlb' | 'ext4' | 'xfs' | 'fsdax-xfs' | 'fsdax-ext4' | 'virtio-fs';

/**
 * What io_uring_register_buffers() of the whole memset() range gives: the errno, or the kind of
 * page the buffer pins ('cache page', 'anon copy'), on x86.
 */
function iouringRegistration(backing: IouringBacking, shared: boolean, version: string): string {
  const fsdax = backing.startsWith('fsdax-') || backing === 'virtio-fs';
  const fs = backing === 'fsdax-xfs' ? xfs() : backing === 'fsdax-ext4' ? ext4() : fuse();
  const k = fsdax ? createKernel({ arch: x86(), fs, driver: nvdimm(), kernel: version }) : createKernel({ arch: x86(), kernel: version });
  const m = new Monitor(k);
  let size = 4096;
  if (fsdax) {
    k.run(k.probe({ size: 2 ** 30, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    k.run(k.create({ file: 'f', size }));
  } else if (backing === 'memfd') k.run(k.memfdCreate({ file: 'f', size, fallocate: true }));
  else if (backing === 'memfd-hugetlb') {
    size = 2 ** 21;
    k.run(k.hugetlbPool({ size, pages: 2 }));
    k.run(k.memfdCreate({ file: 'f', size, fallocate: true, hugetlb: size }));
  } else if (backing === 'ext4' || backing === 'xfs') k.run(k.tmpfile({ file: 'f', fs: backing, size }));
  k.run(k.mmap({ file: 'f', length: size, shared, write: true, as: 'mem' }));
  k.run(k.write({ map: 'mem', page: 0, data: '0x00' }));
  let h;
  try {
    h = k.run(k.iouringRegister({ map: 'mem', page: 0, pages: size / 4096, as: 'buf' }));
  } catch (e) {
    if (e instanceof KernelError) return e.code;
    throw e;
  }
  expect(m.violations).toEqual([]); // never a longterm pin of an fs-dax page
  const pfn = h.pfns[0]!;
  const what = pfn === k.pfnOf({ file: 'f', page: 0 }) ? 'cache page' : k.isAnon(pfn) ? 'anon copy' : 'other';
  k.run(k.iouringUnregister({ name: 'buf' }));
  return what;
}

/**
 * gup_longterm.c's TEST_TYPE_IOURING verdict: a shared mapping on an unknown filesystem (FUSE) is
 * SKIPped unregistered; should_work = !shared || tmpfs/hugetlbfs; ENOSPC, EOPNOTSUPP and EFAULT
 * are "Should have failed" (pass iff !should_work), other errors SKIP, success passes iff should_work.
 */
function iouringVerdict(backing: IouringBacking, shared: boolean, version: string): string {
  if (shared && backing === 'virtio-fs') return 'SKIP';
  const shouldWork = !shared || backing === 'memfd' || backing === 'memfd-hugetlb';
  const got = iouringRegistration(backing, shared, version);
  if (['ENOSPC', 'EOPNOTSUPP', 'EFAULT'].includes(got)) return shouldWork ? `FAIL (${got})` : `pass (${got})`;
  if (/^E[A-Z]+$/.test(got)) return 'SKIP';
  return shouldWork ? 'pass' : 'FAIL';
}

describe("gup_longterm.c's io_uring rows: io_uring's own file check up to v6.4, GUP alone after, GUP-fast from v6.10", () => {
  // docs/selftests.md "gup_longterm.c's io_uring rows", one list per backing, RELEASES order
  // (v5.4, v5.10, v6.1, v6.3, v6.6, v6.15, latest)
  const F = (e: string) => `FAIL (${e})`;
  const P = (e: string) => `pass (${e})`;
  const rows: [IouringBacking, boolean, string[]][] = [
    // vm_file refused unless hugetlbfs before v5.14; shmem passes from then
    ['memfd', true, [F('EOPNOTSUPP'), F('EOPNOTSUPP'), 'pass', 'pass', 'pass', 'pass', 'pass']],
    ['memfd', false, [F('EOPNOTSUPP'), F('EOPNOTSUPP'), 'pass', 'pass', 'pass', 'pass', 'pass']],
    // is_file_hugepages() passes everywhere, GUP needs no dirty tracking for hugetlbfs
    ['memfd-hugetlb', true, Array<string>(7).fill('pass')],
    ['memfd-hugetlb', false, Array<string>(7).fill('pass')],
    // io_uring's EOPNOTSUPP, then writable_file_mapping_allowed()'s EFAULT (v6.5)
    ...(['ext4', 'xfs'] as const).flatMap((fs): [IouringBacking, boolean, string[]][] => [
      [fs, true, [P('EOPNOTSUPP'), P('EOPNOTSUPP'), P('EOPNOTSUPP'), P('EOPNOTSUPP'), P('EFAULT'), P('EFAULT'), P('EFAULT')]],
      [fs, false, [F('EOPNOTSUPP'), F('EOPNOTSUPP'), F('EOPNOTSUPP'), F('EOPNOTSUPP'), 'pass', 'pass', 'pass']],
    ]),
    // GUP refuses the fs-dax VMA on the slow path; pin_user_pages_fast() (v6.10) pins the anon copy of a private one
    ...(['fsdax-xfs', 'fsdax-ext4'] as const).flatMap((b): [IouringBacking, boolean, string[]][] => [
      [b, true, Array<string>(7).fill(P('EOPNOTSUPP'))],
      [b, false, [...Array<string>(5).fill(F('EOPNOTSUPP')), 'pass', 'pass']],
    ]),
  ];
  for (const [backing, shared, want] of rows) {
    it(`${backing}, MAP_${shared ? 'SHARED' : 'PRIVATE'}`, () => {
      expect(RELEASES.map((v) => iouringVerdict(backing, shared, v))).toEqual(want);
    });
  }

  it('virtio-fs (unknown filesystem): MAP_SHARED SKIPs unregistered; MAP_PRIVATE as xfs (virtio-fs DAX: v5.10+)', () => {
    const from = RELEASES.slice(1);
    expect(from.map((v) => iouringVerdict('virtio-fs', true, v))).toEqual(Array<string>(6).fill('SKIP'));
    expect(from.map((v) => iouringVerdict('virtio-fs', false, v))).toEqual([...Array<string>(4).fill(F('EOPNOTSUPP')), 'pass', 'pass']);
    // what the kernel would answer the shared registration the test skips: GUP's fs-dax EOPNOTSUPP
    expect(from.map((v) => iouringRegistration('virtio-fs', true, v))).toEqual(Array<string>(6).fill('EOPNOTSUPP'));
  });

  it('the page each registration pins: the shared memfd\'s cache page, the anon COW copy of every private mapping', () => {
    expect(iouringRegistration('memfd', true, 'latest')).toBe('cache page');
    expect(iouringRegistration('memfd-hugetlb', true, 'latest')).toBe('cache page');
    for (const b of ['memfd', 'memfd-hugetlb', 'ext4', 'xfs', 'fsdax-xfs'] as const) expect({ b, got: iouringRegistration(b, false, 'latest') }).toEqual({ b, got: 'anon copy' });
  });

  it('device-dax (not in the test): io_uring refuses the /dev/dax file up to v6.4; GUP registers the GENERIC pages from v6.5', () => {
    const got = RELEASES.map((version) => {
      const k = createKernel({ arch: x86(), driver: devdax(), kernel: version });
      k.run(k.probe({ driver: 'devdax', size: 2 ** 30, align: 2 ** 21, as: 'dax0' }));
      k.run(k.mmap({ device: 'dax0', length: 2 ** 21, shared: true, write: true, as: 'mem' }));
      k.run(k.write({ map: 'mem', page: 0, data: '0x00' }));
      const pfn = k.pfnOf({ device: 'dax0', page: 0 })!;
      const before = k.refcount(pfn);
      try {
        k.run(k.iouringRegister({ map: 'mem', page: 0, as: 'buf' }));
      } catch (e) {
        if (!(e instanceof KernelError)) throw e;
        // the pin io_pin_pages() took is dropped again
        expect(k.refcount(pfn)).toBe(before);
        return e.code;
      }
      expect(k.maybePinned(pfn)).toBe(true);
      return 'works';
    });
    expect(got).toEqual(['EOPNOTSUPP', 'EOPNOTSUPP', 'EOPNOTSUPP', 'EOPNOTSUPP', 'works', 'works', 'works']);
  });
});

describe('mprotect() on DAX mappings (change_pte_range / change_huge_pmd on devmap leaves)', () => {
  const leafOf = (k: Kernel) => k.vm.lookup(k.process('init'), k.map('mem').start)!.pte;

  it('device-dax: PROT_READ write-protects the PMD; PROT_READ|PROT_WRITE gives write back at once (no writenotify: vm_page_prot is writable)', () => {
    for (const version of RELEASES) {
      const k = createKernel({ arch: x86(), driver: devdax(), kernel: version });
      k.run(k.probe({ driver: 'devdax', size: 2 ** 30, align: 2 ** 21, as: 'dax0' }));
      k.run(k.mmap({ device: 'dax0', length: 2 ** 21, shared: true, write: true, as: 'mem' }));
      k.run(k.write({ map: 'mem', page: 0, data: 'A' }));
      expect([leafOf(k).level, leafOf(k).write]).toEqual(['pmd', true]);
      k.run(k.mprotect({ map: 'mem', write: false }));
      expect(leafOf(k).write, version).toBe(false);
      k.run(k.mprotect({ map: 'mem', write: true }));
      expect(leafOf(k).write, version).toBe(true);
      // after clear_refs soft-dirty tracking wants write faults: vma_wants_writenotify() is true,
      // newprot loses write and only a soft-dirty PMD may be upgraded (v6.2+: can_change_pmd_writable)
      k.run(k.clearRefs({}));
      k.run(k.mprotect({ map: 'mem', write: false }));
      k.run(k.mprotect({ map: 'mem', write: true }));
      expect(leafOf(k).write, version).toBe(false);
      // the write fault (->huge_fault, insert_pfn_pmd mkwrite) makes it writable again
      k.run(k.write({ map: 'mem', page: 0, data: 'B' }));
      expect(leafOf(k).write).toBe(true);
      expect(k.run(k.read({ map: 'mem', page: 0 }))).toBe('B');
    }
  });

  it('a shared fs-dax PTE (writenotify: ->pfn_mkwrite): a dirty one gets write back in every release', () => {
    for (const version of RELEASES) {
      const k = createKernel({ arch: x86(), fs: xfs(), driver: nvdimm(), kernel: version });
      k.run(k.probe({ size: 2 ** 30, as: 'pmem0' }));
      k.run(k.mount({ device: 'pmem0' }));
      k.run(k.create({ file: 'f', size: 4096 }));
      k.run(k.mmap({ file: 'f', length: 4096, shared: true, write: true, as: 'mem' }));
      k.run(k.write({ map: 'mem', page: 0, data: 'A' }));
      expect([leafOf(k).level, leafOf(k).dirty]).toEqual(['pte', true]);
      k.run(k.mprotect({ map: 'mem', write: false }));
      expect(leafOf(k).write).toBe(false);
      // <= v5.19: dirty_accountable && pte_dirty; v6.0+: can_change_pte_writable() shared: pte_dirty
      k.run(k.mprotect({ map: 'mem', write: true }));
      expect(leafOf(k).write, version).toBe(true);
    }
  });

  it('a 1 GiB device-dax PUD is refused clearly (change_pud_range() mishandled huge PUDs until v6.12)', () => {
    const k = createKernel({ arch: x86(), driver: devdax(), kernel: 'latest' });
    k.run(k.probe({ driver: 'devdax', size: 2 ** 31, align: 2 ** 30, as: 'dax0' }));
    k.run(k.mmap({ device: 'dax0', length: 2 ** 30, shared: true, write: true, as: 'mem' }));
    k.run(k.write({ map: 'mem', page: 0, data: 'A' }));
    expect(leafOf(k).level).toBe('pud');
    expect(() => k.run(k.mprotect({ map: 'mem', write: false }))).toThrow(/PUD leaves \(device-dax 1 GiB\)/);
  });
});

// ---- gup_test ioctls on private anon memory -----------------------------------------------

const GUP_TEST_COMMANDS = [
  // [ioctl, FOLL_PIN, FOLL_LONGTERM, fast, reference per page of an order-0 folio]. The PIN commands came with
  // FOLL_PIN accounting (v5.7 [M]); on v5.4 the same pin is a get_user_pages() reference (1).
  ['GUP_FAST_BENCHMARK (-u)', false, false, true, 1],
  ['GUP_BASIC_TEST (-U)', false, false, false, 1],
  ['PIN_FAST_BENCHMARK (-a)', true, false, true, 1024],
  ['PIN_BASIC_TEST (-b)', true, false, false, 1024],
  ['PIN_LONGTERM_BENCHMARK (-L)', true, true, false, 1024],
] as const;

describe('gup_test: the reference each command takes and gives back (order-0 anon folios)', () => {
  for (const [name, pin, longterm, fast, ref] of GUP_TEST_COMMANDS) {
    it(name, () => {
      for (const version of RELEASES) {
        const counted = pin && version !== 'v5.4';
        const { k } = anonKernel(version);
        k.run(k.mmap({ anon: true, length: 8 * 4096, write: true, as: 'buf' }));
        for (let p = 0; p < 8; p++) k.run(k.write({ map: 'buf', page: p, data: '0x00' }));
        k.run(k.gup({ map: 'buf', page: 0, pages: 8, write: true, longterm, fast, as: 'all' }, pin));
        const pfns = [...Array(8).keys()].map((p) => k.pfnOf({ map: 'buf', page: p })!);
        expect({ version, rc: pfns.map((f) => k.refcount(f)) }).toEqual({ version, rc: Array(8).fill(1 + (counted ? ref : 1)) });
        // verify_dma_pinned(): folio_maybe_dma_pinned() for the PIN commands only
        expect(pfns.map((f) => k.maybePinned(f))).toEqual(Array(8).fill(counted));
        k.run(pin ? k.unpin({ name: 'all' }) : k.put({ name: 'all' }));
        expect(pfns.map((f) => [k.refcount(f), k.maybePinned(f)])).toEqual(Array(8).fill([1, false]));
      }
    });
  }
});

// ---- gup_test -t: the same ioctls on PMD-mapped anonymous THPs ----------------------------

/** gup_test -t: mmap, madvise(MADV_HUGEPAGE) on all of it, p[0] = 0 for every page (the first write per PMD maps a THP). */
function thpBuffer(k: Kernel, length: number): number[] {
  k.run(k.mmap({ anon: true, length, write: true, as: 'buf' }));
  k.run(k.madvise({ map: 'buf', advice: 'hugepage' }));
  const pages = length / 4096;
  for (let p = 0; p < pages; p += k.vm.pmdPages) k.run(k.write({ map: 'buf', page: p, data: '0x00' }));
  const heads = [...new Set([...Array(pages).keys()].map((p) => k.folios.folio(k.pfnOf({ map: 'buf', page: p })!)))];
  // every page of the buffer is a subpage of a PMD-order folio
  expect(heads.map((h) => k.folios.nr(h))).toEqual(Array(pages / k.vm.pmdPages).fill(k.vm.pmdPages));
  return heads;
}

describe('gup_test -t: the reference each command takes and gives back on PMD-mapped THPs', () => {
  const pincount = (k: Kernel, head: number) => k.pages.pincount[k.pages.slot(head)];
  // A large folio has a _pincount: FOLL_PIN adds 1 to _refcount and 1 to _pincount per page
  // (try_grab_page / try_grab_compound_head with hpage_pincount_available(), 47e29d32afba v5.7;
  // try_grab_folio with folio_has_pincount() later), never GUP_PIN_COUNTING_BIAS. So every
  // command leaves a THP whose 512 subpages were all taken at 1 (the PMD) + 512, on every
  // release, and only folio_maybe_dma_pinned() (_pincount) tells a PIN from a GET.
  for (const [name, pin, longterm, fast] of GUP_TEST_COMMANDS) {
    it(`${name}: -n -1 -w and -n 1 -W on x86 (one THP of 512 subpages), every release`, () => {
      for (const version of RELEASES) {
        const counted = pin && version !== 'v5.4';
        const { k } = anonKernel(version);
        const [head] = thpBuffer(k, 2 ** 21);
        // -n -1 -w: one call for the whole range
        k.run(k.gup({ map: 'buf', page: 0, pages: 512, write: true, longterm, fast, as: 'all' }, pin));
        expect({ version, rc: k.refcount(head!), pincount: pincount(k, head!), pinned: k.maybePinned(head!) }).toEqual({ version, rc: 513, pincount: counted ? 512 : 0, pinned: counted });
        k.run(pin ? k.unpin({ name: 'all' }) : k.put({ name: 'all' }));
        expect([k.refcount(head!), pincount(k, head!), k.maybePinned(head!)]).toEqual([1, 0, false]);
        // -n 1 -W: one page per call, no FOLL_WRITE (an exclusive THP needs no unshare)
        for (let p = 0; p < 512; p++) k.run(k.gup({ map: 'buf', page: p, write: false, longterm, fast, as: `p${p}` }, pin));
        expect({ version, rc: k.refcount(head!), pincount: pincount(k, head!), pinned: k.maybePinned(head!) }).toEqual({ version, rc: 513, pincount: counted ? 512 : 0, pinned: counted });
        for (let p = 0; p < 512; p++) k.run(pin ? k.unpin({ name: `p${p}` }) : k.put({ name: `p${p}` }));
        // put_back_pages(): the THP is as the tool left it, one PMD, mapped once, writable
        const leaf = k.vm.lookup(k.process('init'), k.map('buf').start)!;
        expect({ version, rc: k.refcount(head!), pinned: k.maybePinned(head!), mapcount: k.mapcount(head!), level: leaf.pte.level, write: leaf.pte.write }).toEqual({ version, rc: 1, pinned: false, mapcount: 1, level: 'pmd', write: true });
      }
    });
  }

  it('s390 (1 MiB segments): a 2 MiB buffer is two THPs of 256, each at 1 + 256 after -n -1, every release', () => {
    for (const version of RELEASES) {
      for (const [, pin, longterm, fast] of GUP_TEST_COMMANDS) {
        const k = createKernel({ arch: catalog.arch['s390']!({}), kernel: version });
        const heads = thpBuffer(k, 2 ** 21);
        k.run(k.gup({ map: 'buf', page: 0, pages: 512, write: true, longterm, fast, as: 'all' }, pin));
        const counted = pin && version !== 'v5.4';
        expect({ version, pin, got: heads.map((h) => [k.refcount(h), pincount(k, h), k.maybePinned(h)]) }).toEqual({ version, pin, got: [[257, counted ? 256 : 0, counted], [257, counted ? 256 : 0, counted]] });
        k.run(pin ? k.unpin({ name: 'all' }) : k.put({ name: 'all' }));
        expect(heads.map((h) => k.refcount(h))).toEqual([1, 1]);
      }
    }
  });
});

// ---- gup_test -H: the same ioctls on a MAP_HUGETLB buffer (mm/hugetlb.ts) --------------------

describe('gup_test -H: the reference each command takes and gives back on a hugetlb page', () => {
  // -H maps MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB and writes p[0] = 0 in every base page: one
  // anon hugetlb folio per 2 MiB (x86 default size), mapped by one PMD. A hugetlb folio is a large
  // folio: as for a THP, each page taken adds 1 to _refcount and, for a PIN (v5.7+), 1 to
  // _pincount. The buffer is one huge page (the tool's default is 128 MiB: 64 of the same).
  for (const [name, pin, longterm, fast] of GUP_TEST_COMMANDS) {
    it(`${name}: -H -n -1 -w, every release`, () => {
      for (const version of RELEASES) {
        const counted = pin && version !== 'v5.4';
        const { k } = anonKernel(version);
        k.run(k.hugetlbPool({ size: 2 ** 21, pages: 1 }));
        k.run(k.mmap({ anon: true, hugetlb: 2 ** 21, length: 2 ** 21, write: true, as: 'buf' }));
        for (let p = 0; p < 512; p += 511) k.run(k.write({ map: 'buf', page: p, data: '0x00' }));
        const head = k.pfnOf({ map: 'buf', page: 0 })!;
        k.run(k.gup({ map: 'buf', page: 0, pages: 512, write: true, longterm, fast, as: 'all' }, pin));
        const pincount = k.pages.pincount[k.pages.slot(head)];
        expect({ version, rc: k.refcount(head), pincount, pinned: k.maybePinned(head) }).toEqual({ version, rc: 513, pincount: counted ? 512 : 0, pinned: counted });
        k.run(pin ? k.unpin({ name: 'all' }) : k.put({ name: 'all' }));
        const leaf = k.vm.lookup(k.process('init'), k.map('buf').start)!;
        expect({ version, rc: k.refcount(head), mapcount: k.mapcount(head), level: leaf.pte.level, write: leaf.pte.write }).toEqual({ version, rc: 1, mapcount: 1, level: 'pmd', write: true });
      }
    });
  }
});

// ---- hugetlb-madvise.c: MADV_DONTNEED / MADV_REMOVE on hugetlb, free-page counts ---------------

/**
 * tools/testing/selftests/mm/hugetlb-madvise.c main() on x86 (2 MiB pages, a pool of
 * MIN_FREE_PAGES = 20): 'pass', or where it stops as the test does (exit(1) on an unexpected
 * madvise() result or an "Unexpected number of free huge pages").
 */
function hugetlbMadviseRun(version: string): string {
  const H = 2 ** 21;
  const NR = 10;
  const base = 4096;
  const { k } = anonKernel(version);
  k.run(k.hugetlbPool({ size: H, pages: 20 }));
  const freeHuge = () => k.hugetlb.counters(H).free; // get_free_hugepages(): HugePages_Free
  const fails = (f: () => unknown): boolean => {
    try {
      f();
      return false;
    } catch (e) {
      if (e instanceof KernelError && e.unsupported === null) return true;
      throw e;
    }
  };
  const writeFault = (map: string, first = 0) => {
    for (let i = 0; i < NR; i++) k.run(k.write({ map, page: ((first + i) * H) / base, data: String(i) }));
  };
  const readFault = (map: string) => {
    for (let i = 0; i < NR; i++) k.run(k.read({ map, page: (i * H) / base }));
  };
  const steps: [string, () => boolean][] = [];
  const free = (line: string, n: number) => steps.push([`validate_free_pages line ${line}`, () => freeHuge() === 20 - n]);
  const ok = (what: string, f: () => unknown) => steps.push([what, () => !fails(f)]);
  const bad = (what: string, f: () => unknown) => steps.push([what, () => fails(f)]);
  const run = (f: () => unknown) => steps.push(['', () => (f(), true)]);
  const madv = (map: string, advice: 'dontneed' | 'remove', offset?: number, length?: number) => () => k.run(k.madvise({ map, advice, ...(offset !== undefined ? { offset } : {}), ...(length !== undefined ? { length } : {}) }));
  run(() => k.run(k.memfdCreate({ file: 'fd', size: 0, hugetlb: H })));
  run(() => k.run(k.mmap({ anon: true, hugetlb: H, length: (NR + 2) * H, write: true, as: 'a0' })));
  run(() => (k.run(k.munmap({ map: 'a0', length: H })), k.run(k.munmap({ map: 'a0', offset: (NR + 1) * H, length: H }))));
  run(() => writeFault('a0', 1));
  free('NR', NR);
  bad('invalid addr', madv('a0', 'dontneed', H - base, NR * H));
  bad('invalid length', madv('a0', 'dontneed', H, NR * H + base));
  run(() => k.run(k.munmap({ map: 'a0', offset: H, length: NR * H })));
  run(() => (k.run(k.mmap({ anon: true, hugetlb: H, length: NR * H, write: true, as: 'a1' })), writeFault('a1')));
  free('NR', NR);
  bad('unaligned start', madv('a1', 'dontneed', base, NR * H - base));
  ok('aligned down', madv('a1', 'dontneed', 0, (NR - 1) * H + base));
  free('all but last', 1);
  run(() => k.run(k.munmap({ map: 'a1' })));
  free('0', 0);
  run(() => (k.run(k.mmap({ anon: true, hugetlb: H, length: NR * H, write: true, as: 'a2' })), writeFault('a2')));
  free('NR', NR);
  ok('anon private', madv('a2', 'dontneed'));
  free('0', 0);
  run(() => (k.run(k.munmap({ map: 'a2' })), k.run(k.fallocate({ file: 'fd', length: NR * H }))));
  free('NR', NR);
  run(() => (k.run(k.mmap({ file: 'fd', length: NR * H, write: true, as: 'a3' })), readFault('a3')));
  free('NR', NR);
  ok('private file', madv('a3', 'dontneed'));
  free('NR', NR);
  run(() => writeFault('a3'));
  free('2NR', 2 * NR);
  ok('private file cow', madv('a3', 'dontneed'));
  free('NR', NR);
  run(() => writeFault('a3'));
  free('2NR', 2 * NR);
  ok('punch hole', () => k.run(k.punchHole({ file: 'fd', offset: 0, length: NR * H })));
  free('0', 0);
  run(() => (k.run(k.munmap({ map: 'a3' })), k.run(k.fallocate({ file: 'fd', length: NR * H }))));
  free('NR', NR);
  run(() => (k.run(k.mmap({ file: 'fd', length: NR * H, shared: true, write: true, as: 'a4' })), writeFault('a4')));
  free('NR', NR);
  ok('shared file', madv('a4', 'dontneed'));
  free('NR', NR);
  ok('MADV_REMOVE shared', madv('a4', 'remove'));
  free('0', 0);
  run(() => (k.run(k.munmap({ map: 'a4' })), k.run(k.fallocate({ file: 'fd', length: NR * H }))));
  free('NR', NR);
  run(() => (k.run(k.mmap({ file: 'fd', length: NR * H, shared: true, write: true, as: 'a5' })), writeFault('a5')));
  free('NR', NR);
  run(() => (k.run(k.mmap({ file: 'fd', length: NR * H, write: true, as: 'a6' })), readFault('a6')));
  free('NR', NR);
  run(() => writeFault('a6'));
  free('2NR', 2 * NR);
  ok('shared of both', madv('a5', 'dontneed'));
  free('2NR', 2 * NR);
  ok('private of both', madv('a6', 'dontneed'));
  free('NR', NR);
  run(() => writeFault('a6'));
  free('2NR', 2 * NR);
  ok('MADV_REMOVE of both', madv('a5', 'remove'));
  free('0', 0);
  for (const [what, step] of steps) if (!step()) return `FAIL: ${what}`;
  return 'pass';
}

describe('hugetlb-madvise.c: MADV_DONTNEED on hugetlb from v5.18, the end rounded down from v6.1, punch holes taking COW copies', () => {
  it('FAIL on v5.4 and v5.10 (the first madvise that must succeed is EINVAL), pass from v6.1', () => {
    const verdicts = Object.fromEntries(RELEASES.map((v) => [v, hugetlbMadviseRun(v)]));
    expect(verdicts).toEqual({ 'v5.4': 'FAIL: aligned down', 'v5.10': 'FAIL: aligned down', 'v6.1': 'pass', 'v6.3': 'pass', 'v6.6': 'pass', 'v6.15': 'pass', latest: 'pass' });
  });
});

// ---- hugetlb-soft-offline.c: MADV_SOFT_OFFLINE of a hugetlb page, enable_soft_offline 1 then 0 ---

/**
 * tools/testing/selftests/mm/hugetlb-soft-offline.c main() on x86 (2 MiB pages, a pool of 8):
 * test_soft_offline_common(1) then (0), each 'ok' or 'not ok' as the test prints it. The echo into
 * /proc/sys/vm/enable_soft_offline goes through popen(), so its failure (no file before v6.11) is
 * not seen; errno after a successful madvise() is whatever an earlier call left (never EOPNOTSUPP here).
 */
function hugetlbSoftOfflineRun(version: string): string[] {
  const H = 2 ** 21;
  const { k } = anonKernel(version);
  k.run(k.hugetlbPool({ size: H, pages: 8 }));
  const nr = () => k.hugetlb.counters(H).nr;
  return [1, 0].map((enable) => {
    const fd = `hugetlb_tmp${enable}`;
    k.run(k.memfdCreate({ file: fd, size: 0, hugetlb: H }));
    try {
      k.run(k.sysctl({ name: 'vm.enable_soft_offline', value: enable as 0 | 1 }));
    } catch (e) {
      if (!(e instanceof KernelError && e.code === 'ENOENT')) throw e;
    }
    const before = nr();
    k.run(k.truncate({ file: fd, size: 2 * H }));
    k.run(k.mmap({ file: fd, length: 2 * H, shared: true, write: true, populate: true, as: `filemap${enable}` }));
    for (let i = 0; i < 2; i++) k.run(k.write({ map: `filemap${enable}`, page: (i * H) / 4096, data: 'ab' }));
    let errno: string | null = null;
    try {
      k.run(k.softOffline({ map: `filemap${enable}`, page: H / 4096 }));
    } catch (e) {
      if (!(e instanceof KernelError) || e.unsupported !== null) throw e;
      errno = e.code;
    }
    k.run(k.munmap({ map: `filemap${enable}` }));
    k.run(k.truncate({ file: fd, size: 0 }));
    const after = nr();
    const expectErrno = enable ? null : 'EOPNOTSUPP';
    if (enable ? before !== after + 1 : before !== after) return 'not ok';
    return errno === expectErrno ? 'ok' : 'not ok';
  });
}

describe('hugetlb-soft-offline.c: a soft-offlined hugetlb page leaves the pool; enable_soft_offline=0 refuses from v6.11', () => {
  it('the enabled case passes on every release; the disabled one fails before v6.11 (no sysctl: the page is offlined anyway)', () => {
    const verdicts = Object.fromEntries(RELEASES.map((v) => [v, hugetlbSoftOfflineRun(v).join(', ')]));
    const old = 'ok, not ok';
    expect(verdicts).toEqual({ 'v5.4': old, 'v5.10': old, 'v6.1': old, 'v6.3': old, 'v6.6': old, 'v6.15': 'ok, ok', latest: 'ok, ok' });
  });
});

// ---- hugetlb-read-hwpoison.c: read(2) of a hugetlbfs file whose huge page has a poisoned page ---

/**
 * tools/testing/selftests/mm/hugetlb-read-hwpoison.c main() on x86 (2 MiB pages, 4 KiB base pages),
 * each case as the test prints it, until the first TEST_FAILED ends the run (main() returns -1) or
 * a signal kills it. The write/read chunk sizes are 1, 2 and 4 pages: the test's first one, half a
 * page, is not modelled (the model's data is one value per base page). Each chunk holds its own
 * value (setup_filemap()); the read loops are the test's: read(fd, buf, chunk) from the file
 * position until the expected end, 0 or an error, each return checked against the next value.
 */
function hugetlbReadHwpoisonRun(version: string): string[] {
  const H = 2 ** 21;
  const ps = 4096;
  const n = H / ps;
  const { k } = anonKernel(version);
  k.run(k.hugetlbPool({ size: H, pages: 8 }));
  k.run(k.mmap({ anon: true, length: 4 * ps, write: true, as: 'buf' }));
  const printed: string[] = [];
  let file = 0;
  // one pass of read_hugepage_filemap() / seek_read_hugepage_filemap(): the bytes read in total, or null when a chunk's value is wrong
  const readLoop = (fd: string, chunk: number, from: number): number | null => {
    let pos = from;
    let val = from / chunk;
    let total = 0;
    while (from + total < n) {
      let got: number;
      try {
        got = k.run(k.pread({ file: fd, offset: pos * ps, length: chunk * ps, map: 'buf' })) / ps;
      } catch (e) {
        if (e instanceof KernelError && e.unsupported === null) break; // perror("read failed")
        throw e;
      }
      if (got === 0) break;
      val++;
      for (let i = 0; i < got; i++) if (k.run(k.read({ map: 'buf', page: i })) !== String(val)) return null;
      pos += got;
      total += got;
    }
    return total;
  };
  for (const chunk of [1, 2, 4]) {
    for (const c of ['read', 'read HWPOISON', 'seek then read HWPOISON'] as const) {
      const fd = `hugetlb_tmp${file++}`;
      k.run(k.memfdCreate({ file: fd, size: 0, hugetlb: H }));
      k.run(k.truncate({ file: fd, size: H }));
      k.run(k.mmap({ file: fd, length: H, shared: true, write: true, populate: true, as: fd }));
      for (let p = 0; p < n; p++) k.run(k.write({ map: fd, page: p, data: String(Math.floor(p / chunk) + 1) }));
      let total: number | null;
      if (c === 'read') total = readLoop(fd, chunk, 0) === n ? n : null;
      else {
        try {
          k.run(k.memoryFailure({ map: fd, page: n / 2 + 1 }));
        } catch (e) {
          if (e instanceof KernelError && e.code === 'SIGBUS') return [...printed, `${chunk}: ${c} killed by SIGBUS`];
          throw e;
        }
        const skip = Math.max(2, chunk);
        total = c === 'read HWPOISON' ? (readLoop(fd, chunk, 0) === n / 2 + 1 ? 1 : null) : readLoop(fd, chunk, n / 2 + skip) === n / 2 - skip ? 1 : null;
      }
      k.run(k.munmap({ map: fd }));
      k.run(k.truncate({ file: fd, size: 0 }));
      printed.push(`${chunk}: ${c} ${total === null ? 'FAILED' : 'PASSED'}`);
      if (total === null) return printed;
    }
  }
  return printed;
}

describe('hugetlb-read-hwpoison.c: read(2) stops before a poisoned page of a hugetlbfs page from v6.5', () => {
  it('v5.x reads zeroes (the folio left the cache), v6.1 and v6.3 EIO, v6.6 passes, from v6.11 the madvise SIGBUSes the caller', () => {
    const verdicts = Object.fromEntries(RELEASES.map((v) => [v, hugetlbReadHwpoisonRun(v).join(', ')]));
    const failed = '1: read PASSED, 1: read HWPOISON FAILED';
    const killed = '1: read PASSED, 1: read HWPOISON killed by SIGBUS';
    const all = [1, 2, 4].map((c) => `${c}: read PASSED, ${c}: read HWPOISON PASSED, ${c}: seek then read HWPOISON PASSED`).join(', ');
    expect(verdicts).toEqual({ 'v5.4': failed, 'v5.10': failed, 'v6.1': failed, 'v6.3': failed, 'v6.6': all, 'v6.15': killed, latest: killed });
  });

  it('a poisoned huge page never returns to the pool: the GUP reference memory failure keeps outlives munmap and ftruncate(0)', () => {
    const { k } = anonKernel('v6.6');
    k.run(k.hugetlbPool({ size: 2 ** 21, pages: 3 }));
    k.run(k.memfdCreate({ file: 'f', size: 2 ** 21, hugetlb: 2 ** 21 }));
    k.run(k.mmap({ file: 'f', length: 2 ** 21, shared: true, write: true, populate: true, as: 'm' }));
    k.run(k.memoryFailure({ map: 'm', page: 257 }));
    k.run(k.munmap({ map: 'm' }));
    k.run(k.truncate({ file: 'f', size: 0 }));
    expect([k.hugetlb.counters(2 ** 21).free, k.hugetlb.counters(2 ** 21).nr, k.memoryFailures.hardwareCorruptedKb()]).toEqual([2, 3, 4]);
  });
});

// ---- memory-failure.c: MADV_HWPOISON / MADV_SOFT_OFFLINE of an anonymous page, then unpoison ---

/**
 * tools/testing/selftests/mm/memory-failure.c TEST_F(memory_failure, anon | clean_pagecache) on x86
 * for the variant (madv_hard, madv_soft): prepare() (pagemap pfn, HardwareCorrupted), the injection and FORCE_READ
 * under sigsetjmp, check() and cleanup() (unpoison-pfn of the old pfn) as the test asserts them, in
 * order; the first ASSERT that fails is the verdict ('ok' when none). KPF_HWPOISON of
 * /proc/kpageflags is PG_hwpoison of the pfn; the siginfo the model gives is its SIGBUS error.
 */
function memoryFailureRun(version: string, test: 'anon' | 'clean_pagecache', variant: 'madv_hard' | 'madv_soft', fs: 'xfs' | 'ext4' = 'xfs'): string {
  const k = test === 'anon' ? anonKernel(version).k : createKernel({ arch: x86(), fs: fs === 'xfs' ? xfs() : ext4(), driver: nvdimm(), kernel: version });
  const kb = () => k.memoryFailures.hardwareCorruptedKb();
  const hwpoison = (pfn: number) => k.pages.has(pfn) && (k.folios.flags(pfn) & PG.hwpoison) !== 0;
  if (test === 'anon') k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'addr' }));
  else {
    // the test's file in the current directory: a disk filesystem (not tmpfs), here mounted without DAX;
    // open(O_RDWR | O_CREAT), unlink, ftruncate(fd, page_size), mmap(MAP_SHARED)
    k.run(k.probe({ size: 2 ** 30, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0', dax: false }));
    k.run(k.create({ file: 'clean-page-cache-test-file', size: 4096 }));
    k.run(k.mmap({ file: 'clean-page-cache-test-file', length: 4096, shared: true, write: true, as: 'addr' }));
  }
  k.run(k.write({ map: 'addr', page: 0, data: 'ce' }));
  if (test === 'clean_pagecache') k.run(k.fsync({ file: 'clean-page-cache-test-file' }));
  const pfn = k.pfnOf({ map: 'addr', page: 0 })!;
  const corrupted = kb();
  let sigbus: KernelError | null = null;
  try {
    if (variant === 'madv_hard') k.run(k.memoryFailure({ map: 'addr', page: 0 }));
    else k.run(k.softOffline({ map: 'addr', page: 0 }));
    k.run(k.read({ map: 'addr', page: 0 })); // FORCE_READ(*addr)
  } catch (e) {
    if (!(e instanceof KernelError) || e.code !== 'SIGBUS') throw e;
    sigbus = e;
  }
  if (variant === 'madv_hard' && test === 'anon') {
    if (!sigbus) return 'no SIGBUS (setjmp == 0)';
    if (!sigbus.message.includes('BUS_MCEERR_AR')) return `si_code not BUS_MCEERR_AR: ${sigbus.message}`;
    if (!k.isSwappedIn({ map: 'addr', page: 0 })) return 'pagemap_is_swapped() false';
  } else {
    if (sigbus) return 'SIGBUS';
    if (k.run(k.read({ map: 'addr', page: 0 })) !== 'ce') return 'content changed';
    if (k.pfnOf({ map: 'addr', page: 0 }) === pfn) return 'pfn unchanged';
  }
  if (kb() !== corrupted + 4) return `HardwareCorrupted ${kb()} kB, expected ${corrupted + 4}`;
  if (!hwpoison(pfn)) return 'KPF_HWPOISON not set';
  try {
    k.memoryFailures.unpoison(pfn);
  } catch (e) {
    if (e instanceof KernelError) return `unpoison_memory: ${e.code}`;
    throw e;
  }
  if (hwpoison(pfn)) return 'KPF_HWPOISON still set after unpoison';
  if (kb() !== corrupted) return `HardwareCorrupted ${kb()} kB after unpoison, expected ${corrupted}`;
  k.run(k.munmap({ map: 'addr' }));
  return 'ok';
}

describe('memory-failure.c: anon and clean_pagecache, madv_hard and madv_soft', () => {
  it('anon, both variants, pass on every release: SIGBUS BUS_MCEERR_AR at madvise from v6.11, at the FORCE_READ before', () => {
    for (const variant of ['madv_hard', 'madv_soft'] as const) {
      expect([variant, Object.fromEntries(RELEASES.map((v) => [v, memoryFailureRun(v, 'anon', variant)]))]).toEqual([variant, Object.fromEntries(RELEASES.map((v) => [v, 'ok']))]);
    }
  });

  it('clean_pagecache, both variants, on xfs and ext4, pass on every release: the fsynced page is dropped (hard: no kill, read back from its block) or migrated (soft)', () => {
    for (const fs of ['xfs', 'ext4'] as const) {
      for (const variant of ['madv_hard', 'madv_soft'] as const) {
        expect([fs, variant, Object.fromEntries(RELEASES.map((v) => [v, memoryFailureRun(v, 'clean_pagecache', variant, fs)]))]).toEqual([fs, variant, Object.fromEntries(RELEASES.map((v) => [v, 'ok']))]);
      }
    }
  });

  it('clean_pagecache without the fsync: the dirty page (me_pagecache_dirty) is refused as not modelled', () => {
    const k = createKernel({ arch: x86(), fs: xfs(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.probe({ size: 2 ** 30, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0', dax: false }));
    k.run(k.create({ file: 'f', size: 4096 }));
    k.run(k.mmap({ file: 'f', length: 4096, shared: true, write: true, as: 'addr' }));
    k.run(k.write({ map: 'addr', page: 0, data: 'ce' }));
    expect(() => k.run(k.memoryFailure({ map: 'addr', page: 0 }))).toThrow(/dirty page/);
  });

  it('unpoison frees the page to the allocator: the next allocation may take it again', () => {
    const { k } = anonKernel('v6.6');
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'a' }));
    k.run(k.write({ map: 'a', page: 0, data: 'ce' }));
    const pfn = k.pfnOf({ map: 'a', page: 0 })!;
    k.run(k.memoryFailure({ map: 'a', page: 0 }));
    k.run(k.munmap({ map: 'a' }));
    expect(k.pages.has(pfn) && k.refcount(pfn)).toBe(1);
    k.memoryFailures.unpoison(pfn);
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'b' }));
    k.run(k.write({ map: 'b', page: 0, data: 'x' }));
    expect(k.pfnOf({ map: 'b', page: 0 })).toBe(pfn);
  });

  it('unpoison of a page someone still holds: EBUSY from v5.17, 0 and nothing done before', () => {
    for (const [version, want] of [['v5.10', 'ok'], ['v6.1', 'EBUSY']] as const) {
      const { k } = anonKernel(version);
      k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'a' }));
      k.run(k.write({ map: 'a', page: 0, data: 'ce' }));
      k.run(k.gup({ map: 'a', page: 0, as: 'held' }, false));
      const pfn = k.pfnOf({ map: 'a', page: 0 })!;
      expect(errnoOf(() => k.run(k.memoryFailure({ map: 'a', page: 0 })))).toBe('EBUSY');
      expect([version, errnoOf(() => k.memoryFailures.unpoison(pfn)), (k.folios.flags(pfn) & PG.hwpoison) !== 0]).toEqual([version, want, true]);
    }
  });
});

describe('hugetlb_madv_vs_map.c: a MADV_DONTNEED-freed page stays reserved for its owner from v6.9', () => {
  // one pass of the test's loop in the interleaving its threads race for: touch, madvise (return
  // ignored), map_extra; "Unexpected huge page allocation" when the extra MAP_HUGETLB mmap succeeds
  const verdict = (version: string): string => {
    const H = 2 ** 21;
    const { k } = anonKernel(version);
    k.run(k.hugetlbPool({ size: H, pages: 1 }));
    k.run(k.mmap({ anon: true, hugetlb: H, length: H, write: true, as: 'huge_ptr' }));
    k.run(k.write({ map: 'huge_ptr', page: 0, data: '.' }));
    try {
      k.run(k.madvise({ map: 'huge_ptr', advice: 'dontneed' }));
    } catch (e) {
      if (!(e instanceof KernelError) || e.code !== 'EINVAL') throw e;
    }
    try {
      k.run(k.mmap({ anon: true, hugetlb: H, length: H, write: true, as: 'extra' }));
    } catch (e) {
      if (e instanceof KernelError && e.code === 'ENOMEM') return 'pass';
      throw e;
    }
    return 'FAIL';
  };

  it('pass on v5.x (no MADV_DONTNEED on hugetlb), FAIL from v5.18 to v6.8, pass from v6.9 (df7a6d1f6405)', () => {
    expect(Object.fromEntries(RELEASES.map((v) => [v, verdict(v)]))).toEqual({ 'v5.4': 'pass', 'v5.10': 'pass', 'v6.1': 'FAIL', 'v6.3': 'FAIL', 'v6.6': 'FAIL', 'v6.15': 'pass', latest: 'pass' });
  });
});

/**
 * hugepage-mremap.c main() with its default 10 MB on one arch and release: haddr and daddr map a
 * MFD_HUGETLB memfd MAP_SHARED | MAP_POPULATE, vaddr is shared anonymous memory, a userfaultfd
 * registers its own anonymous area MISSING, then mremap(haddr, len, len, MREMAP_MAYMOVE |
 * MREMAP_FIXED, vaddr); the data is written and read back through the new address; after
 * munmap(addr, len) (its return ignored) mremap(addr, len, len, 0) must fail.
 */
function hugepageMremap(arch: string, version: string): string {
  const MiB = 2 ** 20;
  const k = createKernel({ arch: catalog.arch[arch]!({}), kernel: version });
  // default_huge_page_size(): 2 MiB with 4 KiB pages on x86-64 and arm64, 1 MiB on s390, 16 MiB
  // on ppc64 hash with 64 KiB pages (hugetlbpage_init(): the 16M MMU page size first)
  const huge = arch === 's390' ? MiB : arch === 'ppc-hash' ? 16 * MiB : 2 * MiB;
  const len = 10 * MiB;
  const perHuge = huge / k.mmu.basePageSize;
  k.run(k.hugetlbPool({ size: huge, pages: Math.ceil(len / huge) }));
  k.run(k.memfdCreate({ file: 'fd', size: 0, hugetlb: huge }));
  k.run(k.mmap({ file: 'fd', length: len, shared: true, write: true, populate: true, as: 'haddr' }));
  k.run(k.mmap({ file: 'fd', length: len, shared: true, write: true, populate: true, as: 'daddr' }));
  k.run(k.mmap({ anon: true, length: len, shared: true, write: true, as: 'vaddr' }));
  k.run(k.uffdApi({ features: [] }));
  k.run(k.mmap({ anon: true, length: len, write: true, as: 'uffd' }));
  k.run(k.uffdRegister({ map: 'uffd', mode: ['missing'] }));
  try {
    k.run(k.mremap({ map: 'haddr', length: len, to: 'vaddr', as: 'addr' }));
  } catch (e) {
    if (e instanceof KernelError) return `FAIL (mremap: ${e.code})`;
    throw e;
  }
  for (let i = 0; i < Math.ceil(len / huge); i++) k.run(k.write({ map: 'addr', page: i * perHuge, data: `b${i}` }));
  for (let i = 0; i < Math.ceil(len / huge); i++) if (k.run(k.read({ map: 'addr', page: i * perHuge })) !== `b${i}`) return `FAIL (mismatch at huge page ${i})`;
  try {
    k.run(k.munmap({ map: 'addr' }));
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
  }
  try {
    k.run(k.mremap({ map: 'addr', length: len }));
  } catch (e) {
    if (e instanceof KernelError) return 'pass';
    throw e;
  }
  return 'FAIL (mremap: Expected failure, but call succeeded)';
}

describe('hugepage-mremap.c: mremap of a hugetlb VMA is EINVAL before v5.16 (vma_to_resize()), moved from v5.16 (550a7d60bd5e)', () => {
  it('FAIL on v5.4 and v5.10, pass from v6.1, on x86-64, arm64 (2 MiB) and s390 (1 MiB)', () => {
    const old = 'FAIL (mremap: EINVAL)';
    for (const arch of ['x86', 'arm64', 's390']) {
      expect([arch, Object.fromEntries(RELEASES.map((v) => [v, hugepageMremap(arch, v)]))]).toEqual([arch, { 'v5.4': old, 'v5.10': old, 'v6.1': 'pass', 'v6.3': 'pass', 'v6.6': 'pass', 'v6.15': 'pass', latest: 'pass' }]);
    }
  });

  it('ppc64 hash (16 MiB): FAIL before v5.16 as the others; from v5.16 get_unmapped_area(MAP_FIXED) finds vaddr\'s 1 TiB slice still holding a 64 KiB mapping (the userfaultfd area) after the unmap: EBUSY', () => {
    const old = 'FAIL (mremap: EINVAL)';
    const busy = 'FAIL (mremap: EBUSY)';
    expect(Object.fromEntries(RELEASES.map((v) => [v, hugepageMremap('ppc-hash', v)]))).toEqual({ 'v5.4': old, 'v5.10': old, 'v6.1': busy, 'v6.3': busy, 'v6.6': busy, 'v6.15': busy, latest: busy });
  });
});

describe('userfaultfd: mkdirty.c test_uffdio_copy and ksm_functional_tests.c test_unmerge_uffd_wp, per arch and release', () => {
  const ARCHES = Object.keys(catalog.arch);
  const kernelOn = (arch: string, version: string): Kernel => createKernel({ arch: catalog.arch[arch]!({}), kernel: version });

  // test_uffdio_copy: UFFDIO_COPY into a PROT_READ VMA, then a store must be SIGSEGV and change nothing
  const uffdioCopy = (arch: string, version: string): string => {
    const k = kernelOn(arch, version);
    k.run(k.mmap({ anon: true, length: 4096, as: 'dst' }));
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'dst', mode: ['missing'] }));
    k.run(k.uffdCopy({ map: 'dst', page: 0, data: '0x01' }));
    try {
      k.run(k.write({ map: 'dst', page: 0, data: '0x02' }));
    } catch (e) {
      if (e instanceof KernelError && e.code === 'SIGSEGV') return k.run(k.read({ map: 'dst', page: 0 })) === '0x01' ? 'pass' : 'FAIL';
      throw e;
    }
    return 'FAIL';
  };

  // test_unmerge_uffd_wp as the file of today: UFFDIO_API(0) to see whether PAGEFAULT_FLAG_WP is
  // there (SKIP if not), a second userfaultfd that enables it, REGISTER_MODE_WP,
  // WRITEPROTECT_MODE_WP, MADV_UNMERGEABLE, then range_maps_duplicates() over the 2 MiB
  const unmergeUffdWp = (arch: string, version: string): string => {
    const k = kernelOn(arch, version);
    k.run(k.mmap({ anon: true, length: 2 ** 21, write: true, populate: true, as: 'map' }));
    k.run(k.madvise({ map: 'map', advice: 'nohugepage' }));
    k.run(k.madvise({ map: 'map', advice: 'mergeable' }));
    k.run(k.ksmMerge({}));
    if (!k.uffd.available().has('pagefault-flag-wp')) return 'SKIP';
    k.run(k.uffdApi({ features: ['pagefault-flag-wp'] }));
    k.run(k.uffdRegister({ map: 'map', mode: ['wp'] }));
    k.run(k.uffdWriteprotect({ map: 'map', enable: true }));
    k.run(k.madvise({ map: 'map', advice: 'unmergeable' }));
    const pages = 2 ** 21 / k.mmu.basePageSize;
    const pfns = Array.from({ length: pages }, (_, page) => k.pfnOf({ map: 'map', page })).filter((p) => p !== null);
    return new Set(pfns).size === pfns.length ? 'pass' : 'FAIL';
  };

  it('test_uffdio_copy passes on every arch and release: UFFDIO_COPY never maps the page writable without VM_WRITE', () => {
    for (const arch of ARCHES) for (const v of RELEASES) expect({ arch, v, verdict: uffdioCopy(arch, v) }).toEqual({ arch, v, verdict: 'pass' });
  });

  it('test_unmerge_uffd_wp: SKIP on v5.4 and without HAVE_ARCH_USERFAULTFD_WP from v5.14; FAIL on x86 v5.10 and v6.1 (break_ksm before 6cce3314b928, v6.2); pass otherwise', () => {
    const got = Object.fromEntries(ARCHES.map((arch) => [arch, RELEASES.map((v) => unmergeUffdWp(arch, v))]));
    // RELEASES: v5.4, v5.10, v6.1, v6.3, v6.6, v6.15, latest
    expect(got).toEqual({
      x86: ['SKIP', 'FAIL', 'FAIL', 'pass', 'pass', 'pass', 'pass'],
      // arm64: HAVE_ARCH_USERFAULTFD_WP from v6.10; on v5.10 the feature is offered and inert
      arm64: ['SKIP', 'pass', 'SKIP', 'SKIP', 'SKIP', 'pass', 'pass'],
      'ppc-hash': ['SKIP', 'pass', 'SKIP', 'SKIP', 'SKIP', 'SKIP', 'SKIP'],
      s390: ['SKIP', 'pass', 'SKIP', 'SKIP', 'SKIP', 'SKIP', 'SKIP'],
    });
  });
});

describe('uffd-unit-tests.c move, move-pmd, move-pmd-split (anon) per arch and release: UFFDIO_MOVE from v6.8', () => {
  const ARCHES = Object.keys(catalog.arch);
  /** Step an operation until it sleeps (a load in handle_userfault()), for the monitor to act. */
  const sleeping = <T>(op: Op<T>): Op<T> => {
    for (;;) {
      const r = op.next();
      if (r.done) throw new Error('the load did not sleep in handle_userfault()');
      if (r.value.kind === 'block' && !r.value.ready()) return op;
    }
  };
  const resume = <T>(op: Op<T>): T => {
    for (;;) {
      const r = op.next();
      if (r.done) return r.value;
    }
  };

  // uffd_move_test_common(): SKIP without UFFD_FEATURE_MOVE; else each chunk (a page, or a PMD for
  // the pmd cases) is a MISSING fault on its first destination page, answered by UFFDIO_MOVE of the
  // chunk with ALLOW_SRC_HOLES; 'pass' when every chunk's written pages read their data at the
  // destination, the source reads zeros, uffdio_move.move is the chunk and one message came per
  // chunk. `how` is the order of the destination folio afterwards: the PMD order when the THP
  // moved whole, 0 when it was split.
  const run = (arch: string, version: string, kind: 'move' | 'move-pmd' | 'move-pmd-split'): { verdict: string; order?: number } => {
    const k = createKernel({ arch: catalog.arch[arch]!({}), kernel: version });
    if (!k.uffd.available().has('move')) return { verdict: 'SKIP' };
    const ps = k.mmu.basePageSize;
    const chunk = kind === 'move' ? 1 : k.vm.pmdPages;
    const pages = kind === 'move' ? 4 : 2 * chunk;
    k.run(k.mmap({ anon: true, length: pages * ps, write: true, as: 'src' }));
    k.run(k.mmap({ anon: true, length: pages * ps, write: true, as: 'dst' }));
    k.run(k.madvise({ map: 'src', advice: kind === 'move' ? 'nohugepage' : 'hugepage' }));
    const written = [...new Set(Array.from({ length: pages / chunk }, (_, c) => [c * chunk, c * chunk + chunk - 1]).flat())];
    for (const page of written) k.run(k.write({ map: 'src', page, data: `c${page}` }));
    k.run(k.madvise({ map: 'dst', advice: 'dontneed' }));
    k.run(k.uffdApi({ features: ['move'] }));
    if (kind !== 'move') k.run(k.madvise({ map: 'dst', advice: kind === 'move-pmd' ? 'hugepage' : 'nohugepage' }));
    k.run(k.madvise({ map: 'src', advice: 'dontfork' }));
    k.run(k.uffdRegister({ map: 'dst', mode: ['missing'] }));
    let ok = true;
    for (let base = 0; base < pages; base += chunk) {
      const load = sleeping(k.read({ map: 'dst', page: base }));
      const msg = k.run(k.uffdRead({ nonblock: true, map: 'dst' }));
      ok &&= msg.event === 'pagefault' && msg.page === base && !msg.write;
      ok &&= k.run(k.uffdMove({ map: 'dst', page: base, src: 'src', pages: chunk, allowSrcHoles: true })) === chunk * ps;
      ok &&= resume(load) === `c${base}`;
      for (const page of written.filter((p) => p >= base && p < base + chunk)) ok &&= k.run(k.read({ map: 'dst', page })) === `c${page}` && k.run(k.read({ map: 'src', page })) === '';
    }
    const folio = k.folios.folio(k.pfnOf({ map: 'dst', page: 0 })!);
    return { verdict: ok ? 'pass' : 'FAIL', ...(kind === 'move' ? {} : { order: Math.log2(k.folios.nr(folio)) }) };
  };

  it('SKIP before v6.8 on every arch; from v6.8 move and both pmd cases pass: the THP moves whole into a none PMD (move-pmd) and is split behind the pte_alloc() of do_anonymous_page() (move-pmd-split)', () => {
    for (const arch of ARCHES) {
      const pmdOrder = Math.log2(createKernel({ arch: catalog.arch[arch]!({}), kernel: 'latest' }).vm.pmdPages);
      for (const v of RELEASES) {
        const old = ['v5.4', 'v5.10', 'v6.1', 'v6.3', 'v6.6'].includes(v);
        expect({ arch, v, move: run(arch, v, 'move') }).toEqual({ arch, v, move: { verdict: old ? 'SKIP' : 'pass' } });
        expect({ arch, v, pmd: run(arch, v, 'move-pmd') }).toEqual({ arch, v, pmd: old ? { verdict: 'SKIP' } : { verdict: 'pass', order: pmdOrder } });
        expect({ arch, v, split: run(arch, v, 'move-pmd-split') }).toEqual({ arch, v, split: old ? { verdict: 'SKIP' } : { verdict: 'pass', order: 0 } });
      }
    }
  });
});
