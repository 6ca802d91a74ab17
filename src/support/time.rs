//! The one timestamp format kefu stores and compares: RFC 3339 in UTC with
//! microseconds, which orders as text.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The zone relative dates are read and days counted in unless configured otherwise.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Asia::Shanghai;

pub fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_order_as_text() {
        let a = DateTime::parse_from_rfc3339("2026-06-15T02:00:00.5Z").unwrap().with_timezone(&Utc);
        let b = a + chrono::Duration::microseconds(1);
        assert_eq!(stamp(a), "2026-06-15T02:00:00.500000Z");
        assert!(stamp(a) < stamp(b));
    }
}
