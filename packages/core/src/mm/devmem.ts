import type { Kernel } from '../kernel.js';
import { InputError, KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Mm, Vma } from '../types.js';
import { Ram } from './ram.js';

/**
 * devmem_is_allowed(): 0 refuses the page, 1 allows it, 2 allows mapping it but read()/write()
 * see zeros (x86's first MiB). mmap_mem() only asks whether it is non-zero.
 */
export type DevmemAnswer = 0 | 1 | 2;

/** What a physical page is, as /proc/iomem would say: System RAM, firmware-reserved, a device's, or nothing. */
export function physicalKind(k: Kernel, pfn: number): 'ram' | 'reserved' | 'device' | 'none' {
  const ps = k.mmu.basePageSize;
  if (k.memremap.pgmaps.some((p) => pfn >= p.startPfn && pfn < p.startPfn + p.nrPages)) return 'device';
  // core's allocator hands out RAM from Ram.BASE up (the device ranges above it are checked first)
  if (pfn * ps >= Ram.BASE) return 'ram';
  const region = k.mmu.devmem?.lowMemory.find((r) => pfn * ps >= r.start && pfn * ps < r.end);
  return region?.kind ?? 'none';
}

/**
 * The arch's devmem_is_allowed() for a pfn, or null when the release's default configuration has
 * no STRICT_DEVMEM (range_is_allowed() is then always 1). No iomem region is
 * IORESOURCE_EXCLUSIVE in the model, so iomem_is_exclusive() never refuses.
 */
export function devmemIsAllowed(k: Kernel, pfn: number): DevmemAnswer | null {
  const layout = k.mmu.devmem;
  if (!layout) return null;
  if (layout.strictSince && !kernelAtLeast(k.version, layout.strictSince[0], layout.strictSince[1])) return null;
  // arch/s390/include/asm/page.h: an inline devmem_is_allowed() that answers 0 for any pfn
  if (layout.filter === 'all-refused') return 0;
  // is the page System RAM (x86: region_intersects(IORESOURCE_SYSTEM_RAM); the others: page_is_ram())
  const ram = physicalKind(k, pfn) === 'ram';
  if (layout.filter === 'x86') {
    // arch/x86/mm/init.c: RAM in the low 1 MiB (pagenr < 256) is 2 -- mappable, zeros for read() --
    // since a4866aa81251 (v4.16 [M]; 1 before); RAM above it is refused
    if (ram) return pfn * k.mmu.basePageSize < 1024 * 1024 ? 2 : 0;
    return 1;
  }
  // lib/devmem_is_allowed.c (arm64 from ~v5.9 [M]; its own identical copy before), arch/powerpc/mm/mem.c
  return ram ? 0 : 1;
}

/**
 * mmap(fd of /dev/mem, MAP_SHARED) (drivers/char/mem.c mmap_mem()): range_is_allowed() over every
 * page (EPERM), then remap_pfn_range() marks the VMA VM_IO | VM_PFNMAP | VM_DONTEXPAND |
 * VM_DONTDUMP and installs a special PTE for each physical pfn at once: no struct page is looked
 * at or referenced, and the VMA has no ->fault (a missing PTE is SIGBUS). The root of the
 * selftest is assumed (CAP_SYS_RAWIO, no lockdown).
 */
export function mapDevmem(k: Kernel, mm: Mm, a: { offset: number; length: number; shared: boolean; write: boolean; as: string }): Vma {
  if (!k.mmu.devmem) throw new InputError(`mmap '${a.as}': the ${k.mmu.arch} arch plugin does not describe physical memory for /dev/mem (Mmu.devmem), so daxlab cannot map it there: map a file, a device or anonymous memory`, undefined, 'devmem');
  if (!a.shared) throw new InputError(`mmap '${a.as}': a private mapping of /dev/mem (a COW mapping of raw pfns) is not modelled: add shared: true (MAP_SHARED, as selftests/mm/pfnmap.c maps it)`, undefined, 'shared');
  const ps = k.mmu.basePageSize;
  const first = a.offset / ps;
  const pages = Math.ceil(a.length / ps);
  for (let pfn = first; pfn < first + pages; pfn++) {
    if (physicalKind(k, pfn) === 'device') {
      throw new InputError(`mmap '${a.as}': /dev/mem over a device's memory (pfn ${pfn}) is not modelled: map the device itself (device: <name>) or a file on it`, undefined, 'offset');
    }
    if (devmemIsAllowed(k, pfn) === 0) {
      const what = k.mmu.devmem.filter === 'all-refused' ? 'every physical page' : 'System RAM';
      throw new KernelError('EPERM', `mmap of /dev/mem at physical ${(pfn * ps).toString(16)}: devmem_is_allowed() refuses ${what} on ${k.mmu.arch} (STRICT_DEVMEM)`);
    }
  }
  const start = k.vm.placeVma(mm, pages, 1);
  const flags = k.vm.flags({ write: a.write, shared: true, io: true, pfnmap: true, dontexpand: true });
  const vma = k.vm.addVma(mm, { name: a.as, start, pages, pgoff: first, flags, kind: 'device', inode: null, device: null, anonVma: 0 });
  // remap_pfn_range() -> remap_pte_range(): pte_mkspecial(pfn_pte(pfn, prot)), neither dirty nor young
  for (let i = 0; i < pages; i++) k.vm.install(mm, start + i, k.faults.pte(first + i, 'pte', { special: true, write: a.write }));
  return vma;
}
