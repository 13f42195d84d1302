// Owned by the vmemmap work (issue 3): sections, populators, compound tail reuse.
export {};
