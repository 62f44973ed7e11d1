//! Loyalty (first-party plugin): an event becomes points and, when the lifetime spend reaches
//! a higher tier, the customer's new tier.
//!
//! - **Spend** and **vehicle delivered**: `points_per_yuan` per yuan of the amount, times the
//!   current tier's multiplier (`tier_multipliers_pct`, 100% for a tier it does not name),
//!   rounded down to whole points. A negative amount (a refund) takes the same points back,
//!   but never more than the balance: the balance never becomes negative.
//! - **Birthday**, **referral**, **survey answered**: fixed points.
//! - **Partner activity**: with an attribute `kwh` (EV charging, e.g. `35.5`),
//!   `partner_points_per_kwh` per kWh, rounded down; without it, `partner_activity_points`.
//! - Earned points expire `expiry_months` calendar months after the event (same time of day,
//!   UTC; the 31st becomes the month's last day when the month is shorter); 0 means never.
//! - **Tiers** go up, never down: the tier with the highest threshold in `tier_thresholds_fen`
//!   that the lifetime spend (the event's, plus this event's amount for a spend or a delivery)
//!   reaches replaces a lower tier, or no tier. A tier the thresholds do not name (a staff
//!   card, say) is left alone.
//!
//! The decision is the pure function [`award`]; the exported hook only reads the dealer's
//! [`Config`].

use std::collections::BTreeMap;

use dealer_sdk::dates::{DAY, Date};
use dealer_sdk::loyalty::{Award, Event, EventKind, Guest, PointsChange};
use dealer_sdk::money::{self, Fen};
use dealer_sdk::types::Timestamp;
use serde::{Deserialize, Serialize};

/// The attribute of a partner activity with the energy charged, in kWh.
pub const KWH_ATTRIBUTE: &str = "kwh";

/// The longest `expiry_months`: ten years.
const MAX_EXPIRY_MONTHS: u32 = 120;
/// The largest tier multiplier, in per cent.
const MAX_MULTIPLIER_PCT: u32 = 1_000;
/// The longest tier name, in bytes, as the host accepts it.
const MAX_TIER_BYTES: usize = 64;

/// The dealer's loyalty programme. Every key is optional; [`Config::default`] holds the
/// defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Points per yuan spent, before the tier multiplier.
    pub points_per_yuan: u32,
    /// The multiplier of each tier's spend points, in per cent (`"金卡": 150`).
    pub tier_multipliers_pct: BTreeMap<String, u32>,
    /// Points on the customer's birthday.
    pub birthday_points: u32,
    /// Points for referring a new customer.
    pub referral_points: u32,
    /// Points for answering a survey.
    pub survey_points: u32,
    /// Points per kWh of a partner activity with a `kwh` attribute.
    pub partner_points_per_kwh: u32,
    /// Points for a partner activity without a `kwh` attribute.
    pub partner_activity_points: u32,
    /// Calendar months until earned points expire; 0 for never.
    pub expiry_months: u32,
    /// The lifetime spend in fen from which each tier applies (`"金卡": 10000000`).
    pub tier_thresholds_fen: BTreeMap<String, Fen>,
}

impl Default for Config {
    fn default() -> Config {
        let tiers = ["银卡", "金卡", "铂金"].map(str::to_owned);
        Config {
            points_per_yuan: 1,
            tier_multipliers_pct: tiers.clone().into_iter().zip([100, 150, 200]).collect(),
            birthday_points: 100,
            referral_points: 500,
            survey_points: 50,
            partner_points_per_kwh: 1,
            partner_activity_points: 0,
            expiry_months: 24,
            tier_thresholds_fen: tiers.into_iter().zip([0, 10_000_000, 50_000_000]).collect(),
        }
    }
}

impl Config {
    /// Refuses what the schema cannot: the first problem, naming its key.
    pub fn validate(&self) -> Result<(), String> {
        if self.expiry_months > MAX_EXPIRY_MONTHS {
            return Err(format!(
                "config `expiry_months`: {} is more than {MAX_EXPIRY_MONTHS}",
                self.expiry_months
            ));
        }
        if let Some((tier, pct)) = self
            .tier_multipliers_pct
            .iter()
            .find(|(_, pct)| **pct > MAX_MULTIPLIER_PCT)
        {
            return Err(format!(
                "config `tier_multipliers_pct`: {pct}% for {tier:?} is more than \
                 {MAX_MULTIPLIER_PCT}%"
            ));
        }
        let mut thresholds: Vec<(&String, &Fen)> = self.tier_thresholds_fen.iter().collect();
        if let Some(tier) = thresholds
            .iter()
            .map(|(tier, _)| *tier)
            .find(|tier| tier.trim().is_empty() || tier.len() > MAX_TIER_BYTES)
        {
            return Err(format!(
                "config `tier_thresholds_fen`: the tier name {tier:?} is not 1 to \
                 {MAX_TIER_BYTES} bytes"
            ));
        }
        if let Some((tier, fen)) = thresholds.iter().find(|(_, fen)| **fen < 0) {
            return Err(format!(
                "config `tier_thresholds_fen`: the threshold of {tier:?} is negative ({fen} fen)"
            ));
        }
        thresholds.sort_by_key(|(_, fen)| **fen);
        if let Some(pair) = thresholds.windows(2).find(|pair| pair[0].1 == pair[1].1) {
            return Err(format!(
                "config `tier_thresholds_fen`: {:?} and {:?} have the same threshold ({} fen)",
                pair[0].0, pair[1].0, pair[0].1
            ));
        }
        Ok(())
    }
}

/// The points and tier change of `event` under `config`. No host calls.
///
/// Fails when a partner activity's `kwh` is not a number of kWh, or when the event's time is
/// outside the years 1 to 9999.
pub fn award(event: &Event, config: &Config) -> Result<Award, String> {
    let spent = match event.kind {
        EventKind::Spend | EventKind::VehicleDelivered => event.amount,
        _ => 0,
    };
    let (points, reason) = match event.kind {
        EventKind::Spend => spend_points(event, config, "消费"),
        EventKind::VehicleDelivered => spend_points(event, config, "购车"),
        EventKind::Birthday => (i64::from(config.birthday_points), "生日奖励".to_owned()),
        EventKind::Referral => (
            i64::from(config.referral_points),
            "推荐新客户奖励".to_owned(),
        ),
        EventKind::SurveyAnswered => (
            i64::from(config.survey_points),
            "完成满意度调查奖励".to_owned(),
        ),
        EventKind::PartnerActivity => partner_points(event, config)?,
    };
    let expires_at = if points > 0 && config.expiry_months > 0 {
        Some(
            add_months(event.occurred_at, config.expiry_months).ok_or_else(|| {
                format!(
                    "occurred-at {} is outside the years 1 to 9999",
                    event.occurred_at
                )
            })?,
        )
    } else {
        None
    };
    let changes = if points == 0 {
        Vec::new()
    } else {
        vec![PointsChange {
            points,
            reason,
            expires_at,
        }]
    };
    Ok(Award {
        changes,
        new_tier: new_tier(
            event.tier.as_deref(),
            event.lifetime_spend.saturating_add(spent),
            config,
        ),
    })
}

/// The points of a spend (`what`: 消费 or 购车); a negative amount takes points back, at most
/// the balance.
fn spend_points(event: &Event, config: &Config, what: &str) -> (i64, String) {
    let multiplier = event
        .tier
        .as_deref()
        .and_then(|tier| Some((tier, *config.tier_multipliers_pct.get(tier)?)));
    let pct = multiplier.map_or(100, |(_, pct)| pct);
    let product = i128::from(event.amount) * i128::from(config.points_per_yuan) * i128::from(pct);
    let points = saturate(product / (i128::from(money::FEN_PER_YUAN) * 100));
    let yuan = money::format_yuan(event.amount.saturating_abs());
    if points >= 0 {
        let tier = multiplier.map_or_else(String::new, |(tier, pct)| format!("，{tier} {pct}%"));
        let reason = format!("{what} {yuan} 元，每元 {} 分{tier}", config.points_per_yuan);
        return (points, reason);
    }
    let balance = event.points_balance.max(0);
    if -points > balance {
        (
            -balance,
            format!("退款 {yuan} 元，扣回积分（余额仅 {balance} 分，扣至 0）"),
        )
    } else {
        (points, format!("退款 {yuan} 元，扣回积分"))
    }
}

/// The points of a partner activity: per kWh when the event says how much was charged.
fn partner_points(event: &Event, config: &Config) -> Result<(i64, String), String> {
    let Some((_, kwh)) = event
        .attributes
        .iter()
        .find(|(name, _)| name == KWH_ATTRIBUTE)
    else {
        return Ok((
            i64::from(config.partner_activity_points),
            "合作方活动奖励".to_owned(),
        ));
    };
    let kwh = kwh.trim();
    let milli_kwh = parse_milli(kwh).ok_or_else(|| {
        format!(
            "partner activity: attribute `{KWH_ATTRIBUTE}` is {kwh:?}, not a number of kWh \
             with at most three decimals"
        )
    })?;
    let points =
        saturate(i128::from(milli_kwh) * i128::from(config.partner_points_per_kwh) / 1_000);
    Ok((
        points,
        format!(
            "合作方活动：充电 {kwh} kWh，每 kWh {} 分",
            config.partner_points_per_kwh
        ),
    ))
}

/// Digits with at most three decimals (`35`, `35.5`, `0.125`) in thousandths.
fn parse_milli(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 3 {
        return None;
    }
    if text.ends_with('.') {
        return None;
    }
    let fraction: i64 = format!("{fraction:0<3}").parse().ok()?;
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(1_000)?
        .checked_add(fraction)
}

/// The customer's new tier, when `lifetime_spend` reaches one above `current`.
fn new_tier(current: Option<&str>, lifetime_spend: Fen, config: &Config) -> Option<String> {
    let (reached, reached_fen) = config
        .tier_thresholds_fen
        .iter()
        .filter(|(_, fen)| **fen <= lifetime_spend)
        .max_by_key(|(_, fen)| **fen)?;
    let higher = match current {
        None => true,
        Some(current) => *reached_fen > *config.tier_thresholds_fen.get(current)?,
    };
    higher.then(|| reached.clone())
}

/// `at` plus `months` calendar months, at the same time of day (UTC); `None` outside the
/// years 1 to 9999.
fn add_months(at: Timestamp, months: u32) -> Option<Timestamp> {
    let epoch = Date::new(1970, 1, 1)?;
    let first = epoch.days_until(Date::new(1, 1, 1)?);
    let last = epoch.days_until(Date::new(9999, 12, 31)?);
    let days = at.div_euclid(DAY);
    if !(first..=last).contains(&days) {
        return None;
    }
    let date = epoch.add_days(days);
    let month_index = i64::from(date.year()) * 12 + i64::from(date.month()) - 1;
    if month_index + i64::from(months) >= 10_000 * 12 {
        return None;
    }
    let later = date.add_months(i32::try_from(months).ok()?);
    Some(epoch.days_until(later) * DAY + at.rem_euclid(DAY))
}

fn saturate(points: i128) -> i64 {
    i64::try_from(points).unwrap_or(if points < 0 { i64::MIN } else { i64::MAX })
}

/// Reads the calling dealer's configuration (one host call; missing keys take their defaults)
/// and validates it.
fn load_config() -> Result<Config, String> {
    let config: Config = dealer_sdk::config::document()?;
    config.validate()?;
    Ok(config)
}

struct Loyalty;

impl Guest for Loyalty {
    fn award_points(event: Event) -> Result<Award, String> {
        award(&event, &load_config()?)
    }
}

dealer_sdk::export_loyalty!(Loyalty);

#[cfg(test)]
mod tests {

    use super::*;

    /// 2025-11-23T08:30:00Z.
    const OCCURRED_AT: Timestamp = 1_763_886_600_000;
    /// 2027-11-23T08:30:00Z, 24 months later.
    const EXPIRES_AT: Timestamp = 1_826_958_600_000;

    fn event(kind: EventKind, amount: Fen, tier: Option<&str>) -> Event {
        Event {
            kind,
            dealer_id: 2,
            customer_id: 3,
            occurred_at: OCCURRED_AT,
            amount,
            reference: "order:42".to_owned(),
            tier: tier.map(str::to_owned),
            points_balance: 1_000,
            lifetime_spend: 500_000,
            attributes: Vec::new(),
        }
    }

    fn points(award: &Award) -> Vec<i64> {
        award.changes.iter().map(|change| change.points).collect()
    }

    fn earned(points: i64, reason: &str) -> PointsChange {
        PointsChange {
            points,
            reason: reason.to_owned(),
            expires_at: Some(EXPIRES_AT),
        }
    }

    #[test]
    fn spend_earns_points_per_yuan_times_the_tier_multiplier_rounded_down() {
        let config = Config::default();
        let award = award(&event(EventKind::Spend, 123_456, Some("金卡")), &config).unwrap();
        // 1 234.56 yuan × 1 × 150% = 1 851.84 → 1 851.
        assert_eq!(
            award.changes,
            vec![earned(1_851, "消费 1234.56 元，每元 1 分，金卡 150%")]
        );
        let plain = super::award(&event(EventKind::Spend, 123_456, None), &config).unwrap();
        assert_eq!(
            plain.changes,
            vec![earned(1_234, "消费 1234.56 元，每元 1 分")]
        );
        let unknown = super::award(&event(EventKind::Spend, 123_456, Some("员工卡")), &config);
        assert_eq!(points(&unknown.unwrap()), [1_234]);
    }

    #[test]
    fn less_than_a_point_earns_nothing() {
        let config = Config::default();
        for amount in [0, 99] {
            let award = award(&event(EventKind::Spend, amount, None), &config).unwrap();
            assert!(award.changes.is_empty(), "{amount} fen");
        }
        // 67 fen × 150% = 1.005 yuan: one point.
        let award = award(&event(EventKind::Spend, 67, Some("金卡")), &config).unwrap();
        assert_eq!(points(&award), [1]);
    }

    #[test]
    fn a_delivery_earns_like_a_spend() {
        let award = award(
            &event(EventKind::VehicleDelivered, 25_800_000, Some("铂金")),
            &Config::default(),
        )
        .unwrap();
        assert_eq!(
            award.changes,
            vec![earned(516_000, "购车 258000.00 元，每元 1 分，铂金 200%")]
        );
    }

    #[test]
    fn a_refund_takes_points_back_but_never_below_zero() {
        let config = Config::default();
        let mut refund = event(EventKind::Spend, -50_000, None);
        assert_eq!(
            award(&refund, &config).unwrap().changes,
            vec![PointsChange {
                points: -500,
                reason: "退款 500.00 元，扣回积分".to_owned(),
                expires_at: None,
            }]
        );
        refund.points_balance = 200;
        assert_eq!(
            award(&refund, &config).unwrap().changes,
            vec![PointsChange {
                points: -200,
                reason: "退款 500.00 元，扣回积分（余额仅 200 分，扣至 0）".to_owned(),
                expires_at: None,
            }]
        );
        for balance in [0, -5] {
            refund.points_balance = balance;
            assert!(award(&refund, &config).unwrap().changes.is_empty());
        }
    }

    #[test]
    fn fixed_bonuses_and_their_reasons() {
        let config = Config::default();
        for (kind, expected) in [
            (EventKind::Birthday, earned(100, "生日奖励")),
            (EventKind::Referral, earned(500, "推荐新客户奖励")),
            (EventKind::SurveyAnswered, earned(50, "完成满意度调查奖励")),
        ] {
            let award = award(&event(kind, 0, None), &config).unwrap();
            assert_eq!(award.changes, vec![expected]);
        }
        let none = Config {
            birthday_points: 0,
            ..Config::default()
        };
        assert!(
            award(&event(EventKind::Birthday, 0, None), &none)
                .unwrap()
                .changes
                .is_empty()
        );
    }

    #[test]
    fn ev_charging_earns_points_per_kwh_rounded_down() {
        let config = Config {
            partner_points_per_kwh: 2,
            ..Config::default()
        };
        let charged = |kwh: &str| {
            let mut charging = event(EventKind::PartnerActivity, 0, None);
            charging.attributes = vec![
                ("partner".to_owned(), "星星充电".to_owned()),
                (KWH_ATTRIBUTE.to_owned(), kwh.to_owned()),
            ];
            award(&charging, &config)
        };
        assert_eq!(
            charged("35.5").unwrap().changes,
            vec![earned(71, "合作方活动：充电 35.5 kWh，每 kWh 2 分")]
        );
        assert_eq!(points(&charged(" 0.499 ").unwrap()), Vec::<i64>::new());
        assert_eq!(points(&charged("0.5").unwrap()), [1]);
        assert_eq!(points(&charged("12").unwrap()), [24]);
        for bad in ["", "abc", "-3", "1.2345", "3.", ".5", "1e3", "３５"] {
            assert_eq!(
                charged(bad),
                Err(format!(
                    "partner activity: attribute `kwh` is {:?}, not a number of kWh with at \
                     most three decimals",
                    bad.trim()
                )),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_partner_activity_without_kwh_earns_the_flat_points() {
        let activity = event(EventKind::PartnerActivity, 0, None);
        assert!(
            award(&activity, &Config::default())
                .unwrap()
                .changes
                .is_empty()
        );
        let config = Config {
            partner_activity_points: 30,
            ..Config::default()
        };
        assert_eq!(
            award(&activity, &config).unwrap().changes,
            vec![earned(30, "合作方活动奖励")]
        );
    }

    #[test]
    fn points_expire_after_calendar_months_at_the_same_time_of_day() {
        // 2024-01-31T10:00Z plus one month is 2024-02-29T10:00Z.
        assert_eq!(add_months(1_706_695_200_000, 1), Some(1_709_200_800_000));
        // Plus 24 months: 2026-01-31T10:00Z.
        assert_eq!(add_months(1_706_695_200_000, 24), Some(1_769_853_600_000));
        // 1969-12-31T23:00Z plus one month is 1970-01-31T23:00Z.
        assert_eq!(add_months(-3_600_000, 1), Some(2_674_800_000));
        assert_eq!(add_months(i64::MAX, 1), None);
        assert_eq!(add_months(i64::MIN, 1), None);

        let mut late = event(EventKind::Birthday, 0, None);
        late.occurred_at = i64::MAX;
        assert_eq!(
            award(&late, &Config::default()),
            Err(format!(
                "occurred-at {} is outside the years 1 to 9999",
                i64::MAX
            ))
        );
        let never = Config {
            expiry_months: 0,
            ..Config::default()
        };
        let award = award(&late, &never).unwrap();
        assert_eq!(award.changes[0].expires_at, None);
    }

    #[test]
    fn tiers_go_up_with_the_lifetime_spend_including_this_spend() {
        let config = Config::default();
        let tier_after = |tier: Option<&str>, lifetime: Fen, kind: EventKind, amount: Fen| {
            let mut spend = event(kind, amount, tier);
            spend.lifetime_spend = lifetime;
            award(&spend, &config).unwrap().new_tier
        };
        let gold = Some("金卡".to_owned());
        // Reaching 100 000 yuan exactly, with this spend.
        assert_eq!(
            tier_after(Some("银卡"), 9_900_000, EventKind::Spend, 100_000),
            gold
        );
        assert_eq!(
            tier_after(Some("银卡"), 9_900_000, EventKind::Spend, 99_999),
            None
        );
        assert_eq!(
            tier_after(Some("银卡"), 0, EventKind::VehicleDelivered, 60_000_000),
            Some("铂金".to_owned())
        );
        // No tier yet: the lowest, reached with nothing spent.
        assert_eq!(
            tier_after(None, 0, EventKind::SurveyAnswered, 0),
            Some("银卡".to_owned())
        );
        // A survey's amount does not count, but the lifetime spend so far does.
        assert_eq!(
            tier_after(Some("银卡"), 10_000_000, EventKind::SurveyAnswered, 0),
            gold
        );
        assert_eq!(
            tier_after(
                Some("银卡"),
                9_999_999,
                EventKind::SurveyAnswered,
                5_000_000
            ),
            None
        );
    }

    #[test]
    fn tiers_never_go_down_and_unknown_tiers_are_left_alone() {
        let config = Config::default();
        let mut refund = event(EventKind::Spend, -60_000_000, Some("铂金"));
        refund.lifetime_spend = 60_000_000;
        assert_eq!(award(&refund, &config).unwrap().new_tier, None);
        let mut same = event(EventKind::Spend, 100, Some("金卡"));
        same.lifetime_spend = 20_000_000;
        assert_eq!(award(&same, &config).unwrap().new_tier, None);
        let mut staff = event(EventKind::Spend, 100, Some("员工卡"));
        staff.lifetime_spend = 90_000_000;
        assert_eq!(award(&staff, &config).unwrap().new_tier, None);
    }

    #[test]
    fn the_readme_example_holds() {
        let config: Config = serde_json::from_str(
            r#"{
                "points_per_yuan": 2,
                "tier_multipliers_pct": {"银卡": 100, "金卡": 150, "铂金": 200},
                "birthday_points": 188,
                "referral_points": 800,
                "survey_points": 50,
                "partner_points_per_kwh": 1,
                "partner_activity_points": 20,
                "expiry_months": 24,
                "tier_thresholds_fen": {"银卡": 0, "金卡": 10000000, "铂金": 50000000}
            }"#,
        )
        .unwrap();
        config.validate().unwrap();
        let mut spend = event(EventKind::Spend, 388_000, Some("银卡"));
        spend.lifetime_spend = 9_800_000;
        assert_eq!(
            award(&spend, &config),
            Ok(Award {
                changes: vec![earned(7_760, "消费 3880.00 元，每元 2 分，银卡 100%")],
                new_tier: Some("金卡".to_owned()),
            })
        );
    }

    #[test]
    fn invalid_settings_are_refused_naming_the_key() {
        let cases = [
            (
                Config {
                    expiry_months: 121,
                    ..Config::default()
                },
                "config `expiry_months`: 121 is more than 120",
            ),
            (
                Config {
                    tier_multipliers_pct: BTreeMap::from([("金卡".to_owned(), 1_001)]),
                    ..Config::default()
                },
                "config `tier_multipliers_pct`: 1001% for \"金卡\" is more than 1000%",
            ),
            (
                Config {
                    tier_thresholds_fen: BTreeMap::from([(" ".to_owned(), 0)]),
                    ..Config::default()
                },
                "config `tier_thresholds_fen`: the tier name \" \" is not 1 to 64 bytes",
            ),
            (
                Config {
                    tier_thresholds_fen: BTreeMap::from([("金卡".to_owned(), -1)]),
                    ..Config::default()
                },
                "config `tier_thresholds_fen`: the threshold of \"金卡\" is negative (-1 fen)",
            ),
            (
                Config {
                    tier_thresholds_fen: BTreeMap::from([
                        ("金卡".to_owned(), 100),
                        ("银卡".to_owned(), 100),
                    ]),
                    ..Config::default()
                },
                "config `tier_thresholds_fen`: \"金卡\" and \"银卡\" have the same threshold \
                 (100 fen)",
            ),
        ];
        for (config, message) in cases {
            assert_eq!(config.validate(), Err(message.to_owned()));
        }
        assert_eq!(Config::default().validate(), Ok(()));
    }
}
