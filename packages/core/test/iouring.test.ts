import { describe, expect, it } from 'vitest';
import { createKernel, GUP_PIN_COUNTING_BIAS, InputError, Monitor, parseScenario, PRESETS, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code, errorOf } from './vm-helpers.js';

// io_uring fixed buffers (mm/iouring.ts): io_sqe_buffer_register() per release. The pin is
// FOLL_WRITE|FOLL_LONGTERM: a FOLL_PIN adds GUP_PIN_COUNTING_BIAS (1024) to an order-0 folio and
// 1 to a large folio's refcount and _pincount per page (try_grab_folio), while v5.4 (get_user_pages,
// no FOLL_PIN) adds 1 per page. The refusals: io_uring's own "don't support file backed memory"
// after the pin up to v6.4 (vma_is_shmem() passes from v5.14 [M], one vm_file for the whole range
// from v6.3 [M]), then GUP's FOLL_LONGTERM checks alone (v6.5 [M]).

const PAGE = 4096;
const HPAGE = 2 * 2 ** 20;
const NR = 512; // 4 KiB pages per 2 MiB huge page
const RELEASES = PRESETS.map((p) => p.name);
/** releases with io_uring's own file check, and of those the ones where shmem passes it */
const FILE_CHECK = ['v5.4', 'v5.10', 'v6.1', 'v6.3'];
const NO_SHMEM = ['v5.4', 'v5.10'];

function kernel(version: string): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), kernel: version });
  return { k, m: new Monitor(k) };
}

/** The refcount one registered order-0 page gains: a pin (1024) or, on v5.4, a reference. */
const smallPin = (version: string) => (version === 'v5.4' ? 1 : GUP_PIN_COUNTING_BIAS);
const pincount = (k: Kernel, pfn: number): number => k.pages.pincount[k.pages.slot(k.folios.folio(pfn))]!;

describe('io_uring fixed buffers: anonymous memory', () => {
  it('a private anon page registers in every release: FOLL_WRITE|FOLL_LONGTERM pin (v5.4: a reference), dropped by unregister', () => {
    for (const version of RELEASES) {
      const { k, m } = kernel(version);
      k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'mem' }));
      k.run(k.write({ map: 'mem', page: 0, data: 'A' }));
      const pfn = k.pfnOf({ map: 'mem', page: 0 })!;
      k.run(k.iouringRegister({ map: 'mem', page: 0, as: 'buf' }));
      // 1 for the PTE, then the registration's pin
      expect({ version, rc: k.refcount(pfn), pinned: k.maybePinned(pfn) }).toEqual({ version, rc: 1 + smallPin(version), pinned: version !== 'v5.4' });
      // write_fixed: the kernel reads the buffer through its pages
      expect(k.run(k.dmaRead({ pin: 'buf' }))).toBe('A');
      k.run(k.iouringUnregister({ name: 'buf' }));
      expect({ version, rc: k.refcount(pfn), pinned: k.maybePinned(pfn) }).toEqual({ version, rc: 1, pinned: false });
      expect(m.violations).toEqual([]);
    }
  });

  it('a shared anonymous mapping is shmem (shmem_zero_setup): refused before v5.14 like any vm_file, registered after', () => {
    for (const version of RELEASES) {
      const { k } = kernel(version);
      k.run(k.mmap({ anon: true, shared: true, length: PAGE, write: true, as: 'mem' }));
      k.run(k.write({ map: 'mem', page: 0, data: 'A' }));
      const pfn = k.pfnOf({ map: 'mem', page: 0 })!;
      // the shmem page cache's reference and the PTE's
      expect(k.refcount(pfn)).toBe(2);
      const got = code(() => k.run(k.iouringRegister({ map: 'mem', page: 0, as: 'buf' })));
      expect({ version, got }).toEqual({ version, got: NO_SHMEM.includes(version) ? 'EOPNOTSUPP' : null });
      // a refused registration unpins what io_pin_pages() took
      expect(k.refcount(pfn)).toBe(NO_SHMEM.includes(version) ? 2 : 2 + smallPin(version));
    }
  });
});

describe('io_uring fixed buffers: file mappings', () => {
  /** memset() after mmap of a 1-page file: the page a shared mapping maps, or the anon COW copy of a private one. */
  function mapped(k: Kernel, file: 'memfd' | 'ext4' | 'xfs', shared: boolean): { cache: number; page: number } {
    if (file === 'memfd') k.run(k.memfdCreate({ file: 'f', size: PAGE, fallocate: true }));
    else k.run(k.tmpfile({ file: 'f', fs: file, size: PAGE }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared, write: true, as: 'mem' }));
    k.run(k.write({ map: 'mem', page: 0, data: '0x00' }));
    return { cache: k.pfnOf({ file: 'f', page: 0 })!, page: k.pfnOf({ map: 'mem', page: 0 })! };
  }

  it('memfd: EOPNOTSUPP for both mappings before v5.14 (the private VMA keeps its vm_file); the cache page or the anon copy is registered after', () => {
    for (const version of RELEASES) {
      for (const shared of [true, false]) {
        const { k, m } = kernel(version);
        const { cache, page } = mapped(k, 'memfd', shared);
        expect(page === cache).toBe(shared);
        const got = code(() => k.run(k.iouringRegister({ map: 'mem', page: 0, as: 'buf' })));
        expect({ version, shared, got }).toEqual({ version, shared, got: NO_SHMEM.includes(version) ? 'EOPNOTSUPP' : null });
        // shared: cache + PTE; private: the anon copy's PTE (the cache keeps its own page at 1)
        const base = shared ? 2 : 1;
        expect({ version, shared, rc: k.refcount(page) }).toEqual({ version, shared, rc: got ? base : base + smallPin(version) });
        expect(m.violations).toEqual([]);
      }
    }
  });

  for (const fs of ['ext4', 'xfs'] as const) {
    it(`a page-cache file on non-DAX ${fs}: io_uring's EOPNOTSUPP up to v6.4, then GUP decides (shared: EFAULT, writable_file_mapping_allowed; private: the anon copy)`, () => {
      for (const version of RELEASES) {
        for (const shared of [true, false]) {
          const { k, m } = kernel(version);
          const { page } = mapped(k, fs, shared);
          const got = code(() => k.run(k.iouringRegister({ map: 'mem', page: 0, as: 'buf' })));
          const want = FILE_CHECK.includes(version) ? 'EOPNOTSUPP' : shared ? 'EFAULT' : null;
          expect({ version, shared, got }).toEqual({ version, shared, got: want });
          if (!got) expect(k.isAnon(page)).toBe(true);
          // nothing stays pinned after a refusal: cache + PTE shared, the anon copy's PTE private
          expect({ version, shared, rc: k.refcount(page) }).toEqual({ version, shared, rc: (shared ? 2 : 1) + (got ? 0 : smallPin(version)) });
          expect(m.violations).toEqual([]);
        }
      }
    });
  }
});

describe('io_uring fixed buffers: hugetlb and the pins a buffer keeps', () => {
  function hugetlbMemfd(k: Kernel, hpages: number, shared = true): number {
    k.run(k.hugetlbPool({ size: HPAGE, pages: 4 }));
    k.run(k.memfdCreate({ file: 'f', size: hpages * HPAGE, fallocate: true, hugetlb: HPAGE }));
    k.run(k.mmap({ file: 'f', length: hpages * HPAGE, shared, write: true, as: 'mem' }));
    for (let i = 0; i < hpages; i++) k.run(k.write({ map: 'mem', page: i * NR, data: '0x00' }));
    return k.pfnOf({ map: 'mem', page: 0 })!;
  }

  it('one huge page registered whole: is_file_hugepages() passes everywhere; 512 pins (v5.4: references) up to v6.1, one from v6.3 (57bebf807e2a)', () => {
    for (const version of RELEASES) {
      const { k, m } = kernel(version);
      const head = hugetlbMemfd(k, 1);
      // the cache's reference and the PMD-level mapping's
      expect(k.refcount(head)).toBe(2);
      k.run(k.iouringRegister({ map: 'mem', page: 0, pages: NR, as: 'buf' }));
      const kept = ['v5.4', 'v5.10', 'v6.1'].includes(version) ? NR : 1;
      expect({ version, rc: k.refcount(head), pincount: pincount(k, head) }).toEqual({ version, rc: 2 + kept, pincount: version === 'v5.4' ? 0 : kept });
      // the buffer still reaches every page: write_fixed/read_fixed use the whole folio
      k.run(k.dmaWrite({ pin: 'buf', data: 'D' }));
      expect(k.run(k.read({ map: 'mem', page: NR - 1 }))).toBe('D');
      k.run(k.iouringUnregister({ name: 'buf' }));
      expect({ version, rc: k.refcount(head), pincount: pincount(k, head) }).toEqual({ version, rc: 2, pincount: 0 });
      expect(m.violations).toEqual([]);
    }
  });

  it('a 1 GiB huge page is exactly the limit of one buffer: registered whole, one pin on the folio (latest)', () => {
    const { k } = kernel('latest');
    const GIB = 2 ** 30;
    k.run(k.hugetlbPool({ size: GIB, pages: 1 }));
    k.run(k.memfdCreate({ file: 'f', size: GIB, fallocate: true, hugetlb: GIB }));
    k.run(k.mmap({ file: 'f', length: GIB, shared: true, write: true, as: 'mem' }));
    k.run(k.write({ map: 'mem', page: 0, data: '0x00' }));
    const head = k.pfnOf({ map: 'mem', page: 0 })!;
    k.run(k.iouringRegister({ map: 'mem', page: 0, pages: GIB / PAGE, as: 'buf' }));
    // the cache, the PUD-level mapping, the one pin kept of 262144
    expect([k.refcount(head), pincount(k, head)]).toEqual([3, 1]);
  });

  it('a private hugetlb mapping: memset() COWs into an anon huge page (rc 1: its mapping), registered in every release', () => {
    for (const version of RELEASES) {
      const { k } = kernel(version);
      const head = hugetlbMemfd(k, 1, false);
      expect(k.isAnon(head)).toBe(true);
      k.run(k.iouringRegister({ map: 'mem', page: 0, pages: NR, as: 'buf' }));
      expect({ version, rc: k.refcount(head) }).toEqual({ version, rc: 1 + (['v5.4', 'v5.10', 'v6.1'].includes(version) ? NR : 1) });
    }
  });

  it('two huge pages: one folio each, so the v6.3 single-folio shortcut keeps all 1024 pins; from v6.12 [M] io_check_coalesce_buffer keeps one per folio', () => {
    for (const version of ['v6.3', 'v6.6', 'v6.15', 'latest']) {
      const { k } = kernel(version);
      const first = hugetlbMemfd(k, 2);
      const second = k.pfnOf({ map: 'mem', page: NR })!;
      k.run(k.iouringRegister({ map: 'mem', page: 0, pages: 2 * NR, as: 'buf' }));
      const kept = version === 'v6.3' || version === 'v6.6' ? NR : 1;
      expect({ version, rc: [k.refcount(first), k.refcount(second)] }).toEqual({ version, rc: [2 + kept, 2 + kept] });
      k.run(k.iouringUnregister({ name: 'buf' }));
      expect([k.refcount(first), k.refcount(second)]).toEqual([2, 2]);
    }
  });

  it('a buffer that starts mid-folio and runs to its end, then covers half the next: one pin per folio from v6.12 (the head and the tail may be partial)', () => {
    const { k } = kernel('latest');
    const first = hugetlbMemfd(k, 2);
    const second = k.pfnOf({ map: 'mem', page: NR })!;
    // pages 256..767: 256 of the first folio (to its end), 256 of the second (from its start)
    k.run(k.iouringRegister({ map: 'mem', page: NR / 2, pages: NR, as: 'buf' }));
    expect([k.refcount(first), pincount(k, first), k.refcount(second), pincount(k, second)]).toEqual([3, 1, 3, 1]);
    k.run(k.iouringUnregister({ name: 'buf' }));
    expect([k.refcount(first), pincount(k, first), k.refcount(second), pincount(k, second)]).toEqual([2, 0, 2, 0]);
  });
});

describe('io_uring fixed buffers: a buffer over two mappings', () => {
  /** mem: 2 anon pages, its page 1 replaced (mremap MREMAP_FIXED) by a shared memfd page: two VMAs, two vm_files. */
  function twoSources(k: Kernel): void {
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'mem' }));
    k.run(k.memfdCreate({ file: 'f', size: PAGE, fallocate: true }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'other' }));
    k.run(k.mremap({ map: 'other', length: PAGE, to: 'mem', toOffset: PAGE, as: 'moved' }));
    k.run(k.write({ map: 'mem', page: 0, data: 'A' }));
    k.run(k.write({ map: 'mem', page: 1, data: 'B' }));
  }

  it('anon + memfd: EOPNOTSUPP before v5.14 (the memfd VMA), fine in v6.1, EINVAL in v6.3 (edd478269640: one vm_file), fine once GUP decides', () => {
    const want: Record<string, string | null> = { 'v5.4': 'EOPNOTSUPP', 'v5.10': 'EOPNOTSUPP', 'v6.1': null, 'v6.3': 'EINVAL', 'v6.6': null, 'v6.15': null, latest: null };
    for (const version of RELEASES) {
      const { k } = kernel(version);
      twoSources(k);
      const got = code(() => k.run(k.iouringRegister({ map: 'mem', page: 0, pages: 2, as: 'buf' })));
      expect({ version, got }).toEqual({ version, got: want[version] });
      if (!got) expect(k.run(k.dmaRead({ pin: 'buf' }))).toBe('A');
    }
  });
});

describe('io_uring fixed buffers: a partial pin', () => {
  it('a hole after the first page: GUP pins page 0 and stops, io_pin_pages() unpins it and fails with EFAULT (every release; GUP-fast too)', () => {
    for (const version of RELEASES) {
      const { k, m } = kernel(version);
      k.run(k.mmap({ anon: true, length: 3 * PAGE, write: true, as: 'mem' }));
      k.run(k.write({ map: 'mem', page: 0, data: 'A' }));
      k.run(k.write({ map: 'mem', page: 2, data: 'C' }));
      k.run(k.munmap({ map: 'mem', offset: PAGE, length: PAGE }));
      const pfn = k.pfnOf({ map: 'mem', page: 0 })!;
      const e = errorOf(() => k.run(k.iouringRegister({ map: 'mem', page: 0, pages: 3, as: 'buf' })));
      expect({ version, code: (e as { code?: string }).code }).toEqual({ version, code: 'EFAULT' });
      expect((e as Error).message).toMatch(/pinned only 1 of 3 pages/);
      // back to the PTE's reference alone, and no buffer
      expect([k.refcount(pfn), k.maybePinned(pfn), k.pins.has('buf')]).toEqual([1, false, false]);
      expect(m.violations).toEqual([]);
    }
  });
});

describe('io_uring fixed buffers: the 1 GiB limit', () => {
  it('an iovec over 1 GiB is EFAULT in every release before any page is faulted in or pinned', () => {
    for (const version of RELEASES) {
      const { k } = kernel(version);
      k.run(k.mmap({ anon: true, length: 2 ** 30 + PAGE, write: true, as: 'mem' }));
      expect(code(() => k.run(k.iouringRegister({ map: 'mem', page: 0, pages: 2 ** 30 / PAGE + 1, as: 'buf' })))).toBe('EFAULT');
      expect(k.pfnOf({ map: 'mem', page: 0 })).toBeNull();
      expect(k.pins.has('buf')).toBe(false);
    }
  });
});

describe('io_uring fixed buffers: their pins belong to io_uring', () => {
  it('unpin of a buffer and iouring-unregister of a plain pin are refused with the step to use instead', () => {
    const { k } = kernel('latest');
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'mem' }));
    k.run(k.write({ map: 'mem', page: 0, data: 'A' }));
    k.run(k.iouringRegister({ map: 'mem', page: 0, as: 'buf' }));
    k.run(k.gup({ map: 'mem', page: 0, write: true, as: 'dma' }, true));
    const e1 = errorOf(() => k.run(k.unpin({ name: 'buf' })));
    expect(e1).toBeInstanceOf(InputError);
    expect((e1 as Error).message).toMatch(/iouring-unregister: buf/);
    const e2 = errorOf(() => k.run(k.iouringUnregister({ name: 'dma' })));
    expect(e2).toBeInstanceOf(InputError);
    expect((e2 as Error).message).toMatch(/not an io_uring fixed buffer/);
    // a name is one pin or buffer
    expect(errorOf(() => k.run(k.iouringRegister({ map: 'mem', page: 0, as: 'dma' })))).toBeInstanceOf(InputError);
    k.run(k.iouringUnregister({ name: 'buf' }));
    k.run(k.unpin({ name: 'dma' }));
    const pfn = k.pfnOf({ map: 'mem', page: 0 })!;
    expect(k.refcount(pfn)).toBe(1);
  });
});

describe('io_uring fixed buffers in scenario files: bad input names the step, the field and the fix', () => {
  const scenario = (steps: string) => `name: t\nsetup:\n  - mmap: { anon: true, length: 4KiB, write: true, as: mem }\nsteps:\n${steps}`;
  const problem = (text: string): string => {
    const e = errorOf(() => parseScenario(text, 't.yaml'));
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  };

  it('a buffer without a name, an unknown field, and an unregister of a name never registered', () => {
    expect(problem(scenario('  - iouring-register: { map: mem, page: 0 }\n'))).toMatch(/iouring-register\.as/);
    expect(problem(scenario('  - iouring-register: { map: mem, page: 0, write: true, as: buf }\n'))).toMatch(/iouring-register.*write/);
    expect(problem(scenario('  - iouring-unregister: buf\n'))).toMatch(/a pin named 'buf' is used before it is defined; define it first with .*iouring-register: \{ map: …, page: …, as: NAME \}/);
  });

  it('a registered buffer is a pin by name: dma-read and iouring-unregister refer to it', () => {
    const s = parseScenario(scenario("  - write: { map: mem, page: 0, data: A }\n  - iouring-register: { map: mem, page: 0, as: buf }\n  - dma-read: { pin: buf, expect: A }\n  - iouring-unregister: buf\n"), 't.yaml');
    expect(s.threads[0]!.steps.map((st) => st.op)).toEqual(['write', 'iouring-register', 'dma-read', 'iouring-unregister']);
    expect(s.threads[0]!.steps[3]!.args).toEqual({ name: 'buf' });
  });
});
