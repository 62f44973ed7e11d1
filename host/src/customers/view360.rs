//! The customer 360 view: one call shows a person with every vehicle, interaction, ticket,
//! sales order, repair order and points movement, and, where HQ's policy shares history across
//! dealers, what other dealers of the network recorded about the same person (same phone) or
//! the same cars (same VIN). Every read is audited.
//!
//! A phone number or a VIN typed into a new customer is no link to a person: anyone can type
//! one. Other dealers' records are shared only through a real link: the customer's share
//! consent (the same person by phone, and their cars by VIN), or, without it, a car this
//! dealer services (a repair order or an appointment for it: that car's records elsewhere). A
//! read that shows other dealers' records is audited as `read_cross_dealer`, naming them.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::interactions::{self, Interaction};
use super::{Customer, dealer_of, load};
use crate::access::Caller;
use crate::audit::{Entry, ReadLog};
use crate::db::{Param, Sql};
use crate::error::Result;
use crate::loyalty::{self, Account, LedgerEntry, LedgerFilter};
use crate::network;
use crate::sales::orders::{Order, OrderFilter};
use crate::service::repair_orders::{RepairOrder, RoFilter};
use crate::tickets::{self, Ticket};
use crate::vehicles::{self, Vehicle};
use crate::{sales, service};

/// How many timeline entries the view carries.
const TIMELINE_LIMIT: i64 = 200;
/// How many sales and repair orders the view carries, each.
const RECORDS_LIMIT: i64 = 50;
/// How many points movements the view carries.
const LEDGER_LIMIT: i64 = 20;

#[derive(Debug, Serialize, ToSchema)]
pub struct Customer360 {
    pub customer: Customer,
    /// Vehicles the customer owns or drives now.
    pub vehicles: Vec<Vehicle>,
    /// Newest first.
    pub interactions: Vec<Interaction>,
    /// Newest first.
    pub tickets: Vec<Ticket>,
    /// Sales orders, newest first (at most 50).
    pub orders: Vec<Order>,
    /// Repair orders, newest first (at most 50).
    pub repair_orders: Vec<RepairOrder>,
    /// The points account, and its latest movements (newest first, at most 20).
    pub points: Account,
    pub points_ledger: Vec<LedgerEntry>,
    /// Other dealers' records of the same person or vehicles; empty unless HQ shares history
    /// and the customer consented to it or this dealer services their car.
    pub network_history: Vec<NetworkRecord>,
}

/// What one other dealer of the network recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct NetworkRecord {
    pub dealer_id: i64,
    pub dealer_name: String,
    /// `phone` (the same person, who consented) and/or `vin` (the same vehicle).
    pub matched_by: Vec<String>,
    pub vehicles: Vec<Vehicle>,
    pub tickets: Vec<Ticket>,
    pub interactions: Vec<Interaction>,
    /// Sales orders of the person or the cars, newest first.
    pub orders: Vec<Order>,
    /// Repair orders of the person or the cars, newest first.
    pub repair_orders: Vec<RepairOrder>,
}

pub async fn view(
    conn: &mut AnyConnection,
    reads: &ReadLog,
    caller: &Caller,
    id: i64,
) -> Result<Customer360> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    let customer = load(conn, id).await?;
    let vehicles = vehicles::for_customers(conn, &[id]).await?;
    let interactions = interactions::recent(conn, &[id], &[], TIMELINE_LIMIT).await?;
    let tickets = tickets::list_for_customers(conn, &[id]).await?;
    let orders = sales::orders::list(
        conn,
        caller,
        &OrderFilter {
            customer_id: Some(id),
            ..OrderFilter::default()
        },
        None,
        RECORDS_LIMIT,
    )
    .await?;
    let repair_orders = service::repair_orders::list(
        conn,
        caller,
        &RoFilter {
            customer_id: Some(id),
            ..RoFilter::default()
        },
        None,
        RECORDS_LIMIT,
    )
    .await?;
    let (points, mut points_ledger) = loyalty::points(
        conn,
        caller,
        id,
        &LedgerFilter::default(),
        None,
        LEDGER_LIMIT,
    )
    .await?;
    points_ledger.truncate(LEDGER_LIMIT as usize);
    let network_history = if network::policy(conn).await?.share_history_across_dealers {
        history(conn, dealer_id, &customer, &vehicles).await?
    } else {
        Vec::new()
    };
    reads
        .record(
            caller,
            Entry::ok("read_360", "customer", id, dealer_id)
                .with_detail(serde_json::json!({ "network_records": network_history.len() })),
        )
        .await;
    if !network_history.is_empty() {
        let dealers: Vec<i64> = network_history.iter().map(|r| r.dealer_id).collect();
        let link = if customer.share_consent {
            "share_consent"
        } else {
            "serviced_vehicle"
        };
        reads
            .record(
                caller,
                Entry::ok("read_cross_dealer", "customer", id, dealer_id)
                    .with_detail(serde_json::json!({ "other_dealers": dealers, "link": link })),
            )
            .await;
    }
    Ok(Customer360 {
        customer: customer.masked_for(caller),
        vehicles,
        interactions,
        tickets,
        orders,
        repair_orders,
        points,
        points_ledger,
        network_history,
    })
}

/// Other dealers' records linked to `customer` of `dealer_id` (see the module's header): with
/// their share consent, those of the same person (by phone) and of all their cars (by VIN);
/// without it, those of the cars the dealer services.
async fn history(
    conn: &mut AnyConnection,
    dealer_id: i64,
    customer: &Customer,
    own: &[Vehicle],
) -> Result<Vec<NetworkRecord>> {
    let linked: Vec<&Vehicle> = if customer.share_consent {
        own.iter().collect()
    } else {
        let ids: Vec<i64> = own
            .iter()
            .filter(|v| v.dealer_id == dealer_id)
            .map(|v| v.id)
            .collect();
        let serviced = service::serviced(conn, &ids).await?;
        own.iter().filter(|v| serviced.contains(&v.id)).collect()
    };
    let mut same_person: Vec<(i64, i64)> = Vec::new();
    if customer.share_consent && !customer.phones.is_empty() {
        let mut sql = Sql::new(
            "SELECT DISTINCT c.id, c.dealer_id FROM customers c JOIN customer_phones p ON p.customer_id = c.id WHERE c.dealer_id <> ",
        );
        sql.bind(Param::Int(dealer_id))
            .push(" AND p.phone IN ")
            .push_list(
                customer
                    .phones
                    .iter()
                    .map(|p| Param::Text(p.number.clone())),
            );
        same_person = sqlx::query_as_with(sql.text(), sql.arguments())
            .fetch_all(&mut *conn)
            .await?;
    }
    if linked.is_empty() && same_person.is_empty() {
        return Ok(Vec::new());
    }
    let person_ids: Vec<i64> = same_person.iter().map(|(id, _)| *id).collect();
    let vins: Vec<String> = linked.iter().map(|v| v.vin.clone()).collect();
    let mut records: BTreeMap<i64, NetworkRecord> = BTreeMap::new();
    for (_, dealer) in &same_person {
        mark(&mut records, *dealer, "phone");
    }
    let mut vehicles_elsewhere = vehicles::same_vin_elsewhere(conn, &vins, dealer_id).await?;
    for v in &vehicles_elsewhere {
        mark(&mut records, v.dealer_id, "vin");
    }
    vehicles_elsewhere.extend(vehicles::for_customers(conn, &person_ids).await?);
    let mut seen = std::collections::HashSet::new();
    vehicles_elsewhere.retain(|v| v.dealer_id != dealer_id && seen.insert(v.id));
    let vehicle_ids: Vec<i64> = vehicles_elsewhere.iter().map(|v| v.id).collect();
    let tickets_elsewhere = tickets::list_for_customers(conn, &person_ids).await?;
    let interactions_elsewhere =
        interactions::recent(conn, &person_ids, &vehicle_ids, TIMELINE_LIMIT).await?;
    let orders_elsewhere = sales::orders::elsewhere(
        conn,
        dealer_id,
        &person_ids,
        &vehicle_ids,
        &vins,
        RECORDS_LIMIT,
    )
    .await?;
    let repair_orders_elsewhere = service::repair_orders::elsewhere(
        conn,
        dealer_id,
        &person_ids,
        &vehicle_ids,
        RECORDS_LIMIT,
    )
    .await?;
    for o in &orders_elsewhere {
        if o.vin.as_ref().is_some_and(|vin| vins.contains(vin)) {
            mark(&mut records, o.dealer_id, "vin");
        }
    }
    for v in vehicles_elsewhere {
        if let Some(r) = records.get_mut(&v.dealer_id) {
            r.vehicles.push(v);
        }
    }
    for t in tickets_elsewhere {
        if let Some(r) = records.get_mut(&t.dealer_id) {
            r.tickets.push(t);
        }
    }
    for i in interactions_elsewhere
        .into_iter()
        .filter(|i| i.dealer_id != dealer_id)
    {
        if let Some(r) = records.get_mut(&i.dealer_id) {
            r.interactions.push(i);
        }
    }
    for o in orders_elsewhere {
        if let Some(r) = records.get_mut(&o.dealer_id) {
            r.orders.push(o);
        }
    }
    for ro in repair_orders_elsewhere {
        if let Some(r) = records.get_mut(&ro.dealer_id) {
            r.repair_orders.push(ro);
        }
    }
    let names = dealer_names(conn, &records.keys().copied().collect::<Vec<_>>()).await?;
    Ok(records
        .into_values()
        .map(|mut r| {
            r.dealer_name = names.get(&r.dealer_id).cloned().unwrap_or_default();
            r
        })
        .collect())
}

/// Notes that `dealer` holds records matched by `matched` (phone or vin).
fn mark(records: &mut BTreeMap<i64, NetworkRecord>, dealer: i64, matched: &str) {
    let r = records.entry(dealer).or_insert_with(|| NetworkRecord {
        dealer_id: dealer,
        dealer_name: String::new(),
        matched_by: Vec::new(),
        vehicles: Vec::new(),
        tickets: Vec::new(),
        interactions: Vec::new(),
        orders: Vec::new(),
        repair_orders: Vec::new(),
    });
    if !r.matched_by.iter().any(|m| m == matched) {
        r.matched_by.push(matched.to_owned());
    }
}

async fn dealer_names(conn: &mut AnyConnection, ids: &[i64]) -> Result<HashMap<i64, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = Sql::in_list("SELECT id, name FROM org_units WHERE id IN ", ids, "");
    let rows: Vec<(i64, String)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().collect())
}
