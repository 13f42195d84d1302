import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import type { Mm, PageCacheFile } from '../types.js';

/** One segment (struct shmid_kernel): its key, the size asked for (shm_segsz) and its file. */
interface Segment {
  readonly id: number;
  /** shm_perm.key: IPC_PRIVATE (0) once IPC_RMID marked it SHM_DEST (ipc_set_key_private()) */
  key: number;
  readonly size: number;
  readonly file: PageCacheFile;
  /** SHM_DEST: IPC_RMID came while it was attached; it goes with its last detach */
  removed: boolean;
}

/**
 * System V shared memory (ipc/shm.c). A segment is a file: shmget() makes it (newseg():
 * shmem_kernel_file_setup() of `size` on the internal tmpfs mount, or with SHM_HUGETLB
 * hugetlb_file_setup() of the size rounded up to the huge page, whose pages are all reserved now:
 * mm/hugetlb.ts shmFileSetup()); shmat() maps it MAP_SHARED (do_shmat() -> do_mmap() of the
 * file's i_size), so its pages live in that file's page cache like a memfd's; IPC_RMID destroys it
 * at once when nothing is attached, else marks it SHM_DEST and makes its key private, and the
 * last detach (munmap, exit) destroys it (shm_close() -> shm_may_destroy()). Destroying drops the
 * file: its pages are freed and a hugetlb file's unused reservations return (hugetlbfs evict).
 * shm_nattch is the VMAs mapping the file (shm_open() / shm_close() count each one, forks and
 * splits included), which is what mm/pagecache.ts released() looks at.
 *
 * Not modelled: permissions (ipcperms(), and SHM_HUGETLB's EPERM without CAP_IPC_LOCK or
 * vm.hugetlb_shm_group: the scenarios run as root), shmget() without IPC_CREAT or with IPC_EXCL,
 * SHM_NORESERVE, the shmmax / shmall / shmmni limits (their defaults bind nothing on 64-bit since
 * v3.16), IPC namespaces, shmat() at an address (SHM_RND, SHM_REMAP), shmctl() but IPC_RMID.
 */
export class SysvShm {
  private readonly segments = new Map<number, Segment>();
  private nextId = 0;

  constructor(private readonly k: Kernel) {}

  /**
   * shmget(key, size, IPC_CREAT | mode [| SHM_HUGETLB | log2(hugetlb) << SHM_HUGE_SHIFT]): a
   * segment of `key` that exists is returned (ipcget_public(); shm_more_checks(): EINVAL when
   * `size` exceeds its shm_segsz), else, and always for IPC_PRIVATE (0), a new one. Returns shmid.
   */
  get(key: number, size: number, hugetlb: number | 'default' | undefined, caller: Mm): number {
    if (size < 1) throw new KernelError('EINVAL', `shmget of ${size} bytes: below SHMMIN (1)`);
    if (key !== 0) {
      const found = [...this.segments.values()].find((s) => s.key === key && this.alive(s));
      if (found) {
        if (size > found.size) throw new KernelError('EINVAL', `shmget(key ${key}, ${size} bytes): the segment of that key has ${found.size} (shm_more_checks)`);
        return found.id;
      }
    }
    const id = this.nextId++;
    // newseg(): sprintf(name, "SYSV%08x", key)
    let name = `SYSV${key.toString(16).padStart(8, '0')}`;
    for (let n = 2; this.k.pageCache.files.has(name); n++) name = `SYSV${key.toString(16).padStart(8, '0')}#${n}`;
    let file: PageCacheFile;
    if (hugetlb !== undefined) {
      file = this.k.hugetlb.shmFileSetup(name, size, hugetlb, caller);
    } else {
      file = this.k.pageCache.newFile(name, Math.ceil(size / this.k.mmu.basePageSize), true);
      file.size = size;
    }
    this.segments.set(id, { id, key, size, file, removed: false });
    return id;
  }

  /** The file shmat() maps (do_shmat(): i_size bytes of it); EINVAL for a segment that is gone. */
  fileOf(id: number): PageCacheFile {
    const s = this.segments.get(id);
    if (!s || !this.alive(s)) throw new KernelError('EINVAL', `shmat: no segment with shmid ${id} (destroyed, or never made)`);
    return s.file;
  }

  /** Whether a VMA's file is a segment's (do_shmdt() looks for shm_vm_ops). */
  isSegmentFile(file: PageCacheFile | undefined): boolean {
    return file !== undefined && [...this.segments.values()].some((s) => s.file === file && this.alive(s));
  }

  /**
   * shmctl(shmid, IPC_RMID) (do_shm_rmid()): with attaches, SHM_DEST and the key made private,
   * destroyed by the last detach; without, destroyed now (shm_destroy()).
   */
  rmid(id: number): void {
    const s = this.segments.get(id);
    if (!s || !this.alive(s)) throw new KernelError('EINVAL', `shmctl(IPC_RMID): no segment with shmid ${id}`);
    s.removed = true;
    s.key = 0;
    s.file.held = false;
    this.k.pageCache.released(s.file);
    if (!this.alive(s)) this.segments.delete(id);
  }

  /** Still in the registry: the file has not been evicted by the segment's destruction. */
  private alive(s: Segment): boolean {
    if (this.k.pageCache.files.get(s.file.name) === s.file) return true;
    this.segments.delete(s.id);
    return false;
  }
}
