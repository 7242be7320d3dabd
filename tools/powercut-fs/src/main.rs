//! `rill-powercut-fs`: mounts the power-cut file system and takes commands
//! (cut, status, unmount) on a Unix socket, so a shell script can run a
//! program on it, kill the program, cut the power and look. See the
//! library's docs for what a cut drops.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use rill_powercut_fs::{CutReport, PowerCutFs, Tear};

/// Longest command line a client may send.
const COMMAND_BYTES_MAX: u64 = 4096;

#[derive(Parser, Debug)]
#[command(
    name = "rill-powercut-fs",
    about = "A FUSE file system that keeps what no fsync made durable in memory, and drops it on command: a power cut",
    after_help = "Example (as root):\n  rill-powercut-fs mount --backing /tmp/b --mountpoint /tmp/m --control /tmp/pc.sock &\n  ... run a program on /tmp/m, kill -9 it ...\n  rill-powercut-fs cut --control /tmp/pc.sock --tear-seed 7\n  rill-powercut-fs unmount --control /tmp/pc.sock\nIf the server itself dies, the mount is left dangling: umount /tmp/m."
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Mount, and serve commands on the control socket until `unmount`.
    Mount {
        /// The directory whose content the file system serves (and changes).
        #[arg(long)]
        backing: PathBuf,
        /// An empty directory to mount on.
        #[arg(long)]
        mountpoint: PathBuf,
        /// The Unix socket to take commands on.
        #[arg(long)]
        control: PathBuf,
    },
    /// Cut the power: unmount (nothing may have files open there), drop
    /// everything not durable, mount again.
    Cut {
        #[arg(long)]
        control: PathBuf,
        /// Tear one file's pending writes (a file drawn with this seed, or
        /// --tear-file) instead of dropping them all.
        #[arg(long)]
        tear_seed: Option<u64>,
        /// The file to tear, relative to the mount's root.
        #[arg(long, requires = "tear_seed")]
        tear_file: Option<PathBuf>,
    },
    /// What a cut now would drop.
    Status {
        #[arg(long)]
        control: PathBuf,
    },
    /// Unmount, keeping everything (a clean unmount), and stop the server.
    Unmount {
        #[arg(long)]
        control: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rill-powercut-fs: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Mount {
            backing,
            mountpoint,
            control,
        } => serve(&backing, &mountpoint, &control),
        Command::Cut {
            control,
            tear_seed,
            tear_file,
        } => {
            let command = match (tear_seed, tear_file) {
                (None, _) => "cut".to_string(),
                (Some(seed), None) => format!("cut {seed}"),
                (Some(seed), Some(file)) => format!("cut {seed} {}", file.display()),
            };
            ask(&control, &command)
        }
        Command::Status { control } => ask(&control, "status"),
        Command::Unmount { control } => ask(&control, "unmount"),
    }
}

/// Sends one command and prints the answer; an answer of "error ..." is
/// this command's failure.
fn ask(control: &Path, command: &str) -> Result<()> {
    let mut stream = UnixStream::connect(control)
        .with_context(|| format!("connecting to {}", control.display()))?;
    writeln!(stream, "{command}")?;
    let mut answer = String::new();
    stream
        .take(COMMAND_BYTES_MAX * 16)
        .read_to_string(&mut answer)?;
    let answer = answer.trim_end();
    match answer.strip_prefix("error ") {
        Some(error) => bail!("{error}"),
        None => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", answer.strip_prefix("ok ").unwrap_or(answer))?;
            Ok(())
        }
    }
}

fn serve(backing: &Path, mountpoint: &Path, control: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(control) {
        if meta.file_type().is_socket() && UnixStream::connect(control).is_err() {
            // A socket nobody serves: left by a server that died.
            std::fs::remove_file(control)?;
        }
    }
    let listener =
        UnixListener::bind(control).with_context(|| format!("binding {}", control.display()))?;
    let mut fs = PowerCutFs::mount(backing, mountpoint)?;
    eprintln!(
        "rill-powercut-fs: {} mounted over {}; commands on {}",
        fs.mountpoint().display(),
        fs.backing().display(),
        control.display()
    );
    let result = serve_commands(&listener, &mut fs);
    // The socket is ours whatever happened.
    let _ = std::fs::remove_file(control);
    result?;
    fs.unmount()?;
    eprintln!("rill-powercut-fs: unmounted");
    Ok(())
}

fn serve_commands(listener: &UnixListener, fs: &mut PowerCutFs) -> Result<()> {
    for stream in listener.incoming() {
        let mut stream = stream?;
        let mut line = String::new();
        BufReader::new(&stream)
            .take(COMMAND_BYTES_MAX)
            .read_line(&mut line)?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["unmount"] => {
                // The client hears of a failure of the unmount itself from
                // the server's exit.
                let _ = writeln!(stream, "ok unmounting");
                return Ok(());
            }
            ["status"] => {
                let p = fs.pending();
                Ok(format!(
                    "pending: {} files written since their fsync ({} bytes of undo), {} directory changes since their directory's fsync; since the mount: {} writes, {} file syncs, {} directory syncs",
                    p.files,
                    p.undo_memory_bytes,
                    p.dir_ops,
                    p.counters.writes,
                    p.counters.file_syncs,
                    p.counters.dir_syncs
                ))
            }
            ["cut"] => cut(fs, &Tear::None),
            ["cut", seed] => match seed.parse() {
                Ok(seed) => cut(fs, &Tear::RandomFile { seed }),
                Err(_) => Err(format!("not a seed: {seed}")),
            },
            ["cut", seed, path] => match seed.parse() {
                Ok(seed) => cut(
                    fs,
                    &Tear::File {
                        path: PathBuf::from(path),
                        seed,
                    },
                ),
                Err(_) => Err(format!("not a seed: {seed}")),
            },
            _ => Err(format!(
                "unknown command {:?}: cut [SEED [FILE]], status, unmount",
                line.trim()
            )),
        };
        // A client that went away misses its answer, nothing more.
        let _ = match answer {
            Ok(text) => writeln!(stream, "ok {text}"),
            Err(text) => writeln!(stream, "error {text}"),
        };
    }
    Ok(())
}

fn cut(fs: &mut PowerCutFs, tear: &Tear) -> std::result::Result<String, String> {
    fs.power_cut(tear)
        .map(|report| describe(&report))
        .map_err(|e| e.to_string())
}

fn describe(report: &CutReport) -> String {
    let mut text = format!(
        "power cut: {} files put back to their last fsync ({} pages dropped), {} directory changes undone, {} entries left",
        report.files_reverted, report.pages_dropped, report.dir_ops_dropped, report.entries
    );
    if let Some(torn) = &report.torn {
        text.push_str(&format!(
            "; tore {} ({:?}: kept {} of {} pending pages, {} bytes long)",
            torn.path.display(),
            torn.mode,
            torn.kept_pages,
            torn.pending_pages,
            torn.len
        ));
    }
    text
}
