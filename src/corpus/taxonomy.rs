//! The deployment's taxonomy: scenarios, intent ids and their decisions.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Problem;

/// What the engine does once it is confident of an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Reply automatically.
    Answer,
    /// Give the conversation to a human agent with a ticket.
    Handoff,
    /// Reply automatically and route the customer to sales.
    Lead,
}

/// One intent of the taxonomy.
#[derive(Debug, Clone, Deserialize)]
pub struct IntentDef {
    pub id: String,
    pub scenario: String,
    #[serde(default)]
    pub zh: String,
    #[serde(default)]
    pub en: String,
    pub decision: Decision,
    /// Slots this intent uses.
    #[serde(default)]
    pub slots: Vec<String>,
}

/// Scenarios and intents, in file order.
#[derive(Debug, Clone)]
pub struct Taxonomy {
    /// (id, display name)
    pub scenarios: Vec<(String, String)>,
    pub intents: Vec<IntentDef>,
}

#[derive(Deserialize)]
struct TaxonomyFile {
    scenarios: toml::Table,
    intent: Vec<IntentDef>,
}

impl Taxonomy {
    /// Parses `taxonomy.toml`; the problem's file is left for the caller to fill.
    pub fn from_toml(text: &str) -> Result<Taxonomy, Problem> {
        let problem = |message: String| Problem { file: PathBuf::new(), line: None, entry: None, field: None, message };
        let file: TaxonomyFile = toml::from_str(text).map_err(|e| problem(e.to_string()))?;
        let scenarios: Vec<(String, String)> = file.scenarios.into_iter().map(|(id, name)| (id, name.as_str().unwrap_or_default().to_string())).collect();
        let taxonomy = Taxonomy { scenarios, intents: file.intent };
        for def in &taxonomy.intents {
            if !taxonomy.has_scenario(&def.scenario) {
                return Err(problem(format!("intent {:?} names unknown scenario {:?}", def.id, def.scenario)));
            }
            if def.id == super::OOS {
                return Err(problem(format!("{:?} is reserved for out-of-scope", super::OOS)));
            }
        }
        Ok(taxonomy)
    }

    /// A taxonomy of answer-only intents in one scenario.
    pub fn single_scenario(scenario: &str, ids: impl IntoIterator<Item = String>) -> Taxonomy {
        Taxonomy {
            scenarios: vec![(scenario.to_string(), scenario.to_string())],
            intents: ids
                .into_iter()
                .map(|id| IntentDef { en: id.clone(), zh: id.clone(), id, scenario: scenario.to_string(), decision: Decision::Answer, slots: Vec::new() })
                .collect(),
        }
    }

    pub fn has_scenario(&self, id: &str) -> bool {
        self.scenarios.iter().any(|(s, _)| s == id)
    }

    pub fn intent(&self, id: &str) -> Option<&IntentDef> {
        self.intents.iter().find(|i| i.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shipped_taxonomy() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/taxonomy.toml")).unwrap();
        let taxonomy = Taxonomy::from_toml(&text).unwrap();
        assert_eq!(taxonomy.scenarios.len(), 4);
        assert_eq!(taxonomy.intents.len(), 27);
        assert_eq!(taxonomy.intent("price_inquiry").unwrap().decision, Decision::Lead);
        assert_eq!(taxonomy.intent("repair_request").unwrap().decision, Decision::Handoff);
    }

    #[test]
    fn rejects_unknown_scenario() {
        let text = "[scenarios]\na = \"A\"\n[[intent]]\nid = \"x\"\nscenario = \"b\"\ndecision = \"answer\"\n";
        assert!(Taxonomy::from_toml(text).unwrap_err().message.contains("unknown scenario"));
    }
}
