//! The KPIs over the demo network: every breakdown answers, a unit's figure is its rows'
//! counts put together, the records behind a figure are exactly its part and its whole, the
//! export holds them all, and nobody reads a unit outside their view. The figures themselves
//! are checked against a story computed by hand in `kpi_story`.

use std::io::Cursor;

use calamine::{Reader, Xlsx};
use dealer_host::access::{Caller, Role, keys};
use dealer_host::error::Error;
use dealer_host::kpis::churn::{self, ChurnTasks, RetentionOffer};
use dealer_host::kpis::export::{self, FileFormat};
use dealer_host::kpis::records::{self, RecordsQuery};
use dealer_host::kpis::store;
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

async fn the_store_cockpit_and_the_churn_actions_work_on_the_figures_records(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed::demo(&t.db).await.unwrap();
    let hq = demo_caller(&t, Role::HqAdmin).await;
    let mut conn = t.db.pool().acquire().await.unwrap();
    let q = query(None, Breakdown::Child);
    let report = kpis::report(&mut conn, &hq, &q).await.unwrap();
    let cockpit = store::cockpit(&mut conn, &hq, &q).await.unwrap();
    assert_eq!(cockpit.nps_distribution.len(), 11);
    assert_eq!(
        cockpit.nps_distribution.iter().sum::<i64>(),
        figure(&report.total, Kpi::Nps).unwrap().count
    );
    assert_eq!(cockpit.sla_breaches_by_hour.len(), 24);
    assert_eq!(
        cockpit.sla_breaches_by_hour.iter().sum::<i64>(),
        cockpit
            .sla_breaches_by_category
            .iter()
            .map(|c| c.count)
            .sum::<i64>()
    );
    assert_eq!(cockpit.customers.len(), 3);

    // A task per owner at risk, once a day; an offer only to those who consented.
    let q = RecordsQuery {
        kpi: Kpi::Churn,
        from: FROM.into(),
        to: TO.into(),
        unit_id: None,
        by: None,
        key: None,
        counted: Some(true),
    };
    let owners: Vec<i64> = records::list(&mut conn, &hq, &q, 0, 20)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| r.customer_id)
        .collect();
    assert!(!owners.is_empty(), "the demo has owners at risk");
    let asked = ChurnTasks {
        customer_ids: owners.clone(),
    };
    let first = churn::create_tasks(&mut conn, &hq, &asked).await.unwrap();
    assert_eq!(first.created, owners.len() as i64);
    let again = churn::create_tasks(&mut conn, &hq, &asked).await.unwrap();
    assert_eq!(again.created, 0);
    let sql = format!(
        "SELECT COUNT(*) FROM customers WHERE marketing_consent = 1 AND id IN ({})",
        owners
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let (consenting,): (i64,) = sqlx::query_as(&sql).fetch_one(&mut *conn).await.unwrap();
    let sent = churn::send_offers(
        &mut conn,
        &hq,
        &RetentionOffer {
            customer_ids: owners.clone(),
            offer: "到店保养工时费八折".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(sent.invited, consenting);
    assert_eq!(sent.refused_no_consent, owners.len() as i64 - consenting);
}

/// Every dashboard of the demo has something to show: each KPI has records at HQ over the
/// last year, and the flagship store its own visits, breaches, detractors and owners at risk.
async fn the_demo_has_a_year_behind_every_kpi(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed::demo(&t.db).await.unwrap();
    let hq = demo_caller(&t, Role::HqAnalyst).await;
    let store_manager = demo_caller(&t, Role::DealerAdmin).await;
    let today = chrono::Utc::now().date_naive();
    let year = KpiQuery {
        from: (today - chrono::Duration::days(365)).to_string(),
        to: today.to_string(),
        unit_id: None,
        by: Some(Breakdown::Child),
    };
    let mut conn = t.db.pool().acquire().await.unwrap();
    let network = kpis::report(&mut conn, &hq, &year).await.unwrap();
    for kpi in Kpi::ALL.iter().copied() {
        let f = figure(&network.total, kpi).unwrap();
        assert!(f.count > 0 && f.value.is_some(), "{kpi:?}: {f:?}");
        assert!(f.part > 0.0, "{kpi:?} has records in its part: {f:?}");
    }
    let fcr = figure(&network.total, Kpi::Fcr).unwrap();
    assert!(
        fcr.part < fcr.count as f64,
        "not every ticket is resolved at first contact"
    );

    let flagship = kpis::report(&mut conn, &store_manager, &year)
        .await
        .unwrap();
    for kpi in [
        Kpi::Revenue,
        Kpi::Backlog,
        Kpi::Churn,
        Kpi::LeadConversion,
        Kpi::Nps,
    ] {
        let f = figure(&flagship.total, kpi).unwrap();
        assert!(
            f.count > 0 && f.part > 0.0,
            "{kpi:?} at the flagship: {f:?}"
        );
    }
    let by_channel = KpiQuery {
        by: Some(Breakdown::Channel),
        ..year.clone()
    };
    let by_channel = kpis::report(&mut conn, &store_manager, &by_channel)
        .await
        .unwrap();
    let lead_channels = by_channel
        .rows
        .iter()
        .filter(|r| figure(&r.kpis, Kpi::LeadConversion).is_some_and(|f| f.count > 0))
        .count();
    assert!(lead_channels >= 3, "leads come by several channels");
    let cockpit = store::cockpit(&mut conn, &store_manager, &year)
        .await
        .unwrap();
    assert!(!cockpit.detractor_comments.is_empty());
    assert!(!cockpit.top_service_items.is_empty());
    assert!(cockpit.leaderboard.iter().any(|l| l.settled_orders > 0));
    assert!(cockpit.customers.iter().all(|w| w.active > 0));
}

on_both_backends!(
    the_demo_has_a_year_behind_every_kpi,
    a_units_figure_is_its_rows_put_together,
    the_records_are_the_figures_part_and_whole,
    nobody_reads_a_unit_outside_their_view,
    the_store_cockpit_and_the_churn_actions_work_on_the_figures_records,
);
