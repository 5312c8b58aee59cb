//! `make provision` and `make zips` are two cargo builds in one profile and target; a crate both
//! use is compiled once only if both builds resolve it with the same features (Cargo keys its
//! artifacts by them, and by those of every dependency below). One feature apart on `tracing` or
//! `serde` and the whole AWS SDK was compiled twice. `build-features/Cargo.toml` asks both
//! sides for the union; this test fails when a dependency change sets them apart again.

use std::collections::BTreeMap;
use std::process::Command;

use system_tests::root;

/// Crates allowed to differ: nothing shared depends on them, so only they are compiled twice.
/// aws-config's SSO and credential_process providers are for `provision` (AWS profiles).
const ALLOWED_APART: [&str; 1] = ["aws-config"];

/// The `-p` arguments `make zips` builds the functions with (the Makefile's HANDLERS).
fn zip_packages() -> Vec<String> {
    let makefile = std::fs::read_to_string(root().join("Makefile")).expect("Makefile");
    let line = makefile
        .lines()
        .find_map(|l| l.strip_prefix("HANDLERS := "))
        .expect("the Makefile sets HANDLERS");
    let packages: Vec<String> = line
        .split_whitespace()
        .filter(|w| *w != "-p")
        .map(str::to_string)
        .collect();
    assert!(packages.len() >= 6, "HANDLERS: {line}");
    packages
}

/// `name version` -> enabled features, as one build of `packages` resolves them for the zips'
/// target (normal and build dependencies).
fn resolved_features(packages: &[String]) -> BTreeMap<String, String> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root()).args([
        "tree",
        "--locked",
        "--offline",
        "--target",
        "x86_64-unknown-linux-gnu",
        "-e",
        "normal,build",
        "--prefix",
        "none",
        "-f",
        "{p} [{f}]",
    ]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let out = cmd.output().expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (package, features) = line.split_once(" [")?;
            let mut words = package.split_whitespace();
            let key = format!("{} {}", words.next()?, words.next()?);
            let features = features.split(']').next().unwrap_or_default().to_string();
            Some((key, features))
        })
        .collect()
}

#[test]
fn provision_and_the_zips_resolve_shared_crates_alike() {
    let provision = resolved_features(&["provisioner".to_string()]);
    let zips = resolved_features(&zip_packages());
    let mut shared = 0;
    let mut apart = Vec::new();
    for (package, features) in &provision {
        let Some(theirs) = zips.get(package) else {
            continue;
        };
        shared += 1;
        let name = package.split(' ').next().unwrap_or_default();
        if features != theirs && !ALLOWED_APART.contains(&name) {
            apart.push(format!(
                "{package}: provision [{features}], zips [{theirs}]"
            ));
        }
    }
    // The runtime, HTTP, TLS and several SDK clients: far more than a handful in common.
    assert!(shared > 100, "only {shared} crates in common");
    assert!(
        apart.is_empty(),
        "features differ between `make provision` and `make zips` (add the union to \
         build-features/Cargo.toml):\n{}",
        apart.join("\n")
    );
}
