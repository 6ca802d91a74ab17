//! Property-based fuzzing of every parser that takes outside input but the
//! HTTP request bodies (those run in-process, in `src/api/tests/`): the slot
//! extractors, the corpus files (taxonomy, catalogue), answer templates, the
//! personal-number mask and the data-key parser. Each runs the seed inputs in
//! tests/fuzz-seeds/ and then generated ones (mutations of the seeds and of
//! the shipped corpus files, and random text); the property is always "a
//! clear result or a clear error, never a panic", plus what each parser
//! promises. `KEFU_FUZZ_CASES` sets the generated cases per target (default 2000).

use std::path::Path;

use chrono::{NaiveDate, TimeZone};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use kefu::corpus::{Taxonomy, Template};
use kefu::nlu::slots::{Catalogue, SlotExtractor};
use kefu::privacy::mask;
use kefu::privacy::vault::Vault;

fn cases() -> u32 {
    std::env::var("KEFU_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The seed lines of a target: comments skipped, quoted lines read as JSON strings.
fn seeds(name: &str) -> Vec<String> {
    repo_file(&format!("tests/fuzz-seeds/{name}"))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(
            |l| {
                if l.starts_with('"') {
                    serde_json::from_str(l).unwrap_or_else(|_| l.to_string())
                } else {
                    l.to_string()
                }
            },
        )
        .collect()
}

/// Text edits: at a fraction of the length, delete up to n chars and insert a string.
fn edits() -> impl Strategy<Value = Vec<(f64, usize, String)>> {
    prop::collection::vec(
        (0.0..1.0f64, 0..8usize, prop_oneof![any::<String>(), "[0-9=\\[\\]\"'{}.,#\n 号月日年天周]{0,6}"]),
        0..6,
    )
}

fn mutate(text: &str, edits: &[(f64, usize, String)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (at, delete, insert) in edits {
        // NOTE: at is within 0..1, so the index is within the text.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let i = ((chars.len() as f64) * at) as usize;
        let end = (i + delete).min(chars.len());
        chars.splice(i..end, insert.chars());
    }
    chars.into_iter().collect()
}

/// Runs `check` on every seed, then on `cases()` generated inputs; returns how many ran.
fn fuzz<S: Strategy>(name: &str, seeds: Vec<S::Value>, strategy: S, check: impl Fn(&S::Value)) -> u32
where
    S::Value: std::fmt::Debug,
{
    for seed in &seeds {
        check(seed);
    }
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    runner
        .run(&strategy, |input| {
            check(&input);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let ran = u32::try_from(seeds.len()).unwrap_or(u32::MAX) + cases();
    println!("fuzz {name}: {ran} inputs, 0 crashes");
    ran
}

fn extractor() -> SlotExtractor {
    SlotExtractor::new(&Catalogue::from_toml_str(&repo_file("corpus/catalogue.toml")).unwrap())
}

#[test]
fn slot_extractors_take_any_message() {
    let slots = extractor();
    let tz = chrono_tz::Asia::Shanghai;
    let seeds: Vec<(String, i64)> = seeds("messages.txt").into_iter().map(|s| (s, 0)).collect();
    let messages = prop_oneof![
        any::<String>(),
        "[0-9０-９一二三四五六七八九十零两年月日号周星期天后前上下个半点分今明昨前大-]{0,40}",
        (prop::sample::select(seeds.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>()), edits())
            .prop_map(|(s, e)| mutate(&s, &e)),
    ];
    // Any day from year 1 to 9999: relative dates must not overflow.
    let strategy = (messages, -730_000i64..3_000_000);
    fuzz("slots", seeds, strategy, |(text, day)| {
        let today = NaiveDate::from_num_days_from_ce_opt(i32::try_from(*day).unwrap_or(0).clamp(1, 3_652_059))
            .unwrap_or(NaiveDate::MIN);
        let now = tz.from_utc_datetime(&today.and_hms_opt(12, 0, 0).unwrap());
        let got = slots.extract(text, now);
        if let Some(order) = &got.order_id {
            assert!(!order.is_empty() && text.len() >= order.len().min(4), "{text:?} -> order {order:?}");
        }
        if let Some(phone) = &got.phone {
            assert_eq!(phone.chars().filter(char::is_ascii_digit).count(), 11, "{text:?} -> phone {phone:?}");
        }
        if let Some(range) = &got.time {
            assert!(range.start <= range.end, "{text:?} -> {range:?}");
        }
    });
}

#[test]
fn corpus_files_load_or_say_what_is_wrong() {
    let taxonomies = vec![repo_file("corpus/taxonomy.toml"), repo_file("corpus_examples/saas/taxonomy.toml")];
    let strategy = (prop::sample::select(taxonomies.clone()), edits()).prop_map(|(t, e)| mutate(&t, &e));
    fuzz("taxonomy", taxonomies, strategy, |text| match Taxonomy::from_toml(text) {
        Ok(taxonomy) => {
            for intent in &taxonomy.intents {
                assert!(taxonomy.has_queue(taxonomy.queue_of(&intent.id)), "{}", intent.id);
            }
        }
        Err(problems) => assert!(!problems.is_empty() && problems.iter().all(|p| !p.message.is_empty())),
    });

    let catalogues = vec![repo_file("corpus/catalogue.toml")];
    let strategy = (prop::sample::select(catalogues.clone()), edits()).prop_map(|(t, e)| mutate(&t, &e));
    fuzz("catalogue", catalogues, strategy, |text| {
        if let Err(e) = Catalogue::from_toml_str(text) {
            assert!(!e.to_string().is_empty());
        }
    });
}

#[test]
fn templates_parse_or_name_the_problem() {
    let seeds =
        vec!["你的订单 {order.id} 在 {order.address}".to_string(), "{{ 不是字段 }} {order.id".into(), "}{".into()];
    let strategy = prop_oneof![any::<String>(), "[{}a-z._ 订单]{0,30}"];
    fuzz("template", seeds, strategy, |text| {
        if let Ok(t) = Template::parse(text) {
            for field in t.fields() {
                assert!(kefu::corpus::KNOWN_FIELDS.contains(&field), "{field}");
            }
        }
    });
}

#[test]
fn masking_is_total_and_settled() {
    let strategy = prop_oneof![any::<String>(), "[0-9 +Xx-]{0,40}", "(\\+86 ?)?1[3-9][0-9]{9}[0-9]{0,3}"];
    fuzz("mask", seeds("messages.txt"), strategy, |text| {
        let once = mask(text).into_owned();
        assert_eq!(mask(&once), once, "masking twice changes {text:?}");
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).count();
        assert!(digits(&once) <= digits(text));
    });
}

#[test]
fn data_keys_and_sealed_values_never_panic() {
    let vault = Vault::ephemeral();
    let sealed = vault.seal("turns.text", "你好");
    let seeds = vec![sealed.clone(), "enc1:".into(), "enc1:ephemeral:".into(), "enc1:ephemeral:AAAA".into()];
    let strategy = prop_oneof![any::<String>(), (Just(sealed), edits()).prop_map(|(s, e)| mutate(&s, &e))];
    fuzz("sealed values", seeds, strategy, |text| {
        let _ = vault.open("turns.text", text);
        let _ = Vault::parse(text);
    });
}
