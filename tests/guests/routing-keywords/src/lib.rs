//! Test guest for the ticket-routing hook: a ticket whose subject or description names a
//! safety hazard (brakes, fire, airbags) is urgent, goes to the safety team with a 30-minute
//! first contact and a 24-hour resolution, and notifies the regional service manager; any other
//! ticket goes to the service team with 4 and 72 hours.
//!
//! The decision is the pure function [`route`], so a native benchmark runs the same logic as
//! the component.

use dealer_sdk::dates::{HOUR, MINUTE};
use dealer_sdk::ticket_routing::{Guest, Notification, Priority, Route, Ticket};

/// The words that make a ticket a safety case, matched anywhere in the subject or the
/// description, ignoring case.
pub const SAFETY_KEYWORDS: [&str; 7] = [
    "刹车",
    "制动",
    "brake",
    "起火",
    "fire",
    "airbag",
    "安全气囊",
];

/// Routes `ticket`; no host calls.
pub fn route(ticket: &Ticket) -> Route {
    let subject = ticket.subject.to_lowercase();
    let description = ticket.description.to_lowercase();
    let keyword = SAFETY_KEYWORDS
        .into_iter()
        .find(|keyword| subject.contains(keyword) || description.contains(keyword));
    let opened_at = ticket.opened_at;
    match keyword {
        Some(keyword) => Route {
            priority: Priority::Urgent,
            team: "safety".to_owned(),
            safety: true,
            first_contact_due: opened_at.saturating_add(30 * MINUTE),
            resolution_due: opened_at.saturating_add(24 * HOUR),
            notifications: vec![Notification {
                channel: "task".to_owned(),
                recipient: "role:regional-service-manager".to_owned(),
                template: "safety-ticket".to_owned(),
                data: vec![
                    ("ticket-id".to_owned(), ticket.ticket_id.to_string()),
                    ("keyword".to_owned(), keyword.to_owned()),
                ],
            }],
            reason: format!("safety keyword {keyword}"),
        },
        None => Route {
            priority: Priority::Normal,
            team: "service".to_owned(),
            safety: false,
            first_contact_due: opened_at.saturating_add(4 * HOUR),
            resolution_due: opened_at.saturating_add(72 * HOUR),
            notifications: Vec::new(),
            reason: "no safety keyword".to_owned(),
        },
    }
}

struct RoutingKeywords;

impl Guest for RoutingKeywords {
    fn route_ticket(ticket: Ticket) -> Result<Route, String> {
        Ok(route(&ticket))
    }
}

dealer_sdk::export_ticket_routing!(RoutingKeywords);

#[cfg(test)]
mod tests {
    use super::*;

    const OPENED_AT: i64 = 1_700_000_000_000;

    fn ticket(subject: &str, description: &str) -> Ticket {
        Ticket {
            ticket_id: 42,
            dealer_id: 7,
            channel: "hotline".to_owned(),
            category: "complaint".to_owned(),
            subject: subject.to_owned(),
            description: description.to_owned(),
            customer_id: 9,
            customer_tier: None,
            customer_tags: Vec::new(),
            vehicle_id: Some(3),
            opened_at: OPENED_AT,
        }
    }

    #[test]
    fn every_keyword_makes_a_safety_case() {
        for keyword in SAFETY_KEYWORDS {
            let in_subject = route(&ticket(&format!("客户反映{keyword}异常"), ""));
            let in_description = route(&ticket("来电", &format!("行驶中{keyword}问题")));
            for routed in [in_subject, in_description] {
                assert_eq!(routed.priority, Priority::Urgent, "{keyword}");
                assert!(routed.safety, "{keyword}");
                assert_eq!(routed.team, "safety");
                assert_eq!(routed.reason, format!("safety keyword {keyword}"));
            }
        }
    }

    #[test]
    fn a_safety_case_is_due_in_30_minutes_and_24_hours_and_notifies_the_manager() {
        let routed = route(&ticket("刹车失灵", "高速上踩刹车没反应"));
        assert_eq!(routed.first_contact_due, OPENED_AT + 30 * 60_000);
        assert_eq!(routed.resolution_due, OPENED_AT + 24 * 3_600_000);
        assert_eq!(
            routed.notifications,
            vec![Notification {
                channel: "task".to_owned(),
                recipient: "role:regional-service-manager".to_owned(),
                template: "safety-ticket".to_owned(),
                data: vec![
                    ("ticket-id".to_owned(), "42".to_owned()),
                    ("keyword".to_owned(), "刹车".to_owned()),
                ],
            }]
        );
    }

    #[test]
    fn english_keywords_ignore_case() {
        assert!(route(&ticket("BRAKES squeal", "")).safety);
        assert!(route(&ticket("", "Smoke, then Fire under the hood")).safety);
        assert!(route(&ticket("Airbag light on", "")).safety);
    }

    #[test]
    fn other_tickets_go_to_service_in_4_and_72_hours() {
        let routed = route(&ticket("预约保养", "想约下周六做首保"));
        assert_eq!(
            routed,
            Route {
                priority: Priority::Normal,
                team: "service".to_owned(),
                safety: false,
                first_contact_due: OPENED_AT + 4 * 3_600_000,
                resolution_due: OPENED_AT + 72 * 3_600_000,
                notifications: Vec::new(),
                reason: "no safety keyword".to_owned(),
            }
        );
    }

    #[test]
    fn due_times_saturate_instead_of_overflowing() {
        let mut late = ticket("brake", "");
        late.opened_at = i64::MAX;
        let routed = route(&late);
        assert_eq!(routed.first_contact_due, i64::MAX);
        assert_eq!(routed.resolution_due, i64::MAX);
    }

    #[test]
    fn the_export_routes_the_same_way() {
        let ticket = ticket("安全气囊灯亮", "");
        assert_eq!(
            RoutingKeywords::route_ticket(ticket.clone()),
            Ok(route(&ticket))
        );
    }
}
