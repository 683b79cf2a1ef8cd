//! SVG plots: reliability diagrams (paper Fig. A.1 style), the γ-rule curves g(p, γ) (paper
//! Fig. 3a), ECE bars with bootstrap intervals (Fig. 4), training curves (Figs. 1–2), gradient-norm
//! histograms (Fig. 3 b–d) and BLEU/ECE against T (Fig. K.1).

use crate::Error;
use calib::Bin;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;

fn draw_err<E: std::fmt::Debug>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Draw { what: what.into(), message: format!("{e:?}") }
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A line with an entry in the legend.
fn labelled_line(
    chart: &mut Chart,
    points: Vec<(f64, f64)>,
    color: RGBAColor,
    label: String,
    what: &str,
) -> Result<(), Error> {
    chart
        .draw_series(LineSeries::new(points, color.stroke_width(2)))
        .map_err(draw_err(what))?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
    Ok(())
}

/// The legend box.
fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, position: SeriesLabelPosition, what: &str) -> Result<(), Error> {
    chart
        .configure_series_labels()
        .position(position)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()
        .map_err(draw_err(what))
}

/// A reliability diagram: per-bin accuracy bars, the gap to the mean confidence, the diagonal,
/// and below it the share of samples per bin. `subtitle` carries e.g. "ECE 6.74 %".
pub fn reliability_diagram(bins: &[Bin], title: &str, subtitle: &str) -> Result<String, Error> {
    let mut svg = String::new();
    {
        let err = draw_err(title);
        let root = SVGBackend::with_string(&mut svg, (560, 680)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let (top, bottom) = root.split_vertically(500);
        let mut chart = ChartBuilder::on(&top)
            .caption(format!("{title} — {subtitle}"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(&err)?;
        chart.configure_mesh().x_desc("confidence").y_desc("accuracy").draw().map_err(&err)?;
        let filled: Vec<&Bin> = bins.iter().filter(|b| b.count > 0).collect();
        chart
            .draw_series(filled.iter().map(|b| {
                Rectangle::new([(b.lower, 0.0), (b.upper, b.accuracy.unwrap_or(0.0))], BLUE.mix(0.55).filled())
            }))
            .map_err(&err)?
            .label("accuracy")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], BLUE.mix(0.55).filled()));
        chart
            .draw_series(filled.iter().map(|b| {
                let (a, c) = (b.accuracy.unwrap_or(0.0), b.mean_conf.unwrap_or(0.0));
                Rectangle::new([(b.lower, a.min(c)), (b.upper, a.max(c))], RED.mix(0.35).filled())
            }))
            .map_err(&err)?
            .label("gap to mean confidence")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], RED.mix(0.35).filled()));
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.stroke_width(1))).map_err(&err)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(&err)?;

        let total: u64 = bins.iter().map(|b| b.count).sum::<u64>().max(1);
        let top_share = bins.iter().map(|b| b.count as f64 / total as f64).fold(0.0, f64::max).max(1e-9);
        let mut hist = ChartBuilder::on(&bottom)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..1f64, 0f64..top_share * 1.05)
            .map_err(&err)?;
        hist.configure_mesh().y_desc("share of samples").y_labels(4).draw().map_err(&err)?;
        hist.draw_series(bins.iter().map(|b| {
            Rectangle::new([(b.lower, 0.0), (b.upper, b.count as f64 / total as f64)], BLACK.mix(0.45).filled())
        }))
        .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// g(p, γ) against p for several γ, with the line g = 1 (paper Fig. 3a): below it the focal
/// loss's gradient is smaller than cross-entropy's.
pub fn gamma_curves(gammas: &[f64]) -> Result<String, Error> {
    let mut svg = String::new();
    {
        let err = draw_err("g(p, γ) curves");
        let root = SVGBackend::with_string(&mut svg, (640, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("g(p, γ) = ‖∂L_FL/∂w‖ / ‖∂L_CE/∂w‖", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..1f64, 0f64..2.5f64)
            .map_err(&err)?;
        chart.configure_mesh().x_desc("p (probability of the true class)").y_desc("g(p, γ)").draw().map_err(&err)?;
        for (i, &gm) in gammas.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts = (1..1000).map(|j| j as f64 / 1000.0).map(|p| (p, calib::gamma::g(p, gm).min(2.5))).collect();
            labelled_line(&mut chart, pts, color, format!("γ = {gm}"), "g(p, γ) curves")?;
        }
        chart.draw_series(LineSeries::new([(0.0, 1.0), (1.0, 1.0)], BLACK.stroke_width(1))).map_err(&err)?;
        legend(&mut chart, SeriesLabelPosition::UpperRight, "g(p, γ) curves")?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// The paper's Figure K.1: test BLEU (beam search at T) and validation token-level ECE against
/// the temperature T, side by side; `chosen` marks the T picked by validation ECE.
pub fn bleu_ece_vs_temperature(
    t: &[f64],
    bleu: &[f64],
    ece: &[f64],
    chosen: f64,
    title: &str,
) -> Result<String, Error> {
    let mut svg = String::new();
    {
        let err = draw_err(title);
        let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let root = root.titled(title, ("sans-serif", 18)).map_err(&err)?;
        let (left, right) = root.split_horizontally(480);
        let (lo, hi) = t.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) };
        let panels = [(left, bleu, "test BLEU", RED), (right, ece, "validation ECE (%)", BLUE)];
        for (area, values, name, color) in panels {
            let scale = if name.contains('%') { 100.0 } else { 1.0 };
            let ys: Vec<f64> = values.iter().map(|v| v * scale).collect();
            let top = ys.iter().copied().fold(0.0f64, f64::max).max(1e-6) * 1.1;
            let mut chart = ChartBuilder::on(&area)
                .margin(14)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(lo..hi, 0f64..top)
                .map_err(&err)?;
            chart.configure_mesh().x_desc("temperature T").y_desc(name).draw().map_err(&err)?;
            chart
                .draw_series(LineSeries::new(t.iter().copied().zip(ys.iter().copied()), color.stroke_width(2)))
                .map_err(&err)?;
            chart
                .draw_series(t.iter().zip(&ys).map(|(&x, &y)| Circle::new((x, y), 3, color.filled())))
                .map_err(&err)?;
            chart
                .draw_series(LineSeries::new([(chosen, 0.0), (chosen, top)], BLACK.mix(0.5).stroke_width(1)))
                .map_err(&err)?;
        }
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// Histograms of per-sample gradient norms of the last linear layer (the paper's Figure 3 b–d),
/// one step curve per series: `(label, log10 bin edges, counts)`, as shares of the samples.
pub fn grad_norm_histograms(series: &[(String, Vec<f64>, Vec<u64>)], title: &str) -> Result<String, Error> {
    let mut svg = String::new();
    {
        let err = draw_err(title);
        let root = SVGBackend::with_string(&mut svg, (640, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let share = |counts: &[u64]| {
            let n = counts.iter().sum::<u64>().max(1) as f64;
            counts.iter().map(|&c| c as f64 / n).collect::<Vec<f64>>()
        };
        let top = series.iter().flat_map(|(_, _, c)| share(c)).fold(0.0f64, f64::max).max(1e-6) * 1.1;
        let (lo, hi) = series
            .iter()
            .flat_map(|(_, e, _)| e.iter().copied())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if hi > lo { (lo, hi) } else { (-8.0, 2.0) };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(lo..hi, 0f64..top)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("log10 ‖∂L_i/∂W‖ (last linear layer)")
            .y_desc("share of samples")
            .draw()
            .map_err(&err)?;
        for (i, (label, edges, counts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let steps: Vec<(f64, f64)> =
                share(counts).iter().enumerate().flat_map(|(j, &y)| [(edges[j], y), (edges[j + 1], y)]).collect();
            labelled_line(&mut chart, steps, color, label.clone(), title)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft, title)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// One loss's bars in [`ci_bars`]: (value, lower, upper) before and after temperature scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct CiBar {
    pub label: String,
    pub before: (f64, f64, f64),
    pub after: (f64, f64, f64),
}

/// The paper's Figure 4 (and G.1–G.4): per loss, a bar before and a bar after temperature
/// scaling with their 90 % bootstrap intervals as whiskers; values are fractions, drawn in %.
pub fn ci_bars(bars: &[CiBar], title: &str, y_desc: &str) -> Result<String, Error> {
    let mut svg = String::new();
    {
        let err = draw_err(title);
        let root = SVGBackend::with_string(&mut svg, (120 + 90 * bars.len().max(1) as u32, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let top = bars.iter().map(|b| b.before.2.max(b.after.2)).fold(0.0f64, f64::max).max(1e-4) * 130.0;
        let n = bars.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..n, 0f64..top)
            .map_err(&err)?;
        chart.configure_mesh().disable_x_mesh().x_labels(0).y_desc(y_desc).draw().map_err(&err)?;
        // Each loss's name under its pair of bars, placed in pixels below the axis.
        let font = ("sans-serif", 13).into_font().color(&BLACK);
        for (i, b) in bars.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            let w = 7 * b.label.chars().count() as i32 / 2;
            root.draw(&Text::new(b.label.clone(), (x - w, y + 8), font.clone())).map_err(&err)?;
        }
        for (k, (name, color)) in
            [("before T", RGBColor(200, 80, 60)), ("after T", RGBColor(60, 110, 200))].iter().enumerate()
        {
            let style = color.filled();
            let rects = bars.iter().enumerate().map(|(i, b)| {
                let (v, _, _) = if k == 0 { b.before } else { b.after };
                let x0 = i as f64 + 0.12 + 0.38 * k as f64;
                Rectangle::new([(x0, 0.0), (x0 + 0.36, 100.0 * v)], style)
            });
            chart
                .draw_series(rects)
                .map_err(&err)?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style));
            let whiskers = bars.iter().enumerate().map(|(i, b)| {
                let (_, lo, hi) = if k == 0 { b.before } else { b.after };
                let x = i as f64 + 0.30 + 0.38 * k as f64;
                PathElement::new([(x, 100.0 * lo), (x, 100.0 * hi)], BLACK.stroke_width(2))
            });
            chart.draw_series(whiskers).map_err(&err)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight, title)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// Lines of `(x, y)` points, one per labelled series (the paper's training-dynamics Figures 1–2).
pub fn curves(series: &[(String, Vec<(f64, f64)>)], title: &str, x_desc: &str, y_desc: &str) -> Result<String, Error> {
    let mut svg = String::new();
    {
        let err = draw_err(title);
        let root = SVGBackend::with_string(&mut svg, (640, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let pts = series.iter().flat_map(|(_, p)| p.iter().copied());
        let (x0, x1, y0, y1) = pts
            .fold((f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY), |(a, b, c, d), (x, y)| {
                (a.min(x), b.max(x), c.min(y), d.max(y))
            });
        let (x0, x1) = if x1 > x0 { (x0, x1) } else { (x0 - 1.0, x0 + 1.0) };
        let pad = ((y1 - y0) * 0.08).max(1e-6);
        let (y0, y1) = if y1 >= y0 { (y0 - pad, y1 + pad) } else { (0.0, 1.0) };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(&err)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(&err)?;
        for (i, (label, points)) in series.iter().enumerate() {
            labelled_line(&mut chart, points.clone(), Palette99::pick(i).to_rgba(), label.clone(), title)?;
        }
        let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        legend(&mut chart, emptiest_corner(&all, (x0, x1), (y0, y1)), title)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// The corner of the plot that the fewest points fall in, for the legend: training curves end
/// high or low depending on the metric (a rising NLL, a falling error), and a legend in a fixed
/// corner hides their ends, the part a reader looks at. Ties keep the upper right.
fn emptiest_corner(points: &[(f64, f64)], (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> SeriesLabelPosition {
    // The legend's share of the plot's width and height, about what four labels take.
    let (w, h) = (0.4, 0.35);
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let inside = |&(_, right, upper): &(SeriesLabelPosition, bool, bool)| {
        points
            .iter()
            .filter(|&&(x, y)| {
                let (fx, fy) = ((x - x0) / (x1 - x0), (y - y0) / (y1 - y0));
                (if right { fx >= 1.0 - w } else { fx <= w }) && (if upper { fy >= 1.0 - h } else { fy <= h })
            })
            .count()
    };
    corners.into_iter().min_by_key(inside).map_or(SeriesLabelPosition::UpperRight, |c| c.0)
}

/// Writes an SVG atomically.
pub fn save(path: &Path, svg: &str) -> Result<(), Error> {
    Ok(calib::atomic::write(path, svg.as_bytes())?)
}

/// The system's fonts, loaded once, with `sans-serif` mapped to a face that exists (DejaVu Sans
/// where installed; fontdb's default, Arial, rarely is on Linux).
fn fonts() -> std::sync::Arc<resvg::usvg::fontdb::Database> {
    static FONTS: std::sync::OnceLock<std::sync::Arc<resvg::usvg::fontdb::Database>> = std::sync::OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = resvg::usvg::fontdb::Database::new();
            db.load_system_fonts();
            let families: Vec<String> =
                db.faces().flat_map(|f| f.families.iter().map(|(name, _)| name.clone())).collect();
            let sans = ["DejaVu Sans", "Liberation Sans", "Noto Sans"]
                .iter()
                .map(|s| s.to_string())
                .find(|s| families.contains(s))
                .or_else(|| families.first().cloned());
            if let Some(family) = sans {
                db.set_sans_serif_family(family);
            }
            std::sync::Arc::new(db)
        })
        .clone()
}

/// An SVG of this module rasterised to PNG at `scale` (2 gives print resolution). Without any
/// system font the text is left out; the marks are drawn either way.
pub fn to_png(svg: &str, scale: f32) -> Result<Vec<u8>, Error> {
    let err = |message: String| Error::Draw { what: "PNG".into(), message };
    let options = resvg::usvg::Options { fontdb: fonts(), ..Default::default() };
    let tree = resvg::usvg::Tree::from_str(svg, &options).map_err(|e| err(e.to_string()))?;
    let size = tree.size();
    let (w, h) = ((size.width() * scale).ceil() as u32, (size.height() * scale).ceil() as u32);
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(w.max(1), h.max(1)).ok_or_else(|| err(format!("cannot allocate {w}×{h}")))?;
    resvg::render(&tree, resvg::tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| err(e.to_string()))
}

/// Writes `path` (an `.svg`) and the same figure as PNG beside it, both atomically.
pub fn save_with_png(path: &Path, svg: &str) -> Result<(), Error> {
    save(path, svg)?;
    Ok(calib::atomic::write(&path.with_extension("png"), &to_png(svg, 2.0)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_goes_where_the_curves_are_not() {
        let line =
            |f: fn(f64) -> f64| -> Vec<(f64, f64)> { (0..=10).map(|i| (f64::from(i), f(f64::from(i)))).collect() };
        let corner = |points: &[(f64, f64)]| emptiest_corner(points, (0.0, 10.0), (0.0, 10.0));
        // A rising NLL fills the upper right; a falling error the upper left; a flat line at the top
        // both upper corners; no points ties everywhere and keeps the upper right.
        assert!(matches!(corner(&line(|x| x)), SeriesLabelPosition::UpperLeft));
        assert!(matches!(corner(&line(|x| 10.0 - x)), SeriesLabelPosition::UpperRight));
        assert!(matches!(corner(&line(|_| 9.5)), SeriesLabelPosition::LowerRight));
        assert!(matches!(corner(&[]), SeriesLabelPosition::UpperRight));
    }

    #[test]
    fn gradient_norm_histograms_label_every_series() {
        let edges: Vec<f64> = (0..=4).map(f64::from).collect();
        let series = vec![
            ("epoch 1".to_string(), edges.clone(), vec![1, 2, 3, 4]),
            ("epoch 9".to_string(), edges, vec![4, 3, 2, 1]),
        ];
        let svg = grad_norm_histograms(&series, "CE").unwrap();
        assert!(svg.contains("epoch 1") && svg.contains("epoch 9") && svg.contains("share of samples"));
    }

    #[test]
    fn temperature_figure_has_one_marker_per_temperature_in_each_panel() {
        let t = [0.8, 1.0, 1.2];
        let svg = bleu_ece_vs_temperature(&t, &[30.0, 31.0, 30.5], &[0.05, 0.02, 0.04], 1.0, "study").unwrap();
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains("test BLEU") && svg.contains("validation ECE (%)"));
    }

    #[test]
    fn reliability_diagram_draws_one_bar_per_non_empty_bin() {
        let bins = vec![
            Bin { lower: 0.0, upper: 0.5, count: 0, mean_conf: None, accuracy: None },
            Bin { lower: 0.5, upper: 1.0, count: 10, mean_conf: Some(0.9), accuracy: Some(0.7) },
        ];
        let svg = reliability_diagram(&bins, "test", "ECE 20.00 %").unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("ECE 20.00 %"));
        assert!(svg.contains("accuracy") && svg.contains("confidence"));
    }

    #[test]
    fn ci_bars_draw_two_bars_and_two_whiskers_per_loss() {
        let bars = vec![
            CiBar { label: "CE".into(), before: (0.04, 0.03, 0.05), after: (0.01, 0.008, 0.012) },
            CiBar { label: "FLSD-53".into(), before: (0.015, 0.01, 0.02), after: (0.012, 0.01, 0.014) },
        ];
        let svg = ci_bars(&bars, "ECE", "ECE (%)").unwrap();
        assert!(svg.contains("CE") && svg.contains("FLSD-53") && svg.contains("after T"));
        // Per colour: one bar per loss and the legend's swatch.
        assert_eq!(svg.matches("fill=\"#C8503C\"").count(), 3, "{svg}");
        assert_eq!(svg.matches("fill=\"#3C6EC8\"").count(), 3, "{svg}");
    }

    #[test]
    fn curves_label_every_series() {
        let s =
            vec![("CE".to_string(), vec![(1.0, 0.5), (2.0, 0.4)]), ("FL-3".to_string(), vec![(1.0, 0.6), (2.0, 0.3)])];
        let svg = curves(&s, "NLL", "epoch", "NLL").unwrap();
        assert!(svg.contains("CE") && svg.contains("FL-3") && svg.contains("epoch"));
    }

    /// A PNG of the figure's size at the scale asked, with the bars' colour in it.
    #[test]
    fn figures_rasterise_to_png() {
        let bars = vec![CiBar { label: "CE".into(), before: (0.04, 0.03, 0.05), after: (0.01, 0.008, 0.012) }];
        let png = to_png(&ci_bars(&bars, "ECE", "ECE (%)").unwrap(), 1.0).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        // IHDR: width and height, big-endian, at bytes 16..24.
        let dim = |o: usize| u32::from_be_bytes(png[o..o + 4].try_into().unwrap());
        assert_eq!((dim(16), dim(20)), (210, 440));
    }

    #[test]
    fn gamma_curves_label_every_gamma() {
        let svg = gamma_curves(&[1.0, 3.0, 5.0]).unwrap();
        for g in ["γ = 1", "γ = 3", "γ = 5"] {
            assert!(svg.contains(g), "missing {g}");
        }
    }
}
