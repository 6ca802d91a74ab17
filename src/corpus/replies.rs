//! The deployment's canned replies (`replies.toml`): what the bot says when
//! it is not answering an intent: asking to rephrase, which intent or order
//! is meant, holding messages at hand-off, and the wording around ticket
//! status answers. Each has a Chinese and an English text with named
//! `{placeholders}` that kefu fills; a deployment overrides what it wants,
//! and the generic wording below stands for the rest.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{FieldValues, Lang, LineIndex, Problem, Template};

/// Which canned reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReplyKey {
    /// Out of scope: what the bot can help with, and how to reach a person.
    Rephrase,
    /// Which of these intents: `{options}`, one numbered title a line.
    Clarify,
    /// A person is taking over.
    Holding,
    /// A person is taking over an upset customer, with priority.
    HoldingAngry,
    /// Several orders match: `{orders}`, one a line.
    WhichOrder,
    /// No matching order: ask for its number.
    AskOrderNumber,
    /// The order number given is not found: `{order_id}`.
    OrderNotFound,
    /// One ticket found: `{ticket}`.
    TicketFound,
    /// Several open tickets: `{count}`, `{tickets}` (numbered lines) and `{more}` (the `ticket_more` text or nothing).
    TicketList,
    /// Tickets beyond those listed: `{more}`, how many.
    TicketMore,
    /// No open ticket: `{answer}`, the intent's general answer.
    TicketNone,
    /// The ticket named is not found: `{id}`, `{answer}`.
    TicketNotFound,
    /// A customer followed the account on a messaging platform.
    Welcome,
    /// A picture, voice message or location the bot cannot read.
    TextOnly,
}

impl ReplyKey {
    const ALL: [ReplyKey; 14] = [
        ReplyKey::Rephrase,
        ReplyKey::Clarify,
        ReplyKey::Holding,
        ReplyKey::HoldingAngry,
        ReplyKey::WhichOrder,
        ReplyKey::AskOrderNumber,
        ReplyKey::OrderNotFound,
        ReplyKey::TicketFound,
        ReplyKey::TicketList,
        ReplyKey::TicketMore,
        ReplyKey::TicketNone,
        ReplyKey::TicketNotFound,
        ReplyKey::Welcome,
        ReplyKey::TextOnly,
    ];

    /// Its table name in `replies.toml`.
    pub fn name(self) -> &'static str {
        match self {
            ReplyKey::Rephrase => "rephrase",
            ReplyKey::Clarify => "clarify",
            ReplyKey::Holding => "holding",
            ReplyKey::HoldingAngry => "holding_angry",
            ReplyKey::WhichOrder => "which_order",
            ReplyKey::AskOrderNumber => "ask_order_number",
            ReplyKey::OrderNotFound => "order_not_found",
            ReplyKey::TicketFound => "ticket_found",
            ReplyKey::TicketList => "ticket_list",
            ReplyKey::TicketMore => "ticket_more",
            ReplyKey::TicketNone => "ticket_none",
            ReplyKey::TicketNotFound => "ticket_not_found",
            ReplyKey::Welcome => "welcome",
            ReplyKey::TextOnly => "text_only",
        }
    }

    /// Placeholders the text must carry (what the customer needs to read), then those it may.
    fn placeholders(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            ReplyKey::Rephrase
            | ReplyKey::Holding
            | ReplyKey::HoldingAngry
            | ReplyKey::AskOrderNumber
            | ReplyKey::Welcome
            | ReplyKey::TextOnly => (&[], &[]),
            ReplyKey::Clarify => (&["options"], &[]),
            ReplyKey::WhichOrder => (&["orders"], &[]),
            ReplyKey::OrderNotFound => (&["order_id"], &[]),
            ReplyKey::TicketFound => (&["ticket"], &[]),
            ReplyKey::TicketList => (&["tickets"], &["count", "more"]),
            ReplyKey::TicketMore => (&["more"], &[]),
            ReplyKey::TicketNone => (&[], &["answer"]),
            ReplyKey::TicketNotFound => (&["id"], &["answer"]),
        }
    }

    /// kefu's generic wording, for deployments that do not give their own.
    fn generic(self) -> (&'static str, &'static str) {
        match self {
            ReplyKey::Rephrase => (
                "抱歉，这个问题我还回答不了。换个说法试试，或回复“转人工”找客服。",
                "Sorry, I can't help with that one. Try asking in other words, or type \"agent\" to reach a person.",
            ),
            ReplyKey::Clarify => (
                "我想确认一下，你是想问哪一个？\n{options}\n回复序号，或换个说法告诉我。",
                "Just to be sure, which of these do you mean?\n{options}\nReply with the number, or tell me in other words.",
            ),
            ReplyKey::Holding => {
                ("好的，已为你转接人工客服，请稍等，客服会尽快联系你。", "Sure, I'm passing you to a human agent; they will be with you shortly.")
            }
            ReplyKey::HoldingAngry => (
                "非常抱歉给你带来不好的体验！已为你优先转接人工客服，客服马上跟进处理。",
                "I'm very sorry about this experience. I've passed you to a human agent with priority; they will follow up right away.",
            ),
            ReplyKey::WhichOrder => (
                "你有几笔相关订单，想问哪一笔？\n{orders}\n回复订单号就好。",
                "You have several matching orders; which one do you mean?\n{orders}\nReply with the order number.",
            ),
            ReplyKey::AskOrderNumber => (
                "没有找到对应的订单，麻烦发一下订单号，我马上帮你查。",
                "I couldn't find that order. Please send me the order number and I'll check right away.",
            ),
            ReplyKey::OrderNotFound => (
                "没有查到订单 {order_id}，麻烦核对一下订单号是否完整；如果是别的账号下的订单，回复“转人工”，客服帮你查。",
                "I couldn't find order {order_id}. Please check the number is complete; if the order is on another account, type \"agent\" and a person will look it up.",
            ),
            ReplyKey::TicketFound => ("帮你查到了：{ticket}。", "Here is what I found. {ticket}."),
            ReplyKey::TicketList => ("你有 {count} 个未完成的工单：\n{tickets}{more}", "You have {count} open tickets:\n{tickets}{more}"),
            ReplyKey::TicketMore => ("\n另有 {more} 个未列出。", "\n{more} more are not listed."),
            ReplyKey::TicketNone => ("目前没有查到你未完成的工单。{answer}", "I can't find any open ticket of yours right now. {answer}"),
            ReplyKey::TicketNotFound => ("没有查到工单 {id}，麻烦核对一下工单号。{answer}", "I couldn't find ticket {id}; please check the number. {answer}"),
            ReplyKey::Welcome => (
                "你好，我是智能客服，有什么可以帮你？直接发消息问我就好，需要人工时回复“转人工”。",
                "Hi, I'm the support assistant. What can I help you with? Just send me a message, or type \"agent\" to reach a person.",
            ),
            ReplyKey::TextOnly => (
                "我暂时只能看懂文字消息，麻烦用文字描述一下你的问题。",
                "I can only read text messages for now; please describe your question in words.",
            ),
        }
    }

    /// Parses a text of this reply: only its placeholders, and every one it must show.
    fn parse(self, text: &str) -> Result<Template, String> {
        let (must, may) = self.placeholders();
        let allowed: Vec<&'static str> = must.iter().chain(may).copied().collect();
        let template = Template::parse_with(text, &allowed).map_err(|e| {
            let allowed = allowed.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ");
            format!("{e} (allowed: {})", if allowed.is_empty() { "none" } else { &allowed })
        })?;
        match must.iter().find(|p| !template.fields().contains(p)) {
            Some(needed) => Err(format!("the reply must show {{{needed}}}")),
            None => Ok(template),
        }
    }

    fn from_name(name: &str) -> Option<ReplyKey> {
        ReplyKey::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The canned replies of a deployment, in both languages.
#[derive(Debug, Clone, PartialEq)]
pub struct Replies {
    texts: BTreeMap<ReplyKey, (Template, Template)>,
}

impl Default for Replies {
    fn default() -> Self {
        let parse = |key: ReplyKey, text: &str| {
            key.parse(text).expect("kefu's generic replies use only their own placeholders. This is a bug.")
        };
        Replies {
            texts: ReplyKey::ALL.into_iter().map(|k| (k, (parse(k, k.generic().0), parse(k, k.generic().1)))).collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyEntry {
    zh: Spanned<String>,
    en: Spanned<String>,
}

impl Replies {
    /// The text of `key` in `lang` with its placeholders filled.
    pub fn render(&self, key: ReplyKey, lang: Lang, values: &[(&'static str, &str)]) -> String {
        let (zh, en) = &self.texts[&key];
        let mut fields = FieldValues::default();
        for (name, value) in values {
            fields.insert(name, *value);
        }
        match lang {
            Lang::Zh => zh.render(&fields),
            Lang::En => en.render(&fields),
        }
    }

    /// The generic replies overridden by a `replies.toml` file's tables; every problem is pushed.
    pub fn from_toml(path: &Path, text: &str, problems: &mut Vec<Problem>) -> Replies {
        let lines = LineIndex::new(text);
        let mut replies = Replies::default();
        let table: BTreeMap<String, Spanned<ReplyEntry>> = match toml::from_str(text) {
            Ok(t) => t,
            Err(e) => {
                let line = e.span().map(|s| lines.line(s.start));
                let message = format!("{} (each reply is a table with a `zh` and an `en` text)", e.message());
                problems.push(Problem { file: path.to_path_buf(), line, entry: None, field: None, message });
                return replies;
            }
        };
        for (name, entry) in table {
            let line = lines.line(entry.span().start);
            let entry = entry.into_inner();
            let problem = |field: Option<&str>, line: usize, message: String| Problem {
                file: path.to_path_buf(),
                line: Some(line),
                entry: Some(format!("reply {name:?}")),
                field: field.map(str::to_string),
                message,
            };
            let Some(key) = ReplyKey::from_name(&name) else {
                let known = ReplyKey::ALL.map(ReplyKey::name).join(", ");
                problems.push(problem(None, line, format!("unknown reply (known: {known})")));
                continue;
            };
            let mut parse = |field: &str, spanned: &Spanned<String>| {
                let line = lines.line(spanned.span().start);
                if spanned.get_ref().trim().is_empty() {
                    problems.push(problem(Some(field), line, "the reply is empty".into()));
                }
                key.parse(spanned.get_ref()).map_err(|e| problems.push(problem(Some(field), line, e))).ok()
            };
            if let (Some(zh), Some(en)) = (parse("zh", &entry.zh), parse("en", &entry.en)) {
                replies.texts.insert(key, (zh, en));
            }
        }
        replies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_the_generic_wording_and_fills_placeholders() {
        let mut problems = Vec::new();
        let text = "[clarify]\nzh = \"哪个？\\n{options}\"\nen = \"Which?\\n{options}\"\n";
        let replies = Replies::from_toml(Path::new("replies.toml"), text, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(replies.render(ReplyKey::Clarify, Lang::En, &[("options", "1. A")]), "Which?\n1. A");
        assert_eq!(replies.render(ReplyKey::Holding, Lang::Zh, &[]), ReplyKey::Holding.generic().0);
    }

    #[test]
    fn problems_name_the_reply_field_and_line() {
        let mut problems = Vec::new();
        let text = "[clarify]\nzh = \"哪个？\"\nen = \"Which {option}?\"\n\n[hello]\nzh = \"x\"\nen = \"y\"\n";
        Replies::from_toml(Path::new("replies.toml"), text, &mut problems);
        let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            said.iter().any(|p| p == "replies.toml:2 reply \"clarify\" field `zh`: the reply must show {options}"),
            "{said:?}"
        );
        assert!(
            said.iter().any(|p| p.starts_with(
                "replies.toml:3 reply \"clarify\" field `en`: unknown template field {option} (allowed: {options})"
            )),
            "{said:?}"
        );
        assert!(said.iter().any(|p| p.starts_with("replies.toml:5 reply \"hello\": unknown reply")), "{said:?}");
    }
}
