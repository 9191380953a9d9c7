//! delta-core: the engine behind deltasync.
//!
//! (crate docs are completed with the delta engine)

pub mod checksum;
pub mod delta;
pub mod error;
pub mod exec;
pub mod filter;
pub mod input;
pub mod replace;
pub mod scan;
pub mod signature;

pub use error::{ApplyError, DeltaError, SignatureError};
pub use input::{Access, InputFile};
pub use signature::{Signature, SignatureFormat, SignatureLimits, SignatureOptions};
