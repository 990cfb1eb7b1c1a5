// The control law. The controller acts on the admitted rate R (requests/s) in log space, so a
// step is a relative change whatever the scale:
//   e = clamp((setpoint - y) / setpoint, -1, 1)        (positive: room to admit more)
//   yf = a*y + (1-a)*yf                                 (filtered measurement)
//   I += ki * e * dt                                    (dt in seconds, clock jumps capped)
//   D = -kd * (yf - yf_prev) / setpoint / dt            (on the measurement, not the error)
//   log R = kp*e + I + D           (cold start: I = log initial_rate, so R starts there)
// then clamped to one `max_step` relative change per interval and to [min, max]; when clamped,
// I is recomputed so the output is exactly the clamped one (back-calculation anti-windup).
// Too few samples: no change at all. Demand below half the rate: no increase (app-limited).

export class PidParams {
  kp: f64 = 0.6;
  ki: f64 = 0.3;
  kd: f64 = 0.1;
  setpoint: f64 = 200;
  minRate: f64 = 1;
  maxRate: f64 = 100000;
  initialRate: f64 = 100;
  maxStep: f64 = 0.25;
  minSamples: i64 = 20;
  filter: f64 = 0.5;
  intervalMs: f64 = 1000;
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
  return s;
}

/**
 * One control step. `measured` is the signal over the last interval (latency percentile in
 * ms, or error ratio), `samples` the completed requests behind it, `demand` the requests/s
 * that arrived (admitted or not). Returns true when the rate changed.
 */
export function step(params: PidParams, s: PidState, measured: f64, samples: i64, demand: f64, nowMs: f64): bool {
  let dt = (nowMs - s.lastStepMs) / 1000.0;
  s.lastStepMs = nowMs;
  // A clock jump (or a first step after a long pause) must not inflate the integral.
  const nominal = params.intervalMs / 1000.0;
  if (!(dt > 0) || dt > 3 * nominal) dt = nominal;
  if (samples < params.minSamples || !(measured >= 0)) return false;
  s.measured = measured;
  let e = (params.setpoint - measured) / params.setpoint;
  if (e > 1) e = 1;
  if (e < -1) e = -1;
  const prevFiltered = s.hasFiltered ? s.filtered : measured;
  s.filtered = s.hasFiltered ? params.filter * measured + (1 - params.filter) * s.filtered : measured;
  s.hasFiltered = true;
  const d = -params.kd * (s.filtered - prevFiltered) / params.setpoint / dt;
  let integral = s.integral + params.ki * e * dt;
  const p = params.kp * e;
  let target = p + integral + d;
  const current = Math.log(s.rate);
  const stepLimit = Math.log(1 + params.maxStep);
  let clamped = target;
  if (clamped > current + stepLimit) clamped = current + stepLimit;
  if (clamped < current - stepLimit) clamped = current - stepLimit;
  // App-limited: with demand under half the rate, raising the rate tells nothing; hold it.
  if (clamped > current && demand < 0.5 * s.rate) clamped = current;
  if (clamped > Math.log(params.maxRate)) clamped = Math.log(params.maxRate);
  if (clamped < Math.log(params.minRate)) clamped = Math.log(params.minRate);
  if (clamped != target) integral = clamped - p - d;
  s.integral = integral;
  s.p = p;
  s.i = integral;
  s.d = d;
  const before = s.rate;
  s.rate = Math.exp(clamped);
  s.epoch++;
  return s.rate != before;
}
