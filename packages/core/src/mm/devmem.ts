import type { Kernel } from '../kernel.js';
import { InputError, KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
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
  // device-dax memory kmem hot-added (mm/hotplug.ts) is System RAM, online or not
  if (k.hotplug.rangeAt(pfn * ps, (pfn + 1) * ps)) return 'ram';
  if (k.memremap.pgmaps.some((p) => pfn >= p.startPfn && pfn < p.startPfn + p.nrPages)) return 'device';
  // core's allocator hands out RAM from Ram.BASE up (the device ranges above it are checked first)
  if (pfn * ps >= Ram.BASE) return 'ram';
  const region = k.mmu.devmem?.lowMemory.find((r) => pfn * ps >= r.start && pfn * ps < r.end);
  return region?.kind ?? 'none';
}

/**
 * Who holds the physical page as a busy iomem resource: the device whose driver requested it (a
 * bound pmem namespace or device-dax instance: devm_request_mem_region()), or the device-dax
 * instance whose range kmem requested (request_mem_region(), kept when remove_memory() failed);
 * null when no driver holds it (a disabled namespace's range is an idle region).
 */
export function claimedBy(k: Kernel, pfn: number): string | null {
  const ps = k.mmu.basePageSize;
  const kmem = k.hotplug.rangeAt(pfn * ps, (pfn + 1) * ps)?.mem;
  if (kmem) return `kmem (${kmem.device}'s ${kmem.resourceName})`;
  return k.memremap.pgmapOf(pfn)?.device ?? null;
}

/** A VMA of /dev/mem (mapDevmem()): VM_PFNMAP over raw physical pages, no device object behind it. */
export function isDevmemVma(vma: Vma): boolean {
  return vma.flags.pfnmap && vma.kind === 'device' && vma.device === null;
}

/**
 * A driver claimed [startPfn, startPfn + nrPages): with CONFIG_IO_STRICT_DEVMEM, from v5.8
 * __request_region() -> revoke_devmem() (drivers/char/mem.c; revoke_iomem() in kernel/resource.c
 * from v5.12) does unmap_mapping_range() of the range on /dev/mem's shared address space (every
 * open of /dev/mem uses that inode's mapping), unless devmem_is_allowed() still allows both ends
 * (iomem=relaxed). The zapped PTEs are not refilled: a /dev/mem VMA has no ->fault, so the next
 * access is SIGBUS (ndctl revoke-devmem.c "devmem revoked!").
 */
export function* revokeDevmem(k: Kernel, startPfn: number, nrPages: number): Op {
  if (!k.features['io-strict-devmem'] || !kernelAtLeast(k.version, 5, 8)) return;
  if (devmemIsAllowed(k, startPfn) !== 0 && devmemIsAllowed(k, startPfn + nrPages - 1) !== 0) return;
  for (const mm of k.processes.values()) {
    for (const vma of [...mm.vmas]) {
      if (!isDevmemVma(vma)) continue;
      // the VMA's pgoff is the pfn its first page maps
      const from = Math.max(startPfn, vma.pgoff);
      const to = Math.min(startPfn + nrPages, vma.pgoff + vma.pages);
      if (from < to) yield* k.vm.zap(vma, vma.start + (from - vma.pgoff), vma.start + (to - vma.pgoff), 'revoke_devmem');
    }
  }
}

/**
 * The arch's devmem_is_allowed() for a pfn, or null when the release's default configuration has
 * no STRICT_DEVMEM (range_is_allowed() is then always 1). iomem_is_exclusive() refuses a range a
 * driver holds busy only under CONFIG_IO_STRICT_DEVMEM (feature `io-strict-devmem`); no region
 * is IORESOURCE_EXCLUSIVE otherwise in the model.
 */
export function devmemIsAllowed(k: Kernel, pfn: number): DevmemAnswer | null {
  const layout = k.mmu.devmem;
  if (!layout) return null;
  if (layout.strictSince && !kernelAtLeast(k.version, layout.strictSince[0], layout.strictSince[1])) return null;
  // arch/s390/include/asm/page.h: an inline devmem_is_allowed() that answers 0 for any pfn
  if (layout.filter === 'all-refused') return 0;
  // is the page System RAM (x86: region_intersects(IORESOURCE_SYSTEM_RAM); the others: page_is_ram())
  const ram = physicalKind(k, pfn) === 'ram';
  // iomem_is_exclusive(): every busy range under CONFIG_IO_STRICT_DEVMEM
  const exclusive = k.features['io-strict-devmem'] && claimedBy(k, pfn) !== null;
  if (layout.filter === 'x86') {
    // arch/x86/mm/init.c: RAM in the low 1 MiB (pagenr < 256) is 2 -- mappable, zeros for read() --
    // since a4866aa81251 (v4.16 [M]; 1 before); RAM above it is refused; then, "this must follow
    // RAM test", an exclusive range is refused above the low 1 MiB
    if (ram) return pfn * k.mmu.basePageSize < 1024 * 1024 ? 2 : 0;
    if (exclusive) return pfn * k.mmu.basePageSize < 1024 * 1024 ? 1 : 0;
    return 1;
  }
  // lib/devmem_is_allowed.c (arm64 from ~v5.9 [M]; its own identical copy before), arch/powerpc/mm/mem.c:
  // iomem_is_exclusive() first, then page_is_ram()
  return exclusive || ram ? 0 : 1;
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
    // pmem and device-dax ranges are physical memory /dev/mem can reach (bound or not: devmem_is_allowed()
    // decides); device-private / coherent memory of a mirror device is not CPU-addressable that way here
    const pgmap = physicalKind(k, pfn) === 'device' ? k.memremap.pgmaps.find((p) => pfn >= p.startPfn && pfn < p.startPfn + p.nrPages) : undefined;
    if (pgmap && pgmap.type !== 'fsdax' && pgmap.type !== 'generic') {
      throw new InputError(`mmap '${a.as}': /dev/mem over ${pgmap.device}'s ${pgmap.type} device memory (pfn ${pfn}) is not modelled: map the device itself (device: <name>)`, undefined, 'offset');
    }
    if (devmemIsAllowed(k, pfn) === 0) {
      const owner = physicalKind(k, pfn) === 'ram' ? null : claimedBy(k, pfn);
      const what = k.mmu.devmem.filter === 'all-refused' ? 'every physical page' : owner ? `a range ${owner} holds busy (CONFIG_IO_STRICT_DEVMEM: iomem_is_exclusive())` : 'System RAM';
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
