import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { lockedVm } from '../src/mm/mlock.js';
import { MEMFD_SECRET_CLOEXEC } from '../src/mm/secretmem.js';
import { parseScenario } from '../src/scenario/load.js';
import { runScenario, type PluginCatalog } from '../src/scenario/run.js';
import { code } from './vm-helpers.js';

// memfd_secret(2) (mm/secretmem.ts). References of a secretmem page, as for any order-0
// page-cache folio: the cache holds one, each PTE mapping it one (secretmem_fault()'s reference is
// the PTE's), a GUP reference one more (FOLL_GET) or GUP_PIN_COUNTING_BIAS (FOLL_PIN).

const PAGE = 4096;
const MiB = 2 ** 20;

function kernel(version = 'latest', features: Record<string, unknown> = {}): Kernel {
  return createKernel({ arch: testArch(), kernel: version, features });
}

/** memfd_secret(0) + ftruncate(pages), one shared writable mapping `mem` of it, page 0 written. */
function secretPage(k: Kernel, pages = 1): number {
  k.run(k.memfdSecret({ file: 'secret', size: pages * PAGE }));
  k.run(k.mmap({ file: 'secret', length: pages * PAGE, shared: true, write: true, as: 'mem' }));
  k.run(k.write({ map: 'mem', page: 0, data: '0x55' }));
  return k.pfnOf({ map: 'mem', page: 0 })!;
}

const vma = (k: Kernel, name: string, process?: string) => k.process(process).vmas.find((v) => v.name === name)!;

describe('memfd_secret(): which kernels have it', () => {
  it('is ENOSYS before v5.14, and before v6.5 unless booted with secretmem.enable=1', () => {
    for (const v of ['v5.4', 'v5.10', 'v6.1', 'v6.3']) expect(code(() => { const k = kernel(v); k.run(k.memfdSecret({ file: 's' })); })).toBe('ENOSYS');
    for (const v of ['v6.6', 'v6.15', 'latest']) expect(code(() => { const k = kernel(v); k.run(k.memfdSecret({ file: 's' })); })).toBeNull();
    // secretmem.enable=1 on v6.1 (b758fe6df50d only changed the default)
    expect(code(() => { const k = kernel('v6.1', { secretmem: 'enabled' }); k.run(k.memfdSecret({ file: 's' })); })).toBeNull();
  });

  it('is ENOSYS on an arch without ARCH_HAS_SET_DIRECT_MAP, and before the release that wired it up', () => {
    const noSecret = testArch();
    const { memfdSecretSince: _, ...mmu } = noSecret.mmu;
    const k = createKernel({ arch: { ...noSecret, mmu }, kernel: 'latest' });
    expect(code(() => k.run(k.memfdSecret({ file: 's' })))).toBe('ENOSYS');
    const s390Like = { ...noSecret, mmu: { ...noSecret.mmu, memfdSecretSince: [6, 4] as const } };
    const k6 = createKernel({ arch: s390Like, kernel: 'v6.3', features: { secretmem: 'enabled' } });
    expect(code(() => k6.run(k6.memfdSecret({ file: 's' })))).toBe('ENOSYS');
  });

  it('takes O_CLOEXEC and nothing else (EINVAL)', () => {
    const k = kernel();
    expect(code(() => k.run(k.memfdSecret({ file: 'a', flags: MEMFD_SECRET_CLOEXEC })))).toBeNull();
    expect(code(() => k.run(k.memfdSecret({ file: 'b', flags: 1 })))).toBe('EINVAL');
  });
});

describe('secretmem mappings and faults', () => {
  it('maps MAP_SHARED only; the VMA is VM_LOCKED and populated by faults alone', () => {
    const k = kernel();
    k.run(k.memfdSecret({ file: 'secret', size: 2 * PAGE }));
    expect(code(() => k.run(k.mmap({ file: 'secret', length: 2 * PAGE, write: true, as: 'priv' })))).toBe('EINVAL');
    k.run(k.mmap({ file: 'secret', length: 2 * PAGE, shared: true, write: true, as: 'mem' }));
    expect(vma(k, 'mem').flags.locked).toBe(true);
    expect(k.pfnOf({ map: 'mem', page: 0 })).toBeNull(); // do_mmap() saw no VM_LOCKED: no populate
    expect(lockedVm(k.process(undefined))).toBe(2);
  });

  it('a fault allocates a zeroed page out of the direct map: cache + PTE references, writable in place', () => {
    const k = kernel();
    const pfn = secretPage(k, 2);
    expect(k.secretmem.inDirectMap(pfn)).toBe(false);
    expect(k.folios.rc(pfn)).toBe(2); // page cache + PTE
    expect(k.folios.mapcount(pfn)).toBe(1);
    // no fault-around (secretmem_vm_ops has no ->map_pages): reading page 0 mapped nothing else
    expect(k.pfnOf({ map: 'mem', page: 1 })).toBeNull();
    expect(k.run(k.read({ map: 'mem', page: 1 }))).toBe('');
  });

  it('ftruncate() sets the size once (secretmem_setattr: EINVAL); a fault past it is SIGBUS', () => {
    const k = kernel();
    k.run(k.memfdSecret({ file: 'secret' }));
    k.run(k.mmap({ file: 'secret', length: 2 * PAGE, shared: true, write: true, as: 'mem' }));
    expect(code(() => k.run(k.write({ map: 'mem', page: 0, data: 'x' })))).toBe('SIGBUS'); // i_size 0
    k.run(k.truncate({ file: 'secret', size: PAGE }));
    expect(code(() => k.run(k.truncate({ file: 'secret', size: 2 * PAGE })))).toBe('EINVAL');
    k.run(k.write({ map: 'mem', page: 0, data: 'x' }));
    expect(code(() => k.run(k.write({ map: 'mem', page: 1, data: 'x' })))).toBe('SIGBUS');
  });
});

describe('GUP refuses secretmem', () => {
  it('the slow path, every kind of caller: check_vma_flags() EFAULT', () => {
    const k = kernel();
    const pfn = secretPage(k);
    expect(code(() => k.run(k.gup({ map: 'mem', page: 0, as: 'p' }, true)))).toBe('EFAULT');
    expect(code(() => k.run(k.gup({ map: 'mem', page: 0, write: true, longterm: true, as: 'l' }, true)))).toBe('EFAULT');
    expect(code(() => k.run(k.iouringRegister({ map: 'mem', page: 0, as: 'buf' })))).toBe('EFAULT');
    expect(code(() => k.run(k.procMemWrite({ map: 'mem', page: 0, data: 'y' })))).toBe('EIO');
    expect(code(() => k.run(k.remoteRead({ map: 'mem', page: 0, via: 'process_vm_readv' })))).toBe('EFAULT');
    expect(code(() => k.run(k.remoteRead({ map: 'mem', page: 0, via: 'ptrace' })))).toBe('EIO');
    expect(k.folios.rc(pfn)).toBe(2); // every refusal left the references as they were
    expect(k.run(k.read({ map: 'mem', page: 0 }))).toBe('0x55');
  });

  it('GUP-fast up to v6.8 misses a fresh page still in the LRU add batch; after munmap drained it, it is refused', () => {
    const old = kernel('v6.6');
    const pfn = secretPage(old);
    // 65291dcfcf89 (v6.9) is missing: no PG_lru yet, so folio_is_secretmem() said no and GUP-fast grabbed it
    old.run(old.gup({ map: 'mem', page: 0, fast: true, as: 'pipe' }, false));
    expect(old.folios.rc(pfn)).toBe(3); // cache + PTE + the pipe's
    old.run(old.put({ name: 'pipe' }));
    old.run(old.munmap({ map: 'mem' })); // unmap_region() -> lru_add_drain(): PG_lru set
    old.run(old.mmap({ file: 'secret', length: PAGE, shared: true, write: true, as: 'again' }));
    old.run(old.read({ map: 'again', page: 0 }));
    expect(code(() => old.run(old.gup({ map: 'again', page: 0, fast: true, as: 'pipe2' }, false)))).toBe('EFAULT');
    // do_mlock()'s lru_add_drain_all() drains the batch too (the mlock itself fails: its population is GUP, refused)
    const m = kernel('v6.6');
    secretPage(m);
    expect(code(() => m.run(m.mlock({ map: 'mem' })))).toBe('ENOMEM');
    expect(code(() => m.run(m.gup({ map: 'mem', page: 0, fast: true, as: 'pipe' }, false)))).toBe('EFAULT');
    // with the fix, the fresh page is refused at once
    const k = kernel('latest');
    secretPage(k);
    expect(code(() => k.run(k.gup({ map: 'mem', page: 0, fast: true, as: 'pipe' }, false)))).toBe('EFAULT');
  });
});

describe('population and the other file operations', () => {
  it('every populate is GUP: mlock ENOMEM (EFAULT from check_vma_flags), MADV_POPULATE_* EINVAL, MAP_POPULATE ignores it', () => {
    const k = kernel();
    k.run(k.memfdSecret({ file: 'secret', size: 2 * PAGE }));
    k.run(k.mmap({ file: 'secret', length: 2 * PAGE, shared: true, write: true, populate: true, as: 'mem' }));
    expect(k.pfnOf({ map: 'mem', page: 0 })).toBeNull(); // mm_populate(ignore_errors = 1)
    expect(code(() => k.run(k.mlock({ map: 'mem' })))).toBe('ENOMEM'); // __mlock_posix_error_return(-EFAULT)
    expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'populate-read' })))).toBe('EINVAL');
    expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'populate-write' })))).toBe('EINVAL');
    k.run(k.mlockall({ current: true })); // errors ignored
    expect(k.pfnOf({ map: 'mem', page: 0 })).toBeNull();
  });

  it('no ->fallocate: fallocate and punch hole EOPNOTSUPP; MADV_REMOVE EINVAL first (VM_LOCKED)', () => {
    const k = kernel();
    secretPage(k);
    expect(code(() => k.run(k.fallocate({ file: 'secret', length: PAGE })))).toBe('EOPNOTSUPP');
    expect(code(() => k.run(k.punchHole({ file: 'secret', offset: 0, length: PAGE })))).toBe('EOPNOTSUPP');
    expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'remove' })))).toBe('EINVAL');
    k.run(k.fork({ as: 'child' })); // the child's VMA is not VM_LOCKED: vfs_fallocate() answers
    expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'remove', process: 'child' })))).toBe('EOPNOTSUPP');
  });
});

describe('remote-read of ordinary memory (the step the secretmem refusals are measured against)', () => {
  it('reads the data and leaves no reference; ptrace (FOLL_FORCE) reads PROT_NONE, process_vm_readv does not', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'a' }));
    k.run(k.write({ map: 'a', page: 0, data: 'hello' }));
    const pfn = k.pfnOf({ map: 'a', page: 0 })!;
    expect(k.run(k.remoteRead({ map: 'a', page: 0, via: 'process_vm_readv' }))).toBe('hello');
    expect(k.run(k.remoteRead({ map: 'a', page: 0, via: 'ptrace' }))).toBe('hello');
    expect(k.folios.rc(pfn)).toBe(1); // the PTE's: the pin (+1024) and the get (+1) were dropped
    k.run(k.mprotect({ map: 'a', write: false, read: false }));
    expect(code(() => k.run(k.remoteRead({ map: 'a', page: 0, via: 'process_vm_readv' })))).toBe('EFAULT');
    expect(k.run(k.remoteRead({ map: 'a', page: 0, via: 'ptrace' }))).toBe('hello');
  });
});

describe('mlock, RLIMIT_MEMLOCK and fork', () => {
  it('munlock and munlockall leave a secretmem VMA locked (mlock_fixup() filters vma_is_secretmem())', () => {
    const k = kernel();
    secretPage(k, 4);
    k.run(k.munlock({ map: 'mem', offset: PAGE, length: PAGE }));
    k.run(k.munlockall({}));
    // not split by the munlock, still VM_LOCKED, still charged
    expect(k.process(undefined).vmas.filter((v) => v.name === 'mem').map((v) => [v.pages, v.flags.locked])).toEqual([[4, true]]);
    expect(lockedVm(k.process(undefined))).toBe(4);
  });

  it('without CAP_IPC_LOCK a secretmem mmap, mlock and MAP_LOCKED must fit RLIMIT_MEMLOCK with what is locked already', () => {
    const k = kernel();
    k.run(k.setrlimit({ memlock: 8 * PAGE }));
    k.run(k.memfdSecret({ file: 'secret', size: PAGE }));
    k.run(k.mmap({ file: 'secret', length: 6 * PAGE, shared: true, write: true, as: 'a' })); // 6 <= 8
    expect(code(() => k.run(k.mmap({ file: 'secret', length: 3 * PAGE, shared: true, write: true, as: 'b' })))).toBe('EAGAIN'); // 6 + 3 > 8
    k.run(k.mmap({ anon: true, length: 3 * PAGE, write: true, as: 'anon' }));
    expect(code(() => k.run(k.mlock({ map: 'anon' })))).toBe('ENOMEM'); // do_mlock(): 6 + 3 > 8
    k.run(k.mlock({ map: 'anon', length: 2 * PAGE })); // 6 + 2 = 8
    expect(code(() => k.run(k.mlock({ map: 'anon', length: 2 * PAGE })))).toBeNull(); // already locked: not counted twice
    expect(code(() => k.run(k.mmap({ anon: true, length: PAGE, write: true, locked: true, as: 'c' })))).toBe('EAGAIN');
    k.run(k.setrlimit({ memlock: 0 }));
    expect(code(() => k.run(k.mlock({ map: 'anon' })))).toBe('EPERM'); // can_do_mlock()
  });

  it('fork shares the page; the child VMA is not VM_LOCKED (dup_mmap) and its GUP is refused too', () => {
    const k = kernel();
    const pfn = secretPage(k);
    k.run(k.fork({ as: 'child' }));
    expect(vma(k, 'mem', 'child').flags.locked ?? false).toBe(false);
    expect(k.run(k.read({ map: 'mem', page: 0, process: 'child' }))).toBe('0x55');
    expect(k.pfnOf({ map: 'mem', page: 0, process: 'child' })).toBe(pfn);
    expect(k.folios.rc(pfn)).toBe(3); // cache + two PTEs
    expect(code(() => k.run(k.gup({ map: 'mem', page: 0, process: 'child', as: 'p' }, true)))).toBe('EFAULT');
    // the limit is inherited
    k.run(k.setrlimit({ memlock: PAGE }));
    k.run(k.fork({ as: 'child2' }));
    expect(k.process('child2').memlockLimit).toBe(1);
  });
});

describe('the steps in a scenario file', () => {
  const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: {}, driver: {} };
  const cell = (version: string) => ({ arch: 'x86', fs: null, driver: null, version, features: {} });
  const yaml = (steps: string) => `name: s\nsteps:\n${steps}`;
  const STEPS = [
    '  - setrlimit: { memlock: 16KiB }',
    '  - memfd-secret: { file: f, size: 4KiB }',
    '  - mmap: { file: f, length: 4KiB, shared: true, write: true, as: m }',
    '  - write: { map: m, page: 0, data: x }',
    '  - remote-read: { map: m, page: 0, via: ptrace }',
    '    expect: { error: EIO }',
    '  - check: { refcount: { file: f, page: 0 }, equals: 2 }',
    '',
  ].join('\n');

  it('runs: memfd-secret, setrlimit and remote-read; ENOSYS fails a cell on v6.1 that does not expect it', () => {
    expect(runScenario(parseScenario(yaml(STEPS), 's.yaml'), cell('latest'), catalog)).toMatchObject({ status: 'pass' });
    const old = runScenario(parseScenario(yaml(STEPS), 's.yaml'), cell('v6.1'), catalog);
    expect(old.status).toBe('fail');
    expect(old.failures.join(' ')).toMatch(/ENOSYS/);
  });

  it('bad input names the field and the fix', () => {
    expect(() => parseScenario(yaml('  - memfd-secret: { file: f }\n  - mmap: { file: f, length: 4KiB, shared: true, as: m }\n  - remote-read: { map: m, page: 0, via: peek }\n'), 's.yaml')).toThrow(/remote-read\.via: via is process_vm_readv or ptrace/);
    expect(() => parseScenario(yaml("  - memfd-secret: { file: f, flags: cloexec }\n"), 's.yaml')).toThrow(/memfd-secret\.flags: flags is a number \(O_CLOEXEC is 524288\)/);
    expect(() => parseScenario(yaml('  - remote-read: { map: nope, page: 0, via: ptrace }\n'), 's.yaml')).toThrow(/a mapping named 'nope' is used before it is defined/);
  });
});
