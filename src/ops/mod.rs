//! Running podkeeper as a service: systemd notification, status and metrics, and the start-up self-check.
//!
//! Nothing here reconciles anything. [`notify`] and [`state`] hear the
//! reactor through the [`crate::observe::Observer`] seam; [`state`] keeps
//! the board [`status`] shows and the counters [`metrics`] exports, served
//! off the reactor's task by the [`control`] socket and [`metrics_http`]
//! (both through [`accept`]'s bounded loop; [`client`] is the socket's
//! client side, [`refusals`] keeps refused peers from flooding the log);
//! [`selfcheck`] reads what podman already said about itself at start-up.

pub(crate) mod accept;
pub(crate) mod client;
pub(crate) mod control;
pub(crate) mod metrics;
pub(crate) mod metrics_http;
pub(crate) mod notify;
pub(crate) mod refusals;
pub(crate) mod selfcheck;
pub mod state;
pub(crate) mod state_file;
pub mod status;
