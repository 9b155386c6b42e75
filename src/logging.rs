//! The tracing subscriber: stderr only, `RUST_LOG` wins over `-v`/`-q`, no colours off a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `verbosity`: -1 for `-q`, 0 by default, 1.. for each `-v`.
pub fn init(verbosity: i8) -> anyhow::Result<()> {
    let default = match verbosity {
        i8::MIN..=-1 => "error",
        0 => "warn",
        1 => "warn,valkit=info",
        2 => "warn,valkit=debug",
        _ => "trace",
    };
    // A mistyped RUST_LOG must fail loudly rather than silently hide the logs someone asked for.
    #[allow(clippy::disallowed_methods)] // RUST_LOG is the logging module's own variable
    let rust_log = std::env::var("RUST_LOG");
    let filter = match rust_log {
        // The parse error's Display already includes its source: one message, not a chain.
        Ok(spec) if !spec.is_empty() => EnvFilter::try_new(&spec).map_err(|e| anyhow::anyhow!("invalid RUST_LOG value {spec:?}: {e}"))?,
        _ => EnvFilter::new(default),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}
