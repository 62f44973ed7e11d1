//! Customers as they are generated before they are stored: the person, their phones and tags,
//! their cars with odometer histories, and what happened between them and the dealer; and the
//! batched insert of many of them at once.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand::rngs::StdRng;
use sqlx::AnyConnection;

use super::Rows;
use super::make::{self, DAY_MS, Person, Reading, Today};
use super::names::{self, City, Model};
use crate::db::Param;
use crate::error::Result;
use crate::vehicles::identity::Plate;

/// A dealer as the generators see it.
pub struct DealerCtx {
    pub id: i64,
    pub city: &'static City,
    /// 4S stores sell cars; service stations and repair shops see cars bought elsewhere.
    pub sells: bool,
    pub admin: Option<i64>,
    pub sales: Vec<i64>,
    pub service: Vec<i64>,
}

impl DealerCtx {
    pub fn salesperson(&self, rng: &mut StdRng) -> Option<i64> {
        if self.sales.is_empty() {
            self.admin
        } else {
            Some(make::pick(rng, &self.sales))
        }
    }

    pub fn advisor(&self, rng: &mut StdRng) -> Option<i64> {
        if self.service.is_empty() {
            self.admin
        } else {
            Some(make::pick(rng, &self.service))
        }
    }
}

pub struct CustomerPlan {
    /// Index into the dealers the plan was made for.
    pub dealer: usize,
    pub person: Person,
    /// Normalised number and label.
    pub phones: Vec<(String, &'static str)>,
    pub tier: &'static str,
    pub channel: &'static str,
    pub referrer_id: Option<i64>,
    pub consent_at: Option<i64>,
    /// When the customer consented to share their history across the network's dealers.
    pub share_consent_at: Option<i64>,
    pub created_at: i64,
    pub tags: Vec<&'static str>,
    pub vehicles: Vec<VehiclePlan>,
    pub interactions: Vec<InteractionPlan>,
}

#[derive(Clone)]
pub struct VehiclePlan {
    pub vin: String,
    pub plate: Plate,
    pub model: &'static Model,
    pub trim: &'static str,
    pub color: &'static str,
    pub model_year: i32,
    pub purchased: NaiveDate,
    pub purchased_at: i64,
    pub insurer: &'static str,
    pub insurance_expiry: NaiveDate,
    pub components: Vec<(&'static str, String)>,
    pub daily_km: f64,
    pub readings: Vec<Reading>,
    pub created_at: i64,
}

pub struct InteractionPlan {
    pub kind: &'static str,
    pub channel: Option<&'static str>,
    pub summary: String,
    pub at: i64,
    /// Index into the customer's vehicles.
    pub vehicle: Option<usize>,
    pub staff_id: Option<i64>,
}

/// How rich a generated customer's history is.
pub struct Shape {
    /// Odometer readings per car, inclusive range.
    pub readings: (usize, usize),
    /// Share of customers whose resident ID the dealer holds.
    pub with_id: f64,
    /// Extra tags drawn from the list, inclusive range.
    pub tags: (usize, usize),
    /// Calls, visits, messages and notes besides the purchase, inclusive range.
    pub contacts: (usize, usize),
    /// Whether each service visit also gets its own interaction.
    pub service_visits: bool,
}

pub const MODEL_WEIGHTS_EARLY: [(usize, u32); 5] = [(0, 34), (1, 30), (2, 14), (3, 15), (4, 7)];
pub const MODEL_WEIGHTS_RECENT: [(usize, u32); 5] = [(0, 20), (1, 22), (2, 10), (3, 30), (4, 18)];

/// A car the customer bought; 4S stores sold it a few weeks after the customer first came,
/// other dealers see cars bought up to five years before.
pub fn vehicle(
    rng: &mut StdRng,
    today: Today,
    dealer: &DealerCtx,
    seq: u64,
    customer_created: i64,
    readings: usize,
) -> VehiclePlan {
    let first_seen = make::local_date(customer_created);
    let yesterday = today.days_ago(1);
    let purchased = if dealer.sells {
        make::date_between(rng, first_seen, first_seen + chrono::Duration::days(30)).min(yesterday)
    } else {
        make::date_between(rng, today.days_ago(5 * 365 - 1), first_seen.min(yesterday))
    };
    let weights = if purchased.year() >= today.date.year() - 2 {
        &MODEL_WEIGHTS_RECENT
    } else {
        &MODEL_WEIGHTS_EARLY
    };
    let model = &names::MODELS[make::weighted(rng, weights)];
    let model_year = purchased.year() + i32::from(purchased.month() >= 11 && rng.gen_bool(0.5));
    let mut purchased_at = make::office_hours(rng, purchased);
    if dealer.sells {
        purchased_at = purchased_at.max(customer_created + 30 * 60_000);
    }
    let purchased = make::local_date(purchased_at);
    let anniversary = |year: i32| {
        purchased
            .with_year(year)
            .or_else(|| NaiveDate::from_ymd_opt(year, 2, 28))
            .unwrap_or(purchased)
    };
    let mut expiry = anniversary(today.date.year());
    if expiry <= today.date {
        expiry = anniversary(today.date.year() + 1);
    }
    if rng.gen_bool(0.06) && expiry.year() > purchased.year() + 1 {
        // Renewed elsewhere, or lapsed: the dealer only knows last year's policy.
        expiry = anniversary(expiry.year() - 1);
    }
    let produced = purchased - chrono::Duration::days(rng.gen_range(20..75));
    let daily_km = make::daily_km(rng);
    let first = purchased_at.max(customer_created);
    let mut readings = make::readings(
        rng,
        purchased_at,
        daily_km,
        (first, today.end_ms - 3_600_000),
        readings,
        model.electric,
    );
    if !dealer.sells {
        readings[0].source = "check_in";
    }
    VehiclePlan {
        vin: make::vin(model, model_year, seq),
        plate: make::plate(dealer.city, model.electric, seq),
        model,
        trim: make::pick(rng, model.trims),
        color: make::pick(rng, names::COLORS),
        model_year,
        purchased,
        purchased_at,
        insurer: make::pick(rng, names::INSURERS),
        insurance_expiry: expiry,
        components: make::components(model, produced),
        daily_km,
        readings,
        created_at: first,
    }
}

/// The interactions a car's history implies: its sale, and (if asked) each service visit.
pub fn car_interactions(
    rng: &mut StdRng,
    dealer: &DealerCtx,
    v: &VehiclePlan,
    index: usize,
    service_visits: bool,
) -> Vec<InteractionPlan> {
    let mut out = Vec::new();
    if dealer.sells {
        let price = f64::from(v.model.price_wan) * rng.gen_range(0.9..1.08);
        out.push(InteractionPlan {
            kind: "purchase",
            channel: Some("in_person"),
            summary: format!(
                "购买{}{} {}（{}），成交价{:.1}万元",
                names::BRAND,
                v.model.name,
                v.trim,
                v.color,
                price
            ),
            at: v.purchased_at,
            vehicle: Some(index),
            staff_id: dealer.salesperson(rng),
        });
    }
    for r in &v.readings {
        let first_visit = !dealer.sells && r.at == v.created_at;
        if r.source == "check_in" && (service_visits || first_visit) {
            let notes = if v.model.electric && rng.gen_bool(0.5) {
                names::EV_SERVICE_NOTES
            } else {
                names::SERVICE_NOTES
            };
            out.push(InteractionPlan {
                kind: "service",
                channel: Some("in_person"),
                summary: make::fill(make::pick(rng, notes), v.model.name, r.km),
                at: r.at + 45 * 60_000,
                vehicle: Some(index),
                staff_id: dealer.advisor(rng),
            });
        }
    }
    out
}

/// Calls, visits, messages and notes at random moments of the relationship.
pub fn contact(
    rng: &mut StdRng,
    today: Today,
    dealer: &DealerCtx,
    plan: &CustomerPlan,
) -> InteractionPlan {
    let day = make::date_between(rng, make::local_date(plan.created_at), today.days_ago(1));
    let at = make::office_hours(rng, day).max(plan.created_at + 60_000);
    let vehicle = (!plan.vehicles.is_empty()).then(|| rng.gen_range(0..plan.vehicles.len()));
    let model = vehicle.map_or("Y7", |i| plan.vehicles[i].model.name);
    let (kind, channel, notes): (&str, Option<&str>, &[&str]) = match rng.gen_range(0..10) {
        0..=3 => ("call", Some("phone"), names::CALL_NOTES),
        4..=5 => ("visit", Some("in_person"), names::VISIT_NOTES),
        6..=8 => ("message", None, names::MESSAGE_NOTES),
        _ => ("note", None, names::NOTE_NOTES),
    };
    let staff_id = if kind == "visit" || kind == "call" {
        dealer.salesperson(rng)
    } else {
        dealer.advisor(rng)
    };
    let summary = make::fill(make::pick(rng, notes), model, 0);
    let channel = match kind {
        "message" if summary.starts_with("短信") => Some("sms"),
        "message" => Some("wechat"),
        _ => channel,
    };
    InteractionPlan {
        kind,
        channel,
        summary,
        at,
        vehicle,
        staff_id,
    }
}

/// A whole customer: the person (given), phones, tier, channel, consent, tags, `cars` cars with
/// readings, and interactions, as `shape` says.
#[allow(clippy::too_many_arguments)]
pub fn customer(
    rng: &mut StdRng,
    today: Today,
    dealers: &[DealerCtx],
    dealer: usize,
    person: Person,
    person_seq: u64,
    created_at: i64,
    cars: usize,
    next_vehicle: &mut u64,
    shape: &Shape,
) -> CustomerPlan {
    let ctx = &dealers[dealer];
    let mut phones = vec![(
        make::mobile(names::FIRST_MOBILE_PREFIXES, person_seq, 0),
        "mobile",
    )];
    if rng.gen_bool(0.3) {
        let label = if rng.gen_bool(0.6) { "work" } else { "mobile" };
        phones.push((
            make::mobile(names::SECOND_MOBILE_PREFIXES, person_seq, 7),
            label,
        ));
    }
    let tier = make::weighted(rng, names::MEMBER_TIERS);
    let channel = make::weighted(rng, names::SOURCE_CHANNELS);
    let consent_at = rng
        .gen_bool(0.65)
        .then(|| created_at + rng.gen_range(0..3 * DAY_MS));
    let mut plan = CustomerPlan {
        dealer,
        person,
        phones,
        tier,
        channel,
        referrer_id: None,
        consent_at,
        share_consent_at: None,
        created_at,
        tags: Vec::new(),
        vehicles: Vec::new(),
        interactions: Vec::new(),
    };
    // A car bought last month has not been read six times.
    let age_days = (today.end_ms - created_at) / DAY_MS;
    let max_readings = usize::try_from(2 + age_days / 120).unwrap_or(2);
    for i in 0..cars {
        let count = rng
            .gen_range(shape.readings.0..=shape.readings.1)
            .min(max_readings)
            .max(shape.readings.0);
        let v = vehicle(rng, today, ctx, *next_vehicle, created_at, count);
        *next_vehicle += 1;
        plan.interactions
            .extend(car_interactions(rng, ctx, &v, i, shape.service_visits));
        plan.vehicles.push(v);
    }
    for _ in 0..rng.gen_range(shape.contacts.0..=shape.contacts.1) {
        let c = contact(rng, today, ctx, &plan);
        plan.interactions.push(c);
    }
    if plan.interactions.is_empty() {
        let c = contact(rng, today, ctx, &plan);
        plan.interactions.push(c);
    }
    // VIP and 新能源车主 follow from the tier and the cars; the others are a dealer's judgement.
    let derived = ["VIP", "新能源车主"];
    let mut tags: HashSet<&'static str> = HashSet::new();
    let wanted = rng.gen_range(shape.tags.0..=shape.tags.1);
    while tags.len() < wanted {
        let tag = make::pick(rng, names::TAGS);
        if !derived.contains(&tag) {
            tags.insert(tag);
        }
    }
    if plan.vehicles.iter().any(|v| v.model.electric) {
        tags.insert("新能源车主");
    }
    if tier == "铂金" || (tier == "金卡" && rng.gen_bool(0.3)) {
        tags.insert("VIP");
    }
    if channel == "referral" {
        tags.insert("老客户推荐");
    }
    plan.tags = names::TAGS
        .iter()
        .copied()
        .filter(|t| tags.contains(t))
        .collect();
    plan
}

/// Ids of what [`insert`] stored, in the order of the plans.
pub struct Inserted {
    pub customers: Vec<i64>,
    pub vehicles: Vec<Vec<i64>>,
}

/// Stores the plans with multi-row inserts. Customers' `created_at` are made distinct first,
/// so the ids `RETURNING` gives back (in no guaranteed order) can be matched to the plans.
pub async fn insert(
    conn: &mut AnyConnection,
    dealers: &[DealerCtx],
    plans: &mut [CustomerPlan],
) -> Result<Inserted> {
    let mut seen = HashSet::with_capacity(plans.len());
    for p in plans.iter_mut() {
        while !seen.insert(p.created_at) {
            p.created_at += 1;
        }
    }
    let mut rows = Rows::new(
        "customers",
        &[
            "dealer_id",
            "name",
            "gender",
            "birthday",
            "id_number",
            "member_tier",
            "source_channel",
            "referrer_id",
            "marketing_consent",
            "marketing_consent_at",
            "share_consent",
            "share_consent_at",
            "created_at",
            "updated_at",
        ],
    );
    for p in plans.iter() {
        rows.push([
            Param::Int(dealers[p.dealer].id),
            Param::Text(p.person.name.clone()),
            Param::Text(p.person.gender.as_str().to_owned()),
            Param::Text(make::ymd(p.person.birthday)),
            Param::OptText(p.person.id_number.clone()),
            Param::Text(p.tier.to_owned()),
            Param::Text(p.channel.to_owned()),
            Param::OptInt(p.referrer_id),
            Param::Int(i64::from(p.consent_at.is_some())),
            Param::OptInt(p.consent_at),
            Param::Int(i64::from(p.share_consent_at.is_some())),
            Param::OptInt(p.share_consent_at),
            Param::Int(p.created_at),
            Param::Int(p.consent_at.unwrap_or(p.created_at)),
        ]);
    }
    let returned: Vec<(i64, i64)> = rows.fetch(conn, "id, created_at").await?;
    let by_created: HashMap<i64, i64> = returned
        .into_iter()
        .map(|(id, created)| (created, id))
        .collect();
    let customers = plans
        .iter()
        .map(|p| returned_id(by_created.get(&p.created_at)))
        .collect::<Result<Vec<i64>>>()?;

    let mut phones = Rows::new(
        "customer_phones",
        &["customer_id", "position", "phone", "label"],
    );
    let mut tags = Rows::new("customer_tags", &["customer_id", "tag"]);
    let mut vehicles = Rows::new(
        "vehicles",
        &[
            "dealer_id",
            "vin",
            "plate",
            "plate_key",
            "brand",
            "model",
            "trim_level",
            "color",
            "model_year",
            "purchase_date",
            "insurer",
            "insurance_expiry",
            "created_at",
            "updated_at",
        ],
    );
    for (p, &cid) in plans.iter().zip(&customers) {
        for (i, (phone, label)) in p.phones.iter().enumerate() {
            phones.push([
                Param::Int(cid),
                Param::Int(i as i64),
                Param::Text(phone.clone()),
                Param::Text((*label).to_owned()),
            ]);
        }
        for tag in &p.tags {
            tags.push([Param::Int(cid), Param::Text((*tag).to_owned())]);
        }
        for v in &p.vehicles {
            vehicles.push([
                Param::Int(dealers[p.dealer].id),
                Param::Text(v.vin.clone()),
                Param::Text(v.plate.display.clone()),
                Param::Text(v.plate.key.clone()),
                Param::Text(names::BRAND.to_owned()),
                Param::Text(v.model.name.to_owned()),
                Param::Text(v.trim.to_owned()),
                Param::Text(v.color.to_owned()),
                Param::Int(i64::from(v.model_year)),
                Param::Text(make::ymd(v.purchased)),
                Param::Text(v.insurer.to_owned()),
                Param::Text(make::ymd(v.insurance_expiry)),
                Param::Int(v.created_at),
                Param::Int(v.created_at),
            ]);
        }
    }
    phones.execute(conn).await?;
    tags.execute(conn).await?;
    let returned: Vec<(i64, i64, String)> = vehicles.fetch(conn, "id, dealer_id, vin").await?;
    let by_vin: HashMap<(i64, String), i64> = returned
        .into_iter()
        .map(|(id, dealer, vin)| ((dealer, vin), id))
        .collect();
    let vehicle_ids = plans
        .iter()
        .map(|p| {
            let dealer = dealers[p.dealer].id;
            p.vehicles
                .iter()
                .map(|v| returned_id(by_vin.get(&(dealer, v.vin.clone()))))
                .collect()
        })
        .collect::<Result<Vec<Vec<i64>>>>()?;

    let mut components = Rows::new("vehicle_components", &["vehicle_id", "component", "batch"]);
    let mut owners = Rows::new(
        "vehicle_people",
        &["vehicle_id", "customer_id", "role", "since"],
    );
    let mut readings = Rows::new(
        "mileage_readings",
        &["vehicle_id", "km", "read_at", "source", "created_at"],
    );
    let mut interactions = Rows::new(
        "interactions",
        &[
            "dealer_id",
            "customer_id",
            "vehicle_id",
            "staff_id",
            "kind",
            "channel",
            "summary",
            "occurred_at",
            "created_at",
        ],
    );
    for ((p, &cid), vids) in plans.iter().zip(&customers).zip(&vehicle_ids) {
        for (v, &vid) in p.vehicles.iter().zip(vids) {
            for (component, batch) in &v.components {
                components.push([
                    Param::Int(vid),
                    Param::Text((*component).to_owned()),
                    Param::Text(batch.clone()),
                ]);
            }
            owners.push([
                Param::Int(vid),
                Param::Int(cid),
                Param::Text("owner".to_owned()),
                Param::Int(v.purchased_at),
            ]);
            for r in &v.readings {
                readings.push([
                    Param::Int(vid),
                    Param::Int(r.km),
                    Param::Int(r.at),
                    Param::Text(r.source.to_owned()),
                    Param::Int(r.at),
                ]);
            }
        }
        for i in &p.interactions {
            interactions.push([
                Param::Int(dealers[p.dealer].id),
                Param::Int(cid),
                Param::OptInt(i.vehicle.map(|v| vids[v])),
                Param::OptInt(i.staff_id),
                Param::Text(i.kind.to_owned()),
                Param::OptText(i.channel.map(str::to_owned)),
                Param::Text(i.summary.clone()),
                Param::Int(i.at),
                Param::Int(i.at),
            ]);
        }
    }
    components.execute(conn).await?;
    owners.execute(conn).await?;
    readings.execute(conn).await?;
    interactions.execute(conn).await?;
    Ok(Inserted {
        customers,
        vehicles: vehicle_ids,
    })
}

/// The id `RETURNING` gave for a row; every inserted row returns one.
fn returned_id(id: Option<&i64>) -> Result<i64> {
    id.copied()
        .ok_or(crate::error::Error::Database(sqlx::Error::RowNotFound))
}
