//! The functions' log output: `tracing` lines as JSON (Lambda's JSON log
//! format) or text, at the function's own level ([`LogSettings`]: `LOG_LEVEL`,
//! the template's `LogLevel` parameter). No `EnvFilter`: one level for every
//! target keeps a regex engine out of every bootstrap (README, "Bootstrap sizes").
//! The runtime's invocation span adds the request id.
//!
//! Lambda reads a JSON line's `level` only when the line also has an RFC 3339
//! `timestamp`; without one it counts the line as INFO whatever its level, so
//! an ERROR line would be dropped at `ApplicationLogLevel` WARN. JSON lines
//! therefore carry tracing-subscriber's `"timestamp"` (UTC, microseconds, e.g.
//! `2024-11-02T16:51:31.587199Z`) and `"level"` (`"ERROR"`, `"WARN"`, …). The
//! template pins `ApplicationLogLevel` to `TRACE` all the same, so Lambda drops
//! no application line and the level here is the only filter; the metrics'
//! EMF lines ([`crate::metrics::Emf`]) bypass it. Text lines keep no time
//! (Lambda filters only JSON).

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogSettings;

/// Installs the subscriber for this process (once; a second call does nothing).
pub fn init() {
    init_with(LogSettings::from_env());
}

/// Installs [`subscriber`] writing to stdout (once; a second call does nothing).
pub fn init_with(settings: LogSettings) {
    let _already_set =
        tracing::subscriber::set_global_default(subscriber(settings, std::io::stdout));
}

/// The functions' subscriber, writing its lines to `writer`: what [`init_with`]
/// installs, and what tests install to read the lines.
pub fn subscriber<W>(settings: LogSettings, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .with_max_level(settings.level)
        .with_writer(writer);
    if settings.json {
        Box::new(builder.json().finish())
    } else {
        Box::new(builder.without_time().finish())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::LogSettings;
    use tracing::level_filters::LevelFilter;

    #[test]
    fn lambda_log_levels_and_formats_are_read_as_lambda_sets_them() {
        let s = LogSettings::from_values;
        assert_eq!(
            s("JSON", Some("DEBUG")),
            LogSettings {
                json: true,
                level: LevelFilter::DEBUG
            }
        );
        assert_eq!(s("json", Some("TRACE")).level, LevelFilter::TRACE);
        assert_eq!(
            s("Text", Some("WARN")),
            LogSettings {
                json: false,
                level: LevelFilter::WARN
            }
        );
        assert_eq!(s("", Some("FATAL")).level, LevelFilter::ERROR);
        assert_eq!(s("", Some("error")).level, LevelFilter::ERROR);
        // No level, or a RUST_LOG directive list that is no single level: INFO.
        assert_eq!(
            s("", None),
            LogSettings {
                json: false,
                level: LevelFilter::INFO
            }
        );
        assert_eq!(
            s("", Some("switchboard=debug,aws=warn")).level,
            LevelFilter::INFO
        );
    }

    #[test]
    fn the_functions_own_log_level_comes_before_lambdas() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let from = |vars| LogSettings::from_lookup(env(vars));
        // The template sets LOG_LEVEL (parameter LogLevel) and pins Lambda's level to TRACE.
        let deployed = from(&[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
            ("LOG_LEVEL", "WARN"),
        ]);
        assert_eq!(
            deployed,
            LogSettings {
                json: true,
                level: LevelFilter::WARN
            }
        );
        assert_eq!(
            from(&[("LOG_LEVEL", "FATAL"), ("RUST_LOG", "debug")]).level,
            LevelFilter::ERROR
        );
        // Without LOG_LEVEL (or with an empty one): Lambda's level, then RUST_LOG.
        let lambda = from(&[("LOG_LEVEL", ""), ("AWS_LAMBDA_LOG_LEVEL", "DEBUG")]);
        assert_eq!(lambda.level, LevelFilter::DEBUG);
        assert!(!lambda.json);
        assert_eq!(from(&[("RUST_LOG", "trace")]).level, LevelFilter::TRACE);
        assert_eq!(from(&[]).level, LevelFilter::INFO);
    }
}
