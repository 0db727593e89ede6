//! Which memories a run sees first: relevance of each memory to the run's message (terms it
//! shares, rarer terms weighing more, a match in the path more than in the text), then
//! recency; and packing the ranked memories into a token budget. Pure.

use chrono::{DateTime, Utc};

/// Estimated tokens of a text (about four bytes a token for English and code; providers
/// report the true count after the call).
pub fn tokens(s: &str) -> u64 {
    (s.len() as u64).div_ceil(4)
}

/// What ranking needs of a memory.
pub struct Doc<'a> {
    pub path: &'a str,
    pub content: &'a str,
    pub updated_at: DateTime<Utc>,
}

const STOP: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "her", "was", "one", "our", "out", "has",
    "have", "had", "him", "his", "how", "its", "let", "may", "new", "now", "see", "two", "who", "did", "yes", "get",
    "got", "this", "that", "with", "from", "they", "will", "would", "there", "their", "what", "about", "which", "when",
    "make", "like", "just", "into", "your", "some", "could", "them", "than", "then", "these", "please", "want", "need",
    "should", "also", "been", "were", "here", "more", "very",
];

/// The distinct search terms of a text: lowercase words of three or more letters or digits,
/// common words left out.
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Indices of `docs`, most relevant to `query` first; equally relevant ones newest first.
pub fn rank(query: &str, docs: &[Doc<'_>]) -> Vec<usize> {
    let q = terms(query);
    // One look at each document per term: 2 for a match in the path, 1 in the text.
    let mut hits = vec![0u8; docs.len() * q.len()];
    let mut df = vec![0usize; q.len()];
    if !q.is_empty() {
        for (d, doc) in docs.iter().enumerate() {
            let (path, content) = (doc.path.to_lowercase(), doc.content.to_lowercase());
            for (t, term) in q.iter().enumerate() {
                let hit = if path.contains(term.as_str()) {
                    2
                } else if content.contains(term.as_str()) {
                    1
                } else {
                    0
                };
                hits[d * q.len() + t] = hit;
                df[t] += usize::from(hit > 0);
            }
        }
    }
    // A term most memories share says little.
    let n = docs.len().max(1) as f64;
    let idf: Vec<f64> = df.iter().map(|&df| (1.0 + n / (df.max(1) as f64)).ln()).collect();
    let scores: Vec<f64> = (0..docs.len())
        .map(|d| idf.iter().enumerate().map(|(t, w)| f64::from(hits[d * q.len() + t]) * w).sum())
        .collect();
    let mut idx: Vec<usize> = (0..docs.len()).collect();
    idx.sort_by(|&a, &b| {
        scores[b]
            .total_cmp(&scores[a])
            .then(docs[b].updated_at.cmp(&docs[a].updated_at))
            .then(docs[a].path.cmp(docs[b].path))
    });
    idx
}

/// The longest prefix of `ranked` whose texts fit `budget` tokens, skipping any single
/// memory too large to fit while smaller ones still do; returns the chosen indices in rank
/// order.
pub fn pack(ranked: &[usize], size: impl Fn(usize) -> u64, budget: u64) -> Vec<usize> {
    let mut used = 0;
    let mut out = Vec::new();
    for &i in ranked {
        let s = size(i);
        if used + s <= budget {
            used += s;
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).single().unwrap_or_default()
    }

    #[test]
    fn terms_skip_short_and_common_words() {
        assert_eq!(terms("Please write the Brand voice, the brand!"), vec!["brand", "voice", "write"]);
        assert!(terms("a an to of").is_empty());
    }

    #[test]
    fn relevance_then_recency() {
        let docs = [
            Doc { path: "facts/company.md", content: "Acme sells anvils", updated_at: at(5) },
            Doc { path: "preferences/brand-voice.md", content: "playful, never exclamation marks", updated_at: at(1) },
            Doc { path: "preferences/dates.md", content: "write dates as 2026-01-31", updated_at: at(2) },
            Doc { path: "notes/misc.md", content: "the brand launch is in May", updated_at: at(3) },
        ];
        // A path match outranks a text match; unrelated memories follow, newest first.
        assert_eq!(rank("Draft a post in our brand voice", &docs), vec![1, 3, 0, 2]);
        assert_eq!(rank("What date format?", &docs), vec![2, 0, 3, 1]);
        // No query terms: newest first.
        assert_eq!(rank("", &docs), vec![0, 3, 2, 1]);
    }

    #[test]
    fn packing_keeps_rank_order_within_the_budget() {
        let sizes = [50u64, 500, 30, 40];
        assert_eq!(pack(&[0, 1, 2, 3], |i| sizes[i], 100), vec![0, 2]);
        assert_eq!(pack(&[1, 0], |i| sizes[i], 1000), vec![1, 0]);
        assert!(pack(&[1], |i| sizes[i], 10).is_empty());
        assert_eq!(tokens("abcd"), 1);
        assert_eq!(tokens("abcde"), 2);
    }
}
