import { Histogram, bucketOf, bucketUpper, BUCKETS } from "../histogram";
import { PidParams, PidState, bumpless, coldStart, step } from "../pid";

function params(): PidParams {
  const p = new PidParams();
  p.setpoint = 100;
  p.minRate = 10;
  p.maxRate = 1000;
  p.initialRate = 100;
  p.minSamples = 20;
  p.intervalMs = 1000;
  return p;
}

/** A controller already at `rate` (as if it had been stepping there). */
function atRate(p: PidParams, rate: f64): PidState {
  const s = coldStart(p, 0);
  s.rate = rate;
  s.integral = Math.log(rate);
  return s;
}

describe("histogram", () => {
  it("puts latencies in 10% buckets and reads quantiles as bucket bounds", () => {
    expect(bucketOf(0.05)).toBe(0);
    expect(bucketOf(-1)).toBe(0);
    expect(bucketOf(NaN)).toBe(0);
    expect(bucketOf(1e9)).toBe(BUCKETS - 1);
    const h = new Histogram();
    for (let i = 1; i <= 100; i++) h.record(<f64>i);
    const p50 = h.quantile(0.5), p99 = h.quantile(0.99);
    expect(p50 >= 50 && p50 <= 55).toBe(true);
    expect(p99 >= 99 && p99 <= 109).toBe(true);
    expect(new Histogram().quantile(0.9)).toBe(-1);
    expect(bucketUpper(bucketOf(42)) >= 42).toBe(true);
  });

  it("reads the mean at bucket upper bounds: at most 10% high, never low", () => {
    const h = new Histogram();
    expect(h.mean()).toBe(-1);
    for (let i = 0; i < 50; i++) { h.record(20); h.record(80); }
    const m = h.mean();
    expect(m >= 50 && m <= 55).toBe(true);
  });

  it("sums deltas of cumulative snapshots, restarting counters from zero", () => {
    const a = new StaticArray<u32>(BUCKETS), b = new StaticArray<u32>(BUCKETS);
    a[10] = 5; b[10] = 8; b[20] = 2;
    const h = new Histogram();
    h.addDelta(b, a);
    expect(h.total).toBe(5);
    const restarted = new StaticArray<u32>(BUCKETS);
    restarted[10] = 3;
    const g = new Histogram();
    g.addDelta(restarted, b);
    expect(g.total).toBe(3);
  });
});

describe("PID step", () => {
  it("starts cold at the initial rate, never at zero", () => {
    const s = coldStart(params(), 0);
    expect(s.rate).toBe(100);
  });

  it("changes nothing with too few samples, and no sample at all", () => {
    const p = params(), s = coldStart(p, 0);
    expect(step(p, s, 500, 5, 200, 1000)).toBe(false);
    expect(step(p, s, -1, 0, 200, 2000)).toBe(false);
    expect(s.rate).toBe(100);
  });

  it("raises the rate below the setpoint by at most max_step per interval", () => {
    const p = params(), s = coldStart(p, 0);
    step(p, s, 20, 100, 200, 1000);
    expect(s.rate <= 100 * (1 + p.maxStep) + 1e-9).toBe(true);
    expect(s.rate > 100).toBe(true);
  });

  it("cuts over the setpoint by at most max_decrease, from what was admitted", () => {
    const p = params(), s = coldStart(p, 0);
    step(p, s, 150, 100, 80, 1000); // demand 80 < rate 100: the cut starts from 80
    expect(s.rate < 80).toBe(true);
    expect(s.rate >= 80 * (1 - p.maxDecrease) - 1e-9).toBe(true);
  });

  it("does not raise an app-limited rate", () => {
    const p = params(), s = coldStart(p, 0);
    step(p, s, 20, 100, 30, 1000); // demand 30 < 90% of 100
    expect(s.rate).toBe(100);
    step(p, s, 20, 100, 85, 2000); // 85 is still under 90%: the limit binds nothing
    expect(s.rate).toBe(100);
  });

  it("raises a rate under-used on average when it still turned traffic away", () => {
    const p = params(), s = coldStart(p, 0);
    step(p, s, 20, 100, 85, 1000, 80, 0.02); // 2% rejected (bursts, or the in-flight guard)
    expect(s.rate > 100).toBe(true);
    expect(s.rate <= 100 * (1 + p.maxStep) + 1e-9).toBe(true);
  });

  it("holds a rate the in-flight guard holds for it while requests queue: a higher rate would raise only the queue", () => {
    const p = params();
    p.guarded = true;
    // 300/s offered, 75% turned away (75/s admitted, under 90% of the rate of 100): the guard binds.
    const held = coldStart(p, 0);
    step(p, held, 70, 100, 300, 1000, 75, 0.75, 10, true);
    expect(held.rate).toBe(100);
    // Far under the setpoint, the bound may be too tight: the rate creeps.
    const far = coldStart(p, 0);
    step(p, far, 30, 100, 300, 1000, 75, 0.75, 10, true);
    expect(far.rate > 100).toBe(true);
    expect(far.rate <= 100 * (1 + p.creep) + 1e-9).toBe(true);
    // No queueing (the guard is too tight for bursts, not the service saturated): it rises.
    const free = coldStart(p, 0);
    step(p, free, 70, 100, 300, 1000, 75, 0.75, 10, false);
    expect(free.rate > 100 * (1 + p.creep)).toBe(true);
    // Without a guard the same readings raise the rate: the limit is what turned traffic away.
    const unguarded = coldStart(params(), 0);
    step(params(), unguarded, 70, 100, 300, 1000, 75, 0.75, 10, true);
    expect(unguarded.rate > 100 * (1 + p.creep)).toBe(true);
  });

  it("guard-bound with requests queueing, rises up to the rate that leaves the bound where it is (one server behind a bound of two)", () => {
    const p = params();
    p.guarded = true;
    // As in the hold above, but the caller says the bound stays as it is up to 160/s: within the
    // same whole number of requests a higher rate only refills the bound's places sooner.
    const rises = coldStart(p, 0);
    rises.ceiling = 100; // at the learned capacity, where the rate would otherwise creep
    step(p, rises, 70, 100, 300, 1000, 75, 0.75, 10, true, false, 160);
    expect(Math.abs(rises.rate - 100 * (1 + p.maxStep)) < 1e-6).toBe(true);
    // Never past that rate: the bound, and the queue behind it, would grow.
    const capped = coldStart(p, 0);
    step(p, capped, 70, 100, 300, 1000, 75, 0.75, 10, true, false, 104);
    expect(Math.abs(capped.rate - 104) < 1e-6).toBe(true);
    // Over the setpoint it does not apply: the PID's cut stands.
    const over = coldStart(p, 0);
    step(p, over, 130, 100, 300, 1000, 75, 0.75, 10, true, false, 160);
    expect(over.rate < 100).toBe(true);
  });

  it("over the setpoint with requests queueing, cuts to 1.25x the throughput (the guard's bound toward the service's parallelism)", () => {
    const p = params();
    p.guarded = true;
    p.maxRate = 10000;
    // 320/s completed of 960/s offered, the rate at 600: the PID alone would stop at 480 (half of
    // what was admitted, the floor of 0.83 x 320 below it); R x the guard's allowance would stay
    // past the service's parallelism, and the queue behind it would be latency only.
    const over = atRate(p, 600);
    step(p, over, 120, 100, 960, 1000, 320, 0.4, 30, true, true);
    expect(Math.abs(over.rate - 400) < 1e-6).toBe(true);
    // Not without a queue beyond doubt, or with a bound that would not fall (deepCut false).
    const floor = atRate(p, 600);
    step(p, floor, 120, 100, 960, 1000, 320, 0.4, 30, true, false);
    expect(floor.rate > 400).toBe(true);
    // Guard-bound under the setpoint: held, not brought down (a healthy service's bursts bind the
    // guard too, with a noisy mean that can pass for queueing).
    const bound = coldStart(p, 0);
    step(p, bound, 70, 100, 300, 1000, 75, 0.75, 10, true, true);
    expect(bound.rate).toBe(100);
  });

  it("does not cut with the throughput when the throughput falls (a slower service, not a queue) or without a guard", () => {
    const p = params();
    p.guarded = true;
    p.maxRate = 10000;
    const slower = atRate(p, 600);
    slower.lastGoodRate = 400;
    step(p, slower, 120, 100, 960, 1000, 320, 0.4, 30, true, true);
    expect(slower.rate > 400).toBe(true);
    expect(slower.lastGoodRate).toBe(320);
    const unguarded = atRate(params(), 600);
    step(params(), unguarded, 120, 100, 960, 1000, 320, 0.4, 30, true, true);
    expect(unguarded.rate > 400).toBe(true);
  });

  it("back under the setpoint after a cut, returns to 95% of the learned capacity in one step", () => {
    const p = params(), s = coldStart(p, 0);
    s.ceiling = 200;
    step(p, s, 40, 100, 300, 1000, 100); // 40 ms is well under the 100 ms setpoint
    expect(Math.abs(s.rate - 190) < 1e-6).toBe(true);
    // Near the setpoint (over 80% of it) the ordinary bound applies.
    const q = params(), t = coldStart(q, 0);
    t.ceiling = 200;
    step(q, t, 90, 100, 300, 1000, 100);
    expect(t.rate <= 100 * (1 + q.maxStep) + 1e-9).toBe(true);
  });

  it("creeps within 5% of the throughput where the setpoint was last crossed", () => {
    const p = params(), s = coldStart(p, 0);
    step(p, s, 20, 100, 500, 1000); // below: rate up
    step(p, s, 150, 100, 500, 2000, 120); // crossing: ceiling = 120 good/s
    expect(s.ceiling).toBe(120);
    s.rate = 116;
    step(p, s, 20, 100, 500, 3000);
    expect(s.rate <= 116 * (1 + p.creep) + 1e-9).toBe(true);
    s.rate = 100; // further below: the full step applies again
    step(p, s, 20, 100, 500, 4000);
    expect(s.rate > 100 * (1 + p.creep)).toBe(true);
  });

  it("forgets a learned capacity the service plainly exceeds: far under the setpoint while the limit binds, the full step applies", () => {
    // A noisy reading over the setpoint at low load (300/s) set the ceiling at 300/s; the real
    // capacity is far above. Now 1000/s are offered, a third is turned away, latency is 20 ms.
    const p = params(), s = coldStart(p, 0);
    p.maxRate = 5000;
    s.rate = 1000;
    s.integral = Math.log(1000);
    step(p, s, 150, 300, 300, 1000, 300);
    expect(s.ceiling).toBe(300);
    for (let t = 2; t <= 30; t++) step(p, s, 20, 1000, 1000, <f64>t * 1000, s.rate, 0.3);
    expect(s.rate >= 900).toBe(true);
  });

  it("never cuts below a share of the measured good throughput", () => {
    const p = params(), s = coldStart(p, 0);
    step(p, s, 1000, 100, 100, 1000, 90); // ten times the setpoint: share clamps at 0.5
    expect(s.rate >= 45 - 1e-9).toBe(true);
  });

  it("has no windup: after a long stretch pinned at max_rate, one violation cuts at once", () => {
    const p = params(), s = coldStart(p, 0);
    for (let t = 1; t <= 200; t++) step(p, s, 10, 1000, 100000, <f64>t * 1000);
    expect(s.rate).toBe(1000);
    step(p, s, 300, 1000, 100000, 201000);
    expect(s.rate < 1000).toBe(true);
  });

  it("caps dt after a clock jump, so the integral moves by one interval only", () => {
    const p = params(), s = coldStart(p, 0);
    step(p, s, 100, 100, 100, 1000); // at the setpoint: no drive
    const before = s.integral;
    step(p, s, 50, 100, 100, 1000 + 3600 * 1000); // an hour later
    expect(Math.abs(s.integral - before) <= p.ki * 0.5 * 1.0 + Math.log(1 + p.maxStep) + 1e-9).toBe(true);
  });

  it("bumpless: new parameters keep the current rate", () => {
    const p = params(), s = coldStart(p, 0);
    s.rate = 333;
    const q = params();
    q.kp = 2;
    const t = bumpless(q, s);
    expect(t.rate).toBe(333);
    expect(Math.abs(t.integral - Math.log(333)) < 1e-9).toBe(true);
  });
});
