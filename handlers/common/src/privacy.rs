//! Keeping the uploaders' e-mail addresses out of logs and error messages.
//!
//! An address is personal data: errors that carry one (SES refusing a recipient, a mail
//! relay's answer, a malformed address typed into the form) are logged and returned with the
//! local part masked, `t***@example.com`. The domain stays, since it is what tells an
//! operator why a mail bounced (a typo in the domain, a domain that refuses mail).

/// Masks the local part of an address: its first character, then `***`
/// (`test@example.com` → `t***@example.com`). The length of the local part is not revealed.
/// Text without `@` is masked the same way (`not-an-address` → `n***`); empty text stays
/// empty.
pub fn mask_email(addr: &str) -> String {
    let addr = addr.trim();
    let (local, domain) = match addr.rfind('@') {
        Some(i) => (&addr[..i], Some(&addr[i + 1..])),
        None => (addr, None),
    };
    let mut out = String::with_capacity(addr.len().min(64) + 4);
    if let Some(c) = local.chars().next() {
        out.push(c);
    }
    if !local.is_empty() || domain.is_some() {
        out.push_str("***");
    }
    if let Some(d) = domain {
        out.push('@');
        out.push_str(d);
    }
    out
}

/// Characters that end an address when scanning outwards from its `@`.
fn is_boundary(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '"' | '\'' | '@' | '\\'
        )
}

fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '.'
}

/// Masks the local part of every address in a text (an error message from SES or an SMTP
/// relay), except `keep` (the sender, which is configuration, not personal data), compared
/// case-insensitively.
pub fn mask_addresses_except(text: &str, keep: Option<&str>) -> String {
    if !text.contains('@') {
        return text.to_string();
    }
    let keep = keep.map(str::trim).filter(|k| !k.is_empty());
    let mut out = String::with_capacity(text.len());
    // `done` is the byte offset up to which `text` has been copied to `out`.
    let mut done = 0;
    for (at, _) in text.match_indices('@') {
        if at < done {
            continue;
        }
        let start = text[done..at]
            .char_indices()
            .rev()
            .find(|&(_, c)| is_boundary(c))
            .map(|(i, c)| done + i + c.len_utf8())
            .unwrap_or(done);
        let after = &text[at + 1..];
        let mut end = at
            + 1
            + after
                .char_indices()
                .find(|&(_, c)| !is_domain_char(c))
                .map(|(i, _)| i)
                .unwrap_or(after.len());
        // A sentence may end right after the address.
        while end > at + 1 && text[..end].ends_with('.') {
            end -= 1;
        }
        if start == at {
            continue; // nothing before the `@`: not an address
        }
        let addr = &text[start..end];
        out.push_str(&text[done..start]);
        if keep.is_some_and(|k| k.eq_ignore_ascii_case(addr)) {
            out.push_str(addr);
        } else {
            out.push_str(&mask_email(addr));
        }
        done = end;
    }
    out.push_str(&text[done..]);
    out
}

/// [`mask_addresses_except`] without an exception.
pub fn mask_addresses(text: &str) -> String {
    mask_addresses_except(text, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_one_address() {
        assert_eq!(mask_email("test@example.com"), "t***@example.com");
        assert_eq!(mask_email(" a@example.co.kr "), "a***@example.co.kr");
        assert_eq!(mask_email("not-an-address"), "n***");
        assert_eq!(mask_email("@example.com"), "***@example.com");
        assert_eq!(mask_email(""), "");
        assert_eq!(mask_email("홍길동@example.com"), "홍***@example.com");
        assert_eq!(mask_email("a@b@c.com"), "a***@c.com", "the last @ splits");
    }

    #[test]
    fn masks_addresses_in_ses_refusals() {
        // SES v2 MessageRejected in the sandbox, as AWS words it.
        let msg = "MessageRejected: Email address is not verified. The following identities \
                   failed the check in region US-EAST-1: listener42@example.com, \
                   stt@example.org";
        let masked = mask_addresses_except(msg, Some("STT@example.org"));
        assert!(masked.contains("l***@example.com"), "{masked}");
        assert!(!masked.contains("listener42"), "{masked}");
        assert!(
            masked.contains("stt@example.org"),
            "the sender stays: {masked}"
        );
        assert!(masked.starts_with("MessageRejected: Email address is not verified."));
        assert_eq!(
            mask_addresses("550 5.1.1 <user.name+tag@example.com>: Recipient address rejected."),
            "550 5.1.1 <u***@example.com>: Recipient address rejected."
        );
        assert_eq!(
            mask_addresses("to user@example.com."),
            "to u***@example.com.",
            "the sentence's full stop is not part of the domain"
        );
        assert_eq!(
            mask_addresses("address \"bad@@x\" and a@b.co; c@d.kr"),
            "address \"b***@@x\" and a***@b.co; c***@d.kr"
        );
        assert_eq!(mask_addresses("no address here"), "no address here");
        assert_eq!(mask_addresses("just @ sign"), "just @ sign");
    }
}
