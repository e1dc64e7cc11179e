//! Prometheus metrics: `apiserver_request_total{verb,resource,code}` and
//! `apiserver_request_duration_seconds{verb,resource}` (upstream's names).

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0,
    8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// The labels of a request: its verb, resource and subresource. All are static strings, so
/// recording a request allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// `GET`, `LIST`, `WATCH`, `POST`, ...
    pub verb: &'static str,
    /// The plural resource (empty when the path named none).
    pub resource: &'static str,
    /// The subresource, if any.
    pub subresource: Option<&'static str>,
}

impl Label {
    /// The `resource` label as exposed: `pods` or `pods/status`.
    fn resource_label(&self) -> String {
        match self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.to_owned(),
        }
    }
}

/// Request metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<HashMap<(Label, u16), u64>>,
    latency: Mutex<HashMap<Label, Histogram>>,
}

impl Metrics {
    /// Records one request. Watches are counted but not timed (they last minutes).
    pub fn observe(&self, label: Label, code: u16, elapsed: Duration) {
        *self.requests.lock().entry((label, code)).or_default() += 1;
        if label.verb == "WATCH" {
            return;
        }
        let secs = elapsed.as_secs_f64();
        let mut l = self.latency.lock();
        let h = l.entry(label).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        let mut reqs: Vec<_> = self
            .requests
            .lock()
            .iter()
            .map(|((label, code), n)| (label.verb, label.resource_label(), *code, *n))
            .collect();
        reqs.sort();
        for (verb, res, code, n) in reqs {
            let _ = writeln!(
                out,
                "apiserver_request_total{{code=\"{code}\",resource=\"{res}\",verb=\"{verb}\"}} {n}"
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb and resource.\n# TYPE apiserver_request_duration_seconds histogram\n");
        let l = self.latency.lock();
        let mut hists: Vec<_> = l
            .iter()
            .map(|(label, h)| (label.verb, label.resource_label(), h))
            .collect();
        hists.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (verb, res, h) in hists {
            let labels = format!("resource=\"{res}\",verb=\"{verb}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_histograms() {
        let m = Metrics::default();
        let get = |resource, subresource| Label {
            verb: "GET",
            resource,
            subresource,
        };
        m.observe(get("pods", None), 200, Duration::from_millis(3));
        m.observe(get("pods", None), 200, Duration::from_millis(30));
        m.observe(get("pods", None), 404, Duration::from_millis(1));
        m.observe(get("pods", Some("log")), 200, Duration::from_millis(1));
        let text = m.render();
        assert!(
            text.contains("apiserver_request_total{code=\"200\",resource=\"pods\",verb=\"GET\"} 2")
        );
        assert!(text.contains("apiserver_request_duration_seconds_bucket{resource=\"pods\",verb=\"GET\",le=\"0.005\"} 2"));
        assert!(text.contains(
            "apiserver_request_duration_seconds_count{resource=\"pods\",verb=\"GET\"} 3"
        ));
        assert!(text.contains(
            "apiserver_request_total{code=\"200\",resource=\"pods/log\",verb=\"GET\"} 1"
        ));
    }
}
