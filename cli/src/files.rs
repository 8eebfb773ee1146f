//! Reading the YAML files a command is given: each whole, as UTF-8 text, or a line saying
//! why not (`FILE: cannot read: ...`).

use std::path::PathBuf;

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
