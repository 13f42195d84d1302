import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code, written } from './vm-helpers.js';
import { finish, pte, startBlocked } from './uffd-helpers.js';

// The non-cooperative events (fs/userfaultfd.c): UFFD_EVENT_REMAP (mremap_userfaultfd_prep() /
// _complete()), UFFD_EVENT_REMOVE (userfaultfd_remove() from madvise_dontneed_free() and
// madvise_remove()), UFFD_EVENT_UNMAP (userfaultfd_unmap_prep() / _complete()), each enabled by its
// UFFD_FEATURE_EVENT_* (v4.11), each read by the monitor before the syscall returns
// (userfaultfd_event_wait_completion()), and ctx->mmap_changing making the fill ioctls -EAGAIN
// while one is pending. x86-64, 4 KiB pages.

const PAGE = 4096;

/** 'dst' of `pages` written pages registered MISSING with a userfaultfd of `features`; 'hole' a free range to mremap onto. */
function setup(features: ('event-remap' | 'event-remove' | 'event-unmap' | 'event-fork')[], pages = 2): Kernel {
  const k = createKernel({ arch: testArch(), kernel: 'v6.15' });
  written(k, 'dst', pages);
  k.run(k.mmap({ anon: true, length: pages * PAGE, write: true, as: 'hole' }));
  k.run(k.uffdApi({ features }));
  k.run(k.uffdRegister({ map: 'dst', mode: ['missing'] }));
  return k;
}

describe('UFFD_EVENT_REMAP', () => {
  it('with EVENT_REMAP mremap() waits for the monitor to read from/to/len, and the registration moves with the range', () => {
    const k = setup(['event-remap']);
    const mremap = startBlocked(k.mremap({ map: 'dst', length: 2 * PAGE, to: 'hole', as: 'moved' }));
    // the page tables moved already (to the range 'hole' named); the event is pending:
    // mmap_changing makes UFFDIO_COPY -EAGAIN
    expect(k.run(k.read({ map: 'hole', page: 0 }))).toBe('dst0');
    expect(code(() => k.run(k.uffdCopy({ map: 'hole', page: 1, data: 'x' })))).toBe('EAGAIN');
    expect(k.run(k.uffdRead({ nonblock: true, map: 'dst', to: 'hole' }))).toEqual({ event: 'remap', page: 0, toPage: 0, pages: 2 });
    finish(mremap);
    // the new VMA kept VM_UFFD_MISSING: an emptied page faults to the userfaultfd again
    k.run(k.madvise({ map: 'moved', advice: 'dontneed', offset: PAGE, length: PAGE }));
    const reader = startBlocked(k.read({ map: 'moved', page: 1 }));
    expect(k.run(k.uffdRead({ nonblock: true, map: 'moved' }))).toEqual({ event: 'pagefault', page: 1, write: false, wp: false, minor: false });
    k.run(k.uffdCopy({ map: 'moved', page: 1, data: 'x' }));
    expect(finish(reader)).toBe('x');
  });

  it('without EVENT_REMAP the moved VMA is unregistered ("Drop uffd context if remap feature not enabled"): no event, the kernel resolves its faults', () => {
    const k = setup([]);
    k.run(k.mremap({ map: 'dst', length: 2 * PAGE, to: 'hole', as: 'moved' }));
    expect(code(() => k.run(k.uffdRead({ nonblock: true })))).toBe('EAGAIN');
    k.run(k.madvise({ map: 'moved', advice: 'dontneed', offset: PAGE, length: PAGE }));
    // a plain anonymous read fault: the zero page, no userfault
    expect(k.run(k.read({ map: 'moved', page: 1 }))).toBe('');
    expect(pte(k, 'moved', 1)!.pfn).toBe(k.zeroPfn);
  });
});

describe('UFFD_EVENT_REMOVE', () => {
  it('MADV_DONTNEED sends the event before the zap and waits; the monitor unregisters the range as the selftest does, then the zap runs', () => {
    const k = setup(['event-remove']);
    const pfn = k.pfnOf({ map: 'dst', page: 0 })!;
    const madvise = startBlocked(k.madvise({ map: 'dst', advice: 'dontneed' }));
    // userfaultfd_remove() comes before madvise_dontneed_single_vma(): the pages are still mapped
    expect(k.pfnOf({ map: 'dst', page: 0 })).toBe(pfn);
    expect(code(() => k.run(k.uffdZeropage({ map: 'dst', page: 0 })))).toBe('EAGAIN');
    expect(k.run(k.uffdRead({ nonblock: true, map: 'dst' }))).toEqual({ event: 'remove', page: 0, pages: 2 });
    k.run(k.uffdUnregister({ map: 'dst' }));
    finish(madvise);
    expect(pte(k, 'dst', 0)).toBeNull();
    // unregistered: the read after the release is the kernel's zero page, as faulting_process() expects
    expect(k.run(k.read({ map: 'dst', page: 0 }))).toBe('');
  });

  it('without EVENT_REMOVE MADV_DONTNEED zaps at once and nothing is queued; MADV_REMOVE of shmem sends it too', () => {
    const k = setup([]);
    k.run(k.madvise({ map: 'dst', advice: 'dontneed' }));
    expect(pte(k, 'dst', 0)).toBeNull();
    expect(code(() => k.run(k.uffdRead({ nonblock: true })))).toBe('EAGAIN');
    const s = createKernel({ arch: testArch(), kernel: 'v6.15' });
    s.run(s.memfdCreate({ file: 'fd', size: 2 * PAGE }));
    s.run(s.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, as: 'shm' }));
    s.run(s.write({ map: 'shm', page: 1, data: 'y' }));
    s.run(s.uffdApi({ features: ['event-remove'] }));
    s.run(s.uffdRegister({ map: 'shm', mode: ['missing'] }));
    const remove = startBlocked(s.madvise({ map: 'shm', advice: 'remove', offset: PAGE, length: PAGE }));
    expect(s.run(s.uffdRead({ nonblock: true, map: 'shm' }))).toEqual({ event: 'remove', page: 1, pages: 1 });
    finish(remove);
    expect(pte(s, 'shm', 1)).toBeNull();
  });
});

describe('UFFD_EVENT_UNMAP and the fork event\'s mmap_changing', () => {
  it('mremap() with EVENT_REMAP and EVENT_UNMAP: the UNMAP of the destination (uf_unmap_early), then REMAP, then the UNMAP of the old range, all after the move', () => {
    const k = setup(['event-remap', 'event-unmap']);
    // the destination is registered too, so unmapping it is an event (an unregistered one is not)
    k.run(k.uffdRegister({ map: 'hole', mode: ['missing'] }));
    const mremap = startBlocked(k.mremap({ map: 'dst', length: 2 * PAGE, to: 'hole', as: 'moved' }));
    // the move is done before any event is read: the data is at the new address already
    expect(k.run(k.read({ map: 'hole', page: 1 }))).toBe('dst1');
    // one event at a time: mremap() queues the next once the monitor has read the last
    expect(k.run(k.uffdRead({ nonblock: true, map: 'hole' }))).toEqual({ event: 'unmap', page: 0, pages: 2 });
    startBlocked(mremap);
    expect(k.run(k.uffdRead({ nonblock: true, map: 'dst', to: 'hole' }))).toEqual({ event: 'remap', page: 0, toPage: 0, pages: 2 });
    startBlocked(mremap);
    expect(k.run(k.uffdRead({ nonblock: true, map: 'dst' }))).toEqual({ event: 'unmap', page: 0, pages: 2 });
    finish(mremap);
  });

  it('munmap() with EVENT_UNMAP unmaps, then waits for the monitor to read start/end', () => {
    const k = setup(['event-unmap'], 4);
    const munmap = startBlocked(k.munmap({ map: 'dst', offset: PAGE, length: 2 * PAGE }));
    expect(pte(k, 'dst', 1)).toBeNull();
    expect(k.run(k.uffdRead({ nonblock: true, map: 'dst' }))).toEqual({ event: 'unmap', page: 1, pages: 2 });
    finish(munmap);
    expect(k.run(k.read({ map: 'dst', page: 3 }))).toBe('dst3');
  });

  it('a pending UFFD_EVENT_FORK makes the parent ctx\'s ioctls -EAGAIN (dup_userfaultfd(): atomic_inc(&octx->mmap_changing)) until it is read', () => {
    const k = setup(['event-fork']);
    k.run(k.madvise({ map: 'dst', advice: 'dontneed', offset: PAGE, length: PAGE }));
    const fork = startBlocked(k.fork({ as: 'child' }));
    expect(code(() => k.run(k.uffdCopy({ map: 'dst', page: 1, data: 'z' })))).toBe('EAGAIN');
    expect(k.run(k.uffdRead({ nonblock: true }))).toEqual({ event: 'fork', child: 'child' });
    finish(fork);
    k.run(k.uffdCopy({ map: 'dst', page: 1, data: 'z' }));
    expect(k.run(k.read({ map: 'dst', page: 1 }))).toBe('z');
  });
});
