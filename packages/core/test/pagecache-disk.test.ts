import { describe, expect, it } from 'vitest';
import { createKernel, GUP_PIN_COUNTING_BIAS, InputError, Monitor, type Kernel } from '../src/index.js';
import { parseScenario } from '../src/scenario/load.js';
import { testArch } from '../src/testing.js';
import { code, errorOf } from './vm-helpers.js';

// The page cache of a file on a non-DAX ext4 / xfs (`tmpfile`, mm/pagecache.ts createOnDisk). The
// references are the page cache's as for shmem: the cache holds 1 on an order-0 folio, each PTE
// 1 more and 1 mapcount. What differs from tmpfs is dirty tracking: ->page_mkwrite and writeback
// make a shared writable mapping write-notify (mm/mmap.c vma_wants_writenotify), and from v6.5
// GUP refuses FOLL_PIN|FOLL_LONGTERM|FOLL_WRITE on it (mm/gup.c writable_file_mapping_allowed,
// 8ac268436e6d; GUP-fast: a6e79df92e4a) with -EFAULT.

const PAGE = 4096;

function kernel(version = 'latest'): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), kernel: version });
  return { k, m: new Monitor(k) };
}

/** gup_longterm.c's local tmpfile on `fs`, mapped MAP_SHARED or MAP_PRIVATE R/W and memset(). */
function written(k: Kernel, shared: boolean, fs: 'ext4' | 'xfs' = 'ext4'): number {
  k.run(k.tmpfile({ file: 'f', fs, size: PAGE }));
  k.run(k.mmap({ file: 'f', length: PAGE, shared, write: true, as: 'mem' }));
  k.run(k.write({ map: 'mem', page: 0, data: '0x00' }));
  return k.pfnOf({ map: 'mem', page: 0 })!;
}

describe('page cache of a non-DAX disk file', () => {
  it('starts empty (fallocate on a disk fs adds blocks, not pages); a read fault maps the cache folio read-only in a shared writable mapping (write-notify)', () => {
    const { k, m } = kernel();
    k.run(k.tmpfile({ file: 'f', fs: 'xfs', size: 2 * PAGE }));
    expect(k.pfnOf({ file: 'f', page: 0 })).toBeNull();
    k.run(k.mmap({ file: 'f', length: 2 * PAGE, shared: true, write: true, as: 'm' }));
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('');
    const pfn = k.pfnOf({ file: 'f', page: 0 })!;
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(pfn);
    // cache 1 + PTE 1
    expect(k.refcount(pfn)).toBe(2);
    expect(k.mapcount(pfn)).toBe(1);
    expect(k.isAnon(pfn)).toBe(false);
    // vm_page_prot is read-only: vma_wants_writenotify() (xfs has ->page_mkwrite); a tmpfs file's would be writable
    expect(k.isWritableIn({ map: 'm', page: 0 })).toBe(false);
    // the write fault on the present PTE is wp_page_shared(): same folio, now writable, no new reference
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(pfn);
    expect(k.isWritableIn({ map: 'm', page: 0 })).toBe(true);
    expect(k.refcount(pfn)).toBe(2);
    expect(m.violations).toEqual([]);
  });

  it('a shared write fault (do_shared_fault) maps the cache folio writable at once; mprotect(PROT_READ) write-protects it', () => {
    const { k } = kernel();
    const pfn = written(k, true);
    expect(k.pfnOf({ file: 'f', page: 0 })).toBe(pfn);
    expect(k.isWritableIn({ map: 'mem', page: 0 })).toBe(true);
    expect(k.refcount(pfn)).toBe(2);
    k.run(k.mprotect({ map: 'mem', write: false }));
    expect(k.isWritableIn({ map: 'mem', page: 0 })).toBe(false);
  });

  it('a private write COWs the cache folio into an exclusive anon page; the cache keeps its folio (refcount 1, mapcount 0)', () => {
    const { k, m } = kernel();
    const anon = written(k, false);
    const cached = k.pfnOf({ file: 'f', page: 0 })!;
    expect(anon).not.toBe(cached);
    expect(k.isAnon(anon)).toBe(true);
    expect(k.refcount(cached)).toBe(1);
    expect(k.mapcount(cached)).toBe(0);
    k.run(k.munmap({ map: 'mem' }));
    expect(k.ram.live.has(anon)).toBe(false);
    expect(k.refcount(cached)).toBe(1);
    expect(m.violations).toEqual([]);
  });

  it('truncate to 0 unmaps and drops the cache folio (truncate_pagecache): the file has no page left', () => {
    const { k, m } = kernel();
    const pfn = written(k, true);
    k.run(k.truncate({ file: 'f', size: 0 }));
    expect(k.pfnOf({ map: 'mem', page: 0 })).toBeNull();
    expect(k.pfnOf({ file: 'f', page: 0 })).toBeNull();
    expect(k.ram.live.has(pfn)).toBe(false);
    expect(m.violations).toEqual([]);
  });

  it('the name is taken: a second tmpfile or memfd of the same name is EEXIST, and a DAX-only operation names the file', () => {
    const { k } = kernel();
    k.run(k.tmpfile({ file: 'f', fs: 'ext4', size: PAGE }));
    expect(code(() => k.run(k.tmpfile({ file: 'f', fs: 'xfs', size: PAGE })))).toBe('EEXIST');
    expect(code(() => k.run(k.memfdCreate({ file: 'f', size: PAGE })))).toBe('EEXIST');
    expect(errorOf(() => k.file('f'))).toBeInstanceOf(InputError);
  });
});

describe('gup_longterm.c on a disk file: writable longterm pins of a shared mapping', () => {
  // the releases before 8ac268436e6d / a6e79df92e4a (v6.5) and after
  const before = ['v5.10', 'v6.1', 'v6.3'];
  const after = ['v6.6', 'v6.15', 'latest'];

  for (const fast of [false, true]) {
    for (const version of before) {
      it(`${version}: the R/W longterm ${fast ? 'GUP-fast ' : ''}pin is taken on the page-cache folio (gup_longterm.c: FAIL, it expects EFAULT)`, () => {
        const { k, m } = kernel(version);
        const pfn = written(k, true);
        k.run(k.gup({ map: 'mem', page: 0, write: true, longterm: true, fast, as: 'p' }, true));
        // cache 1 + PTE 1 + the pin's bias on a small folio
        expect(k.refcount(pfn)).toBe(2 + GUP_PIN_COUNTING_BIAS);
        k.run(k.unpin({ name: 'p' }));
        expect(k.refcount(pfn)).toBe(2);
        expect(m.violations).toEqual([]);
      });
    }
    for (const version of after) {
      it(`${version}: the R/W longterm ${fast ? 'GUP-fast ' : ''}pin is -EFAULT and leaves no reference behind`, () => {
        const { k, m } = kernel(version);
        const pfn = written(k, true, 'xfs');
        expect(code(() => k.run(k.gup({ map: 'mem', page: 0, write: true, longterm: true, fast, as: 'p' }, true)))).toBe('EFAULT');
        expect(k.refcount(pfn)).toBe(2);
        expect(m.violations).toEqual([]);
      });
    }
  }

  it('v6.6: what writable_file_mapping_allowed() still lets through — R/O longterm, R/W without FOLL_LONGTERM, FOLL_GET longterm, a private mapping, a memfd', () => {
    const { k } = kernel('v6.6');
    const pfn = written(k, true);
    // no FOLL_WRITE: never asked
    k.run(k.gup({ map: 'mem', page: 0, write: false, longterm: true, as: 'ro' }, true));
    // FOLL_PIN without FOLL_LONGTERM, and FOLL_GET|FOLL_LONGTERM: not "(FOLL_PIN | FOLL_LONGTERM)"
    k.run(k.gup({ map: 'mem', page: 0, write: true, longterm: false, as: 'short' }, true));
    k.run(k.gup({ map: 'mem', page: 0, write: true, longterm: true, as: 'get' }, false));
    // cache + PTE + two pins + one reference
    expect(k.refcount(pfn)).toBe(2 + 2 * GUP_PIN_COUNTING_BIAS + 1);

    // a private mapping needs no dirty tracking (not shared): the anon COW copy is pinned
    const { k: k2 } = kernel('v6.6');
    const anon = written(k2, false);
    k2.run(k2.gup({ map: 'mem', page: 0, write: true, longterm: true, fast: true, as: 'p' }, true));
    expect(k2.refcount(anon)).toBe(1 + GUP_PIN_COUNTING_BIAS);

    // tmpfs has no ->page_mkwrite and no writeback: the shared memfd page is pinned
    const { k: k3 } = kernel('v6.6');
    k3.run(k3.memfdCreate({ file: 'fd', size: PAGE }));
    k3.run(k3.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'm' }));
    k3.run(k3.write({ map: 'm', page: 0, data: '0x00' }));
    k3.run(k3.gup({ map: 'm', page: 0, write: true, longterm: true, fast: true, as: 'p' }, true));
    expect(k3.refcount(k3.pfnOf({ map: 'm', page: 0 })!)).toBe(2 + GUP_PIN_COUNTING_BIAS);
  });
});

describe('scenario input: tmpfile', () => {
  const scenario = (step: string) => `name: t\nsteps:\n  - ${step}\n  - mmap: { file: f, length: 4KiB, as: m }\n`;
  it('takes ext4 and xfs and names the field of anything else', () => {
    for (const fs of ['ext4', 'xfs']) expect(() => parseScenario(scenario(`tmpfile: { file: f, fs: ${fs}, size: 4KiB }`), 't.yaml')).not.toThrow();
    const e = errorOf(() => parseScenario(scenario('tmpfile: { file: f, fs: btrfs, size: 4KiB }'), 't.yaml'));
    expect(e).toBeInstanceOf(InputError);
    expect((e as Error).message).toMatch(/steps\[0\]\.tmpfile\.fs: fs is ext4 or xfs/);
  });
});
