//! Restart windows: when the daemon may be restarted, in local time (`restart_window`).
//!
//! The grammar is a small subset of systemd.time(7)'s calendar events, with an end time:
//!
//! ```text
//! value    = window *( ";" window )
//! window   = [ weekdays ] [ "*-*-*" ] time "-" time
//! weekdays = item *( "," item )          ; Mon,Wed..Fri
//! item     = day [ ".." day ]            ; a range goes forward: Mon..Fri, not Fri..Mon
//! day      = Mon | Tue | Wed | Thu | Fri | Sat | Sun   ; or the full name; any case
//! time     = H:MM | HH:MM                ; 00:00 to 23:59; an end may also be 24:00
//! ```
//!
//! Examples: `Mon..Fri 02:00-05:00`, `*-*-* 03:00-04:30`, `Sat,Sun 00:00-24:00`,
//! `22:00-02:00`, `Mon..Fri 02:00-05:00; Sat,Sun 10:00-12:00`.
//!
//! A window is open from its start (included) to its end (excluded) on each listed
//! weekday; without weekdays, every day. An end at or before the start crosses midnight:
//! `Fri 22:00-02:00` runs from Friday 22:00 to Saturday 02:00 (the weekdays name the day a
//! window opens). Several windows, separated by `;`, are open when any one is.
//!
//! Times are wall-clock times in the host's time zone. Across a daylight-saving change, a
//! window is open at an instant when the local time at that instant falls inside it: when
//! clocks skip 02:00–03:00, `02:00-05:00` opens at 03:00, and `02:15-02:45` does not open
//! that day; when clocks repeat 02:00–03:00, `02:00-02:30` is open twice.
//!
//! The functions here are pure: they take the local time, or a function giving the UTC
//! offset in force at an instant ([`local_offset_at`] is the real one), so tests can pass
//! any zone, including one changing to or from daylight-saving time.

use std::fmt;
use std::str::FromStr;

use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset, Weekday};

/// Minutes in a day; the largest end time (24:00).
const DAY_MINUTES: u16 = 24 * 60;

/// How far [`Windows::next_start`] looks ahead: a week, plus a week more for a weekly
/// window whose only occurrence fell into a skipped daylight-saving hour.
const HORIZON_MINUTES: i64 = 15 * 24 * 60;

/// Day names, Monday first (bit `i` of [`Window::days`] is `DAYS[i]`).
const DAYS: [(&str, &str); 7] = [
    ("Mon", "Monday"),
    ("Tue", "Tuesday"),
    ("Wed", "Wednesday"),
    ("Thu", "Thursday"),
    ("Fri", "Friday"),
    ("Sat", "Saturday"),
    ("Sun", "Sunday"),
];

const EVERY_DAY: u8 = 0b111_1111;

/// One window: weekdays and a time span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit 0 = Monday … bit 6 = Sunday: the days the window opens.
    days: u8,
    /// Minutes after midnight, `0..1440`.
    start: u16,
    /// Minutes after midnight, `1..=1440`; at or before `start`: the next day.
    end: u16,
}

impl Window {
    fn opens_on(self, day: Weekday) -> bool {
        self.days & (1 << day.number_days_from_monday()) != 0
    }

    fn crosses_midnight(self) -> bool {
        self.end <= self.start
    }

    /// Whether the window is open at this local time.
    pub fn contains(self, local: PrimitiveDateTime) -> bool {
        let minute = u16::from(local.hour()) * 60 + u16::from(local.minute());
        let day = local.weekday();
        if self.crosses_midnight() {
            (self.opens_on(day) && minute >= self.start)
                || (self.opens_on(day.previous()) && minute < self.end)
        } else {
            self.opens_on(day) && minute >= self.start && minute < self.end
        }
    }
}

/// The canonical spelling: `Mon..Fri 02:00-05:00`, `Sat,Sun 22:00-02:00`, `03:00-04:30`
/// (every day).
impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.days != EVERY_DAY {
            write!(f, "{} ", format_days(self.days))?;
        }
        write!(f, "{}-{}", clock(self.start), clock(self.end))
    }
}

fn clock(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Runs of three or more days as `a..b`, the rest as a list.
fn format_days(days: u8) -> String {
    let mut items = Vec::new();
    let mut i = 0;
    while i < 7 {
        if days & (1 << i) == 0 {
            i += 1;
            continue;
        }
        let mut j = i;
        while j + 1 < 7 && days & (1 << (j + 1)) != 0 {
            j += 1;
        }
        if j - i >= 2 {
            items.push(format!("{}..{}", DAYS[i].0, DAYS[j].0));
        } else {
            items.extend((i..=j).map(|k| DAYS[k].0.to_owned()));
        }
        i = j + 1;
    }
    items.join(",")
}

/// Whether a switch may happen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowNow {
    /// No window configured, `--now`, or inside a window.
    Open,
    /// Outside every window; the next one opens then (if known).
    Closed(Option<OffsetDateTime>),
}

impl WindowNow {
    /// The window at `now` (local time from the system's time zone); `None` windows: any
    /// time. `force_now` (`--now`) opens it.
    pub fn at(windows: Option<&Windows>, now: OffsetDateTime, force_now: bool) -> Self {
        let Some(windows) = windows.filter(|_| !force_now) else {
            return Self::Open;
        };
        let offset_at = |t| local_offset_at(t).unwrap_or(UtcOffset::UTC);
        match windows.next_start(now, offset_at) {
            Some(t) if t == now => Self::Open,
            opens => Self::Closed(opens),
        }
    }
}

/// A `restart_window` value: one or more windows, open when any one is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows(Vec<Window>);

impl Windows {
    /// Parses a value; windows are separated by `;`.
    pub fn parse(value: &str) -> Result<Self, WindowError> {
        Self::parse_list(&[value])
    }

    /// Parses a list of values (a TOML array), each of which may hold several windows.
    pub fn parse_list<S: AsRef<str>>(values: &[S]) -> Result<Self, WindowError> {
        let mut windows = Vec::new();
        for part in values.iter().flat_map(|v| v.as_ref().split(';')) {
            if !part.trim().is_empty() {
                windows.push(parse_window(part)?);
            }
        }
        if windows.is_empty() {
            return Err(WindowError {
                window: values
                    .iter()
                    .map(AsRef::as_ref)
                    .collect::<Vec<_>>()
                    .join(";"),
                problem: "no window given (leave restart_window out to allow restarts at any time)"
                    .to_owned(),
            });
        }
        Ok(Self(windows))
    }

    /// The windows, in the order given.
    pub fn windows(&self) -> &[Window] {
        &self.0
    }

    /// Whether a window is open at this local time.
    pub fn contains(&self, local: PrimitiveDateTime) -> bool {
        self.0.iter().any(|w| w.contains(local))
    }

    /// The first instant at or after `now` when a window is open: `now` itself while one is
    /// open, else the moment the next one opens (for "restarts in the window at …").
    /// `offset_at` gives the local UTC offset in force at an instant.
    ///
    /// To the minute (UTC offsets are whole minutes); `None` if no window opens within
    /// 15 days, which only a window lost to daylight-saving changes can cause.
    pub fn next_start(
        &self,
        now: OffsetDateTime,
        offset_at: impl Fn(OffsetDateTime) -> UtcOffset,
    ) -> Option<OffsetDateTime> {
        let local = |t: OffsetDateTime| {
            let t = t.to_offset(offset_at(t));
            PrimitiveDateTime::new(t.date(), t.time())
        };
        if self.contains(local(now)) {
            return Some(now);
        }
        // Windows open on whole local minutes, and local minutes begin on whole UTC
        // minutes, so the next opening is one of the coming whole minutes. Stepping through
        // them, rather than solving local time backwards, is what gets the instants around
        // daylight-saving changes right (skipped and repeated hours).
        let mut t = now.replace_second(0).ok()?.replace_nanosecond(0).ok()?;
        for _ in 0..HORIZON_MINUTES {
            t += time::Duration::MINUTE;
            if self.contains(local(t)) {
                return Some(t);
            }
        }
        None
    }
}

impl FromStr for Windows {
    type Err = WindowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `Mon..Fri 02:00-05:00; Sat,Sun 10:00-12:00`.
impl fmt::Display for Windows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Window::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// A `restart_window` that could not be read: which window, what is wrong, and how a
/// valid one looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowError {
    /// The window (one `;`-separated part) as written.
    pub window: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "restart_window {:?}: {}\nhelp: weekdays (optional), then HH:MM-HH:MM in local time, e.g. \"Mon..Fri 02:00-05:00\", \"22:00-02:00\" (across midnight) or \"Mon..Fri 02:00-05:00; Sat,Sun 00:00-24:00\"",
            self.window.trim(),
            self.problem
        )
    }
}

impl std::error::Error for WindowError {}

fn parse_window(text: &str) -> Result<Window, WindowError> {
    let fail = |problem: String| WindowError {
        window: text.to_owned(),
        problem,
    };
    let normalized = tighten(text);
    let tokens: Vec<&str> = normalized.split_whitespace().collect();
    let Some((span, before)) = tokens.split_last() else {
        return Err(fail("empty window".to_owned()));
    };
    let (days, date) = match before {
        [] => (None, None),
        [one] if one.contains('*') || one.starts_with(|c: char| c.is_ascii_digit()) => {
            (None, Some(*one))
        }
        [one] => (Some(*one), None),
        [days, date] => (Some(*days), Some(*date)),
        _ => {
            return Err(fail(format!(
                "too many parts: expected at most weekdays, `*-*-*` and a time range, found {} parts",
                tokens.len()
            )));
        }
    };
    if let Some(date) = date
        && date != "*-*-*"
    {
        return Err(fail(if parse_day(date).is_some() {
            format!("weekdays come first, before `*-*-*`; found {date:?} after the date")
        } else if date.contains(':') {
            format!(
                "one time range per window, found {date:?} and {span:?}; separate windows with `;`"
            )
        } else {
            format!("only `*-*-*` (every day) is supported as a date, not {date:?}")
        }));
    }
    let days = match days {
        Some(d) => parse_days(d).map_err(fail)?,
        None => EVERY_DAY,
    };
    let (start, end) = parse_span(span).map_err(fail)?;
    Ok(Window { days, start, end })
}

/// Drops spaces around `,`, `..` and `-`, so `Mon, Tue` and `02:00 - 05:00` read as meant
/// (but keeps the one after a trailing comma: `Sat,Sun, 10:00-12:00`).
fn tighten(text: &str) -> String {
    let chars: Vec<char> = text.trim().chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        if c.is_whitespace() {
            let prev = chars[..i].iter().rev().find(|c| !c.is_whitespace());
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            let joined = next.is_some_and(|n| matches!(n, ',' | '.' | '-'))
                || prev.is_some_and(|p| matches!(p, '.' | '-'))
                || (prev == Some(&',') && next.is_some_and(char::is_ascii_alphabetic));
            if joined {
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn parse_day(name: &str) -> Option<u8> {
    DAYS.iter()
        .position(|(short, long)| {
            name.eq_ignore_ascii_case(short) || name.eq_ignore_ascii_case(long)
        })
        .and_then(|i| u8::try_from(i).ok())
}

fn parse_days(text: &str) -> Result<u8, String> {
    let known = "Mon, Tue, Wed, Thu, Fri, Sat, Sun";
    let day = |name: &str| {
        parse_day(name).ok_or_else(|| {
            if name.contains('-') && name.split('-').all(|d| parse_day(d).is_some()) {
                format!(
                    "write a range of days with `..`: {:?}",
                    name.replace('-', "..")
                )
            } else if name.is_empty() {
                "a weekday is missing".to_owned()
            } else {
                format!("unknown weekday {name:?} (use {known})")
            }
        })
    };
    let mut bits = 0u8;
    // A trailing comma is allowed, as systemd allows it.
    for item in text.strip_suffix(',').unwrap_or(text).split(',') {
        match item.split_once("..") {
            Some((from, to)) => {
                let (a, b) = (day(from)?, day(to)?);
                if a > b {
                    let run = |x: u8, y: u8| {
                        let (x, y) = (DAYS[usize::from(x)].0, DAYS[usize::from(y)].0);
                        if x == y {
                            x.to_owned()
                        } else {
                            format!("{x}..{y}")
                        }
                    };
                    return Err(format!(
                        "the range {item:?} goes backwards; ranges run Mon..Sun, so write {},{}",
                        run(a, 6),
                        run(0, b)
                    ));
                }
                for d in a..=b {
                    bits |= 1 << d;
                }
            }
            None => bits |= 1 << day(item)?,
        }
    }
    Ok(bits)
}

/// `HH:MM-HH:MM` as minutes after midnight.
fn parse_span(text: &str) -> Result<(u16, u16), String> {
    let Some((from, to)) = text.split_once('-') else {
        return Err(format!(
            "expected a time range like 02:00-05:00, found {text:?}"
        ));
    };
    let start = parse_clock(from)?;
    let end = parse_clock(to)?;
    if start == DAY_MINUTES {
        return Err("a window cannot start at 24:00; start at 00:00".to_owned());
    }
    if start == end {
        return Err(format!(
            "{from}-{to} is empty (start and end are the same); for a whole day write 00:00-24:00"
        ));
    }
    Ok((start, end))
}

fn parse_clock(text: &str) -> Result<u16, String> {
    let bad =
        || format!("{text:?} is not a time of day (HH:MM, 00:00 to 23:59, or 24:00 as an end)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str, max_len| {
        !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// The local UTC offset in force at `t`, from the C library (`localtime_r`), which honours
/// `TZ` and otherwise `/etc/localtime`.
///
/// Unlike `time::UtcOffset::current_local_offset`, this works in a multi-threaded program:
/// the `time` crate refuses because another thread could change the environment while the
/// C library reads `TZ`; this program never changes its own environment (`set_var` is
/// `unsafe` in edition 2024 and unused here).
pub fn local_offset_at(t: OffsetDateTime) -> std::io::Result<UtcOffset> {
    let secs = libc::time_t::try_from(t.unix_timestamp()).map_err(std::io::Error::other)?;
    // SAFETY: localtime_r writes only into the zeroed `tm` we own; both pointers are valid
    // for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::localtime_r(&raw const secs, &raw mut tm) };
    if result.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    let seconds = i32::try_from(tm.tm_gmtoff).map_err(std::io::Error::other)?;
    UtcOffset::from_whole_seconds(seconds).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{datetime, offset};

    fn w(s: &str) -> Windows {
        Windows::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        Windows::parse(s).unwrap_err().to_string()
    }

    /// Europe/Berlin in 2026: CET (+01:00), CEST (+02:00) from 2026-03-29 01:00 UTC to
    /// 2026-10-25 01:00 UTC.
    fn berlin(t: OffsetDateTime) -> UtcOffset {
        if t >= datetime!(2026-03-29 01:00 UTC) && t < datetime!(2026-10-25 01:00 UTC) {
            offset!(+2)
        } else {
            offset!(+1)
        }
    }

    #[test]
    fn parses_the_documented_examples() {
        for (input, canonical) in [
            ("Mon..Fri 02:00-05:00", "Mon..Fri 02:00-05:00"),
            ("*-*-* 03:00-04:30", "03:00-04:30"),
            ("Sat,Sun 00:00-23:59", "Sat,Sun 00:00-23:59"),
            ("22:00-02:00", "22:00-02:00"),
            ("Mon..Fri *-*-* 2:00-5:00", "Mon..Fri 02:00-05:00"),
            (
                "monday,WEDNESDAY..friday 02:00-24:00",
                "Mon,Wed..Fri 02:00-24:00",
            ),
            ("Mon, Tue , Thu 02:00 - 03:00", "Mon,Tue,Thu 02:00-03:00"),
            ("Mon..Sun 01:00-02:00", "01:00-02:00"),
            ("Sat,Sun, 10:00-12:00", "Sat,Sun 10:00-12:00"),
            (
                "Mon..Fri 02:00-05:00; Sat,Sun 10:00-12:00;",
                "Mon..Fri 02:00-05:00; Sat,Sun 10:00-12:00",
            ),
        ] {
            assert_eq!(w(input).to_string(), canonical, "{input}");
            assert_eq!(w(canonical), w(input), "{canonical} reads back the same");
        }
    }

    #[test]
    fn a_list_of_values_is_the_union_of_their_windows() {
        let list =
            Windows::parse_list(&["Mon 01:00-02:00", "Tue 03:00-04:00; Wed 05:00-06:00"]).unwrap();
        assert_eq!(list.windows().len(), 3);
        assert_eq!(list, w("Mon 01:00-02:00; Tue 03:00-04:00; Wed 05:00-06:00"));
    }

    #[test]
    fn errors_say_what_is_wrong_and_show_a_valid_value() {
        for (input, problem) in [
            (
                "Mon..Fir 02:00-05:00",
                "unknown weekday \"Fir\" (use Mon, Tue",
            ),
            (
                "Mon-Fri 02:00-05:00",
                "write a range of days with `..`: \"Mon..Fri\"",
            ),
            (
                "Fri..Mon 22:00-06:00",
                "the range \"Fri..Mon\" goes backwards; ranges run Mon..Sun, so write Fri..Sun,Mon",
            ),
            (
                "02:00-02:00",
                "is empty (start and end are the same); for a whole day write 00:00-24:00",
            ),
            ("00:00-24:00x", "\"24:00x\" is not a time of day"),
            ("25:00-03:00", "\"25:00\" is not a time of day"),
            ("02:60-03:00", "\"02:60\" is not a time of day"),
            ("24:00-03:00", "a window cannot start at 24:00"),
            ("02:00-24:30", "\"24:30\" is not a time of day"),
            ("2:0-3:00", "\"2:0\" is not a time of day"),
            ("02:00:00-03:00:00", "is not a time of day"),
            (
                "02:00",
                "expected a time range like 02:00-05:00, found \"02:00\"",
            ),
            (
                "Mon",
                "expected a time range like 02:00-05:00, found \"Mon\"",
            ),
            (
                "2026-01-01 02:00-03:00",
                "only `*-*-*` (every day) is supported as a date, not \"2026-01-01\"",
            ),
            (
                "*-*-* Mon 02:00-03:00",
                "weekdays come first, before `*-*-*`",
            ),
            ("Mon..Fri *-*-* 02:00-03:00 04:00-05:00", "too many parts"),
            (
                "Mon 02:00-03:00 04:00-05:00",
                "one time range per window, found \"02:00-03:00\" and \"04:00-05:00\"; separate windows with `;`",
            ),
            ("02:00-03:00 04:00-05:00", "one time range per window"),
            ("Mon,,Tue 02:00-03:00", "a weekday is missing"),
            ("", "no window given"),
            (" ; ", "no window given"),
        ] {
            let e = err(input);
            assert!(e.contains(problem), "{input:?}: {e}");
            assert!(
                e.contains("\nhelp: weekdays (optional), then HH:MM-HH:MM in local time, e.g. \"Mon..Fri 02:00-05:00\""),
                "{e}"
            );
        }
        assert!(
            err("Mon 01:00-02:00; Tus 03:00-04:00")
                .starts_with("restart_window \"Tus 03:00-04:00\": ")
        );
    }

    #[test]
    fn a_window_includes_its_start_and_excludes_its_end() {
        let win = w("Mon..Fri 02:00-05:00");
        // 2026-12-07 is a Monday.
        assert!(!win.contains(datetime!(2026-12-07 01:59:59)));
        assert!(win.contains(datetime!(2026-12-07 02:00)));
        assert!(win.contains(datetime!(2026-12-07 04:59:59.999)));
        assert!(!win.contains(datetime!(2026-12-07 05:00)));
        assert!(win.contains(datetime!(2026-12-11 03:00)), "Friday");
        assert!(!win.contains(datetime!(2026-12-12 03:00)), "Saturday");
        assert!(!win.contains(datetime!(2026-12-13 03:00)), "Sunday");
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_opens() {
        let win = w("Fri 22:00-02:00");
        // 2026-12-11 is a Friday.
        assert!(!win.contains(datetime!(2026-12-11 21:59)));
        assert!(win.contains(datetime!(2026-12-11 22:00)));
        assert!(win.contains(datetime!(2026-12-11 23:59:59)));
        assert!(win.contains(datetime!(2026-12-12 00:00)), "Saturday, early");
        assert!(win.contains(datetime!(2026-12-12 01:59)));
        assert!(!win.contains(datetime!(2026-12-12 02:00)));
        assert!(
            !win.contains(datetime!(2026-12-12 22:00)),
            "Saturday evening"
        );
        assert!(
            !win.contains(datetime!(2026-12-11 01:00)),
            "Friday early is Thursday's"
        );
        let sunday = w("Sun 23:00-01:00");
        assert!(
            sunday.contains(datetime!(2026-12-14 00:30)),
            "into Monday, over the week's end"
        );
    }

    #[test]
    fn a_whole_day_and_several_windows() {
        let win = w("Sat,Sun 00:00-24:00; Wed 12:00-13:00");
        assert!(win.contains(datetime!(2026-12-12 00:00)));
        assert!(win.contains(datetime!(2026-12-13 23:59:59)));
        assert!(!win.contains(datetime!(2026-12-14 00:00)), "Monday");
        assert!(win.contains(datetime!(2026-12-09 12:30)), "Wednesday");
        assert!(!win.contains(datetime!(2026-12-09 13:00)));
    }

    #[test]
    fn next_start_is_now_inside_a_window() {
        let win = w("02:00-05:00");
        let now = datetime!(2026-12-07 03:12:45.5 +01:00);
        assert_eq!(win.next_start(now, |_| offset!(+1)), Some(now));
    }

    #[test]
    fn next_start_is_the_next_opening_in_local_time() {
        let win = w("Mon..Fri 02:00-05:00");
        // Saturday 2026-12-12 10:00 in India (+05:30): next Monday 02:00 there.
        let now = datetime!(2026-12-12 04:30 UTC);
        assert_eq!(
            win.next_start(now, |_| offset!(+5:30)),
            Some(datetime!(2026-12-14 02:00 +05:30))
        );
        // New York (-05:00), Monday 02:30 local is inside; 05:00 local is past it.
        let ny = |_| offset!(-5);
        assert_eq!(
            win.next_start(datetime!(2026-12-14 10:00 UTC), ny),
            Some(datetime!(2026-12-15 02:00 -5))
        );
    }

    #[test]
    fn next_start_when_the_clocks_skip_into_a_window() {
        // Berlin, Sunday 2026-03-29: at 02:00 CET the clocks go to 03:00 CEST.
        let now = datetime!(2026-03-29 00:30 UTC); // 01:30 CET
        assert_eq!(
            w("02:00-05:00").next_start(now, berlin),
            Some(datetime!(2026-03-29 03:00 +2)),
            "opens when the clock jumps to 03:00"
        );
        assert_eq!(
            w("02:15-02:45").next_start(now, berlin),
            Some(datetime!(2026-03-30 02:15 +2)),
            "does not exist that day; the next day's, in summer time"
        );
        assert_eq!(
            w("Sun 02:15-02:45").next_start(now, berlin),
            Some(datetime!(2026-04-05 02:15 +2)),
            "a weekly window lost to the change opens a week later"
        );
    }

    #[test]
    fn next_start_when_the_clocks_repeat_an_hour() {
        // Berlin, Sunday 2026-10-25: at 03:00 CEST the clocks go back to 02:00 CET.
        let now = datetime!(2026-10-25 00:45 UTC); // 02:45 CEST, the first time
        assert_eq!(
            w("02:00-02:30").next_start(now, berlin),
            Some(datetime!(2026-10-25 02:00 +1)),
            "opens again when 02:00 comes round a second time"
        );
        assert_eq!(
            w("03:00-04:00").next_start(datetime!(2026-10-24 12:00 UTC), berlin),
            Some(datetime!(2026-10-25 03:00 +1)),
            "after the change, in winter time"
        );
    }

    #[test]
    fn next_start_returns_whole_minutes() {
        let now = datetime!(2026-12-07 01:59:30.25 UTC);
        assert_eq!(
            w("02:00-05:00").next_start(now, |_| UtcOffset::UTC),
            Some(datetime!(2026-12-07 02:00 UTC))
        );
    }

    /// Europe/Berlin's rule as a POSIX `TZ` value.
    const BERLIN_RULE: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

    /// Run in a child process with `TZ` set by the test below; asserts there.
    #[test]
    #[ignore = "run by local_offsets_follow_tz_and_its_daylight_saving_rule with TZ set"]
    #[allow(clippy::print_stderr)] // says why the test did nothing, past the harness
    fn offsets_in_the_berlin_rule() {
        if std::env::var("TZ").as_deref() != Ok(BERLIN_RULE) {
            eprintln!(
                "SKIPPED: runs as a child of local_offsets_follow_tz_and_its_daylight_saving_rule"
            );
            return;
        }
        assert_eq!(
            local_offset_at(datetime!(2026-01-15 12:00 UTC)).unwrap(),
            offset!(+1)
        );
        assert_eq!(
            local_offset_at(datetime!(2026-07-15 12:00 UTC)).unwrap(),
            offset!(+2)
        );
        assert_eq!(
            local_offset_at(datetime!(2026-03-29 00:59:59 UTC)).unwrap(),
            offset!(+1)
        );
        assert_eq!(
            local_offset_at(datetime!(2026-03-29 01:00 UTC)).unwrap(),
            offset!(+2)
        );
    }

    #[test]
    fn local_offsets_follow_tz_and_its_daylight_saving_rule() {
        // TZ must be set before the C library first reads it, and setting it in this
        // multi-threaded test process would be unsound: run one test in a child. A POSIX
        // rule needs no time-zone database.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "window::tests::offsets_in_the_berlin_rule",
                "--ignored",
                "--test-threads=1",
            ])
            .env("TZ", BERLIN_RULE)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 passed"), "{stdout}");
    }
}
