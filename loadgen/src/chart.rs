//! The HTML report's charts as inline SVG, drawn the way a plotting library draws them: axes
//! from zero with round ticks (1, 2 or 5 times a power of ten), a label at every tick
//! (zero included), gridlines, and a second, labelled axis for a series on its own scale.
//!
//! Invariant: every value drawn lies inside its axis range, since each range is rounded up
//! from the series' maximum.

use std::fmt::Write as _;

use crate::report::{PercentilePoint, TimelinePoint};

/// Chart width and height, in SVG user units (pixels at 100%).
const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 340.0;
/// The plot area's margins: room for tick labels and axis titles.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;
/// Ticks an axis aims at; round steps give between about half and twice this many.
const TICKS_TARGET: usize = 6;

const SENT_COLOR: &str = "#2ca02c";
const RECEIVED_COLOR: &str = "#1f77b4";
const P99_COLOR: &str = "#d62728";

/// Round tick values from 0 to at least `max`, about `target` steps.
pub fn ticks(max: f64, target: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude);
    let steps = (max / step - 1e-9).ceil().max(1.0) as usize;
    (0..=steps).map(|i| i as f64 * step).collect()
}

/// A tick's label with as many decimals as its step needs.
fn label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    format!("{v:.decimals$}")
}

/// An axis: its ticks, and where a value lands between `from` and `to` (pixels).
struct Axis {
    ticks: Vec<f64>,
    from: f64,
    to: f64,
}

impl Axis {
    fn new(max: f64, from: f64, to: f64) -> Self {
        Axis {
            ticks: ticks(max, TICKS_TARGET),
            from,
            to,
        }
    }

    fn top(&self) -> f64 {
        *self.ticks.last().expect("at least two ticks")
    }

    fn step(&self) -> f64 {
        self.ticks[1] - self.ticks[0]
    }

    fn at(&self, v: f64) -> f64 {
        self.from + v / self.top() * (self.to - self.from)
    }
}

fn bottom() -> f64 {
    HEIGHT - BOTTOM
}

fn right() -> f64 {
    WIDTH - RIGHT
}

fn open(o: &mut String) {
    let _ = write!(
        o,
        "<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         font-family=\"system-ui,sans-serif\">"
    );
}

/// The left value axis: gridlines, tick labels, title.
fn y_axis_left(o: &mut String, y: &Axis, title: &str) {
    for &t in &y.ticks {
        let py = y.at(t);
        let _ = write!(
            o,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{r}\" y2=\"{py:.1}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{lx}\" y=\"{ty:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            label(t, y.step()),
            r = right(),
            lx = LEFT - 6.0,
            ty = py + 4.0,
        );
    }
    let cy = (TOP + bottom()) / 2.0;
    let _ = write!(
        o,
        "<text x=\"16\" y=\"{cy}\" font-size=\"12\" text-anchor=\"middle\" \
         transform=\"rotate(-90 16 {cy})\">{title}</text>"
    );
}

/// A right value axis in `color`, for a series on its own scale: ticks, labels, title.
fn y_axis_right(o: &mut String, y: &Axis, title: &str, color: &str) {
    let r = right();
    let _ = write!(
        o,
        "<line x1=\"{r}\" y1=\"{TOP}\" x2=\"{r}\" y2=\"{b}\" stroke=\"{color}\"/>",
        b = bottom()
    );
    for &t in &y.ticks {
        let py = y.at(t);
        let _ = write!(
            o,
            "<line x1=\"{r}\" y1=\"{py:.1}\" x2=\"{tx}\" y2=\"{py:.1}\" stroke=\"{color}\"/>\
             <text x=\"{lx}\" y=\"{ty:.1}\" font-size=\"11\" fill=\"{color}\">{}</text>",
            label(t, y.step()),
            tx = r + 4.0,
            lx = r + 7.0,
            ty = py + 4.0,
        );
    }
    let (x, cy) = (WIDTH - 14.0, (TOP + bottom()) / 2.0);
    let _ = write!(
        o,
        "<text x=\"{x}\" y=\"{cy}\" font-size=\"12\" text-anchor=\"middle\" fill=\"{color}\" \
         transform=\"rotate(90 {x} {cy})\">{title}</text>"
    );
}

/// Vertical gridlines with labels below the plot at `marks` (pixel x, label).
fn x_axis(o: &mut String, marks: &[(f64, String)], title: &str) {
    let b = bottom();
    for (px, text) in marks {
        let _ = write!(
            o,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{b}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{px:.1}\" y=\"{ly}\" font-size=\"11\" text-anchor=\"middle\">{text}</text>",
            ly = b + 16.0,
        );
    }
    // The axes themselves, over the gridlines.
    let _ = write!(
        o,
        "<line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\" stroke=\"#333\"/>\
         <text x=\"{cx}\" y=\"{ty}\" font-size=\"12\" text-anchor=\"middle\">{title}</text>",
        r = right(),
        cx = (LEFT + right()) / 2.0,
        ty = HEIGHT - 12.0,
    );
}

fn polyline(o: &mut String, color: &str, points: impl Iterator<Item = (f64, f64)>) {
    let pts: Vec<String> = points.map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = write!(
        o,
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
        pts.join(" ")
    );
}

/// Latency (ms) by percentile, the percentile axis logarithmic in 1/(1-p) up to p99.999.
pub fn percentile_svg(points: &[PercentilePoint]) -> String {
    let mut o = String::new();
    open(&mut o);
    let max_ms = points.iter().map(|p| p.latency_us).max().unwrap_or(0) as f64 / 1000.0;
    let y = Axis::new(max_ms, bottom(), TOP);
    y_axis_left(&mut o, &y, "latency (ms)");
    let x_of = |p: f64| {
        let v = (1.0 / (1.0 - (p / 100.0).min(0.99999))).log10().min(5.0);
        LEFT + v / 5.0 * (right() - LEFT)
    };
    let marks: Vec<(f64, String)> = [0.0, 50.0, 90.0, 99.0, 99.9, 99.99, 99.999]
        .iter()
        .map(|&p| (x_of(p), format!("{p}")))
        .collect();
    x_axis(&mut o, &marks, "percentile (%)");
    let line = points
        .iter()
        .map(|p| (x_of(p.percentile), y.at(p.latency_us as f64 / 1000.0)));
    polyline(&mut o, RECEIVED_COLOR, line);
    o.push_str("</svg>");
    o
}

/// Messages sent and received per second (left axis) and each second's p99 latency (right
/// axis, ms), by second of the run.
pub fn timeline_svg(points: &[TimelinePoint]) -> String {
    let mut o = String::new();
    open(&mut o);
    let last = points.len().saturating_sub(1).max(1) as f64;
    let x = Axis::new(last, LEFT, right());
    let rate = points.iter().map(|p| p.sent.max(p.received)).max();
    let y = Axis::new(rate.unwrap_or(0) as f64, bottom(), TOP);
    let p99_ms = points.iter().map(|p| p.p99_us).max().unwrap_or(0) as f64 / 1000.0;
    let y99 = Axis::new(p99_ms, bottom(), TOP);
    y_axis_left(&mut o, &y, "messages/s");
    y_axis_right(&mut o, &y99, "p99 latency (ms)", P99_COLOR);
    let marks: Vec<(f64, String)> = x
        .ticks
        .iter()
        .map(|&t| (x.at(t), label(t, x.step())))
        .collect();
    x_axis(&mut o, &marks, "second of the run");
    let at = |i: usize, v: f64, axis: &Axis| (x.at(i as f64), axis.at(v));
    let sent = points
        .iter()
        .enumerate()
        .map(|(i, p)| at(i, p.sent as f64, &y));
    polyline(&mut o, SENT_COLOR, sent);
    let received = points.iter().enumerate();
    polyline(
        &mut o,
        RECEIVED_COLOR,
        received.map(|(i, p)| at(i, p.received as f64, &y)),
    );
    let p99 = points.iter().enumerate();
    polyline(
        &mut o,
        P99_COLOR,
        p99.map(|(i, p)| at(i, p.p99_us as f64 / 1000.0, &y99)),
    );
    for (i, (name, color)) in [
        ("sent/s", SENT_COLOR),
        ("received/s", RECEIVED_COLOR),
        ("p99 ms (right axis)", P99_COLOR),
    ]
    .iter()
    .enumerate()
    {
        let lx = LEFT + 10.0 + i as f64 * 120.0;
        let _ = write!(
            o,
            "<text x=\"{lx}\" y=\"18\" font-size=\"11\" fill=\"{color}\">{name}</text>"
        );
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_start_at_zero_and_cover_the_maximum() {
        assert_eq!(
            ticks(51.8, 6),
            vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
        );
        assert_eq!(ticks(1.9, 6), vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        assert_eq!(ticks(10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.0, 6), ticks(1.0, 6));
        for max in [0.003, 0.7, 3.0, 99.0, 12_345.0, 8e6] {
            let t = ticks(max, 6);
            assert_eq!(t[0], 0.0);
            assert!(*t.last().unwrap() >= max, "{max}: {t:?}");
            assert!((3..=13).contains(&t.len()), "{max}: {t:?}");
        }
        assert_eq!(label(0.5, 0.5), "0.5");
        assert_eq!(label(20.0, 10.0), "20");
    }

    #[test]
    fn charts_label_zero_every_tick_and_p99_on_its_own_axis() {
        let timeline: Vec<TimelinePoint> = (0..12)
            .map(|second| TimelinePoint {
                second,
                sent: 1000,
                received: 100_000,
                p99_us: 51_800,
            })
            .collect();
        let svg = timeline_svg(&timeline);
        let texts: Vec<&str> = svg
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next())
            .collect();
        // Left axis from 0 to 100000, the seconds below, p99 from 0 to 60 on the right.
        for want in [
            "0",
            "20000",
            "100000",
            "2",
            "10",
            "12",
            "60",
            "p99 latency (ms)",
        ] {
            assert!(texts.contains(&want), "no label {want}: {texts:?}");
        }
        assert!(svg.matches("stroke=\"#e5e5e5\"").count() > 10, "gridlines");
        let percentiles: Vec<PercentilePoint> = [0.0, 50.0, 99.0, 100.0]
            .iter()
            .map(|&percentile| PercentilePoint {
                percentile,
                latency_us: (percentile * 10.0) as u64,
            })
            .collect();
        let svg = percentile_svg(&percentiles);
        for want in [">0<", ">99.9<", ">latency (ms)<", ">percentile (%)<"] {
            assert!(svg.contains(want), "no {want}");
        }
    }
}
