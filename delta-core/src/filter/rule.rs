//! The rule model shared by the three spellings: an ordered list of [`Rule`]s, first match
//! wins, each rule an [`Action`], a compiled pattern and [`RuleFlags`]. The dialect builders
//! ([`super::rclone`], [`super::rsync`], [`super::robocopy`]) produce rules; [`super::Filter`]
//! decides which list is asked about which entry.
//!
//! A *subject* is what a pattern is matched against: a path relative to the tree root, `/`
//! separated, as bytes. Rules may transform it before matching (rsync prepends `/` for
//! `**`-prefixed patterns and appends `/` to directories for `dir/***`; rclone and robocopy
//! decode invalid UTF-8 the way Go does, one U+FFFD per bad byte, because their patterns are
//! Unicode regexes; rclone first maps each name to its internal "standard" encoding, as its
//! local backend does, so a control character is seen as its U+2400 picture).

use std::borrow::Cow;
use std::cell::OnceCell;

use regex::bytes::Regex;

use super::error::FilterError;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Select the entry.
    Include,
    /// Leave the entry out.
    Exclude,
}

/// Which kind of entry a rule is tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Applies {
    /// Files (and other non-directories) only: rclone's plain rules, robocopy `/XF` and
    /// include filespecs.
    Files,
    /// Directories only: a trailing `/` (rclone, rsync), rclone's derived directory rules,
    /// robocopy `/XD`.
    Dirs,
    /// Both: rclone patterns containing `**`, rsync patterns without a trailing `/`.
    Both,
}

/// Everything about a rule except its action and pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleFlags {
    /// Matched from the tree root (leading `/`); otherwise at the end of the path, starting at
    /// a component boundary.
    pub anchored: bool,
    /// Which entries the rule is tested against.
    pub applies: Applies,
    /// Case-insensitive (rclone `--ignore-case`, robocopy always).
    pub ignore_case: bool,
    /// rsync `!` modifier: the rule fires when the pattern does *not* match.
    pub negate: bool,
    /// The rule applies on the sending side (selects what is transferred).
    pub sender: bool,
    /// The rule applies on the receiving side (protects or exposes destination entries to
    /// deletion).
    pub receiver: bool,
}

impl RuleFlags {
    pub(crate) fn new(applies: Applies) -> RuleFlags {
        RuleFlags {
            anchored: false,
            applies,
            ignore_case: false,
            negate: false,
            sender: true,
            receiver: true,
        }
    }
}

/// Where in the subject a compiled regex must match.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    /// Unanchored search (the regex carries its own anchors).
    Search(Regex),
    /// The regex (anchored `\A…\z`) must match the last `n` `/`-separated components.
    Trailing(Regex, usize),
    /// Never matches.
    Never,
}

/// How the bytes of a path are presented to a rule's regex.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Text {
    /// Raw bytes (rsync).
    #[default]
    Bytes,
    /// Invalid UTF-8 decoded as Go does, one U+FFFD per bad byte (robocopy).
    Go,
    /// rclone's view of a local name: its standard encoding, then Go decoding.
    Rclone,
}

/// Subject transformations a rule applies before matching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Subject {
    /// How the path's bytes are presented.
    pub text: Text,
    /// Prepend `/` (rsync patterns starting with `**`).
    pub prefix_slash: bool,
    /// Append `/` when the entry is a directory (rsync `…/***`).
    pub dir_suffix_slash: bool,
}

/// One filter rule.
#[derive(Debug, Clone)]
pub struct Rule {
    action: Action,
    flags: RuleFlags,
    text: String,
    regex_text: String,
    matcher: Matcher,
    subject: Subject,
}

impl Rule {
    pub(crate) fn new(
        action: Action,
        flags: RuleFlags,
        text: String,
        regex_text: String,
        matcher: Matcher,
        subject: Subject,
    ) -> Rule {
        Rule {
            action,
            flags,
            text,
            regex_text,
            matcher,
            subject,
        }
    }

    /// Include or exclude.
    pub fn action(&self) -> Action {
        self.action
    }

    /// Anchoring, entry kinds, case, negation, sides.
    pub fn flags(&self) -> RuleFlags {
        self.flags
    }

    /// The pattern as the user wrote it (lossily decoded for display).
    pub fn pattern(&self) -> &str {
        &self.text
    }

    /// The regular expression shown for this rule (for rclone rules, exactly what
    /// `rclone --dump filters` prints).
    pub fn regex(&self) -> &str {
        &self.regex_text
    }

    /// Whether the rule fires for `path` (an entry of the given kind), following rsync's
    /// `rule_matches()`: an empty path never matches; a rule that does not apply to this kind
    /// of entry does not fire, unless negated (rsync's `-! */` idiom: "everything that is not
    /// a directory").
    pub fn matches(&self, path: &[u8], is_dir: bool) -> bool {
        self.matches_prepared(&Prepared::new(path), is_dir)
    }

    fn matches_prepared(&self, path: &Prepared<'_>, is_dir: bool) -> bool {
        if path.raw.is_empty() {
            return false;
        }
        let kind_ok = match self.flags.applies {
            Applies::Both => true,
            Applies::Files => !is_dir,
            Applies::Dirs => is_dir,
        };
        if !kind_ok {
            return self.flags.negate;
        }
        self.pattern_matches(path, is_dir) != self.flags.negate
    }

    fn pattern_matches(&self, path: &Prepared<'_>, is_dir: bool) -> bool {
        if let Matcher::Never = self.matcher {
            return false;
        }
        match self.subject.text {
            // Decoded once per query and shared by all the rules of the list.
            Text::Go => self.match_subject(path.go()),
            Text::Rclone => self.match_subject(path.rclone()),
            Text::Bytes => {
                let pre: &[u8] = if self.subject.prefix_slash { b"/" } else { b"" };
                let suf: &[u8] = if self.subject.dir_suffix_slash && is_dir {
                    b"/"
                } else {
                    b""
                };
                with_joined(&[pre, path.raw, suf], |s| self.match_subject(s))
            }
        }
    }

    fn match_subject(&self, s: &[u8]) -> bool {
        match &self.matcher {
            Matcher::Search(re) => re.is_match(s),
            Matcher::Trailing(re, n) => trailing_components(s, *n).is_some_and(|t| re.is_match(t)),
            Matcher::Never => false,
        }
    }
}

/// An ordered rule list: the first rule that fires decides.
#[derive(Debug, Clone, Default)]
pub struct RuleList {
    rules: Vec<Rule>,
}

/// Which side's view of the rules to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Sender,
    Receiver,
}

impl RuleList {
    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub(crate) fn push(&mut self, rule: Rule) {
        self.rules.push(rule);
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// The action of the first rule that fires for `path`, considering only the rules of
    /// `side`; `None` when no rule fires.
    pub(crate) fn first_match(&self, path: &[u8], is_dir: bool, side: Side) -> Option<Action> {
        let prepared = Prepared::new(path);
        self.rules
            .iter()
            .filter(|r| match side {
                Side::Sender => r.flags.sender,
                Side::Receiver => r.flags.receiver,
            })
            .find(|r| r.matches_prepared(&prepared, is_dir))
            .map(|r| r.action)
    }
}

/// A path with its decoded forms computed on first use, so a list of rules decodes it once.
struct Prepared<'a> {
    raw: &'a [u8],
    go: OnceCell<Cow<'a, [u8]>>,
    rclone: OnceCell<Cow<'a, [u8]>>,
}

impl<'a> Prepared<'a> {
    fn new(raw: &'a [u8]) -> Prepared<'a> {
        Prepared {
            raw,
            go: OnceCell::new(),
            rclone: OnceCell::new(),
        }
    }

    fn go(&self) -> &[u8] {
        self.go.get_or_init(|| go_lossy(self.raw))
    }

    fn rclone(&self) -> &[u8] {
        self.rclone.get_or_init(|| match rclone_standard(self.raw) {
            // The common case: nothing to encode, nothing to decode, nothing allocated.
            Cow::Borrowed(b) => go_lossy(b),
            Cow::Owned(v) => Cow::Owned(go_lossy(&v).into_owned()),
        })
    }
}

/// Compiles a regex for the filter, mapping failures to [`FilterError::BadRegex`].
pub(crate) fn compile(glob: &str, shown: &str, rust: &str) -> Result<Regex, FilterError> {
    regex::bytes::RegexBuilder::new(rust)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| FilterError::BadRegex {
            glob: glob.to_owned(),
            regex: shown.to_owned(),
            reason: e.to_string(),
        })
}

/// Compiled-size cap per rule regex (the `regex` crate's default is 10 MiB; a filter rule
/// that needs more is hostile or a mistake).
pub(crate) const REGEX_SIZE_LIMIT: usize = 2 << 20;

/// The last `n` `/`-separated components of `s`, as rsync's `trailing_N_elements()` finds
/// them: `None` when `s` has fewer than `n` components.
fn trailing_components(s: &[u8], n: usize) -> Option<&[u8]> {
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

/// Calls `f` with the concatenation of `parts`, without allocating for short paths.
pub(crate) fn with_joined<R>(parts: &[&[u8]], f: impl FnOnce(&[u8]) -> R) -> R {
    let nonempty = parts.iter().filter(|p| !p.is_empty()).count();
    if nonempty <= 1 {
        let only = parts.iter().find(|p| !p.is_empty()).copied().unwrap_or(b"");
        return f(only);
    }
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut stack = [0u8; 512];
    if total <= stack.len() {
        let mut at = 0;
        for p in parts {
            stack[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        f(&stack[..total])
    } else {
        f(&parts.concat())
    }
}

/// Decodes `s` as Go decodes a string it ranges over: valid UTF-8 passes through untouched,
/// every byte of an invalid sequence becomes one U+FFFD.
pub(crate) fn go_lossy(s: &[u8]) -> Cow<'_, [u8]> {
    match std::str::from_utf8(s) {
        Ok(_) => Cow::Borrowed(s),
        Err(_) => {
            let mut out = Vec::with_capacity(s.len() + 8);
            let mut rest = s;
            loop {
                match std::str::from_utf8(rest) {
                    Ok(v) => {
                        out.extend_from_slice(v.as_bytes());
                        break;
                    }
                    Err(e) => {
                        let good = e.valid_up_to();
                        out.extend_from_slice(&rest[..good]);
                        let bad = e.error_len().unwrap_or(rest.len() - good);
                        for _ in 0..bad {
                            out.extend_from_slice("\u{FFFD}".as_bytes());
                        }
                        rest = &rest[good + bad..];
                    }
                }
            }
            Cow::Owned(out)
        }
    }
}

/// rclone's internal name for a local path, segment by segment:
/// `Standard.Encode(Base.Decode(name))` from rclone's `lib/encoder` (the local backend's
/// default encoding on Unix is `Base`). In effect control characters become their U+2400
/// pictures, DEL becomes U+2421, and characters that would be ambiguous after that (existing
/// pictures, the quote U+201B) are quoted with U+201B.
pub(crate) fn rclone_standard(path: &[u8]) -> Cow<'_, [u8]> {
    // Only bytes below 0x20, DEL, and the lead bytes of U+2400–U+2421, U+201B, U+FF0E and
    // U+FF0F can change anything.
    if !path
        .iter()
        .any(|&b| b < 0x20 || b == 0x7f || b == 0xe2 || b == 0xef)
    {
        return Cow::Borrowed(path);
    }
    let mut out = Vec::with_capacity(path.len() + 16);
    for (i, seg) in path.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        standard_encode(&base_decode(seg), &mut out);
    }
    Cow::Owned(out)
}

/// One Go `range` step over a string: a char, or a single invalid byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GoChar {
    Char(char),
    Bad(u8),
}

fn go_chars(s: &[u8]) -> Vec<GoChar> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(v) => {
                out.extend(v.chars().map(GoChar::Char));
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                // The prefix is valid UTF-8 by construction.
                if let Ok(v) = std::str::from_utf8(&rest[..good]) {
                    out.extend(v.chars().map(GoChar::Char));
                }
                let bad = e.error_len().unwrap_or(rest.len() - good);
                out.extend(rest[good..good + bad].iter().map(|&b| GoChar::Bad(b)));
                rest = &rest[good + bad..];
            }
        }
    }
    out
}

const QUOTE: char = '\u{201B}';
const SYM_NUL: char = '\u{2400}';
const SYM_DEL: char = '\u{2421}';
const FULL_SLASH: char = '\u{FF0F}';
const FULL_DOT: &str = "\u{FF0E}";

/// rclone's `Decode` for the mask `Zero | Slash | Dot`.
fn base_decode(seg: &[u8]) -> Vec<GoChar> {
    let q = QUOTE.to_string();
    let whole = |s: &str| go_chars(s.as_bytes());
    if seg == FULL_DOT.as_bytes() {
        return whole(".");
    }
    if seg == FULL_DOT.repeat(2).as_bytes() {
        return whole("..");
    }
    if seg == format!("{q}{FULL_DOT}").as_bytes() {
        return whole(FULL_DOT);
    }
    if seg == format!("{q}{FULL_DOT}{q}{FULL_DOT}").as_bytes() {
        return whole(&FULL_DOT.repeat(2));
    }
    let mut out = Vec::with_capacity(seg.len());
    let mut unquote_next = false;
    for c in go_chars(seg) {
        let unquote = std::mem::take(&mut unquote_next);
        match c {
            GoChar::Char(SYM_NUL) => out.push(GoChar::Char(if unquote { SYM_NUL } else { '\0' })),
            GoChar::Char(QUOTE) => {
                if unquote {
                    out.push(c);
                } else {
                    unquote_next = true;
                }
            }
            GoChar::Char(FULL_SLASH) => {
                out.push(GoChar::Char(if unquote { FULL_SLASH } else { '/' }));
            }
            _ => {
                if unquote {
                    out.push(GoChar::Char(QUOTE));
                }
                out.push(c);
            }
        }
    }
    if unquote_next {
        out.push(GoChar::Char(QUOTE));
    }
    out
}

/// rclone's `Encode` for the mask `Zero | Slash | Ctl | Del | Dot` (`Standard`).
fn standard_encode(s: &[GoChar], out: &mut Vec<u8>) {
    let push = |c: char, out: &mut Vec<u8>| {
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    };
    let text: Option<String> = s
        .iter()
        .map(|c| match c {
            GoChar::Char(c) => Some(*c),
            GoChar::Bad(_) => None,
        })
        .collect();
    match text.as_deref() {
        Some(".") => return push('\u{FF0E}', out),
        Some("..") => {
            push('\u{FF0E}', out);
            return push('\u{FF0E}', out);
        }
        Some(t) if t == FULL_DOT => {
            push(QUOTE, out);
            return push('\u{FF0E}', out);
        }
        Some(t) if t == FULL_DOT.repeat(2) => {
            for _ in 0..2 {
                push(QUOTE, out);
                push('\u{FF0E}', out);
            }
            return;
        }
        _ => {}
    }
    for &c in s {
        match c {
            GoChar::Bad(b) => out.push(b),
            GoChar::Char('\0') => push(SYM_NUL, out),
            GoChar::Char(c @ (SYM_NUL | QUOTE | FULL_SLASH | SYM_DEL)) => {
                push(QUOTE, out);
                push(c, out);
            }
            GoChar::Char('/') => push(FULL_SLASH, out),
            GoChar::Char('\u{7f}') => push(SYM_DEL, out),
            GoChar::Char(c @ '\u{1}'..='\u{1f}') => {
                push(char::from_u32(SYM_NUL as u32 + c as u32).unwrap_or(c), out);
            }
            GoChar::Char(c @ '\u{2401}'..='\u{241f}') => {
                push(QUOTE, out);
                push(c, out);
            }
            GoChar::Char(c) => push(c, out),
        }
    }
}

/// Lossy text of a byte pattern, for messages and [`Rule::pattern`].
pub(crate) fn display(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing() {
        assert_eq!(trailing_components(b"a/b/c", 1), Some(&b"c"[..]));
        assert_eq!(trailing_components(b"a/b/c", 2), Some(&b"b/c"[..]));
        assert_eq!(trailing_components(b"a/b/c", 3), Some(&b"a/b/c"[..]));
        assert_eq!(trailing_components(b"a/b/c", 4), None);
        assert_eq!(trailing_components(b"c", 1), Some(&b"c"[..]));
        assert_eq!(trailing_components(b"c", 2), None);
    }

    #[test]
    fn joined() {
        let long = vec![b'x'; 600];
        with_joined(&[b"/", b"ab", b"/"], |s| assert_eq!(s, b"/ab/"));
        with_joined(&[b"", b"ab", b""], |s| assert_eq!(s, b"ab"));
        with_joined(&[b"/", &long], |s| {
            assert_eq!(s.len(), 601);
            assert_eq!(s[0], b'/');
        });
    }

    #[test]
    fn rclone_standard_names() {
        let t = |s: &str| String::from_utf8(rclone_standard(s.as_bytes()).into_owned()).unwrap();
        assert!(matches!(rclone_standard(b"plain/path"), Cow::Borrowed(_)));
        // Observed with rclone v1.60.1 (`rclone lsf` and regex filters on a local tree).
        assert_eq!(t("a\nb"), "a\u{240A}b");
        assert_eq!(t("c\u{7f}d"), "c\u{2421}d");
        assert_eq!(t("x\u{201B}y"), "x\u{201B}\u{201B}y");
        assert_eq!(t("p\u{240A}q"), "p\u{201B}\u{240A}q");
        assert_eq!(t("r\u{2400}s"), "r\u{2400}s");
        assert_eq!(t("t\u{FF0F}u"), "t\u{FF0F}u");
        assert_eq!(
            t("v\u{201B}\u{240A}w"),
            "v\u{201B}\u{201B}\u{201B}\u{240A}w"
        );
        assert_eq!(t("d\te/\u{FF0E}"), "d\u{2409}e/\u{FF0E}");
        assert_eq!(
            &*rclone_standard(b"\xff\x01"),
            b"\xff\xe2\x90\x81",
            "bad bytes kept"
        );
    }

    #[test]
    fn lossy_is_per_byte() {
        assert!(matches!(go_lossy(b"abc"), Cow::Borrowed(_)));
        assert_eq!(&*go_lossy(b"a\xffb"), "a\u{FFFD}b".as_bytes());
        // A truncated 3-byte sequence: two bad bytes, two replacement characters (Go).
        assert_eq!(&*go_lossy(b"\xe2\x82x"), "\u{FFFD}\u{FFFD}x".as_bytes());
        assert_eq!(&*go_lossy(b"x\xe2\x82"), "x\u{FFFD}\u{FFFD}".as_bytes());
    }
}
