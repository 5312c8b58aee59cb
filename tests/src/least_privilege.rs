//! The mutation check of the stack's roles: every statement `provision` grants must be needed.
//!
//! The realism proxy evaluates every call a function makes (and what AWS does with a role on
//! its behalf: Transcribe reading the media, MediaConvert the job's files, Lambda the network
//! interfaces and the logs) against the role as deployed, and logs each authorization. After a
//! run, each role's inline policy is read back; for each statement, the run's authorizations
//! of that role are replayed (`POST /_realism/iam/evaluate`) against the policy without it. A
//! statement none of whose removals denies anything is one the run never needed: reported.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::{Aws, Realism};

/// What the check found over a set of roles.
#[derive(Debug, Default)]
pub struct MutationReport {
    /// Roles checked.
    pub roles: usize,
    /// Statements removed one at a time.
    pub statements_tried: usize,
    /// Of those, statements whose removal denies a call the run made (the call would have
    /// failed with AccessDenied).
    pub denies_a_call: usize,
    /// Statements whose removal denies only what Lambda does with the role on the side (the
    /// function's logs: AWS runs the function and loses the logs).
    pub denies_logs_only: usize,
    /// Distinct authorizations replayed.
    pub authorizations: usize,
    /// Problems: authorizations the full policy already denies, and statements the run never needed.
    pub problems: Vec<String>,
    /// Each statement tried (`role/Sid`) with the first authorization its removal denies.
    pub outcomes: Vec<String>,
}

impl MutationReport {
    pub fn summary(&self) -> String {
        format!(
            "{} roles, {} statements tried: {} deny a call when removed, {} deny the function's logs only; {} distinct authorizations replayed",
            self.roles,
            self.statements_tried,
            self.denies_a_call,
            self.denies_logs_only,
            self.authorizations
        )
    }
}

impl Realism {
    /// The authorizations the proxy logged after `since` (`GET /_realism/iam/authorizations`).
    pub fn authorizations(&self, since: u64) -> Vec<Value> {
        self.call("GET", &format!("iam/authorizations?since={since}"), None)["authorizations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Each authorization's decision under `policies` (`POST /_realism/iam/evaluate`).
    pub fn evaluate(&self, policies: &[Value], authorizations: &[Value]) -> Vec<String> {
        let principal = authorizations
            .first()
            .and_then(|a| a["principal"].as_str())
            .unwrap_or("arn:aws:sts::000000000000:assumed-role/none/none");
        let doc = json!({
            "principal": principal,
            "policies": policies,
            "authorizations": authorizations,
        });
        self.call("POST", "iam/evaluate", Some(&doc))["results"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|x| x["decision"].as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The inline policies of `role` as IAM holds them, by name.
async fn inline_policies(aws: &Aws, role: &str) -> Vec<(String, Value)> {
    let names = aws
        .iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListRolePolicies {role}: {e:?}"));
    let mut out = Vec::new();
    for name in names.policy_names() {
        let doc = aws
            .iam
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetRolePolicy {role}/{name}: {e:?}"));
        out.push((
            name.clone(),
            provisioner::resources::role::decode_policy_document(doc.policy_document()),
        ));
    }
    let attached = aws
        .iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListAttachedRolePolicies {role}: {e:?}"));
    assert!(
        attached.attached_policies().is_empty(),
        "{role} has managed policies attached; the stack grants inline policies only"
    );
    out
}

/// The statements of a policy document as a list (IAM allows one statement as an object).
fn statements(doc: &Value) -> Vec<Value> {
    match &doc["Statement"] {
        Value::Array(list) => list.clone(),
        Value::Null => vec![],
        one => vec![one.clone()],
    }
}

fn with_statements(doc: &Value, statements: Vec<Value>) -> Value {
    let mut doc = doc.clone();
    doc["Statement"] = Value::Array(statements);
    doc
}

/// The run's authorizations of `role`, each once, as the evaluate endpoint takes them. S3's
/// question whether the caller may learn a key is missing (s3:ListBucket) counts only where
/// the key was missing: there, without it, the caller gets 403 instead of 404.
fn authorizations_of(logged: &[Value], role: &str) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for a in logged {
        if a["role"] != role || (a["if_key_missing"] == true && a["key_missing"] != true) {
            continue;
        }
        let item = json!({
            "action": a["action"],
            "resource": a["resource"],
            "context": a.get("context").cloned().unwrap_or(json!({})),
            "principal": a["principal"],
            "via": a.get("via").cloned().unwrap_or(json!("")),
            "advisory": a["enforced"] == false,
        });
        if seen.insert(item.to_string()) {
            out.push(item);
        }
    }
    out
}

fn label(statement: &Value, index: usize) -> String {
    let sid = statement["Sid"].as_str().map(str::to_owned);
    sid.unwrap_or_else(|| format!("#{index} {}", statement["Action"]))
}

/// Runs the check over `roles` with the authorizations logged after `since`.
pub async fn check_roles(
    aws: &Aws,
    realism: &Realism,
    roles: &[String],
    since: u64,
) -> MutationReport {
    let logged = realism.authorizations(since);
    let mut report = MutationReport::default();
    for role in roles {
        report.roles += 1;
        let authz = authorizations_of(&logged, role);
        if authz.is_empty() {
            report.problems.push(format!(
                "{role}: the run logged no authorization of this role"
            ));
            continue;
        }
        report.authorizations += authz.len();
        let policies = inline_policies(aws, role).await;
        let documents: Vec<Value> = policies.iter().map(|(_, d)| d.clone()).collect();
        let full = realism.evaluate(&documents, &authz);
        for (a, decision) in authz.iter().zip(&full) {
            if decision != "Allowed" {
                report.problems.push(format!(
                    "{role}: {} on {} is {decision} by the policy as deployed",
                    a["action"], a["resource"]
                ));
            }
        }
        for (p, (policy_name, doc)) in policies.iter().enumerate() {
            let all = statements(doc);
            for (i, statement) in all.iter().enumerate() {
                report.statements_tried += 1;
                let mut without: Vec<Value> = all.clone();
                without.remove(i);
                let mut mutated = documents.clone();
                mutated[p] = with_statements(doc, without);
                let decisions = realism.evaluate(&mutated, &authz);
                let denied: Vec<&Value> = authz
                    .iter()
                    .zip(&decisions)
                    .filter(|(_, d)| d.as_str() != "Allowed")
                    .map(|(a, _)| a)
                    .collect();
                if let Some(first) = denied.first() {
                    report.outcomes.push(format!(
                        "{role}/{}: {} on {}{}",
                        label(statement, i),
                        first["action"].as_str().unwrap_or_default(),
                        first["resource"].as_str().unwrap_or_default(),
                        if first["advisory"] == true {
                            " (logs)"
                        } else {
                            ""
                        }
                    ));
                }
                if denied.is_empty() {
                    report.problems.push(format!(
                        "{role}/{policy_name}: statement {} is never needed by the run",
                        label(statement, i)
                    ));
                } else if denied.iter().all(|a| a["advisory"] == true) {
                    report.denies_logs_only += 1;
                } else {
                    report.denies_a_call += 1;
                }
            }
        }
    }
    report
}
