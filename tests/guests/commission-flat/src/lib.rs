//! Test guest for the commission hook: every credited staff member gets `percent` (config,
//! an integer, default 1) per cent of the final price, rounded down.
//!
//! It is built against `wit/platform/0.1.0` with `wit-bindgen` directly, not with the SDK
//! (which targets the newest version): the component a plugin author built before 0.2.0, which
//! the host must keep running.

wit_bindgen::generate!({
    path: "../../../wit/platform/0.1.0",
    world: "commission",
});

use dealer::platform::config;
use dealer_money::Rounding;
use exports::dealer::platform::commission_hook::{CommissionLine, Guest, Sale};

struct CommissionFlat;

impl Guest for CommissionFlat {
    fn compute(sale: Sale) -> Result<Vec<CommissionLine>, String> {
        let percent: i64 = match config::get("percent") {
            Some(text) => text
                .parse()
                .map_err(|_| format!("config `percent`: `{text}` is not an integer"))?,
            None => 1,
        };
        let amount = dealer_money::ratio(sale.final_price, percent, 100, Rounding::Down);
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

// Only on wasm: the exported symbols are named like `dealer:platform/commission-hook@0.1.0#compute`,
// which a native linker refuses (the crate is also built natively, as a workspace member).
#[cfg(target_arch = "wasm32")]
export!(CommissionFlat);
#[cfg(not(target_arch = "wasm32"))]
const _: () = {
    const fn implements_guest<T: Guest>() {}
    implements_guest::<CommissionFlat>()
};
