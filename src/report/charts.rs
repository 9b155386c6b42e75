//! The report's charts, drawn by plotters into SVG strings that the HTML embeds inline (no
//! scripts, no network). Each function takes plain numbers and labels; none knows a table.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 340;
const FONT: &str = "sans-serif";

/// Fixed colours so that a uid keeps its colour from chart to chart within one report.
pub fn colour(index: usize) -> RGBColor {
    const COLOURS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    COLOURS[index % COLOURS.len()]
}

const MUTED: RGBColor = RGBColor(170, 170, 170);
const GRID: RGBColor = RGBColor(238, 238, 238);

/// A bar of a bar chart: its height, whether it is highlighted, and an optional label above it.
pub struct Bar {
    pub value: f64,
    pub highlight: bool,
    pub note: Option<String>,
}

/// One series of a grouped bar chart.
pub struct BarSeries {
    pub name: String,
    pub bars: Vec<Bar>,
    /// Highlighted bars take this colour; the others are muted.
    pub colour: RGBColor,
}

/// A short horizontal tick drawn over each bar (e.g. a score credited with its epsilon).
pub struct Ticks {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

pub struct BarChart<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub categories: &'a [String],
    pub series: Vec<BarSeries>,
    pub ticks: Option<Ticks>,
    /// Start the y axis near the smallest value instead of 0 (losses differ in the 3rd digit).
    pub zoom: bool,
}

type Drawn = Result<(), String>;

fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Drawn) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Every chart's frame: the title above, room for the axis labels.
fn frame<'a, 'b>(root: &'a DrawingArea<SVGBackend<'b>, Shift>, title: &str) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder.caption(title, (FONT, 18)).margin(12).x_label_area_size(36).y_label_area_size(70);
    builder
}

/// The y range covering `values` with a little headroom; from 0 unless `zoom`.
fn y_range(values: impl Iterator<Item = f64>, zoom: bool) -> Range<f64> {
    let finite: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
    if finite.is_empty() {
        return 0.0..1.0;
    }
    let low = if zoom { min } else { min.min(0.0) };
    let span = (max - low).max(max.abs() * 1e-3).max(1e-12);
    let pad = span * 0.12;
    (if zoom { low - pad } else { low })..(max + pad)
}

/// Labels only at whole category positions, and few enough to stay legible.
fn category_label(categories: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    categories.get(i as usize).cloned().unwrap_or_default()
}

pub fn bar_chart(spec: &BarChart<'_>) -> Result<String, String> {
    let n = spec.categories.len().max(1);
    let values = spec.series.iter().flat_map(|s| s.bars.iter().map(|b| b.value));
    let ticks = spec.ticks.iter().flat_map(|t| t.values.iter().flatten().copied());
    let y = y_range(values.chain(ticks), spec.zoom);
    let base = y.start;
    svg(|root| {
        let mut chart = frame(root, spec.title).build_cartesian_2d(-0.6f64..(n as f64 - 0.4), y.clone()).map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(GRID)
            .x_labels(n.min(40))
            .x_label_formatter(&|x| category_label(spec.categories, *x))
            .x_desc(spec.x_desc)
            .y_desc(spec.y_desc)
            .y_label_formatter(&|v| short_number(*v))
            .draw()
            .map_err(|e| e.to_string())?;
        let groups = spec.series.len().max(1) as f64;
        let width = 0.8 / groups;
        for (s, series) in spec.series.iter().enumerate() {
            let colour = series.colour;
            let left = |i: usize| i as f64 - 0.4 + width * s as f64;
            chart
                .draw_series(series.bars.iter().enumerate().filter(|(_, b)| b.value.is_finite()).map(|(i, b)| {
                    let fill = if b.highlight { colour.filled() } else { MUTED.filled() };
                    Rectangle::new([(left(i), base), (left(i) + width * 0.92, b.value)], fill)
                }))
                .map_err(|e| e.to_string())?
                .label(series.name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
            chart
                .draw_series(series.bars.iter().enumerate().filter_map(|(i, b)| {
                    let note = b.note.as_ref()?;
                    Some(Text::new(note.clone(), (left(i), b.value), (FONT, 13).into_font().color(&BLACK)))
                }))
                .map_err(|e| e.to_string())?;
        }
        if let Some(t) = &spec.ticks {
            chart
                .draw_series(t.values.iter().enumerate().filter_map(|(i, v)| {
                    let v = (*v)?;
                    Some(PathElement::new(vec![(i as f64 - 0.45, v), (i as f64 + 0.45, v)], BLACK.stroke_width(2)))
                }))
                .map_err(|e| e.to_string())?
                .label(t.name.as_str())
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], BLACK.stroke_width(2)));
        }
        legend(&mut chart)
    })
}

fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>) -> Drawn {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 12))
        .draw()
        .map_err(|e| e.to_string())
}

/// One line per series over numeric x positions (batch indices, steps).
pub struct LineSeries {
    pub name: String,
    pub colour: RGBColor,
    pub points: Vec<(f64, f64)>,
}

pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub series: Vec<LineSeries>,
    /// Labels for whole x positions (e.g. each step's block); numbers when empty.
    pub x_labels: &'a [String],
    pub zoom: bool,
}

pub fn line_chart(spec: &LineChart<'_>) -> Result<String, String> {
    let xs = || spec.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let x_max = xs().fold(0.0f64, f64::max);
    let y = y_range(spec.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), spec.zoom);
    let count = (x_max as usize + 1).min(24);
    svg(|root| {
        let mut chart =
            frame(root, spec.title).build_cartesian_2d(-0.2f64..(x_max + 0.2).max(1.0), y.clone()).map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .light_line_style(GRID)
            .x_labels(count)
            .x_label_formatter(&|x| {
                if spec.x_labels.is_empty() {
                    if (x - x.round()).abs() < 1e-6 {
                        format!("{}", x.round())
                    } else {
                        String::new()
                    }
                } else {
                    category_label(spec.x_labels, *x)
                }
            })
            .x_desc(spec.x_desc)
            .y_desc(spec.y_desc)
            .y_label_formatter(&|v| short_number(*v))
            .draw()
            .map_err(|e| e.to_string())?;
        for series in &spec.series {
            let colour = series.colour;
            chart
                .draw_series(plotters::series::LineSeries::new(series.points.iter().copied(), colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(series.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], colour.stroke_width(2)));
            chart.draw_series(series.points.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(|e| e.to_string())?;
        }
        legend(&mut chart)
    })
}

/// Box plots of several samples (e.g. each uid's per-batch losses on one task).
pub struct BoxChart<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub categories: &'a [String],
    pub samples: Vec<Vec<f64>>,
    pub colours: Vec<RGBColor>,
}

pub fn box_chart(spec: &BoxChart<'_>) -> Result<String, String> {
    let quartiles: Vec<Option<Quartiles>> = spec
        .samples
        .iter()
        .map(|s| {
            let finite: Vec<f64> = s.iter().copied().filter(|v| v.is_finite()).collect();
            (!finite.is_empty()).then(|| Quartiles::new(&finite))
        })
        .collect();
    let y = y_range(spec.samples.iter().flatten().copied(), true);
    let (low, high) = (y.start as f32, y.end as f32);
    svg(|root| {
        let mut chart =
            frame(root, spec.title).build_cartesian_2d(spec.categories.into_segmented(), low..high).map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(GRID)
            .x_label_formatter(&|v| match v {
                SegmentValue::Exact(c) | SegmentValue::CenterOf(c) => c.to_string(),
                SegmentValue::Last => String::new(),
            })
            .x_desc(spec.x_desc)
            .y_desc(spec.y_desc)
            .y_label_formatter(&|v| short_number(f64::from(*v)))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(spec.categories.iter().zip(&quartiles).zip(&spec.colours).filter_map(|((c, q), colour)| {
                let q = q.as_ref()?;
                Some(Boxplot::new_vertical(SegmentValue::CenterOf(c), q).width(24).style(colour.stroke_width(2)))
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Axis numbers without float noise.
fn short_number(v: f64) -> String {
    crate::format::significant(v, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_title() {
        let categories = vec!["1".to_string(), "4".to_string()];
        let bars = bar_chart(&BarChart {
            title: "win rate",
            x_desc: "uid",
            y_desc: "win rate",
            categories: &categories,
            series: vec![BarSeries {
                name: "win rate".into(),
                bars: vec![Bar { value: 0.5, highlight: false, note: None }, Bar { value: 1.0, highlight: true, note: Some("top".into()) }],
                colour: colour(0),
            }],
            ticks: None,
            zoom: false,
        })
        .unwrap();
        assert!(bars.starts_with("<svg") && bars.contains("win rate") && bars.contains("\ntop\n"), "{bars}");
        let boxes = box_chart(&BoxChart {
            title: "losses",
            x_desc: "uid",
            y_desc: "loss",
            categories: &categories,
            samples: vec![vec![1.0, 2.0, 3.0], vec![]],
            colours: vec![colour(0), colour(1)],
        })
        .unwrap();
        assert!(boxes.contains("<svg"));
        let lines = line_chart(&LineChart {
            title: "weight over time",
            x_desc: "step",
            y_desc: "weight",
            series: vec![LineSeries { name: "uid 4".into(), colour: colour(2), points: vec![(0.0, 0.2), (1.0, 0.9)] }],
            x_labels: &["11".to_string(), "13".to_string()],
            zoom: false,
        })
        .unwrap();
        assert!(lines.contains("uid 4") && lines.contains("\n13\n"), "{lines}");
    }
}
