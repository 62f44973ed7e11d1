//! The demo's service and sales history, what the dashboards read: each car comes back for
//! maintenance about twice a year (some owners stop coming, the churn warning's cases) and
//! for the odd repair, about half of the visits booked ahead; a repair now and then comes
//! back within the month; most settled orders and closed tickets get a survey, some of them
//! answered; each selling dealer has two years of leads, by channel and consultant.
//! Everything happens before today, so loading the demo twice in a day gives the same history.

use std::collections::HashMap;

use rand::Rng;
use rand::rngs::StdRng;
use sqlx::AnyConnection;

use super::Rows;
use super::make::{self, DAY_MS, Gender, Today};
use super::names;
use super::plan::{CustomerPlan, DealerCtx, Inserted, VehiclePlan};
use crate::db::Param;
use crate::error::Result;
use crate::service::appointments::Channel;

const HOUR_MS: i64 = 3_600_000;
/// How far back the service history goes.
const YEARS_OF_SERVICE: i64 = 2;
/// Share of cars whose owner stops coming at some point.
const LOST: f64 = 0.2;
/// Share of visits booked ahead.
const BOOKED: f64 = 0.55;
/// Share of repairs that come back within the month.
const COMEBACK: f64 = 0.08;

/// A closed ticket, which may get a survey.
pub struct ClosedTicket {
    pub id: i64,
    pub dealer_id: i64,
    pub customer_id: i64,
    pub closed_at: i64,
    /// Whether it was resolved at the first contact.
    pub first_contact: bool,
}

/// When a plan's car leaves its history there: the car was sold on, or the owner took it to
/// another dealer (`(plan, vehicle index)` → time).
pub type Ends = HashMap<(usize, usize), i64>;

/// One service item of a repair order: (kind, description, quantity in hundredths, unit price
/// in fen).
type Line = (&'static str, &'static str, i64, i64);

/// What a visit is for: its code, the owner's words, the service type and the lines.
struct Job {
    code: &'static str,
    complaint: &'static str,
    service_type: &'static str,
    lines: &'static [Line],
}

const MAINTENANCE: Job = Job {
    code: "maintenance",
    complaint: "定期保养",
    service_type: "maintenance",
    lines: &[
        ("labour", "常规保养工时", 100, 20_000),
        ("part", "全合成机油 5W-30（升）", 400, 9_800),
        ("part", "机油滤清器", 100, 6_800),
    ],
};
const MAINTENANCE_MAJOR: Job = Job {
    code: "maintenance",
    complaint: "定期保养（含滤芯更换）",
    service_type: "maintenance",
    lines: &[
        ("labour", "常规保养工时", 100, 20_000),
        ("part", "全合成机油 5W-30（升）", 400, 9_800),
        ("part", "机油滤清器", 100, 6_800),
        ("part", "空气滤芯", 100, 12_000),
        ("part", "空调滤芯", 100, 9_800),
    ],
};
const EV_MAINTENANCE: Job = Job {
    code: "maintenance",
    complaint: "定期保养（电池包健康检查）",
    service_type: "maintenance",
    lines: &[
        ("labour", "电池包健康检查", 100, 15_000),
        ("labour", "三电系统检测", 100, 20_000),
        ("part", "空调滤芯", 100, 9_800),
    ],
};
const REPAIRS: &[Job] = &[
    Job {
        code: "brake",
        complaint: "刹车时有异响",
        service_type: "repair",
        lines: &[
            ("labour", "更换前刹车片工时", 150, 18_000),
            ("part", "前刹车片（套）", 100, 68_000),
        ],
    },
    Job {
        code: "alignment",
        complaint: "行驶跑偏",
        service_type: "repair",
        lines: &[("labour", "四轮定位", 100, 30_000)],
    },
    Job {
        code: "battery",
        complaint: "冷车启动困难",
        service_type: "repair",
        lines: &[
            ("labour", "更换蓄电池工时", 50, 18_000),
            ("part", "12V 蓄电池", 100, 88_000),
        ],
    },
    Job {
        code: "aircon",
        complaint: "空调制冷效果差",
        service_type: "repair",
        lines: &[
            ("labour", "空调系统检修", 100, 25_000),
            ("part", "空调冷媒", 100, 18_000),
        ],
    },
    Job {
        code: "wiper",
        complaint: "雨刮刮不干净",
        service_type: "repair",
        lines: &[("part", "雨刮片", 200, 6_800)],
    },
    Job {
        code: "infotainment",
        complaint: "车机偶发黑屏",
        service_type: "warranty",
        lines: &[("labour", "车机系统升级", 50, 18_000)],
    },
    Job {
        code: "inspection",
        complaint: "年检前检测",
        service_type: "inspection",
        lines: &[("labour", "年检前安全检测", 100, 15_000)],
    },
];

/// Net Promoter answers as owners give them: mostly promoters, some passives, a tail of
/// detractors.
const NPS: &[(i64, u32)] = &[
    (10, 26),
    (9, 24),
    (8, 17),
    (7, 10),
    (6, 7),
    (5, 5),
    (4, 3),
    (3, 3),
    (2, 2),
    (1, 1),
    (0, 2),
];
const DETRACTOR_COMMENTS: &[&str] = &[
    "等待时间太长，预约了还要排队一个多小时",
    "结算时才告诉我要加钱，事先没有说明",
    "车洗得不干净，座椅上还有油污",
    "同一个问题修了两次还没好",
    "服务顾问态度一般，问问题爱答不理",
    "价格比外面的修理厂贵太多",
];
const PROMOTER_COMMENTS: &[&str] = &[
    "服务顾问很专业，讲解很清楚",
    "按时交车，车辆也清洗得很干净",
    "休息区很舒服，整体体验很好",
    "",
];
const LEAD_CHANNELS: &[(&str, u32)] = &[
    ("online_ad", 35),
    ("walk_in", 25),
    ("app", 15),
    ("referral", 15),
    ("auto_show", 10),
];
const LOST_REASONS: &[&str] = &[
    "选择了竞品",
    "预算不足，暂缓购车",
    "对置换价格不满意",
    "多次联系未接通",
];

/// The demo as stored so far: its dealers, customer plans (inserted as `ids`), where each
/// car's history ends, and its closed tickets.
pub struct Demo<'a> {
    pub dealers: &'a [DealerCtx],
    pub plans: &'a [CustomerPlan],
    pub ids: &'a Inserted,
    pub ends: &'a Ends,
    pub tickets: &'a [ClosedTicket],
}

/// Stores the history of the demo's cars and leads, and surveys of its tickets.
pub async fn load(
    conn: &mut AnyConnection,
    rng: &mut StdRng,
    today: Today,
    demo: &Demo<'_>,
) -> Result<()> {
    let Demo {
        dealers,
        plans,
        ids,
        ends,
        tickets,
    } = *demo;
    let mut history = History {
        lines: Rows::new(
            "repair_order_lines",
            &[
                "repair_order_id",
                "kind",
                "description",
                "quantity_centi",
                "unit_price_fen",
                "amount_fen",
                "created_at",
            ],
        ),
        surveys: Rows::new(
            "surveys",
            &[
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
        missed: Rows::new(
            "appointments",
            &[
                "dealer_id",
                "customer_id",
                "vehicle_id",
                "channel",
                "service_type",
                "slot_start",
                "slot_end",
                "status",
                "cancelled_at",
                "created_at",
                "updated_at",
            ],
        ),
        today,
    };
    let since = today.end_ms - YEARS_OF_SERVICE * 365 * DAY_MS;
    for (i, plan) in plans.iter().enumerate() {
        let dealer = &dealers[plan.dealer];
        for (v, car) in plan.vehicles.iter().enumerate() {
            let owner = Owner {
                dealer,
                customer_id: ids.customers[i],
                vehicle_id: ids.vehicles[i][v],
            };
            let end = ends.get(&(i, v)).copied().unwrap_or(today.end_ms);
            history
                .car(conn, rng, &owner, car, since, end.min(today.end_ms))
                .await?;
        }
    }
    for t in tickets {
        let nps_bias = if t.first_contact { 1 } else { 0 };
        history.survey(
            rng,
            t.dealer_id,
            "ticket",
            t.id,
            t.customer_id,
            t.closed_at,
            nps_bias,
        );
    }
    for (d, dealer) in dealers.iter().enumerate().filter(|(_, d)| d.sells) {
        leads(conn, rng, today, (d, dealer), plans, ids).await?;
    }
    let History {
        lines,
        surveys,
        missed,
        ..
    } = history;
    lines.execute(conn).await?;
    surveys.execute(conn).await?;
    missed.execute(conn).await
}

struct Owner<'a> {
    dealer: &'a DealerCtx,
    customer_id: i64,
    vehicle_id: i64,
}

struct History {
    lines: Rows,
    surveys: Rows,
    missed: Rows,
    today: Today,
}

impl History {
    /// The visits of one car from when its history starts here (bought here, or first seen)
    /// to `end`.
    async fn car(
        &mut self,
        conn: &mut AnyConnection,
        rng: &mut StdRng,
        owner: &Owner<'_>,
        car: &VehiclePlan,
        since: i64,
        end: i64,
    ) -> Result<()> {
        let bought_here = owner.dealer.sells && car.created_at <= car.purchased_at + DAY_MS;
        let mut next = if bought_here {
            car.purchased_at + rng.gen_range(90..180) * DAY_MS
        } else {
            car.created_at
        };
        let stops = if rng.gen_bool(LOST) {
            rng.gen_range(next.min(end)..=end)
        } else {
            end
        };
        let mut major = false;
        while next < stops {
            let day = make::local_date(next);
            let at = make::office_hours(rng, day);
            if at >= since && at < stops {
                let job = if car.model.electric {
                    &EV_MAINTENANCE
                } else if major {
                    &MAINTENANCE_MAJOR
                } else {
                    &MAINTENANCE
                };
                self.visit(conn, rng, owner, car, job, at, None).await?;
            }
            major = !major;
            next += rng.gen_range(150..230) * DAY_MS;
        }
        // Repairs between maintenance visits: about one every two years.
        let from = since.max(car.created_at);
        let years = (stops - from).max(0) as f64 / (365.0 * DAY_MS as f64);
        let repairs = (years * 0.5 + rng.gen_range(0.0..1.0)) as usize;
        for _ in 0..repairs {
            let day = make::local_date(rng.gen_range(from.min(stops - 1)..stops));
            let at = make::office_hours(rng, day);
            if at < from || at >= stops {
                continue;
            }
            let job = &REPAIRS[rng.gen_range(0..REPAIRS.len())];
            let id = self.visit(conn, rng, owner, car, job, at, None).await?;
            let back = at + rng.gen_range(3..12) * DAY_MS;
            if job.service_type == "repair" && rng.gen_bool(COMEBACK) && back < stops {
                let back = make::office_hours(rng, make::local_date(back));
                self.visit(conn, rng, owner, car, job, back, Some(id))
                    .await?;
            }
        }
        Ok(())
    }

    /// One visit at `at`: maybe booked ahead (or missed once before), settled and paid the
    /// same day or, for a repair, a day or two later; a comeback of `comeback_of` is redone
    /// free of charge.
    #[allow(clippy::too_many_arguments)]
    async fn visit(
        &mut self,
        conn: &mut AnyConnection,
        rng: &mut StdRng,
        owner: &Owner<'_>,
        car: &VehiclePlan,
        job: &Job,
        at: i64,
        comeback_of: Option<i64>,
    ) -> Result<i64> {
        let channel = if rng.gen_bool(0.6) {
            Channel::Online
        } else {
            Channel::Phone
        }
        .as_str();
        if rng.gen_bool(0.1) {
            let before = at - rng.gen_range(3..10) * DAY_MS;
            let slot = make::office_hours(rng, make::local_date(before));
            // A missed booking stays `booked`: the API shows it as a no-show once its slot
            // has passed.
            let cancelled = rng.gen_bool(0.4);
            let created = slot - rng.gen_range(1..6) * DAY_MS;
            self.missed.push([
                Param::Int(owner.dealer.id),
                Param::Int(owner.customer_id),
                Param::Int(owner.vehicle_id),
                Param::Text(channel.to_owned()),
                Param::Text(job.service_type.to_owned()),
                Param::Int(slot),
                Param::Int(slot + HOUR_MS),
                Param::Text(if cancelled { "cancelled" } else { "booked" }.to_owned()),
                Param::OptInt(cancelled.then_some(slot - DAY_MS)),
                Param::Int(created),
                Param::Int(if cancelled { slot - DAY_MS } else { created }),
            ]);
        }
        let appointment = if comeback_of.is_none() && rng.gen_bool(BOOKED) {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO appointments (dealer_id, customer_id, vehicle_id, channel, service_type, slot_start, \
                 slot_end, status, arrived_at, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'arrived', $8, 2, $9, $8) RETURNING id",
            )
            .bind(owner.dealer.id)
            .bind(owner.customer_id)
            .bind(owner.vehicle_id)
            .bind(channel)
            .bind(job.service_type)
            .bind(at - at % HOUR_MS)
            .bind(at - at % HOUR_MS + HOUR_MS)
            .bind(at)
            .bind(at - rng.gen_range(1..8) * DAY_MS)
            .fetch_one(&mut *conn)
            .await?;
            Some(id)
        } else {
            None
        };
        let duration = match job.service_type {
            "repair" | "warranty" => rng.gen_range(3 * HOUR_MS..40 * HOUR_MS),
            _ => rng.gen_range(HOUR_MS..4 * HOUR_MS),
        };
        let settled = (at + duration).min(self.today.end_ms - 60_000);
        let (mut labour, mut parts) = (0, 0);
        for &(kind, _, quantity, price) in job.lines {
            let amount = quantity * price / 100;
            match kind {
                "labour" => labour += amount,
                _ => parts += amount,
            }
        }
        if comeback_of.is_some() {
            (labour, parts) = (0, 0);
        }
        let total = labour + parts;
        let technicians = owner.dealer.service.get(1..).unwrap_or_default();
        let technician = if technicians.is_empty() {
            owner.dealer.advisor(rng)
        } else {
            Some(make::pick(rng, technicians))
        };
        let advisor = owner.dealer.service.first().copied().or(owner.dealer.admin);
        let days = (at - car.purchased_at).max(0) as f64 / DAY_MS as f64;
        let mileage = 8 + (days * car.daily_km) as i64;
        let complaint = if comeback_of.is_some() {
            format!("返修：{}", job.complaint)
        } else {
            job.complaint.to_owned()
        };
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO repair_orders (dealer_id, customer_id, vehicle_id, appointment_id, complaint_code, complaint, \
             status, technician_staff_id, mileage_km, comeback_of_id, labour_fen, parts_fen, total_fen, paid_fen, \
             settled_at, paid_at, version, created_at, updated_at, advisor_staff_id, service_type) \
             VALUES ($1, $2, $3, $4, $5, $6, 'paid', $7, $8, $9, $10, $11, $12, $12, $13, $14, 8, $15, $14, $16, $17) \
             RETURNING id",
        )
        .bind(owner.dealer.id)
        .bind(owner.customer_id)
        .bind(owner.vehicle_id)
        .bind(appointment)
        .bind(job.code)
        .bind(complaint)
        .bind(technician)
        .bind(mileage)
        .bind(comeback_of)
        .bind(labour)
        .bind(parts)
        .bind(total)
        .bind(settled)
        .bind(settled + 10 * 60_000)
        .bind(at)
        .bind(advisor)
        .bind(job.service_type)
        .fetch_one(&mut *conn)
        .await?;
        if let Some(appointment) = appointment {
            sqlx::query("UPDATE appointments SET repair_order_id = $1 WHERE id = $2")
                .bind(id)
                .bind(appointment)
                .execute(&mut *conn)
                .await?;
        }
        if comeback_of.is_none() {
            for &(kind, description, quantity, price) in job.lines {
                self.lines.push([
                    Param::Int(id),
                    Param::Text(kind.to_owned()),
                    Param::Text(description.to_owned()),
                    Param::Int(quantity),
                    Param::Int(price),
                    Param::Int(quantity * price / 100),
                    Param::Int(at + HOUR_MS / 2),
                ]);
            }
        }
        let bias = if comeback_of.is_some() { -4 } else { 0 };
        self.survey(
            rng,
            owner.dealer.id,
            "repair_order",
            id,
            owner.customer_id,
            settled,
            bias,
        );
        Ok(id)
    }

    /// Most subjects get a survey when done; about three in four are answered within two
    /// days (those answered before today). `bias` moves the owner's score.
    #[allow(clippy::too_many_arguments)]
    fn survey(
        &mut self,
        rng: &mut StdRng,
        dealer_id: i64,
        kind: &str,
        subject_id: i64,
        customer_id: i64,
        done_at: i64,
        bias: i64,
    ) {
        if !rng.gen_bool(0.7) {
            return;
        }
        let sent = done_at + HOUR_MS;
        let answered = sent + rng.gen_range(10 * 60_000..48 * HOUR_MS);
        let answer = (rng.gen_bool(0.75) && answered < self.today.end_ms).then(|| {
            let nps = (make::weighted(rng, NPS) + bias).clamp(0, 10);
            let csat = match nps {
                9..=10 => {
                    if rng.gen_bool(0.8) {
                        5
                    } else {
                        4
                    }
                }
                7..=8 => rng.gen_range(3..=4),
                _ => rng.gen_range(1..=3),
            };
            let comment = match nps {
                0..=6 => Some(make::pick(rng, DETRACTOR_COMMENTS)),
                9..=10 if rng.gen_bool(0.4) => Some(make::pick(rng, PROMOTER_COMMENTS)),
                _ => None,
            };
            (nps, csat, comment.filter(|c| !c.is_empty()))
        });
        self.surveys.push([
            Param::Int(dealer_id),
            Param::Text(kind.to_owned()),
            Param::Int(subject_id),
            Param::Int(customer_id),
            Param::Int(sent),
            Param::OptInt(answer.map(|_| answered)),
            Param::OptInt(answer.map(|a| a.0)),
            Param::OptInt(answer.map(|a| a.1)),
            Param::OptText(answer.and_then(|a| a.2).map(str::to_owned)),
        ]);
    }
}

/// Two years of a selling dealer's leads: the customers who bought here in that time came in
/// as won leads a few weeks before; prospects who did not buy are lost or still open.
async fn leads(
    conn: &mut AnyConnection,
    rng: &mut StdRng,
    today: Today,
    (d, dealer): (usize, &DealerCtx),
    plans: &[CustomerPlan],
    ids: &Inserted,
) -> Result<()> {
    let since = today.end_ms - YEARS_OF_SERVICE * 365 * DAY_MS;
    let consultants = if dealer.sales.len() > 2 {
        &dealer.sales[2..]
    } else {
        &dealer.sales[..]
    };
    let mut rows = Rows::new(
        "leads",
        &[
            "dealer_id",
            "customer_id",
            "name",
            "phone",
            "open_phone",
            "channel",
            "stage",
            "score",
            "consultant_id",
            "interest",
            "lost_reason",
            "version",
            "created_at",
            "updated_at",
        ],
    );
    let consultant = |rng: &mut StdRng| -> Option<i64> {
        if consultants.is_empty() {
            dealer.admin
        } else {
            Some(make::pick(rng, consultants))
        }
    };
    let mut won = 0;
    for (i, plan) in plans.iter().enumerate().filter(|(_, p)| p.dealer == d) {
        let Some((phone, _)) = plan.phones.first() else {
            continue;
        };
        for car in &plan.vehicles {
            let bought_here = car.created_at <= car.purchased_at + DAY_MS;
            if !bought_here || car.purchased_at < since || car.purchased_at >= today.end_ms {
                continue;
            }
            let captured = car.purchased_at - rng.gen_range(10..60) * DAY_MS;
            rows.push([
                Param::Int(dealer.id),
                Param::Int(ids.customers[i]),
                Param::Text(plan.person.name.clone()),
                Param::Text(phone.clone()),
                Param::OptText(None),
                Param::Text(make::weighted(rng, LEAD_CHANNELS).to_owned()),
                Param::Text("won".to_owned()),
                Param::Int(rng.gen_range(70..100)),
                Param::OptInt(consultant(rng)),
                Param::OptText(Some(car.model.name.to_owned())),
                Param::OptText(None),
                Param::Int(5),
                Param::Int(captured),
                Param::Int(car.purchased_at),
            ]);
            won += 1;
        }
    }
    // Most prospects do not buy: about four leads for each sale, at least a few a month.
    let prospects = (won * 3).max(48);
    for n in 0..prospects {
        let day = make::date_between(rng, make::local_date(since), today.days_ago(1));
        let captured = make::office_hours(rng, day);
        let age_days = (today.end_ms - captured) / DAY_MS;
        let stage = match (age_days, rng.gen_range(0..100)) {
            (60.., 0..85) | (14..60, 0..40) => "lost",
            (60.., _) | (14..60, 40..70) => "negotiating",
            (14..60, 70..90) | (..14, 70..85) => "test_drive",
            (_, 30..) => "contacted",
            _ => "new",
        };
        let gender = Gender::random(rng);
        let phone = make::mobile(
            names::FIRST_MOBILE_PREFIXES,
            dealer.id as u64 * 10_000 + n,
            97,
        );
        let open = stage != "lost";
        let model = &names::MODELS[rng.gen_range(0..names::MODELS.len())];
        rows.push([
            Param::Int(dealer.id),
            Param::OptInt(None),
            Param::Text(make::full_name(rng, gender)),
            Param::Text(phone.clone()),
            Param::OptText(open.then_some(phone)),
            Param::Text(make::weighted(rng, LEAD_CHANNELS).to_owned()),
            Param::Text(stage.to_owned()),
            Param::Int(rng.gen_range(10..80)),
            Param::OptInt(consultant(rng)),
            Param::OptText(Some(model.name.to_owned())),
            Param::OptText((!open).then(|| make::pick(rng, LOST_REASONS).to_owned())),
            Param::Int(if open { 2 } else { 4 }),
            Param::Int(captured),
            Param::Int((captured + rng.gen_range(1..20) * DAY_MS).min(today.end_ms - 60_000)),
        ]);
    }
    rows.execute(conn).await
}
