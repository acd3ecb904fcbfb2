//! Running podkeeper as a service: systemd notification and the start-up self-check.
//!
//! Nothing here reconciles anything. [`notify`] hears the reactor through the
//! [`crate::observe::Observer`] seam; [`selfcheck`] reads what podman already
//! said about itself at start-up.

pub mod notify;
pub mod selfcheck;
