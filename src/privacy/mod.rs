//! Personal data: masking of personal numbers (mobile phones, ID cards, bank
//! cards) before any text is logged or stored (13812345678 -> 138****5678),
//! masking of names and addresses in what the API shows, and the [`vault`]
//! that encrypts what the store keeps.

pub mod vault;

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

struct Pattern {
    regex: Regex,
    /// Digits kept in clear at the start and at the end.
    keep: (usize, usize),
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let pattern = |re: &str, keep| Pattern {
        // NOTE: the patterns are constants; compiling them cannot fail at run time.
        regex: Regex::new(re).expect("constant regex"),
        keep,
    };
    vec![
        // Resident ID card: 17 digits and a digit or X.
        pattern(r"\d{17}[\dXx]", (3, 4)),
        // Bank card: 16 to 19 digits, possibly in groups of four.
        pattern(r"\d{4}(?:[ -]?\d{4}){3}(?:[ -]?\d{1,3})?", (0, 4)),
        // Mainland mobile, possibly +86 and 3-4-4 grouping.
        pattern(r"(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}", (3, 4)),
    ]
});

fn is_digit_at(text: &str, index: usize, before: bool) -> bool {
    let c = if before { text[..index].chars().next_back() } else { text[index..].chars().next() };
    c.is_some_and(|c| c.is_ascii_digit())
}

/// `text` with every phone, ID-card and bank-card number masked; borrowed when there is none.
pub fn mask(text: &str) -> Cow<'_, str> {
    let mut spans: Vec<(usize, usize, (usize, usize))> = Vec::new();
    for p in PATTERNS.iter() {
        for m in p.regex.find_iter(text) {
            // A run inside a longer digit run is something else (an order number, say).
            if is_digit_at(text, m.start(), true) || is_digit_at(text, m.end(), false) {
                continue;
            }
            if !spans.iter().any(|&(s, e, _)| m.start() < e && s < m.end()) {
                spans.push((m.start(), m.end(), p.keep));
            }
        }
    }
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    spans.sort();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end, (head, tail)) in spans {
        out.push_str(&text[last..start]);
        let digits: Vec<char> = text[start..end].chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        // Strip a +86 country code so the kept head is the number's own.
        let digits = if digits.len() == 13 && digits.starts_with(&['8', '6']) { &digits[2..] } else { &digits[..] };
        let n = digits.len();
        for (i, c) in digits.iter().enumerate() {
            out.push(if i < head || i >= n.saturating_sub(tail) { *c } else { '*' });
        }
        last = end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// [`mask`] applied to every string inside a JSON value.
pub fn mask_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(mask(s).into_owned()),
        Value::Array(items) => Value::Array(items.iter().map(mask_json).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), mask_json(v))).collect()),
        other => other.clone(),
    }
}

/// 张伟 -> 张*, John Smith -> J*** S****: enough for an agent to greet, not to identify.
pub fn mask_name(name: &str) -> String {
    name.split(' ')
        .map(|word| word.chars().enumerate().map(|(i, c)| if i == 0 { c } else { '*' }).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An address cut to its district: 北京市朝阳区建国路88号 -> 北京市朝阳区****.
/// Without a district or county, the city; without either, the first two characters.
pub fn mask_address(address: &str) -> String {
    let cut = ['区', '县', '旗']
        .iter()
        .filter_map(|c| address.find(*c).map(|i| i + c.len_utf8()))
        .min()
        .or_else(|| address.find('市').map(|i| i + '市'.len_utf8()))
        .unwrap_or_else(|| address.char_indices().nth(2).map_or(address.len(), |(i, _)| i));
    if cut >= address.len() {
        return address.to_string();
    }
    format!("{}****", &address[..cut])
}

/// JSON keys whose string values are personal data, and how each is shown.
fn personal_mask(key: &str) -> Option<fn(&str) -> String> {
    match key {
        "name" | "customer_name" | "contact_name" => Some(mask_name),
        "address" | "shipping_address" => Some(mask_address),
        _ => None,
    }
}

/// `value` as the API shows it by default: personal numbers masked in every
/// string, names and addresses masked under their keys.
pub fn mask_personal(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let shown = match (personal_mask(k), v) {
                        (Some(hide), Value::String(s)) => Value::String(hide(s)),
                        _ => mask_personal(v),
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask_personal).collect()),
        other => mask_json(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_mobile_numbers_in_every_spelling() {
        assert_eq!(mask("我的手机 13812345678 谢谢"), "我的手机 138****5678 谢谢");
        assert_eq!(mask("call 138-1234-5678"), "call 138****5678");
        assert_eq!(mask("+86 138 1234 5678"), "138****5678");
        assert_eq!(mask("手机号:+8613812345678。"), "手机号:138****5678。");
    }

    #[test]
    fn masks_id_and_bank_cards() {
        assert_eq!(mask("身份证 11010119900307123X"), "身份证 110***********123X");
        assert_eq!(mask("卡号 6222 0212 3456 7890"), "卡号 ************7890");
        assert_eq!(mask("card 6222021234567890123"), "card ***************0123");
    }

    #[test]
    fn leaves_order_numbers_and_short_numbers() {
        for text in ["订单 12345 到哪了", "order #A20260614001", "尾号1234", "2026-06-14", "订单号 202606140012"]
        {
            assert_eq!(mask(text), text);
        }
        assert!(matches!(mask("no numbers"), Cow::Borrowed(_)));
    }

    #[test]
    fn masks_inside_json() {
        let v = serde_json::json!({"phone": "13812345678", "n": 1, "list": ["tel 13912345678"]});
        assert_eq!(mask_json(&v), serde_json::json!({"phone": "138****5678", "n": 1, "list": ["tel 139****5678"]}));
    }

    #[test]
    fn masks_names_and_addresses_under_their_keys() {
        let v = serde_json::json!({
            "customer": {"name": "王小明", "phone": "13812345678"},
            "orders": [{"id": "A1", "address": "北京市朝阳区建国路88号", "product_name": "冰箱"}],
        });
        assert_eq!(
            mask_personal(&v),
            serde_json::json!({
                "customer": {"name": "王**", "phone": "138****5678"},
                "orders": [{"id": "A1", "address": "北京市朝阳区****", "product_name": "冰箱"}],
            })
        );
        assert_eq!(mask_address("上海市浦东新区世纪大道1号"), "上海市浦东新区****");
        assert_eq!(mask_address("杭州市西湖路1号"), "杭州市****");
        assert_eq!(mask_address("12 Baker Street"), "12****");
        assert_eq!(mask_address("北京"), "北京");
    }
}
