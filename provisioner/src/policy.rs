//! IAM-style policy documents compared as documents: the order of statements, of actions and
//! resources, and a single value written as a one-element list do not count as differences;
//! nor does `"Principal": "*"` written as `{"AWS": "*"}`, which IAM reads the same.

use serde_json::Value;

/// `"*"` or `["*"]`.
fn is_anyone(v: &Value) -> bool {
    match v {
        Value::String(s) => s == "*",
        Value::Array(items) => items.len() == 1 && items[0] == "*",
        _ => false,
    }
}

/// A canonical form of a policy document.
pub fn normalize(doc: &Value) -> Value {
    match doc {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let v = match (k.as_str(), v) {
                    ("Statement", Value::Array(items)) => {
                        let mut items: Vec<Value> = items.iter().map(normalize).collect();
                        items.sort_by_key(|s| s.to_string());
                        Value::Array(items)
                    }
                    ("Statement", one @ Value::Object(_)) => Value::Array(vec![normalize(one)]),
                    ("Principal", Value::Object(p))
                        if p.len() == 1 && p.get("AWS").is_some_and(is_anyone) =>
                    {
                        Value::String("*".into())
                    }
                    (_, Value::Array(items)) => {
                        let mut items: Vec<Value> = items.iter().map(normalize).collect();
                        items.sort_by_key(|s| s.to_string());
                        items.dedup();
                        if items.len() == 1 {
                            items.pop().expect("one item")
                        } else {
                            Value::Array(items)
                        }
                    }
                    (_, other) => normalize(other),
                };
                out.insert(k.clone(), v);
            }
            // serde_json's map is ordered by key, so equal documents serialize equally.
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// An `Action` or `Resource` value as a list, whether written as one string or a list (for
/// tests that read policies).
#[cfg(test)]
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or_default().to_owned())
            .collect(),
        other => vec![other.as_str().unwrap_or_default().to_owned()],
    }
}

/// Whether two policy documents grant and deny the same.
pub fn same(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_and_single_values_are_not_differences() {
        let a = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "A", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:b/*", "arn:a/*"]},
            {"Sid": "B", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:a"}
        ]});
        let b = json!({"Statement": [
            {"Effect": "Deny", "Sid": "B", "Action": ["s3:*"], "Resource": "arn:a"},
            {"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": ["arn:a/*", "arn:b/*"]}
        ], "Version": "2012-10-17"});
        assert!(same(&a, &b));
    }

    #[test]
    fn anyone_is_anyone_however_written() {
        let a = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:a/*"}]});
        let b = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "s3:GetObject", "Resource": "arn:a/*"}]});
        let c = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "s3:GetObject", "Resource": "arn:a/*"}]});
        assert!(same(&a, &b));
        assert!(!same(&a, &c));
    }

    #[test]
    fn a_widened_grant_is_a_difference() {
        let a = json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:a/*"}]});
        let b = json!({"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:a/*"}]});
        let c =
            json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]});
        assert!(!same(&a, &b));
        assert!(!same(&a, &c));
    }
}
