//! Typed, prefixed, time-ordered identifiers (`dep_…`, `thr_…`, …).
//!
//! The random part is a UUIDv7 written in fixed-width base62, so identifiers sort by creation
//! time as strings and never mix: a `ThreadId` cannot be passed where a `RunId` is wanted.

use std::fmt;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 62^22 > 2^128, so 22 digits hold any UUID.
const WIDTH: usize = 22;

/// 62^10, the most base62 digits a u64 holds.
const CHUNK: u128 = 839_299_365_868_340_224;

/// `prefix` and `n` as fixed-width base62 (lexicographic order equals numeric order), in one
/// allocation. Two 128-bit divisions split `n` into 2 + 10 + 10 digits whose digits come
/// from 64-bit arithmetic (a 128-bit division is a library call; one per digit was most of
/// an identifier's cost).
fn with_base62(prefix: &str, n: u128) -> String {
    let mut digits = [b'0'; WIDTH];
    let (low, rest) = ((n % CHUNK) as u64, n / CHUNK);
    let (mid, high) = ((rest % CHUNK) as u64, (rest / CHUNK) as u64);
    let (high_digits, rest_digits) = digits.split_at_mut(2);
    let (mid_digits, low_digits) = rest_digits.split_at_mut(10);
    for (slots, mut v) in [(low_digits, low), (mid_digits, mid), (high_digits, high)] {
        for slot in slots.iter_mut().rev() {
            *slot = ALPHABET[(v % 62) as usize];
            v /= 62;
        }
    }
    let mut out = String::with_capacity(prefix.len() + WIDTH);
    out.push_str(prefix);
    // The digits are ASCII: each byte is its own char.
    out.extend(digits.iter().map(|&b| b as char));
    out
}

/// Decodes fixed-width base62 (the inverse of [`base62`]); `None` if it does not fit a u128.
fn unbase62(s: &str) -> Option<u128> {
    s.bytes().try_fold(0u128, |n, b| {
        let d = ALPHABET.iter().position(|&a| a == b)? as u128;
        n.checked_mul(62)?.checked_add(d)
    })
}

/// Error for a string that is not an identifier of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id: expected `{prefix}` followed by 22 base62 characters")]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(try_from = "String", into = "String")]
        #[schema(value_type = String, example = json!(concat!($prefix, "0VhpjBbpRxIyqHZo5H2Kxq")))]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
            /// A fresh, time-ordered identifier.
            pub fn new() -> Self {
                Self(with_base62($prefix, uuid::Uuid::now_v7().as_u128()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// When the identifier was made (its UUIDv7's milliseconds).
            pub fn created_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
                let n = unbase62(&self.0[$prefix.len()..])?;
                chrono::DateTime::from_timestamp_millis((n >> 80) as i64)
            }
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let rest = s.strip_prefix($prefix);
                match rest {
                    Some(r) if r.len() == WIDTH && r.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                        Ok(Self(s.to_owned()))
                    }
                    _ => Err(IdError { kind: $kind, prefix: $prefix }),
                }
            }
        }
        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

typed_id!(/// One agent for one customer.
    DeploymentId, "dep_", "deployment");
typed_id!(/// A durable conversation (session) of a deployment.
    ThreadId, "thr_", "thread");
typed_id!(/// The work done for one user message.
    RunId, "run_", "run");
typed_id!(/// One entry of a thread's log.
    EventId, "evt_", "event");
typed_id!(/// A credential held encrypted in the vault.
    SecretId, "sec_", "secret");
typed_id!(/// An operator API key.
    ApiKeyId, "key_", "api key");
typed_id!(/// A steering request awaiting a person.
    RequestId, "req_", "request");
typed_id!(/// A scheduled or webhook-triggered automation.
    AutomationId, "auto_", "automation");
typed_id!(/// An objective pursued across runs until a judge agrees it is done.
    GoalId, "goal_", "goal");
typed_id!(/// A memory of a deployment: one path-addressed document.
    MemoryId, "mem_", "memory");
typed_id!(/// One consolidation of a deployment's memory.
    DreamId, "drm_", "dream");
typed_id!(/// Stored bytes a message or a tool result carries to the model (an image, a document).
    AttachmentId, "att_", "attachment");
typed_id!(/// An operator's endpoint that is told of events (run waiting, completed, failed…).
    WebhookId, "whk_", "webhook");
typed_id!(/// One event's delivery to one webhook, retried until it is accepted or given up.
    DeliveryId, "whd_", "delivery");

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn an_id_knows_when_it_was_made() {
        let before = chrono::Utc::now() - chrono::Duration::milliseconds(1);
        let at = RunId::new().created_at().unwrap();
        assert!(at >= before && at <= chrono::Utc::now(), "{at}");
    }
}

/// Position of an event in its thread's log (1-based, gap-free).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Sequence(pub i64);

/// Position of an event in its deployment's combined stream (1-based, gap-free, commit order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct DeploymentSeq(pub i64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_roundtrip_and_sort_by_time() {
        let a = ThreadId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ThreadId::new();
        assert!(a < b);
        assert_eq!(ThreadId::parse(a.as_str()).unwrap(), a);
        assert!(ThreadId::parse("run_0VhpjBbpRxIyqHZo5H2Kxq").is_err());
        assert!(ThreadId::parse("thr_short").is_err());
        assert!(ThreadId::parse("thr_0VhpjBbpRxIyqHZo5H2K-q").is_err());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<ThreadId>(&json).unwrap(), a);
    }

    fn base62(n: u128) -> String {
        with_base62("", n)
    }

    /// The encoding one digit at a time, as it was first written.
    fn base62_by_digit(mut n: u128) -> String {
        let mut out = [b'0'; WIDTH];
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(n % 62) as usize];
            n /= 62;
        }
        out.iter().map(|&b| b as char).collect()
    }

    #[test]
    fn base62_is_fixed_width_and_ordered() {
        assert_eq!(CHUNK, 62u128.pow(10));
        assert_eq!(base62(0).len(), WIDTH);
        assert_eq!(base62(u128::MAX).len(), WIDTH);
        assert!(base62(61) < base62(62));
        assert!(base62(u128::MAX - 1) < base62(u128::MAX));
        assert_eq!(with_base62("evt_", 61), format!("evt_{}z", "0".repeat(WIDTH - 1)));
    }

    #[test]
    fn base62_by_chunks_is_base62_by_digit() {
        let chunk_edges = [CHUNK - 1, CHUNK, CHUNK + 1, CHUNK * CHUNK - 1, CHUNK * CHUNK, CHUNK * CHUNK + 1];
        // Spread over the whole range: a multiplicative sequence, and the ids themselves.
        let spread = (1..1000u128).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835));
        let random = spread.chain((0..100).map(|_| uuid::Uuid::now_v7().as_u128()));
        let cases = [0, 1, 61, 62, 3843, 3844, u64::MAX as u128, u128::MAX - 1, u128::MAX].into_iter();
        for n in cases.chain(chunk_edges).chain(random) {
            assert_eq!(base62(n), base62_by_digit(n), "{n}");
            assert_eq!(unbase62(&base62(n)), Some(n));
        }
    }
}
