/**
 * Every state change of the simulated kernel is one typed event on the bus. Payloads are small
 * flat objects; `pfn` identifies a struct page, `mm` a process by name.
 */
export interface KernelEvents {
  /** a folio's _refcount changed (rc is the new value) */
  'page.ref': { pfn: number; rc: number; delta: number; why: string };
  /** a folio's mapcount changed (page-table mappings counted by rmap) */
  'page.map': { pfn: number; mapcount: number };
  /** the final put: the page went back to its pgmap / driver / allocator */
  'page.free': { pfn: number; type: string };
  /** wake_up_var() on a page: waiters for idle are woken */
  'page.wake': { pfn: number };
  /** folio_test_anon() was evaluated by an mm path */
  'page.anon-test': { pfn: number; anon: boolean; by: string };
  /** page->mapping / index / share changed (dax association) */
  'page.mapping': { pfn: number; mapping: string; index: number; share: number };
  'pte.set': { mm: string; vaddr: number; pfn: number; level: 'pte' | 'pmd' | 'pud'; write: boolean; devmap: boolean; special: boolean; device?: boolean };
  'pte.clear': { mm: string; vaddr: number; pfn: number; level: 'pte' | 'pmd' | 'pud' };
  'tlb.flush': { mm: string };
  /** a swap PTE naming swap slot `slot` was installed (set) or removed (clear) (mm/swap.ts) */
  'swap.entry': { mm: string; vaddr: number; slot: number; exclusive: boolean; op: 'set' | 'clear' };
  /** a guard PTE marker (MADV_GUARD_INSTALL, mm/guard.ts) was installed (set) or removed (clear) at vaddr (a page number) */
  'guard.marker': { mm: string; vaddr: number; op: 'set' | 'clear' };
  /** split_vma(): a VMA of mapping `map` now ends at vaddr (a page number) and a copy starts there */
  'vma.split': { mm: string; map: string; vaddr: number };
  /** vma_merge(): the VMA of `map` that started at vaddr joined the one below it */
  'vma.merge': { mm: string; map: string; vaddr: number };
  /** mremap(): `pages` pages of mapping `map` moved from page `from` to page `to`, now mapping `as` */
  'vma.move': { mm: string; map: string; from: number; to: number; pages: number; as: string };
  /** a split_huge_pages debugfs write (mm/split.ts) in process `mm` or over `file`: its "%lu of %lu THP split" */
  'thp.split': { mm?: string; file?: string; split: number; total: number };
  'fault': { mm: string; vaddr: number; write: boolean; kind: string };
  'cow': { mm: string; vaddr: number; from: number; to: number; why: string };
  'fork': { parent: string; child: string };
  'gup.pin': { mm: string; name: string; pfns: number[]; pin: boolean; longterm: boolean; write: boolean; fast: boolean };
  'gup.unpin': { name: string; pfns: number[]; pin: boolean };
  'dma.write': { name: string; pfn: number; data: string };
  /** a CPU store through a /dev/mem mapping reached physical page pfn (mm/devmem.ts) */
  'devmem.write': { mm: string; vaddr: number; pfn: number };
  'dma.read': { name: string; pfn: number; data: string };
  'block.alloc': { device: string; block: number; file: string; index: number };
  'block.free': { device: string; block: number; pfn: number; file: string };
  'dax.entry': { file: string; index: number; op: 'create' | 'insert' | 'delete' | 'lock' | 'unlock'; pfn: number; kind: string };
  'dax.busy': { file: string; pfn: number | null };
  'dax.wait': { file: string; pfn: number; until: string };
  /** a DAX fault's vmf_insert_*() failed; entryLeft: the page this fault associated with the file (pfn) stays associated */
  'dax.insert-failed': { file: string; index: number; pfn: number; entryLeft: boolean };
  /** a filesystem reached a named step of its ordering (the kernel function it models) */
  'fs.step': { fs: string; file: string; step: string };
  'lock': { lock: string; op: string; thread: number };
  'pgmap.probe': { device: string; type: string; startPfn: number; nrPages: number; vmemmapShift: number };
  /**
   * a hugetlb pool changed (mm/hugetlb.ts): its pages (nr_hugepages, surplus included), the pages
   * whose vmemmap HVO optimised, the vmemmap pages all of them use and the ones HVO freed
   */
  'hugetlb.pool': { size: number; nr: number; free: number; surplus: number; optimized: number; vmemmapPages: number; savedPages: number; pteTablePages: number; why: string };
  'pgmap.kill': { device: string };
  'pgmap.teardown': { device: string; type: string };
  'warn': { message: string };
  'oops': { message: string };
  'step': { thread: string; index: number; op: string };
}

export type KernelEventName = keyof KernelEvents;
