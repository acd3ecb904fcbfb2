//! podman secrets for `container.secrets`: created, listed and removed through the raw libpod calls, and referenced in a create's body.
//!
//! A secret's content goes to podman once, as the raw body of `POST
//! /libpod/secrets/create` (podman-api's own call would send it as a JSON
//! string, quotes and escapes included), and never into a container's
//! config: the create names the podman secret, as `secret_env` (an env
//! variable) or `secrets` (a file at its target).
//!
//! podman before 5.3 shows an env secret's value in clear in `podman
//! inspect` (`Config.Env`, podman#23788, fixed by podman#23959): there a
//! create with an env secret is refused with an error that says so; file
//! secrets work on every podman podkeeper supports (4.3 mounts them at any
//! absolute target).

use podman_api::models::Secret;
use serde_json::{json, Map, Value};

use super::{from_call, libpod, CallError, PodmanRuntime};
use crate::manifest::secrets::SecretValue;
use crate::manifest::ContainerSpec;
use crate::runtime::{RuntimeError, RuntimeResult, SecretUse};

/// The first podman whose inspect masks an env secret's value (podman#23959).
pub const MASKS_ENV_SECRETS_SINCE: (u32, u32) = (5, 3);

/// `POST /libpod/secrets/create?name=…` with the content as the body. A
/// secret of that name already there is no error: names are versioned by
/// content, so it holds the same value.
pub(super) async fn create(
    rt: &PodmanRuntime,
    name: &str,
    value: &SecretValue,
) -> RuntimeResult<()> {
    let path = libpod::path(&format!("/secrets/create?name={}", libpod::urlencode(name)));
    let body = value.bytes().to_vec();
    let limit = rt.timeouts.quick;
    match libpod::call(&rt.socket, hyper::Method::POST, &path, body, limit).await {
        // podman 4.3 answers 500 (5.x: 409) "…: secret name in use".
        Err(CallError::Status(_, m)) if m.trim_end().ends_with("secret name in use") => Ok(()),
        other => other
            .map(|_| ())
            .map_err(|e| from_call("secret create", limit, e)),
    }
}

/// The names of the podman secrets starting with `prefix` (`GET
/// /libpod/secrets/json`, filtered here: podman 4.3 filters by exact name only).
pub(super) async fn list(rt: &PodmanRuntime, prefix: &str) -> RuntimeResult<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(rename = "Spec", default)]
        spec: Option<Spec>,
    }
    #[derive(serde::Deserialize)]
    struct Spec {
        #[serde(rename = "Name", default)]
        name: String,
    }
    let limit = rt.timeouts.quick;
    let all: Vec<Info> = libpod::get_json(&rt.socket, &libpod::path("/secrets/json"), limit)
        .await
        .map_err(|e| from_call("secret list", limit, e))?;
    Ok(all
        .into_iter()
        .filter_map(|i| i.spec.map(|s| s.name))
        .filter(|n| n.starts_with(prefix))
        .collect())
}

/// `DELETE /libpod/secrets/{name}`; one already gone is no error.
pub(super) async fn remove(rt: &PodmanRuntime, name: &str) -> RuntimeResult<()> {
    let path = libpod::path(&format!("/secrets/{}", libpod::urlencode(name)));
    let limit = rt.timeouts.quick;
    match libpod::call(&rt.socket, hyper::Method::DELETE, &path, Vec::new(), limit).await {
        Err(CallError::Status(404, _)) => Ok(()),
        Err(CallError::Status(_, m)) if m.trim_end().ends_with("no such secret") => Ok(()),
        other => other
            .map(|_| ())
            .map_err(|e| from_call("secret remove", limit, e)),
    }
}

/// Before a create: refuse an env secret where `podman inspect` would
/// show it (asking podman's version by `_ping`, cheap, only then), and
/// make every podman secret the create names.
pub(super) async fn prepare(rt: &PodmanRuntime, uses: &[SecretUse]) -> RuntimeResult<()> {
    if uses.iter().any(|s| s.env.is_some()) {
        let limit = rt.timeouts.quick;
        let ping = libpod::ping(&rt.socket, limit)
            .await
            .map_err(|e| from_call("ping", limit, e))?;
        check_env_masked(&ping.version, uses)?;
    }
    for s in uses {
        create(rt, &s.name, &s.value).await?;
    }
    Ok(())
}

/// Refuse a create with an env secret on a podman (`version`) whose
/// inspect would show its value in clear.
pub(super) fn check_env_masked(version: &str, secrets: &[SecretUse]) -> Result<(), RuntimeError> {
    let Some(i) = secrets.iter().position(|s| s.env.is_some()) else {
        return Ok(());
    };
    if libpod::major_minor(version).is_some_and(|v| v >= MASKS_ENV_SECRETS_SINCE) {
        return Ok(());
    }
    let (major, minor) = MASKS_ENV_SECRETS_SINCE;
    Err(RuntimeError::Failed(format!(
        "app.container.secrets[{i}].env: podman {version} shows an env secret's value in clear in `podman inspect` (fixed in podman {major}.{minor}); not created: give it as a file (target:) instead, or upgrade podman"
    )))
}

/// The create body's references to the secrets: env secrets as
/// `secret_env` {VAR: secret}, file secrets as `secrets` [{source,
/// target}]. A file is mode 0400, owned by the container's user when it is
/// given as a number (`user: "1000:1000"`); a user given by name is only
/// known inside the image, so there podman's default (0444, root) stays.
pub(super) fn add_to(b: &mut Map<String, Value>, spec: &ContainerSpec, secrets: &[SecretUse]) {
    let env: Map<String, Value> = secrets
        .iter()
        .filter_map(|s| Some((s.env.clone()?, json!(s.name))))
        .collect();
    if !env.is_empty() {
        b.insert("secret_env".into(), Value::Object(env));
    }
    let (uid, gid, mode) = owner(spec.user.as_deref());
    let files: Vec<Secret> = secrets
        .iter()
        .filter_map(|s| {
            Some(Secret {
                source: Some(s.name.clone()),
                target: Some(s.target.clone()?),
                uid,
                gid,
                mode,
            })
        })
        .collect();
    if !files.is_empty() {
        b.insert("secrets".into(), json!(files));
    }
}

/// Owner and mode of a file secret for the container's `user`.
fn owner(user: Option<&str>) -> (Option<u32>, Option<u32>, Option<u32>) {
    let Some(user) = user else {
        return (None, None, Some(0o400));
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    match (u.parse::<u32>(), g.map(str::parse::<u32>)) {
        (Ok(uid), None) => (Some(uid), None, Some(0o400)),
        (Ok(uid), Some(Ok(gid))) => (Some(uid), Some(gid), Some(0o400)),
        _ => (None, None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_secret_should_belong_to_a_numeric_user_only() {
        assert_eq!(owner(None), (None, None, Some(0o400)));
        assert_eq!(owner(Some("1000")), (Some(1000), None, Some(0o400)));
        assert_eq!(owner(Some("1000:50")), (Some(1000), Some(50), Some(0o400)));
        assert_eq!(owner(Some("postgres")), (None, None, None));
        assert_eq!(owner(Some("1000:wheel")), (None, None, None));
    }

    #[test]
    fn an_env_secret_should_be_refused_where_inspect_shows_it() {
        let env = |env: bool| SecretUse {
            name: "podkeeper.web.0.abc".into(),
            env: env.then(|| "DB_PASSWORD".into()),
            target: (!env).then(|| "/run/secrets/x".into()),
            value: SecretValue::from(b"x".to_vec()),
        };
        let e = check_env_masked("4.3.1", &[env(false), env(true)]).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "app.container.secrets[1].env: podman 4.3.1 shows an env secret's value in clear"
            ),
            "{e}"
        );
        assert!(check_env_masked("4.3.1", &[env(false)]).is_ok());
        assert!(check_env_masked("5.3.0", &[env(true)]).is_ok());
        assert!(check_env_masked("5.4.2", &[env(true)]).is_ok());
    }
}
