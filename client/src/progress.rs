//! Progress of work on the mesh (a job's tasks, a batch's rows) while a command waits.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::ClientError;

/// A progress bar: `[###---] done/total UNIT, elapsed, eta`.
pub fn bar_of(done: usize, total: usize, started: Instant, unit: &str) -> String {
    let width = 30;
    let filled = (width * done).checked_div(total).unwrap_or(0).min(width);
    let secs = started.elapsed().as_secs_f64();
    let eta = if done == 0 || done >= total {
        String::new()
    } else {
        format!(", eta {:.1}s", secs / done as f64 * (total - done) as f64)
    };
    format!(
        "[{}{}] {done}/{total} {unit}, {secs:.1}s{eta}",
        "#".repeat(filled),
        "-".repeat(width - filled)
    )
}

/// Polls `fetch` until `progress` says the work stopped running, redrawing a bar of
/// `done/total UNIT` on stderr when it is a terminal. Polls often at first (short work
/// ends in well under a second), then every 250 ms. Returns the last answer.
pub fn follow_with<T>(
    unit: &str,
    mut fetch: impl FnMut() -> Result<T, ClientError>,
    progress: impl Fn(&T) -> (usize, usize, bool),
) -> Result<T, ClientError> {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut pause = Duration::from_millis(10);
    loop {
        let v = fetch()?;
        let (done, total, running) = progress(&v);
        if tty {
            let _ = write!(
                std::io::stderr().lock(),
                "\r{}   ",
                bar_of(done, total, started, unit)
            );
        }
        if !running {
            if tty {
                let _ = writeln!(std::io::stderr().lock());
            }
            return Ok(v);
        }
        std::thread::sleep(pause);
        pause = (pause * 3 / 2).min(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_bar_shows_counts_and_an_eta() {
        let b = bar_of(5, 10, Instant::now() - Duration::from_secs(2), "tasks");
        assert!(
            b.starts_with("[###############---------------] 5/10 tasks"),
            "{b}"
        );
        assert!(b.contains("eta"), "{b}");
        assert!(!bar_of(10, 10, Instant::now(), "tasks").contains("eta"));
    }
}
