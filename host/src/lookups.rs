//! What a plugin may look up, answered by the domain: the runtime's
//! [`Records`](dealer_plugin_runtime::host_api::Records) for one dealer's run, and the views of
//! customers, vehicles and orders a plugin sees (WIT records).
//!
//! A run reads as that dealer would, with phones masked (the caller is a partner of the
//! dealer's scope): another dealer's record is a [`LookupError::Denied`], which the run reports
//! and the dispatcher audits.

use dealer_plugin_runtime::bindings::types::{Customer, Order, Vehicle};
use dealer_plugin_runtime::host_api::{Denial, HostFuture, LookupError, Records};

use crate::access::{Caller, Role};
use crate::db::Db;
use crate::error::Error;
use crate::{customers, sales, vehicles};

/// One dealer's records, as its plugin's run reads them.
pub struct DealerRecords {
    db: Db,
    caller: Caller,
    plugin: String,
}

impl DealerRecords {
    /// The records of dealer `dealer_id` (at `dealer_path` in the network tree) for a run of
    /// `plugin`.
    pub fn new(db: Db, dealer_id: i64, dealer_path: &str, plugin: &str) -> DealerRecords {
        DealerRecords {
            db,
            caller: Caller {
                key_id: 0,
                role: Role::Partner,
                org_id: dealer_id,
                org_kind: "dealer".into(),
                org_path: dealer_path.to_owned(),
                staff_id: None,
                position: None,
            },
            plugin: plugin.to_owned(),
        }
    }

    /// Maps a domain error to what the runtime reports to the guest.
    fn refused(&self, error: Error) -> LookupError {
        match error {
            Error::Denied(denial) => LookupError::Denied(Denial {
                entity: denial.entity,
                id: denial.id,
                owner_dealer_id: denial.dealer_id,
            }),
            Error::NotFound { .. } => LookupError::NotFound,
            other => {
                tracing::warn!(error = %other, plugin = %self.plugin, "a plugin look-up failed");
                LookupError::Unavailable
            }
        }
    }
}

impl Records for DealerRecords {
    fn customer(&self, id: i64) -> HostFuture<'_, Customer> {
        Box::pin(async move {
            let read = async {
                let mut conn = self.db.pool().acquire().await?;
                customers::get(&mut conn, &self.caller, id).await
            };
            read.await.map(customer_view).map_err(|e| self.refused(e))
        })
    }

    fn vehicle(&self, id: i64) -> HostFuture<'_, Vehicle> {
        Box::pin(async move {
            let read = async {
                let mut conn = self.db.pool().acquire().await?;
                vehicles::get(&mut conn, &self.caller, id).await
            };
            read.await.map(vehicle_view).map_err(|e| self.refused(e))
        })
    }

    fn vehicles_of(&self, customer_id: i64) -> HostFuture<'_, Vec<Vehicle>> {
        Box::pin(async move {
            let read = async {
                let mut conn = self.db.pool().acquire().await?;
                customers::dealer_of(&mut conn, &self.caller, customer_id).await?;
                vehicles::for_customers(&mut conn, &[customer_id]).await
            };
            let dealer = self.caller.org_id;
            read.await
                .map(|found| {
                    found
                        .into_iter()
                        .filter(|v| v.dealer_id == dealer)
                        .map(vehicle_view)
                        .collect()
                })
                .map_err(|e| self.refused(e))
        })
    }

    fn order(&self, id: i64) -> HostFuture<'_, Order> {
        Box::pin(async move {
            let read = async {
                let mut conn = self.db.pool().acquire().await?;
                sales::orders::get(&mut conn, &self.caller, id).await
            };
            read.await.map(order_view).map_err(|e| self.refused(e))
        })
    }
}

fn order_view(o: sales::orders::Order) -> Order {
    Order {
        id: o.id,
        dealer_id: o.dealer_id,
        customer_id: o.customer_id,
        consultant_id: o.consultant_id,
        model: o.model,
        status: o.status.as_str().to_owned(),
        list_price: o.list_price_fen,
        discount: o.discount_fen,
        final_price: o.final_price_fen,
        finance_plan: o.finance_plan,
        lines: sales::orders::contract_lines(&o.lines),
        created_at: o.created_at.timestamp_millis(),
        delivered_at: o.delivered_at.map(|t| t.timestamp_millis()),
    }
}

/// A customer as plugins see it (phone masked when the reading caller masks it).
pub fn customer_view(c: customers::Customer) -> Customer {
    Customer {
        id: c.id,
        dealer_id: c.dealer_id,
        name: c.name,
        phone_masked: c.phones.first().map(|p| p.number.clone()),
        tier: Some(c.member_tier),
        tags: c.tags,
        birthday: c.birthday.map(|d| d.to_string()),
        source_channel: c
            .source_channel
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
        referrer_id: c.referrer_id,
        marketing_consent: c.marketing_consent,
    }
}

/// A vehicle as plugins see it, with its current owner, latest mileage and daily mileage.
pub fn vehicle_view(v: vehicles::Vehicle) -> Vehicle {
    let owner_id = v
        .people
        .iter()
        .find(|p| p.until.is_none() && matches!(p.role, vehicles::PersonRole::Owner))
        .map(|p| p.customer_id);
    Vehicle {
        id: v.id,
        dealer_id: v.dealer_id,
        vin: v.vin,
        plate: v.plate,
        brand: v.brand,
        model: v.model,
        trim: v.trim,
        purchase_date: v.purchase_date.map(|d| d.to_string()),
        insurer: v.insurer,
        insurance_expiry: v.insurance_expiry.map(|d| d.to_string()),
        mileage_km: v.latest_mileage_km,
        daily_km_tenths: v.estimated_daily_km.map(|km| (km * 10.0).round() as i64),
        owner_id,
    }
}
