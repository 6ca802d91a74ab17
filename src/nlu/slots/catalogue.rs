//! The product catalogue behind the `product` slot: canonical product types,
//! their display names and synonyms (Chinese and English), loaded from
//! `corpus/catalogue.toml`, and the automaton that finds them in a message.
//!
//! Matching rule, documented once here because callers rely on it: among the
//! synonyms found in the text, the one that starts first wins, and at the same
//! start the longest one (蓝牙耳机 over 耳机, 扫地机器人 over 扫地机). So when a
//! message names several products, the first mention decides. A phrase listed
//! under `exclude` (手机号, phone number, 电脑端) claims its span without naming
//! a product, which keeps 手机 inside 手机号 from reading as a phone. A
//! synonym that merely labels the phone number right after it ("手机
//! 138 1234 5678", "phone: +86 ...") is not a product mention either.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::Deserialize;

/// Why a catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The file could not be read.
    #[error("cannot read catalogue {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML of the expected shape.
    #[error("catalogue is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    /// No `[[product]]` entry at all.
    #[error("catalogue has no [[product]] entries")]
    Empty,
    /// A type id that is not lower-case ASCII letters, digits and '_'.
    #[error("product id {id:?} must be lower-case ASCII letters, digits or '_'")]
    InvalidId { id: String },
    /// Two entries with the same id.
    #[error("product id {id:?} is listed twice")]
    DuplicateId { id: String },
    /// An entry without any synonym, so it could never be found.
    #[error("product {id:?} has no zh or en synonyms")]
    NoSynonyms { id: String },
    /// An empty or whitespace-only synonym or exclusion.
    #[error("product {id:?} has a blank synonym or exclusion")]
    BlankPhrase { id: String },
    /// One phrase (compared ASCII case-insensitively) claimed twice with
    /// different meanings: by two types, or as both synonym and exclusion.
    #[error("phrase {phrase:?} is claimed by both {first:?} and {second:?}")]
    PhraseConflict { phrase: String, first: String, second: String },
    /// The synonym automaton could not be built (far too many phrases).
    #[error("cannot build the synonym automaton: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
}

/// One canonical product type of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductType {
    /// Canonical id, the value of the `product` slot (e.g. `dress`).
    pub id: String,
    /// Chinese display name (defaults to the first Chinese synonym).
    pub name_zh: String,
    /// English display name (defaults to the first English synonym).
    pub name_en: String,
    /// Chinese synonyms.
    pub zh: Vec<String>,
    /// English synonyms.
    pub en: Vec<String>,
    /// Phrases that contain a synonym but do not name this product.
    pub exclude: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    #[serde(default)]
    product: Vec<RawProduct>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProduct {
    id: String,
    name_zh: Option<String>,
    name_en: Option<String>,
    #[serde(default)]
    zh: Vec<String>,
    #[serde(default)]
    en: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

/// What a matched phrase means.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Index into `Catalogue::types`.
    Product(usize),
    /// An exclusion: claims its span, names nothing.
    Exclude,
}

/// The validated catalogue plus its synonym automaton.
#[derive(Debug, Clone)]
pub struct Catalogue {
    types: Vec<ProductType>,
    automaton: AhoCorasick,
    /// Meaning of each automaton pattern, by pattern id.
    targets: Vec<Target>,
    /// Whether each pattern starts / ends with an ASCII alphanumeric, i.e.
    /// needs an English word boundary on that side.
    edges: Vec<(bool, bool)>,
}

impl Catalogue {
    /// The catalogue of a deployment that lists no products: nothing is a product slot.
    pub fn empty() -> Self {
        let automaton =
            AhoCorasick::new(Vec::<&str>::new()).expect("an automaton of no patterns always builds. This is a bug.");
        Catalogue { types: Vec::new(), automaton, targets: Vec::new(), edges: Vec::new() }
    }

    /// Reads and validates a catalogue file.
    pub fn load(path: &Path) -> Result<Self, CatalogueError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| CatalogueError::Io { path: path.to_path_buf(), source })?;
        Self::from_toml_str(&text)
    }

    /// Parses and validates catalogue TOML (see `corpus/catalogue.toml`).
    pub fn from_toml_str(s: &str) -> Result<Self, CatalogueError> {
        let raw: RawCatalogue = toml::from_str(s)?;
        if raw.product.is_empty() {
            return Err(CatalogueError::Empty);
        }
        let mut types: Vec<ProductType> = Vec::with_capacity(raw.product.len());
        // Lower-cased phrase -> who claimed it, to catch conflicts.
        let mut claimed: HashMap<String, String> = HashMap::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut targets: Vec<Target> = Vec::new();
        for p in raw.product {
            let valid_id =
                !p.id.is_empty() && p.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_id {
                return Err(CatalogueError::InvalidId { id: p.id });
            }
            if types.iter().any(|t| t.id == p.id) {
                return Err(CatalogueError::DuplicateId { id: p.id });
            }
            if p.zh.is_empty() && p.en.is_empty() {
                return Err(CatalogueError::NoSynonyms { id: p.id });
            }
            let index = types.len();
            let synonyms = p.zh.iter().chain(&p.en).map(|s| (s, Target::Product(index)));
            let exclusions = p.exclude.iter().map(|s| (s, Target::Exclude));
            for (phrase, target) in synonyms.chain(exclusions) {
                let phrase = phrase.trim();
                if phrase.is_empty() {
                    return Err(CatalogueError::BlankPhrase { id: p.id });
                }
                let owner = match target {
                    Target::Product(_) => p.id.clone(),
                    Target::Exclude => format!("{} (exclude)", p.id),
                };
                let key = phrase.to_ascii_lowercase();
                match claimed.get(&key) {
                    // The same phrase listed twice with the same meaning is harmless.
                    Some(first) if *first == owner => continue,
                    Some(first) => {
                        return Err(CatalogueError::PhraseConflict {
                            phrase: phrase.to_string(),
                            first: first.clone(),
                            second: owner,
                        })
                    }
                    None => {
                        claimed.insert(key, owner);
                        patterns.push(phrase.to_string());
                        targets.push(target);
                    }
                }
            }
            let name_zh = p.name_zh.or_else(|| p.zh.first().cloned()).unwrap_or_else(|| p.id.clone());
            let name_en = p.name_en.or_else(|| p.en.first().cloned()).unwrap_or_else(|| p.id.clone());
            types.push(ProductType { id: p.id, name_zh, name_en, zh: p.zh, en: p.en, exclude: p.exclude });
        }
        // NOTE: Standard match kind with overlapping search, not LeftmostLongest:
        // a leftmost-longest match that fails its word-boundary check ("ac" in
        // "back") would hide a shorter valid match at the same place, so we see
        // every candidate and apply leftmost-longest ourselves after filtering.
        let automaton =
            AhoCorasickBuilder::new().match_kind(MatchKind::Standard).ascii_case_insensitive(true).build(&patterns)?;
        let edges = patterns
            .iter()
            .map(|p| {
                let first = p.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
                let last = p.chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric());
                (first, last)
            })
            .collect();
        Ok(Catalogue { types, automaton, targets, edges })
    }

    /// The product types, in file order.
    pub fn types(&self) -> impl Iterator<Item = &ProductType> {
        self.types.iter()
    }

    /// The product type with this canonical id.
    pub fn get(&self, id: &str) -> Option<&ProductType> {
        self.types.iter().find(|t| t.id == id)
    }

    /// The first product named in `text` (see the module doc for the rule),
    /// ignoring matches that overlap a `reserved` byte span (an order id or
    /// phone number already taken) and matches that merely label a phone
    /// number starting in `labelled` ("手机 138 1234 5678", "phone: +86 ...").
    /// Returns the canonical id and the byte span that named it.
    pub(crate) fn find_product(
        &self,
        text: &str,
        reserved: &[(usize, usize)],
        labelled: &[(usize, usize)],
    ) -> Option<(&str, (usize, usize))> {
        let mut found: Vec<(usize, usize, Target)> = self
            .automaton
            .find_overlapping_iter(text)
            .filter(|m| {
                let (need_left, need_right) = self.edges[m.pattern().as_usize()];
                (!need_left || left_boundary(text, m.start()))
                    && (!need_right || right_boundary(text, m.end()))
                    && !reserved.iter().any(|&(s, e)| m.start() < e && s < m.end())
            })
            // Only a product can be a mere label; an exclusion (手机号) must
            // keep claiming its span even right before the number.
            .filter(|m| {
                matches!(self.targets[m.pattern().as_usize()], Target::Exclude)
                    || !labels_number(text, m.end(), labelled)
            })
            .map(|m| (m.start(), m.end(), self.targets[m.pattern().as_usize()]))
            .collect();
        found.sort_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
        let mut covered_to = 0;
        for (start, end, target) in found {
            if start < covered_to {
                continue;
            }
            match target {
                Target::Product(i) => return Some((self.types[i].id.as_str(), (start, end))),
                Target::Exclude => covered_to = end,
            }
        }
        None
    }
}

/// Whether only separators (spaces, colons, 是, 为) lie between `at` and the
/// start of one of the `spans`.
fn labels_number(text: &str, at: usize, spans: &[(usize, usize)]) -> bool {
    let rest = &text[at..];
    let gap =
        rest.len() - rest.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '=' | '是' | '为')).len();
    spans.iter().any(|&(s, _)| s == at + gap)
}

/// No ASCII letter or digit right before `at`.
fn left_boundary(text: &str, at: usize) -> bool {
    !text[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// No ASCII letter or digit right after `at`, once an English plural ending
/// ("tvs", "couches") is skipped.
fn right_boundary(text: &str, at: usize) -> bool {
    let rest = &text[at..];
    let ends_word = |s: &str| !s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ends_word(rest) {
        return true;
    }
    let lower = rest.get(..2).map(str::to_ascii_lowercase);
    let plural_es = lower.as_deref() == Some("es") && ends_word(&rest[2..]);
    let plural_s = rest.starts_with(['s', 'S']) && ends_word(&rest[1..]);
    plural_s || plural_es
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
        [[product]]
        id = "phone"
        name_zh = "手机"
        zh = ["手机", "智能手机"]
        en = ["phone", "smartphone"]
        exclude = ["手机号", "phone number"]

        [[product]]
        id = "air_conditioner"
        zh = ["空调"]
        en = ["AC", "air conditioner"]
    "#;

    fn small() -> Catalogue {
        Catalogue::from_toml_str(SMALL).unwrap()
    }

    #[test]
    fn display_names_default_to_first_synonym() {
        let c = small();
        let ac = c.get("air_conditioner").unwrap();
        assert_eq!(ac.name_zh, "空调");
        assert_eq!(ac.name_en, "AC");
        assert_eq!(c.get("phone").unwrap().name_en, "phone");
        assert_eq!(c.types().count(), 2);
    }

    #[test]
    fn longest_at_first_position_wins() {
        let c = small();
        assert_eq!(c.find_product("我的智能手机坏了", &[], &[]).map(|(id, _)| id), Some("phone"));
        assert_eq!(c.find_product("空调和手机都坏了", &[], &[]).map(|(id, _)| id), Some("air_conditioner"));
        assert_eq!(c.find_product("my phone and the AC", &[], &[]).map(|(id, _)| id), Some("phone"));
    }

    #[test]
    fn exclusions_claim_their_span() {
        let c = small();
        assert_eq!(c.find_product("我的手机号是多少", &[], &[]).map(|(id, _)| id), None);
        assert_eq!(c.find_product("手机号138，空调坏了", &[], &[]).map(|(id, _)| id), Some("air_conditioner"));
        assert_eq!(c.find_product("my phone number changed", &[], &[]).map(|(id, _)| id), None);
        assert_eq!(c.find_product("My PHONE broke", &[], &[]).map(|(id, _)| id), Some("phone"));
    }

    #[test]
    fn english_word_boundaries() {
        let c = small();
        assert_eq!(c.find_product("I want to go back", &[], &[]).map(|(id, _)| id), None);
        assert_eq!(c.find_product("headphones", &[], &[]).map(|(id, _)| id), None);
        assert_eq!(c.find_product("two ACs please", &[], &[]).map(|(id, _)| id), Some("air_conditioner"));
        assert_eq!(c.find_product("the AC.", &[], &[]).map(|(id, _)| id), Some("air_conditioner"));
        assert_eq!(c.find_product("买了AC", &[], &[]).map(|(id, _)| id), Some("air_conditioner"));
    }

    #[test]
    fn reserved_spans_are_skipped() {
        let c = small();
        let text = "AC12345 phone";
        assert_eq!(c.find_product(text, &[(0, 7)], &[]).map(|(id, _)| id), Some("phone"));
        let labelled = "手机: 13812345678";
        assert_eq!(c.find_product(labelled, &[(8, 19)], &[(8, 19)]).map(|(id, _)| id), None);
        let excluded = "手机号13812345678";
        assert_eq!(c.find_product(excluded, &[(9, 20)], &[(9, 20)]).map(|(id, _)| id), None);
    }

    #[test]
    fn validation_errors() {
        let err = |s: &str| Catalogue::from_toml_str(s).unwrap_err();
        assert!(matches!(err(""), CatalogueError::Empty));
        assert!(matches!(err("[[product]]\nid = \"Dress\"\nzh=[\"裙\"]"), CatalogueError::InvalidId { .. }));
        assert!(matches!(err("[[product]]\nid = \"dress\""), CatalogueError::NoSynonyms { .. }));
        assert!(matches!(err("[[product]]\nid = \"dress\"\nzh=[\" \"]"), CatalogueError::BlankPhrase { .. }));
        assert!(matches!(
            err("[[product]]\nid = \"a\"\nen=[\"x\"]\n[[product]]\nid = \"a\"\nen=[\"y\"]"),
            CatalogueError::DuplicateId { .. }
        ));
        assert!(matches!(
            err("[[product]]\nid = \"a\"\nen=[\"Tee\"]\n[[product]]\nid = \"b\"\nen=[\"tee\"]"),
            CatalogueError::PhraseConflict { .. }
        ));
        assert!(matches!(err("[[product]]\nid = \"a\"\nen=[\"x\"]\ncolour = 1"), CatalogueError::Parse(_)));
        assert!(matches!(Catalogue::load(Path::new("no/such/catalogue.toml")).unwrap_err(), CatalogueError::Io { .. }));
    }
}
