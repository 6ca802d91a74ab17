//! The `time` slot: when the customer bought, ordered or reported something,
//! as an inclusive date range relative to the request's local date `today`.
//!
//! Decisions a reader might otherwise undo:
//! - Named periods are whole calendar periods, Monday-based weeks: 上周 / last
//!   week = previous Monday..Sunday, 上上周 = the week before, 这周 / this week
//!   = this Monday..Sunday (not Monday..today), 上个月 = previous calendar
//!   month, 这个月 = this whole month, 去年 = previous year, 今年 = this whole
//!   year. One rule for all periods is easier to predict than clipping some.
//! - "N units ago" (三天前, 两周前, 2 months ago) is the single day N units
//!   before today (months and years clamp to the month's last day).
//! - A date without a year (6月3号, June 3, 6/3) is the most recent such date
//!   not after today; a bare day (3号, on the 3rd) is the most recent date with
//!   that day of the month not after today (so 20号 on June 15 is May 20).
//! - A month alone (6月份, 6月初, in May) is that whole month, most recent
//!   one not after today; 上周三 is that day of last week, 这周三 of this
//!   week, and "last Wednesday" the most recent Wednesday before today.
//! - A date that lands after today is not a purchase time and is dropped.
//! - Expressions that can look forward (今天, this week, 这个月, 今年, dates
//!   without a year) are dropped when their clause reads as a question about
//!   the future (今天能发货吗, will it arrive today?) and says nothing about a
//!   past event (买, 下单, ordered ...).
//! - Durations are never times: only 前 / 以前 / 之前 / ago make a count of
//!   days a time, so 等了三天, 七天无理由, waited a week, within 7 days yield
//!   nothing. Vague ones (前几天, 前两天, 最近, 刚才, a few days ago) are skipped, as
//!   are bare weekdays (周六 is far more often about opening hours).
//! - 6.3 and 6/3 are read as month/day only next to a purchase word or 号/日
//!   (6.3号, 6/3买的, on 6/3), because 4.5 is far more often a score or price.
//! - When several times appear, the first one (longest at the same start) that
//!   survives these rules wins.

use std::sync::LazyLock;

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};
use regex::{Captures, Regex};

use super::numbers::Span;
use super::DateRange;

/// Whether an expression always refers to the past or may point forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tense {
    Past,
    Open,
}

/// What a rule gets to look at.
struct Ctx<'a> {
    text: &'a str,
    caps: Captures<'a>,
    today: NaiveDate,
}

impl Ctx<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.caps.name(name).map(|m| m.as_str())
    }
    fn start(&self) -> usize {
        self.caps.get(0).map_or(0, |m| m.start())
    }
    fn end(&self) -> usize {
        self.caps.get(0).map_or(0, |m| m.end())
    }
    fn before(&self) -> &str {
        &self.text[..self.start()]
    }
    fn after(&self) -> &str {
        &self.text[self.end()..]
    }
}

type Rule = (Regex, fn(&Ctx) -> Option<(DateRange, Tense)>);

const MONTHS: &str = "january|jan|february|feb|march|mar|april|apr|may|june|jun|july|jul|august|aug|september|sept|sep|october|oct|november|nov|december|dec";
const CN_DIGITS: &str = "[0-9]{1,2}|[一二三四五六七八九十]{1,3}";

/// Clause delimiters, for the forward-looking check.
const DELIMS: &[char] = &['，', ',', '。', '！', '!', '？', '?', '；', ';', '\n'];

/// Words that tie a clause to a past event.
const PAST_ZH: &[&str] = &[
    "买", "下单", "下的", "订的", "订了", "订购", "付款", "付的", "付了", "支付", "收到", "签收", "拍的", "拍了",
    "报修", "提交", "申请", "寄", "退的", "到的", "坏了", "坏的", "发的",
];
const PAST_EN: &[&str] = &[
    "ordered",
    "bought",
    "purchased",
    "placed",
    "paid",
    "received",
    "got",
    "delivered",
    "arrived",
    "shipped",
    "reported",
    "submitted",
    "filed",
    "returned",
    "sent",
    "was",
    "were",
    "did",
    "had",
    "came",
    "made",
    "broke",
    "stopped",
    "signed",
];
/// Words that make a clause a question or a look forward.
const FUTURE_ZH: &[&str] =
    &["能", "会", "可以", "要", "吗", "么", "几点", "什么", "怎么", "多久", "多少", "哪", "有没有", "还有", "？", "?"];
const FUTURE_EN: &[&str] = &[
    "will", "can", "could", "would", "should", "when", "by", "before", "until", "gonna", "open", "what", "what's",
    "how", "how's", "where", "where's", "is", "are", "do", "does",
];

/// Words right after a bare 6.3 / 6/3 that make it a date.
const SHORT_DATE_AFTER: &[&str] = &[
    "号",
    "日",
    "买",
    "下单",
    "下的",
    "订",
    "付",
    "购",
    "收到",
    "签收",
    "那天",
    "当天",
    "发货",
    "的时候",
    "到货",
    "提交",
    "报修",
    "申请",
];

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("time patterns are valid constant regexes")
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let w = |p: &str| format!(r"(?i)(?-u:\b){p}(?-u:\b)");
    vec![
        (
            re(&format!(
                r"(?:(?P<y>[0-9]{{4}})\s*年\s*|(?P<yrel>去年|今年|前年)\s*)?(?P<m>[0-9]{{1,2}}|[一二三四五六七八九十]{{1,2}})\s*月\s*(?:份\s*)?(?:(?P<d>{CN_DIGITS})\s*[号日])?"
            )),
            zh_date,
        ),
        (re(&format!(r"(?P<rel>上上个?月|上个?月|这个?月|本月)\s*(?P<d>{CN_DIGITS})\s*[号日]")), zh_rel_month_day),
        (re(&format!(r"(?P<d>{CN_DIGITS})\s*(?P<u>[号日])")), zh_day),
        (re(r"大前天|前天|昨天|昨日|昨晚|昨儿|今天|今日|今早|今晚|今儿"), zh_rel_day),
        (
            re(
                r"(?P<n>[0-9]{1,3}|[零一二两三四五六七八九十]{1,3})\s*(?:个\s*)?(?P<u>天|日|周|星期|礼拜|月|年)\s*(?:以前|之前|前)",
            ),
            ago,
        ),
        (re(r"(?P<w>上上个?|上个?|这个?|本)(?:周|星期|礼拜)(?:(?P<end>末)|(?P<wd>[一二三四五六日天1-7]))?"), zh_week),
        (re(r"(?P<rel>上上个?|上个?|这个?|本)月"), zh_month),
        (re(r"前年|去年|今年"), zh_year),
        (
            re(&w(
                r"(?:the\s+day\s+before\s+yesterday|yesterday|last\s+night|today|this\s+morning|this\s+afternoon|this\s+evening|tonight)",
            )),
            en_rel_day,
        ),
        (
            re(&w(
                r"(?P<n>[0-9]{1,3}|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\s+(?P<u>day|week|month|year)s?\s+ago",
            )),
            ago,
        ),
        (re(&w(r"the\s+(?P<u>week|month|year)\s+before\s+last")), en_before_last),
        (
            re(&w(
                r"(?P<rel>last|this)\s+(?P<u>weekend|week|month|year|monday|tuesday|wednesday|thursday|friday|saturday|sunday)",
            )),
            en_period,
        ),
        (
            re(&w(&format!(
                r"(?P<mon>{MONTHS})\.?\s*(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?(?-u:\b)(?:,?\s*(?P<y>[0-9]{{4}}))?"
            ))),
            en_date,
        ),
        (
            re(&w(&format!(
                r"(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?\s*(?:of\s+)?(?P<mon>{MONTHS})(?-u:\b)\.?(?:,?\s*(?P<y>[0-9]{{4}}))?"
            ))),
            en_date,
        ),
        (
            re(&w(&format!(
                r"(?:in|during|since)\s+(?:early\s+|late\s+|mid-?\s*)?(?P<mon>{MONTHS})(?-u:\b)(?:\s+(?P<y>[0-9]{{4}}))?"
            ))),
            en_month,
        ),
        (re(&w(&format!(r"(?P<mon>{MONTHS})\.?,?\s+(?P<y>[0-9]{{4}})"))), en_month),
        (re(&w(r"on\s+the\s+(?P<d>[0-9]{1,2})(?:st|nd|rd|th)")), en_on_the),
        (re(r"(?P<y>[0-9]{4})\s*[-/.]\s*(?P<m>[0-9]{1,2})\s*[-/.]\s*(?P<d>[0-9]{1,2})\s*[号日]?"), numeric_date),
        (re(r"(?P<m>[0-9]{1,2})/(?P<d>[0-9]{1,2})/(?P<y>[0-9]{4})"), numeric_date),
        (re(r"(?P<m>[0-9]{1,2})[./](?P<d>[0-9]{1,2})"), short_date),
    ]
});

/// A month and day named together (6月3号, June 3, 3rd of June).
static MONTH_DAY: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    let w = |p: &str| format!(r"(?i)(?-u:\b){p}(?-u:\b)");
    vec![
        re(&format!(r"(?P<m>[0-9]{{1,2}}|[一二三四五六七八九十]{{1,2}})\s*月\s*(?P<d>{CN_DIGITS})\s*[号日]")),
        re(&w(&format!(r"(?P<mon>{MONTHS})\.?\s*(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?"))),
        re(&w(&format!(r"(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?\s*(?:of\s+)?(?P<mon>{MONTHS})"))),
    ]
});

/// Spans naming a month and day no calendar has (2月30日, 13月1号, April 31).
/// They name no date, and no shorter reading inside them ("30日", the 30th
/// of this month) may invent one.
fn impossible_dates(text: &str) -> Vec<Span> {
    let exists = |month: u32, day: u32| NaiveDate::from_ymd_opt(2024, month, day).is_some(); // 2024: a leap year
    MONTH_DAY
        .iter()
        .flat_map(|regex| regex.captures_iter(text))
        .filter_map(|caps| {
            let month = match (caps.name("m"), caps.name("mon")) {
                (Some(m), _) => cn_number(m.as_str())?,
                (None, Some(name)) => month_named(name.as_str())?,
                (None, None) => return None,
            };
            let day = cn_number(caps.name("d")?.as_str())?;
            let whole = caps.get(0)?;
            (!exists(month, day)).then_some((whole.start(), whole.end()))
        })
        .collect()
}

/// The first purchase / report time in `text`, ignoring spans already taken
/// by an order id or phone number.
pub(crate) fn extract(text: &str, today: NaiveDate, taken: &[Span]) -> Option<(DateRange, Span)> {
    let taken: Vec<Span> = taken.iter().copied().chain(impossible_dates(text)).collect();
    let mut found: Vec<(usize, usize, DateRange, Tense)> = Vec::new();
    for (regex, rule) in RULES.iter() {
        for caps in regex.captures_iter(text) {
            let ctx = Ctx { text, caps, today };
            let (start, end) = (ctx.start(), ctx.end());
            if taken.iter().any(|&(s, e)| start < e && s < end) {
                continue;
            }
            if let Some((range, tense)) = rule(&ctx) {
                found.push((start, end, range, tense));
            }
        }
    }
    found.sort_by_key(|&(start, end, _, _)| (start, std::cmp::Reverse(end)));
    let mut covered_to = 0;
    for (start, end, range, tense) in found {
        if start < covered_to {
            continue;
        }
        // NOTE: a rejected expression still claims its span, so "20号" inside
        // a dropped "6月20号能到吗" cannot come back as May 20.
        covered_to = end;
        let forward = tense == Tense::Open && looks_forward(text, start, end);
        if range.start <= today && !forward {
            return Some((range, (start, end)));
        }
    }
    None
}

fn zh_date(c: &Ctx) -> Option<(DateRange, Tense)> {
    if c.before().ends_with(|ch: char| ch.is_ascii_digit()) {
        return None;
    }
    let month = cn_number(c.get("m")?)?;
    let day = c.get("d").map(cn_number);
    let explicit_year = match (c.get("y"), c.get("yrel")) {
        (Some(y), _) => Some((y.parse().ok()?, Tense::Past)),
        (None, Some("去年")) => Some((c.today.year() - 1, Tense::Past)),
        (None, Some("前年")) => Some((c.today.year() - 2, Tense::Past)),
        (None, Some(_)) => Some((c.today.year(), Tense::Open)),
        (None, None) => None,
    };
    match (explicit_year, day) {
        (_, Some(None)) => None,
        (Some((year, tense)), Some(Some(day))) => {
            Some((DateRange::day(NaiveDate::from_ymd_opt(year, month, day)?), tense))
        }
        (Some((year, tense)), None) => Some((month_range(year, month)?, tense)),
        (None, Some(Some(day))) => Some((DateRange::day(recent_month_day(c.today, month, day)?), Tense::Open)),
        (None, None) => {
            // "6月内" / "6月底前" talk about a deadline, not a purchase month.
            if c.after().starts_with(['内', '前']) {
                return None;
            }
            let year = if month <= c.today.month() { c.today.year() } else { c.today.year() - 1 };
            Some((month_range(year, month)?, Tense::Open))
        }
    }
}

fn zh_rel_month_day(c: &Ctx) -> Option<(DateRange, Tense)> {
    let (back, tense) = match c.get("rel")? {
        r if r.starts_with("上上") => (2, Tense::Past),
        r if r.starts_with('上') => (1, Tense::Past),
        _ => (0, Tense::Open),
    };
    let first = first_of_month(c.today).checked_sub_months(Months::new(back))?;
    let date = NaiveDate::from_ymd_opt(first.year(), first.month(), cn_number(c.get("d")?)?)?;
    Some((DateRange::day(date), tense))
}

fn zh_day(c: &Ctx) -> Option<(DateRange, Tense)> {
    const NOT_BEFORE: &str = "第型码尺编几大小中";
    const NOT_AFTER: &str = "楼线门口仓房床座柜窗店机码位台桌厅院馆车";
    let prev = c.before().chars().next_back();
    if prev.is_some_and(|p| p.is_ascii_alphanumeric() || p == '.' || p == '/' || NOT_BEFORE.contains(p)) {
        return None;
    }
    let after = c.after();
    if after.starts_with(|n: char| NOT_AFTER.contains(n)) {
        return None;
    }
    // 7日内 / 7日无理由 / 15日后 are durations or deadlines.
    if c.get("u") == Some("日")
        && ["内", "以内", "之内", "无理由", "后", "左右", "起"].iter().any(|s| after.starts_with(s))
    {
        return None;
    }
    Some((DateRange::day(recent_day(c.today, cn_number(c.get("d")?)?)?), Tense::Open))
}

fn zh_rel_day(c: &Ctx) -> Option<(DateRange, Tense)> {
    let word = c.caps.get(0)?.as_str();
    let back = match word {
        "大前天" => 3,
        "前天" => 2,
        w if w.starts_with('昨') => 1,
        _ => return Some((DateRange::day(c.today), Tense::Open)),
    };
    Some((DateRange::day(c.today.checked_sub_days(Days::new(back))?), Tense::Past))
}

fn en_rel_day(c: &Ctx) -> Option<(DateRange, Tense)> {
    let word = c.caps.get(0)?.as_str().to_ascii_lowercase();
    let back = if word.starts_with("the") {
        2
    } else if word.starts_with("yesterday") || word.starts_with("last") {
        1
    } else {
        return Some((DateRange::day(c.today), Tense::Open));
    };
    Some((DateRange::day(c.today.checked_sub_days(Days::new(back))?), Tense::Past))
}

/// 三天前 / 2 weeks ago: the single day that many units back.
fn ago(c: &Ctx) -> Option<(DateRange, Tense)> {
    let n = match c.get("n")?.to_ascii_lowercase().as_str() {
        "a" | "an" => 1,
        word => en_number(word).or_else(|| cn_number(word))?,
    };
    let day = match c.get("u")?.to_ascii_lowercase().as_str() {
        "天" | "日" | "day" => c.today.checked_sub_days(Days::new(n.into()))?,
        "周" | "星期" | "礼拜" | "week" => c.today.checked_sub_days(Days::new(u64::from(n) * 7))?,
        "月" | "month" => c.today.checked_sub_months(Months::new(n))?,
        _ => c.today.checked_sub_months(Months::new(n.checked_mul(12)?))?,
    };
    Some((DateRange::day(day), Tense::Past))
}

fn zh_week(c: &Ctx) -> Option<(DateRange, Tense)> {
    let (back, tense) = match c.get("w")? {
        w if w.starts_with("上上") => (2, Tense::Past),
        w if w.starts_with('上') => (1, Tense::Past),
        _ => (0, Tense::Open),
    };
    let monday = week_start(c.today)?.checked_sub_days(Days::new(7 * back))?;
    if c.get("end").is_some() {
        return Some((DateRange::new(plus(monday, 5)?, plus(monday, 6)?), tense));
    }
    // 这周一直 / 这周一共: "一" belongs to the next word, not Monday.
    let weekday =
        c.get("wd").filter(|wd| *wd != "一" || !c.after().starts_with(|n: char| "直共起下样些定般切".contains(n)));
    match weekday {
        Some(wd) => {
            let offset = match wd {
                "日" | "天" => 6,
                d => cn_number(d)?.checked_sub(1)?,
            };
            Some((DateRange::day(plus(monday, offset)?), tense))
        }
        None => Some((DateRange::new(monday, plus(monday, 6)?), tense)),
    }
}

fn zh_month(c: &Ctx) -> Option<(DateRange, Tense)> {
    let (back, tense) = match c.get("rel")? {
        r if r.starts_with("上上") => (2, Tense::Past),
        r if r.starts_with('上') => (1, Tense::Past),
        _ => (0, Tense::Open),
    };
    let first = first_of_month(c.today).checked_sub_months(Months::new(back))?;
    Some((month_range(first.year(), first.month())?, tense))
}

fn zh_year(c: &Ctx) -> Option<(DateRange, Tense)> {
    let (back, tense) = match c.caps.get(0)?.as_str() {
        "前年" => (2, Tense::Past),
        "去年" => (1, Tense::Past),
        _ => (0, Tense::Open),
    };
    Some((year_range(c.today.year() - back)?, tense))
}

fn en_before_last(c: &Ctx) -> Option<(DateRange, Tense)> {
    Some((en_unit_period(c.today, &c.get("u")?.to_ascii_lowercase(), 2)?, Tense::Past))
}

fn en_period(c: &Ctx) -> Option<(DateRange, Tense)> {
    // "in the last week" / "for the last month" is a duration, not a period.
    if c.before().trim_end().to_ascii_lowercase().ends_with("the") {
        return None;
    }
    let last = c.get("rel")?.eq_ignore_ascii_case("last");
    let tense = if last { Tense::Past } else { Tense::Open };
    let unit = c.get("u")?.to_ascii_lowercase();
    if let Some(weekday) = weekday_named(&unit) {
        let idx = weekday.num_days_from_monday();
        let day = if last {
            // The most recent such weekday strictly before today.
            let back = (c.today.weekday().num_days_from_monday() + 7 - idx) % 7;
            c.today.checked_sub_days(Days::new(if back == 0 { 7 } else { back.into() }))?
        } else {
            plus(week_start(c.today)?, idx)?
        };
        return Some((DateRange::day(day), tense));
    }
    Some((en_unit_period(c.today, &unit, u32::from(last))?, tense))
}

/// The calendar week / weekend / month / year `back` periods before today's.
fn en_unit_period(today: NaiveDate, unit: &str, back: u32) -> Option<DateRange> {
    match unit {
        "week" | "weekend" => {
            let monday = week_start(today)?.checked_sub_days(Days::new(7 * u64::from(back)))?;
            let first = if unit == "weekend" { plus(monday, 5)? } else { monday };
            Some(DateRange::new(first, plus(monday, 6)?))
        }
        "month" => {
            let first = first_of_month(today).checked_sub_months(Months::new(back))?;
            month_range(first.year(), first.month())
        }
        _ => year_range(today.year() - i32::try_from(back).ok()?),
    }
}

fn en_date(c: &Ctx) -> Option<(DateRange, Tense)> {
    let month = month_named(c.get("mon")?)?;
    let day: u32 = c.get("d")?.parse().ok()?;
    match c.get("y") {
        Some(y) => Some((DateRange::day(NaiveDate::from_ymd_opt(y.parse().ok()?, month, day)?), Tense::Past)),
        None => Some((DateRange::day(recent_month_day(c.today, month, day)?), Tense::Open)),
    }
}

fn en_month(c: &Ctx) -> Option<(DateRange, Tense)> {
    let month = month_named(c.get("mon")?)?;
    if let Some(y) = c.get("y") {
        return Some((month_range(y.parse().ok()?, month)?, Tense::Past));
    }
    // "in June 3" is a day; the day rule reads it.
    if c.after().trim_start().starts_with(|n: char| n.is_ascii_digit()) {
        return None;
    }
    let year = if month <= c.today.month() { c.today.year() } else { c.today.year() - 1 };
    Some((month_range(year, month)?, Tense::Open))
}

fn en_on_the(c: &Ctx) -> Option<(DateRange, Tense)> {
    Some((DateRange::day(recent_day(c.today, c.get("d")?.parse().ok()?)?), Tense::Open))
}

fn numeric_date(c: &Ctx) -> Option<(DateRange, Tense)> {
    if c.before().ends_with(|p: char| p.is_ascii_alphanumeric()) || c.after().starts_with(|n: char| n.is_ascii_digit())
    {
        return None;
    }
    let date =
        NaiveDate::from_ymd_opt(c.get("y")?.parse().ok()?, c.get("m")?.parse().ok()?, c.get("d")?.parse().ok()?)?;
    Some((DateRange::day(date), Tense::Past))
}

fn short_date(c: &Ctx) -> Option<(DateRange, Tense)> {
    let glued = |ch: char| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '/' | '-' | ':' | '¥' | '$' | '%');
    if c.before().ends_with(glued) || c.after().starts_with(glued) {
        return None;
    }
    let before = c.before().trim_end().to_ascii_lowercase();
    let after = c.after().trim_start();
    let cued_before = before.ends_with("于") || before == "on" || before.ends_with(" on");
    if !cued_before && !SHORT_DATE_AFTER.iter().any(|w| after.starts_with(w)) {
        return None;
    }
    let month = c.get("m")?.parse().ok()?;
    let day = c.get("d")?.parse().ok()?;
    Some((DateRange::day(recent_month_day(c.today, month, day)?), Tense::Open))
}

/// True when the clause around `[start, end)` asks about the future and says
/// nothing about a past event.
fn looks_forward(text: &str, start: usize, end: usize) -> bool {
    let from = text[..start].rfind(DELIMS).map_or(0, |i| i + text[i..].chars().next().map_or(1, char::len_utf8));
    // The clause's own question mark counts, so the closing delimiter is kept.
    let to = text[end..]
        .find(DELIMS)
        .map_or(text.len(), |i| end + i + text[end + i..].chars().next().map_or(0, char::len_utf8));
    let clause = text[from..to].to_lowercase();
    let words: Vec<&str> = clause.split(|c: char| !c.is_ascii_alphanumeric() && c != '\'').collect();
    let has_word = |list: &[&str]| words.iter().any(|w| list.contains(w));
    let past = PAST_ZH.iter().any(|m| clause.contains(m)) || has_word(PAST_EN);
    let future = FUTURE_ZH.iter().any(|m| clause.contains(m)) || has_word(FUTURE_EN);
    future && !past
}

/// The most recent `month`/`day` not after `today` (looking back up to eight
/// years, so 2月29日 finds the last leap year).
fn recent_month_day(today: NaiveDate, month: u32, day: u32) -> Option<NaiveDate> {
    (0..8).filter_map(|back| NaiveDate::from_ymd_opt(today.year() - back, month, day)).find(|d| *d <= today)
}

/// The most recent date with day-of-month `day` not after `today`.
fn recent_day(today: NaiveDate, day: u32) -> Option<NaiveDate> {
    let first = first_of_month(today);
    (0..12)
        .filter_map(|back| first.checked_sub_months(Months::new(back)))
        .filter_map(|m| NaiveDate::from_ymd_opt(m.year(), m.month(), day))
        .find(|d| *d <= today)
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// The Monday of `d`'s week. Checked arithmetic here and in [`plus`]: `now`
/// comes from the request and may sit at the very edge of chrono's range.
fn week_start(d: NaiveDate) -> Option<NaiveDate> {
    d.checked_sub_days(Days::new(d.weekday().num_days_from_monday().into()))
}

fn plus(d: NaiveDate, days: u32) -> Option<NaiveDate> {
    d.checked_add_days(Days::new(days.into()))
}

fn month_range(year: i32, month: u32) -> Option<DateRange> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let last = first.checked_add_months(Months::new(1))?.pred_opt()?;
    Some(DateRange::new(first, last))
}

fn year_range(year: i32) -> Option<DateRange> {
    Some(DateRange::new(NaiveDate::from_ymd_opt(year, 1, 1)?, NaiveDate::from_ymd_opt(year, 12, 31)?))
}

fn month_named(name: &str) -> Option<u32> {
    let prefix = name.get(..3)?.to_ascii_lowercase();
    let index = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        .iter()
        .position(|m| *m == prefix)?;
    u32::try_from(index + 1).ok()
}

fn weekday_named(name: &str) -> Option<Weekday> {
    name.parse().ok()
}

fn en_number(word: &str) -> Option<u32> {
    const WORDS: [&str; 12] =
        ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];
    WORDS.iter().position(|w| *w == word).and_then(|i| u32::try_from(i + 1).ok())
}

/// Arabic digits, or a Chinese numeral from 零 to 九十九 (两 = 2).
fn cn_number(s: &str) -> Option<u32> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let digit = |c: char| {
        "零一二三四五六七八九".chars().position(|d| d == c).or((c == '〇').then_some(0)).or((c == '两').then_some(2))
    };
    let chars: Vec<char> = s.chars().collect();
    let value = match chars.as_slice() {
        [d] if *d != '十' => digit(*d)?,
        ['十'] => 10,
        ['十', u] => 10 + digit(*u)?,
        [t, '十'] => digit(*t)? * 10,
        [t, '十', u] => digit(*t)? * 10 + digit(*u)?,
        _ => return None,
    };
    u32::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2026-06-15, the eval set's reference day.
    fn monday() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 15).unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn at(today: NaiveDate, text: &str) -> Option<(String, String)> {
        extract(text, today, &[]).map(|(r, _)| (r.start.to_string(), r.end.to_string()))
    }

    fn range(a: &str, b: &str) -> Option<(String, String)> {
        Some((a.to_string(), b.to_string()))
    }

    fn day(a: &str) -> Option<(String, String)> {
        range(a, a)
    }

    #[test]
    fn chinese_relative_days() {
        let t = monday();
        assert_eq!(at(t, "昨天买的裙子"), day("2026-06-14"));
        assert_eq!(at(t, "前天下的单"), day("2026-06-13"));
        assert_eq!(at(t, "大前天买的"), day("2026-06-12"));
        assert_eq!(at(t, "今天刚下单"), day("2026-06-15"));
        assert_eq!(at(t, "三天前买的"), day("2026-06-12"));
        assert_eq!(at(t, "3天前下单"), day("2026-06-12"));
        assert_eq!(at(t, "两天前"), day("2026-06-13"));
        assert_eq!(at(t, "十天之前"), day("2026-06-05"));
        assert_eq!(at(t, "两周前买的"), day("2026-06-01"));
        assert_eq!(at(t, "一个月前买的"), day("2026-05-15"));
        assert_eq!(at(t, "一年前"), day("2025-06-15"));
    }

    #[test]
    fn chinese_periods() {
        let t = monday();
        assert_eq!(at(t, "上周买的"), range("2026-06-08", "2026-06-14"));
        assert_eq!(at(t, "上个星期"), range("2026-06-08", "2026-06-14"));
        assert_eq!(at(t, "上礼拜"), range("2026-06-08", "2026-06-14"));
        assert_eq!(at(t, "上上周"), range("2026-06-01", "2026-06-07"));
        assert_eq!(at(t, "这周买的"), range("2026-06-15", "2026-06-21"));
        assert_eq!(at(t, "本周"), range("2026-06-15", "2026-06-21"));
        assert_eq!(at(t, "上周三买的"), day("2026-06-10"));
        assert_eq!(at(t, "上周五下的单"), day("2026-06-12"));
        assert_eq!(at(t, "这周一直在等"), range("2026-06-15", "2026-06-21"));
        assert_eq!(at(t, "上个星期天"), day("2026-06-14"));
        assert_eq!(at(t, "上周末买的"), range("2026-06-13", "2026-06-14"));
        assert_eq!(at(t, "上个月"), range("2026-05-01", "2026-05-31"));
        assert_eq!(at(t, "上月"), range("2026-05-01", "2026-05-31"));
        assert_eq!(at(t, "上上个月"), range("2026-04-01", "2026-04-30"));
        assert_eq!(at(t, "这个月买的"), range("2026-06-01", "2026-06-30"));
        assert_eq!(at(t, "去年买的"), range("2025-01-01", "2025-12-31"));
        assert_eq!(at(t, "今年买的"), range("2026-01-01", "2026-12-31"));
        assert_eq!(at(t, "前年"), range("2024-01-01", "2024-12-31"));
        assert_eq!(at(t, "上个月3号"), day("2026-05-03"));
    }

    #[test]
    fn week_boundaries() {
        let sunday = d("2026-06-14");
        assert_eq!(at(sunday, "上周"), range("2026-06-01", "2026-06-07"));
        assert_eq!(at(sunday, "这周"), range("2026-06-08", "2026-06-14"));
        assert_eq!(at(sunday, "last week"), range("2026-06-01", "2026-06-07"));
        assert_eq!(at(sunday, "last sunday"), day("2026-06-07"));
        assert_eq!(at(monday(), "last monday"), day("2026-06-08"));
        assert_eq!(at(monday(), "last friday"), day("2026-06-12"));
        let new_year = d("2026-01-01");
        assert_eq!(at(new_year, "上周"), range("2025-12-22", "2025-12-28"));
    }

    #[test]
    fn month_and_year_boundaries() {
        let january = d("2026-01-20");
        assert_eq!(at(january, "上个月"), range("2025-12-01", "2025-12-31"));
        assert_eq!(at(january, "last month"), range("2025-12-01", "2025-12-31"));
        assert_eq!(at(january, "the month before last"), range("2025-11-01", "2025-11-30"));
        assert_eq!(at(january, "12月25号买的"), day("2025-12-25"));
        let march = d("2026-03-31");
        assert_eq!(at(march, "一个月前"), day("2026-02-28"));
        assert_eq!(at(d("2024-03-10"), "上个月"), range("2024-02-01", "2024-02-29"));
    }

    #[test]
    fn chinese_absolute_dates() {
        let t = monday();
        assert_eq!(at(t, "6月3号买的"), day("2026-06-03"));
        assert_eq!(at(t, "6月3日"), day("2026-06-03"));
        assert_eq!(at(t, "六月三号下的单"), day("2026-06-03"));
        assert_eq!(at(t, "12月25号买的"), day("2025-12-25"));
        assert_eq!(at(t, "2026年6月3日"), day("2026-06-03"));
        assert_eq!(at(t, "2026-06-03"), day("2026-06-03"));
        assert_eq!(at(t, "2026/6/3 下单"), day("2026-06-03"));
        assert_eq!(at(t, "去年12月买的"), range("2025-12-01", "2025-12-31"));
        assert_eq!(at(t, "去年双十一买的"), range("2025-01-01", "2025-12-31"));
        assert_eq!(at(t, "5月份买的"), range("2026-05-01", "2026-05-31"));
        assert_eq!(at(t, "3号买的"), day("2026-06-03"));
        assert_eq!(at(t, "20号下的单"), day("2026-05-20"));
        assert_eq!(at(t, "31号"), day("2026-05-31"));
        assert_eq!(at(t, "二十五号买的"), day("2026-05-25"));
        assert_eq!(at(t, "6.3号买的"), day("2026-06-03"));
        assert_eq!(at(t, "6/3买的"), day("2026-06-03"));
    }

    #[test]
    fn impossible_dates_name_no_time() {
        let t = d("2026-06-15");
        for text in [
            "2月30日买的手机",
            "4月31号下的单坏了",
            "13月1号买的",
            "二月三十号买的",
            "bought it on April 31",
            "the 30th of February",
        ] {
            assert_eq!(at(t, text), None, "{text}");
        }
        // A real date beside an impossible one is still read, and 2月29日 exists in leap years.
        assert_eq!(at(t, "不是2月30日，是6月3号买的"), day("2026-06-03"));
        assert_eq!(at(t, "2月29日买的"), day("2024-02-29"));
    }

    #[test]
    fn english_dates() {
        let t = monday();
        assert_eq!(at(t, "I ordered it yesterday"), day("2026-06-14"));
        assert_eq!(at(t, "bought the day before yesterday"), day("2026-06-13"));
        assert_eq!(at(t, "ordered today"), day("2026-06-15"));
        assert_eq!(at(t, "3 days ago"), day("2026-06-12"));
        assert_eq!(at(t, "three days ago"), day("2026-06-12"));
        assert_eq!(at(t, "a week ago"), day("2026-06-08"));
        assert_eq!(at(t, "2 months ago"), day("2026-04-15"));
        assert_eq!(at(t, "Last week"), range("2026-06-08", "2026-06-14"));
        assert_eq!(at(t, "this week"), range("2026-06-15", "2026-06-21"));
        assert_eq!(at(t, "the week before last"), range("2026-06-01", "2026-06-07"));
        assert_eq!(at(t, "last month"), range("2026-05-01", "2026-05-31"));
        assert_eq!(at(t, "this month"), range("2026-06-01", "2026-06-30"));
        assert_eq!(at(t, "last year"), range("2025-01-01", "2025-12-31"));
        assert_eq!(at(t, "last weekend"), range("2026-06-13", "2026-06-14"));
        assert_eq!(at(t, "on June 3"), day("2026-06-03"));
        assert_eq!(at(t, "Jun 3rd"), day("2026-06-03"));
        assert_eq!(at(t, "3 June"), day("2026-06-03"));
        assert_eq!(at(t, "the 3rd of June"), day("2026-06-03"));
        assert_eq!(at(t, "December 25"), day("2025-12-25"));
        assert_eq!(at(t, "June 3, 2026"), day("2026-06-03"));
        assert_eq!(at(t, "bought in May"), range("2026-05-01", "2026-05-31"));
        assert_eq!(at(t, "in July"), range("2025-07-01", "2025-07-31"));
        assert_eq!(at(t, "bought in March 2025"), range("2025-03-01", "2025-03-31"));
        assert_eq!(at(t, "ordered Jan 2026"), range("2026-01-01", "2026-01-31"));
        assert_eq!(at(t, "ordered on the 3rd"), day("2026-06-03"));
        assert_eq!(at(t, "ordered on 6/3"), day("2026-06-03"));
        assert_eq!(at(t, "06/03/2026"), day("2026-06-03"));
    }

    #[test]
    fn mixed_languages() {
        let t = monday();
        assert_eq!(at(t, "last week买的耳机"), range("2026-06-08", "2026-06-14"));
        assert_eq!(at(t, "I bought it 昨天"), day("2026-06-14"));
    }

    #[test]
    fn durations_are_not_times() {
        let t = monday();
        for text in [
            "等了三天了",
            "三天了还没到",
            "七天无理由退货吗",
            "7天无理由",
            "7日内发货",
            "多久能到，要等几天",
            "waited a week already",
            "it's been 3 days already",
            "within 7 days",
            "for the last week nothing happened",
            "两个月了还没修好",
            "一周内能到吗",
            "前几天买的",
            "最近买的",
            "a few days ago",
            "周六有人吗",
            "3号楼",
            "尺码38号",
            "评分4.5",
            "价格6.3元",
            "明天能到吗",
        ] {
            assert_eq!(at(t, text), None, "{text}");
        }
    }

    #[test]
    fn forward_looking_questions_are_dropped() {
        let t = monday();
        assert_eq!(at(t, "今天能发货吗"), None);
        assert_eq!(at(t, "will it arrive this week?"), None);
        assert_eq!(at(t, "6月20号能到吗"), None);
        assert_eq!(at(t, "今天能发货吗？我昨天买的"), day("2026-06-14"));
        assert_eq!(at(t, "今天买的能退吗"), day("2026-06-15"));
        assert_eq!(at(t, "can I cancel the order I placed today"), day("2026-06-15"));
        assert_eq!(at(t, "2026年7月1日"), None);
    }

    #[test]
    fn taken_spans_are_skipped() {
        let text = "订单 2026-06-03";
        assert_eq!(extract(text, monday(), &[(7, text.len())]), None);
    }

    #[test]
    fn extreme_reference_dates_do_not_panic() {
        let texts = [
            "这周",
            "上周末",
            "这周日",
            "last week",
            "this sunday",
            "last weekend",
            "上个月",
            "去年",
            "3天前",
            "12月31号",
        ];
        for today in [NaiveDate::MIN, NaiveDate::MAX] {
            for text in texts {
                let _ = extract(text, today, &[]);
            }
        }
    }

    #[test]
    fn chinese_numerals() {
        assert_eq!(cn_number("两"), Some(2));
        assert_eq!(cn_number("十"), Some(10));
        assert_eq!(cn_number("十二"), Some(12));
        assert_eq!(cn_number("二十"), Some(20));
        assert_eq!(cn_number("三十一"), Some(31));
        assert_eq!(cn_number("15"), Some(15));
        assert_eq!(cn_number("十十"), None);
        assert_eq!(cn_number("几"), None);
    }
}
