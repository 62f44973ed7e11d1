//! Reminders (first-party plugin): a vehicle with its history becomes its next reminders.
//!
//! - **Maintenance**, to the owner: every `interval_km` or `interval_months` since the last
//!   maintenance visit (other visits do not count) or, without one, since the purchase —
//!   whichever comes first. The distance is projected from the latest odometer reading at the
//!   car's real daily mileage: the vehicle's `daily-km-tenths`, or else the average between
//!   its first and last readings. The kilometres at the last visit are the visit's, or else
//!   the latest reading on or before it; at the purchase, the latest reading on or before it,
//!   or else 0 (a new car). Days are rounded down, so the reminder is never late.
//! - **Insurance renewal**, a task for the advisor, `insurance_days_before` days before the
//!   insurance expires.
//! - **Birthday** (the owner's next one; 29 February is the 28th in other years) and
//!   **purchase anniversary** (the next whole year), to an owner who accepts marketing.
//!
//! No due date is before `today`: an overdue reminder is due today. Dedupe keys depend only
//! on the occurrence — `maintenance:<vehicle>:<start of the interval>`,
//! `insurance:<vehicle>:<expiry>`, `birthday:<customer>:<year>`,
//! `anniversary:<vehicle>:<years>` — so a new run over the same history repeats them, and the
//! next occurrence gets a new one. Messages are in Chinese.
//!
//! The decision is the pure function [`plan`]; the exported hook only reads the dealer's
//! [`Config`].

use dealer_sdk::dates::Date;
use dealer_sdk::reminders::{Audience, Guest, History, Reminder, ReminderKind};
use dealer_sdk::types::Vehicle;
use serde::{Deserialize, Serialize};

/// The channels a reminder to the owner may use.
pub const OWNER_CHANNELS: [&str; 4] = ["sms", "wechat", "app", "email"];
/// The kind of service visit that restarts the maintenance interval.
pub const MAINTENANCE_VISIT: &str = "maintenance";

/// The dealer's reminder rules. Every key is optional; [`Config::default`] holds the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Kilometres between maintenance visits.
    pub interval_km: u32,
    /// Months between maintenance visits.
    pub interval_months: u32,
    /// Days before the insurance expires that the advisor's renewal task is due.
    pub insurance_days_before: u32,
    /// Whether to greet the owner on their birthday.
    pub birthday_reminders: bool,
    /// Whether to greet the owner on the purchase anniversary.
    pub anniversary_reminders: bool,
    /// The channel of reminders to the owner, one of [`OWNER_CHANNELS`].
    pub owner_channel: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            interval_km: 5_000,
            interval_months: 6,
            insurance_days_before: 30,
            birthday_reminders: true,
            anniversary_reminders: true,
            owner_channel: "sms".to_owned(),
        }
    }
}

impl Config {
    /// Refuses what the schema cannot: the first problem, naming its key.
    pub fn validate(&self) -> Result<(), String> {
        let bounded = [
            ("interval_km", self.interval_km, 1, 100_000),
            ("interval_months", self.interval_months, 1, 60),
            ("insurance_days_before", self.insurance_days_before, 0, 365),
        ];
        for (key, value, min, max) in bounded {
            if !(min..=max).contains(&value) {
                return Err(format!("config `{key}`: {value} is not {min} to {max}"));
            }
        }
        if !OWNER_CHANNELS.contains(&self.owner_channel.as_str()) {
            return Err(format!(
                "config `owner_channel`: {:?} is not one of {}",
                self.owner_channel,
                OWNER_CHANNELS.join(", ")
            ));
        }
        Ok(())
    }
}

/// The next reminders of `history` under a validated `config`: maintenance, insurance renewal,
/// birthday, purchase anniversary, each when it applies. No host calls.
///
/// Fails when one of the dates it needs is not `YYYY-MM-DD`.
pub fn plan(history: &History, config: &Config) -> Result<Vec<Reminder>, String> {
    let today = date("today", &history.today)?;
    let vehicle = &history.vehicle;
    let car = car(vehicle);
    let purchase = vehicle
        .purchase_date
        .as_deref()
        .map(|text| date("purchase date", text))
        .transpose()?;
    let readings = history
        .readings
        .iter()
        .map(|reading| Ok((date("reading date", &reading.date)?, reading.km)))
        .collect::<Result<Vec<_>, String>>()?;
    let last_visit = history
        .visits
        .iter()
        .filter(|visit| visit.kind == MAINTENANCE_VISIT)
        .map(|visit| Ok((date("visit date", &visit.date)?, visit.mileage_km)))
        .collect::<Result<Vec<_>, String>>()?
        .into_iter()
        .max_by_key(|(date, _)| *date);

    let mut reminders = Vec::new();
    let start = match last_visit {
        Some((visited, km)) => Some(Start {
            date: visited,
            km: km.or_else(|| odometer_on(&readings, visited)),
            purchase: false,
        }),
        None => purchase.map(|purchased| Start {
            date: purchased,
            km: Some(odometer_on(&readings, purchased).unwrap_or(0)),
            purchase: true,
        }),
    };
    if let Some(start) = start {
        reminders.push(maintenance(vehicle, &car, &readings, start, today, config));
    }

    if let Some(text) = vehicle.insurance_expiry.as_deref() {
        let expiry = date("insurance expiry", text)?;
        let insurer = vehicle
            .insurer
            .as_deref()
            .map_or_else(String::new, |insurer| format!("（{insurer}）"));
        let message = if expiry < today {
            format!("{car}的保险{insurer}已于 {expiry} 到期，请尽快联系车主续保。")
        } else {
            format!("{car}的保险{insurer}将于 {expiry} 到期，请联系车主续保。")
        };
        reminders.push(Reminder {
            kind: ReminderKind::InsuranceRenewal,
            due: expiry
                .add_days(-i64::from(config.insurance_days_before))
                .max(today)
                .to_string(),
            audience: Audience::Advisor,
            channel: "task".to_owned(),
            message,
            dedupe_key: format!("insurance:{}:{expiry}", vehicle.id),
        });
    }

    let Some(owner) = history
        .owner
        .as_ref()
        .filter(|owner| owner.marketing_consent)
    else {
        return Ok(reminders);
    };
    if let Some(text) = owner
        .birthday
        .as_deref()
        .filter(|_| config.birthday_reminders)
    {
        let (next, _) = next_anniversary(date("owner birthday", text)?, today, 0);
        reminders.push(Reminder {
            kind: ReminderKind::Birthday,
            due: next.to_string(),
            audience: Audience::Owner,
            channel: config.owner_channel.clone(),
            message: format!("{}，祝您生日快乐！感谢您一直以来的信任与支持。", owner.name),
            dedupe_key: format!("birthday:{}:{}", owner.id, next.year()),
        });
    }
    if let Some(purchased) = purchase.filter(|_| config.anniversary_reminders) {
        let (next, years) = next_anniversary(purchased, today, 1);
        reminders.push(Reminder {
            kind: ReminderKind::PurchaseAnniversary,
            due: next.to_string(),
            audience: Audience::Owner,
            channel: config.owner_channel.clone(),
            message: format!(
                "{}，您的{car}提车 {years} 周年啦，感谢您一路相伴！",
                owner.name
            ),
            dedupe_key: format!("anniversary:{}:{years}", vehicle.id),
        });
    }
    Ok(reminders)
}

/// Where the current maintenance interval starts.
struct Start {
    date: Date,
    /// The odometer then, if known.
    km: Option<i64>,
    /// The purchase, not a maintenance visit.
    purchase: bool,
}

/// The maintenance reminder of the interval from `start`.
fn maintenance(
    vehicle: &Vehicle,
    car: &str,
    readings: &[(Date, i64)],
    start: Start,
    today: Date,
    config: &Config,
) -> Reminder {
    let by_time = start
        .date
        .add_months(i32::try_from(config.interval_months).unwrap_or(i32::MAX));
    let latest = readings
        .iter()
        .max()
        .copied()
        .or_else(|| Some((today, vehicle.mileage_km?)));
    let daily_tenths = vehicle
        .daily_km_tenths
        .filter(|tenths| *tenths > 0)
        .or_else(|| average_daily_tenths(readings));
    let by_distance = match (start.km, latest, daily_tenths) {
        (Some(start_km), Some((read_on, read_km)), Some(tenths)) => {
            let left_km = start_km
                .saturating_add(i64::from(config.interval_km))
                .saturating_sub(read_km);
            let days = if left_km <= 0 {
                0
            } else {
                left_km.saturating_mul(10) / tenths
            };
            (days < read_on.days_until(by_time)).then(|| (read_on.add_days(days), tenths))
        }
        _ => None,
    };

    let since = match (start.purchase, start.km) {
        (true, _) => format!("提车于 {}", start.date),
        (false, Some(km)) => format!("保养于 {}（{km} 公里）", start.date),
        (false, None) => format!("保养于 {}", start.date),
    };
    let (reached, basis) = match by_distance {
        Some((reached, tenths)) => (
            reached,
            format!(
                "按日均 {}.{} 公里，约 {reached} 行驶满 {} 公里",
                tenths / 10,
                tenths % 10,
                config.interval_km
            ),
        ),
        None => (
            by_time,
            format!("{by_time} 满 {} 个月", config.interval_months),
        ),
    };
    let due = reached.max(today);
    let ask = if reached < today {
        "已到保养时间，请尽快预约保养。".to_owned()
    } else {
        format!("请于 {due} 前预约保养。")
    };
    Reminder {
        kind: ReminderKind::Maintenance,
        due: due.to_string(),
        audience: Audience::Owner,
        channel: config.owner_channel.clone(),
        message: format!("您的{car}上次{since}，{basis}，{ask}"),
        dedupe_key: format!("maintenance:{}:{}", vehicle.id, start.date),
    }
}

/// The latest odometer reading on or before `day`.
fn odometer_on(readings: &[(Date, i64)], day: Date) -> Option<i64> {
    readings
        .iter()
        .filter(|(read_on, _)| *read_on <= day)
        .max()
        .map(|(_, km)| *km)
}

/// Kilometres a day times ten, between the first and the last reading; `None` without two
/// readings on different days that show the car moving.
fn average_daily_tenths(readings: &[(Date, i64)]) -> Option<i64> {
    let (first_day, first_km) = readings.iter().min()?;
    let (last_day, last_km) = readings.iter().max()?;
    let days = first_day.days_until(*last_day);
    let tenths = last_km.saturating_sub(*first_km).saturating_mul(10) / days.max(1);
    (days > 0 && tenths > 0).then_some(tenths)
}

/// The first anniversary of `start` on or after `today`, at least `min_years` after it, and
/// its number of years. 29 February falls on the 28th in other years.
fn next_anniversary(start: Date, today: Date, min_years: i32) -> (Date, i32) {
    let years = (today.year() - start.year()).max(min_years);
    let next = start.add_months(12 * years);
    if next < today {
        (start.add_months(12 * (years + 1)), years + 1)
    } else {
        (next, years)
    }
}

/// The vehicle as a message names it: the model and, when known, the plate.
fn car(vehicle: &Vehicle) -> String {
    match &vehicle.plate {
        Some(plate) => format!("{}（{plate}）", vehicle.model),
        None => vehicle.model.clone(),
    }
}

fn date(what: &str, text: &str) -> Result<Date, String> {
    Date::parse(text).map_err(|error| format!("{what}: {error}"))
}

/// Reads the calling dealer's configuration (one host call; missing keys take their defaults)
/// and validates it.
fn load_config() -> Result<Config, String> {
    let config: Config = dealer_sdk::config::document()?;
    config.validate()?;
    Ok(config)
}

struct Reminders;

impl Guest for Reminders {
    fn plan(history: History) -> Result<Vec<Reminder>, String> {
        plan(&history, &load_config()?)
    }
}

dealer_sdk::export_reminders!(Reminders);

#[cfg(test)]
mod tests {
    use dealer_sdk::reminders::{MileageReading, ServiceVisit};
    use dealer_sdk::types::Customer;

    use super::*;

    const TODAY: &str = "2025-05-02";

    fn vehicle() -> Vehicle {
        Vehicle {
            id: 3,
            dealer_id: 2,
            vin: "LGXC16DF7P0000001".to_owned(),
            plate: Some("京A·12345".to_owned()),
            brand: "比亚迪".to_owned(),
            model: "汉 EV".to_owned(),
            trim: None,
            purchase_date: None,
            insurer: None,
            insurance_expiry: None,
            mileage_km: None,
            daily_km_tenths: None,
            owner_id: Some(5),
        }
    }

    fn owner() -> Customer {
        Customer {
            id: 5,
            dealer_id: 2,
            name: "王芳".to_owned(),
            phone_masked: Some("138****1234".to_owned()),
            tier: Some("金卡".to_owned()),
            tags: Vec::new(),
            birthday: None,
            source_channel: None,
            referrer_id: None,
            marketing_consent: true,
        }
    }

    fn history(vehicle: Vehicle) -> History {
        History {
            vehicle,
            owner: None,
            readings: Vec::new(),
            visits: Vec::new(),
            today: TODAY.to_owned(),
        }
    }

    fn visit(date: &str, km: Option<i64>, kind: &str) -> ServiceVisit {
        ServiceVisit {
            date: date.to_owned(),
            mileage_km: km,
            kind: kind.to_owned(),
        }
    }

    fn reading(date: &str, km: i64) -> MileageReading {
        MileageReading {
            date: date.to_owned(),
            km,
        }
    }

    /// The only reminder of `kind`.
    fn only(reminders: &[Reminder], kind: ReminderKind) -> Reminder {
        let mut found = reminders.iter().filter(|reminder| reminder.kind == kind);
        let reminder = found.next().expect("a reminder of the kind").clone();
        assert!(found.next().is_none(), "one reminder of the kind");
        reminder
    }

    fn maintenance_of(history: &History) -> Reminder {
        only(
            &plan(history, &Config::default()).unwrap(),
            ReminderKind::Maintenance,
        )
    }

    #[test]
    fn maintenance_is_due_months_after_the_last_maintenance_visit() {
        let mut history = history(vehicle());
        history.visits = vec![
            visit("2025-01-10", Some(9_000), MAINTENANCE_VISIT),
            visit("2025-03-01", None, MAINTENANCE_VISIT),
            visit("2025-04-01", Some(13_000), "repair"),
        ];
        assert_eq!(
            maintenance_of(&history),
            Reminder {
                kind: ReminderKind::Maintenance,
                due: "2025-09-01".to_owned(),
                audience: Audience::Owner,
                channel: "sms".to_owned(),
                message: "您的汉 EV（京A·12345）上次保养于 2025-03-01，2025-09-01 满 6 个月，\
                          请于 2025-09-01 前预约保养。"
                    .to_owned(),
                dedupe_key: "maintenance:3:2025-03-01".to_owned(),
            }
        );
    }

    #[test]
    fn maintenance_comes_sooner_at_the_cars_real_daily_mileage() {
        let mut car = vehicle();
        car.daily_km_tenths = Some(500);
        let mut history = history(car);
        history.visits = vec![visit("2025-03-01", Some(12_000), MAINTENANCE_VISIT)];
        history.readings = vec![reading("2025-04-20", 15_000), reading("2025-05-01", 16_000)];
        // 1 000 km left at 50 km a day: 20 days after the last reading.
        let reminder = maintenance_of(&history);
        assert_eq!(reminder.due, "2025-05-21");
        assert_eq!(
            reminder.message,
            "您的汉 EV（京A·12345）上次保养于 2025-03-01（12000 公里），按日均 50.0 公里，约 \
             2025-05-21 行驶满 5000 公里，请于 2025-05-21 前预约保养。"
        );
    }

    #[test]
    fn projected_days_are_rounded_down() {
        let mut car = vehicle();
        // 33.3 km a day: 1 000 km take 30.03 days, so 30.
        car.daily_km_tenths = Some(333);
        let mut history = history(car);
        history.visits = vec![visit("2025-03-01", Some(12_000), MAINTENANCE_VISIT)];
        history.readings = vec![reading("2025-05-01", 16_000)];
        assert_eq!(maintenance_of(&history).due, "2025-05-31");
    }

    #[test]
    fn the_daily_mileage_falls_back_to_the_readings() {
        let mut history = history(vehicle());
        history.today = "2025-03-10".to_owned();
        history.visits = vec![visit("2025-01-01", None, MAINTENANCE_VISIT)];
        // 3 000 km in 60 days is 50 km a day; the visit's km is the reading that day; the
        // 2 000 km left take 40 days from the last reading.
        history.readings = vec![reading("2025-03-02", 13_000), reading("2025-01-01", 10_000)];
        let reminder = maintenance_of(&history);
        assert_eq!(reminder.due, "2025-04-11");
        assert!(
            reminder
                .message
                .contains("保养于 2025-01-01（10000 公里），按日均 50.0 公里")
        );
    }

    #[test]
    fn an_overdue_maintenance_is_due_today() {
        let mut by_time = history(vehicle());
        by_time.visits = vec![visit("2024-06-01", Some(1_000), MAINTENANCE_VISIT)];
        let reminder = maintenance_of(&by_time);
        assert_eq!(reminder.due, TODAY);
        assert!(
            reminder
                .message
                .ends_with("2024-12-01 满 6 个月，已到保养时间，请尽快预约保养。")
        );

        let mut car = vehicle();
        car.daily_km_tenths = Some(400);
        let mut by_distance = history(car);
        by_distance.visits = vec![visit("2025-03-01", Some(1_000), MAINTENANCE_VISIT)];
        by_distance.readings = vec![reading("2025-04-25", 7_000)];
        let reminder = maintenance_of(&by_distance);
        assert_eq!(reminder.due, TODAY);
        assert!(
            reminder
                .message
                .contains("约 2025-04-25 行驶满 5000 公里，已到保养时间")
        );
    }

    #[test]
    fn without_a_visit_the_interval_starts_at_the_purchase() {
        let mut car = vehicle();
        car.purchase_date = Some("2025-02-10".to_owned());
        car.mileage_km = Some(4_000);
        car.daily_km_tenths = Some(600);
        let mut history = history(car);
        history.visits = vec![visit("2025-04-01", Some(3_000), "repair")];
        // A new car: 1 000 km left from today's 4 000 km at 60 km a day is 16 days.
        let reminder = maintenance_of(&history);
        assert_eq!(reminder.due, "2025-05-18");
        assert_eq!(reminder.dedupe_key, "maintenance:3:2025-02-10");
        assert!(
            reminder
                .message
                .starts_with("您的汉 EV（京A·12345）上次提车于 2025-02-10，")
        );
    }

    #[test]
    fn without_a_visit_or_a_purchase_there_is_no_maintenance_reminder() {
        let mut history = history(vehicle());
        history.visits = vec![visit("2025-04-01", Some(3_000), "care")];
        assert!(plan(&history, &Config::default()).unwrap().is_empty());
    }

    #[test]
    fn insurance_renewal_is_an_advisor_task_before_the_expiry() {
        let mut car = vehicle();
        car.insurer = Some("人保财险".to_owned());
        car.insurance_expiry = Some("2025-12-31".to_owned());
        let reminders = plan(&history(car.clone()), &Config::default()).unwrap();
        assert_eq!(
            reminders,
            vec![Reminder {
                kind: ReminderKind::InsuranceRenewal,
                due: "2025-12-01".to_owned(),
                audience: Audience::Advisor,
                channel: "task".to_owned(),
                message:
                    "汉 EV（京A·12345）的保险（人保财险）将于 2025-12-31 到期，请联系车主续保。"
                        .to_owned(),
                dedupe_key: "insurance:3:2025-12-31".to_owned(),
            }]
        );
        car.insurance_expiry = Some("2025-05-20".to_owned());
        car.plate = None;
        let soon = only(
            &plan(&history(car.clone()), &Config::default()).unwrap(),
            ReminderKind::InsuranceRenewal,
        );
        assert_eq!(soon.due, TODAY);
        car.insurance_expiry = Some("2025-04-30".to_owned());
        car.insurer = None;
        let lapsed = only(
            &plan(&history(car), &Config::default()).unwrap(),
            ReminderKind::InsuranceRenewal,
        );
        assert_eq!(lapsed.due, TODAY);
        assert_eq!(
            lapsed.message,
            "汉 EV的保险已于 2025-04-30 到期，请尽快联系车主续保。"
        );
    }

    #[test]
    fn the_owners_next_birthday_is_greeted() {
        let birthday = |born: &str, today: &str| {
            let mut greeted = history(vehicle());
            greeted.today = today.to_owned();
            greeted.owner = Some(Customer {
                birthday: Some(born.to_owned()),
                ..owner()
            });
            only(
                &plan(&greeted, &Config::default()).unwrap(),
                ReminderKind::Birthday,
            )
        };
        let reminder = birthday("1985-08-15", TODAY);
        assert_eq!(
            reminder,
            Reminder {
                kind: ReminderKind::Birthday,
                due: "2025-08-15".to_owned(),
                audience: Audience::Owner,
                channel: "sms".to_owned(),
                message: "王芳，祝您生日快乐！感谢您一直以来的信任与支持。".to_owned(),
                dedupe_key: "birthday:5:2025".to_owned(),
            }
        );
        assert_eq!(birthday("1985-05-02", TODAY).due, TODAY);
        let next_year = birthday("1985-05-01", TODAY);
        assert_eq!(
            (next_year.due.as_str(), next_year.dedupe_key.as_str()),
            ("2026-05-01", "birthday:5:2026")
        );
        assert_eq!(birthday("1988-02-29", "2025-01-10").due, "2025-02-28");
        assert_eq!(birthday("1988-02-29", "2027-03-01").due, "2028-02-29");
    }

    #[test]
    fn the_next_purchase_anniversary_is_celebrated() {
        let anniversary = |purchased: &str| {
            let mut car = vehicle();
            car.purchase_date = Some(purchased.to_owned());
            let mut history = history(car);
            history.owner = Some(owner());
            only(
                &plan(&history, &Config::default()).unwrap(),
                ReminderKind::PurchaseAnniversary,
            )
        };
        let reminder = anniversary("2023-05-02");
        assert_eq!(
            reminder,
            Reminder {
                kind: ReminderKind::PurchaseAnniversary,
                due: TODAY.to_owned(),
                audience: Audience::Owner,
                channel: "sms".to_owned(),
                message: "王芳，您的汉 EV（京A·12345）提车 2 周年啦，感谢您一路相伴！".to_owned(),
                dedupe_key: "anniversary:3:2".to_owned(),
            }
        );
        let passed = anniversary("2023-05-01");
        assert_eq!(
            (passed.due.as_str(), passed.dedupe_key.as_str()),
            ("2026-05-01", "anniversary:3:3")
        );
        let bought_today = anniversary(TODAY);
        assert_eq!(
            (bought_today.due.as_str(), bought_today.dedupe_key.as_str()),
            ("2026-05-02", "anniversary:3:1")
        );
    }

    #[test]
    fn greetings_need_an_owner_who_accepts_marketing_and_the_setting() {
        let mut car = vehicle();
        car.purchase_date = Some("2023-05-02".to_owned());
        let mut history = history(car);
        let greetings = |history: &History, config: &Config| {
            plan(history, config)
                .unwrap()
                .into_iter()
                .filter(|reminder| {
                    matches!(
                        reminder.kind,
                        ReminderKind::Birthday | ReminderKind::PurchaseAnniversary
                    )
                })
                .count()
        };
        assert_eq!(greetings(&history, &Config::default()), 0);
        history.owner = Some(Customer {
            birthday: Some("1990-10-01".to_owned()),
            ..owner()
        });
        assert_eq!(greetings(&history, &Config::default()), 2);
        let off = Config {
            birthday_reminders: false,
            anniversary_reminders: false,
            ..Config::default()
        };
        assert_eq!(greetings(&history, &off), 0);
        history.owner = Some(Customer {
            marketing_consent: false,
            ..owner()
        });
        assert_eq!(greetings(&history, &Config::default()), 0);
        // Maintenance is a service message: it does not need the consent.
        assert_eq!(plan(&history, &Config::default()).unwrap().len(), 1);
    }

    #[test]
    fn dedupe_keys_are_stable_across_runs_and_distinct_per_occurrence() {
        let mut car = vehicle();
        car.purchase_date = Some("2023-05-20".to_owned());
        car.insurance_expiry = Some("2025-12-31".to_owned());
        car.daily_km_tenths = Some(420);
        let mut history = history(car);
        history.owner = Some(Customer {
            birthday: Some("1990-10-01".to_owned()),
            ..owner()
        });
        history.visits = vec![visit("2025-03-01", Some(12_000), MAINTENANCE_VISIT)];
        history.readings = vec![reading("2025-04-30", 14_000)];
        let keys = |history: &History| -> Vec<String> {
            plan(history, &Config::default())
                .unwrap()
                .into_iter()
                .map(|reminder| reminder.dedupe_key)
                .collect()
        };
        let first = keys(&history);
        assert_eq!(
            first,
            [
                "maintenance:3:2025-03-01",
                "insurance:3:2025-12-31",
                "birthday:5:2025",
                "anniversary:3:2",
            ]
        );
        assert_eq!(keys(&history), first);
        // A later run in the same interval, after more driving: the same keys.
        history.today = "2025-05-10".to_owned();
        history.readings.push(reading("2025-05-09", 14_400));
        assert_eq!(keys(&history), first);
        // The next occurrences: new keys.
        history.today = "2025-10-02".to_owned();
        history
            .visits
            .push(visit("2025-06-01", Some(17_000), MAINTENANCE_VISIT));
        history.vehicle.insurance_expiry = Some("2026-12-31".to_owned());
        assert_eq!(
            keys(&history),
            [
                "maintenance:3:2025-06-01",
                "insurance:3:2026-12-31",
                "birthday:5:2026",
                "anniversary:3:3",
            ]
        );
    }

    #[test]
    fn malformed_dates_are_refused_naming_the_field() {
        let mut bad_today = history(vehicle());
        bad_today.today = "2025-5-2".to_owned();
        assert_eq!(
            plan(&bad_today, &Config::default()),
            Err("today: invalid date \"2025-5-2\": expected YYYY-MM-DD".to_owned())
        );
        let mut bad_visit = history(vehicle());
        bad_visit.visits = vec![visit("2025-02-30", None, MAINTENANCE_VISIT)];
        assert_eq!(
            plan(&bad_visit, &Config::default()),
            Err("visit date: invalid date \"2025-02-30\": expected YYYY-MM-DD".to_owned())
        );
    }

    #[test]
    fn the_readme_example_holds() {
        let config: Config = serde_json::from_str(
            r#"{
                "interval_km": 7500,
                "interval_months": 6,
                "insurance_days_before": 45,
                "birthday_reminders": true,
                "anniversary_reminders": false,
                "owner_channel": "wechat"
            }"#,
        )
        .unwrap();
        config.validate().unwrap();
        let mut car = vehicle();
        car.purchase_date = Some("2023-08-18".to_owned());
        car.insurer = Some("平安产险".to_owned());
        car.insurance_expiry = Some("2025-08-17".to_owned());
        car.mileage_km = Some(31_000);
        car.daily_km_tenths = Some(800);
        let mut history = history(car);
        history.owner = Some(Customer {
            birthday: Some("1990-06-08".to_owned()),
            ..owner()
        });
        history.visits = vec![visit("2025-03-15", Some(26_500), MAINTENANCE_VISIT)];
        history.readings = vec![reading("2025-04-28", 31_000)];
        let reminders = plan(&history, &config).unwrap();
        let rendered: Vec<(&str, &str, &str)> = reminders
            .iter()
            .map(|reminder| {
                (
                    reminder.due.as_str(),
                    reminder.dedupe_key.as_str(),
                    reminder.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rendered,
            [
                (
                    "2025-06-04",
                    "maintenance:3:2025-03-15",
                    "您的汉 EV（京A·12345）上次保养于 2025-03-15（26500 公里），按日均 80.0 \
                     公里，约 2025-06-04 行驶满 7500 公里，请于 2025-06-04 前预约保养。",
                ),
                (
                    "2025-07-03",
                    "insurance:3:2025-08-17",
                    "汉 EV（京A·12345）的保险（平安产险）将于 2025-08-17 到期，请联系车主续保。",
                ),
                (
                    "2025-06-08",
                    "birthday:5:2025",
                    "王芳，祝您生日快乐！感谢您一直以来的信任与支持。",
                ),
            ]
        );
        assert_eq!(reminders[0].channel, "wechat");
    }

    #[test]
    fn invalid_settings_are_refused_naming_the_key() {
        let cases = [
            (
                Config {
                    interval_km: 0,
                    ..Config::default()
                },
                "config `interval_km`: 0 is not 1 to 100000",
            ),
            (
                Config {
                    interval_months: 61,
                    ..Config::default()
                },
                "config `interval_months`: 61 is not 1 to 60",
            ),
            (
                Config {
                    insurance_days_before: 366,
                    ..Config::default()
                },
                "config `insurance_days_before`: 366 is not 0 to 365",
            ),
            (
                Config {
                    owner_channel: "task".to_owned(),
                    ..Config::default()
                },
                "config `owner_channel`: \"task\" is not one of sms, wechat, app, email",
            ),
        ];
        for (config, message) in cases {
            assert_eq!(config.validate(), Err(message.to_owned()));
        }
        assert_eq!(Config::default().validate(), Ok(()));
    }
}
