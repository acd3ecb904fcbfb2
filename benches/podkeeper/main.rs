//! The benchmark of issue 5: podkeeper against podman's restart policy, systemd and polling, in one run.
//!
//! Run it through `bash scripts/bench` (sets the host up, builds in release,
//! draws the plot). Cases, selected with `BENCH_CASES` (comma-separated,
//! default all): `recovery`, `companion`, `idle`, `mass` on the real stack,
//! `scale` and `burst` on the simulated runtime. Each case's results are
//! saved as `$BENCH_OUT/parts/<case><BENCH_PART>.json`, so cases run apart
//! (each short enough for the host-wide lock) add up: every run rewrites
//! `$BENCH_OUT/latest.csv`, `table.md` and `targets.md` from all the parts
//! there, and `BENCHMARKS.md` once every case has a part.
//!
//! Knobs: `BENCH_TRIALS` (30), `BENCH_ROTATE` (containers per subject, 4),
//! `BENCH_POLL_TRIALS` (6), `BENCH_IDLE_SECS` (600), `BENCH_OUT` (bench-results),
//! `BENCH_PART` (a suffix for the part's name), and for `mass`:
//! `BENCH_MASS_APPS` (200), `BENCH_MASS_CONCURRENCY` (1,4,8,16),
//! `BENCH_MASS_SUBJECTS` (podkeeper,podman,quadlet).

mod companion;
mod health;
mod idle;
mod interrupt;
mod mass;
mod recovery;
mod sim;
mod stack;
mod stats;

use std::path::PathBuf;

use stats::Results;

/// Read a numeric knob from the environment.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const ALL_CASES: [&str; 7] = [
    "recovery",
    "companion",
    "idle",
    "mass",
    "scale",
    "burst",
    "health",
];

fn main() -> anyhow::Result<()> {
    // The simulated-scale case re-runs this binary per size, so RSS is that size's alone.
    if let Ok(n) = std::env::var("BENCH_SCALE_CHILD") {
        return sim::scale_child(n.parse()?);
    }
    let cases: Vec<String> = match std::env::var("BENCH_CASES") {
        Ok(s) if !s.trim().is_empty() && s.trim() != "all" => {
            s.split(',').map(|c| c.trim().to_string()).collect()
        }
        _ => ALL_CASES.iter().map(|s| s.to_string()).collect(),
    };
    for c in &cases {
        anyhow::ensure!(
            ALL_CASES.contains(&c.as_str()),
            "unknown case {c:?} (known: {ALL_CASES:?})"
        );
    }
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
    let rt = tokio::runtime::Runtime::new()?;
    let real = cases
        .iter()
        .any(|c| ["recovery", "companion", "idle", "mass", "health"].contains(&c.as_str()));
    if real {
        interrupt::install(&rt)?;
        rt.block_on(stack::cleanup());
    }
    for case in &cases {
        eprintln!("== bench: {case}");
        let mut results = Results::default();
        results.when = chrono::Local::now().format("%Y-%m-%d %H:%M %Z").to_string();
        let run = match case.as_str() {
            "recovery" => rt.block_on(recovery::run(&mut results, &out)),
            "companion" => rt.block_on(companion::run(&mut results, &out)),
            "idle" => rt.block_on(idle::run(&mut results, &out)),
            "mass" => rt.block_on(mass::run(&mut results, &out)),
            "scale" => sim::scale(&mut results),
            "burst" => sim::burst(&mut results),
            "health" => rt.block_on(health::run(&mut results, &out)),
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
    // Every part there, in the order of the cases.
    let mut names: Vec<String> = std::fs::read_dir(&parts)?
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
    let mut results = Results::default();
    let mut runs = Vec::new();
    for n in &names {
        let part = Results::load(&parts.join(n))?;
        runs.push(format!("`{}` {}", n.trim_end_matches(".json"), part.when));
        results.merge(part);
    }
    if names.iter().any(|n| n.starts_with("mass")) {
        rt.block_on(mass::targets(&mut results));
    }
    results.write_csv(&out.join("latest.csv"))?;
    let table = results.table();
    let targets = results.targets();
    println!("\n{table}\n{targets}");
    std::fs::write(out.join("table.md"), &table)?;
    std::fs::write(out.join("targets.md"), &targets)?;
    std::fs::write(out.join("analysis.md"), results.analysis())?;
    if ALL_CASES
        .iter()
        .all(|c| names.iter().any(|n| n.starts_with(c)))
    {
        std::fs::write(
            "BENCHMARKS.md",
            results.benchmarks_md(&out, &runs.join(", ")),
        )?;
        eprintln!("wrote BENCHMARKS.md");
    }
    Ok(())
}
