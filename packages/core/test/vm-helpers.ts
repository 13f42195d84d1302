import { KernelError, type Kernel } from '../src/index.js';

// Helpers the mm unit tests share (vma-split, madvise).

const KiB = 1024;

/** mmap `pages` private anonymous 4 KiB pages as `name` and write each: an exclusive anon page apiece. */
export function written(k: Kernel, name: string, pages: number, process?: string): number[] {
  k.run(k.mmap({ anon: true, length: pages * 4 * KiB, write: true, as: name, ...(process ? { process } : {}) }));
  const pfns: number[] = [];
  for (let page = 0; page < pages; page++) {
    k.run(k.write({ map: name, page, data: `${name}${page}`, ...(process ? { process } : {}) }));
    pfns.push(k.pfnOf({ map: name, page, ...(process ? { process } : {}) })!);
  }
  return pfns;
}

/** What `f` threw, or null. */
export function errorOf(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return null;
}

/** The errno `f` failed with, or null (no error, or not a KernelError). */
export function code(f: () => unknown): string | null {
  const e = errorOf(f);
  return e instanceof KernelError ? e.code : null;
}
