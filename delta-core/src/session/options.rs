//! Job options on the wire: the sync options a far receiver needs, as key/value pairs, and
//! the filter as (kind, value) pairs of rclone's or rsync's flags ([`FilterSpec`]).

use std::time::Duration;

use crate::filter::{
    Dialect, Filter, FilterError, RcloneFilterBuilder, RsyncFilterBuilder, TimeBase,
};
use crate::sync::SyncOptions;

use super::SessionError;

/// The options of a pass as key/value pairs.
pub fn encode(o: &SyncOptions) -> Vec<(String, String)> {
    let b = |v: bool| if v { "1" } else { "0" }.to_string();
    let mut v = vec![
        ("checksum".into(), b(o.compare.checksum)),
        ("size-only".into(), b(o.compare.size_only)),
        ("ignore-times".into(), b(o.compare.ignore_times)),
        ("ignore-existing".into(), b(o.compare.ignore_existing)),
        ("update".into(), b(o.compare.skip_newer_dst)),
        ("perms".into(), b(o.transfer.meta.perms)),
        ("times".into(), b(o.transfer.meta.times)),
        ("owner".into(), b(o.transfer.meta.owner)),
        ("group".into(), b(o.transfer.meta.group)),
        ("inplace".into(), b(o.transfer.inplace)),
        ("fsync".into(), b(o.transfer.fsync)),
        ("retries".into(), o.transfer.retries.to_string()),
        (
            "retry-wait-ms".into(),
            o.transfer.retry_wait.as_millis().to_string(),
        ),
        ("force-delete".into(), b(o.force_delete)),
        ("transfers".into(), o.transfers.to_string()),
        ("hard-links".into(), b(o.hard_links)),
        ("symlinks".into(), b(o.symlinks)),
        ("specials".into(), b(o.specials)),
        ("empty-dirs".into(), b(o.empty_dirs)),
        ("one-file-system".into(), b(o.one_file_system)),
        ("mkpath".into(), b(o.mkpath)),
    ];
    if let Some(m) = o.max_delete {
        v.push(("max-delete".into(), m.to_string()));
    }
    v
}

/// Applies key/value pairs to `o`; unknown keys or bad values are refused.
pub fn decode(pairs: &[(String, String)], o: &mut SyncOptions) -> Result<(), SessionError> {
    for (k, v) in pairs {
        let bad = || SessionError::Unsupported(format!("bad job option {k}={v}"));
        let flag = || match v.as_str() {
            "1" => Ok(true),
            "0" => Ok(false),
            _ => Err(bad()),
        };
        let num = || v.parse::<u64>().map_err(|_| bad());
        match k.as_str() {
            "checksum" => o.compare.checksum = flag()?,
            "size-only" => o.compare.size_only = flag()?,
            "ignore-times" => o.compare.ignore_times = flag()?,
            "ignore-existing" => o.compare.ignore_existing = flag()?,
            "update" => o.compare.skip_newer_dst = flag()?,
            "perms" => o.transfer.meta.perms = flag()?,
            "times" => o.transfer.meta.times = flag()?,
            "owner" => o.transfer.meta.owner = flag()?,
            "group" => o.transfer.meta.group = flag()?,
            "inplace" => o.transfer.inplace = flag()?,
            "fsync" => o.transfer.fsync = flag()?,
            "retries" => o.transfer.retries = u32::try_from(num()?).map_err(|_| bad())?,
            "retry-wait-ms" => {
                o.transfer.retry_wait = Duration::from_millis(num()?.min(86_400_000))
            }
            "force-delete" => o.force_delete = flag()?,
            "transfers" => o.transfers = (num()? as usize).clamp(1, 64),
            "hard-links" => o.hard_links = flag()?,
            "symlinks" => o.symlinks = flag()?,
            "specials" => o.specials = flag()?,
            "empty-dirs" => o.empty_dirs = flag()?,
            "one-file-system" => o.one_file_system = flag()?,
            "mkpath" => o.mkpath = flag()?,
            "max-delete" => o.max_delete = Some(num()?),
            // The session's own options (`conn::compression`, `conn::idle_timeout`, `Events`).
            "compress-level" | "compress-data" | "timeout-ms" | "events" => {}
            _ => return Err(SessionError::Unsupported(format!("unknown job option {k}"))),
        }
    }
    o.compare.meta = o.transfer.meta;
    Ok(())
}

/// A filter as it crosses the wire: its dialect and (kind, value) pairs, rebuilt by whichever
/// side walks or plans. Files named by `*-from` rules are read where the user gave them and
/// travel as contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    /// How the rules are spelled.
    pub dialect: Dialect,
    /// The rules, see [`build_filter`] (rclone) and [`build_rsync_filter`] (rsync).
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Default for FilterSpec {
    fn default() -> Self {
        Self::rclone(Vec::new())
    }
}

impl FilterSpec {
    /// rclone-spelled pairs.
    pub fn rclone(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        Self {
            dialect: Dialect::Rclone,
            pairs,
        }
    }

    /// rsync-spelled pairs.
    pub fn rsync(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        Self {
            dialect: Dialect::Rsync,
            pairs,
        }
    }

    /// The filter.
    pub fn build(&self) -> Result<Filter, FilterError> {
        match self.dialect {
            Dialect::Rsync => build_rsync_filter(&self.pairs),
            Dialect::Rclone => build_filter(&self.pairs),
            other => Err(FilterError::Unsupported {
                rule: format!("{other:?}"),
                what: "this filter dialect cannot be sent to a far side",
            }),
        }
    }
}

/// Splits `kind=NAME` keys (which carry a file's contents) into the kind and the name errors
/// should show.
fn split_key(k: &[u8]) -> (&[u8], String) {
    match k.iter().position(|&b| b == b'=') {
        Some(i) => (&k[..i], String::from_utf8_lossy(&k[i + 1..]).into_owned()),
        None => (k, String::from_utf8_lossy(k).into_owned()),
    }
}

/// An rclone-spelled filter from (kind, value) pairs: `filter`, `include`, `exclude` (a rule),
/// `filter-from=NAME`, `include-from=NAME`, `exclude-from=NAME` (a file's contents, read where
/// the user gave it, and its name for messages), `ignore-case`, `delete-excluded`, `min-age`,
/// `max-age`, `min-size`, `max-size`.
pub fn build_filter(pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<Filter, FilterError> {
    let mut f = RcloneFilterBuilder::new();
    f.time_base(TimeBase::now_local());
    for (k, v) in pairs {
        let text = String::from_utf8_lossy(v);
        let (kind, name) = split_key(k);
        match kind {
            b"filter" => f.filter(&text),
            b"include" => f.include(&text),
            b"exclude" => f.exclude(&text),
            b"filter-from" => f.filter_from_bytes(&name, v.clone()),
            b"include-from" => f.include_from_bytes(&name, v.clone()),
            b"exclude-from" => f.exclude_from_bytes(&name, v.clone()),
            b"ignore-case" => f.ignore_case(true),
            b"delete-excluded" => f.delete_excluded(true),
            b"min-age" => f.min_age(&text),
            b"max-age" => f.max_age(&text),
            b"min-size" => f.min_size(&text),
            b"max-size" => f.max_size(&text),
            _ => return Err(unknown_kind(k)),
        };
    }
    f.build()
}

/// An rsync-spelled filter from (kind, value) pairs: `filter`, `include`, `exclude` (a rule,
/// bytes as given), `include-from=NAME`, `exclude-from=NAME` (a file's contents),
/// `delete-excluded`, `min-size`, `max-size`, and `root-name` (the source's last component when
/// it was named without a trailing slash).
pub fn build_rsync_filter(pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<Filter, FilterError> {
    let mut f = RsyncFilterBuilder::new();
    for (k, v) in pairs {
        let text = String::from_utf8_lossy(v);
        let (kind, name) = split_key(k);
        match kind {
            b"filter" => f.filter(v),
            b"include" => f.include(v),
            b"exclude" => f.exclude(v),
            b"include-from" => f.include_from_bytes(&name, v.clone()),
            b"exclude-from" => f.exclude_from_bytes(&name, v.clone()),
            b"delete-excluded" => f.delete_excluded(true),
            b"min-size" => f.min_size(&text),
            b"max-size" => f.max_size(&text),
            b"root-name" => f.root_name(v),
            _ => return Err(unknown_kind(k)),
        };
    }
    f.build()
}

fn unknown_kind(k: &[u8]) -> FilterError {
    FilterError::UnknownRule {
        rule: String::from_utf8_lossy(k).into_owned(),
    }
}

/// Flattens pairs into the Job's argument list (kind, value, kind, value, …).
pub fn flatten(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u8>> {
    pairs
        .iter()
        .flat_map(|(k, v)| [k.clone(), v.clone()])
        .collect()
}

/// The inverse of [`flatten`].
pub fn pairs(args: &[Vec<u8>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    args.chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Mode;

    #[test]
    fn options_round_trip() {
        let mut a = SyncOptions::new(Mode::Sync);
        a.compare.checksum = true;
        a.transfer.inplace = true;
        a.max_delete = Some(7);
        a.transfer.retry_wait = Duration::from_millis(1500);
        let mut b = SyncOptions::new(Mode::Sync);
        decode(&encode(&a), &mut b).unwrap();
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert!(decode(&[("nope".into(), "1".into())], &mut b).is_err());
        assert!(decode(&[("checksum".into(), "yes".into())], &mut b).is_err());
    }

    #[test]
    fn filters_rebuild_from_pairs() {
        let p = vec![
            (b"filter".to_vec(), b"- *.fdb".to_vec()),
            (b"min-age".to_vec(), b"1d".to_vec()),
        ];
        let f = build_filter(&pairs(&flatten(&p))).unwrap();
        assert!(f.is_active());
        assert!(!f.path_included(b"a/b.fdb"));
        assert!(f.path_included(b"a/b.dat"));
        assert!(build_filter(&[(b"bogus".to_vec(), b"x".to_vec())]).is_err());
    }
}
