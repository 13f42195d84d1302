import { expect } from 'vitest';
import { createKernel, type Kernel, type Op } from '../src/index.js';
import { testArch } from '../src/testing.js';

// Helpers the userfaultfd tests share: a fault that sleeps in handle_userfault() is an operation
// stepped until it blocks, then resumed once the handler has run.

/** The entry at page `page` of a mapping, at whatever level, or null. */
export function pte(k: Kernel, map: string, page: number, process = 'init') {
  const mm = k.processes.get(process)!;
  return k.vm.lookup(mm, mm.ranges.get(map)!.start + page)?.pte ?? null;
}

/** Step an operation until it sleeps; returns the generator to resume later. */
export function startBlocked<T>(op: Op<T>): Op<T> {
  for (;;) {
    const r = op.next();
    if (r.done) throw new Error('the operation completed; it was expected to block');
    if (r.value.kind === 'block' && !r.value.ready()) return op;
  }
}

/** Resume a blocked operation to completion (it must not block again). */
export function finish<T>(op: Op<T>): T {
  for (;;) {
    const r = op.next();
    if (r.done) return r.value;
    if (r.value.kind === 'block' && !r.value.ready()) throw new Error(`still blocked: ${r.value.reason}`);
  }
}

/**
 * fork() of init as `child` while init's EVENT_FORK userfaultfd is registered: the fork waits in
 * dup_userfaultfd_complete() until the monitor reads UFFD_EVENT_FORK, as a handler thread would.
 */
export function forkWithMonitor(k: Kernel): void {
  const fork = startBlocked(k.fork({ as: 'child' }));
  expect(k.run(k.uffdRead({ nonblock: true }))).toEqual({ event: 'fork', child: 'child' });
  finish(fork);
}

/** A written page of a WP-registered private anonymous mapping 'm' (UFFDIO_API with `features`), then write-protected. */
export function protectedPage(version: string, features: ('pagefault-flag-wp' | 'event-fork' | 'wp-unpopulated')[] = ['pagefault-flag-wp']): Kernel {
  const k = createKernel({ arch: testArch(), kernel: version });
  k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
  k.run(k.write({ map: 'm', page: 0, data: 'a' }));
  k.run(k.uffdApi({ features }));
  k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
  k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
  return k;
}
