"""Runs parliament (PyPI, pinned in tests/realism/requirements.txt) on IAM documents.

Input: a JSON file with a list of {"name", "kind" ("identity", "trust" or "resource"),
"document"}.
Output (stdout, JSON): {"policies": N, "findings": [{"name", "kind", "issue", "severity",
"detail", "location"}]}. Used by tests/tests/iam_documents.rs."""

import json
import sys

from parliament import analyze_policy_string


def main(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        documents = json.load(f)
    findings = []
    for entry in documents:
        policy = analyze_policy_string(json.dumps(entry["document"]))
        for finding in policy.findings:
            findings.append({
                "name": entry["name"],
                "kind": entry["kind"],
                "issue": finding.issue,
                "severity": getattr(finding, "severity", None),
                "detail": str(finding.detail),
                "location": {k: v for k, v in (finding.location or {}).items() if k != "filepath"},
            })
    json.dump({"policies": len(documents), "findings": findings}, sys.stdout, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
