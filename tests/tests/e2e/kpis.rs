//! The KPIs over the demo network: every breakdown answers, a unit's figure is its rows'
//! counts put together, the records behind a figure are exactly its part and its whole, the
//! export holds them all, and nobody reads a unit outside their view. The figures themselves
//! are checked against a story computed by hand in `kpi_story`.

use std::io::Cursor;

use calamine::{Reader, Xlsx};
use dealer_host::access::{Caller, Role, keys};
use dealer_host::error::Error;
use dealer_host::kpis::export::{self, FileFormat};
use dealer_host::kpis::records::{self, RecordsQuery};
use dealer_host::kpis::{self, Breakdown, Figure, Kpi, KpiQuery, Scorecard};
use dealer_host::seed;
use dealer_tests::{Backend, TestDb, on_both_backends};

const FROM: &str = "2020-01-01";
const TO: &str = "2030-12-31";

fn query(unit_id: Option<i64>, by: Breakdown) -> KpiQuery {
    KpiQuery {
        from: FROM.into(),
        to: TO.into(),
        unit_id,
        by: Some(by),
    }
}

fn figure(card: &Scorecard, kpi: Kpi) -> Option<Figure> {
    let value = serde_json::to_value(card).unwrap();
    serde_json::from_value::<Option<serde_json::Value>>(value[kpi.as_str()].clone())
        .unwrap()
        .map(|f| Figure {
            value: f["value"].as_f64(),
            part: f["part"].as_f64().unwrap(),
            count: f["count"].as_i64().unwrap(),
        })
}

async fn demo_caller(t: &TestDb, role: Role) -> Caller {
    let issued = seed::issue_demo_keys(&t.db).await.unwrap();
    let key = issued
        .iter()
        .find(|k| k.role == role)
        .unwrap_or_else(|| panic!("a demo {role:?} key"));
    let mut conn = t.db.pool().acquire().await.unwrap();
    keys::authenticate(&mut conn, &key.key).await.unwrap()
}

async fn every_records_list(t: &TestDb, hq: &Caller, kpi: Kpi, counted: Option<bool>) -> usize {
    let mut conn = t.db.pool().acquire().await.unwrap();
    let q = RecordsQuery {
        kpi,
        from: FROM.into(),
        to: TO.into(),
        unit_id: None,
        by: None,
        key: None,
        counted,
    };
    records::list(&mut conn, hq, &q, 0, 1_000_000)
        .await
        .unwrap()
        .len()
}

async fn a_units_figure_is_its_rows_put_together(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed::demo(&t.db).await.unwrap();
    let hq = demo_caller(&t, Role::HqAnalyst).await;
    let mut conn = t.db.pool().acquire().await.unwrap();
    let by_region = kpis::report(&mut conn, &hq, &query(None, Breakdown::Child))
        .await
        .unwrap();
    assert_eq!(by_region.unit.kind, "hq");
    assert!(by_region.rows.iter().all(|r| r.unit_id.is_some()));
    assert!(by_region.rows.len() >= 2, "{:?}", by_region.rows);
    for kpi in Kpi::ALL.iter().copied() {
        let total = figure(&by_region.total, kpi).unwrap();
        let rows: Vec<Figure> = by_region
            .rows
            .iter()
            .map(|r| figure(&r.kpis, kpi).unwrap())
            .collect();
        assert_eq!(
            rows.iter().map(|f| f.count).sum::<i64>(),
            total.count,
            "{kpi:?}"
        );
        let part: f64 = rows.iter().map(|f| f.part).sum();
        assert!(
            (part - total.part).abs() < 1e-6,
            "{kpi:?}: {part} vs {}",
            total.part
        );
    }

    // A dimension splits only the KPIs whose records carry it, and counts each record once.
    let by_channel = kpis::report(&mut conn, &hq, &query(None, Breakdown::Channel))
        .await
        .unwrap();
    let fcr = figure(&by_region.total, Kpi::Fcr).unwrap();
    assert_eq!(figure(&by_channel.total, Kpi::Fcr), Some(fcr));
    let channel_tickets: i64 = by_channel
        .rows
        .iter()
        .filter_map(|r| figure(&r.kpis, Kpi::Fcr))
        .map(|f| f.count)
        .sum();
    assert_eq!(channel_tickets, fcr.count);
    assert!(
        by_channel
            .rows
            .iter()
            .all(|r| figure(&r.kpis, Kpi::ReturnRate).is_none())
    );
    for by in Breakdown::ALL.iter().copied() {
        kpis::report(&mut conn, &hq, &query(None, by))
            .await
            .unwrap_or_else(|e| panic!("{by:?}: {e}"));
    }
}

async fn the_records_are_the_figures_part_and_whole(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed::demo(&t.db).await.unwrap();
    let hq = demo_caller(&t, Role::HqAnalyst).await;
    let report = {
        let mut conn = t.db.pool().acquire().await.unwrap();
        kpis::report(&mut conn, &hq, &query(None, Breakdown::Child))
            .await
            .unwrap()
    };
    for kpi in [
        Kpi::Fcr,
        Kpi::CsatSatisfied,
        Kpi::ReturnRate,
        Kpi::AppointmentConversion,
        Kpi::FirstTimeFix,
        Kpi::LeadConversion,
        Kpi::Churn,
        Kpi::Backlog,
    ] {
        let f = figure(&report.total, kpi).unwrap();
        let counted = every_records_list(&t, &hq, kpi, Some(true)).await;
        assert_eq!(counted as f64, f.part, "{kpi:?}");
        if kpi != Kpi::Backlog {
            let all = every_records_list(&t, &hq, kpi, None).await;
            assert_eq!(all as i64, f.count, "{kpi:?}");
        }
    }

    // The export holds every record, with a header a person reads.
    let q = RecordsQuery {
        kpi: Kpi::FirstTimeFix,
        from: FROM.into(),
        to: TO.into(),
        unit_id: None,
        by: None,
        key: None,
        counted: None,
    };
    let whole = figure(&report.total, Kpi::FirstTimeFix).unwrap().count as usize;
    let mut conn = t.db.pool().acquire().await.unwrap();
    let csv = export::export(&mut conn, &hq, &q, FileFormat::Csv)
        .await
        .unwrap();
    let text = String::from_utf8(csv.bytes).unwrap();
    let text = text.strip_prefix('\u{feff}').expect("a byte order mark");
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("类型,编号,门店"));
    assert_eq!(lines.count(), whole);
    assert_eq!(csv.name, format!("kpi-first_time_fix-{FROM}-{TO}.csv"));
    let xlsx = export::export(&mut conn, &hq, &q, FileFormat::Xlsx)
        .await
        .unwrap();
    let mut book = Xlsx::new(Cursor::new(xlsx.bytes)).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    assert_eq!(sheet.height(), whole + 1);
    assert_eq!(sheet.get((0, 2)).unwrap().to_string(), "门店");
}

async fn nobody_reads_a_unit_outside_their_view(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed::demo(&t.db).await.unwrap();
    let hq = demo_caller(&t, Role::HqAnalyst).await;
    let dealer = demo_caller(&t, Role::DealerAdmin).await;
    let mut conn = t.db.pool().acquire().await.unwrap();
    let own = kpis::report(&mut conn, &dealer, &query(None, Breakdown::Child))
        .await
        .unwrap();
    assert_eq!(own.unit.id, dealer.org_id);
    let all = kpis::report(&mut conn, &hq, &query(None, Breakdown::Dealer))
        .await
        .unwrap();
    let other = all
        .rows
        .iter()
        .find(|r| r.unit_id != Some(dealer.org_id))
        .expect("another dealer");
    let refused = kpis::report(&mut conn, &dealer, &query(other.unit_id, Breakdown::Child)).await;
    assert!(
        matches!(refused, Err(Error::NotFound { .. })),
        "{refused:?}"
    );
    let mine = all
        .rows
        .iter()
        .find(|r| r.unit_id == Some(dealer.org_id))
        .expect("the dealer's row");
    assert_eq!(
        figure(&own.total, Kpi::Revenue),
        figure(&mine.kpis, Kpi::Revenue)
    );
}

on_both_backends!(
    a_units_figure_is_its_rows_put_together,
    the_records_are_the_figures_part_and_whole,
    nobody_reads_a_unit_outside_their_view,
);
