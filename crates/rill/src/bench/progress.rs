//! Live progress on stderr while a run goes: messages so far and the
//! current rates, drawn by indicatif (only on a terminal).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the rates are recomputed and redrawn.
const TICK: Duration = Duration::from_millis(500);

/// Counts the producers and consumers of a run add to as they go.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) produced: AtomicU64,
    pub(crate) produced_bytes: AtomicU64,
    pub(crate) consumed: AtomicU64,
    pub(crate) consumed_bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn add_produced(&self, messages: u64, bytes: u64) {
        self.produced.fetch_add(messages, Ordering::Relaxed);
        self.produced_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn add_consumed(&self, messages: u64, bytes: u64) {
        self.consumed.fetch_add(messages, Ordering::Relaxed);
        self.consumed_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn snapshot(&self) -> [u64; 4] {
        [
            self.produced.load(Ordering::Relaxed),
            self.produced_bytes.load(Ordering::Relaxed),
            self.consumed.load(Ordering::Relaxed),
            self.consumed_bytes.load(Ordering::Relaxed),
        ]
    }
}

/// The progress line of a run; drawn by a thread of its own until
/// [`Progress::finish`].
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows the progress of `counters` towards `total` messages (produced,
    /// or consumed when nothing is produced), or an open-ended count.
    pub(crate) fn start(counters: Arc<Counters>, total: Option<u64>, shown: bool) -> Progress {
        let bar = match total {
            Some(total) => ProgressBar::with_draw_target(Some(total), draw_target(shown)),
            None => ProgressBar::with_draw_target(None, draw_target(shown)),
        };
        let template = if total.is_some() {
            "[{elapsed_precise}] {bar:30} {percent:>3}% {msg}"
        } else {
            "[{elapsed_precise}] {spinner} {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("bench-progress".into())
                .spawn(move || draw(&bar, &counters, &stop))
                .ok()
        };
        Progress { stop, thread }
    }

    pub(crate) fn finish(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn draw_target(shown: bool) -> ProgressDrawTarget {
    if shown {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn draw(bar: &ProgressBar, counters: &Counters, stop: &AtomicBool) {
    let mut last = counters.snapshot();
    let mut last_at = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        let now = counters.snapshot();
        let seconds = last_at.elapsed().as_secs_f64().max(1e-9);
        last_at = Instant::now();
        let rate = |index: usize| (now[index] - last[index]) as f64 / seconds;
        let mut message = String::new();
        if now[0] > 0 {
            message.push_str(&format!(
                "produced {} ({:.0} msg/s, {:.1} MB/s)",
                now[0],
                rate(0),
                rate(1) / 1e6
            ));
        }
        if now[2] > 0 {
            if !message.is_empty() {
                message.push_str("  ");
            }
            message.push_str(&format!(
                "consumed {} ({:.0} msg/s, {:.1} MB/s)",
                now[2],
                rate(2),
                rate(3) / 1e6
            ));
        }
        bar.set_position(if now[0] > 0 { now[0] } else { now[2] });
        bar.set_message(message);
        last = now;
    }
    bar.finish_and_clear();
}
