/**
 * The generic vmemmap model: how much memory the struct pages of a device range cost, where it
 * comes from, and which struct pages get written — mm/sparse.c, mm/sparse-vmemmap.c and
 * mm/mm_init.c as arithmetic over sections (a 64 TiB device costs the same to answer as 2 MiB).
 *
 * How an arch plugs in: describe what differs per arch and let core do the rest.
 *
 * 1. The `Mmu` gives PAGE_SIZE, sizeof(struct page), the section and subsection sizes.
 * 2. A `VmemmapArchModel` says
 *    - `vmemmapInInitMm`: whether vmemmap lives in init_mm page tables (false on ppc64 hash,
 *      where the generic compound path then oopses, as in seed 003);
 *    - `optsInToDaxVmemmapOptimization(version)`: whether the arch selects the DAX vmemmap
 *      optimisation in that release (ARCH_WANT_OPTIMIZE_VMEMMAP v6.4, _DAX_VMEMMAP v6.6, or an
 *      arch override of vmemmap_can_optimize()); cite the Kconfig select;
 *    - `hugetlbVmemmapOptIn(version)` (optional): null where the arch selects HugeTLB Vmemmap
 *      Optimization in that release, else why not (absent: no HVO); cite the Kconfig select;
 *    - `backing(run, ctx)`: how its vmemmap_populate() backs a run of section chunks: block size
 *      (PAGE_SIZE for vmemmap_populate_basepages, PMD_SIZE for vmemmap_populate_hugepages, an arch
 *      block such as ppc64 hash's mmu_vmemmap_psize or s390's 1 MiB frames), whether the altmap is
 *      honoured for that chunk, and what happens when the altmap runs out (ENOMEM or RAM).
 * 3. `vmemmapPopulator(model)` turns that into the arch plugin's `VmemmapPopulator`; core's
 *    memremap_pages() calls it, and so does `daxlab vmemmap`.
 *
 * Core decides, per kernel features: sections and subsections (check_pfn_span, one
 * section_activate() per section touched), vmemmap_can_optimize() in each of its forms, the
 * compound tail-page reuse of vmemmap_populate_compound_pages() (including compounds that span
 * sections), the vmem_altmap allocator with its reserve, free and alignment padding, and
 * memmap_init_zone_device()'s compound_nr_pages(); and for hugetlb pages, what HVO frees per
 * page and release (hugetlb.ts hugetlbVmemmapFigures(), which mm/hugetlb.ts applies to its pools).
 */
export { altmapAllocBlocks, altmapOffset, newAltmap, type AltmapLayout, type AltmapState } from './altmap.js';
export { compoundNrPages, vmemmapCanOptimize, VMEMMAP_RESERVE_NR, type OptimizeQuery } from './optimize.js';
export { HVO_MEMMAP_ON_MEMORY_SINCE, HVO_SINCE, hugetlbVmemmapFigures, hugetlbVmemmapReservePages, type HugetlbVmemmapFigures, type HugetlbVmemmapOptIn, type HugetlbVmemmapQuery } from './hugetlb.js';
export { sectionRuns, sectionsTouched, type SectionRun } from './sections.js';
export { populateDeviceMemmap, vmemmapPopulator, type BackingContext, type MemmapBacking, type VmemmapArchModel } from './model.js';
