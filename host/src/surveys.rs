//! Satisfaction surveys: when a subject is done (a ticket closes, a repair order is settled, a
//! car is delivered) its customer gets a single-use owner link, valid 14 days, asking for an NPS
//! (0–10), a CSAT (1–5) and a comment. The answer is stored once; a second is 410. Owns
//! `surveys`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use crate::access::Caller;
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::{Db, Param, Sql};
use crate::domain_events::{self, FollowUp};
use crate::error::{Error, FieldError, Result};
use crate::loyalty::{Cause, EventKind, LoyaltyEvent};
use crate::network;
use crate::outbox;
use crate::owner_links::{self, Purpose};
use crate::plugins::dispatch::Plugins;

/// How long a survey link stays valid: 14 days.
pub const SURVEY_TTL_MS: i64 = 14 * 24 * 3600 * 1000;
/// Longest comment, in characters.
pub const COMMENT_MAX: usize = 2000;

/// What a survey asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    Ticket,
    RepairOrder,
    /// A car delivered: the survey after the delivery.
    SalesOrder,
}

impl SubjectKind {
    pub const ALL: [SubjectKind; 3] = [
        SubjectKind::Ticket,
        SubjectKind::RepairOrder,
        SubjectKind::SalesOrder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Ticket => "ticket",
            SubjectKind::RepairOrder => "repair_order",
            SubjectKind::SalesOrder => "sales_order",
        }
    }

    pub fn parse(s: &str) -> Option<SubjectKind> {
        SubjectKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A survey as the staff see it, with its answer once given.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Survey {
    pub id: i64,
    pub subject_kind: SubjectKind,
    pub subject_id: i64,
    pub sent_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    /// 0–10.
    pub nps: Option<i64>,
    /// 1–5.
    pub csat: Option<i64>,
    pub comment: Option<String>,
}

/// One question of the form.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Question {
    /// The field of the answer: `nps`, `csat` or `comment`.
    pub key: &'static str,
    pub text: &'static str,
    pub required: bool,
    /// The scale of a rating question; absent for free text.
    pub min: Option<i64>,
    pub max: Option<i64>,
}

/// What the owner sees on the survey link.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SurveyForm {
    /// The dealer asking, and the number the owner calls it on.
    pub dealer_name: String,
    pub dealer_phone: Option<String>,
    pub subject_kind: SubjectKind,
    pub expires_at: DateTime<Utc>,
    pub questions: Vec<Question>,
}

/// The owner's answer.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// How likely the owner is to recommend us, 0–10.
    pub nps: Option<i64>,
    /// How satisfied the owner is, 1–5.
    pub csat: Option<i64>,
    /// Up to 2000 characters.
    pub comment: Option<String>,
}

/// CSAT over the answers of a period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Csat {
    pub answers: i64,
    /// Mean score, 1–5.
    pub mean: Option<f64>,
    /// Answers of 4 or 5.
    pub satisfied: i64,
    /// `satisfied / answers`.
    pub satisfied_share: Option<f64>,
}

/// NPS over the answers of a period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Nps {
    pub answers: i64,
    /// Answers of 9 or 10.
    pub promoters: i64,
    /// Answers of 0 to 6.
    pub detractors: i64,
    /// Percentage of promoters minus percentage of detractors, −100 to 100.
    pub score: Option<f64>,
}

#[derive(FromRow)]
struct SurveyRow {
    id: i64,
    subject_kind: String,
    subject_id: i64,
    sent_at: i64,
    answered_at: Option<i64>,
    nps: Option<i64>,
    csat: Option<i64>,
    comment: Option<String>,
}

const SURVEY_COLUMNS: &str =
    "id, subject_kind, subject_id, sent_at, answered_at, nps, csat, comment";

impl SurveyRow {
    fn into_survey(self) -> Result<Survey> {
        let subject_kind = SubjectKind::parse(&self.subject_kind).ok_or_else(|| {
            Error::Database(sqlx::Error::Decode(
                format!("surveys: bad subject_kind {:?}", self.subject_kind).into(),
            ))
        })?;
        Ok(Survey {
            id: self.id,
            subject_kind,
            subject_id: self.subject_id,
            sent_at: clock::to_datetime(self.sent_at),
            answered_at: clock::opt_datetime(self.answered_at),
            nps: self.nps,
            csat: self.csat,
            comment: self.comment,
        })
    }
}

/// Sends the survey of a finished subject to its customer: a single-use owner link and a
/// message with it in the outbox (once per subject).
pub async fn send(
    conn: &mut AnyConnection,
    dealer_id: i64,
    kind: SubjectKind,
    subject_id: i64,
    customer_id: i64,
) -> Result<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO surveys (dealer_id, subject_kind, subject_id, customer_id, sent_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(dealer_id)
    .bind(kind.as_str())
    .bind(subject_id)
    .bind(customer_id)
    .bind(clock::now_ms())
    .fetch_one(&mut *conn)
    .await?;
    let link =
        owner_links::issue(conn, dealer_id, Purpose::Survey, id, SURVEY_TTL_MS, true).await?;
    let message = outbox::Message {
        channel: "sms".to_owned(),
        recipient: format!("customer:{customer_id}"),
        template: "satisfaction-survey".to_owned(),
        data: vec![
            (
                "survey-url".to_owned(),
                owner_links::page(Purpose::Survey, &link.token),
            ),
            ("token".to_owned(), link.token),
            ("subject-kind".to_owned(), kind.as_str().to_owned()),
            ("subject-id".to_owned(), subject_id.to_string()),
        ],
        purpose: outbox::Purpose::Service,
    };
    let key = format!("survey:{}:{subject_id}", kind.as_str());
    outbox::enqueue(conn, dealer_id, &message, Some(&key)).await?;
    Ok(id)
}

/// The surveys of `subject_ids` of one kind, by subject.
pub async fn for_subjects(
    conn: &mut AnyConnection,
    kind: SubjectKind,
    subject_ids: &[i64],
) -> Result<HashMap<i64, Survey>> {
    let mut by_subject = HashMap::new();
    if subject_ids.is_empty() {
        return Ok(by_subject);
    }
    let mut sql = Sql::new(&format!(
        "SELECT {SURVEY_COLUMNS} FROM surveys WHERE subject_kind = "
    ));
    sql.bind(Param::Text(kind.as_str().to_owned()))
        .push(" AND subject_id IN ")
        .push_list(subject_ids.iter().copied().map(Param::Int));
    let rows: Vec<SurveyRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let survey = row.into_survey()?;
        by_subject.insert(survey.subject_id, survey);
    }
    Ok(by_subject)
}

/// The questions behind survey link `token`: unknown → 404, expired or answered → 410.
pub async fn form(conn: &mut AnyConnection, token: &str) -> Result<SurveyForm> {
    let link = owner_links::resolve(conn, Purpose::Survey, token).await?;
    let survey = by_link(conn, &link).await?;
    let dealer = network::contact(conn, link.dealer_id).await?;
    Ok(SurveyForm {
        dealer_name: dealer.name,
        dealer_phone: dealer.phone,
        subject_kind: survey.subject_kind,
        expires_at: clock::to_datetime(link.expires_at),
        questions: vec![
            Question {
                key: "nps",
                text: "您有多大可能向亲友推荐我们？（0–10 分）",
                required: true,
                min: Some(0),
                max: Some(10),
            },
            Question {
                key: "csat",
                text: "您对本次服务的满意度如何？（1–5 分）",
                required: true,
                min: Some(1),
                max: Some(5),
            },
            Question {
                key: "comment",
                text: "还有什么想告诉我们的吗？",
                required: false,
                min: None,
                max: None,
            },
        ],
    })
}

/// The survey a link was issued for.
async fn by_link(conn: &mut AnyConnection, link: &owner_links::Link) -> Result<Survey> {
    let row: Option<SurveyRow> = sqlx::query_as(&format!(
        "SELECT {SURVEY_COLUMNS} FROM surveys WHERE id = $1 AND dealer_id = $2"
    ))
    .bind(link.subject_id)
    .bind(link.dealer_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(Error::NotFound { entity: "survey" })?
        .into_survey()
}

/// A score that must lie in `min..=max`.
fn check_score(errors: &mut Vec<FieldError>, field: &str, value: Option<i64>, min: i64, max: i64) {
    match value {
        None => errors.push(FieldError::new(
            field,
            "required",
            format!("{field} is required"),
        )),
        Some(v) if !(min..=max).contains(&v) => errors.push(FieldError::new(
            field,
            "out_of_range",
            format!("{field} is from {min} to {max}"),
        )),
        Some(_) => {}
    }
}

fn answer_errors(answer: &Answer) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_score(&mut errors, "nps", answer.nps, 0, 10);
    check_score(&mut errors, "csat", answer.csat, 1, 5);
    if answer
        .comment
        .as_deref()
        .is_some_and(|c| c.trim().chars().count() > COMMENT_MAX)
    {
        errors.push(FieldError::new(
            "comment",
            "too_long",
            format!("comment is at most {COMMENT_MAX} characters"),
        ));
    }
    errors
}

/// Stores the answer given through survey link `token`, using the link up, with its audit
/// entry (the owner, through the link) and, as a follow-up run once committed
/// ([`domain_events`]), the loyalty plugin's points for answering. Unknown → 404; expired or
/// already answered → 410; an invalid answer → 422 and the link stays usable. The one place a
/// survey is answered, whoever calls it.
pub async fn answer(db: &Db, plugins: &Plugins, token: &str, given: &Answer) -> Result<Survey> {
    let mut tx = db.begin_write().await?;
    let (survey, link) = answer_in(&mut tx, token, given).await?;
    audit::record_owner(
        &mut tx,
        link.id,
        Entry::ok("answer", "survey", survey.id, link.dealer_id),
    )
    .await?;
    let customer_id = customer_of(&mut tx, survey.id).await?;
    let points = FollowUp::Points(LoyaltyEvent {
        dealer_id: link.dealer_id,
        customer_id,
        kind: EventKind::SurveyAnswered,
        amount_fen: 0,
        cause: Cause::new("survey", survey.id),
        attributes: Vec::new(),
    });
    let cause = format!("survey:{}", survey.id);
    let recorded = domain_events::record(&mut tx, link.dealer_id, &cause, &[points]).await?;
    tx.commit().await?;
    domain_events::run_now(db, plugins, &recorded).await;
    Ok(survey)
}

async fn answer_in(
    conn: &mut AnyConnection,
    token: &str,
    answer: &Answer,
) -> Result<(Survey, owner_links::Link)> {
    let link = owner_links::resolve(conn, Purpose::Survey, token).await?;
    let errors = answer_errors(answer);
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    owner_links::consume(conn, &link).await?;
    let comment = answer
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let updated = sqlx::query(
        "UPDATE surveys SET answered_at = $1, nps = $2, csat = $3, comment = $4 \
         WHERE id = $5 AND answered_at IS NULL",
    )
    .bind(clock::now_ms())
    .bind(answer.nps)
    .bind(answer.csat)
    .bind(comment)
    .bind(link.subject_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(owner_links::gone(
            conn,
            link.dealer_id,
            "survey_answered",
            "this survey has been answered",
        )
        .await?);
    }
    Ok((by_link(conn, &link).await?, link))
}

/// CSAT and NPS over the answers given in `[from, to)` to surveys of `kind` in the caller's
/// scope.
pub async fn stats(
    conn: &mut AnyConnection,
    caller: &Caller,
    kind: SubjectKind,
    from: i64,
    to: i64,
) -> Result<(Csat, Nps)> {
    let mut sql = Sql::new(
        "SELECT COUNT(csat), CAST(SUM(csat) AS BIGINT), COUNT(CASE WHEN csat >= 4 THEN 1 END), \
         COUNT(nps), COUNT(CASE WHEN nps >= 9 THEN 1 END), COUNT(CASE WHEN nps <= 6 THEN 1 END) \
         FROM surveys WHERE subject_kind = ",
    );
    sql.bind(Param::Text(kind.as_str().to_owned()))
        .push(" AND answered_at >= ")
        .bind(Param::Int(from))
        .push(" AND answered_at < ")
        .bind(Param::Int(to));
    caller.scope(&mut sql, "dealer_id");
    let (csat_n, csat_sum, satisfied, nps_n, promoters, detractors): (
        i64,
        Option<i64>,
        i64,
        i64,
        i64,
        i64,
    ) = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_one(&mut *conn)
        .await?;
    let share = |part: i64, whole: i64| (whole > 0).then(|| part as f64 / whole as f64);
    Ok((
        Csat {
            answers: csat_n,
            mean: csat_sum.and_then(|sum| share(sum, csat_n)),
            satisfied,
            satisfied_share: share(satisfied, csat_n),
        },
        Nps {
            answers: nps_n,
            promoters,
            detractors,
            score: share(promoters - detractors, nps_n).map(|s| s * 100.0),
        },
    ))
}

/// The customer survey `id` was sent to.
async fn customer_of(conn: &mut AnyConnection, id: i64) -> Result<i64> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT customer_id FROM surveys WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|(customer,)| customer)
        .ok_or(Error::NotFound { entity: "survey" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(nps: Option<i64>, csat: Option<i64>) -> Vec<(String, String)> {
        answer_errors(&Answer {
            nps,
            csat,
            comment: None,
        })
        .into_iter()
        .map(|e| (e.field, e.code))
        .collect()
    }

    #[test]
    fn scores_are_checked_against_their_scales() {
        assert!(fields(Some(0), Some(1)).is_empty());
        assert!(fields(Some(10), Some(5)).is_empty());
        let pair = |f: &str, c: &str| (f.to_owned(), c.to_owned());
        assert_eq!(
            fields(Some(11), Some(0)),
            [pair("nps", "out_of_range"), pair("csat", "out_of_range")]
        );
        assert_eq!(
            fields(None, Some(6)),
            [pair("nps", "required"), pair("csat", "out_of_range")]
        );
    }
}
