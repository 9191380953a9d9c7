//! Glob → regular-expression translation for the three spellings. Pure string work, no
//! matching: [`super::rule`] compiles what this produces.
//!
//! * rclone ([`rclone_glob_to_regex`]) is a line-by-line port of rclone's `globToRegexp`
//!   (`fs/filter/glob.go`, master `64ab1ac3`), so the text it returns is exactly what
//!   `rclone --dump filters` prints. That text is Go RE2 syntax; [`go_to_rust_regex`] rewrites
//!   the few constructs whose meaning differs in the `regex` crate (ASCII-only `\d \s \w \b`,
//!   `[` inside a class, escaped punctuation such as `\<`, `\Q…\E`, octal escapes).
//!   [`rclone_dir_globs`] ports `globToDirGlobs`, which derives the directory rules.
//! * rsync ([`rsync_pattern`]) follows `add_rule()`/`rule_matches()` in `exclude.c` and
//!   `dowild()` in `lib/wildmatch.c` (rsync 3.x): byte-oriented, `?`, `*` and classes never
//!   match `/`, `**` (any run of two or more stars) matches anything, a backslash escapes
//!   only when the pattern has a wildcard, and a pattern whose class is malformed or that
//!   ends in a lone backslash never matches (rsync aborts such a match silently).
//! * robocopy ([`robocopy_wildcard`]): `*` and `?` only, everything else literal.

use std::fmt::Write as _;

use super::error::GlobProblem;

/// Translates an rclone glob into the Go regular expression rclone builds, anchored as rclone
/// anchors it: a leading `/` gives `^…$`, anything else `(^|/)…$`.
pub(crate) fn rclone_glob_to_regex(glob: &str, ignore_case: bool) -> Result<String, GlobProblem> {
    let mut re = String::with_capacity(glob.len() * 2 + 8);
    if ignore_case {
        re.push_str("(?i)");
    }
    let glob = match glob.strip_prefix('/') {
        Some(rest) => {
            re.push('^');
            rest
        }
        None => {
            re.push_str("(^|/)");
            glob
        }
    };
    let mut stars = 0usize;
    let insert_stars = |re: &mut String, stars: &mut usize| -> Result<(), GlobProblem> {
        match *stars {
            0 => {}
            1 => re.push_str("[^/]*"),
            2 => re.push_str(".*"),
            _ => return Err(GlobProblem::TooManyStars),
        }
        *stars = 0;
        Ok(())
    };
    let mut brace_depth = 0i32;
    let mut in_brackets = 0i32;
    let mut slashed = false;
    let mut in_regexp = false;
    let mut in_regexp_end = false;
    let mut next = '\0';
    for c in glob.chars() {
        let last = next;
        next = c;
        if slashed {
            re.push(c);
            slashed = false;
            continue;
        }
        if in_regexp_end {
            if c == '}' {
                // `}}}`: the regexp ends at the last `}}`; the earlier `}` belongs to it.
                re.pop();
                re.push('}');
                re.push(')');
                continue;
            }
            in_regexp_end = false;
        }
        if in_regexp {
            if c == '}' && last == '}' {
                in_regexp = false;
                in_regexp_end = true;
                re.pop();
                re.push(')');
            } else {
                re.push(c);
            }
            continue;
        }
        if c != '*' {
            insert_stars(&mut re, &mut stars)?;
        }
        if in_brackets > 0 {
            re.push(c);
            if c == '[' {
                in_brackets += 1;
            }
            if c == ']' {
                in_brackets -= 1;
            }
            continue;
        }
        match c {
            '\\' => {
                re.push(c);
                slashed = true;
            }
            '*' => stars += 1,
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push(c);
                in_brackets += 1;
            }
            ']' => return Err(GlobProblem::UnopenedBracket),
            '{' => {
                if brace_depth > 0 && last == '{' {
                    // `{{` opens a raw regexp; the `(` of the first `{` wraps it.
                    in_regexp = true;
                    brace_depth -= 1;
                } else {
                    brace_depth += 1;
                    re.push('(');
                }
            }
            '}' => {
                if brace_depth <= 0 {
                    return Err(GlobProblem::UnbalancedBraces);
                }
                re.push(')');
                brace_depth -= 1;
            }
            ',' => re.push(if brace_depth > 0 { '|' } else { ',' }),
            '.' | '+' | '(' | ')' | '|' | '^' | '$' => {
                re.push('\\');
                re.push(c);
            }
            _ => re.push(c),
        }
    }
    insert_stars(&mut re, &mut stars)?;
    if in_brackets > 0 {
        return Err(GlobProblem::UnclosedBracket);
    }
    if brace_depth != 0 {
        return Err(GlobProblem::UnbalancedBraces);
    }
    if in_regexp {
        return Err(GlobProblem::UnclosedRegexp);
    }
    re.push('$');
    Ok(re)
}

/// Ports rclone's `globToDirGlobs`: the directory globs that must match a directory (with a
/// trailing `/`) for the file glob to possibly match something below it.
pub(crate) fn rclone_dir_globs(glob: &str) -> Vec<String> {
    if dir_globs_too_hard(glob) {
        return vec!["/**".to_owned()];
    }
    // Squash runs of `/`.
    let mut g = String::with_capacity(glob.len());
    for c in glob.chars() {
        if c == '/' && g.ends_with('/') {
            continue;
        }
        g.push(c);
    }
    let mut out: Vec<String> = Vec::new();
    loop {
        // Split on the last `/` or `**`, whichever is later (`**` can contain `/`).
        let (cut, what) = match (g.rfind('/'), g.rfind("**")) {
            (Some(i), Some(j)) if j > i => (Some(j), "**"),
            (None, Some(j)) => (Some(j), "**"),
            (i, _) => (i, ""),
        };
        let Some(cut) = cut else {
            if out.is_empty() {
                out.push("/**".to_owned());
            }
            break;
        };
        g.truncate(cut);
        let new_glob = format!("{g}{what}/");
        if out.last() != Some(&new_glob) {
            out.push(new_glob);
        }
    }
    out
}

/// rclone's `tooHardRe`, `({[^{}]*(\*\*|/)[^{}]*})|\{\{|\}\}|\{[^{}]*\{`: `/` or `**` inside
/// braces, raw regexps, nested braces. Then any directory might match.
fn dir_globs_too_hard(glob: &str) -> bool {
    if glob.contains("{{") || glob.contains("}}") {
        return true;
    }
    let b = glob.as_bytes();
    for (open, _) in b.iter().enumerate().filter(|(_, &c)| c == b'{') {
        let rest = &b[open + 1..];
        match rest.iter().position(|&c| c == b'{' || c == b'}') {
            Some(k) if rest[k] == b'{' => return true,
            Some(k) => {
                let seg = &rest[..k];
                if seg.contains(&b'/') || seg.windows(2).any(|w| w == b"**") {
                    return true;
                }
            }
            None => {}
        }
    }
    false
}

/// Rewrites a Go RE2 expression (as rclone builds it) into `regex`-crate syntax with the same
/// meaning, for matching UTF-8 text.
pub(crate) fn go_to_rust_regex(go: &str) -> String {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 16);
    let mut i = 0;
    let mut in_class = false;
    let mut class_first = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            i = go_escape(&chars, i, in_class, &mut out);
            class_first = false;
            continue;
        }
        if in_class {
            match c {
                ']' if !class_first => {
                    out.push(']');
                    in_class = false;
                }
                ']' => out.push_str(r"\]"),
                '[' => {
                    // `[:name:]` is a POSIX class in both syntaxes; any other `[` is a literal
                    // in Go but opens a nested class in Rust.
                    if chars.get(i + 1) == Some(&':') {
                        if let Some(end) = find_posix_end(&chars, i + 2) {
                            out.extend(&chars[i..=end]);
                            i = end + 1;
                            class_first = false;
                            continue;
                        }
                    }
                    out.push_str(r"\[");
                }
                // Rust's class set operators `&&`, `~~` (and `--`): literal in Go.
                '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
            class_first = false;
            i += 1;
            continue;
        }
        out.push(c);
        if c == '[' {
            in_class = true;
            class_first = true;
            if chars.get(i + 1) == Some(&'^') {
                out.push('^');
                i += 1;
            }
        }
        i += 1;
    }
    out
}

fn find_posix_end(chars: &[char], from: usize) -> Option<usize> {
    let mut j = from;
    while j + 1 < chars.len() {
        if chars[j] == ']' {
            return None;
        }
        if chars[j] == ':' && chars[j + 1] == ']' {
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

/// Translates the escape at `chars[i] == '\\'`; returns the index after it.
fn go_escape(chars: &[char], i: usize, in_class: bool, out: &mut String) -> usize {
    let Some(&e) = chars.get(i + 1) else {
        // Trailing backslash: an error in both syntaxes; let the compiler report it.
        out.push('\\');
        return i + 1;
    };
    // Go's Perl classes are ASCII-only; Rust's are Unicode.
    let perl = |pos: &str, neg: bool, out: &mut String| match (in_class, neg) {
        (true, false) => out.push_str(pos),
        (_, true) => {
            let _ = write!(out, "[^{pos}]");
        }
        (false, false) => {
            let _ = write!(out, "[{pos}]");
        }
    };
    match e {
        'd' => perl("0-9", false, out),
        'D' => perl("0-9", true, out),
        's' => perl(r"\t\n\f\r ", false, out),
        'S' => perl(r"\t\n\f\r ", true, out),
        'w' => perl("0-9A-Za-z_", false, out),
        'W' => perl("0-9A-Za-z_", true, out),
        'b' | 'B' if !in_class => {
            let _ = write!(out, r"(?-u:\{e})");
        }
        'C' if !in_class => out.push_str("(?s-u:.)"),
        'Q' => {
            let mut j = i + 2;
            let mut lit = String::new();
            while j < chars.len() {
                if chars[j] == '\\' && chars.get(j + 1) == Some(&'E') {
                    j += 2;
                    return push_literal(&lit, in_class, out, j);
                }
                lit.push(chars[j]);
                j += 1;
            }
            return push_literal(&lit, in_class, out, j);
        }
        '0'..='7' => {
            // Go: `\0` plus up to two octal digits, or `\1`–`\7` followed by at least one.
            let mut j = i + 1;
            let mut v = 0u32;
            while j < chars.len() && j < i + 4 && ('0'..='7').contains(&chars[j]) {
                v = v * 8 + (chars[j] as u32 - '0' as u32);
                j += 1;
            }
            if e != '0' && j == i + 2 {
                // A back-reference; invalid in both.
                out.push('\\');
                out.push(e);
                return i + 2;
            }
            let _ = write!(out, r"\x{{{v:X}}}");
            return j;
        }
        c if c.is_ascii_punctuation() => {
            // Go escapes any punctuation to itself; Rust gives some (`\<`, `\>`) a meaning.
            let _ = write!(out, r"\x{{{:X}}}", c as u32);
        }
        _ => {
            out.push('\\');
            out.push(e);
        }
    }
    i + 2
}

fn push_literal(lit: &str, in_class: bool, out: &mut String, next: usize) -> usize {
    for c in lit.chars() {
        if in_class || !c.is_alphanumeric() {
            let _ = write!(out, r"\x{{{:X}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    next
}

/// Where an rsync pattern must match, per `rule_matches()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RsyncAnchor {
    /// The whole subject (anchored `/` patterns, and `**`-prefixed ones, which get a `/`
    /// prepended to the subject).
    Start,
    /// The last `n` `/`-separated components of the subject (n = slashes + 1), or the final
    /// component when the pattern has neither a slash nor `**`.
    Trailing(usize),
    /// At the start of the subject or just after any `/` (unanchored `**` patterns, and
    /// unanchored literal patterns with a slash).
    AnyBoundary,
}

/// An rsync pattern after rsync's `add_rule()` analysis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RsyncPattern {
    /// Regex body in `(?s-u)` byte syntax, or `None` when the pattern can never match.
    pub body: Option<String>,
    pub anchor: RsyncAnchor,
    /// A trailing `/` was stripped: the rule applies to directories only.
    pub dir_only: bool,
    /// Leading `/`.
    pub anchored: bool,
    /// Pattern starts with `**`: a `/` is prepended to the subject.
    pub prefix_slash: bool,
    /// Pattern ends with `***`: a directory's subject gets a `/` appended, so `dir/***`
    /// matches `dir` itself.
    pub dir_suffix_slash: bool,
}

/// Analyses and translates one rsync pattern (the text after the rule prefix).
pub(crate) fn rsync_pattern(pat: &[u8]) -> RsyncPattern {
    let mut pat = pat;
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
    let wild3_suffix = wild2 && pat.ends_with(b"***");
    let anchored = pat.first() == Some(&b'/');
    let body_src = if anchored { &pat[1..] } else { pat };
    let anchor = if slash_cnt == 0 && !wild2 {
        RsyncAnchor::Trailing(1)
    } else if !anchored && slash_cnt > 0 && !wild2 {
        if wild {
            RsyncAnchor::Trailing(slash_cnt + 1)
        } else {
            // rsync compares a literal with slashes as a suffix at a component boundary.
            RsyncAnchor::AnyBoundary
        }
    } else if !anchored && !wild2_prefix && wild2 {
        RsyncAnchor::AnyBoundary
    } else {
        RsyncAnchor::Start
    };
    let body = if wild {
        wildmatch_to_regex(body_src)
    } else {
        let mut s = String::with_capacity(body_src.len() * 2);
        for &b in body_src {
            push_byte(&mut s, b);
        }
        Some(s)
    };
    RsyncPattern {
        body,
        anchor,
        dir_only,
        anchored,
        prefix_slash: wild2_prefix,
        dir_suffix_slash: wild3_suffix,
    }
}

fn push_byte(s: &mut String, b: u8) {
    if b.is_ascii_alphanumeric() || b == b'_' {
        s.push(b as char);
    } else {
        let _ = write!(s, r"\x{b:02X}");
    }
}

/// Translates rsync's `dowild()` pattern language into a byte regex body (without anchors).
/// `None`: the pattern can never match (malformed class, trailing backslash).
fn wildmatch_to_regex(p: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(p.len() * 3);
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' => {
                let &c = p.get(i + 1)?;
                push_byte(&mut out, c);
                i += 2;
            }
            b'?' => {
                out.push_str("[^/]");
                i += 1;
            }
            b'*' => {
                let mut j = i;
                while j < p.len() && p[j] == b'*' {
                    j += 1;
                }
                out.push_str(if j - i >= 2 { ".*" } else { "[^/]*" });
                i = j;
            }
            b'[' => {
                let (set, next) = wild_class(p, i + 1)?;
                push_class(&mut out, &set)?;
                i = next;
            }
            b => {
                push_byte(&mut out, b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Parses a wildmatch class starting just after `[`; returns the byte set it matches (never
/// containing `/`) and the index after the closing `]`. `None` when malformed. Mirrors the
/// `do { … } while (prev_ch = p_ch, (p_ch = *++p) != ']')` loop of `dowild()`.
fn wild_class(p: &[u8], start: usize) -> Option<([bool; 256], usize)> {
    let at = |i: usize| p.get(i).copied().unwrap_or(0);
    let mut set = [false; 256];
    let mut i = start;
    let mut p_ch = at(i);
    if p_ch == b'^' {
        p_ch = b'!';
    }
    let negate = p_ch == b'!';
    if negate {
        i += 1;
        p_ch = at(i);
    }
    let mut prev_ch = 0u8;
    loop {
        if p_ch == 0 {
            return None;
        }
        if p_ch == b'\\' {
            i += 1;
            p_ch = at(i);
            if p_ch == 0 {
                return None;
            }
            set[p_ch as usize] = true;
        } else if p_ch == b'-' && prev_ch != 0 && at(i + 1) != 0 && at(i + 1) != b']' {
            i += 1;
            p_ch = at(i);
            if p_ch == b'\\' {
                i += 1;
                p_ch = at(i);
                if p_ch == 0 {
                    return None;
                }
            }
            if prev_ch <= p_ch {
                for b in prev_ch..=p_ch {
                    set[b as usize] = true;
                }
            }
            p_ch = 0; // so no range can start at the end of this one
        } else if p_ch == b'[' && at(i + 1) == b':' {
            let s = i + 2;
            let mut j = s;
            while at(j) != 0 && at(j) != b']' {
                j += 1;
            }
            if at(j) == 0 {
                return None;
            }
            if j == s || p[j - 1] != b':' {
                // No `:]`: the `[` is a plain member and scanning resumes after it.
                set[b'[' as usize] = true;
                p_ch = b'[';
            } else {
                let pred: fn(u8) -> bool = match &p[s..j - 1] {
                    b"alnum" => |c| c.is_ascii_alphanumeric(),
                    b"alpha" => |c| c.is_ascii_alphabetic(),
                    b"blank" => |c| c == b' ' || c == b'\t',
                    b"cntrl" => |c| c.is_ascii_control(),
                    b"digit" => |c| c.is_ascii_digit(),
                    b"graph" => |c| c.is_ascii_graphic(),
                    b"lower" => |c| c.is_ascii_lowercase(),
                    b"print" => |c| c.is_ascii_graphic() || c == b' ',
                    b"punct" => |c| c.is_ascii_punctuation(),
                    b"space" => |c| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
                    b"upper" => |c| c.is_ascii_uppercase(),
                    b"xdigit" => |c| c.is_ascii_hexdigit(),
                    _ => return None,
                };
                for c in 0..=255u8 {
                    if pred(c) {
                        set[c as usize] = true;
                    }
                }
                i = j;
                p_ch = 0;
            }
        } else {
            set[p_ch as usize] = true;
        }
        prev_ch = p_ch;
        i += 1;
        p_ch = at(i);
        if p_ch == b']' {
            break;
        }
    }
    if negate {
        for v in set.iter_mut() {
            *v = !*v;
        }
    }
    set[b'/' as usize] = false;
    Some((set, i + 1))
}

fn push_class(out: &mut String, set: &[bool; 256]) -> Option<()> {
    if !set.iter().any(|&v| v) {
        return None;
    }
    out.push('[');
    let mut b = 0usize;
    while b < 256 {
        if !set[b] {
            b += 1;
            continue;
        }
        let start = b;
        while b + 1 < 256 && set[b + 1] {
            b += 1;
        }
        if start == b {
            let _ = write!(out, r"\x{start:02X}");
        } else {
            let _ = write!(out, r"\x{start:02X}-\x{b:02X}");
        }
        b += 1;
    }
    out.push(']');
    Some(())
}

/// Translates a robocopy wildcard (`*`, `?`, everything else literal) into a regex body for
/// UTF-8 text. `*` and `?` stay inside one path component.
pub(crate) fn robocopy_wildcard(pat: &str) -> String {
    let mut out = String::with_capacity(pat.len() * 2);
    for c in pat.chars() {
        match c {
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            c => {
                let mut buf = [0u8; 4];
                out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
            }
        }
    }
    out
}
