//! Kubernetes' rules for names, label keys and label values (apimachinery's validation), so the export never writes one a cluster refuses.

/// A DNS-1123 label: object names, container and volume names, port names.
/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A DNS-1123 subdomain: claim names, label key prefixes. Labels joined by
/// dots, at most 253 in all.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// The name part of a label key, and a non-empty label value:
/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63.
fn is_qualified_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS-1123 subdomain.
pub fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_part(name),
        None => is_qualified_part(s),
    }
}

/// A label value: empty, or a qualified part.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_part(s)
}

/// Why a label cannot be a Kubernetes label, or `None` when it can.
pub fn label_problem(key: &str, value: &str) -> Option<&'static str> {
    if !is_label_key(key) {
        Some("the key is not a valid Kubernetes label key ([prefix/]name)")
    } else if !is_label_value(value) {
        Some("the value is not a valid Kubernetes label value (at most 63 letters, digits, '-', '_', '.')")
    } else {
        None
    }
}

/// An environment variable name Kubernetes accepts: printable ASCII
/// without `=` (the relaxed rule, on by default since Kubernetes 1.32).
pub fn is_env_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// The strict rule clusters before 1.32 apply: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn is_strict_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
}

/// The closest DNS-1123 subdomain to a podman volume name (`My_Data` →
/// `my-data`), or `None` when nothing of it is left.
pub fn to_dns1123_subdomain(s: &str) -> Option<String> {
    let lowered: String = s
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' | '.' => c,
            _ => '-',
        })
        .collect();
    let parts: Vec<&str> = lowered
        .split('.')
        .map(|p| p.trim_matches('-'))
        .filter(|p| !p.is_empty())
        .collect();
    let out = parts.join(".");
    let out: String = out.chars().take(253).collect();
    let out = out.trim_end_matches(['-', '.']).to_string();
    is_dns1123_subdomain(&out).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels_should_follow_kubernetes() {
        for ok in ["web", "a", "0web", "web-1", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok}");
        }
        for bad in ["", "Web", "web-", "-web", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
        assert!(is_dns1123_subdomain("data.example-1"));
        assert!(!is_dns1123_subdomain("data..x"));
    }

    #[test]
    fn label_keys_and_values_should_follow_kubernetes() {
        assert!(is_label_key("io.podkeeper.app"));
        assert!(is_label_key("example.com/tier"));
        assert!(is_label_key("Tier_1"));
        assert!(!is_label_key("a/b/c"));
        assert!(!is_label_key("Example.com/x"));
        assert!(!is_label_key("my key"));
        assert!(!is_label_key(""));
        assert!(is_label_value(""));
        assert!(is_label_value("v1.2_3-x"));
        assert!(!is_label_value("hello world"));
        assert!(!is_label_value("-x"));
        assert!(!is_label_value(&"v".repeat(64)));
        assert_eq!(label_problem("ok", "ok"), None);
        assert!(label_problem("ok", "not ok").unwrap().contains("value"));
        assert!(label_problem("not ok", "ok").unwrap().contains("key"));
    }

    #[test]
    fn env_names_should_follow_the_relaxed_rule_and_know_the_strict_one() {
        assert!(is_env_name("A_B") && is_strict_env_name("A_B"));
        assert!(is_env_name("1A") && !is_strict_env_name("1A"));
        assert!(is_env_name("a b") && !is_strict_env_name("a b"));
        assert!(!is_env_name("A=B"));
        assert!(!is_env_name(""));
        assert!(!is_env_name("A\u{e9}"));
    }

    #[test]
    fn volume_names_should_become_the_closest_subdomain() {
        assert_eq!(to_dns1123_subdomain("data").as_deref(), Some("data"));
        assert_eq!(to_dns1123_subdomain("My_Data").as_deref(), Some("my-data"));
        assert_eq!(to_dns1123_subdomain("-x.-y_").as_deref(), Some("x.y"));
        assert_eq!(to_dns1123_subdomain("___"), None);
    }
}
