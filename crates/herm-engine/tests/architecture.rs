//! The engine's internal boundaries that ARCHITECTURE.md states, checked on the source so
//! they cannot drift: the tool registry and the worker know no tool source's internals (the
//! sources depend on the registry, never the reverse), and only the engine's own modules
//! reach the store (`Engine::store` is crate-private; the server cannot call it). The pure
//! core (machine, history, record assembly, schedules) performs no I/O and reads no clock.

const REGISTRY: &[(&str, &str)] = &[
    ("tools/mod.rs", include_str!("../src/tools/mod.rs")),
    ("tools/source.rs", include_str!("../src/tools/source.rs")),
];
const WORKER: &[(&str, &str)] = &[
    ("worker/mod.rs", include_str!("../src/worker/mod.rs")),
    ("worker/person.rs", include_str!("../src/worker/person.rs")),
    ("worker/limits.rs", include_str!("../src/worker/limits.rs")),
    ("worker/model.rs", include_str!("../src/worker/model.rs")),
];
/// What naming a source's internals looks like.
const SOURCE_PATHS: &[&str] = &[
    "crate::builtin",
    "crate::mcp",
    "tools::agent",
    "tools::connectors",
    "herm_sandbox::",
    "super::agent",
    "super::connectors",
    "crate::automations",
    "crate::goals",
];

#[test]
fn the_registry_and_the_worker_know_no_tool_source() {
    for (file, text) in REGISTRY.iter().chain(WORKER) {
        for needle in SOURCE_PATHS {
            assert!(!text.contains(needle), "{file} names `{needle}`: go through tools::source instead");
        }
    }
}

#[test]
fn the_store_is_the_engines_alone() {
    let lib = include_str!("../src/lib.rs");
    assert!(lib.contains("pub(crate) fn store(&self)"), "Engine::store must stay crate-private (the one-door rule)");
}

#[test]
fn the_pure_core_performs_no_io() {
    let pure = [
        ("machine.rs", include_str!("../src/machine.rs")),
        ("machine/records.rs", include_str!("../src/machine/records.rs")),
        ("history.rs", include_str!("../src/history.rs")),
        ("schedule/mod.rs", include_str!("../src/schedule/mod.rs")),
        ("schedule/grammar.rs", include_str!("../src/schedule/grammar.rs")),
        ("compaction.rs", include_str!("../src/compaction.rs")),
        ("memory/rank.rs", include_str!("../src/memory/rank.rs")),
        ("webhooks/plan.rs", include_str!("../src/webhooks/plan.rs")),
        ("webhooks/sign.rs", include_str!("../src/webhooks/sign.rs")),
    ];
    for (file, text) in pure {
        // Tests may build events with timestamps; the code under test may not read a clock.
        let text = text.split("#[cfg(test)]").next().unwrap_or(text);
        for needle in [
            "async ",
            ".await",
            "tokio::",
            "std::fs",
            "std::net",
            "herm_store",
            "reqwest",
            "Engine",
            "Utc::now",
            "now()",
        ] {
            assert!(
                !text.contains(needle),
                "{file} uses `{needle}`: the machine, history, record assembly and schedules stay pure"
            );
        }
    }
}
