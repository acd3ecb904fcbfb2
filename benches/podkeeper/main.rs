//! The benchmark of issue 5: podkeeper against podman's restart policy, systemd and polling, in one run.
//!
//! Run it through `bash scripts/bench` (sets the host up, builds in release,
//! draws the plot). Cases, selected with `BENCH_CASES` (comma-separated,
//! default all): `recovery`, `companion`, `idle` on the real stack, `scale`
//! and `burst` on the simulated runtime. Every sample goes to
//! `$BENCH_OUT/latest.csv`; the table goes to stdout and `$BENCH_OUT/table.md`;
//! a full run also rewrites `BENCHMARKS.md`.
//!
//! Knobs: `BENCH_TRIALS` (20), `BENCH_ROTATE` (containers per subject, 4),
//! `BENCH_POLL_TRIALS` (6), `BENCH_IDLE_SECS` (600), `BENCH_OUT` (bench-results).

mod companion;
mod health;
mod idle;
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

const ALL_CASES: [&str; 6] = ["recovery", "companion", "idle", "scale", "burst", "health"];

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
    std::fs::create_dir_all(&out)?;
    let mut results = Results::default();
    let rt = tokio::runtime::Runtime::new()?;
    let real = cases
        .iter()
        .any(|c| ["recovery", "companion", "idle", "health"].contains(&c.as_str()));
    if real {
        rt.block_on(stack::cleanup());
    }
    for case in &cases {
        eprintln!("== bench: {case}");
        let run = match case.as_str() {
            "recovery" => rt.block_on(recovery::run(&mut results, &out)),
            "companion" => rt.block_on(companion::run(&mut results, &out)),
            "idle" => rt.block_on(idle::run(&mut results, &out)),
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
        results.write_csv(&out.join("latest.csv"))?;
    }
    if real {
        rt.block_on(stack::cleanup());
    }
    let table = results.table();
    let targets = results.targets();
    println!("\n{table}\n{targets}");
    std::fs::write(out.join("table.md"), &table)?;
    std::fs::write(out.join("targets.md"), &targets)?;
    std::fs::write(out.join("analysis.md"), results.analysis())?;
    if cases.len() == ALL_CASES.len() {
        std::fs::write("BENCHMARKS.md", results.benchmarks_md(&out))?;
        eprintln!("wrote BENCHMARKS.md");
    }
    Ok(())
}
