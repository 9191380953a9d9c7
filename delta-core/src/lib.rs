//! delta-core: the engine behind deltasync.
//!
//! deltasync makes a destination tree equal to a live source tree again and again, and makes
//! each pass cost in proportion to what changed. This crate does all of the work; the
//! `deltasync` binary only maps flags onto it.
//!
//! # The mental model
//! A changed file is moved in three steps. The side holding the **old** file computes its
//! [`Signature`]: a weak rolling sum and a strong hash per block. The side holding the **new**
//! file scans it against that signature ([`delta`]), on all cores, and emits a delta: copy
//! commands for blocks the old file already has, literal bytes for the rest. The old side
//! applies the delta ([`delta::apply()`]) into a temporary file ([`replace`]) that is renamed
//! into place only once complete (and, for native deltas, verified against the sender's
//! whole-file hash).
//!
//! Signatures and deltas come in librsync's formats (so `rdiff` can read ours and we read
//! its) and in a native format with a per-session seed and a whole-file hash.
//!
//! Modules: [`checksum`] (rolling sums, block and file hashes), [`signature`], [`delta`]
//! (search, encoding, patching), [`input`] (how files are read: live sources are never
//! memory-mapped), [`replace`] (atomic replacement), [`error`] (typed errors).
//!
//! # Example
//! ```
//! use delta_core::delta::{apply, delta_slice, ApplyOptions, Basis, BlockIndex, DeltaOptions};
//! use delta_core::{Signature, SignatureFormat, SignatureOptions};
//!
//! let old = b"The quick brown fox jumps over the lazy dog. ".repeat(1000);
//! let mut new = old.clone();
//! new.splice(20_000..20_000, b"A new sentence. ".iter().copied());
//!
//! // Receiver: signature of the old file.
//! let opts = SignatureOptions { block_len: Some(512), ..SignatureOptions::new(SignatureFormat::Native) };
//! let sig = Signature::from_slice(&old, &opts)?;
//! let bytes = sig.to_bytes(); // what would cross the wire
//!
//! // Sender: delta of the new file against it.
//! let sig = Signature::from_bytes(&bytes, &Default::default())?;
//! let mut delta = Vec::new();
//! let stats = delta_slice(&sig, &BlockIndex::new(&sig), &new, &mut delta, &DeltaOptions::default())?;
//! assert!(stats.literal_bytes < 2048, "only the changed region travels");
//!
//! // Receiver: rebuild and verify.
//! let mut rebuilt = Vec::new();
//! let applied = apply(Basis::Slice(&old), &mut &delta[..], &mut rebuilt, &ApplyOptions::default())?;
//! assert!(applied.verified);
//! assert_eq!(rebuilt, new);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod checksum;
pub mod delta;
pub mod error;
pub mod exec;
pub mod filter;
pub mod input;
pub mod memory;
pub mod plan;
pub mod protocol;
pub mod replace;
pub mod scan;
pub mod session;
pub mod signature;
pub mod sync;
pub mod transport;
pub mod tree;

pub use error::{ApplyError, DeltaError, SignatureError};
pub use input::{Access, InputFile};
pub use signature::{Signature, SignatureFormat, SignatureLimits, SignatureOptions};
