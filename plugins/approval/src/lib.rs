//! Approval (first-party plugin): a request becomes the ordered approval steps, an automatic
//! approval or a refusal.
//!
//! - **Discount**: the discount's share of the base amount, compared exactly (no rounding)
//!   with three thresholds in basis points. Above `sales_manager_above_bp` the sales manager
//!   approves; above `general_manager_above_bp` the general manager too; above `hq_above_bp`
//!   HQ as well. At or below the first threshold it passes automatically. A discount larger
//!   than the base amount, or measured against a base of 0, is refused.
//! - **Finance plan**: always the finance desk; above `finance_gm_above_fen` then the general
//!   manager.
//! - **Extra repair work**: always the car owner, whose consent extra work needs whatever its
//!   amount; above `extra_work_owner_above_fen` then the service advisor, who checks the
//!   larger job once the owner agreed.
//! - **Refund**: the general manager.
//!
//! A negative amount is refused for every kind. Every step and every outcome carries its
//! reason, in Chinese, naming the rule.
//!
//! The decision is the pure function [`decide`]; the exported hook only reads the dealer's
//! [`Config`].

use dealer_sdk::approval::{Decision, Guest, Request, RequestKind, Step};
use dealer_sdk::money::{self, Fen, Rounding};
use serde::{Deserialize, Serialize};

/// Basis points in the whole (100%).
const ALL_BP: u32 = 10_000;

/// The dealer's approval thresholds. Every key is optional; [`Config::default`] holds the
/// defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A discount above this share of the base amount (basis points) needs the sales manager.
    pub sales_manager_above_bp: u32,
    /// Above this, the general manager too.
    pub general_manager_above_bp: u32,
    /// Above this, HQ too.
    pub hq_above_bp: u32,
    /// A finance plan above this amount needs the general manager after the finance desk.
    pub finance_gm_above_fen: Fen,
    /// Extra repair work above this amount needs the service advisor after the owner.
    pub extra_work_owner_above_fen: Fen,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sales_manager_above_bp: 300,
            general_manager_above_bp: 800,
            hq_above_bp: 1_500,
            finance_gm_above_fen: 30_000_000,
            extra_work_owner_above_fen: 200_000,
        }
    }
}

impl Config {
    /// Refuses what the schema cannot: the first problem, naming its key.
    pub fn validate(&self) -> Result<(), String> {
        let thresholds = [
            ("sales_manager_above_bp", self.sales_manager_above_bp),
            ("general_manager_above_bp", self.general_manager_above_bp),
            ("hq_above_bp", self.hq_above_bp),
        ];
        if let Some((key, bp)) = thresholds.iter().find(|(_, bp)| *bp > ALL_BP) {
            return Err(format!("config `{key}`: {bp} is more than {ALL_BP} (100%)"));
        }
        for ((lower_key, lower), (key, bp)) in thresholds.iter().zip(&thresholds[1..]) {
            if bp < lower {
                return Err(format!(
                    "config `{key}`: {bp} is below `{lower_key}` ({lower}); the thresholds \
                     must not decrease from the sales manager to HQ"
                ));
            }
        }
        for (key, fen) in [
            ("finance_gm_above_fen", self.finance_gm_above_fen),
            (
                "extra_work_owner_above_fen",
                self.extra_work_owner_above_fen,
            ),
        ] {
            if fen < 0 {
                return Err(format!("config `{key}`: {fen} fen is negative"));
            }
        }
        Ok(())
    }
}

/// The decision on `request` under `config`. No host calls.
pub fn decide(request: &Request, config: &Config) -> Decision {
    let amount = request.amount;
    if amount < 0 {
        return Decision::Reject(format!(
            "申请金额为负数（{} 元），无法审批",
            money::format_yuan(amount)
        ));
    }
    let yuan = money::format_yuan(amount);
    match request.kind {
        RequestKind::Discount => discount(amount, request.base_amount, config),
        RequestKind::FinancePlan => {
            let mut steps = vec![step(
                "finance-desk",
                format!("金融方案（{yuan} 元）须经金融专员审核"),
            )];
            if amount > config.finance_gm_above_fen {
                steps.push(step(
                    "general-manager",
                    format!(
                        "金融方案金额 {yuan} 元超过 {} 元，需总经理审批",
                        money::format_yuan(config.finance_gm_above_fen)
                    ),
                ));
            }
            Decision::Steps(steps)
        }
        RequestKind::ExtraRepairWork => {
            let mut steps = vec![step("owner", format!("增项维修（{yuan} 元）须经车主同意"))];
            if amount > config.extra_work_owner_above_fen {
                steps.push(step(
                    "service-advisor",
                    format!(
                        "增项金额 {yuan} 元超过 {} 元，车主同意后需服务顾问复核",
                        money::format_yuan(config.extra_work_owner_above_fen)
                    ),
                ));
            }
            Decision::Steps(steps)
        }
        RequestKind::Refund => Decision::Steps(vec![step(
            "general-manager",
            format!("退款（{yuan} 元）须经总经理审批"),
        )]),
    }
}

/// A discount of `amount` (not negative) against `base`.
fn discount(amount: Fen, base: Fen, config: &Config) -> Decision {
    if amount == 0 {
        return Decision::AutoApprove("无折扣，自动通过".to_owned());
    }
    let yuan = money::format_yuan(amount);
    let base_yuan = money::format_yuan(base);
    if base <= 0 {
        return Decision::Reject(format!(
            "基准金额为 {base_yuan} 元，无法计算 {yuan} 元折扣的折扣率"
        ));
    }
    if amount > base {
        return Decision::Reject(format!("折扣 {yuan} 元超过基准金额 {base_yuan} 元"));
    }
    let rate = format!(
        "折扣率 {}（{yuan} 元 / {base_yuan} 元）",
        percent_text(money::ratio(
            amount,
            i64::from(ALL_BP),
            base,
            Rounding::HalfUp
        ))
    );
    let above = |threshold_bp: u32| {
        i128::from(amount) * i128::from(ALL_BP) > i128::from(threshold_bp) * i128::from(base)
    };
    let steps: Vec<Step> = [
        ("sales-manager", "销售经理", config.sales_manager_above_bp),
        ("general-manager", "总经理", config.general_manager_above_bp),
        ("hq", "总部", config.hq_above_bp),
    ]
    .into_iter()
    .filter(|(_, _, threshold_bp)| above(*threshold_bp))
    .map(|(role, title, threshold_bp)| {
        step(
            role,
            format!(
                "{rate}超过 {}，需{title}审批",
                percent_text(i64::from(threshold_bp))
            ),
        )
    })
    .collect();
    if steps.is_empty() {
        Decision::AutoApprove(format!(
            "{rate}未超过 {}，自动通过",
            percent_text(i64::from(config.sales_manager_above_bp))
        ))
    } else {
        Decision::Steps(steps)
    }
}

fn step(role: &str, reason: String) -> Step {
    Step {
        role: role.to_owned(),
        reason,
    }
}

/// Basis points as a percentage with two decimals: 950 → `9.50%`.
fn percent_text(bp: i64) -> String {
    format!("{}.{:02}%", bp / 100, bp % 100)
}

/// Reads the calling dealer's configuration (one host call; missing keys take their defaults)
/// and validates it.
fn load_config() -> Result<Config, String> {
    let config: Config = dealer_sdk::config::document()?;
    config.validate()?;
    Ok(config)
}

struct Approval;

impl Guest for Approval {
    fn decide(request: Request) -> Result<Decision, String> {
        Ok(decide(&request, &load_config()?))
    }
}

dealer_sdk::export_approval!(Approval);

#[cfg(test)]
mod tests {
    use dealer_sdk::types::StaffMember;

    use super::*;

    fn request(kind: RequestKind, amount: Fen, base_amount: Fen) -> Request {
        Request {
            kind,
            dealer_id: 2,
            requested_by: StaffMember {
                id: 7,
                role: "sales".to_owned(),
            },
            customer_id: Some(3),
            order_id: Some(4),
            repair_order_id: None,
            amount,
            base_amount,
            description: "客户要求优惠".to_owned(),
            attributes: Vec::new(),
        }
    }

    fn roles(decision: &Decision) -> Vec<&str> {
        match decision {
            Decision::Steps(steps) => steps.iter().map(|step| step.role.as_str()).collect(),
            other => panic!("expected steps, got {other:?}"),
        }
    }

    fn discount_of(amount: Fen, base: Fen) -> Decision {
        decide(
            &request(RequestKind::Discount, amount, base),
            &Config::default(),
        )
    }

    #[test]
    fn discounts_escalate_at_each_threshold_exclusive() {
        let base = 20_000_000;
        // 3% of the base is 600 000 fen; 8% 1 600 000; 15% 3 000 000.
        assert!(matches!(
            discount_of(600_000, base),
            Decision::AutoApprove(_)
        ));
        assert_eq!(roles(&discount_of(600_001, base)), ["sales-manager"]);
        assert_eq!(roles(&discount_of(1_600_000, base)), ["sales-manager"]);
        assert_eq!(
            roles(&discount_of(1_600_001, base)),
            ["sales-manager", "general-manager"]
        );
        assert_eq!(
            roles(&discount_of(3_000_000, base)),
            ["sales-manager", "general-manager"]
        );
        assert_eq!(
            roles(&discount_of(3_000_001, base)),
            ["sales-manager", "general-manager", "hq"]
        );
    }

    #[test]
    fn thresholds_compare_exactly_not_after_rounding() {
        // About 300.007 bp: displayed as 3.00%, but above the threshold.
        assert_eq!(roles(&discount_of(300_004, 9_999_900)), ["sales-manager"]);
        // 299.99 bp: displayed as 3.00%, and not above it.
        assert_eq!(
            discount_of(299_990, 10_000_000),
            Decision::AutoApprove(
                "折扣率 3.00%（2999.90 元 / 100000.00 元）未超过 3.00%，自动通过".to_owned()
            )
        );
    }

    #[test]
    fn every_step_gives_its_reason() {
        let decision = discount_of(1_900_000, 20_000_000);
        assert_eq!(
            decision,
            Decision::Steps(vec![
                step(
                    "sales-manager",
                    "折扣率 9.50%（19000.00 元 / 200000.00 元）超过 3.00%，需销售经理审批"
                        .to_owned()
                ),
                step(
                    "general-manager",
                    "折扣率 9.50%（19000.00 元 / 200000.00 元）超过 8.00%，需总经理审批".to_owned()
                ),
            ])
        );
    }

    #[test]
    fn no_discount_passes_and_impossible_ones_are_refused() {
        assert_eq!(
            discount_of(0, 20_000_000),
            Decision::AutoApprove("无折扣，自动通过".to_owned())
        );
        assert_eq!(
            discount_of(0, 0),
            Decision::AutoApprove("无折扣，自动通过".to_owned())
        );
        assert_eq!(
            discount_of(100, 0),
            Decision::Reject("基准金额为 0.00 元，无法计算 1.00 元折扣的折扣率".to_owned())
        );
        assert_eq!(
            discount_of(20_000_001, 20_000_000),
            Decision::Reject("折扣 200000.01 元超过基准金额 200000.00 元".to_owned())
        );
        assert_eq!(
            roles(&discount_of(20_000_000, 20_000_000)),
            ["sales-manager", "general-manager", "hq"]
        );
    }

    #[test]
    fn a_negative_amount_is_refused_for_every_kind() {
        for kind in [
            RequestKind::Discount,
            RequestKind::FinancePlan,
            RequestKind::ExtraRepairWork,
            RequestKind::Refund,
        ] {
            assert_eq!(
                decide(&request(kind, -1, 100), &Config::default()),
                Decision::Reject("申请金额为负数（-0.01 元），无法审批".to_owned()),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn equal_thresholds_escalate_together() {
        let config = Config {
            sales_manager_above_bp: 500,
            general_manager_above_bp: 500,
            hq_above_bp: 10_000,
            ..Config::default()
        };
        let decision = decide(&request(RequestKind::Discount, 501, 10_000), &config);
        assert_eq!(roles(&decision), ["sales-manager", "general-manager"]);
    }

    #[test]
    fn finance_plans_go_to_the_desk_and_large_ones_to_the_general_manager() {
        let config = Config::default();
        let plan = |amount| decide(&request(RequestKind::FinancePlan, amount, 0), &config);
        assert_eq!(
            plan(30_000_000),
            Decision::Steps(vec![step(
                "finance-desk",
                "金融方案（300000.00 元）须经金融专员审核".to_owned()
            )])
        );
        assert_eq!(roles(&plan(0)), ["finance-desk"]);
        let large = plan(30_000_001);
        assert_eq!(roles(&large), ["finance-desk", "general-manager"]);
        let Decision::Steps(steps) = large else {
            unreachable!()
        };
        assert_eq!(
            steps[1].reason,
            "金融方案金额 300000.01 元超过 300000.00 元，需总经理审批"
        );
    }

    #[test]
    fn extra_work_always_needs_the_owner_and_large_work_the_advisor_after() {
        let config = Config::default();
        let work = |amount| {
            decide(
                &request(RequestKind::ExtraRepairWork, amount, 800_000),
                &config,
            )
        };
        assert_eq!(roles(&work(0)), ["owner"]);
        assert_eq!(roles(&work(200_000)), ["owner"]);
        assert_eq!(
            work(200_001),
            Decision::Steps(vec![
                step("owner", "增项维修（2000.01 元）须经车主同意".to_owned()),
                step(
                    "service-advisor",
                    "增项金额 2000.01 元超过 2000.00 元，车主同意后需服务顾问复核".to_owned()
                ),
            ])
        );
    }

    #[test]
    fn refunds_need_the_general_manager() {
        assert_eq!(
            decide(&request(RequestKind::Refund, 12_345, 0), &Config::default()),
            Decision::Steps(vec![step(
                "general-manager",
                "退款（123.45 元）须经总经理审批".to_owned()
            )])
        );
    }

    #[test]
    fn the_readme_example_holds() {
        let config: Config = serde_json::from_str(
            r#"{
                "sales_manager_above_bp": 300,
                "general_manager_above_bp": 800,
                "hq_above_bp": 1500,
                "finance_gm_above_fen": 30000000,
                "extra_work_owner_above_fen": 200000
            }"#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(
            decide(
                &request(RequestKind::Discount, 3_200_000, 20_000_000),
                &config
            ),
            Decision::Steps(vec![
                step(
                    "sales-manager",
                    "折扣率 16.00%（32000.00 元 / 200000.00 元）超过 3.00%，需销售经理审批"
                        .to_owned()
                ),
                step(
                    "general-manager",
                    "折扣率 16.00%（32000.00 元 / 200000.00 元）超过 8.00%，需总经理审批"
                        .to_owned()
                ),
                step(
                    "hq",
                    "折扣率 16.00%（32000.00 元 / 200000.00 元）超过 15.00%，需总部审批".to_owned()
                ),
            ])
        );
    }

    #[test]
    fn invalid_settings_are_refused_naming_the_key() {
        let cases = [
            (
                Config {
                    hq_above_bp: 10_001,
                    ..Config::default()
                },
                "config `hq_above_bp`: 10001 is more than 10000 (100%)",
            ),
            (
                Config {
                    general_manager_above_bp: 200,
                    ..Config::default()
                },
                "config `general_manager_above_bp`: 200 is below `sales_manager_above_bp` \
                 (300); the thresholds must not decrease from the sales manager to HQ",
            ),
            (
                Config {
                    hq_above_bp: 700,
                    ..Config::default()
                },
                "config `hq_above_bp`: 700 is below `general_manager_above_bp` (800); the \
                 thresholds must not decrease from the sales manager to HQ",
            ),
            (
                Config {
                    finance_gm_above_fen: -1,
                    ..Config::default()
                },
                "config `finance_gm_above_fen`: -1 fen is negative",
            ),
        ];
        for (config, message) in cases {
            assert_eq!(config.validate(), Err(message.to_owned()));
        }
        assert_eq!(Config::default().validate(), Ok(()));
    }
}
