//! The watcher against real directories and real inotify, laid out as the kubelet lays
//! out pods, with marker files written the way the entrypoint writes them.

use std::collections::HashMap;
use std::fs;
use std::time::{Duration, Instant};

use tektite_node_agent::{Event, EventKind, Watcher};

mod common;
use common::{Node, Pod, at};
use tektite_api::step::StepReason;
use tektite_api::step::layout::Marker;

/// Reads events until `done` holds of everything read, or 20 s pass.
fn collect(w: &mut Watcher, mut done: impl FnMut(&[Event]) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut all = Vec::new();
    while !done(&all) {
        assert!(
            Instant::now() < deadline,
            "gave up waiting; got {} events",
            all.len()
        );
        all.extend(w.next_events(Some(Duration::from_millis(100))).unwrap());
    }
    // Anything more that is already queued (duplicates would show here).
    all.extend(w.next_events(Some(Duration::from_millis(50))).unwrap());
    all
}

fn count(events: &[Event], kind: EventKind) -> usize {
    events.iter().filter(|e| e.kind() == kind).count()
}

/// Each (pod, step, kind) at most once.
fn assert_no_duplicates(events: &[Event]) {
    let mut seen = HashMap::new();
    for e in events {
        let key = (e.pod_uid().to_owned(), e.step(), e.kind());
        assert!(
            seen.insert(key.clone(), ()).is_none(),
            "reported twice: {key:?}"
        );
    }
}

#[test]
fn steps_of_several_pods_in_any_interleaving_are_reported_once_each() {
    let node = Node::new();
    let mut w = node.watcher();
    let pods: Vec<Pod> = (0..5).map(|p| node.pod(&format!("uid-{p}"), 4)).collect();
    let mut order: Vec<(usize, usize)> = (0..5).flat_map(|p| (0..4).map(move |s| (p, s))).collect();
    fastrand::Rng::with_seed(7).shuffle(&mut order);
    for (p, s) in &order {
        pods[*p].start(*s);
    }
    fastrand::Rng::with_seed(8).shuffle(&mut order);
    for (p, s) in &order {
        pods[*p].finish(*s, true);
    }
    let events = collect(&mut w, |e| count(e, EventKind::Finished) == 20);
    assert_no_duplicates(&events);
    assert_eq!(count(&events, EventKind::Started), 20);
    for e in &events {
        if let Event::StepFinished { step, state, .. } = e {
            assert_eq!(state.started_at, at(*step));
            assert_eq!(state.reason, Some(StepReason::Completed));
        }
    }
    // A start is reported before its step's end.
    for (i, e) in events.iter().enumerate() {
        if e.kind() == EventKind::Finished {
            assert!(events[..i].iter().any(|s| s.kind() == EventKind::Started
                && s.pod_uid() == e.pod_uid()
                && s.step() == e.step()));
        }
    }
}

#[test]
fn a_restarted_watcher_rebuilds_every_live_pod_from_its_files() {
    let node = Node::new();
    let a = node.pod("a", 3);
    a.finish(0, true);
    let mut w = node.watcher();
    let first = collect(&mut w, |e| count(e, EventKind::Finished) == 1);
    drop(w); // the agent dies

    a.finish(1, true);
    a.start(2);
    let b = node.pod("b", 1);
    b.finish(0, false);
    let mut w = node.watcher();
    let second = collect(&mut w, |e| {
        count(e, EventKind::Finished) == 3 && count(e, EventKind::Started) == 4
    });
    assert_no_duplicates(&second);
    // Everything on disk is reported again: what the first agent sent is a harmless duplicate.
    assert!(first.iter().all(|e| second.contains(e)));
    assert!(second.contains(&Event::StepStarted {
        pod_uid: "a".into(),
        step: 2,
        started_at: at(2)
    }));
    assert!(
        second
            .iter()
            .any(|e| matches!(e, Event::StepFinished { pod_uid, state, .. }
        if pod_uid == "b" && state.reason == Some(StepReason::Error)))
    );
}

#[test]
fn a_burst_that_overflows_the_queue_loses_nothing() {
    let node = Node::new();
    let mut w = node.watcher();
    let (pods, steps) = (500, 20);
    let all: Vec<Pod> = (0..pods)
        .map(|p| node.pod(&format!("burst-{p}"), steps))
        .collect();
    // Every run directory watched first (pod, volumes, empty-dir and 20 run dirs per pod)...
    let watched = w.watch_count() + pods * (3 + steps);
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.watch_count() < watched {
        assert!(
            Instant::now() < deadline,
            "{} of {watched} watches",
            w.watch_count()
        );
        w.next_events(Some(Duration::from_millis(50))).unwrap();
    }
    // ...then 10,000 steps end at once, while nobody reads.
    for pod in &all {
        for s in 0..steps {
            pod.finish(s, true);
        }
    }
    let events = collect(&mut w, |e| count(e, EventKind::Finished) == pods * steps);
    assert_no_duplicates(&events);
    assert_eq!(count(&events, EventKind::Started), pods * steps);
    let queue: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Each step alone queues three events (state rename, post create, post close).
    if pods * steps * 3 > queue {
        assert!(
            w.stats().overflows >= 1,
            "the burst should have overflowed a {queue}-event queue"
        );
    }
}

#[test]
fn garbage_or_truncated_state_records_are_reported_not_fatal() {
    let node = Node::new();
    let mut w = node.watcher();
    let pod = node.pod("bad", 3);
    let post = |s| pod.post_file(s);
    fs::write(Marker::State.path(&post(0)), "{\"version\":1,\"start").unwrap();
    fs::File::create(post(0)).unwrap();
    fs::write(Marker::State.path(&post(1)), [0xffu8, 0, 1]).unwrap();
    fs::File::create(Marker::Error.path(&post(1))).unwrap();
    fs::File::create(post(2)).unwrap(); // no state record at all
    let events = collect(&mut w, |e| count(e, EventKind::Unreadable) == 3);
    for e in &events {
        if let Event::StepUnreadable { error, .. } = e {
            assert!(error.contains("state record"), "{error}");
        }
    }
    // The watcher goes on.
    let good = node.pod("good", 1);
    good.finish(0, true);
    collect(&mut w, |e| count(e, EventKind::Finished) == 1);
}

#[test]
fn deleted_pods_are_reported_gone_and_their_watches_dropped() {
    let node = Node::new();
    let mut w = node.watcher();
    let baseline = w.watch_count();
    let pod = node.pod("gone", 2);
    pod.finish(0, true);
    collect(&mut w, |e| count(e, EventKind::Finished) == 1);
    assert!(w.watch_count() > baseline);
    node.delete_pod("gone");
    let events = collect(&mut w, |e| count(e, EventKind::PodGone) == 1);
    assert_eq!(
        events.last(),
        Some(&Event::PodGone {
            pod_uid: "gone".into()
        })
    );
    collect(&mut w, |_| true);
    assert_eq!(w.watch_count(), baseline);
    assert_eq!(w.pod_count(), 0);
}

#[test]
fn thousands_of_pod_lifetimes_leak_no_watches() {
    let node = Node::new();
    let mut w = node.watcher();
    let baseline = w.watch_count();
    for p in 0..2_000 {
        let uid = format!("life-{p}");
        node.pod(&uid, 2).finish(0, true);
        if p % 100 == 99 {
            w.next_events(Some(Duration::ZERO)).unwrap();
        }
        node.delete_pod(&uid);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.watch_count() != baseline || w.pod_count() != 0 {
        assert!(
            Instant::now() < deadline,
            "{} watches, {} pods left",
            w.watch_count(),
            w.pod_count()
        );
        w.next_events(Some(Duration::from_millis(50))).unwrap();
    }
}

#[test]
fn pods_that_are_not_tektites_are_ignored() {
    let node = Node::new();
    let mut w = node.watcher();
    let other = node
        .root()
        .join("pods/plain/volumes/kubernetes.io~empty-dir/cache");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("out"), "").unwrap();
    fs::create_dir_all(
        node.root()
            .join("pods/plain/volumes/kubernetes.io~empty-dir/tekton-internal-run-01"),
    )
    .unwrap();
    let events = collect(&mut w, |_| true);
    assert!(events.is_empty(), "{events:?}");
    node.delete_pod("plain");
    assert!(collect(&mut w, |_| true).is_empty());
}
