//! cxx bridges: declarations only, each paired by name with its C++ file.
//! `vocab` holds the types the two device bridges share.

pub(crate) mod sim;
#[cfg(feature = "tt-metal")]
pub(crate) mod tt_metal;
pub(crate) mod vocab;

// ---- Send opt-ins: the only ones in the crate ------------------------------

// SAFETY: the C++ SimDevice holds only plain data (no thread affinity, no
// thread-local state); the Rust side never shares it between threads without
// a Mutex, so moving it to another thread is sound.
unsafe impl Send for sim::bridge::SimDevice {}

// SAFETY: TtMetalHandle owns a MeshDevice handle and a mutex-protected event
// log. TT-Metal's device and allocator calls may come from any thread (the
// graph processor is registered per thread on first use), and the Rust side
// never shares the handle between threads without the Device's Mutex.
#[cfg(feature = "tt-metal")]
unsafe impl Send for tt_metal::bridge::TtMetalHandle {}
