//! `tkt validate` as a user runs it: real process, real files, exit codes and output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tkt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tkt"))
        .args(args)
        .output()
        .expect("run tkt")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tkt-validate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn valid_files_exit_zero_and_say_so() {
    let hello = examples().join("hello-pipeline.yaml");
    let out = tkt(&["validate", hello.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("4 document(s) valid"));
}

#[test]
fn problems_are_printed_as_file_kind_name_path_message_and_exit_two() {
    let dir = temp_dir("problems");
    let file = write(
        &dir,
        "p.yaml",
        b"apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata:\n  name: p\nspec:\n  tasks:\n  - name: a\n    taskRef: {name: t}\n    runAfter: [b]\n  - name: b\n    taskRef: {name: t}\n    runAfter: [a]\n",
    );
    let out = tkt(&["validate", "--quiet", &file]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [format!(
            "{file}: Pipeline/p: spec.tasks: the tasks form a cycle: a -> b -> a; break it by removing one runAfter or result reference"
        )]
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 problem(s) in 1 of 1 document(s)"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unreadable_binary_and_empty_files_are_reported_not_panicked_on() {
    let dir = temp_dir("garbage");
    let binary = write(&dir, "bin.yaml", &[0xff, 0xfe, 0x00, 0x9f, b'\n']);
    let empty = write(&dir, "empty.yaml", b"# nothing here\n");
    let missing = dir.join("missing.yaml").display().to_string();
    let out = tkt(&["validate", &binary, &missing]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{binary}: cannot read: not UTF-8")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{missing}: cannot read:")),
        "{stdout}"
    );
    let out = tkt(&["validate", &empty]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no documents found"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_huge_document_is_handled() {
    let dir = temp_dir("huge");
    let mut text = String::from(
        "apiVersion: tekton.dev/v1\nkind: Task\nmetadata:\n  name: t\nspec:\n  steps:\n",
    );
    for i in 0..5000 {
        text.push_str(&format!(
            "  - name: s{i}\n    image: alpine\n    script: echo {i}\n"
        ));
    }
    let file = write(&dir, "huge.yaml", text.as_bytes());
    let out = tkt(&["validate", &file]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn notes_go_to_stderr_and_quiet_hides_them() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../api/tests/fixtures/seeds/004-v1beta1-mvn-pipeline-run-after.yaml");
    let out = tkt(&["validate", seed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("note: Task \"mvn-task\" is not among the documents given")
    );
    let out = tkt(&["validate", "-q", seed.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("note:"));
}
