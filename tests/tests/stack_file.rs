//! A malformed stack.yaml is reported with file, line and column, before any AWS call.

use std::net::TcpListener;
use std::path::Path;

use system_tests::run_provision;

/// Runs `provision plan` on `yaml` with the AWS endpoint pointed at a listener that counts
/// connections; returns (exit code, stderr, connections).
fn plan_with(yaml: &str) -> (i32, String, usize) {
    let dir = std::env::temp_dir().join(format!(
        "provision-bad-{}-{}",
        std::process::id(),
        yaml.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("stack.yaml");
    std::fs::write(&file, yaml).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let run = run_provision(&file, &["plan"], &[("AWS_ENDPOINT_URL", &endpoint)]);
    let connections = std::iter::from_fn(|| listener.accept().ok()).count();
    std::fs::remove_dir_all(&dir).unwrap();
    (run.code(), run.stderr(), connections)
}

const GOOD: &str = "stack:\n  name: bad-input\n  region: us-east-1\nstt:\n  website: {}\n";

#[test]
fn unknown_key_wrong_type_and_bad_region_are_located_and_no_call_is_made() {
    let cases = [
        (
            GOOD.replace("website: {}", "website:\n    index_doc: a.html"),
            "6:5",
            "unknown field `index_doc`",
        ),
        (
            GOOD.replace(
                "website: {}",
                "website:\n    distribution:\n      ipv6: maybe",
            ),
            "7:13",
            "invalid type",
        ),
        (
            GOOD.replace("us-east-1", "mars-north-1"),
            "3:11",
            "unknown AWS region \"mars-north-1\"",
        ),
    ];
    for (yaml, place, message) in cases {
        let (code, stderr, connections) = plan_with(&yaml);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains(&format!("stack.yaml:{place}: ")),
            "expected {place} in: {stderr}"
        );
        assert!(
            stderr.contains(message),
            "expected {message:?} in: {stderr}"
        );
        assert_eq!(connections, 0, "no AWS call for a bad stack.yaml");
    }
}

#[test]
fn a_missing_file_is_named() {
    let run = run_provision(Path::new("/nonexistent/stack.yaml"), &["plan"], &[]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr()
            .contains("/nonexistent/stack.yaml: cannot read"),
        "{}",
        run.stderr()
    );
}

#[test]
fn the_repository_stack_yaml_is_valid() {
    // Parsed by the binary itself: plan against an endpoint that refuses, so it stops at the
    // first AWS call, after the file was accepted.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let run = run_provision(
        &system_tests::root().join("stack.yaml"),
        &["plan"],
        &[("AWS_ENDPOINT_URL", &endpoint)],
    );
    assert_eq!(run.code(), 1);
    assert!(!run.stderr().contains("stack.yaml:"), "{}", run.stderr());
    assert!(
        run.stderr().contains("sts:GetCallerIdentity"),
        "{}",
        run.stderr()
    );
}
