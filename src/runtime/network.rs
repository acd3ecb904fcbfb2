//! What `container.network` names: a podman network mode, a named podman network, or another app's network namespace (`app:<id>`).

/// The network modes podman takes by name; anything else (but `app:<id>`)
/// is the name of a podman network, which must exist and is joined for real.
pub const MODES: &[&str] = &["none", "host", "bridge", "slirp4netns", "pasta", "private"];

/// `container.network`, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network<'a> {
    /// podman's own mode of that name (`nsmode`).
    Mode(&'a str),
    /// A podman network (`podman network create NAME`, a `.network` companion).
    Named(&'a str),
    /// The network namespace of app `<id>`'s container.
    App(&'a str),
}

impl<'a> Network<'a> {
    pub fn parse(s: &'a str) -> Self {
        if let Some(id) = s.strip_prefix("app:") {
            Network::App(id)
        } else if MODES.contains(&s) {
            Network::Mode(s)
        } else {
            Network::Named(s)
        }
    }

    /// The named network an app joins, if it names one.
    pub fn named(network: Option<&'a str>) -> Option<&'a str> {
        match Network::parse(network?) {
            Network::Named(n) => Some(n),
            _ => None,
        }
    }

    /// The app whose network namespace this one shares, if any.
    pub fn app(network: Option<&'a str>) -> Option<&'a str> {
        match Network::parse(network?) {
            Network::App(id) => Some(id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_should_be_a_mode_a_named_network_or_an_app() {
        assert_eq!(Network::parse("none"), Network::Mode("none"));
        assert_eq!(Network::parse("pasta"), Network::Mode("pasta"));
        assert_eq!(Network::parse("mynet"), Network::Named("mynet"));
        assert_eq!(Network::parse("app:db"), Network::App("db"));
        assert_eq!(Network::named(Some("mynet")), Some("mynet"));
        assert_eq!(Network::named(Some("host")), None);
        assert_eq!(Network::app(Some("app:db")), Some("db"));
        assert_eq!(Network::app(None), None);
    }
}
