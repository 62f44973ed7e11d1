//! The end-to-end tests, in one binary: the real host (and the plugin author's CLI) against a
//! fresh SQLite file and a fresh PostgreSQL database per test, one module per area.
//!
//! One binary links the host and wasmtime once instead of once per file. Its tests share one
//! process: the plugin runtime (`dealer_tests::shared_runtime`) and the guest builds
//! (`dealer_tests::guests`) are made once for all of them, and nothing here may change the
//! process's environment or current directory. Run one area with
//! `cargo test -p dealer-tests --test e2e <module>::`.

// The API, area by area.
mod access;
mod api_customers;
mod api_foundation;
mod api_tickets;
mod api_vehicles;
mod imports;
mod owner_pages;
mod partners;
mod shared_history;
mod sign_in;

// Sales and after-sales.
mod business_dates;
mod kpi_story;
mod sales_leads;
mod sales_orders;
mod sales_test_drives;
mod service_appointments;
mod service_campaigns;
mod service_repair_orders;
mod ticket_service;

// What the lifecycles share, care, the demo data and the schema.
mod audit_use_cases;
mod care;
mod concurrency;
mod custom_fields_records;
mod domain_events;
mod foundations;
mod kpis;
mod messages;
mod read_audit;
mod scale;
mod schema_parity;
mod seed;
mod text_input;
mod tiers;
mod tls;

// The plugin platform, the plugins and the author's CLI.
mod channel_plugins;
mod cli;
mod examples;
mod first_party;
mod fixtures;
mod other_languages;
mod plugin_bounds;
mod plugin_deadlines;
mod plugin_platform;
mod plugin_runtime;
mod plugin_storage;
mod plugin_versions;
