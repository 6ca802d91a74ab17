//! Slot extraction: order id, phone, product type and purchase/report time
//! from one customer message. A pure function of the text, the catalogue and
//! the caller's `now` (no I/O, no clock), normalised exactly as the
//! `[slots.*]` sections of `corpus/taxonomy.toml` say.
//!
//! The passes run in a fixed order so that one piece of text fills at most
//! one slot: numbers first (order id vs phone, see `numbers.rs`), then the
//! product and the time, which skip the spans the numbers took.

mod catalogue;
mod numbers;
mod time;

use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use catalogue::{Catalogue, CatalogueError, ProductType};

/// An inclusive range of local dates; a single day has `start == end`.
/// Serialises as `{"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DateRange {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl DateRange {
    /// The range between two dates, in whichever order they are given.
    pub fn new(a: NaiveDate, b: NaiveDate) -> Self {
        DateRange { start: a.min(b), end: a.max(b) }
    }

    /// A single day.
    pub fn day(d: NaiveDate) -> Self {
        DateRange { start: d, end: d }
    }
}

/// The slots of one message. Absent slots are `None` and are left out of
/// the JSON form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slots {
    /// Order number, upper-cased, without spaces or '#'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Mainland mobile number, the 11 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Canonical product type id of the catalogue (e.g. `dress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// When the customer bought, ordered or reported something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateRange>,
}

impl Slots {
    /// The JSON object form used in API responses and tickets, e.g.
    /// `{"order_id": "12345", "time": {"start": "2026-06-14", "end": "2026-06-14"}}`.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let text_slots = [("order_id", &self.order_id), ("phone", &self.phone), ("product", &self.product)];
        for (key, value) in text_slots {
            if let Some(v) = value {
                map.insert(key.to_string(), Value::String(v.clone()));
            }
        }
        if let Some(range) = &self.time {
            let mut time = Map::new();
            time.insert("start".to_string(), Value::String(range.start.to_string()));
            time.insert("end".to_string(), Value::String(range.end.to_string()));
            map.insert("time".to_string(), Value::Object(time));
        }
        map
    }

    /// True when no slot is filled.
    pub fn is_empty(&self) -> bool {
        *self == Slots::default()
    }

    /// Fills the slots this turn left empty from an earlier turn of the same
    /// conversation; what this turn said always wins.
    pub fn merge_missing_from(&mut self, earlier: &Slots) {
        if self.order_id.is_none() {
            self.order_id.clone_from(&earlier.order_id);
        }
        if self.phone.is_none() {
            self.phone.clone_from(&earlier.phone);
        }
        if self.product.is_none() {
            self.product.clone_from(&earlier.product);
        }
        if self.time.is_none() {
            self.time = earlier.time;
        }
    }
}

/// Extracts [`Slots`] from messages. Built once from the catalogue; cheap to
/// clone and share across threads.
#[derive(Debug, Clone)]
pub struct SlotExtractor {
    catalogue: Catalogue,
}

impl SlotExtractor {
    /// An extractor over this catalogue's product synonyms.
    pub fn new(catalogue: &Catalogue) -> Self {
        SlotExtractor { catalogue: catalogue.clone() }
    }

    /// The slots of `text`. `now` is the request's reference time already in
    /// the deployment's zone (default Asia/Shanghai); relative dates are
    /// resolved against its local date.
    pub fn extract(&self, text: &str, now: DateTime<Tz>) -> Slots {
        self.locate(text, now).slots
    }

    /// [`SlotExtractor::extract`], with where in `text` each slot was read.
    pub fn locate(&self, text: &str, now: DateTime<Tz>) -> LocatedSlots {
        let text = normalise_width(text);
        let numbers = numbers::extract(&text);
        let product = self.catalogue.find_product(&text, &numbers.taken, &numbers.phones);
        let time = time::extract(&text, now.date_naive(), &numbers.taken);
        // NOTE: width normalising maps each char to one char, so char
        // offsets in the normalised text are those of the original.
        let chars = |(start, end): (usize, usize)| (text[..start].chars().count(), text[..end].chars().count());
        let spans = [
            ("order_id", numbers.order_span),
            ("phone", numbers.phone_span),
            ("product", product.map(|(_, span)| span)),
            ("time", time.map(|(_, span)| span)),
        ]
        .into_iter()
        .filter_map(|(slot, span)| span.map(|span| SlotSpan { slot, chars: chars(span) }))
        .collect();
        let slots = Slots {
            order_id: numbers.order_id,
            phone: numbers.phone,
            product: product.map(|(id, _)| id.to_owned()),
            time: time.map(|(range, _)| range),
        };
        LocatedSlots { slots, spans }
    }
}

/// Slots with the stretch of the message each was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedSlots {
    pub slots: Slots,
    pub spans: Vec<SlotSpan>,
}

/// Where one slot was read: `[start, end)` in characters of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSpan {
    /// The slot's name as in the JSON form (`order_id`, `phone`, `product`, `time`).
    pub slot: &'static str,
    pub chars: (usize, usize),
}

/// Full-width ASCII forms (１３８, ＃, ：, Ｔ恤) and the ideographic space
/// become their ASCII forms, as Chinese input methods often type them.
pub(crate) fn normalise_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};
    use std::path::PathBuf;

    use chrono::TimeZone;
    use chrono_tz::Asia::Shanghai;

    use super::*;

    fn repo(path: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
    }

    fn extractor() -> SlotExtractor {
        SlotExtractor::new(&Catalogue::load(&repo("corpus/catalogue.toml")).unwrap())
    }

    /// Monday 2026-06-15 10:00 in Shanghai, the eval set's reference time.
    fn now() -> DateTime<Tz> {
        Shanghai.with_ymd_and_hms(2026, 6, 15, 10, 0, 0).unwrap()
    }

    fn json(text: &str) -> Value {
        Value::Object(extractor().extract(text, now()).to_json())
    }

    #[test]
    fn extractor_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SlotExtractor>();
    }

    #[test]
    fn json_shape_skips_empty_slots() {
        assert_eq!(
            json("订单号12345昨天买的"),
            serde_json::json!({"order_id": "12345", "time": {"start": "2026-06-14", "end": "2026-06-14"}})
        );
        let slots = extractor().extract("昨天买的连衣裙", now());
        assert_eq!(
            serde_json::to_value(&slots).unwrap(),
            serde_json::json!({"product": "dress", "time": {"start": "2026-06-14", "end": "2026-06-14"}})
        );
        assert_eq!(json("你好"), serde_json::json!({}));
        assert!(extractor().extract("你好", now()).is_empty());
    }

    #[test]
    fn spans_are_char_offsets_of_the_original_text() {
        let text = "订单号１２３４５，手机13812345678，昨天买的连衣裙";
        let located = extractor().locate(text, now());
        let read = |slot: &str| {
            let span = located.spans.iter().find(|s| s.slot == slot).unwrap().chars;
            text.chars().skip(span.0).take(span.1 - span.0).collect::<String>()
        };
        assert_eq!(read("order_id"), "１２３４５");
        assert_eq!(read("phone"), "13812345678");
        assert_eq!(read("time"), "昨天");
        assert_eq!(read("product"), "连衣裙");
        assert_eq!(located.slots, extractor().extract(text, now()));
    }

    #[test]
    fn serde_round_trip() {
        let slots = extractor().extract("订单A20260614001 手机13812345678 上周买的冰箱", now());
        let back: Slots = serde_json::from_value(serde_json::to_value(&slots).unwrap()).unwrap();
        assert_eq!(back, slots);
        assert!(!slots.is_empty());
    }

    #[test]
    fn merge_fills_only_missing() {
        let earlier = extractor().extract("订单号12345 买的耳机 手机13812345678", now());
        let mut current = extractor().extract("现在换成冰箱了，昨天的事", now());
        current.merge_missing_from(&earlier);
        assert_eq!(current.order_id.as_deref(), Some("12345"));
        assert_eq!(current.phone.as_deref(), Some("13812345678"));
        assert_eq!(current.product.as_deref(), Some("refrigerator"));
        assert_eq!(current.time, Some(DateRange::day(NaiveDate::from_ymd_opt(2026, 6, 14).unwrap())));
    }

    #[test]
    fn local_date_comes_from_now() {
        // 2026-06-14 20:00 UTC is already Monday 04:00 in Shanghai.
        let late = chrono::Utc.with_ymd_and_hms(2026, 6, 14, 20, 0, 0).unwrap().with_timezone(&Shanghai);
        let slots = extractor().extract("yesterday", late);
        assert_eq!(slots.time, Some(DateRange::day(NaiveDate::from_ymd_opt(2026, 6, 14).unwrap())));
    }

    #[test]
    fn full_width_input() {
        let slots = extractor().extract("订单号：Ａ２０２６０６１４００１，手机１３８１２３４５６７８，Ｔ恤", now());
        assert_eq!(slots.order_id.as_deref(), Some("A20260614001"));
        assert_eq!(slots.phone.as_deref(), Some("13812345678"));
        assert_eq!(slots.product.as_deref(), Some("tshirt"));
    }

    #[test]
    fn products_through_synonyms() {
        let e = extractor();
        let cases = [
            ("我买的长裙有点大", "dress"),
            ("短袖能换个颜色吗", "tshirt"),
            ("跑鞋尺码偏小", "sneakers"),
            ("蓝牙耳机左耳没声音", "headphones"),
            ("新买的手机屏幕有坏点", "phone"),
            ("笔记本开不了机", "laptop"),
            ("电视机黑屏了", "tv"),
            ("冰箱不制冷", "refrigerator"),
            ("柜机漏水", "air_conditioner"),
            ("洗衣机不脱水", "washing_machine"),
            ("沙发什么时候发货", "sofa"),
            ("扫地机器人不回充", "robot_vacuum"),
            ("my earbuds won't pair", "headphones"),
            ("the fridge is warm", "refrigerator"),
            ("is the couch in stock", "sofa"),
            ("my Roomba is stuck", "robot_vacuum"),
            ("two TVs arrived broken", "tv"),
            ("the AC is leaking", "air_conditioner"),
            ("running shoes in size 42?", "sneakers"),
        ];
        for (text, want) in cases {
            assert_eq!(e.extract(text, now()).product.as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn phone_words_that_are_not_phones() {
        let e = extractor();
        for text in [
            "我的手机号换了",
            "手机号码13812345678",
            "I want to go back",
            "what's your phone number",
            "my phone number is 13812345678",
            "电脑端登录不上",
            "客服直接挂机了",
        ] {
            assert_eq!(e.extract(text, now()).product, None, "{text}");
        }
        let both = e.extract("手机号13812345678，买的手机坏了", now());
        assert_eq!(both.product.as_deref(), Some("phone"));
        assert_eq!(both.phone.as_deref(), Some("13812345678"));
    }

    #[test]
    fn shipped_catalogue_matches_taxonomy() {
        let taxonomy: toml::Value =
            toml::from_str(&std::fs::read_to_string(repo("corpus/taxonomy.toml")).unwrap()).unwrap();
        let want: BTreeSet<&str> =
            taxonomy["slots"]["product"]["types"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        let catalogue = Catalogue::load(&repo("corpus/catalogue.toml")).unwrap();
        let have: BTreeSet<&str> = catalogue.types().map(|t| t.id.as_str()).collect();
        assert_eq!(have, want);
        for t in catalogue.types() {
            assert!(!t.zh.is_empty() && !t.en.is_empty(), "{} needs zh and en synonyms", t.id);
        }
    }

    /// Runs the extractor over eval/slots.jsonl, checks the labels against
    /// the taxonomy, and requires micro F1 >= 0.95 over (line, slot, value).
    #[test]
    fn eval_set_slot_f1() {
        let taxonomy: toml::Value =
            toml::from_str(&std::fs::read_to_string(repo("corpus/taxonomy.toml")).unwrap()).unwrap();
        let decisions: HashMap<&str, &str> = taxonomy["intent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["id"].as_str().unwrap(), i["decision"].as_str().unwrap()))
            .collect();
        let e = extractor();
        let text = std::fs::read_to_string(repo("eval/slots.jsonl")).unwrap();
        let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
        let mut misses = Vec::new();
        let mut lines = 0;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            lines += 1;
            let row: Value = serde_json::from_str(line).unwrap_or_else(|err| panic!("line {}: {err}", n + 1));
            let intent = row["intent"].as_str().unwrap();
            assert!(intent == "oos" || decisions.contains_key(intent), "line {}: unknown intent {intent}", n + 1);
            if let Some(decision) = row.get("decision").and_then(Value::as_str) {
                assert_eq!(Some(&decision), decisions.get(intent), "line {}: decision", n + 1);
            }
            let now = DateTime::parse_from_rfc3339(row["now"].as_str().unwrap()).unwrap().with_timezone(&Shanghai);
            let expected: Slots = serde_json::from_value(row["slots"].clone()).unwrap();
            let got = e.extract(row["text"].as_str().unwrap(), now).to_json();
            let want = expected.to_json();
            assert_eq!(Value::Object(want.clone()), row["slots"], "line {}: slots not normalised", n + 1);
            for (key, value) in &got {
                if want.get(key) == Some(value) {
                    tp += 1;
                } else {
                    fp += 1;
                }
            }
            fn_ += want.iter().filter(|(k, v)| got.get(*k) != Some(*v)).count();
            if got != want {
                misses.push(format!("line {}: {} want {:?} got {:?}", n + 1, row["text"], want, got));
            }
        }
        let f1 = 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64;
        eprintln!("eval/slots.jsonl: {lines} lines, tp {tp} fp {fp} fn {fn_}, micro F1 {f1:.4}");
        for m in &misses {
            eprintln!("{m}");
        }
        assert!(lines >= 150, "eval set has {lines} lines");
        assert!(f1 >= 0.95, "slot F1 {f1:.4}");
    }
}
