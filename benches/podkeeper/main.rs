//! The benchmark of issue 5: podkeeper against podman's restart policy, systemd and polling, in one run.
//!
//! Run it through `bash scripts/bench` (sets the host up, builds in release,
//! draws the plot). Cases, selected with `BENCH_CASES` (comma-separated,
//! default all): `recovery`, `companion`, `idle`, `mass`, `health`,
//! `slowstops` and `update` on the real stack, `scale` and `burst` on the simulated
//! runtime. Each case's results are saved as
//! `$BENCH_OUT/parts/<case><BENCH_PART>.json`, so cases run apart
//! (each short enough for the host-wide lock) add up: every run rewrites
//! `$BENCH_OUT/latest.csv`, `table.md` and `targets.md` from all the parts
//! there, and `BENCHMARKS.md` once every case has a part.
//!
//! The stack is the one `scripts/env.sh` was sourced for (`PODKEEPER_STACK`;
//! `scripts/bench` sources it for `BENCH_STACK`, default `root`): its podman
//! CLI and API socket. On `podman5` only `recovery` (without its Quadlet
//! peer) and `slowstops` run: the other real cases need root's systemd user
//! manager, whose Quadlet units run the host's podman 4.3, and the simulated ones
//! have no stack. Parts record their stack and podman; a parts directory
//! holds one stack's (`scripts/bench` keeps another stack's in
//! `$BENCH_OUT/<stack>`), and only root's runs write `BENCHMARKS.md`.
//!
//! Knobs: `BENCH_TRIALS` (30), `BENCH_ROTATE` (containers per subject, 4),
//! `BENCH_POLL_TRIALS` (6), `BENCH_IDLE_SECS` (600), `BENCH_OUT` (bench-results),
//! `BENCH_PART` (a suffix for the part's name), and for `mass`:
//! `BENCH_MASS_APPS` (200), `BENCH_MASS_CONCURRENCY` (1,4,8,16),
//! `BENCH_MASS_SUBJECTS` (podkeeper,podman,quadlet), and for `slowstops`:
//! `BENCH_SLOW_TRIALS` (15), `BENCH_SLOW_APPS` (5), and for `update`:
//! `BENCH_UPDATE_TRIALS` (5), `PODKEEPER_BASELINE_BIN` (the build before
//! issue 23; `scripts/bench` builds it with `scripts/bench-baseline`).

mod companion;
mod health;
mod idle;
mod interrupt;
mod mass;
mod recovery;
mod sampler;
mod sim;
mod slowstops;
mod stack;
mod stats;
mod update;

use std::path::{Path, PathBuf};

use anyhow::Context;

use stats::Results;

/// Read a numeric knob from the environment.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const ALL_CASES: [&str; 9] = [
    "recovery",
    "companion",
    "idle",
    "mass",
    "scale",
    "burst",
    "health",
    "slowstops",
    "update",
];

/// The stacks besides root that the bench runs on.
const OTHER_STACKS: &[&str] = &["podman5"];

/// The last run of each other stack (`$BENCH_OUT/<stack>/`, as
/// `BENCH_STACK=<stack>` writes it): its table and targets, one section each.
fn other_stacks(out: &Path) -> String {
    let mut md = String::new();
    for stack in OTHER_STACKS {
        let dir = out.join(stack);
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        if let (Some(table), Some(targets)) = (read("table.md"), read("targets.md")) {
            // Each file opens with its "Measured on …" line: keep one.
            let targets = targets
                .split_once("\n\n")
                .map_or(targets.as_str(), |(_, t)| t);
            md += &format!(
                "## On stack {stack}\n\n`BENCH_STACK={stack} bash scripts/bench` (results in `{}`):\n\n{table}\n{targets}\n",
                dir.display()
            );
        }
    }
    md
}

/// The cases on the real stack (the others run on the simulated podman).
const REAL_CASES: [&str; 7] = [
    "recovery",
    "companion",
    "idle",
    "mass",
    "health",
    "slowstops",
    "update",
];

/// Why `case` does not run on `stack`, if it does not.
fn unavailable(case: &str, stack: &str) -> Option<&'static str> {
    if stack == "root" {
        return None;
    }
    match case {
        "recovery" | "slowstops" => None,
        "companion" | "idle" => Some(
            "its companions are Quadlet units of root's systemd user manager, which run the host's podman 4.3",
        ),
        "mass" => Some(
            "its Quadlet subject needs root's systemd user manager, whose units run the host's podman 4.3",
        ),
        "health" => Some(
            "it compares with podman's own healthchecks under root's systemd and reads the root stack's API service",
        ),
        "update" => Some(
            "its podman auto-update peer is a Quadlet unit of root's systemd user manager, which runs the host's podman 4.3",
        ),
        _ => Some("it runs on a simulated podman: no stack to measure; it runs with the root stack"),
    }
}

/// Where the figures come from: the podman of each part (simulated ones have none).
fn measured_on(parts: &[(String, Results)]) -> String {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for (name, part) in parts {
        if !REAL_CASES.iter().any(|c| name.starts_with(c)) {
            continue;
        }
        let on = if part.podman.is_empty() {
            "podman not recorded".to_string()
        } else {
            part.podman.clone()
        };
        match groups.iter_mut().find(|(g, _)| *g == on) {
            Some((_, names)) => names.push(name),
            None => groups.push((on, vec![name])),
        }
    }
    match groups.as_slice() {
        [] => "Measured on the simulated podman only.".into(),
        [(on, _)] => format!("Measured on {on}."),
        _ => {
            let each: Vec<String> = groups
                .iter()
                .map(|(on, names)| format!("{on}: {}", names.join(", ")))
                .collect();
            format!("Measured on {}.", each.join("; "))
        }
    }
}

/// Every part in `parts`, in the order of the cases, with its name (no
/// `.json`); an error when one was measured on another stack than `stack`.
fn load_parts(parts: &Path, stack: &str) -> anyhow::Result<Vec<(String, Results)>> {
    let mut names: Vec<String> = std::fs::read_dir(parts)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let rank = |n: &str| {
        ALL_CASES
            .iter()
            .position(|c| n.starts_with(c))
            .unwrap_or(99)
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    let mut loaded = Vec::new();
    for n in &names {
        let path = parts.join(n);
        let part = Results::load(&path).with_context(|| format!("read {}", path.display()))?;
        let of = if part.stack.is_empty() {
            "root"
        } else {
            &part.stack
        };
        // One stack's figures per table: never podman 4 beside podman 5.
        anyhow::ensure!(
            of == stack,
            "{} was measured on stack {of}, this run is on {stack}: keep each stack's parts in its own BENCH_OUT",
            path.display()
        );
        loaded.push((n.trim_end_matches(".json").to_string(), part));
    }
    Ok(loaded)
}

fn main() -> anyhow::Result<()> {
    // The simulated-scale case re-runs this binary per size, so RSS is that size's alone.
    if let Ok(n) = std::env::var("BENCH_SCALE_CHILD") {
        return sim::scale_child(n.parse()?);
    }
    let stack = stack::name();
    anyhow::ensure!(
        stack == "root" || OTHER_STACKS.contains(&stack.as_str()),
        "stack {stack:?}: the bench runs podman and podkeeper as root, on the stacks root and podman5 only"
    );
    let (mut cases, chosen): (Vec<String>, bool) = match std::env::var("BENCH_CASES") {
        Ok(s) if !s.trim().is_empty() && s.trim() != "all" => {
            (s.split(',').map(|c| c.trim().to_string()).collect(), true)
        }
        _ => (ALL_CASES.iter().map(|s| s.to_string()).collect(), false),
    };
    for c in &cases {
        anyhow::ensure!(
            ALL_CASES.contains(&c.as_str()),
            "unknown case {c:?} (known: {ALL_CASES:?})"
        );
    }
    // Cases asked for by name are refused on a stack they cannot run on;
    // of all the cases, those are skipped, each with a line.
    let refused: Vec<String> = cases
        .iter()
        .filter_map(|c| Some(format!("{c}: {}", unavailable(c, &stack)?)))
        .collect();
    if chosen {
        anyhow::ensure!(
            refused.is_empty(),
            "not on stack {stack}:\n  {}\n(BENCH_STACK unset runs every case on root's podman)",
            refused.join("\n  ")
        );
    }
    for r in &refused {
        eprintln!("bench: skipping on stack {stack}: {r}");
    }
    cases.retain(|c| unavailable(c, &stack).is_none());
    let out = PathBuf::from(std::env::var("BENCH_OUT").unwrap_or_else(|_| "bench-results".into()));
    let parts = out.join("parts");
    std::fs::create_dir_all(&parts)?;
    let suffix = std::env::var("BENCH_PART").unwrap_or_default();
    anyhow::ensure!(
        suffix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "BENCH_PART {suffix:?}: only letters, digits and '-'"
    );
    // Before measuring: a part of another stack here would mix two podmans in one table.
    load_parts(&parts, &stack)?;
    let rt = tokio::runtime::Runtime::new()?;
    let real = cases.iter().any(|c| REAL_CASES.contains(&c.as_str()));
    let mut podman = String::new();
    if real {
        interrupt::install(&rt, stack::PREFIX, stack::cleanup)?;
        let version = rt
            .block_on(stack::podman_version())
            .unwrap_or_else(|e| format!("of unknown version ({e:#})"));
        podman = stack::describe(&version);
        eprintln!("bench: {podman}, its CLI {}", stack::cli());
        rt.block_on(stack::cleanup());
    }
    for case in &cases {
        eprintln!("== bench: {case}");
        let mut results = Results::default();
        results.when = jiff::Zoned::now().strftime("%Y-%m-%d %H:%M %Z").to_string();
        results.stack = stack.clone();
        if REAL_CASES.contains(&case.as_str()) {
            results.podman = podman.clone();
        }
        let run = match case.as_str() {
            "recovery" => rt.block_on(recovery::run(&mut results, &out)),
            "companion" => rt.block_on(companion::run(&mut results, &out)),
            "idle" => rt.block_on(idle::run(&mut results, &out)),
            "mass" => rt.block_on(mass::run(&mut results, &out)),
            "scale" => sim::scale(&mut results),
            "burst" => sim::burst(&mut results),
            "health" => rt.block_on(health::run(&mut results, &out)),
            "slowstops" => rt.block_on(slowstops::run(&mut results, &out)),
            "update" => rt.block_on(update::run(&mut results, &out)),
            _ => unreachable!("checked above"),
        };
        if let Err(e) = run {
            // One broken case must not lose the others' numbers.
            eprintln!("!! bench: {case} failed: {e:#}");
            results.note(format!("case {case} failed: {e:#}"));
        }
        // Save after every case: a long run interrupted keeps what it measured.
        results.save(&parts.join(format!("{case}{suffix}.json")))?;
    }
    if real {
        rt.block_on(stack::cleanup());
    }
    let loaded = load_parts(&parts, &stack)?;
    let names: Vec<String> = loaded.iter().map(|(n, _)| n.clone()).collect();
    let on = measured_on(&loaded);
    let mut results = Results::default();
    let mut runs = Vec::new();
    for (n, part) in loaded {
        runs.push(format!("`{n}` {}", part.when));
        results.merge(part);
    }
    if names.iter().any(|n| n.starts_with("mass")) {
        rt.block_on(mass::targets(&mut results));
    }
    results.write_csv(&out.join("latest.csv"))?;
    let table = results.table();
    let targets = results.targets();
    println!("\n{on}\n\n{table}\n{targets}");
    std::fs::write(out.join("table.md"), format!("{on}\n\n{table}"))?;
    std::fs::write(out.join("targets.md"), format!("{on}\n\n{targets}"))?;
    std::fs::write(out.join("analysis.md"), results.analysis())?;
    if stack == "root"
        && ALL_CASES
            .iter()
            .all(|c| names.iter().any(|n| n.starts_with(c)))
    {
        std::fs::write(
            "BENCHMARKS.md",
            results.benchmarks_md(
                &out,
                &format!("{}. {on}", runs.join(", ")),
                &other_stacks(&out),
            ),
        )?;
        eprintln!("wrote BENCHMARKS.md");
    }
    Ok(())
}
