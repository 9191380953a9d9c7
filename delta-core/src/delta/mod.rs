//! Delta search, encoding and patching (in progress).
