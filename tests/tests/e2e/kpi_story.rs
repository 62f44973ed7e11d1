//! Every KPI against a story whose figures were worked out by hand.
//!
//! The story: HQ, two regions, a dealer group in the north, four dealers (A and B in the
//! north, D in the group, C in the south; B has no records at all), their advisors and sales
//! consultants, and the customers' paid visits, bookings, tickets with their deadlines, survey
//! answers and leads in November 2025 (the period, in China Standard Time) and before it. The
//! tables below are the story; each expected figure is derived from them in its comment, and
//! compared with `GET /kpis` for HQ, each region, the group and each dealer, and for each
//! breakdown that splits it; then the previous period, a series, the records behind the
//! backlog, the return rate and churn, their CSV and Excel exports, and the scope of a dealer
//! and a region.
//!
//! The API records everything "now"; the story's times are set afterwards
//! ([`dealer_tests::history`]). Every repair order settles at 12:00 local time, so a gap between
//! two visits is a whole number of days and the time from a visit to the end of the period
//! (1 December 00:00) is a whole number of days and a half.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use dealer_tests::history::{cst, set_times};
use dealer_tests::service::{act_ok, slot};
use dealer_tests::{Backend, Reply, TestApp, call, on_both_backends, valid_vin};
use serde_json::{Value, json};

on_both_backends!(every_kpi_tells_the_story_at_every_level);

/// The period: November 2025 (30 days); the previous one is 2 to 31 October.
const FROM: &str = "2025-11-01";
const TO: &str = "2025-11-30";
const HOUR_MS: i64 = 3_600_000;

/// The customers: a label (their dealer's letter and a number) and a name.
const CUSTOMERS: [(&str, &str); 12] = [
    ("A1", "张伟"),
    ("A2", "李娜"),
    ("A3", "王磊"),
    ("A4", "赵静"),
    ("A5", "钱勇"),
    ("A6", "孙丽华"),
    ("C1", "陈明"),
    ("C2", "林芳"),
    ("C3", "周涛"),
    ("D1", "孙悦"),
    ("D2", "马超"),
    ("D3", "高原"),
];

#[derive(Clone, Copy, PartialEq)]
enum Came {
    Arrived,
    Cancelled,
    NoShow,
}

/// A booking: label, customer, channel, service type, slot (local time), whether they came.
struct Booking(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Came,
);

#[rustfmt::skip]
const BOOKINGS: [Booking; 9] = [
    Booking("ap1", "A2", "online", "maintenance", "2025-11-10 08:00", Came::Arrived),
    Booking("ap2", "A5", "phone", "maintenance", "2025-11-21 09:00", Came::Arrived),
    Booking("ap3", "A1", "online", "repair", "2025-11-24 10:00", Came::NoShow),
    Booking("ap4", "A1", "phone", "maintenance", "2025-11-27 09:00", Came::Arrived),
    Booking("ap5", "A4", "online", "warranty", "2025-11-19 09:00", Came::Arrived),
    Booking("ap6", "A6", "online", "maintenance", "2025-11-15 10:00", Came::Cancelled),
    Booking("cp1", "C1", "phone", "maintenance", "2025-11-05 08:00", Came::Arrived),
    Booking("cp2", "C3", "online", "repair", "2025-11-18 10:00", Came::NoShow),
    Booking("dp1", "D1", "online", "maintenance", "2025-11-08 10:00", Came::Arrived),
];

/// How a repair order is opened: from a booking (whose service type it takes), with a
/// service type named, or with neither (a repair).
#[derive(Clone, Copy)]
enum Opened {
    Booked(&'static str),
    Typed(&'static str),
    Plain,
}

/// A repair order, in the order they are made: label, customer, who opens it (an advisor's
/// name, or `admin` for the dealer admin's key, which names nobody), the issue, how it is
/// opened, opened and settled (local time), total.
struct Visit {
    label: &'static str,
    customer: &'static str,
    desk: &'static str,
    issue: &'static str,
    opened_as: Opened,
    opened: &'static str,
    settled: &'static str,
    total_fen: i64,
}

const fn visit(
    label: &'static str,
    customer: &'static str,
    desk: &'static str,
    issue: &'static str,
    opened_as: Opened,
    (opened, settled): (&'static str, &'static str),
    total_fen: i64,
) -> Visit {
    Visit {
        label,
        customer,
        desk,
        issue,
        opened_as,
        opened,
        settled,
        total_fen,
    }
}

use Opened::{Booked, Plain, Typed};

const MAINTENANCE: Opened = Typed("maintenance");

#[rustfmt::skip]
const VISITS: [Visit; 24] = [
    // A1 张伟: once in May, then three times in the period; a3 comes back for a2's brake noise.
    visit("a1", "A1", "周杰", "oil_a1", MAINTENANCE, ("2025-05-10 09:00", "2025-05-10 12:00"), 20_000),
    visit("a2", "A1", "周杰", "brake_noise", Plain, ("2025-11-03 09:00", "2025-11-03 12:00"), 80_000),
    visit("a3", "A1", "周杰", "brake_noise", Plain, ("2025-11-17 10:00", "2025-11-17 12:00"), 50_000),
    visit("a4", "A1", "周杰", "oil_a4", Booked("ap4"), ("2025-11-27 10:00", "2025-11-27 12:00"), 30_000),
    // A2 李娜: once in the previous period, once in this one.
    visit("a6", "A2", "郑爽", "oil_a6", MAINTENANCE, ("2025-10-15 09:00", "2025-10-15 12:00"), 40_000),
    visit("a5", "A2", "郑爽", "oil_a5", Booked("ap1"), ("2025-11-10 08:00", "2025-11-10 12:00"), 60_000),
    // A3 王磊: twice in 2024, 92 days apart, never since: a churn risk.
    visit("a7", "A3", "周杰", "oil_a7", MAINTENANCE, ("2024-03-01 09:00", "2024-03-01 12:00"), 30_000),
    visit("a8", "A3", "周杰", "oil_a8", MAINTENANCE, ("2024-06-01 09:00", "2024-06-01 12:00"), 30_000),
    // A4 赵静: a warranty job that costs the owner nothing: settled, but no paid visit.
    visit("a9", "A4", "郑爽", "warranty_a9", Booked("ap5"), ("2025-11-19 12:00", "2025-11-20 12:00"), 0),
    // A5 钱勇: a first visit in the period.
    visit("a10", "A5", "周杰", "oil_a10", Booked("ap2"), ("2025-11-21 09:00", "2025-11-21 12:00"), 15_000),
    // A6 孙丽华: every 30 days, last on 20 October: 41.5 days ago at the end, past the
    // interval but within its 50 % margin (45 days), so no churn risk.
    visit("a11", "A6", "郑爽", "oil_a11", MAINTENANCE, ("2025-09-20 09:00", "2025-09-20 12:00"), 20_000),
    visit("a12", "A6", "郑爽", "oil_a12", MAINTENANCE, ("2025-10-20 09:00", "2025-10-20 12:00"), 25_000),
    // C1 陈明: twice in the period, 20 days apart.
    visit("c1", "C1", "刘洋", "oil_c1", Booked("cp1"), ("2025-11-05 08:00", "2025-11-05 12:00"), 100_000),
    visit("c2", "C1", "刘洋", "ac_c2", Plain, ("2025-11-25 09:00", "2025-11-25 12:00"), 120_000),
    // C2 林芳: in August and in the period, opened the second time by the admin's key.
    visit("c4", "C2", "刘洋", "oil_c4", MAINTENANCE, ("2025-08-12 09:00", "2025-08-12 12:00"), 45_000),
    visit("c3", "C2", "admin", "check_c3", Typed("inspection"), ("2025-11-12 10:00", "2025-11-12 12:00"), 45_000),
    // C3 周涛: January and March, 59 days apart, then gone: a churn risk.
    visit("c5", "C3", "刘洋", "oil_c5", MAINTENANCE, ("2025-01-10 09:00", "2025-01-10 12:00"), 40_000),
    visit("c6", "C3", "刘洋", "oil_c6", MAINTENANCE, ("2025-03-10 09:00", "2025-03-10 12:00"), 40_000),
    // D1 孙悦: a first visit; D2 马超: twice in the period, 14 days apart.
    visit("d1", "D1", "何平", "oil_d1", Booked("dp1"), ("2025-11-08 10:00", "2025-11-08 12:00"), 70_000),
    visit("d2", "D2", "何平", "ac_d2", Plain, ("2025-11-14 09:00", "2025-11-14 12:00"), 25_000),
    visit("d3", "D2", "何平", "oil_d3", MAINTENANCE, ("2025-11-28 07:00", "2025-11-28 12:00"), 35_000),
    // D3 高原: every 20 days until 11 October, then gone (50.5 days at the end): a churn risk.
    visit("d4", "D3", "何平", "oil_d4", MAINTENANCE, ("2025-09-01 09:00", "2025-09-01 12:00"), 30_000),
    visit("d5", "D3", "何平", "oil_d5", MAINTENANCE, ("2025-09-21 09:00", "2025-09-21 12:00"), 30_000),
    visit("d6", "D3", "何平", "oil_d6", MAINTENANCE, ("2025-10-11 09:00", "2025-10-11 12:00"), 30_000),
];

/// A ticket: label, customer, channel, category, team (`None`: nobody's), opened, resolution
/// deadline (`None`: none), closed (`None`: still open), resolved at the first contact.
struct Case(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    bool,
);

const SERVICE: Option<&str> = Some("售后服务部");
const CALLS: Option<&str> = Some("客服中心");

#[rustfmt::skip]
const CASES: [Case; 14] = [
    // Late in October, closed four days past its deadline, before the period.
    Case("t_old", "A2", "hotline", "inquiry", CALLS, "2025-10-20 09:00", Some("2025-10-21 09:00"), Some("2025-10-25 09:00"), true),
    // Opened before the period, its deadline inside it, still open long after it.
    Case("t0", "A1", "hotline", "complaint", SERVICE, "2025-10-28 09:00", Some("2025-11-04 09:00"), Some("2025-11-20 09:00"), false),
    Case("t1", "A1", "hotline", "complaint", SERVICE, "2025-11-02 09:00", Some("2025-11-03 09:00"), Some("2025-11-02 11:00"), true),
    Case("t2", "A2", "app", "inquiry", CALLS, "2025-11-05 10:00", Some("2025-11-06 10:00"), Some("2025-11-07 10:00"), false),
    Case("t3", "A3", "wechat", "complaint", SERVICE, "2025-11-10 09:00", Some("2025-11-11 09:00"), None, false),
    Case("t4", "A5", "hotline", "inquiry", CALLS, "2025-11-12 14:00", Some("2025-11-13 14:00"), Some("2025-11-12 15:00"), true),
    // No deadline, no team: never late.
    Case("t5", "A6", "email", "inquiry", None, "2025-11-15 09:00", None, None, false),
    // Due after the period.
    Case("t6", "A4", "app", "complaint", CALLS, "2025-11-29 10:00", Some("2025-12-02 10:00"), None, false),
    Case("u1", "C1", "hotline", "complaint", SERVICE, "2025-11-03 09:00", Some("2025-11-04 09:00"), Some("2025-11-03 13:00"), true),
    // Resolved at once, but only a day after its deadline.
    Case("u2", "C2", "hotline", "complaint", SERVICE, "2025-11-20 09:00", Some("2025-11-21 09:00"), Some("2025-11-22 09:00"), true),
    // Opened and due in October, closed in the period.
    Case("v0", "D3", "app", "complaint", SERVICE, "2025-10-10 09:00", Some("2025-10-11 09:00"), Some("2025-11-03 09:00"), false),
    Case("v1", "D1", "app", "inquiry", CALLS, "2025-11-06 09:00", Some("2025-11-07 09:00"), Some("2025-11-06 09:30"), true),
    Case("v2", "D2", "wechat", "inquiry", CALLS, "2025-11-25 09:00", Some("2025-11-26 09:00"), Some("2025-11-25 10:00"), true),
    Case("v3", "D2", "hotline", "complaint", SERVICE, "2025-11-27 09:00", Some("2025-11-28 09:00"), None, false),
];

/// A survey answer: the ticket or repair order it is about, NPS, CSAT, answered (local time).
struct Answer(Touch, &'static str, i64, Option<i64>, &'static str);

#[derive(Clone, Copy, PartialEq)]
enum Touch {
    Ticket,
    RepairOrder,
}

#[rustfmt::skip]
const ANSWERS: [Answer; 12] = [
    Answer(Touch::Ticket, "t_old", 10, Some(5), "2025-10-26 09:00"),
    Answer(Touch::Ticket, "t1", 10, Some(5), "2025-11-02 12:00"),
    Answer(Touch::Ticket, "t2", 6, Some(3), "2025-11-08 09:00"),
    Answer(Touch::Ticket, "t4", 9, Some(4), "2025-11-13 09:00"),
    Answer(Touch::Ticket, "u1", 9, Some(4), "2025-11-04 09:00"),
    Answer(Touch::Ticket, "u2", 3, Some(2), "2025-11-23 09:00"),
    Answer(Touch::Ticket, "v1", 10, Some(5), "2025-11-07 09:00"),
    Answer(Touch::RepairOrder, "a2", 7, Some(4), "2025-11-04 10:00"),
    Answer(Touch::RepairOrder, "a3", 2, Some(1), "2025-11-18 10:00"),
    Answer(Touch::RepairOrder, "c1", 9, Some(5), "2025-11-06 10:00"),
    Answer(Touch::RepairOrder, "d1", 10, Some(5), "2025-11-09 10:00"),
    // An NPS without a CSAT.
    Answer(Touch::RepairOrder, "d2", 9, None, "2025-11-15 10:00"),
];

/// A lead: label, dealer, consultant (`None`: the dealer has none to assign), channel,
/// captured (local time), the stage it reached.
struct Lead(
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    &'static str,
);

#[rustfmt::skip]
const LEADS: [Lead; 12] = [
    Lead("l_prev", "A", Some("李强"), "walk_in", "2025-10-20 10:00", "won"),
    // Half an hour into the period, local time (still October in UTC).
    Lead("l1", "A", Some("王芳"), "online_ad", "2025-11-01 00:30", "won"),
    Lead("l2", "A", Some("王芳"), "online_ad", "2025-11-06 10:00", "lost"),
    Lead("l3", "A", Some("李强"), "walk_in", "2025-11-09 10:00", "won"),
    Lead("l4", "A", Some("李强"), "app", "2025-11-15 10:00", "contacted"),
    Lead("l5", "A", Some("王芳"), "referral", "2025-11-20 10:00", "won"),
    // Ten minutes after the period, local time (still November in UTC).
    Lead("l6", "A", Some("王芳"), "online_ad", "2025-12-01 00:10", "won"),
    Lead("m1", "C", Some("黄蕾"), "online_ad", "2025-11-04 10:00", "won"),
    Lead("m2", "C", Some("黄蕾"), "walk_in", "2025-11-18 10:00", "new"),
    Lead("n1", "D", None, "app", "2025-11-11 10:00", "won"),
    Lead("n2", "D", None, "app", "2025-11-21 10:00", "new"),
    Lead("n3", "D", None, "walk_in", "2025-11-26 10:00", "won"),
];

/// The ids of the story's records, by label.
struct Story {
    /// `HQ`, `N` (north), `S` (south), `G` (the group), `A`, `B`, `C`, `D`.
    units: HashMap<&'static str, i64>,
    /// Staff by name.
    staff: HashMap<&'static str, i64>,
    customers: HashMap<&'static str, i64>,
    vehicles: HashMap<&'static str, i64>,
    bookings: HashMap<&'static str, i64>,
    orders: HashMap<&'static str, i64>,
    tickets: HashMap<&'static str, i64>,
    /// Keys: each dealer's admin by its letter, each advisor by name.
    keys: HashMap<&'static str, String>,
    /// Each dealer's technician, by its letter.
    technicians: HashMap<&'static str, i64>,
}

impl Story {
    fn unit(&self, label: &str) -> i64 {
        self.units[label]
    }

    fn customer(&self, label: &str) -> i64 {
        self.customers[label]
    }

    fn ticket(&self, label: &str) -> i64 {
        self.tickets[label]
    }

    fn key(&self, desk: &str) -> &str {
        &self.keys[desk]
    }

    fn customer_ids(&self, labels: &[&str]) -> BTreeSet<i64> {
        labels.iter().map(|l| self.customer(l)).collect()
    }

    fn ticket_ids(&self, labels: &[&str]) -> BTreeSet<i64> {
        labels.iter().map(|l| self.ticket(l)).collect()
    }
}

fn id(value: &Value) -> i64 {
    value["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("a record with an id: {value}"))
}

/// The dealer of a record of customer `label` (its first letter).
fn dealer_of(label: &'static str) -> &'static str {
    &label[..1]
}

/// Reads `path` for its ETag and PATCHes `body` to it with `If-Match`; must answer 200.
async fn patch_ok(app: &TestApp, key: &str, path: &str, body: Value) -> Value {
    let read = call(app.get(key, path)).await;
    assert_eq!(read.status, 200, "GET {path}: {}", read.text);
    let etag = read.header("etag").expect("an ETag").to_owned();
    let reply = call(app.patch(key, path, &body).header("If-Match", etag)).await;
    assert_eq!(reply.status, 200, "PATCH {path} {body}: {}", reply.text);
    reply.body
}

/// A staff member of `unit` and a key acting as them.
async fn person(app: &TestApp, unit: i64, name: &str, role: &str, position: &str) -> (i64, String) {
    let staff = app
        .create(
            &app.keys.hq_admin,
            "/staff",
            &json!({"org_unit_id": unit, "name": name, "role": role, "position": position}),
        )
        .await;
    let key = app
        .create(
            &app.keys.hq_admin,
            "/keys",
            &json!({"role": role, "org_unit_id": unit, "staff_id": id(&staff), "label": name}),
        )
        .await;
    (id(&staff), key["key"].as_str().expect("a key").to_owned())
}

/// The network and its people: the fixture's HQ, regions and dealers A, B, C, a group in the
/// north with dealer D, and the advisors, consultants and technicians of the story.
async fn network(app: &TestApp) -> Story {
    let u = app.units;
    let group = app
        .create(
            &app.keys.hq_admin,
            "/network/units",
            &json!({"parent_id": u.north, "kind": "group", "code": "JJ-GROUP", "name": "京津汽车集团"}),
        )
        .await;
    let dealer_d = app
        .create(
            &app.keys.hq_admin,
            "/network/units",
            &json!({"parent_id": id(&group), "kind": "dealer", "dealer_type": "4s",
                    "code": "BJ-HD-4S", "name": "北京海淀4S店", "city": "北京"}),
        )
        .await;
    let d = id(&dealer_d);
    let d_admin = app
        .create(
            &app.keys.hq_admin,
            "/keys",
            &json!({"role": "dealer_admin", "org_unit_id": d, "label": "dealer d admin"}),
        )
        .await["key"]
        .as_str()
        .expect("a key")
        .to_owned();
    let (zheng, zheng_key) = person(app, u.dealer_a, "郑爽", "service", "service_advisor").await;
    let (liu, liu_key) = person(app, u.dealer_c, "刘洋", "service", "service_advisor").await;
    let (huang, _) = person(app, u.dealer_c, "黄蕾", "sales", "sales_consultant").await;
    let (c_tech, _) = person(app, u.dealer_c, "郭亮", "service", "technician").await;
    let (he, he_key) = person(app, d, "何平", "service", "service_advisor").await;
    let (d_tech, _) = person(app, d, "冯伟", "service", "technician").await;
    Story {
        units: HashMap::from([
            ("HQ", u.hq),
            ("N", u.north),
            ("S", u.south),
            ("G", id(&group)),
            ("A", u.dealer_a),
            ("B", u.dealer_b),
            ("C", u.dealer_c),
            ("D", d),
        ]),
        staff: HashMap::from([
            ("周杰", app.staff.a_service),
            ("郑爽", zheng),
            ("王芳", app.staff.a_sales),
            ("李强", app.staff.a_sales2),
            ("刘洋", liu),
            ("黄蕾", huang),
            ("何平", he),
        ]),
        customers: HashMap::new(),
        vehicles: HashMap::new(),
        bookings: HashMap::new(),
        orders: HashMap::new(),
        tickets: HashMap::new(),
        keys: HashMap::from([
            ("A", app.keys.a_admin.clone()),
            ("C", app.keys.c_admin.clone()),
            ("D", d_admin),
            ("周杰", app.keys.a_service.clone()),
            ("郑爽", zheng_key),
            ("刘洋", liu_key),
            ("何平", he_key),
        ]),
        technicians: HashMap::from([("A", app.staff.a_technician), ("C", c_tech), ("D", d_tech)]),
    }
}

/// Tells the story through the API, then moves every record to its time.
async fn tell(app: &TestApp) -> Story {
    let mut story = network(app).await;

    for (serial, (label, name)) in (1u32..).zip(CUSTOMERS) {
        let key = story.key(dealer_of(label)).to_owned();
        let customer = app
            .create(
                &key,
                "/customers",
                &json!({"name": name, "phones": [{"number": format!("1391234{serial:04}")}], "tags": []}),
            )
            .await;
        let vehicle = app
            .create(
                &key,
                "/vehicles",
                &json!({"vin": valid_vin(9_000 + serial), "brand": "红旗", "model": "H5",
                        "owner_id": id(&customer), "components": []}),
            )
            .await;
        story.customers.insert(label, id(&customer));
        story.vehicles.insert(label, id(&vehicle));
    }

    for (days, Booking(label, customer, channel, service_type, _, came)) in (1i64..).zip(&BOOKINGS)
    {
        let key = story.key(dealer_of(customer)).to_owned();
        let booked = app
            .create(
                &key,
                "/appointments",
                &json!({"customer_id": story.customer(customer), "vehicle_id": story.vehicles[customer],
                        "channel": channel, "service_type": service_type, "slot_start": slot(days)}),
            )
            .await;
        let path = format!("/appointments/{}", id(&booked));
        match came {
            Came::Arrived => {
                act_ok(app, &key, &path, "/arrive", &json!({})).await;
            }
            Came::Cancelled => {
                act_ok(app, &key, &path, "/cancel", &json!({})).await;
            }
            Came::NoShow => {}
        }
        story.bookings.insert(*label, id(&booked));
    }

    // Odometers only go up: each check-in reads more than the one before.
    for (km, v) in (1i64..).map(|n| n * 1_000).zip(&VISITS) {
        let order = repair(app, &story, v, km).await;
        story.orders.insert(v.label, order);
    }

    for case in &CASES {
        let ticket = ticket(app, &story, case).await;
        story.tickets.insert(case.0, ticket);
    }

    for answer in &ANSWERS {
        survey(app, &story, answer).await;
    }

    for lead in &LEADS {
        capture(app, &story, lead).await;
    }

    backdate(app, &story).await;
    story
}

/// Opens, works and settles one repair order through the API; returns its id.
async fn repair(app: &TestApp, story: &Story, v: &Visit, km: i64) -> i64 {
    let dealer = dealer_of(v.customer);
    let key = match v.desk {
        "admin" => story.key(dealer),
        advisor => story.key(advisor),
    };
    let mut new = json!({"complaint_code": v.issue});
    match v.opened_as {
        Booked(booking) => new["appointment_id"] = json!(story.bookings[booking]),
        Typed(_) | Plain => {
            new["customer_id"] = json!(story.customer(v.customer));
            new["vehicle_id"] = json!(story.vehicles[v.customer]);
        }
    }
    if let Typed(service_type) = v.opened_as {
        new["service_type"] = json!(service_type);
    }
    let order = app.create(key, "/repair-orders", &new).await;
    let ro = format!("/repair-orders/{}", id(&order));
    act_ok(
        app,
        key,
        &ro,
        "/check-in",
        &json!({"mileage_km": km, "items": []}),
    )
    .await;
    act_ok(
        app,
        key,
        &ro,
        "/dispatch",
        &json!({"technician_staff_id": story.technicians[dealer]}),
    )
    .await;
    if v.total_fen > 0 {
        act_ok(
            app,
            key,
            &ro,
            "/lines",
            &json!({"kind": "labour", "description": "保养工时", "quantity": 1, "unit_price_fen": v.total_fen}),
        )
        .await;
    }
    act_ok(
        app,
        key,
        &ro,
        "/status",
        &json!({"status": "quality_check"}),
    )
    .await;
    act_ok(app, key, &ro, "/quality-check", &json!({"passed": true})).await;
    let settled = act_ok(app, key, &ro, "/settle", &json!({})).await;
    assert_eq!(settled["total_fen"], v.total_fen, "{}: {settled}", v.label);
    // The advisor is whoever opened it; the service type the booking's, else the one given,
    // else a repair.
    let advisor = story.staff.get(v.desk).copied();
    assert_eq!(
        settled["advisor_staff_id"],
        json!(advisor),
        "{}: {settled}",
        v.label
    );
    let service_type = match v.opened_as {
        Booked(booking) => {
            BOOKINGS
                .iter()
                .find(|b| b.0 == booking)
                .expect("a booking of the story")
                .3
        }
        Typed(service_type) => service_type,
        Plain => "repair",
    };
    assert_eq!(
        settled["service_type"], service_type,
        "{}: {settled}",
        v.label
    );
    id(&settled)
}

/// Opens one ticket and moves it as the story says; returns its id.
async fn ticket(app: &TestApp, story: &Story, case: &Case) -> i64 {
    let Case(label, customer, channel, category, team, _, _, closed, first_contact) = *case;
    let key = story.key(dealer_of(customer));
    let mut new = json!({"customer_id": story.customer(customer), "channel": channel,
                         "category": category, "subject": format!("工单 {label}")});
    if let Some(team) = team {
        new["team"] = json!(team);
    }
    let created = app.create(key, "/tickets", &new).await;
    let path = format!("/tickets/{}", id(&created));
    if team.is_none() && !created["team"].is_null() {
        patch_ok(app, key, &path, json!({"team": null})).await;
    }
    let moves: &[&str] = match (closed, first_contact) {
        (Some(_), true) => &["resolved", "closed"],
        (Some(_), false) => &["in_progress", "resolved", "closed"],
        (None, _) if label == "t3" => &["in_progress"],
        (None, _) => &[],
    };
    for status in moves {
        patch_ok(app, key, &path, json!({"status": status})).await;
    }
    let stored = app.read(key, &path).await;
    if closed.is_some() {
        assert_eq!(
            stored["first_contact_resolution"], first_contact,
            "{label}: {stored}"
        );
    }
    assert_eq!(stored["team"], json!(team), "{label}: {stored}");
    id(&stored)
}

/// Answers one survey: a ticket's through the link its closing sent to the owner; a repair
/// order's (its settlement sent one, dated now) stored as answered when the story says.
async fn survey(app: &TestApp, story: &Story, answer: &Answer) {
    let Answer(touch, subject, nps, csat, answered) = *answer;
    match touch {
        Touch::Ticket => {
            let ticket = story.ticket(subject);
            let token = survey_token(app, ticket).await;
            let reply = call(
                app.client
                    .post(format!("{}/owner/surveys/{token}", app.base))
                    .json(&json!({"nps": nps, "csat": csat})),
            )
            .await;
            assert_eq!(reply.status, 201, "survey of {subject}: {}", reply.text);
            let (survey,): (i64,) = sqlx::query_as(
                "SELECT id FROM surveys WHERE subject_kind = 'ticket' AND subject_id = $1",
            )
            .bind(ticket)
            .fetch_one(app.db.pool())
            .await
            .expect("the ticket's survey");
            let closed = CASES
                .iter()
                .find(|c| c.0 == subject)
                .and_then(|c| c.7)
                .expect("a closed ticket of the story");
            set_times(
                &app.db,
                "surveys",
                survey,
                &[
                    ("sent_at", Some(cst(closed))),
                    ("answered_at", Some(cst(answered))),
                ],
            )
            .await;
        }
        Touch::RepairOrder => {
            let visit = VISITS
                .iter()
                .find(|v| v.label == subject)
                .expect("a visit of the story");
            sqlx::query(
                "INSERT INTO surveys (dealer_id, subject_kind, subject_id, customer_id, sent_at, \
                 answered_at, nps, csat) VALUES ($1, 'repair_order', $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (subject_kind, subject_id) DO UPDATE SET sent_at = excluded.sent_at, \
                 answered_at = excluded.answered_at, nps = excluded.nps, csat = excluded.csat",
            )
            .bind(story.unit(dealer_of(visit.customer)))
            .bind(story.orders[subject])
            .bind(story.customer(visit.customer))
            .bind(cst(visit.settled))
            .bind(cst(answered))
            .bind(nps)
            .bind(csat)
            .execute(app.db.pool())
            .await
            .expect("a repair order's survey");
        }
    }
}

/// The token of the survey link the closing of `ticket` sent to its owner.
async fn survey_token(app: &TestApp, ticket: i64) -> String {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT data FROM outbox WHERE template = 'satisfaction-survey'")
            .fetch_all(app.db.pool())
            .await
            .expect("the outbox");
    rows.iter()
        .map(|(data,)| serde_json::from_str::<Value>(data).expect("outbox data as JSON"))
        .find(|data| {
            data["subject-kind"] == "ticket"
                && data["subject-id"].as_str().and_then(|id| id.parse().ok()) == Some(ticket)
        })
        .and_then(|data| data["token"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no survey was sent for ticket {ticket}"))
}

/// Captures one lead and moves it to the stage the story says.
async fn capture(app: &TestApp, story: &Story, lead: &Lead) {
    let Lead(label, dealer, consultant, channel, captured, stage) = *lead;
    let key = story.key(dealer);
    let serial = LEADS
        .iter()
        .position(|l| l.0 == label)
        .expect("a lead of the story");
    let mut new = json!({"name": format!("线索 {label}"), "phone": format!("1370000{serial:04}"),
                         "channel": channel});
    if let Some(consultant) = consultant {
        new["consultant_id"] = json!(story.staff[consultant]);
    }
    let created = app.create(key, "/leads", &new).await;
    assert_eq!(
        created["consultant_id"],
        json!(consultant.map(|c| story.staff[c])),
        "{label}: {created}"
    );
    let path = format!("/leads/{}", id(&created));
    match stage {
        "new" => {}
        "lost" => {
            patch_ok(
                app,
                key,
                &path,
                json!({"stage": "lost", "lost_reason": "预算不足"}),
            )
            .await;
        }
        stage => {
            patch_ok(app, key, &path, json!({"stage": stage})).await;
        }
    }
    let at = cst(captured);
    set_times(
        &app.db,
        "leads",
        id(&created),
        &[("created_at", Some(at)), ("updated_at", Some(at + HOUR_MS))],
    )
    .await;
    sqlx::query("UPDATE lead_stage_events SET at = $1 WHERE lead_id = $2")
        .bind(at + HOUR_MS)
        .bind(id(&created))
        .execute(app.db.pool())
        .await
        .expect("the lead's stages dated");
}

/// Moves bookings, repair orders and tickets to the story's times. Done once all are made: a
/// comeback is found among the orders settled in the last 30 days when it is opened.
async fn backdate(app: &TestApp, story: &Story) {
    for Booking(label, _, _, _, at, came) in &BOOKINGS {
        let start = cst(at);
        set_times(
            &app.db,
            "appointments",
            story.bookings[label],
            &[
                ("slot_start", Some(start)),
                ("slot_end", Some(start + HOUR_MS)),
                ("arrived_at", (*came == Came::Arrived).then_some(start)),
                (
                    "cancelled_at",
                    (*came == Came::Cancelled).then_some(start - 24 * HOUR_MS),
                ),
                ("created_at", Some(start - 72 * HOUR_MS)),
                ("updated_at", Some(start)),
            ],
        )
        .await;
    }
    for v in &VISITS {
        let (opened, settled) = (cst(v.opened), cst(v.settled));
        // A free order is paid when it is settled.
        let paid = (v.total_fen == 0).then_some(settled);
        set_times(
            &app.db,
            "repair_orders",
            story.orders[v.label],
            &[
                ("created_at", Some(opened)),
                ("settled_at", Some(settled)),
                ("paid_at", paid),
                ("updated_at", Some(settled)),
            ],
        )
        .await;
    }
    for Case(label, _, _, _, _, opened, due, closed, _) in &CASES {
        let opened = cst(opened);
        let closed = closed.map(cst);
        let contacted = (closed.is_some() || *label == "t3").then_some(opened + HOUR_MS / 4);
        set_times(
            &app.db,
            "tickets",
            story.ticket(label),
            &[
                ("opened_at", Some(opened)),
                ("created_at", Some(opened)),
                ("first_contact_due", Some(opened + HOUR_MS)),
                ("first_contact_at", contacted),
                ("resolution_due", due.map(cst)),
                ("resolved_at", closed),
                ("closed_at", closed),
                ("updated_at", Some(closed.unwrap_or(opened))),
            ],
        )
        .await;
    }
}

/// One figure as the contract defines it: the records it counts, the part of them (or the
/// sum over them) it adds up, and its value, `None` when it counts nothing.
#[derive(Debug, Clone, Copy)]
struct Fig {
    count: i64,
    part: f64,
    value: Option<f64>,
}

/// A share or a mean: `part / count`.
fn ratio(count: i64, part: f64) -> Fig {
    Fig {
        count,
        part,
        value: (count > 0).then(|| part / count as f64),
    }
}

/// A sum (revenue): the value is the part.
fn sum(count: i64, part: f64) -> Fig {
    Fig {
        count,
        part,
        value: (count > 0).then_some(part),
    }
}

/// NPS: 100 × (promoters − detractors) / answers.
fn net(count: i64, part: f64) -> Fig {
    Fig {
        count,
        part,
        value: (count > 0).then(|| 100.0 * part / count as f64),
    }
}

/// LTV over customers of `tenure_days` (from their first paid visit ever to the end of the
/// period) who spent `spend_fen` in the 30-day period: mean yearly spend × mean tenure in years.
fn ltv(spend_fen: f64, tenure_days: &[f64]) -> Fig {
    let count = tenure_days.len() as f64;
    let period_years = 30.0 / 365.25;
    let tenure_years: f64 = tenure_days.iter().map(|d| d / 365.25).sum();
    Fig {
        count: tenure_days.len() as i64,
        part: spend_fen,
        value: Some(spend_fen / count / period_years * (tenure_years / count)),
    }
}

const NOTHING: Fig = Fig {
    count: 0,
    part: 0.0,
    value: None,
};

/// Every KPI of the contract, in its order.
const KPIS: [&str; 15] = [
    "fcr",
    "aht",
    "backlog",
    "csat",
    "csat_satisfied",
    "nps",
    "return_rate",
    "ltv",
    "appointment_conversion",
    "time_between_visits",
    "first_time_fix",
    "repair_duration",
    "revenue",
    "lead_conversion",
    "churn",
];

/// A unit's scorecard: every KPI.
struct Card {
    fcr: Fig,
    aht: Fig,
    backlog: Fig,
    csat: Fig,
    csat_satisfied: Fig,
    nps: Fig,
    return_rate: Fig,
    ltv: Fig,
    appointment_conversion: Fig,
    time_between_visits: Fig,
    first_time_fix: Fig,
    repair_duration: Fig,
    revenue: Fig,
    lead_conversion: Fig,
    churn: Fig,
}

impl Card {
    /// The figures in the order of [`KPIS`].
    fn figures(&self) -> [Fig; 15] {
        [
            self.fcr,
            self.aht,
            self.backlog,
            self.csat,
            self.csat_satisfied,
            self.nps,
            self.return_rate,
            self.ltv,
            self.appointment_conversion,
            self.time_between_visits,
            self.first_time_fix,
            self.repair_duration,
            self.revenue,
            self.lead_conversion,
            self.churn,
        ]
    }
}

/// A unit without a record: every figure counts nothing.
const EMPTY: Card = Card {
    fcr: NOTHING,
    aht: NOTHING,
    backlog: NOTHING,
    csat: NOTHING,
    csat_satisfied: NOTHING,
    nps: NOTHING,
    return_rate: NOTHING,
    ltv: NOTHING,
    appointment_conversion: NOTHING,
    time_between_visits: NOTHING,
    first_time_fix: NOTHING,
    repair_duration: NOTHING,
    revenue: NOTHING,
    lead_conversion: NOTHING,
    churn: NOTHING,
};

/// Dealer A (北京朝阳4S店).
fn dealer_a() -> Card {
    Card {
        // Closed in the period t0, t1, t2, t4; at the first contact t1, t4.
        fcr: ratio(4, 2.0),
        // t0 552 h + t1 2 h + t2 48 h + t4 1 h = 603 h = 2 170 800 s.
        aht: ratio(4, 2_170_800.0),
        // Opened t1 to t6; late t0 (due 11-04, closed 11-20), t2 (closed a day late), t3 (open
        // past 11-11). Not t_old (closed before the period), t5 (no deadline), t6 (due after
        // the period).
        backlog: ratio(6, 3.0),
        // t1 5, t2 3, t4 4, a2 4, a3 1.
        csat: ratio(5, 17.0),
        // t1, t4, a2.
        csat_satisfied: ratio(5, 3.0),
        // Promoters t1 10, t4 9; detractors t2 6, a3 2; a2 7 is passive.
        nps: net(5, 0.0),
        // Paid visits by A1 (3), A2 (1), A5 (1); A4's is free.
        return_rate: ratio(3, 1.0),
        // Spent 80 000 + 50 000 + 30 000 + 60 000 + 15 000; first paid visits A1 05-10
        // (204.5 days before the end), A2 10-15 (46.5), A5 11-21 (9.5).
        ltv: ltv(235_000.0, &[204.5, 46.5, 9.5]),
        // Booked A2, A5, A1 (twice: came once), A4, A6; all came but A6.
        appointment_conversion: ratio(5, 4.0),
        // A1 11-03 → 11-17 → 11-27: 24 days, 2 gaps.
        time_between_visits: ratio(2, 24.0),
        // Settled a2, a3, a4, a5, a9, a10; a3 came back for a2.
        first_time_fix: ratio(6, 5.0),
        // 3 + 2 + 2 + 4 + 24 + 3 h.
        repair_duration: ratio(6, 38.0),
        // The same 6 orders (a9 is free).
        revenue: sum(6, 235_000.0),
        // Captured l1 to l5 (l6 is a December lead, l_prev an October one); won l1, l3, l5.
        lead_conversion: ratio(5, 3.0),
        // Owners with 2 paid visits: A1 (usual 67 days, 3.5 since), A2 (26, 20.5), A3 (92,
        // 547.5: at risk), A6 (30, 41.5: within the margin of 45).
        churn: ratio(4, 1.0),
    }
}

/// Dealer C (广州天河4S店), the south.
fn dealer_c() -> Card {
    Card {
        // u1, u2, both at the first contact.
        fcr: ratio(2, 2.0),
        // u1 4 h + u2 48 h.
        aht: ratio(2, 187_200.0),
        // Opened u1, u2; u2 closed a day late.
        backlog: ratio(2, 1.0),
        // u1 4, u2 2, c1 5.
        csat: ratio(3, 11.0),
        // u1, c1.
        csat_satisfied: ratio(3, 2.0),
        // Promoters u1 9, c1 9; detractor u2 3.
        nps: net(3, 1.0),
        // C1 (2), C2 (1).
        return_rate: ratio(2, 1.0),
        // 100 000 + 120 000 + 45 000; first paid visits C1 11-05 (25.5 days), C2 08-12 (110.5).
        ltv: ltv(265_000.0, &[25.5, 110.5]),
        // C1 came, C3 did not.
        appointment_conversion: ratio(2, 1.0),
        // C1 11-05 → 11-25.
        time_between_visits: ratio(1, 20.0),
        // c1, c2, c3, no comeback.
        first_time_fix: ratio(3, 3.0),
        // 4 + 3 + 2 h.
        repair_duration: ratio(3, 9.0),
        revenue: sum(3, 265_000.0),
        // m1 won, m2 open.
        lead_conversion: ratio(2, 1.0),
        // C1 (20 days, 5.5 since), C2 (92, 18.5), C3 (59, 265.5: at risk).
        churn: ratio(3, 1.0),
    }
}

/// Dealer D (北京海淀4S店), alone in the group.
fn dealer_d() -> Card {
    Card {
        // v0 (not at the first contact), v1, v2.
        fcr: ratio(3, 2.0),
        // v0 576 h + v1 0.5 h + v2 1 h = 577.5 h.
        aht: ratio(3, 2_079_000.0),
        // Opened v1, v2, v3; late v0 (due in October, open into the period), v3.
        backlog: ratio(3, 2.0),
        // v1 5, d1 5; d2 gave no CSAT.
        csat: ratio(2, 10.0),
        csat_satisfied: ratio(2, 2.0),
        // v1 10, d1 10, d2 9: all promoters.
        nps: net(3, 3.0),
        // D1 (1), D2 (2).
        return_rate: ratio(2, 1.0),
        // 70 000 + 25 000 + 35 000; first paid visits D1 11-08 (22.5 days), D2 11-14 (16.5).
        ltv: ltv(130_000.0, &[22.5, 16.5]),
        // D1 came.
        appointment_conversion: ratio(1, 1.0),
        // D2 11-14 → 11-28.
        time_between_visits: ratio(1, 14.0),
        first_time_fix: ratio(3, 3.0),
        // 2 + 3 + 5 h.
        repair_duration: ratio(3, 10.0),
        revenue: sum(3, 130_000.0),
        // n1, n3 won; n2 open.
        lead_conversion: ratio(3, 2.0),
        // D2 (14 days, 2.5 since), D3 (20, 50.5: at risk).
        churn: ratio(2, 1.0),
    }
}

/// The north: A, B (nothing) and the group (D).
fn north() -> Card {
    Card {
        fcr: ratio(7, 4.0),
        // 603 h + 577.5 h.
        aht: ratio(7, 2_170_800.0 + 2_079_000.0),
        backlog: ratio(9, 5.0),
        csat: ratio(7, 27.0),
        csat_satisfied: ratio(7, 5.0),
        nps: net(8, 3.0),
        return_rate: ratio(5, 2.0),
        ltv: ltv(365_000.0, &[204.5, 46.5, 9.5, 22.5, 16.5]),
        appointment_conversion: ratio(6, 5.0),
        time_between_visits: ratio(3, 38.0),
        first_time_fix: ratio(9, 8.0),
        repair_duration: ratio(9, 48.0),
        revenue: sum(9, 365_000.0),
        lead_conversion: ratio(8, 5.0),
        churn: ratio(6, 2.0),
    }
}

/// HQ: the north and the south.
fn hq() -> Card {
    Card {
        fcr: ratio(9, 6.0),
        // 603 h + 52 h + 577.5 h = 1232.5 h.
        aht: ratio(9, 4_437_000.0),
        backlog: ratio(11, 6.0),
        csat: ratio(10, 38.0),
        csat_satisfied: ratio(10, 7.0),
        nps: net(11, 4.0),
        return_rate: ratio(7, 3.0),
        ltv: ltv(630_000.0, &[204.5, 46.5, 9.5, 25.5, 110.5, 22.5, 16.5]),
        appointment_conversion: ratio(8, 6.0),
        time_between_visits: ratio(4, 58.0),
        first_time_fix: ratio(12, 11.0),
        repair_duration: ratio(12, 57.0),
        revenue: sum(12, 630_000.0),
        lead_conversion: ratio(10, 6.0),
        churn: ratio(9, 3.0),
    }
}

/// The KPIs each breakdown splits.
fn splits(by: &str) -> &'static [&'static str] {
    match by {
        "channel" => &[
            "fcr",
            "aht",
            "backlog",
            "appointment_conversion",
            "lead_conversion",
        ],
        "category" | "team" => &["fcr", "aht", "backlog"],
        "touchpoint" => &["csat", "csat_satisfied", "nps"],
        "advisor" => &["first_time_fix", "repair_duration", "revenue"],
        "service_type" => &[
            "first_time_fix",
            "repair_duration",
            "revenue",
            "appointment_conversion",
        ],
        "consultant" => &["lead_conversion"],
        other => panic!("{other} is not a breakdown of a dimension"),
    }
}

/// Two numbers the same up to rounding.
fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

/// What differs from the story, gathered so one run reports every difference.
#[derive(Default)]
struct Mismatches(Vec<String>);

impl Mismatches {
    fn figure(&mut self, at: &str, kpi: &str, got: &Value, want: Fig) {
        let count = got["count"].as_i64() == Some(want.count);
        let part = got["part"].as_f64().is_some_and(|p| close(p, want.part));
        let value = match want.value {
            None => got["value"].is_null(),
            Some(v) => got["value"].as_f64().is_some_and(|g| close(g, v)),
        };
        if !(count && part && value) {
            self.0.push(format!(
                "{at} {kpi}: expected count {} part {} value {:?}, got {got}",
                want.count, want.part, want.value
            ));
        }
    }

    fn card(&mut self, at: &str, got: &Value, want: &Card) {
        for (kpi, fig) in KPIS.iter().zip(want.figures()) {
            self.figure(at, kpi, &got[kpi], fig);
        }
    }

    /// A row of a dimension: the figures listed, nothing (or an empty figure) for the other
    /// KPIs the breakdown splits, and no figure for those it does not.
    fn row(&mut self, at: &str, got: &Value, by: &str, want: &[(&str, Fig)]) {
        for kpi in KPIS {
            let figure = &got[kpi];
            match want.iter().find(|(k, _)| *k == kpi) {
                Some((_, fig)) => self.figure(at, kpi, figure, *fig),
                None if figure.is_null() => {}
                None if splits(by).contains(&kpi) => self.figure(at, kpi, figure, NOTHING),
                None => self.0.push(format!(
                    "{at} {kpi}: does not split by {by}, expected no figure, got {figure}"
                )),
            }
        }
    }

    fn same<T: PartialEq + std::fmt::Debug>(&mut self, at: &str, got: T, want: T) {
        if got != want {
            self.0.push(format!("{at}: expected {want:?}, got {got:?}"));
        }
    }

    fn done(self) {
        assert!(
            self.0.is_empty(),
            "{} differences from the story:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// `GET /kpis` over the period with `query` (`&by=…&unit_id=…`).
async fn report(app: &TestApp, key: &str, query: &str) -> Value {
    app.read(key, &format!("/kpis?from={FROM}&to={TO}{query}"))
        .await
}

/// A report's rows by key.
fn rows(report: &Value) -> BTreeMap<String, Value> {
    report["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("a report with rows: {report}"))
        .iter()
        .map(|r| (r["key"].as_str().unwrap_or_default().to_owned(), r.clone()))
        .collect()
}

/// The rows of a unit breakdown: exactly these units (labels of the story), each with its
/// name and scorecard.
fn unit_rows(
    m: &mut Mismatches,
    at: &str,
    story: &Story,
    report: &Value,
    want: &[(&str, &str, Card)],
) {
    let got = rows(report);
    let keys: BTreeSet<String> = want
        .iter()
        .map(|(u, _, _)| story.unit(u).to_string())
        .collect();
    m.same(
        &format!("{at} row keys"),
        got.keys().cloned().collect(),
        keys,
    );
    for (unit, name, card) in want {
        let Some(row) = got.get(&story.unit(unit).to_string()) else {
            continue;
        };
        let at = format!("{at} row {name}");
        m.same(
            &format!("{at} unit_id"),
            &row["unit_id"],
            &json!(story.unit(unit)),
        );
        m.same(&format!("{at} label"), &row["label"], &json!(name));
        m.card(&at, &row["kpis"], card);
    }
}

/// A row of a dimension as the story has it: its key, its label (when checked), its figures.
type DimensionRow<'a> = (&'a str, Option<&'a str>, Vec<(&'a str, Fig)>);

/// The rows of a dimension: exactly these keys, each with its label (when given) and figures.
fn dimension_rows(m: &mut Mismatches, at: &str, report: &Value, by: &str, want: &[DimensionRow]) {
    let got = rows(report);
    let keys: BTreeSet<String> = want.iter().map(|(k, _, _)| (*k).to_owned()).collect();
    m.same(
        &format!("{at} row keys"),
        got.keys().cloned().collect(),
        keys,
    );
    for (key, label, figures) in want {
        let Some(row) = got.get(*key) else {
            continue;
        };
        let at = format!("{at} row {key}");
        if let Some(label) = label {
            m.same(&format!("{at} label"), &row["label"], &json!(label));
        }
        m.row(&at, &row["kpis"], by, figures);
    }
}

async fn every_kpi_tells_the_story_at_every_level(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let story = tell(&app).await;
    let mut m = Mismatches::default();
    levels(&app, &story, &mut m).await;
    breakdowns(&app, &story, &mut m).await;
    previous(&app, &story, &mut m).await;
    series(&app, &story, &mut m).await;
    drill_down(&app, &story, &mut m).await;
    exports(&app, &story, &mut m).await;
    scope(&app, &story, &mut m).await;
    m.done();
}

/// HQ, its regions, the group and each dealer, down the tree and across it.
async fn levels(app: &TestApp, story: &Story, m: &mut Mismatches) {
    let analyst = &app.keys.hq_analyst;
    let top = report(app, analyst, "").await;
    m.same(
        "HQ unit",
        (
            &top["unit"]["id"],
            &top["unit"]["name"],
            &top["unit"]["kind"],
        ),
        (&json!(story.unit("HQ")), &json!("品牌总部"), &json!("hq")),
    );
    m.same("HQ from", &top["from"], &json!(FROM));
    m.same("HQ to", &top["to"], &json!(TO));
    m.same(
        "HQ previous_from",
        &top["previous_from"],
        &json!("2025-10-02"),
    );
    m.same("HQ previous_to", &top["previous_to"], &json!("2025-10-31"));
    m.same("HQ by", &top["by"], &json!("child"));
    m.card("HQ total", &top["total"], &hq());
    let regions = [("N", "华北大区", north()), ("S", "华南大区", dealer_c())];
    unit_rows(m, "HQ by child", story, &top, &regions);
    let by_region = report(app, analyst, "&by=region").await;
    unit_rows(m, "HQ by region", story, &by_region, &regions);
    let by_group = report(app, analyst, "&by=group").await;
    unit_rows(
        m,
        "HQ by group",
        story,
        &by_group,
        &[("G", "京津汽车集团", dealer_d())],
    );
    let by_dealer = report(app, analyst, "&by=dealer").await;
    let dealers = [
        ("A", "北京朝阳4S店", dealer_a()),
        ("B", "天津河西服务站", EMPTY),
        ("C", "广州天河4S店", dealer_c()),
        ("D", "北京海淀4S店", dealer_d()),
    ];
    unit_rows(m, "HQ by dealer", story, &by_dealer, &dealers);

    let north_report = report(app, analyst, &format!("&unit_id={}", story.unit("N"))).await;
    m.card("north total", &north_report["total"], &north());
    unit_rows(
        m,
        "north by child",
        story,
        &north_report,
        &[
            ("A", "北京朝阳4S店", dealer_a()),
            ("B", "天津河西服务站", EMPTY),
            ("G", "京津汽车集团", dealer_d()),
        ],
    );
    let group = report(app, analyst, &format!("&unit_id={}", story.unit("G"))).await;
    m.card("group total", &group["total"], &dealer_d());
    unit_rows(
        m,
        "group by child",
        story,
        &group,
        &[("D", "北京海淀4S店", dealer_d())],
    );

    // A dealer's own report: its total, and no units below it.
    let a = report(app, &app.keys.a_admin, "").await;
    m.same("A unit id", &a["unit"]["id"], &json!(story.unit("A")));
    m.card("A total", &a["total"], &dealer_a());
    m.same("A by child", &a["rows"], &json!([]));
    let b = report(app, analyst, &format!("&unit_id={}", story.unit("B"))).await;
    m.card("B total", &b["total"], &EMPTY);
}

/// Each breakdown that is not a unit, across HQ and within dealer A.
async fn breakdowns(app: &TestApp, story: &Story, m: &mut Mismatches) {
    let analyst = &app.keys.hq_analyst;

    let by = report(app, analyst, "&by=channel").await;
    m.card("HQ by channel total", &by["total"], &hq());
    dimension_rows(
        m,
        "HQ by channel",
        &by,
        "channel",
        &[
            // Tickets: hotline t0, t1, t4, u1, u2 closed (552 + 2 + 1 + 4 + 48 = 607 h), all but
            // t0 at the first contact; opened t1, t4, u1, u2, v3, late t0, u2, v3.
            (
                "hotline",
                Some("hotline"),
                vec![
                    ("fcr", ratio(5, 4.0)),
                    ("aht", ratio(5, 607.0 * 3600.0)),
                    ("backlog", ratio(5, 3.0)),
                ],
            ),
            // Tickets: app t2, v0, v1 closed (48 + 576 + 0.5 h), v1 at the first contact;
            // opened t2, t6, v1, late t2, v0. Leads: l4 open, n1 won, n2 open.
            (
                "app",
                Some("app"),
                vec![
                    ("fcr", ratio(3, 1.0)),
                    ("aht", ratio(3, 624.5 * 3600.0)),
                    ("backlog", ratio(3, 2.0)),
                    ("lead_conversion", ratio(3, 1.0)),
                ],
            ),
            // Tickets: wechat v2 closed in an hour; opened t3 (late), v2.
            (
                "wechat",
                Some("wechat"),
                vec![
                    ("fcr", ratio(1, 1.0)),
                    ("aht", ratio(1, 3600.0)),
                    ("backlog", ratio(2, 1.0)),
                ],
            ),
            // Tickets: t5, open, without a deadline.
            ("email", Some("email"), vec![("backlog", ratio(1, 0.0))]),
            // Bookings online: A2, A4, D1 came; A1 (online: no show), A6, C3 did not.
            (
                "online",
                Some("online"),
                vec![("appointment_conversion", ratio(6, 3.0))],
            ),
            // Bookings by phone: A5, A1, C1, all came.
            (
                "phone",
                Some("phone"),
                vec![("appointment_conversion", ratio(3, 3.0))],
            ),
            // Leads: l1, m1 won, l2 lost.
            (
                "online_ad",
                Some("online_ad"),
                vec![("lead_conversion", ratio(3, 2.0))],
            ),
            // Leads: l3, n3 won, m2 open.
            (
                "walk_in",
                Some("walk_in"),
                vec![("lead_conversion", ratio(3, 2.0))],
            ),
            (
                "referral",
                Some("referral"),
                vec![("lead_conversion", ratio(1, 1.0))],
            ),
        ],
    );

    let by = report(app, analyst, "&by=category").await;
    dimension_rows(
        m,
        "HQ by category",
        &by,
        "category",
        &[
            // Closed t0, t1, u1, u2, v0 (552 + 2 + 4 + 48 + 576 = 1182 h), t1, u1, u2 at the
            // first contact; opened t1, t3, t6, u1, u2, v3, late t0, t3, u2, v0, v3.
            (
                "complaint",
                Some("complaint"),
                vec![
                    ("fcr", ratio(5, 3.0)),
                    ("aht", ratio(5, 1182.0 * 3600.0)),
                    ("backlog", ratio(6, 5.0)),
                ],
            ),
            // Closed t2, t4, v1, v2 (48 + 1 + 0.5 + 1 = 50.5 h), all but t2 at the first
            // contact; opened t2, t4, t5, v1, v2, late t2.
            (
                "inquiry",
                Some("inquiry"),
                vec![
                    ("fcr", ratio(4, 3.0)),
                    ("aht", ratio(4, 50.5 * 3600.0)),
                    ("backlog", ratio(5, 1.0)),
                ],
            ),
        ],
    );

    let by = report(app, analyst, "&by=team").await;
    dimension_rows(
        m,
        "HQ by team",
        &by,
        "team",
        &[
            // As complaints, but t6 (a complaint) is the call centre's: opened t1, t3, u1,
            // u2, v3, and all five late ones.
            (
                "售后服务部",
                Some("售后服务部"),
                vec![
                    ("fcr", ratio(5, 3.0)),
                    ("aht", ratio(5, 1182.0 * 3600.0)),
                    ("backlog", ratio(5, 5.0)),
                ],
            ),
            // Closed t2, t4, v1, v2; opened t2, t4, t6, v1, v2, late t2.
            (
                "客服中心",
                Some("客服中心"),
                vec![
                    ("fcr", ratio(4, 3.0)),
                    ("aht", ratio(4, 50.5 * 3600.0)),
                    ("backlog", ratio(5, 1.0)),
                ],
            ),
            // t5, nobody's.
            ("unassigned", None, vec![("backlog", ratio(1, 0.0))]),
        ],
    );

    let by = report(app, analyst, "&by=touchpoint").await;
    dimension_rows(
        m,
        "HQ by touchpoint",
        &by,
        "touchpoint",
        &[
            // t1 10/5, t2 6/3, t4 9/4, u1 9/4, u2 3/2, v1 10/5: CSAT 23, satisfied 4;
            // promoters 4, detractors 2.
            (
                "ticket",
                Some("ticket"),
                vec![
                    ("csat", ratio(6, 23.0)),
                    ("csat_satisfied", ratio(6, 4.0)),
                    ("nps", net(6, 2.0)),
                ],
            ),
            // a2 7/4, a3 2/1, c1 9/5, d1 10/5, d2 9/–: CSAT 15 over 4, satisfied 3; promoters
            // c1, d1, d2, detractor a3.
            (
                "repair_order",
                Some("repair_order"),
                vec![
                    ("csat", ratio(4, 15.0)),
                    ("csat_satisfied", ratio(4, 3.0)),
                    ("nps", net(5, 2.0)),
                ],
            ),
        ],
    );

    let staff = |name: &str| story.staff[name].to_string();
    let by = report(app, analyst, "&by=advisor").await;
    let zhou = staff("周杰");
    let zheng = staff("郑爽");
    let liu = staff("刘洋");
    let he = staff("何平");
    // 周杰: a2 (came back), a3, a4, a10: 3 + 2 + 2 + 3 h, 80 000 + 50 000 + 30 000 + 15 000.
    let zhou_row = vec![
        ("first_time_fix", ratio(4, 3.0)),
        ("repair_duration", ratio(4, 10.0)),
        ("revenue", sum(4, 175_000.0)),
    ];
    // 郑爽: a5 (4 h, 60 000) and the free a9 (24 h).
    let zheng_row = vec![
        ("first_time_fix", ratio(2, 2.0)),
        ("repair_duration", ratio(2, 28.0)),
        ("revenue", sum(2, 60_000.0)),
    ];
    dimension_rows(
        m,
        "HQ by advisor",
        &by,
        "advisor",
        &[
            (zhou.as_str(), Some("周杰"), zhou_row.clone()),
            (zheng.as_str(), Some("郑爽"), zheng_row.clone()),
            // 刘洋: c1 (4 h), c2 (3 h).
            (
                &liu,
                Some("刘洋"),
                vec![
                    ("first_time_fix", ratio(2, 2.0)),
                    ("repair_duration", ratio(2, 7.0)),
                    ("revenue", sum(2, 220_000.0)),
                ],
            ),
            // 何平: d1, d2, d3.
            (
                &he,
                Some("何平"),
                vec![
                    ("first_time_fix", ratio(3, 3.0)),
                    ("repair_duration", ratio(3, 10.0)),
                    ("revenue", sum(3, 130_000.0)),
                ],
            ),
            // c3, opened with the admin's key.
            (
                "unassigned",
                None,
                vec![
                    ("first_time_fix", ratio(1, 1.0)),
                    ("repair_duration", ratio(1, 2.0)),
                    ("revenue", sum(1, 45_000.0)),
                ],
            ),
        ],
    );
    let by = report(app, &app.keys.a_admin, "&by=advisor").await;
    dimension_rows(
        m,
        "A by advisor",
        &by,
        "advisor",
        &[
            (zhou.as_str(), Some("周杰"), zhou_row),
            (zheng.as_str(), Some("郑爽"), zheng_row),
        ],
    );

    let by = report(app, analyst, "&by=service_type").await;
    dimension_rows(
        m,
        "HQ by service_type",
        &by,
        "service_type",
        &[
            // Repairs a2 (came back), a3, c2, d2: 3 + 2 + 3 + 3 h; 80 000 + 50 000 + 120 000
            // + 25 000. Booked for repair: A1 (ap3), C3, neither came.
            (
                "repair",
                Some("repair"),
                vec![
                    ("first_time_fix", ratio(4, 3.0)),
                    ("repair_duration", ratio(4, 11.0)),
                    ("revenue", sum(4, 275_000.0)),
                    ("appointment_conversion", ratio(2, 0.0)),
                ],
            ),
            // Maintenance a4, a5, a10, c1, d1, d3: 2 + 4 + 3 + 4 + 2 + 5 h; 30 000 + 60 000 +
            // 15 000 + 100 000 + 70 000 + 35 000. Booked A2, A5, A1 (ap4), A6, C1, D1; all
            // but A6 came.
            (
                "maintenance",
                Some("maintenance"),
                vec![
                    ("first_time_fix", ratio(6, 6.0)),
                    ("repair_duration", ratio(6, 20.0)),
                    ("revenue", sum(6, 310_000.0)),
                    ("appointment_conversion", ratio(6, 5.0)),
                ],
            ),
            // a9, booked by A4, who came.
            (
                "warranty",
                Some("warranty"),
                vec![
                    ("first_time_fix", ratio(1, 1.0)),
                    ("repair_duration", ratio(1, 24.0)),
                    ("revenue", sum(1, 0.0)),
                    ("appointment_conversion", ratio(1, 1.0)),
                ],
            ),
            // c3.
            (
                "inspection",
                Some("inspection"),
                vec![
                    ("first_time_fix", ratio(1, 1.0)),
                    ("repair_duration", ratio(1, 2.0)),
                    ("revenue", sum(1, 45_000.0)),
                ],
            ),
        ],
    );

    let by = report(app, analyst, "&by=consultant").await;
    let wang = staff("王芳");
    let li = staff("李强");
    let huang = staff("黄蕾");
    dimension_rows(
        m,
        "HQ by consultant",
        &by,
        "consultant",
        &[
            // l1, l5 won, l2 lost.
            (
                wang.as_str(),
                Some("王芳"),
                vec![("lead_conversion", ratio(3, 2.0))],
            ),
            // l3 won, l4 open.
            (
                li.as_str(),
                Some("李强"),
                vec![("lead_conversion", ratio(2, 1.0))],
            ),
            (
                huang.as_str(),
                Some("黄蕾"),
                vec![("lead_conversion", ratio(2, 1.0))],
            ),
            // D has no consultant: n1, n3 won, n2 open.
            ("unassigned", None, vec![("lead_conversion", ratio(3, 2.0))]),
        ],
    );
}

/// The previous period, 2 to 31 October.
async fn previous(app: &TestApp, story: &Story, m: &mut Mismatches) {
    let top = report(app, &app.keys.hq_analyst, "").await;
    let before = &top["previous"];
    // Settled a6 (40 000), d6 (30 000), a12 (25 000).
    m.figure(
        "HQ previous",
        "revenue",
        &before["revenue"],
        sum(3, 95_000.0),
    );
    // Paid visits by A2, D3, A6, once each.
    m.figure(
        "HQ previous",
        "return_rate",
        &before["return_rate"],
        ratio(3, 0.0),
    );
    // Before 1 November: A3 (at risk), A6 (30 days, 11.5 since), C3 (at risk), D3 (20 days,
    // 20.5 since); A1, A2 and C2 had one paid visit.
    m.figure("HQ previous", "churn", &before["churn"], ratio(4, 2.0));
    // t_old closed, at the first contact.
    m.figure("HQ previous", "fcr", &before["fcr"], ratio(1, 1.0));
    // Opened t_old, t0, v0; late t_old (closed 10-25, due 10-21) and v0 (still open); t0 is
    // due after the period.
    m.figure("HQ previous", "backlog", &before["backlog"], ratio(3, 2.0));
    m.figure("HQ previous", "nps", &before["nps"], net(1, 1.0));
    m.figure(
        "HQ previous",
        "lead_conversion",
        &before["lead_conversion"],
        ratio(1, 1.0),
    );
    m.figure(
        "HQ previous",
        "appointment_conversion",
        &before["appointment_conversion"],
        NOTHING,
    );
    let a = report(app, &app.keys.a_admin, "").await;
    m.figure(
        "A previous",
        "revenue",
        &a["previous"]["revenue"],
        sum(2, 65_000.0),
    );
    m.figure(
        "A previous",
        "backlog",
        &a["previous"]["backlog"],
        ratio(2, 1.0),
    );
    m.figure(
        "A previous",
        "churn",
        &a["previous"]["churn"],
        ratio(2, 1.0),
    );
    m.same("A previous unit", &a["unit"]["id"], &json!(story.unit("A")));
}

/// Revenue day by day, for HQ and each dealer.
async fn series(app: &TestApp, story: &Story, m: &mut Mismatches) {
    let series = app
        .read(
            &app.keys.hq_analyst,
            &format!("/kpis/series?kpi=revenue&from={FROM}&to={TO}&interval=day&by=dealer"),
        )
        .await;
    let days: Vec<String> = (1..=30).map(|d| format!("2025-11-{d:02}")).collect();
    m.same("series buckets", &series["buckets"], &json!(days));
    m.same("series kpi", &series["kpi"], &json!("revenue"));
    m.same("series interval", &series["interval"], &json!("day"));
    // Each day's settled orders; the free a9 on the 20th is a revenue of 0, a day without
    // any order has none.
    let each_day = |orders: &[(u32, i64)]| -> Value {
        (1..=30u32)
            .map(|d| {
                orders
                    .iter()
                    .find(|(day, _)| *day == d)
                    .map_or(Value::Null, |(_, fen)| json!(*fen as f64))
            })
            .collect()
    };
    let total = each_day(&[
        (3, 80_000),
        (5, 100_000),
        (8, 70_000),
        (10, 60_000),
        (12, 45_000),
        (14, 25_000),
        (17, 50_000),
        (20, 0),
        (21, 15_000),
        (25, 120_000),
        (27, 30_000),
        (28, 35_000),
    ]);
    m.same("series total", numbers(&series["total"]), numbers(&total));
    let got = series["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["unit_id"].as_i64().unwrap_or_default(),
                        r["values"].clone(),
                    )
                })
                .collect::<HashMap<i64, Value>>()
        })
        .unwrap_or_default();
    let a = each_day(&[
        (3, 80_000),
        (10, 60_000),
        (17, 50_000),
        (20, 0),
        (21, 15_000),
        (27, 30_000),
    ]);
    let b = each_day(&[]);
    for (unit, want) in [("A", a), ("B", b)] {
        let values = got.get(&story.unit(unit)).cloned().unwrap_or(Value::Null);
        m.same(
            &format!("series row {unit}"),
            numbers(&values),
            numbers(&want),
        );
    }
    m.same("series rows", got.len(), 4);
}

/// A series' values as numbers (`None` for null), so 80000 and 80000.0 compare equal.
fn numbers(values: &Value) -> Vec<Option<f64>> {
    values
        .as_array()
        .map(|v| v.iter().map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// Every record behind a figure, all pages of `GET /kpis/records` with `query`.
async fn records(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .read(
                key,
                &format!("/kpis/records?from={FROM}&to={TO}{query}{cursor}"),
            )
            .await;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return items,
        }
    }
}

fn ids_of(items: &[Value]) -> BTreeSet<i64> {
    items.iter().map(id).collect()
}

/// The records behind the backlog, the return rate and churn.
async fn drill_down(app: &TestApp, story: &Story, m: &mut Mismatches) {
    let analyst = &app.keys.hq_analyst;
    let late = story.ticket_ids(&["t0", "t2", "t3", "u2", "v0", "v3"]);

    let breached = records(app, analyst, "&kpi=backlog&counted=true").await;
    m.same("backlog counted records", ids_of(&breached), late.clone());
    for item in &breached {
        m.same(
            &format!("backlog record {} kind", id(item)),
            &item["kind"],
            &json!("ticket"),
        );
        m.same(
            &format!("backlog record {} counted", id(item)),
            &item["counted"],
            &json!(true),
        );
    }
    let u2 = breached.iter().find(|t| id(t) == story.ticket("u2"));
    m.same(
        "backlog record u2 dealer",
        u2.map(|t| {
            (
                t["dealer_id"].clone(),
                t["dealer_name"].clone(),
                t["customer_name"].clone(),
            )
        }),
        Some((json!(story.unit("C")), json!("广州天河4S店"), json!("林芳"))),
    );
    // Two to a page: the same six, page after page.
    let paged = records(app, analyst, "&kpi=backlog&counted=true&limit=2").await;
    m.same(
        "backlog counted records, 2 a page",
        ids_of(&paged),
        late.clone(),
    );
    m.same(
        "backlog counted records, 2 a page, once each",
        paged.len(),
        6,
    );

    // Without `counted`: every ticket opened in the period, those late marked.
    let opened = story.ticket_ids(&[
        "t1", "t2", "t3", "t4", "t5", "t6", "u1", "u2", "v1", "v2", "v3",
    ]);
    let all = records(app, analyst, "&kpi=backlog").await;
    let listed = ids_of(&all);
    m.same(
        "backlog records include those opened",
        opened.is_subset(&listed),
        true,
    );
    for item in all.iter().filter(|t| opened.contains(&id(t))) {
        m.same(
            &format!("backlog record {} counted", id(item)),
            item["counted"].as_bool(),
            Some(late.contains(&id(item))),
        );
    }

    // One team's late tickets.
    let team = records(
        app,
        analyst,
        "&kpi=backlog&by=team&key=售后服务部&counted=true",
    )
    .await;
    m.same(
        "backlog records of 售后服务部",
        ids_of(&team),
        story.ticket_ids(&["t0", "t3", "u2", "v0", "v3"]),
    );

    let returning = records(app, analyst, "&kpi=return_rate&counted=true").await;
    m.same(
        "return_rate counted records",
        ids_of(&returning),
        story.customer_ids(&["A1", "C1", "D2"]),
    );
    for item in &returning {
        m.same(
            &format!("return_rate record {} kind", id(item)),
            &item["kind"],
            &json!("customer"),
        );
    }
    let visitors = records(app, analyst, "&kpi=return_rate").await;
    m.same(
        "return_rate records",
        ids_of(&visitors),
        story.customer_ids(&["A1", "A2", "A5", "C1", "C2", "D1", "D2"]),
    );

    // Owners at risk; the value is the days since the last paid visit, the detail the usual
    // interval.
    let at_risk = records(app, analyst, "&kpi=churn&counted=true").await;
    m.same(
        "churn counted records",
        ids_of(&at_risk),
        story.customer_ids(&["A3", "C3", "D3"]),
    );
    for (label, since, usual) in [("A3", 547.5, 92.0), ("C3", 265.5, 59.0), ("D3", 50.5, 20.0)] {
        let Some(item) = at_risk.iter().find(|c| id(c) == story.customer(label)) else {
            continue;
        };
        m.same(
            &format!("churn record {label} kind"),
            &item["kind"],
            &json!("customer"),
        );
        m.same(
            &format!("churn record {label} days since the last visit"),
            item["value"].as_f64().is_some_and(|v| close(v, since)),
            true,
        );
        m.same(
            &format!(
                "churn record {label} usual interval {}",
                item["usual_interval_days"]
            ),
            item["usual_interval_days"]
                .as_f64()
                .is_some_and(|v| close(v, usual)),
            true,
        );
    }
    let owners = records(app, analyst, "&kpi=churn").await;
    m.same(
        "churn records",
        ids_of(&owners),
        story.customer_ids(&["A1", "A2", "A3", "A6", "C1", "C2", "C3", "D2", "D3"]),
    );
    // A dealer sees its own.
    let own = records(app, &app.keys.a_admin, "&kpi=churn&counted=true").await;
    m.same(
        "A's churn records",
        ids_of(&own),
        story.customer_ids(&["A3"]),
    );

    // Phone numbers never appear.
    let everything = serde_json::to_string(&[&breached, &returning, &at_risk, &owners])
        .expect("records as JSON");
    m.same(
        "records show no phone",
        everything.contains("1391234"),
        false,
    );
}

/// The late tickets exported as CSV and as an Excel workbook.
async fn exports(app: &TestApp, story: &Story, m: &mut Mismatches) {
    let late: BTreeSet<String> = story
        .ticket_ids(&["t0", "t2", "t3", "u2", "v0", "v3"])
        .iter()
        .map(i64::to_string)
        .collect();
    let path = format!("/kpis/records/export?kpi=backlog&from={FROM}&to={TO}&counted=true");

    let csv = download(app, &format!("{path}&format=csv")).await;
    m.same("csv status", csv.status, 200);
    m.same(
        "csv content type",
        csv.header("content-type"),
        Some("text/csv; charset=utf-8"),
    );
    m.same(
        "csv disposition",
        csv.header("content-disposition"),
        Some("attachment; filename=\"kpi-backlog-2025-11-01-2025-11-30.csv\""),
    );
    m.same(
        "csv starts with a BOM",
        csv.bytes.starts_with(b"\xEF\xBB\xBF"),
        true,
    );
    let text = String::from_utf8_lossy(
        csv.bytes
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(&csv.bytes),
    );
    let table: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("a CSV record").iter().map(str::to_owned).collect())
        .collect();
    check_table(m, "csv", &table, &late);
    m.same("csv shows no phone", text.contains("1391234"), false);

    let xlsx = download(app, &format!("{path}&format=xlsx")).await;
    m.same("xlsx status", xlsx.status, 200);
    m.same(
        "xlsx content type",
        xlsx.header("content-type"),
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    );
    m.same(
        "xlsx disposition",
        xlsx.header("content-disposition"),
        Some("attachment; filename=\"kpi-backlog-2025-11-01-2025-11-30.xlsx\""),
    );
    m.same("xlsx is a zip", xlsx.bytes.starts_with(b"PK"), true);
    let sheet: Vec<Vec<String>> = match Xlsx::new(Cursor::new(xlsx.bytes.clone())) {
        Ok(mut workbook) => match workbook.worksheet_range_at(0) {
            Some(Ok(range)) => range
                .rows()
                .map(|cells| cells.iter().map(cell_text).collect())
                .collect(),
            other => {
                m.0.push(format!(
                    "xlsx: no first sheet: {:?}",
                    other.map(|r| r.err())
                ));
                Vec::new()
            }
        },
        Err(e) => {
            m.0.push(format!("xlsx: not a workbook: {e}"));
            Vec::new()
        }
    };
    check_table(m, "xlsx", &sheet, &late);
    m.same("xlsx has the csv's header", sheet.first(), table.first());
}

/// The columns of an export, in Chinese.
const EXPORT_HEADER: [&str; 10] = [
    "类型",
    "编号",
    "门店",
    "客户编号",
    "客户",
    "时间",
    "计入",
    "数值",
    "说明",
    "常规间隔(天)",
];

/// An exported table: the header, then one row per late ticket with its id (编号), marked as
/// counted (计入: 是).
fn check_table(m: &mut Mismatches, at: &str, table: &[Vec<String>], late: &BTreeSet<String>) {
    let Some((header, rows)) = table.split_first() else {
        m.0.push(format!("{at}: empty"));
        return;
    };
    m.same(
        &format!("{at} header"),
        header.as_slice(),
        EXPORT_HEADER.map(String::from).as_slice(),
    );
    m.same(&format!("{at} rows"), rows.len(), late.len());
    let ids: BTreeSet<String> = rows.iter().filter_map(|r| r.get(1).cloned()).collect();
    m.same(&format!("{at} ids"), &ids, late);
    for row in rows {
        m.same(&format!("{at} row width {row:?}"), row.len(), header.len());
        m.same(
            &format!("{at} row kind {row:?}"),
            row.first().map(String::as_str),
            Some("ticket"),
        );
        m.same(
            &format!("{at} row counted {row:?}"),
            row.get(6).map(String::as_str),
            Some("是"),
        );
    }
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 => format!("{f:.0}"),
        other => other.to_string(),
    }
}

/// An export, read as bytes (its media type checked against the API's document).
async fn download(app: &TestApp, path: &str) -> Reply {
    call(app.get(&app.keys.hq_analyst, path)).await
}

/// Who sees what: a dealer its own, a region its dealers, a partner nothing.
async fn scope(app: &TestApp, story: &Story, m: &mut Mismatches) {
    let other_dealer = call(app.get(
        &app.keys.a_admin,
        &format!("/kpis?from={FROM}&to={TO}&unit_id={}", story.unit("C")),
    ))
    .await;
    m.same("A asking for C's KPIs", other_dealer.status, 404);
    let other_records = call(app.get(
        &app.keys.a_admin,
        &format!(
            "/kpis/records?kpi=churn&from={FROM}&to={TO}&unit_id={}",
            story.unit("C")
        ),
    ))
    .await;
    m.same("A asking for C's records", other_records.status, 404);

    let manager = &app.keys.north_manager;
    let region = report(app, manager, "").await;
    m.same(
        "north manager's unit",
        &region["unit"]["id"],
        &json!(story.unit("N")),
    );
    m.card("north manager's total", &region["total"], &north());
    let dealers = report(app, manager, "&by=dealer").await;
    let ids: BTreeSet<String> = rows(&dealers).into_keys().collect();
    let north_dealers: BTreeSet<String> = ["A", "B", "D"]
        .iter()
        .map(|u| story.unit(u).to_string())
        .collect();
    m.same("north manager's dealers", ids, north_dealers);
    for unit in ["S", "HQ", "C"] {
        let reply = call(app.get(
            manager,
            &format!("/kpis?from={FROM}&to={TO}&unit_id={}", story.unit(unit)),
        ))
        .await;
        m.same(
            &format!("north manager asking for {unit}"),
            reply.status,
            404,
        );
    }

    let partner = call(app.get(&app.keys.partner, &format!("/kpis?from={FROM}&to={TO}"))).await;
    m.same("a partner's KPIs", partner.status, 403);
    let unknown = call(app.get(
        &app.keys.hq_analyst,
        &format!("/kpis?from={FROM}&to={TO}&by=weather"),
    ))
    .await;
    m.same("an unknown breakdown", unknown.status, 400);
}
