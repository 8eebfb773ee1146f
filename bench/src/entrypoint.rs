//! Step handoff and per-step cost of the entrypoint, against a waiter that polls with
//! stat() once a second (Tekton's scheme), on the same machine with the same files.
//!
//!   entrypoint [--quick] [--entrypoint PATH]
//!
//! PATH defaults to the static build that `entrypoint/build-static` prints.
//! Two internal modes are used as step commands: `stamp FILE` (records the wall clock the
//! moment the command runs) and `rusage -- CMD...` (runs CMD, prints its wall time and CPU
//! time from getrusage).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::resource::{UsageWho, getrusage};
use tektite_api::step::layout::Marker;
use tektite_api::step::{EntrypointArgs, WaitMode};
use tektite_bench::{Samples, build_kind, ms};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("stamp") => return stamp(Path::new(&args[1])),
        Some("rusage") => return rusage(&args[2..]),
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    let entrypoint = args
        .iter()
        .position(|a| a == "--entrypoint")
        .map(|i| PathBuf::from(&args[i + 1]))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/x86_64-unknown-linux-musl/entrypoint/tektite-entrypoint")
        });
    if !entrypoint.exists() {
        eprintln!(
            "no entrypoint binary at {}: build it with entrypoint/build-static, or pass --entrypoint PATH",
            entrypoint.display()
        );
        std::process::exit(2);
    }
    let bench = Bench {
        entrypoint: fs::canonicalize(&entrypoint).unwrap(),
        me: std::env::current_exe().unwrap(),
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("entrypoint: step handoff and per-step cost");
    println!(
        "setup: bench {} build; entrypoint {} ({} bytes); {cpus} CPUs; tmp on {}",
        build_kind(),
        bench.entrypoint.display(),
        fs::metadata(&bench.entrypoint).unwrap().len(),
        std::env::temp_dir().display()
    );

    let (n, poll_n) = if quick { (100, 50) } else { (1000, 1000) };
    println!();
    println!("step handoff: previous step's post file lands -> next step's command runs (ms)");
    println!(
        "  (the next step is a real entrypoint waiting on the post file; its command records the clock as it starts)"
    );
    println!("| waiter | handoffs | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    for (label, mode, count, batch, serial) in [
        ("inotify (ours, default)", WaitMode::Auto, n, 50, true),
        ("FIFO (ours, no inotify)", WaitMode::Fifo, n, 50, true),
        (
            "stat() every 1 s (Tekton's scheme)",
            WaitMode::Poll(Duration::from_secs(1)),
            poll_n,
            250,
            false,
        ),
    ] {
        let s = bench.handoffs(mode, count, batch, serial);
        println!(
            "| {label} | {count} | {} | {} | {} |",
            ms(s.p50()),
            ms(s.p99()),
            ms(s.pct(1.0))
        );
    }
    let s = bench.baseline(n);
    println!(
        "| baseline: the stamp command spawned directly, no waiting | {n} | {} | {} | {} |",
        ms(s.p50()),
        ms(s.p99()),
        ms(s.pct(1.0))
    );

    println!();
    println!(
        "chains of `true`: all steps launched at once (as a Pod's containers start), wall time until the last ends (ms)"
    );
    println!("| waiter | steps | runs | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|");
    let runs = if quick { 3 } else { 20 };
    for steps in [10, 50] {
        let s = bench.chains(WaitMode::Auto, steps, runs);
        println!(
            "| inotify (ours) | {steps} | {runs} | {} | {} |",
            ms(s.p50()),
            ms(s.p99())
        );
    }
    let poll_runs = if quick { 1 } else { 3 };
    for steps in [10, 50] {
        let s = bench.chains(WaitMode::Poll(Duration::from_secs(1)), steps, poll_runs);
        println!(
            "| stat() every 1 s | {steps} | {poll_runs} | {} | {} |",
            ms(s.p50()),
            ms(s.p99())
        );
    }

    println!();
    println!(
        "one step of `true` (wall from spawn to exit; CPU = user + system of the process tree, from getrusage)"
    );
    println!("| what | runs | wall p50 | wall p99 | CPU p50 |");
    println!("|---|---:|---:|---:|---:|");
    let runs = if quick { 20 } else { 300 };
    let dir = tempfile::tempdir().unwrap();
    let true_bin = which("true");
    let ep = bench.entrypoint.display().to_string();
    let post = dir.path().join("out").display().to_string();
    let rows: [(&str, Vec<String>); 3] = [
        ("`true` alone", vec![true_bin.clone()]),
        (
            "`tektite-entrypoint --version` (start-up)",
            vec![ep.clone(), "--version".into()],
        ),
        (
            "`true` under the entrypoint",
            vec![ep, format!("--post-file={post}"), "--".into(), true_bin],
        ),
    ];
    for (label, cmd) in rows {
        let (wall, cpu) = bench.usage(&cmd, runs);
        println!(
            "| {label} | {runs} | {} | {} | {} |",
            ms(wall.p50()),
            ms(wall.p99()),
            ms(cpu.p50()),
        );
    }
    // getrusage's peak RSS of a child includes the RSS of the process that spawned it (the
    // kernel keeps the pre-exec mm's high-water mark), so the entrypoint's own peak is read
    // from /proc by its step, while it runs.
    let hwm = (0..runs.min(50))
        .map(|_| bench.entrypoint_peak_rss(dir.path()))
        .max()
        .unwrap();
    println!();
    println!(
        "entrypoint's own peak RSS (VmHWM of its process, read by its step), max of runs: {hwm} KiB"
    );
}

struct Bench {
    entrypoint: PathBuf,
    me: PathBuf,
}

impl Bench {
    fn step(&self, args: &EntrypointArgs) -> Child {
        Command::new(&self.entrypoint)
            .args(args.to_args())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the entrypoint")
    }

    /// `count` handoffs, `batch` waiters at a time. `serial`: triggers 20 ms apart, so each
    /// handoff runs alone; otherwise 2 ms apart (the 1 s poller's latency is its sleep).
    fn handoffs(&self, mode: WaitMode, count: usize, batch: usize, serial: bool) -> Samples {
        let mut out = Vec::with_capacity(count);
        for _ in 0..count.div_ceil(batch) {
            let dir = tempfile::tempdir().unwrap();
            let mut children = Vec::new();
            let mut slots = Vec::new();
            for i in 0..batch {
                let prev = dir.path().join(format!("{i}/run/0/out"));
                let stamp = dir.path().join(format!("{i}/stamp"));
                fs::create_dir_all(prev.parent().unwrap()).unwrap();
                let mut a = EntrypointArgs::new(
                    dir.path().join(format!("{i}/run/1/out")),
                    vec![
                        self.me.display().to_string(),
                        "stamp".into(),
                        stamp.display().to_string(),
                    ],
                );
                a.wait_files = vec![prev.clone()];
                a.wait_mode = mode;
                children.push(self.step(&a));
                slots.push((prev, stamp));
            }
            // Let every waiter reach its wait (inotify watch or FIFO open) before triggering.
            sleep(Duration::from_millis(300));
            let mut sent = Vec::new();
            for (prev, _) in &slots {
                let t0 = now_ns();
                post(prev);
                sent.push(t0);
                // Serial: far apart, so handoffs do not overlap (the harness sleeps rather
                // than spins: on 2 CPUs a spinning harness takes a whole core).
                // Not serial: 0-8 ms apart at random, so triggers fall at every phase of
                // the pollers' 1 s cycle (they all started together).
                sleep(Duration::from_millis(if serial {
                    20
                } else {
                    fastrand::u64(0..8)
                }));
            }
            for mut c in children {
                assert!(c.wait().unwrap().success(), "a step failed");
            }
            for ((_, stamp), t0) in slots.iter().zip(sent) {
                let t1: u128 = fs::read_to_string(stamp).unwrap().trim().parse().unwrap();
                out.push(Duration::from_nanos(t1.saturating_sub(t0) as u64));
            }
        }
        out.truncate(count);
        Samples(out)
    }

    /// What starting the stamp command costs by itself: the bench spawns it directly.
    fn baseline(&self, count: usize) -> Samples {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        for i in 0..count {
            let stamp = dir.path().join(format!("{i}"));
            let t0 = now_ns();
            let mut child = Command::new(&self.me)
                .arg("stamp")
                .arg(&stamp)
                .spawn()
                .unwrap();
            assert!(child.wait().unwrap().success());
            let t1: u128 = fs::read_to_string(&stamp).unwrap().trim().parse().unwrap();
            out.push(Duration::from_nanos(t1.saturating_sub(t0) as u64));
            sleep(Duration::from_millis(5));
        }
        Samples(out)
    }

    /// A chain of `steps` steps of `true`, all launched at once.
    fn chains(&self, mode: WaitMode, steps: usize, runs: usize) -> Samples {
        let true_bin = which("true");
        let mut out = Vec::new();
        for _ in 0..runs {
            let dir = tempfile::tempdir().unwrap();
            let post = |i: usize| dir.path().join(format!("run/{i}/out"));
            let started = Instant::now();
            let children: Vec<Child> = (0..steps)
                .rev()
                .map(|i| {
                    let mut a = EntrypointArgs::new(post(i), vec![true_bin.clone()]);
                    if i > 0 {
                        a.wait_files = vec![post(i - 1)];
                    }
                    a.wait_mode = mode;
                    self.step(&a)
                })
                .collect();
            for mut c in children {
                assert!(c.wait().unwrap().success(), "a step failed");
            }
            out.push(started.elapsed());
        }
        Samples(out)
    }

    /// VmHWM of the entrypoint, in KiB, as its step sees it.
    fn entrypoint_peak_rss(&self, dir: &Path) -> u64 {
        let a = EntrypointArgs::new(
            dir.join("hwm/out"),
            vec!["sh".into(), "-c".into(), "cat /proc/$PPID/status".into()],
        );
        let out = Command::new(&self.entrypoint)
            .args(a.to_args())
            .output()
            .unwrap();
        let status = String::from_utf8(out.stdout).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM in status");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Wall time and CPU time (user + system) of `cmd`, run `runs` times.
    fn usage(&self, cmd: &[String], runs: usize) -> (Samples, Samples) {
        let (mut wall, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let out = Command::new(&self.me)
                .arg("rusage")
                .arg("--")
                .args(cmd)
                .stdout(Stdio::piped())
                .output()
                .unwrap();
            let line = String::from_utf8(out.stdout).unwrap();
            let v: Vec<u64> = line
                .split_whitespace()
                .map(|f| f.parse().unwrap())
                .collect();
            wall.push(Duration::from_nanos(v[0]));
            cpu.push(Duration::from_nanos(v[1]));
        }
        (Samples(wall), Samples(cpu))
    }
}

/// What the previous step's entrypoint does last: the post file, then a byte on the FIFO.
fn post(post_file: &Path) {
    File::create(post_file).unwrap();
    if let Ok(mut fifo) = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(Marker::Wake.path(post_file))
    {
        let _ = fifo.write(b"x");
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Used as a step's command: the clock as it starts, written atomically.
fn stamp(file: &Path) {
    let t = now_ns();
    let tmp = file.with_extension("tmp");
    fs::write(&tmp, t.to_string()).unwrap();
    fs::rename(&tmp, file).unwrap();
}

/// Runs `cmd` and prints `wall_ns cpu_ns` for it and everything it waited for.
fn rusage(cmd: &[String]) {
    let started = Instant::now();
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let wall = started.elapsed();
    assert!(status.success(), "{cmd:?} failed");
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap();
    let tv =
        |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000_000 + t.tv_usec() as u64 * 1_000;
    println!(
        "{} {}",
        wall.as_nanos(),
        tv(usage.user_time()) + tv(usage.system_time())
    );
}

fn which(program: &str) -> String {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} not in PATH"))
        .display()
        .to_string()
}
