//! Reading the YAML files a command is given (each whole, as UTF-8 text, or a line saying
//! why not: `FILE: cannot read: ...`), and reporting what the loader and the validator
//! found in them (`FILE: Kind/name: field.path: message`).

use std::io::Write;
use std::path::PathBuf;

use tektite_api::{Document, Source};

/// The files' names and texts, and a message for each that cannot be read.
pub fn read_all(files: &[PathBuf]) -> (Vec<(String, String)>, Vec<String>) {
    let mut texts = Vec::new();
    let mut unreadable = Vec::new();
    for file in files {
        match std::fs::read(file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => texts.push((file.display().to_string(), text)),
                Err(e) => unreadable.push(format!(
                    "{}: cannot read: not UTF-8 text (invalid byte at offset {})",
                    file.display(),
                    e.utf8_error().valid_up_to()
                )),
            },
            Err(e) => unreadable.push(format!("{}: cannot read: {e}", file.display())),
        }
    }
    (texts, unreadable)
}

/// Writes each document's problems to `problems` and, unless `quiet`, its notes to
/// `notes`; how many documents have problems, and how many problems there are.
pub fn report(
    docs: &[Document],
    sources: &[Source<'_>],
    quiet: bool,
    problems: &mut dyn Write,
    notes: &mut dyn Write,
) -> (usize, usize) {
    let (mut invalid, mut count) = (0, 0);
    for d in docs {
        let file = sources[d.source].name;
        let who = d.display_name();
        if !d.problems.is_empty() {
            invalid += 1;
        }
        for p in &d.problems {
            count += 1;
            let _ = writeln!(problems, "{file}: {who}: {}: {}", p.path, p.message);
        }
        if !quiet {
            for n in &d.notes {
                let _ = writeln!(notes, "{file}: {who}: {}: note: {}", n.path, n.message);
            }
        }
    }
    (invalid, count)
}
