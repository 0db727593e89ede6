use super::*;
use chrono::{Datelike, Duration, Timelike};
use proptest::prelude::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("a test time").with_timezone(&Utc)
}

#[test]
fn cron_and_phrases_are_echoed_with_their_zone() {
    let s = Schedule::parse("every Monday at 9am", "Europe/Paris").unwrap();
    assert_eq!(s.cron, "0 9 * * 1");
    assert_eq!(s.description, "every Monday at 09:00 (Europe/Paris)");
    let c = Schedule::parse("*/10 * * * *", "UTC").unwrap();
    assert_eq!(c.cron, "*/10 * * * *");
    assert!(c.description.ends_with("(UTC)"), "{}", c.description);
    // 2026-12-07 is a Monday; 09:00 in Paris is 08:00 UTC in winter.
    assert_eq!(s.next_after(utc("2026-12-02T10:00:00Z")), Some(utc("2026-12-07T08:00:00Z")));
}

#[test]
fn refuses_bad_zones_crons_and_phrases() {
    for (text, tz, says) in [
        ("every monday at 9", "Mars/Olympus", "unknown time zone"),
        ("61 * * * *", "UTC", "invalid cron"),
        ("0 0 31 2 *", "UTC", "never falls due"),
        ("every monday at nine-ish", "UTC", "understood `every monday at` but not `nine-ish`"),
        ("", "UTC", "1 to 200"),
    ] {
        let e = Schedule::parse(text, tz).expect_err(text);
        assert!(e.0.contains(says), "{text}: {}", e.0);
    }
}

#[test]
fn a_slot_in_a_skipped_hour_fires_once_after_the_gap() {
    // Europe/Paris springs forward on 2026-03-29: 02:00 → 03:00 (01:00 UTC).
    let s = Schedule::parse("30 2 * * *", "Europe/Paris").unwrap();
    let (slots, n) = s.slots_between(utc("2026-03-27T00:00:00Z"), utc("2026-03-31T00:00:00Z"), 10);
    assert_eq!(n, 4, "{slots:?}");
    assert_eq!(
        slots,
        vec![
            utc("2026-03-27T01:30:00Z"),
            utc("2026-03-28T01:30:00Z"),
            utc("2026-03-29T01:00:00Z"), // 03:00 CEST: the first instant after the gap
            utc("2026-03-30T00:30:00Z"),
        ]
    );
    // America/New_York springs forward on 2026-03-08: 02:00 EST → 03:00 EDT (07:00 UTC).
    let ny = Schedule::parse("every day at 2:15am", "America/New_York").unwrap();
    let (slots, _) = ny.slots_between(utc("2026-03-07T00:00:00Z"), utc("2026-03-09T12:00:00Z"), 10);
    assert_eq!(slots, vec![utc("2026-03-07T07:15:00Z"), utc("2026-03-08T07:00:00Z"), utc("2026-03-09T06:15:00Z")]);
}

#[test]
fn a_slot_in_a_repeated_hour_fires_once() {
    // Europe/Paris falls back on 2026-10-25: 03:00 CEST → 02:00 CET, so 02:30 happens twice.
    let s = Schedule::parse("30 2 * * *", "Europe/Paris").unwrap();
    let (slots, _) = s.slots_between(utc("2026-10-24T00:00:00Z"), utc("2026-10-27T00:00:00Z"), 10);
    assert_eq!(
        slots,
        vec![utc("2026-10-24T00:30:00Z"), utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")],
        "the first 02:30 only"
    );
    // America/New_York falls back on 2026-11-01: 01:30 happens at 05:30 and 06:30 UTC.
    let ny = Schedule::parse("every day at 1:30am", "America/New_York").unwrap();
    let (slots, _) = ny.slots_between(utc("2026-10-31T12:00:00Z"), utc("2026-11-02T12:00:00Z"), 10);
    assert_eq!(slots, vec![utc("2026-11-01T05:30:00Z"), utc("2026-11-02T06:30:00Z")]);
}

#[test]
fn interval_schedules_keep_their_pace_across_transitions() {
    // Every 15 minutes across the Paris spring-forward: no slot lost or doubled in UTC terms.
    let s = Schedule::parse("every 15 minutes", "Europe/Paris").unwrap();
    let (slots, n) = s.slots_between(utc("2026-03-29T00:00:00Z"), utc("2026-03-29T02:00:00Z"), 100);
    assert_eq!(n, 9, "{slots:?}");
    assert!(slots.windows(2).all(|w| w[1] - w[0] == Duration::minutes(15)), "{slots:?}");
}

#[test]
fn slots_between_keeps_the_latest_when_capped() {
    let s = Schedule::parse("every minute", "UTC").unwrap();
    let (slots, n) = s.slots_between(utc("2026-12-01T00:00:00Z"), utc("2026-12-01T01:00:00Z"), 3);
    assert_eq!(n, 61);
    assert_eq!(slots, vec![utc("2026-12-01T00:58:00Z"), utc("2026-12-01T00:59:00Z"), utc("2026-12-01T01:00:00Z")]);
}

/// The first minute after `t` at which `matches` holds, found by walking minute by minute.
fn brute_next(t: DateTime<Utc>, tz: Tz, matches: impl Fn(&DateTime<Tz>) -> bool) -> DateTime<Utc> {
    let mut m = t.with_second(0).and_then(|m| m.with_nanosecond(0)).unwrap_or(t) + Duration::minutes(1);
    loop {
        if matches(&m.with_timezone(&tz)) {
            return m;
        }
        m += Duration::minutes(1);
    }
}

const PHRASE_DAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Weekday phrases: croner's next slot for the cron we read equals a brute-force search
    /// for the phrase's meaning (outside transitions, in UTC and in Paris).
    #[test]
    fn weekday_phrases_round_trip(
        days in proptest::collection::btree_set(0usize..7, 1..4),
        h in 0u32..24,
        m in 0u32..60,
        start in 0i64..(365 * 24 * 60),
        paris in any::<bool>(),
    ) {
        let names: Vec<&str> = days.iter().map(|d| PHRASE_DAYS[*d]).collect();
        let hour12 = if h % 12 == 0 { 12 } else { h % 12 };
        let text = format!("every {} at {hour12}:{m:02}{}", names.join(" and "), if h < 12 { "am" } else { "pm" });
        let tz_name = if paris { "Europe/Paris" } else { "UTC" };
        let s = Schedule::parse(&text, tz_name).unwrap();
        let tz = s.timezone;
        let t = utc("2026-01-05T00:00:00Z") + Duration::minutes(start);
        let want = brute_next(t, tz, |d| {
            days.contains(&(d.weekday().num_days_from_sunday() as usize)) && d.hour() == h && d.minute() == m
        });
        // Near a transition the phrase's wall-clock time may not exist or exist twice: the DST
        // tests above own those cases.
        let near_transition = (want - t) > Duration::days(8);
        prop_assume!(!near_transition);
        prop_assert_eq!(s.next_after(t), Some(want), "{} read as {}", text, s.cron);
    }

    /// `every N minutes|hours` and `on the Nth of every month` agree with a brute-force search.
    #[test]
    fn interval_and_monthly_phrases_round_trip(
        pick in 0usize..3,
        n_idx in 0usize..6,
        day in 1u32..29,
        start in 0i64..(365 * 24 * 60),
    ) {
        let t = utc("2026-01-01T00:00:00Z") + Duration::minutes(start);
        let (text, want) = match pick {
            0 => {
                let n = [1u32, 2, 5, 10, 15, 30][n_idx];
                (format!("every {n} minutes"), brute_next(t, Tz::UTC, |d| d.minute() % n == 0))
            }
            1 => {
                let n = [1u32, 2, 3, 4, 6, 12][n_idx];
                (format!("every {n} hours"), brute_next(t, Tz::UTC, |d| d.hour() % n == 0 && d.minute() == 0))
            }
            _ => (
                format!("on the {day}th of every month at 7:05"),
                brute_next(t, Tz::UTC, |d| d.day() == day && d.hour() == 7 && d.minute() == 5),
            ),
        };
        let s = Schedule::parse(&text, "UTC").unwrap();
        prop_assert_eq!(s.next_after(t), Some(want), "{} read as {}", text, s.cron);
    }
}
