import type { Kernel } from '../kernel.js';
import { InputError, KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { PkeyFacts } from '../arch.js';
import type { Mm, Vma } from '../types.js';

/**
 * Memory protection keys (pkeys(7)): pkey_alloc(2), pkey_free(2), pkey_mprotect(2) (mm/mprotect.c,
 * CONFIG_ARCH_HAS_PKEYS), the per-mm allocation map (mm->context.pkey_allocation_map) and the
 * per-thread rights register (x86 PKRU, powerpc AMR/IAMR, arm64 POR_EL0) that pkey_set() writes
 * from user space. A process has its main thread and the threads clone-thread made; each has its
 * own register (the only per-thread state the model keeps). A key's rights are checked by
 * arch_vma_access_permitted() (CPU faults, GUP's check_vma_flags()) and by the hardware on present
 * entries (the PTE carries the VMA's key; pte_access_permitted() sends GUP-fast to the slow path),
 * except for a foreign mm (FOLL_REMOTE, vma_is_foreign()): another task's register says nothing
 * about it. Kernel accesses (GUP, copy_to_user) use the main thread's register. Instruction
 * fetches: x86 PKRU never restricts them; powerpc IAMR and arm64 POE's X bit do.
 */
/** What pkey_alloc()'s init_val and pkey_set() give a key: PKEY_DISABLE_WRITE, PKEY_DISABLE_ACCESS or neither. */
export type PkeyRights = 'none' | 'disable-write' | 'disable-access';

/**
 * One rights register. `data`: each key's data rights; a key not listed has the init value's (no
 * access). `exec`: the keys instruction fetches may use where the arch checks them (PkeyFacts
 * `fetch`): the init value opens key 0 (and powerpc's execute-only key); pkey_alloc() opens the key
 * it returns (init_val has no PKEY_DISABLE_EXECUTE in the model); on arm64 pkey_set() does too
 * (PKEY_DISABLE_ACCESS leaves POE_X), on powerpc it writes AMR only.
 */
export interface PkeyRegister {
  readonly data: Map<number, PkeyRights>;
  readonly exec: Set<number>;
}

/** A thread's pkey state: its register, and the registers saved in the signal frames it is handling (innermost last). */
export interface PkeyThread {
  rights: PkeyRegister;
  readonly frames: PkeyRegister[];
}

/** The pkey state of one process: mm->context.pkey_allocation_map and its threads' registers. */
export interface PkeyState {
  /** bit n set: key n allocated (key 0 and the arch's reserved keys from mm creation) */
  map: number;
  /** mm->context.execute_only_pkey: -1 until x86 takes one; powerpc's reserved key from mm creation */
  execOnly: number;
  /** the thread that made the process (steps without `thread`) */
  readonly main: PkeyThread;
  /** the threads made by clone-thread, by name */
  readonly threads: Map<string, PkeyThread>;
}

function copyRegister(r: PkeyRegister): PkeyRegister {
  return { data: new Map(r.data), exec: new Set(r.exec) };
}

export class Pkeys {
  constructor(private readonly k: Kernel) {}

  /** The arch's pkey facts when this release has ARCH_HAS_PKEYS for it; null: the pkey_* syscalls are sys_ni_syscall (ENOSYS). */
  facts(): PkeyFacts | null {
    const f = this.k.mmu.pkeys;
    return f && kernelAtLeast(this.k.version, f.since[0], f.since[1]) ? f : null;
  }

  /**
   * The keys set in a new mm's allocation map that no user interface accepts: pkey_mm_init()'s
   * reserved_allocation_mask on powerpc (key 0 is allocated too, but usable).
   */
  private reserved(f: PkeyFacts): number[] {
    return f.reserved.filter((r) => !r.since || kernelAtLeast(this.k.version, r.since[0], r.since[1])).map((r) => r.key);
  }

  /**
   * The register as exec (and a signal handler) gets it: x86 init_pkru_value, arm64 POR_EL0_INIT,
   * powerpc default_amr/default_iamr: key 0 open, every other key access-disabled and not
   * executable -- except powerpc's execute-only key, data-denied but executable.
   */
  private initRegister(): PkeyRegister {
    const f = this.facts();
    const r: PkeyRegister = { data: new Map([[0, 'none']]), exec: new Set([0]) };
    if (f && typeof f.executeOnly === 'object') {
      r.data.set(f.executeOnly.reserved, 'disable-access');
      r.exec.add(f.executeOnly.reserved);
    }
    return r;
  }

  /**
   * The process's state, made as mm creation makes it (x86 mm_pkey_alloc map = 1: key 0,
   * execute_only_pkey -1; powerpc pkey_mm_init(): key 0 and the reserved keys, execute_only_key;
   * arm64 init_new_context(): BIT(0)) and its main thread's register as exec gives it.
   */
  state(mm: Mm): PkeyState {
    if (!mm.pkeys) {
      const f = this.facts();
      const map = f ? this.reserved(f).reduce((m, key) => m | (1 << key), 1) : 1;
      const execOnly = f && typeof f.executeOnly === 'object' ? f.executeOnly.reserved : -1;
      mm.pkeys = { map, execOnly, main: { rights: this.initRegister(), frames: [] }, threads: new Map() };
    }
    return mm.pkeys;
  }

  /** A thread of the process by name (clone-thread `as`), or its main thread. */
  thread(mm: Mm, name: string | undefined): PkeyThread {
    const s = this.state(mm);
    if (name === undefined) return s.main;
    const t = s.threads.get(name);
    if (!t) throw new InputError(`${mm.name} has no thread '${name}': make it first with clone-thread: { as: ${name} }`, undefined, 'thread');
    return t;
  }

  /**
   * clone(CLONE_VM | CLONE_THREAD ...): the new thread starts with a copy of the caller's register
   * (x86 fpu_clone() saves the parent's registers into the child's fpstate, PKRU with them; arm64
   * copy_thread() takes POR_EL0; powerpc copies the parent's thread state) and no signal frames.
   */
  cloneThread(mm: Mm, from: string | undefined, as: string): void {
    const s = this.state(mm);
    if (as === 'main' || s.threads.has(as)) throw new InputError(`${mm.name} already has a thread '${as}': give the new thread another name`, undefined, 'as');
    s.threads.set(as, { rights: copyRegister(this.thread(mm, from).rights), frames: [] });
  }

  private requireFacts(call: string): PkeyFacts {
    const f = this.facts();
    if (!f) throw new KernelError('ENOSYS', `${call}: ${this.k.mmu.pkeys ? `the ${this.k.mmu.arch} pkey syscalls arrived in v${this.k.mmu.pkeys.since.join('.')}` : `${this.k.mmu.arch} does not select ARCH_HAS_PKEYS`} (sys_ni_syscall)`);
    return f;
  }

  /**
   * mm_pkey_is_allocated(): within arch_max_pkey(), set in the allocation map, not reserved
   * (powerpc's reserved keys; key 0 counts as allocated from the start) and not the execute-only key
   * ("set in the allocation map, but not available to any of the user interfaces").
   */
  isAllocated(mm: Mm, key: number): boolean {
    const f = this.facts();
    if (!f) return key === 0; // include/linux/pkeys.h without ARCH_HAS_PKEYS
    const s = this.state(mm);
    if (key < 0 || key >= f.total || this.reserved(f).includes(key) || key === s.execOnly) return false;
    return (s.map & (1 << key)) !== 0;
  }

  /** mm_pkey_alloc(): the lowest clear bit of the allocation map (ffz), -1 when every one of arch_max_pkey() keys is set. */
  private mapAlloc(f: PkeyFacts, s: PkeyState): number {
    let key = 0;
    while (key < f.total && (s.map & (1 << key)) !== 0) key++;
    if (key === f.total) return -1;
    s.map |= 1 << key;
    return key;
  }

  /**
   * pkey_alloc(0, init_val): mm_pkey_alloc(), ENOSPC when it finds no key; then
   * arch_set_user_pkey_access() gives the key `rights` in the calling thread's register.
   */
  alloc(mm: Mm, rights: PkeyRights, thread?: string): number {
    const f = this.requireFacts('pkey_alloc');
    const key = this.mapAlloc(f, this.state(mm));
    if (key < 0) throw new KernelError('ENOSPC', `pkey_alloc: all ${f.total} ${this.k.mmu.arch} keys are allocated or reserved (mm_pkey_alloc)`);
    const r = this.thread(mm, thread).rights;
    r.data.set(key, rights);
    r.exec.add(key);
    return key;
  }

  /** pkey_free(): EINVAL unless mm_pkey_is_allocated(); the register keeps the key's rights. */
  free(mm: Mm, key: number): void {
    this.requireFacts('pkey_free');
    if (!this.isAllocated(mm, key)) throw new KernelError('EINVAL', `pkey_free(${key}): the key is not allocated (mm_pkey_free)`);
    this.state(mm).map &= ~(1 << key);
  }

  /** pkey_mprotect()'s check before any VMA is touched (do_mprotect_pkey()): the key must be allocated. */
  checkMprotectKey(mm: Mm, key: number): void {
    this.requireFacts('pkey_mprotect');
    if (!this.isAllocated(mm, key)) throw new KernelError('EINVAL', `pkey_mprotect with key ${key}: not allocated (mm_pkey_is_allocated)`);
  }

  /**
   * execute_only_pkey(mm): x86 __execute_only_pkey() takes a key from the allocation map the first
   * time (-1 when none is left) and, unless the caller's register already denies it reads, makes
   * it access-disabled there; powerpc returns its reserved key; arm64 -1.
   */
  private executeOnlyKey(mm: Mm): number {
    const f = this.facts();
    if (!f || f.executeOnly === 'none') return -1;
    const s = this.state(mm);
    if (f.executeOnly !== 'on-demand') return s.execOnly;
    const fresh = s.execOnly === -1;
    if (fresh) {
      const key = this.mapAlloc(f, s);
      if (key < 0) return -1;
      s.execOnly = key;
    }
    // the caller's register is left alone when it already denies the key reads
    const r = s.main.rights;
    if (fresh || (r.data.get(s.execOnly) ?? 'disable-access') !== 'disable-access') {
      r.data.set(s.execOnly, 'disable-access');
      r.exec.add(s.execOnly);
    }
    return s.execOnly;
  }

  /**
   * The key a plain mprotect() (pkey -1) gives the VMA: arch_override_mprotect_pkey(). x86 and
   * powerpc: PROT_EXEC alone takes the execute-only key when there is one (> 0); a VMA that had it
   * (VM_EXEC alone, that key) going to anything else returns to key 0; else the VMA keeps its key.
   * arm64 keeps the VMA's key; without pkeys every VMA has key 0.
   */
  mprotectKey(vma: Vma, prot: { read: boolean; write: boolean; exec: boolean }): number {
    const current = vma.flags.pkey ?? 0;
    if (!this.facts()) return current;
    const execOnly = prot.exec && !prot.read && !prot.write;
    if (execOnly) {
      const key = this.executeOnlyKey(vma.mm);
      if (key > 0) return key;
    }
    const wasExecOnly = vma.flags.exec === true && !vma.flags.read && !vma.flags.write && current === this.state(vma.mm).execOnly;
    return wasExecOnly && !execOnly ? 0 : current;
  }

  /**
   * pkey_set() (glibc: a write of the rights register, no syscall): ENOSYS where the arch has no
   * register the kernel enables, EINVAL for a key the register has no field for. powerpc: UAMOR
   * keeps problem state from changing key 0 and the execute-only key (default_uamor), so the write
   * leaves them as they were; its pkey_set() writes AMR, not IAMR. arm64 keeps POE_X.
   */
  set(mm: Mm, key: number, rights: PkeyRights, thread?: string): void {
    const f = this.facts();
    if (!f) throw new KernelError('ENOSYS', `pkey_set: no protection keys on ${this.k.mmu.arch} in ${this.k.version}`);
    if (key < 0 || key >= f.total) throw new KernelError('EINVAL', `pkey_set(${key}): the ${this.k.mmu.arch} register has keys 0-${f.total - 1}`);
    if (typeof f.executeOnly === 'object' && (key === 0 || key === f.executeOnly.reserved)) return;
    const r = this.thread(mm, thread).rights;
    r.data.set(key, rights);
    if (f.fetch === 'combined') r.exec.add(key);
  }

  /** The register a CPU access of `thread` is checked against. */
  private rightsOf(vma: Vma, thread?: string): PkeyRegister {
    return this.thread(vma.mm, thread).rights;
  }

  /**
   * arch_vma_access_permitted(vma, write, execute=false, foreign): true without pkeys and for a
   * foreign mm (FOLL_REMOTE / vma_is_foreign()); else what `register` (default: the owner's
   * main thread's, or `thread`'s) says of the VMA's key.
   */
  permits(vma: Vma, write: boolean, foreign: boolean, thread?: string, register?: PkeyRegister): boolean {
    if (foreign || !this.facts()) return true;
    const rights = (register ?? this.rightsOf(vma, thread)).data.get(vma.flags.pkey ?? 0) ?? 'disable-access';
    return rights === 'none' || (rights === 'disable-write' && !write);
  }

  /** arch_vma_access_permitted(vma, false, execute=true, false): x86 never refuses a fetch; powerpc IAMR, arm64 POE X. */
  permitsFetch(vma: Vma, thread?: string): boolean {
    const f = this.facts();
    return !f || f.fetch === 'unchecked' || this.rightsOf(vma, thread).exec.has(vma.flags.pkey ?? 0);
  }

  /** Why `permits()` said no, for the error: the key and the signal's si_code (SEGV_PKUERR, si_pkey). */
  denial(vma: Vma, access: 'read' | 'write' | 'fetch', thread?: string, register?: PkeyRegister): string {
    const key = vma.flags.pkey ?? 0;
    const r = register ?? this.rightsOf(vma, thread);
    const rights = access === 'fetch' ? 'not executable' : `rights ${r.data.get(key) ?? 'disable-access'}`;
    return `${access} denied by protection key ${key} (${rights}; SEGV_PKUERR, si_pkey ${key})`;
  }

  /**
   * Signal delivery to `thread` (setup_rt_frame()): the register the frame is written under --
   * `pkey-sigframe` all-keys: every key open (x86 sig_prepare_pkru(), arm64
   * save_reset_user_access_state()); else the thread's own. null: the arch's signal handling of
   * the register is not modelled (powerpc).
   */
  frameRegister(mm: Mm, thread: string | undefined): PkeyRegister | null {
    const f = this.facts();
    if (!f) return { data: new Map(), exec: new Set() }; // unused: permits() allows everything
    if (!f.signals) return null;
    if (this.k.features['pkey-sigframe'] !== 'all-keys') return this.thread(mm, thread).rights;
    const keys = Array.from({ length: f.total }, (_, i) => i);
    return { data: new Map(keys.map((key) => [key, 'none'])), exec: new Set(keys) };
  }

  /**
   * The frame is written: its saved register is the interrupted one, and the handler starts with
   * the init register (x86 fpu__clear_user_states() -> init_pkru_value, arm64
   * set_handler_user_access_state() -> POR_EL0_INIT).
   */
  enterHandler(mm: Mm, thread: string | undefined): void {
    const t = this.thread(mm, thread);
    t.frames.push(t.rights);
    t.rights = this.initRegister();
  }

  /**
   * rt_sigreturn(): the register the frame is read under -- arm64 from the `all-keys` fix opens
   * every key again (save_reset_user_access_state()); x86 reads it under the handler's current
   * register; null: the thread handles no signal.
   */
  sigreturnRegister(mm: Mm, thread: string | undefined): PkeyRegister | null {
    const t = this.thread(mm, thread);
    if (t.frames.length === 0) return null;
    if (this.k.mmu.arch === 'arm64' && this.k.features['pkey-sigframe'] === 'all-keys') return this.frameRegister(mm, thread);
    return t.rights;
  }

  /** rt_sigreturn() done: the register comes back from the frame (x86 restore_sigcontext()'s XRSTOR / the saved PKRU, arm64 restore_poe_context()). */
  leaveHandler(mm: Mm, thread: string | undefined): void {
    const t = this.thread(mm, thread);
    t.rights = t.frames.pop()!;
  }

  /** fork(): arch_dup_pkeys() copies the allocation map and the execute-only key; the child's one thread starts with the parent's main thread's register. */
  fork(parent: Mm, child: Mm): void {
    if (!parent.pkeys) return;
    child.pkeys = { map: parent.pkeys.map, execOnly: parent.pkeys.execOnly, main: { rights: copyRegister(parent.pkeys.main.rights), frames: [] }, threads: new Map() };
  }
}

/** Set a VMA's key (VM_PKEY_BIT*): key 0 is no bits, so VMAs with and without an explicit 0 still merge. */
export function setVmaPkey(vma: Vma, key: number): void {
  if (key === 0) delete vma.flags.pkey;
  else vma.flags.pkey = key;
}
