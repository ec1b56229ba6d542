//! Progress of work on the mesh (a job's tasks, a batch's rows) while a command waits.
//!
//! The bar is indicatif's, on stderr: drawn and redrawn in place on a terminal, not drawn
//! at all (no escape codes) when stderr is a file or a pipe. It reads
//! `[###---] done/total UNIT, elapsed, eta`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::ClientError;

/// The bar's look: `[###############---------------] 5/10 tasks, 2.0s, eta 2.0s` (no eta
/// before the first unit is done, nor after the last).
pub fn style(unit: &str) -> ProgressStyle {
    let template = format!("[{{bar:30}}] {{pos}}/{{len}} {unit}, {{secs}}{{eta_part}}{{msg}}");
    // A unit with template braces in it cannot be shown; the counts still can.
    ProgressStyle::with_template(&template)
        .or_else(|_| ProgressStyle::with_template("[{bar:30}] {pos}/{len}, {secs}{eta_part}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#-")
        .with_key(
            "secs",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{:.1}s", state.elapsed().as_secs_f64());
            },
        )
        .with_key(
            "eta_part",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let (done, total) = (state.pos(), state.len().unwrap_or(0));
                if done > 0 && done < total {
                    let secs = state.elapsed().as_secs_f64();
                    let eta = secs / done as f64 * (total - done) as f64;
                    let _ = write!(out, ", eta {eta:.1}s");
                }
            },
        )
}

/// A bar of `UNIT` drawn to `target`.
pub fn bar(unit: &str, target: ProgressDrawTarget) -> ProgressBar {
    // No length until the work has one: an empty bar, not a full one, for `0/0`.
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(style(unit));
    bar
}

/// Polls `fetch` until `progress` says the work stopped running, showing a bar of
/// `done/total UNIT` on stderr when it is a terminal. Polls often at first (short work
/// ends in well under a second), then every 250 ms. Returns the last answer.
pub fn follow_with<T>(
    unit: &str,
    fetch: impl FnMut() -> Result<T, ClientError>,
    progress: impl Fn(&T) -> (usize, usize, bool),
) -> Result<T, ClientError> {
    follow_with_message(unit, fetch, progress, |_| String::new())
}

/// [`follow_with`], with `message` drawn after the counts (a fit's loss).
pub fn follow_with_message<T>(
    unit: &str,
    fetch: impl FnMut() -> Result<T, ClientError>,
    progress: impl Fn(&T) -> (usize, usize, bool),
    message: impl Fn(&T) -> String,
) -> Result<T, ClientError> {
    follow_on(
        bar(unit, ProgressDrawTarget::stderr()),
        fetch,
        progress,
        message,
    )
}

/// [`follow_with_message`] on a given bar.
fn follow_on<T>(
    bar: ProgressBar,
    mut fetch: impl FnMut() -> Result<T, ClientError>,
    progress: impl Fn(&T) -> (usize, usize, bool),
    message: impl Fn(&T) -> String,
) -> Result<T, ClientError> {
    let mut pause = Duration::from_millis(10);
    loop {
        let v = match fetch() {
            Ok(v) => v,
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        };
        let (done, total, running) = progress(&v);
        bar.set_message(message(&v));
        if total > 0 {
            bar.set_length(total as u64);
        } else {
            bar.unset_length();
        }
        bar.set_position(done as u64);
        if !running {
            bar.finish();
            return Ok(v);
        }
        std::thread::sleep(pause);
        pause = (pause * 3 / 2).min(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use indicatif::TermLike;

    use super::*;

    /// A terminal that keeps what is written to it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl Screen {
        /// The last line drawn.
        fn line(&self) -> String {
            let text = self.0.lock().unwrap();
            text.lines()
                .map(str::trim_end)
                .rfind(|l| !l.is_empty())
                .unwrap_or_default()
                .to_string()
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            let mut text = self.0.lock().unwrap();
            text.push_str(s);
            text.push('\n');
            Ok(())
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            // A redraw: what follows is a new line.
            self.0.lock().unwrap().push('\n');
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_progress_bar_shows_counts_and_an_eta() {
        let screen = Screen::default();
        let b = bar(
            "tasks",
            ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        b.set_length(10);
        b.set_position(5);
        b.tick();
        let line = screen.line();
        assert!(
            line.starts_with("[###############---------------] 5/10 tasks"),
            "{line}"
        );
        assert!(line.contains("eta"), "{line}");
        b.set_position(10);
        b.finish();
        let line = screen.line();
        assert!(
            line.starts_with("[##############################] 10/10 tasks"),
            "{line}"
        );
        assert!(!line.contains("eta"), "{line}");
    }

    #[test]
    fn following_polls_until_the_work_ends_and_draws_nothing_off_a_terminal() {
        let mut answers = vec![(0, 4, true), (2, 4, true), (4, 4, false)].into_iter();
        let hidden = bar("rows", ProgressDrawTarget::hidden());
        let empty = Screen::default();
        let b = bar(
            "tasks",
            ProgressDrawTarget::term_like(Box::new(empty.clone())),
        );
        b.tick();
        assert!(
            empty
                .line()
                .starts_with("[------------------------------] 0/0 tasks"),
            "{}",
            empty.line()
        );
        let last = follow_on(
            hidden.clone(),
            || Ok(answers.next().expect("polled after the end")),
            |&(d, t, r)| (d, t, r),
            |_| String::new(),
        )
        .unwrap();
        assert_eq!(last, (4, 4, false));
        assert!(hidden.is_finished() && hidden.is_hidden());
        assert_eq!((hidden.position(), hidden.length()), (4, Some(4)));
    }
}
