//! The servers the tests start (PostgreSQL, Synapse, coturn, Caddy) through
//! `support::service` do not outlive the test that started them, even when
//! the test is killed before its guards can stop them.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

#[test]
fn a_server_dies_with_the_thread_that_started_it() {
    // support::service runs the server through util-linux's setpriv, which
    // is not among the programs of the Nix build sandbox.
    if support::require("setpriv (util-linux)", support::which("setpriv")).is_none() {
        return;
    }
    let mut child = std::thread::spawn(|| {
        let child = support::service("sleep")
            .arg("120")
            .spawn()
            .expect("start sleep through setpriv");
        // Time for setpriv to set the signal and exec.
        std::thread::sleep(Duration::from_millis(500));
        child
    })
    .join()
    .expect("thread");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let status = status.expect("the server outlived the thread that started it");
    assert_eq!(status.signal(), Some(9), "{status:?}");
}
