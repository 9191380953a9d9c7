//! Typed errors of the filter module: bad rules, bad globs, bad filter files, bad ages and
//! sizes. Every variant carries the offending text so the CLI can show it as is; messages are
//! lower-case without a trailing period and `tests::messages` pins them.

use std::io;
use std::path::PathBuf;

/// Why a filter could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// rclone: a `--filter` rule that is not `+ PAT`, `- PAT` or `!`.
    #[error("malformed rule {rule:?}")]
    MalformedRule {
        /// The rule as given.
        rule: String,
    },
    /// A glob that cannot be turned into a pattern (rclone's messages).
    #[error("{problem} in glob {glob:?}")]
    BadGlob {
        /// The glob as given.
        glob: String,
        /// What is wrong with it.
        problem: GlobProblem,
    },
    /// A glob whose regular expression (after translation) does not compile.
    #[error("bad glob pattern {glob:?} (regexp {regex:?}): {reason}")]
    BadRegex {
        /// The glob as given.
        glob: String,
        /// The regular expression it became.
        regex: String,
        /// The regex engine's complaint.
        reason: String,
    },
    /// rsync: the rule name or prefix character is not one rsync knows.
    #[error("unknown filter rule {rule:?}")]
    UnknownRule {
        /// The rule as given.
        rule: String,
    },
    /// rsync: a modifier that rsync rejects for this rule.
    #[error("invalid modifier {modifier:?} in filter rule {rule:?}")]
    InvalidModifier {
        /// The modifier character.
        modifier: char,
        /// The rule as given.
        rule: String,
    },
    /// A valid rule or modifier of the tool that deltasync does not implement.
    #[error("unsupported filter rule {rule:?}: {what}")]
    Unsupported {
        /// The rule as given.
        rule: String,
        /// What is not supported, and why.
        what: &'static str,
    },
    /// rsync: `!` (clear) followed by more text.
    #[error("'!' rule has trailing characters: {rule:?}")]
    ClearWithTrailing {
        /// The rule as given.
        rule: String,
    },
    /// rsync: a rule with an empty pattern.
    #[error("unexpected end of filter rule: {rule:?}")]
    EmptyPattern {
        /// The rule as given.
        rule: String,
    },
    /// A pattern or filter-file line longer than the limit.
    #[error("filter rule of {len} bytes is longer than {max}")]
    RuleTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More rules than the limit.
    #[error("more than {max} filter rules")]
    TooManyRules {
        /// The limit.
        max: usize,
    },
    /// rsync merge files nested deeper than the limit.
    #[error("merge files nested deeper than {max}")]
    MergeTooDeep {
        /// The limit.
        max: usize,
    },
    /// A filter file larger than the limit.
    #[error("filter file {name} is larger than {max} bytes")]
    FileTooLarge {
        /// The file's name as given.
        name: String,
        /// The limit.
        max: u64,
    },
    /// A filter file could not be read.
    #[error("reading filter file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An error inside a filter file, with its location.
    #[error("{name} line {line}: {source}")]
    InFile {
        /// The file's name as given.
        name: String,
        /// 1-based line number.
        line: usize,
        /// What went wrong on that line.
        #[source]
        source: Box<FilterError>,
    },
    /// An age or time that is not a duration or date the dialect accepts.
    #[error("bad {option} value {text:?}: {reason}")]
    BadAge {
        /// The option, e.g. `--min-age` or `/MAXAGE`.
        option: &'static str,
        /// The value as given.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A size that is not a size the dialect accepts.
    #[error("bad {option} value {text:?}: {reason}")]
    BadSize {
        /// The option, e.g. `--max-size`.
        option: &'static str,
        /// The value as given.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// rclone: `--min-age` names a later cut-off than `--max-age`, so nothing could match.
    #[error("--min-age {min:?} can't be larger than --max-age {max:?}")]
    AgeOrder {
        /// The `--min-age` value.
        min: String,
        /// The `--max-age` value.
        max: String,
    },
}

/// What is wrong with a glob, worded as rclone words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GlobProblem {
    /// `***` or more in an rclone glob.
    TooManyStars,
    /// A `]` with no `[`.
    UnopenedBracket,
    /// A `[` with no `]`.
    UnclosedBracket,
    /// Unbalanced `{` and `}`.
    UnbalancedBraces,
    /// A `{{` with no `}}`.
    UnclosedRegexp,
}

impl std::fmt::Display for GlobProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GlobProblem::TooManyStars => "too many stars",
            GlobProblem::UnopenedBracket => "mismatched ']'",
            GlobProblem::UnclosedBracket => "mismatched '[' and ']'",
            GlobProblem::UnbalancedBraces => "mismatched '{' and '}'",
            GlobProblem::UnclosedRegexp => "mismatched '{{' and '}}'",
        })
    }
}

impl FilterError {
    /// Wraps `self` with the file and line it came from.
    pub(crate) fn in_file(self, name: &str, line: usize) -> FilterError {
        FilterError::InFile {
            name: name.to_owned(),
            line,
            source: Box::new(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let cases: Vec<(FilterError, &str)> = vec![
            (
                FilterError::MalformedRule { rule: "bad".into() },
                r#"malformed rule "bad""#,
            ),
            (
                FilterError::BadGlob {
                    glob: "***".into(),
                    problem: GlobProblem::TooManyStars,
                },
                r#"too many stars in glob "***""#,
            ),
            (
                FilterError::BadGlob {
                    glob: "a]".into(),
                    problem: GlobProblem::UnopenedBracket,
                },
                r#"mismatched ']' in glob "a]""#,
            ),
            (
                FilterError::BadGlob {
                    glob: "{{a".into(),
                    problem: GlobProblem::UnclosedRegexp,
                },
                r#"mismatched '{{' and '}}' in glob "{{a""#,
            ),
            (
                FilterError::UnknownRule {
                    rule: "x foo".into(),
                },
                r#"unknown filter rule "x foo""#,
            ),
            (
                FilterError::InvalidModifier {
                    modifier: 'f',
                    rule: "-foo".into(),
                },
                r#"invalid modifier 'f' in filter rule "-foo""#,
            ),
            (
                FilterError::EmptyPattern { rule: "- ".into() },
                r#"unexpected end of filter rule: "- ""#,
            ),
            (
                FilterError::RuleTooLong {
                    len: 5000,
                    max: 4095,
                },
                "filter rule of 5000 bytes is longer than 4095",
            ),
            (
                FilterError::MalformedRule { rule: "x".into() }.in_file("rules.txt", 3),
                r#"rules.txt line 3: malformed rule "x""#,
            ),
            (
                FilterError::AgeOrder {
                    min: "2d".into(),
                    max: "1d".into(),
                },
                r#"--min-age "2d" can't be larger than --max-age "1d""#,
            ),
            (
                FilterError::BadAge {
                    option: "--min-age",
                    text: "1x".into(),
                    reason: "not a duration or date",
                },
                r#"bad --min-age value "1x": not a duration or date"#,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }
}
