//! The pictures a reader of the paper expects, as SVG and PNG: cost per window
//! for every optimizer (one chart per workload), during/after mean and p99 cost
//! per optimizer, and the energy-latency scatter of where each optimizer ended.
//!
//! Each chart is drawn once per backend by the same code. SVG stays crisp in a
//! browser; PNG is for the places that show no SVG (issue trackers, slides,
//! some markdown viewers). PNG text needs a real font: DejaVu Sans is embedded
//! (the `dejavu` crate) and rasterised by ab_glyph, so no system font library
//! or fontconfig is needed on a fresh machine or a board.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::TIMELINE_BIN;
use super::results::{CompareJson, ResultJson};
use crate::metrics::PhaseStats;

/// File-name form of a workload spec: `bursty:10@500ms` -> `bursty-10at500ms`.
pub fn slug(workload: &str) -> String {
    let mut s = String::with_capacity(workload.len());
    for c in workload.chars() {
        match c {
            '@' => s.push_str("at"),
            ':' | '/' | '\\' | '.' => s.push('-'),
            c if c.is_ascii_alphanumeric() || c == '-' => s.push(c),
            _ => s.push('_'),
        }
    }
    s
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e}")
}

/// Writes every chart of `doc` into `dir`, each as `NAME.svg` and `NAME.png`.
pub fn write_all(dir: &Path, doc: &CompareJson) -> Result<()> {
    register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow!("plotting failed: the embedded DejaVu Sans font did not load"))?;
    let mut workloads: Vec<&str> = doc.results.iter().map(|r| r.workload.as_str()).collect();
    workloads.dedup();
    for w in workloads {
        let rows: Vec<&ResultJson> = doc.results.iter().filter(|r| r.workload == w).collect();
        let what = format!("{} on {}, {w}", doc.model, doc.device);
        for chart in [Chart::Cost, Chart::Time, Chart::Phases, Chart::Scatter] {
            let stem = dir.join(format!("{}-{}", chart.name(), slug(w)));
            let (svg, png) = (stem.with_extension("svg"), stem.with_extension("png"));
            chart.draw(SVGBackend::new(&svg, chart.size()), &what, &rows)?;
            chart.draw(BitMapBackend::new(&png, chart.size()), &what, &rows)?;
        }
    }
    Ok(())
}

/// The charts per workload.
#[derive(Clone, Copy)]
enum Chart {
    Cost,
    Time,
    Phases,
    Scatter,
}

impl Chart {
    fn name(self) -> &'static str {
        match self {
            Chart::Cost => "cost",
            Chart::Time => "time",
            Chart::Phases => "phases",
            Chart::Scatter => "scatter",
        }
    }

    fn size(self) -> (u32, u32) {
        match self {
            Chart::Cost | Chart::Phases => (1000, 520),
            Chart::Time => (1000, 680),
            Chart::Scatter => (800, 560),
        }
    }

    fn draw<DB: DrawingBackend>(self, backend: DB, what: &str, rows: &[&ResultJson]) -> Result<()> {
        let root = backend.into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        match self {
            Chart::Cost => cost_over_time(&root, what, rows)?,
            Chart::Time => cost_against_hours(&root, what, rows)?,
            Chart::Phases => phase_bars(&root, what, rows)?,
            Chart::Scatter => scatter(&root, what, rows)?,
        }
        root.present().map_err(err)
    }
}

fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() {
        lo * 0.8..hi * 1.25
    } else {
        0.1..10.0
    }
}

/// A log axis over `range`, ticked by [`log_ticks`].
fn log_axis(range: &std::ops::Range<f64>) -> WithKeyPoints<LogCoord<f64>> {
    range.clone().log_scale().with_key_points(log_ticks(range))
}

/// Ticks at 1, 2 and 5 times each power of ten inside `range`, or at 1, 1.5,
/// 2, 3, ... 9 times where that leaves fewer than three (so any range wider
/// than 1.5x, as [`log_range`]'s always is, gets a tick): plotters' own log
/// ticks mark whole decades only, which leaves an axis spanning less than one
/// decade without a single label.
fn log_ticks(range: &std::ops::Range<f64>) -> Vec<f64> {
    let ticks_at = |multiples: &[f64]| {
        let mut ticks = Vec::new();
        let mut decade = 10f64.powf(range.start.log10().floor());
        while decade <= range.end {
            ticks.extend(
                multiples
                    .iter()
                    .map(|m| m * decade)
                    .filter(|t| range.contains(t)),
            );
            decade *= 10.0;
        }
        ticks
    };
    let ticks = ticks_at(&[1.0, 2.0, 5.0]);
    if ticks.len() >= 3 {
        return ticks;
    }
    ticks_at(&[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
}

/// A tick value without trailing zeros: 0.02, 1.5, 500.
fn tick_label(v: &f64) -> String {
    let fixed = format!("{v:.6}");
    fixed
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

fn cost_over_time<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    what: &str,
    rows: &[&ResultJson],
) -> Result<()> {
    let windows = longest(rows, |r| r.series.len());
    let y = log_range(rows.iter().flat_map(|r| r.series.iter().copied()));
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Cost per window: {what}"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..windows as f64, log_axis(&y))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("window (416 requests each)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("mean cost (1 = every knob at max, log scale)")
        .y_label_formatter(&tick_label)
        .draw()
        .map_err(err)?;
    cost_lines(&mut chart, rows, |r| {
        r.series
            .iter()
            .enumerate()
            .map(|(w, &c)| (w as f64, c))
            .collect()
    })
}

/// The longest of the rows' `len`, at least 1 (an axis needs a span).
fn longest(rows: &[&ResultJson], len: impl Fn(&ResultJson) -> usize) -> usize {
    rows.iter().map(|r| len(r)).max().unwrap_or(1).max(1)
}

/// A cost chart's axes: linear x, log cost.
type CostAxes = Cartesian2d<RangedCoordf64, WithKeyPoints<LogCoord<f64>>>;

/// One line per optimizer (EcoGD's thicker) at the points `points` gives
/// for its row, and the legend.
fn cost_lines<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, CostAxes>,
    rows: &[&ResultJson],
    points: impl Fn(&ResultJson) -> Vec<(f64, f64)>,
) -> Result<()> {
    for (i, r) in rows.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let width = if r.optimizer == "ecogd" { 3 } else { 1 };
        chart
            .draw_series(LineSeries::new(points(r), color.stroke_width(width)))
            .map_err(err)?
            .label(r.optimizer.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// Cost against time, in hours, over bins of [`TIMELINE_BIN`] (each point
/// the mean cost of the requests that arrived in it, over the repeats: the
/// bins smooth the per-request noise), above a panel of the arrival rate.
/// Every optimizer's runs share the bins, unlike windows.
fn cost_against_hours<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    what: &str,
    rows: &[&ResultJson],
) -> Result<()> {
    let bin_s = TIMELINE_BIN.as_secs_f64();
    let hours = |i: usize| (i as f64 + 0.5) * bin_s / 3600.0;
    let bins = longest(rows, |r| r.timeline.len());
    let end_h = bins as f64 * bin_s / 3600.0;
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 * 7 / 10);
    let y = log_range(rows.iter().flat_map(|r| {
        r.timeline
            .iter()
            .filter(|b| b.served > 0.0)
            .map(|b| b.mean_cost)
    }));
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!(
                "Cost against time ({:.0}-minute bins): {what}",
                bin_s / 60.0
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(20)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..end_h, log_axis(&y))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_desc("mean cost (log scale)")
        .y_label_formatter(&tick_label)
        .draw()
        .map_err(err)?;
    cost_lines(&mut chart, rows, |r| {
        r.timeline
            .iter()
            .enumerate()
            .filter(|(_, b)| b.served > 0.0)
            .map(|(i, b)| (hours(i), b.mean_cost))
            .collect()
    })?;
    // The arrivals: every optimizer serves the same ones, so the run that
    // served the most (refused requests are not timed) stands for them.
    let rate: Vec<(f64, f64)> = rows
        .iter()
        .max_by(|a, b| a.overall.served.cmp(&b.overall.served))
        .map(|r| {
            r.timeline
                .iter()
                .enumerate()
                .map(|(i, b)| (hours(i), b.served / bin_s))
                .collect()
        })
        .unwrap_or_default();
    let top_rate = rate.iter().map(|&(_, r)| r).fold(0.0, f64::max).max(1e-3) * 1.15;
    let mut panel = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..end_h, 0f64..top_rate)
        .map_err(err)?;
    panel
        .configure_mesh()
        .x_desc("hours")
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_desc("arrivals/s")
        .y_labels(4)
        .draw()
        .map_err(err)?;
    panel
        .draw_series(LineSeries::new(rate, BLACK.stroke_width(2)))
        .map_err(err)?;
    Ok(())
}

fn phase_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    what: &str,
    rows: &[&ResultJson],
) -> Result<()> {
    // No "during" phase (settled at once): no bar.
    let during = |r: &ResultJson, f: fn(&PhaseStats) -> f64| r.during.as_ref().map_or(f64::NAN, f);
    let bars = |r: &ResultJson| {
        [
            ("during mean", during(r, |d| d.mean_cost)),
            ("after mean", r.after.mean_cost),
            ("during p99", during(r, |d| d.p99_cost)),
            ("after p99", r.after.p99_cost),
        ]
    };
    let y = log_range(rows.iter().flat_map(|r| bars(r).map(|b| b.1)));
    let names: Vec<String> = rows.iter().map(|r| r.optimizer.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Cost during and after convergence: {what}"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..rows.len() as f64, log_axis(&y))
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("cost (1 = every knob at max, log scale)")
        .y_label_formatter(&tick_label)
        .draw()
        .map_err(err)?;
    for k in 0..4 {
        let color = Palette99::pick(k).to_rgba();
        let label = bars(rows[0])[k].0;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let x0 = i as f64 + 0.1 + 0.2 * k as f64;
                Rectangle::new(
                    [(x0, y.start), (x0 + 0.18, bars(r)[k].1.max(y.start))],
                    color.filled(),
                )
            }))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

fn scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    what: &str,
    rows: &[&ResultJson],
) -> Result<()> {
    let ms = |r: &ResultJson| r.after.mean_latency_s * 1e3;
    let mj = |r: &ResultJson| r.after.mean_energy_j * 1e3;
    let x = log_range(rows.iter().map(|r| ms(r)));
    let y = log_range(rows.iter().map(|r| mj(r)));
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Where each optimizer settled: {what}"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(log_axis(&x), log_axis(&y))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("mean latency after convergence (ms, log)")
        .x_label_formatter(&tick_label)
        .y_desc("mean energy per request (mJ, log)")
        .y_label_formatter(&tick_label)
        .draw()
        .map_err(err)?;
    for (i, r) in rows.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let p = (ms(r), mj(r));
        chart
            .draw_series(std::iter::once(Circle::new(p, 6, color.filled())))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                r.optimizer.clone(),
                p,
                ("sans-serif", 14),
            )))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(slug("fixed:50ms"), "fixed-50ms");
        assert_eq!(slug("bursty:10@500ms"), "bursty-10at500ms");
        assert_eq!(slug("file:/tmp/a b.csv"), "file--tmp-a_b-csv");
    }

    #[test]
    fn log_axes_are_labelled_however_narrow() {
        let labels =
            |lo, hi| -> Vec<String> { log_ticks(&(lo..hi)).iter().map(tick_label).collect() };
        assert_eq!(labels(0.3, 40.0), ["0.5", "1", "2", "5", "10", "20"]);
        assert_eq!(labels(0.004, 0.03), ["0.005", "0.01", "0.02"]);
        assert_eq!(labels(330.0, 620.0), ["400", "500", "600"]);
        // The narrowest range log_range makes: one point, 0.8x to 1.25x.
        assert_eq!(labels(1.1 * 0.8, 1.1 * 1.25), ["0.9", "1"]);
        assert_eq!(labels(1.3 * 0.8, 1.3 * 1.25), ["1.5"]);
    }
}
