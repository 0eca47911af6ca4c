//! `--plot FILE.png`: time to ready against object count, one line per
//! contender, both axes logarithmic.
//!
//! The font is DejaVu Sans compiled into the binary, so drawing needs no
//! fonts installed on the machine.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::contender::Contender;
use super::report::Report;
use super::{Error, Result};

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a known-good TTF shipped by the `dejavu` crate; if
        // plotters rejected them, text would be missing and the error below
        // (drawing text with no font) says so.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Draws `report`'s time to ready (median, with min–max bars) against
/// object count into a PNG at `path`.
pub fn draw(report: &Report, path: &Path) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| Error::Plot {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut series: BTreeMap<Contender, Vec<(f64, f64, f64, f64)>> = BTreeMap::new();
    for r in &report.rows {
        series.entry(r.contender).or_default().push((
            r.objects as f64,
            r.ready_ms.median,
            r.ready_ms.min,
            r.ready_ms.max,
        ));
    }
    if series.is_empty() {
        return Err(fail(&"the report has no measurements to plot"));
    }
    let points = series.values().flatten();
    let x_lo = points.clone().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_hi = points.clone().map(|p| p.0).fold(0.0, f64::max);
    let y_lo = points.clone().map(|p| p.2).fold(f64::INFINITY, f64::min);
    let y_hi = points.map(|p| p.3).fold(0.0, f64::max);
    // Log axes need positive bounds with some room around the data.
    let x_range = (x_lo / 2.0).max(1.0)..(x_hi * 2.0).max(2.0);
    let y_range = (y_lo / 2.0).max(0.01)..(y_hi * 2.0).max(0.1);

    register_font();
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("time to ready after a restart", (FONT, 26))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range.log_scale(), y_range.log_scale())
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("pods")
        .y_desc("process start → ready (ms)")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_label_formatter(&|x| round_label(*x))
        .y_label_formatter(&|y| round_label(*y))
        .draw()
        .map_err(|e| fail(&e))?;
    for (i, (contender, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let style = ShapeStyle::from(color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), style))
            .map_err(|e| fail(&e))?
            .label(contender.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(
                pts.iter()
                    .map(|p| Circle::new((p.0, p.1), 4, color.filled())),
            )
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(
                pts.iter()
                    .map(|p| PathElement::new(vec![(p.0, p.2), (p.0, p.3)], color)),
            )
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// A log axis has a tick at every 1–9 × 10ⁿ; only 1, 2 and 5 get a label,
/// or they run into each other.
fn round_label(v: f64) -> String {
    if v <= 0.0 {
        return String::new();
    }
    let mantissa = v / 10f64.powf(v.log10().floor());
    if [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6) {
        format!("{v}")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{Sample, Setup};

    fn sample(objects: usize, contender: Contender, ready_ms: f64) -> Sample {
        Sample {
            objects,
            contender,
            rep: 0,
            first_read_ms: ready_ms,
            ready_ms,
            list_requests: 1,
            watch_requests: 1,
            bytes_pulled: 1,
            peak_rss_bytes: 1,
            disk_bytes: None,
            raw_json_bytes: 1,
            metadata_list_bytes: 1,
            objects_loaded: objects as u64,
            resumed: None,
        }
    }

    fn setup() -> Setup {
        Setup {
            objects: vec![100, 1000],
            changed_pct: vec![],
            gone_changed_pct: vec![1],
            reps: 1,
            bookmark_interval_ms: 100,
            cpus: 2,
            server: crate::bench::cluster::ServerKind::Sim,
        }
    }

    #[test]
    fn only_round_ticks_are_labelled() {
        assert_eq!(round_label(1000.0), "1000");
        assert_eq!(round_label(20000.0), "20000");
        assert_eq!(round_label(0.5), "0.5");
        assert_eq!(round_label(7000.0), "");
        assert_eq!(round_label(0.0), "");
    }

    #[test]
    fn draws_a_png_with_every_contender() {
        let samples = vec![
            sample(100, Contender::Reflector, 50.0),
            sample(1000, Contender::Reflector, 400.0),
            sample(100, Contender::Resume { changed_pct: 0 }, 3.0),
            sample(1000, Contender::Resume { changed_pct: 0 }, 4.0),
        ];
        let report = Report::new(setup(), samples, Vec::new());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.png");
        draw(&report, &path).unwrap();
        let png = std::fs::read(&path).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(
            png.len() > 5_000,
            "a plot with axes and text, not a blank image"
        );
    }

    #[test]
    fn an_empty_report_is_an_error_naming_the_file() {
        let report = Report::new(setup(), Vec::new(), Vec::new());
        let path = Path::new("/nonexistent/plot.png");
        match draw(&report, path) {
            Err(Error::Plot { path: p, reason }) => {
                assert_eq!(p, path);
                assert!(reason.contains("no measurements"));
            }
            other => panic!("expected a plot error, got {other:?}"),
        }
    }

    #[test]
    fn an_unwritable_path_is_an_error() {
        let samples = vec![sample(100, Contender::Reflector, 50.0)];
        let report = Report::new(setup(), samples, Vec::new());
        assert!(matches!(
            draw(&report, Path::new("/nonexistent/dir/plot.png")),
            Err(Error::Plot { .. })
        ));
    }
}
