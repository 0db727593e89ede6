//! The redaction backstop: replaces any known secret value of a deployment, and its common
//! encodings, before text is logged, streamed or shown to the model.

use base64::Engine as _;
use herm_store::vault::SecretValue;

/// Values shorter than this are not redacted: they would match ordinary text.
const MIN_LEN: usize = 6;

#[derive(Default)]
pub struct Redactor {
    /// (needle, replacement), longest needles first so encodings never leave a tail behind.
    needles: Vec<(String, String)>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} patterns)", self.needles.len())
    }
}

impl Redactor {
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a SecretValue)>) -> Self {
        let mut needles = Vec::new();
        for (name, v) in secrets {
            let raw = v.expose();
            if raw.len() < MIN_LEN {
                continue;
            }
            let mask = format!("[REDACTED:{name}]");
            let b = raw.as_bytes();
            let variants = [
                raw.to_owned(),
                base64::engine::general_purpose::STANDARD.encode(b),
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(b),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
                percent_encode(raw),
                serde_json::to_string(raw).unwrap_or_default().trim_matches('"').to_owned(),
                hex::encode(b),
            ];
            for n in variants {
                if n.len() >= MIN_LEN && !needles.iter().any(|(x, _): &(String, String)| *x == n) {
                    needles.push((n, mask.clone()));
                }
            }
        }
        needles.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        Self { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    pub fn redact(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for (n, mask) in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), mask);
            }
        }
        out
    }

    /// Redacts every string inside a JSON value.
    pub fn redact_json(&self, v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        if self.is_empty() {
            return v.clone();
        }
        match v {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.redact_json(x)).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (self.redact(k), self.redact_json(x))).collect()),
            other => other.clone(),
        }
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_raw_and_encoded_forms() {
        let v = SecretValue::new("s3cr3t/value+x".into());
        let r = Redactor::new([("TOKEN", &v)]);
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3cr3t/value+x");
        let text = format!("a s3cr3t/value+x b {b64} c s3cr3t%2Fvalue%2Bx");
        let out = r.redact(&text);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(!out.contains(&b64));
        assert_eq!(out.matches("[REDACTED:TOKEN]").count(), 3);
        let j = r.redact_json(&serde_json::json!({"h": ["x s3cr3t/value+x"]}));
        assert_eq!(j["h"][0], "x [REDACTED:TOKEN]");
    }

    #[test]
    fn short_values_are_left_alone() {
        let v = SecretValue::new("abc".into());
        assert_eq!(Redactor::new([("X", &v)]).redact("abc"), "abc");
    }
}
