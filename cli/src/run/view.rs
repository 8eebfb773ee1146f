//! What a person sees while a run goes: step logs prefixed `[task : step]` as
//! `tkn pipelinerun logs` prints them, a line when a task ends, and notes. On a terminal
//! (text output) each running task also has a spinner with its elapsed time; elsewhere
//! everything is plain lines. Shared by the log-reading threads.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct View(Arc<Inner>);

struct Inner {
    /// Logs and task lines go to stderr (JSON/YAML output) rather than stdout.
    to_stderr: bool,
    live: Option<Live>,
    lock: Mutex<()>,
}

struct Live {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl View {
    /// `machine_output`: stdout carries only the final objects.
    pub fn new(machine_output: bool) -> Self {
        let live = (!machine_output && std::io::stdout().is_terminal()).then(|| Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: Mutex::new(HashMap::new()),
        });
        View(Arc::new(Inner {
            to_stderr: machine_output,
            live,
            lock: Mutex::new(()),
        }))
    }

    fn print(&self, line: &str) {
        if let Some(live) = &self.0.live {
            // Prints above the spinners (a no-op only when the terminal went away).
            let _ = live.multi.println(line);
            return;
        }
        let _guard = self.0.lock.lock();
        if self.0.to_stderr {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }

    /// One line of a step's (or sidecar's) output.
    pub fn log(&self, task: &str, step: &str, line: &str) {
        self.print(&format!("[{task} : {step}] {line}"));
    }

    /// Something the person should know (always on stderr, never among the logs).
    pub fn note(&self, message: &str) {
        let line = format!("tkt run: {message}");
        if let Some(live) = &self.0.live {
            live.multi.suspend(|| eprintln!("{line}"));
        } else {
            let _guard = self.0.lock.lock();
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }

    pub fn task_started(&self, task: &str) {
        let Some(live) = &self.0.live else { return };
        let bar = live.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<24} Running {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(task.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut bars) = live.bars.lock() {
            bars.insert(task.to_owned(), bar);
        }
    }

    /// A task ended (or was skipped): `status` is its reason.
    pub fn task_finished(&self, task: &str, status: &str, seconds: Option<f64>) {
        let took = seconds.map(|s| format!(" ({s:.2}s)")).unwrap_or_default();
        let line = format!("{task}: {status}{took}");
        if let Some(live) = &self.0.live {
            let bar = live.bars.lock().ok().and_then(|mut b| b.remove(task));
            if let Some(bar) = bar {
                bar.finish_and_clear();
                live.multi.remove(&bar);
            }
        }
        self.print(&line);
    }

    /// Clears the spinners before the summary.
    pub fn finish(&self) {
        if let Some(live) = &self.0.live {
            if let Ok(mut bars) = live.bars.lock() {
                for (_, bar) in bars.drain() {
                    bar.finish_and_clear();
                }
            }
            let _ = live.multi.clear();
        }
    }

    /// Where the summary goes: stdout for text output.
    pub fn summary(&self, text: &str) {
        let _guard = self.0.lock.lock();
        if self.0.to_stderr {
            let _ = write!(std::io::stderr().lock(), "{text}");
        } else {
            let _ = write!(std::io::stdout().lock(), "{text}");
        }
    }
}
