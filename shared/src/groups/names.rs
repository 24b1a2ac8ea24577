//! Group names and the permission patterns tokens grant.
//!
//! A group name is 1 to [`MAX_GROUP_BYTES`] bytes of ASCII letters, digits and
//! `: _ - . @ /`. A permission pattern (the token's `subscribe` and `publish`
//! claims) is an exact group name, `prefix:*` (every group that starts with
//! `prefix:` and has at least one more character) or `*` (every group).
//! Nothing a client sends widens what its token grants.

/// The longest group name accepted.
pub const MAX_GROUP_BYTES: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupNameError {
    #[error("the group name is empty")]
    Empty,
    #[error("the group name is longer than {MAX_GROUP_BYTES} bytes")]
    TooLong,
    #[error("the group name contains {0:?}; allowed are ASCII letters, digits and : _ - . @ /")]
    BadCharacter(char),
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.' | '@' | '/')
}

/// Checks a group name.
pub fn validate_group(name: &str) -> Result<(), GroupNameError> {
    if name.is_empty() {
        return Err(GroupNameError::Empty);
    }
    if name.len() > MAX_GROUP_BYTES {
        return Err(GroupNameError::TooLong);
    }
    match name.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(GroupNameError::BadCharacter(c)),
        None => Ok(()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error(transparent)]
    Name(#[from] GroupNameError),
    #[error("\"*\" may only end a pattern, after a \":\" (\"prefix:*\") or stand alone (\"*\")")]
    MisplacedWildcard,
}

/// A permission pattern from a token claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    /// `prefix:*`; holds `prefix:`.
    Prefix(String),
    Any,
}

impl Pattern {
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern == "*" {
            return Ok(Pattern::Any);
        }
        match pattern.strip_suffix('*') {
            Some(prefix) if prefix.ends_with(':') && !prefix.contains('*') => {
                validate_group(prefix)?;
                Ok(Pattern::Prefix(prefix.to_owned()))
            }
            Some(_) => Err(PatternError::MisplacedWildcard),
            None if pattern.contains('*') => Err(PatternError::MisplacedWildcard),
            None => {
                validate_group(pattern)?;
                Ok(Pattern::Exact(pattern.to_owned()))
            }
        }
    }

    /// Whether the pattern grants `group` (a valid group name).
    pub fn matches(&self, group: &str) -> bool {
        match self {
            Pattern::Exact(name) => name == group,
            Pattern::Prefix(prefix) => {
                group.len() > prefix.len() && group.starts_with(prefix.as_str())
            }
            Pattern::Any => true,
        }
    }
}

/// What a set of patterns grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(Vec<Pattern>);

impl Grants {
    /// Parses every pattern; one bad pattern refuses the whole claim.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        patterns
            .iter()
            .map(|p| Pattern::parse(p.as_ref()))
            .collect::<Result<_, _>>()
            .map(Grants)
    }

    pub fn allows(&self, group: &str) -> bool {
        validate_group(group).is_ok() && self.0.iter().any(|p| p.matches(group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_validated() {
        assert_eq!(validate_group("notification:test"), Ok(()));
        assert_eq!(validate_group("conversation:42"), Ok(()));
        assert_eq!(validate_group("a.b-c_d@e/f"), Ok(()));
        assert_eq!(validate_group(""), Err(GroupNameError::Empty));
        assert_eq!(validate_group(&"g".repeat(MAX_GROUP_BYTES)), Ok(()));
        assert_eq!(
            validate_group(&"g".repeat(MAX_GROUP_BYTES + 1)),
            Err(GroupNameError::TooLong)
        );
        assert_eq!(
            validate_group("room 1"),
            Err(GroupNameError::BadCharacter(' '))
        );
        assert_eq!(
            validate_group("room*"),
            Err(GroupNameError::BadCharacter('*'))
        );
        assert_eq!(
            validate_group("café"),
            Err(GroupNameError::BadCharacter('é'))
        );
        assert_eq!(
            validate_group("a\nb"),
            Err(GroupNameError::BadCharacter('\n'))
        );
    }

    #[test]
    fn exact_patterns_match_only_themselves() {
        let grants = Grants::parse(&["chat:42"]).unwrap();
        assert!(grants.allows("chat:42"));
        assert!(!grants.allows("chat:420"));
        assert!(!grants.allows("chat:4"));
        assert!(!grants.allows("CHAT:42"));
    }

    #[test]
    fn prefix_patterns_match_names_under_the_prefix_only() {
        let grants = Grants::parse(&["chat:*"]).unwrap();
        assert!(grants.allows("chat:42"));
        assert!(grants.allows("chat:42:typing"));
        assert!(!grants.allows("chat:"), "the prefix alone is not under it");
        assert!(!grants.allows("chat"));
        assert!(!grants.allows("chatroom:1"));
        assert!(!grants.allows("xchat:1"));
    }

    #[test]
    fn the_lone_wildcard_matches_every_valid_group() {
        let grants = Grants::parse(&["*"]).unwrap();
        assert!(grants.allows("anything:at_all"));
        assert!(
            !grants.allows("not valid"),
            "invalid names are never granted"
        );
        assert!(!grants.allows(""));
    }

    #[test]
    fn no_grants_allow_nothing() {
        assert!(!Grants::default().allows("chat:42"));
    }

    #[test]
    fn misplaced_wildcards_are_refused() {
        for bad in [
            "chat*", "*:chat", "ch*t:1", "chat:**", "**", "a:*:b", "chat:*x",
        ] {
            assert_eq!(
                Pattern::parse(bad),
                Err(PatternError::MisplacedWildcard),
                "{bad}"
            );
        }
        assert_eq!(
            Pattern::parse("bad name:*"),
            Err(PatternError::Name(GroupNameError::BadCharacter(' ')))
        );
        assert!(
            Grants::parse(&["ok", "chat*"]).is_err(),
            "one bad pattern refuses all"
        );
    }
}
