//! What a pass does to one path, and the change flags reports show for it.

/// The action planned for one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Action {
    /// Nothing to do.
    Unchanged,
    /// Create a directory; its metadata is applied after its contents.
    Mkdir,
    /// An existing directory; its metadata is checked again after its contents.
    Dir,
    /// Transfer a new file.
    Create,
    /// Transfer a changed file (by delta against the old one when worthwhile).
    Update,
    /// Same size, unknown content: compare whole-file hashes, then update or fix metadata.
    Checksum,
    /// Content is the same; only metadata differs.
    SetMeta,
    /// Create or replace a symlink.
    Symlink,
    /// Create or replace a device, fifo or socket.
    Special,
    /// Link to an earlier path of the same source inode.
    HardLink,
    /// Delete the destination entry (after the transfers).
    Delete,
    /// Destination-only entry kept: excluded by the filters, or deletions are off.
    Keep,
    /// Not transferred because an option says to skip it (`--ignore-existing`, `--update`, robocopy `/xo` …).
    Skip,
}

impl Action {
    /// Whether the destination changes (before deletions).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Action::Mkdir
                | Action::Create
                | Action::Update
                | Action::SetMeta
                | Action::Symlink
                | Action::Special
                | Action::HardLink
        )
    }
}

/// What differs between the two sides, as rsync's `--itemize-changes` shows it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ChangeFlags {
    /// The destination has no entry at this path (or one of another kind).
    pub new: bool,
    /// Contents differ by checksum.
    pub checksum: bool,
    /// Sizes differ.
    pub size: bool,
    /// Modification times differ.
    pub time: bool,
    /// Permission bits differ.
    pub perms: bool,
    /// Owners differ.
    pub owner: bool,
    /// Groups differ.
    pub group: bool,
}
