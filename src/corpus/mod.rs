//! The corpus: the taxonomy, each intent's example utterances and answers, and
//! out-of-scope examples, loaded from human-edited TOML files (see
//! `corpus/README.md`) and validated as a whole, so that every problem is
//! reported at once with its file, line, entry and field.

mod data;
mod replies;
mod taxonomy;
mod template;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

pub use data::{DataAnswer, DataKind};
pub use replies::{Replies, ReplyKey};
pub use taxonomy::{Decision, IntentDef, Role, Scenario, Taxonomy};
pub use template::{FieldValues, Template, TemplateError, KNOWN_FIELDS};

/// The label used for anything outside the taxonomy.
pub const OOS: &str = "oos";

/// Language of an example or an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// Chinese when the text holds any CJK ideograph, English when it holds
    /// Latin letters, and Chinese (the first language) when it holds neither:
    /// a bare order number "99999" is no English sentence.
    pub fn detect(text: &str) -> Lang {
        let cjk = text
            .chars()
            .any(|c| matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}'));
        if cjk || !text.chars().any(|c| c.is_ascii_alphabetic()) {
            Lang::Zh
        } else {
            Lang::En
        }
    }
}

/// One labelled utterance the engine learns from.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub text: String,
    /// Intent id, or [`OOS`].
    pub intent: String,
    pub lang: Lang,
}

/// An intent as the engine uses it: taxonomy facts plus corpus answers.
#[derive(Debug, Clone)]
pub struct Intent {
    pub id: String,
    pub scenario: String,
    pub decision: Decision,
    /// Short names from the taxonomy, used when the bot asks which intent is meant.
    pub title_zh: String,
    pub title_en: String,
    pub answer_zh: String,
    pub answer_en: String,
    /// The answer that uses the customer's data, when the intent has one.
    pub data: Option<DataAnswer>,
}

impl Intent {
    /// The intent's short name in the customer's language.
    pub fn title(&self, lang: Lang) -> &str {
        match lang {
            Lang::Zh => &self.title_zh,
            Lang::En => &self.title_en,
        }
    }

    /// The answer in the customer's language.
    pub fn answer(&self, lang: Lang) -> &str {
        match lang {
            Lang::Zh => &self.answer_zh,
            Lang::En => &self.answer_en,
        }
    }
}

/// A loaded, validated corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub taxonomy: Taxonomy,
    /// Intents in taxonomy order.
    pub intents: Vec<Intent>,
    /// In-scope examples followed by out-of-scope ones.
    pub examples: Vec<Example>,
    /// What the bot says when it is not answering an intent.
    pub replies: Replies,
    /// Hash of what the intent model learns from (labelled examples and the
    /// intents' scenarios); keys the model cache, so editing answers does not refit.
    pub fingerprint: String,
}

/// One thing wrong with a corpus file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// Which entry, e.g. `intent #2 "shipping_fee"`.
    pub entry: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(entry) = &self.entry {
            write!(f, " {entry}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the corpus has {} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    #[error("no labelled lines to build an engine from")]
    Empty,
}

/// Fewest examples an intent may have: below this neither the head nor the
/// held-out split that fits thresholds has anything to work with.
const MIN_EXAMPLES_PER_INTENT: usize = 5;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    scenario: Spanned<String>,
    #[serde(default)]
    intent: Vec<Spanned<IntentEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentEntry {
    id: Spanned<String>,
    #[serde(default)]
    zh: Vec<Spanned<String>>,
    #[serde(default)]
    en: Vec<Spanned<String>>,
    answer_zh: Option<Spanned<String>>,
    answer_en: Option<Spanned<String>>,
    /// Enterprise record the data answer uses: order, stock, refund or repair.
    data: Option<Spanned<String>>,
    data_answer_zh: Option<Spanned<String>>,
    data_answer_en: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OosFile {
    #[serde(default)]
    zh: Vec<Spanned<String>>,
    #[serde(default)]
    en: Vec<Spanned<String>>,
}

/// Files in the corpus folder that are not scenario files.
const NON_SCENARIO_FILES: [&str; 4] = ["taxonomy.toml", "oos.toml", "catalogue.toml", "replies.toml"];

/// Maps byte offsets of one file to 1-based line numbers.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        LineIndex(std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect())
    }
    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset)
    }
}

struct FileReader {
    problems: Vec<Problem>,
}

impl FileReader {
    fn read(&mut self, path: &Path) -> Result<String, CorpusError> {
        std::fs::read_to_string(path).map_err(|source| CorpusError::Io { path: path.to_path_buf(), source })
    }

    fn parse<T: serde::de::DeserializeOwned>(&mut self, path: &Path, text: &str) -> Option<T> {
        match toml::from_str(text) {
            Ok(value) => Some(value),
            Err(err) => {
                let lines = LineIndex::new(text);
                self.problems.push(Problem {
                    file: path.to_path_buf(),
                    line: err.span().map(|s| lines.line(s.start)),
                    entry: None,
                    field: None,
                    message: err.message().to_string(),
                });
                None
            }
        }
    }
}

impl Corpus {
    /// Loads and validates every file of a corpus folder.
    pub fn load(dir: &Path) -> Result<Corpus, CorpusError> {
        let mut reader = FileReader { problems: Vec::new() };
        let taxonomy_path = dir.join("taxonomy.toml");
        let taxonomy_text = reader.read(&taxonomy_path)?;
        let taxonomy = match Taxonomy::from_toml(&taxonomy_text) {
            Ok(t) => t,
            Err(problems) => {
                return Err(CorpusError::Invalid(
                    problems.into_iter().map(|p| Problem { file: taxonomy_path.clone(), ..p }).collect(),
                ));
            }
        };

        let mut scenario_paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| CorpusError::Io { path: dir.to_path_buf(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .filter(|p| !NON_SCENARIO_FILES.iter().any(|n| p.file_name().is_some_and(|f| f == *n)))
            .collect();
        scenario_paths.sort();

        let mut builder = CorpusBuilder::new(&taxonomy);
        for path in &scenario_paths {
            let text = reader.read(path)?;
            if let Some(file) = reader.parse::<ScenarioFile>(path, &text) {
                builder.add_scenario_file(path, &LineIndex::new(&text), file);
            }
        }
        let oos_path = dir.join("oos.toml");
        if oos_path.exists() {
            let text = reader.read(&oos_path)?;
            if let Some(file) = reader.parse::<OosFile>(&oos_path, &text) {
                builder.add_oos_file(&oos_path, &LineIndex::new(&text), file);
            }
        }
        let replies_path = dir.join("replies.toml");
        let replies = match replies_path.exists() {
            true => Replies::from_toml(&replies_path, &reader.read(&replies_path)?, &mut reader.problems),
            false => Replies::default(),
        };
        let mut problems = reader.problems;
        let corpus = builder.finish(dir, replies, &mut problems);
        if problems.is_empty() {
            Ok(corpus)
        } else {
            Err(CorpusError::Invalid(problems))
        }
    }

    /// A throw-away corpus whose intents are the labels of `lines` (label
    /// [`OOS`] marks out-of-scope examples), all in one scenario, answered by
    /// naming the intent: for evaluating on a labelled set without hand-written answers.
    pub fn from_labelled<'a>(lines: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Corpus, CorpusError> {
        const SCENARIO: &str = "default";
        let mut in_scope = Vec::new();
        let mut oos = Vec::new();
        let mut ids: BTreeMap<String, ()> = BTreeMap::new();
        for (text, label) in lines {
            let example = Example { text: text.to_string(), intent: label.to_string(), lang: Lang::detect(text) };
            if label == OOS {
                oos.push(example);
            } else {
                ids.insert(label.to_string(), ());
                in_scope.push(example);
            }
        }
        if ids.is_empty() {
            return Err(CorpusError::Empty);
        }
        let taxonomy = Taxonomy::single_scenario(SCENARIO, ids.keys().cloned());
        let intents: Vec<Intent> = ids
            .into_keys()
            .map(|id| Intent {
                answer_zh: format!("[{id}]"),
                answer_en: format!("[{id}]"),
                title_zh: id.clone(),
                title_en: id.clone(),
                data: None,
                scenario: SCENARIO.to_string(),
                decision: Decision::Answer,
                id,
            })
            .collect();
        in_scope.extend(oos);
        Ok(Corpus {
            fingerprint: fingerprint(&intents, &in_scope),
            taxonomy,
            intents,
            examples: in_scope,
            replies: Replies::default(),
        })
    }

    /// The intent with this id.
    pub fn intent(&self, id: &str) -> Option<&Intent> {
        self.intents.iter().find(|i| i.id == id)
    }

    /// Scenario ids of the taxonomy.
    pub fn scenarios(&self) -> impl Iterator<Item = &str> {
        self.taxonomy.scenarios.iter().map(|s| s.id.as_str())
    }
}

/// Hash of the labelled examples and the intents' scenarios, in order.
fn fingerprint(intents: &[Intent], examples: &[Example]) -> String {
    let mut h = Sha256::new();
    for i in intents {
        for part in [&i.id, &i.scenario] {
            h.update(part.as_bytes());
            h.update([0]);
        }
    }
    for e in examples {
        for part in [&e.intent, &e.text] {
            h.update(part.as_bytes());
            h.update([0]);
        }
    }
    hex::encode(h.finalize())
}

struct IntentDraft {
    scenario: String,
    data: Option<DataAnswer>,
    answer_zh: Option<String>,
    answer_en: Option<String>,
    n_examples: usize,
    file: PathBuf,
    line: usize,
}

struct CorpusBuilder<'t> {
    taxonomy: &'t Taxonomy,
    drafts: HashMap<String, IntentDraft>,
    examples: Vec<Example>,
    oos: Vec<Example>,
    /// Normalised example text -> (intent, file, line) of its first use, to catch one text under two labels.
    seen: HashMap<String, (String, PathBuf, usize)>,
    problems: Vec<Problem>,
}

impl<'t> CorpusBuilder<'t> {
    fn new(taxonomy: &'t Taxonomy) -> Self {
        CorpusBuilder {
            taxonomy,
            drafts: HashMap::new(),
            examples: Vec::new(),
            oos: Vec::new(),
            seen: HashMap::new(),
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, file: &Path, line: usize, entry: Option<String>, field: Option<&str>, message: String) {
        self.problems.push(Problem {
            file: file.to_path_buf(),
            line: Some(line),
            entry,
            field: field.map(str::to_string),
            message,
        });
    }

    fn add_scenario_file(&mut self, path: &Path, lines: &LineIndex, file: ScenarioFile) {
        let scenario = file.scenario.get_ref().clone();
        if !self.taxonomy.has_scenario(&scenario) {
            let known = self.taxonomy.scenarios.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ");
            self.problem(
                path,
                lines.line(file.scenario.span().start),
                None,
                Some("scenario"),
                format!("unknown scenario {scenario:?} (taxonomy has: {known})"),
            );
        }
        for (index, spanned) in file.intent.into_iter().enumerate() {
            let line = lines.line(spanned.span().start);
            let entry = spanned.into_inner();
            let id = entry.id.get_ref().clone();
            let label = Some(format!("intent #{} {id:?}", index + 1));
            match self.taxonomy.intent(&id) {
                None => {
                    self.problem(
                        path,
                        lines.line(entry.id.span().start),
                        label.clone(),
                        Some("id"),
                        format!("{id:?} is not an intent of taxonomy.toml"),
                    );
                    continue;
                }
                Some(def) if def.scenario != scenario => {
                    let message = format!("intent {id:?} belongs to scenario {:?}, not {scenario:?}", def.scenario);
                    self.problem(path, lines.line(entry.id.span().start), label.clone(), Some("id"), message);
                }
                Some(_) => {}
            }
            if let Some(first) = self.drafts.get(&id) {
                let message =
                    format!("intent {id:?} is defined twice (first at {}:{})", first.file.display(), first.line);
                self.problem(path, line, label.clone(), Some("id"), message);
                continue;
            }
            let answer_zh = self.answer(path, lines, &label, "answer_zh", entry.answer_zh);
            let answer_en = self.answer(path, lines, &label, "answer_en", entry.answer_en);
            let data =
                self.data_answer(path, lines, &label, line, entry.data, entry.data_answer_zh, entry.data_answer_en);
            let mut n_examples = 0;
            for (field, lang, texts) in [("zh", Lang::Zh, entry.zh), ("en", Lang::En, entry.en)] {
                for text in texts {
                    if self.add_example(path, lines, &label, field, &id, lang, text, false) {
                        n_examples += 1;
                    }
                }
            }
            self.drafts.insert(
                id,
                IntentDraft {
                    scenario: scenario.clone(),
                    data,
                    answer_zh,
                    answer_en,
                    n_examples,
                    file: path.to_path_buf(),
                    line,
                },
            );
        }
    }

    fn answer(
        &mut self,
        path: &Path,
        lines: &LineIndex,
        label: &Option<String>,
        field: &str,
        value: Option<Spanned<String>>,
    ) -> Option<String> {
        match value {
            Some(v) if !v.get_ref().trim().is_empty() => Some(v.into_inner().trim().to_string()),
            Some(v) => {
                self.problem(
                    path,
                    lines.line(v.span().start),
                    label.clone(),
                    Some(field),
                    "the answer is empty".into(),
                );
                None
            }
            None => None,
        }
    }

    /// The data answer of an entry: `data` and both templates together, or none of them.
    #[allow(clippy::too_many_arguments)]
    fn data_answer(
        &mut self,
        path: &Path,
        lines: &LineIndex,
        label: &Option<String>,
        entry_line: usize,
        kind: Option<Spanned<String>>,
        zh: Option<Spanned<String>>,
        en: Option<Spanned<String>>,
    ) -> Option<DataAnswer> {
        let line_of = |v: &Option<Spanned<String>>| v.as_ref().map_or(entry_line, |v| lines.line(v.span().start));
        match (&kind, &zh, &en) {
            (None, None, None) => None,
            (Some(k), Some(z), Some(e)) => {
                let parsed = k.get_ref().parse::<DataKind>().map_err(|m| ("data", line_of(&kind), m));
                let answer = parsed.and_then(|kind_value| {
                    DataAnswer::new(kind_value, z.get_ref(), e.get_ref()).map_err(|m| {
                        // Report the template that failed: try each alone to name the field.
                        let zh_ok = DataAnswer::new(kind_value, z.get_ref(), "").is_ok();
                        if zh_ok {
                            ("data_answer_en", line_of(&en), m)
                        } else {
                            ("data_answer_zh", line_of(&zh), m)
                        }
                    })
                });
                match answer {
                    Ok(a) => Some(a),
                    Err((field, line, message)) => {
                        self.problem(path, line, label.clone(), Some(field), message);
                        None
                    }
                }
            }
            _ => {
                let message = "`data`, `data_answer_zh` and `data_answer_en` go together".to_string();
                self.problem(path, entry_line, label.clone(), Some("data"), message);
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_example(
        &mut self,
        path: &Path,
        lines: &LineIndex,
        label: &Option<String>,
        field: &str,
        intent: &str,
        lang: Lang,
        text: Spanned<String>,
        oos: bool,
    ) -> bool {
        let line = lines.line(text.span().start);
        let text = text.into_inner().trim().to_string();
        if text.is_empty() {
            self.problem(path, line, label.clone(), Some(field), "empty example".into());
            return false;
        }
        let key: String = text.to_lowercase().chars().filter(|c| !c.is_whitespace()).collect();
        if let Some((other, first_file, first_line)) = self.seen.get(&key) {
            if other != intent {
                let message =
                    format!("{text:?} is also an example of {other:?} at {}:{first_line}", first_file.display());
                self.problem(path, line, label.clone(), Some(field), message);
            }
            return false;
        }
        self.seen.insert(key, (intent.to_string(), path.to_path_buf(), line));
        let example = Example { text, intent: intent.to_string(), lang };
        if oos {
            self.oos.push(example);
        } else {
            self.examples.push(example);
        }
        true
    }

    fn add_oos_file(&mut self, path: &Path, lines: &LineIndex, file: OosFile) {
        for (field, lang, texts) in [("zh", Lang::Zh, file.zh), ("en", Lang::En, file.en)] {
            for text in texts {
                self.add_example(path, lines, &None, field, OOS, lang, text, true);
            }
        }
    }

    fn finish(mut self, dir: &Path, replies: Replies, problems: &mut Vec<Problem>) -> Corpus {
        let mut intents = Vec::new();
        for def in &self.taxonomy.intents {
            let Some(draft) = self.drafts.remove(&def.id) else {
                problems.push(Problem {
                    file: dir.join(format!("{}.toml", def.scenario)),
                    line: None,
                    entry: Some(format!("intent {:?}", def.id)),
                    field: None,
                    message: "taxonomy intent has no entry in the corpus".into(),
                });
                continue;
            };
            let entry = Some(format!("intent {:?}", def.id));
            if draft.n_examples < MIN_EXAMPLES_PER_INTENT {
                let message = format!("{} examples; at least {MIN_EXAMPLES_PER_INTENT} are needed", draft.n_examples);
                self.problem(&draft.file, draft.line, entry.clone(), Some("zh/en"), message);
            }
            for (field, answer) in [("answer_zh", &draft.answer_zh), ("answer_en", &draft.answer_en)] {
                if answer.is_none() {
                    self.problem(&draft.file, draft.line, entry.clone(), Some(field), "missing answer".into());
                }
            }
            intents.push(Intent {
                id: def.id.clone(),
                scenario: draft.scenario,
                decision: def.decision,
                title_zh: def.zh.clone(),
                title_en: def.en.clone(),
                answer_zh: draft.answer_zh.unwrap_or_default(),
                answer_en: draft.answer_en.unwrap_or_default(),
                data: draft.data,
            });
        }
        problems.append(&mut self.problems);
        let mut examples = self.examples;
        examples.append(&mut self.oos);
        Corpus {
            fingerprint: fingerprint(&intents, &examples),
            taxonomy: self.taxonomy.clone(),
            intents,
            examples,
            replies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAXONOMY: &str = r#"
[scenarios]
general = "General"
shop = "Shop"

[[intent]]
id = "greeting"
scenario = "general"
zh = "问候"
en = "Greeting"
decision = "answer"

[[intent]]
id = "price_inquiry"
scenario = "shop"
zh = "价格"
en = "Price"
decision = "lead"
slots = ["product"]
"#;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn intent_block(id: &str, prefix: &str) -> String {
        format!(
            "[[intent]]\nid = \"{id}\"\nzh = [{}]\nen = [\"{prefix} one\"]\nanswer_zh = \"好的\"\nanswer_en = \"Sure\"\n",
            (1..=5).map(|i| format!("\"{prefix}{i}号\"")).collect::<Vec<_>>().join(", ")
        )
    }

    fn valid_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "taxonomy.toml", TAXONOMY);
        write(dir.path(), "general.toml", &format!("scenario = \"general\"\n{}", intent_block("greeting", "你好")));
        write(dir.path(), "shop.toml", &format!("scenario = \"shop\"\n{}", intent_block("price_inquiry", "多少钱")));
        write(dir.path(), "oos.toml", "zh = [\"今天天气\"]\nen = [\"tell me a joke\"]\n");
        dir
    }

    #[test]
    fn loads_a_valid_corpus() {
        let dir = valid_dir();
        let corpus = Corpus::load(dir.path()).unwrap();
        assert_eq!(corpus.intents.len(), 2);
        assert_eq!(corpus.intent("price_inquiry").unwrap().decision, Decision::Lead);
        assert_eq!(corpus.examples.iter().filter(|e| e.intent == OOS).count(), 2);
        assert_eq!(corpus.examples.iter().filter(|e| e.intent == "greeting").count(), 6);
        assert_eq!(corpus.fingerprint.len(), 64);
    }

    #[test]
    fn fingerprint_follows_examples_not_answers() {
        let dir = valid_dir();
        let before = Corpus::load(dir.path()).unwrap().fingerprint;
        let general = std::fs::read_to_string(dir.path().join("general.toml")).unwrap();
        write(dir.path(), "general.toml", &general.replace("answer_zh = \"好的\"", "answer_zh = \"好的，马上\""));
        assert_eq!(before, Corpus::load(dir.path()).unwrap().fingerprint);
        write(dir.path(), "oos.toml", "zh = [\"今天天气如何\"]\n");
        assert_ne!(before, Corpus::load(dir.path()).unwrap().fingerprint);
    }

    #[test]
    fn reports_every_problem_with_file_line_and_field() {
        let dir = valid_dir();
        let shop = "scenario = \"shop\"\n[[intent]]\nid = \"price_inquiry\"\nzh = [\"你好1号\", \"\"]\nanswer_zh = \"好\"\n\n[[intent]]\nid = \"refund\"\nzh = [\"x\"]\n";
        write(dir.path(), "shop.toml", shop);
        let Err(CorpusError::Invalid(problems)) = Corpus::load(dir.path()) else { panic!("expected problems") };
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let joined = text.join("\n");
        assert!(
            joined.contains(
                "shop.toml:4 intent #1 \"price_inquiry\" field `zh`: \"你好1号\" is also an example of \"greeting\""
            ),
            "{joined}"
        );
        assert!(joined.contains("shop.toml:4 intent #1 \"price_inquiry\" field `zh`: empty example"), "{joined}");
        assert!(
            joined.contains("shop.toml:8 intent #2 \"refund\" field `id`: \"refund\" is not an intent"),
            "{joined}"
        );
        assert!(joined.contains("field `answer_en`: missing answer"), "{joined}");
        assert!(joined.contains("examples; at least 5"), "{joined}");
    }

    #[test]
    fn data_answers_are_validated_at_load() {
        let dir = valid_dir();
        let mut shop = format!("scenario = \"shop\"\n{}", intent_block("price_inquiry", "多少钱"));
        shop.push_str("data = \"stock\"\ndata_answer_zh = \"{stock.summary}\"\ndata_answer_en = \"{order.id}\"\n");
        write(dir.path(), "shop.toml", &shop);
        let Err(CorpusError::Invalid(problems)) = Corpus::load(dir.path()) else { panic!("expected problems") };
        assert!(
            problems.iter().any(|p| p.field.as_deref() == Some("data_answer_en")
                && p.line == Some(10)
                && p.message.contains("order.id")),
            "{problems:?}"
        );
        let mut shop = format!("scenario = \"shop\"\n{}", intent_block("price_inquiry", "多少钱"));
        shop.push_str(
            "data = \"stock\"\ndata_answer_zh = \"{stock.summary}\"\ndata_answer_en = \"In stock: {stock.summary}\"\n",
        );
        write(dir.path(), "shop.toml", &shop);
        let corpus = Corpus::load(dir.path()).unwrap();
        assert_eq!(corpus.intent("price_inquiry").unwrap().data.as_ref().map(|d| d.kind), Some(DataKind::Stock));
    }

    #[test]
    fn reports_toml_syntax_errors_with_line() {
        let dir = valid_dir();
        write(dir.path(), "general.toml", "scenario = \"general\"\n[[intent]]\nid = \n");
        let Err(CorpusError::Invalid(problems)) = Corpus::load(dir.path()) else { panic!("expected problems") };
        assert!(problems.iter().any(|p| p.file.ends_with("general.toml") && p.line == Some(3)), "{problems:?}");
    }

    #[test]
    fn intent_in_the_wrong_scenario_file_is_reported() {
        let dir = valid_dir();
        write(
            dir.path(),
            "general.toml",
            &format!(
                "scenario = \"general\"\n{}{}",
                intent_block("greeting", "你好"),
                intent_block("price_inquiry", "价格")
            ),
        );
        write(dir.path(), "shop.toml", "scenario = \"shop\"\n");
        let Err(CorpusError::Invalid(problems)) = Corpus::load(dir.path()) else { panic!("expected problems") };
        assert!(problems.iter().any(|p| p.message.contains("belongs to scenario \"shop\"")), "{problems:?}");
    }

    #[test]
    fn labelled_lines_make_a_corpus() {
        let corpus = Corpus::from_labelled([("hi", "greet"), ("bye", "farewell"), ("weather?", OOS)]).unwrap();
        assert_eq!(corpus.intents.len(), 2);
        assert_eq!(corpus.examples.len(), 3);
        assert_eq!(corpus.examples[2].intent, OOS);
        assert!(matches!(Corpus::from_labelled([("x", OOS)]), Err(CorpusError::Empty)));
    }

    #[test]
    fn shipped_corpus_is_valid_and_covers_every_intent() {
        let corpus =
            Corpus::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(corpus.intents.len(), corpus.taxonomy.intents.len());
        for intent in &corpus.intents {
            let count = |lang| corpus.examples.iter().filter(|e| e.intent == intent.id && e.lang == lang).count();
            assert!(
                count(Lang::Zh) >= 20 && count(Lang::En) >= 6,
                "{}: {} zh, {} en",
                intent.id,
                count(Lang::Zh),
                count(Lang::En)
            );
            assert!(!intent.answer_zh.is_empty() && !intent.answer_en.is_empty(), "{}", intent.id);
        }
        assert!(corpus.examples.iter().filter(|e| e.intent == OOS).count() >= 30);
    }

    #[test]
    fn detects_language() {
        assert_eq!(Lang::detect("app里怎么改地址"), Lang::Zh);
        assert_eq!(Lang::detect("where is my order 12345"), Lang::En);
        assert_eq!(Lang::detect("99999"), Lang::Zh, "no letters: the first language");
    }
}
