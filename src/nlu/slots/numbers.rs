//! The number-shaped slots: `order_id` and `phone`, decided together because
//! the same digits can look like either.
//!
//! Precedence, in this order:
//! 1. An id right after an order cue (订单号 / 单号 / 工单 / order # / ticket
//!    number ...) is the order id, even when it is shaped like a mobile number:
//!    the customer said what it is. After a cue, letter-led dashed ids
//!    (SO-889900) are kept with their dashes; 5..=20 letters and digits.
//! 2. A mainland mobile number (1[3-9] + 9 digits, optionally grouped 3-4-4
//!    with spaces or dashes, optionally +86 / 0086 / 86) is the phone, never an
//!    order id.
//! 3. Without a cue, a bare token is taken as the order id only when it looks
//!    like one: 5..=20 digits, or 1..=4 letters then 5+ digits (A20260614001),
//!    standing alone (no digits joined by '.', ',', '-', '/' around it: no
//!    decimal, amount, landline or date), not a YYYYMMDD date, not followed by
//!    a unit (元, 件, 天, %, yuan, days ...) and not preceded by a cue for some
//!    other number (验证码, 快递单号, 尾号, error code, tracking ...).
//!
//! Waybill / tracking numbers (快递单号, 运单号, tracking number) are not order
//! ids: the taxonomy's order_id is a number "given as an order".

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;

/// A byte span `[start, end)` in the normalised text.
pub(crate) type Span = (usize, usize);

/// What the number pass found, plus the spans it consumed so that the
/// product and time passes do not read digits of an id as something else.
#[derive(Debug, Default)]
pub(crate) struct Numbers {
    pub order_id: Option<String>,
    pub phone: Option<String>,
    /// Where `order_id` and `phone` were read.
    pub order_span: Option<Span>,
    pub phone_span: Option<Span>,
    /// Spans of every id and phone number found.
    pub taken: Vec<Span>,
    /// Spans of the phone numbers alone (a subset of `taken`).
    pub phones: Vec<Span>,
}

/// Cue, separator, id. `neg` cues name a number that is not an order.
static CUED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)(?:(?P<neg>快递单号|快递号|运单号|运单编号|物流单号|tracking\s*(?:number|no\.?|id|#)?|waybill\s*(?:number|no\.?)?)",
        r"|(?P<cue>订单号码|订单编号|订单号|订单|单号|工单编号|工单|",
        r"order\s*(?:number|no\.|no\b|id\b|num\b|#)?|ticket\s*(?:number|no\.|no\b|id\b|#)?|case\s*(?:number|no\.|no\b|id\b|#)|#))",
        r"(?:[\s:：=#]|是|为|is\s)*",
        // The id: letter-led groups joined by dashes (SO-889900), or one
        // alphanumeric group holding a digit. Space-separated digit groups are
        // joined in code. Digit-led dashed runs are dates or landlines.
        r"(?P<id>(?:[A-Za-z][A-Za-z0-9]*-)+[A-Za-z0-9]*[0-9][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*|[A-Za-z0-9]*[0-9][A-Za-z0-9]*)",
    ))
    .expect("order cue pattern is a valid constant regex")
});

/// A mainland mobile number, optionally with a country prefix and 3-4-4 groups.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:(?:\+|00)\s*86[\s-]*|86)?(1[3-9][0-9])[ -]?([0-9]{4})[ -]?([0-9]{4})")
        .expect("phone pattern is a valid constant regex")
});

/// A maximal ASCII alphanumeric token (candidates for a bare order id).
static TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9]+").expect("token pattern is a valid constant regex"));

/// Words that, shortly before a bare number, say it is something else.
const OTHER_NUMBER_CUES: &[&str] = &[
    "验证码",
    "校验码",
    "密码",
    "错误码",
    "错误代码",
    "报错",
    "错误",
    "代码",
    "快递",
    "运单",
    "物流",
    "邮编",
    "身份证",
    "卡号",
    "尾号",
    "后四位",
    "末四位",
    "税号",
    "发票号",
    "电话",
    "座机",
    "固话",
    "客服热线",
    "热线",
    "qq",
    "微信",
    "账号",
    "帐号",
    "用户名",
    "会员号",
    "工号",
    "金额",
    "价格",
    "多少钱",
    "¥",
    "$",
    "rmb",
    "code",
    "error",
    "tracking",
    "waybill",
    "zip",
    "postcode",
    "card",
    "ending",
    "account",
    "password",
    "tel",
    "price",
    "cost",
    "paid",
    "pay ",
    "extension",
    "version",
    "model",
    "型号",
    "版本",
];

/// Units that, right after a bare number, make it a quantity or amount.
const UNITS: &[&str] = &[
    "元", "块", "圆", "美元", "件", "个", "台", "套", "条", "双", "天", "日", "号", "次", "分", "积分", "点", "米",
    "克", "斤", "年", "月", "周", "小时", "分钟", "秒", "%", "人", "单", "毫安", "瓦", "w", "mah", "g", "kg", "mm",
    "cm", "yuan", "rmb", "cny", "usd", "dollar", "day", "item", "pc", "point", "km", "mile", "hour", "minute", "time",
];

/// How far back (in chars) a cue for another kind of number is looked for.
const CUE_WINDOW: usize = 8;

/// Finds order id and phone in `text` (already width-normalised).
pub(crate) fn extract(text: &str) -> Numbers {
    let mut out = Numbers::default();
    let mut blocked: Vec<Span> = Vec::new();

    for caps in CUED.captures_iter(text) {
        let (Some(id), Some(whole)) = (caps.name("id"), caps.get(0)) else {
            continue;
        };
        if starts_inside_word(text, whole.start()) || followed_by_alnum(text, id.end()) {
            continue;
        }
        let span = (id.start(), extend_spaced_groups(text, id.end()));
        if caps.name("neg").is_some() {
            blocked.push(span);
            continue;
        }
        let value: String = text[span.0..span.1].chars().filter(|c| *c != ' ').collect::<String>().to_ascii_uppercase();
        let length = value.bytes().filter(u8::is_ascii_alphanumeric).count();
        if out.order_id.is_none() && (5..=20).contains(&length) {
            out.order_id = Some(value);
            out.order_span = Some(span);
            out.taken.push(span);
        }
    }

    let mut pos = 0;
    while let Some(caps) = PHONE.captures_at(text, pos) {
        let Some(whole) = caps.get(0) else { break };
        let span = (whole.start(), whole.end());
        let free = !overlaps(&out.taken, span) && !overlaps(&blocked, span);
        if free && !touches_alnum(text, span) {
            if out.phone.is_none() {
                out.phone = Some(format!("{}{}{}", &caps[1], &caps[2], &caps[3]));
                out.phone_span = Some(span);
            }
            // Every phone-shaped number is reserved, so a second one is never
            // mistaken for a bare order id.
            out.taken.push(span);
            out.phones.push(span);
            pos = whole.end();
        } else {
            pos = next_char(text, whole.start());
        }
    }

    if out.order_id.is_none() {
        for m in TOKEN.find_iter(text) {
            let span = (m.start(), m.end());
            if overlaps(&out.taken, span) || overlaps(&blocked, span) {
                continue;
            }
            if looks_like_bare_order(text, span) {
                out.order_id = Some(m.as_str().to_ascii_uppercase());
                out.order_span = Some(span);
                out.taken.push(span);
                break;
            }
        }
    }
    out
}

/// Extends an id over digit groups of 3 or 4 that follow it after single
/// spaces ("2026 0614 001"), stopping before a group glued to more text, so
/// a phone number after the id ("12345 13812345678") is not swallowed.
fn extend_spaced_groups(text: &str, mut end: usize) -> usize {
    loop {
        let rest = &text[end..];
        let Some(after_space) = rest.strip_prefix(' ') else {
            return end;
        };
        let digits = after_space.bytes().take_while(u8::is_ascii_digit).count();
        if !(3..=4).contains(&digits) || followed_by_alnum(after_space, digits) {
            return end;
        }
        end += 1 + digits;
    }
}

fn looks_like_bare_order(text: &str, (start, end): Span) -> bool {
    let token = &text[start..end];
    let letters = token.bytes().take_while(u8::is_ascii_alphabetic).count();
    let digits = &token[letters..];
    let shaped = if letters == 0 {
        (5..=20).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_digit()) && !is_compact_date(token)
    } else {
        letters <= 4 && digits.len() >= 5 && token.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
    };
    shaped
        && !joined_to_digits(text, (start, end))
        && !followed_by_unit(&text[end..])
        && !after_other_cue(&text[..start])
}

/// An 8-digit YYYYMMDD that is a real date in 1990..=2099.
fn is_compact_date(token: &str) -> bool {
    token.len() == 8
        && NaiveDate::parse_from_str(token, "%Y%m%d").is_ok_and(|d| (1990..=2099).contains(&chrono::Datelike::year(&d)))
}

/// Digits glued on by '.', ',', '-', '/' or ':' (12,000 / 3.14159 / 010-12345678).
fn joined_to_digits(text: &str, (start, end): Span) -> bool {
    let glue = |c: char| matches!(c, '.' | ',' | '-' | '/' | ':');
    let mut before = text[..start].chars().rev();
    let left = matches!((before.next(), before.next()), (Some(g), Some(d)) if glue(g) && d.is_ascii_digit());
    let mut after = text[end..].chars();
    let right = matches!((after.next(), after.next()), (Some(g), Some(d)) if glue(g) && d.is_ascii_digit());
    left || right
}

fn followed_by_unit(rest: &str) -> bool {
    let rest = rest.trim_start().to_lowercase();
    UNITS.iter().any(|u| {
        rest.starts_with(u)
            && !(u.is_ascii() && rest[u.len()..].chars().next().is_some_and(|c| c.is_ascii_alphabetic() && c != 's'))
    })
}

fn after_other_cue(before: &str) -> bool {
    let window: String = before.chars().rev().take(CUE_WINDOW).collect::<Vec<_>>().into_iter().rev().collect();
    let window = window.to_lowercase();
    OTHER_NUMBER_CUES.iter().any(|cue| window.contains(cue))
}

/// An English cue glued to a preceding letter ("border", "reorder").
fn starts_inside_word(text: &str, at: usize) -> bool {
    text[at..].starts_with(|c: char| c.is_ascii_alphabetic())
        && text[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn followed_by_alnum(text: &str, at: usize) -> bool {
    text[at..].chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn touches_alnum(text: &str, (start, end): Span) -> bool {
    text[..start].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric()) || followed_by_alnum(text, end)
}

fn overlaps(spans: &[Span], (start, end): Span) -> bool {
    spans.iter().any(|&(s, e)| start < e && s < end)
}

fn next_char(text: &str, at: usize) -> usize {
    at + text[at..].chars().next().map_or(1, char::len_utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(text: &str) -> (Option<String>, Option<String>) {
        let n = extract(text);
        (n.order_id, n.phone)
    }

    fn order(text: &str) -> Option<String> {
        extract(text).order_id
    }

    fn phone(text: &str) -> Option<String> {
        extract(text).phone
    }

    #[test]
    fn cued_order_ids() {
        assert_eq!(order("订单号 12345 到哪了").as_deref(), Some("12345"));
        assert_eq!(order("单号：A20260614001").as_deref(), Some("A20260614001"));
        assert_eq!(order("订单号是a2026061400").as_deref(), Some("A2026061400"));
        assert_eq!(order("order #A20260614001 hasn't shipped").as_deref(), Some("A20260614001"));
        assert_eq!(order("Order number: 98765432").as_deref(), Some("98765432"));
        assert_eq!(order("my order no. 55512 please").as_deref(), Some("55512"));
        assert_eq!(order("订单 2026 0614 001 还没发货").as_deref(), Some("20260614001"));
        assert_eq!(order("工单号 88001234 处理到哪一步了").as_deref(), Some("88001234"));
        assert_eq!(order("ticket #77123 any update").as_deref(), Some("77123"));
        assert_eq!(order("#99887 where is it").as_deref(), Some("99887"));
        assert_eq!(order("订单号：SO-889900").as_deref(), Some("SO-889900"));
        assert_eq!(order("order id: a-12345").as_deref(), Some("A-12345"));
        assert_eq!(order("订单 2026-06-03 下的"), None);
    }

    #[test]
    fn cue_without_usable_id() {
        assert_eq!(order("订单号是多少我忘了"), None);
        assert_eq!(order("订单号 1234"), None);
        assert_eq!(order("my order hasn't arrived"), None);
        assert_eq!(order("I reordered 12345 times"), None);
    }

    #[test]
    fn phones_in_all_shapes() {
        for t in [
            "手机号13812345678",
            "电话 138 1234 5678",
            "138-1234-5678 是我的号码",
            "+86 13812345678",
            "+8613812345678",
            "0086 138 1234 5678",
            "8613812345678",
            "call me at 13812345678.",
        ] {
            assert_eq!(phone(t).as_deref(), Some("13812345678"), "{t}");
            assert_eq!(order(t), None, "{t}");
        }
    }

    #[test]
    fn phone_is_not_inside_longer_runs() {
        assert_eq!(phone("6222021381234567890"), None);
        assert_eq!(phone("A13812345678"), None);
        assert_eq!(phone("12812345678"), None);
        assert_eq!(phone("1381234567"), None);
    }

    #[test]
    fn cue_wins_over_phone_shape() {
        assert_eq!(pair("订单号13912345678"), (Some("13912345678".into()), None));
        assert_eq!(pair("order 15012345678 status"), (Some("15012345678".into()), None));
    }

    #[test]
    fn order_and_phone_together() {
        assert_eq!(pair("订单号12345，手机13812345678"), (Some("12345".into()), Some("13812345678".into())));
        assert_eq!(
            pair("13812345678 这个号下的单 20260614001"),
            (Some("20260614001".into()), Some("13812345678".into()))
        );
        assert_eq!(pair("订单12345 13812345678"), (Some("12345".into()), Some("13812345678".into())));
        assert_eq!(
            pair("phone 138 1234 5678, order A12345678"),
            (Some("A12345678".into()), Some("13812345678".into()))
        );
    }

    #[test]
    fn bare_ids_accepted() {
        assert_eq!(order("12345 到哪了").as_deref(), Some("12345"));
        assert_eq!(order("帮我查下 A20260614001").as_deref(), Some("A20260614001"));
        assert_eq!(order("where is 4455667788").as_deref(), Some("4455667788"));
    }

    #[test]
    fn bare_numbers_that_are_not_orders() {
        for t in [
            "10000元的冰箱",
            "买了 20000 件",
            "验证码 123456 收不到",
            "快递单号 SF1234567890 查不到",
            "tracking number 9876543210",
            "尾号 12345",
            "error code 50012",
            "价格 12,999",
            "3.14159",
            "座机 010-12345678",
            "20260603 买的",
            "it cost 12000 yuan",
            "型号 KFR35 的空调",
            "91310000MA1FL0000X",
        ] {
            assert_eq!(order(t), None, "{t}");
        }
    }
}
