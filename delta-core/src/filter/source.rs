//! Filter files: where rule text comes from (a path read at build time, or bytes the caller
//! already has), bounded reading, and the two line splitters (rclone's and rsync's).
//!
//! # Security
//! A filter file is read through a cap of [`MAX_FILTER_FILE`] bytes; longer files are refused
//! before their contents are kept. Line and rule lengths are capped by the dialect parsers.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use super::error::FilterError;

/// Largest filter file accepted, in bytes.
pub const MAX_FILTER_FILE: u64 = 16 << 20;

/// Largest number of rules one filter may hold.
pub const MAX_RULES: usize = 100_000;

/// Where a list of rules comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A file to read when the filter is built.
    Path(PathBuf),
    /// Contents already read (stdin, a test), with a name for messages.
    Bytes { name: String, data: Vec<u8> },
}

impl Source {
    /// The name to show in messages and the contents.
    pub(crate) fn load(&self) -> Result<(String, Vec<u8>), FilterError> {
        match self {
            Source::Bytes { name, data } => Ok((name.clone(), data.clone())),
            Source::Path(path) => {
                let io = |source| FilterError::Io {
                    path: path.clone(),
                    source,
                };
                let file = File::open(path).map_err(io)?;
                let name = path.display().to_string();
                let data = read_capped(file, &name)?;
                Ok((name, data))
            }
        }
    }
}

/// Reads all of `r`, refusing more than [`MAX_FILTER_FILE`] bytes.
pub(crate) fn read_capped(r: impl Read, name: &str) -> Result<Vec<u8>, FilterError> {
    let mut data = Vec::new();
    r.take(MAX_FILTER_FILE + 1)
        .read_to_end(&mut data)
        .map_err(|source| FilterError::Io {
            path: PathBuf::from(name),
            source,
        })?;
    if data.len() as u64 > MAX_FILTER_FILE {
        return Err(FilterError::FileTooLarge {
            name: name.to_owned(),
            max: MAX_FILTER_FILE,
        });
    }
    Ok(data)
}

/// Go's `bufio.ScanLines`: split at `\n`, drop one trailing `\r`, keep a last line without
/// newline. Yields (1-based line number, line).
pub(crate) fn go_lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let empty = data.is_empty();
    body.split(|&b| b == b'\n')
        .filter(move |_| !empty)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

/// rsync's `parse_filter_file()` line reading: a line ends at `\n`, `\r` or `\r\n` (or at NUL
/// with `--from0`). Empty lines are dropped by the caller. Yields (1-based line number, line).
pub(crate) fn rsync_lines(data: &[u8], nul: bool) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut line_no = 0;
    let mut start = 0;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        let end = if nul {
            b == 0
        } else {
            b == b'\n' || b == b'\r'
        };
        if end {
            line_no += 1;
            out.push((line_no, &data[start..i]));
            if !nul && b == b'\r' && data.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    if start < data.len() {
        out.push((line_no + 1, &data[start..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_line_splitting() {
        let v: Vec<_> = go_lines(b"a\r\nb\n\nc").collect();
        assert_eq!(v, vec![(1, &b"a"[..]), (2, b"b"), (3, b""), (4, b"c")]);
        let v: Vec<_> = go_lines(b"a\n").collect();
        assert_eq!(v, vec![(1, &b"a"[..])]);
        assert_eq!(go_lines(b"").count(), 0);
        // A lone CR is not a line end for Go.
        let v: Vec<_> = go_lines(b"a\rb").collect();
        assert_eq!(v, vec![(1, &b"a\rb"[..])]);
    }

    #[test]
    fn rsync_line_splitting() {
        let v = rsync_lines(b"a\r\nb\rc\n\nd", false);
        assert_eq!(
            v,
            vec![(1, &b"a"[..]), (2, b"b"), (3, b"c"), (4, b""), (5, b"d")]
        );
        let v = rsync_lines(b"a\nb\0c\0", true);
        assert_eq!(v, vec![(1, &b"a\nb"[..]), (2, b"c")]);
    }

    #[test]
    fn capped_read() {
        let big = vec![b'x'; MAX_FILTER_FILE as usize + 1];
        assert!(matches!(
            read_capped(&big[..], "big"),
            Err(FilterError::FileTooLarge { .. })
        ));
        assert_eq!(read_capped(&b"ok"[..], "small").unwrap(), b"ok");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Source::Path("/nonexistent/deltasync-filter".into())
            .load()
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/deltasync-filter"),
            "{err}"
        );
    }
}
