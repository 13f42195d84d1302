import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { PkeyFacts } from '../arch.js';
import type { Mm, Vma } from '../types.js';

/**
 * Memory protection keys (pkeys(7)): pkey_alloc(2), pkey_free(2), pkey_mprotect(2) (mm/mprotect.c,
 * CONFIG_ARCH_HAS_PKEYS), the per-mm allocation map (mm->context.pkey_allocation_map) and the
 * per-thread rights register (x86 PKRU, powerpc AMR, arm64 POR_EL0) that pkey_set() writes from
 * user space. The model keeps one register per process (its one thread). A key's rights are
 * checked by arch_vma_access_permitted() (CPU faults, GUP's check_vma_flags()) and by the hardware
 * on present entries (the PTE carries the VMA's key; pte_access_permitted() sends GUP-fast to the
 * slow path), except for a foreign mm (FOLL_REMOTE, vma_is_foreign()): another task's register says
 * nothing about it. Instruction fetches (PROT_EXEC, execute-only keys) are not modelled.
 */

/** What pkey_alloc()'s init_val and pkey_set() give a key: PKEY_DISABLE_WRITE, PKEY_DISABLE_ACCESS or neither. */
export type PkeyRights = 'none' | 'disable-write' | 'disable-access';

/** The pkey state of one process: mm->context.pkey_allocation_map and its thread's rights register. */
export interface PkeyState {
  /** bit n set: key n allocated (key 0 and the arch's reserved keys from mm creation) */
  map: number;
  /** rights of each key the register has; keys not listed deny access (the arch's init value) */
  readonly rights: Map<number, PkeyRights>;
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
   * The process's state, made as mm creation makes it (x86 mm_pkey_alloc map = 1: key 0; powerpc
   * pkey_mm_init(): key 0 and the reserved keys; arm64 init_new_context(): BIT(0)) and the
   * register as exec gives it (x86 init_pkru_value, arm64 POR_EL0_INIT, powerpc default_amr:
   * key 0 open, every other key access-disabled).
   */
  state(mm: Mm): PkeyState {
    if (!mm.pkeys) {
      const f = this.facts();
      const map = f ? this.reserved(f).reduce((m, key) => m | (1 << key), 1) : 1;
      mm.pkeys = { map, rights: new Map([[0, 'none']]) };
    }
    return mm.pkeys;
  }

  private requireFacts(call: string): PkeyFacts {
    const f = this.facts();
    if (!f) throw new KernelError('ENOSYS', `${call}: ${this.k.mmu.pkeys ? `the ${this.k.mmu.arch} pkey syscalls arrived in v${this.k.mmu.pkeys.since.join('.')}` : `${this.k.mmu.arch} does not select ARCH_HAS_PKEYS`} (sys_ni_syscall)`);
    return f;
  }

  /**
   * mm_pkey_is_allocated(): within arch_max_pkey(), set in the allocation map and not reserved
   * (powerpc's reserved keys; key 0 counts as allocated from the start).
   */
  isAllocated(mm: Mm, key: number): boolean {
    const f = this.facts();
    if (!f) return key === 0; // include/linux/pkeys.h without ARCH_HAS_PKEYS
    if (key < 0 || key >= f.total || this.reserved(f).includes(key)) return false;
    return (this.state(mm).map & (1 << key)) !== 0;
  }

  /**
   * pkey_alloc(0, init_val): mm_pkey_alloc() takes the lowest clear bit of the allocation map
   * (ffz), -1 when every one of arch_max_pkey() keys is set (ENOSPC); then
   * arch_set_user_pkey_access() gives the key `rights` in the caller's register.
   */
  alloc(mm: Mm, rights: PkeyRights): number {
    const f = this.requireFacts('pkey_alloc');
    const s = this.state(mm);
    let key = 0;
    while (key < f.total && (s.map & (1 << key)) !== 0) key++;
    if (key === f.total) throw new KernelError('ENOSPC', `pkey_alloc: all ${f.total} ${this.k.mmu.arch} keys are allocated or reserved (mm_pkey_alloc)`);
    s.map |= 1 << key;
    s.rights.set(key, rights);
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
   * pkey_set() (glibc: a write of the rights register, no syscall): ENOSYS where the arch has no
   * register the kernel enables, EINVAL for a key the register has no field for.
   */
  set(mm: Mm, key: number, rights: PkeyRights): void {
    const f = this.facts();
    if (!f) throw new KernelError('ENOSYS', `pkey_set: no protection keys on ${this.k.mmu.arch} in ${this.k.version}`);
    if (key < 0 || key >= f.total) throw new KernelError('EINVAL', `pkey_set(${key}): the ${this.k.mmu.arch} register has keys 0-${f.total - 1}`);
    this.state(mm).rights.set(key, rights);
  }

  /**
   * arch_vma_access_permitted(vma, write, execute=false, foreign): true without pkeys and for a
   * foreign mm (FOLL_REMOTE / vma_is_foreign()); else what the owner's register says of the VMA's key.
   */
  permits(vma: Vma, write: boolean, foreign: boolean): boolean {
    if (foreign || !this.facts()) return true;
    const rights = this.state(vma.mm).rights.get(vma.flags.pkey ?? 0) ?? 'disable-access';
    return rights === 'none' || (rights === 'disable-write' && !write);
  }

  /** Why `permits()` said no, for the error: the key and the signal's si_code (SEGV_PKUERR, si_pkey). */
  denial(vma: Vma, write: boolean): string {
    const key = vma.flags.pkey ?? 0;
    return `${write ? 'write' : 'read'} denied by protection key ${key} (rights ${this.state(vma.mm).rights.get(key) ?? 'disable-access'}; SEGV_PKUERR, si_pkey ${key})`;
  }

  /** fork(): arch_dup_pkeys() copies the allocation map; the child's thread starts with the parent's register (its saved FPU/SPR state). */
  fork(parent: Mm, child: Mm): void {
    if (parent.pkeys) child.pkeys = { map: parent.pkeys.map, rights: new Map(parent.pkeys.rights) };
  }
}

/** Set a VMA's key (VM_PKEY_BIT*): key 0 is no bits, so VMAs with and without an explicit 0 still merge. */
export function setVmaPkey(vma: Vma, key: number): void {
  if (key === 0) delete vma.flags.pkey;
  else vma.flags.pkey = key;
}
