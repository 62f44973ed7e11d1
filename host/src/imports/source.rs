//! Reading an export: a CSV (UTF-8, UTF-8 with a BOM, or GBK / GB18030 as Chinese Excel saves
//! it) or the first sheet of an XLSX workbook, as a header and rows of text cells, each row
//! with its line in the file (the header's line is 1 when it is the first line).

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = ImportFormat)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        [Format::Csv, Format::Xlsx]
            .into_iter()
            .find(|f| f.as_str() == s)
    }

    /// The format a file name's extension says (`.csv`, `.xlsx`), if any.
    pub fn from_file_name(name: &str) -> Option<Format> {
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        Format::parse(&extension)
    }
}

/// One data row: its line in the file and its cells, as text.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: i64,
    pub cells: Vec<String>,
}

/// A file read whole: the header's cells (trimmed) and the data rows below it, blank rows left
/// out.
#[derive(Debug)]
pub struct Sheet {
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

fn unreadable(code: &str, message: impl Into<String>) -> Error {
    Error::invalid("file", code, message)
}

/// Reads `bytes` as `format`.
pub fn read(format: Format, bytes: &[u8]) -> Result<Sheet> {
    let rows = match format {
        Format::Csv => csv_rows(bytes)?,
        Format::Xlsx => xlsx_rows(bytes)?,
    };
    let mut rows = rows
        .into_iter()
        .filter(|r| r.cells.iter().any(|c| !c.trim().is_empty()));
    let header = rows
        .next()
        .ok_or_else(|| unreadable("empty", "the file has no header row"))?;
    Ok(Sheet {
        header: header.cells.iter().map(|c| c.trim().to_owned()).collect(),
        rows: rows.collect(),
    })
}

/// The text of a CSV file: UTF-8 (a byte order mark dropped), else GB18030, the superset of
/// the GBK that Excel writes on Chinese Windows; anything else is refused.
fn decode(bytes: &[u8]) -> Result<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(_) => encoding_rs::GB18030
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|text| text.into_owned())
            .ok_or_else(|| {
                unreadable(
                    "unknown_encoding",
                    "the file is neither UTF-8 nor GBK text; save it as CSV UTF-8",
                )
            }),
    }
}

fn csv_rows(bytes: &[u8]) -> Result<Vec<Row>> {
    let text = decode(bytes)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    // The reader's own line count leaves blank lines out, and a record's offset is where the
    // reader started looking for it (before the blank lines it skipped): its line is counted
    // here from its first byte that is no line break, so it is the line an editor shows.
    let (mut counted_to, mut line) = (0, 1_i64);
    let mut line_at = |byte: usize| {
        let bytes = text.as_bytes();
        let mut byte = byte.min(bytes.len());
        while bytes.get(byte).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            byte += 1;
        }
        if byte > counted_to {
            let breaks = bytes[counted_to..byte]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            line += i64::try_from(breaks).unwrap_or(i64::MAX);
            counted_to = byte;
        }
        line
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| line_at(byte(p)));
            unreadable(
                "unreadable_csv",
                format!("the CSV cannot be read at line {line}: {e}"),
            )
        })?;
        let line = record.position().map_or(0, |p| line_at(byte(p)));
        rows.push(Row {
            line,
            cells: record.iter().map(str::to_owned).collect(),
        });
    }
    Ok(rows)
}

fn byte(position: &csv::Position) -> usize {
    usize::try_from(position.byte()).unwrap_or(usize::MAX)
}

fn xlsx_rows(bytes: &[u8]) -> Result<Vec<Row>> {
    let mut workbook = Xlsx::new(Cursor::new(bytes))
        .map_err(|e| unreadable("unreadable_xlsx", format!("not an XLSX workbook: {e}")))?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| unreadable("empty", "the workbook has no sheet"))?
        .map_err(|e| {
            unreadable(
                "unreadable_xlsx",
                format!("the first sheet cannot be read: {e}"),
            )
        })?;
    let first_line = range.start().map_or(1, |(row, _)| i64::from(row) + 1);
    Ok(range
        .rows()
        .enumerate()
        .map(|(i, cells)| Row {
            line: first_line + i64::try_from(i).unwrap_or(i64::MAX),
            cells: cells.iter().map(cell_text).collect(),
        })
        .collect())
}

/// A cell as the text a person sees in it: whole numbers without a decimal point (a phone
/// typed as a number), dates as `YYYY-MM-DD`.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => match d.as_datetime() {
            Some(t) if t.time() == chrono::NaiveTime::MIN => t.date().to_string(),
            Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => d.as_f64().to_string(),
        },
        Data::Error(e) => format!("#{e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_with_a_bom_quoted_fields_and_blank_lines_keeps_its_line_numbers() {
        let sheet = read(
            Format::Csv,
            "\u{feff}姓名,手机\r\n\"王, 芳\",13812345678\r\n\r\n\"多\n行\",13912345678\n\n\n末,13712345678"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(sheet.header, ["姓名", "手机"]);
        let lines: Vec<i64> = sheet.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4, 8]);
        assert_eq!(sheet.rows[0].cells[0], "王, 芳");
        assert_eq!(sheet.rows[1].cells[0], "多\n行");
    }

    #[test]
    fn a_gbk_csv_is_decoded() {
        let (gbk, _, _) = encoding_rs::GBK.encode("姓名,手机\n张伟,13812345678\n");
        let sheet = read(Format::Csv, &gbk).unwrap();
        assert_eq!(sheet.header[0], "姓名");
        assert_eq!(sheet.rows[0].cells[0], "张伟");
    }

    #[test]
    fn bytes_that_are_no_text_and_files_without_a_header_are_refused() {
        let not_text = read(Format::Csv, &[0xff, 0xfe, 0x00, 0x81, 0x20]).unwrap_err();
        assert!(matches!(not_text, Error::Invalid(e) if e[0].code == "unknown_encoding"));
        let empty = read(Format::Csv, b"\n\n").unwrap_err();
        assert!(matches!(empty, Error::Invalid(e) if e[0].code == "empty"));
        let not_xlsx = read(Format::Xlsx, b"name,phone\n").unwrap_err();
        assert!(matches!(not_xlsx, Error::Invalid(e) if e[0].code == "unreadable_xlsx"));
    }

    #[test]
    fn numbers_and_dates_read_as_people_see_them() {
        assert_eq!(cell_text(&Data::Float(13812345678.0)), "13812345678");
        assert_eq!(cell_text(&Data::Float(1280.5)), "1280.5");
        assert_eq!(cell_text(&Data::Int(42)), "42");
    }
}
