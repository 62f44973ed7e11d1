//! Commission (first-party plugin): a delivered sale becomes commission lines, one line per
//! rule and staff member.
//!
//! - Each consultant (role `sales`) gets the basis points of the final price of the unit tier
//!   their units delivered this month reach (`tiers`), the model's bonus (`model_bonus_fen`)
//!   and `gross_share_bp` of the gross profit.
//! - Each member in one of `support_roles` (by default `finance`, `insurance`) gets
//!   `support_share_bp` of the gross profit.
//! - Other roles get nothing from this plugin. Several consultants on one sale share the
//!   consultant parts equally.
//!
//! Amounts are integer fen: a share of a price or of the gross profit is rounded to the
//! nearest fen, halves up; an amount split between consultants gives its leftover fen to the
//! first consultants in the sale's order. A negative gross profit pays no gross share, and
//! lines of 0 fen are left out.
//!
//! The decision is the pure function [`compute`]; the exported hook only reads the dealer's
//! [`Config`].

use std::collections::BTreeMap;

use dealer_sdk::commission::{CommissionLine, Guest, Sale};
use dealer_sdk::money::{self, Fen, Rounding};
use serde::{Deserialize, Serialize};

/// The role of the sales consultant, who gets the tier, bonus and gross parts.
pub const CONSULTANT_ROLE: &str = "sales";

/// Basis points in the whole (100%).
const ALL_BP: u32 = 10_000;

/// The dealer's commission rules. Every key is optional; [`Config::default`] holds the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Unit tiers: from this many units delivered this month (the sale included), this many
    /// basis points of the final price. The highest tier reached applies; below the lowest,
    /// no tier part. In JSON an object such as `{"1": 100, "10": 150, "20": 200}`.
    pub tiers: BTreeMap<u32, u32>,
    /// A bonus in fen per model, matched exactly against the sale's model (`"汉 EV": 50000`).
    pub model_bonus_fen: BTreeMap<String, Fen>,
    /// The consultants' basis points of the gross profit.
    pub gross_share_bp: u32,
    /// Each support member's basis points of the gross profit.
    pub support_share_bp: u32,
    /// The roles that get the support share.
    pub support_roles: Vec<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            tiers: BTreeMap::from([(1, 100), (10, 150), (20, 200)]),
            model_bonus_fen: BTreeMap::new(),
            gross_share_bp: 500,
            support_share_bp: 200,
            support_roles: vec!["finance".to_owned(), "insurance".to_owned()],
        }
    }
}

impl Config {
    /// Refuses what the schema cannot: the first problem, naming its key.
    pub fn validate(&self) -> Result<(), String> {
        if let Some((units, bp)) = self.tiers.iter().find(|(_, bp)| **bp > ALL_BP) {
            return Err(format!(
                "config `tiers`: {bp} bp from {units} units is more than {ALL_BP} (100%)"
            ));
        }
        if let Some((model, fen)) = self.model_bonus_fen.iter().find(|(_, fen)| **fen < 0) {
            return Err(format!(
                "config `model_bonus_fen`: the bonus for {model:?} is negative ({fen} fen)"
            ));
        }
        for (key, bp) in [
            ("gross_share_bp", self.gross_share_bp),
            ("support_share_bp", self.support_share_bp),
        ] {
            if bp > ALL_BP {
                return Err(format!("config `{key}`: {bp} is more than {ALL_BP} (100%)"));
            }
        }
        if let Some(role) = self
            .support_roles
            .iter()
            .find(|role| role.trim().is_empty() || role.as_str() == CONSULTANT_ROLE)
        {
            return Err(format!(
                "config `support_roles`: {role:?} cannot be a support role \
                 (blank, or the consultant's role `{CONSULTANT_ROLE}`)"
            ));
        }
        Ok(())
    }

    /// The tier `units` reach: its minimum units and basis points.
    fn tier(&self, units: u32) -> Option<(u32, u32)> {
        self.tiers
            .range(..=units)
            .next_back()
            .map(|(min, bp)| (*min, *bp))
    }
}

/// The commission lines of `sale` under `config`, in the order of the sale's staff and, per
/// member, tier, model bonus, gross share. No host calls.
pub fn compute(sale: &Sale, config: &Config) -> Vec<CommissionLine> {
    let consultants = sale
        .staff
        .iter()
        .filter(|credited| credited.member.role == CONSULTANT_ROLE)
        .count();
    let count = i64::try_from(consultants).unwrap_or(i64::MAX);
    let shared = if consultants > 1 {
        format!("，{consultants} 名销售顾问均分")
    } else {
        String::new()
    };
    let final_price = sale.final_price.max(0);
    let gross = sale.gross_profit.max(0);
    let bonus = config
        .model_bonus_fen
        .get(&sale.model)
        .copied()
        .unwrap_or(0);
    let gross_part = money::basis_points(gross, i64::from(config.gross_share_bp));
    let support_part = money::basis_points(gross, i64::from(config.support_share_bp));

    let mut lines = Vec::new();
    let mut consultant_index = 0;
    for credited in &sale.staff {
        let staff_id = credited.member.id;
        let mut line = |amount: Fen, reason: String| {
            if amount > 0 {
                lines.push(CommissionLine {
                    staff_id,
                    amount,
                    reason,
                });
            }
        };
        let role = credited.member.role.as_str();
        if role == CONSULTANT_ROLE {
            let units = credited.units_this_month;
            if let Some((min_units, bp)) = config.tier(units) {
                line(
                    money::ratio(
                        final_price,
                        i64::from(bp),
                        i64::from(ALL_BP).saturating_mul(count),
                        Rounding::HalfUp,
                    ),
                    format!(
                        "销量阶梯提成：本月第 {units} 台，适用 {min_units} 台起 {} 档，成交价 {} 元{shared}",
                        percent_text(bp),
                        money::format_yuan(final_price),
                    ),
                );
            }
            line(
                split(bonus, count, consultant_index),
                format!(
                    "车型奖励：{} {} 元{shared}",
                    sale.model,
                    money::format_yuan(bonus)
                ),
            );
            line(
                split(gross_part, count, consultant_index),
                format!(
                    "毛利分成：毛利 {} 元 × {}{shared}",
                    money::format_yuan(gross),
                    percent_text(config.gross_share_bp),
                ),
            );
            consultant_index += 1;
        } else if config.support_roles.iter().any(|support| support == role) {
            line(
                support_part,
                format!(
                    "支持岗位毛利分成（{role}）：毛利 {} 元 × {}",
                    money::format_yuan(gross),
                    percent_text(config.support_share_bp),
                ),
            );
        }
    }
    lines
}

/// The `index`-th of `count` equal shares of a non-negative `amount`; the first
/// `amount % count` shares get one fen more.
fn split(amount: Fen, count: i64, index: i64) -> Fen {
    amount / count + Fen::from(index < amount % count)
}

/// Basis points as a percentage with two decimals: 150 → `1.50%`.
fn percent_text(bp: u32) -> String {
    format!("{}.{:02}%", bp / 100, bp % 100)
}

/// Reads the calling dealer's configuration (one host call; missing keys take their defaults)
/// and validates it.
fn load_config() -> Result<Config, String> {
    let config: Config = dealer_sdk::config::document()?;
    config.validate()?;
    Ok(config)
}

struct Commission;

impl Guest for Commission {
    fn compute(sale: Sale) -> Result<Vec<CommissionLine>, String> {
        Ok(compute(&sale, &load_config()?))
    }
}

dealer_sdk::export_commission!(Commission);

#[cfg(test)]
mod tests {
    use dealer_sdk::commission::SaleStaff;
    use dealer_sdk::types::StaffMember;

    use super::*;

    fn sale(final_price: Fen, gross_profit: Fen, staff: &[(i64, &str, u32)]) -> Sale {
        Sale {
            order_id: 1,
            dealer_id: 2,
            customer_id: 3,
            model: "汉 EV".to_owned(),
            delivered_at: 1_763_900_000_000,
            list_price: final_price + 500_000,
            discount: 500_000,
            final_price,
            gross_profit,
            lines: Vec::new(),
            staff: staff
                .iter()
                .map(|&(id, role, units)| SaleStaff {
                    member: StaffMember {
                        id,
                        role: role.to_owned(),
                    },
                    units_this_month: units,
                })
                .collect(),
        }
    }

    fn amounts(lines: &[CommissionLine]) -> Vec<(i64, Fen)> {
        lines
            .iter()
            .map(|line| (line.staff_id, line.amount))
            .collect()
    }

    fn tier_only() -> Config {
        Config {
            gross_share_bp: 0,
            support_share_bp: 0,
            ..Config::default()
        }
    }

    #[test]
    fn the_tier_reached_this_month_sets_the_basis_points() {
        let config = tier_only();
        for (units, expected) in [
            (1, 20_000),
            (9, 20_000),
            (10, 30_000),
            (19, 30_000),
            (20, 40_000),
            (300, 40_000),
        ] {
            let lines = compute(&sale(2_000_000, 0, &[(7, "sales", units)]), &config);
            assert_eq!(amounts(&lines), vec![(7, expected)], "{units} units");
        }
    }

    #[test]
    fn below_the_lowest_tier_there_is_no_tier_line() {
        let config = Config {
            tiers: BTreeMap::from([(5, 100)]),
            ..tier_only()
        };
        assert!(compute(&sale(2_000_000, 0, &[(7, "sales", 4)]), &config).is_empty());
        assert!(compute(&sale(2_000_000, 0, &[(7, "sales", 0)]), &tier_only()).is_empty());
    }

    #[test]
    fn a_tier_line_names_the_rule_in_chinese() {
        let lines = compute(&sale(25_800_050, 0, &[(7, "sales", 12)]), &tier_only());
        assert_eq!(
            lines,
            vec![CommissionLine {
                staff_id: 7,
                // 25 800 050 × 1.5% = 387 000.75 fen
                amount: 387_001,
                reason: "销量阶梯提成：本月第 12 台，适用 10 台起 1.50% 档，成交价 258000.50 元"
                    .to_owned(),
            }]
        );
    }

    #[test]
    fn shares_round_to_the_nearest_fen_halves_up() {
        let config = Config {
            tiers: BTreeMap::from([(1, 1)]),
            gross_share_bp: 5_000,
            support_share_bp: 0,
            ..Config::default()
        };
        // 5 000 fen × 1 bp = 0.5 fen → 1; 3 fen × 50% = 1.5 fen → 2.
        assert_eq!(
            amounts(&compute(&sale(5_000, 3, &[(7, "sales", 1)]), &config)),
            vec![(7, 1), (7, 2)]
        );
        // 4 999 fen × 1 bp = 0.4999 fen → no line; 1 fen × 50% = 0.5 → 1.
        assert_eq!(
            amounts(&compute(&sale(4_999, 1, &[(7, "sales", 1)]), &config)),
            vec![(7, 1)]
        );
    }

    #[test]
    fn a_model_bonus_matches_the_model_exactly() {
        let config = Config {
            model_bonus_fen: BTreeMap::from([("汉 EV".to_owned(), 50_000)]),
            ..tier_only()
        };
        let lines = compute(&sale(0, 0, &[(7, "sales", 3)]), &config);
        assert_eq!(
            lines,
            vec![CommissionLine {
                staff_id: 7,
                amount: 50_000,
                reason: "车型奖励：汉 EV 500.00 元".to_owned(),
            }]
        );
        let mut other = sale(0, 0, &[(7, "sales", 3)]);
        other.model = "汉EV".to_owned();
        assert!(compute(&other, &config).is_empty());
    }

    #[test]
    fn support_roles_get_their_share_of_the_gross_profit() {
        let lines = compute(
            &sale(
                20_000_000,
                1_234_567,
                &[
                    (7, "sales", 3),
                    (8, "finance", 0),
                    (9, "insurance", 0),
                    (10, "sales-manager", 0),
                ],
            ),
            &Config::default(),
        );
        assert_eq!(
            amounts(&lines),
            // 1% of the price; 5% and 2% of 1 234 567 fen = 61 728.35 and 24 691.34.
            vec![(7, 200_000), (7, 61_728), (8, 24_691), (9, 24_691)]
        );
        assert_eq!(lines[1].reason, "毛利分成：毛利 12345.67 元 × 5.00%");
        assert_eq!(
            lines[2].reason,
            "支持岗位毛利分成（finance）：毛利 12345.67 元 × 2.00%"
        );
    }

    #[test]
    fn a_loss_pays_no_gross_share() {
        let staff = [(7, "sales", 3), (8, "finance", 0)];
        for gross in [0, -50_000] {
            let lines = compute(&sale(2_000_000, gross, &staff), &Config::default());
            assert_eq!(amounts(&lines), vec![(7, 20_000)], "gross {gross}");
        }
    }

    #[test]
    fn a_negative_or_zero_final_price_pays_no_tier_part() {
        for price in [0, -100] {
            assert!(compute(&sale(price, 0, &[(7, "sales", 3)]), &tier_only()).is_empty());
        }
    }

    #[test]
    fn consultants_share_each_part_with_leftover_fen_going_first() {
        let config = Config {
            model_bonus_fen: BTreeMap::from([("汉 EV".to_owned(), 1_001)]),
            ..Config::default()
        };
        let lines = compute(
            &sale(
                1_000_001,
                21,
                &[(7, "sales", 10), (8, "sales", 1), (9, "insurance", 0)],
            ),
            &config,
        );
        assert_eq!(
            amounts(&lines),
            vec![
                // 1 000 001 × 1.5% / 2 = 7 500.0075; bonus 1 001 / 2; 5% of 21 = 1.05 → 1.
                (7, 7_500),
                (7, 501),
                (7, 1),
                // 1 000 001 × 1% / 2 = 5 000.005.
                (8, 5_000),
                (8, 500),
                // 2% of 21 = 0.42 → no line for the insurance member.
            ]
        );
        assert!(lines[0].reason.ends_with("，2 名销售顾问均分"));
    }

    #[test]
    fn without_consultants_only_support_is_paid() {
        let lines = compute(
            &sale(2_000_000, 100_000, &[(8, "finance", 0)]),
            &Config::default(),
        );
        assert_eq!(amounts(&lines), vec![(8, 2_000)]);
        assert!(compute(&sale(2_000_000, 100_000, &[]), &Config::default()).is_empty());
    }

    #[test]
    fn the_readme_example_holds() {
        let config: Config = serde_json::from_str(
            r#"{
                "tiers": {"1": 100, "10": 150, "20": 200},
                "model_bonus_fen": {"汉 EV": 50000, "唐 DM-i": 80000},
                "gross_share_bp": 500,
                "support_share_bp": 200,
                "support_roles": ["finance", "insurance"]
            }"#,
        )
        .unwrap();
        config.validate().unwrap();
        let lines = compute(
            &sale(
                25_800_000,
                1_800_000,
                &[(7, "sales", 12), (8, "finance", 0)],
            ),
            &config,
        );
        let rendered: Vec<(i64, Fen, &str)> = lines
            .iter()
            .map(|line| (line.staff_id, line.amount, line.reason.as_str()))
            .collect();
        assert_eq!(
            rendered,
            vec![
                (
                    7,
                    387_000,
                    "销量阶梯提成：本月第 12 台，适用 10 台起 1.50% 档，成交价 258000.00 元"
                ),
                (7, 50_000, "车型奖励：汉 EV 500.00 元"),
                (7, 90_000, "毛利分成：毛利 18000.00 元 × 5.00%"),
                (
                    8,
                    36_000,
                    "支持岗位毛利分成（finance）：毛利 18000.00 元 × 2.00%"
                ),
            ]
        );
    }

    #[test]
    fn invalid_settings_are_refused_naming_the_key() {
        let cases = [
            (
                Config {
                    tiers: BTreeMap::from([(10, 10_001)]),
                    ..Config::default()
                },
                "config `tiers`: 10001 bp from 10 units is more than 10000 (100%)",
            ),
            (
                Config {
                    model_bonus_fen: BTreeMap::from([("秦".to_owned(), -1)]),
                    ..Config::default()
                },
                "config `model_bonus_fen`: the bonus for \"秦\" is negative (-1 fen)",
            ),
            (
                Config {
                    support_share_bp: 10_001,
                    ..Config::default()
                },
                "config `support_share_bp`: 10001 is more than 10000 (100%)",
            ),
            (
                Config {
                    support_roles: vec!["sales".to_owned()],
                    ..Config::default()
                },
                "config `support_roles`: \"sales\" cannot be a support role \
                 (blank, or the consultant's role `sales`)",
            ),
        ];
        for (config, message) in cases {
            assert_eq!(config.validate(), Err(message.to_owned()));
        }
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn tiers_are_read_from_an_object_keyed_by_units() {
        let config: Config = serde_json::from_str(r#"{"tiers": {"5": 120}}"#).unwrap();
        assert_eq!(config.tiers, BTreeMap::from([(5, 120)]));
        assert_eq!(config.gross_share_bp, 500);
        assert!(serde_json::from_str::<Config>(r#"{"tiers": {"five": 120}}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"percent": 1}"#).is_err());
    }
}
