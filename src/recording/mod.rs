//! Event streams written down as fixtures (`record`) and fed back to the same reactor against the simulations in virtual time (`replay`).
//!
//! * [`format`](mod@format): the file format, as serde types both sides share.
//! * [`fixture`]: a recording read whole and checked.
//! * [`record`]: `podkeeper record`, the writer.
//! * [`replay`]: `podkeeper replay`, and the driver that paces it
//!   (`driver`) in a scratch copy of the directories (`workspace`).

mod driver;
pub mod fixture;
pub mod format;
pub mod record;
pub mod replay;
mod workspace;
