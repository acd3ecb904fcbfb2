//! Running podkeeper as a service: systemd notification, start-up self-check, completions and man page.
//!
//! Nothing here reconciles anything. [`notify`] hears the reactor through the
//! [`crate::observe::Observer`] seam; [`selfcheck`] reads what podman already
//! said about itself at start-up; [`docs`] turns the CLI definition into
//! shell completions and a man page.

pub mod docs;
pub mod notify;
pub mod selfcheck;
