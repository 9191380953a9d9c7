//! The robocopy spelling: include filespecs, `/XF`, `/XD`, `/MINAGE`, `/MAXAGE`, `/MIN`,
//! `/MAX` (reference §1.2, §1.6).
//!
//! * Include filespecs (default `*.*`) and `/XF` patterns are file **names**, matched against
//!   the last component of files only, at every depth; `/XD` patterns match directory names.
//!   A file is selected when no `/XF` pattern and at least one include pattern matches it; a
//!   directory is entered unless a `/XD` pattern matches it.
//! * Wildcards are `*` (any run, also empty) and `?` (one character); matching is
//!   case-insensitive (Unicode simple case folding, close to Windows' upcase table). `*.*`
//!   matches every name, with or without a dot.
//! * A `/XF` or `/XD` pattern containing `\` or `/` is a path. If it starts with a root given
//!   to [`RobocopyFilterBuilder::root`] (the source or destination directory, compared
//!   case-insensitively) the rest is matched against the whole relative path; a relative path
//!   is matched from the tree root (deltasync's reading; robocopy does not document it); an
//!   absolute path outside every root names nothing in the tree and never matches.
//! * Not reproducible on Linux: Win32 wildcards also match 8.3 short names, so on Windows
//!   `*.dat` may also pick up `foo.data` (via `FOO~1.DAT`); other DOS wildcard quirks
//!   (`name.*` matching `name`, `?` matching nothing at the end) are not emulated either.
//! * Ages (`/MINAGE:n`, `/MAXAGE:n`) and sizes (`/MIN:n`, `/MAX:n`, bytes) apply to files only.
//!   Entries that are not selected are never "extra", so they are protected from `/PURGE`
//!   (verified for `/XD` and include filespecs; assumed for `/XF`, ages and sizes).

use super::age::{RobocopyAge, TimeBase, TimeWindow};
use super::error::FilterError;
use super::glob::robocopy_wildcard;
use super::rule::{compile, Action, Applies, Matcher, Rule, RuleFlags, RuleList, Subject, Text};
use super::size::SizeWindow;
use super::source::MAX_RULES;
use super::{Dialect, Filter, Paths};

/// Longest robocopy pattern accepted.
pub const MAX_ROBOCOPY_PATTERN: usize = 4096;

/// Builds a [`Filter`] from robocopy's selection options.
///
/// ```
/// use delta_core::filter::RobocopyFilterBuilder;
/// let f = RobocopyFilterBuilder::new()
///     .include("*.dat")
///     .exclude_file("index*")
///     .build()
///     .unwrap();
/// assert!(f.path_included(b"fg1/sub/y.DAT"));
/// assert!(!f.path_included(b"Index1.dat"));
/// assert!(f.descend(b"index_dir"), "/XF applies to files only");
/// ```
#[derive(Debug, Clone, Default)]
pub struct RobocopyFilterBuilder {
    include: Vec<String>,
    exclude_files: Vec<String>,
    exclude_dirs: Vec<String>,
    roots: Vec<String>,
    min_age: Option<String>,
    max_age: Option<String>,
    min_size: Option<u64>,
    max_size: Option<u64>,
    time_base: Option<TimeBase>,
}

impl RobocopyFilterBuilder {
    /// An empty builder (`*.*`: selects everything).
    pub fn new() -> RobocopyFilterBuilder {
        RobocopyFilterBuilder::default()
    }

    /// An include filespec (a bare argument after source and destination).
    pub fn include(&mut self, pattern: &str) -> &mut Self {
        self.include.push(pattern.to_owned());
        self
    }

    /// A `/XF` entry: file name pattern or file path.
    pub fn exclude_file(&mut self, pattern: &str) -> &mut Self {
        self.exclude_files.push(pattern.to_owned());
        self
    }

    /// A `/XD` entry: directory name pattern or directory path.
    pub fn exclude_dir(&mut self, pattern: &str) -> &mut Self {
        self.exclude_dirs.push(pattern.to_owned());
        self
    }

    /// A tree root as written on the command line (source or destination), so full-path
    /// `/XF` and `/XD` entries below it can be matched.
    pub fn root(&mut self, path: &str) -> &mut Self {
        self.roots.push(path.to_owned());
        self
    }

    /// `/MINAGE:n`: exclude files newer than n days (n < 1900) or than the date `YYYYMMDD`.
    pub fn min_age(&mut self, value: &str) -> &mut Self {
        self.min_age = Some(value.to_owned());
        self
    }

    /// `/MAXAGE:n`: exclude files older than n days (n < 1900) or than the date `YYYYMMDD`.
    pub fn max_age(&mut self, value: &str) -> &mut Self {
        self.max_age = Some(value.to_owned());
        self
    }

    /// `/MIN:n`: exclude files smaller than n bytes.
    pub fn min_size(&mut self, bytes: u64) -> &mut Self {
        self.min_size = Some(bytes);
        self
    }

    /// `/MAX:n`: exclude files bigger than n bytes.
    pub fn max_size(&mut self, bytes: u64) -> &mut Self {
        self.max_size = Some(bytes);
        self
    }

    /// The clock and time zone ages are computed against (default: now, UTC).
    pub fn time_base(&mut self, base: TimeBase) -> &mut Self {
        self.time_base = Some(base);
        self
    }

    /// Compiles the patterns and returns the filter.
    pub fn build(&self) -> Result<Filter, FilterError> {
        let total = self.include.len() + self.exclude_files.len() + self.exclude_dirs.len();
        if total + 1 > MAX_RULES {
            return Err(FilterError::TooManyRules { max: MAX_RULES });
        }
        let roots: Vec<String> = self.roots.iter().map(|r| normalise(r)).collect();
        let mut rules = RuleList::default();
        for p in &self.exclude_dirs {
            rules.push(self.rule(p, Action::Exclude, Applies::Dirs, &roots)?);
        }
        for p in &self.exclude_files {
            rules.push(self.rule(p, Action::Exclude, Applies::Files, &roots)?);
        }
        let default_include = ["*.*".to_owned()];
        let includes = if self.include.is_empty() {
            &default_include[..]
        } else {
            &self.include[..]
        };
        for p in includes {
            if p.contains(['/', '\\']) {
                return Err(FilterError::Unsupported {
                    rule: p.clone(),
                    what: "include filespecs are names, not paths",
                });
            }
            rules.push(self.rule(p, Action::Include, Applies::Files, &roots)?);
        }
        // Files no include filespec names are not selected.
        rules.push(self.rule("*", Action::Exclude, Applies::Files, &roots)?);

        let base = self.time_base.unwrap_or_else(TimeBase::now_utc);
        let age = |opt: &'static str, v: &Option<String>| -> Result<_, FilterError> {
            let Some(text) = v else { return Ok(None) };
            let parsed = RobocopyAge::parse(text).map_err(|reason| FilterError::BadAge {
                option: opt,
                text: text.clone(),
                reason,
            })?;
            Ok(Some(parsed.cutoff(&base)))
        };
        Ok(Filter {
            dialect: Dialect::Robocopy,
            paths: Paths::Single {
                rules,
                prefix: None,
            },
            age: TimeWindow {
                from: age("/MAXAGE", &self.max_age)?,
                to: age("/MINAGE", &self.min_age)?,
            },
            size: SizeWindow {
                min: self.min_size,
                max: self.max_size,
            },
            delete_excluded: false,
        })
    }

    fn rule(
        &self,
        pattern: &str,
        action: Action,
        applies: Applies,
        roots: &[String],
    ) -> Result<Rule, FilterError> {
        if pattern.len() > MAX_ROBOCOPY_PATTERN {
            return Err(FilterError::RuleTooLong {
                len: pattern.len(),
                max: MAX_ROBOCOPY_PATTERN,
            });
        }
        let norm = normalise(pattern);
        let mut flags = RuleFlags::new(applies);
        flags.ignore_case = true;
        let (shown, matcher) = if norm.contains('/') {
            flags.anchored = true;
            match relative_to_roots(&norm, roots) {
                Some(rel) => {
                    let re = format!(r"(?is)\A{}\z", robocopy_wildcard(rel));
                    let m = Matcher::Search(compile(pattern, &re, &re)?);
                    (re, m)
                }
                None => ("(outside the tree)".to_owned(), Matcher::Never),
            }
        } else {
            let body = if norm == "*.*" {
                "[^/]*".to_owned()
            } else {
                robocopy_wildcard(&norm)
            };
            let re = format!(r"(?is)\A{body}\z");
            let m = Matcher::Trailing(compile(pattern, &re, &re)?, 1);
            (re, m)
        };
        Ok(Rule::new(
            action,
            flags,
            pattern.to_owned(),
            shown,
            matcher,
            Subject {
                text: Text::Go,
                ..Subject::default()
            },
        ))
    }
}

/// `\` → `/`, without trailing separators (`"C:\dir\"` written carelessly).
fn normalise(p: &str) -> String {
    let s = p.replace('\\', "/");
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        s
    } else {
        trimmed.to_owned()
    }
}

/// The part of `path` below one of `roots` (case-insensitive), a relative path as is, or
/// `None` for an absolute path outside every root.
fn relative_to_roots<'a>(path: &'a str, roots: &[String]) -> Option<&'a str> {
    for root in roots {
        if let Some(rest) = strip_prefix_ci(path, root) {
            if let Some(rel) = rest.strip_prefix('/') {
                return Some(rel);
            }
        }
    }
    let b = path.as_bytes();
    let absolute =
        path.starts_with('/') || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':');
    (!absolute).then_some(path)
}

/// `s` without the prefix `prefix`, compared case-insensitively character by character.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let mut rest = s.char_indices();
    for pc in prefix.chars() {
        let (_, sc) = rest.next()?;
        if !sc.to_lowercase().eq(pc.to_lowercase()) {
            return None;
        }
    }
    Some(rest.next().map_or("", |(i, _)| &s[i..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::age::UnixTime;
    use crate::filter::Verdict;

    use crate::filter::testutil::selected;

    #[test]
    fn reference_guide_step_1() {
        // robocopy S D *.dat /xf index* /s: adds fg1/sub/y.DAT and drops Index1.dat compared
        // with rclone's `- index*, + *.dat, - **`.
        let f = RobocopyFilterBuilder::new()
            .include("*.dat")
            .exclude_file("index*")
            .build()
            .unwrap();
        let mut want = vec![
            "a.dat",
            "fg1/x.dat",
            "fg1/sub/y.DAT",
            "index_dir/z.dat",
            "Index/w.dat",
        ];
        want.sort_unstable();
        assert_eq!(selected(&f), want);
    }

    #[test]
    fn default_include_is_star_dot_star() {
        let f = RobocopyFilterBuilder::new()
            .exclude_file("*.fdb")
            .build()
            .unwrap();
        assert!(
            f.path_included(b"noextension"),
            "*.* matches names without a dot"
        );
        assert!(f.path_included(b".hidden"));
        assert!(f.path_included(b"a/b.c.d"));
        assert!(!f.path_included(b"fg1/db.FDB"));
        let f = RobocopyFilterBuilder::new().include("*.*").build().unwrap();
        assert!(f.path_included(b"Makefile"));
        // An explicit `*.` style pattern is literal: no DOS quirks.
        let f = RobocopyFilterBuilder::new().include("a.*").build().unwrap();
        assert!(f.path_included(b"a.b"));
        assert!(!f.path_included(b"a"));
    }

    #[test]
    fn wildcards_and_case() {
        let f = RobocopyFilterBuilder::new()
            .include("?b*.TXT")
            .include("[x].log")
            .build()
            .unwrap();
        assert!(f.path_included(b"ab.txt"));
        assert!(f.path_included(b"d/Ab123.Txt"));
        assert!(f.path_included(b"\xc3\xa9b.txt"), "? is one character");
        assert!(!f.path_included(b"b.txt"));
        assert!(f.path_included(b"[x].log"), "brackets are literal");
        assert!(!f.path_included(b"x.log"));
    }

    #[test]
    fn exclude_dirs_by_name_and_path() {
        let f = RobocopyFilterBuilder::new()
            .root(r"C:\Source")
            .root("/srv/dst/")
            .exclude_dir("bin")
            .exclude_dir(r"c:\source\Unwanted")
            .exclude_dir("/srv/dst/old/cache")
            .exclude_dir(r"rel\path")
            .exclude_dir(r"D:\elsewhere")
            .build()
            .unwrap();
        assert!(!f.descend(b"bin"));
        assert!(!f.descend(b"a/BIN"));
        assert!(f.descend(b"binary"));
        assert!(!f.descend(b"unwanted"));
        assert!(
            f.descend(b"x/unwanted"),
            "a full path matches that one path only"
        );
        assert!(!f.descend(b"old/cache"));
        assert!(!f.descend(b"rel/path"));
        assert!(f.descend(b"elsewhere"));
        assert!(f.path_included(b"bin"), "/XD does not apply to files");
        assert!(f.dir_protected(b"bin"));
        assert!(!f.dir_protected(b"other"));
        assert!(f.dir_included(b""));
    }

    #[test]
    fn exclude_file_by_path() {
        let f = RobocopyFilterBuilder::new()
            .root("/data/src")
            .exclude_file("/data/src/a/*.tmp")
            .build()
            .unwrap();
        assert!(!f.path_included(b"a/x.tmp"));
        assert!(f.path_included(b"b/a/x.tmp"));
        assert!(f.path_included(b"x.tmp"));
    }

    #[test]
    fn ages_and_sizes() {
        let base = TimeBase {
            now: UnixTime::new(10_000_000, 0),
            utc_offset_secs: 0,
        };
        let f = RobocopyFilterBuilder::new()
            .min_age("1")
            .time_base(base)
            .build()
            .unwrap();
        let cut = 10_000_000 - 86_400;
        assert_eq!(
            f.file_verdict(b"f", UnixTime::new(cut, 0), 0),
            Verdict::Include
        );
        assert_eq!(
            f.file_verdict(b"f", UnixTime::new(cut, 1), 0),
            Verdict::Exclude
        );
        assert!(
            f.file_protected(b"f", UnixTime::new(cut, 1), 0),
            "unselected: never extra"
        );
        let f = RobocopyFilterBuilder::new()
            .max_age("20060102")
            .min_size(10)
            .max_size(20)
            .time_base(base)
            .build()
            .unwrap();
        let day = 13_150 * 86_400;
        assert_eq!(
            f.file_verdict(b"f", UnixTime::new(day, 0), 10),
            Verdict::Include
        );
        assert_eq!(
            f.file_verdict(b"f", UnixTime::new(day - 1, 0), 10),
            Verdict::Exclude
        );
        assert_eq!(
            f.file_verdict(b"f", UnixTime::new(day, 0), 9),
            Verdict::Exclude
        );
        assert_eq!(
            f.file_verdict(b"f", UnixTime::new(day, 0), 21),
            Verdict::Exclude
        );
    }

    #[test]
    fn errors() {
        let e = RobocopyFilterBuilder::new()
            .min_age("1900")
            .build()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"bad /MINAGE value "1900": not a number of days below 1900 or a YYYYMMDD date"#
        );
        assert!(matches!(
            RobocopyFilterBuilder::new().include(r"dir\*.dat").build(),
            Err(FilterError::Unsupported { .. })
        ));
        assert!(matches!(
            RobocopyFilterBuilder::new()
                .exclude_file(&"x".repeat(5000))
                .build(),
            Err(FilterError::RuleTooLong { .. })
        ));
    }

    #[test]
    fn ci_prefix() {
        assert_eq!(strip_prefix_ci("C:/Src/a", "c:/src"), Some("/a"));
        assert_eq!(strip_prefix_ci("C:/Src", "c:/src"), Some(""));
        assert_eq!(strip_prefix_ci("C:/S", "c:/src"), None);
        assert_eq!(strip_prefix_ci("/ÄB/x", "/äb"), Some("/x"));
    }
}
