use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("a test time").with_timezone(&Utc)
}

fn plans(slots: &[&str], total: usize, now: &str, policy: MissedPolicy) -> Vec<(String, bool)> {
    let slots: Vec<_> = slots.iter().map(|s| at(s)).collect();
    plan_slots(&slots, total, at(now), policy)
        .into_iter()
        .map(|(s, p)| (s.format("%H:%M").to_string(), p == SlotPlan::Fire))
        .collect()
}

#[test]
fn slots_follow_the_missed_policy() {
    let three = ["2026-12-07T09:00:00Z", "2026-12-07T10:00:00Z", "2026-12-07T11:00:00Z"];
    let cases: [(&str, MissedPolicy, &str, [bool; 3]); 7] = [
        (
            "on time: the last slot fires, the missed ones follow latest",
            MissedPolicy::Latest,
            "2026-12-07T11:00:30Z",
            [false, false, true],
        ),
        (
            "none on time: only the latest missed fires",
            MissedPolicy::Latest,
            "2026-12-07T12:30:00Z",
            [false, false, true],
        ),
        ("skip: missed ones never fire", MissedPolicy::Skip, "2026-12-07T12:30:00Z", [false, false, false]),
        ("skip: the on-time one still fires", MissedPolicy::Skip, "2026-12-07T11:00:59Z", [false, false, true]),
        ("all: everything fires", MissedPolicy::All, "2026-12-07T12:30:00Z", [true, true, true]),
        ("all, on time", MissedPolicy::All, "2026-12-07T11:00:01Z", [true, true, true]),
        ("grace is a minute", MissedPolicy::Skip, "2026-12-07T11:01:01Z", [false, false, false]),
    ];
    for (what, policy, now, want) in cases {
        let got: Vec<bool> = plans(&three, 3, now, policy).into_iter().map(|(_, f)| f).collect();
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn older_slots_beyond_the_catch_up_are_counted_on_the_first() {
    let slots = ["2026-12-07T10:00:00Z", "2026-12-07T11:00:00Z"];
    let out = plan_slots(&slots.map(at), 50, at("2026-12-07T11:00:10Z"), MissedPolicy::All);
    assert_eq!(out[0].1, SlotPlan::Skip("missed, with 48 older slots not recorded".into()));
    assert_eq!(out[1].1, SlotPlan::Fire);
}

fn firing(skipped: bool, status: Option<RunStatus>) -> FiringRecord {
    FiringRecord {
        firing: NewFiring {
            automation_id: AutomationId::new(),
            key: "k".into(),
            slot_at: None,
            source: FiringSource::Schedule,
            skipped,
            run_id: None,
            thread_id: None,
            reason: None,
        },
        run_status: status,
        created_at: Utc::now(),
    }
}

#[test]
fn failures_are_counted_in_a_row_from_the_newest() {
    use RunStatus::*;
    let cases: [(&str, Vec<FiringRecord>, u32); 5] = [
        ("none", vec![], 0),
        (
            "two errors then a success",
            vec![firing(false, Some(Error)), firing(false, Some(Error)), firing(false, Some(Completed))],
            2,
        ),
        ("a success first", vec![firing(false, Some(Completed)), firing(false, Some(Error))], 0),
        (
            "skipped and running firings are passed over",
            vec![firing(false, Some(Running)), firing(true, None), firing(false, Some(Error))],
            1,
        ),
        (
            "an interrupted run breaks the row",
            vec![firing(false, Some(Error)), firing(false, Some(Interrupted)), firing(false, Some(Error))],
            1,
        ),
    ];
    for (what, firings, want) in cases {
        assert_eq!(consecutive_failures(&firings), want, "{what}");
    }
}
