//! Signals as events: SIGTERM, SIGINT and SIGCHLD are blocked and read from a signalfd,
//! so waiting, supervising and reaping happen in one poll loop with no handlers and no
//! threads. The blocked mask is not inherited: std resets it in the child before exec.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signals passed on to the step's process group.
pub const FORWARDED: [Signal; 2] = [Signal::SIGTERM, Signal::SIGINT];

#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks the signals this process handles and opens the descriptor they arrive on.
    pub fn take() -> nix::Result<Self> {
        let mut mask = SigSet::empty();
        for s in FORWARDED {
            mask.add(s);
        }
        mask.add(Signal::SIGCHLD);
        mask.thread_block()?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Self { fd })
    }

    /// Every signal that arrived since the last call.
    pub fn pending(&self) -> Vec<Signal> {
        let mut out = Vec::new();
        while let Ok(Some(info)) = self.fd.read_signal() {
            if let Ok(s) = Signal::try_from(info.ssi_signo as i32) {
                out.push(s);
            }
        }
        out
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
