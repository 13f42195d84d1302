import { InputError } from './errors.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

const UNITS: Record<string, number> = {
  '': 1, B: 1,
  K: KiB, KB: KiB, KIB: KiB,
  M: MiB, MB: MiB, MIB: MiB,
  G: GiB, GB: GiB, GIB: GiB,
  T: TiB, TB: TiB, TIB: TiB,
};

/** Parse `4KiB`, `2M`, `1GiB`, `4096` into bytes (binary units: K, KiB and KB all mean 1024). */
export function parseSize(value: string | number, field = 'size'): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new InputError(`${field}: ${value} is not a whole number of bytes`, undefined, field);
    return value;
  }
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined;
  if (!m || unit === undefined) {
    throw new InputError(`${field}: '${value}' is not a size; write bytes or a number with K, M, G or T (e.g. 4KiB, 2MiB, 1GiB)`, undefined, field);
  }
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bytes)) throw new InputError(`${field}: '${value}' is too large`, undefined, field);
  return bytes;
}

/** Format bytes with the largest binary unit that divides them exactly. */
export function formatSize(bytes: number): string {
  for (const [u, n] of [['TiB', TiB], ['GiB', GiB], ['MiB', MiB], ['KiB', KiB]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${u}`;
  }
  return `${bytes}B`;
}

export function isPowerOfTwo(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n));
}

export function log2(n: number): number {
  return Math.round(Math.log2(n));
}

/** order_base_2(): ceil(log2(n)). */
export function orderBase2(n: number): number {
  return n <= 1 ? 0 : Math.ceil(Math.log2(n));
}
