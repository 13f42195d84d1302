import { fileURLToPath } from 'node:url';
import { createKernel, exploreScenario, isExploreResult, KernelError, loadScenarioFile, Monitor, runToCompletion, type Op, type PluginCatalog } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { hmm } from '../src/index.js';

// hmm-tests.c TEST_F(hmm, anon_teardown): unmap_buffer() munmap()s the second half of the buffer
// while HMM_DMIRROR_READ reads it. lib/test_hmm.c dmirror_range_fault(): mmu_interval_read_begin(),
// hmm_range_fault() (mm/hmm.c), then under dmirror->mutex mmu_interval_read_retry(); the munmap's
// MMU_NOTIFY_UNMAP reaches dmirror_interval_invalidate(), which advances the sequence. These
// tests stop the device read at that mutex (its one preemption point after a walk that did not
// fault), run the munmap there, and look at what the read does next.

const PAGE = 4096;
const MUTEX = 'dmirror_range_fault(dmirror0): mutex_lock';

function setup(driver = hmm()) {
  const k = createKernel({ arch: x86(), driver, kernel: 'latest' });
  const mon = new Monitor(k);
  k.run(k.probe({ driver: 'hmm', size: 256 * 1024 * 1024, as: 'dmirror0' }));
  k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'buf' }));
  k.run(k.write({ map: 'buf', page: 0, data: 'i0' }));
  k.run(k.write({ map: 'buf', page: 1, data: 'i1' }));
  return { k, mon };
}

/**
 * Run `op` to its first stop at the mirror's mutex, run `other` there to completion, then finish
 * `op`. Returns its result (or error) and how many times it reached the mutex.
 */
function interleave<T>(op: Op<T>, other: Op): { value?: T; error?: KernelError; mutexStops: number } {
  let mutexStops = 0;
  let raced = false;
  try {
    for (;;) {
      const r = op.next();
      if (r.done) return { value: r.value, mutexStops };
      if (r.value.kind === 'preempt' && r.value.point === MUTEX) {
        mutexStops++;
        if (!raced) {
          raced = true;
          runToCompletion(other);
        }
      }
    }
  } catch (e) {
    if (e instanceof KernelError) return { error: e, mutexStops };
    throw e;
  }
}

const munmapSecondHalf = (k: ReturnType<typeof setup>['k']) => k.munmap({ map: 'buf', offset: PAGE, length: PAGE });

describe('hmm.anon_teardown: the mirror read racing a munmap of half the buffer', () => {
  it('a page the munmap leaves: the walk is retried once (the sequence moved) and reads the data', () => {
    const { k, mon } = setup();
    const r = interleave(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 0 }), munmapSecondHalf(k));
    // two stops at the mutex: the first walk's retry check failed, the second passed
    expect(r).toEqual({ value: 'i0', mutexStops: 2 });
    expect(mon.violations).toEqual([]);
  });

  it('the page the munmap takes: after the retry the walk meets a hole, EFAULT; the page is freed, not read', () => {
    const { k, mon } = setup();
    const pfn = k.pfnOf({ map: 'buf', page: 1 })!;
    const r = interleave(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 1 }), munmapSecondHalf(k));
    // one stop: the retry walks again and hmm_vma_walk_hole() finds no VMA (munmap detached it)
    expect([r.error?.code, r.mutexStops, r.value]).toEqual(['EFAULT', 1, undefined]);
    expect(k.refcount(pfn)).toBe(0);
    expect(mon.violations).toEqual([]);
  });

  it('without the retry (a mirror deaf to the notifier) the device reads the page munmap freed', () => {
    const { invalidate: _ignored, ...deaf } = hmm();
    const { k } = setup(deaf);
    const pfn = k.pfnOf({ map: 'buf', page: 1 })!;
    const r = interleave(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 1 }), munmapSecondHalf(k));
    // the stale walk is used: it "succeeds" with whatever the freed page holds now, not the data
    // the test checks (i1), which is the use-after-free the notifier exists to prevent
    expect(r.error).toBeUndefined();
    expect(r.mutexStops).toBe(1);
    expect(r.value).not.toBe('i1');
    expect(k.refcount(pfn)).toBe(0);
  });

  it('the munmap first: the read of the unmapped page is EFAULT at once, the kept page reads its data', () => {
    const { k } = setup();
    k.run(munmapSecondHalf(k));
    expect(() => k.run(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 1 }))).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    expect(k.run(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 0 }))).toBe('i0');
  });

  it('munmap takes the VMA out before it zaps: at its TLB flush the range is already a hole', () => {
    const { k } = setup();
    const op = munmapSecondHalf(k);
    let r = op.next();
    while (!r.done && !(r.value.kind === 'preempt' && r.value.point.startsWith('tlb_finish_mmu'))) r = op.next();
    expect(r.done).toBe(false);
    // vms_gather_munmap_vmas() detached it; the entries are already cleared, the page not yet freed
    expect(k.isMappedIn({ map: 'buf', page: 0 })).toBe(true);
    expect(() => k.run(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 1 }))).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    runToCompletion(op);
  });
});

describe('anon-teardown.yaml over every interleaving', () => {
  const file = fileURLToPath(new URL('../../../apps/cli/scenarios/hmm/anon-teardown.yaml', import.meta.url));
  const scenario = loadScenarioFile(file, 'hmm/anon-teardown.yaml');
  const explore = (driver: ReturnType<typeof hmm> | Omit<ReturnType<typeof hmm>, 'invalidate'>) => {
    const catalog: PluginCatalog = { arch: { x86: () => x86() }, fs: {}, driver: { hmm: () => driver as ReturnType<typeof hmm> } };
    return exploreScenario(scenario, { arch: 'x86', fs: null, driver: 'hmm', version: 'latest', features: {} }, catalog);
  };

  it('passes with the notifier: every schedule reads the data or fails with EFAULT', () => {
    const r = explore(hmm());
    expect({ status: r.status, failures: r.failures }).toEqual({ status: 'pass', failures: [] });
  });

  it('reports the allowed EFAULT as a race that exists, with the shortest schedule of each way to it', () => {
    const r = explore(hmm());
    if (!isExploreResult(r)) throw new Error(r.reason ?? r.status);
    // page 1's read fails in two ways: the munmap ran before the device read began (the walk finds
    // no VMA: 1 preemption), or it ran between the read's notifier sequence and its page-table
    // walk (hmm_range_fault finds a hole: the read is preempted twice); both are maySucceed's EFAULT
    const ways = r.allowedFailures.map((f) => ({ message: f.messages[0]!.replace(/: .*/s, ''), efault: /failed with EFAULT/.test(f.messages[0]!), preemptions: f.preemptions }));
    expect(ways.every((w) => w.message === 'threads[1].steps[1]' && w.efault)).toBe(true);
    expect(ways.map((w) => w.preemptions).sort()).toEqual([1, 2]);
    // each schedule replays to the same failure in a run
    for (const f of r.allowedFailures) expect(f.trace.length).toBeGreaterThan(0);
    expect(r.stepFailures).toEqual([]);
  });

  it('fails with a mirror deaf to the notifier: some schedule reads the freed page', () => {
    const { invalidate: _ignored, ...deaf } = hmm();
    const r = explore(deaf);
    expect(r.status).toBe('fail');
    expect(r.failures.join('\n')).toMatch(/device read '.*', expected 'i1'/);
  });
});
