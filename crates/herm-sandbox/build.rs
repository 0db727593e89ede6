//! Compiles the in-sandbox exec helper (`helper/main.rs`, the standard library only) into a
//! statically linked binary that herm embeds and copies into containers. Where that cannot be
//! built (no static C library for the target), an empty file is embedded instead and herm
//! uses the Python helper.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "helper/main.rs";
    println!("cargo:rerun-if-changed={src}");
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        eprintln!("OUT_DIR is not set");
        std::process::exit(1);
    };
    let out = PathBuf::from(out_dir).join("herm-helper");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").unwrap_or_default();
    let mut cmd = Command::new(rustc);
    cmd.args(["--edition", "2024", "--crate-name", "herm_helper", "-C", "opt-level=2", "-C", "panic=abort"]).args([
        "-C",
        "target-feature=+crt-static",
        "-C",
        "strip=symbols",
    ]);
    if !target.is_empty() {
        cmd.args(["--target", &target]);
    }
    let built = cmd.arg("-o").arg(&out).arg(src).status().is_ok_and(|s| s.success());
    if !built {
        println!("cargo:warning=the static exec helper could not be built; sandboxes will use the Python helper");
        if let Err(e) = std::fs::write(&out, b"") {
            eprintln!("cannot write {}: {e}", out.display());
            std::process::exit(1);
        }
    }
}
