//! The text a scrape gets: the live registry, then the scrape-time
//! collectors, in OpenMetrics (what `prometheus-client` writes) or, by
//! default, Prometheus' text format 0.0.4, which differs from it only in
//! the lines rewritten here.

use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::registry::Registry;

use super::process::Process;

/// The exposition formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Prometheus' text format, version 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// What the scraper asked for in its Accept header: OpenMetrics when
    /// it names it, as Prometheus does, else the text format.
    pub(crate) fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The `live` registry, then the process's figures and `collected`'s.
pub(super) fn encode(
    live: &Registry,
    collected: Vec<Box<dyn Collector>>,
    format: Format,
) -> String {
    let mut scraped = Registry::with_prefix("rill");
    scraped.register_collector(Box::new(Process));
    for collector in collected {
        scraped.register_collector(collector);
    }
    let mut text = String::new();
    // Writing to a String cannot fail, and the registries' encoders fail
    // only when their writer does.
    let _ = encode_registry(&mut text, live);
    let _ = encode_registry(&mut text, &scraped);
    match format {
        Format::OpenMetrics => {
            let _ = encode_eof(&mut text);
            text
        }
        Format::Prometheus => to_text_format(&text),
    }
}

/// OpenMetrics without `# EOF` and `# UNIT`, and with a counter's HELP
/// and TYPE naming its `_total` samples: Prometheus' text format 0.0.4.
fn to_text_format(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    let mut help: Option<&str> = None;
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(held) = help.replace(rest) {
                let _ = writeln!(out, "# HELP {held}");
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some(held) = help.take() {
                let text = held.split_once(' ').map_or("", |(_, text)| text);
                let _ = writeln!(out, "# HELP {name} {text}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
            continue;
        }
        if let Some(held) = help.take() {
            let _ = writeln!(out, "# HELP {held}");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_samples_in_the_text_format() {
        let open_metrics = "# HELP rill_requests Kafka requests.\n\
                            # TYPE rill_requests counter\n\
                            rill_requests_total{api=\"Produce\"} 3\n\
                            # HELP rill_request_duration_seconds Time.\n\
                            # TYPE rill_request_duration_seconds histogram\n\
                            # UNIT rill_request_duration_seconds seconds\n\
                            rill_request_duration_seconds_sum 0.5\n\
                            # EOF\n";
        assert_eq!(
            to_text_format(open_metrics),
            "# HELP rill_requests_total Kafka requests.\n\
             # TYPE rill_requests_total counter\n\
             rill_requests_total{api=\"Produce\"} 3\n\
             # HELP rill_request_duration_seconds Time.\n\
             # TYPE rill_request_duration_seconds histogram\n\
             rill_request_duration_seconds_sum 0.5\n"
        );
    }

    #[test]
    fn the_accept_header_chooses_the_format() {
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::from_accept(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
    }
}
