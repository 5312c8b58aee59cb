//! Where a key of `stack.yaml` is written, for the errors found after parsing (a value that
//! depends on another): serde_yaml locates only what fails while it parses.

/// Line and column (1-based) of the deepest key of `keys` written in `text`, a path of
/// mapping keys from the top (`["vod", "cors", "allowed_origins"]`). When a key is not
/// written (left to its default), its nearest written parent; `None` when not even the first
/// is. Reads block mappings by indentation, and the keys of a flow mapping on the line of its
/// parent (`origin_shield: {region: x}`): what `stack.yaml` is written in.
pub fn locate(text: &str, keys: &[&str]) -> Option<(usize, usize)> {
    let mut found = None;
    // The indentation of the parent found last; children are indented further.
    let mut parent_indent: Option<usize> = None;
    let mut from = 0;
    let lines: Vec<&str> = text.lines().collect();
    'keys: for key in keys {
        // A flow mapping on the parent's line: `parent: {key: value}`.
        if let Some((line, column)) = found {
            let parent_line: &str = lines[line - 1];
            if let Some(at) = flow_key(&parent_line[column - 1..], key) {
                found = Some((line, column + at));
                continue;
            }
        }
        // The children's indentation: the first line of the parent's block sets it.
        let mut child_indent = if parent_indent.is_none() {
            Some(0)
        } else {
            None
        };
        for (i, line) in lines.iter().enumerate().skip(from) {
            let content = line.trim_start();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let indent = line.len() - content.len();
            if parent_indent.is_some_and(|p| indent <= p) {
                break; // the parent's block ended: the key is not written.
            }
            let child = *child_indent.get_or_insert(indent);
            let opens = content
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'));
            if opens && indent == child {
                found = Some((i + 1, indent + 1));
                parent_indent = Some(indent);
                from = i + 1;
                continue 'keys;
            }
        }
        break;
    }
    found
}

/// The offset of `key:` inside a `{...}` on this line, if there is one.
fn flow_key(line: &str, key: &str) -> Option<usize> {
    let open = line.find('{')?;
    let mut at = open + 1;
    for part in line[open + 1..].split(',') {
        let trimmed = part.trim_start();
        let offset = at + (part.len() - trimmed.len());
        if trimmed
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
        {
            return Some(offset);
        }
        at += part.len() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::locate;

    const TEXT: &str = "\
stack:
  name: demo
# a comment
vod:
  cors:
    max_age_s: 10
    allowed_origins: [\"https://a.example\"]
  player:
    distribution:
      origin_shield: {enabled: true, region: us-east-1}
stt:
  cors: {}
";

    #[test]
    fn finds_the_deepest_written_key() {
        assert_eq!(
            locate(TEXT, &["vod", "cors", "allowed_origins"]),
            Some((7, 5))
        );
        assert_eq!(locate(TEXT, &["stack", "name"]), Some((2, 3)));
        // Not written: its parent.
        assert_eq!(
            locate(TEXT, &["vod", "cors", "allowed_methods"]),
            Some((5, 3))
        );
        // A key of the same name in another block, or deeper down, is not taken for it.
        assert_eq!(
            locate(TEXT, &["stt", "cors", "allowed_origins"]),
            Some((12, 3))
        );
        assert_eq!(locate(TEXT, &["vod", "distribution"]), Some((4, 1)));
        assert_eq!(locate(TEXT, &["network"]), None);
    }

    #[test]
    fn finds_keys_of_a_flow_mapping() {
        let path = ["vod", "player", "distribution", "origin_shield", "region"];
        assert_eq!(locate(TEXT, &path), Some((10, 38)));
    }
}
