//! Prometheus metrics in the text exposition format, kept without a metrics library: a few
//! counters and one latency histogram per route.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    /// (method, route, status) -> count.
    requests: BTreeMap<(String, String, u16), u64>,
    /// (method, route) -> latency.
    latency: BTreeMap<(String, String), Histogram>,
    login_failures: u64,
}

/// Request counts and latencies by route (the matched pattern, never the raw path, so
/// cardinality stays bounded).
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *inner
            .requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let h = inner
            .latency
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        h.count += 1;
        h.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
    }

    pub fn login_failed(&self) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .login_failures += 1;
    }

    /// The exposition text, with the gauges the caller adds.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP hearth_login_failures_total Failed logins, setup claims and unlocks.\n\
             # TYPE hearth_login_failures_total counter\nhearth_login_failures_total {}",
            inner.login_failures
        );
        out.push_str(
            "# HELP hearth_http_requests_total Requests by method, route and status.\n\
             # TYPE hearth_http_requests_total counter\n",
        );
        for ((method, route, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "hearth_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP hearth_http_request_duration_seconds Time to the response head, by route.\n\
             # TYPE hearth_http_request_duration_seconds histogram\n",
        );
        for ((method, route), h) in &inner.latency {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "hearth_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "hearth_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
                 hearth_http_request_duration_seconds_sum{{{labels}}} {}\n\
                 hearth_http_request_duration_seconds_count{{{labels}}} {}",
                h.count, h.sum, h.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe("GET", "/x", 200, Duration::from_micros(50));
        m.observe("GET", "/x", 200, Duration::from_millis(3));
        m.observe("GET", "/x", 404, Duration::from_secs(9));
        let text = m.render(&[("hearth_up", "Up.", 1.0)]);
        assert!(text.contains("hearth_up 1"), "{text}");
        assert!(
            text.contains(r#"hearth_http_requests_total{method="GET",route="/x",status="200"} 2"#)
        );
        assert!(text.contains(r#"le="0.0001"} 1"#), "{text}");
        assert!(text.contains(r#"le="0.005"} 2"#), "{text}");
        assert!(text.contains(r#"le="+Inf"} 3"#), "{text}");
    }
}
