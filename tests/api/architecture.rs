//! The direction of dependencies between the top-level modules of `src/`: read from the
//! `crate::<module>` paths of every source file, checked against the layers below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. A module may use its own layer and the
/// layers below it, never one above.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "domain",
            "error",
            "settings",
            "metrics",
            "telemetry",
            "memory",
            "forecast",
        ],
    ),
    ("database", &["db"]),
    (
        "services",
        &[
            "accounts",
            "analytics",
            "auth",
            "cache",
            "export_links",
            "filters",
            "ingest",
            "import",
            "operations",
            "orders",
            "reports",
            "schedules",
            "seed",
            "state",
        ],
    ),
    ("transports", &["graphql", "http"]),
    ("wiring", &["startup"]),
];

/// Upward uses that are known and still to be removed (each would be part of a cycle).
/// None are left; the test fails when a listed one goes away, so the list only shrinks.
const KNOWN_UPWARD: &[(&str, &str)] = &[];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every (module, module it uses) pair of `src/`, with a file that shows it.
fn uses() -> BTreeMap<(String, String), String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut found = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let from = first.to_string_lossy().trim_end_matches(".rs").to_string();
        if from == "lib" || from == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("crate::") {
            let to: String = text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // Items the crate root re-exports (`crate::AppError`) are not modules.
            let module = to.starts_with(|c: char| c.is_ascii_lowercase());
            if module && to != from {
                found
                    .entry((from.clone(), to))
                    .or_insert_with(|| relative.display().to_string());
            }
        }
    }
    found
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
        .unwrap_or_else(|| panic!("src/{module} is in no layer of tests/api/architecture.rs"))
}

#[test]
fn modules_depend_only_downwards_and_without_cycles() {
    let uses = uses();
    assert!(uses.len() > 20, "read too few uses: {uses:?}");
    let known: BTreeSet<(String, String)> = KNOWN_UPWARD
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mut upward = Vec::new();
    for ((from, to), file) in &uses {
        if layer_of(to) > layer_of(from) && !known.contains(&(from.clone(), to.clone())) {
            upward.push(format!(
                "{from} ({}) uses {to} ({}) in src/{file}",
                LAYERS[layer_of(from)].0,
                LAYERS[layer_of(to)].0
            ));
        }
    }
    assert!(
        upward.is_empty(),
        "upward dependencies:\n{}",
        upward.join("\n")
    );
    for pair in &known {
        assert!(
            uses.contains_key(pair),
            "{} no longer uses {}: remove it from KNOWN_UPWARD",
            pair.0,
            pair.1
        );
    }

    // No cycle among the remaining edges (within a layer, say): a depth-first search
    // for a path back to where it started.
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in uses.keys() {
        if !known.contains(&(from.clone(), to.clone())) {
            edges.entry(from).or_default().push(to);
        }
    }
    fn reaches<'a>(
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        at: &'a str,
        goal: &str,
        path: &mut Vec<&'a str>,
    ) -> bool {
        for next in edges.get(at).into_iter().flatten() {
            if *next == goal {
                path.push(next);
                return true;
            }
            if !path.contains(next) {
                path.push(next);
                if reaches(edges, next, goal, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    for start in edges.keys() {
        let mut path = vec![*start];
        assert!(
            !reaches(&edges, start, start, &mut path),
            "a cycle between modules: {}",
            path.join(" -> ")
        );
    }
}
