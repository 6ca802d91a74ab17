//! Loading labelled sets for evaluation and throw-away training.
//!
//! The format is sniffed from the content, with the file extension only breaking
//! ties: a file starting with `{` is JSON (one CLINC150 object, or JSON Lines),
//! anything else is CSV with a header unless the extension says JSON. Every
//! error names the file, and the line when one line is to blame.

use std::path::Path;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use super::EvalError;

pub use crate::corpus::OOS;

/// Decisions a labelled line may expect. `not_answer` and `lead` are the
/// contract's relaxed labels; see `score`.
const DECISIONS: [&str; 5] = ["answer", "clarify", "handoff", "not_answer", "lead"];

/// CLINC150 `data_full.json` keys; any of them marks an object as CLINC-shaped.
const CLINC_KEYS: [&str; 6] = ["train", "val", "test", "oos_train", "oos_val", "oos_test"];

/// One labelled query.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledLine {
    /// The customer's message.
    pub text: String,
    /// Gold intent id, or [`OOS`] when out of scope.
    pub intent: String,
    /// Expected decision: answer, clarify, handoff, not_answer or lead.
    pub decision: Option<String>,
    /// Expected slots; `Some(empty)` means no slot should be extracted.
    pub slots: Option<Map<String, Value>>,
    /// Reference time for relative dates on this line.
    pub now: Option<DateTime<FixedOffset>>,
}

/// Which half of a dataset to read. Only CLINC150 files hold both; JSONL and
/// CSV files are read whole either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetRole {
    /// Evaluation lines (CLINC150: `test` + `oos_test`).
    Test,
    /// Training exemplars (CLINC150: `train` + `oos_train`).
    Train,
    /// Held-out lines for fitting thresholds (CLINC150: `val` + `oos_val`).
    Validation,
}

impl SetRole {
    /// The CLINC150 in-scope and out-of-scope split names for this role.
    fn clinc_splits(self) -> [&'static str; 2] {
        match self {
            SetRole::Test => ["test", "oos_test"],
            SetRole::Train => ["train", "oos_train"],
            SetRole::Validation => ["val", "oos_val"],
        }
    }
}

/// Loads a labelled set from `path`, detecting JSONL, CSV or CLINC150 json.
///
/// # Errors
///
/// [`EvalError::Io`] when the file cannot be read, [`EvalError::Line`] for a
/// malformed JSONL line or CSV record (or invalid UTF-8), and
/// [`EvalError::Format`] for a CLINC150 file missing the role's splits or a
/// set with no lines: evaluating or training on nothing is always a mistake in
/// the caller's arguments.
pub fn load_labelled(path: &Path, role: SetRole) -> Result<Vec<LabelledLine>, EvalError> {
    let text = read_text(path)?;
    let content = without_bom(&text);

    let lines = if content.trim_start().starts_with('{') {
        load_json(path, content, role)?
    } else if json_extension(path) {
        // Not an object at the start, but the name says JSON: parse as JSON
        // Lines so the error points at the offending line rather than at CSV.
        load_jsonl(path, content)?
    } else {
        load_csv(path, content)?
    };
    if lines.is_empty() {
        return Err(format_error(path, "no labelled lines"));
    }
    Ok(lines)
}

/// The validation lines of a CLINC150 file (`val` + `oos_val`), or `None`
/// for any other file (JSONL and CSV sets have no such split) and for a
/// CLINC150 file without a `val` split.
pub fn load_validation(path: &Path) -> Result<Option<Vec<LabelledLine>>, EvalError> {
    let text = read_text(path)?;
    let content = without_bom(&text);
    if !content.trim_start().starts_with('{') {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(content) {
        Ok(Value::Object(obj)) if !obj.contains_key("text") && obj.contains_key("val") => {
            load_clinc(path, &obj, SetRole::Validation).map(Some)
        }
        _ => Ok(None),
    }
}

/// The file as UTF-8 text; invalid UTF-8 is reported with the line of the first bad byte.
fn read_text(path: &Path) -> Result<String, EvalError> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Io { path: path.to_path_buf(), source })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count() as u64;
        line_error(path, line, "invalid UTF-8")
    })
}

/// NOTE: spreadsheet exports often start with a byte-order mark, which would
/// otherwise become part of the first header name or hide the leading `{`.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

fn json_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "json" | "jsonl" | "ndjson"))
}

/// A file starting with `{`: either one CLINC150 object or JSON Lines.
fn load_json(path: &Path, content: &str, role: SetRole) -> Result<Vec<LabelledLine>, EvalError> {
    // A JSONL file fails this parse cheaply at the start of its second line,
    // so trying the whole-document reading first costs one line's work.
    if let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(content) {
        if !obj.contains_key("text") {
            if CLINC_KEYS.iter().any(|k| obj.contains_key(*k)) {
                return load_clinc(path, &obj, role);
            }
            return Err(format_error(
                path,
                "JSON object is neither a labelled line (no \"text\") nor a CLINC150 \
                 data_full.json (no train/test/oos_* keys)",
            ));
        }
    }
    load_jsonl(path, content)
}

fn load_clinc(path: &Path, obj: &Map<String, Value>, role: SetRole) -> Result<Vec<LabelledLine>, EvalError> {
    let mut lines = Vec::new();
    for split in role.clinc_splits() {
        let items = obj
            .get(split)
            .ok_or_else(|| format_error(path, format!("CLINC150 file has no \"{split}\" split")))?
            .as_array()
            .ok_or_else(|| format_error(path, format!("CLINC150 \"{split}\" is not an array")))?;
        let out_of_scope = split.starts_with("oos_");
        for (i, item) in items.iter().enumerate() {
            let bad = || format_error(path, format!("{split}[{i}] is not a [text, intent] pair of strings"));
            let [text, intent] = item.as_array().map(Vec::as_slice).ok_or_else(bad)? else {
                return Err(bad());
            };
            let (Some(text), Some(intent)) = (text.as_str(), intent.as_str()) else {
                return Err(bad());
            };
            lines.push(LabelledLine {
                text: text.to_owned(),
                // NOTE: the oos splits are out of scope by construction; forcing
                // the label keeps a stray label there from becoming an intent.
                intent: if out_of_scope { OOS.to_owned() } else { intent.to_owned() },
                decision: None,
                slots: None,
                now: None,
            });
        }
    }
    Ok(lines)
}

fn load_jsonl(path: &Path, content: &str) -> Result<Vec<LabelledLine>, EvalError> {
    let mut lines = Vec::new();
    for (i, raw) in content.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line_no = i as u64 + 1;
        let parsed = parse_jsonl_line(raw).map_err(|message| line_error(path, line_no, message))?;
        lines.push(parsed);
    }
    Ok(lines)
}

/// Parses one JSONL object; the error is the message without `file:line`.
fn parse_jsonl_line(raw: &str) -> Result<LabelledLine, String> {
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut obj) = value else {
        return Err("expected a JSON object".to_owned());
    };
    let text = required_string(&obj, "text")?;
    let intent = required_string(&obj, "intent")?;
    let decision = match obj.get("decision") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if DECISIONS.contains(&d.as_str()) => Some(d.clone()),
        Some(other) => return Err(format!("\"decision\" must be one of {}, got {other}", DECISIONS.join(", "))),
    };
    // NOTE: `"slots": null` reads as "no slot expectation" (line not scored for
    // slots), unlike `{}` which expects that nothing is extracted.
    let slots = match obj.remove("slots") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(other) => return Err(format!("\"slots\" must be an object, got {other}")),
    };
    let now = match obj.get("now") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(DateTime::parse_from_rfc3339(s).map_err(|e| format!("\"now\" is not an RFC 3339 time ({s:?}): {e}"))?)
        }
        Some(other) => return Err(format!("\"now\" must be an RFC 3339 string, got {other}")),
    };
    Ok(LabelledLine { text, intent, decision, slots, now })
}

fn required_string(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    match obj.get(key) {
        None => Err(format!("missing \"{key}\"")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(format!("\"{key}\" is empty")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("\"{key}\" must be a string, got {other}")),
    }
}

/// CSV with a header: first column text, second label; extra columns ignored.
fn load_csv(path: &Path, content: &str) -> Result<Vec<LabelledLine>, EvalError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        // Extra columns (ids, notes) are allowed; short rows are caught below
        // with a message that names the line.
        .flexible(true)
        .from_reader(content.as_bytes());
    let csv_error = |e: csv::Error| {
        let line = e.position().map_or(1, csv::Position::line);
        line_error(path, line, format!("invalid CSV: {e}"))
    };
    let headers = reader.headers().map_err(csv_error)?;
    if headers.len() < 2 {
        return Err(line_error(path, 1, "CSV header needs at least two columns (text, label)"));
    }
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line_no = record.position().map_or(0, csv::Position::line);
        let (Some(text), Some(label)) = (record.get(0), record.get(1)) else {
            return Err(line_error(path, line_no, "expected two columns: text, label"));
        };
        if text.trim().is_empty() {
            return Err(line_error(path, line_no, "text is empty"));
        }
        let label = label.trim();
        if label.is_empty() {
            return Err(line_error(path, line_no, "label is empty"));
        }
        lines.push(LabelledLine {
            text: text.to_owned(),
            intent: label.to_owned(),
            decision: None,
            slots: None,
            now: None,
        });
    }
    Ok(lines)
}

fn line_error(path: &Path, line: u64, message: impl Into<String>) -> EvalError {
    EvalError::Line { path: path.to_path_buf(), line, message: message.into() }
}

fn format_error(path: &Path, message: impl Into<String>) -> EvalError {
    EvalError::Format { path: path.to_path_buf(), message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    fn write(name: &str, content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::File::create(&path).unwrap().write_all(content).unwrap();
        (dir, path)
    }

    fn load(name: &str, content: &str) -> Result<Vec<LabelledLine>, EvalError> {
        let (_dir, path) = write(name, content.as_bytes());
        load_labelled(&path, SetRole::Test)
    }

    #[test]
    fn jsonl_with_all_fields_and_blank_lines() {
        let lines = load(
            "t.jsonl",
            "{\"text\":\"退货地址在哪\",\"intent\":\"return_address\",\"decision\":\"answer\"}\n\
             \n   \n\
             {\"text\":\"昨天买的裙子\",\"intent\":\"order_status\",\"slots\":{\"time\":{\"start\":\"2026-06-14\",\"end\":\"2026-06-14\"}},\"now\":\"2026-06-15T10:00:00+08:00\",\"extra\":1}\r\n\
             {\"text\":\"what's the weather\",\"intent\":\"oos\",\"slots\":{},\"decision\":\"not_answer\"}\n",
        )
        .unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].decision.as_deref(), Some("answer"));
        assert_eq!(lines[0].slots, None);
        assert_eq!(
            Value::Object(lines[1].slots.clone().unwrap()),
            json!({"time": {"start": "2026-06-14", "end": "2026-06-14"}})
        );
        assert_eq!(lines[1].now.unwrap().to_rfc3339(), "2026-06-15T10:00:00+08:00");
        assert_eq!(lines[2].intent, OOS);
        assert_eq!(lines[2].slots, Some(Map::new()));
    }

    #[test]
    fn single_line_jsonl_is_not_mistaken_for_clinc() {
        let lines = load("one.json", "{\"text\":\"hi\",\"intent\":\"greet\"}").unwrap();
        assert_eq!(lines[0].intent, "greet");
    }

    #[test]
    fn jsonl_errors_name_file_line_and_problem() {
        let cases = [
            ("{\"text\":\"a\",\"intent\":\"x\"}\n\n{\"text\":\"b\"}\n", 3, "missing \"intent\""),
            ("{\"text\":\"a\",\"intent\":\"x\"}\n{\"text\":1,\"intent\":\"x\"}\n", 2, "\"text\" must be a string"),
            ("{\"text\":\"a\",\"intent\":\"x\"}\n{\"text\":\"a\",\"intent\":\"x\"\n", 2, "invalid JSON"),
            ("{\"text\":\"a\",\"intent\":\"x\",\"decision\":\"maybe\"}\n", 1, "\"decision\" must be one of"),
            ("{\"text\":\"a\",\"intent\":\"x\",\"slots\":[1]}\n", 1, "\"slots\" must be an object"),
            ("{\"text\":\"a\",\"intent\":\"x\",\"now\":\"yesterday\"}\n", 1, "\"now\" is not an RFC 3339 time"),
            ("{\"text\":\" \",\"intent\":\"x\"}\n", 1, "\"text\" is empty"),
            ("{\"text\":\"a\",\"intent\":\"x\"}\n[1,2]\n", 2, "expected a JSON object"),
        ];
        for (content, line, what) in cases {
            let (_dir, path) = write("bad.jsonl", content.as_bytes());
            let err = load_labelled(&path, SetRole::Test).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with(&format!("{}:{line}: ", path.display())), "{msg}");
            assert!(msg.contains(what), "{msg} should contain {what}");
        }
    }

    #[test]
    fn json_extension_without_object_reports_line() {
        let (_dir, path) = write("x.jsonl", b"not json\n");
        let msg = load_labelled(&path, SetRole::Test).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("{}:1: invalid JSON", path.display())), "{msg}");
    }

    #[test]
    fn csv_banking77_style_with_quotes() {
        let lines = load(
            "b77.csv",
            "\u{feff}text,category\n\
             I am still waiting on my card?,card_arrival\n\
             \"What if, say, my card never arrives?\",card_arrival\n\
             \"Line one\nline two with \"\"quotes\"\"\",lost_or_stolen_card\n\
             \n\
             How do I top up?,top_up_by_card,extra\n",
        )
        .unwrap();
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "I am still waiting on my card?",
                "What if, say, my card never arrives?",
                "Line one\nline two with \"quotes\"",
                "How do I top up?",
            ]
        );
        assert_eq!(lines[2].intent, "lost_or_stolen_card");
        assert_eq!(lines[3].intent, "top_up_by_card");
        assert!(lines.iter().all(|l| l.decision.is_none() && l.slots.is_none()));
    }

    #[test]
    fn csv_errors_name_line() {
        let (_dir, path) = write("b.csv", b"text,category\nok,a\nonly text\n");
        let msg = load_labelled(&path, SetRole::Test).unwrap_err().to_string();
        assert_eq!(msg, format!("{}:3: expected two columns: text, label", path.display()));

        let (_dir, path) = write("c.csv", b"text,category\nok,a\n\"multi\nline\",\n");
        let msg = load_labelled(&path, SetRole::Test).unwrap_err().to_string();
        assert_eq!(msg, format!("{}:3: label is empty", path.display()));

        let (_dir, path) = write("d.csv", b"text\nok\n");
        let msg = load_labelled(&path, SetRole::Test).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("{}:1: CSV header", path.display())), "{msg}");
    }

    #[test]
    fn invalid_utf8_names_line() {
        let (_dir, path) = write("u.csv", b"text,category\nok,a\nbad \xff,b\n");
        let msg = load_labelled(&path, SetRole::Test).unwrap_err().to_string();
        assert_eq!(msg, format!("{}:3: invalid UTF-8", path.display()));
    }

    #[test]
    fn empty_and_missing_files_are_errors() {
        let (_dir, path) = write("e.jsonl", b"\n\n");
        let msg = load_labelled(&path, SetRole::Test).unwrap_err().to_string();
        assert_eq!(msg, format!("{}: no labelled lines", path.display()));

        let (_dir, path) = write("e.csv", b"text,category\n");
        assert!(load_labelled(&path, SetRole::Test).is_err());

        let missing = std::path::Path::new("no/such/file.jsonl");
        let err = load_labelled(missing, SetRole::Test).unwrap_err();
        assert!(matches!(err, EvalError::Io { .. }));
        assert!(err.to_string().starts_with("cannot read no/such/file.jsonl: "));
    }

    const CLINC: &str = r#"{
        "oos_val": [["val oos", "oos"]],
        "val": [["val text", "balance"]],
        "train": [["what is my balance", "balance"], ["transfer money", "transfer"]],
        "oos_train": [["tell me a joke", "oos"]],
        "test": [["how much money do i have", "balance"]],
        "oos_test": [["who won the game", "oos"], ["sing a song", "not_oos_label"]]
    }"#;

    #[test]
    fn clinc_test_role_reads_test_and_oos_test() {
        let (_dir, path) = write("data_full.json", CLINC.as_bytes());
        let lines = load_labelled(&path, SetRole::Test).unwrap();
        let got: Vec<_> = lines.iter().map(|l| (l.text.as_str(), l.intent.as_str())).collect();
        assert_eq!(
            got,
            [("how much money do i have", "balance"), ("who won the game", "oos"), ("sing a song", "oos"),]
        );
    }

    #[test]
    fn clinc_validation_reads_val_and_oos_val_and_other_sets_have_none() {
        let (_dir, path) = write("data_full.json", CLINC.as_bytes());
        let lines = load_validation(&path).unwrap().unwrap();
        let pairs: Vec<(&str, &str)> = lines.iter().map(|l| (l.text.as_str(), l.intent.as_str())).collect();
        assert_eq!(pairs, [("val text", "balance"), ("val oos", OOS)]);
        let (_dir, jsonl) = write("set.jsonl", br#"{"text": "hi", "intent": "greet"}"#);
        assert!(load_validation(&jsonl).unwrap().is_none());
        let (_dir, no_val) = write("c.json", br#"{"train": [["a","b"]], "oos_train": []}"#);
        assert!(load_validation(&no_val).unwrap().is_none());
    }

    #[test]
    fn clinc_train_role_reads_train_and_oos_train() {
        let (_dir, path) = write("data_full.json", CLINC.as_bytes());
        let lines = load_labelled(&path, SetRole::Train).unwrap();
        let got: Vec<_> = lines.iter().map(|l| (l.text.as_str(), l.intent.as_str())).collect();
        assert_eq!(
            got,
            [("what is my balance", "balance"), ("transfer money", "transfer"), ("tell me a joke", "oos"),]
        );
    }

    #[test]
    fn clinc_errors() {
        let (_dir, path) = write("c.json", br#"{"train": [["a","b"]], "oos_train": []}"#);
        let msg = load_labelled(&path, SetRole::Test).unwrap_err().to_string();
        assert_eq!(msg, format!("{}: CLINC150 file has no \"test\" split", path.display()));

        let (_dir, path) = write("c.json", br#"{"test": [["a","b"], ["only"]], "oos_test": []}"#);
        let msg = load_labelled(&path, SetRole::Test).unwrap_err().to_string();
        assert!(msg.contains("test[1] is not a [text, intent] pair"), "{msg}");

        let (_dir, path) = write("c.json", b"{\n  \"rows\": []\n}\n");
        let msg = load_labelled(&path, SetRole::Test).unwrap_err().to_string();
        assert!(msg.contains("neither a labelled line"), "{msg}");
    }
}
