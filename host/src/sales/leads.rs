//! Leads: prospects from every channel, de-duplicated against the dealer's customers by
//! phone, assigned to a sales consultant, followed up by tasks, and moved through the funnel
//! `new → contacted → test_drive → negotiating → won | lost`. Owns `leads`,
//! `lead_stage_events`, `lead_assignment_cursor` and `lead_tasks`.
//!
//! Duplicates: a lead whose phone matches a customer of the dealer is linked to that customer;
//! a second *open* lead for the same phone at the same dealer is refused (409
//! `duplicate_open_lead`, naming the open lead), because merging would silently drop what the
//! second capture said. Once a lead is won or lost, the phone may come back as a new lead.
//! The database guarantees it: `open_phone` carries the phone while the lead is open, under a
//! unique index.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use super::{is_active_staff, text_enum};
use crate::access::{Caller, masking};
use crate::audit::{self, Entry};
use crate::clock;
use crate::custom_fields::Writer;
use crate::customers::{self, NewCustomer, PhoneInput, SourceChannel, identity};
use crate::db::decode;
use crate::db::{Param, Sql};
use crate::error::{Error, FieldError, Result};
use crate::model::Versioned;
use crate::text;

pub const NAME_MAX: usize = 100;
pub const TAG_MAX: usize = 40;
pub const TAGS_MAX: usize = 20;
pub const TEXT_MAX: usize = 2000;
pub const SCORE_MAX: i64 = 100;
/// Rows a single CSV import may hold.
pub const IMPORT_MAX_ROWS: usize = 5000;

text_enum!(
    /// Where a lead came from.
    Channel {
        OnlineAd => "online_ad",
        AutoShow => "auto_show",
        WalkIn => "walk_in",
        App => "app",
        Referral => "referral",
    }
);

impl Channel {
    fn source_channel(self) -> SourceChannel {
        match self {
            Channel::OnlineAd => SourceChannel::OnlineAd,
            Channel::AutoShow => SourceChannel::AutoShow,
            Channel::WalkIn => SourceChannel::WalkIn,
            Channel::App => SourceChannel::App,
            Channel::Referral => SourceChannel::Referral,
        }
    }
}

text_enum!(
    /// A lead's place in the funnel.
    Stage {
        New => "new",
        Contacted => "contacted",
        TestDrive => "test_drive",
        Negotiating => "negotiating",
        Won => "won",
        Lost => "lost",
    }
);

impl Stage {
    /// The funnel's stages in order (`lost` leaves the funnel).
    pub const FUNNEL: [Stage; 5] = [
        Stage::New,
        Stage::Contacted,
        Stage::TestDrive,
        Stage::Negotiating,
        Stage::Won,
    ];

    /// Position in [`Stage::FUNNEL`]; `None` for `lost`.
    pub fn rank(self) -> Option<usize> {
        Stage::FUNNEL.iter().position(|s| *s == self)
    }

    pub fn is_open(self) -> bool {
        !matches!(self, Stage::Won | Stage::Lost)
    }

    /// An open lead moves forward (stages may be skipped) or is lost; won and lost are final.
    pub fn next(self) -> Vec<Stage> {
        match self.rank() {
            Some(rank) if self.is_open() => Stage::FUNNEL[rank + 1..]
                .iter()
                .copied()
                .chain([Stage::Lost])
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn check_move(self, to: Stage) -> Result<()> {
        let next = self.next();
        if next.contains(&to) {
            return Ok(());
        }
        Err(Error::InvalidTransition {
            from: self.as_str().to_owned(),
            to: to.as_str().to_owned(),
            allowed: next.iter().map(|s| s.as_str().to_owned()).collect(),
        })
    }
}

/// One stage a lead reached, with when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StageEvent {
    pub at: DateTime<Utc>,
    pub from_stage: Option<Stage>,
    pub to_stage: Stage,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Lead {
    pub id: i64,
    pub dealer_id: i64,
    /// The customer this lead is (found by phone, or made when the lead was won).
    pub customer_id: Option<i64>,
    pub name: String,
    /// Masked for roles that do not need it.
    pub phone: String,
    pub channel: Channel,
    pub stage: Stage,
    pub score: i64,
    pub tags: Vec<String>,
    pub consultant_id: Option<i64>,
    /// What the prospect is interested in, e.g. a model.
    pub interest: Option<String>,
    pub lost_reason: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every stage change, oldest first.
    pub stages: Vec<StageEvent>,
}

impl Versioned for Lead {
    fn version(&self) -> i64 {
        self.version
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLead {
    /// Required for HQ callers; dealer staff leave it out.
    pub dealer_id: Option<i64>,
    /// 1 to 100 characters.
    pub name: String,
    /// A mainland mobile or landline.
    pub phone: String,
    pub channel: Channel,
    /// 0 to 100, default 0.
    pub score: Option<i64>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// An active staff member of the dealer; left out, the dealer's active sales consultants
    /// take turns (round-robin).
    pub consultant_id: Option<i64>,
    pub interest: Option<String>,
}

/// Changes to a lead; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadPatch {
    /// Moves the lead: forward through the funnel (stages may be skipped) or to `lost`.
    /// Winning makes the customer (or links the one found by phone).
    pub stage: Option<Stage>,
    /// Required when moving to `lost`.
    pub lost_reason: Option<String>,
    /// Recorded with the stage change.
    pub note: Option<String>,
    pub score: Option<i64>,
    /// Replaces the tags.
    pub tags: Option<Vec<String>>,
    pub consultant_id: Option<i64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeadFilter {
    pub stage: Option<Stage>,
    pub channel: Option<Channel>,
    pub consultant_id: Option<i64>,
}

#[derive(FromRow)]
struct LeadRow {
    id: i64,
    dealer_id: i64,
    customer_id: Option<i64>,
    name: String,
    phone: String,
    channel: String,
    stage: String,
    score: i64,
    tags: String,
    consultant_id: Option<i64>,
    interest: Option<String>,
    lost_reason: Option<String>,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

#[derive(FromRow)]
struct EventRow {
    lead_id: i64,
    from_stage: Option<String>,
    to_stage: String,
    at: i64,
    note: Option<String>,
}

const LEAD_COLUMNS: &str = "id, dealer_id, customer_id, name, phone, channel, stage, score, tags, \
     consultant_id, interest, lost_reason, version, created_at, updated_at";

impl LeadRow {
    fn stage(&self) -> Result<Stage> {
        decode("leads", &self.stage, Stage::parse)
    }

    fn into_lead(self, caller: &Caller, stages: Vec<StageEvent>) -> Result<Lead> {
        Ok(Lead {
            channel: decode("leads", &self.channel, Channel::parse)?,
            stage: self.stage()?,
            id: self.id,
            dealer_id: self.dealer_id,
            customer_id: self.customer_id,
            name: self.name,
            phone: if caller.masks_phone() {
                masking::phone(&self.phone)
            } else {
                self.phone
            },
            score: self.score,
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            consultant_id: self.consultant_id,
            interest: self.interest,
            lost_reason: self.lost_reason,
            version: self.version,
            created_at: clock::to_datetime(self.created_at),
            updated_at: clock::to_datetime(self.updated_at),
            stages,
        })
    }
}

/// A lead's fields after their checks.
struct Checked {
    name: String,
    phone: String,
    score: i64,
    tags: Vec<String>,
    interest: Option<String>,
}

fn check_score(errors: &mut Vec<FieldError>, score: i64) {
    if !(0..=SCORE_MAX).contains(&score) {
        errors.push(FieldError::new(
            "score",
            "out_of_range",
            format!("score is 0 to {SCORE_MAX}"),
        ));
    }
}

fn check_tags(errors: &mut Vec<FieldError>, tags: &[String]) -> Vec<String> {
    if tags.len() > TAGS_MAX {
        errors.push(FieldError::new(
            "tags",
            "too_many",
            format!("at most {TAGS_MAX} tags"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        if let Some(tag) = text::required(errors, "tags", tag, TAG_MAX)
            && !out.contains(&tag)
        {
            out.push(tag);
        }
    }
    out
}

/// The checks of a new lead that need no database.
fn check_fields(new: &NewLead) -> (Vec<FieldError>, Option<Checked>) {
    let mut errors = Vec::new();
    let name = text::required(&mut errors, "name", &new.name, NAME_MAX);
    let phone = identity::parse_phone(&new.phone)
        .map_err(|m| errors.push(FieldError::new("phone", "invalid_phone", m)))
        .ok();
    let score = new.score.unwrap_or(0);
    check_score(&mut errors, score);
    let tags = check_tags(&mut errors, &new.tags);
    let interest = text::optional(&mut errors, "interest", new.interest.as_deref(), TEXT_MAX);
    match (name, phone) {
        (Some(name), Some(phone)) if errors.is_empty() => (
            errors,
            Some(Checked {
                name,
                phone,
                score,
                tags,
                interest,
            }),
        ),
        _ => (errors, None),
    }
}

/// The open lead of `dealer_id` with `phone`, if any.
async fn open_lead_with_phone(
    conn: &mut AnyConnection,
    dealer_id: i64,
    phone: &str,
) -> Result<Option<i64>> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM leads WHERE dealer_id = $1 AND open_phone = $2")
            .bind(dealer_id)
            .bind(phone)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(id,)| id))
}

/// The next of the dealer's active sales consultants after the one assigned last, or `None`
/// when the dealer has none.
async fn next_consultant(conn: &mut AnyConnection, dealer_id: i64) -> Result<Option<i64>> {
    let consultants: Vec<(i64,)> = sqlx::query_as(
        "SELECT id FROM staff WHERE org_unit_id = $1 AND active = 1 AND position = $2 ORDER BY id",
    )
    .bind(dealer_id)
    .bind(crate::network::Position::SalesConsultant.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let Some((first,)) = consultants.first().copied() else {
        return Ok(None);
    };
    // Touching the cursor row first locks it until commit, so concurrent captures at one
    // dealer take their turns one after the other (0: nobody assigned yet).
    let (last,): (i64,) = sqlx::query_as(
        "INSERT INTO lead_assignment_cursor (dealer_id, last_staff_id) VALUES ($1, 0) \
         ON CONFLICT (dealer_id) DO UPDATE SET last_staff_id = lead_assignment_cursor.last_staff_id \
         RETURNING last_staff_id",
    )
    .bind(dealer_id)
    .fetch_one(&mut *conn)
    .await?;
    let next = consultants
        .iter()
        .find(|(id,)| *id > last)
        .map_or(first, |(id,)| *id);
    sqlx::query("UPDATE lead_assignment_cursor SET last_staff_id = $1 WHERE dealer_id = $2")
        .bind(next)
        .bind(dealer_id)
        .execute(&mut *conn)
        .await?;
    Ok(Some(next))
}

async fn check_consultant(
    conn: &mut AnyConnection,
    errors: &mut Vec<FieldError>,
    dealer_id: i64,
    consultant_id: i64,
) -> Result<()> {
    if !is_active_staff(conn, dealer_id, consultant_id).await? {
        errors.push(FieldError::new(
            "consultant_id",
            "unknown_staff",
            "not an active staff member of the lead's dealer",
        ));
    }
    Ok(())
}

async fn insert_stage_event(
    conn: &mut AnyConnection,
    lead_id: i64,
    from: Option<Stage>,
    to: Stage,
    at: i64,
    note: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO lead_stage_events (lead_id, from_stage, to_stage, at, note) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(lead_id)
    .bind(from.map(Stage::as_str))
    .bind(to.as_str())
    .bind(at)
    .bind(note)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Captures a lead for `dealer_id` (already checked with `network::dealer_for_write`): links
/// the customer with the same phone, refuses a second open lead for the phone, assigns a
/// consultant, and records the first stage. Audited.
pub async fn create(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    new: &NewLead,
) -> Result<Lead> {
    let (mut errors, checked) = check_fields(new);
    if let Some(c) = new.consultant_id {
        check_consultant(conn, &mut errors, dealer_id, c).await?;
    }
    let Some(checked) = checked.filter(|_| errors.is_empty()) else {
        return Err(Error::Invalid(errors));
    };
    if let Some(open) = open_lead_with_phone(conn, dealer_id, &checked.phone).await? {
        return Err(Error::Conflict {
            code: "duplicate_open_lead",
            message: format!("lead {open} is already open for this phone number"),
        });
    }
    let customer_id = customers::find_by_phone(conn, dealer_id, &checked.phone).await?;
    let consultant_id = match new.consultant_id {
        Some(c) => Some(c),
        None => next_consultant(conn, dealer_id).await?,
    };
    let now = clock::now_ms();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO leads (dealer_id, customer_id, name, phone, open_phone, channel, stage, score, tags, \
         consultant_id, interest, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id",
    )
    .bind(dealer_id)
    .bind(customer_id)
    .bind(&checked.name)
    .bind(&checked.phone)
    .bind(new.channel.as_str())
    .bind(Stage::New.as_str())
    .bind(checked.score)
    .bind(serde_json::to_string(&checked.tags).unwrap_or_else(|_| "[]".into()))
    .bind(consultant_id)
    .bind(checked.interest.as_deref())
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    insert_stage_event(conn, id, None, Stage::New, now, None).await?;
    audit::record(conn, caller, Entry::ok("create", "lead", id, dealer_id)).await?;
    fetch(conn, caller, id).await
}

/// One refused row of an import: `row` is the line number in the file (the header is 1).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowError {
    pub row: usize,
    pub field: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportReport {
    /// Data rows read (the header excluded).
    pub rows: usize,
    /// The leads stored, in file order.
    pub created: Vec<i64>,
    /// One entry per problem of each refused row; a refused row stores nothing.
    pub errors: Vec<RowError>,
}

/// The columns an import understands; `name`, `phone` and `channel` are required.
const IMPORT_COLUMNS: [&str; 6] = ["name", "phone", "channel", "score", "tags", "interest"];

/// Splits CSV text into records of fields (RFC 4180: quoted fields may hold commas, quotes
/// doubled, and line breaks). Each record carries the line it started on.
fn parse_csv(text: &str) -> std::result::Result<Vec<(usize, Vec<String>)>, usize> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut start = 1;
    let mut quoted = false;
    let mut chars = text.trim_start_matches('\u{feff}').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if field.is_empty() => quoted = true,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            '\r' if !quoted => {}
            '\n' if !quoted => {
                fields.push(std::mem::take(&mut field));
                if fields.iter().any(|f| !f.trim().is_empty()) {
                    records.push((start, std::mem::take(&mut fields)));
                }
                fields.clear();
                line += 1;
                start = line;
            }
            '\n' => {
                line += 1;
                field.push(c);
            }
            c => field.push(c),
        }
    }
    if quoted {
        return Err(start);
    }
    fields.push(field);
    if fields.iter().any(|f| !f.trim().is_empty()) {
        records.push((start, fields));
    }
    Ok(records)
}

/// Imports leads for `dealer_id` from CSV text with a header row naming the columns (`name`,
/// `phone`, `channel`, and optionally `score`, `tags` separated by `;` or `|`, `interest`).
/// Good rows are stored as [`create`] would; bad rows are reported with their line, field and
/// reason, and store nothing. A file that cannot be read at all is refused as a whole.
pub async fn import_csv(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    text: &str,
) -> Result<ImportReport> {
    let records = parse_csv(text).map_err(|line| {
        Error::invalid(
            "csv",
            "unterminated_quote",
            format!("the quoted field starting on line {line} never ends"),
        )
    })?;
    let mut records = records.into_iter();
    let Some((_, header)) = records.next() else {
        return Err(Error::invalid("csv", "empty", "the file has no header row"));
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    let mut errors = Vec::new();
    for h in &header {
        if !IMPORT_COLUMNS.contains(&h.as_str()) {
            errors.push(FieldError::new(
                "csv",
                "unknown_column",
                format!("unknown column {h:?}; the columns are {IMPORT_COLUMNS:?}"),
            ));
        }
    }
    for required in ["name", "phone", "channel"] {
        if !header.iter().any(|h| h == required) {
            errors.push(FieldError::new(
                "csv",
                "missing_column",
                format!("the header has no {required:?} column"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let rows: Vec<(usize, Vec<String>)> = records.collect();
    if rows.len() > IMPORT_MAX_ROWS {
        return Err(Error::invalid(
            "csv",
            "too_many_rows",
            format!("at most {IMPORT_MAX_ROWS} rows per import"),
        ));
    }
    let mut report = ImportReport {
        rows: rows.len(),
        created: Vec::new(),
        errors: Vec::new(),
    };
    for (line, fields) in rows {
        let value = |column: &str| {
            header
                .iter()
                .position(|h| h == column)
                .and_then(|i| fields.get(i))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut row_errors = Vec::new();
        let channel = value("channel").and_then(|c| Channel::parse(&c));
        if channel.is_none() {
            row_errors.push(FieldError::new(
                "channel",
                "invalid_channel",
                format!(
                    "channel is one of {:?}",
                    Channel::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()
                ),
            ));
        }
        let score = match value("score").map(|s| s.parse::<i64>()) {
            Some(Ok(s)) => Some(s),
            Some(Err(_)) => {
                row_errors.push(FieldError::new(
                    "score",
                    "not_a_number",
                    "score is a whole number",
                ));
                None
            }
            None => None,
        };
        if fields.len() > header.len() {
            row_errors.push(FieldError::new(
                "csv",
                "too_many_fields",
                format!("{} fields for {} columns", fields.len(), header.len()),
            ));
        }
        let new = NewLead {
            dealer_id: Some(dealer_id),
            name: value("name").unwrap_or_default(),
            phone: value("phone").unwrap_or_default(),
            channel: channel.unwrap_or(Channel::WalkIn),
            score,
            tags: value("tags")
                .map(|t| {
                    t.split([';', '|'])
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            consultant_id: None,
            interest: value("interest"),
        };
        let (mut field_errors, _) = check_fields(&new);
        row_errors.append(&mut field_errors);
        let outcome = if row_errors.is_empty() {
            create(conn, caller, dealer_id, &new).await
        } else {
            Err(Error::Invalid(row_errors))
        };
        match outcome {
            Ok(lead) => report.created.push(lead.id),
            Err(Error::Invalid(errors)) => {
                report.errors.extend(errors.into_iter().map(|e| RowError {
                    row: line,
                    field: e.field,
                    code: e.code,
                    message: e.message,
                }));
            }
            Err(Error::Conflict { code, message }) => report.errors.push(RowError {
                row: line,
                field: "phone".into(),
                code: code.into(),
                message,
            }),
            Err(other) => return Err(other),
        }
    }
    audit::record(
        conn,
        caller,
        Entry::ok("import", "lead", 0, dealer_id).with_detail(serde_json::json!({
            "rows": report.rows, "created": report.created.len(), "refused_problems": report.errors.len()
        })),
    )
    .await?;
    Ok(report)
}

/// The dealer of lead `id` if the caller can see it (else not found, audited by the API).
pub async fn dealer_of(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<i64> {
    crate::access::owning_dealer(conn, caller, crate::access::Record::Lead, id).await
}

pub async fn get(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Lead> {
    dealer_of(conn, caller, id).await?;
    fetch(conn, caller, id).await
}

async fn fetch_row(conn: &mut AnyConnection, id: i64) -> Result<LeadRow> {
    let row: Option<LeadRow> =
        sqlx::query_as(&format!("SELECT {LEAD_COLUMNS} FROM leads WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    row.ok_or(Error::NotFound { entity: "lead" })
}

async fn fetch(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Lead> {
    let row = fetch_row(conn, id).await?;
    let mut events = load_events(conn, &[id]).await?;
    row.into_lead(caller, events.remove(&id).unwrap_or_default())
}

async fn load_events(
    conn: &mut AnyConnection,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<StageEvent>>> {
    let mut by_lead: HashMap<i64, Vec<StageEvent>> = HashMap::new();
    if ids.is_empty() {
        return Ok(by_lead);
    }
    let sql = Sql::in_list(
        "SELECT lead_id, from_stage, to_stage, at, note FROM lead_stage_events WHERE lead_id IN ",
        ids,
        " ORDER BY lead_id, at, id",
    );
    let rows: Vec<EventRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        by_lead.entry(row.lead_id).or_default().push(StageEvent {
            at: clock::to_datetime(row.at),
            from_stage: row
                .from_stage
                .as_deref()
                .map(|s| decode("lead_stage_events", s, Stage::parse))
                .transpose()?,
            to_stage: decode("lead_stage_events", &row.to_stage, Stage::parse)?,
            note: row.note,
        });
    }
    Ok(by_lead)
}

/// Leads in the caller's scope matching `filter`, newest first; `limit + 1` at most.
pub async fn list(
    conn: &mut AnyConnection,
    caller: &Caller,
    filter: &LeadFilter,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Lead>> {
    let mut sql = Sql::new(&format!("SELECT {LEAD_COLUMNS} FROM leads WHERE 1 = 1"));
    caller.scope(&mut sql, "dealer_id");
    if let Some(s) = filter.stage {
        sql.push(" AND stage = ")
            .bind(Param::Text(s.as_str().to_owned()));
    }
    if let Some(c) = filter.channel {
        sql.push(" AND channel = ")
            .bind(Param::Text(c.as_str().to_owned()));
    }
    if let Some(c) = filter.consultant_id {
        sql.push(" AND consultant_id = ").bind(Param::Int(c));
    }
    if let Some(b) = before_id {
        sql.push(" AND id < ").bind(Param::Int(b));
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(limit + 1));
    let rows: Vec<LeadRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut events = load_events(conn, &ids).await?;
    rows.into_iter()
        .map(|r| {
            let own = events.remove(&r.id).unwrap_or_default();
            r.into_lead(caller, own)
        })
        .collect()
}

/// The lead's customer: the one it is linked to, or a new customer of the lead's dealer made
/// from its name, phone and channel (linked from now on). Audited by `customers::create`.
pub(crate) async fn ensure_customer(
    conn: &mut AnyConnection,
    caller: &Caller,
    lead_id: i64,
) -> Result<i64> {
    let row = fetch_row(conn, lead_id).await?;
    if let Some(customer) = row.customer_id {
        return Ok(customer);
    }
    let customer = match customers::find_by_phone(conn, row.dealer_id, &row.phone).await? {
        Some(existing) => existing,
        None => {
            let channel = decode("leads", &row.channel, Channel::parse)?;
            let new = NewCustomer {
                dealer_id: Some(row.dealer_id),
                name: row.name.clone(),
                gender: None,
                birthday: None,
                id_number: None,
                phones: vec![PhoneInput {
                    number: row.phone.clone(),
                    label: None,
                }],
                tags: Vec::new(),
                member_tier: None,
                source_channel: Some(channel.source_channel()),
                referrer_id: None,
                marketing_consent: false,
                household: Vec::new(),
                custom_fields: serde_json::Map::new(),
            };
            customers::create(conn, caller, row.dealer_id, new, Writer::FollowUp)
                .await?
                .id
        }
    };
    sqlx::query("UPDATE leads SET customer_id = $1 WHERE id = $2")
        .bind(customer)
        .bind(lead_id)
        .execute(&mut *conn)
        .await?;
    Ok(customer)
}

/// Moves lead `id` from version `expected` to the next one; a concurrent change in between
/// makes this a stale version (412), so of two writers from one version exactly one wins.
async fn claim_version(conn: &mut AnyConnection, id: i64, expected: i64) -> Result<()> {
    let claimed =
        sqlx::query("UPDATE leads SET version = version + 1 WHERE id = $1 AND version = $2")
            .bind(id)
            .bind(expected)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    if claimed == 0 {
        let (current,): (i64,) = sqlx::query_as("SELECT version FROM leads WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        return Err(Error::StaleVersion { current });
    }
    Ok(())
}

/// Stores a stage move of lead `row` (already checked) and its timeline entry; the version
/// is the caller's to move.
async fn store_move(
    conn: &mut AnyConnection,
    row: &LeadRow,
    from: Stage,
    to: Stage,
    note: Option<&str>,
    lost_reason: Option<&str>,
) -> Result<()> {
    let now = clock::now_ms();
    sqlx::query(
        "UPDATE leads SET stage = $1, open_phone = $2, lost_reason = COALESCE($3, lost_reason), \
         updated_at = $4 WHERE id = $5",
    )
    .bind(to.as_str())
    .bind(to.is_open().then_some(row.phone.as_str()))
    .bind(lost_reason)
    .bind(now)
    .bind(row.id)
    .execute(&mut *conn)
    .await?;
    insert_stage_event(conn, row.id, Some(from), to, now, note).await
}

/// Moves lead `id` forward to `to` on behalf of another step of the lifecycle (a booked test
/// drive, an order, its confirmation): nothing happens when the lead is already there or
/// beyond; a lead that is won or lost refuses (409). Winning makes the customer.
pub(crate) async fn advance(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    to: Stage,
    note: &str,
) -> Result<()> {
    let row = fetch_row(conn, id).await?;
    let from = row.stage()?;
    if from == to || (from.is_open() && from.rank() >= to.rank()) {
        return Ok(());
    }
    from.check_move(to)?;
    if to == Stage::Won {
        ensure_customer(conn, caller, id).await?;
    }
    claim_version(conn, id, row.version).await?;
    store_move(conn, &row, from, to, Some(note), None).await?;
    audit::record(
        conn,
        caller,
        Entry::ok("update", "lead", id, row.dealer_id)
            .with_detail(serde_json::json!({ "changed": ["stage"], "stage": to.as_str() })),
    )
    .await
}

/// Applies `patch` to lead `id` if it is still at version `expected`. Audited (field names).
pub async fn update(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
    patch: &LeadPatch,
) -> Result<Lead> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    let row = fetch_row(conn, id).await?;
    if row.version != expected {
        return Err(Error::StaleVersion {
            current: row.version,
        });
    }
    let mut errors = Vec::new();
    if let Some(s) = patch.score {
        check_score(&mut errors, s);
    }
    let tags = patch.tags.as_deref().map(|t| check_tags(&mut errors, t));
    let note = text::optional(&mut errors, "note", patch.note.as_deref(), TEXT_MAX);
    let lost_reason = text::optional(
        &mut errors,
        "lost_reason",
        patch.lost_reason.as_deref(),
        TEXT_MAX,
    );
    if let Some(c) = patch.consultant_id {
        check_consultant(conn, &mut errors, dealer_id, c).await?;
    }
    let from = row.stage()?;
    let moved_to = patch.stage.filter(|to| *to != from);
    if moved_to == Some(Stage::Lost) && lost_reason.is_none() {
        errors.push(FieldError::new(
            "lost_reason",
            "required",
            "say why the lead was lost",
        ));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    if let Some(to) = moved_to {
        from.check_move(to)?;
    }
    let mut changed = Vec::new();
    let mut sql = Sql::new("UPDATE leads SET updated_at = ");
    sql.bind(Param::Int(clock::now_ms()));
    if let Some(s) = patch.score.filter(|s| *s != row.score) {
        sql.push(", score = ").bind(Param::Int(s));
        changed.push("score");
    }
    if let Some(tags) = tags {
        sql.push(", tags = ").bind(Param::Text(
            serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()),
        ));
        changed.push("tags");
    }
    if let Some(c) = patch
        .consultant_id
        .filter(|c| Some(*c) != row.consultant_id)
    {
        sql.push(", consultant_id = ").bind(Param::Int(c));
        changed.push("consultant_id");
    }
    if moved_to.is_some() {
        changed.push("stage");
    }
    if changed.is_empty() {
        return fetch(conn, caller, id).await;
    }
    claim_version(conn, id, expected).await?;
    sql.push(" WHERE id = ").bind(Param::Int(id));
    sqlx::query_with(sql.text(), sql.arguments())
        .execute(&mut *conn)
        .await?;
    if let Some(to) = moved_to {
        if to == Stage::Won {
            ensure_customer(conn, caller, id).await?;
        }
        store_move(
            conn,
            &row,
            from,
            to,
            note.as_deref(),
            lost_reason.as_deref(),
        )
        .await?;
    }
    audit::record(
        conn,
        caller,
        Entry::ok("update", "lead", id, dealer_id)
            .with_detail(serde_json::json!({ "changed": changed })),
    )
    .await?;
    fetch(conn, caller, id).await
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LeadTask)]
pub struct Task {
    pub id: i64,
    pub lead_id: i64,
    pub dealer_id: i64,
    pub title: String,
    pub due_at: DateTime<Utc>,
    pub assignee_id: Option<i64>,
    pub done_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// 1 to 200 characters, e.g. "call back about the test drive".
    pub title: String,
    pub due_at: DateTime<Utc>,
    /// An active staff member of the lead's dealer; default the lead's consultant.
    pub assignee_id: Option<i64>,
}

#[derive(FromRow)]
struct TaskRow {
    id: i64,
    lead_id: i64,
    dealer_id: i64,
    title: String,
    due_at: i64,
    assignee_id: Option<i64>,
    done_at: Option<i64>,
    created_at: i64,
}

impl From<TaskRow> for Task {
    fn from(r: TaskRow) -> Task {
        Task {
            id: r.id,
            lead_id: r.lead_id,
            dealer_id: r.dealer_id,
            title: r.title,
            due_at: clock::to_datetime(r.due_at),
            assignee_id: r.assignee_id,
            done_at: clock::opt_datetime(r.done_at),
            created_at: clock::to_datetime(r.created_at),
        }
    }
}

const TASK_COLUMNS: &str =
    "id, lead_id, dealer_id, title, due_at, assignee_id, done_at, created_at";

/// Adds a follow-up task to lead `lead_id`. Audited.
pub async fn add_task(
    conn: &mut AnyConnection,
    caller: &Caller,
    lead_id: i64,
    new: &NewTask,
) -> Result<Task> {
    let dealer_id = dealer_of(conn, caller, lead_id).await?;
    let row = fetch_row(conn, lead_id).await?;
    let mut errors = Vec::new();
    let title = text::required(&mut errors, "title", &new.title, 200);
    if let Some(a) = new.assignee_id
        && !is_active_staff(conn, dealer_id, a).await?
    {
        errors.push(FieldError::new(
            "assignee_id",
            "unknown_staff",
            "not an active staff member of the lead's dealer",
        ));
    }
    let Some(title) = title.filter(|_| errors.is_empty()) else {
        return Err(Error::Invalid(errors));
    };
    let task: TaskRow = sqlx::query_as(&format!(
        "INSERT INTO lead_tasks (lead_id, dealer_id, title, due_at, assignee_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TASK_COLUMNS}"
    ))
    .bind(lead_id)
    .bind(dealer_id)
    .bind(&title)
    .bind(new.due_at.timestamp_millis())
    .bind(new.assignee_id.or(row.consultant_id))
    .bind(clock::now_ms())
    .fetch_one(&mut *conn)
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("create", "lead_task", task.id, dealer_id),
    )
    .await?;
    Ok(task.into())
}

/// Marks task `id` done (once; doing it again changes nothing). Audited.
pub async fn complete_task(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Task> {
    let dealer_id =
        crate::access::owning_dealer(conn, caller, crate::access::Record::LeadTask, id).await?;
    let updated =
        sqlx::query("UPDATE lead_tasks SET done_at = $1 WHERE id = $2 AND done_at IS NULL")
            .bind(clock::now_ms())
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    if updated == 1 {
        audit::record(
            conn,
            caller,
            Entry::ok("complete", "lead_task", id, dealer_id),
        )
        .await?;
    }
    let task: TaskRow = sqlx::query_as(&format!(
        "SELECT {TASK_COLUMNS} FROM lead_tasks WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(task.into())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskFilter {
    /// Only this staff member's tasks.
    pub assignee_id: Option<i64>,
}

/// Open tasks past their due time in the caller's scope, most overdue first.
pub async fn overdue_tasks(
    conn: &mut AnyConnection,
    caller: &Caller,
    filter: &TaskFilter,
) -> Result<Vec<Task>> {
    let mut sql = Sql::new(&format!(
        "SELECT {TASK_COLUMNS} FROM lead_tasks WHERE done_at IS NULL AND due_at < "
    ));
    sql.bind(Param::Int(clock::now_ms()));
    caller.scope(&mut sql, "dealer_id");
    if let Some(a) = filter.assignee_id {
        sql.push(" AND assignee_id = ").bind(Param::Int(a));
    }
    sql.push(" ORDER BY due_at, id LIMIT 500");
    let rows: Vec<TaskRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(Task::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_stages_move_forward_or_to_lost_and_final_stages_stay() {
        assert!(Stage::New.check_move(Stage::TestDrive).is_ok());
        assert!(Stage::Negotiating.check_move(Stage::Lost).is_ok());
        assert!(Stage::TestDrive.check_move(Stage::Contacted).is_err());
        match Stage::Won.check_move(Stage::Lost) {
            Err(Error::InvalidTransition { allowed, .. }) => assert!(allowed.is_empty()),
            other => panic!("won is final: {other:?}"),
        }
        assert_eq!(
            Stage::Negotiating.next(),
            vec![Stage::Won, Stage::Lost],
            "negotiating ends the funnel"
        );
    }

    #[test]
    fn csv_fields_may_be_quoted_and_lines_are_numbered() {
        let records =
            parse_csv("name,phone\n\"王, 芳\",138\n\n\"say \"\"hi\"\"\nthere\",1\nlast,2").unwrap();
        assert_eq!(records[0], (1, vec!["name".into(), "phone".into()]));
        assert_eq!(records[1], (2, vec!["王, 芳".into(), "138".into()]));
        assert_eq!(
            records[2],
            (4, vec!["say \"hi\"\nthere".into(), "1".into()])
        );
        assert_eq!(records[3].0, 6);
        assert_eq!(parse_csv("a\n\"open"), Err(2));
    }
}
