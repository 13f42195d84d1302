import { KernelError, type ArchPlugin } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { ppcHash } from '@daxlab/arch-ppc-hash';
import { s390 } from '@daxlab/arch-s390';
import { x86 } from '@daxlab/arch-x86';

// What the tests that drive a selftest through the kernel API share (pfnmap.c, madv_populate.c).

/** The built-in arches at their default page size, by scenario name. */
export const ARCHES: Record<string, () => ArchPlugin> = { x86: () => x86(), arm64: () => arm64(), 'ppc-hash': () => ppcHash(), s390: () => s390() };

/** Did the call fail (the syscall returned -1 / MAP_FAILED, or the access faulted)? */
export function fails(f: () => unknown): boolean {
  try {
    f();
    return false;
  } catch (e) {
    if (e instanceof KernelError) return true;
    throw e;
  }
}

/** The errno `f` failed with, or 'ok'. */
export function errnoOf(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof KernelError) return e.code;
    throw e;
  }
}
