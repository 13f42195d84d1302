import type { Errno } from '../errors.js';

/**
 * A scenario after loading and validation (SCENARIOS.md). Sizes are bytes; every step keeps
 * the path of its source field so errors and reports can point at it.
 */
export interface Scenario {
  readonly name: string;
  readonly description?: string;
  /** the file it was loaded from, for messages */
  readonly file?: string;
  readonly kernel: ScenarioKernel;
  readonly setup: readonly Step[];
  readonly threads: readonly Thread[];
  readonly expect: readonly ExpectRule[];
  /** 'explore' scenarios are judged over all interleavings (matrix runs them with the explorer) */
  readonly mode: 'run' | 'explore';
}

export interface ScenarioKernel {
  readonly arch?: string;
  readonly pageSize?: number;
  readonly fs?: string;
  readonly driver?: string;
  readonly version?: string;
  readonly features?: Readonly<Record<string, string | boolean>>;
}

export interface Thread {
  readonly name: string;
  readonly steps: readonly Step[];
}

/** Operation names exactly as written in scenario files. */
export type OpName =
  | 'probe' | 'unbind' | 'mount' | 'create' | 'truncate' | 'punch-hole' | 'fallocate' | 'reflink'
  | 'spawn' | 'mmap' | 'munmap' | 'read' | 'write' | 'pread' | 'pwrite' | 'fork' | 'exit' | 'kill' | 'process-mrelease' | 'exec'
  | 'pin' | 'get' | 'unpin' | 'put' | 'dma-write' | 'dma-read' | 'iouring-register' | 'iouring-unregister'
  | 'ksm-merge' | 'ksm-unmerge' | 'prctl' | 'proc-mem-write' | 'mlock' | 'munlock' | 'mlockall' | 'munlockall'
  | 'memory-failure' | 'inject-error' | 'scrub' | 'set-badblocks' | 'clear-error' | 'soft-offline' | 'migrate' | 'device-read' | 'device-write' | 'device-snapshot' | 'device-exclusive' | 'device-check-exclusive' | 'inject-fault' | 'check'
  | 'mprotect' | 'clear-refs' | 'mremap' | 'madvise' | 'mseal' | 'pidfd-open' | 'process-madvise' | 'memfd-create' | 'memfd-secret' | 'tmpfile' | 'hugetlb-pool' | 'thp-size' | 'thp-enabled' | 'shmem-enabled' | 'sysctl' | 'khugepaged-limits' | 'khugepaged-scan' | 'split-huge-pages' | 'swapoff'
  | 'remote-read' | 'setrlimit' | 'pkey-alloc' | 'pkey-free' | 'pkey-set' | 'clone-thread' | 'execute' | 'signal' | 'sigreturn' | 'numa-nodes' | 'mbind' | 'move-pages' | 'migrate-pages' | 'set-mempolicy'
  | 'uffd-api' | 'uffd-register' | 'uffd-unregister' | 'uffd-copy' | 'uffd-zeropage' | 'uffd-continue' | 'uffd-poison' | 'uffd-move' | 'uffd-wake' | 'uffd-writeprotect' | 'uffd-read' | 'uffd-close' | 'pagemap-scan'
  | 'bind' | 'reconfigure' | 'reconfigure-namespace' | 'online-memory' | 'offline-memory' | 'auto-online-blocks'
  | 'nd-region' | 'create-namespace' | 'destroy-namespace' | 'nd-list'
  | 'dax-region' | 'create-device' | 'destroy-device' | 'resize-device' | 'enable-device' | 'disable-device' | 'dax-list' | 'memory-tiers'
  | 'umount' | 'remount' | 'mkdir' | 'chattr' | 'rename' | 'fsverity-enable' | 'drop-caches' | 'open' | 'close' | 'add-seals'
  | 'fsync' | 'msync' | 'log-mark' | 'log-replay' | 'shmget' | 'shmat' | 'shmdt' | 'shmctl' | 'dm-create' | 'dm-remove'
  | 'cgroup-mount' | 'cgroup-mkdir' | 'cgroup-rmdir' | 'cgroup-attach' | 'cgroup-write';

export interface Step {
  readonly op: OpName;
  /**
   * The step's arguments, validated and normalised: sizes in bytes; `unpin: dma` / `put: dma`
   * become `{ name: 'dma' }`. See StepArgs for each op's shape.
   */
  readonly args: Readonly<Record<string, unknown>>;
  readonly expect?: StepExpect;
  /** run the step only on kernels that match (same form as an expect rule's `when`) */
  readonly when?: ExpectWhen;
  /** e.g. `threads[1].steps[0]` or `setup[2]` */
  readonly path: string;
}

export interface StepExpect {
  readonly error?: Errno;
  /** with `error`: succeeding is fine too (a race the kernel's test accepts either way) */
  readonly maySucceed?: true;
  readonly blocks?: true;
}

/** check: { <what>: target, equals | min | max } */
export type CheckWhat = 'refcount' | 'mapcount' | 'pinned' | 'mapped' | 'anon' | 'blockFree' | 'vmemmap' | 'writable' | 'softDirty' | 'swapped' | 'memoryMerge' | 'thpDisable' | 'mdwe' | 'ksmMergingPages' | 'ksmZeroPages' | 'ksmPagesShared' | 'ksmPagesSharing' | 'hugetlbFree' | 'hugetlbResv' | 'hugetlbTotal' | 'locked' | 'guard' | 'uffdWp' | 'dax' | 'daxFlag' | 'node' | 'seals' | 'sealed' | 'filePmdMapped' | 'shmemPmdMapped' | 'vmaPages' | 'vmaStart' | 'address' | 'anonHugePages' | 'folioOrder' | 'rssAnon' | 'metadataBadblocks' | 'badblocks' | 'bdevBadblocks' | 'bdevFirstBadblock' | 'injectedErrors' | 'fileBlocks' | 'fileSize' | 'hardwareCorrupted' | 'cgroupFile';

export interface CheckArgs {
  readonly what: CheckWhat;
  /** { map, page, process? } | { file, page } | { device, page? } */
  readonly target: Readonly<Record<string, string | number>>;
  readonly equals?: number | boolean | string | Readonly<Record<string, number>>;
  readonly min?: number;
  readonly max?: number;
}

export interface ExpectWhen {
  readonly arch?: readonly string[];
  /** PAGE_SIZE in bytes (arches with a choice: arm64, ppc-hash) */
  readonly pageSize?: readonly number[];
  readonly fs?: readonly string[];
  readonly driver?: readonly string[];
  readonly version?: readonly string[];
  readonly features?: Readonly<Record<string, readonly (string | boolean)[]>>;
}

export interface ExpectRule {
  readonly when?: ExpectWhen;
  readonly violations?: 'none' | readonly string[];
  readonly outcome?: 'completed' | 'oops' | 'blocked';
  readonly unsupported?: boolean;
  readonly path: string;
}

/** One scenario on one kernel. */
export interface CellKernel {
  readonly arch: string;
  readonly pageSize: number;
  readonly fs: string | null;
  readonly driver: string | null;
  readonly version: string;
  /** features that differ from the preset */
  readonly features: Readonly<Record<string, string | boolean>>;
}

export type CellStatus = 'pass' | 'fail' | 'unsupported' | 'error';
export type Outcome = 'completed' | 'oops' | 'blocked' | 'error' | 'unsupported';

export interface ViolationReport {
  readonly invariant: string;
  readonly message: string;
  readonly trace: readonly string[];
  /** explore: the schedule that reproduces it */
  readonly schedule?: readonly ScheduleStep[];
}

/**
 * One slice of a schedule: the thread that ran, the index of the step it was in when the slice
 * began, and for how many preemption points it ran (so a replay switches at the same place).
 */
export interface ScheduleStep {
  readonly thread: string;
  readonly step: number;
  readonly slices?: number;
}

export interface CellResult {
  readonly scenario: string;
  readonly file?: string;
  readonly kernel: CellKernel;
  readonly status: CellStatus;
  readonly outcome: Outcome;
  readonly violations: readonly ViolationReport[];
  /** why the cell failed: each unmet expectation or failed step, in words */
  readonly failures: readonly string[];
  /** unsupported / error reason */
  readonly reason: string | null;
  readonly seed?: number;
  /** the schedule the run used (thread names in switch order) */
  readonly schedule?: readonly ScheduleStep[];
  /** the event trace of the run, when asked for (--trace / html) */
  readonly trace?: readonly string[];
  readonly ms: number;
}
