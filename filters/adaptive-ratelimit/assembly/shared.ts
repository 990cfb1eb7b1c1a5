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
    store<f64>(p + 80, s.ceiling); store<f64>(p + 88, s.lastError);
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
    s.ceiling = load<f64>(p + 80); s.lastError = load<f64>(p + 88);
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

/**
 * The in-flight guard of a rule, written by the lease holder every tick: the limit on requests
 * in flight across workers, split between workers by their share of recent arrivals, so each
 * worker enforces its part exactly on its own count; past its part (a random burst on one
 * worker), a worker may borrow up to its part again while the published total leaves room.
 */
export class GuardRecord {
  limit: f64 = 0;
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
    const b = new ArrayBuffer(24 + 24 * n);
    const p = changetype<usize>(b);
    store<f64>(p, this.limit);
    store<f64>(p + 8, this.rate);
    store<f64>(p + 16, this.inflight);
    for (let i = 0; i < n; i++) {
      store<u64>(p + 24 + 24 * i, this.workers[i]);
      store<f64>(p + 32 + 24 * i, this.shares[i]);
      store<f64>(p + 40 + 24 * i, this.seen[i]);
    }
    return b;
  }

  static decode(b: ArrayBuffer): GuardRecord | null {
    if (b.byteLength < 24 || (b.byteLength - 24) % 24 != 0) return null;
    const p = changetype<usize>(b);
    const g = new GuardRecord();
    g.limit = load<f64>(p);
    g.rate = load<f64>(p + 8);
    g.inflight = load<f64>(p + 16);
    if (!isFinite(g.limit) || g.limit < 0 || !isFinite(g.rate) || !isFinite(g.inflight)) return null;
    const n = (b.byteLength - 24) / 24;
    for (let i = 0; i < n; i++) {
      const share = load<f64>(p + 32 + 24 * i);
      const seen = load<f64>(p + 40 + 24 * i);
      if (!isFinite(share) || share < 0 || share > 1 || !isFinite(seen)) return null;
      g.workers.push(load<u64>(p + 24 + 24 * i));
      g.shares.push(share);
      g.seen.push(seen);
    }
    return g;
  }
}
