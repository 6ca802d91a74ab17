//! Signals that force a hand-off whatever the intent: an explicit ask for a
//! person, and anger or abuse. A lexicon automaton, not the embedding model,
//! because these must never be missed when a message also asks something else
//! ("你们什么破服务，快递到底到哪了" is a hand-off, not order tracking).
//! Exasperation without such words is learned (`exasperation.rs`).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// Phrases that ask for a human agent.
const HUMAN_REQUEST: &[&str] = &[
    "转人工",
    "人工客服",
    "人工服务",
    "找人工",
    "要人工",
    "接人工",
    "真人客服",
    "找真人",
    "真人",
    "活人",
    "人工坐席",
    "客服人员",
    "叫你们经理",
    "找你们经理",
    "找你们领导",
    "叫你们领导",
    "人工",
    "human agent",
    "real person",
    "real human",
    "a human",
    "talk to someone",
    "speak to someone",
    "talk to a person",
    "speak to a person",
    "live agent",
    "customer service rep",
    "representative",
    "speak to a manager",
    "talk to a manager",
    "operator",
];

/// Phrases where "人工" or "human" does not ask for a person.
const HUMAN_FALSE_FRIENDS: &[&str] = &["人工智能", "人工费", "人工成本", "human error"];

/// Strong anger or abuse: one is enough.
const ANGER: &[&str] = &[
    "垃圾",
    "什么破",
    "破玩意",
    "破东西",
    "破服务",
    "破系统",
    "破平台",
    "骗子",
    "骗人",
    "坑人",
    "坑爹",
    "黑心",
    "气死",
    "恶心",
    "太差劲",
    "差劲",
    "烂透",
    "忍无可忍",
    "受够了",
    "滚蛋",
    "滚开",
    "给我滚",
    "傻逼",
    "sb",
    "妈的",
    "他妈",
    "tmd",
    "混蛋",
    "王八蛋",
    "去死",
    "脑子有病",
    "有病吧",
    "要疯了",
    "欺负人",
    "欺诈",
    "诈骗",
    "12315",
    "消协",
    "消费者协会",
    "曝光你们",
    "起诉",
    "律师函",
    "报警",
    "差评",
    "维权",
    "什么态度",
    "太过分",
    "过分了",
    "无良",
    "奸商",
    "ridiculous",
    "scam",
    "fraud",
    "worst",
    "unacceptable",
    "furious",
    "fed up",
    "sick of",
    "disgusting",
    "pathetic",
    "useless",
    "wtf",
    "what the hell",
    "damn",
    "bullshit",
    "idiot",
    "incompetent",
    "lawyer",
    "sue you",
    "report you",
    "rip-off",
    "ripoff",
    "rip off",
    "outrageous",
    "shame on you",
    "terrible service",
    "horrible",
];

/// Mild frustration: counts as anger only with shouting punctuation.
const FRUSTRATION: &[&str] = &[
    "到底",
    "怎么还",
    "为什么还",
    "还没",
    "一直",
    "又是",
    "几天了",
    "多久了",
    "无语",
    "离谱",
    "搞什么",
    "what is going on",
    "still",
    "again",
    "why",
    "seriously",
    "how long",
];

/// What [`Signals::detect`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    /// The customer asks for a person.
    pub human_request: bool,
    /// The customer is angry or abusive.
    pub angry: bool,
    /// The customer has run out of patience (learned; see `exasperation.rs`).
    pub exasperated: bool,
}

/// Lexicon automata, built once and shared.
pub struct SignalDetector {
    human: AhoCorasick,
    human_false_friends: AhoCorasick,
    anger: AhoCorasick,
    frustration: AhoCorasick,
}

fn automaton(patterns: &[&str]) -> AhoCorasick {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(patterns)
        // NOTE: the patterns are constants; building can only fail on size limits they are far below.
        .expect("constant lexicon builds")
}

impl Default for SignalDetector {
    fn default() -> Self {
        SignalDetector {
            human: automaton(HUMAN_REQUEST),
            human_false_friends: automaton(HUMAN_FALSE_FRIENDS),
            anger: automaton(ANGER),
            frustration: automaton(FRUSTRATION),
        }
    }
}

/// English lexicon entries must stand as words: "sb" in "sbux" or "damn" in "damnation" are not anger.
fn at_word_boundaries(text: &str, start: usize, end: usize) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric();
    let first = text[start..].chars().next();
    if !first.is_some_and(is_word) {
        return true;
    }
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(is_word) && !after.is_some_and(is_word)
}

impl SignalDetector {
    fn matches(automaton: &AhoCorasick, text: &str) -> bool {
        automaton.find_iter(text).any(|m| at_word_boundaries(text, m.start(), m.end()))
    }

    /// The phrases of `text` that ask for a person (lowercase, each once), false friends aside.
    pub fn human_phrases(&self, text: &str) -> Vec<String> {
        let text = self.human_false_friends.replace_all(text, &[""; HUMAN_FALSE_FRIENDS.len()]);
        let mut phrases: Vec<String> = self
            .human
            .find_iter(&text)
            .filter(|m| at_word_boundaries(&text, m.start(), m.end()))
            .map(|m| text[m.range()].to_lowercase())
            .collect();
        phrases.sort();
        phrases.dedup();
        phrases
    }

    /// Looks for hand-off signals in one message.
    pub fn detect(&self, text: &str) -> Signals {
        let human_request = !self.human_phrases(text).is_empty();
        let shouting = text.matches(['!', '！']).count() >= 2 || text.matches(['?', '？']).count() >= 3;
        let angry = Self::matches(&self.anger, text) || (shouting && Self::matches(&self.frustration, text));
        Signals { human_request, angry, exasperated: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(text: &str) -> Signals {
        SignalDetector::default().detect(text)
    }

    #[test]
    fn explicit_requests_for_a_person() {
        for text in [
            "转人工",
            "我要找真人说话",
            "给我接人工客服",
            "I want to talk to a real person",
            "Agent please, REPRESENTATIVE",
        ] {
            assert!(detect(text).human_request, "{text}");
        }
    }

    #[test]
    fn the_phrases_that_ask_for_a_person() {
        let detector = SignalDetector::default();
        assert_eq!(detector.human_phrases("人工客服周末上班吗"), ["人工客服"]);
        assert_eq!(detector.human_phrases("Real Person please, a REAL PERSON"), ["real person"]);
        assert!(detector.human_phrases("人工智能客服").is_empty());
    }

    #[test]
    fn false_friends_are_not_requests() {
        for text in ["你们用的是人工智能吗", "安装要收人工费吗", "where is my parcel"] {
            assert!(!detect(text).human_request, "{text}");
        }
    }

    #[test]
    fn anger_and_abuse() {
        for text in [
            "你们什么破服务，快递到底到哪了",
            "垃圾平台，退钱",
            "再不处理我就打12315",
            "到底什么时候发货！！！",
            "This is ridiculous, where is my order",
            "WTF is wrong with your app",
        ] {
            assert!(detect(text).angry, "{text}");
        }
    }

    #[test]
    fn calm_messages_are_not_angry() {
        for text in [
            "快递到哪了",
            "收到的裙子破了个洞，能换吗",
            "还没收到退款，帮忙看下",
            "why is my login failing",
            "the box was damaged? can I return it",
            "sbux gift card",
            "滚筒洗衣机不脱水",
            "tell me a joke",
        ] {
            assert!(!detect(text).angry, "{text}");
        }
    }
}
