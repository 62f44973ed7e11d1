//! Generators of realistic identifiers and histories: names, phones, ID numbers, VINs, plates,
//! mileage series. Identifiers are derived from sequence numbers through bijections, so two
//! generated people never share a phone and two generated cars never share a VIN or a plate.

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::names::{self, City, Model};
use crate::clock;
use crate::vehicles::identity::{Plate, parse_plate, vin_check_digit};

pub const DAY_MS: i64 = 86_400_000;
/// China Standard Time, UTC+8: people's dates and office hours are local.
const CST: i32 = clock::CST_MINUTES;

/// Today, for one seeding run. Generated history ends at `end_ms`, the local midnight that
/// started today, so the demo comes out the same however late in the day it is loaded.
#[derive(Clone, Copy)]
pub struct Today {
    pub end_ms: i64,
    pub date: NaiveDate,
}

impl Today {
    pub fn now() -> Today {
        let date = local_date(clock::now_ms());
        Today {
            end_ms: at(date, 0),
            date,
        }
    }

    pub fn days_ago(&self, days: i64) -> NaiveDate {
        self.date - chrono::Duration::days(days)
    }
}

pub fn local_date(ms: i64) -> NaiveDate {
    clock::business_date(ms, CST)
}

/// The UTC milliseconds of `minute` minutes after local midnight of `date`.
pub fn at(date: NaiveDate, minute: i64) -> i64 {
    clock::day_start_ms(date, CST) + minute * 60_000
}

/// A moment during office hours (09:00 to 18:00 local) of `date`.
pub fn office_hours(rng: &mut StdRng, date: NaiveDate) -> i64 {
    at(date, rng.gen_range(9 * 60..18 * 60)) + rng.gen_range(0..60_000)
}

pub fn ymd(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// A random date in `from..=to` (or `from` when the range is empty).
pub fn date_between(rng: &mut StdRng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let days = (to - from).num_days();
    if days <= 0 {
        from
    } else {
        from + chrono::Duration::days(rng.gen_range(0..=days))
    }
}

/// One of `items`, drawn with the given weights.
pub fn weighted<T: Copy>(rng: &mut StdRng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut pick = rng.gen_range(0..total.max(1));
    for (item, w) in items {
        if pick < *w {
            return *item;
        }
        pick -= w;
    }
    items[0].0
}

pub fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    *items.choose(rng).unwrap_or(&items[0])
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Gender {
    Male,
    Female,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
        }
    }

    pub fn other(self) -> Gender {
        match self {
            Gender::Male => Gender::Female,
            Gender::Female => Gender::Male,
        }
    }

    pub fn random(rng: &mut StdRng) -> Gender {
        if rng.gen_bool(0.58) {
            Gender::Male
        } else {
            Gender::Female
        }
    }
}

/// A surname, the common ones far more often than the rare ones.
pub fn surname(rng: &mut StdRng) -> &'static str {
    let n = names::SURNAMES.len();
    let a = rng.gen_range(0..n);
    let b = rng.gen_range(0..n);
    names::SURNAMES[a.min(b)]
}

/// The surname a full name starts with (compound surnames such as 欧阳 included).
pub fn surname_of(name: &str) -> String {
    let known = names::SURNAMES
        .iter()
        .filter(|s| name.starts_with(**s))
        .max_by_key(|s| s.len());
    known.map_or_else(|| name.chars().take(1).collect(), |s| (*s).to_owned())
}

pub fn given_name(rng: &mut StdRng, gender: Gender) -> &'static str {
    match gender {
        Gender::Male => pick(rng, names::MALE_GIVEN),
        Gender::Female => pick(rng, names::FEMALE_GIVEN),
    }
}

pub fn full_name(rng: &mut StdRng, gender: Gender) -> String {
    format!("{}{}", surname(rng), given_name(rng, gender))
}

#[derive(Clone, Debug)]
pub struct Person {
    pub name: String,
    pub gender: Gender,
    pub birthday: NaiveDate,
    pub id_number: Option<String>,
}

/// A person of the city, aged `min_age..=max_age`; `with_id` decides whether the dealer holds
/// their resident ID number.
pub fn person(
    rng: &mut StdRng,
    today: Today,
    city: &City,
    surname: Option<&str>,
    gender: Gender,
    (min_age, max_age): (i64, i64),
    with_id: bool,
) -> Person {
    let birthday = date_between(
        rng,
        today.days_ago(max_age * 365 + 300),
        today.days_ago(min_age * 365),
    );
    let name = match surname {
        Some(s) => format!("{s}{}", given_name(rng, gender)),
        None => full_name(rng, gender),
    };
    let id_number = with_id.then(|| {
        let area = if rng.gen_bool(0.25) {
            pick(rng, names::HOMETOWN_AREAS)
        } else {
            pick(rng, city.id_areas)
        };
        id_number(
            area,
            birthday,
            rng.gen_range(0..100),
            gender,
            rng.gen_range(0..5),
        )
    });
    Person {
        name,
        gender,
        birthday,
        id_number,
    }
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// A resident ID number (GB 11643): area, birth date, a 3-digit sequence whose last digit is
/// odd for men and even for women, and the ISO 7064 MOD 11-2 check character.
pub fn id_number(
    area: &str,
    birthday: NaiveDate,
    station: u32,
    gender: Gender,
    order: u32,
) -> String {
    let parity = match gender {
        Gender::Male => 2 * (order % 5) + 1,
        Gender::Female => 2 * (order % 5),
    };
    let body = format!(
        "{area}{}{:02}{parity}",
        birthday.format("%Y%m%d"),
        station % 100
    );
    let sum: u32 = body
        .chars()
        .zip(ID_WEIGHTS)
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    format!("{body}{}", ID_CHECK[(sum % 11) as usize])
}

/// An affine bijection of `0..modulus` (the multiplier is coprime with the modulus), so
/// distinct sequence numbers give distinct, random-looking serials.
fn scramble(seq: u64, multiplier: u64, offset: u64, modulus: u64) -> u64 {
    (seq % modulus * multiplier + offset) % modulus
}

/// The eight digits of `x` in reverse order (a bijection of `0..10^8`).
fn reverse8(mut x: u64) -> u64 {
    let mut out = 0;
    for _ in 0..8 {
        out = out * 10 + x % 10;
        x /= 10;
    }
    out
}

/// A mainland mobile number, unique per `(prefixes, seq)` for `seq < prefixes.len() * 10^8`
/// (the count of prefixes has no prime factors but 2 and 5, so the mixing is a bijection).
pub fn mobile(prefixes: &[&str], seq: u64, salt: u64) -> String {
    let space = prefixes.len() as u64 * 100_000_000;
    let mixed = scramble(seq, 2_654_435_761 % space, 13_579_246 + salt, space);
    let serial = scramble(
        reverse8(mixed % 100_000_000),
        48_271,
        24_681_357,
        100_000_000,
    );
    format!("{}{serial:08}", prefixes[(mixed / 100_000_000) as usize])
}

/// Letters and digits of a plate serial (never I or O).
const PLATE_CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Letters of a VIN's plant position (no I, O, Q).
const PLANTS: &[u8] = b"BSGCHJKLMNPRTVWXYZADEF";
/// Model-year codes (position 10) from 2010 on, in their 30-year cycle.
const YEAR_CODES: &[u8] = b"ABCDEFGHJKLMNPRSTVWXY123456789";

/// A VIN of the brand: WMI `LYH`, the model's descriptor, the check digit, the model-year code,
/// the plant and a 6-digit serial. Unique per `(model, year, seq)` for `seq < 22 * 10^6`.
pub fn vin(model: &Model, model_year: i32, seq: u64) -> String {
    let year = YEAR_CODES[(model_year - 2010).rem_euclid(30) as usize] as char;
    let plant = PLANTS[((seq / 1_000_000) % PLANTS.len() as u64) as usize] as char;
    let draft = format!(
        "LYH{}0{year}{plant}{:06}",
        model.descriptor,
        seq % 1_000_000
    );
    let check = vin_check_digit(&draft).expect("seed VINs are built from VIN characters");
    format!("{}{check}{}", &draft[..8], &draft[9..])
}

/// A plate of `city` (new-energy format for electric cars), unique per prefix for distinct `seq`
/// below 680,000 (electric) or 1,156,000 (others) vehicles per prefix.
pub fn plate(city: &City, electric: bool, seq: u64) -> Plate {
    let prefix = city.plates[(seq % city.plates.len() as u64) as usize];
    let c = |i: u64| PLATE_CHARS[i as usize] as char;
    let serial = if electric {
        // D (battery electric) or F (plug-in hybrid), a letter or digit, four digits.
        let x = scramble(seq, 7_919, 104_729, 2 * 34 * 10_000);
        let kind = if x.is_multiple_of(2) { 'D' } else { 'F' };
        format!("{kind}{}{:04}", c(x / 2 % 34), x / 68)
    } else {
        let x = scramble(seq, 7_919, 611_953, 34 * 34 * 1_000);
        format!("{}{}{:03}", c(x % 34), c(x / 34 % 34), x / 1_156)
    };
    parse_plate(&format!("{prefix}{serial}")).expect("seed plates follow the plate format")
}

/// Component batches fitted at production (a month or two before the purchase).
pub fn components(model: &Model, produced: NaiveDate) -> Vec<(&'static str, String)> {
    let batch = |code: &str| format!("{code}-{}-{:02}", produced.year(), produced.month());
    let mut out = vec![
        ("brake_caliper", batch("BC")),
        ("airbag_module", batch("AB")),
    ];
    if model.electric {
        out.push(("battery_pack", batch("BP")));
        out.push(("drive_motor", batch("DM")));
    } else if model.name != "Y5" {
        out.push(("turbocharger", batch("TC")));
    }
    out
}

/// How far this car really goes per day: most are commuters, some drive for a living.
pub fn daily_km(rng: &mut StdRng) -> f64 {
    match rng.gen_range(0..10) {
        0..=5 => rng.gen_range(18.0..45.0),
        6..=8 => rng.gen_range(45.0..80.0),
        _ => rng.gen_range(80.0..160.0),
    }
}

#[derive(Clone, Debug)]
pub struct Reading {
    pub km: i64,
    pub at: i64,
    pub source: &'static str,
}

/// The odometer of a car bought at `purchased` and driven `daily` km a day, read `count` times
/// between `from` and `to` (the first reading at `from`), with a little noise but never going
/// backwards.
pub fn readings(
    rng: &mut StdRng,
    purchased: i64,
    daily: f64,
    (from, to): (i64, i64),
    count: usize,
    electric: bool,
) -> Vec<Reading> {
    let span = (to - from).max(count as i64);
    let mut out: Vec<Reading> = Vec::with_capacity(count);
    for i in 0..count {
        let slot = span / count as i64;
        let at = if i == 0 {
            from
        } else {
            from + slot * i as i64 + rng.gen_range(0..slot.max(1))
        };
        let days = (at - purchased) as f64 / DAY_MS as f64;
        let delivered = 8 + (purchased % 23);
        let mut km = delivered + (days * daily * rng.gen_range(0.93..1.07)).round() as i64;
        if let Some(prev) = out.last() {
            km = km.max(prev.km + 1);
        }
        let source = if at == purchased {
            "delivery"
        } else {
            match rng.gen_range(0..10) {
                0..=5 => "check_in",
                6..=8 if electric => "app",
                6..=7 => "service",
                _ => "manual",
            }
        };
        out.push(Reading { km, at, source });
    }
    out
}

/// Fills `{model}` and `{km}` in a note template.
pub fn fill(template: &str, model: &str, km: i64) -> String {
    template
        .replace("{model}", model)
        .replace("{km}", &km.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customers::identity::{parse_id_number, parse_phone};
    use crate::vehicles::identity::parse_vin;
    use rand::SeedableRng;

    #[test]
    fn generated_identifiers_are_valid_and_distinct() {
        let mut vins = std::collections::HashSet::new();
        let mut plates = std::collections::HashSet::new();
        let mut phones = std::collections::HashSet::new();
        for seq in 0..20_000 {
            let model = &names::MODELS[(seq % 5) as usize];
            let v = vin(model, 2024, seq);
            assert_eq!(parse_vin(&v).unwrap(), v);
            assert!(vins.insert(v));
            let p = plate(&names::CITIES[5], model.electric, seq);
            assert!(plates.insert(p.key));
            let m = mobile(names::FIRST_MOBILE_PREFIXES, seq, 0);
            assert_eq!(parse_phone(&m).unwrap(), m);
            assert!(phones.insert(m));
        }
    }

    #[test]
    fn id_numbers_carry_birthday_gender_and_check_character() {
        let day = NaiveDate::from_ymd_opt(1988, 2, 29).unwrap();
        for order in 0..5 {
            let id = id_number("110105", day, 42, Gender::Female, order);
            assert_eq!(parse_id_number(&id).unwrap(), id);
            assert_eq!(&id[6..14], "19880229");
            assert_eq!(id.as_bytes()[16] % 2, 0);
            let id = id_number("440305", day, 7, Gender::Male, order);
            assert_eq!(parse_id_number(&id).unwrap(), id);
            assert_eq!(id.as_bytes()[16] % 2, 1);
        }
    }

    #[test]
    fn readings_never_go_backwards() {
        let mut rng = StdRng::seed_from_u64(1);
        let start = 1_600_000_000_000;
        let r = readings(
            &mut rng,
            start,
            40.0,
            (start, start + 400 * DAY_MS),
            4,
            false,
        );
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].source, "delivery");
        assert!(r.windows(2).all(|w| w[0].km < w[1].km && w[0].at < w[1].at));
        let last_days = (r[3].at - start) as f64 / DAY_MS as f64;
        assert!((r[3].km as f64 / last_days - 40.0).abs() < 5.0);
    }
}
