//! The pictures a reader of the paper expects, as SVG: cost per window for every
//! optimizer (one chart per workload), during/after mean and p99 cost per
//! optimizer, and the energy-latency scatter of where each optimizer ended.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::cmd::compare::{CompareJson, ResultJson};

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

/// Writes every chart of `doc` into `dir`.
pub fn write_all(dir: &Path, doc: &CompareJson) -> Result<()> {
    let mut workloads: Vec<&str> = doc.results.iter().map(|r| r.workload.as_str()).collect();
    workloads.dedup();
    for w in workloads {
        let rows: Vec<&ResultJson> = doc.results.iter().filter(|r| r.workload == w).collect();
        let what = format!("{} on {}, {w}", doc.model, doc.device);
        cost_over_time(&dir.join(format!("cost-{}.svg", slug(w))), &what, &rows)?;
        phase_bars(&dir.join(format!("phases-{}.svg", slug(w))), &what, &rows)?;
        scatter(&dir.join(format!("scatter-{}.svg", slug(w))), &what, &rows)?;
    }
    Ok(())
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

fn cost_over_time(path: &Path, what: &str, rows: &[&ResultJson]) -> Result<()> {
    let root = SVGBackend::new(path, (1000, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let windows = rows
        .iter()
        .map(|r| r.series.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let y = log_range(rows.iter().flat_map(|r| r.series.iter().copied()));
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Cost per window: {what}"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..windows as f64, y.log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("window (416 requests each)")
        .y_desc("mean cost (1 = every knob at max)")
        .draw()
        .map_err(err)?;
    for (i, r) in rows.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let width = if r.optimizer == "ecogd" { 3 } else { 1 };
        chart
            .draw_series(LineSeries::new(
                r.series.iter().enumerate().map(|(w, &c)| (w as f64, c)),
                color.stroke_width(width),
            ))
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
        .map_err(err)?;
    root.present().map_err(err)
}

fn phase_bars(path: &Path, what: &str, rows: &[&ResultJson]) -> Result<()> {
    let root = SVGBackend::new(path, (1000, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let bars = |r: &ResultJson| {
        [
            ("during mean", r.during.mean_cost),
            ("after mean", r.after.mean_cost),
            ("during p99", r.during.p99_cost),
            ("after p99", r.after.p99_cost),
        ]
    };
    let y = log_range(rows.iter().flat_map(|r| bars(r).map(|b| b.1)));
    let names: Vec<String> = rows.iter().map(|r| r.optimizer.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Cost during and after convergence: {what}"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..rows.len() as f64, y.clone().log_scale())
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
        .y_desc("cost (log scale)")
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
        .map_err(err)?;
    root.present().map_err(err)
}

fn scatter(path: &Path, what: &str, rows: &[&ResultJson]) -> Result<()> {
    let root = SVGBackend::new(path, (800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let ms = |r: &ResultJson| r.after.mean_latency_s * 1e3;
    let mj = |r: &ResultJson| r.after.mean_energy_j * 1e3;
    let x = log_range(rows.iter().map(|r| ms(r)));
    let y = log_range(rows.iter().map(|r| mj(r)));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Where each optimizer settled: {what}"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x.log_scale(), y.log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("mean latency after convergence (ms, log)")
        .y_desc("mean energy per request (mJ, log)")
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
    root.present().map_err(err)
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
}
