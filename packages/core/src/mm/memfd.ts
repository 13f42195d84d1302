import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { PageCacheFile, Vma } from '../types.js';

/**
 * File seals of a memfd (fcntl F_ADD_SEALS / F_GET_SEALS: mm/memfd.c, moved out of mm/shmem.c in
 * v4.16; sealing itself is v3.17). The seals live in the shmem inode (shmem_inode_info->seals) and
 * only ever grow. What each one refuses, and where the kernel checks it:
 *
 * - F_SEAL_SEAL: any later F_ADD_SEALS is EPERM (memfd_add_seals). Every shmem inode starts with it
 *   (shmem_get_inode); memfd_create(MFD_ALLOW_SEALING) clears it, so a memfd made without the flag
 *   can never be sealed.
 * - F_SEAL_SHRINK / F_SEAL_GROW: ftruncate() to a smaller / larger size is EPERM (shmem_setattr);
 *   fallocate() past i_size is EPERM under F_SEAL_GROW, FALLOC_FL_KEEP_SIZE or not (shmem_fallocate).
 * - F_SEAL_WRITE (v3.17): adding it needs no writable shared mapping (mapping_deny_writable():
 *   i_mmap_writable must be 0, else EBUSY) and no page referenced beyond what the page cache and
 *   the page tables explain (memfd_wait_for_pins(), else EBUSY); then mmap(MAP_SHARED) that would
 *   count as writable is EPERM (mapping_map_writable() on a denied i_mmap_writable), and
 *   FALLOC_FL_PUNCH_HOLE and write() are EPERM (shmem_fallocate, shmem_write_begin).
 * - F_SEAL_FUTURE_WRITE (ab3948f58ff8 "mm/memfd: add an F_SEAL_FUTURE_WRITE seal to memfd", v5.1):
 *   nothing is checked when it is added, and mappings that exist keep writing; a new
 *   mmap(PROT_WRITE, MAP_SHARED) is EPERM and a new read-only shared mapping loses VM_MAYWRITE, so
 *   mprotect(PROT_WRITE) is EACCES (shmem_mmap -> seal_check_future_write()); punch hole and write()
 *   are EPERM as under F_SEAL_WRITE. Until v5.5 (05d351102dbe) a new private mapping lost
 *   VM_MAYWRITE as well, which made it no COW mapping: fork() left its anon pages shared and
 *   writable in parent and child, and mprotect(PROT_WRITE) of a read-only one was EACCES.
 *
 * Per release, what counts as a writable mapping (i_mmap_writable): until v6.6 every VM_SHARED
 * VMA, read-only ones too (mmap_region() and __vma_link_file() count VM_SHARED), so a write-sealed
 * memfd could not be mapped MAP_SHARED at all (EPERM) and a read-only shared mapping made F_SEAL_WRITE
 * EBUSY. v6.7 ("mm: drop the assumption that VM_SHARED always implies writable", "mm: update memfd
 * seal write check to include F_SEAL_WRITE", "mm: perform the mapping_map_writable() check after
 * call_mmap()") counts only VM_SHARED|VM_MAYWRITE (is_shared_maywrite()) and makes shmem_mmap's
 * seal_check_write() treat F_SEAL_WRITE like F_SEAL_FUTURE_WRITE: a read-only shared mapping of a
 * write-sealed memfd is allowed and loses VM_MAYWRITE. (v6.12 broke that again through the
 * mmap_region() rework and "mm: reinstate ability to map write-sealed memfd mappings read-only"
 * restored it in v6.13 via memfd_check_seals_mmap(); no preset is a v6.12, so that window is not modelled.)
 *
 * memfd_wait_for_pins(): memfd_tag_pins() tags every cached page whose page_count() minus its
 * mapcount is not the page cache's one reference (a PMD-sized shmem THP: HPAGE_PMD_NR), then up to
 * five rescans (lru_add_drain_all() first, then sleeps of about 10, 20, 40 and 80 ms) clear the
 * tags of pages that came back; one still tagged on the last scan is EBUSY. The scan walked
 * radix-tree tags (v3.17), then XArray marks (v4.20), and counted pages until David Hildenbrand's
 * folio conversion (memfd_folio_has_extra_refs(): folio_ref_count - folio_mapcount !=
 * folio_nr_pages; "mm/memfd: refactor memfd_tag_pins() and memfd_wait_for_pins()", with
 * total_mapcount()'s removal, v6.10 [M]) and folio_expected_ref_count() (v6.16 [M]); for the
 * order-0 folios the model caches all of them ask the same question. Nothing in the
 * model drops a reference while the caller sleeps, so a pin or a get (GUP, io_uring fixed buffers)
 * of a cached page makes F_SEAL_WRITE EBUSY.
 *
 * - F_SEAL_EXEC (v6.3): chmod() may no longer change the exec bits (not modelled: no chmod); on a
 *   memfd whose mode has them (every memfd here: MFD_NOEXEC_SEAL is not modelled) it brings
 *   F_SEAL_SHRINK, GROW, WRITE and FUTURE_WRITE along, without F_SEAL_WRITE's checks until v7.1.
 *
 * Not modelled: MFD_NOEXEC_SEAL / MFD_EXEC and the vm.memfd_noexec sysctl, write() and read() on the fd,
 * seals of a hugetlbfs memfd (refused), shmem THPs, swapped-out shmem pages (xa_is_value entries
 * are skipped by the scan).
 */

/** include/uapi/linux/fcntl.h */
export const F_SEAL_SEAL = 0x0001;
export const F_SEAL_SHRINK = 0x0002;
export const F_SEAL_GROW = 0x0004;
export const F_SEAL_WRITE = 0x0008;
export const F_SEAL_FUTURE_WRITE = 0x0010;
export const F_SEAL_EXEC = 0x0020;
/** what F_SEAL_EXEC brings along on a memfd whose mode has exec bits (c4f75bc8bd6b, v6.3) */
const EXEC_IMPLIES = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;

/** The seal names a scenario writes, with their F_SEAL_* bits (F_GET_SEALS returns their OR). */
export const SEAL_NAMES = ['seal', 'shrink', 'grow', 'write', 'future-write', 'exec'] as const;
export type SealName = (typeof SEAL_NAMES)[number];
const SEAL_BITS: Readonly<Record<SealName, number>> = { seal: F_SEAL_SEAL, shrink: F_SEAL_SHRINK, grow: F_SEAL_GROW, write: F_SEAL_WRITE, 'future-write': F_SEAL_FUTURE_WRITE, exec: F_SEAL_EXEC };

/** The seals of a memfd made with or without MFD_ALLOW_SEALING (shmem_get_inode sets F_SEAL_SEAL; memfd_create clears it). */
export function initialSeals(allowSealing: boolean): number {
  return allowSealing ? 0 : F_SEAL_SEAL;
}

/** memfd_file_seals_ptr(): only a shmem or hugetlbfs inode has seals; fcntl() on any other file is EINVAL. */
function sealsOf(file: PageCacheFile, op: string): number {
  if (file.seals === undefined) throw new KernelError('EINVAL', `fcntl(${op}) of '${file.name}': only a memfd (tmpfs or hugetlbfs) has seals (memfd_file_seals_ptr)`);
  return file.seals;
}

/** F_SEAL_WRITE or (from v5.1) F_SEAL_FUTURE_WRITE: is_write_sealed(). */
function writeSealed(seals: number): boolean {
  return (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) !== 0;
}

/**
 * Does this VMA count in i_mmap_writable? VM_SHARED until v6.6; VM_SHARED with VM_MAYWRITE
 * (is_shared_maywrite()) from v6.7.
 */
function countsAsWritable(k: Kernel, vma: Vma): boolean {
  if (!vma.flags.shared) return false;
  return !kernelAtLeast(k.version, 6, 7) || !vma.flags.nomaywrite;
}

/** fcntl(fd, F_GET_SEALS) (memfd_get_seals). */
export function getSeals(file: PageCacheFile): number {
  return sealsOf(file, 'F_GET_SEALS');
}

/** fcntl(fd, F_ADD_SEALS, seals) (memfd_add_seals). */
export function addSeals(k: Kernel, file: PageCacheFile, names: readonly SealName[]): void {
  const current = sealsOf(file, 'F_ADD_SEALS');
  // F_ALL_SEALS gained F_SEAL_FUTURE_WRITE in v5.1: an unknown bit is EINVAL
  if (names.includes('future-write') && !kernelAtLeast(k.version, 5, 1)) throw new KernelError('EINVAL', `F_ADD_SEALS of '${file.name}': F_SEAL_FUTURE_WRITE comes with v5.1 (not in F_ALL_SEALS on ${k.version})`);
  // F_SEAL_EXEC: 6fd7353829ca ("mm/memfd: add F_SEAL_EXEC"), v6.3
  if (names.includes('exec') && !kernelAtLeast(k.version, 6, 3)) throw new KernelError('EINVAL', `F_ADD_SEALS of '${file.name}': F_SEAL_EXEC comes with v6.3 (not in F_ALL_SEALS on ${k.version})`);
  if (file.hugetlb) throw KernelError.unsupported('EINVAL', `F_ADD_SEALS of hugetlbfs memfd '${file.name}': seals of a hugetlbfs file are not modelled`);
  if (current & F_SEAL_SEAL) throw new KernelError('EPERM', `F_ADD_SEALS of '${file.name}': F_SEAL_SEAL is set${current === F_SEAL_SEAL ? ' (memfd_create without MFD_ALLOW_SEALING: sealing: true)' : ''}`);
  let seals = names.reduce((acc, n) => acc | SEAL_BITS[n], 0);
  // "SEAL_EXEC implies SEAL_WRITE, making W^X from the start" (c4f75bc8bd6b, v6.3): a memfd made
  // without MFD_NOEXEC_SEAL has mode 0777, so F_SEAL_EXEC brings the write and size seals. Until
  // 3b041514cb6e (v7.1 [M]) they were added after the F_SEAL_WRITE checks below, which therefore
  // never ran for them: F_SEAL_EXEC write-sealed a memfd with writable mappings and pins
  const execImplied = seals & F_SEAL_EXEC ? EXEC_IMPLIES : 0;
  const impliedFirst = kernelAtLeast(k.version, 7, 1);
  if (impliedFirst) seals |= execImplied;
  if (seals & F_SEAL_WRITE && !(current & F_SEAL_WRITE)) {
    // mapping_deny_writable(): i_mmap_writable must be 0 (no mapping counts as writable)
    const writers = [...file.mapping.mmaps].filter((vma) => countsAsWritable(k, vma));
    if (writers.length > 0) throw new KernelError('EBUSY', `F_ADD_SEALS(F_SEAL_WRITE) of '${file.name}': ${writers.map((v) => `'${v.name}' (${v.mm.name})`).join(', ')} ${writers.length === 1 ? 'is a' : 'are'} shared mapping${writers.length === 1 ? '' : 's'} that count${writers.length === 1 ? 's' : ''} as writable (mapping_deny_writable: i_mmap_writable ${writers.length})`);
    const pinned = pinnedIndexes(k, file);
    if (pinned.length > 0) throw new KernelError('EBUSY', `F_ADD_SEALS(F_SEAL_WRITE) of '${file.name}': page${pinned.length === 1 ? '' : 's'} ${pinned.join(', ')} still ${pinned.length === 1 ? 'has' : 'have'} references beyond the page cache's and the mappings' after the last scan (memfd_wait_for_pins)`);
  }
  file.seals = current | seals | execImplied;
}

/**
 * memfd_tag_pins() and the rescans of memfd_wait_for_pins(): the indexes of cached pages with
 * page_count() - mapcount != 1. The model drops no reference while the kernel would sleep, so the
 * first scan's answer is the last one's.
 */
function pinnedIndexes(k: Kernel, file: PageCacheFile): number[] {
  const out: number[] = [];
  for (const [index, pfn] of [...file.cache].sort((a, b) => a[0] - b[0])) {
    const head = k.folios.folio(pfn);
    if (k.folios.rc(head) - k.folios.mapcount(head) !== 1) out.push(index);
  }
  return out;
}

/**
 * shmem_mmap()'s seal check (seal_check_future_write(), seal_check_write() from v6.7) and then
 * mmap_region()'s mapping_map_writable(). Returns whether the new VMA loses VM_MAYWRITE.
 */
export function sealCheckMmap(k: Kernel, file: PageCacheFile, a: { shared: boolean; write: boolean; as: string }): { noMayWrite: boolean } {
  const seals = file.seals ?? 0;
  // until v6.6 only F_SEAL_FUTURE_WRITE is looked at here
  const checked = kernelAtLeast(k.version, 6, 7) ? writeSealed(seals) : (seals & F_SEAL_FUTURE_WRITE) !== 0;
  let noMayWrite = false;
  if (checked && a.shared) {
    if (a.write) throw new KernelError('EPERM', `mmap '${a.as}' of '${file.name}' PROT_WRITE, MAP_SHARED: the file is write-sealed (shmem_mmap: seal_check_write)`);
    noMayWrite = true; // mprotect() may not make it writable
  } else if (checked && !kernelAtLeast(k.version, 5, 5)) {
    // until 05d351102dbe ("mm, memfd: fix COW issue on MAP_PRIVATE and F_SEAL_FUTURE_WRITE
    // mappings", v5.5) a private mapping lost VM_MAYWRITE too: it is no COW mapping any more
    // (is_cow_mapping()), so fork() shares its anon pages writable with the child
    noMayWrite = true;
  }
  // mapping_map_writable(): F_SEAL_WRITE left i_mmap_writable negative
  const counted = a.shared && (!kernelAtLeast(k.version, 6, 7) || !noMayWrite);
  if (counted && seals & F_SEAL_WRITE) throw new KernelError('EPERM', `mmap '${a.as}' of '${file.name}' MAP_SHARED: F_SEAL_WRITE denies writable mappings (mapping_map_writable), and before v6.7 every shared mapping counts as one`);
  return { noMayWrite };
}

/** i_size in bytes: the file's own where it keeps one, else its pages' */
function iSize(file: PageCacheFile, pageSize: number): number {
  return file.size ?? file.pages * pageSize;
}

/** shmem_setattr(): F_SEAL_SHRINK / F_SEAL_GROW against an ftruncate() to `size` bytes (i_size compared byte for byte). */
export function sealCheckResize(file: PageCacheFile, size: number, pageSize: number): void {
  const seals = file.seals ?? 0;
  const old = iSize(file, pageSize);
  if (size < old && seals & F_SEAL_SHRINK) throw new KernelError('EPERM', `truncate of '${file.name}' from ${old} to ${size} bytes: F_SEAL_SHRINK (shmem_setattr)`);
  if (size > old && seals & F_SEAL_GROW) throw new KernelError('EPERM', `truncate of '${file.name}' from ${old} to ${size} bytes: F_SEAL_GROW (shmem_setattr)`);
}

/** shmem_fallocate(FALLOC_FL_PUNCH_HOLE): a write seal refuses it. */
export function sealCheckPunchHole(file: PageCacheFile): void {
  if (writeSealed(file.seals ?? 0)) throw new KernelError('EPERM', `punch hole of '${file.name}': the file is write-sealed (shmem_fallocate)`);
}

/** shmem_fallocate() allocating: F_SEAL_GROW refuses a range that ends past i_size, FALLOC_FL_KEEP_SIZE or not. */
export function sealCheckFallocate(file: PageCacheFile, endByte: number, pageSize: number): void {
  if ((file.seals ?? 0) & F_SEAL_GROW && endByte > iSize(file, pageSize)) throw new KernelError('EPERM', `fallocate of '${file.name}' past its end: F_SEAL_GROW (shmem_fallocate)`);
}
