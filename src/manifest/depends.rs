//! `depends_on` and `state`: what an app waits for and whether it should run, and the rules that span the whole apps directory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::options::NetworkMode;
use super::{LoadedApp, ManifestError, Restart};

/// One dependency: the app `app` must meet `condition` first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub app: String,
    #[serde(default)]
    pub condition: Condition,
}

/// What a dependency must be before its dependents start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    #[default]
    Running,
    Healthy,
    /// Its container exited 0: a one-shot job (a migration) is done.
    Completed,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Running => "running",
            Condition::Healthy => "healthy",
            Condition::Completed => "completed",
        }
    }
}

/// The state an app is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    /// The container exists and runs (the default).
    #[default]
    Running,
    /// The container exists and is kept stopped.
    Stopped,
}

/// The rules on `depends_on` that need every app: a dependency names an app
/// that exists, is not the app itself, is in no cycle, and `healthy` only
/// names an app with a healthcheck, `completed` one whose restart is
/// `on-failure` or `never`. Each broken dependency is reported and
/// dropped: the app itself stays (a typo in one edge must not cost a
/// running app), it just does not wait for that dependency.
pub fn check_dependencies(apps: &mut BTreeMap<String, LoadedApp>) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    let ids: Vec<String> = apps.keys().cloned().collect();
    for id in &ids {
        let app = &apps[id];
        let mut keep = Vec::new();
        for (i, dep) in app.app.depends_on.iter().enumerate() {
            let field = format!("app.depends_on[{i}].app");
            let why = if dep.app == *id {
                Some(format!(
                    "{:?} is this app itself (allowed: another app's id)",
                    dep.app
                ))
            } else if let Some(target) = apps.get(&dep.app) {
                match dep.condition {
                    Condition::Healthy if target.app.container.healthcheck.is_none() => Some(format!(
                        "condition healthy, but app {:?} has no healthcheck (allowed: condition running, or give {0:?} a container.healthcheck)",
                        dep.app
                    )),
                    // An `always` app is restarted on exit: it never stays completed.
                    Condition::Completed if target.app.restart == Restart::Always => Some(format!(
                        "condition completed, but app {:?} has restart: always (allowed: condition running, or give {0:?} restart: on-failure or never)",
                        dep.app
                    )),
                    _ => None,
                }
            } else {
                Some(format!(
                    "{:?} is no app in the apps directory (allowed: the id of a valid app)",
                    super::excerpt::excerpt(&dep.app, super::excerpt::EXCERPT_CHARS)
                ))
            };
            match why {
                Some(message) => errors.push(ManifestError {
                    file: app.file.clone(),
                    field: Some(field),
                    message: format!("{message}; the app does not wait for it"),
                    stands: None,
                }),
                None => keep.push(dep.clone()),
            }
        }
        // `network: app:<id>` joins that app's container: without the app
        // there is nothing to join. The app stays declared (its spec is
        // what it is) and cannot start until the other app is.
        if let Some(NetworkMode::App(other)) = app.app.container.network_mode() {
            if !apps.contains_key(&other) {
                errors.push(ManifestError {
                    file: app.file.clone(),
                    field: Some("app.container.network".into()),
                    message: format!(
                        "{other:?} is no app in the apps directory (allowed: app:<the id of a valid app>); the app cannot start until it is declared"
                    ),
                    stands: None,
                });
            }
        }
        let app = apps.get_mut(id).expect("listed above");
        app.app.depends_on = keep;
    }
    // Cycles, among the edges left: report each once and drop its closing edge.
    while let Some(cycle) = find_cycle(apps) {
        let (from, to) = (&cycle[cycle.len() - 2], &cycle[cycle.len() - 1]);
        let app = apps.get_mut(from).expect("in the cycle");
        let i = app
            .app
            .depends_on
            .iter()
            .position(|d| d.app == *to)
            .expect("edge of the cycle");
        errors.push(ManifestError {
            file: app.file.clone(),
            field: Some(format!("app.depends_on[{i}].app")),
            message: format!(
                "dependency cycle {} (allowed: dependencies without cycles); the app does not wait for {to:?}",
                cycle.join(" → ")
            ),
            stands: None,
        });
        app.app.depends_on.remove(i);
    }
    errors
}

/// A cycle as the path `a → b → … → a`, if any.
fn find_cycle(apps: &BTreeMap<String, LoadedApp>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark: BTreeMap<&str, Mark> = apps.keys().map(|k| (k.as_str(), Mark::New)).collect();
    for start in apps.keys() {
        if mark[start.as_str()] != Mark::New {
            continue;
        }
        // Iterative depth-first search: (node, next edge to follow).
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        mark.insert(start, Mark::Open);
        while let Some((node, edge)) = stack.pop() {
            let deps = &apps[node].app.depends_on;
            if edge >= deps.len() {
                mark.insert(node, Mark::Done);
                continue;
            }
            stack.push((node, edge + 1));
            let next = deps[edge].app.as_str();
            match mark.get(next).copied() {
                Some(Mark::New) => {
                    mark.insert(next, Mark::Open);
                    stack.push((next, 0));
                }
                Some(Mark::Open) => {
                    let at = stack.iter().position(|(n, _)| *n == next).expect("open");
                    let mut path: Vec<String> =
                        stack[at..].iter().map(|(n, _)| n.to_string()).collect();
                    path.push(next.to_string());
                    return Some(path);
                }
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_manifest;
    use std::path::Path;

    fn set(manifests: &[&str]) -> BTreeMap<String, LoadedApp> {
        manifests
            .iter()
            .map(|text| {
                let app = parse_manifest(Path::new("x.yaml"), text).unwrap();
                let file = format!("apps/{}.yaml", app.id).into();
                (
                    app.id.clone(),
                    LoadedApp::new(file, app, Default::default()),
                )
            })
            .collect()
    }

    fn app(id: &str, deps: &[(&str, &str)], healthcheck: bool) -> String {
        let mut s = format!("app:\n  id: {id}\n  container:\n    image: x\n");
        if healthcheck {
            s += "    healthcheck:\n      command: [/bin/true]\n";
        }
        if !deps.is_empty() {
            s += "  depends_on:\n";
            for (d, c) in deps {
                s += &format!("    - app: {d}\n      condition: {c}\n");
            }
        }
        s
    }

    #[test]
    fn a_dependency_on_an_unknown_app_should_be_refused() {
        let mut apps = set(&[&app("web", &[("dbb", "running")], false)]);
        let e = check_dependencies(&mut apps);
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].to_string(),
            "apps/web.yaml: app.depends_on[0].app: \"dbb\" is no app in the apps directory (allowed: the id of a valid app); the app does not wait for it"
        );
        assert!(apps["web"].app.depends_on.is_empty());
    }

    #[test]
    fn an_app_depending_on_itself_should_be_refused() {
        let mut apps = set(&[&app("web", &[("web", "running")], false)]);
        let e = check_dependencies(&mut apps);
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("this app itself"), "{}", e[0]);
    }

    #[test]
    fn healthy_should_need_a_healthcheck() {
        let mut apps = set(&[
            &app("web", &[("db", "healthy")], false),
            &app("db", &[], false),
        ]);
        let e = check_dependencies(&mut apps);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].message.contains("app \"db\" has no healthcheck"),
            "{}",
            e[0]
        );
        let mut apps = set(&[
            &app("web", &[("db", "healthy")], false),
            &app("db", &[], true),
        ]);
        assert!(check_dependencies(&mut apps).is_empty());
        assert_eq!(apps["web"].app.depends_on.len(), 1);
    }

    #[test]
    fn completed_should_need_an_app_that_stays_exited() {
        let job = |restart: &str| format!("{}  restart: {restart}\n", app("migrate", &[], false));
        let web = app("web", &[("migrate", "completed")], false);
        let mut apps = set(&[&web, &job("always")]);
        let e = check_dependencies(&mut apps);
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].to_string(),
            "apps/web.yaml: app.depends_on[0].app: condition completed, but app \"migrate\" has restart: always (allowed: condition running, or give \"migrate\" restart: on-failure or never); the app does not wait for it"
        );
        assert!(apps["web"].app.depends_on.is_empty());
        for restart in ["on-failure", "never"] {
            let mut apps = set(&[&web, &job(restart)]);
            assert!(check_dependencies(&mut apps).is_empty(), "{restart}");
            assert_eq!(apps["web"].app.depends_on.len(), 1);
        }
    }

    #[test]
    fn a_network_of_an_app_not_declared_should_be_named() {
        let vpn = |net: &str| format!("{}    network: {net}\n", app("web", &[], false));
        let mut apps = set(&[&vpn("app:vpn")]);
        let e = check_dependencies(&mut apps);
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].to_string(),
            "apps/web.yaml: app.container.network: \"vpn\" is no app in the apps directory (allowed: app:<the id of a valid app>); the app cannot start until it is declared"
        );
        assert!(apps.contains_key("web"), "the app stays declared");
        let mut apps = set(&[&vpn("app:vpn"), &app("vpn", &[], false)]);
        assert!(check_dependencies(&mut apps).is_empty());
    }

    #[test]
    fn a_cycle_should_be_named_and_broken() {
        let mut apps = set(&[
            &app("a", &[("b", "running")], false),
            &app("b", &[("c", "running")], false),
            &app("c", &[("a", "running")], false),
            &app("d", &[("a", "running")], false),
        ]);
        let e = check_dependencies(&mut apps);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].message.contains("dependency cycle a → b → c → a"),
            "{}",
            e[0]
        );
        assert_eq!(e[0].file, Path::new("apps/c.yaml"));
        assert!(apps["c"].app.depends_on.is_empty());
        assert_eq!(apps["d"].app.depends_on.len(), 1);
        assert!(find_cycle(&apps).is_none());
    }

    #[test]
    fn a_chain_should_pass() {
        let mut apps = set(&[
            &app("db", &[], true),
            &app("api", &[("db", "healthy")], true),
            &app("web", &[("api", "healthy")], false),
        ]);
        assert!(check_dependencies(&mut apps).is_empty());
    }
}
