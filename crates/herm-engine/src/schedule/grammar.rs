//! Our own small grammar of plain-language schedules, read into a 5-field cron expression and
//! a description a person can check. Pure and table-tested; what it cannot read is refused
//! with what it understood so far and the words it stopped at, never guessed at (the
//! failure of general english-to-cron libraries: "every Monday at 9" read as every minute on
//! Mondays).
//!
//! Forms (case-insensitive, `T` a time such as `9`, `9am`, `9:30 pm`, `17:30`, `noon`,
//! `midnight`; "at T" optional where shown in brackets, midnight when left out):
//! - `every minute`, `every N minutes` (N divides 60), `hourly`, `every hour`,
//!   `every N hours` (N divides 24)
//! - `daily [at T]`, `every day [at T]`, `weekly` (Mondays at midnight), `monthly`
//! - `every <weekday>[s] [at T]`, lists: `every Monday and Thursday at 9`,
//!   `every mon, wed and fri at 9am`; `every weekday [at T]`, `every weekend [at T]`
//! - `on the Nth of every month [at T]`, `monthly on the Nth [at T]`
//! - `every month on the last day [at T]`, `on the last day of every month [at T]`

/// A schedule read from plain language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub cron: String,
    pub description: String,
}

/// Why a phrase could not be read: what was understood and where it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unread {
    pub understood: String,
    pub rest: String,
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.understood.is_empty() {
            write!(f, "could not read `{}` as a schedule", self.rest)
        } else {
            write!(f, "understood `{}` but not `{}`", self.understood, self.rest)
        }
    }
}

const WEEKDAYS: [(&str, &str, u8); 7] = [
    ("sunday", "sun", 0),
    ("monday", "mon", 1),
    ("tuesday", "tue", 2),
    ("wednesday", "wed", 3),
    ("thursday", "thu", 4),
    ("friday", "fri", 5),
    ("saturday", "sat", 6),
];
const DAY_NAMES: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// A cursor over the phrase's words, remembering how many were understood.
struct Words {
    words: Vec<String>,
    at: usize,
}

impl Words {
    fn new(text: &str) -> Self {
        let spaced = text.to_lowercase().replace(',', " , ");
        Self { words: spaced.split_whitespace().map(str::to_owned).collect(), at: 0 }
    }
    fn peek(&self) -> Option<&str> {
        self.words.get(self.at).map(String::as_str)
    }
    fn eat(&mut self, w: &str) -> bool {
        if self.peek() == Some(w) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn eat_any(&mut self, ws: &[&str]) -> bool {
        ws.iter().any(|w| self.eat(w))
    }
    fn done(&self) -> bool {
        self.at >= self.words.len()
    }
    fn unread(&self, upto: usize) -> Unread {
        let understood = self.words[..upto.min(self.words.len())].join(" ").replace(" ,", ",");
        let rest = self.words[upto.min(self.words.len())..].join(" ").replace(" ,", ",");
        Unread { understood, rest }
    }
}

/// Reads a plain-language schedule.
pub fn read(text: &str) -> Result<Read, Unread> {
    let mut w = Words::new(text);
    let out = phrase(&mut w).ok_or_else(|| w.unread(w.at))?;
    if !w.done() {
        return Err(w.unread(w.at));
    }
    Ok(out)
}

fn phrase(w: &mut Words) -> Option<Read> {
    if w.eat("hourly") {
        return Some(read_of("0 * * * *", "every hour, on the hour"));
    }
    if w.eat("daily") {
        return at_time(w, "* *", "every day");
    }
    if w.eat("weekly") {
        return at_time(w, "* 1", "every Monday");
    }
    if w.eat("monthly") {
        if w.eat("on") {
            return day_of_month(w);
        }
        return at_time(w, "1 *", "on the 1st of every month");
    }
    if w.eat("on") {
        w.eat("the");
        return day_of_month_after_the(w);
    }
    if !w.eat("every") {
        return None;
    }
    let n = w.peek().and_then(|s| s.parse::<u32>().ok());
    if let Some(n) = n {
        let start = w.at;
        w.at += 1;
        let out = every_n(w, n);
        if out.is_none() {
            w.at = start;
        }
        return out;
    }
    if w.eat("minute") {
        return Some(read_of("* * * * *", "every minute"));
    }
    if w.eat("hour") {
        return Some(read_of("0 * * * *", "every hour, on the hour"));
    }
    if w.eat("day") {
        return at_time(w, "* *", "every day");
    }
    if w.eat("week") {
        return at_time(w, "* 1", "every Monday");
    }
    if w.eat("month") {
        if w.eat("on") {
            w.eat("the");
            if w.eat("last") && w.eat("day") {
                return at_time(w, "L *", "on the last day of every month");
            }
            return None;
        }
        return at_time(w, "1 *", "on the 1st of every month");
    }
    if w.eat_any(&["weekday", "weekdays"]) {
        return at_time(w, "* 1-5", "every weekday (Monday to Friday)");
    }
    if w.eat_any(&["weekend", "weekends"]) {
        return at_time(w, "* 0,6", "every Saturday and Sunday");
    }
    let days = weekday_list(w)?;
    let names: Vec<&str> = days.iter().map(|d| DAY_NAMES[*d as usize]).collect();
    let field = days.iter().map(u8::to_string).collect::<Vec<_>>().join(",");
    at_time(w, &format!("* {field}"), &format!("every {}", join_names(&names)))
}

/// `every N minutes|hours`.
fn every_n(w: &mut Words, n: u32) -> Option<Read> {
    if w.eat_any(&["minute", "minutes", "min", "mins"]) {
        return match n {
            1 => Some(read_of("* * * * *", "every minute")),
            n if n < 60 && 60 % n == 0 => Some(read_of(&format!("*/{n} * * * *"), &format!("every {n} minutes"))),
            _ => None,
        };
    }
    if w.eat_any(&["hour", "hours", "hr", "hrs"]) {
        return match n {
            1 => Some(read_of("0 * * * *", "every hour, on the hour")),
            n if n < 24 && 24 % n == 0 => {
                Some(read_of(&format!("0 */{n} * * *"), &format!("every {n} hours, on the hour")))
            }
            _ => None,
        };
    }
    None
}

/// `Nth of every month`, `last day of every month` (after `on the`).
fn day_of_month_after_the(w: &mut Words) -> Option<Read> {
    if w.eat("last") {
        if !(w.eat("day") && w.eat("of") && w.eat("every") && w.eat("month")) {
            return None;
        }
        return at_time(w, "L *", "on the last day of every month");
    }
    let day = ordinal(w.peek()?)?;
    w.at += 1;
    if !(w.eat("of") && w.eat_any(&["every", "each"]) && w.eat("month")) {
        return None;
    }
    at_time(w, &format!("{day} *"), &format!("on the {} of every month", nth(day)))
}

/// `the Nth` or `the last day` (after `monthly on`).
fn day_of_month(w: &mut Words) -> Option<Read> {
    w.eat("the");
    if w.eat("last") {
        w.eat("day");
        return at_time(w, "L *", "on the last day of every month");
    }
    let day = ordinal(w.peek()?)?;
    w.at += 1;
    at_time(w, &format!("{day} *"), &format!("on the {} of every month", nth(day)))
}

/// `1st`, `2nd`, `15th`, `15` (1 to 31).
fn ordinal(s: &str) -> Option<u32> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    if !matches!(suffix, "" | "st" | "nd" | "rd" | "th") {
        return None;
    }
    digits.parse().ok().filter(|d| (1..=31).contains(d))
}

fn nth(d: u32) -> String {
    let suffix = match (d % 10, d % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{d}{suffix}")
}

/// `monday`, `mon and thu`, `mondays, wednesdays and fridays`.
fn weekday_list(w: &mut Words) -> Option<Vec<u8>> {
    let mut days = vec![weekday(w.peek()?)?];
    w.at += 1;
    loop {
        let save = w.at;
        if w.eat(",") {
            w.eat("and");
        } else if !w.eat("and") {
            break;
        }
        match w.peek().and_then(weekday) {
            Some(d) => {
                days.push(d);
                w.at += 1;
            }
            None => {
                w.at = save;
                break;
            }
        }
    }
    days.sort_unstable();
    days.dedup();
    Some(days)
}

fn weekday(s: &str) -> Option<u8> {
    let s = s.trim_end_matches('.');
    WEEKDAYS.iter().find_map(|(full, short, n)| {
        let plural = format!("{full}s");
        (s == *full || s == *short || s == plural || s.strip_suffix('s') == Some(short)).then_some(*n)
    })
}

fn join_names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The optional `at T` that ends most forms; `days` is the cron's day-of-month and
/// day-of-week fields.
fn at_time(w: &mut Words, days: &str, what: &str) -> Option<Read> {
    if w.done() {
        return Some(read_of(&format!("0 0 {}", month_fields(days)), &format!("{what} at 00:00")));
    }
    if !w.eat("at") {
        return None;
    }
    let (h, m) = time(w)?;
    Some(read_of(&format!("{m} {h} {}", month_fields(days)), &format!("{what} at {h:02}:{m:02}")))
}

/// Day fields `dom dow` into `dom month dow`.
fn month_fields(days: &str) -> String {
    let (dom, dow) = days.split_once(' ').unwrap_or((days, "*"));
    format!("{dom} * {dow}")
}

/// A time of day: `9`, `9am`, `9 am`, `9:30`, `9:30pm`, `9.30 p.m.`, `17:30`, `noon`, `midnight`.
fn time(w: &mut Words) -> Option<(u32, u32)> {
    if w.eat("noon") {
        return Some((12, 0));
    }
    if w.eat("midnight") {
        return Some((0, 0));
    }
    let start = w.at;
    let raw = w.peek()?.to_owned();
    let (body, mut meridiem) = split_meridiem(&raw);
    let (h, m) = match body.split_once([':', '.']) {
        Some((h, m)) if m.len() == 2 => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
        Some(_) => return None,
        None => (body.parse::<u32>().ok()?, 0),
    };
    w.at += 1;
    if meridiem.is_none() {
        meridiem = match w.peek() {
            Some("am" | "a.m." | "a.m") => Some(false),
            Some("pm" | "p.m." | "p.m") => Some(true),
            _ => None,
        };
        if meridiem.is_some() {
            w.at += 1;
        }
    }
    let h = match meridiem {
        None if h <= 23 => h,
        Some(pm) if (1..=12).contains(&h) => (h % 12) + if pm { 12 } else { 0 },
        _ => {
            w.at = start;
            return None;
        }
    };
    if m > 59 {
        w.at = start;
        return None;
    }
    Some((h, m))
}

/// `9am` → (`9`, Some(false)); `9:30pm` → (`9:30`, Some(true)); `17:30` → (`17:30`, None).
fn split_meridiem(s: &str) -> (&str, Option<bool>) {
    for (suffix, pm) in [("a.m.", false), ("p.m.", true), ("am", false), ("pm", true)] {
        if let Some(b) = s.strip_suffix(suffix)
            && !b.is_empty()
        {
            return (b, Some(pm));
        }
    }
    (s, None)
}

fn read_of(cron: &str, description: &str) -> Read {
    Read { cron: cron.to_owned(), description: description.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_forms() {
        let cases = [
            ("every minute", "* * * * *", "every minute"),
            ("every 15 minutes", "*/15 * * * *", "every 15 minutes"),
            ("every 5 mins", "*/5 * * * *", "every 5 minutes"),
            ("every 1 minute", "* * * * *", "every minute"),
            ("hourly", "0 * * * *", "every hour, on the hour"),
            ("every hour", "0 * * * *", "every hour, on the hour"),
            ("every 2 hours", "0 */2 * * *", "every 2 hours, on the hour"),
            ("daily at 9am", "0 9 * * *", "every day at 09:00"),
            ("daily", "0 0 * * *", "every day at 00:00"),
            ("every day at 17:30", "30 17 * * *", "every day at 17:30"),
            ("Every Monday at 9am", "0 9 * * 1", "every Monday at 09:00"),
            ("every mondays at 9", "0 9 * * 1", "every Monday at 09:00"),
            ("every monday at 9 am", "0 9 * * 1", "every Monday at 09:00"),
            ("every Monday and Thursday at 9", "0 9 * * 1,4", "every Monday and Thursday at 09:00"),
            ("every mon, wed and fri at 9:15pm", "15 21 * * 1,3,5", "every Monday, Wednesday and Friday at 21:15"),
            ("every sunday at 12am", "0 0 * * 0", "every Sunday at 00:00"),
            ("every sunday at 12pm", "0 12 * * 0", "every Sunday at 12:00"),
            ("every weekday at 17:30", "30 17 * * 1-5", "every weekday (Monday to Friday) at 17:30"),
            ("every weekend at noon", "0 12 * * 0,6", "every Saturday and Sunday at 12:00"),
            ("on the 1st of every month at 8am", "0 8 1 * *", "on the 1st of every month at 08:00"),
            ("on the 22nd of each month at 23:59", "59 23 22 * *", "on the 22nd of every month at 23:59"),
            ("monthly on the 15th at 10", "0 10 15 * *", "on the 15th of every month at 10:00"),
            ("every month on the last day", "0 0 L * *", "on the last day of every month at 00:00"),
            ("every month on the last day at 6pm", "0 18 L * *", "on the last day of every month at 18:00"),
            ("on the last day of every month at midnight", "0 0 L * *", "on the last day of every month at 00:00"),
            ("weekly", "0 0 * * 1", "every Monday at 00:00"),
            ("every week at 8", "0 8 * * 1", "every Monday at 08:00"),
        ];
        for (text, cron, description) in cases {
            let r = read(text).unwrap_or_else(|e| panic!("`{text}`: {e}"));
            assert_eq!(r.cron, cron, "{text}");
            assert_eq!(r.description, description, "{text}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_read_and_says_where() {
        let cases = [
            ("every Monday at nine-ish", "every monday at", "nine-ish"),
            ("every 7 minutes", "every", "7 minutes"),
            ("every 25 hours", "every", "25 hours"),
            ("every monday at 25:00", "every monday at", "25:00"),
            ("every monday at 13pm", "every monday at", "13pm"),
            ("every fortnight", "every", "fortnight"),
            ("whenever you like", "", "whenever you like"),
            ("daily at 9am please", "daily at 9am", "please"),
            ("on the 32nd of every month", "on the", "32nd of every month"),
        ];
        for (text, understood, rest) in cases {
            let e = read(text).expect_err(text);
            assert_eq!((e.understood.as_str(), e.rest.as_str()), (understood, rest), "{text}");
        }
        assert_eq!(
            read("every Monday at nine-ish").unwrap_err().to_string(),
            "understood `every monday at` but not `nine-ish`"
        );
    }
}
