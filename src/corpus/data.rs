//! Data answers: an intent's reply that pulls enterprise data through a
//! template, validated when the corpus loads.

use std::str::FromStr;

use super::Template;

use super::Lang;

/// Which enterprise record an intent's data answer is rendered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    Order,
    Stock,
    Refund,
    Repair,
}

impl DataKind {
    /// The template object this kind provides (besides `customer`).
    pub fn object(self) -> &'static str {
        match self {
            DataKind::Order => "order",
            DataKind::Stock => "stock",
            DataKind::Refund => "refund",
            DataKind::Repair => "repair",
        }
    }
}

impl FromStr for DataKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "order" => Ok(DataKind::Order),
            "stock" => Ok(DataKind::Stock),
            "refund" => Ok(DataKind::Refund),
            "repair" => Ok(DataKind::Repair),
            other => Err(format!("unknown data kind {other:?}; use order, stock, refund or repair")),
        }
    }
}

/// An intent's answer that pulls enterprise data, in both languages.
#[derive(Debug, Clone)]
pub struct DataAnswer {
    pub kind: DataKind,
    pub zh: Template,
    pub en: Template,
}

impl DataAnswer {
    /// Parses both templates; every field must belong to `kind`'s object or to `customer`.
    pub fn new(kind: DataKind, zh: &str, en: &str) -> Result<DataAnswer, String> {
        let parse = |text: &str| -> Result<Template, String> {
            let template = Template::parse(text).map_err(|e| e.to_string())?;
            for field in template.fields() {
                let object = field.split('.').next().unwrap_or_default();
                if object != kind.object() && object != "customer" {
                    return Err(format!("field {{{field}}} is not available to a `{}` answer", kind.object()));
                }
            }
            Ok(template)
        };
        Ok(DataAnswer { kind, zh: parse(zh)?, en: parse(en)? })
    }

    /// The template in the customer's language.
    pub fn template(&self, lang: Lang) -> &Template {
        match lang {
            Lang::Zh => &self.zh,
            Lang::En => &self.en,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_may_use_only_their_object_and_the_customer() {
        assert!(DataAnswer::new(DataKind::Order, "订单 {order.id}，{customer.name}", "Order {order.id}").is_ok());
        let err = DataAnswer::new(DataKind::Stock, "{order.id}", "x").unwrap_err();
        assert!(err.contains("not available to a `stock` answer"), "{err}");
        assert!(DataAnswer::new(DataKind::Order, "{order.nope}", "x").unwrap_err().contains("order.nope"));
        assert!("invoice".parse::<DataKind>().is_err());
    }
}
