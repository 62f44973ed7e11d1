//! Test guest for the commission hook: every credited staff member gets `share_bp` (config,
//! an integer, default 500) basis points of the gross profit, rounded half up.

use dealer_sdk::commission::{CommissionLine, Guest, Sale};
use dealer_sdk::money;

struct CommissionGross;

impl Guest for CommissionGross {
    fn compute(sale: Sale) -> Result<Vec<CommissionLine>, String> {
        let share_bp: i64 = dealer_sdk::config::get("share_bp")?.unwrap_or(500);
        let amount = money::basis_points(sale.gross_profit, share_bp);
        Ok(sale
            .staff
            .iter()
            .map(|credited| CommissionLine {
                staff_id: credited.member.id,
                amount,
                reason: format!("gross {share_bp}bp"),
            })
            .collect())
    }
}

dealer_sdk::export_commission!(CommissionGross);
