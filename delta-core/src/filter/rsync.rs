//! The rsync spelling: `--exclude`, `--include`, `--filter`/`-f`, `--exclude-from`,
//! `--include-from`, `--delete-excluded`, `--from0`, `--min-size`, `--max-size`, following
//! `parse_rule_tok()`, `add_rule()` and `rule_matches()` in rsync's `exclude.c`.
//!
//! * Rules stay in **command-line order**; the first rule that matches decides; unmatched
//!   entries are included. Every rule is tested against files and directories alike (a
//!   trailing `/` restricts it to directories); an excluded directory is not entered.
//! * `--exclude P` / `--include P` take `P` verbatim, except that a leading `- ` or `+ `
//!   overrides the type and a lone `!` clears the list. The `-from` files do the same per
//!   line; lines end at LF, CR or CRLF (NUL with `--from0`); empty lines and lines starting
//!   with `;` or `#` are skipped; nothing is trimmed.
//! * `--filter` takes the full syntax `RULE[,MODS] PATTERN` (the separator is one space or
//!   `_`): `-`/`exclude`, `+`/`include`, `H`/`hide`, `S`/`show`, `P`/`protect`, `R`/`risk`,
//!   `!`/`clear`, `.`/`merge` (read now, one rule per line; `-` and `+` modifiers supported),
//!   with the modifiers `!` (negate), `s` (sender side), `r` (receiver side). rsync's other
//!   rules and modifiers (`:` dir-merge, `/`, `C`, `p`, `x`, `e`, `n`, `w`) are rejected with
//!   [`FilterError::Unsupported`]; rules rsync itself rejects give the error rsync gives.
//! * Sides: a plain rule applies on both sides (an exclude hides on the sender and protects on
//!   the receiver). `--delete-excluded` turns every rule without a side into a sender-only
//!   rule, so excluded destination entries are no longer protected.
//! * A source given without a trailing slash (`rsync -a src/mail dst/`) makes `mail` the first
//!   component of every path rsync matches: set [`RsyncFilterBuilder::root_name`] and keep
//!   passing paths relative to `src/mail`.
//!
//! # Security
//! Patterns of 4096 bytes or more are refused (rsync discards them), merge files nest at most
//! [`MAX_MERGE_DEPTH`] deep, and the total number of rules is capped.

use std::io::Read;
use std::path::PathBuf;

use super::age::TimeWindow;
use super::error::FilterError;
use super::glob::{rsync_pattern, RsyncAnchor};
use super::rule::{
    compile, display, Action, Applies, Matcher, Rule, RuleFlags, RuleList, Subject, Text,
};
use super::size::{parse_rsync_size, SizeWindow};
use super::source::{read_capped, rsync_lines, Source, MAX_RULES};
use super::{Dialect, Filter, Paths};

/// rsync's `MAXPATHLEN`: patterns this long or longer are refused.
pub const MAX_RSYNC_PATTERN: usize = 4096;

/// Deepest nesting of merge files.
pub const MAX_MERGE_DEPTH: usize = 8;

#[derive(Debug, Clone)]
enum Item {
    Exclude(Vec<u8>),
    Include(Vec<u8>),
    Filter(Vec<u8>),
    ExcludeFrom(Source),
    IncludeFrom(Source),
}

/// Builds a [`Filter`] from rsync's filter options, in command-line order.
///
/// ```
/// use delta_core::filter::RsyncFilterBuilder;
/// let f = RsyncFilterBuilder::new().exclude("*rspamd-vol-1").build().unwrap();
/// assert!(!f.descend(b"volumes/mailcowdockerized_rspamd-vol-1"));
/// assert!(f.descend(b"volumes/rspamd-vol-10"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct RsyncFilterBuilder {
    items: Vec<Item>,
    delete_excluded: bool,
    from0: bool,
    root_name: Option<Vec<u8>>,
    min_size: Option<String>,
    max_size: Option<String>,
}

impl RsyncFilterBuilder {
    /// An empty builder (selects everything).
    pub fn new() -> RsyncFilterBuilder {
        RsyncFilterBuilder::default()
    }

    /// `--exclude PATTERN`.
    pub fn exclude(&mut self, pattern: impl AsRef<[u8]>) -> &mut Self {
        self.items.push(Item::Exclude(pattern.as_ref().to_vec()));
        self
    }

    /// `--include PATTERN`.
    pub fn include(&mut self, pattern: impl AsRef<[u8]>) -> &mut Self {
        self.items.push(Item::Include(pattern.as_ref().to_vec()));
        self
    }

    /// `--filter RULE` / `-f RULE`.
    pub fn filter(&mut self, rule: impl AsRef<[u8]>) -> &mut Self {
        self.items.push(Item::Filter(rule.as_ref().to_vec()));
        self
    }

    /// `--exclude-from FILE`, read at [`build`](Self::build).
    pub fn exclude_from(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.items
            .push(Item::ExcludeFrom(Source::Path(path.into())));
        self
    }

    /// `--exclude-from` with contents already read (e.g. `-` = stdin).
    pub fn exclude_from_bytes(&mut self, name: &str, data: Vec<u8>) -> &mut Self {
        self.items.push(Item::ExcludeFrom(Source::Bytes {
            name: name.to_owned(),
            data,
        }));
        self
    }

    /// `--include-from FILE`, read at [`build`](Self::build).
    pub fn include_from(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.items
            .push(Item::IncludeFrom(Source::Path(path.into())));
        self
    }

    /// `--include-from` with contents already read.
    pub fn include_from_bytes(&mut self, name: &str, data: Vec<u8>) -> &mut Self {
        self.items.push(Item::IncludeFrom(Source::Bytes {
            name: name.to_owned(),
            data,
        }));
        self
    }

    /// `--exclude-from` read from `reader` now (bounded).
    pub fn exclude_from_reader(
        &mut self,
        name: &str,
        reader: impl Read,
    ) -> Result<&mut Self, FilterError> {
        let data = read_capped(reader, name)?;
        Ok(self.exclude_from_bytes(name, data))
    }

    /// `--include-from` read from `reader` now (bounded).
    pub fn include_from_reader(
        &mut self,
        name: &str,
        reader: impl Read,
    ) -> Result<&mut Self, FilterError> {
        let data = read_capped(reader, name)?;
        Ok(self.include_from_bytes(name, data))
    }

    /// `--delete-excluded`.
    pub fn delete_excluded(&mut self, yes: bool) -> &mut Self {
        self.delete_excluded = yes;
        self
    }

    /// `--from0`: rule files are NUL-separated.
    pub fn from0(&mut self, yes: bool) -> &mut Self {
        self.from0 = yes;
        self
    }

    /// The source was named without a trailing slash: `name` (its last component) is the
    /// first component of every path matched, so `/name/x` anchors and `- name` excludes the
    /// whole transfer.
    pub fn root_name(&mut self, name: impl AsRef<[u8]>) -> &mut Self {
        let n = name.as_ref();
        self.root_name = (!n.is_empty()).then(|| n.to_vec());
        self
    }

    /// `--min-size SIZE` (default unit bytes): smaller files are skipped, not hidden.
    pub fn min_size(&mut self, value: &str) -> &mut Self {
        self.min_size = Some(value.to_owned());
        self
    }

    /// `--max-size SIZE` (default unit bytes): larger files are skipped, not hidden.
    pub fn max_size(&mut self, value: &str) -> &mut Self {
        self.max_size = Some(value.to_owned());
        self
    }

    /// Reads the files, parses every rule and returns the filter.
    pub fn build(&self) -> Result<Filter, FilterError> {
        let mut p = Parser {
            rules: RuleList::default(),
            delete_excluded: self.delete_excluded,
            from0: self.from0,
            added: 0,
        };
        for item in &self.items {
            match item {
                Item::Exclude(pat) => p.parse(pat, Mode::OldPrefixes { include: false }, 0)?,
                Item::Include(pat) => p.parse(pat, Mode::OldPrefixes { include: true }, 0)?,
                Item::Filter(rule) => p.parse(rule, Mode::Full, 0)?,
                Item::ExcludeFrom(src) => {
                    p.parse_file(src, Mode::OldPrefixes { include: false }, 0)?
                }
                Item::IncludeFrom(src) => {
                    p.parse_file(src, Mode::OldPrefixes { include: true }, 0)?
                }
            }
        }
        let size = |opt: &'static str, v: &Option<String>| -> Result<Option<u64>, FilterError> {
            let Some(text) = v else { return Ok(None) };
            parse_rsync_size(text)
                .map(Some)
                .map_err(|reason| FilterError::BadSize {
                    option: opt,
                    text: text.clone(),
                    reason,
                })
        };
        Ok(Filter {
            dialect: Dialect::Rsync,
            paths: Paths::Single {
                rules: p.rules,
                prefix: self.root_name.clone(),
            },
            age: TimeWindow::default(),
            size: SizeWindow {
                min: size("--min-size", &self.min_size)?,
                max: size("--max-size", &self.max_size)?,
            },
            delete_excluded: self.delete_excluded,
        })
    }
}

/// How a rule string is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `--filter` and merge files: the full rule syntax.
    Full,
    /// `--include`/`--exclude` and their files: only `- `, `+ ` and `!` are special.
    OldPrefixes { include: bool },
    /// A merge file read with the `-` or `+` modifier: every line is a pattern of that type.
    NoPrefixes { include: bool },
}

struct Parser {
    rules: RuleList,
    delete_excluded: bool,
    from0: bool,
    added: usize,
}

/// What `parse_rule_tok()` found before the pattern.
struct Head {
    include: bool,
    clear: bool,
    merge: Option<Mode>,
    negate: bool,
    /// `Some((sender, receiver))` when the rule names its side(s).
    sides: Option<(bool, bool)>,
    /// Index where the pattern starts.
    pattern_at: usize,
}

impl Parser {
    fn parse_file(&mut self, src: &Source, mode: Mode, depth: usize) -> Result<(), FilterError> {
        if depth >= MAX_MERGE_DEPTH {
            return Err(FilterError::MergeTooDeep {
                max: MAX_MERGE_DEPTH,
            });
        }
        let (name, data) = src.load()?;
        for (no, line) in rsync_lines(&data, self.from0) {
            if line.is_empty() || line[0] == b';' || line[0] == b'#' {
                continue;
            }
            self.parse(line, mode, depth + 1)
                .map_err(|e| e.in_file(&name, no))?;
        }
        Ok(())
    }

    /// One rule string, as `parse_filter_str()` + `parse_rule_tok()` read it.
    fn parse(&mut self, text: &[u8], mode: Mode, depth: usize) -> Result<(), FilterError> {
        // rsync works on C strings.
        let s = text.split(|&b| b == 0).next().unwrap_or(b"");
        if s.is_empty() {
            return Ok(());
        }
        let head = match mode {
            Mode::Full => parse_head(s)?,
            Mode::OldPrefixes { include } => {
                let (include, at, clear) = match s {
                    [b'-', b' ', ..] => (false, 2, false),
                    [b'+', b' ', ..] => (true, 2, false),
                    [b'!', ..] => (include, 0, true),
                    _ => (include, 0, false),
                };
                Head {
                    include,
                    clear,
                    merge: None,
                    negate: false,
                    sides: None,
                    pattern_at: at,
                }
            }
            Mode::NoPrefixes { include } => Head {
                include,
                clear: false,
                merge: None,
                negate: false,
                sides: None,
                pattern_at: 0,
            },
        };
        let pattern = &s[head.pattern_at.min(s.len())..];
        if head.clear {
            if mode == Mode::Full && !pattern.is_empty() {
                return Err(FilterError::ClearWithTrailing { rule: display(s) });
            }
            // `--exclude '!x'` is the literal pattern `!x`; only a lone `!` clears.
            if pattern.len() <= 1 {
                self.rules.clear();
                return Ok(());
            }
        } else if pattern.is_empty() {
            return Err(FilterError::EmptyPattern { rule: display(s) });
        }
        if pattern.len() >= MAX_RSYNC_PATTERN {
            return Err(FilterError::RuleTooLong {
                len: pattern.len(),
                max: MAX_RSYNC_PATTERN - 1,
            });
        }
        if let Some(inner) = head.merge {
            return self.parse_file(&Source::Path(path_from_bytes(pattern)), inner, depth);
        }
        let (sender, receiver) = match head.sides {
            Some(sides) => sides,
            None if self.delete_excluded => (true, false),
            None => (true, true),
        };
        self.push(pattern, head.include, head.negate, sender, receiver)
    }

    fn push(
        &mut self,
        pattern: &[u8],
        include: bool,
        negate: bool,
        sender: bool,
        receiver: bool,
    ) -> Result<(), FilterError> {
        self.added += 1;
        if self.added > MAX_RULES {
            return Err(FilterError::TooManyRules { max: MAX_RULES });
        }
        let text = display(pattern);
        let p = rsync_pattern(pattern);
        let (regex_text, matcher) = match &p.body {
            None => ("(never matches)".to_owned(), Matcher::Never),
            Some(body) => {
                let full = match p.anchor {
                    RsyncAnchor::AnyBoundary => format!(r"(?s-u)(?:\A|/)(?:{body})\z"),
                    RsyncAnchor::Start | RsyncAnchor::Trailing(_) => {
                        format!(r"(?s-u)\A(?:{body})\z")
                    }
                };
                let re = compile(&text, &full, &full)?;
                let m = match p.anchor {
                    RsyncAnchor::Trailing(n) => Matcher::Trailing(re, n),
                    _ => Matcher::Search(re),
                };
                (full, m)
            }
        };
        let mut flags = RuleFlags::new(if p.dir_only {
            Applies::Dirs
        } else {
            Applies::Both
        });
        flags.anchored = p.anchored;
        flags.negate = negate;
        flags.sender = sender;
        flags.receiver = receiver;
        self.rules.push(Rule::new(
            if include {
                Action::Include
            } else {
                Action::Exclude
            },
            flags,
            text,
            regex_text,
            matcher,
            Subject {
                text: Text::Bytes,
                prefix_slash: p.prefix_slash,
                dir_suffix_slash: p.dir_suffix_slash,
            },
        ));
        Ok(())
    }
}

/// A file name given as bytes (merge rules).
fn path_from_bytes(b: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(b))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(b).into_owned())
    }
}

/// rsync's `RULE_STRCMP`: `word` followed by whitespace, `_`, `,` or the end. Returns the
/// index of the character the modifier scan starts from (the word's last character, or the
/// comma).
fn rule_word(s: &[u8], word: &[u8]) -> Option<usize> {
    if !s.starts_with(word) {
        return None;
    }
    match s.get(word.len()) {
        None => Some(word.len() - 1),
        Some(c) if c.is_ascii_whitespace() || *c == b'_' => Some(word.len() - 1),
        Some(b',') => Some(word.len()),
        Some(_) => None,
    }
}

/// The full-syntax rule head: rule name or character, modifiers, separator.
fn parse_head(s: &[u8]) -> Result<Head, FilterError> {
    let rule = || display(s);
    let words: &[(&[u8], u8)] = &[
        (b"clear", b'!'),
        (b"dir-merge", b':'),
        (b"exclude", b'-'),
        (b"hide", b'H'),
        (b"include", b'+'),
        (b"merge", b'.'),
        (b"protect", b'P'),
        (b"risk", b'R'),
        (b"show", b'S'),
    ];
    let (ch, mut at) = match words.iter().find(|(w, _)| w[0] == s[0]) {
        Some((word, ch)) => match rule_word(s, word) {
            Some(at) => (*ch, at),
            None => return Err(FilterError::UnknownRule { rule: rule() }),
        },
        None => (s[0], usize::from(s.get(1) == Some(&b','))),
    };
    let mut head = Head {
        include: false,
        clear: false,
        merge: None,
        negate: false,
        sides: None,
        pattern_at: 0,
    };
    let mut side_from_prefix = false;
    match ch {
        b':' => {
            return Err(FilterError::Unsupported {
                rule: rule(),
                what: "per-directory merge files (dir-merge, `:`, -F) are not implemented",
            })
        }
        b'.' => head.merge = Some(Mode::Full),
        b'+' => head.include = true,
        b'-' => {}
        b'S' | b'H' => {
            head.include = ch == b'S';
            head.sides = Some((true, false));
            side_from_prefix = true;
        }
        b'R' | b'P' => {
            head.include = ch == b'R';
            head.sides = Some((false, true));
            side_from_prefix = true;
        }
        b'!' => head.clear = true,
        _ => return Err(FilterError::UnknownRule { rule: rule() }),
    }
    let (mut has_s, mut has_r) = (false, false);
    if ch != b'!' {
        loop {
            at += 1;
            let Some(&m) = s.get(at) else { break };
            if m == b' ' || m == b'_' {
                break;
            }
            let invalid = || FilterError::InvalidModifier {
                modifier: char::from(m),
                rule: rule(),
            };
            let unsupported = |what| FilterError::Unsupported { rule: rule(), what };
            match m {
                b'-' | b'+' => match head.merge {
                    Some(Mode::Full) => head.merge = Some(Mode::NoPrefixes { include: m == b'+' }),
                    _ => return Err(invalid()),
                },
                b'!' => {
                    if head.merge.is_some() {
                        return Err(invalid());
                    }
                    head.negate = true;
                }
                b'r' | b's' => {
                    if side_from_prefix {
                        return Err(invalid());
                    }
                    if head.merge.is_some() {
                        return Err(unsupported(
                            "side modifiers on merge rules are not implemented",
                        ));
                    }
                    if m == b's' {
                        has_s = true;
                    } else {
                        has_r = true;
                    }
                }
                b'e' | b'n' | b'w' => {
                    if head.merge.is_none() {
                        return Err(invalid());
                    }
                    return Err(unsupported(
                        "merge-file modifiers e, n and w are not implemented",
                    ));
                }
                b'C' => {
                    if side_from_prefix || matches!(head.merge, Some(Mode::NoPrefixes { .. })) {
                        return Err(invalid());
                    }
                    return Err(unsupported("CVS-ignore rules (C) are not implemented"));
                }
                b'/' => {
                    return Err(unsupported(
                        "the `/` modifier (match against the absolute path) is not implemented",
                    ))
                }
                b'p' => return Err(unsupported("perishable rules (p) are not implemented")),
                b'x' => return Err(unsupported("xattr-name rules (x) are not implemented")),
                _ => return Err(invalid()),
            }
        }
    }
    if has_s || has_r {
        head.sides = Some((has_s, has_r));
    }
    // `if (*s) s++`: skip the separator (or the `!`/last word character).
    head.pattern_at = if at < s.len() { at + 1 } else { at };
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::age::UnixTime;
    use crate::filter::Verdict;

    /// Walks `tree` as rsync's sender recurses: a directory is entered only if it is
    /// included; returns the included entries (directories with a trailing `/`).
    fn walk(f: &Filter, tree: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for p in tree {
            let is_dir = p.ends_with('/');
            let rel = p.trim_end_matches('/').as_bytes();
            let parents_ok = rel
                .iter()
                .enumerate()
                .filter(|(_, &c)| c == b'/')
                .all(|(i, _)| f.descend(&rel[..i]));
            let ok = if is_dir {
                f.dir_included(rel)
            } else {
                f.path_included(rel)
            };
            if parents_ok && ok {
                out.push((*p).to_owned());
            }
        }
        out.sort();
        out
    }

    const TREE: &[&str] = &[
        "a.dat",
        "index1.dat",
        "Index1.dat",
        "fg1/",
        "fg1/x.dat",
        "fg1/index.dat",
        "fg1/db.fdb",
        "fg1/sub/",
        "fg1/sub/y.DAT",
        "fg1/sub/indexes.txt",
        "index_dir/",
        "index_dir/z.dat",
        "Index/",
        "Index/w.dat",
    ];

    fn strs(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn reference_transcripts() {
        // `-f "- index*" -f "+ *.dat" -f "- *"`: only the top-level Index1.dat and a.dat.
        let f = RsyncFilterBuilder::new()
            .filter("- index*")
            .filter("+ *.dat")
            .filter("- *")
            .build()
            .unwrap();
        assert_eq!(walk(&f, TREE), strs(&["Index1.dat", "a.dat"]));
        // Adding `-f "+ */"` (before `- *`): Index/w.dat, fg1/x.dat and the empty fg1/sub/;
        // index_dir/ is excluded as a whole because `index*` matches the directory.
        let f = RsyncFilterBuilder::new()
            .filter("- index*")
            .filter("+ *.dat")
            .filter("+ */")
            .filter("- *")
            .build()
            .unwrap();
        assert_eq!(
            walk(&f, TREE),
            strs(&[
                "Index/",
                "Index/w.dat",
                "Index1.dat",
                "a.dat",
                "fg1/",
                "fg1/sub/",
                "fg1/x.dat"
            ])
        );
    }

    #[test]
    fn rspamd_exclude_transcript() {
        let f = RsyncFilterBuilder::new()
            .exclude("*rspamd-vol-1")
            .build()
            .unwrap();
        let tree = [
            "volumes/",
            "volumes/mailcowdockerized_vmail-vol-1/",
            "volumes/mailcowdockerized_vmail-vol-1/_data/",
            "volumes/mailcowdockerized_vmail-vol-1/_data/g",
            "volumes/mailcowdockerized_rspamd-vol-1/",
            "volumes/mailcowdockerized_rspamd-vol-1/_data/",
            "volumes/mailcowdockerized_rspamd-vol-1/_data/old",
            "volumes/rspamd-vol-10/",
            "volumes/rspamd-vol-10/k",
            "deep/",
            "deep/x/",
            "deep/x/mailcowdockerized_rspamd-vol-1/",
            "deep/x/mailcowdockerized_rspamd-vol-1/f",
            "deep/file_rspamd-vol-1",
        ];
        assert_eq!(
            walk(&f, &tree),
            strs(&[
                "deep/",
                "deep/x/",
                "volumes/",
                "volumes/mailcowdockerized_vmail-vol-1/",
                "volumes/mailcowdockerized_vmail-vol-1/_data/",
                "volumes/mailcowdockerized_vmail-vol-1/_data/g",
                "volumes/rspamd-vol-10/",
                "volumes/rspamd-vol-10/k",
            ])
        );
        // --delete keeps the pre-existing destination rspamd directory …
        assert!(f.dir_protected(b"volumes/mailcowdockerized_rspamd-vol-1"));
        assert!(!f.file_protected(b"extra.txt", UnixTime::new(0, 0), 0));
        // … unless --delete-excluded.
        let f = RsyncFilterBuilder::new()
            .exclude("*rspamd-vol-1")
            .delete_excluded(true)
            .build()
            .unwrap();
        assert!(!f.descend(b"volumes/mailcowdockerized_rspamd-vol-1"));
        assert!(!f.dir_protected(b"volumes/mailcowdockerized_rspamd-vol-1"));
    }

    /// Each case was checked with `rsync -a --list-only -f RULE src/` (rsync 3.5.0) on the
    /// tree a/b/c.txt, foo/bar/z, foo/q, x/foo, top.txt.
    #[test]
    fn matching_verified_against_rsync() {
        let tree = [
            "top.txt",
            "a/",
            "a/b/",
            "a/b/c.txt",
            "foo/",
            "foo/q",
            "foo/bar/",
            "foo/bar/z",
            "x/",
            "x/foo",
        ];
        let cases: &[(&str, &[&str])] = &[
            (
                "- foo/***",
                &["top.txt", "a/", "a/b/", "a/b/c.txt", "x/", "x/foo"],
            ),
            (
                "- /foo/",
                &["top.txt", "a/", "a/b/", "a/b/c.txt", "x/", "x/foo"],
            ),
            (
                "- b/c.txt",
                &[
                    "top.txt",
                    "a/",
                    "a/b/",
                    "foo/",
                    "foo/q",
                    "foo/bar/",
                    "foo/bar/z",
                    "x/",
                    "x/foo",
                ],
            ),
            ("-! */", &["a/", "a/b/", "foo/", "foo/bar/", "x/"]),
            (
                "- **/c.txt",
                &[
                    "top.txt",
                    "a/",
                    "a/b/",
                    "foo/",
                    "foo/q",
                    "foo/bar/",
                    "foo/bar/z",
                    "x/",
                    "x/foo",
                ],
            ),
            (
                "- a/**",
                &[
                    "top.txt",
                    "a/",
                    "foo/",
                    "foo/q",
                    "foo/bar/",
                    "foo/bar/z",
                    "x/",
                    "x/foo",
                ],
            ),
        ];
        for (rule, want) in cases {
            let f = RsyncFilterBuilder::new().filter(rule).build().unwrap();
            assert_eq!(walk(&f, &tree), strs(want), "{rule}");
        }
    }

    #[test]
    fn pattern_semantics() {
        let ex = |pat: &str, path: &str, dir: bool| {
            let f = RsyncFilterBuilder::new().exclude(pat).build().unwrap();
            if dir {
                !f.dir_included(path.as_bytes())
            } else {
                !f.path_included(path.as_bytes())
            }
        };
        // No slash: the final component at any depth.
        assert!(ex("*.o", "a/b/c.o", false));
        assert!(ex("core", "a/core", true));
        assert!(!ex("core", "a/core2", false));
        // Slash inside: the trailing components, right-anchored.
        assert!(ex("b/*.c", "a/b/x.c", false));
        assert!(!ex("b/*.c", "a/b/c/x.c", false));
        assert!(!ex("b/*.c", "ab/x.c", false));
        // Leading slash: from the transfer root.
        assert!(ex("/b/x", "b/x", false));
        assert!(!ex("/b/x", "a/b/x", false));
        // Trailing slash: directories only.
        assert!(ex("cache/", "cache", true));
        assert!(!ex("cache/", "cache", false));
        // `**` crosses slashes; a leading `**/` also matches at the top.
        assert!(ex("**/c", "c", false));
        assert!(ex("**/c", "a/b/c", false));
        assert!(ex("a/**/z", "x/a/b/c/z", false));
        assert!(ex("a**z", "a/b/z", false));
        assert!(!ex("a*z", "a/b/z", false));
        // `dir/***`: the directory and everything below.
        assert!(ex("d/***", "d", true));
        assert!(ex("d/***", "d/e/f", false));
        assert!(
            !ex("d/***", "d", false),
            "a file named d is not the directory"
        );
        // `?` and classes never match `/`; classes per wildmatch.
        assert!(ex("a?c", "abc", false));
        assert!(!ex("a?c", "a/c", false));
        assert!(ex("[!a]x", "bx", false));
        assert!(ex("[^a]x", "bx", false));
        assert!(!ex("[!a]x", "ax", false));
        assert!(ex("[]a]x", "]x", false));
        assert!(ex("[a-c]x", "bx", false));
        assert!(ex("[-a]x", "-x", false));
        assert!(ex("[[:digit:]]x", "5x", false));
        assert!(ex("[[:upper:][:digit:]]x", "Qx", false));
        assert!(!ex("[[:upper:]]x", "qx", false), "case-sensitive");
        assert!(ex("[[x]", "[", false), "a `[` without `:]` is a member");
        // Backslash escapes only when the pattern has a wildcard.
        assert!(ex(r"a\*", "a*", false));
        assert!(!ex(r"a\*", "ab", false));
        assert!(ex(r"a\b", r"a\b", false), "no wildcard: literal backslash");
        assert!(ex(r"*\b", "xb", false));
        // Malformed patterns never match (rsync aborts the match silently).
        assert!(!ex("x[", "x[", false));
        assert!(!ex("[[:bogus:]]", "a", false));
        assert!(!ex(r"x*\", r"x\", false));
        // Bytes, not characters.
        assert!(!ex("?", "\u{e9}", false), "é is two bytes");
        assert!(ex("??", "\u{e9}", false));
        let f = RsyncFilterBuilder::new().exclude(b"\xff*").build().unwrap();
        assert!(!f.path_included(b"d/\xff\xfe"));
        // Trailing whitespace is part of the pattern.
        assert!(!ex("x ", "x", false));
        assert!(ex("x ", "x ", false));
    }

    #[test]
    fn order_and_prefixes() {
        // Command-line order, first match wins.
        let f = RsyncFilterBuilder::new()
            .include("keep.log")
            .exclude("*.log")
            .build()
            .unwrap();
        assert!(f.path_included(b"keep.log"));
        assert!(!f.path_included(b"other.log"));
        let f = RsyncFilterBuilder::new()
            .exclude("*.log")
            .include("keep.log")
            .build()
            .unwrap();
        assert!(!f.path_included(b"keep.log"), "no rclone-style reordering");
        // `--include` implies nothing.
        let f = RsyncFilterBuilder::new().include("*.log").build().unwrap();
        assert!(f.path_included(b"x.txt"));
        // Old-style prefixes on --exclude/--include.
        let f = RsyncFilterBuilder::new()
            .exclude("+ a")
            .exclude("- b")
            .build()
            .unwrap();
        assert!(f.rule_list(false).unwrap().rules()[0].action() == Action::Include);
        assert!(!f.path_included(b"b"));
        let f = RsyncFilterBuilder::new().exclude("-b").build().unwrap();
        assert!(!f.path_included(b"-b"), "no space: literal pattern");
        // `!` clears; `!x` is a pattern.
        let f = RsyncFilterBuilder::new()
            .exclude("a")
            .exclude("!")
            .exclude("!x")
            .build()
            .unwrap();
        assert!(f.path_included(b"a"));
        assert!(!f.path_included(b"!x"));
        let f = RsyncFilterBuilder::new()
            .exclude("a")
            .filter("clear")
            .build()
            .unwrap();
        assert!(f.path_included(b"a"));
        // `--exclude ""` adds nothing.
        let f = RsyncFilterBuilder::new().exclude("").build().unwrap();
        assert!(!f.is_active());
    }

    #[test]
    fn full_rule_syntax() {
        let first = |rule: &str| {
            let f = RsyncFilterBuilder::new().filter(rule).build().unwrap();
            f.rule_list(false).unwrap().rules()[0].clone()
        };
        let r = first("exclude foo");
        assert_eq!((r.action(), r.pattern()), (Action::Exclude, "foo"));
        let r = first("include_foo");
        assert_eq!((r.action(), r.pattern()), (Action::Include, "foo"));
        let r = first("+_foo");
        assert_eq!((r.action(), r.pattern()), (Action::Include, "foo"));
        let r = first("-,! foo");
        assert!(r.flags().negate);
        let r = first("-! foo");
        assert!(r.flags().negate);
        let r = first("-  foo");
        assert_eq!(r.pattern(), " foo", "one separator only");
        let r = first("exclude,s foo");
        assert!(r.flags().sender && !r.flags().receiver);
        let r = first("-r foo");
        assert!(!r.flags().sender && r.flags().receiver);
        let r = first("-sr foo");
        assert!(r.flags().sender && r.flags().receiver);
        let r = first("H foo");
        assert_eq!(r.action(), Action::Exclude);
        assert!(r.flags().sender && !r.flags().receiver);
        let r = first("show foo");
        assert_eq!(r.action(), Action::Include);
        assert!(r.flags().sender && !r.flags().receiver);
        let r = first("P foo");
        assert_eq!(r.action(), Action::Exclude);
        assert!(!r.flags().sender && r.flags().receiver);
        let r = first("risk foo");
        assert_eq!(r.action(), Action::Include);
        assert!(!r.flags().sender && r.flags().receiver);
        let r = first("- dir/");
        assert_eq!(r.flags().applies, Applies::Dirs);
        let r = first("- /x");
        assert!(r.flags().anchored);
    }

    #[test]
    fn sides_and_protection() {
        let t = UnixTime::new(0, 0);
        // hide: not sent, but not protected.
        let f = RsyncFilterBuilder::new().filter("H *.tmp").build().unwrap();
        assert!(!f.path_included(b"a.tmp"));
        assert!(!f.file_protected(b"a.tmp", t, 0));
        // protect: sent, and protected.
        let f = RsyncFilterBuilder::new()
            .filter("P *.keep")
            .build()
            .unwrap();
        assert!(f.path_included(b"a.keep"));
        assert!(f.file_protected(b"a.keep", t, 0));
        // --delete-excluded makes plain rules sender-only but keeps explicit protect rules.
        let f = RsyncFilterBuilder::new()
            .delete_excluded(true)
            .exclude("*.tmp")
            .filter("P *.keep")
            .build()
            .unwrap();
        assert!(!f.path_included(b"a.tmp"));
        assert!(!f.file_protected(b"a.tmp", t, 0));
        assert!(f.file_protected(b"a.keep", t, 0));
        // risk before exclude: exposed to deletion on the receiver.
        let f = RsyncFilterBuilder::new()
            .filter("R important.tmp")
            .exclude("*.tmp")
            .build()
            .unwrap();
        assert!(!f.path_included(b"important.tmp"));
        assert!(!f.file_protected(b"important.tmp", t, 0));
        assert!(f.file_protected(b"other.tmp", t, 0));
    }

    #[test]
    fn root_name_prefix() {
        // rsync -a src/mail dst/: paths are matched as mail/...
        let f = RsyncFilterBuilder::new()
            .exclude("/mail/tmp")
            .exclude("/x")
            .root_name("mail")
            .build()
            .unwrap();
        assert!(!f.dir_included(b"tmp"));
        assert!(f.path_included(b"x"), "/x would be a sibling of mail");
        assert!(f.dir_included(b""));
        let f = RsyncFilterBuilder::new()
            .exclude("mail")
            .root_name("mail")
            .build()
            .unwrap();
        assert!(!f.dir_included(b""), "the whole transfer is excluded");
        assert!(f.is_active());
    }

    #[test]
    fn size_is_a_transfer_rule() {
        let t = UnixTime::new(0, 0);
        let f = RsyncFilterBuilder::new()
            .max_size("1k")
            .min_size("10")
            .delete_excluded(true)
            .build()
            .unwrap();
        assert_eq!(f.file_verdict(b"big", t, 1025), Verdict::Skip);
        assert_eq!(f.file_verdict(b"small", t, 9), Verdict::Skip);
        assert_eq!(f.file_verdict(b"ok", t, 1024), Verdict::Include);
        assert!(!f.file_protected(b"big", t, 1025));
        let f = RsyncFilterBuilder::new()
            .exclude("big")
            .max_size("1")
            .build()
            .unwrap();
        assert_eq!(f.file_verdict(b"big", t, 0), Verdict::Exclude);
    }

    #[test]
    fn files() {
        let f = RsyncFilterBuilder::new()
            .exclude_from_bytes("ex", b"# c\n; c\n*.o\r\n\n+ keep.o\r- *.a\n".to_vec())
            .include_from_bytes("in", b" lead\n".to_vec())
            .build()
            .unwrap();
        let rules = f.rule_list(false).unwrap().rules();
        let got: Vec<(Action, &str)> = rules.iter().map(|r| (r.action(), r.pattern())).collect();
        assert_eq!(
            got,
            vec![
                (Action::Exclude, "*.o"),
                (Action::Include, "keep.o"),
                (Action::Exclude, "*.a"),
                (Action::Include, " lead"),
            ]
        );
        let f = RsyncFilterBuilder::new()
            .from0(true)
            .exclude_from_bytes("z", b"a\nb\0c".to_vec())
            .build()
            .unwrap();
        assert!(!f.path_included(b"a\nb"));
        assert!(!f.path_included(b"c"));
    }

    #[test]
    fn merge_files() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("inner.rules");
        std::fs::write(&inner, "+ keep.tmp\n- *.tmp\n").unwrap();
        let plain = dir.path().join("plain.list");
        std::fs::write(&plain, "*.bak\n").unwrap();
        let f = RsyncFilterBuilder::new()
            .filter(format!("merge {}", inner.display()))
            .filter(format!(".- {}", plain.display()))
            .build()
            .unwrap();
        assert!(f.path_included(b"keep.tmp"));
        assert!(!f.path_included(b"x.tmp"));
        assert!(!f.path_included(b"x.bak"));
        // Errors inside a merge file name the file and line.
        let bad = dir.path().join("bad.rules");
        std::fs::write(&bad, "- ok\nbogus\n").unwrap();
        let err = RsyncFilterBuilder::new()
            .filter(format!(". {}", bad.display()))
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(r#"line 2: unknown filter rule "bogus""#),
            "{err}"
        );
        // A merge file that merges itself stops at the depth limit.
        let selfref = dir.path().join("self.rules");
        std::fs::write(&selfref, format!(". {}\n", selfref.display())).unwrap();
        let err = RsyncFilterBuilder::new()
            .filter(format!(". {}", selfref.display()))
            .build()
            .unwrap_err();
        let mut e: &dyn std::error::Error = &err;
        while let Some(s) = e.source() {
            e = s;
        }
        assert_eq!(
            e.to_string(),
            format!("merge files nested deeper than {MAX_MERGE_DEPTH}")
        );
    }

    #[test]
    fn errors() {
        let err = |rule: &str| {
            RsyncFilterBuilder::new()
                .filter(rule)
                .build()
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err("x foo"), r#"unknown filter rule "x foo""#);
        assert_eq!(err("excludes foo"), r#"unknown filter rule "excludes foo""#);
        assert_eq!(err("-foo"), r#"invalid modifier 'f' in filter rule "-foo""#);
        assert_eq!(
            err("-e foo"),
            r#"invalid modifier 'e' in filter rule "-e foo""#
        );
        assert_eq!(
            err("H,s foo"),
            r#"invalid modifier 's' in filter rule "H,s foo""#
        );
        assert_eq!(err("-"), r#"unexpected end of filter rule: "-""#);
        assert_eq!(err("- "), r#"unexpected end of filter rule: "- ""#);
        assert_eq!(err("! x"), r#"'!' rule has trailing characters: "! x""#);
        assert!(err(": .rsync-filter")
            .starts_with(r#"unsupported filter rule ": .rsync-filter": per-directory"#));
        assert!(err("dir-merge .f").starts_with("unsupported filter rule"));
        for rule in [
            "-/ x",
            "-p x",
            "-x x",
            "-C",
            ".e f",
            ".w f",
            ".n f",
            "merge,s f",
        ] {
            assert!(
                matches!(
                    RsyncFilterBuilder::new().filter(rule).build(),
                    Err(FilterError::Unsupported { .. })
                ),
                "{rule}"
            );
        }
        let e = RsyncFilterBuilder::new()
            .exclude("- ")
            .build()
            .unwrap_err()
            .to_string();
        assert_eq!(e, r#"unexpected end of filter rule: "- ""#);
        let e = RsyncFilterBuilder::new()
            .exclude_from_bytes("list", b"ok\n- \n".to_vec())
            .build()
            .unwrap_err()
            .to_string();
        assert_eq!(e, r#"list line 2: unexpected end of filter rule: "- ""#);
        let long = vec![b'x'; MAX_RSYNC_PATTERN];
        assert!(matches!(
            RsyncFilterBuilder::new().exclude(&long).build(),
            Err(FilterError::RuleTooLong { .. })
        ));
        let e = RsyncFilterBuilder::new()
            .max_size("1x")
            .build()
            .unwrap_err()
            .to_string();
        assert_eq!(e, r#"bad --max-size value "1x": invalid"#);
    }

    /// A direct port of rsync's `dowild()`, `wildmatch_array()`, `litmatch_array()`,
    /// `trailing_N_elements()` and `rule_matches()`, used as an oracle for the regex
    /// translation.
    mod oracle {
        const FALSE: i32 = 0;
        const TRUE: i32 = 1;
        const ABORT_ALL: i32 = -1;
        const ABORT_TO_STARSTAR: i32 = -2;

        fn class_has(name: &[u8], c: u8) -> Option<bool> {
            Some(match name {
                b"alnum" => c.is_ascii_alphanumeric(),
                b"alpha" => c.is_ascii_alphabetic(),
                b"blank" => c == b' ' || c == b'\t',
                b"cntrl" => c.is_ascii_control(),
                b"digit" => c.is_ascii_digit(),
                b"graph" => c.is_ascii_graphic(),
                b"lower" => c.is_ascii_lowercase(),
                b"print" => c.is_ascii_graphic() || c == b' ',
                b"punct" => c.is_ascii_punctuation(),
                b"space" => matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
                b"upper" => c.is_ascii_uppercase(),
                b"xdigit" => c.is_ascii_hexdigit(),
                _ => return None,
            })
        }

        pub fn dowild(p: &[u8], t: &[u8]) -> i32 {
            let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
            let (mut pi, mut ti) = (0usize, 0usize);
            while pi < p.len() {
                let mut p_ch = p[pi];
                let t_ch = at(t, ti);
                if ti >= t.len() && p_ch != b'*' {
                    return ABORT_ALL;
                }
                match p_ch {
                    b'\\' => {
                        pi += 1;
                        if t_ch != at(p, pi) {
                            return FALSE;
                        }
                    }
                    b'?' => {
                        if t_ch == b'/' {
                            return FALSE;
                        }
                    }
                    b'*' => {
                        pi += 1;
                        let special = at(p, pi) == b'*';
                        while at(p, pi) == b'*' {
                            pi += 1;
                        }
                        if pi >= p.len() {
                            if !special && t[ti..].contains(&b'/') {
                                return FALSE;
                            }
                            return TRUE;
                        }
                        while ti < t.len() {
                            let m = dowild(&p[pi..], &t[ti..]);
                            if m != FALSE {
                                if !special || m != ABORT_TO_STARSTAR {
                                    return m;
                                }
                            } else if !special && t[ti] == b'/' {
                                return ABORT_TO_STARSTAR;
                            }
                            ti += 1;
                        }
                        return ABORT_ALL;
                    }
                    b'[' => {
                        pi += 1;
                        p_ch = at(p, pi);
                        if p_ch == b'^' {
                            p_ch = b'!';
                        }
                        let special = p_ch == b'!';
                        if special {
                            pi += 1;
                            p_ch = at(p, pi);
                        }
                        let mut prev_ch = 0u8;
                        let mut matched = false;
                        loop {
                            if p_ch == 0 {
                                return ABORT_ALL;
                            }
                            if p_ch == b'\\' {
                                pi += 1;
                                p_ch = at(p, pi);
                                if p_ch == 0 {
                                    return ABORT_ALL;
                                }
                                matched |= t_ch == p_ch;
                            } else if p_ch == b'-'
                                && prev_ch != 0
                                && at(p, pi + 1) != 0
                                && at(p, pi + 1) != b']'
                            {
                                pi += 1;
                                p_ch = at(p, pi);
                                if p_ch == b'\\' {
                                    pi += 1;
                                    p_ch = at(p, pi);
                                    if p_ch == 0 {
                                        return ABORT_ALL;
                                    }
                                }
                                matched |= t_ch <= p_ch && t_ch >= prev_ch;
                                p_ch = 0;
                            } else if p_ch == b'[' && at(p, pi + 1) == b':' {
                                let s = pi + 2;
                                let mut j = s;
                                while at(p, j) != 0 && at(p, j) != b']' {
                                    j += 1;
                                }
                                if at(p, j) == 0 {
                                    return ABORT_ALL;
                                }
                                if j == s || p[j - 1] != b':' {
                                    p_ch = b'[';
                                    matched |= t_ch == p_ch;
                                } else {
                                    match class_has(&p[s..j - 1], t_ch) {
                                        None => return ABORT_ALL,
                                        Some(m) => matched |= m,
                                    }
                                    pi = j;
                                    p_ch = 0;
                                }
                            } else {
                                matched |= t_ch == p_ch;
                            }
                            prev_ch = p_ch;
                            pi += 1;
                            p_ch = at(p, pi);
                            if p_ch == b']' {
                                break;
                            }
                        }
                        if matched == special || t_ch == b'/' {
                            return FALSE;
                        }
                    }
                    _ => {
                        if t_ch != p_ch {
                            return FALSE;
                        }
                    }
                }
                pi += 1;
                ti += 1;
            }
            if ti < t.len() {
                FALSE
            } else {
                TRUE
            }
        }

        fn trailing(s: &[u8], n: usize) -> Option<&[u8]> {
            let mut count = n;
            for (i, &b) in s.iter().enumerate().rev() {
                if b == b'/' {
                    count -= 1;
                    if count == 0 {
                        return Some(&s[i + 1..]);
                    }
                }
            }
            (count == 1).then_some(s)
        }

        fn wildmatch_array(p: &[u8], text: &[u8], wherex: isize) -> bool {
            let text = if wherex > 0 {
                match trailing(text, wherex.unsigned_abs()) {
                    Some(t) => t,
                    None => return false,
                }
            } else {
                text
            };
            let mut m = dowild(p, text);
            if m != TRUE && wherex < 0 && m != ABORT_ALL {
                let mut i = 0;
                loop {
                    if i >= text.len() {
                        return false;
                    }
                    let c = text[i];
                    i += 1;
                    if c == b'/' {
                        m = dowild(p, &text[i..]);
                        if m != FALSE && m != ABORT_TO_STARSTAR {
                            break;
                        }
                    }
                }
            }
            m == TRUE
        }

        pub fn rule_matches(raw: &[u8], name: &[u8], is_dir: bool, negate: bool) -> bool {
            let mut pat = raw;
            let mut dir_only = false;
            if pat.len() > 1 && pat.last() == Some(&b'/') {
                pat = &pat[..pat.len() - 1];
                dir_only = true;
            }
            let slash_cnt = pat.iter().filter(|&&b| b == b'/').count();
            let wild = pat.iter().any(|&b| matches!(b, b'*' | b'[' | b'?'));
            let star2 = pat.windows(2).position(|w| w == b"**");
            let wild2 = wild && star2.is_some();
            let wild2_prefix = wild && star2 == Some(0);
            let wild3 = wild2 && pat.ends_with(b"***");
            if name.is_empty() {
                return false;
            }
            let ret = !negate;
            let mut nm = name;
            let mut strings = Vec::new();
            let mut str_cnt = 0;
            if slash_cnt == 0 && !wild2 {
                if let Some(i) = name.iter().rposition(|&b| b == b'/') {
                    nm = &name[i + 1..];
                }
            } else if wild2_prefix {
                strings.push(b'/');
                str_cnt += 1;
            }
            strings.extend_from_slice(nm);
            str_cnt += 1;
            if is_dir {
                if wild3 {
                    strings.push(b'/');
                    str_cnt += 1;
                }
            } else if dir_only {
                return !ret;
            }
            let (anchored, p) = match pat.first() {
                Some(b'/') => (true, &pat[1..]),
                _ => (false, pat),
            };
            let wherex: isize = if !anchored && slash_cnt > 0 && !wild2 {
                slash_cnt as isize + 1
            } else if !anchored && !wild2_prefix && wild2 {
                -1
            } else {
                0
            };
            let m = if wild {
                wildmatch_array(p, &strings, wherex)
            } else if str_cnt > 1 {
                let t = if wherex > 0 {
                    trailing(&strings, wherex.unsigned_abs())
                } else {
                    Some(&strings[..])
                };
                t == Some(p)
            } else if anchored {
                nm == p
            } else {
                let (l1, l2) = (nm.len(), p.len());
                l2 <= l1 && &nm[l1 - l2..] == p && (l1 == l2 || nm[l1 - l2 - 1] == b'/')
            };
            if m {
                ret
            } else {
                !ret
            }
        }
    }

    use proptest::prelude::*;

    fn path_strategy() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            proptest::collection::vec(prop::sample::select(b"ab-]![\\:.".to_vec()), 1..4),
            1..4,
        )
        .prop_map(|parts| parts.join(&b'/'))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The regex translation agrees with rsync's own matcher on random patterns.
        #[test]
        fn translation_matches_rsync_wildmatch(
            pattern in proptest::collection::vec(prop::sample::select(b"ab/*?[]!^-:\\".to_vec()), 1..9),
            path in path_strategy(),
            negate in any::<bool>(),
        ) {
            let mut rule = if negate { b"-! ".to_vec() } else { b"- ".to_vec() };
            rule.extend_from_slice(&pattern);
            let f = RsyncFilterBuilder::new().filter(&rule).build().unwrap();
            let r = &f.rule_list(false).unwrap().rules()[0];
            for is_dir in [false, true] {
                prop_assert_eq!(
                    r.matches(&path, is_dir),
                    oracle::rule_matches(&pattern, &path, is_dir, negate),
                    "pattern {:?} path {:?} dir {}",
                    String::from_utf8_lossy(&pattern),
                    String::from_utf8_lossy(&path),
                    is_dir
                );
            }
        }

        /// The same with character classes and POSIX classes in play.
        #[test]
        fn classes_match_rsync_wildmatch(
            pattern in "(\\[(!|\\^)?(\\]|a|-|b|\\[:alpha:\\]|\\[:digit:\\]|\\[:x|\\\\\\]|z-a|a-z){1,4}\\]|a|\\*|/|\\?){1,5}",
            path in "[a-z0-9\\]\\[:/!-]{1,8}",
        ) {
            let path = path.trim_matches('/').replace("//", "/");
            prop_assume!(!path.is_empty());
            let f = RsyncFilterBuilder::new().filter(format!("- {pattern}")).build().unwrap();
            let r = &f.rule_list(false).unwrap().rules()[0];
            for is_dir in [false, true] {
                prop_assert_eq!(
                    r.matches(path.as_bytes(), is_dir),
                    oracle::rule_matches(pattern.as_bytes(), path.as_bytes(), is_dir, false),
                    "pattern {:?} path {:?} dir {}", pattern, path, is_dir
                );
            }
        }

        /// A pattern without wildcards and slashes matches exactly that final component.
        #[test]
        fn literal_names_match_only_themselves(
            name in "[a-zA-Z0-9._ -]{1,12}",
            other in "[a-zA-Z0-9._ -]{1,12}",
            dir in "[a-z]{1,5}",
        ) {
            prop_assume!(!name.starts_with(['-', '+', '!']));
            let f = RsyncFilterBuilder::new().exclude(&name).build().unwrap();
            let nested = format!("{dir}/{name}");
            let sibling = format!("{dir}/{other}");
            prop_assert!(!f.path_included(name.as_bytes()));
            prop_assert!(!f.path_included(nested.as_bytes()));
            prop_assert!(!f.dir_included(nested.as_bytes()));
            prop_assert_eq!(f.path_included(sibling.as_bytes()), other != name);
        }
    }
}
