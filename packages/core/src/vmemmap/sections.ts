/**
 * How a device range is cut into sparse_add_section() calls (mm/memory_hotplug.c __add_pages,
 * mm/sparse.c section_activate): after check_pfn_span() (start and size in whole subsections),
 * one call per section the range touches, each covering only the range's part of that section.
 * Consecutive full sections behave alike, so a range is at most three runs: a partial first
 * section, `count` full sections, a partial last section — never a list of sections or pages.
 */
export interface SectionRun {
  /** first pfn of the first chunk in the run */
  readonly pfn: number;
  /** pages per chunk (PAGES_PER_SECTION for full sections) */
  readonly nrPages: number;
  /** consecutive chunks of this size */
  readonly count: number;
  /** the chunks are whole sections */
  readonly full: boolean;
}

export function sectionRuns(startPfn: number, nrPages: number, pagesPerSection: number): SectionRun[] {
  const runs: SectionRun[] = [];
  const end = startPfn + nrPages;
  let pfn = startPfn;
  const firstEnd = Math.min(end, (Math.floor(pfn / pagesPerSection) + 1) * pagesPerSection);
  if (pfn % pagesPerSection !== 0 || firstEnd - pfn < pagesPerSection) {
    runs.push({ pfn, nrPages: firstEnd - pfn, count: 1, full: firstEnd - pfn === pagesPerSection });
    pfn = firstEnd;
  }
  const fullCount = Math.floor((end - pfn) / pagesPerSection);
  if (fullCount > 0) {
    runs.push({ pfn, nrPages: pagesPerSection, count: fullCount, full: true });
    pfn += fullCount * pagesPerSection;
  }
  if (pfn < end) runs.push({ pfn, nrPages: end - pfn, count: 1, full: false });
  return runs;
}

/** Number of sections (mem_section entries) the range touches. */
export function sectionsTouched(runs: readonly SectionRun[]): number {
  return runs.reduce((n, r) => n + r.count, 0);
}
