//! The records behind a figure as a file a person opens in Excel: CSV (UTF-8 with a byte
//! order mark, so Excel reads the Chinese names) or an `.xlsx` workbook. Headers in zh-CN,
//! times in the unit's local time.

use chrono::FixedOffset;
use rust_xlsxwriter::{Format, Workbook};
use serde::Deserialize;
use sqlx::AnyConnection;
use utoipa::IntoParams;

use super::Subject;
use super::records::{self, DrillRecord, MAX_EXPORT, RecordsQuery};
use crate::access::Caller;
use crate::error::{Error, Result};
use crate::sales::text_enum;

text_enum!(
    /// The file an export is.
    FileFormat {
        Csv => "csv",
        Xlsx => "xlsx",
    }
);

impl FileFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            FileFormat::Csv => "text/csv; charset=utf-8",
            FileFormat::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportFormat {
    pub format: FileFormat,
}

/// An export's bytes and the name to save it as.
pub struct File {
    pub name: String,
    pub format: FileFormat,
    pub bytes: Vec<u8>,
}

const HEADER: [&str; 10] = [
    "类型",
    "编号",
    "门店",
    "客户编号",
    "客户",
    "时间",
    "计入",
    "数值",
    "说明",
    "常规间隔(天)",
];

/// Every record behind the figure (at most [`MAX_EXPORT`]) as a file.
pub async fn export(
    conn: &mut AnyConnection,
    caller: &Caller,
    query: &RecordsQuery,
    format: FileFormat,
) -> Result<File> {
    let subject = Subject::resolve(conn, caller, query.unit_id).await?;
    let rows = records::list_for(conn, &subject, query, 0, MAX_EXPORT + 1).await?;
    if rows.len() as i64 > MAX_EXPORT {
        return Err(Error::invalid(
            "to",
            "too_many_records",
            format!(
                "an export holds at most {MAX_EXPORT} records: choose a shorter period or a smaller unit"
            ),
        ));
    }
    let offset = FixedOffset::east_opt(subject.offset() * 60)
        .ok_or_else(|| Error::FileNotWritten(format!("offset {} minutes", subject.offset())))?;
    let cells: Vec<[String; 10]> = rows.iter().map(|r| cells(r, offset)).collect();
    let q = query;
    let name = format!(
        "kpi-{}-{}-{}.{}",
        q.kpi.as_str(),
        q.from,
        q.to,
        format.as_str()
    );
    let bytes = match format {
        FileFormat::Csv => csv(&cells)?,
        FileFormat::Xlsx => xlsx(&cells)?,
    };
    Ok(File {
        name,
        format,
        bytes,
    })
}

fn cells(r: &DrillRecord, offset: FixedOffset) -> [String; 10] {
    let number = |v: Option<f64>| v.map(|v| format!("{:.2}", v)).unwrap_or_default();
    [
        r.kind.as_str().to_owned(),
        r.id.to_string(),
        r.dealer_name.clone(),
        r.customer_id.map(|c| c.to_string()).unwrap_or_default(),
        r.customer_name.clone(),
        r.at.with_timezone(&offset)
            .format("%Y-%m-%d %H:%M")
            .to_string(),
        if r.counted { "是" } else { "否" }.to_owned(),
        number(r.value),
        r.detail.clone(),
        number(r.usual_interval_days),
    ]
}

fn csv(rows: &[[String; 10]]) -> Result<Vec<u8>> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut writer = csv::Writer::from_writer(&mut out);
        writer.write_record(HEADER).map_err(file_error)?;
        for row in rows {
            writer.write_record(row).map_err(file_error)?;
        }
        writer.flush().map_err(file_error)?;
    }
    Ok(out)
}

fn xlsx(rows: &[[String; 10]]) -> Result<Vec<u8>> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let bold = Format::new().set_bold();
    for (col, title) in HEADER.iter().enumerate() {
        sheet
            .write_string_with_format(0, col as u16, *title, &bold)
            .map_err(file_error)?;
    }
    for (i, row) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        for (col, cell) in row.iter().enumerate() {
            let col = col as u16;
            // Ids and values are numbers a person sums and sorts.
            match cell.parse::<f64>() {
                Ok(n) if matches!(col, 1 | 3 | 7 | 9) => sheet.write_number(r, col, n),
                _ => sheet.write_string(r, col, cell),
            }
            .map_err(file_error)?;
        }
    }
    book.save_to_buffer().map_err(file_error)
}

fn file_error(e: impl std::fmt::Display) -> Error {
    Error::FileNotWritten(e.to_string())
}
