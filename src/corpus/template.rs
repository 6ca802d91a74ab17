//! Reply templates with `{placeholders}`: the data answers that pull
//! enterprise records into the reply ("你的订单编号是 {order.id}，…"), checked
//! against the fixed field set, and the canned replies, checked against
//! theirs. Parsing only; `enterprise` fills data fields from records.
//!
//! `{{` and `}}` stand for literal braces.

use std::collections::BTreeMap;

/// Every field a data answer's template may name; fixed per object.
pub const KNOWN_FIELDS: &[&str] = &[
    "order.id",
    "order.product_name",
    "order.status",
    "order.placed_date",
    "order.address",
    "order.carrier",
    "order.tracking_no",
    "order.latest_logistics",
    "order.eta",
    "stock.warehouse",
    "stock.quantity",
    "stock.summary",
    "refund.id",
    "refund.order_id",
    "refund.amount",
    "refund.status",
    "refund.card_tail",
    "refund.arrived_date",
    "repair.id",
    "repair.product",
    "repair.status",
    "repair.visit_time",
    "repair.count_90d",
    "customer.name",
];

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown template field {{{0}}}")]
    UnknownField(String),
    #[error("template placeholder opened at byte {0} is not closed")]
    Unclosed(usize),
    #[error("unmatched '}}' at byte {0} (write '}}}}' for a literal brace)")]
    UnmatchedClose(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(&'static str),
}

/// A parsed template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Values for template fields, keyed by field name (e.g. "order.id").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldValues {
    values: BTreeMap<&'static str, String>,
}

impl FieldValues {
    /// Sets one field.
    pub fn insert(&mut self, field: &'static str, value: impl Into<String>) {
        self.values.insert(field, value.into());
    }

    /// The value of a field, if set.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.values.get(field).map(String::as_str)
    }

    /// Adds every field of `other` (e.g. a customer's fields to an order's).
    pub fn extend(&mut self, other: FieldValues) {
        self.values.extend(other.values);
    }
}

impl Template {
    /// Parses a data answer's template, rejecting unknown fields and unbalanced braces.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse_with(text, KNOWN_FIELDS)
    }

    /// Parses `text` whose placeholders must be among `known`.
    pub fn parse_with(text: &str, known: &[&'static str]) -> Result<Template, TemplateError> {
        let known = |name: &str| known.iter().copied().find(|k| *k == name);
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text.char_indices().peekable();
        while let Some((at, ch)) = rest.next() {
            match ch {
                '{' if rest.peek().map(|&(_, c)| c) == Some('{') => {
                    rest.next();
                    literal.push('{');
                }
                '}' if rest.peek().map(|&(_, c)| c) == Some('}') => {
                    rest.next();
                    literal.push('}');
                }
                '}' => return Err(TemplateError::UnmatchedClose(at)),
                '{' => {
                    let close = text[at..].find('}').ok_or(TemplateError::Unclosed(at))? + at;
                    let name = text[at + 1..close].trim();
                    let field = known(name).ok_or_else(|| TemplateError::UnknownField(name.to_string()))?;
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Field(field));
                    while rest.next_if(|&(i, _)| i <= close).is_some() {}
                }
                _ => literal.push(ch),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// The fields the template names, in order of first appearance.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for part in &self.parts {
            if let Part::Field(f) = part {
                if !out.contains(f) {
                    out.push(f);
                }
            }
        }
        out
    }

    /// Fields the template needs that `values` lacks; a caller that cannot fill
    /// them should fall back to an answer without data.
    pub fn missing(&self, values: &FieldValues) -> Vec<&'static str> {
        self.fields().into_iter().filter(|f| values.get(f).is_none()).collect()
    }

    /// Fills the template. A field absent from `values` renders as nothing;
    /// check [`Template::missing`] first where that matters.
    pub fn render(&self, values: &FieldValues) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => out.push_str(values.get(f).unwrap_or_default()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_text_and_escaped_braces() {
        let t = Template::parse("你的订单编号是 {order.id}，{{不是字段}} 地址：{ order.address }；再说一次 {order.id}")
            .unwrap();
        assert_eq!(t.fields(), vec!["order.id", "order.address"]);
        let mut v = FieldValues::default();
        v.insert("order.id", "12345");
        v.insert("order.address", "杭州");
        assert_eq!(t.render(&v), "你的订单编号是 12345，{不是字段} 地址：杭州；再说一次 12345");
        assert!(Template::parse("没有字段").unwrap().fields().is_empty());
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert_eq!(Template::parse("{order.colour} 色"), Err(TemplateError::UnknownField("order.colour".into())));
        assert!(Template::parse("{stock.price}").unwrap_err().to_string().contains("stock.price"));
        assert_eq!(Template::parse("{}"), Err(TemplateError::UnknownField(String::new())));
        assert_eq!(Template::parse("订单 {order.id"), Err(TemplateError::Unclosed(7)));
        assert_eq!(Template::parse("a } b"), Err(TemplateError::UnmatchedClose(2)));
        assert_eq!(Template::parse("{customer}"), Err(TemplateError::UnknownField("customer".into())));
    }
}
