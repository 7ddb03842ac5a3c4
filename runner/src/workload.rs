//! Arrival processes: the workloads of SIMULATOR.md, seeded, as streams of
//! arrival [`Instant`]s from the run's start.
//!
//! | spec | arrivals |
//! |---|---|
//! | `fixed:50ms` | one request every 50 ms |
//! | `bursty:10@500ms` | 10 requests together every 500 ms |
//! | `poisson:RATE` | Poisson, RATE per second |
//! | `trace:bellevue` | traffic-camera shaped: platoons released by ~90 s signal cycles, slowly drifting mean ~10/s |
//! | `trace:twitter` | per-second counts, heavy-tailed around a slowly varying mean, spikes of 3-6x for 10-60 s |
//! | `trace:azure` | per-minute timer spikes at the start of many minutes over a Poisson background |
//! | `file:PATH` | replay: CSV of arrival timestamps (s), or of `start_s,count` rows |
//!
//! The `trace:*` generators are synthetic stand-ins shaped like the public traces the
//! paper used; real trace files replay with `file:`.
//!
//! Arrivals are timed in microseconds, so no workload may average more than
//! [`MAX_RATE`] arrivals per second, and a trace file spans at most
//! [`MAX_TRACE_S`]: beyond that a generator outruns any service (the run
//! would never reach its end) and the arithmetic would lose arrivals.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal, Poisson};
use rand_xoshiro::Xoshiro256PlusPlus;

use ecoedge_core::time::{Duration, Instant};

use crate::units::{format_duration, parse_duration};

/// Most arrivals per second a workload may average: one per microsecond, the
/// resolution of arrival times.
pub const MAX_RATE: f64 = 1e6;

/// Latest timestamp of a trace file, seconds (a year): far beyond any run, and
/// far from overflowing microsecond arithmetic.
pub const MAX_TRACE_S: f64 = 365.0 * 86_400.0;

/// Refuses a mean rate above [`MAX_RATE`].
fn check_rate(per_s: f64) -> Result<(), String> {
    if per_s > MAX_RATE {
        return Err(format!(
            "{per_s} arrivals per second is beyond the time resolution (at most {MAX_RATE} per second, one per microsecond)"
        ));
    }
    Ok(())
}

/// A workload named on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// One request every `gap`.
    Fixed {
        /// Inter-arrival time.
        gap: Duration,
    },
    /// `count` requests at once every `period`.
    Bursty {
        /// Requests per burst.
        count: u32,
        /// Burst period.
        period: Duration,
    },
    /// Poisson arrivals at `rate` per second.
    Poisson {
        /// Mean arrivals per second.
        rate: f64,
    },
    /// A synthetic trace.
    Trace(Trace),
    /// Replay of a trace file.
    File(PathBuf),
}

/// The synthetic traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trace {
    /// Traffic-camera video analytics (Bellevue).
    Bellevue,
    /// Content moderation of a social stream (Twitter).
    Twitter,
    /// Serverless function invocations (Azure Functions).
    Azure,
    /// Held out: a day compressed into 3 hours (`shape::CYCLE_S`), the rate a sine
    /// between 0.2x and 1.8x the mean.
    Diurnal,
    /// Held out: a rate drawn afresh every 15 minutes (`shape::STEP_S`)
    /// from five levels (`shape::STEP_LEVELS`).
    Step,
    /// Held out: a slow triangle from 0.2x to 1.8x the mean and back over
    /// 3 hours (`shape::CYCLE_S`).
    Ramp,
}

/// The paper's evaluation suite, in the paper's order.
pub const PAPER_SUITE: [&str; 7] = [
    "fixed:50ms",
    "fixed:90ms",
    "bursty:10@500ms",
    "bursty:10@900ms",
    "trace:bellevue",
    "trace:twitter",
    "trace:azure",
];

/// Workloads outside the paper's, made to check that EcoGD adapts on any
/// traffic: written after EcoGD's constants were frozen, never used while
/// tuning (docs/evaluation.md), and reported apart from the paper's suite.
pub const UNSEEN_SUITE: [&str; 3] = ["trace:diurnal", "trace:step", "trace:ramp"];

impl Workload {
    /// Parses a workload spec such as `fixed:50ms` or `file:trace.csv`.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: &str| anyhow!("workload `{spec}`: {why}");
        let (kind, arg) = spec.split_once(':').ok_or_else(|| {
            bad("expected KIND:ARG, e.g. fixed:50ms, bursty:10@500ms, poisson:20, trace:bellevue, file:PATH")
        })?;
        match kind {
            "fixed" => {
                let gap = parse_duration(arg).map_err(|e| bad(&e))?;
                if gap == Duration::ZERO {
                    return Err(bad("the inter-arrival time must be positive"));
                }
                Ok(Workload::Fixed { gap })
            }
            "bursty" => {
                let (count, period) = arg
                    .split_once('@')
                    .ok_or_else(|| bad("expected COUNT@PERIOD, e.g. bursty:10@500ms"))?;
                let count: u32 = count
                    .parse()
                    .ok()
                    .filter(|&c| c > 0)
                    .ok_or_else(|| bad("the burst size must be a positive integer"))?;
                let period = parse_duration(period).map_err(|e| bad(&e))?;
                if period == Duration::ZERO {
                    return Err(bad("the burst period must be positive"));
                }
                check_rate(f64::from(count) / (period.as_micros() as f64 * 1e-6))
                    .map_err(|e| bad(&e))?;
                Ok(Workload::Bursty { count, period })
            }
            "poisson" => {
                let rate: f64 = arg
                    .parse()
                    .ok()
                    .filter(|r: &f64| r.is_finite() && *r > 0.0)
                    .ok_or_else(|| {
                        bad("the rate must be a positive number of requests per second")
                    })?;
                check_rate(rate).map_err(|e| bad(&e))?;
                Ok(Workload::Poisson { rate })
            }
            "trace" => match arg {
                "bellevue" => Ok(Workload::Trace(Trace::Bellevue)),
                "twitter" => Ok(Workload::Trace(Trace::Twitter)),
                "azure" => Ok(Workload::Trace(Trace::Azure)),
                "diurnal" => Ok(Workload::Trace(Trace::Diurnal)),
                "step" => Ok(Workload::Trace(Trace::Step)),
                "ramp" => Ok(Workload::Trace(Trace::Ramp)),
                _ => Err(bad(
                    "unknown trace (expected bellevue, twitter, azure, diurnal, step or ramp)",
                )),
            },
            "file" if !arg.is_empty() => Ok(Workload::File(PathBuf::from(arg))),
            "file" => Err(bad("expected a path after file:")),
            _ => Err(bad(
                "unknown kind (expected fixed, bursty, poisson, trace or file)",
            )),
        }
    }

    /// True for traces (`trace:` and `file:`), which run for a duration rather
    /// than a number of windows by default.
    pub fn is_trace(&self) -> bool {
        matches!(self, Workload::Trace(_) | Workload::File(_))
    }

    /// True when the arrivals depend on the seed (Poisson arrivals and the
    /// synthetic traces): each seed is another instance of the workload.
    pub fn varies_with_seed(&self) -> bool {
        matches!(self, Workload::Poisson { .. } | Workload::Trace(_))
    }

    /// Mean arrivals per second of a synthetic pattern; `None` for traces and
    /// files, whose rate changes over the run.
    pub fn mean_rate(&self) -> Option<f64> {
        let per_s = |count: f64, period: Duration| count / (period.as_micros() as f64 * 1e-6);
        match *self {
            Workload::Fixed { gap } => Some(per_s(1.0, gap)),
            Workload::Bursty { count, period } => Some(per_s(f64::from(count), period)),
            Workload::Poisson { rate } => Some(rate),
            Workload::Trace(_) | Workload::File(_) => None,
        }
    }

    /// The arrival stream for `seed`. Files are read here (errors name the line).
    pub fn arrivals(&self, seed: u64) -> Result<Arrivals> {
        let rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let source = match *self {
            Workload::Fixed { gap } => Source::Periodic {
                period_us: gap.as_micros(),
                count: 1,
            },
            Workload::Bursty { count, period } => Source::Periodic {
                period_us: period.as_micros(),
                count,
            },
            Workload::Poisson { rate } => Source::Poisson {
                gap: Exp::new(rate * 1e-6).map_err(|e| anyhow!("poisson rate {rate}: {e}"))?,
                at_us: 0.0,
            },
            Workload::Trace(t) => Source::Trace(TraceState::new(t)),
            Workload::File(ref path) => Source::File {
                rows: read_trace_file(path)?,
                row: 0,
                next: 0,
            },
        };
        Ok(Arrivals::new(source, rng))
    }
}

/// The arrivals of a trace file's text, as `file:` replays it (the format of
/// [`Workload::File`]); `origin` names the file in errors.
pub fn trace_arrivals(origin: &Path, text: &str) -> Result<Arrivals> {
    let source = Source::File {
        rows: parse_trace(origin, text)?,
        row: 0,
        next: 0,
    };
    Ok(Arrivals::new(source, Xoshiro256PlusPlus::seed_from_u64(0)))
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::Fixed { gap } => {
                write!(f, "fixed:{}", format_duration(*gap))
            }
            Workload::Bursty { count, period } => {
                write!(f, "bursty:{count}@{}", format_duration(*period))
            }
            Workload::Poisson { rate } => write!(f, "poisson:{rate}"),
            Workload::Trace(Trace::Bellevue) => f.write_str("trace:bellevue"),
            Workload::Trace(Trace::Twitter) => f.write_str("trace:twitter"),
            Workload::Trace(Trace::Azure) => f.write_str("trace:azure"),
            Workload::Trace(Trace::Diurnal) => f.write_str("trace:diurnal"),
            Workload::Trace(Trace::Step) => f.write_str("trace:step"),
            Workload::Trace(Trace::Ramp) => f.write_str("trace:ramp"),
            Workload::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// Shapes of the synthetic traces, every constant in one place.
mod shape {
    /// Mean arrival rate of every synthetic trace, per second.
    pub const MEAN_RATE: f64 = 10.0;
    /// Bellevue: traffic-signal cycle, seconds.
    pub const SIGNAL_CYCLE_S: f64 = 90.0;
    /// Bellevue: share of the cycle that is green (platoons pass).
    pub const GREEN_SHARE: f64 = 0.35;
    /// Bellevue: rate multiplier during red (turning traffic only).
    pub const RED_FACTOR: f64 = 0.25;
    /// Bellevue: slow drift of the mean, amplitude and period (s).
    pub const DRIFT: f64 = 0.3;
    /// Bellevue and Twitter: drift period, seconds.
    pub const DRIFT_PERIOD_S: f64 = 2.0 * 3600.0;
    /// Bellevue: spread of platoon sizes between cycles (log-normal sigma).
    pub const PLATOON_SIGMA: f64 = 0.3;
    /// Twitter: per-second count spread (log-normal sigma: heavy right tail).
    pub const SECOND_SIGMA: f64 = 0.6;
    /// Twitter: mean time between spikes, seconds.
    pub const SPIKE_EVERY_S: f64 = 900.0;
    /// Twitter: spike length range, seconds.
    pub const SPIKE_LEN_S: (f64, f64) = (10.0, 60.0);
    /// Twitter: spike height range, multiples of the mean.
    pub const SPIKE_FACTOR: (f64, f64) = (3.0, 6.0);
    /// Azure: share of minutes that start with a timer spike.
    pub const TIMER_SHARE: f64 = 0.6;
    /// Azure: mean requests per timer spike.
    pub const TIMER_MEAN: f64 = 150.0;
    /// Azure: the spike lands within this many seconds of the minute's start.
    pub const TIMER_SPREAD_S: f64 = 2.0;
    /// Diurnal and ramp: one cycle (a day, compressed into the default
    /// 3 h of a trace run), seconds.
    pub const CYCLE_S: f64 = 3.0 * 3600.0;
    /// Diurnal and ramp: the rate swings between (1 - this) and (1 + this)
    /// times the mean.
    pub const SWING: f64 = 0.8;
    /// Step: how long each rate holds, seconds.
    pub const STEP_S: u64 = 15 * 60;
    /// Step: the rates drawn from, multiples of the mean (their mean is 1).
    pub const STEP_LEVELS: [f64; 5] = [0.3, 0.6, 1.0, 1.4, 1.7];
}

/// Per-slot generator state of a synthetic trace.
#[derive(Debug, Clone)]
struct TraceState {
    trace: Trace,
    /// Twitter: the spike in force, (end second, factor). Step: the level in
    /// force (until `u64::MAX`: a step has no end of its own).
    spike: Option<(u64, f64)>,
    /// Bellevue: this cycle's platoon size factor.
    platoon: f64,
}

impl TraceState {
    fn new(trace: Trace) -> Self {
        TraceState {
            trace,
            spike: None,
            platoon: 1.0,
        }
    }

    /// Slot length: traces are generated a second (all but Azure) or a
    /// minute (Azure) at a time.
    fn slot_us(&self) -> u64 {
        match self.trace {
            Trace::Azure => 60_000_000,
            _ => 1_000_000,
        }
    }

    /// Fills `out` with the arrivals of slot `slot` (unsorted offsets within it).
    fn fill(&mut self, slot: u64, rng: &mut Xoshiro256PlusPlus, out: &mut Vec<u64>) {
        use shape::*;
        let slot_us = self.slot_us();
        let t = slot as f64 * slot_us as f64 * 1e-6;
        match self.trace {
            Trace::Bellevue => {
                let phase = (t % SIGNAL_CYCLE_S) / SIGNAL_CYCLE_S;
                if phase == 0.0 || slot == 0 {
                    let ln = LogNormal::new(-0.5 * PLATOON_SIGMA * PLATOON_SIGMA, PLATOON_SIGMA)
                        .expect("constant sigma is valid");
                    self.platoon = ln.sample(rng);
                }
                let drift = 1.0 + DRIFT * (std::f64::consts::TAU * t / DRIFT_PERIOD_S).sin();
                // Green carries what red held back, so the cycle mean stays 1.
                let green = (1.0 - (1.0 - GREEN_SHARE) * RED_FACTOR) / GREEN_SHARE;
                let factor = if phase < GREEN_SHARE {
                    green * self.platoon
                } else {
                    RED_FACTOR
                };
                let n = poisson(rng, MEAN_RATE * drift * factor);
                uniform(rng, n, slot_us, out);
            }
            Trace::Twitter => {
                let sec = slot;
                if self.spike.is_some_and(|(end, _)| sec >= end) {
                    self.spike = None;
                }
                if self.spike.is_none() && rng.random::<f64>() < 1.0 / SPIKE_EVERY_S {
                    let len = rng.random_range(SPIKE_LEN_S.0..SPIKE_LEN_S.1);
                    let height = rng.random_range(SPIKE_FACTOR.0..SPIKE_FACTOR.1);
                    self.spike = Some((sec + len as u64, height));
                }
                let drift = 1.0 + 0.4 * (std::f64::consts::TAU * t / DRIFT_PERIOD_S + 1.0).sin();
                let ln = LogNormal::new(-0.5 * SECOND_SIGMA * SECOND_SIGMA, SECOND_SIGMA)
                    .expect("constant sigma is valid");
                let spike = self.spike.map_or(1.0, |(_, h)| h);
                let spread = ln.sample(rng);
                let n = poisson(rng, MEAN_RATE * drift * spike * spread);
                uniform(rng, n, slot_us, out);
            }
            Trace::Diurnal => {
                let swing = SWING * (std::f64::consts::TAU * t / CYCLE_S).sin();
                let n = poisson(rng, MEAN_RATE * (1.0 + swing));
                uniform(rng, n, slot_us, out);
            }
            Trace::Step => {
                if slot.is_multiple_of(STEP_S) || self.spike.is_none() {
                    let level = STEP_LEVELS[rng.random_range(0..STEP_LEVELS.len())];
                    self.spike = Some((u64::MAX, level));
                }
                let level = self.spike.map_or(1.0, |(_, l)| l);
                let n = poisson(rng, MEAN_RATE * level);
                uniform(rng, n, slot_us, out);
            }
            Trace::Ramp => {
                // 0 at the cycle's start and end, 1 at its middle.
                let up = 1.0 - (2.0 * (t % CYCLE_S) / CYCLE_S - 1.0).abs();
                let n = poisson(rng, MEAN_RATE * (1.0 - SWING + 2.0 * SWING * up));
                uniform(rng, n, slot_us, out);
            }
            Trace::Azure => {
                let timer = TIMER_SHARE * TIMER_MEAN / 60.0;
                let background = poisson(rng, (MEAN_RATE - timer) * 60.0);
                uniform(rng, background, slot_us, out);
                if rng.random::<f64>() < TIMER_SHARE {
                    let n = poisson(rng, TIMER_MEAN);
                    uniform(rng, n, (TIMER_SPREAD_S * 1e6) as u64, out);
                }
            }
        }
    }
}

/// Appends `n` arrival offsets drawn uniformly in `[0, within_us)`.
fn uniform(rng: &mut Xoshiro256PlusPlus, n: u64, within_us: u64, out: &mut Vec<u64>) {
    out.extend((0..n).map(|_| rng.random_range(0..within_us.max(1))));
}

fn poisson(rng: &mut Xoshiro256PlusPlus, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean).map_or(0, |p| p.sample(rng) as u64)
}

#[derive(Debug, Clone)]
enum Source {
    Periodic {
        period_us: u64,
        count: u32,
    },
    /// Gaps in microseconds, summed unrounded: rounding each gap would bias
    /// the rate (truncated gaps made `poisson:1e6` 72 % too fast).
    Poisson {
        gap: Exp<f64>,
        at_us: f64,
    },
    Trace(TraceState),
    /// A trace file's rows, spread into arrivals as they are needed: a row
    /// of a million requests costs no memory until it is replayed.
    File {
        rows: Vec<TraceRow>,
        row: usize,
        /// Arrivals of `rows[row]` already given.
        next: u64,
    },
}

/// One row of a trace file: `count` arrivals spread evenly over `span_us` from
/// `start_us` (a timestamp row is one arrival with no span).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TraceRow {
    start_us: u64,
    span_us: u64,
    count: u64,
}

impl TraceRow {
    /// The `j`-th arrival of the row (`j < count`), in u128 so `span * j`
    /// cannot overflow.
    fn at(&self, j: u64) -> u64 {
        let offset = u128::from(self.span_us) * u128::from(j) / u128::from(self.count);
        // Cannot exceed span_us, which fits a u64.
        self.start_us + offset as u64
    }
}

/// A deterministic stream of arrival times (from the run's start, non-decreasing).
#[derive(Debug, Clone)]
pub struct Arrivals {
    source: Source,
    rng: Xoshiro256PlusPlus,
    next_slot: u64,
    emitted_in_slot: u32,
    /// Arrivals of the current slot, sorted descending so `pop` gives the next.
    pending: Vec<u64>,
    pending_at: u64,
}

impl Arrivals {
    fn new(source: Source, rng: Xoshiro256PlusPlus) -> Self {
        Arrivals {
            source,
            rng,
            next_slot: 0,
            emitted_in_slot: 0,
            pending: Vec::new(),
            pending_at: 0,
        }
    }
}

impl Iterator for Arrivals {
    type Item = Instant;

    fn next(&mut self) -> Option<Instant> {
        let t = match &mut self.source {
            Source::Periodic { period_us, count } => {
                let t = self.next_slot.saturating_mul(*period_us);
                self.emitted_in_slot += 1;
                if self.emitted_in_slot >= *count {
                    self.emitted_in_slot = 0;
                    self.next_slot += 1;
                }
                t
            }
            Source::Poisson { gap, at_us } => {
                *at_us += gap.sample(&mut self.rng);
                // Saturates at u64::MAX: past the end of any run.
                *at_us as u64
            }
            Source::Trace(state) => loop {
                if let Some(offset) = self.pending.pop() {
                    break self.pending_at.saturating_add(offset);
                }
                self.pending_at = self.next_slot.saturating_mul(state.slot_us());
                state.fill(self.next_slot, &mut self.rng, &mut self.pending);
                self.pending.sort_unstable_by(|a, b| b.cmp(a));
                self.next_slot += 1;
            },
            Source::File { rows, row, next } => loop {
                let r = rows.get(*row)?;
                if *next < r.count {
                    *next += 1;
                    break r.at(*next - 1);
                }
                *row += 1;
                *next = 0;
            },
        };
        Some(Instant::from_micros(t))
    }
}

/// Reads a trace file: one timestamp in seconds per line, or `start_s,count`
/// rows whose requests spread evenly over the interval to the next row's start
/// (one second for the last row). A first line that is not numeric is a header.
/// Times beyond [`MAX_TRACE_S`] and rows denser than [`MAX_RATE`] are refused,
/// naming the line; counts are kept as rows, not spread into arrivals here.
fn read_trace_file(path: &Path) -> Result<Vec<TraceRow>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read trace file {}", path.display()))?;
    parse_trace(path, &text)
}

/// The rows of trace file text (see [`read_trace_file`]); `path` names the
/// file in errors.
fn parse_trace(path: &Path, text: &str) -> Result<Vec<TraceRow>> {
    let mut rows: Vec<(usize, f64, Option<u64>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let start = fields[0].parse::<f64>();
        if start.is_err() && rows.is_empty() && i == 0 {
            continue; // header
        }
        let where_ = || format!("{}:{n}", path.display());
        let start = start
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| anyhow!("{}: `{}` is not a time in seconds", where_(), fields[0]))?;
        if start > MAX_TRACE_S {
            bail!(
                "{}: time `{}` s is beyond the longest trace ({MAX_TRACE_S} s, a year)",
                where_(),
                fields[0]
            );
        }
        let count =
            match fields.len() {
                1 => None,
                2 => Some(fields[1].parse::<u64>().map_err(|_| {
                    anyhow!("{}: `{}` is not a request count", where_(), fields[1])
                })?),
                k => bail!(
                    "{}: expected 1 or 2 comma-separated fields, found {k}",
                    where_()
                ),
            };
        if let Some(&(_, prev, prev_count)) = rows.last() {
            if start < prev {
                bail!(
                    "{}: time {start} s is before the previous row's {prev} s",
                    where_()
                );
            }
            if prev_count.is_some() != count.is_some() {
                bail!("{}: rows mix timestamps and start_s,count", where_());
            }
        }
        rows.push((n, start, count));
    }
    if rows.is_empty() {
        bail!("{}: the trace has no arrivals", path.display());
    }
    spread(path, &rows)
}

/// The rows of a trace file as [`TraceRow`]s, refusing a row whose requests
/// are denser than one per microsecond over its interval.
fn spread(path: &Path, rows: &[(usize, f64, Option<u64>)]) -> Result<Vec<TraceRow>> {
    let us = |s: f64| (s * 1e6).round() as u64;
    let mut out = Vec::with_capacity(rows.len());
    for (k, &(n, start, count)) in rows.iter().enumerate() {
        let row = match count {
            None => TraceRow {
                start_us: us(start),
                span_us: 0,
                count: 1,
            },
            Some(count) => {
                let end = rows.get(k + 1).map_or(start + 1.0, |r| r.1);
                let span_us = us(end) - us(start);
                if count > span_us {
                    bail!(
                        "{}:{n}: {count} requests in {} s is beyond the time resolution (at most one per microsecond)",
                        path.display(),
                        span_us as f64 * 1e-6
                    );
                }
                TraceRow {
                    start_us: us(start),
                    span_us,
                    count,
                }
            }
        };
        out.push(row);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(spec: &str, seed: u64, n: usize) -> Vec<u64> {
        Workload::parse(spec)
            .unwrap()
            .arrivals(seed)
            .unwrap()
            .take(n)
            .map(Instant::as_micros)
            .collect()
    }

    fn rate_over(spec: &str, seconds: u64) -> f64 {
        let a = Workload::parse(spec).unwrap().arrivals(1).unwrap();
        let n = a
            .map(Instant::as_micros)
            .take_while(|&t| t < seconds * 1_000_000)
            .count();
        n as f64 / seconds as f64
    }

    #[test]
    fn specs_parse_and_print_back() {
        for spec in PAPER_SUITE
            .iter()
            .chain(&UNSEEN_SUITE)
            .chain(&["poisson:20", "file:x.csv"])
        {
            assert_eq!(Workload::parse(spec).unwrap().to_string(), *spec);
        }
        for bad in [
            "fixed",
            "fixed:0ms",
            "fixed:fast",
            "bursty:10",
            "bursty:0@1s",
            "poisson:-1",
            "trace:nyc",
            "file:",
            "zipf:1",
        ] {
            let e = Workload::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("workload `{bad}`")), "{e}");
        }
    }

    #[test]
    fn synthetic_patterns_are_exact() {
        assert_eq!(take("fixed:50ms", 1, 3), [0, 50_000, 100_000]);
        assert_eq!(take("bursty:3@1s", 1, 5), [0, 0, 0, 1_000_000, 1_000_000]);
    }

    #[test]
    fn seeded_streams_repeat_and_differ_by_seed() {
        for spec in [
            "poisson:20",
            "trace:bellevue",
            "trace:twitter",
            "trace:azure",
        ] {
            let a = take(spec, 7, 2_000);
            assert_eq!(a, take(spec, 7, 2_000), "{spec}");
            assert_ne!(a, take(spec, 8, 2_000), "{spec}");
            assert!(a.windows(2).all(|w| w[0] <= w[1]), "{spec} not sorted");
            assert!(Workload::parse(spec).unwrap().varies_with_seed(), "{spec}");
        }
        for spec in ["fixed:50ms", "bursty:10@500ms"] {
            assert_eq!(take(spec, 7, 100), take(spec, 8, 100), "{spec}");
            assert!(!Workload::parse(spec).unwrap().varies_with_seed(), "{spec}");
        }
    }

    #[test]
    fn patterns_know_their_mean_rate() {
        let rate = |spec: &str| Workload::parse(spec).unwrap().mean_rate();
        assert_eq!(rate("fixed:50ms"), Some(20.0));
        assert_eq!(rate("bursty:10@500ms"), Some(20.0));
        assert_eq!(rate("poisson:7.5"), Some(7.5));
        assert_eq!(rate("trace:twitter"), None);
    }

    #[test]
    fn traces_have_their_mean_rate_and_shape() {
        for spec in [
            "poisson:10",
            "trace:bellevue",
            "trace:twitter",
            "trace:azure",
            "trace:diurnal",
            "trace:step",
            "trace:ramp",
        ] {
            let r = rate_over(spec, 3 * 3600);
            assert!((7.0..13.0).contains(&r), "{spec}: {r}/s");
        }
        // The held-out shapes: per 15-minute block of the 3 h cycle.
        let blocks = |spec: &str| -> Vec<f64> {
            let mut n = [0u64; 12];
            for t in Workload::parse(spec)
                .unwrap()
                .arrivals(5)
                .unwrap()
                .map(Instant::as_micros)
                .take_while(|&t| t < 3 * 3_600_000_000)
            {
                n[(t / 900_000_000) as usize] += 1;
            }
            n.iter().map(|&c| c as f64 / 900.0).collect()
        };
        let d = blocks("trace:diurnal");
        assert!(d[2] > 15.0 && d[8] < 5.0, "diurnal peaks then ebbs: {d:?}");
        let r = blocks("trace:ramp");
        assert!(
            r[0] < 5.0 && r[5] > 15.0 && r[11] < 5.0,
            "ramp up, down: {r:?}"
        );
        assert!(r[..6].windows(2).all(|w| w[0] < w[1]), "{r:?}");
        let s = blocks("trace:step");
        let levels: Vec<f64> = shape::STEP_LEVELS.iter().map(|l| l * 10.0).collect();
        for (i, b) in s.iter().enumerate() {
            assert!(
                levels.iter().any(|l| (b - l).abs() < 1.0),
                "block {i}: {b}/s is one level {levels:?}"
            );
        }
        // Bellevue: green phases carry most traffic.
        let a: Vec<u64> = Workload::parse("trace:bellevue")
            .unwrap()
            .arrivals(3)
            .unwrap()
            .map(Instant::as_micros)
            .take_while(|&t| t < 3_600_000_000)
            .collect();
        let green = a
            .iter()
            .filter(|&&t| (t as f64 * 1e-6) % 90.0 < 90.0 * 0.35)
            .count();
        assert!(green as f64 > 0.8 * a.len() as f64);
        // Azure: the first 2 s of minutes are far busier than the rest.
        let a: Vec<u64> = Workload::parse("trace:azure")
            .unwrap()
            .arrivals(3)
            .unwrap()
            .map(Instant::as_micros)
            .take_while(|&t| t < 3_600_000_000)
            .collect();
        let head = a.iter().filter(|&&t| t % 60_000_000 < 2_000_000).count() as f64 / 2.0;
        let rest = (a.len() as f64 - 2.0 * head) / 58.0;
        assert!(head > 5.0 * rest, "head {head}/s rest {rest}/s");
    }

    fn replay(path: &Path) -> Vec<u64> {
        Workload::File(path.to_path_buf())
            .arrivals(1)
            .unwrap()
            .map(Instant::as_micros)
            .collect()
    }

    #[test]
    fn poisson_rates_are_exact_up_to_the_time_resolution() {
        // Truncating each gap to whole microseconds made 1e6/s 72 % too fast.
        for rate in [1e5, 1e6] {
            let r = rate_over(&format!("poisson:{rate}"), 2);
            assert!((r / rate - 1.0).abs() < 0.01, "poisson:{rate}: {r}/s");
        }
    }

    #[test]
    fn rates_beyond_the_time_resolution_are_refused() {
        for spec in ["poisson:1e9", "poisson:1000001", "bursty:2000@1ms"] {
            let e = Workload::parse(spec).unwrap_err().to_string();
            assert!(e.contains("beyond the time resolution"), "{spec}: {e}");
        }
        for spec in ["poisson:1e6", "bursty:1000@1ms", "fixed:1us"] {
            Workload::parse(spec).unwrap();
        }
    }

    #[test]
    fn trace_files_are_limited_before_anything_is_allocated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        for (text, want) in [
            // 8 TB of timestamps, once.
            (
                "0,1000000000000\n",
                "t.csv:1: 1000000000000 requests in 1 s is beyond",
            ),
            ("0,5\n0,1\n", "t.csv:1: 5 requests in 0 s is beyond"),
            (
                "0,3\n1e13,1\n",
                "t.csv:2: time `1e13` s is beyond the longest",
            ),
            ("1e300\n", "t.csv:1: time `1e300` s is beyond the longest"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Workload::File(p.clone())
                .arrivals(1)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        // A long interval spreads without overflow (span * j took 2e19 before).
        std::fs::write(&p, "0,3\n30000000,1\n").unwrap();
        let year_us = 30_000_000_000_000;
        assert_eq!(replay(&p), [0, year_us / 3, 2 * year_us / 3, year_us]);
    }

    #[test]
    fn trace_files_in_both_formats_with_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "timestamp\n0.5\n1.0\n1.0\n").unwrap();
        assert_eq!(replay(&p), [500_000, 1_000_000, 1_000_000]);
        std::fs::write(&p, "start_s,count\n0,2\n2,1\n").unwrap();
        assert_eq!(replay(&p), [0, 1_000_000, 2_000_000]);
        for (text, want) in [
            ("1\nx\n", "t.csv:2: `x` is not a time"),
            ("2\n1\n", "t.csv:2: time 1 s is before"),
            ("0,1\n1\n", "t.csv:2: rows mix"),
            ("0,a\n", "t.csv:1: `a` is not a request count"),
            ("0,1,2\n", "t.csv:1: expected 1 or 2"),
            ("header\n", "has no arrivals"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = read_trace_file(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = read_trace_file(&dir.path().join("missing.csv")).unwrap_err();
        assert!(e.to_string().contains("cannot read trace file"));
    }
}
