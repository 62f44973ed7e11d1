//! Customers: people, their phones, tags, household, consents (marketing; sharing their
//! history across the network's dealers) and custom fields. Owns
//! `customers`, `customer_phones`, `customer_tags`, `household_links`, (in
//! [`interactions`]) the interaction timeline and (in [`consent`]) the record of marketing
//! consents given and withdrawn.

pub mod consent;
pub mod identity;
pub mod interactions;
pub mod view360;

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Caller, masking};
use crate::audit::{self, Entry, ReadLog};
use crate::clock;
use crate::custom_fields::{self, Entity, Writer};
use crate::db::{Param, Sql};
use crate::error::{Error, FieldError, Result};
use crate::text;
use crate::vehicles::identity::plate_key;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
}

/// Where a customer first came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceChannel {
    OnlineAd,
    AutoShow,
    WalkIn,
    App,
    Referral,
    Hotline,
    Wechat,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Spouse,
    Child,
    Parent,
    Sibling,
    Other,
}

fn enum_str<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn enum_parse<T: for<'de> Deserialize<'de>>(s: Option<String>) -> Option<T> {
    s.and_then(|s| serde_json::from_value(Value::String(s)).ok())
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneInput {
    /// Mainland mobile or landline; spaces, dashes and +86 are accepted and removed.
    pub number: String,
    /// e.g. mobile, home, work (default mobile).
    pub label: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Phone {
    pub number: String,
    pub label: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HouseholdInput {
    /// Another customer of the same dealer.
    pub member_id: i64,
    pub relation: Relation,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HouseholdMember {
    pub member_id: i64,
    pub relation: Relation,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Customer {
    pub id: i64,
    pub dealer_id: i64,
    pub name: String,
    pub gender: Option<Gender>,
    pub birthday: Option<NaiveDate>,
    /// Resident ID number; masked for roles that do not need it.
    pub id_number: Option<String>,
    /// Masked for roles that do not need them.
    pub phones: Vec<Phone>,
    pub tags: Vec<String>,
    pub member_tier: String,
    pub source_channel: Option<SourceChannel>,
    pub referrer_id: Option<i64>,
    pub marketing_consent: bool,
    pub marketing_consent_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The customer agreed that the network's other dealers share their history with this
    /// dealer (the 360 view's `network_history`); set with `PUT /customers/{id}/share-consent`.
    pub share_consent: bool,
    /// When the share consent was last given or withdrawn, and by which key.
    pub share_consent_at: Option<chrono::DateTime<chrono::Utc>>,
    pub share_consent_by_key_id: Option<i64>,
    pub household: Vec<HouseholdMember>,
    pub custom_fields: Map<String, Value>,
    /// Send it back as `If-Match` when updating.
    pub version: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl crate::model::Versioned for Customer {
    fn version(&self) -> i64 {
        self.version
    }
}

impl Customer {
    /// Hides what the caller's role does not need to see.
    pub fn masked_for(mut self, caller: &Caller) -> Customer {
        if caller.masks_phone() {
            for p in &mut self.phones {
                p.number = masking::phone(&p.number);
            }
        }
        if caller.masks_id_number() {
            self.id_number = self.id_number.as_deref().map(masking::id_number);
        }
        self
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// HQ names the dealer; dealer staff leave it out.
    pub dealer_id: Option<i64>,
    pub name: String,
    pub gender: Option<Gender>,
    pub birthday: Option<NaiveDate>,
    pub id_number: Option<String>,
    #[serde(default)]
    pub phones: Vec<PhoneInput>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Default `银卡` (`ENTRY_TIER`), the loyalty plugin's lowest tier.
    pub member_tier: Option<String>,
    pub source_channel: Option<SourceChannel>,
    pub referrer_id: Option<i64>,
    #[serde(default)]
    pub marketing_consent: bool,
    #[serde(default)]
    pub household: Vec<HouseholdInput>,
    #[serde(default)]
    pub custom_fields: Map<String, Value>,
}

/// Fields to change; absent fields stay as they are, `null` clears a nullable field.
/// `phones`, `tags` and `household` replace the whole list; `custom_fields` merges by key.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub gender: Option<Option<Gender>>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub birthday: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub id_number: Option<Option<String>>,
    pub phones: Option<Vec<PhoneInput>>,
    pub tags: Option<Vec<String>>,
    pub member_tier: Option<String>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub source_channel: Option<Option<SourceChannel>>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub referrer_id: Option<Option<i64>>,
    pub marketing_consent: Option<bool>,
    pub household: Option<Vec<HouseholdInput>>,
    pub custom_fields: Option<Map<String, Value>>,
}

impl CustomerPatch {
    /// The names of the fields this patch sets (what the audit log records, never the values).
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("gender", self.gender.is_some()),
            ("birthday", self.birthday.is_some()),
            ("id_number", self.id_number.is_some()),
            ("phones", self.phones.is_some()),
            ("tags", self.tags.is_some()),
            ("member_tier", self.member_tier.is_some()),
            ("source_channel", self.source_channel.is_some()),
            ("referrer_id", self.referrer_id.is_some()),
            ("marketing_consent", self.marketing_consent.is_some()),
            ("household", self.household.is_some()),
            ("custom_fields", self.custom_fields.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// The full, validated state of a customer to write.
struct Draft {
    name: String,
    gender: Option<Gender>,
    birthday: Option<NaiveDate>,
    id_number: Option<String>,
    phones: Vec<PhoneInput>,
    tags: Vec<String>,
    member_tier: String,
    source_channel: Option<SourceChannel>,
    referrer_id: Option<i64>,
    marketing_consent: bool,
    household: Vec<HouseholdInput>,
    custom_fields: Map<String, Value>,
}

impl Draft {
    /// Normalises the draft in place and returns every problem found, checking references
    /// (referrer, household) against the dealer's own customers.
    async fn validate(
        &mut self,
        conn: &mut AnyConnection,
        dealer_id: i64,
        self_id: Option<i64>,
        writer: Writer,
    ) -> Result<()> {
        let mut errors = Vec::new();
        text::trim_or_invalid(&mut errors, "name", "invalid_name", &mut self.name, 64);
        if let Some(b) = self.birthday
            && (b > crate::clock::today_cst() || b.to_string().as_str() < "1900-01-01")
        {
            errors.push(FieldError::new(
                "birthday",
                "invalid_date",
                "a birthday is between 1900 and today",
            ));
        }
        if let Some(id) = &self.id_number {
            match identity::parse_id_number(id) {
                Ok(normal) => self.id_number = Some(normal),
                Err(message) => {
                    errors.push(FieldError::new("id_number", "invalid_id_number", message))
                }
            }
        }
        if self.phones.len() > 5 {
            errors.push(FieldError::new(
                "phones",
                "too_many",
                "at most 5 phone numbers",
            ));
        }
        for (i, phone) in self.phones.iter_mut().enumerate() {
            match identity::parse_phone(&phone.number) {
                Ok(normal) => phone.number = normal,
                Err(message) => errors.push(FieldError::new(
                    format!("phones[{i}].number"),
                    "invalid_phone",
                    message,
                )),
            }
        }
        let mut seen = std::collections::HashSet::new();
        self.phones.retain(|p| seen.insert(p.number.clone()));
        let mut tags: Vec<String> = Vec::new();
        for (i, tag) in self.tags.iter_mut().enumerate() {
            let before = errors.len();
            text::trim_or_invalid(&mut errors, &format!("tags[{i}]"), "invalid_tag", tag, 32);
            if errors.len() == before && !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        if tags.len() > 30 {
            errors.push(FieldError::new("tags", "too_many", "at most 30 tags"));
        }
        self.tags = tags;
        text::trim_or_invalid(
            &mut errors,
            "member_tier",
            "invalid_tier",
            &mut self.member_tier,
            32,
        );
        let mut others: Vec<(String, i64)> = self
            .household
            .iter()
            .enumerate()
            .map(|(i, h)| (format!("household[{i}].member_id"), h.member_id))
            .collect();
        if let Some(r) = self.referrer_id {
            others.push(("referrer_id".into(), r));
        }
        for (field, id) in others {
            let same_dealer: Option<(i64,)> =
                sqlx::query_as("SELECT id FROM customers WHERE id = $1 AND dealer_id = $2")
                    .bind(id)
                    .bind(dealer_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            if same_dealer.is_none() || Some(id) == self_id {
                errors.push(FieldError::new(
                    field,
                    "unknown_customer",
                    "not another customer of this dealer",
                ));
            }
        }
        custom_fields::validate(
            conn,
            dealer_id,
            Entity::Customer,
            writer,
            &self.custom_fields,
            &mut errors,
        )
        .await?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(errors))
        }
    }
}

#[derive(FromRow)]
struct CustomerRow {
    id: i64,
    dealer_id: i64,
    name: String,
    gender: Option<String>,
    birthday: Option<String>,
    id_number: Option<String>,
    member_tier: String,
    source_channel: Option<String>,
    referrer_id: Option<i64>,
    marketing_consent: i64,
    marketing_consent_at: Option<i64>,
    share_consent: i64,
    share_consent_at: Option<i64>,
    share_consent_by_key_id: Option<i64>,
    custom_fields: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

/// The tier a new customer starts in, the loyalty plugin's lowest: one vocabulary (银卡, 金卡,
/// 铂金 by default) for the customer record, the loyalty account and the plugins' rules.
pub const ENTRY_TIER: &str = "银卡";

const CUSTOMER_COLUMNS: &str = "c.id, c.dealer_id, c.name, c.gender, c.birthday, c.id_number, c.member_tier, \
     c.source_channel, c.referrer_id, c.marketing_consent, c.marketing_consent_at, c.share_consent, c.share_consent_at, \
     c.share_consent_by_key_id, c.custom_fields, c.version, c.created_at, c.updated_at";

/// Loads customers by id with their phones, tags and household, in the order of `rows`.
async fn hydrate(conn: &mut AnyConnection, rows: Vec<CustomerRow>) -> Result<Vec<Customer>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut phones: HashMap<i64, Vec<Phone>> = HashMap::new();
    let sql = Sql::in_list(
        "SELECT customer_id, phone, label FROM customer_phones WHERE customer_id IN ",
        &ids,
        " ORDER BY customer_id, position",
    );
    for (cid, number, label) in
        sqlx::query_as_with::<_, (i64, String, String), _>(sql.text(), sql.arguments())
            .fetch_all(&mut *conn)
            .await?
    {
        phones.entry(cid).or_default().push(Phone { number, label });
    }
    let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
    let sql = Sql::in_list(
        "SELECT customer_id, tag FROM customer_tags WHERE customer_id IN ",
        &ids,
        " ORDER BY customer_id, tag",
    );
    for (cid, tag) in sqlx::query_as_with::<_, (i64, String), _>(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?
    {
        tags.entry(cid).or_default().push(tag);
    }
    let mut household: HashMap<i64, Vec<HouseholdMember>> = HashMap::new();
    let sql = Sql::in_list(
        "SELECT h.customer_id, h.member_id, h.relation, m.name FROM household_links h JOIN customers m ON m.id = h.member_id WHERE h.customer_id IN ",
        &ids,
        " ORDER BY h.customer_id, h.member_id",
    );
    for (cid, member_id, relation, name) in
        sqlx::query_as_with::<_, (i64, i64, String, String), _>(sql.text(), sql.arguments())
            .fetch_all(&mut *conn)
            .await?
    {
        let relation = enum_parse(Some(relation)).unwrap_or(Relation::Other);
        household.entry(cid).or_default().push(HouseholdMember {
            member_id,
            relation,
            name,
        });
    }
    Ok(rows
        .into_iter()
        .map(|r| Customer {
            id: r.id,
            dealer_id: r.dealer_id,
            name: r.name,
            gender: enum_parse(r.gender),
            birthday: clock::parse_date(r.birthday),
            id_number: r.id_number,
            phones: phones.remove(&r.id).unwrap_or_default(),
            tags: tags.remove(&r.id).unwrap_or_default(),
            member_tier: r.member_tier,
            source_channel: enum_parse(r.source_channel),
            referrer_id: r.referrer_id,
            marketing_consent: r.marketing_consent != 0,
            marketing_consent_at: clock::opt_datetime(r.marketing_consent_at),
            share_consent: r.share_consent != 0,
            share_consent_at: clock::opt_datetime(r.share_consent_at),
            share_consent_by_key_id: r.share_consent_by_key_id,
            household: household.remove(&r.id).unwrap_or_default(),
            custom_fields: custom_fields::from_column(&r.custom_fields),
            version: r.version,
            created_at: clock::to_datetime(r.created_at),
            updated_at: clock::to_datetime(r.updated_at),
        })
        .collect())
}

async fn load(conn: &mut AnyConnection, id: i64) -> Result<Customer> {
    let row: Option<CustomerRow> = sqlx::query_as(&format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(Error::NotFound { entity: "customer" })?;
    Ok(hydrate(conn, vec![row]).await?.remove(0))
}

/// The dealer of customer `id` if the caller can see it. A customer outside the caller's scope
/// is reported as not found ([`Error::Denied`], audited by the API layer).
pub async fn dealer_of(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<i64> {
    crate::access::owning_dealer(conn, caller, crate::access::Record::Customer, id).await
}

pub async fn get(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Customer> {
    dealer_of(conn, caller, id).await?;
    Ok(load(conn, id).await?.masked_for(caller))
}

/// [`get`] for a person reading it (over the API), audited as a read of personal data.
pub async fn read(
    conn: &mut AnyConnection,
    reads: &ReadLog,
    caller: &Caller,
    id: i64,
) -> Result<Customer> {
    let customer = get(conn, caller, id).await?;
    reads
        .record_reads(caller, "customer", vec![(customer.id, customer.dealer_id)])
        .await;
    Ok(customer)
}

/// Replaces the phones, tags and household of customer `id` with the draft's.
async fn write_lists(conn: &mut AnyConnection, id: i64, draft: &Draft) -> Result<()> {
    for table in ["customer_phones", "customer_tags", "household_links"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE customer_id = $1"))
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    insert_lists(conn, id, draft).await
}

/// Stores the phones, tags and household of customer `id`, which has none yet.
async fn insert_lists(conn: &mut AnyConnection, id: i64, draft: &Draft) -> Result<()> {
    for (i, p) in draft.phones.iter().enumerate() {
        sqlx::query("INSERT INTO customer_phones (customer_id, position, phone, label) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(i as i64)
            .bind(&p.number)
            .bind(p.label.as_deref().map(str::trim).filter(|l| !l.is_empty()).unwrap_or("mobile"))
            .execute(&mut *conn)
            .await?;
    }
    for tag in &draft.tags {
        sqlx::query("INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2)")
            .bind(id)
            .bind(tag)
            .execute(&mut *conn)
            .await?;
    }
    for h in &draft.household {
        sqlx::query("INSERT INTO household_links (customer_id, member_id, relation) VALUES ($1, $2, $3) ON CONFLICT (customer_id, member_id) DO UPDATE SET relation = $3")
            .bind(id)
            .bind(h.member_id)
            .bind(enum_str(&h.relation))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A [`NewCustomer`] that passed [`check_new`]: normalised, ready to store.
pub(crate) struct CheckedCustomer(Draft);

impl CheckedCustomer {
    /// The customer's phone numbers, normalised (digits only).
    pub(crate) fn phones(&self) -> impl Iterator<Item = &str> {
        self.0.phones.iter().map(|p| p.number.as_str())
    }
}

/// The one check of a new customer of `dealer_id`: every problem at once, as
/// [`Error::Invalid`]. [`create`] runs it, and so does an import, row by row.
pub(crate) async fn check_new(
    conn: &mut AnyConnection,
    dealer_id: i64,
    new: NewCustomer,
    writer: Writer,
) -> Result<CheckedCustomer> {
    let mut draft = Draft {
        name: new.name,
        gender: new.gender,
        birthday: new.birthday,
        id_number: new.id_number,
        phones: new.phones,
        tags: new.tags,
        member_tier: new.member_tier.unwrap_or_else(|| ENTRY_TIER.into()),
        source_channel: new.source_channel,
        referrer_id: new.referrer_id,
        marketing_consent: new.marketing_consent,
        household: new.household,
        custom_fields: new.custom_fields,
    };
    draft.validate(conn, dealer_id, None, writer).await?;
    Ok(CheckedCustomer(draft))
}

/// Stores a checked customer of `dealer_id` and returns its id; the caller audits it.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    dealer_id: i64,
    checked: &CheckedCustomer,
) -> Result<i64> {
    let draft = &checked.0;
    let now = clock::now_ms();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO customers (dealer_id, name, gender, birthday, id_number, member_tier, source_channel, referrer_id, \
         marketing_consent, marketing_consent_at, custom_fields, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
    )
    .bind(dealer_id)
    .bind(&draft.name)
    .bind(draft.gender.as_ref().map(enum_str))
    .bind(clock::format_date(draft.birthday))
    .bind(draft.id_number.as_deref())
    .bind(&draft.member_tier)
    .bind(draft.source_channel.as_ref().map(enum_str))
    .bind(draft.referrer_id)
    .bind(i64::from(draft.marketing_consent))
    .bind(draft.marketing_consent.then_some(now))
    .bind(custom_fields::to_column(&draft.custom_fields))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    insert_lists(conn, id, draft).await?;
    Ok(id)
}

/// The oldest customer of `dealer_id` with phone `phone` (normalised), if any.
pub(crate) async fn find_by_phone(
    conn: &mut AnyConnection,
    dealer_id: i64,
    phone: &str,
) -> Result<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT c.id FROM customer_phones p JOIN customers c ON c.id = p.customer_id \
         WHERE p.phone = $1 AND c.dealer_id = $2 ORDER BY c.id LIMIT 1",
    )
    .bind(phone)
    .bind(dealer_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(id,)| id))
}

/// Creates a customer of `dealer_id` (the caller has checked they may write for it), with its
/// audit entry on `conn`; `writer` says whether staff give its custom field values.
pub async fn create(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    new: NewCustomer,
    writer: Writer,
) -> Result<Customer> {
    let checked = check_new(conn, dealer_id, new, writer).await?;
    let id = insert(conn, dealer_id, &checked).await?;
    audit::record(conn, caller, Entry::ok("create", "customer", id, dealer_id)).await?;
    Ok(load(conn, id).await?.masked_for(caller))
}

pub async fn update(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected_version: i64,
    patch: CustomerPatch,
) -> Result<Customer> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    let current = load(conn, id).await?;
    if current.version != expected_version {
        return Err(Error::StaleVersion {
            current: current.version,
        });
    }
    let changed = patch.fields();
    let consent_before = current.marketing_consent;
    let mut draft = Draft {
        name: patch.name.unwrap_or(current.name),
        gender: patch.gender.unwrap_or(current.gender),
        birthday: patch.birthday.unwrap_or(current.birthday),
        id_number: patch.id_number.unwrap_or(current.id_number),
        phones: patch.phones.unwrap_or_else(|| {
            current
                .phones
                .into_iter()
                .map(|p| PhoneInput {
                    number: p.number,
                    label: Some(p.label),
                })
                .collect()
        }),
        tags: patch.tags.unwrap_or(current.tags),
        member_tier: patch.member_tier.unwrap_or(current.member_tier),
        source_channel: patch.source_channel.unwrap_or(current.source_channel),
        referrer_id: patch.referrer_id.unwrap_or(current.referrer_id),
        marketing_consent: patch.marketing_consent.unwrap_or(current.marketing_consent),
        household: patch.household.unwrap_or_else(|| {
            current
                .household
                .iter()
                .map(|h| HouseholdInput {
                    member_id: h.member_id,
                    relation: h.relation,
                })
                .collect()
        }),
        custom_fields: custom_fields::merge(current.custom_fields, patch.custom_fields),
    };
    draft
        .validate(conn, dealer_id, Some(id), Writer::Staff)
        .await?;
    let now = clock::now_ms();
    let consent_at = match (consent_before, draft.marketing_consent) {
        (false, true) => Some(now),
        (true, true) => current.marketing_consent_at.map(|t| t.timestamp_millis()),
        (_, false) => None,
    };
    let updated = sqlx::query(
        "UPDATE customers SET name = $1, gender = $2, birthday = $3, id_number = $4, member_tier = $5, source_channel = $6, \
         referrer_id = $7, marketing_consent = $8, marketing_consent_at = $9, custom_fields = $10, updated_at = $11, \
         version = version + 1 WHERE id = $12 AND version = $13",
    )
    .bind(&draft.name)
    .bind(draft.gender.as_ref().map(enum_str))
    .bind(clock::format_date(draft.birthday))
    .bind(draft.id_number.as_deref())
    .bind(&draft.member_tier)
    .bind(draft.source_channel.as_ref().map(enum_str))
    .bind(draft.referrer_id)
    .bind(i64::from(draft.marketing_consent))
    .bind(consent_at)
    .bind(custom_fields::to_column(&draft.custom_fields))
    .bind(now)
    .bind(id)
    .bind(expected_version)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(Error::StaleVersion {
            current: expected_version + 1,
        });
    }
    write_lists(conn, id, &draft).await?;
    if consent_before != draft.marketing_consent {
        consent::record(
            conn,
            id,
            dealer_id,
            draft.marketing_consent,
            "in_person",
            consent::Via::Staff,
            None,
        )
        .await?;
    }
    audit::record(
        conn,
        caller,
        Entry::ok("update", "customer", id, dealer_id)
            .with_detail(serde_json::json!({ "fields": changed })),
    )
    .await?;
    Ok(load(conn, id).await?.masked_for(caller))
}

/// A customer's answer to sharing their history across the network's dealers.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareConsent {
    /// `true`: the customer agreed that the network's other dealers share their history with
    /// this dealer; `false`: they withdrew it.
    pub consent: bool,
}

/// Records customer `id`'s share consent (given or withdrawn) with the time and the caller's
/// key, and audits it. The customer's version moves on, as with any change to them.
pub async fn set_share_consent(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    consent: &ShareConsent,
) -> Result<Customer> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    sqlx::query(
        "UPDATE customers SET share_consent = $1, share_consent_at = $2, share_consent_by_key_id = $3, \
         updated_at = $2, version = version + 1 WHERE id = $4",
    )
    .bind(i64::from(consent.consent))
    .bind(clock::now_ms())
    .bind(caller.key_id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("share_consent", "customer", id, dealer_id)
            .with_detail(serde_json::json!({ "consent": consent.consent })),
    )
    .await?;
    Ok(load(conn, id).await?.masked_for(caller))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerSearch {
    /// A full number (any format), or at least 4 trailing digits.
    pub phone: Option<String>,
    /// Part of the name.
    pub name: Option<String>,
    /// Plate of a vehicle the customer currently owns or drives (any spacing, 京A·12345 or 京a12345).
    pub plate: Option<String>,
    /// VIN of a vehicle the customer currently owns or drives.
    pub vin: Option<String>,
    pub tag: Option<String>,
    pub dealer_id: Option<i64>,
}

/// `text` as a LIKE pattern matching itself only: `%`, `_` and the escape `\\` escaped (the
/// statement says `ESCAPE '\\'`).
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The shortest part of a name the name index finds (the trigram indexes of both backends);
/// shorter ones are matched by scanning, newest customers first.
const NAME_INDEX_MIN_CHARS: usize = 3;

/// ` AND` the customer's name contains `name`, case-insensitively, every character literal. The
/// LIKE decides on both backends; on SQLite the FTS5 trigram index first narrows the customers
/// to those holding the text (on PostgreSQL the pg_trgm index serves the LIKE itself).
fn push_name_filter(conn: &AnyConnection, sql: &mut Sql, name: &str) {
    let sqlite = conn.backend_name() == <sqlx::Sqlite as sqlx::Database>::NAME;
    if sqlite && name.chars().count() >= NAME_INDEX_MIN_CHARS {
        sql.push(
            " AND c.id IN (SELECT rowid FROM customers_name_fts WHERE customers_name_fts MATCH ",
        )
        .bind(Param::Text(format!("\"{}\"", name.replace('"', "\"\""))))
        .push(")");
    }
    sql.push(" AND LOWER(c.name) LIKE LOWER(")
        .bind(Param::Text(format!("%{}%", like_literal(name))))
        .push(") ESCAPE '\\'");
}

/// Moves the customer to `tier` (the loyalty plugin decided it), bumping the record's version
/// so an editor holding the old one is told it changed.
pub(crate) async fn set_member_tier(
    conn: &mut AnyConnection,
    id: i64,
    tier: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE customers SET member_tier = $1, updated_at = $2, version = version + 1 \
         WHERE id = $3",
    )
    .bind(tier)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Customers in the caller's scope matching every given filter, newest first,
/// `limit + 1` at most (the extra row signals a next page).
pub async fn search(
    conn: &mut AnyConnection,
    reads: &ReadLog,
    caller: &Caller,
    q: &CustomerSearch,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Customer>> {
    // With a tag, the tag's customers lead, newest first, from the index (tag, customer_id):
    // a page reads its own rows, however many customers carry the tag.
    let tag = q.tag.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let (mut sql, order) = match tag {
        Some(tag) => {
            let mut sql = Sql::new(&format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customer_tags t JOIN customers c ON c.id = t.customer_id \
                 WHERE t.tag = "
            ));
            sql.bind(Param::Text(tag.to_owned()));
            (sql, "t.customer_id")
        }
        None => (
            Sql::new(&format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE 1 = 1"
            )),
            "c.id",
        ),
    };
    caller.scope(&mut sql, "c.dealer_id");
    if let Some(phone) = q.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        match identity::parse_phone(phone) {
            Ok(normal) => {
                sql.push(" AND c.id IN (SELECT customer_id FROM customer_phones WHERE phone = ")
                    .bind(Param::Text(normal))
                    .push(")");
            }
            Err(_) => {
                let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
                if digits.len() < 4 || digits.len() != phone.len() {
                    return Err(Error::BadRequest {
                        code: "invalid_phone",
                        message: "search by a full phone number or at least its last 4 digits"
                            .into(),
                    });
                }
                let last4 = digits[digits.len() - 4..].to_owned();
                sql.push(" AND c.id IN (SELECT customer_id FROM customer_phones WHERE last4 = ")
                    .bind(Param::Text(last4))
                    .push(" AND phone LIKE ")
                    .bind(Param::Text(format!("%{digits}")))
                    .push(")");
            }
        }
    }
    if let Some(name) = q.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        push_name_filter(conn, &mut sql, name);
    }
    let current_vehicle = " AND c.id IN (SELECT p.customer_id FROM vehicle_people p JOIN vehicles v ON v.id = p.vehicle_id WHERE p.until IS NULL AND ";
    if let Some(plate) = q.plate.as_deref().filter(|p| !p.trim().is_empty()) {
        sql.push(current_vehicle)
            .push("v.plate_key = ")
            .bind(Param::Text(plate_key(plate)))
            .push(")");
    }
    if let Some(vin) = q.vin.as_deref().filter(|v| !v.trim().is_empty()) {
        sql.push(current_vehicle)
            .push("v.vin = ")
            .bind(Param::Text(vin.trim().to_uppercase()))
            .push(")");
    }
    if let Some(d) = q.dealer_id {
        sql.push(" AND c.dealer_id = ").bind(Param::Int(d));
    }
    if let Some(b) = before_id {
        sql.push(" AND ")
            .push(order)
            .push(" < ")
            .bind(Param::Int(b));
    }
    sql.push(" ORDER BY ")
        .push(order)
        .push(" DESC LIMIT ")
        .bind(Param::Int(limit + 1));
    let rows: Vec<CustomerRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let found: Vec<Customer> = hydrate(conn, rows)
        .await?
        .into_iter()
        .map(|c| c.masked_for(caller))
        .collect();
    let shown: Vec<(i64, i64)> = found
        .iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(|c| (c.id, c.dealer_id))
        .collect();
    reads.record_reads(caller, "customer", shown).await;
    Ok(found)
}
