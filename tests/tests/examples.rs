//! Every example under examples/ is valid, with every reference resolved among its
//! own documents: the README points people at them.

use std::path::Path;

use tektite_api::validate::validate_with;
use tektite_api::{Source, load};

#[test]
fn every_example_is_complete_and_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let mut docs = load(&[Source {
            name: &name,
            text: &text,
        }]);
        validate_with(&mut docs, true);
        assert!(!docs.is_empty(), "{name} has no documents");
        for d in &docs {
            assert!(
                d.problems.is_empty(),
                "{name}: {}: {:#?}",
                d.display_name(),
                d.problems
            );
        }
        count += 1;
    }
    assert!(count >= 2, "only {count} examples");
}
