//! Stories told in the past. The API dates what it records by the clock, so a test that needs
//! a history (visits months apart, a ticket past its deadline last month) makes its records
//! through the API and then moves their times to where the story puts them.

use dealer_host::{Db, clock};

/// `YYYY-MM-DD HH:MM` in China Standard Time (the fixture dealers' time), as UTC ms.
pub fn cst(at: &str) -> i64 {
    let (date, time) = at
        .split_once(' ')
        .unwrap_or_else(|| panic!("{at:?} is not `YYYY-MM-DD HH:MM`"));
    let day = clock::parse_date(Some(date.to_owned()))
        .unwrap_or_else(|| panic!("{date:?} is not a date"));
    let (hours, minutes) = time
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
        .unwrap_or_else(|| panic!("{time:?} is not `HH:MM`"));
    clock::day_start_ms(day, clock::CST_MINUTES) + hours * 3_600_000 + minutes * 60_000
}

/// Sets the time columns of row `id` of `table` (`None` clears one), as the story has them.
pub async fn set_times(db: &Db, table: &str, id: i64, columns: &[(&str, Option<i64>)]) {
    let assignments: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (column, _))| format!("{column} = ${}", i + 1))
        .collect();
    let statement = format!(
        "UPDATE {table} SET {} WHERE id = ${}",
        assignments.join(", "),
        columns.len() + 1
    );
    let mut query = sqlx::query(&statement);
    for (_, at) in columns {
        query = query.bind(*at);
    }
    let updated = query
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{statement} for {id}: {e}"))
        .rows_affected();
    assert_eq!(updated, 1, "{table} {id} is not there to be dated");
}
