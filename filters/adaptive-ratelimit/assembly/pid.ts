// The control law. The controller acts on the admitted rate R (requests/s) in log space, so a
// step is a relative change whatever the scale:
//   e = clamp((setpoint - y) / setpoint, -1, 1)        (positive: room to admit more)
//   yf = a*y + (1-a)*yf                                 (filtered measurement)
//   I += ki * e * dt                                    (dt in seconds, clock jumps capped)
//   D = -kd * ln(yf / yf_prev) / dt, clamped to +-0.1   (on the measurement, not the error)
//   log R = kp*e + I + D           (cold start: I = log initial_rate, so R starts there)
// then clamped to at most `max_step` up or `max_decrease` down per interval (probing above the
// operating point slowly, backing off from overload fast) and to [min, max]; when clamped,
// I is recomputed so the output is exactly the clamped one (back-calculation anti-windup).
// Too few samples: no change at all. Demand below 90% of the rate with under 0.5% of it
// rejected: no increase (app-limited). Latency below the knee says nothing about where the
// knee is, so the controller remembers the throughput the upstream sustained when the signal
// last crossed the setpoint (a capacity estimate, like TCP's slow-start threshold): within 5%
// under it the rate rises by at most `creep` per interval, above it by a quarter of that
// (probing for more capacity); well under the setpoint (80%) after a cut, the rate returns to
// 95% of it in one step (fast recovery) rather than climbing `max_step` at a time. While over
// the setpoint, a cut never goes below a share of the throughput just measured, setpoint/signal
// clamped to [0.5, 0.9]: the signal seen then is partly backlog already draining, and cutting
// on all of it would undershoot, while a deep backlog still drains at half the throughput;
// and while the signal is falling fast (the backlog draining) the rate is held, not cut.
// With an in-flight guard, a cut over the setpoint with a queue beyond doubt goes to 1.25x the
// measured throughput (the guard's bound then near the service's parallelism); while the guard,
// not the rate, holds the traffic, the rate is held, but may rise as far as the guard's bound
// stays the same whole number of requests; see step.

/** Demand under this share of the rate: the limit is not binding, so it is not raised. */
export const APP_LIMITED: f64 = 0.9;
/** Over the setpoint with a queue beyond doubt, a guarded rule's cut goes to this multiple of the measured throughput. */
export const GUARD_THROUGHPUT: f64 = 1.25;
/** The throughput counts as held at this share of the last step's or more. */
export const THROUGHPUT_HELD: f64 = 0.95;
/** A rejected share of arrivals at or above this means the limit is binding, whatever the demand. */
export const BINDING: f64 = 0.005;
/**
 * Fewer requests than this in flight on average (Little's law: throughput x mean latency):
 * requests barely overlap, so a latency over the setpoint is the service's own, not queueing
 * this limiter could remove by admitting less. Cutting then would only reject traffic.
 */
export const LOW_CONCURRENCY: f64 = 1;

/** True when a reading over the setpoint comes with too little concurrency to be caused by load. */
export function notFromLoad(params: PidParams, measured: f64, concurrency: f64): bool {
  return measured > params.setpoint && concurrency >= 0 && concurrency < LOW_CONCURRENCY;
}

export class PidParams {
  kp: f64 = 0.2;
  ki: f64 = 0.3;
  kd: f64 = 0.6;
  setpoint: f64 = 200;
  minRate: f64 = 1;
  maxRate: f64 = 100000;
  initialRate: f64 = 100;
  maxStep: f64 = 0.1;
  maxDecrease: f64 = 0.5;
  creep: f64 = 0.01;
  minSamples: i64 = 20;
  filter: f64 = 0.7;
  intervalMs: f64 = 1000;
  /** The rule has an in-flight guard next to the rate (see step: the guard-bound hold). */
  guarded: bool = false;
}

export class PidState {
  rate: f64 = 0;
  integral: f64 = 0;
  filtered: f64 = 0;
  hasFiltered: bool = false;
  p: f64 = 0;
  i: f64 = 0;
  d: f64 = 0;
  measured: f64 = -1;
  lastStepMs: f64 = 0;
  epoch: u32 = 0;
  /** Rate at which the signal last went from below to above the setpoint (0: not seen yet). */
  ceiling: f64 = 0;
  lastError: f64 = 0;
  /** The throughput (goodRate) the last step with samples saw. */
  lastGoodRate: f64 = 0;
}

/** A fresh controller at the initial rate (cold start never starts from zero). */
export function coldStart(params: PidParams, nowMs: f64): PidState {
  const s = new PidState();
  s.rate = clampRate(params, params.initialRate);
  s.integral = Math.log(s.rate);
  s.lastStepMs = nowMs;
  return s;
}

function clampRate(params: PidParams, r: f64): f64 {
  return r < params.minRate ? params.minRate : r > params.maxRate ? params.maxRate : r;
}

/**
 * Takes over a running controller under new parameters without a jump: the rate is kept
 * (clamped to the new bounds) and the integral re-derived so the output equals it.
 */
export function bumpless(params: PidParams, prev: PidState): PidState {
  const s = new PidState();
  s.rate = clampRate(params, prev.rate > 0 ? prev.rate : params.initialRate);
  s.integral = Math.log(s.rate);
  s.filtered = prev.filtered;
  s.hasFiltered = prev.hasFiltered;
  s.measured = prev.measured;
  s.lastStepMs = prev.lastStepMs;
  s.epoch = prev.epoch;
  s.ceiling = prev.ceiling;
  s.lastError = prev.lastError;
  s.lastGoodRate = prev.lastGoodRate;
  return s;
}

/**
 * One control step. `measured` is the signal over the last interval (latency percentile in
 * ms, or error ratio), `samples` the completed requests behind it, `demand` the requests/s
 * that arrived (admitted or not), `goodRate` the successful completions per second,
 * `rejectedShare` the share of arrivals the limit (or the in-flight guard) turned away,
 * `concurrency` the requests in flight on average (-1: unknown); with a guard, `queueing` (the
 * mean latency past the healthy one), `deepCut` (see the deep cut below) and `sameBoundUpTo`
 * (the highest rate at which the guard's bound stays as it is; 0: no rise while the guard holds).
 * Returns true when the rate changed.
 */
export function step(params: PidParams, s: PidState, measured: f64, samples: i64, demand: f64, nowMs: f64, goodRate: f64 = 0, rejectedShare: f64 = 0, concurrency: f64 = -1, queueing: bool = true, deepCut: bool = false, sameBoundUpTo: f64 = 0): bool {
  let dt = (nowMs - s.lastStepMs) / 1000.0;
  s.lastStepMs = nowMs;
  // A clock jump (or a first step after a long pause) must not inflate the integral.
  const nominal = params.intervalMs / 1000.0;
  if (!(dt > 0) || dt > 3 * nominal) dt = nominal;
  if (samples < params.minSamples || !(measured >= 0)) return false;
  const previous = s.measured;
  s.measured = measured;
  // Over the setpoint without load behind it: hold (no cut, and no capacity learned from it).
  if (notFromLoad(params, measured, concurrency)) return false;
  // Far under the setpoint while the limit turns traffic away, at or past the learned capacity:
  // that capacity was learned from noise (or the service got faster); forget it, so the rate
  // climbs at max_step instead of creeping.
  if (s.ceiling > 0 && measured <= 0.5 * params.setpoint && rejectedShare >= BINDING && s.rate >= 0.95 * s.ceiling) s.ceiling = 0;
  let e = (params.setpoint - measured) / params.setpoint;
  if (e > 1) e = 1;
  if (e < -1) e = -1;
  const prevFiltered = s.hasFiltered ? s.filtered : measured;
  s.filtered = s.hasFiltered ? params.filter * measured + (1 - params.filter) * s.filtered : measured;
  s.hasFiltered = true;
  // On the filtered measurement, in log space (relative change), bounded: a damping term.
  let d = prevFiltered > 0 && s.filtered > 0 ? -params.kd * Math.log(s.filtered / prevFiltered) / dt : 0;
  if (d > 0.1) d = 0.1;
  if (d < -0.1) d = -0.1;
  let integral = s.integral + params.ki * e * dt;
  const p = params.kp * e;
  let target = p + integral + d;
  // Over the setpoint, cut from what was actually admitted: a limit far above demand throttles nothing.
  const current = Math.log(e < 0 && demand > 0 && demand < s.rate ? demand : s.rate);
  if (e < 0 && s.lastError >= 0) s.ceiling = goodRate > 0 ? goodRate : s.rate;
  s.lastError = e;
  let up = params.maxStep;
  if (s.ceiling > 0 && s.rate >= s.ceiling) up = params.creep / 4;
  else if (s.ceiling > 0 && s.rate >= 0.95 * s.ceiling) up = params.creep;
  let clamped = target;
  // Back under the setpoint after a cut (the backlog drained): return to just under the
  // throughput the upstream last sustained in one step, like TCP's fast recovery to ssthresh.
  let upLimit = current + Math.log(1 + up);
  if (s.ceiling > 0 && measured <= 0.8 * params.setpoint && s.rate < 0.95 * s.ceiling) {
    const recovery = Math.log(0.95 * s.ceiling);
    if (recovery > upLimit) upLimit = recovery;
    if (clamped < recovery) clamped = recovery;
  }
  if (clamped > upLimit) clamped = upLimit;
  if (clamped < current + Math.log(1 - params.maxDecrease)) clamped = current + Math.log(1 - params.maxDecrease);
  if (e < 0 && goodRate > 0) {
    // The floor falls as the signal rises: a deep backlog must drain, a shallow one must not undershoot.
    let share = params.setpoint / measured;
    share = share < 0.5 ? 0.5 : share > 0.9 ? 0.9 : share;
    const floor = Math.log(share * goodRate);
    // Far over the setpoint (twice or more), go straight to the floor, as fast as max_decrease allows.
    if (measured >= 2 * params.setpoint && floor < clamped) clamped = Math.max(floor, current + Math.log(1 - params.maxDecrease));
    if (clamped < floor && clamped < current) clamped = Math.min(current, floor);
  }
  // Still over the setpoint but falling fast: the backlog is draining; hold instead of cutting more.
  if (e < 0 && previous > 0 && measured < 0.7 * previous && clamped < current) clamped = current;
  // App-limited: while demand stays under 90% of the rate and (almost) nothing was turned
  // away, the limit binds nothing and raising it tells nothing (and would leave no protection
  // for a surge); hold it.
  if (clamped > current && demand < APP_LIMITED * s.rate && rejectedShare < BINDING) clamped = current;
  // Guard-bound: traffic is turned away while under 90% of the rate is admitted, so the in-flight
  // guard, not the rate, is what holds it. With requests queueing (the mean latency past the
  // healthy one) the service is saturated at the guard's bound: a higher rate would only raise
  // that bound and the queue behind it, not the throughput, so hold. Far under the setpoint the
  // bound may be tighter than the service's parallelism: creep. Without queueing the bound is
  // too tight for the traffic (bursts after an overload): the rate, and with it the bound, rises.
  const guardBound = params.guarded && queueing && rejectedShare >= BINDING && demand * (1 - rejectedShare) < APP_LIMITED * s.rate;
  if (guardBound && target > current) {
    // The bound is a whole number of requests: up to `sameBoundUpTo` (the caller's highest rate
    // that leaves it where it is) a higher rate raises no queue, it only lets the bound's places
    // be refilled sooner, so the rate rises (at max_step, the learned capacity's creep aside:
    // the bound, not the rate, holds the queue). One server behind a bound of two needs this.
    let room = sameBoundUpTo > 0 ? Math.log(sameBoundUpTo) : current;
    if (room > current + Math.log(1 + params.maxStep)) room = current + Math.log(1 + params.maxStep);
    if (room < current) room = current;
    if (measured > 0.5 * params.setpoint) clamped = target < room ? target : room;
    else {
      const creep = current + Math.log(1 + params.creep);
      const most = room > creep ? room : creep;
      if (clamped > most) clamped = most;
    }
  }
  // Over the setpoint with a queue beyond doubt (`deepCut`: the caller also checked that the
  // guard's bound would fall with R, not sit at its floor of two requests) and the throughput
  // held: the bound (R x W) is past what keeps the service busy, so the queue behind it is
  // only latency. Cut R to GUARD_THROUGHPUT x the throughput,
  // deeper than the PID's own step: the bound then sits near the service's parallelism, and R
  // stays above what the service completes. A falling throughput stops it: a service that got
  // slower (not queued) would otherwise lower its own bound, its throughput and R again, step
  // after step. Under the setpoint it does not apply, even with the guard binding: a healthy
  // service's bursts bind the guard too.
  const lastGood = s.lastGoodRate;
  if (goodRate > 0) s.lastGoodRate = goodRate;
  if (params.guarded && deepCut && e < 0 && goodRate > 0 && goodRate >= THROUGHPUT_HELD * lastGood) {
    // At most max_decrease below what was admitted (an open R far above demand counts as demand).
    const toward = Math.log(GUARD_THROUGHPUT * goodRate);
    const from = Math.log(demand > 0 && demand < s.rate ? demand : s.rate);
    if (toward < clamped) clamped = Math.max(toward, from + Math.log(1 - params.maxDecrease));
  }
  if (clamped > Math.log(params.maxRate)) clamped = Math.log(params.maxRate);
  if (clamped < Math.log(params.minRate)) clamped = Math.log(params.minRate);
  if (clamped != target) integral = clamped - p - d;
  const before = s.rate;
  s.integral = integral;
  s.p = p;
  s.i = integral;
  s.d = d;
  // Exact values when held or pinned at a bound (exp(log(x)) is not always x).
  if (clamped == Math.log(before)) s.rate = before;
  else if (clamped == Math.log(params.maxRate)) s.rate = params.maxRate;
  else if (clamped == Math.log(params.minRate)) s.rate = params.minRate;
  else s.rate = Math.exp(clamped);
  s.epoch++;
  return s.rate != before;
}
