//! A short kill -9 torture run (tools/torture) against the real binary:
//! idempotent acks=all producers and a consumer group while the broker is
//! SIGKILLed and restarted; every acknowledged record must be there once
//! and in order, and no committed offset may move back. The long run and
//! its figures are in docs/reliability.md.

use std::path::PathBuf;

#[test]
fn kill_9_cycles_lose_nothing_acknowledged() {
    let seed = std::env::var("RILL_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    eprintln!("torture seed {seed} (replay with RILL_TORTURE_SEED={seed})");
    let mut config = rill_torture::Config::new(PathBuf::from(env!("CARGO_BIN_EXE_rill")), 4, seed);
    config.kill_after_ms = (100, 600);
    config.kill_while_starting = 0.25;
    let report = rill_torture::run(&config).unwrap();
    assert!(
        report.problems.is_empty(),
        "{} problems, data kept in {:?}: {:#?}",
        report.problem_count,
        report.kept,
        report.problems
    );
    assert_eq!(
        report.recovery_ms.len(),
        4,
        "every kill was followed by a restart"
    );
    assert!(report.records_acked > 0, "{report:?}");
    assert!(
        report.records_failed.is_empty(),
        "records failed although the broker always came back: {:?}",
        report.records_failed
    );
    assert!(report.records_in_log >= report.records_acked, "{report:?}");
    assert!(report.commits_acked > 0, "{report:?}");
}
