//! A node's kubelet tree in a temp dir, with markers written the way the entrypoint
//! writes them. Shared by the watcher and agent tests.
#![allow(dead_code)] // each test file uses a different part

use std::fs;
use std::path::{Path, PathBuf};

use tektite_api::step::layout::{Marker, Volume, node_volume_dir};
use tektite_api::step::{StepReason, StepState};
use tektite_node_agent::{Config, Watcher};

pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("pods")).unwrap();
        Node { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn watcher(&self) -> Watcher {
        Watcher::new(Config::new(self.root())).unwrap()
    }

    /// A tektite pod with `steps` run volumes (and another emptyDir, as pods have).
    pub fn pod(&self, uid: &str, steps: usize) -> Pod {
        for i in 0..steps {
            fs::create_dir_all(self.run_dir(uid, i)).unwrap();
        }
        fs::create_dir_all(node_volume_dir(self.root(), uid, &Volume::Home)).unwrap();
        Pod {
            root: self.root().to_owned(),
            uid: uid.into(),
        }
    }

    pub fn run_dir(&self, uid: &str, step: usize) -> PathBuf {
        node_volume_dir(self.root(), uid, &Volume::Run(step))
    }

    pub fn delete_pod(&self, uid: &str) {
        fs::remove_dir_all(self.root().join("pods").join(uid)).unwrap();
    }
}

pub struct Pod {
    pub root: PathBuf,
    pub uid: String,
}

impl Pod {
    pub fn post_file(&self, step: usize) -> PathBuf {
        node_volume_dir(&self.root, &self.uid, &Volume::Run(step)).join("out")
    }

    pub fn write_state(&self, step: usize, state: &StepState) {
        let path = Marker::State.path(&self.post_file(step));
        let tmp = path.with_extension("state.tmp");
        fs::write(&tmp, state.encode()).unwrap();
        fs::rename(&tmp, &path).unwrap();
    }

    pub fn start(&self, step: usize) {
        self.write_state(step, &StepState::started(at(step)));
    }

    /// State record, then the post file, as the entrypoint writes them.
    pub fn finish(&self, step: usize, ok: bool) {
        let mut s = StepState::started(at(step));
        s.finished_at = Some(at(step + 1));
        s.exit_code = Some(if ok { 0 } else { 1 });
        s.reason = Some(if ok {
            StepReason::Completed
        } else {
            StepReason::Error
        });
        self.write_state(step, &s);
        let post = self.post_file(step);
        let path = if ok { post } else { Marker::Error.path(&post) };
        fs::File::create(path).unwrap();
    }
}

pub fn at(second: usize) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_800_000_000 + second as i64).unwrap()
}
