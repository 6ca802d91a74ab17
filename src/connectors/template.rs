//! Answer templates that pull enterprise data into the reply, e.g.
//! "你的订单编号是 {order.id}，收货地址可以在 APP「我的订单」里修改".
//! Pure: parsing checks every placeholder against the fixed field set, and
//! the `fields_of_*` functions turn connector records into [`FieldValues`]
//! (dates as 6月14日 in the deployment's zone, statuses in Chinese).
//!
//! `{{` and `}}` stand for literal braces.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;

use super::{Customer, Order, Refund, RepairRecord, StockRow};

/// Every field a template may name; fixed per object.
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

/// Shown for a value the record does not have (no carrier yet, no ETA, ...).
const NONE_YET: &str = "暂无";

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

/// A parsed answer template.
#[derive(Debug, Clone, PartialEq, Eq)]
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

fn known(name: &str) -> Option<&'static str> {
    KNOWN_FIELDS.iter().copied().find(|k| *k == name)
}

impl Template {
    /// Parses `text`, rejecting unknown fields and unbalanced braces.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
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

/// 6月14日
fn date_zh(date: NaiveDate) -> String {
    format!("{}月{}日", date.month(), date.day())
}

fn local_date(at: DateTime<Utc>, tz: Tz) -> String {
    date_zh(at.with_timezone(&tz).date_naive())
}

/// 6月14日 18:20
fn local_time(at: DateTime<Utc>, tz: Tz) -> String {
    let local = at.with_timezone(&tz);
    format!("{} {}", date_zh(local.date_naive()), local.format("%H:%M"))
}

fn order_status_zh(status: &str) -> &str {
    match status {
        "pending_payment" => "待付款",
        "paid" => "已付款，待发货",
        "shipped" => "运输中",
        "delivered" => "已签收",
        "cancelled" => "已取消",
        other => other,
    }
}

fn refund_status_zh(status: &str) -> &str {
    match status {
        "processing" => "处理中",
        "arrived" => "已到账",
        other => other,
    }
}

fn repair_status_zh(status: &str) -> &str {
    match status {
        "received" => "已受理",
        "scheduled" => "已预约上门",
        "in_progress" => "维修中",
        "completed" => "已完成",
        other => other,
    }
}

/// The `order.*` fields of an order, dates in `tz`.
pub fn fields_of_order(order: &Order, tz: Tz) -> FieldValues {
    let mut v = FieldValues::default();
    v.insert("order.id", order.id.as_str());
    v.insert("order.product_name", order.product_name.as_str());
    v.insert("order.status", order_status_zh(&order.status));
    v.insert("order.placed_date", local_date(order.placed_at, tz));
    v.insert("order.address", order.address.as_str());
    v.insert("order.carrier", order.carrier.as_deref().unwrap_or(NONE_YET));
    v.insert("order.tracking_no", order.tracking_no.as_deref().unwrap_or(NONE_YET));
    // NOTE: the newest event by time, not the last in the list, since systems differ in order.
    let latest = order.logistics.iter().max_by_key(|e| e.at);
    v.insert("order.latest_logistics", latest.map_or_else(|| "暂无物流信息".to_string(), |e| format!("{} {}", local_time(e.at, tz), e.text)));
    v.insert("order.eta", order.eta.map_or_else(|| NONE_YET.to_string(), date_zh));
    v
}

/// The `stock.*` fields of a product's stock rows: `warehouse` and `quantity`
/// of the warehouse with the most stock, and a `summary` of all of them
/// (e.g. "杭州仓 126 件、广州仓 48 件；北京仓暂时缺货").
pub fn fields_of_stock(rows: &[StockRow]) -> FieldValues {
    let mut v = FieldValues::default();
    // First of the maxima, so the system's own order breaks ties.
    let best = rows.iter().reduce(|best, r| if r.quantity > best.quantity { r } else { best });
    v.insert("stock.warehouse", best.map_or(NONE_YET, |r| r.warehouse.as_str()));
    v.insert("stock.quantity", best.map_or(0, |r| r.quantity.max(0)).to_string());
    let stocked: Vec<String> = rows.iter().filter(|r| r.quantity > 0).map(|r| format!("{} {} 件", r.warehouse, r.quantity)).collect();
    let empty: Vec<&str> = rows.iter().filter(|r| r.quantity <= 0).map(|r| r.warehouse.as_str()).collect();
    let summary = match (stocked.is_empty(), empty.is_empty()) {
        (true, _) => "暂时缺货".to_string(),
        (false, true) => stocked.join("、"),
        (false, false) => format!("{}；{}暂时缺货", stocked.join("、"), empty.join("、")),
    };
    v.insert("stock.summary", summary);
    v
}

/// The `refund.*` fields of a refund, dates in `tz`; the amount as "199.00".
pub fn fields_of_refund(refund: &Refund, tz: Tz) -> FieldValues {
    let mut v = FieldValues::default();
    v.insert("refund.id", refund.id.as_str());
    v.insert("refund.order_id", refund.order_id.as_str());
    v.insert("refund.amount", format!("{:.2}", refund.amount_cny));
    v.insert("refund.status", refund_status_zh(&refund.status));
    v.insert("refund.card_tail", refund.card_tail.as_str());
    v.insert("refund.arrived_date", refund.arrived_at.map_or_else(|| "暂未到账".to_string(), |at| local_date(at, tz)));
    v
}

/// The `repair.*` fields of one repair case; `count_90d` counts the cases in
/// `history` (the customer's repairs, this one included) for the same product
/// reported in the 90 days before `now`.
pub fn fields_of_repair(repair: &RepairRecord, history: &[RepairRecord], now: DateTime<Utc>, tz: Tz) -> FieldValues {
    let mut v = FieldValues::default();
    v.insert("repair.id", repair.id.as_str());
    v.insert("repair.product", repair.product_name.as_str());
    v.insert("repair.status", repair_status_zh(&repair.status));
    v.insert("repair.visit_time", repair.technician_visit.map_or_else(|| "待预约".to_string(), |at| local_time(at, tz)));
    v.insert("repair.count_90d", repairs_in_90_days(history, Some(&repair.product), now).to_string());
    v
}

/// Repair cases in `history` reported in the 90 days before `now`, of
/// `product` when given: what makes a fault a repeat one.
pub fn repairs_in_90_days(history: &[RepairRecord], product: Option<&str>, now: DateTime<Utc>) -> usize {
    let window = now - TimeDelta::days(90);
    history.iter().filter(|r| product.is_none_or(|p| r.product == p) && r.reported_at >= window && r.reported_at <= now).count()
}

/// The `customer.*` fields of a CRM profile.
pub fn fields_of_customer(customer: &Customer) -> FieldValues {
    let mut v = FieldValues::default();
    v.insert("customer.name", customer.name.as_str());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::LogisticsEvent;

    const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn order() -> Order {
        Order {
            id: "12345".into(),
            customer_id: "c1001".into(),
            product: "dress".into(),
            product_name: "碎花雪纺连衣裙".into(),
            status: "shipped".into(),
            // 2026-06-14 00:30 in Shanghai, still 06-13 in UTC.
            placed_at: at("2026-06-13T16:30:00Z"),
            amount_cny: 459.0,
            address: "杭州市西湖区文三路 100 号".into(),
            carrier: Some("顺丰速运".into()),
            tracking_no: Some("SF1402837465129".into()),
            logistics: vec![
                LogisticsEvent { at: at("2026-06-14T10:20:00Z"), text: "快件已到达【杭州转运中心】".into() },
                LogisticsEvent { at: at("2026-06-14T02:00:00Z"), text: "已揽收".into() },
            ],
            eta: NaiveDate::from_ymd_opt(2026, 6, 17),
        }
    }

    fn repair(id: &str, product: &str, reported: &str) -> RepairRecord {
        RepairRecord {
            id: id.into(),
            product: product.into(),
            product_name: "冰箱".into(),
            order_id: None,
            reported_at: at(reported),
            status: "scheduled".into(),
            technician_visit: Some(at("2026-06-16T06:00:00Z")),
            note: String::new(),
        }
    }

    #[test]
    fn parses_fields_text_and_escaped_braces() {
        let t = Template::parse("你的订单编号是 {order.id}，{{不是字段}} 地址：{ order.address }；再说一次 {order.id}").unwrap();
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

    #[test]
    fn missing_fields_are_reported_and_render_empty() {
        let t = Template::parse("{customer.name}您好，{stock.warehouse} 有货 {stock.quantity} 件").unwrap();
        let mut v = fields_of_stock(&[StockRow { warehouse: "杭州仓".into(), product: "dress".into(), quantity: 5 }]);
        assert_eq!(t.missing(&v), vec!["customer.name"]);
        assert_eq!(t.render(&v), "您好，杭州仓 有货 5 件");
        v.extend(fields_of_customer(&Customer {
            id: "c1001".into(),
            name: "张伟".into(),
            phone: "13812345678".into(),
            spend_12m_cny: 15056.0,
            since: at("2022-06-15T00:00:00Z"),
        }));
        assert!(t.missing(&v).is_empty());
        assert_eq!(t.render(&v), "张伟您好，杭州仓 有货 5 件");
    }

    #[test]
    fn order_fields_use_the_local_zone() {
        let v = fields_of_order(&order(), SHANGHAI);
        assert_eq!(v.get("order.placed_date"), Some("6月14日"));
        assert_eq!(v.get("order.status"), Some("运输中"));
        assert_eq!(v.get("order.latest_logistics"), Some("6月14日 18:20 快件已到达【杭州转运中心】"));
        assert_eq!(v.get("order.eta"), Some("6月17日"));
        assert_eq!(v.get("order.carrier"), Some("顺丰速运"));
        assert_eq!(fields_of_order(&order(), chrono_tz::UTC).get("order.placed_date"), Some("6月13日"));
        let unshipped = Order { carrier: None, tracking_no: None, logistics: vec![], eta: None, status: "paid".into(), ..order() };
        let v = fields_of_order(&unshipped, SHANGHAI);
        assert_eq!(v.get("order.tracking_no"), Some(NONE_YET));
        assert_eq!(v.get("order.latest_logistics"), Some("暂无物流信息"));
        assert_eq!(v.get("order.eta"), Some(NONE_YET));
        for f in KNOWN_FIELDS.iter().filter(|f| f.starts_with("order.")) {
            assert!(v.get(f).is_some(), "{f}");
        }
    }

    #[test]
    fn stock_fields_pick_the_best_warehouse_and_summarise() {
        let row = |w: &str, q| StockRow { warehouse: w.into(), product: "dress".into(), quantity: q };
        let v = fields_of_stock(&[row("广州仓", 48), row("杭州仓", 126), row("北京仓", 0)]);
        assert_eq!((v.get("stock.warehouse"), v.get("stock.quantity")), (Some("杭州仓"), Some("126")));
        assert_eq!(v.get("stock.summary"), Some("广州仓 48 件、杭州仓 126 件；北京仓暂时缺货"));
        assert_eq!(fields_of_stock(&[row("杭州仓", 3), row("北京仓", 2)]).get("stock.summary"), Some("杭州仓 3 件、北京仓 2 件"));
        let none = fields_of_stock(&[row("北京仓", 0)]);
        assert_eq!((none.get("stock.quantity"), none.get("stock.summary")), (Some("0"), Some("暂时缺货")));
        assert_eq!(fields_of_stock(&[]).get("stock.warehouse"), Some(NONE_YET));
    }

    #[test]
    fn refund_fields() {
        let refund = Refund {
            id: "R88001".into(),
            order_id: "12287".into(),
            amount_cny: 199.0,
            status: "arrived".into(),
            card_tail: "1234".into(),
            arrived_at: Some(at("2026-06-14T03:00:00Z")),
        };
        let t = Template::parse("退款 {refund.amount} 元已于 {refund.arrived_date} 退回尾号 {refund.card_tail} 的卡（{refund.status}）").unwrap();
        assert_eq!(t.render(&fields_of_refund(&refund, SHANGHAI)), "退款 199.00 元已于 6月14日 退回尾号 1234 的卡（已到账）");
        let pending = Refund { status: "processing".into(), arrived_at: None, ..refund };
        let v = fields_of_refund(&pending, SHANGHAI);
        assert_eq!((v.get("refund.status"), v.get("refund.arrived_date")), (Some("处理中"), Some("暂未到账")));
        assert_eq!(v.get("refund.order_id"), Some("12287"));
    }

    #[test]
    fn repair_fields_count_same_product_cases_in_90_days() {
        let now = at("2026-06-15T02:30:00Z");
        let history = vec![
            repair("W3", "refrigerator", "2026-06-03T02:00:00Z"),
            repair("W2", "refrigerator", "2026-04-06T02:00:00Z"),
            repair("W1", "refrigerator", "2026-01-10T02:00:00Z"),
            repair("W9", "washing_machine", "2026-06-01T02:00:00Z"),
        ];
        let v = fields_of_repair(&history[0], &history, now, SHANGHAI);
        assert_eq!(v.get("repair.count_90d"), Some("2"));
        assert_eq!(v.get("repair.visit_time"), Some("6月16日 14:00"));
        assert_eq!((v.get("repair.status"), v.get("repair.product")), (Some("已预约上门"), Some("冰箱")));
        let unscheduled = RepairRecord { technician_visit: None, status: "received".into(), ..history[0].clone() };
        assert_eq!(fields_of_repair(&unscheduled, &[], now, SHANGHAI).get("repair.visit_time"), Some("待预约"));
        assert_eq!(fields_of_repair(&unscheduled, &[], now, SHANGHAI).get("repair.count_90d"), Some("0"));
    }
}
