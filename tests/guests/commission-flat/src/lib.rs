//! Test guest for the commission hook: every credited staff member gets `percent` (config,
//! an integer, default 1) per cent of the final price, rounded down.

use dealer_sdk::commission::{CommissionLine, Guest, Sale};
use dealer_sdk::money::{self, Rounding};

struct CommissionFlat;

impl Guest for CommissionFlat {
    fn compute(sale: Sale) -> Result<Vec<CommissionLine>, String> {
        let percent: i64 = dealer_sdk::config::get("percent")?.unwrap_or(1);
        let amount = money::ratio(sale.final_price, percent, 100, Rounding::Down);
        Ok(sale
            .staff
            .iter()
            .map(|credited| CommissionLine {
                staff_id: credited.member.id,
                amount,
                reason: format!("flat {percent}%"),
            })
            .collect())
    }
}

dealer_sdk::export_commission!(CommissionFlat);
