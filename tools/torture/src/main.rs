//! `rill-torture`: kill -9 a Rill broker again and again under idempotent
//! acks=all producers and a consumer group, then check that nothing
//! acknowledged was lost, duplicated or reordered; or, with `--mode eos`,
//! under an exactly-once consume-transform-produce processor that is
//! killed too, then check that every input has exactly one committed
//! result. See the crate's docs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use rill_torture::{Config, EosConfig, EosReport, ProcessorCommand, Report};

/// What the run tortures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Idempotent producers and a consumer group: nothing acknowledged lost.
    Log,
    /// A transactional consume-transform-produce processor, itself killed
    /// too: every input's result exactly once under read_committed.
    Eos,
}

#[derive(Parser, Debug)]
#[command(
    name = "rill-torture",
    about = "Kill -9 torture of a Rill broker: idempotent acks=all producers and a consumer group while the broker is SIGKILLed at seeded random points",
    after_help = "Examples:\n  cargo build --release -p rill -p rill-torture\n  target/release/rill-torture --cycles 200\n  target/release/rill-torture --cycles 20 --seed 1234   # replay a run\n  target/release/rill-torture --power-cut --cycles 100   # as root, with /dev/fuse\n  target/release/rill-torture --power-cut --cycles 5 --set log.flush.policy=none   # the control: loss must be found\n  target/release/rill-torture --mode eos --cycles 10 --processor-kills 10 --records 50000"
)]
struct Args {
    #[arg(long, value_enum, default_value_t = Mode::Log)]
    mode: Mode,
    /// Kill -9 and restart the broker this many times.
    #[arg(long, default_value_t = 20)]
    cycles: u32,
    /// With --mode eos: input records, fed at --feed-rate while the kills go on.
    #[arg(long, default_value_t = 20_000)]
    records: u64,
    /// With --mode eos: input records fed per second while the kills go on.
    #[arg(long, default_value_t = 1_000)]
    feed_rate: u64,
    /// With --mode eos: kill -9 and restart the processor this many times.
    #[arg(long, default_value_t = 5)]
    processor_kills: u32,
    /// With --mode eos: pause the processor (SIGSTOP), start a new one,
    /// and resume the paused one, which must be fenced, this many times.
    #[arg(long, default_value_t = 2)]
    zombies: u32,
    /// With --mode eos: pause the processor past its transaction timeout
    /// (--stall-ms, --transaction-timeout-ms) and resume it, this many times.
    #[arg(long, default_value_t = 1)]
    stalls: u32,
    /// With --mode eos: how long a stall pauses the processor.
    #[arg(long, default_value_t = 12_000)]
    stall_ms: u64,
    /// With --mode eos: the processor's transaction.timeout.ms.
    #[arg(long, default_value_t = 10_000)]
    transaction_timeout_ms: u64,
    /// With --mode eos: input records per transaction, at most.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// The seed of the kill points [default: from the clock, printed].
    #[arg(long)]
    seed: Option<u64>,
    /// The `rill` binary [default: `rill` beside this binary].
    #[arg(long)]
    rill: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    #[arg(long, default_value_t = 2)]
    producers: u32,
    /// Records per second of each producer.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Consumers in the group.
    #[arg(long, default_value_t = 2)]
    members: u32,
    /// The shortest time a started broker runs before its kill.
    #[arg(long, default_value_t = 200)]
    kill_min_ms: u64,
    /// The longest time a started broker runs before its kill.
    #[arg(long, default_value_t = 1_500)]
    kill_max_ms: u64,
    /// The chance that a restart is killed again while it recovers.
    #[arg(long, default_value_t = 0.15)]
    kill_while_starting: f64,
    /// Keep the broker's data and log here instead of a temporary directory.
    #[arg(long)]
    data: Option<PathBuf>,
    /// More arguments for `rill broker` (repeatable), e.g. --broker-arg=--set --broker-arg=log.flush.threads=1
    #[arg(long = "broker-arg", allow_hyphen_values = true)]
    broker_args: Vec<String>,
    /// A broker property, passed as `rill broker --set KEY=VALUE` (repeatable), e.g. --set log.flush.policy=none
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Put the broker's data on the power-cut file system (tools/powercut-fs;
    /// root and /dev/fuse needed) and follow every kill with a power cut:
    /// whatever no fsync made durable is dropped.
    #[arg(long)]
    power_cut: bool,
    /// With --power-cut: the chance that a cycle stops the load, waits for
    /// every record to be acknowledged, and cuts while idle.
    #[arg(long, default_value_t = 0.2)]
    idle_chance: f64,
    /// With --power-cut: the chance that a cut tears one file's pending
    /// pages instead of dropping them all.
    #[arg(long, default_value_t = 0.3)]
    tear_chance: f64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    // A processor life of --mode eos is this binary, started again.
    if let Some(code) = rill_torture::run_processor_if_asked() {
        return ExitCode::from(code);
    }
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("rill-torture: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<bool> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let rill = match args.rill.clone() {
        Some(rill) => rill,
        None => std::env::current_exe()?
            .parent()
            .context("the directory of this binary")?
            .join("rill"),
    };
    if args.mode == Mode::Eos {
        return run_eos(args, rill, seed);
    }
    eprintln!(
        "rill-torture: seed {seed} (replay with --seed {seed}), {} cycles{}",
        args.cycles,
        if args.power_cut {
            ", each kill followed by a power cut"
        } else {
            ""
        }
    );
    let mut config = Config::new(rill, args.cycles, seed);
    config.partitions = args.partitions;
    config.producers = args.producers;
    config.rate_per_producer = args.rate;
    config.value_bytes = args.size;
    config.members = args.members;
    config.kill_after_ms = (args.kill_min_ms, args.kill_max_ms);
    config.kill_while_starting = args.kill_while_starting;
    config.data = args.data;
    config.broker_args.extend(args.broker_args);
    for assignment in args.set {
        config.broker_args.push("--set".into());
        config.broker_args.push(assignment);
    }
    if args.power_cut {
        config.power_cut = Some(rill_torture::PowerCut {
            idle_chance: args.idle_chance,
            tear_chance: args.tear_chance,
            ..rill_torture::PowerCut::default()
        });
    }
    let report = rill_torture::run(&config)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write_summary(&mut out, &report)?;
    }
    Ok(report.problem_count == 0)
}

fn run_eos(args: Args, rill: PathBuf, seed: u64) -> Result<bool> {
    eprintln!(
        "rill-torture: eos, seed {seed} (replay with --seed {seed}), {} broker kills, {} processor kills, {} zombies, {} records",
        args.cycles, args.processor_kills, args.zombies, args.records
    );
    let processor = ProcessorCommand {
        program: std::env::current_exe()?,
        args: Vec::new(),
    };
    let mut config = EosConfig::new(rill, processor, seed);
    config.partitions = args.partitions;
    config.records = args.records;
    config.feed_per_sec = args.feed_rate;
    config.batch_records_max = args.batch;
    config.broker_kills = args.cycles;
    config.processor_kills = args.processor_kills;
    config.zombies = args.zombies;
    config.stalls = args.stalls;
    config.stall_ms = args.stall_ms;
    config.transaction_timeout_ms = args.transaction_timeout_ms;
    config.kill_after_ms = (args.kill_min_ms, args.kill_max_ms);
    config.kill_while_starting = args.kill_while_starting;
    config.data = args.data;
    config.broker_args.extend(args.broker_args);
    for assignment in args.set {
        config.broker_args.push("--set".into());
        config.broker_args.push(assignment);
    }
    let report = rill_torture::run_eos(&config)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write_eos_summary(&mut out, &report)?;
    }
    Ok(report.problem_count == 0)
}

fn write_eos_summary(out: &mut impl Write, report: &EosReport) -> Result<()> {
    writeln!(
        out,
        "seed {}: {} broker kills ({} of them killed again while recovering), {} processor kills, {} processor lives ({} ended on their own: {:?}), {} partitions",
        report.seed,
        report.broker_kills,
        report.killed_while_starting,
        report.processor_kills,
        report.processor_lives,
        report.processor_exits.values().sum::<u64>(),
        report.processor_exits,
        report.partitions
    )?;
    writeln!(
        out,
        "zombies (paused while a new life started, then resumed): {}, {} of them fenced; ended: {:?}; stalls past the transaction timeout: {}",
        report.zombies, report.zombies_fenced, report.zombie_exits, report.stalls
    )?;
    writeln!(
        out,
        "input: {} records, {} acknowledged, {} failed, {} in the log; transactions logged: {} committed, {} aborted",
        report.records,
        report.input_acked,
        report.input_failed.values().sum::<u64>(),
        report.input_in_log,
        report.transactions_committed,
        report.transactions_aborted
    )?;
    writeln!(
        out,
        "output: {} records read_committed, {} read_uncommitted (aborted ones included); all processed {} ms after the last kill",
        report.output_committed, report.output_all, report.finish_ms
    )?;
    writeln!(
        out,
        "recovery (spawn to listening) ms: {}",
        percentiles(&report.recovery_ms)
    )?;
    if report.problem_count == 0 {
        writeln!(
            out,
            "no problems: every input's result exactly once; the group committed every input partition's end"
        )?;
    } else {
        writeln!(
            out,
            "{} PROBLEMS: {} missing, {} duplicated, {} foreign, {} committed offsets wrong, {} acknowledged inputs lost",
            report.problem_count,
            report.missing,
            report.duplicated,
            report.foreign,
            report.offsets_wrong,
            report.input_lost
        )?;
        for problem in &report.problems {
            writeln!(out, "  {problem}")?;
        }
    }
    if let Some(kept) = &report.kept {
        writeln!(out, "data and logs kept in {}", kept.display())?;
    }
    Ok(())
}

fn write_summary(out: &mut impl Write, report: &Report) -> Result<()> {
    writeln!(
        out,
        "seed {}: {} kill -9 cycles ({} of them killed again while recovering), {} partitions, {} producers, {} group members",
        report.seed,
        report.cycles,
        report.killed_while_starting,
        report.partitions,
        report.producers,
        report.members
    )?;
    writeln!(
        out,
        "records: {} sent, {} acknowledged, {} failed, {} in the log; group: {} consumed, {} commits acknowledged",
        report.records_sent,
        report.records_acked,
        report.records_failed.values().sum::<u64>(),
        report.records_in_log,
        report.records_consumed_by_group,
        report.commits_acked
    )?;
    if report.power_cuts > 0 {
        writeln!(
            out,
            "power cuts: {} ({} while idle, {} during recovery, {} tearing a file); dropped: {} files put back to their last fsync ({} pages), {} directory changes",
            report.power_cuts,
            report.power_cuts_idle,
            report.power_cuts_in_recovery,
            report.torn_files,
            report.cut_files_reverted,
            report.cut_pages_dropped,
            report.cut_dir_ops_dropped
        )?;
    }
    writeln!(
        out,
        "recovery (spawn to listening) ms: {}",
        percentiles(&report.recovery_ms)
    )?;
    writeln!(
        out,
        "listening to next acknowledgement ms: {}",
        percentiles(&report.first_ack_ms)
    )?;
    for (error, count) in &report.records_failed {
        writeln!(out, "delivery failed {count} times: {error}")?;
    }
    if report.problem_count == 0 {
        writeln!(
            out,
            "no problems: every acknowledged record once, in order; no committed offset moved back"
        )?;
    } else {
        writeln!(
            out,
            "{} PROBLEMS: {} acknowledged records missing, {} committed offsets moved back, {} producer fatal errors",
            report.problem_count,
            report.records_missing,
            report.commits_moved_back,
            report.producer_fatal_errors
        )?;
        for problem in &report.problems {
            writeln!(out, "  {problem}")?;
        }
    }
    if let Some(kept) = &report.kept {
        writeln!(out, "data and broker log kept in {}", kept.display())?;
    }
    Ok(())
}

fn percentiles(values: &[u64]) -> String {
    if values.is_empty() {
        return "none".into();
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    format!(
        "min {}  p50 {}  p90 {}  p99 {}  max {}  (n={})",
        sorted[0],
        at(0.5),
        at(0.9),
        at(0.99),
        sorted[sorted.len() - 1],
        sorted.len()
    )
}
