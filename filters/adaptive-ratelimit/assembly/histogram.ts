// A log-scale latency histogram: 128 buckets growing by 10% from 0.1 ms (the last one holds
// everything from about 16 s up). Fixed size, so it can live in shared data and be summed.

export const BUCKETS: i32 = 128;
const BASE_MS: f64 = 0.1;
const GROWTH: f64 = 1.1;
const LOG_GROWTH: f64 = Math.log(GROWTH);

/** Bucket of a latency: bucket i holds (BASE*GROWTH^(i-1), BASE*GROWTH^i]. */
export function bucketOf(ms: f64): i32 {
  if (!(ms > BASE_MS)) return 0; // also NaN and negatives
  const i = <i32>Math.ceil(Math.log(ms / BASE_MS) / LOG_GROWTH);
  return i >= BUCKETS ? BUCKETS - 1 : i;
}

/** Upper bound of bucket i, in ms. */
export function bucketUpper(i: i32): f64 {
  return BASE_MS * Math.pow(GROWTH, <f64>i);
}

export class Histogram {
  counts: StaticArray<u32> = new StaticArray<u32>(BUCKETS);
  total: u64 = 0;

  record(ms: f64): void {
    const i = bucketOf(ms);
    unchecked((this.counts[i] = this.counts[i] + 1));
    this.total++;
  }

  clear(): void {
    for (let i = 0; i < BUCKETS; i++) unchecked((this.counts[i] = 0));
    this.total = 0;
  }

  /** Adds `other - base` (cumulative snapshots; a counter that went backwards counts from zero). */
  addDelta(other: StaticArray<u32>, base: StaticArray<u32> | null): void {
    for (let i = 0; i < BUCKETS; i++) {
      const cur = unchecked(other[i]);
      const prev: u32 = base === null ? 0 : unchecked(base[i]);
      const d = cur >= prev ? cur - prev : cur;
      unchecked((this.counts[i] = this.counts[i] + d));
      this.total += d;
    }
  }

  /** The mean, each sample taken at its bucket's upper bound (at most 10% high), or -1 when empty. */
  mean(): f64 {
    if (this.total == 0) return -1;
    let sum: f64 = 0;
    for (let i = 0; i < BUCKETS; i++) sum += <f64>unchecked(this.counts[i]) * bucketUpper(i);
    return sum / <f64>this.total;
  }

  /** The q-quantile (0 < q <= 1) as the upper bound of its bucket, or -1 when empty. */
  quantile(q: f64): f64 {
    if (this.total == 0) return -1;
    let rank = <u64>Math.ceil(q * <f64>this.total);
    if (rank < 1) rank = 1;
    let seen: u64 = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += unchecked(this.counts[i]);
      if (seen >= rank) return bucketUpper(i);
    }
    return bucketUpper(BUCKETS - 1);
  }
}
