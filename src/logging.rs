//! The tracing subscriber: stderr only, `RUST_LOG` wins over `-v`/`-q`, no colours off a terminal,
//! every field shown through `format::printable`.

use std::fmt::Write as _;
use std::io::IsTerminal;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::EnvFilter;

/// The event's message and fields as `name=value`, each value escaped by `format::printable`:
/// logs quote repository names, workers' stderr and failure reasons. tracing-subscriber's own
/// escaping (0.3.20, RUSTSEC-2025-0055) leaves CR, LF and the bidi overrides as they are, so a
/// miner's string could still overwrite a log line or forge one.
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    tracing_subscriber::fmt::format::debug_fn(|w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
        let mut text = String::new();
        write!(text, "{value:?}")?;
        let text = crate::format::printable(&text, &[]);
        match field.name() {
            "message" => write!(w, "{text}"),
            name => write!(w, "{name}={text}"),
        }
    })
    .delimited(" ")
}

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
    let filter = match crate::env::var_os("RUST_LOG") {
        // The parse error's Display already includes its source: one message, not a chain.
        Some(spec) => {
            let spec = spec.into_string().map_err(|v| anyhow::anyhow!("invalid RUST_LOG value {v:?}: not UTF-8"))?;
            EnvFilter::try_new(&spec).map_err(|e| anyhow::anyhow!("invalid RUST_LOG value {spec:?}: {e}"))?
        }
        None => EnvFilter::new(default),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(escaped_fields())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}
