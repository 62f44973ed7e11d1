//! Ticket routing (first-party plugin): a new ticket becomes a priority, a team, SLA
//! deadlines and notifications.
//!
//! - **Safety**: a ticket whose subject or description contains one of `safety_keywords`
//!   (ignoring case), or whose category is `safety`, is urgent, goes to the `safety` team, and
//!   notifies the regional service manager and the dealer's service manager, each with a task.
//! - **VIP**: a customer whose tier is in `vip_tiers` or who has a tag in `vip_tags` (ignoring
//!   case) goes to `vip-care` with high priority — unless it is a safety case, which stays
//!   urgent with the safety team.
//! - Anything else goes to `service` with normal priority.
//! - **SLA** (`sla_minutes`, minutes after the ticket was opened): a safety case uses the entry
//!   `safety`; any other ticket its category's entry, else the entry `default`. Without those
//!   entries, safety is 30 minutes to first contact and 1 440 to resolution, anything else 120
//!   and 4 320.
//!
//! The reason, in Chinese, names every rule that applied.
//!
//! The decision is the pure function [`route`]; the exported hook only reads the dealer's
//! [`Config`].

use std::collections::BTreeMap;

use dealer_sdk::dates::MINUTE;
use dealer_sdk::ticket_routing::{Guest, Notification, Priority, Route, Ticket};
use serde::{Deserialize, Serialize};

/// The category that makes any ticket a safety case, and the SLA entry of safety cases.
pub const SAFETY_CATEGORY: &str = "safety";
/// The SLA entry of categories without their own.
pub const DEFAULT_SLA_ENTRY: &str = "default";
/// The safety SLA when `sla_minutes` has no `safety` entry.
pub const SAFETY_SLA: Sla = Sla {
    first_contact: 30,
    resolution: 24 * 60,
};
/// The SLA of other tickets when `sla_minutes` has neither their category nor `default`.
pub const DEFAULT_SLA: Sla = Sla {
    first_contact: 120,
    resolution: 72 * 60,
};
/// The longest SLA deadline: a year, in minutes.
const MAX_SLA_MINUTES: u32 = 366 * 24 * 60;

/// Who a safety case notifies, each with a task.
const SAFETY_RECIPIENTS: [&str; 2] = ["role:regional-service-manager", "role:service-manager"];

/// The dealer's routing rules. Every key is optional; [`Config::default`] holds the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Words that make a ticket a safety case, matched anywhere in the subject or the
    /// description, ignoring case. The first in this order that matches is reported.
    pub safety_keywords: Vec<String>,
    /// Customer tiers whose tickets go to VIP care (ignoring case).
    pub vip_tiers: Vec<String>,
    /// Customer tags whose tickets go to VIP care (ignoring case).
    pub vip_tags: Vec<String>,
    /// SLA per category, plus the entries `safety` and `default`.
    pub sla_minutes: BTreeMap<String, Sla>,
}

/// Deadlines in minutes after the ticket was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    /// Until the first contact with the customer.
    pub first_contact: u32,
    /// Until the ticket is resolved; not before the first contact.
    pub resolution: u32,
}

impl Default for Config {
    fn default() -> Config {
        let texts = |words: &[&str]| words.iter().map(|&word| word.to_owned()).collect();
        Config {
            safety_keywords: texts(&[
                "刹车",
                "制动",
                "转向",
                "起火",
                "冒烟",
                "安全气囊",
                "失控",
                "brake",
                "fire",
                "airbag",
                "steering",
            ]),
            vip_tiers: texts(&["铂金"]),
            vip_tags: texts(&["vip"]),
            sla_minutes: BTreeMap::from([
                (SAFETY_CATEGORY.to_owned(), SAFETY_SLA),
                (DEFAULT_SLA_ENTRY.to_owned(), DEFAULT_SLA),
            ]),
        }
    }
}

impl Config {
    /// Refuses what the schema cannot: the first problem, naming its key.
    pub fn validate(&self) -> Result<(), String> {
        if self
            .safety_keywords
            .iter()
            .any(|word| word.trim().is_empty())
        {
            return Err(
                "config `safety_keywords`: a blank keyword would match every ticket".to_owned(),
            );
        }
        for (category, sla) in &self.sla_minutes {
            let problem = if category.trim().is_empty() {
                Some("a blank category".to_owned())
            } else if sla.first_contact == 0 {
                Some(format!(
                    "{category:?}: the first contact is due after 0 minutes"
                ))
            } else if sla.resolution < sla.first_contact {
                Some(format!(
                    "{category:?}: the resolution ({} minutes) is due before the first contact \
                     ({} minutes)",
                    sla.resolution, sla.first_contact
                ))
            } else if sla.resolution > MAX_SLA_MINUTES {
                Some(format!(
                    "{category:?}: {} minutes is longer than a year ({MAX_SLA_MINUTES})",
                    sla.resolution
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(format!("config `sla_minutes`: {problem}"));
            }
        }
        Ok(())
    }

    /// The SLA of a safety case, or of another ticket of `category`, and the entry it came
    /// from (`None` for the built-in one).
    fn sla(&self, safety: bool, category: &str) -> (Sla, Option<&str>) {
        let entry = |key: &str| {
            let (entry, sla) = self.sla_minutes.get_key_value(key)?;
            Some((*sla, Some(entry.as_str())))
        };
        if safety {
            entry(SAFETY_CATEGORY).unwrap_or((SAFETY_SLA, None))
        } else {
            entry(category)
                .or_else(|| entry(DEFAULT_SLA_ENTRY))
                .unwrap_or((DEFAULT_SLA, None))
        }
    }
}

/// Routes `ticket` under a validated `config`. No host calls.
pub fn route(ticket: &Ticket, config: &Config) -> Route {
    let subject = ticket.subject.to_lowercase();
    let description = ticket.description.to_lowercase();
    let keyword = config.safety_keywords.iter().find(|keyword| {
        let keyword = keyword.to_lowercase();
        subject.contains(&keyword) || description.contains(&keyword)
    });
    let safety = keyword.is_some() || ticket.category == SAFETY_CATEGORY;
    let vip = vip_mark(ticket, config);

    let mut reasons = Vec::new();
    let (priority, team) = if safety {
        reasons.push(format!(
            "{}：紧急，转安全组，已通知区域服务经理和服务经理",
            keyword.map_or_else(
                || "工单类别为安全".to_owned(),
                |keyword| format!("安全关键词「{keyword}」")
            )
        ));
        reasons.extend(vip);
        (Priority::Urgent, "safety")
    } else if let Some(vip) = vip {
        reasons.push(format!("{vip}：高优先级，转 VIP 关怀组"));
        (Priority::High, "vip-care")
    } else {
        reasons.push("常规工单：普通优先级，转服务组".to_owned());
        (Priority::Normal, "service")
    };

    let (sla, entry) = config.sla(safety, &ticket.category);
    reasons.push(format!(
        "首次联系 {} 分钟内，解决 {} 分钟内（{}）",
        sla.first_contact,
        sla.resolution,
        entry.map_or_else(|| "默认时限".to_owned(), |entry| format!("时限 {entry}"))
    ));
    let due = |minutes: u32| {
        ticket
            .opened_at
            .saturating_add(i64::from(minutes).saturating_mul(MINUTE))
    };

    let notifications = if safety {
        let mut data = vec![
            ("ticket-id".to_owned(), ticket.ticket_id.to_string()),
            ("dealer-id".to_owned(), ticket.dealer_id.to_string()),
            ("category".to_owned(), ticket.category.clone()),
        ];
        data.extend(keyword.map(|keyword| ("keyword".to_owned(), keyword.clone())));
        SAFETY_RECIPIENTS
            .iter()
            .map(|recipient| Notification {
                channel: "task".to_owned(),
                recipient: (*recipient).to_owned(),
                template: "safety-ticket".to_owned(),
                data: data.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };

    Route {
        priority,
        team: team.to_owned(),
        safety,
        first_contact_due: due(sla.first_contact),
        resolution_due: due(sla.resolution),
        notifications,
        reason: reasons.join("；"),
    }
}

/// Why the customer is a VIP, if they are: their tier first, else their first VIP tag.
fn vip_mark(ticket: &Ticket, config: &Config) -> Option<String> {
    let listed = |list: &[String], value: &str| {
        let value = value.to_lowercase();
        list.iter().any(|item| item.to_lowercase() == value)
    };
    if let Some(tier) = ticket
        .customer_tier
        .as_deref()
        .filter(|tier| listed(&config.vip_tiers, tier))
    {
        return Some(format!("VIP 客户（等级 {tier}）"));
    }
    ticket
        .customer_tags
        .iter()
        .find(|tag| listed(&config.vip_tags, tag))
        .map(|tag| format!("VIP 客户（标签 {tag}）"))
}

/// Reads the calling dealer's configuration (one host call; missing keys take their defaults)
/// and validates it.
fn load_config() -> Result<Config, String> {
    let config: Config = dealer_sdk::config::document()?;
    config.validate()?;
    Ok(config)
}

struct TicketRouting;

impl Guest for TicketRouting {
    fn route_ticket(ticket: Ticket) -> Result<Route, String> {
        Ok(route(&ticket, &load_config()?))
    }
}

dealer_sdk::export_ticket_routing!(TicketRouting);

#[cfg(test)]
mod tests {

    use super::*;

    const OPENED_AT: i64 = 1_763_900_000_000;

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

    fn minutes(at: i64) -> i64 {
        (at - OPENED_AT) / MINUTE
    }

    #[test]
    fn every_default_keyword_makes_a_safety_case_in_subject_or_description() {
        let config = Config::default();
        for keyword in &config.safety_keywords {
            let in_subject = route(&ticket(&format!("客户反映{keyword}异常"), "来电"), &config);
            let in_description = route(&ticket("来电", &format!("高速上{keyword}出问题")), &config);
            for routed in [in_subject, in_description] {
                assert_eq!(routed.priority, Priority::Urgent, "{keyword}");
                assert!(routed.safety, "{keyword}");
                assert_eq!(routed.team, "safety", "{keyword}");
                assert!(
                    routed
                        .reason
                        .starts_with(&format!("安全关键词「{keyword}」")),
                    "{}",
                    routed.reason
                );
            }
        }
    }

    #[test]
    fn keywords_match_ignoring_case() {
        let config = Config::default();
        for (subject, description) in [
            ("BRAKES squeal", ""),
            ("", "Smoke, then FIRE under the hood"),
            ("AirBag light on", ""),
            ("Steering wheel shakes", ""),
        ] {
            assert!(
                route(&ticket(subject, description), &config).safety,
                "{subject}{description}"
            );
        }
        let upper = Config {
            safety_keywords: vec!["ABS".to_owned()],
            ..Config::default()
        };
        assert!(route(&ticket("abs 灯亮", ""), &upper).safety);
    }

    #[test]
    fn a_safety_case_notifies_both_managers_with_tasks() {
        let routed = route(&ticket("刹车失灵", "踩刹车没反应"), &Config::default());
        let data = vec![
            ("ticket-id".to_owned(), "42".to_owned()),
            ("dealer-id".to_owned(), "7".to_owned()),
            ("category".to_owned(), "complaint".to_owned()),
            ("keyword".to_owned(), "刹车".to_owned()),
        ];
        assert_eq!(
            routed,
            Route {
                priority: Priority::Urgent,
                team: "safety".to_owned(),
                safety: true,
                first_contact_due: OPENED_AT + 30 * MINUTE,
                resolution_due: OPENED_AT + 1_440 * MINUTE,
                notifications: ["role:regional-service-manager", "role:service-manager"]
                    .map(|recipient| Notification {
                        channel: "task".to_owned(),
                        recipient: recipient.to_owned(),
                        template: "safety-ticket".to_owned(),
                        data: data.clone(),
                    })
                    .to_vec(),
                reason: "安全关键词「刹车」：紧急，转安全组，已通知区域服务经理和服务经理；\
                         首次联系 30 分钟内，解决 1440 分钟内（时限 safety）"
                    .to_owned(),
            }
        );
    }

    #[test]
    fn the_first_keyword_in_the_configured_order_is_reported() {
        let routed = route(&ticket("车辆冒烟后起火", ""), &Config::default());
        assert_eq!(routed.notifications[0].data[3].1, "起火");
    }

    #[test]
    fn the_safety_category_is_a_safety_case_without_a_keyword() {
        let mut filed = ticket("请回电", "");
        filed.category = SAFETY_CATEGORY.to_owned();
        let routed = route(&filed, &Config::default());
        assert!(routed.safety);
        assert_eq!(routed.priority, Priority::Urgent);
        assert_eq!(routed.notifications.len(), 2);
        assert!(
            routed.notifications[0]
                .data
                .iter()
                .all(|(key, _)| key != "keyword")
        );
        assert!(routed.reason.starts_with("工单类别为安全："));
    }

    #[test]
    fn vip_customers_go_to_vip_care_with_high_priority() {
        let config = Config::default();
        let mut by_tier = ticket("预约保养", "");
        by_tier.customer_tier = Some("铂金".to_owned());
        let routed = route(&by_tier, &config);
        assert_eq!(
            (routed.priority, routed.team.as_str()),
            (Priority::High, "vip-care")
        );
        assert!(!routed.safety);
        assert!(routed.notifications.is_empty());
        assert_eq!(
            routed.reason,
            "VIP 客户（等级 铂金）：高优先级，转 VIP 关怀组；首次联系 120 分钟内，解决 4320 分钟内（时限 default）"
        );

        let mut by_tag = ticket("预约保养", "");
        by_tag.customer_tier = Some("金卡".to_owned());
        by_tag.customer_tags = vec!["老客户".to_owned(), "VIP".to_owned()];
        let routed = route(&by_tag, &config);
        assert_eq!(
            (routed.priority, routed.team.as_str()),
            (Priority::High, "vip-care")
        );
        assert!(routed.reason.starts_with("VIP 客户（标签 VIP）"));
    }

    #[test]
    fn a_vip_safety_case_stays_urgent_with_the_safety_team() {
        let mut urgent = ticket("方向盘转向失灵", "");
        urgent.customer_tier = Some("铂金".to_owned());
        let routed = route(&urgent, &Config::default());
        assert_eq!(
            (routed.priority, routed.team.as_str()),
            (Priority::Urgent, "safety")
        );
        assert_eq!(
            routed.reason,
            "安全关键词「转向」：紧急，转安全组，已通知区域服务经理和服务经理；VIP 客户（等级 铂金）；\
             首次联系 30 分钟内，解决 1440 分钟内（时限 safety）"
        );
    }

    #[test]
    fn other_tickets_go_to_service_with_normal_priority() {
        let mut plain = ticket("发票问题", "需要重开发票");
        plain.customer_tier = Some("银卡".to_owned());
        plain.customer_tags = vec!["fleet".to_owned()];
        let routed = route(&plain, &Config::default());
        assert_eq!(
            routed,
            Route {
                priority: Priority::Normal,
                team: "service".to_owned(),
                safety: false,
                first_contact_due: OPENED_AT + 120 * MINUTE,
                resolution_due: OPENED_AT + 4_320 * MINUTE,
                notifications: Vec::new(),
                reason: "常规工单：普通优先级，转服务组；首次联系 120 分钟内，解决 4320 分钟内（时限 default）"
                    .to_owned(),
            }
        );
    }

    #[test]
    fn the_sla_comes_from_the_category_then_default_then_built_in() {
        let config = Config {
            sla_minutes: BTreeMap::from([(
                "complaint".to_owned(),
                Sla {
                    first_contact: 60,
                    resolution: 2_880,
                },
            )]),
            ..Config::default()
        };
        let complaint = route(&ticket("投诉销售", ""), &config);
        assert_eq!(
            (
                minutes(complaint.first_contact_due),
                minutes(complaint.resolution_due)
            ),
            (60, 2_880)
        );
        assert!(complaint.reason.ends_with("（时限 complaint）"));
        let mut other = ticket("咨询", "");
        other.category = "inquiry".to_owned();
        let routed = route(&other, &config);
        assert_eq!(
            (
                minutes(routed.first_contact_due),
                minutes(routed.resolution_due)
            ),
            (120, 4_320)
        );
        assert!(routed.reason.ends_with("（默认时限）"));
        let safety = route(&ticket("fire", ""), &config);
        assert_eq!(
            (
                minutes(safety.first_contact_due),
                minutes(safety.resolution_due)
            ),
            (30, 1_440)
        );
    }

    #[test]
    fn configured_keywords_replace_the_defaults() {
        let config = Config {
            safety_keywords: vec!["异响".to_owned()],
            ..Config::default()
        };
        assert!(route(&ticket("底盘异响", ""), &config).safety);
        assert!(!route(&ticket("刹车异常", ""), &config).safety);
    }

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        let mut late = ticket("brake", "");
        late.opened_at = i64::MAX - 1;
        let routed = route(&late, &Config::default());
        assert_eq!(routed.first_contact_due, i64::MAX);
        assert_eq!(routed.resolution_due, i64::MAX);
    }

    #[test]
    fn the_readme_example_holds() {
        let config: Config = serde_json::from_str(
            r#"{
                "safety_keywords": ["刹车", "制动", "起火", "冒烟", "安全气囊", "brake", "fire"],
                "vip_tiers": ["铂金", "黑金"],
                "vip_tags": ["vip", "大客户"],
                "sla_minutes": {
                    "safety": {"first_contact": 15, "resolution": 720},
                    "complaint": {"first_contact": 60, "resolution": 2880},
                    "default": {"first_contact": 120, "resolution": 4320}
                }
            }"#,
        )
        .unwrap();
        config.validate().unwrap();
        let mut smoke = ticket("仪表台冒烟", "客户在高速上，车内有焦味");
        smoke.customer_tags = vec!["大客户".to_owned()];
        let routed = route(&smoke, &config);
        assert_eq!(
            (routed.priority, routed.team.as_str()),
            (Priority::Urgent, "safety")
        );
        assert_eq!(minutes(routed.first_contact_due), 15);
        assert_eq!(minutes(routed.resolution_due), 720);
        assert_eq!(
            routed.reason,
            "安全关键词「冒烟」：紧急，转安全组，已通知区域服务经理和服务经理；VIP 客户（标签 大客户）；\
             首次联系 15 分钟内，解决 720 分钟内（时限 safety）"
        );
    }

    #[test]
    fn an_sla_entry_needs_both_deadlines_and_nothing_else() {
        let parse =
            |json: &str| serde_json::from_str::<Config>(json).map(|config| config.sla_minutes);
        assert_eq!(
            parse(r#"{"sla_minutes": {"保修": {"first_contact": 5, "resolution": 10}}}"#).unwrap(),
            BTreeMap::from([(
                "保修".to_owned(),
                Sla {
                    first_contact: 5,
                    resolution: 10
                }
            )])
        );
        assert!(parse(r#"{"sla_minutes": {"x": {"first_contact": 5}}}"#).is_err());
        assert!(
            parse(r#"{"sla_minutes": {"x": {"first_contact": 5, "resolution": 9, "y": 1}}}"#)
                .is_err()
        );
        assert!(
            parse(r#"{"sla_minutes": {"x": {"first_contact": -5, "resolution": 9}}}"#).is_err()
        );
    }

    #[test]
    fn invalid_settings_are_refused_naming_the_key() {
        let sla = |category: &str, first_contact, resolution| Config {
            sla_minutes: BTreeMap::from([(
                category.to_owned(),
                Sla {
                    first_contact,
                    resolution,
                },
            )]),
            ..Config::default()
        };
        let cases = [
            (
                Config {
                    safety_keywords: vec!["刹车".to_owned(), " ".to_owned()],
                    ..Config::default()
                },
                "config `safety_keywords`: a blank keyword would match every ticket",
            ),
            (sla("", 1, 1), "config `sla_minutes`: a blank category"),
            (
                sla("complaint", 0, 10),
                "config `sla_minutes`: \"complaint\": the first contact is due after 0 minutes",
            ),
            (
                sla("complaint", 60, 59),
                "config `sla_minutes`: \"complaint\": the resolution (59 minutes) is due before \
                 the first contact (60 minutes)",
            ),
            (
                sla("complaint", 60, 527_041),
                "config `sla_minutes`: \"complaint\": 527041 minutes is longer than a year \
                 (527040)",
            ),
        ];
        for (config, message) in cases {
            assert_eq!(config.validate(), Err(message.to_owned()));
        }
        assert_eq!(sla("complaint", 60, 60).validate(), Ok(()));
        assert_eq!(Config::default().validate(), Ok(()));
    }
}
