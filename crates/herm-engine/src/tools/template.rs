//! `{{input.path}}` and `{{secrets.NAME}}` templating for http tools. Secrets are resolved
//! by the caller host-side and only ever land in the outgoing request.

use herm_store::vault::SecretValue;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, PartialEq)]
pub enum TemplateError {
    MissingInput(String),
    MissingSecret(String),
    Unclosed,
    Unknown(String),
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingInput(p) => write!(f, "the tool input has no field `{p}`"),
            Self::MissingSecret(n) => {
                write!(f, "secret `{n}` is not available to this deployment (unknown name or deleted reference)")
            }
            Self::Unclosed => f.write_str("unclosed `{{` in template"),
            Self::Unknown(x) => write!(f, "unknown template variable `{x}`"),
        }
    }
}

/// Names of the secrets a template uses.
pub fn secret_names(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        let Some(j) = rest[i..].find("}}") else { break };
        if let Some(n) = rest[i + 2..i + j].trim().strip_prefix("secrets.") {
            out.push(n.to_owned());
        }
        rest = &rest[i + j + 2..];
    }
    out
}

/// Renders a template; `encode` is applied to input values (URL-encoding in URLs).
pub fn render(
    t: &str,
    input: &Value,
    secrets: &BTreeMap<String, SecretValue>,
    encode: fn(&str) -> String,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else { return Err(TemplateError::Unclosed) };
        let var = rest[i + 2..i + j].trim();
        if let Some(path) = var.strip_prefix("input.") {
            let mut v = input;
            for seg in path.split('.') {
                v = v.get(seg).ok_or_else(|| TemplateError::MissingInput(path.to_owned()))?;
            }
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&encode(&s));
        } else if let Some(name) = var.strip_prefix("secrets.") {
            let v = secrets.get(name).ok_or_else(|| TemplateError::MissingSecret(name.to_owned()))?;
            out.push_str(v.expose());
        } else {
            return Err(TemplateError::Unknown(var.to_owned()));
        }
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_inputs_and_secrets() {
        let mut s = BTreeMap::new();
        s.insert("TOKEN".to_owned(), SecretValue::new("tok".into()));
        let input = json!({"q": "a b", "n": {"id": 7}});
        let enc = crate::redact::percent_encode;
        assert_eq!(
            render("http://x/?q={{input.q}}&id={{ input.n.id }}", &input, &s, enc).unwrap(),
            "http://x/?q=a%20b&id=7"
        );
        assert_eq!(render("Bearer {{secrets.TOKEN}}", &input, &s, |x| x.to_owned()).unwrap(), "Bearer tok");
        assert_eq!(render("{{input.zz}}", &input, &s, enc), Err(TemplateError::MissingInput("zz".into())));
        assert_eq!(render("{{secrets.NOPE}}", &input, &s, enc), Err(TemplateError::MissingSecret("NOPE".into())));
        assert_eq!(render("{{env.X}}", &input, &s, enc), Err(TemplateError::Unknown("env.X".into())));
        assert_eq!(secret_names("a {{secrets.A}} {{input.b}} {{ secrets.C }}"), vec!["A", "C"]);
    }
}
