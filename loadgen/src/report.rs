//! The results of a run: computed from every core's figures, printed as a table, as JSON with
//! a stable schema, as an HdrHistogram `.hgrm` percentile file, or as a self-contained HTML page.
//!
//! Invariant: `expected` counts, for every publisher, each message it sent times the members
//! of its room that were ready when sending started; `received` counts unique messages, so
//! `lost = expected - received` and `delivery_ratio = received / expected`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::recorder::Recorder;
use crate::runner::{CoreResult, RunConfig};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
    pub mean: f64,
    pub count: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let q = |p: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p)
            }
        };
        Percentiles {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: if h.is_empty() { 0 } else { h.max() },
            mean: if h.is_empty() { 0.0 } else { h.mean() },
            count: h.len(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Connects {
    pub attempted: u64,
    /// Upgrades completed.
    pub ok: u64,
    /// Connections that completed their whole setup (upgrade, greeting, join): the ones
    /// measured.
    pub ready: u64,
    /// Connections whose setup failed (by cause in `failures`): `attempted - ready`.
    pub failed: u64,
    /// Successful upgrades per second of the connect phase.
    pub per_sec: f64,
    pub handshake_us: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientCpu {
    pub cores: usize,
    /// CPU time over wall time, per core, during the run.
    pub busy: Vec<f64>,
    /// Some core was busy over 90% of the time: the client may have been the limit.
    pub saturated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PercentilePoint {
    pub percentile: f64,
    pub latency_us: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    pub second: usize,
    pub sent: u64,
    pub received: u64,
    pub p99_us: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub params: serde_json::Value,
    pub connects: Connects,
    pub failures: BTreeMap<String, u64>,
    pub server_closes: BTreeMap<String, u64>,
    pub sent: u64,
    pub sent_in_window: u64,
    pub expected: u64,
    pub received: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub lost: u64,
    pub delivery_ratio: f64,
    pub deliveries_per_sec: f64,
    pub frames_received: u64,
    /// Frames that carried more than one message: the server batches (latency then includes
    /// its batching window).
    pub batched_frames: u64,
    pub latency_us: Percentiles,
    pub schedule_lag_us: Percentiles,
    pub client_cpu: ClientCpu,
    pub percentiles: Vec<PercentilePoint>,
    pub timeline: Vec<TimelinePoint>,
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
    /// The plan had publishers: delivery and latency were measured (not so in `connect`).
    #[serde(skip)]
    pub measures_delivery: bool,
}

/// The thresholds a run must meet to pass.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Least delivery ratio (`--min-delivery`).
    pub min_delivery: f64,
    /// Most p99 latency in ms (`--max-p99-ms`).
    pub max_p99_ms: Option<f64>,
}

/// Every core's result added up.
struct Merged {
    rec: Recorder,
    handshake: Histogram<u64>,
    failures: BTreeMap<String, u64>,
    server_closes: BTreeMap<String, u64>,
    /// Members per room.
    members: Vec<u64>,
    sent_by: BTreeMap<u32, u64>,
    unique_by: BTreeMap<u32, u64>,
    ok: u64,
    duplicates: u64,
    out_of_order: u64,
    frames: u64,
    batched: u64,
    overflowed: bool,
    /// Each core's busy share of its wall time.
    busy: Vec<f64>,
}

impl Merged {
    fn of(cores: &[CoreResult], rooms: usize) -> Merged {
        let mut m = Merged {
            rec: cores.first().expect("at least one core").recorder.clone(),
            handshake: crate::recorder::histogram(),
            failures: BTreeMap::new(),
            server_closes: BTreeMap::new(),
            members: vec![0; rooms],
            sent_by: BTreeMap::new(),
            unique_by: BTreeMap::new(),
            ok: 0,
            duplicates: 0,
            out_of_order: 0,
            frames: 0,
            batched: 0,
            overflowed: false,
            busy: Vec::new(),
        };
        for (i, c) in cores.iter().enumerate() {
            m.add(c, i > 0);
        }
        m
    }

    fn add(&mut self, c: &CoreResult, merge_recorder: bool) {
        if merge_recorder {
            self.rec.merge(&c.recorder);
        }
        self.handshake.add(&c.handshake).expect("same bounds");
        for (k, v) in &c.failures {
            *self.failures.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &c.server_closes {
            *self.server_closes.entry(k.clone()).or_insert(0) += v;
        }
        for (r, m) in c.members.iter().enumerate() {
            self.members[r] += m;
        }
        for &(p, n) in &c.sent_by_publisher {
            self.sent_by.insert(p, n);
        }
        for (&p, &n) in &c.unique_by_publisher {
            *self.unique_by.entry(p).or_default() += n;
        }
        self.ok += c.connects_ok;
        self.duplicates += c.duplicates;
        self.out_of_order += c.out_of_order;
        self.frames += c.frames;
        self.batched += c.batched_frames;
        self.overflowed |= c.accounting_overflowed;
        self.busy.push(if c.wall_secs > 0.0 {
            c.cpu_secs / c.wall_secs
        } else {
            0.0
        });
    }

    /// Deliveries owed: each publisher's messages times its room's receivers.
    fn expected(&self, cfg: &RunConfig) -> u64 {
        let mut expected = 0u64;
        for (r, pubs) in cfg.plan.room_publishers.iter().enumerate() {
            let receivers = self.members[r].saturating_sub(cfg.exclude_self as u64);
            for p in pubs {
                expected += self.sent_by.get(p).copied().unwrap_or(0) * receivers;
            }
        }
        expected
    }

    fn warnings(&self, saturated: bool, lag: &Percentiles) -> Vec<String> {
        let mut warnings = Vec::new();
        if saturated {
            warnings.push(
                "a loadgen core was busy over 90% of the run: the client may be the bottleneck; \
                 add --cores"
                    .to_string(),
            );
        }
        if self.overflowed {
            warnings.push(
                "more than 4096 messages of one publisher were missing at once for some \
                 receiver: late arrivals past that count as duplicates"
                    .to_string(),
            );
        }
        if lag.p99 > 10_000 {
            warnings.push(format!(
                "publishers fell behind their schedule (p99 lag {} ms): the offered rate was not \
                 fully sent on time",
                lag.p99 / 1000
            ));
        }
        warnings
    }
}

fn percentile_points(latency: &Histogram<u64>) -> Vec<PercentilePoint> {
    [
        0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
    ]
    .iter()
    .map(|&p| PercentilePoint {
        percentile: p,
        latency_us: if latency.is_empty() {
            0
        } else {
            latency.value_at_quantile(p / 100.0)
        },
    })
    .collect()
}

fn timeline_points(rec: &Recorder) -> Vec<TimelinePoint> {
    rec.timeline
        .iter()
        .enumerate()
        .map(|(i, s)| TimelinePoint {
            second: i,
            sent: s.sent,
            received: s.received,
            p99_us: if s.latency.is_empty() {
                0
            } else {
                s.latency.value_at_quantile(0.99)
            },
        })
        .collect()
}

/// `n` per second of `secs`, 0 for no time.
fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Builds the report from every core's result.
pub fn build(
    scenario: &str,
    params: serde_json::Value,
    cfg: &RunConfig,
    cores: Vec<CoreResult>,
    connect_secs: f64,
) -> Report {
    let m = Merged::of(&cores, cfg.plan.rooms.len());
    let expected = m.expected(cfg);
    let failed: u64 = m.failures.values().sum();
    let received: u64 = m.unique_by.values().sum();
    let attempted = cfg.plan.conns.len() as u64;
    let saturated = m.busy.iter().any(|&b| b > 0.9);
    let lag = Percentiles::of(&m.rec.schedule_lag);
    let warnings = m.warnings(saturated, &lag);
    Report {
        scenario: scenario.to_string(),
        params,
        connects: Connects {
            attempted,
            ok: m.ok,
            ready: attempted.saturating_sub(failed),
            failed,
            per_sec: per_sec(m.ok, connect_secs),
            handshake_us: Percentiles::of(&m.handshake),
        },
        sent: m.sent_by.values().sum(),
        sent_in_window: m.rec.sent_in_window,
        expected,
        received,
        duplicates: m.duplicates,
        out_of_order: m.out_of_order,
        lost: expected.saturating_sub(received),
        delivery_ratio: if expected == 0 {
            0.0 // Nothing expected is no delivery, not a perfect one.
        } else {
            received as f64 / expected as f64
        },
        deliveries_per_sec: per_sec(m.rec.received_in_window, cfg.duration.as_secs_f64()),
        frames_received: m.frames,
        batched_frames: m.batched,
        latency_us: Percentiles::of(&m.rec.latency),
        schedule_lag_us: lag,
        client_cpu: ClientCpu {
            cores: cores.len(),
            busy: m.busy,
            saturated,
        },
        percentiles: percentile_points(&m.rec.latency),
        timeline: timeline_points(&m.rec),
        warnings,
        histogram: Some(m.rec.latency),
        measures_delivery: cfg.plan.publishers() > 0,
        failures: m.failures,
        server_closes: m.server_closes,
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

impl Report {
    /// Why the run failed, one reason a line; empty when it passed. A run fails when any
    /// connection failed, when it should have measured delivery but nothing was expected,
    /// or when a threshold does not hold.
    pub fn verdict(&self, t: Thresholds) -> Vec<String> {
        let mut why = Vec::new();
        let c = &self.connects;
        if c.failed > 0 {
            let causes: Vec<String> = self
                .failures
                .iter()
                .map(|(cause, n)| format!("{n} x {cause}"))
                .collect();
            why.push(format!(
                "{} of {} connections failed ({})",
                c.failed,
                c.attempted,
                causes.join(", ")
            ));
        }
        if self.measures_delivery && self.expected == 0 {
            why.push(if c.ready == 0 {
                "nothing was expected: no connection was ready".to_string()
            } else {
                "nothing was expected: no message was sent to a ready member".to_string()
            });
        } else if self.measures_delivery && self.delivery_ratio < t.min_delivery {
            why.push(format!(
                "delivery ratio {:.6} is below {}",
                self.delivery_ratio, t.min_delivery
            ));
        }
        if let (Some(max), true) = (t.max_p99_ms, self.measures_delivery) {
            let p99 = self.latency_us.p99 as f64 / 1000.0;
            if self.latency_us.count == 0 {
                why.push("no latency was measured, so p99 cannot be checked".to_string());
            } else if p99 > max {
                why.push(format!("p99 {p99:.3} ms is above {max} ms"));
            }
        }
        why
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let c = &self.connects;
        let _ = writeln!(o, "scenario            {}", self.scenario);
        let _ = writeln!(
            o,
            "connections         {} ready / {} attempted, {} upgraded ({:.0}/s), handshake p50 {} ms p99 {} ms",
            c.ready,
            c.attempted,
            c.ok,
            c.per_sec,
            ms(c.handshake_us.p50),
            ms(c.handshake_us.p99)
        );
        for (cause, n) in &self.failures {
            let _ = writeln!(o, "  failed            {n} x {cause}");
        }
        for (why, n) in &self.server_closes {
            let _ = writeln!(o, "  ended             {n} x {why}");
        }
        if self.measures_delivery {
            self.delivery_rows(&mut o);
        }
        let busy: Vec<String> = self
            .client_cpu
            .busy
            .iter()
            .map(|b| format!("{:.0}%", b * 100.0))
            .collect();
        let _ = writeln!(o, "client cpu          {}", busy.join(" "));
        for w in &self.warnings {
            let _ = writeln!(o, "warning: {w}");
        }
        o
    }

    /// The table's rows about messages: sent, delivered, latency.
    fn delivery_rows(&self, o: &mut String) {
        let _ = writeln!(o, "sent                {}", self.sent);
        let _ = writeln!(
            o,
            "delivered           {} of {} expected ({}), lost {}, duplicates {}, out of order {}",
            self.received,
            self.expected,
            if self.expected == 0 {
                "nothing expected".to_string()
            } else {
                format!("{:.4}%", self.delivery_ratio * 100.0)
            },
            self.lost,
            self.duplicates,
            self.out_of_order
        );
        let _ = writeln!(o, "deliveries/s        {:.0}", self.deliveries_per_sec);
        let l = &self.latency_us;
        let _ = writeln!(
            o,
            "latency ms          p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.p9999),
            ms(l.max)
        );
        let s = &self.schedule_lag_us;
        let _ = writeln!(
            o,
            "schedule lag ms     p50 {}  p99 {}  max {}",
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
        if self.batched_frames > 0 {
            let _ = writeln!(
                o,
                "batching            {} of {} frames carried several messages: the server \
                 batches, so latency includes its batching window (corecast: \
                 --batch-window-ms, 50 by default; 0 turns batching off)",
                self.batched_frames, self.frames_received
            );
        }
    }

    /// The latency distribution in HdrHistogram's percentile format (values in ms).
    pub fn hgrm(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{:>12} {:>14} {:>10} {:>14}\n",
            "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
        );
        let Some(h) = self.histogram.as_ref().filter(|h| !h.is_empty()) else {
            return o;
        };
        let mut total = 0;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let inv = if q < 1.0 {
                format!("{:>14.2}", 1.0 / (1.0 - q))
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "{:>12.3} {:>14.12} {:>10} {}",
                v.value_iterated_to() as f64 / 1000.0,
                q,
                total,
                inv
            );
        }
        let _ = writeln!(
            o,
            "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
            h.mean() / 1000.0,
            h.stdev() / 1000.0
        );
        let _ = writeln!(
            o,
            "#[Max     = {:>12.3}, Total count    = {:>12}]",
            h.max() as f64 / 1000.0,
            h.len()
        );
        let _ = writeln!(
            o,
            "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
            h.buckets(),
            h.distinct_values()
        );
        o
    }

    /// A self-contained HTML page: the numbers, the latency-by-percentile plot and throughput
    /// over time, as inline SVG.
    pub fn html(&self) -> String {
        let pct = crate::chart::percentile_svg(&self.percentiles);
        let time = crate::chart::timeline_svg(&self.timeline);
        let json = serde_json::to_string_pretty(self).expect("report serializes");
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>loadgen: {scenario}</title>\
             <style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:960px}}\
             pre{{background:#f4f4f4;padding:1em;overflow:auto}}svg{{background:#fff;border:1px solid #ddd}}</style>\
             </head><body><h1>loadgen: {scenario}</h1><pre>{table}</pre>\
             <h2>Latency by percentile</h2>{pct}<h2>Throughput and p99 over time</h2>{time}\
             <h2>Raw results</h2><pre>{json}</pre></body></html>",
            scenario = escape(&self.scenario),
            table = escape(&self.table()),
            json = escape(&json),
        )
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
