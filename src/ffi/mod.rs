//! cxx bridges: declarations only, each paired by name with its C++ file.

pub(crate) mod sim;
#[cfg(feature = "tt-metal")]
pub(crate) mod tt_metal;
