//! Logging set-up for the binary: tracing to standard error.

use tracing_subscriber::EnvFilter;

/// Installs a subscriber writing to stderr. `RUST_LOG` wins; otherwise `verbose` picks
/// warn (0), info (1) or debug (2+). The Raft library's own messages (elections in
/// progress, peers that stopped) show from `-v` on: meshml reports what they mean.
pub fn set_up_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,openraft=off",
        1 => "info,openraft=warn",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only on a terminal: a log piped to a file or another program stays plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}
