//! The facade's boundaries: it reaches herm through the engine only (no database driver, no
//! HTTP), and its list and stream share one projection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

fn sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn no_driver_no_http_no_store_writes() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for dep in ["axum", "hyper", "reqwest", "rusqlite", "herm-server", "herm-llm", "herm-sandbox"] {
        assert!(!manifest.contains(&format!("{dep}.")) && !manifest.contains(&format!("{dep} =")), "depends on {dep}");
    }
    for (path, text) in sources() {
        for word in ["rusqlite", "axum", ".store()", "put_document(", "SqliteStore"] {
            let allowed = word == "put_document(" && path.ends_with("wire.rs");
            assert!(allowed || !text.contains(word), "{path} uses {word}");
        }
    }
}

#[test]
fn the_list_and_the_stream_share_the_projection() {
    for (path, text) in sources() {
        if path.ends_with("events.rs") || path.ends_with("stream.rs") {
            assert!(text.contains("Projector"), "{path} projects the log its own way");
        }
    }
}
