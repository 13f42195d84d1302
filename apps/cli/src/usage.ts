import { didYouMean } from '@daxlab/core';

/** A problem with the command line itself: exit code 2, one line and a hint, no stack. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** what to run or read to get it right */
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `a,b,c` → ['a', 'b', 'c'] (blanks dropped, duplicates removed, order kept). */
export function splitList(value: string): string[] {
  return [...new Set(value.split(',').map((s) => s.trim()).filter((s) => s !== ''))];
}

/** Check names against the known ones; `all` means every known name (when allowed). */
export function pickNames(flag: string, value: string, known: readonly string[], allowAll: boolean): string[] {
  const names = splitList(value);
  if (names.length === 0) throw new UsageError(`${flag} needs a value`, `known: ${known.join(', ')}`);
  if (names.includes('all')) {
    if (!allowAll) throw new UsageError(`${flag} all: 'run' takes one value; use 'daxlab matrix' to run several`);
    return [...known];
  }
  if (!allowAll && names.length > 1) throw new UsageError(`${flag} ${value}: 'run' takes one value; use 'daxlab matrix' to run several`);
  for (const n of names) {
    if (!known.includes(n)) {
      const near = didYouMean(n, known);
      throw new UsageError(`${flag}: unknown value '${n}'${near ? `; did you mean '${near}'?` : ''}`, known.length ? `known: ${known.join(', ')}${allowAll ? ', or all' : ''}` : 'none is installed');
    }
  }
  return names;
}

/** A whole number in range, for --seed, --jobs. */
export function parseWhole(flag: string, value: string, min: number): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`${flag} ${value}: expected a whole number${min > 0 ? ` of at least ${min}` : ''}`);
  }
  return Number(value);
}
