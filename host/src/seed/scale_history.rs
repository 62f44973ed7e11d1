//! The two years of history the KPIs read, for generated customers of a benchmark network:
//! repair orders (some from appointments, a few comebacks) with their labour and parts lines,
//! appointments that did not turn
//! into a visit, tickets with SLA deadlines (some missed), surveys after visits and tickets,
//! and sales leads.
//!
//! Millions of rows: each table's ids are given here (so rows can name each other without a
//! round trip) and the values are written into the statements as literals, 500 rows a
//! statement. Bound parameters would cost a statement per 7 repair orders on SQLite
//! ([`super::MAX_PARAMS_SQLITE`]); every value is a number or text from the generator's own
//! lists, and text is quoted.

use std::fmt::Write as _;

use rand::Rng;
use rand::rngs::StdRng;
use sqlx::{AnyConnection, Executor};

use super::make::{self, DAY_MS};
use super::names;
use super::plan::DealerCtx;
use crate::error::Result;
use crate::service::appointments::Channel;

const HOUR_MS: i64 = 3_600_000;
/// How far back the history goes.
const YEARS: i64 = 2;
/// Rows per statement.
const ROWS_PER_STATEMENT: usize = 500;

/// (service type, weight); a warranty visit costs the owner nothing.
const SERVICE_TYPES: [(&str, u32); 6] = [
    ("maintenance", 50),
    ("repair", 30),
    ("warranty", 8),
    ("inspection", 6),
    ("campaign", 4),
    ("other", 2),
];
/// How appointments are booked: the values the appointments module reads back.
const BOOKING_CHANNELS: [&str; 2] = [Channel::Online.as_str(), Channel::Phone.as_str()];
const LEAD_CHANNELS: [&str; 5] = ["online_ad", "auto_show", "walk_in", "app", "referral"];
const LEAD_STAGES: [(&str, u32); 6] = [
    ("new", 12),
    ("contacted", 15),
    ("test_drive", 10),
    ("negotiating", 13),
    ("won", 22),
    ("lost", 28),
];
/// (service type, labour line, part line)
const LINES: [(&str, &str, &str); 4] = [
    ("maintenance", "常规保养工时", "机油机滤套装"),
    ("repair", "故障诊断与维修工时", "刹车片"),
    ("inspection", "车辆检测工时", "空调滤芯"),
    ("campaign", "召回升级工时", "电池冷却管"),
];
const SURVEY_COMMENTS: [&str; 4] = [
    "等待时间太长",
    "价格偏高，没有提前说明",
    "问题没有彻底解决",
    "服务顾问态度一般",
];

/// The next id of each table, continuing after what is stored.
pub struct Ids {
    repair_order: i64,
    appointment: i64,
    ticket: i64,
    survey: i64,
    lead: i64,
    line: i64,
}

const TABLES: [&str; 6] = [
    "repair_orders",
    "appointments",
    "tickets",
    "surveys",
    "leads",
    "repair_order_lines",
];

impl Ids {
    pub async fn load(conn: &mut AnyConnection) -> Result<Ids> {
        let mut next = [0; 6];
        for (n, table) in next.iter_mut().zip(TABLES) {
            let (max,): (i64,) =
                sqlx::query_as(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"))
                    .fetch_one(&mut *conn)
                    .await?;
            *n = max + 1;
        }
        Ok(Ids {
            repair_order: next[0],
            appointment: next[1],
            ticket: next[2],
            survey: next[3],
            lead: next[4],
            line: next[5],
        })
    }
}

/// Moves PostgreSQL's identity sequences past the ids given here, so the API's inserts that
/// follow do not collide with them. SQLite takes the next id from the table.
pub async fn sync_sequences(conn: &mut AnyConnection) -> Result<()> {
    if conn.backend_name() == <sqlx::Sqlite as sqlx::Database>::NAME {
        return Ok(());
    }
    for table in TABLES {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
             (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// One generated customer, as stored.
pub struct Owner<'a> {
    pub dealer: &'a DealerCtx,
    pub customer_id: i64,
    pub vehicle_id: Option<i64>,
    pub name: &'a str,
    pub phone: Option<&'a str>,
    pub created_at: i64,
}

/// A value written into a statement.
enum Lit<'a> {
    Int(i64),
    Opt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
}

/// Rows of one table, as literals.
struct Table {
    head: String,
    rows: Vec<String>,
}

impl Table {
    fn new(table: &str, columns: &[&str]) -> Table {
        Table {
            head: format!("INSERT INTO {table} ({}) VALUES ", columns.join(", ")),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, values: &[Lit<'_>]) {
        let mut row = String::from("(");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                row.push_str(", ");
            }
            match v {
                Lit::Int(n) | Lit::Opt(Some(n)) => {
                    let _ = write!(row, "{n}");
                }
                Lit::Opt(None) | Lit::OptText(None) => row.push_str("NULL"),
                Lit::Text(s) | Lit::OptText(Some(s)) => {
                    row.push('\'');
                    row.push_str(&s.replace('\'', "''"));
                    row.push('\'');
                }
            }
        }
        row.push(')');
        self.rows.push(row);
    }

    async fn execute(self, conn: &mut AnyConnection) -> Result<()> {
        for chunk in self.rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!("{}{}", self.head, chunk.join(", "));
            conn.execute(sql.as_str()).await?;
        }
        Ok(())
    }
}

/// Every table's rows of one batch of owners.
pub struct Batch {
    appointments: Table,
    repair_orders: Table,
    lines: Table,
    tickets: Table,
    surveys: Table,
    leads: Table,
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            appointments: Table::new(
                "appointments",
                &[
                    "id",
                    "dealer_id",
                    "customer_id",
                    "vehicle_id",
                    "channel",
                    "service_type",
                    "slot_start",
                    "slot_end",
                    "status",
                    "arrived_at",
                    "cancelled_at",
                    "repair_order_id",
                    "created_at",
                    "updated_at",
                ],
            ),
            repair_orders: Table::new(
                "repair_orders",
                &[
                    "id",
                    "dealer_id",
                    "customer_id",
                    "vehicle_id",
                    "appointment_id",
                    "complaint_code",
                    "status",
                    "technician_staff_id",
                    "advisor_staff_id",
                    "service_type",
                    "comeback_of_id",
                    "labour_fen",
                    "parts_fen",
                    "total_fen",
                    "paid_fen",
                    "settled_at",
                    "paid_at",
                    "created_at",
                    "updated_at",
                ],
            ),
            lines: Table::new(
                "repair_order_lines",
                &[
                    "id",
                    "repair_order_id",
                    "kind",
                    "description",
                    "quantity_centi",
                    "unit_price_fen",
                    "amount_fen",
                    "created_at",
                ],
            ),
            tickets: Table::new(
                "tickets",
                &[
                    "id",
                    "dealer_id",
                    "customer_id",
                    "vehicle_id",
                    "channel",
                    "category",
                    "subject",
                    "status",
                    "priority",
                    "team",
                    "opened_at",
                    "first_contact_at",
                    "first_contact_due",
                    "resolution_due",
                    "resolved_at",
                    "closed_at",
                    "first_contact_resolution",
                    "first_contact_breached_at",
                    "resolution_breached_at",
                    "created_at",
                    "updated_at",
                ],
            ),
            surveys: Table::new(
                "surveys",
                &[
                    "id",
                    "dealer_id",
                    "subject_kind",
                    "subject_id",
                    "customer_id",
                    "sent_at",
                    "answered_at",
                    "nps",
                    "csat",
                    "comment",
                ],
            ),
            leads: Table::new(
                "leads",
                &[
                    "id",
                    "dealer_id",
                    "customer_id",
                    "name",
                    "phone",
                    "open_phone",
                    "channel",
                    "stage",
                    "consultant_id",
                    "created_at",
                    "updated_at",
                ],
            ),
        }
    }

    /// Stores the batch.
    pub async fn insert(self, conn: &mut AnyConnection) -> Result<()> {
        self.appointments.execute(conn).await?;
        self.repair_orders.execute(conn).await?;
        self.lines.execute(conn).await?;
        self.tickets.execute(conn).await?;
        self.surveys.execute(conn).await?;
        self.leads.execute(conn).await?;
        Ok(())
    }
}

/// A time in `[from, to)`.
fn between(rng: &mut StdRng, from: i64, to: i64) -> i64 {
    rng.gen_range(from..to.max(from + 1))
}

/// A survey after a visit or a ticket: most owners are content, a few detract.
fn survey(
    rng: &mut StdRng,
    batch: &mut Batch,
    ids: &mut Ids,
    owner: &Owner<'_>,
    (kind, subject_id): (&str, i64),
    after: i64,
    now: i64,
) {
    let sent = after + rng.gen_range(HOUR_MS..DAY_MS);
    if sent >= now {
        return;
    }
    let answered = (sent + rng.gen_range(10 * 60_000..3 * DAY_MS)).min(now - 1);
    let answers = rng.gen_bool(0.7);
    let nps: i64 = match rng.gen_range(0..100) {
        0..55 => rng.gen_range(9..=10),
        55..82 => rng.gen_range(7..=8),
        _ => rng.gen_range(0..=6),
    };
    let csat = (nps / 2).clamp(1, 5);
    let comment = (nps <= 6 && rng.gen_bool(0.6)).then(|| make::pick(rng, &SURVEY_COMMENTS));
    batch.surveys.push(&[
        Lit::Int(ids.survey),
        Lit::Int(owner.dealer.id),
        Lit::Text(kind),
        Lit::Int(subject_id),
        Lit::Int(owner.customer_id),
        Lit::Int(sent),
        Lit::Opt(answers.then_some(answered)),
        Lit::Opt(answers.then_some(nps)),
        Lit::Opt(answers.then_some(csat)),
        Lit::OptText(if answers { comment } else { None }),
    ]);
    ids.survey += 1;
}

/// Adds `owner`'s history of the last two years up to `now` to the batch: about five repair
/// orders, half a ticket and a third of a lead on average.
pub fn add(rng: &mut StdRng, batch: &mut Batch, ids: &mut Ids, owner: &Owner<'_>, now: i64) {
    let start = owner.created_at.max(now - YEARS * 365 * DAY_MS);
    let end = now - HOUR_MS;
    if start >= end {
        return;
    }
    let dealer = owner.dealer;
    if let Some(vehicle) = owner.vehicle_id {
        let mut visits: Vec<i64> = (0..rng.gen_range(0..=10))
            .map(|_| between(rng, start, end))
            .collect();
        visits.sort_unstable();
        let mut previous: Option<i64> = None;
        for opened in visits {
            let id = ids.repair_order;
            ids.repair_order += 1;
            let service_type = make::weighted(rng, &SERVICE_TYPES);
            let booked = rng.gen_bool(0.6);
            let appointment = booked.then(|| {
                let a = ids.appointment;
                ids.appointment += 1;
                let slot = opened - rng.gen_range(0..30) * 60_000;
                batch.appointments.push(&[
                    Lit::Int(a),
                    Lit::Int(dealer.id),
                    Lit::Int(owner.customer_id),
                    Lit::Int(vehicle),
                    Lit::Text(make::pick(rng, &BOOKING_CHANNELS)),
                    Lit::Text(service_type),
                    Lit::Int(slot),
                    Lit::Int(slot + HOUR_MS),
                    Lit::Text("arrived"),
                    Lit::Int(opened),
                    Lit::Opt(None),
                    Lit::Int(id),
                    Lit::Int(slot - rng.gen_range(1..10) * DAY_MS),
                    Lit::Int(opened),
                ]);
                a
            });
            let settled = opened + rng.gen_range(HOUR_MS..30 * HOUR_MS);
            let done = settled < now;
            let (labour, parts) = if service_type == "warranty" {
                (0, 0)
            } else {
                (rng.gen_range(100..800) * 100, rng.gen_range(0..3000) * 100)
            };
            let total = labour + parts;
            let (_, labour_line, part_line) = LINES
                .iter()
                .find(|l| l.0 == service_type)
                .unwrap_or(&LINES[1]);
            for (kind, description, amount) in
                [("labour", labour_line, labour), ("part", part_line, parts)]
            {
                if amount > 0 {
                    batch.lines.push(&[
                        Lit::Int(ids.line),
                        Lit::Int(id),
                        Lit::Text(kind),
                        Lit::Text(description),
                        Lit::Int(100),
                        Lit::Int(amount),
                        Lit::Int(amount),
                        Lit::Int(opened),
                    ]);
                    ids.line += 1;
                }
            }
            let comeback = previous.filter(|_| service_type == "repair" && rng.gen_bool(0.08));
            let status = match (done, rng.gen_bool(0.9)) {
                (false, _) => "in_progress",
                (true, true) => "paid",
                (true, false) => "settled",
            };
            let paid = status == "paid";
            batch.repair_orders.push(&[
                Lit::Int(id),
                Lit::Int(dealer.id),
                Lit::Int(owner.customer_id),
                Lit::Int(vehicle),
                Lit::Opt(appointment),
                Lit::Text(if service_type == "maintenance" {
                    "maintenance"
                } else {
                    "general"
                }),
                Lit::Text(status),
                Lit::Opt(dealer.advisor(rng)),
                Lit::Opt(dealer.advisor(rng)),
                Lit::Text(service_type),
                Lit::Opt(comeback),
                Lit::Int(labour),
                Lit::Int(parts),
                Lit::Int(total),
                Lit::Int(if paid { total } else { 0 }),
                Lit::Opt(done.then_some(settled)),
                Lit::Opt(paid.then_some(settled + 10 * 60_000)),
                Lit::Int(opened),
                Lit::Int(if done { settled } else { opened }),
            ]);
            if done && rng.gen_bool(0.3) {
                survey(rng, batch, ids, owner, ("repair_order", id), settled, now);
            }
            previous = Some(id);
        }
        // Bookings that did not turn into a visit: cancelled, or the owner did not come.
        if rng.gen_bool(0.3) {
            let slot = between(rng, start, end);
            let cancelled = rng.gen_bool(0.4);
            batch.appointments.push(&[
                Lit::Int(ids.appointment),
                Lit::Int(dealer.id),
                Lit::Int(owner.customer_id),
                Lit::Int(vehicle),
                Lit::Text(make::pick(rng, &BOOKING_CHANNELS)),
                Lit::Text(make::weighted(rng, &SERVICE_TYPES)),
                Lit::Int(slot),
                Lit::Int(slot + HOUR_MS),
                Lit::Text(if cancelled { "cancelled" } else { "booked" }),
                Lit::Opt(None),
                Lit::Opt(cancelled.then_some(slot - DAY_MS)),
                Lit::Opt(None),
                Lit::Int(slot - 3 * DAY_MS),
                Lit::Int(slot),
            ]);
            ids.appointment += 1;
        }
    }
    let tickets = usize::from(rng.gen_bool(0.4)) + usize::from(rng.gen_bool(0.1));
    for _ in 0..tickets {
        ticket(rng, batch, ids, owner, (start, end), now);
    }
    if rng.gen_bool(0.3) {
        let created = between(rng, start, end);
        let stage = make::weighted(rng, &LEAD_STAGES);
        let open = !matches!(stage, "won" | "lost");
        let phone = owner.phone.unwrap_or("");
        batch.leads.push(&[
            Lit::Int(ids.lead),
            Lit::Int(dealer.id),
            Lit::Int(owner.customer_id),
            Lit::Text(owner.name),
            Lit::Text(phone),
            Lit::OptText((open && !phone.is_empty()).then_some(phone)),
            Lit::Text(make::pick(rng, &LEAD_CHANNELS)),
            Lit::Text(stage),
            Lit::Opt(dealer.salesperson(rng)),
            Lit::Int(created),
            Lit::Int(if open {
                created
            } else {
                (created + rng.gen_range(1..30) * DAY_MS).min(now - 1)
            }),
        ]);
        ids.lead += 1;
    }
}

/// A ticket opened in `[start, end)`, due for resolution in 48 hours (24 when urgent); about
/// one in six is resolved late, and recent ones may still be open.
fn ticket(
    rng: &mut StdRng,
    batch: &mut Batch,
    ids: &mut Ids,
    owner: &Owner<'_>,
    (start, end): (i64, i64),
    now: i64,
) {
    let topic = &names::TICKET_TOPICS[rng.gen_range(0..names::TICKET_TOPICS.len())];
    let team = match topic.category {
        "safety" => names::TEAM_SAFETY,
        "complaint" => names::TEAM_CARE,
        _ => names::TEAM_SERVICE,
    };
    let opened = between(rng, start, end);
    let due = opened
        + if topic.priority == "urgent" {
            24 * HOUR_MS
        } else {
            48 * HOUR_MS
        };
    let first_contact = opened + rng.gen_range(5..180) * 60_000;
    let first_contact_resolves = topic.category != "safety" && rng.gen_bool(0.3);
    let resolved = if first_contact_resolves {
        first_contact
    } else if rng.gen_bool(0.83) {
        between(rng, first_contact, due)
    } else {
        due + rng.gen_range(HOUR_MS..5 * DAY_MS)
    };
    let closed = resolved + rng.gen_range(HOUR_MS..2 * DAY_MS);
    let at = |t: i64| (t < now).then_some(t);
    let first_contact_due = opened + 2 * HOUR_MS;
    // The SLA clock marks a breach when the deadline passes with the step not done.
    let breach = |due: i64, done: i64| (done > due && due < now).then_some(due);
    let status = if closed < now {
        "closed"
    } else if resolved < now {
        "resolved"
    } else if first_contact < now {
        "in_progress"
    } else {
        "open"
    };
    let id = ids.ticket;
    ids.ticket += 1;
    batch.tickets.push(&[
        Lit::Int(id),
        Lit::Int(owner.dealer.id),
        Lit::Int(owner.customer_id),
        Lit::Opt(owner.vehicle_id),
        Lit::Text(make::pick(rng, names::TICKET_CHANNELS)),
        Lit::Text(topic.category),
        Lit::Text(topic.subject),
        Lit::Text(status),
        Lit::Text(topic.priority),
        Lit::Text(team),
        Lit::Int(opened),
        Lit::Opt(at(first_contact)),
        Lit::Int(first_contact_due),
        Lit::Int(due),
        Lit::Opt(at(resolved)),
        Lit::Opt(at(closed)),
        Lit::Opt(at(closed).map(|_| i64::from(first_contact_resolves))),
        Lit::Opt(breach(first_contact_due, first_contact)),
        Lit::Opt(breach(due, resolved)),
        Lit::Int(opened),
        Lit::Int(
            [closed, resolved, first_contact, opened]
                .into_iter()
                .find(|t| *t < now)
                .unwrap_or(opened),
        ),
    ]);
    if status == "closed" && rng.gen_bool(0.2) {
        survey(rng, batch, ids, owner, ("ticket", id), closed, now);
    }
}
