//! The crash tests' chaos: three `flint worker` processes, one of which is killed with SIGKILL
//! at random intervals and replaced, until a deadline or until the test says stop.

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flint_testkit::process;
use rand::Rng;

use crate::fleet;

/// Runs on the calling thread: every `every_ms` (a random draw from the range) one of three
/// workers is killed and replaced, for `for_` or until `stop`. Returns the workers still running
/// and how many were killed.
pub fn kill_and_replace(
    config_file: &Path,
    every_ms: Range<u64>,
    for_: Duration,
    stop: &AtomicBool,
) -> (Vec<fleet::Worker>, usize) {
    let mut workers: Vec<fleet::Worker> =
        (0..3).map(|_| fleet::start_worker(config_file)).collect();
    let mut kills = 0;
    let until = Instant::now() + for_;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        // Chaos at random moments, not synchronisation: nothing waits on this pause.
        std::thread::sleep(Duration::from_millis(
            rand::rng().random_range(every_ms.clone()),
        ));
        let victim = rand::rng().random_range(0..workers.len());
        process::signal(&workers[victim], "KILL");
        let _ = workers[victim].wait();
        kills += 1;
        workers[victim] = fleet::start_worker(config_file);
    }
    (workers, kills)
}
