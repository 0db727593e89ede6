//! Schedules of automations: a 5-field cron expression or a phrase of our own grammar
//! ([`grammar`]), in an IANA time zone (UTC by default), and the slots they fall due at.
//! Slot times come from croner in the schedule's zone, so daylight saving is handled as
//! croner's OCPS rules say: a slot in a skipped hour fires once, at the first instant after the
//! gap; a slot in a repeated hour fires once, at its first occurrence. Pure: no clock is read
//! here, every function takes the instant it reasons about.

pub mod grammar;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::str::FromStr;

/// A schedule as herm understood it.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The cron expression the schedule was read as (5 fields).
    pub cron: String,
    /// What it means, in words, with its zone.
    pub description: String,
    pub timezone: Tz,
    pattern: Cron,
}

/// Why a schedule was refused (a message for the caller).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl Schedule {
    /// Reads `text` (cron or plain language) in the zone named `timezone`.
    pub fn parse(text: &str, timezone: &str) -> Result<Self, Refused> {
        let tz = Tz::from_str(timezone.trim())
            .map_err(|_| Refused(format!("unknown time zone `{timezone}` (use an IANA name such as Europe/Paris)")))?;
        let text = text.trim();
        if text.is_empty() || text.len() > 200 {
            return Err(Refused("a schedule is 1 to 200 characters".into()));
        }
        let (cron, what) = if looks_like_cron(text) {
            let pattern =
                Cron::from_str(text).map_err(|e| Refused(format!("invalid cron expression `{text}`: {e}")))?;
            (text.to_owned(), pattern.describe())
        } else {
            let read = grammar::read(text).map_err(|e| Refused(e.to_string()))?;
            (read.cron, read.description)
        };
        let pattern = Cron::from_str(&cron).map_err(|e| Refused(format!("`{cron}`: {e}")))?;
        let s = Self { description: format!("{what} ({tz})"), cron, timezone: tz, pattern };
        // A pattern that never matches (the 31st of February) is refused rather than kept idle.
        if s.next_after(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap_or_default()).is_none() {
            return Err(Refused(format!("`{text}` never falls due")));
        }
        Ok(s)
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.timezone);
        self.pattern.find_next_occurrence(&local, false).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The slots in `[from, to]`, oldest first, at most `max` of them (the latest `max` when
    /// there are more), and how many there were in all.
    pub fn slots_between(&self, from: DateTime<Utc>, to: DateTime<Utc>, max: usize) -> (Vec<DateTime<Utc>>, usize) {
        let mut out = std::collections::VecDeque::new();
        let mut total = 0;
        let mut cursor = from - chrono::Duration::microseconds(1);
        while let Some(next) = self.next_after(cursor) {
            if next > to {
                break;
            }
            total += 1;
            out.push_back(next);
            if out.len() > max {
                out.pop_front();
            }
            cursor = next;
        }
        (out.into(), total)
    }
}

/// Five fields of cron characters (`*`, digits, `,-/`, `L`, `W`, `#`, `?`, names).
fn looks_like_cron(text: &str) -> bool {
    let fields: Vec<&str> = text.split_whitespace().collect();
    fields.len() == 5
        && fields[0].starts_with(|c: char| c.is_ascii_digit() || c == '*')
        && fields.iter().all(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || "*,-/#?".contains(c)))
}

#[cfg(test)]
mod tests;
