// Records kept in shared data (one store per vm_id, visible to every worker of the Envoy).
import { BUCKETS } from "./histogram";
import { PidState } from "./pid";

/** A backward difference of the wall clock larger than this is a step, not a race between workers. */
export const CLOCK_STEP_MS: f64 = 1000;

/** The token bucket of a rule: refilled at `rate`/s up to rate*burst, taken with CAS. */
export class Bucket {
  tokens: f64 = 0;
  lastMs: f64 = 0;
  rate: f64 = 0;
  burstMs: f64 = 200;
  epoch: u32 = 0;
  /**
   * How many times the rate was cut (by 10% or more): a request admitted before the latest cut is judged by
   * the rate before it, so its latency does not count in the reading after the cut.
   */
  cuts: u32 = 0;

  get capacity(): f64 {
    const c = this.rate * this.burstMs / 1000.0;
    return c < 1 ? 1 : c;
  }

  /**
   * Adds the tokens earned since lastMs. A wall clock that stepped back more than a second
   * (NTP, an operator) restarts the refill from now instead of waiting for the clock to catch
   * up, which would admit nothing meanwhile; smaller backward differences are workers' reads
   * racing, and earn nothing. Returns true when it restarted (the caller should persist it).
   */
  refill(nowMs: f64): bool {
    let restarted = false;
    if (nowMs > this.lastMs) {
      this.tokens += (nowMs - this.lastMs) * this.rate / 1000.0;
      this.lastMs = nowMs;
    } else if (nowMs < this.lastMs - CLOCK_STEP_MS) {
      this.lastMs = nowMs;
      restarted = true;
    }
    const cap = this.capacity;
    if (this.tokens > cap) this.tokens = cap;
    return restarted;
  }

  encode(): ArrayBuffer {
    const b = new ArrayBuffer(40);
    const p = changetype<usize>(b);
    store<f64>(p, this.tokens);
    store<f64>(p + 8, this.lastMs);
    store<f64>(p + 16, this.rate);
    store<f64>(p + 24, this.burstMs);
    store<u32>(p + 32, this.epoch);
    store<u32>(p + 36, this.cuts);
    return b;
  }

  static decode(b: ArrayBuffer): Bucket | null {
    if (b.byteLength != 40) return null;
    const p = changetype<usize>(b);
    const k = new Bucket();
    k.tokens = load<f64>(p);
    k.lastMs = load<f64>(p + 8);
    k.rate = load<f64>(p + 16);
    k.burstMs = load<f64>(p + 24);
    k.epoch = load<u32>(p + 32);
    k.cuts = load<u32>(p + 36);
    if (!isFinite(k.tokens) || !isFinite(k.rate) || k.rate <= 0) return null;
    return k;
  }
}

/** The controller of a rule, owned by whichever worker holds the lease. */
export class ControllerRecord {
  constructor(public state: PidState, public identity: string, public paramsHash: u32) {}

  encode(): ArrayBuffer {
    const id = String.UTF8.encode(this.identity);
    const b = new ArrayBuffer(104 + id.byteLength);
    const p = changetype<usize>(b);
    const s = this.state;
    store<f64>(p, s.rate); store<f64>(p + 8, s.integral); store<f64>(p + 16, s.filtered);
    store<f64>(p + 24, s.p); store<f64>(p + 32, s.i); store<f64>(p + 40, s.d);
    store<f64>(p + 48, s.measured); store<f64>(p + 56, s.lastStepMs);
    store<u32>(p + 64, s.epoch); store<u32>(p + 68, s.hasFiltered ? 1 : 0);
    store<u32>(p + 72, this.paramsHash); store<u32>(p + 76, id.byteLength);
    store<f64>(p + 80, s.ceiling); store<f64>(p + 88, s.lastError); store<f64>(p + 96, s.lastGoodRate);
    memory.copy(p + 104, changetype<usize>(id), id.byteLength);
    return b;
  }

  static decode(b: ArrayBuffer): ControllerRecord | null {
    if (b.byteLength < 104) return null;
    const p = changetype<usize>(b);
    const idLen = load<u32>(p + 76);
    if (<i32>idLen != b.byteLength - 104) return null;
    const s = new PidState();
    s.rate = load<f64>(p); s.integral = load<f64>(p + 8); s.filtered = load<f64>(p + 16);
    s.p = load<f64>(p + 24); s.i = load<f64>(p + 32); s.d = load<f64>(p + 40);
    s.measured = load<f64>(p + 48); s.lastStepMs = load<f64>(p + 56);
    s.epoch = load<u32>(p + 64); s.hasFiltered = load<u32>(p + 68) != 0;
    s.ceiling = load<f64>(p + 80); s.lastError = load<f64>(p + 88); s.lastGoodRate = load<f64>(p + 96);
    if (!isFinite(s.rate) || s.rate <= 0 || !isFinite(s.integral)) return null;
    return new ControllerRecord(s, String.UTF8.decodeUnsafe(p + 104, idLen), load<u32>(p + 72));
  }
}

/**
 * One worker's cumulative samples for one rule (only that worker writes it), and the
 * requests it has in flight for the rule right now (a level, not a sum).
 */
export class Samples {
  arrivals: u64 = 0;
  completed: u64 = 0;
  errors: u64 = 0;
  inflight: u64 = 0;
  rejected: u64 = 0;
  counts: StaticArray<u32> = new StaticArray<u32>(BUCKETS);

  encode(): ArrayBuffer {
    const b = new ArrayBuffer(40 + BUCKETS * 4);
    const p = changetype<usize>(b);
    store<u64>(p, this.arrivals); store<u64>(p + 8, this.completed); store<u64>(p + 16, this.errors);
    store<u64>(p + 24, this.inflight); store<u64>(p + 32, this.rejected);
    memory.copy(p + 40, changetype<usize>(this.counts), BUCKETS * 4);
    return b;
  }

  static decode(b: ArrayBuffer): Samples | null {
    if (b.byteLength != 40 + BUCKETS * 4) return null;
    const p = changetype<usize>(b);
    const s = new Samples();
    s.arrivals = load<u64>(p); s.completed = load<u64>(p + 8); s.errors = load<u64>(p + 16);
    s.inflight = load<u64>(p + 24); s.rejected = load<u64>(p + 32);
    memory.copy(changetype<usize>(s.counts), p + 40, BUCKETS * 4);
    return s;
  }
}

/** Bytes before the per-worker entries of a GuardRecord. */
const GUARD_HEAD: i32 = 32;

/**
 * The in-flight guard of a rule, written by the lease holder every tick: the limit on requests
 * in flight across workers, split between workers by their share of recent arrivals, so each
 * worker enforces its part exactly on its own count; past its part (a random burst on one
 * worker), a worker may borrow up to its part again while the published total leaves room.
 */
export class GuardRecord {
  limit: f64 = 0;
  /**
   * The limit is too fine for parts (under two requests a worker, each part would round up to a
   * whole request): workers check the exact count across workers in the ledger instead.
   */
  exact: bool = false;
  /** The bucket's cut count (Bucket.cuts) when the limit was derived from its rate. */
  cuts: u32 = 0;
  /** The rate the limit was derived from (reported in RateLimit-Limit on a guard rejection). */
  rate: f64 = 0;
  /** Requests in flight across workers, as last published. */
  inflight: f64 = 0;
  workers: Array<u64> = new Array<u64>();
  shares: Array<f64> = new Array<f64>();
  /** Each worker's requests in flight as the lease holder read them (their sum is `inflight`). */
  seen: Array<f64> = new Array<f64>();

  /** This worker's part of the limit (at least one request); a worker not listed yet gets an even part. */
  partFor(worker: u64): f64 {
    let part = this.limit / <f64>(this.workers.length + 1);
    for (let i = 0; i < this.workers.length; i++) if (this.workers[i] == worker) part = this.limit * this.shares[i];
    return part < 1 ? 1 : part;
  }

  /** The other workers' requests in flight, as last summed. */
  othersOf(worker: u64): f64 {
    let mine: f64 = 0;
    for (let i = 0; i < this.workers.length; i++) if (this.workers[i] == worker) mine = this.seen[i];
    return this.inflight - mine;
  }

  encode(): ArrayBuffer {
    const n = this.workers.length;
    const b = new ArrayBuffer(GUARD_HEAD + 24 * n);
    const p = changetype<usize>(b);
    store<f64>(p, this.limit);
    store<f64>(p + 8, this.rate);
    store<f64>(p + 16, this.inflight);
    store<u32>(p + 24, this.exact ? 1 : 0);
    store<u32>(p + 28, this.cuts);
    for (let i = 0; i < n; i++) {
      store<u64>(p + GUARD_HEAD + 24 * i, this.workers[i]);
      store<f64>(p + GUARD_HEAD + 8 + 24 * i, this.shares[i]);
      store<f64>(p + GUARD_HEAD + 16 + 24 * i, this.seen[i]);
    }
    return b;
  }

  static decode(b: ArrayBuffer): GuardRecord | null {
    if (b.byteLength < GUARD_HEAD || (b.byteLength - GUARD_HEAD) % 24 != 0) return null;
    const p = changetype<usize>(b);
    const g = new GuardRecord();
    g.limit = load<f64>(p);
    g.rate = load<f64>(p + 8);
    g.inflight = load<f64>(p + 16);
    const exact = load<u32>(p + 24);
    g.cuts = load<u32>(p + 28);
    if (!isFinite(g.limit) || g.limit < 0 || !isFinite(g.rate) || !isFinite(g.inflight) || exact > 1) return null;
    g.exact = exact == 1;
    const n = (b.byteLength - GUARD_HEAD) / 24;
    for (let i = 0; i < n; i++) {
      const share = load<f64>(p + GUARD_HEAD + 8 + 24 * i);
      const seen = load<f64>(p + GUARD_HEAD + 16 + 24 * i);
      if (!isFinite(share) || share < 0 || share > 1 || !isFinite(seen)) return null;
      g.workers.push(load<u64>(p + GUARD_HEAD + 24 * i));
      g.shares.push(share);
      g.seen.push(seen);
    }
    return g;
  }
}

/**
 * The exact in-flight count of a rule across workers, for a guard too fine for parts: one entry
 * per worker, `worker -> requests it has in flight`. Each worker writes only its own entry, and
 * writes its count (a level, not an increment), so a write lost to contention is mended by the
 * next one; the lease holder drops the entries of workers that left the registry.
 */
export class Ledger {
  workers: Array<u64> = new Array<u64>();
  counts: Array<f64> = new Array<f64>();

  /** Requests in flight on every worker but `worker`. */
  othersOf(worker: u64): f64 {
    let sum: f64 = 0;
    for (let i = 0; i < this.workers.length; i++) if (this.workers[i] != worker) sum += this.counts[i];
    return sum;
  }

  /** Sets `worker`'s entry; true when that changed it. */
  set(worker: u64, count: f64): bool {
    for (let i = 0; i < this.workers.length; i++) {
      if (this.workers[i] != worker) continue;
      if (this.counts[i] == count) return false;
      this.counts[i] = count;
      return true;
    }
    this.workers.push(worker);
    this.counts.push(count);
    return true;
  }

  /** Keeps the entries of `ids` only; true when one was dropped. */
  keep(ids: Array<u64>): bool {
    const workers = new Array<u64>(), counts = new Array<f64>();
    for (let i = 0; i < this.workers.length; i++) {
      if (!ids.includes(this.workers[i])) continue;
      workers.push(this.workers[i]);
      counts.push(this.counts[i]);
    }
    const dropped = workers.length < this.workers.length;
    this.workers = workers;
    this.counts = counts;
    return dropped;
  }

  encode(): ArrayBuffer {
    const n = this.workers.length;
    const b = new ArrayBuffer(16 * n);
    const p = changetype<usize>(b);
    for (let i = 0; i < n; i++) {
      store<u64>(p + 16 * i, this.workers[i]);
      store<f64>(p + 8 + 16 * i, this.counts[i]);
    }
    return b;
  }

  /** The ledger in `b`; an unreadable one reads as empty (each worker's next write restores its entry). */
  static decode(b: ArrayBuffer): Ledger {
    const l = new Ledger();
    if (b.byteLength % 16 != 0) return l;
    const p = changetype<usize>(b);
    for (let i = 0; i < b.byteLength / 16; i++) {
      const count = load<f64>(p + 8 + 16 * i);
      if (!isFinite(count) || count < 0) return new Ledger();
      l.workers.push(load<u64>(p + 16 * i));
      l.counts.push(count);
    }
    return l;
  }
}
