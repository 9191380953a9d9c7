//! The rclone spelling: `--include`, `--include-from`, `--exclude`, `--exclude-from`,
//! `--filter`, `--filter-from`, `--ignore-case`, `--min-age`, `--max-age`, `--min-size`,
//! `--max-size`, `--delete-excluded`, reproducing `fs/filter/rules.go` and `filter.go`.
//!
//! * **Order by flag type, not by position.** rclone processes all `--include`, then all
//!   `--include-from` files, then `--exclude`, `--exclude-from`, `--filter`, `--filter-from`;
//!   within a type left to right, within a file top to bottom. If any `--include` or
//!   `--include-from` was given (even an empty file), `- /**` is appended at the very end. A
//!   `+` given through `--filter` implies nothing.
//! * `--filter` rules are `+ PAT`, `- PAT` (one space, the rest verbatim) or `!` (clear every
//!   rule so far); anything else is [`FilterError::MalformedRule`]. In the `-from` files each
//!   line is trimmed, empty lines and lines starting with `#` or `;` are skipped (no inline
//!   comments), and errors carry the file and line.
//! * Each glob becomes a *file rule* unless it ends in `/`; it is also a *directory rule* if it
//!   ends in `/` or contains `**`. Excluding `dir/` means excluding `dir/**`. Include rules
//!   (and the exclude `*`) also add the directory rules rclone derives from them
//!   (rclone's `globToDirGlobs`, ported in `glob.rs`), which decide which directories are descended.
//!   Identical rules are added once, as rclone does (this never changes a first-match result).
//! * Files are matched with the file rules; a directory `d` is matched as `d/` with the
//!   directory rules. Unmatched entries are included.

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;

use super::age::{RcloneAge, TimeBase, TimeWindow};
use super::error::FilterError;
use super::glob::{go_to_rust_regex, rclone_dir_globs, rclone_glob_to_regex};
use super::rule::{
    compile, go_lossy, Action, Applies, Matcher, Rule, RuleFlags, RuleList, Subject, Text,
};
use super::size::{parse_rclone_size, SizeWindow};
use super::source::{go_lines, read_capped, Source, MAX_RULES};
use super::{Dialect, Filter, Paths};

/// Longest rclone pattern or filter-file line (Go's `bufio.Scanner` default token limit).
pub const MAX_RCLONE_LINE: usize = 64 * 1024;

/// Builds a [`Filter`] from rclone's filter flags.
///
/// ```
/// use delta_core::filter::RcloneFilterBuilder;
/// let f = RcloneFilterBuilder::new()
///     .filter("- index*")
///     .filter("+ *.dat")
///     .filter("- **")
///     .build()
///     .unwrap();
/// assert!(f.path_included(b"fg1/x.dat"));
/// assert!(!f.path_included(b"fg1/index.dat"));
/// assert!(f.dir_included(b"index_dir"), "- index* is a file rule");
/// ```
#[derive(Debug, Clone, Default)]
pub struct RcloneFilterBuilder {
    include: Vec<String>,
    include_from: Vec<Source>,
    exclude: Vec<String>,
    exclude_from: Vec<Source>,
    filter: Vec<String>,
    filter_from: Vec<Source>,
    ignore_case: bool,
    delete_excluded: bool,
    min_age: Option<String>,
    max_age: Option<String>,
    min_size: Option<String>,
    max_size: Option<String>,
    time_base: Option<TimeBase>,
}

impl RcloneFilterBuilder {
    /// An empty builder (selects everything).
    pub fn new() -> RcloneFilterBuilder {
        RcloneFilterBuilder::default()
    }

    /// `--include PAT`.
    pub fn include(&mut self, pattern: &str) -> &mut Self {
        self.include.push(pattern.to_owned());
        self
    }

    /// `--include-from FILE`, read at [`build`](Self::build).
    pub fn include_from(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.include_from.push(Source::Path(path.into()));
        self
    }

    /// `--include-from` with contents already read (e.g. `-` = stdin).
    pub fn include_from_bytes(&mut self, name: &str, data: Vec<u8>) -> &mut Self {
        self.include_from.push(bytes_source(name, data));
        self
    }

    /// `--exclude PAT`.
    pub fn exclude(&mut self, pattern: &str) -> &mut Self {
        self.exclude.push(pattern.to_owned());
        self
    }

    /// `--exclude-from FILE`, read at [`build`](Self::build).
    pub fn exclude_from(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.exclude_from.push(Source::Path(path.into()));
        self
    }

    /// `--exclude-from` with contents already read.
    pub fn exclude_from_bytes(&mut self, name: &str, data: Vec<u8>) -> &mut Self {
        self.exclude_from.push(bytes_source(name, data));
        self
    }

    /// `--filter RULE` (`+ PAT`, `- PAT` or `!`).
    pub fn filter(&mut self, rule: &str) -> &mut Self {
        self.filter.push(rule.to_owned());
        self
    }

    /// `--filter-from FILE`, read at [`build`](Self::build).
    pub fn filter_from(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.filter_from.push(Source::Path(path.into()));
        self
    }

    /// `--filter-from` with contents already read.
    pub fn filter_from_bytes(&mut self, name: &str, data: Vec<u8>) -> &mut Self {
        self.filter_from.push(bytes_source(name, data));
        self
    }

    /// `--filter-from` read from `reader` now (bounded by
    /// [`MAX_FILTER_FILE`](super::source::MAX_FILTER_FILE)).
    pub fn filter_from_reader(
        &mut self,
        name: &str,
        reader: impl Read,
    ) -> Result<&mut Self, FilterError> {
        let data = read_capped(reader, name)?;
        Ok(self.filter_from_bytes(name, data))
    }

    /// `--ignore-case`: every pattern case-insensitive.
    pub fn ignore_case(&mut self, yes: bool) -> &mut Self {
        self.ignore_case = yes;
        self
    }

    /// `--delete-excluded`: excluded destination files are no longer protected.
    pub fn delete_excluded(&mut self, yes: bool) -> &mut Self {
        self.delete_excluded = yes;
        self
    }

    /// `--min-age VALUE`: only files at least this old (mtime <= cut-off).
    pub fn min_age(&mut self, value: &str) -> &mut Self {
        self.min_age = Some(value.to_owned());
        self
    }

    /// `--max-age VALUE`: only files at most this old (mtime >= cut-off).
    pub fn max_age(&mut self, value: &str) -> &mut Self {
        self.max_age = Some(value.to_owned());
        self
    }

    /// `--min-size VALUE` (default unit KiB).
    pub fn min_size(&mut self, value: &str) -> &mut Self {
        self.min_size = Some(value.to_owned());
        self
    }

    /// `--max-size VALUE` (default unit KiB).
    pub fn max_size(&mut self, value: &str) -> &mut Self {
        self.max_size = Some(value.to_owned());
        self
    }

    /// The clock and time zone ages are computed against (default: now, UTC).
    pub fn time_base(&mut self, base: TimeBase) -> &mut Self {
        self.time_base = Some(base);
        self
    }

    /// Reads the files, parses every rule and value, and returns the filter.
    pub fn build(&self) -> Result<Filter, FilterError> {
        let mut rules = RcloneRules::new(self.ignore_case);
        let mut implicit_exclude = false;
        for glob in &self.include {
            rules.add(true, glob)?;
            implicit_exclude = true;
        }
        for src in &self.include_from {
            for_each_line(src, |line| rules.add(true, line))?;
            implicit_exclude = true;
        }
        for glob in &self.exclude {
            rules.add(false, glob)?;
        }
        for src in &self.exclude_from {
            for_each_line(src, |line| rules.add(false, line))?;
        }
        for rule in &self.filter {
            rules.add_rule(rule)?;
        }
        for src in &self.filter_from {
            for_each_line(src, |line| rules.add_rule(line))?;
        }
        if implicit_exclude {
            rules.add(false, "/**")?;
        }

        let base = self.time_base.unwrap_or_else(TimeBase::now_utc);
        let age = |opt: &'static str, v: &Option<String>| -> Result<Option<_>, FilterError> {
            let Some(text) = v else { return Ok(None) };
            let parsed = RcloneAge::parse(text).map_err(|reason| FilterError::BadAge {
                option: opt,
                text: text.clone(),
                reason,
            })?;
            Ok(parsed.cutoff(&base))
        };
        let to = age("--min-age", &self.min_age)?;
        let from = age("--max-age", &self.max_age)?;
        if let (Some(to), Some(from)) = (to, from) {
            if to < from {
                return Err(FilterError::AgeOrder {
                    min: self.min_age.clone().unwrap_or_default(),
                    max: self.max_age.clone().unwrap_or_default(),
                });
            }
        }
        let size = |opt: &'static str, v: &Option<String>| -> Result<Option<u64>, FilterError> {
            let Some(text) = v else { return Ok(None) };
            parse_rclone_size(text).map_err(|reason| FilterError::BadSize {
                option: opt,
                text: text.clone(),
                reason,
            })
        };
        Ok(Filter {
            dialect: Dialect::Rclone,
            paths: Paths::Split {
                files: rules.files,
                dirs: rules.dirs,
            },
            age: TimeWindow { from, to },
            size: SizeWindow {
                min: size("--min-size", &self.min_size)?,
                max: size("--max-size", &self.max_size)?,
            },
            delete_excluded: self.delete_excluded,
        })
    }
}

fn bytes_source(name: &str, data: Vec<u8>) -> Source {
    Source::Bytes {
        name: name.to_owned(),
        data,
    }
}

/// rclone's `forEachLine` (not raw): trimmed lines, blank and `#`/`;` lines skipped.
fn for_each_line(
    src: &Source,
    mut f: impl FnMut(&str) -> Result<(), FilterError>,
) -> Result<(), FilterError> {
    let (name, data) = src.load()?;
    for (no, raw) in go_lines(&data) {
        if raw.len() > MAX_RCLONE_LINE {
            return Err(FilterError::RuleTooLong {
                len: raw.len(),
                max: MAX_RCLONE_LINE,
            }
            .in_file(&name, no));
        }
        let decoded = go_lossy(raw);
        let text = String::from_utf8_lossy(&decoded);
        let line = text.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        f(line).map_err(|e| e.in_file(&name, no))?;
    }
    Ok(())
}

/// The two rule lists rclone keeps, with its de-duplication.
struct RcloneRules {
    ignore_case: bool,
    files: RuleList,
    dirs: RuleList,
    seen_files: HashSet<String>,
    seen_dirs: HashSet<String>,
    added: usize,
}

impl RcloneRules {
    fn new(ignore_case: bool) -> RcloneRules {
        RcloneRules {
            ignore_case,
            files: RuleList::default(),
            dirs: RuleList::default(),
            seen_files: HashSet::new(),
            seen_dirs: HashSet::new(),
            added: 0,
        }
    }

    /// rclone's `addRule`: `!`, `- PAT`, `+ PAT`.
    fn add_rule(&mut self, rule: &str) -> Result<(), FilterError> {
        if rule == "!" {
            self.files.clear();
            self.dirs.clear();
            self.seen_files.clear();
            self.seen_dirs.clear();
            Ok(())
        } else if let Some(glob) = rule.strip_prefix("- ") {
            self.add(false, glob)
        } else if let Some(glob) = rule.strip_prefix("+ ") {
            self.add(true, glob)
        } else {
            Err(FilterError::MalformedRule {
                rule: rule.to_owned(),
            })
        }
    }

    /// rclone's `Filter.Add`.
    fn add(&mut self, include: bool, glob: &str) -> Result<(), FilterError> {
        if glob.len() > MAX_RCLONE_LINE {
            return Err(FilterError::RuleTooLong {
                len: glob.len(),
                max: MAX_RCLONE_LINE,
            });
        }
        let mut glob = glob.to_owned();
        let mut is_dir_rule = glob.ends_with('/');
        let mut is_file_rule = !is_dir_rule;
        if is_dir_rule && !include {
            glob.push_str("**");
        }
        if glob.contains("**") {
            is_dir_rule = true;
            is_file_rule = true;
        }
        let applies = match (is_file_rule, is_dir_rule) {
            (true, true) => Applies::Both,
            (false, _) => Applies::Dirs,
            (true, false) => Applies::Files,
        };
        let rule = self.rule(include, &glob, applies)?;
        if is_file_rule {
            if self.seen_files.insert(rule_key(&rule)) {
                self.push(true, rule.clone())?;
            }
            if include || glob == "*" {
                for dir_glob in rclone_dir_globs(&glob) {
                    if dir_glob == "/" {
                        continue;
                    }
                    let dir_rule = self.rule(include, &dir_glob, Applies::Dirs)?;
                    self.push_dir(dir_rule)?;
                }
            }
        }
        if is_dir_rule {
            self.push_dir(rule)?;
        }
        Ok(())
    }

    fn push_dir(&mut self, rule: Rule) -> Result<(), FilterError> {
        if self.seen_dirs.insert(rule_key(&rule)) {
            self.push(false, rule)?;
        }
        Ok(())
    }

    fn push(&mut self, file: bool, rule: Rule) -> Result<(), FilterError> {
        self.added += 1;
        if self.added > MAX_RULES {
            return Err(FilterError::TooManyRules { max: MAX_RULES });
        }
        if file {
            self.files.push(rule);
        } else {
            self.dirs.push(rule);
        }
        Ok(())
    }

    fn rule(&self, include: bool, glob: &str, applies: Applies) -> Result<Rule, FilterError> {
        let shown = rclone_glob_to_regex(glob, self.ignore_case).map_err(|problem| {
            FilterError::BadGlob {
                glob: glob.to_owned(),
                problem,
            }
        })?;
        let re = compile(glob, &shown, &go_to_rust_regex(&shown))?;
        let mut flags = RuleFlags::new(applies);
        flags.anchored = glob.starts_with('/');
        flags.ignore_case = self.ignore_case;
        Ok(Rule::new(
            if include {
                Action::Include
            } else {
                Action::Exclude
            },
            flags,
            glob.to_owned(),
            shown,
            Matcher::Search(re),
            Subject {
                text: Text::Rclone,
                ..Subject::default()
            },
        ))
    }
}

/// rclone de-duplicates on the printed form `+ regex`.
fn rule_key(rule: &Rule) -> String {
    let sign = match rule.action() {
        Action::Include => '+',
        Action::Exclude => '-',
    };
    format!("{sign} {}", rule.regex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::age::{RcloneAge, UnixTime};
    use crate::filter::Verdict;

    use crate::filter::testutil::selected;

    fn sorted(mut v: Vec<&'static str>) -> Vec<&'static str> {
        v.sort_unstable();
        v
    }

    fn dump(f: &Filter) -> String {
        f.dump()
    }

    #[test]
    fn reference_transcript_filter_order_depth_case_dirs() {
        let f = RcloneFilterBuilder::new()
            .filter("- index*")
            .filter("+ *.dat")
            .filter("- **")
            .build()
            .unwrap();
        assert_eq!(
            selected(&f),
            sorted(vec![
                "a.dat",
                "Index1.dat",
                "fg1/x.dat",
                "index_dir/z.dat",
                "Index/w.dat"
            ])
        );
        // `rclone --dump filters` output quoted in the reference.
        assert_eq!(
            dump(&f),
            "--- File filter rules ---\n\
             - (^|/)index[^/]*$\n\
             + (^|/)[^/]*\\.dat$\n\
             - (^|/).*$\n\
             --- Directory filter rules ---\n\
             + ^.*$\n\
             - (^|/).*$\n"
        );
    }

    #[test]
    fn dump_matches_rclone_for_mixed_flags() {
        // Verified with rclone v1.60.1: `rclone lsf --dump filters --include "/a/b/*.txt"
        // --exclude "*.x" --filter "+ q/" --filter "- r/" --include "{a,b}/**" --exclude "*"`.
        let f = RcloneFilterBuilder::new()
            .include("/a/b/*.txt")
            .exclude("*.x")
            .filter("+ q/")
            .filter("- r/")
            .include("{a,b}/**")
            .exclude("*")
            .build()
            .unwrap();
        assert_eq!(
            dump(&f),
            "--- File filter rules ---\n\
             + ^a/b/[^/]*\\.txt$\n\
             + (^|/)(a|b)/.*$\n\
             - (^|/)[^/]*\\.x$\n\
             - (^|/)[^/]*$\n\
             - (^|/)r/.*$\n\
             - ^.*$\n\
             --- Directory filter rules ---\n\
             + ^a/b/$\n\
             + ^a/$\n\
             + (^|/)(a|b)/.*/$\n\
             + (^|/)(a|b)/$\n\
             + (^|/)(a|b)/.*$\n\
             - ^.*$\n\
             + (^|/)q/$\n\
             - (^|/)r/.*$\n"
        );
    }

    #[test]
    fn include_implies_exclude_all_but_filter_plus_does_not() {
        let inc = RcloneFilterBuilder::new().include("*.jpg").build().unwrap();
        assert!(inc.path_included(b"a.jpg"));
        assert!(!inc.path_included(b"a.png"));
        let plus = RcloneFilterBuilder::new()
            .filter("+ *.jpg")
            .build()
            .unwrap();
        assert!(plus.path_included(b"a.png"), "rclone/rclone#1719");
        // An empty --include-from still adds the implied `- **`.
        let empty = RcloneFilterBuilder::new()
            .include_from_bytes("empty", Vec::new())
            .build()
            .unwrap();
        assert!(!empty.path_included(b"a.png"));
    }

    #[test]
    fn type_order_beats_position() {
        // Whatever the command-line order, --include is processed before --exclude …
        let f = RcloneFilterBuilder::new()
            .exclude("*.dat")
            .include("a.dat")
            .build()
            .unwrap();
        assert!(f.path_included(b"a.dat"), "include came first");
        assert!(!f.path_included(b"b.dat"));
        // … and both before --filter.
        let f = RcloneFilterBuilder::new()
            .filter("+ *.log")
            .exclude("*.log")
            .build()
            .unwrap();
        assert!(!f.path_included(b"x.log"), "--exclude came first");
        // --filter before --filter-from, and the implied `- /**` after both.
        let f = RcloneFilterBuilder::new()
            .filter_from_bytes("ff", b"+ b.txt\n".to_vec())
            .filter("- b.txt")
            .include("a.txt")
            .build()
            .unwrap();
        assert!(!f.path_included(b"b.txt"));
        assert!(f.path_included(b"a.txt"));
        assert!(!f.path_included(b"c.txt"));
    }

    #[test]
    fn clear_drops_earlier_rules_but_not_the_implied_exclude() {
        let f = RcloneFilterBuilder::new()
            .include("*.a")
            .filter("- *.b")
            .filter("!")
            .filter("- *.c")
            .build()
            .unwrap();
        assert!(!f.path_included(b"x.c"));
        assert!(
            !f.path_included(b"x.a"),
            "the include was cleared, - /** remains"
        );
        assert_eq!(f.rule_list(false).map(RuleList::len), Some(2));
    }

    #[test]
    fn anchoring_and_depth() {
        let f = RcloneFilterBuilder::new()
            .filter("- /top.txt")
            .filter("- dir/file")
            .build()
            .unwrap();
        assert!(!f.path_included(b"top.txt"));
        assert!(f.path_included(b"sub/top.txt"));
        assert!(!f.path_included(b"dir/file"));
        assert!(!f.path_included(b"x/y/dir/file"));
        assert!(
            f.path_included(b"xdir/file"),
            "must start at a segment boundary"
        );
        assert!(f.path_included(b"dir/file2"));
    }

    #[test]
    fn directory_rules() {
        let f = RcloneFilterBuilder::new()
            .filter("- cache/")
            .build()
            .unwrap();
        assert!(!f.dir_included(b"cache"));
        assert!(!f.dir_included(b"a/cache"));
        assert!(!f.path_included(b"cache/x"), "dir/ excludes dir/**");
        assert!(
            f.path_included(b"cache"),
            "a file named cache is not a directory"
        );
        assert!(f.dir_included(b""), "the root is always included");

        // `--include /directory/` alone matches no files.
        let f = RcloneFilterBuilder::new()
            .include("/directory/")
            .build()
            .unwrap();
        assert!(f.dir_included(b"directory"));
        assert!(!f.path_included(b"directory/x"));

        // Derived directory rules prune like rclone: verified with rclone v1.60.1 that
        // `--filter "+ a/x" --filter "- *"` lists a/x but never enters b/ (so b/a/x is
        // not listed although the file rule would match it).
        let f = RcloneFilterBuilder::new()
            .filter("+ a/x")
            .filter("- *")
            .build()
            .unwrap();
        assert!(f.descend(b"a"));
        assert!(!f.descend(b"b"));
        assert!(f.path_included(b"a/x"));

        // A plain exclude never prunes.
        let f = RcloneFilterBuilder::new()
            .exclude("index*")
            .build()
            .unwrap();
        assert!(f.descend(b"index_dir"));
        assert!(f.rule_list(true).is_some_and(RuleList::is_empty));
    }

    #[test]
    fn ignore_case() {
        let f = RcloneFilterBuilder::new()
            .ignore_case(true)
            .filter("- index*")
            .filter("+ *.dat")
            .filter("- **")
            .build()
            .unwrap();
        assert_eq!(
            selected(&f),
            sorted(vec![
                "a.dat",
                "fg1/x.dat",
                "fg1/sub/y.DAT",
                "index_dir/z.dat",
                "Index/w.dat"
            ])
        );
        assert!(dump(&f).contains("- (?i)(^|/)index[^/]*$"));
        let cs = RcloneFilterBuilder::new().exclude("*.DAT").build().unwrap();
        assert!(cs.path_included(b"y.dat"), "case-sensitive by default");
    }

    #[test]
    fn glob_translation_matches_rclone() {
        // Outputs verified against `rclone --dump filters` (v1.60.1) and glob.go (master).
        let cases = [
            ("x{{a|b}}y", "(^|/)x(a|b)y$"),
            ("a{{x}}}", "(^|/)a(x})$"),
            (r"\d\.z", r"(^|/)\d\.z$"),
            ("[!a]b", "(^|/)[!a]b$"),
            ("[[:alpha:]]", "(^|/)[[:alpha:]]$"),
            ("a.b+c(d)|^$", r"(^|/)a\.b\+c\(d\)\|\^\$$"),
            ("x/**/y", "(^|/)x/.*/y$"),
            ("{a/b,c}", "(^|/)(a/b|c)$"),
            (r"*\*", r"(^|/)[^/]*\*$"),
            ("é?", "(^|/)é[^/]$"),
            ("{a,{b,c}}", "(^|/)(a|(b|c))$"),
            ("/**", "^.*$"),
            ("?", "(^|/)[^/]$"),
        ];
        for (glob, want) in cases {
            assert_eq!(rclone_glob_to_regex(glob, false).unwrap(), want, "{glob}");
        }
    }

    #[test]
    fn glob_semantics() {
        let inc = |glob: &str, path: &str| {
            RcloneFilterBuilder::new()
                .filter(&format!("- {glob}"))
                .build()
                .unwrap()
                .path_included(path.as_bytes())
        };
        let excluded = |glob: &str, path: &str| !inc(glob, path);
        assert!(excluded("*.dat", "a/b.dat"));
        assert!(!excluded("*.dat", "a/b.dat/c"));
        assert!(excluded("a/**", "a/b/c"));
        assert!(!excluded("a/*", "a/b/c"), "* does not cross /");
        assert!(
            excluded("?.txt", "é.txt"),
            "? is one character, not one byte"
        );
        assert!(!excluded("??.txt", "é.txt"));
        assert!(excluded("{a,b}.txt", "b.txt"));
        assert!(excluded("{a,{b,c}}.txt", "c.txt"));
        assert!(excluded("{{[0-9]+}}.log", "x/123.log"));
        assert!(!excluded("{{[0-9]+}}.log", "x/12a.log"));
        assert!(excluded("[[:digit:]]x", "5x"));
        // rclone copies classes to Go: `[!a]` is the set {!, a}, not a negation (verified).
        assert!(excluded("[!a]b", "ab"));
        assert!(excluded("[!a]b", "!b"));
        assert!(!excluded("[!a]b", "xb"));
        assert!(excluded("[^a]b", "xb"));
        // `\d` is Go's ASCII digit class.
        assert!(excluded(r"\d.txt", "7.txt"));
        assert!(
            !excluded(r"\d.txt", "٣.txt"),
            "Arabic-Indic digit is not \\d in Go"
        );
        assert!(excluded(r"\<x\>", "<x>"), "escaped punctuation is literal");
        assert!(excluded(r"a\*", "a*"));
        assert!(!excluded(r"a\*", "ab"));
        // rclone sees a local newline as U+240A (its standard name encoding), so `**` covers
        // names containing one although Go's `.` does not match `\n` (verified with v1.60.1).
        assert!(excluded("**", "a\nb"));
        assert!(excluded("*", "a\nb"));
        assert!(!excluded(r"{{a\nb}}", "a\nb"));
        assert!(excluded(r"{{a\x{240A}b}}", "a\nb"));
        assert!(
            excluded("v????w", "v\u{201B}\u{240A}w"),
            "quoted: four characters"
        );
    }

    #[test]
    fn invalid_utf8_paths_match_like_go() {
        let f = RcloneFilterBuilder::new()
            .filter("- ?.bin")
            .filter("- **/x*")
            .build()
            .unwrap();
        assert!(
            !f.path_included(b"\xff.bin"),
            "one bad byte is one character"
        );
        assert!(f.path_included(b"\xff\xfe.bin"));
        assert!(!f.path_included(b"d\xff/xy"));
    }

    #[test]
    fn errors() {
        let err = |b: &mut RcloneFilterBuilder| b.build().unwrap_err().to_string();
        assert_eq!(
            err(RcloneFilterBuilder::new().filter("bad")),
            r#"malformed rule "bad""#
        );
        assert_eq!(
            err(RcloneFilterBuilder::new().filter("+a")),
            r#"malformed rule "+a""#
        );
        assert_eq!(
            err(RcloneFilterBuilder::new().filter("- ***")),
            r#"too many stars in glob "***""#
        );
        assert_eq!(
            err(RcloneFilterBuilder::new().exclude("a]")),
            r#"mismatched ']' in glob "a]""#
        );
        assert_eq!(
            err(RcloneFilterBuilder::new().exclude("{a")),
            r#"mismatched '{' and '}' in glob "{a""#
        );
        assert_eq!(
            err(RcloneFilterBuilder::new().exclude("a}")),
            r#"mismatched '{' and '}' in glob "a}""#
        );
        assert_eq!(
            err(RcloneFilterBuilder::new().exclude("{{a")),
            r#"mismatched '{{' and '}}' in glob "{{a""#
        );
        assert_eq!(
            err(RcloneFilterBuilder::new().exclude("a[b")),
            r#"mismatched '[' and ']' in glob "a[b""#
        );
        let e = err(RcloneFilterBuilder::new().exclude("x{{(}}"));
        assert!(
            e.starts_with(r#"bad glob pattern "x{{(}}" (regexp "(^|/)x(()$"): "#),
            "{e}"
        );
        assert_eq!(
            err(RcloneFilterBuilder::new()
                .filter_from_bytes("rules.txt", b"# comment\n+ *.a\n\n*.b\n".to_vec())),
            r#"rules.txt line 4: malformed rule "*.b""#
        );
        assert_eq!(
            err(RcloneFilterBuilder::new().min_age("2d").max_age("1d")),
            r#"--min-age "2d" can't be larger than --max-age "1d""#
        );
        assert_eq!(
            err(RcloneFilterBuilder::new().min_age("soon")),
            r#"bad --min-age value "soon": not a duration or date"#
        );
        assert_eq!(
            err(RcloneFilterBuilder::new().max_size("10MB")),
            r#"bad --max-size value "10MB": not a number"#
        );
        let long = "x".repeat(MAX_RCLONE_LINE + 1);
        assert!(matches!(
            RcloneFilterBuilder::new().exclude(&long).build(),
            Err(FilterError::RuleTooLong { .. })
        ));
        assert!(matches!(
            RcloneFilterBuilder::new()
                .filter_from("/nonexistent/deltasync/rules")
                .build(),
            Err(FilterError::Io { .. })
        ));
    }

    #[test]
    fn filter_files() {
        let f = RcloneFilterBuilder::new()
            .filter_from_bytes(
                "f",
                b"# comment\n; comment\n  - *.tmp  \r\n\n+ keep.log # not a comment\n- *.log\n"
                    .to_vec(),
            )
            .build()
            .unwrap();
        assert!(!f.path_included(b"a.tmp"), "lines are trimmed");
        assert!(
            !f.path_included(b"keep.log"),
            "inline comments are part of the pattern"
        );
        assert!(f.path_included(b"keep.log # not a comment"));
        let f = RcloneFilterBuilder::new()
            .exclude_from_bytes("x", b"*.o\n\n*.a\n".to_vec())
            .include_from_bytes("i", b"src/**\n".to_vec())
            .build()
            .unwrap();
        assert!(f.path_included(b"src/x.c"));
        assert!(
            f.path_included(b"src/x.o"),
            "include-from comes before exclude-from, so the include wins"
        );
        assert!(!f.path_included(b"x.o"));
        assert!(!f.path_included(b"doc/x.md"));
        // Command-line rules are not trimmed.
        let f = RcloneFilterBuilder::new().filter("-  a").build().unwrap();
        assert!(f.path_included(b"a"));
        assert!(!f.path_included(b" a"));
    }

    #[test]
    fn age_and_size() {
        let base = TimeBase {
            now: UnixTime::new(1_000_000, 0),
            utc_offset_secs: 0,
        };
        let f = RcloneFilterBuilder::new()
            .min_age("1d")
            .time_base(base)
            .build()
            .unwrap();
        let day = 86_400;
        let v =
            |f: &Filter, secs: i64, size: u64| f.file_verdict(b"f", UnixTime::new(secs, 0), size);
        assert_eq!(
            v(&f, 1_000_000 - day, 0),
            Verdict::Include,
            "cut-off itself included"
        );
        assert_eq!(
            f.file_verdict(b"f", UnixTime::new(1_000_000 - day, 1), 0),
            Verdict::Exclude
        );
        assert_eq!(v(&f, 0, 0), Verdict::Include);
        let same = RcloneFilterBuilder::new()
            .min_age("86400")
            .time_base(base)
            .build()
            .unwrap();
        assert_eq!(same.age, f.age, "--min-age 86400 == --min-age 1d");

        let f = RcloneFilterBuilder::new()
            .max_age("1h")
            .min_size("1")
            .max_size("2K")
            .time_base(base)
            .build()
            .unwrap();
        assert_eq!(v(&f, 1_000_000 - 3600, 1024), Verdict::Include);
        assert_eq!(v(&f, 1_000_000 - 3601, 1024), Verdict::Exclude);
        assert_eq!(v(&f, 1_000_000, 1023), Verdict::Exclude);
        assert_eq!(v(&f, 1_000_000, 2048), Verdict::Include);
        assert_eq!(v(&f, 1_000_000, 2049), Verdict::Exclude);
        // Age and size never apply to directories.
        assert!(f.dir_included(b"d"));

        // Equal min and max age is allowed.
        assert!(RcloneFilterBuilder::new()
            .min_age("1d")
            .max_age("24h")
            .build()
            .is_ok());
    }

    #[test]
    fn protection_from_deletion() {
        let base = TimeBase {
            now: UnixTime::new(1_000_000, 0),
            utc_offset_secs: 0,
        };
        let t = UnixTime::new(0, 0);
        let f = RcloneFilterBuilder::new()
            .filter("- *.fdb")
            .build()
            .unwrap();
        assert!(f.file_protected(b"stale.fdb", t, 1));
        assert!(!f.file_protected(b"extra.txt", t, 1));
        let f = RcloneFilterBuilder::new()
            .filter("- *.fdb")
            .delete_excluded(true)
            .build()
            .unwrap();
        assert!(!f.file_protected(b"stale.fdb", t, 1));
        // sync --min-age 1d: a young destination-only file is kept, an old one deleted.
        let f = RcloneFilterBuilder::new()
            .min_age("1d")
            .time_base(base)
            .build()
            .unwrap();
        assert!(f.file_protected(b"newextra", UnixTime::new(1_000_000, 0), 1));
        assert!(!f.file_protected(b"oldextra", UnixTime::new(1_000_000 - 3 * 86_400, 0), 1));
        let f = RcloneFilterBuilder::new()
            .filter("- cache/")
            .build()
            .unwrap();
        assert!(f.dir_protected(b"cache"));
        assert!(!f.dir_protected(b"other"));
    }

    /// rclone glob semantics for `*`, `**`, `?` and literals, written directly: the glob must
    /// match a suffix of the path starting at a segment boundary (or the whole path when it
    /// starts with `/`).
    fn naive(glob: &[char], path: &[char]) -> bool {
        fn m(g: &[char], p: &[char]) -> bool {
            match g {
                [] => p.is_empty(),
                ['*', '*', rest @ ..] => (0..=p.len()).any(|i| m(rest, &p[i..])),
                ['*', rest @ ..] => (0..=p.len())
                    .take_while(|&i| i == 0 || p[i - 1] != '/')
                    .any(|i| m(rest, &p[i..])),
                ['?', rest @ ..] => !p.is_empty() && p[0] != '/' && m(rest, &p[1..]),
                [c, rest @ ..] => p.first() == Some(c) && m(rest, &p[1..]),
            }
        }
        if let Some(('/', g)) = glob.split_first() {
            return m(g, path);
        }
        (0..=path.len())
            .filter(|&i| i == 0 || path[i - 1] == '/')
            .any(|i| m(glob, &path[i..]))
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// A glob without metacharacters matches exactly its literal, as a trailing path.
        #[test]
        fn literal_globs_match_themselves(
            name in "[a-zA-Z0-9_ é-]{1,10}",
            other in "[a-zA-Z0-9_ é-]{1,10}",
            dir in "[a-z]{1,5}",
        ) {
            let f = RcloneFilterBuilder::new().exclude(&name).build().unwrap();
            let nested = format!("{dir}/{name}");
            let sibling = format!("{dir}/{other}");
            prop_assert!(!f.path_included(name.as_bytes()));
            prop_assert!(!f.path_included(nested.as_bytes()));
            prop_assert_eq!(f.path_included(sibling.as_bytes()), other != name);
            prop_assert!(f.dir_included(nested.as_bytes()), "plain rules are file rules");
            let anchored = RcloneFilterBuilder::new().exclude(&format!("/{name}")).build().unwrap();
            prop_assert!(!anchored.path_included(name.as_bytes()));
            prop_assert!(anchored.path_included(nested.as_bytes()));
        }

        /// The translated regex agrees with a direct glob matcher.
        #[test]
        fn stars_and_questions_match_naive_glob(
            glob in "/?([ab]|\\*|\\*\\*|\\?|/){1,6}",
            parts in proptest::collection::vec("[abé]{1,3}", 1..4),
        ) {
            let path = parts.join("/");
            let mut glob = glob;
            while glob.contains("***") {
                glob = glob.replace("***", "*/*");
            }
            let f = match RcloneFilterBuilder::new().exclude(&glob).build() {
                Ok(f) => f,
                Err(e) => return Err(TestCaseError::fail(format!("{glob}: {e}"))),
            };
            // Excluding `dir/` means excluding `dir/**`.
            let effective = if glob.ends_with('/') { format!("{glob}**") } else { glob.clone() };
            let g: Vec<char> = effective.chars().collect();
            let p: Vec<char> = path.chars().collect();
            let want = naive(&g, &p);
            prop_assert_eq!(!f.path_included(path.as_bytes()), want, "glob {:?} path {:?}", glob, path);
        }

        /// Bare numbers are seconds; d, w, M, y are 1, 7, 30, 365 days.
        #[test]
        fn duration_units(n in 0u32..3000) {
            let secs = |t: &str| match RcloneAge::parse(t) {
                Ok(RcloneAge::Ago(ns)) => ns / 1_000_000_000,
                other => panic!("{t}: {other:?}"),
            };
            let n64 = i64::from(n);
            prop_assert_eq!(secs(&n.to_string()), n64);
            prop_assert_eq!(secs(&format!("{n}s")), n64);
            prop_assert_eq!(secs(&format!("{n}d")), n64 * 86_400);
            prop_assert_eq!(secs(&format!("{n}w")), n64 * 7 * 86_400);
            prop_assert_eq!(secs(&format!("{n}M")), n64 * 30 * 86_400);
            if n <= 292 {
                prop_assert_eq!(secs(&format!("{n}y")), n64 * 365 * 86_400);
            } else {
                prop_assert!(RcloneAge::parse(&format!("{n}y")).is_err(), "beyond Go's ±292 years");
            }
        }
    }
}
