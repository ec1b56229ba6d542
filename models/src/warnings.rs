//! Warnings a fit raises (scikit-learn's `ConvergenceWarning`), caught by whoever runs it.
//!
//! A fit that stops at `max_iter` still returns a model, so it is not an error; but a user
//! must see it wherever the fit is reported (a job's result, a search's table, `local fit`).
//! Estimators call [`warn`]; the code that runs a fit wraps it in [`catch`], which returns
//! the warnings raised on this thread meanwhile, however deep in a meta-estimator they came
//! from (tasks run one per thread). Outside [`catch`] a warning is only logged.

use std::cell::RefCell;

thread_local! {
    static CAUGHT: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Raises a warning: kept for the innermost [`catch`] running on this thread (which
/// reports it), else logged as a warning.
pub fn warn(message: impl Into<String>) {
    let message = message.into();
    let caught = CAUGHT.with(|c| match c.borrow_mut().as_mut() {
        Some(list) => {
            list.push(message.clone());
            true
        }
        None => false,
    });
    if caught {
        tracing::info!("{message}");
    } else {
        tracing::warn!("{message}");
    }
}

/// Runs `f`, returning what it returns and the warnings it raised, each once, with a count
/// when it was raised more than once (`... (3 times)`), in the order first raised. A
/// [`catch`] inside `f` passes its warnings on to this one as well.
pub fn catch<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    /// Puts the outer collector back however `f` ends (a panic in a task is caught by its
    /// runner, and the thread runs other tasks after).
    struct Restore(Option<Option<Vec<String>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                CAUGHT.with(|c| *c.borrow_mut() = outer);
            }
        }
    }
    let mut restore = Restore(Some(CAUGHT.with(|c| c.borrow_mut().replace(Vec::new()))));
    let value = f();
    let raised = CAUGHT.with(|c| c.borrow_mut().take().unwrap_or_default());
    let mut outer = restore.0.take().expect("set above");
    if let Some(o) = outer.as_mut() {
        o.extend(raised.iter().cloned());
    }
    CAUGHT.with(|c| *c.borrow_mut() = outer);
    (value, summarize(raised))
}

/// Each distinct warning once, in first-raised order, with its count when above one.
pub fn summarize(raised: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut distinct: Vec<(String, usize)> = Vec::new();
    for w in raised {
        // A warning already summarised elsewhere carries its count: add it up.
        let (text, n) = split_count(&w);
        match distinct.iter_mut().find(|(t, _)| *t == text) {
            Some(e) => e.1 += n,
            None => distinct.push((text.to_string(), n)),
        }
    }
    distinct
        .into_iter()
        .map(|(t, n)| if n > 1 { format!("{t} ({n} times)") } else { t })
        .collect()
}

fn split_count(w: &str) -> (&str, usize) {
    if let Some(rest) = w.strip_suffix(" times)") {
        if let Some(at) = rest.rfind(" (") {
            if let Ok(n) = rest[at + 2..].parse::<usize>() {
                return (&w[..at], n);
            }
        }
    }
    (w, 1)
}

/// The warning of an iterative solver that stopped at its iteration cap.
pub fn not_converged(estimator: &str, solver: &str, max_iter: usize) -> String {
    format!(
        "ConvergenceWarning: {estimator} ({solver}) did not converge within max_iter={max_iter} iterations; increase max_iter or scale the features"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_caught_nested_and_counted() {
        warn("outside: only logged");
        let ((), outer) = catch(|| {
            warn("a");
            let ((), inner) = catch(|| {
                warn("b");
                warn("b");
            });
            assert_eq!(inner, ["b (2 times)"]);
            warn("a");
        });
        assert_eq!(outer, ["a (2 times)", "b (2 times)"]);
        let ((), none) = catch(|| ());
        assert!(none.is_empty());
        // A panic inside leaves no collector behind: a warning after it is only logged,
        // and the next catch starts empty.
        let panicked = std::panic::catch_unwind(|| {
            catch(|| {
                warn("lost");
                panic!("a task panics");
            })
        });
        assert!(panicked.is_err());
        assert!(CAUGHT.with(|c| c.borrow().is_none()));
        let ((), after) = catch(|| warn("c"));
        assert_eq!(after, ["c"]);
        assert_eq!(
            summarize(["x (3 times)".to_string(), "x".into(), "y".into()]),
            ["x (4 times)", "y"]
        );
    }
}
