import { describe, expect, it } from 'vitest';
import { createKernel, PRESETS, type Kernel } from '../src/index.js';
import { kernelAtLeast } from '../src/features.js';
import { PG } from '../src/mm/pages.js';
import { BlockedError, runToCompletion, type Op, type Yield } from '../src/sched.js';
import { testArch } from '../src/testing.js';
import { written } from './vm-helpers.js';

// NUMA migration as a preemptible operation (mm/mempolicy.ts migrateFolio, mm/migrate.ts): the
// migration entries other threads meet between try_to_migrate() and remove_migration_ptes(),
// and what a fault, GUP, fork and munmap do with them. Values are reasoned in each test from
// mm/migrate.c (unmap_and_move() up to v6.2, migrate_pages_batch() from v6.3), mm/rmap.c
// try_to_migrate_one(), mm/memory.c do_swap_page() / copy_nonpresent_pte() and mm/gup.c.

const RELEASES = PRESETS.map((p) => p.name);
const INSTALLED = 'try_to_migrate: migration entries installed';
const FREEZE = 'folio_migrate_mapping: folio_ref_freeze';

function kernel(version = 'latest'): Kernel {
  const k = createKernel({ arch: testArch(), kernel: version });
  k.run(k.numaNodes({ nodes: 2 }));
  return k;
}

/** Step `op` up to (and including) the `nth` preemption point named `point`. */
function stepTo(op: Op<unknown>, point: string, nth = 1): void {
  let seen = 0;
  for (;;) {
    const r = op.next();
    if (r.done) throw new Error(`the operation ended before reaching '${point}' #${nth}`);
    if (r.value.kind === 'preempt' && r.value.point === point && ++seen === nth) return;
  }
}

/** Step `op` until it sleeps; returns the wait's reason. */
function stepToBlock(op: Op<unknown>): string {
  for (;;) {
    const r = op.next();
    if (r.done) throw new Error('the operation ended without sleeping');
    const y: Yield = r.value;
    if (y.kind === 'block' && !y.ready()) return y.reason;
  }
}

const moveToNode1 = (k: Kernel) => k.movePages({ map: 'm', page: 0, node: 1, all: true });
/** The entry at page 0 of mapping 'm' in a process (a migration entry included, which pfnOf() cannot tell). */
const pteAt = (k: Kernel, process?: string) => {
  const mm = k.process(process);
  const vma = mm.vmas.find((v) => v.name === 'm')!;
  return k.vm.lookup(mm, vma.start)?.pte;
};

describe('migration entries', () => {
  it('between try_to_migrate() and remove_migration_ptes() the PTE is a writable migration entry for the old page, which only the isolation holds', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      const [old] = written(k, 'm', 1);
      const mover = moveToNode1(k);
      stepTo(mover, INSTALLED);
      // try_to_migrate_one(): the PTE (writable) became make_writable_migration_entry(pfn); the
      // rmap and the mapping's reference went: refcount 1 is folio_isolate_lru()'s
      const pte = pteAt(k)!;
      expect({ version, migration: pte.migration !== undefined, write: pte.write, pfn: pte.pfn }).toEqual({ version, migration: true, write: true, pfn: old });
      expect([k.refcount(old!), k.mapcount(old!)]).toEqual([1, 0]);
      const r = runToCompletion(mover);
      const now = k.pfnOf({ map: 'm', page: 0 })!;
      expect({ version, status: r.status, notMigrated: r.notMigrated, node: k.nodeOf(now), rc: k.refcount(now), live: k.ram.live.has(old!) }).toEqual({ version, status: [1], notMigrated: 0, node: 1, rc: 1, live: false });
      // the write left the PTE dirty: try_to_migrate_one() marks the folio dirty, which moves to
      // the new folio; the new PTE is dirty only from v6.1 (the entry remembers it)
      expect({ version, pte: pteAt(k)!.dirty, folio: (k.folios.flags(now) & PG.dirty) !== 0 }).toEqual({ version, pte: kernelAtLeast(k.version, 6, 1), folio: true });
    }
  });

  it('a pass count per release: ten unmap-and-restore passes up to v6.2, two batches (async, then sync) from v6.3', () => {
    // a FOLL_GET reference held throughout: every folio_migrate_mapping() is -EAGAIN. Up to
    // v6.2 __unmap_and_move() unmaps and restores in each of NR_MAX_MIGRATE_PAGES_RETRY (10)
    // passes; from v6.3 migrate_pages_sync() unmaps once per migrate_pages_batch() (ASYNC with
    // 3 move passes, then SYNC with 7), keeping the entries between its move passes
    for (const version of RELEASES) {
      const k = kernel(version);
      const [old] = written(k, 'm', 1);
      k.run(k.gup({ map: 'm', page: 0, write: true, as: 'odirect' }, false));
      const mover = moveToNode1(k);
      let unmaps = 0;
      let moves = 0;
      let r = mover.next();
      for (; !r.done; r = mover.next()) {
        if (r.value.kind === 'preempt' && r.value.point === INSTALLED) unmaps++;
        if (r.value.kind === 'preempt' && r.value.point === FREEZE) moves++;
      }
      const batched = kernelAtLeast(k.version, 6, 3);
      expect({ version, unmaps, moves }).toEqual({ version, unmaps: batched ? 2 : 10, moves: 10 });
      // move_pages(): migrate_pages() returned 1, so the call returns 1 and leaves the status unset;
      // the page is back where it was: one mapping, its reference and the get's
      expect({ version, status: r.value.status, notMigrated: r.value.notMigrated }).toEqual({ version, status: [null], notMigrated: 1 });
      expect([k.pfnOf({ map: 'm', page: 0 }), k.refcount(old!), k.mapcount(old!), k.isWritableIn({ map: 'm', page: 0 })]).toEqual([old, 2, 1, true]);
    }
  });

  it('a CPU write on a migration entry sleeps in migration_entry_wait() and lands in the new page', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      const [old] = written(k, 'm', 1);
      const mover = moveToNode1(k);
      stepTo(mover, INSTALLED);
      const writer = k.write({ map: 'm', page: 0, data: 'B' });
      expect(stepToBlock(writer)).toBe('migration_entry_wait');
      runToCompletion(mover);
      runToCompletion(writer);
      // the copy took 'm0' before the write, which waited and then stored through the new PTE
      const now = k.pfnOf({ map: 'm', page: 0 })!;
      expect({ version, moved: now !== old, data: k.pages.data.get(now), node: k.nodeOf(now) }).toEqual({ version, moved: true, data: 'B', node: 1 });
    }
  });

  it('a pin after the unmap: GUP-fast backs off at the entry, the slow path waits, then pins the new page', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      const [old] = written(k, 'm', 1);
      const mover = moveToNode1(k);
      stepTo(mover, INSTALLED);
      const pinner = k.gup({ map: 'm', page: 0, write: true, fast: true, as: 'rdma' }, true);
      expect(stepToBlock(pinner)).toBe('migration_entry_wait');
      const r = runToCompletion(mover);
      const h = runToCompletion(pinner);
      const now = k.pfnOf({ map: 'm', page: 0 })!;
      expect({ version, notMigrated: r.notMigrated, pinned: h.pfns[0] === now, old: h.pfns[0] === old, node: k.nodeOf(now), maybePinned: k.maybePinned(now) }).toEqual({ version, notMigrated: 0, pinned: true, old: false, node: 1, maybePinned: k.features['foll-pin'] });
      // (5.4 has no FOLL_PIN accounting: the pin is a plain reference, folio_maybe_dma_pinned() false)
    }
  });

  it('a pin before the unmap keeps the page: try_to_migrate_one() refuses it from v5.19, the expected-count check before', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      const [old] = written(k, 'm', 1);
      k.run(k.gup({ map: 'm', page: 0, write: true, fast: true, as: 'rdma' }, true));
      const mover = moveToNode1(k);
      let sawEntry = false;
      let r = mover.next();
      for (; !r.done; r = mover.next()) if (pteAt(k)?.migration) sawEntry = true;
      // v5.19+: folio_try_share_anon_rmap_pte() fails for a PageAnonExclusive page that may be
      // pinned, so no entry is ever installed; before, the entries go in and come back each pass
      const exclusiveEra = k.features['wp-reuse'] === 'anon-exclusive';
      expect({ version, sawEntry, notMigrated: r.value.notMigrated, status: r.value.status }).toEqual({ version, sawEntry: !exclusiveEra, notMigrated: 1, status: [null] });
      // GUP_PIN_COUNTING_BIAS (1024, FOLL_PIN of a small folio) + the mapping's 1 (5.4 has no
      // FOLL_PIN accounting: its pin is one get, rc 2)
      expect({ version, pfn: k.pfnOf({ map: 'm', page: 0 }), rc: k.refcount(old!), node: k.nodeOf(old!) }).toEqual({ version, pfn: old, rc: k.features['foll-pin'] ? 1025 : 2, node: 0 });
    }
  });

  it('a GUP-fast reference taken before the unmap and dropped at its re-check: that pass is -EAGAIN, the next moves the page, GUP gets the new one', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      const [old] = written(k, 'm', 1);
      // FOLL_GET: no pin bias, so try_to_migrate_one() unmaps (page_maybe_dma_pinned() is false)
      const getter = k.gup({ map: 'm', page: 0, write: true, fast: true, as: 'odirect' }, false);
      stepTo(getter, 'gup-fast: re-check pte');
      const mover = moveToNode1(k);
      stepTo(mover, FREEZE);
      // the first freeze sees refcount 2 (isolation + GUP-fast's) against 1: -EAGAIN
      stepTo(mover, FREEZE);
      expect(pteAt(k)?.migration).toBeDefined();
      // the re-check sees the entry: the reference is dropped, the slow path waits
      expect(stepToBlock(getter)).toBe('migration_entry_wait');
      const r = runToCompletion(mover);
      const h = runToCompletion(getter);
      const now = k.pfnOf({ map: 'm', page: 0 })!;
      expect({ version, notMigrated: r.notMigrated, got: h.pfns[0] === now, moved: now !== old, rc: k.refcount(now) }).toEqual({ version, notMigrated: 0, got: true, moved: true, rc: 2 });
    }
  });

  it('fork copies the entry readable into the child and the parent; both then map the new page read-only and COW on write', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      written(k, 'm', 1);
      const mover = moveToNode1(k);
      stepTo(mover, INSTALLED);
      k.run(k.fork({ as: 'child' }));
      // copy_nonpresent_pte(): a writable migration entry in a COW mapping becomes readable in both
      expect({ version, parent: pteAt(k)?.write, child: pteAt(k, 'child')?.write, childEntry: pteAt(k, 'child')?.migration !== undefined }).toEqual({ version, parent: false, child: false, childEntry: true });
      runToCompletion(mover);
      const now = k.pfnOf({ map: 'm', page: 0 })!;
      // remove_migration_ptes() found both entries: two references, two mappings, not exclusive
      expect({ version, child: k.pfnOf({ map: 'm', page: 0, process: 'child' }), rc: k.refcount(now), map: k.mapcount(now), w: k.isWritableIn({ map: 'm', page: 0 }), node: k.nodeOf(now) }).toEqual({ version, child: now, rc: 2, map: 2, w: false, node: 1 });
      k.run(k.write({ map: 'm', page: 0, data: 'C', process: 'child' }));
      expect({ version, parent: k.run(k.read({ map: 'm', page: 0 })), child: k.run(k.read({ map: 'm', page: 0, process: 'child' })), childPfn: k.pfnOf({ map: 'm', page: 0, process: 'child' }) !== now }).toEqual({ version, parent: 'm0', child: 'C', childPfn: true });
    }
  });

  it('munmap drops the entry: the migration finds no mapping, both pages are freed, and move_pages() reports the node', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      const [old] = written(k, 'm', 1);
      const mover = moveToNode1(k);
      stepTo(mover, INSTALLED);
      k.run(k.munmap({ map: 'm' }));
      const news = [...k.ram.live].filter((p) => p !== old);
      const r = runToCompletion(mover);
      // zap_nonpresent_ptes() takes no reference; the freeze sees the isolation's alone and the
      // copy is made, but remove_migration_ptes() maps nothing: the new folio goes with
      // migrate_folio_move()'s folio_put(dst), the old with the isolation reference
      expect({ version, status: r.status, live: news.filter((p) => k.ram.live.has(p)).length, old: k.ram.live.has(old!) }).toEqual({ version, status: [1], live: 0, old: false });
    }
  });

  it('mprotect() makes a writable entry readable (readable-exclusive for anon from v5.19): the new page comes back read-only, and a write after PROT_WRITE reuses it', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      written(k, 'm', 1);
      const mover = moveToNode1(k);
      stepTo(mover, INSTALLED);
      k.run(k.mprotect({ map: 'm', write: false }));
      // change_pte_range(): make_readable_exclusive_migration_entry() for an anon folio (v5.19+),
      // make_readable_migration_entry() before
      const exclusiveEra = k.features['wp-reuse'] === 'anon-exclusive';
      expect({ version, write: pteAt(k)?.write, exclusive: pteAt(k)?.migration?.exclusive }).toEqual({ version, write: false, exclusive: exclusiveEra });
      runToCompletion(mover);
      const now = k.pfnOf({ map: 'm', page: 0 })!;
      // remove_migration_pte(): RMAP_EXCLUSIVE for a readable-exclusive entry
      expect({ version, w: k.isWritableIn({ map: 'm', page: 0 }), ex: exclusiveEra ? k.anonExclusive(now) : null }).toEqual({ version, w: false, ex: exclusiveEra ? true : null });
      k.run(k.mprotect({ map: 'm', write: true }));
      k.run(k.write({ map: 'm', page: 0, data: 'W' }));
      // mapped once, nothing else holds it: do_wp_page() reuses it in every era (or mprotect
      // upgraded it already, v6.2+), so the write lands in the migrated page
      expect({ version, same: k.pfnOf({ map: 'm', page: 0 }) === now, node: k.nodeOf(now) }).toEqual({ version, same: true, node: 1 });
    }
  });

  it('a PMD-mapped THP: set_pmd_migration_entry() puts one PMD entry, a read of any of its pages waits, and the THP lands whole on node 1', () => {
    for (const version of ['v5.10', 'v6.6', 'latest']) {
      const k = kernel(version);
      k.run(k.mmap({ anon: true, length: 4 * 2 ** 20, write: true, as: 't' }));
      k.run(k.madvise({ map: 't', advice: 'hugepage', offset: 2 * 2 ** 20, length: 2 * 2 ** 20 }));
      k.run(k.write({ map: 't', page: 512, data: 'x' }));
      const old = k.pfnOf({ map: 't', page: 512 })!;
      const mover = k.movePages({ map: 't', page: 512, node: 1, all: true });
      stepTo(mover, INSTALLED);
      const mm = k.process(undefined);
      const base = mm.vmas.find((v) => v.name === 't')!.start + 512;
      expect({ version, level: k.vm.lookup(mm, base + 7)?.pte.level, migration: k.vm.lookup(mm, base + 7)?.pte.migration !== undefined }).toEqual({ version, level: 'pmd', migration: true });
      const reader = k.read({ map: 't', page: 519 });
      expect(stepToBlock(reader)).toBe('migration_entry_wait');
      runToCompletion(mover);
      expect(runToCompletion(reader)).toBe('');
      // remove_migration_pmd(): one PMD maps the new THP (entire mapcount 1), on node 1
      const now = k.pfnOf({ map: 't', page: 512 })!;
      expect({ version, moved: now !== old, last: k.nodeOf(k.pfnOf({ map: 't', page: 1023 })!), level: k.vm.lookup(mm, base)?.pte.level, data: k.run(k.read({ map: 't', page: 512 })) }).toEqual({ version, moved: true, last: 1, level: 'pmd', data: 'x' });
    }
  });

  it('mbind(MPOL_MF_MOVE) and migrate_pages() go through the same preemptible migration: a write in the window waits and lands on node 1', () => {
    for (const call of ['mbind', 'migrate_pages'] as const) {
      const k = kernel('v6.6');
      written(k, 'm', 1);
      const mover: Op<unknown> = call === 'mbind' ? k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: true }) : k.migratePages({ from: [0], to: [1] });
      stepTo(mover, INSTALLED);
      const writer = k.write({ map: 'm', page: 0, data: 'B' });
      expect({ call, wait: stepToBlock(writer) }).toEqual({ call, wait: 'migration_entry_wait' });
      runToCompletion(mover);
      runToCompletion(writer);
      const now = k.pfnOf({ map: 'm', page: 0 })!;
      expect({ call, node: k.nodeOf(now), data: k.pages.data.get(now) }).toEqual({ call, node: 1, data: 'B' });
    }
  });

  it('a second move_pages() of a page under migration: -EBUSY while the first holds it isolated, -ENOENT while its entries are in', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      const [old] = written(k, 'm', 1);
      const first = moveToNode1(k);
      // the first point of the migration: the folio is isolated (off the LRU), still mapped
      stepTo(first, 'migrate_pages: cond_resched');
      // add_folio_for_migration(): folio_isolate_lru() fails -> -EBUSY in the status, nothing
      // queued, the call returns 0 (no batch failed)
      const busy = k.run(k.movePages({ map: 'm', page: 0, node: 1, all: true }));
      stepTo(first, INSTALLED);
      // follow_page() / folio_walk_start() find no present PTE: -ENOENT
      const gone = k.run(k.movePages({ map: 'm', page: 0, node: 1, all: true }));
      const r = runToCompletion(first);
      // the isolation, the mapping and nothing else: refcount 1 on the new page, the old freed
      const now = k.pfnOf({ map: 'm', page: 0 })!;
      expect({ version, busy: busy.status, gone: gone.status, first: r.status, rc: k.refcount(now), old: k.ram.live.has(old!) }).toEqual({ version, busy: ['EBUSY'], gone: ['ENOENT'], first: [1], rc: 1, old: false });
    }
  });

  it('a read that meets the entry and the migration never finishing is a wait, not an error', () => {
    const k = kernel();
    written(k, 'm', 1);
    const mover = moveToNode1(k);
    stepTo(mover, INSTALLED);
    expect(() => k.run(k.read({ map: 'm', page: 0 }))).toThrow(BlockedError);
  });
});
