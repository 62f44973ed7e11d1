//! The demo network and the benchmark seeder: loaded once, every identifier valid, generated
//! customers complete, and demo keys replaced rather than piled up.

use dealer_host::access::keys;
use dealer_host::customers::identity::{parse_id_number, parse_phone};
use dealer_host::seed;
use dealer_host::vehicles::identity::{parse_plate, parse_vin};
use dealer_tests::{Backend, TestDb, on_both_backends};

async fn count(db: &dealer_host::Db, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(db.pool()).await.unwrap();
    n
}

async fn demo_loads_once(backend: Backend) {
    let t = TestDb::new(backend).await;
    let first = seed::demo(&t.db).await.unwrap();
    assert!(first.loaded);
    assert_eq!((first.hq, first.regions), (1, 4));
    assert!(first.dealers + first.branches >= 9, "{first}");
    assert!(
        first.customers >= 300 && first.vehicles >= 300 && first.tickets >= 100,
        "{first}"
    );
    assert!(first.to_string().contains("loaded"), "{first}");

    let second = seed::demo(&t.db).await.unwrap();
    assert!(!second.loaded);
    assert!(second.to_string().contains("already present"), "{second}");
    assert_eq!(
        seed::DemoSummary {
            loaded: true,
            ..second
        },
        first
    );
    assert!(count(&t.db, "SELECT COUNT(*) FROM mileage_readings").await > 0);
    assert_eq!(
        count(
            &t.db,
            "SELECT share_history_across_dealers FROM network_policy"
        )
        .await,
        1
    );
}

async fn demo_has_every_dealer_type_and_cross_dealer_history(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed::demo(&t.db).await.unwrap();
    let types: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT dealer_type FROM org_units WHERE dealer_type IS NOT NULL ORDER BY dealer_type")
            .fetch_all(t.db.pool())
            .await
            .unwrap();
    let types: Vec<String> = types.into_iter().map(|(t,)| t).collect();
    assert_eq!(types, ["4s", "repair_shop", "service_station"]);
    let (flagship,): (String,) =
        sqlx::query_as("SELECT name FROM org_units WHERE code = 'BJ-CY-4S'")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
    assert!(flagship.contains("北京朝阳"), "{flagship}");

    let shared_phones = count(
        &t.db,
        "SELECT COUNT(*) FROM (SELECT p.phone FROM customer_phones p JOIN customers c ON c.id = p.customer_id \
         GROUP BY p.phone HAVING COUNT(DISTINCT c.dealer_id) > 1) x",
    )
    .await;
    assert!(
        shared_phones >= 2,
        "people known to two dealers: {shared_phones}"
    );
    let shared_vins = count(
        &t.db,
        "SELECT COUNT(*) FROM (SELECT vin FROM vehicles GROUP BY vin HAVING COUNT(*) > 1) x",
    )
    .await;
    assert!(shared_vins >= 2, "cars known to two dealers: {shared_vins}");
    let transfers = count(
        &t.db,
        "SELECT COUNT(*) FROM vehicle_people WHERE role = 'owner' AND until IS NOT NULL",
    )
    .await;
    assert!(transfers >= 1);
    assert_eq!(
        count(
            &t.db,
            "SELECT COUNT(*) FROM vehicles v WHERE NOT EXISTS (SELECT 1 FROM vehicle_people p \
                      WHERE p.vehicle_id = v.id AND p.role = 'owner' AND p.until IS NULL)"
        )
        .await,
        0,
        "every car has a current owner"
    );
    let closed_without_times = count(
        &t.db,
        "SELECT COUNT(*) FROM tickets WHERE status = 'closed' AND (closed_at IS NULL OR first_contact_at IS NULL)",
    )
    .await;
    assert_eq!(closed_without_times, 0);
    assert!(
        count(
            &t.db,
            "SELECT COUNT(*) FROM tickets WHERE status = 'closed'"
        )
        .await
            > 0
    );
    assert_eq!(
        count(&t.db, "SELECT COUNT(*) FROM tickets t WHERE NOT EXISTS (SELECT 1 FROM ticket_events e WHERE e.ticket_id = t.id)")
            .await,
        0
    );
}

/// Every stored VIN, plate, phone and ID number passes the host's own validation.
async fn assert_identifiers_valid(db: &dealer_host::Db) {
    let vehicles: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT vin, plate, plate_key FROM vehicles")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert!(!vehicles.is_empty());
    for (vin, plate, key) in vehicles {
        assert_eq!(parse_vin(&vin).as_deref(), Ok(vin.as_str()));
        let plate = plate.expect("every seeded car has a plate");
        let parsed = parse_plate(&plate).unwrap_or_else(|e| panic!("{plate}: {e}"));
        assert_eq!(parsed.display, plate);
        assert_eq!(Some(parsed.key), key);
    }
    let phones: Vec<(String,)> = sqlx::query_as("SELECT phone FROM customer_phones")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert!(!phones.is_empty());
    for (phone,) in phones {
        assert_eq!(parse_phone(&phone).as_deref(), Ok(phone.as_str()));
    }
    let ids: Vec<(String,)> =
        sqlx::query_as("SELECT id_number FROM customers WHERE id_number IS NOT NULL")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert!(!ids.is_empty());
    for (id,) in ids {
        assert_eq!(parse_id_number(&id).as_deref(), Ok(id.as_str()));
    }
}

async fn demo_identifiers_are_valid(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed::demo(&t.db).await.unwrap();
    assert_identifiers_valid(&t.db).await;
}

async fn scale_adds_complete_customers(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed::demo(&t.db).await.unwrap();
    let before = count(&t.db, "SELECT COUNT(*) FROM customers").await;
    let max_before = count(&t.db, "SELECT MAX(id) FROM customers").await;
    assert_eq!(seed::scale(&t.db, 500, None).await.unwrap(), 500);
    assert_eq!(
        count(&t.db, "SELECT COUNT(*) FROM customers").await,
        before + 500
    );

    let new = format!("c.id > {max_before}");
    let owning = count(
        &t.db,
        &format!(
            "SELECT COUNT(*) FROM customers c WHERE {new} AND EXISTS (SELECT 1 FROM vehicle_people p \
             JOIN vehicles v ON v.id = p.vehicle_id WHERE p.customer_id = c.id AND p.role = 'owner' \
             AND p.until IS NULL AND v.dealer_id = c.dealer_id)"
        ),
    )
    .await;
    assert_eq!(
        owning, 500,
        "every generated customer currently owns a car of their dealer"
    );
    for (what, table) in [
        ("phone", "customer_phones"),
        ("tag", "customer_tags"),
        ("interaction", "interactions"),
    ] {
        let missing = count(
            &t.db,
            &format!("SELECT COUNT(*) FROM customers c WHERE {new} AND NOT EXISTS (SELECT 1 FROM {table} x WHERE x.customer_id = c.id)"),
        )
        .await;
        assert_eq!(missing, 0, "generated customers without a {what}");
    }
    let few_readings = count(
        &t.db,
        &format!(
            "SELECT COUNT(*) FROM vehicle_people p JOIN customers c ON c.id = p.customer_id WHERE {new} \
             AND (SELECT COUNT(*) FROM mileage_readings m WHERE m.vehicle_id = p.vehicle_id) NOT BETWEEN 2 AND 4"
        ),
    )
    .await;
    assert_eq!(few_readings, 0, "generated cars have 2 to 4 readings");
    assert_identifiers_valid(&t.db).await;

    // A second run continues the sequences: no VIN repeats at a dealer (the insert would fail).
    assert_eq!(seed::scale(&t.db, 50, None).await.unwrap(), 50);
    assert_eq!(
        count(&t.db, "SELECT COUNT(*) FROM customers").await,
        before + 550
    );
}

async fn scale_on_an_empty_database_loads_the_demo_first(backend: Backend) {
    let t = TestDb::new(backend).await;
    assert_eq!(seed::scale(&t.db, 20, None).await.unwrap(), 20);
    let summary = seed::demo(&t.db).await.unwrap();
    assert!(!summary.loaded);
    assert!(summary.customers >= 320, "{summary}");
    assert_eq!(
        count(
            &t.db,
            "SELECT COUNT(*) FROM org_units WHERE code = 'BJ-CY-4S'"
        )
        .await,
        1
    );
}

async fn the_kpi_network_has_its_dealers_and_their_history(backend: Backend) {
    let t = TestDb::new(backend).await;
    assert_eq!(seed::scale(&t.db, 400, Some(30)).await.unwrap(), 400);
    let dealers = "SELECT COUNT(*) FROM org_units WHERE kind = 'dealer'";
    assert_eq!(count(&t.db, dealers).await, 30);
    let unplaced = count(
        &t.db,
        "SELECT COUNT(*) FROM org_units d JOIN org_units g ON g.id = d.parent_id \
         WHERE d.kind = 'dealer' AND d.code LIKE 'BENCH-%' AND g.kind <> 'group'",
    )
    .await;
    assert_eq!(unplaced, 0, "every benchmark dealer is in a group");
    let bench_customers = count(
        &t.db,
        "SELECT COUNT(DISTINCT c.dealer_id) FROM customers c JOIN org_units u ON u.id = c.dealer_id \
         WHERE u.code LIKE 'BENCH-%'",
    )
    .await;
    assert!(
        bench_customers >= 15,
        "customers at {bench_customers} new dealers"
    );
    let orders = count(&t.db, "SELECT COUNT(*) FROM repair_orders").await;
    assert!(orders >= 1200, "{orders} repair orders for 400 customers");
    for (what, sql) in [
        (
            "settled paid visits",
            "SELECT COUNT(*) FROM repair_orders WHERE settled_at IS NOT NULL AND total_fen > 0 AND advisor_staff_id IS NOT NULL",
        ),
        (
            "late tickets",
            "SELECT COUNT(*) FROM tickets WHERE closed_at > resolution_due",
        ),
        (
            "answered surveys",
            "SELECT COUNT(*) FROM surveys WHERE answered_at IS NOT NULL AND nps IS NOT NULL",
        ),
        (
            "arrivals",
            "SELECT COUNT(*) FROM appointments WHERE status = 'arrived'",
        ),
        (
            "won leads",
            "SELECT COUNT(*) FROM leads WHERE stage = 'won' AND consultant_id IS NOT NULL",
        ),
    ] {
        assert!(count(&t.db, sql).await > 0, "no {what}");
    }
    let comebacks_elsewhere = count(
        &t.db,
        "SELECT COUNT(*) FROM repair_orders r JOIN repair_orders o ON o.id = r.comeback_of_id \
         WHERE o.customer_id <> r.customer_id",
    )
    .await;
    assert_eq!(comebacks_elsewhere, 0, "a comeback is the same owner's");
    let channels: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT channel FROM appointments")
        .fetch_all(t.db.pool())
        .await
        .unwrap();
    for (channel,) in channels {
        assert!(
            dealer_host::service::appointments::Channel::parse(&channel).is_some(),
            "appointments booked by {channel:?} cannot be read back"
        );
    }

    // The API's inserts continue after the seeded ids, and a second run adds no dealers.
    assert_eq!(seed::scale(&t.db, 20, Some(30)).await.unwrap(), 20);
    assert_eq!(count(&t.db, dealers).await, 30);
    sqlx::query(
        "INSERT INTO leads (dealer_id, name, phone, channel, stage, created_at, updated_at) \
         SELECT id, 'x', '13800000000', 'app', 'new', 0, 0 FROM org_units WHERE code = 'BENCH-D0001'",
    )
    .execute(t.db.pool())
    .await
    .unwrap();
}

async fn demo_keys_are_replaced_not_piled_up(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed::demo(&t.db).await.unwrap();
    let first = seed::issue_demo_keys(&t.db).await.unwrap();
    let second = seed::issue_demo_keys(&t.db).await.unwrap();
    let roles: Vec<(&str, Option<&str>)> = second
        .iter()
        .map(|k| (k.role.as_str(), k.position.map(|p| p.as_str())))
        .collect();
    assert_eq!(
        roles,
        [
            ("hq_admin", None),
            ("hq_analyst", None),
            ("partner", None),
            ("regional_manager", None),
            ("dealer_admin", Some("general_manager")),
            ("sales", Some("sales_consultant")),
            ("sales", Some("sales_manager")),
            ("sales", Some("finance_desk")),
            ("service", Some("service_advisor")),
            ("service", Some("technician")),
        ]
    );
    assert!(
        second[3].unit_name.contains("华北"),
        "{}",
        second[3].unit_name
    );
    assert!(
        second[4].unit_name.contains("北京朝阳"),
        "{}",
        second[4].unit_name
    );

    let active: Vec<(String, i64)> = sqlx::query_as(
        "SELECT role, COUNT(*) FROM api_keys WHERE label = 'demo' AND revoked_at IS NULL GROUP BY role ORDER BY role",
    )
    .fetch_all(t.db.pool())
    .await
    .unwrap();
    let per_role: Vec<(&str, i64)> = active.iter().map(|(r, n)| (r.as_str(), *n)).collect();
    assert_eq!(
        per_role,
        [
            ("dealer_admin", 1),
            ("hq_admin", 1),
            ("hq_analyst", 1),
            ("partner", 1),
            ("regional_manager", 1),
            ("sales", 3),
            ("service", 2),
        ]
    );
    assert_eq!(
        count(
            &t.db,
            "SELECT COUNT(*) FROM api_keys WHERE label = 'demo' AND revoked_at IS NOT NULL"
        )
        .await,
        10
    );

    let mut conn = t.db.pool().acquire().await.unwrap();
    for (old, new) in first.iter().zip(&second) {
        assert!(
            keys::authenticate(&mut conn, &old.key).await.is_err(),
            "{} key still works",
            old.role.as_str()
        );
        let caller = keys::authenticate(&mut conn, &new.key).await.unwrap();
        assert_eq!(caller.role, new.role);
        if let Some(position) = new.position {
            let staff = caller.staff_id.expect("a staff member behind the key");
            let member = dealer_host::network::staff_member(&mut conn, staff)
                .await
                .unwrap();
            assert_eq!(member.position, Some(position));
        }
    }
}

on_both_backends!(
    demo_loads_once,
    demo_has_every_dealer_type_and_cross_dealer_history,
    demo_identifiers_are_valid,
    scale_adds_complete_customers,
    scale_on_an_empty_database_loads_the_demo_first,
    the_kpi_network_has_its_dealers_and_their_history,
    demo_keys_are_replaced_not_piled_up,
);
