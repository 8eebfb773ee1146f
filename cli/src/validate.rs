//! `tkt validate FILE...`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use tektite_api::{Source, load, validate};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// YAML files, each with one or more documents separated by `---`.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Do not print notes (conversions made, references that could not be checked).
    #[arg(long, short)]
    quiet: bool,
}

/// Exit code when any document is invalid (or a file cannot be read).
const INVALID: u8 = 2;

pub fn run(args: &Args) -> ExitCode {
    let (texts, cannot) = crate::files::read_all(&args.files);
    for line in &cannot {
        println!("{line}");
    }
    let unreadable = cannot.len();
    let sources: Vec<Source<'_>> = texts
        .iter()
        .map(|(name, text)| Source { name, text })
        .collect();
    let mut docs = load(&sources);
    validate::validate(&mut docs);
    tracing::debug!(documents = docs.len(), files = sources.len(), "validated");

    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let (invalid, problems) = crate::files::report(&docs, &sources, args.quiet, &mut out, &mut err);
    if docs.is_empty() && unreadable == 0 {
        let _ = writeln!(err, "no documents found in {} file(s)", args.files.len());
        return ExitCode::from(INVALID);
    }
    if invalid == 0 && unreadable == 0 {
        let _ = writeln!(err, "{} document(s) valid", docs.len());
        ExitCode::SUCCESS
    } else {
        let _ = writeln!(
            err,
            "{problems} problem(s) in {invalid} of {} document(s){}",
            docs.len(),
            if unreadable > 0 {
                format!("; {unreadable} file(s) unreadable")
            } else {
                String::new()
            }
        );
        ExitCode::from(INVALID)
    }
}
