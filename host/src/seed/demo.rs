//! The demo network of 远航汽车 (Yuanhang Motors): HQ, four regions, dealer groups, nine dealers
//! and branches of all three kinds in eight cities, their staff, about 300 customers with cars
//! and histories, tickets, and people and cars known to two dealers (who consented, at the
//! second dealer, to share their history), and the flagship store's grant to the demo partner.
//! Deterministic apart from dates, which are relative to today.

use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::AnyConnection;

use super::history::{self, ClosedTicket, Ends};
use super::make::{self, DAY_MS, Gender, Today};
use super::names::{self, TicketTopic};
use super::plan::{self, CustomerPlan, DealerCtx, InteractionPlan, Shape};
use super::{Rows, STAFF_COLUMNS};
use crate::access::Role;
use crate::audit::Actor;
use crate::db::Param;
use crate::error::Result;
use crate::network::{self, DealerType, NewUnit, Policy, Position, UnitKind};
use crate::partners::{self, NewGrant, Purpose};
use crate::tickets::TicketStatus;

pub const HQ_CODE: &str = "HQ";
pub const NORTH_CODE: &str = "R-NORTH";
pub const FLAGSHIP_CODE: &str = "BJ-CY-4S";
pub const SHANGHAI_CODE: &str = "SH-PD-4S";
const TIANJIN_CODE: &str = "TJ-HX-SS";

const SEED: u64 = 0x5948_2024;
const TICKETS: usize = 120;

const HQ: (&str, &str) = ("远航汽车 (Yuanhang Motors)", "北京");
/// (code, name, city)
const REGIONS: [(&str, &str, &str); 4] = [
    (NORTH_CODE, "华北大区", "北京"),
    ("R-EAST", "华东大区", "上海"),
    ("R-SOUTH", "华南大区", "广州"),
    ("R-SOUTHWEST", "西南大区", "成都"),
];
/// (code, name, region code, city)
const GROUPS: [(&str, &str, &str, &str); 4] = [
    ("G-JJJ", "京津冀汽车集团", NORTH_CODE, "北京"),
    ("G-YRD", "长三角汽车集团", "R-EAST", "上海"),
    ("G-GBA", "粤港澳大湾区汽车集团", "R-SOUTH", "广州"),
    ("G-CY", "成渝汽车集团", "R-SOUTHWEST", "重庆"),
];

/// A dealer (or branch) of the demo network.
pub struct DealerDef {
    pub code: &'static str,
    pub name: &'static str,
    pub parent: &'static str,
    pub branch: bool,
    pub dealer_type: DealerType,
    pub city: &'static str,
    /// Demo customers; also the dealer's share of generated ones.
    pub customers: usize,
    pub sales: usize,
    pub service: usize,
}

const fn dealer(
    code: &'static str,
    name: &'static str,
    parent: &'static str,
    dealer_type: DealerType,
    city: &'static str,
    customers: usize,
    (sales, service): (usize, usize),
) -> DealerDef {
    DealerDef {
        code,
        name,
        parent,
        branch: false,
        dealer_type,
        city,
        customers,
        sales,
        service,
    }
}

pub const DEALERS: [DealerDef; 9] = [
    dealer(
        FLAGSHIP_CODE,
        "远航北京朝阳4S店",
        "G-JJJ",
        DealerType::FourS,
        "北京",
        60,
        (4, 3),
    ),
    DealerDef {
        branch: true,
        ..dealer(
            "BJ-CY-WJ",
            "远航北京朝阳4S店望京服务网点",
            FLAGSHIP_CODE,
            DealerType::ServiceStation,
            "北京",
            20,
            (0, 2),
        )
    },
    dealer(
        TIANJIN_CODE,
        "远航天津河西服务站",
        "G-JJJ",
        DealerType::ServiceStation,
        "天津",
        25,
        (1, 3),
    ),
    dealer(
        SHANGHAI_CODE,
        "远航上海浦东4S店",
        "G-YRD",
        DealerType::FourS,
        "上海",
        50,
        (3, 3),
    ),
    dealer(
        "HZ-XH-RS",
        "杭州西湖顺达汽修",
        "G-YRD",
        DealerType::RepairShop,
        "杭州",
        20,
        (0, 2),
    ),
    dealer(
        "GZ-TH-4S",
        "远航广州天河4S店",
        "G-GBA",
        DealerType::FourS,
        "广州",
        45,
        (3, 2),
    ),
    dealer(
        "SZ-NS-4S",
        "远航深圳南山4S店",
        "G-GBA",
        DealerType::FourS,
        "深圳",
        35,
        (2, 2),
    ),
    dealer(
        "CD-WH-SS",
        "远航成都武侯服务站",
        "R-SOUTHWEST",
        DealerType::ServiceStation,
        "成都",
        25,
        (1, 2),
    ),
    dealer(
        "CQ-YB-RS",
        "重庆渝北快修汽车服务中心",
        "G-CY",
        DealerType::RepairShop,
        "重庆",
        20,
        (0, 2),
    ),
];

/// The people of the flagship store, named so the demo reads the same every time:
/// its admin, then sales, then service.
const FLAGSHIP_STAFF: [&str; 8] = [
    "王建国",
    "李娜",
    "张伟",
    "刘洋",
    "陈静",
    "赵磊",
    "孙强",
    "周敏",
];

const SHAPE: Shape = Shape {
    readings: (2, 6),
    with_id: 0.4,
    tags: (0, 3),
    contacts: (1, 3),
    service_visits: true,
};

/// Loads everything into an empty database, inside the caller's transaction.
pub async fn load(conn: &mut AnyConnection) -> Result<()> {
    let today = Today::now();
    let mut rng = StdRng::seed_from_u64(SEED);
    let units = create_units(conn).await?;
    network::set_policy(
        conn,
        &Policy {
            share_history_across_dealers: true,
        },
    )
    .await?;
    let dealers = create_staff(conn, &mut rng, today, &units).await?;

    let mut world = World {
        rng,
        today,
        dealers,
        plans: Vec::new(),
        next_person: 1,
        next_vehicle: 1,
        links: Links::default(),
    };
    for d in 0..DEALERS.len() {
        world.populate(d);
    }
    world.cross_dealer();
    world.transfers();
    world.referrals();
    let ends = world.history_ends();
    let World {
        mut rng,
        dealers,
        mut plans,
        links,
        ..
    } = world;

    let ids = plan::insert(conn, &dealers, &mut plans).await?;
    store_links(conn, &links, &ids).await?;
    let closed = create_tickets(conn, &mut rng, today, &dealers, &plans, &ids).await?;
    let demo = history::Demo {
        dealers: &dealers,
        plans: &plans,
        ids: &ids,
        ends: &ends,
        tickets: &closed,
    };
    history::load(conn, &mut rng, today, &demo).await?;
    Ok(())
}

/// The flagship store lets the demo partner (key `partner_key_id`) report its customers'
/// charging sessions, so the partner's demo calls work.
pub async fn grant_partner(conn: &mut AnyConnection, partner_key_id: i64) -> Result<()> {
    let flagship = super::demo_unit(conn, FLAGSHIP_CODE).await?;
    partners::grant(
        conn,
        &Actor::System("seed"),
        flagship.id,
        &NewGrant {
            partner_key_id,
            purpose: Purpose::ChargingSessions,
        },
    )
    .await?;
    Ok(())
}

async fn create_units(conn: &mut AnyConnection) -> Result<HashMap<&'static str, i64>> {
    let mut ids = HashMap::new();
    add_unit(
        conn,
        &mut ids,
        HQ_CODE,
        None,
        (UnitKind::Hq, None),
        HQ,
        None,
    )
    .await?;
    for (code, name, city) in REGIONS {
        add_unit(
            conn,
            &mut ids,
            code,
            Some(HQ_CODE),
            (UnitKind::Region, None),
            (name, city),
            None,
        )
        .await?;
    }
    for (code, name, region, city) in GROUPS {
        add_unit(
            conn,
            &mut ids,
            code,
            Some(region),
            (UnitKind::Group, None),
            (name, city),
            None,
        )
        .await?;
    }
    for (n, d) in DEALERS.iter().enumerate() {
        let kind = if d.branch {
            UnitKind::Branch
        } else {
            UnitKind::Dealer
        };
        add_unit(
            conn,
            &mut ids,
            d.code,
            Some(d.parent),
            (kind, Some(d.dealer_type)),
            (d.name, d.city),
            Some(format!("400-800-{:04}", 6601 + n)),
        )
        .await?;
    }
    Ok(ids)
}

async fn add_unit(
    conn: &mut AnyConnection,
    ids: &mut HashMap<&'static str, i64>,
    code: &'static str,
    parent: Option<&str>,
    (kind, dealer_type): (UnitKind, Option<DealerType>),
    (name, city): (&str, &str),
    phone: Option<String>,
) -> Result<()> {
    let new = NewUnit {
        parent_id: parent.and_then(|p| ids.get(p).copied()),
        kind,
        dealer_type,
        code: code.to_owned(),
        name: name.to_owned(),
        city: Some(city.to_owned()),
        phone,
    };
    let unit = network::create_unit(conn, &new).await?;
    ids.insert(code, unit.id);
    Ok(())
}

/// Staff of HQ, the regions and every dealer; returns the dealers as the generators see them,
/// in the order of [`DEALERS`].
async fn create_staff(
    conn: &mut AnyConnection,
    rng: &mut StdRng,
    today: Today,
    units: &HashMap<&'static str, i64>,
) -> Result<Vec<DealerCtx>> {
    let mut rows = Rows::new("staff", STAFF_COLUMNS);
    let mut seq = 0;
    let mut add = |rng: &mut StdRng,
                   code: &str,
                   role: Role,
                   position: Option<Position>,
                   name: Option<&str>| {
        let name = match name {
            Some(n) => n.to_owned(),
            None => {
                let gender = Gender::random(rng);
                make::full_name(rng, gender)
            }
        };
        let day = make::date_between(rng, today.days_ago(6 * 365), today.days_ago(5 * 365));
        let hired = make::office_hours(rng, day);
        seq += 1;
        rows.push([
            Param::Int(units[code]),
            Param::Text(name),
            Param::Text(role.as_str().to_owned()),
            Param::OptText(position.map(|p| p.as_str().to_owned())),
            Param::Text(make::mobile(names::STAFF_MOBILE_PREFIXES, seq, 3)),
            Param::Text(format!("staff{seq:03}@yuanhang-motors.example.cn")),
            Param::Int(1),
            Param::Int(hired),
        ]);
    };
    add(rng, HQ_CODE, Role::HqAdmin, None, None);
    add(rng, HQ_CODE, Role::HqAnalyst, None, None);
    for (code, ..) in REGIONS {
        let position = Some(Position::RegionalServiceManager);
        add(rng, code, Role::RegionalManager, position, None);
    }
    for d in &DEALERS {
        let mut named = (d.code == FLAGSHIP_CODE)
            .then_some(FLAGSHIP_STAFF.iter().copied())
            .into_iter()
            .flatten();
        let gm = Some(Position::GeneralManager);
        add(rng, d.code, Role::DealerAdmin, gm, named.next());
        // The first of the sales staff manages them and the second keeps the finance desk;
        // the first of the service staff advises, the rest are technicians.
        for i in 0..d.sales {
            let position = match i {
                0 => Position::SalesManager,
                1 => Position::FinanceDesk,
                _ => Position::SalesConsultant,
            };
            add(rng, d.code, Role::Sales, Some(position), named.next());
        }
        for i in 0..d.service {
            let position = match i {
                0 => Position::ServiceAdvisor,
                _ => Position::Technician,
            };
            add(rng, d.code, Role::Service, Some(position), named.next());
        }
    }
    let staff: Vec<(i64, i64, String)> = rows.fetch(conn, "id, org_unit_id, role").await?;
    Ok(DEALERS
        .iter()
        .map(|d| dealer_ctx(d, units[d.code], &staff))
        .collect())
}

/// A dealer as the generators see it, from its staff rows `(id, org_unit_id, role)`.
pub fn dealer_ctx(def: &DealerDef, id: i64, staff: &[(i64, i64, String)]) -> DealerCtx {
    let of = |role: Role| -> Vec<i64> {
        let mut ids: Vec<i64> = staff
            .iter()
            .filter(|(_, unit, r)| *unit == id && r == role.as_str())
            .map(|(s, ..)| *s)
            .collect();
        ids.sort_unstable();
        ids
    };
    DealerCtx {
        id,
        city: names::city(def.city),
        sells: def.dealer_type == DealerType::FourS,
        admin: of(Role::DealerAdmin).first().copied(),
        sales: of(Role::Sales),
        service: of(Role::Service),
    }
}

/// Relations between plans, stored once the plans have ids.
#[derive(Default)]
struct Links {
    /// (customer, member, how the member relates to the customer)
    household: Vec<(usize, usize, &'static str)>,
    /// (driver, owner, owner's vehicle, role, since)
    drivers: Vec<(usize, usize, usize, &'static str, i64)>,
    /// (customer, referrer)
    referrals: Vec<(usize, usize)>,
    /// (seller, seller's vehicle, buyer, when)
    transfers: Vec<(usize, usize, usize, i64)>,
    /// Plans that are the same person as another plan, or a car's second owner.
    special: HashSet<usize>,
}

struct World {
    rng: StdRng,
    today: Today,
    dealers: Vec<DealerCtx>,
    plans: Vec<CustomerPlan>,
    next_person: u64,
    next_vehicle: u64,
    links: Links,
}

impl World {
    fn new_plan(
        &mut self,
        dealer: usize,
        gender: Gender,
        surname: Option<&str>,
        ages: (i64, i64),
        cars: usize,
        created_at: i64,
    ) -> usize {
        let rng = &mut self.rng;
        let with_id = rng.gen_bool(SHAPE.with_id);
        let person = make::person(
            rng,
            self.today,
            self.dealers[dealer].city,
            surname,
            gender,
            ages,
            with_id,
        );
        let plan = plan::customer(
            rng,
            self.today,
            &self.dealers,
            dealer,
            person,
            self.next_person,
            created_at,
            cars,
            &mut self.next_vehicle,
            &SHAPE,
        );
        self.next_person += 1;
        self.plans.push(plan);
        self.plans.len() - 1
    }

    fn first_seen(&mut self) -> i64 {
        let day = make::date_between(
            &mut self.rng,
            self.today.days_ago(5 * 365 - 60),
            self.today.days_ago(3),
        );
        make::office_hours(&mut self.rng, day)
    }

    fn cars(&mut self, dealer: usize) -> usize {
        let roll = self.rng.gen_range(0..100);
        if self.dealers[dealer].sells {
            match roll {
                0..5 => 0,
                5..78 => 1,
                _ => 2,
            }
        } else {
            match roll {
                0..2 => 0,
                2..88 => 1,
                _ => 2,
            }
        }
    }

    /// `driver` drives `owner`'s first car since both were known to the dealer.
    fn drives(&mut self, driver: usize, owner: usize, role: &'static str) {
        let since = self.plans[owner].vehicles[0]
            .purchased_at
            .max(self.plans[driver].created_at);
        self.links.drivers.push((driver, owner, 0, role, since));
    }

    fn add_tag(&mut self, plan: usize, tag: &'static str) {
        let tags = &mut self.plans[plan].tags;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }

    /// Customers of one dealer: singles, couples, and parents with a grown-up child.
    fn populate(&mut self, dealer: usize) {
        let start = self.plans.len();
        let quota = DEALERS[dealer].customers;
        while self.plans.len() - start < quota {
            let left = quota - (self.plans.len() - start);
            let roll = self.rng.gen_range(0..100);
            let created = self.first_seen();
            let gender = Gender::random(&mut self.rng);
            if roll < 12 && left >= 2 {
                let cars = self.cars(dealer).max(1);
                let a = self.new_plan(dealer, gender, None, (26, 60), cars, created);
                let age = (self.today.date - self.plans[a].person.birthday).num_days() / 365;
                let spouse_cars = usize::from(self.rng.gen_bool(0.5));
                let joined =
                    (created + self.rng.gen_range(1..30) * DAY_MS).min(self.today.end_ms - DAY_MS);
                let b = self.new_plan(
                    dealer,
                    gender.other(),
                    None,
                    ((age - 4).max(23), age + 4),
                    spouse_cars,
                    joined,
                );
                self.links.household.push((a, b, "spouse"));
                self.links.household.push((b, a, "spouse"));
                if spouse_cars == 0 {
                    let role = if self.rng.gen_bool(0.35) {
                        "main_driver"
                    } else {
                        "family"
                    };
                    self.drives(b, a, role);
                }
                if self.rng.gen_bool(0.5) {
                    self.add_tag(a, "有孩家庭");
                    self.add_tag(b, "有孩家庭");
                }
            } else if roll < 17 && left >= 2 {
                let cars = self.cars(dealer).max(1);
                let parent = self.new_plan(dealer, gender, None, (50, 66), cars, created);
                let surname = make::surname_of(&self.plans[parent].person.name);
                let joined = (created + self.rng.gen_range(30..400) * DAY_MS)
                    .min(self.today.end_ms - DAY_MS);
                let child_cars = usize::from(self.rng.gen_bool(0.5));
                let child_gender = Gender::random(&mut self.rng);
                let child = self.new_plan(
                    dealer,
                    child_gender,
                    Some(&surname),
                    (22, 30),
                    child_cars,
                    joined,
                );
                self.links.household.push((parent, child, "child"));
                self.links.household.push((child, parent, "parent"));
                if child_cars == 0 {
                    self.drives(child, parent, "family");
                }
            } else {
                let cars = self.cars(dealer);
                self.new_plan(dealer, gender, None, (23, 65), cars, created);
            }
        }
    }

    /// Where a car's service history at a plan's dealer ends: when it was sold on, or when
    /// the same car (by VIN) was first seen at another dealer.
    fn history_ends(&self) -> Ends {
        let mut ends = Ends::new();
        for &(seller, v, _, at) in &self.links.transfers {
            ends.insert((seller, v), at);
        }
        let mut by_vin: HashMap<&str, Vec<(i64, usize, usize)>> = HashMap::new();
        for (i, p) in self.plans.iter().enumerate() {
            for (v, car) in p.vehicles.iter().enumerate() {
                by_vin
                    .entry(car.vin.as_str())
                    .or_default()
                    .push((car.created_at, i, v));
            }
        }
        for mut seen in by_vin.into_values() {
            seen.sort_unstable();
            for pair in seen.windows(2) {
                let (_, i, v) = pair[0];
                let moved = pair[1].0;
                let end = ends.entry((i, v)).or_insert(moved);
                *end = (*end).min(moved);
            }
        }
        ends
    }

    fn dealer_index(code: &str) -> usize {
        DEALERS.iter().position(|d| d.code == code).unwrap_or(0)
    }

    /// Candidates for the cross-dealer stories: flagship customers with a car bought long enough
    /// ago, who are in no household (so every story stays simple).
    fn flagship_regulars(&self) -> Vec<usize> {
        let flagship = Self::dealer_index(FLAGSHIP_CODE);
        let in_household: HashSet<usize> = self.links.household.iter().map(|h| h.0).collect();
        (0..self.plans.len())
            .filter(|&i| {
                let p = &self.plans[i];
                p.dealer == flagship
                    && !in_household.contains(&i)
                    && p.vehicles.len() == 1
                    && p.vehicles[0].purchased_at < self.today.end_ms - 400 * DAY_MS
            })
            .collect()
    }

    /// People known to two dealers: flagship customers who moved to Shanghai (some brought their
    /// car to the Shanghai store for service, some came to look at a new one), and flagship cars
    /// serviced in Tianjin. Same person, same phone; same car, same VIN.
    fn cross_dealer(&mut self) {
        let mut candidates = self.flagship_regulars();
        let shanghai = Self::dealer_index(SHANGHAI_CODE);
        let tianjin = Self::dealer_index(TIANJIN_CODE);
        let stories = [
            (shanghai, true),
            (shanghai, true),
            (shanghai, false),
            (shanghai, false),
            (tianjin, true),
            (tianjin, true),
            (tianjin, true),
        ];
        for (dealer, with_car) in stories {
            if candidates.is_empty() {
                break;
            }
            let src = candidates.swap_remove(self.rng.gen_range(0..candidates.len()));
            self.clone_to(src, dealer, with_car);
        }
    }

    fn clone_to(&mut self, src: usize, dealer: usize, with_car: bool) {
        let today = self.today;
        let rng = &mut self.rng;
        let original = &self.plans[src];
        let car = original.vehicles[0].clone();
        let from = make::local_date(car.purchased_at + 300 * DAY_MS);
        let day = make::date_between(rng, from, today.days_ago(20));
        let created = make::office_hours(rng, day);
        let ctx = &self.dealers[dealer];
        let mut interactions = Vec::new();
        let mut vehicles = Vec::new();
        if with_car {
            let mut v = car.clone();
            v.created_at = created;
            let count = rng.gen_range(2..=3);
            v.readings = make::readings(
                rng,
                v.purchased_at,
                v.daily_km,
                (created, today.end_ms - 3_600_000),
                count,
                v.model.electric,
            );
            for r in &mut v.readings {
                r.source = "check_in";
            }
            for r in &v.readings {
                let notes = if v.model.electric {
                    names::EV_SERVICE_NOTES
                } else {
                    names::SERVICE_NOTES
                };
                interactions.push(InteractionPlan {
                    kind: "service",
                    channel: Some("in_person"),
                    summary: make::fill(make::pick(rng, notes), v.model.name, r.km),
                    at: r.at + 40 * 60_000,
                    vehicle: Some(0),
                    staff_id: ctx.advisor(rng),
                });
            }
            interactions.push(InteractionPlan {
                kind: "note",
                channel: None,
                summary: format!(
                    "客户车辆购于{}，首次到本店保养，车牌{}",
                    self.dealers[original.dealer].city.name, v.plate.display
                ),
                at: created + 90 * 60_000,
                vehicle: Some(0),
                staff_id: ctx.advisor(rng),
            });
            vehicles.push(v);
        } else {
            interactions.push(InteractionPlan {
                kind: "visit",
                channel: Some("in_person"),
                summary: format!(
                    "客户由北京迁居{}，到店咨询{}置换{}",
                    ctx.city.name,
                    car.model.name,
                    if car.model.electric { "EV9" } else { "Y9" }
                ),
                at: created,
                vehicle: None,
                staff_id: ctx.salesperson(rng),
            });
        }
        let clone = CustomerPlan {
            dealer,
            person: original.person.clone(),
            phones: original.phones.clone(),
            tier: crate::customers::ENTRY_TIER,
            channel: "walk_in",
            referrer_id: None,
            consent_at: original.consent_at.map(|_| created),
            share_consent_at: Some(created),
            created_at: created,
            tags: original
                .tags
                .iter()
                .copied()
                .filter(|t| *t != "VIP" && *t != "老客户推荐")
                .collect(),
            vehicles,
            interactions,
        };
        self.plans.push(clone);
        let index = self.plans.len() - 1;
        self.links.special.insert(src);
        self.links.special.insert(index);
    }

    /// A few cars sold second-hand between customers of the same 4S store: the seller's owner
    /// row is closed, the buyer's opened.
    fn transfers(&mut self) {
        let in_household: HashSet<usize> = self.links.household.iter().map(|h| h.0).collect();
        let mut candidates: Vec<(usize, usize)> = (0..self.plans.len())
            .filter(|i| !self.links.special.contains(i) && !in_household.contains(i))
            .filter(|&i| self.dealers[self.plans[i].dealer].sells)
            .flat_map(|i| (0..self.plans[i].vehicles.len()).map(move |v| (i, v)))
            .filter(|&(i, v)| {
                self.plans[i].vehicles[v].purchased_at < self.today.end_ms - 2 * 365 * DAY_MS
            })
            .collect();
        for _ in 0..5 {
            if candidates.is_empty() {
                break;
            }
            let (seller, v) = candidates.swap_remove(self.rng.gen_range(0..candidates.len()));
            candidates.retain(|c| c.0 != seller);
            let car = self.plans[seller].vehicles[v].clone();
            let from = make::local_date(car.purchased_at + 365 * DAY_MS);
            let day = make::date_between(&mut self.rng, from, self.today.days_ago(30));
            let at = make::office_hours(&mut self.rng, day);
            let dealer = self.plans[seller].dealer;
            let gender = Gender::random(&mut self.rng);
            let buyer = self.new_plan(dealer, gender, None, (23, 45), 0, at - 2 * DAY_MS);
            let staff_id = self.dealers[dealer].salesperson(&mut self.rng);
            self.plans[buyer].interactions.push(InteractionPlan {
                kind: "note",
                channel: None,
                summary: format!(
                    "二手车过户：接手{}{}（{}），原车主为本店老客户",
                    names::BRAND,
                    car.model.name,
                    car.plate.display
                ),
                at,
                vehicle: None,
                staff_id,
            });
            self.plans[seller].interactions.push(InteractionPlan {
                kind: "note",
                channel: None,
                summary: format!("客户已将{}转让，有换购意向", car.plate.display),
                at: at + 3_600_000,
                vehicle: Some(v),
                staff_id,
            });
            self.add_tag(seller, "有换购意向");
            self.links.transfers.push((seller, v, buyer, at));
            self.links.special.insert(buyer);
        }
    }

    /// Customers who came by referral name an earlier customer of the same dealer.
    fn referrals(&mut self) {
        for i in 0..self.plans.len() {
            if self.plans[i].channel != "referral" || self.links.special.contains(&i) {
                continue;
            }
            let dealer = self.plans[i].dealer;
            let earlier: Vec<usize> = (0..i)
                .filter(|&j| {
                    self.plans[j].dealer == dealer
                        && self.plans[j].created_at < self.plans[i].created_at
                })
                .collect();
            if earlier.is_empty() {
                continue;
            }
            let referrer = make::pick(&mut self.rng, &earlier);
            self.links.referrals.push((i, referrer));
        }
    }
}

async fn store_links(conn: &mut AnyConnection, links: &Links, ids: &plan::Inserted) -> Result<()> {
    let customer = |i: usize| ids.customers[i];
    for &(i, referrer) in &links.referrals {
        sqlx::query("UPDATE customers SET referrer_id = $1 WHERE id = $2")
            .bind(customer(referrer))
            .bind(customer(i))
            .execute(&mut *conn)
            .await?;
    }
    let mut household = Rows::new("household_links", &["customer_id", "member_id", "relation"]);
    for &(a, b, relation) in &links.household {
        household.push([
            Param::Int(customer(a)),
            Param::Int(customer(b)),
            Param::Text(relation.to_owned()),
        ]);
    }
    household.execute(conn).await?;
    let mut people = Rows::new(
        "vehicle_people",
        &["vehicle_id", "customer_id", "role", "since"],
    );
    for &(driver, owner, v, role, since) in &links.drivers {
        people.push([
            Param::Int(ids.vehicles[owner][v]),
            Param::Int(customer(driver)),
            Param::Text(role.to_owned()),
            Param::Int(since),
        ]);
    }
    people.execute(conn).await?;
    for &(seller, v, buyer, at) in &links.transfers {
        let vehicle = ids.vehicles[seller][v];
        sqlx::query("UPDATE vehicle_people SET until = $1 WHERE vehicle_id = $2 AND role = 'owner' AND until IS NULL")
            .bind(at)
            .bind(vehicle)
            .execute(&mut *conn)
            .await?;
        sqlx::query("INSERT INTO vehicle_people (vehicle_id, customer_id, role, since) VALUES ($1, $2, 'owner', $3)")
            .bind(vehicle)
            .bind(customer(buyer))
            .bind(at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Tickets of the last half year with their status timelines: older ones mostly closed, recent
/// ones still open or being worked on.
async fn create_tickets(
    conn: &mut AnyConnection,
    rng: &mut StdRng,
    today: Today,
    dealers: &[DealerCtx],
    plans: &[CustomerPlan],
    ids: &plan::Inserted,
) -> Result<Vec<ClosedTicket>> {
    let mut closed_tickets = Vec::new();
    let mut events = Rows::new(
        "ticket_events",
        &["ticket_id", "at", "from_status", "to_status", "note"],
    );
    let latest = today.end_ms - 60_000;
    for _ in 0..TICKETS {
        let i = rng.gen_range(0..plans.len());
        let p = &plans[i];
        let vehicle = (!p.vehicles.is_empty() && rng.gen_bool(0.85))
            .then(|| rng.gen_range(0..p.vehicles.len()));
        let electric = vehicle.is_some_and(|v| p.vehicles[v].model.electric);
        let topics: Vec<&TicketTopic> = names::TICKET_TOPICS
            .iter()
            .filter(|t| electric || !t.electric_only)
            .collect();
        let topic = topics[rng.gen_range(0..topics.len())];
        let vip = p.tags.contains(&"VIP");
        let (team, priority) = match topic.category {
            "safety" => (names::TEAM_SAFETY, topic.priority),
            _ if vip => (
                names::TEAM_VIP,
                if topic.priority == "urgent" {
                    "urgent"
                } else {
                    "high"
                },
            ),
            "complaint" => (names::TEAM_CARE, topic.priority),
            _ => (names::TEAM_SERVICE, topic.priority),
        };
        let channel = make::pick(rng, names::TICKET_CHANNELS);
        let day = make::date_between(rng, today.days_ago(180), today.date);
        let opened = make::office_hours(rng, day)
            .max(p.created_at + DAY_MS)
            .min(today.end_ms - 2 * 3_600_000);
        let age_days = (today.end_ms - opened) / DAY_MS;
        let wanted = match (age_days, rng.gen_range(0..100)) {
            (14.., 0..85) | (3..14, 0..40) => TicketStatus::Closed,
            (14.., 85..95) | (3..14, 40..65) | (..3, 80..) => TicketStatus::Resolved,
            (14.., _) | (3..14, 65..90) | (..3, 40..80) => TicketStatus::InProgress,
            _ => TicketStatus::Open,
        };
        let first_contact = opened
            + 60_000
                * if rng.gen_bool(0.8) {
                    rng.gen_range(5..30)
                } else {
                    rng.gen_range(30..180)
                };
        let first_contact_resolves = topic.category != "safety" && rng.gen_bool(0.3);
        let resolved = if first_contact_resolves {
            first_contact
        } else {
            first_contact + rng.gen_range(2 * 3_600_000..4 * DAY_MS)
        };
        let closed = resolved + rng.gen_range(DAY_MS..3 * DAY_MS);
        let mut timeline = vec![(
            None,
            TicketStatus::Open,
            opened,
            format!("客户通过{}反馈：{}", channel_name(channel), topic.subject),
        )];
        let mut moves = Vec::new();
        if !first_contact_resolves {
            moves.push((
                TicketStatus::InProgress,
                first_contact,
                format!("已联系客户，{team}跟进处理"),
            ));
        }
        let fix = if first_contact_resolves {
            "首次联系即解决：已远程指导客户操作"
        } else {
            "处理完成，已向客户说明原因和处理结果"
        };
        moves.push((TicketStatus::Resolved, resolved, fix.to_owned()));
        moves.push((
            TicketStatus::Closed,
            closed,
            "客户确认问题已解决，工单关闭".to_owned(),
        ));
        let rank = |s: TicketStatus| TicketStatus::ALL.iter().position(|x| *x == s).unwrap_or(0);
        for (status, at, note) in moves {
            if rank(status) > rank(wanted) || at > latest {
                break;
            }
            let from = timeline.last().map(|e| e.1);
            timeline.push((from, status, at, note));
        }
        let status = timeline.last().map_or(TicketStatus::Open, |e| e.1);
        let reached = |s: TicketStatus| timeline.iter().find(|e| e.1 == s).map(|e| e.2);
        let first_contact_at = timeline.get(1).map(|e| e.2);
        let resolved_at = reached(TicketStatus::Resolved);
        let closed_at = reached(TicketStatus::Closed);
        let updated = timeline.last().map_or(opened, |e| e.2);
        // The deadlines the built-in route sets by priority; a clock already past its
        // deadline was escalated back then, so the SLA sweep leaves the history alone.
        let (contact_hours, resolution_hours) = match priority {
            "urgent" => (1, 24),
            "high" => (2, 48),
            _ => (4, 72),
        };
        let first_contact_due = opened + contact_hours * 3_600_000;
        let resolution_due = opened + resolution_hours * 3_600_000;
        let breached = |due: i64, stopped: Option<i64>| {
            (stopped.unwrap_or(today.end_ms) > due && due < today.end_ms).then_some(due)
        };
        let contact_breach = breached(first_contact_due, first_contact_at);
        let resolution_breach = breached(resolution_due, resolved_at.or(closed_at));
        let escalation =
            i64::from(contact_breach.is_some()) + i64::from(resolution_breach.is_some());
        let fcr = resolved_at.map(|_| i64::from(first_contact_resolves));
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO tickets (dealer_id, customer_id, vehicle_id, channel, category, subject, description, status, \
             priority, team, opened_at, first_contact_at, resolved_at, closed_at, version, created_at, updated_at, \
             safety, first_contact_due, resolution_due, first_contact_breached_at, resolution_breached_at, \
             escalation_level, first_contact_resolution) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, $22, $23, $24) RETURNING id",
        )
        .bind(dealers[p.dealer].id)
        .bind(ids.customers[i])
        .bind(vehicle.map(|v| ids.vehicles[i][v]))
        .bind(channel)
        .bind(topic.category)
        .bind(topic.subject)
        .bind(topic.description)
        .bind(status.as_str())
        .bind(priority)
        .bind(team)
        .bind(opened)
        .bind(first_contact_at)
        .bind(resolved_at)
        .bind(closed_at)
        .bind(timeline.len() as i64)
        .bind(opened)
        .bind(updated)
        .bind(i64::from(topic.category == "safety"))
        .bind(first_contact_due)
        .bind(resolution_due)
        .bind(contact_breach)
        .bind(resolution_breach)
        .bind(escalation)
        .bind(fcr)
        .fetch_one(&mut *conn)
        .await?;
        if let Some(closed_at) = closed_at {
            closed_tickets.push(ClosedTicket {
                id,
                dealer_id: dealers[p.dealer].id,
                customer_id: ids.customers[i],
                closed_at,
                first_contact: first_contact_resolves,
            });
        }
        for (from, to, at, note) in timeline {
            events.push([
                Param::Int(id),
                Param::Int(at),
                Param::OptText(from.map(|s| s.as_str().to_owned())),
                Param::Text(to.as_str().to_owned()),
                Param::Text(note),
            ]);
        }
    }
    events.execute(conn).await?;
    Ok(closed_tickets)
}

fn channel_name(channel: &str) -> &'static str {
    match channel {
        "hotline" => "客服热线",
        "app" => "远航App",
        "wechat" => "微信公众号",
        _ => "车主社区",
    }
}
