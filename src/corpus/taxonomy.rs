//! The deployment's taxonomy: scenarios, agent queues, intent ids, their
//! decisions and the roles they play in the policy. Everything the code needs
//! to know about an intent is here, so no intent id is written in Rust.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{LineIndex, Problem};

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

/// The part an intent plays in the policy, beyond its decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A complaint: raises a hand-off's priority; an angry message the model
    /// cannot place is filed under (the first) such intent.
    Complaint,
    /// An ask for a person: always a hand-off; an explicit ask the model is
    /// unsure of is filed under (the first) such intent.
    HumanRequest,
    /// Something broken: with an earlier repair it is a repeat fault.
    Fault,
    /// "How is my ticket doing": answered from the customer's tickets.
    TicketStatus,
    /// Greetings, thanks, goodbyes: not a question, so not one of a profile's past questions.
    Smalltalk,
}

/// One intent of the taxonomy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(default)]
    pub role: Option<Role>,
    /// The agent queue its hand-offs go to; the scenario's when unset.
    #[serde(default)]
    pub queue: Option<String>,
}

/// A scenario: a display name and what its intents share.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub id: String,
    pub name: String,
    /// The agent queue of its intents' hand-offs; the deployment's default when unset.
    pub queue: Option<String>,
    /// Chats about its intents count as after-sales contacts in customer profiles.
    pub after_sales: bool,
}

/// A scenario in `taxonomy.toml`: its name alone, or a table.
#[derive(Deserialize)]
#[serde(untagged)]
enum ScenarioEntry {
    Name(String),
    Table(ScenarioTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioTable {
    name: String,
    queue: Option<String>,
    #[serde(default)]
    after_sales: bool,
}

/// Scenarios, queues and intents, in file order.
#[derive(Debug, Clone)]
pub struct Taxonomy {
    pub scenarios: Vec<Scenario>,
    /// (id, display name) of the agent queues; the default queue is among them.
    pub queues: Vec<(String, String)>,
    /// Where hand-offs go when neither the intent nor its scenario names a queue.
    pub default_queue: String,
    pub intents: Vec<IntentDef>,
}

/// The scenarios of `[scenarios]`: a name each, or a table.
fn scenarios_of(table: toml::map::Map<String, toml::Value>, problems: &mut Vec<Problem>) -> Vec<Scenario> {
    let mut scenarios = Vec::new();
    for (id, value) in table {
        match value.try_into::<ScenarioEntry>() {
            Ok(ScenarioEntry::Name(name)) => scenarios.push(Scenario { id, name, queue: None, after_sales: false }),
            Ok(ScenarioEntry::Table(t)) => {
                scenarios.push(Scenario { id, name: t.name, queue: t.queue, after_sales: t.after_sales })
            }
            Err(_) => problems.push(Problem {
                file: PathBuf::new(),
                line: None,
                entry: Some(format!("scenario {id:?}")),
                field: Some("scenarios".into()),
                message: "a scenario is a name, or a table with `name`, optional `queue` and `after_sales`".into(),
            }),
        }
    }
    scenarios
}

/// The queue of a deployment that names none.
const DEFAULT_QUEUE: &str = "default";

fn default_queue() -> String {
    DEFAULT_QUEUE.to_string()
}

/// NOTE: other top-level tables are allowed: the shared taxonomy documents
/// slot normalisation in `[slots]`, which the slot extractors implement.
#[derive(Deserialize)]
struct TaxonomyFile {
    scenarios: toml::map::Map<String, toml::Value>,
    #[serde(default)]
    queues: toml::map::Map<String, toml::Value>,
    #[serde(default = "default_queue")]
    default_queue: String,
    intent: Vec<Spanned<IntentDef>>,
}

impl Taxonomy {
    /// Parses and checks `taxonomy.toml`; the problems' file is left for the caller to fill.
    pub fn from_toml(text: &str) -> Result<Taxonomy, Vec<Problem>> {
        let lines = LineIndex::new(text);
        let problem = |line: Option<usize>, entry: Option<String>, field: &str, message: String| Problem {
            file: PathBuf::new(),
            line,
            entry,
            field: (!field.is_empty()).then(|| field.to_string()),
            message,
        };
        let file: TaxonomyFile = toml::from_str(text)
            .map_err(|e| vec![problem(e.span().map(|s| lines.line(s.start)), None, "", e.message().to_string())])?;
        let mut problems = Vec::new();
        let scenarios = scenarios_of(file.scenarios, &mut problems);
        let mut queues: Vec<(String, String)> =
            file.queues.into_iter().map(|(id, name)| (id, name.as_str().unwrap_or_default().to_string())).collect();
        if !queues.iter().any(|(id, _)| *id == file.default_queue) {
            queues.insert(0, (file.default_queue.clone(), file.default_queue.clone()));
        }
        let known_queue = |q: &str| queues.iter().any(|(id, _)| id == q);
        let queue_list = || queues.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", ");
        for s in &scenarios {
            if let Some(q) = s.queue.as_deref().filter(|q| !known_queue(q)) {
                problems.push(problem(
                    None,
                    Some(format!("scenario {:?}", s.id)),
                    "queue",
                    format!("unknown queue {q:?} (queues: {})", queue_list()),
                ));
            }
        }
        let mut intents = Vec::new();
        for spanned in file.intent {
            let line = Some(lines.line(spanned.span().start));
            let def = spanned.into_inner();
            let entry = Some(format!("intent {:?}", def.id));
            if !scenarios.iter().any(|s| s.id == def.scenario) {
                problems.push(problem(
                    line,
                    entry.clone(),
                    "scenario",
                    format!("intent {:?} names unknown scenario {:?}", def.id, def.scenario),
                ));
            }
            if def.id == super::OOS {
                problems.push(problem(
                    line,
                    entry.clone(),
                    "id",
                    format!("{:?} is reserved for out-of-scope", super::OOS),
                ));
            }
            if intents.iter().any(|i: &IntentDef| i.id == def.id) {
                problems.push(problem(line, entry.clone(), "id", format!("intent {:?} is defined twice", def.id)));
            }
            if let Some(q) = def.queue.as_deref().filter(|q| !known_queue(q)) {
                problems.push(problem(
                    line,
                    entry.clone(),
                    "queue",
                    format!("unknown queue {q:?} (queues: {})", queue_list()),
                ));
            }
            intents.push(def);
        }
        if problems.is_empty() {
            Ok(Taxonomy { scenarios, queues, default_queue: file.default_queue, intents })
        } else {
            Err(problems)
        }
    }

    /// A taxonomy of answer-only intents in one scenario, with no roles and one queue.
    pub fn single_scenario(scenario: &str, ids: impl IntoIterator<Item = String>) -> Taxonomy {
        Taxonomy {
            scenarios: vec![Scenario {
                id: scenario.to_string(),
                name: scenario.to_string(),
                queue: None,
                after_sales: false,
            }],
            queues: vec![(default_queue(), default_queue())],
            default_queue: default_queue(),
            intents: ids
                .into_iter()
                .map(|id| IntentDef {
                    en: id.clone(),
                    zh: id.clone(),
                    id,
                    scenario: scenario.to_string(),
                    decision: Decision::Answer,
                    slots: Vec::new(),
                    role: None,
                    queue: None,
                })
                .collect(),
        }
    }

    pub fn has_scenario(&self, id: &str) -> bool {
        self.scenarios.iter().any(|s| s.id == id)
    }

    pub fn scenario(&self, id: &str) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| s.id == id)
    }

    pub fn intent(&self, id: &str) -> Option<&IntentDef> {
        self.intents.iter().find(|i| i.id == id)
    }

    /// The role of an intent id; `None` for out-of-scope, unknown ids and intents without one.
    pub fn role(&self, id: &str) -> Option<Role> {
        self.intent(id).and_then(|i| i.role)
    }

    /// The first intent (in file order) with this role.
    pub fn intent_with_role(&self, role: Role) -> Option<&str> {
        self.intents.iter().find(|i| i.role == Some(role)).map(|i| i.id.as_str())
    }

    /// The agent queue a hand-off about this intent goes to: the intent's own,
    /// else its scenario's, else the deployment's default (also for out-of-scope).
    pub fn queue_of(&self, id: &str) -> &str {
        let def = self.intent(id);
        def.and_then(|d| d.queue.as_deref())
            .or_else(|| def.and_then(|d| self.scenario(&d.scenario)).and_then(|s| s.queue.as_deref()))
            .unwrap_or(&self.default_queue)
    }

    pub fn has_queue(&self, id: &str) -> bool {
        self.queues.iter().any(|(q, _)| q == id)
    }

    /// Whether chats about this intent are after-sales contacts.
    pub fn is_after_sales(&self, id: &str) -> bool {
        self.intent(id).and_then(|d| self.scenario(&d.scenario)).is_some_and(|s| s.after_sales)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
default_queue = "front"
[queues]
front = "Front desk"
repairs = "Repairs"
[scenarios]
desk = "Desk"
fix = { name = "Fixing", queue = "repairs", after_sales = true }
[[intent]]
id = "hello"
scenario = "desk"
decision = "answer"
role = "smalltalk"
[[intent]]
id = "broken"
scenario = "fix"
decision = "handoff"
role = "fault"
[[intent]]
id = "buy"
scenario = "fix"
decision = "lead"
queue = "front"
"#;

    #[test]
    fn roles_queues_and_scenario_facts_come_from_the_file() {
        let t = Taxonomy::from_toml(SMALL).unwrap();
        assert_eq!(t.role("broken"), Some(Role::Fault));
        assert_eq!(t.role("buy"), None);
        assert_eq!(t.intent_with_role(Role::Smalltalk), Some("hello"));
        assert_eq!(t.intent_with_role(Role::Complaint), None);
        assert_eq!(
            (t.queue_of("broken"), t.queue_of("buy"), t.queue_of("hello"), t.queue_of("oos")),
            ("repairs", "front", "front", "front")
        );
        assert!(t.is_after_sales("broken") && !t.is_after_sales("hello"));
        assert!(t.has_queue("repairs") && !t.has_queue("sales"));
    }

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
    fn problems_name_line_entry_and_field() {
        let text = "[scenarios]\na = \"A\"\n[[intent]]\nid = \"x\"\nscenario = \"b\"\ndecision = \"answer\"\nqueue = \"nowhere\"\n";
        let problems = Taxonomy::from_toml(text).unwrap_err();
        assert!(problems[0].message.contains("unknown scenario"), "{problems:?}");
        assert_eq!((problems[0].line, problems[0].field.as_deref()), (Some(3), Some("scenario")));
        assert!(problems[1].message.contains("unknown queue \"nowhere\""), "{problems:?}");
        let bad_role = "[scenarios]\na = \"A\"\n[[intent]]\nid = \"x\"\nscenario = \"a\"\ndecision = \"answer\"\nrole = \"boss\"\n";
        let problems = Taxonomy::from_toml(bad_role).unwrap_err();
        assert!(problems[0].message.contains("unknown variant `boss`") && problems[0].line.is_some(), "{problems:?}");
    }
}
