//! Running podkeeper as a service: systemd notification, status and metrics, start-up self-check, completions and man page.
//!
//! Nothing here reconciles anything. [`notify`] and [`state`] hear the
//! reactor through the [`crate::observe::Observer`] seam; [`state`] keeps
//! the board [`status`] shows and the counters [`metrics`] exports, served
//! off the reactor's task by the [`control`] socket and [`metrics_http`];
//! [`selfcheck`] reads what podman already said about itself at start-up;
//! [`docs`] turns the CLI definition into shell completions and a man page.

pub mod control;
pub mod docs;
pub mod metrics;
pub mod metrics_http;
pub mod notify;
pub mod selfcheck;
pub mod state;
pub mod status;
