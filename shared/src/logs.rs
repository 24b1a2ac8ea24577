//! The functions' log output: `tracing` lines as JSON (Lambda's JSON log
//! format) or text, at the level of the function's logging configuration
//! ([`LogSettings`]). No `EnvFilter`: one level for every target keeps a regex
//! engine out of every bootstrap (README, "Bootstrap sizes"). Lambda timestamps
//! each line, so the lines carry no time; the runtime's invocation span adds
//! the request id.

use crate::config::LogSettings;

/// Installs the subscriber for this process (once; a second call does nothing).
pub fn init() {
    init_with(LogSettings::from_env());
}

pub fn init_with(settings: LogSettings) {
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(settings.level);
    let _already_set = if settings.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
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
}
