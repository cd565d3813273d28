//! Showing a running job's progress: an indicatif bar on a terminal, plain
//! log lines otherwise. Both poll the runner's [`JobProgress`] from a thread
//! of their own, so the engine never waits on the display.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quern_engine::JobProgress;

/// A progress display running on its own thread.
pub(crate) struct ProgressDisplay {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressDisplay {
    /// Starts polling `progress`: a bar when `bar` is set, log lines
    /// otherwise.
    pub(crate) fn start(progress: Arc<JobProgress>, bar: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("quern-progress".into())
            .spawn(move || if bar { show_bar(&progress, &flag) } else { log_lines(&progress, &flag) })
            .ok();
        ProgressDisplay { stop, thread }
    }

    /// Stops the display and waits for it.
    pub(crate) fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn counts(p: &JobProgress) -> (u32, u32, u32, u32) {
    (
        p.maps_done.load(Ordering::Relaxed),
        p.map_tasks.load(Ordering::Relaxed),
        p.reduces_done.load(Ordering::Relaxed),
        p.reduce_tasks.load(Ordering::Relaxed),
    )
}

fn show_bar(p: &JobProgress, stop: &AtomicBool) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
    let style = ProgressStyle::with_template("{prefix:>6} [{bar:30}] {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    while !stop.load(Ordering::Relaxed) {
        if p.planned.load(Ordering::Acquire) {
            let (md, mt, rd, rt) = counts(p);
            if md < mt || rt == 0 {
                let total = p.input_bytes.load(Ordering::Relaxed).max(1);
                let read = p.bytes_read.load(Ordering::Relaxed).min(total);
                // Message first, prefix last: each call may redraw, and the
                // last one drawn must be whole.
                bar.set_message(format!(
                    "{md}/{mt} tasks, {}/{}",
                    bytesize::ByteSize(read).display().iec(),
                    bytesize::ByteSize(total).display().iec()
                ));
                bar.set_length(total);
                bar.set_position(read);
                bar.set_prefix("map");
            } else {
                bar.set_message(format!("{rd}/{rt} tasks"));
                bar.set_length(u64::from(rt));
                bar.set_position(u64::from(rd));
                bar.set_prefix("reduce");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

fn log_lines(p: &JobProgress, stop: &AtomicBool) {
    let mut last = (u32::MAX, 0, u32::MAX, 0);
    let mut last_at = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if p.planned.load(Ordering::Acquire) {
            let now = counts(p);
            if now != last && last_at.elapsed() >= Duration::from_secs(1) {
                tracing::info!("progress: map {}/{} tasks, reduce {}/{} tasks", now.0, now.1, now.2, now.3);
                last = now;
                last_at = Instant::now();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
