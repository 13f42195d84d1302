import type { ArchPlugin } from '../plugin.js';
import { formatSnapshotFlags, type DriverPlugin } from '../driver.js';
import { InputError, KernelError, KernelOops, UnsupportedError } from '../errors.js';
import { featureDiff, resolveFeatures, type FeatureSet } from '../features.js';
import type { FilesystemPlugin } from '../fs/filesystem.js';
import { daxFlagOf, statxDax } from '../fs/daxmode.js';
import { Monitor } from '../invariants.js';
import { createKernel, type Kernel } from '../kernel.js';
import { getMdwe } from '../mm/mdwe.js';
import type { Op, Yield } from '../sched.js';
import { prng } from '../prng.js';
import type { CellKernel, CellResult, CheckArgs, ExpectRule, Outcome, Scenario, ScheduleStep, Step } from './types.js';
import { unknownPluginName } from './plugin-names.js';
import { memoryTiersMismatches } from '../mm/memtier.js';

/** The plugins a runner may compose kernels from, by the names scenarios and flags use. */
export interface PluginCatalog {
  readonly arch: Readonly<Record<string, (o: { pageSize?: number }) => ArchPlugin>>;
  readonly fs: Readonly<Record<string, () => FilesystemPlugin>>;
  readonly driver: Readonly<Record<string, () => DriverPlugin>>;
}

export interface CellKernelRequest {
  readonly arch: string;
  readonly pageSize?: number;
  readonly fs: string | null;
  readonly driver: string | null;
  readonly version: string;
  /** feature overrides (on top of the scenario's own `kernel.features`) */
  readonly features: Readonly<Record<string, string | boolean>>;
}

export interface RunOptions {
  /** 0: run the lowest-numbered runnable thread until it blocks or ends; N > 0: seeded random switches */
  readonly seed?: number;
  /** keep the event trace in the result */
  readonly trace?: boolean;
  /** replay: the thread to run at each decision point with more than one runnable thread */
  readonly schedule?: readonly ScheduleStep[];
}

export interface ThreadState {
  readonly name: string;
  readonly steps: readonly Step[];
  index: number;
  op: Op<unknown> | null;
  pending: Yield | null;
  done: boolean;
  /** parked on a step that was expected to block */
  parked: boolean;
  /**
   * The failures this thread's steps were allowed to have: a step whose `expect` names an error
   * and says it may also succeed (maySucceed) failed with that error. One message each; the
   * explorer reports the interleavings that take this way (ExploreResult.allowedFailures).
   */
  allowedFailures: string[];
}


class StepFailure extends Error {}

/** The generator that performs one scenario step on a kernel. */
export function stepOp(k: Kernel, step: Step, failures: string[]): Op<unknown> {
  // args were validated against the schema when the scenario was loaded
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const a = step.args as any;
  /** The syscall's op, failing the step when it returns other than the scenario expects (when it says). */
  const returning = function* (op: Op<number>, want: number | undefined, syscall: string): Op {
    const got = yield* op;
    if (want !== undefined && got !== want) failures.push(`${step.path}: ${syscall} returned ${got}, expected ${want}`);
  };
  // a step that reads data: its `expect` (if any) must be what was read
  const reading = function* (op: Op<string>, what: string): Op {
    const data = yield* op;
    const want = (step.args as { expect?: string }).expect;
    if (want !== undefined && data !== want) failures.push(`${step.path}: ${what} '${data}', expected '${want}'`);
  };
  switch (step.op) {
    case 'probe': return a.mode === 'raw' ? k.probeRaw(a) : k.probe(a);
    case 'unbind': return k.unbind(a);
    case 'bind': return k.bind(a);
    case 'reconfigure': return k.reconfigure(a);
    case 'reconfigure-namespace': return k.reconfigureNamespace(a);
    case 'nd-region': return (function* () {
      yield* [];
      k.ndBus.create(a);
    })();
    case 'create-namespace': return (function* () {
      const name = yield* k.ndBus.createNamespace(a);
      if (name !== a.as) failures.push(`${step.path}: ndctl create-namespace made ${name}, expected ${a.as}`);
    })();
    case 'destroy-namespace': return k.ndBus.destroyNamespace(a);
    case 'nd-list': return (function* () {
      yield* [];
      for (const m of k.ndBus.list(a)) failures.push(`${step.path}: ndctl list -R: ${m}`);
    })();
    case 'online-memory': return returning(k.memoryState({ device: a.device, online: true, movable: a.movable, mapping: a.mapping }), a.onlined, 'daxctl online-memory');
    case 'offline-memory': return returning(k.memoryState({ device: a.device, online: false, mapping: a.mapping }), a.offlined, 'daxctl offline-memory');
    case 'auto-online-blocks': return k.autoOnlineBlocks(a);
    case 'dax-region': return k.daxBus.createRegion(a);
    case 'create-device': return (function* () {
      const name = yield* k.daxBus.createDevice(a);
      if (name !== a.as) failures.push(`${step.path}: daxctl create-device made ${name}, expected ${a.as}`);
    })();
    case 'destroy-device': return k.daxBus.destroyDevice(a);
    case 'resize-device': return k.daxBus.resizeDevice(a);
    case 'enable-device': return k.daxBus.enable(a.device);
    case 'disable-device': return k.daxBus.disable(a.device);
    case 'dax-list': return (function* () {
      yield* [];
      for (const m of k.daxBus.list(a)) failures.push(`${step.path}: daxctl list: ${m}`);
    })();
    case 'memory-tiers': return (function* () {
      yield* [];
      for (const m of memoryTiersMismatches(k, a)) failures.push(`${step.path}: ${m}`);
    })();
    case 'mount': return k.mount(a);
    case 'umount': return k.umount(a);
    case 'remount': return k.remount(a);
    case 'mkdir': return k.mkdir(a);
    case 'chattr': return k.chattr(a);
    case 'rename': return k.rename(a);
    case 'fsverity-enable': return k.fsverityEnable(a);
    case 'drop-caches': return k.dropCaches(a);
    case 'fsync': return k.fsync(a);
    case 'msync': return k.msync(a);
    case 'log-mark': return k.logMark(a);
    case 'log-replay': return k.logReplay(a);
    case 'dm-create': return k.dmCreate(a);
    case 'dm-remove': return k.dmRemove(a);
    case 'open': return k.open(a);
    case 'close': return k.close(a);
    case 'create': return k.create(a);
    case 'truncate': return k.truncate(a);
    case 'punch-hole': return k.punchHole(a);
    case 'fallocate': return k.fallocate(a);
    case 'reflink': return k.reflink(a);
    case 'spawn': return k.spawn(a);
    case 'memfd-create': return k.memfdCreate(a);
    case 'memfd-secret': return k.memfdSecret(a);
    case 'add-seals': return k.addSeals(a);
    case 'setrlimit': return k.setrlimit(a);
    case 'pkey-alloc': return returning(k.pkeyAlloc(a), a.returns, 'pkey_alloc');
    case 'pkey-free': return k.pkeyFree(a);
    case 'pkey-set': return k.pkeySet(a);
    case 'clone-thread': return k.cloneThread(a);
    case 'signal': return k.signal(a);
    case 'sigreturn': return k.sigreturn(a);
    case 'execute': return reading(k.execute(a), 'instruction fetch found');
    case 'tmpfile': return k.tmpfile(a);
    case 'hugetlb-pool': return k.hugetlbPool(a);
    case 'cgroup-mount': return k.hugetlbCgroups.mount(a);
    case 'cgroup-mkdir': return k.hugetlbCgroups.mkdir(a);
    case 'cgroup-rmdir': return k.hugetlbCgroups.rmdir(a);
    case 'cgroup-attach': return k.hugetlbCgroups.attach(a);
    case 'cgroup-write': return k.hugetlbCgroups.write(a);
    case 'thp-size': return k.thpSize(a);
    case 'thp-enabled': return k.thpEnabled(a);
    case 'shmem-enabled': return k.shmemEnabled(a);
    case 'sysctl': return k.sysctl(a);
    case 'khugepaged-limits': return k.khugepagedLimits(a);
    case 'khugepaged-scan': return k.khugepagedScan(a);
    case 'split-huge-pages': return k.splitHugePages(a);
    case 'mmap': return k.mmap(a);
    case 'swapoff': return k.swapoff();
    case 'munmap': return k.munmap(a);
    case 'shmget': return k.shmget(a);
    case 'shmat': return k.shmat(a);
    case 'shmdt': return k.shmdt(a);
    case 'shmctl': return k.shmctl(a);
    case 'mremap': return k.mremap(a);
    case 'madvise': return k.madvise(a);
    case 'mseal': return k.mseal(a);
    case 'pidfd-open': return k.pidfdOpen(a);
    case 'process-madvise': return returning(k.processMadvise(a), a.bytes, 'process_madvise');
    case 'process-mrelease': return k.processMrelease(a);
    case 'kill': return k.kill(a);
    case 'ksm-merge': return k.ksmMerge(a);
    case 'ksm-unmerge': return k.ksmUnmerge(a);
    case 'prctl': return k.prctl(a);
    case 'proc-mem-write': return k.procMemWrite(a);
    case 'uffd-api': return k.uffdApi(a);
    case 'uffd-register':
      return (function* () {
        const got = yield* k.uffdRegister(a);
        const want = (step.args as { ioctls?: readonly string[] }).ioctls;
        if (want !== undefined && [...got].sort().join(',') !== [...want].sort().join(',')) failures.push(`${step.path}: UFFDIO_REGISTER ioctls [${got.join(', ')}], expected [${want.join(', ')}]`);
      })();
    case 'uffd-unregister': return k.uffdUnregister(a);
    case 'uffd-copy': return k.uffdCopy(a);
    case 'uffd-zeropage': return k.uffdZeropage(a);
    case 'uffd-continue': return k.uffdContinue(a);
    case 'uffd-poison': return k.uffdPoison(a);
    case 'uffd-move': return returning(k.uffdMove(a), a.moved, 'UFFDIO_MOVE');
    case 'uffd-wake': return k.uffdWake(a);
    case 'uffd-writeprotect': return k.uffdWriteprotect(a);
    case 'pagemap-scan':
      return (function* () {
        const got = yield* k.pagemapScan(a);
        const want = step.args as { returns?: number; regions?: { page: number; pages: number; categories: string[] }[]; walkEnd?: number };
        const show = (rs: readonly { page: number; pages: number; categories: readonly string[] }[]) => rs.map((r) => `${r.page}+${r.pages}[${r.categories.join(',')}]`).join(' ');
        if (want.returns !== undefined && got.regions.length !== want.returns) failures.push(`${step.path}: PAGEMAP_SCAN returned ${got.regions.length}, expected ${want.returns}`);
        if (want.regions !== undefined && show(got.regions) !== show(want.regions)) failures.push(`${step.path}: PAGEMAP_SCAN regions ${show(got.regions) || '(none)'}, expected ${show(want.regions) || '(none)'}`);
        if (want.walkEnd !== undefined && got.walkEnd !== want.walkEnd) failures.push(`${step.path}: PAGEMAP_SCAN walk_end page ${got.walkEnd}, expected ${want.walkEnd}`);
      })();
    case 'uffd-close': return k.uffdClose(a);
    case 'uffd-read':
      return (function* () {
        const want = (step.args as { expect?: Record<string, unknown> }).expect;
        const got = yield* k.uffdRead({ ...a, ...(typeof want?.['map'] === 'string' ? { map: want['map'] } : {}), ...(typeof want?.['to'] === 'string' ? { to: want['to'] } : {}) });
        const differs = want && Object.entries(want).some(([key, v]) => key !== 'map' && key !== 'to' && (got as Record<string, unknown>)[key] !== v);
        if (differs) failures.push(`${step.path}: userfaultfd read ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
      })();
    case 'mlock': return k.mlock(a);
    case 'munlock': return k.munlock(a);
    case 'mlockall': return k.mlockall(a);
    case 'numa-nodes': return k.numaNodes(a);
    case 'mbind': return k.mbind(a);
    case 'set-mempolicy': return k.setMempolicy(a);
    case 'migrate-pages': return returning(k.migratePages(a), a.notMigrated, 'migrate_pages');
    case 'move-pages':
      return (function* () {
        const r = yield* k.movePages(a);
        const show = (v: number | string | null): string => (v === null ? 'unset' : typeof v === 'number' ? String(v) : `-${v}`);
        const got = r.status.map(show).join(', ');
        const want = (a.status as (number | string)[] | undefined)?.map((v) => (v === 'unset' ? 'unset' : typeof v === 'number' ? String(v) : `-${v}`)).join(', ');
        if (want !== undefined && got !== want) failures.push(`${step.path}: move_pages status [${got}], expected [${want}]`);
        if (a.notMigrated !== undefined && r.notMigrated !== a.notMigrated) failures.push(`${step.path}: move_pages returned ${r.notMigrated}, expected ${a.notMigrated}`);
      })();
    case 'munlockall': return k.munlockall(a);
    case 'fork': return k.fork(a);
    case 'exit': return k.exit(a);
    case 'exec': return k.exec(a);
    // xfs_io mwrite and the like: a store to each page in turn
    case 'write': return a.pages === undefined ? k.write(a) : (function* () {
      for (let i = 0; i < a.pages; i++) yield* k.write({ ...a, page: a.page + i });
    })();
    case 'pread': return returning(k.pread(a), a.bytes, 'pread');
    case 'pwrite': return returning(k.pwrite(a), a.bytes, 'pwrite');
    case 'pin': return k.gup(a, true);
    case 'get': return k.gup(a, false);
    case 'unpin': return k.unpin(a);
    case 'put': return k.put(a);
    case 'iouring-register': return k.iouringRegister(a);
    case 'iouring-unregister': return k.iouringUnregister(a);
    case 'dma-write': return k.dmaWrite(a);
    case 'memory-failure': return k.memoryFailure(a);
    case 'inject-error': return k.injectError(a);
    case 'scrub': return k.scrub();
    case 'set-badblocks': return k.setBadblocks(a);
    case 'clear-error': return k.clearError(a);
    case 'soft-offline': return k.softOffline(a);
    case 'inject-fault': return k.injectFault(a);
    case 'mprotect': return k.mprotect(a);
    case 'clear-refs': return k.clearRefs(a);
    case 'read': return reading(k.read(a), 'read');
    case 'remote-read': return reading(k.remoteRead(a), `${a.via} read`);
    case 'dma-read': return reading(k.dmaRead(a), 'DMA read');
    case 'check':
      return (function* () {
        const msg = check(k, step.args as unknown as CheckArgs);
        if (msg) failures.push(`${step.path}: ${msg}`);
        yield* [];
      })();
    case 'migrate': return k.migrate(a);
    case 'device-write': return k.deviceWrite(a);
    case 'device-exclusive': return k.deviceExclusive(a);
    case 'device-check-exclusive': return k.deviceCheckExclusive(a);
    case 'device-snapshot':
      return (function* () {
        const got = yield* k.deviceSnapshot(a);
        const want = (step.args as { expect: readonly number[] }).expect;
        const first = (step.args as { page?: number }).page ?? 0;
        want.forEach((w, i) => {
          if (got[i] !== w) failures.push(`${step.path}: ${a.device} snapshot of page ${first + i} of '${a.map}' is ${formatSnapshotFlags(got[i]!)} (0x${got[i]!.toString(16).padStart(2, '0')}), expected ${formatSnapshotFlags(w)} (0x${w.toString(16).padStart(2, '0')})`);
        });
      })();
    case 'device-read':
      return (function* () {
        const data = yield* k.deviceRead(a);
        const want = (step.args as { expect?: string }).expect;
        if (want !== undefined && data !== want) failures.push(`${step.path}: device read '${data}', expected '${want}'`);
      })();
  }
}

/** Evaluate a check step; returns a failure message or null. */
export function check(k: Kernel, c: CheckArgs): string | null {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const t = c.target as any;
  const cmp = (what: string, actual: number | boolean): string | null => {
    if (c.equals !== undefined && typeof c.equals !== 'object' && actual !== c.equals) return `${what} is ${String(actual)}, expected ${String(c.equals)}`;
    if (typeof actual === 'number' && c.min !== undefined && actual < c.min) return `${what} is ${actual}, expected at least ${c.min}`;
    if (typeof actual === 'number' && c.max !== undefined && actual > c.max) return `${what} is ${actual}, expected at most ${c.max}`;
    return null;
  };
  const where = Object.entries(t).map(([key, v]) => `${key}=${String(v)}`).join(' ');
  switch (c.what) {
    case 'mapped':
      return cmp(`mapped(${where})`, k.isMappedIn(t));
    case 'writable':
      return cmp(`writable(${where})`, k.isWritableIn(t));
    case 'softDirty':
      return cmp(`softDirty(${where})`, k.isSoftDirtyIn(t));
    case 'uffdWp':
      return cmp(`uffdWp(${where})`, k.isUffdWpIn(t));
    case 'swapped':
      return cmp(`swapped(${where})`, k.isSwappedIn(t));
    case 'locked':
      return cmp(`locked(${where})`, k.isLockedIn(t));
    case 'guard':
      return cmp(`guard(${where})`, k.isGuardIn(t));
    case 'sealed':
      return cmp(`sealed(${where})`, k.isSealedIn(t));
    case 'vmaPages':
      return cmp(`vmaPages(${where})`, k.vmaPagesIn(t));
    case 'address':
      return cmp(`address(${where})`, k.addressIn(t));
    case 'vmaStart': {
      const at = k.vmaStartIn(t);
      return at === null ? `vmaStart(${where}): no VMA holds that page` : cmp(`vmaStart(${where})`, at);
    }
    case 'anonHugePages':
      return cmp(`anonHugePages(${where})`, k.anonHugePagesIn(t));
    case 'filePmdMapped':
      return cmp(`filePmdMapped(${where})`, k.pmdMappedCacheThpsIn(t, 'file'));
    case 'shmemPmdMapped':
      return cmp(`shmemPmdMapped(${where})`, k.pmdMappedCacheThpsIn(t, 'shmem'));
    case 'folioOrder':
      return cmp(`folioOrder(${where})`, k.folioOrderIn(t));
    case 'rssAnon':
      return cmp(`rssAnon(${where})`, k.rssAnonIn(t));
    case 'metadataBadblocks':
      return cmp(`metadataBadblocks(${where})`, k.metadataBadblocksIn(t));
    case 'badblocks':
      return cmp(`badblocks(${where})`, k.badblocksIn(t));
    case 'bdevBadblocks':
      return cmp(`bdevBadblocks(${where})`, k.bdevBadblocksIn(t));
    case 'bdevFirstBadblock': {
      const first = k.bdevFirstBadblockIn(t);
      return first === null ? `bdevFirstBadblock(${where}): the block device's badblocks list none` : cmp(`bdevFirstBadblock(${where})`, first);
    }
    case 'injectedErrors':
      return cmp(`injectedErrors(${where})`, k.injectedErrorsIn(t));
    // /proc/meminfo HardwareCorrupted (mm/memfailure.ts)
    case 'hardwareCorrupted':
      return cmp('hardwareCorrupted', k.memoryFailures.hardwareCorruptedKb());
    // stat(2) of a file: st_blocks in filesystem blocks (du), st_size (fs/journal.ts)
    case 'fileBlocks':
      return cmp(`fileBlocks(${where})`, k.file(t.file).inode.blocks.size);
    case 'fileSize':
      return cmp(`fileSize(${where})`, k.file(t.file).inode.size);
    case 'blockFree':
      return cmp(`blockFree(${where})`, k.blockFree(t));
    // S_DAX through statx, FS_XFLAG_DAX through FS_IOC_FSGETXATTR (fs/daxmode.ts)
    case 'dax':
      return cmp(`dax(${where})`, statxDax(k, t.file));
    case 'daxFlag':
      return cmp(`daxFlag(${where})`, daxFlagOf(k, t));
    // F_GET_SEALS of a memfd (mm/memfd.ts)
    case 'seals':
      return cmp(`seals(${where})`, k.getSeals(t.file));
    // a process's KSM state (mm/ksm.ts): throws the kernel's error where the release has no such interface
    case 'memoryMerge':
      return cmp(`memoryMerge(${where})`, k.ksm.memoryMerge(k.process(t.process)));
    case 'thpDisable':
      return cmp(`thpDisable(${where})`, k.thp.getDisable(k.process(t.process)));
    case 'mdwe':
      return cmp(`mdwe(${where})`, getMdwe(k.version, k.process(t.process)));
    case 'ksmMergingPages':
      return cmp(`ksmMergingPages(${where})`, k.ksm.mergingPages(k.process(t.process)));
    case 'ksmZeroPages':
      return cmp(`ksmZeroPages(${where})`, k.ksm.zeroPages(k.process(t.process)));
    // /sys/kernel/mm/ksm counters (mm/ksm.ts)
    case 'ksmPagesShared':
      return cmp('ksmPagesShared', k.ksm.pagesShared());
    case 'ksmPagesSharing':
      return cmp('ksmPagesSharing', k.ksm.pagesSharing());
    // HugePages_Free / _Rsvd / _Total of /proc/meminfo for that size (mm/hugetlb.ts)
    case 'hugetlbFree':
      return cmp(`hugetlbFree(${where})`, k.hugetlb.counters(t.hugetlb, t.node).free);
    case 'hugetlbResv':
      return cmp(`hugetlbResv(${where})`, k.hugetlb.counters(t.hugetlb).resv);
    case 'hugetlbTotal':
      return cmp(`hugetlbTotal(${where})`, k.hugetlb.counters(t.hugetlb, t.node).nr);
    // a hugetlb cgroup control file (mm/hugetlbcg.ts): a number compares with the number it holds
    case 'cgroupFile': {
      const text = k.hugetlbCgroups.read(t.cgroup, t.file);
      return text === String(c.equals) ? null : `${t.file} of cgroup ${t.cgroup} reads '${text}', expected '${String(c.equals)}'`;
    }
    case 'vmemmap': {
      const want = (c.equals ?? {}) as Record<string, number>;
      let actual: Record<string, number>;
      if (t.hugetlb !== undefined) {
        // the pool's pages, free and in use, with what HVO freed (mm/hugetlb.ts)
        const v = k.hugetlb.vmemmap(t.hugetlb);
        actual = { bytes: v.vmemmapBytes, pages: v.vmemmapPages, savedPages: v.savedPages };
      } else {
        // a device-dax instance in system-ram mode: the memmap of the memory kmem added (mm/hotplug.ts)
        const f = k.hotplug.memoryOf(t.device)?.vmemmap ?? k.device(t.device).pgmap.vmemmap;
        actual = { bytes: f?.vmemmapBytes ?? 0, pages: f?.vmemmapPages ?? 0, structPagesInitialized: f?.structPagesInitialized ?? 0, savedPages: f?.savedPages ?? 0 };
      }
      const bad = Object.entries(want).filter(([key, v]) => actual[key] !== v);
      return bad.length ? `vmemmap(${where}) ${bad.map(([key, v]) => `${key} is ${actual[key]}, expected ${v}`).join('; ')}` : null;
    }
  }
  const pfn = k.pfnOf(t);
  if (pfn === null) return `${c.what}(${where}): nothing there (not mapped / no block)`;
  switch (c.what) {
    case 'refcount':
      return cmp(`refcount(${where})`, k.refcount(pfn));
    case 'mapcount':
      return cmp(`mapcount(${where})`, k.mapcount(pfn));
    case 'pinned':
      return cmp(`pinned(${where})`, k.maybePinned(pfn));
    case 'anon':
      return cmp(`anon(${where})`, k.isAnon(pfn));
    case 'node':
      return cmp(`node(${where})`, k.nodeOf(pfn));
  }
}

/** Does an expect rule's `when` match this kernel? */
export function ruleApplies(rule: ExpectRule, kernel: { arch: string; pageSize?: number; fs: string | null; driver: string | null; version: string; features: FeatureSet }): boolean {
  const w = rule.when;
  if (!w) return true;
  if (w.arch && !w.arch.includes(kernel.arch)) return false;
  if (w.pageSize && (kernel.pageSize === undefined || !w.pageSize.includes(kernel.pageSize))) return false;
  if (w.fs && !w.fs.includes(kernel.fs ?? '')) return false;
  if (w.driver && !w.driver.includes(kernel.driver ?? '')) return false;
  if (w.version && !w.version.includes(kernel.version)) return false;
  for (const [name, values] of Object.entries(w.features ?? {})) {
    if (!values.includes((kernel.features as Record<string, string | boolean>)[name]!)) return false;
  }
  return true;
}

/** Run one scenario on one kernel: never throws for scenario or kernel problems. */
export function runScenario(scenario: Scenario, req: CellKernelRequest, catalog: PluginCatalog, options: RunOptions = {}): CellResult {
  const seed = options.seed ?? 0;
  const opened = ScenarioSession.open(scenario, req, catalog);
  if (!(opened instanceof ScenarioSession)) return opened;
  const session = opened;
  const random = seed > 0 ? prng(seed) : null;
  const replay = options.schedule ?? [];
  let at = 0;
  let used = 0;
  let last = -1;
  session.run((runnable) => {
    // replay: run each recorded slice's thread for as many preemption points as it ran
    while (at < replay.length && used >= (replay[at]!.slices ?? 1)) {
      at++;
      used = 0;
    }
    const wanted = replay[at];
    const named = wanted ? runnable.find((i) => session.threads[i]!.name === wanted.thread) : undefined;
    let pick: number;
    if (named !== undefined) {
      pick = named;
      used++;
    } else if (random) pick = runnable[Math.floor(random() * runnable.length)]!;
    else pick = runnable.includes(last) ? last : runnable[0]!;
    last = pick;
    return pick;
  });
  return session.result({ seed, trace: options.trace ?? false });
}

/**
 * One scenario on one kernel, advanced one preemption point at a time: the scheduler (run) and
 * the explorer drive it by choosing which runnable thread goes next.
 */
export class ScenarioSession {
  readonly monitor: Monitor;
  readonly failures: string[] = [];
  /** thread switches so far (thread and its step index) */
  readonly schedule: { thread: string; step: number; slices: number }[] = [];
  readonly threads: ThreadState[];
  private readonly setupThread: ThreadState;
  private outcome: Outcome | null = null;
  private reason: string | null = null;
  private lastThread = -1;
  private readonly t0 = performance.now();

  private constructor(
    readonly scenario: Scenario,
    readonly kernel: Kernel,
    readonly cellKernel: CellKernel,
    private readonly rules: readonly ExpectRule[],
    private readonly expectsUnsupported: boolean,
    trace: boolean,
  ) {
    this.monitor = new Monitor(kernel, undefined, { trace });
    const kdesc = { ...kernel.desc };
    const applicable = (steps: readonly Step[]): Step[] => steps.filter((st) => !st.when || ruleApplies({ when: st.when, path: st.path }, kdesc));
    const state = (name: string, steps: Step[]): ThreadState => ({ name, steps, index: 0, op: null, pending: null, done: steps.length === 0, parked: false, allowedFailures: [] });
    this.setupThread = state('setup', applicable(scenario.setup));
    this.threads = scenario.threads.map((t) => state(t.name, applicable(t.steps)));
  }

  /**
   * Build the kernel; an unbuildable or invalid cell comes back as its CellResult. `trace: false`
   * keeps no event trace (the explorer's search, which replays a finding's schedule with it on).
   */
  static open(scenario: Scenario, req: CellKernelRequest, catalog: PluginCatalog, options: { readonly trace?: boolean } = {}): ScenarioSession | CellResult {
    const t0 = performance.now();
    const pageSize = req.pageSize ?? scenario.kernel.pageSize;
    let cellKernel: CellKernel = { arch: req.arch, pageSize: pageSize ?? 0, fs: req.fs, driver: req.driver, version: req.version, features: { ...(scenario.kernel.features ?? {}), ...req.features } };
    const early = (r: Pick<CellResult, 'status' | 'outcome' | 'reason'>): CellResult => ({
      scenario: scenario.name,
      ...(scenario.file ? { file: scenario.file } : {}),
      kernel: cellKernel,
      violations: [],
      failures: [],
      ...r,
      ms: Math.round((performance.now() - t0) * 1000) / 1000,
    });
    let features: FeatureSet;
    try {
      features = resolveFeatures(req.version, cellKernel.features);
    } catch (e) {
      return early({ status: 'error', outcome: 'error', reason: (e as Error).message });
    }
    const unknown = unknownPluginName(scenario, { arch: Object.keys(catalog.arch), fs: Object.keys(catalog.fs), driver: Object.keys(catalog.driver) });
    if (unknown) return early({ status: 'error', outcome: 'error', reason: unknown });
    const archFactory = catalog.arch[req.arch];
    const fsFactory = req.fs ? catalog.fs[req.fs] : undefined;
    const driverFactory = req.driver ? catalog.driver[req.driver] : undefined;
    const missing = !archFactory ? `arch '${req.arch}'` : req.fs && !fsFactory ? `fs '${req.fs}'` : req.driver && !driverFactory ? `driver '${req.driver}'` : null;
    if (missing) return early({ status: 'error', outcome: 'error', reason: `no plugin for ${missing} (known: arch ${Object.keys(catalog.arch).join('/')}, fs ${Object.keys(catalog.fs).join('/')}, driver ${Object.keys(catalog.driver).join('/')})` });
    let arch: ArchPlugin;
    try {
      arch = archFactory!(pageSize ? { pageSize } : {});
    } catch (e) {
      if (e instanceof InputError) return early({ status: 'error', outcome: 'error', reason: e.message });
      throw e;
    }
    const rules = scenario.expect.filter((r) => ruleApplies(r, { arch: req.arch, pageSize: arch.mmu.basePageSize, fs: req.fs, driver: req.driver, version: req.version, features }));
    const expectsUnsupported = rules.some((r) => r.unsupported === true);
    try {
      cellKernel = { ...cellKernel, pageSize: arch.mmu.basePageSize, features: featureDiff(req.version, features) };
      const k = createKernel({
        arch,
        fs: fsFactory?.() ?? null,
        driver: driverFactory?.() ?? null,
        drivers: Object.values(catalog.driver).map((f) => f()),
        filesystems: Object.values(catalog.fs).map((f) => f()),
        kernel: req.version,
        features,
      });
      return new ScenarioSession(scenario, k, cellKernel, rules, expectsUnsupported, options.trace !== false);
    } catch (e) {
      if (e instanceof UnsupportedError) return early({ status: expectsUnsupported ? 'pass' : 'unsupported', outcome: 'unsupported', reason: e.message });
      if (e instanceof InputError) return early({ status: 'error', outcome: 'error', reason: e.message });
      throw e;
    }
  }

  /** The run's outcome once it has ended (null while threads can still run). */
  get ended(): Outcome | null {
    return this.outcome;
  }

  /** Run setup to completion (never interleaved), then hand out the threads. */
  runSetup(): void {
    if (this.outcome) return;
    this.guard(() => {
      while (!this.setupThread.done && !this.outcome) {
        const t = this.setupThread;
        if (t.pending?.kind === 'block' && !t.pending.ready()) {
          if (t.steps[t.index]!.expect?.blocks) {
            t.parked = true;
            break;
          }
          this.failures.push(`${t.steps[t.index]!.path}: blocked — ${t.pending.reason}`);
          this.outcome = 'blocked';
          return;
        }
        this.kernel.currentThread = 0;
        advance(this.kernel, t, this.failures);
      }
    });
  }

  /** Threads that can take a step now. When empty, the run is settled (see `ended`). */
  runnable(): number[] {
    if (this.outcome) return [];
    const out: number[] = [];
    this.threads.forEach((t, i) => {
      if (t.done || t.parked) return;
      if (t.pending?.kind === 'block' && !t.pending.ready()) return;
      out.push(i);
    });
    if (out.length === 0) this.settle();
    return out;
  }

  /** Advance thread i to its next preemption point. */
  step(i: number): void {
    const t = this.threads[i]!;
    if (i !== this.lastThread) this.schedule.push({ thread: t.name, step: t.index, slices: 1 });
    else this.schedule[this.schedule.length - 1]!.slices++;
    this.lastThread = i;
    this.kernel.currentThread = i + 1;
    this.guard(() => advance(this.kernel, t, this.failures));
  }

  /** Drive the run to its end with a scheduling policy. */
  run(choose: (runnable: number[]) => number): Outcome {
    this.runSetup();
    for (let r = this.runnable(); r.length > 0; r = this.runnable()) this.step(choose(r));
    return this.outcome!;
  }

  /** Nothing can run: all done (completed), or some thread waits forever (blocked). */
  private settle(): void {
    const stuck = this.threads.filter((t) => !t.done && !t.parked);
    const unexpected = stuck.filter((t) => !t.steps[t.index]!.expect?.blocks);
    for (const t of stuck) if (t.steps[t.index]!.expect?.blocks) t.parked = true;
    if (unexpected.length > 0) {
      // a blocked run is a failure only when no applicable rule expects `outcome: blocked`
      if (!this.rules.some((r) => r.outcome === 'blocked')) {
        for (const t of unexpected) this.failures.push(`${t.steps[t.index]!.path}: blocked — ${t.pending?.kind === 'block' ? t.pending.reason : 'waiting'}`);
      }
      this.outcome = 'blocked';
    } else this.outcome = 'completed';
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (e instanceof KernelOops) this.outcome = 'oops';
      else if (e instanceof StepFailure) this.outcome = 'completed';
      else if (e instanceof InputError) {
        this.outcome = 'error';
        this.reason = this.scenario.file && !e.message.startsWith(this.scenario.file) ? `${this.scenario.file}: ${e.message}` : e.message;
      } else if (e instanceof UnsupportedError) {
        this.outcome = 'unsupported';
        this.reason = e.message;
      } else throw e;
    }
  }

  /** The cell's result: status from the expect rules (defaults: no violations, completed). */
  result(opts: { seed?: number; trace?: boolean } = {}): CellResult {
    this.monitor.dispose();
    const outcome = this.outcome ?? 'completed';
    const violations = this.monitor.violations.map((v) => ({ invariant: v.invariant, message: v.message, trace: v.trace }));
    const failures = [...this.failures];
    let status: CellResult['status'];
    if (outcome === 'error') status = 'error';
    else if (outcome === 'unsupported') status = this.expectsUnsupported ? 'pass' : 'unsupported';
    else {
      if (this.expectsUnsupported) failures.push('expected this kernel to be unsupported, but it was built and ran');
      judge(this.rules, outcome, violations.map((v) => v.invariant), failures);
      status = failures.length ? 'fail' : 'pass';
    }
    return {
      scenario: this.scenario.name,
      ...(this.scenario.file ? { file: this.scenario.file } : {}),
      kernel: this.cellKernel,
      status,
      outcome,
      violations,
      failures,
      reason: this.reason,
      ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
      schedule: this.schedule.map((x) => ({ ...x })),
      ...(opts.trace ? { trace: [...this.monitor.trace] } : {}),
      ms: Math.round((performance.now() - this.t0) * 1000) / 1000,
    };
  }
}

/** Apply the expect rules (defaults: no violations, outcome completed). */
export function judge(rules: readonly ExpectRule[], outcome: Outcome, broken: readonly string[], failures: string[]): void {
  const outcomeRules = rules.filter((r) => r.outcome);
  if (outcomeRules.length === 0 && outcome !== 'completed') failures.push(`outcome ${outcome}, expected completed`);
  for (const r of outcomeRules) if (r.outcome !== outcome) failures.push(`${r.path}: outcome ${outcome}, expected ${r.outcome}`);
  const violationRules = rules.filter((r) => r.violations);
  const got = [...new Set(broken)].sort();
  if (violationRules.length === 0 && got.length) failures.push(`violations [${got.join(', ')}], expected none`);
  for (const r of violationRules) {
    const want = r.violations === 'none' ? [] : [...r.violations!].sort();
    if (want.join() !== got.join()) failures.push(`${r.path}: violations [${got.join(', ')}], expected ${want.length ? `[${want.join(', ')}]` : 'none'}`);
  }
}

/** Run one thread until its next preemption point (or the end of its current step). */
function advance(k: Kernel, t: ThreadState, failures: string[]): void {
  const step = t.steps[t.index]!;
  if (!t.op) {
    k.emit('step', { thread: t.name, index: t.index, op: step.op });
    t.op = stepOp(k, step, failures);
  }
  t.pending = null;
  for (;;) {
    let r: IteratorResult<Yield, unknown>;
    try {
      r = t.op.next();
    } catch (e) {
      t.op = null;
      // bad input met while the step runs (a range outside its mapping, ...): say which step and field
      if (e instanceof InputError && !e.message.startsWith(step.path)) throw new InputError(`${step.path}.${step.op}${e.field ? `.${e.field}` : ''}: ${e.message}`, e.file, e.field);
      if (e instanceof KernelError) {
        if (step.expect?.error === e.code) {
          if (step.expect.maySucceed) t.allowedFailures.push(`${step.path}: ${step.op} failed with ${e.message}`);
          return finishStep(t);
        }
        // an operation this kernel does not implement: the cell is unsupported, with the reason
        if (e.unsupported !== null) throw new UnsupportedError(`${step.path}: ${step.op}: ${e.unsupported} (${e.code})`);
        failures.push(`${step.path}: ${step.op} failed with ${e.message}`);
        throw new StepFailure(e.message);
      }
      throw e;
    }
    if (r.done) {
      t.op = null;
      if (step.expect?.error && !step.expect.maySucceed) failures.push(`${step.path}: ${step.op} succeeded, expected error ${step.expect.error}`);
      if (step.expect?.blocks) failures.push(`${step.path}: ${step.op} completed, expected it to block`);
      return finishStep(t);
    }
    const y = r.value;
    if (y.kind === 'block' && y.ready()) continue;
    t.pending = y;
    return;
  }
}

function finishStep(t: ThreadState): void {
  t.index++;
  t.pending = null;
  if (t.index >= t.steps.length) t.done = true;
}
