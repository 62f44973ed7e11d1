//! Which column of the file feeds which field: the fields each kind of import takes, the header
//! names a DMS or Excel export commonly gives them (Chinese and English), and the caller's
//! mapping on top of those defaults.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, FieldError, Result};

/// What an import brings in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = ImportKind)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Customers,
    /// Linked to their owner by the owner's phone or external customer id.
    Vehicles,
    /// Past visits (repair orders) of a vehicle, by VIN.
    ServiceHistory,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Customers, Kind::Vehicles, Kind::ServiceHistory];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Customers => "customers",
            Kind::Vehicles => "vehicles",
            Kind::ServiceHistory => "service_history",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The fields this kind takes, with the header names that map to them by default.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Kind::Customers => CUSTOMER_FIELDS,
            Kind::Vehicles => VEHICLE_FIELDS,
            Kind::ServiceHistory => HISTORY_FIELDS,
        }
    }
}

/// A field an import fills, and the header names (compared ignoring case, spaces, `*` and
/// `:`) that feed it unless the mapping says otherwise.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub required: bool,
    pub headers: &'static [&'static str],
}

const fn field(name: &'static str, required: bool, headers: &'static [&'static str]) -> Field {
    Field {
        name,
        required,
        headers,
    }
}

const CUSTOMER_FIELDS: &[Field] = &[
    field(
        "name",
        true,
        &["name", "姓名", "客户姓名", "客户名称", "客户", "车主姓名"],
    ),
    field(
        "phone",
        false,
        &[
            "phone",
            "mobile",
            "手机",
            "手机号",
            "手机号码",
            "电话",
            "联系电话",
            "移动电话",
        ],
    ),
    field(
        "phone2",
        false,
        &["phone2", "备用电话", "其他电话", "固定电话"],
    ),
    field("gender", false, &["gender", "性别"]),
    field("birthday", false, &["birthday", "生日", "出生日期"]),
    field(
        "id_number",
        false,
        &["id_number", "身份证", "身份证号", "身份证号码", "证件号码"],
    ),
    field("tags", false, &["tags", "标签", "客户标签"]),
    field("member_tier", false, &["member_tier", "会员等级", "等级"]),
    field(
        "source_channel",
        false,
        &["source_channel", "来源", "来源渠道", "客户来源"],
    ),
    field(
        "marketing_consent",
        false,
        &["marketing_consent", "营销同意", "同意营销", "接受营销"],
    ),
    field(
        "external_id",
        false,
        &[
            "external_id",
            "customer_id",
            "客户编号",
            "客户id",
            "客户代码",
        ],
    ),
];

const VEHICLE_FIELDS: &[Field] = &[
    field(
        "vin",
        true,
        &["vin", "车架号", "车辆识别代号", "车辆识别号", "vin码"],
    ),
    field("plate", false, &["plate", "车牌", "车牌号", "车牌号码"]),
    field("brand", false, &["brand", "品牌"]),
    field("model", false, &["model", "车型", "车系"]),
    field("trim", false, &["trim", "配置", "车款"]),
    field("color", false, &["color", "颜色", "车身颜色"]),
    field("model_year", false, &["model_year", "年款"]),
    field(
        "purchase_date",
        false,
        &["purchase_date", "购车日期", "购买日期", "开票日期"],
    ),
    field("insurer", false, &["insurer", "保险公司", "承保公司"]),
    field(
        "insurance_expiry",
        false,
        &["insurance_expiry", "保险到期", "保险到期日", "保险到期日期"],
    ),
    field(
        "owner_phone",
        false,
        &[
            "owner_phone",
            "phone",
            "车主手机",
            "车主电话",
            "手机",
            "手机号",
            "联系电话",
        ],
    ),
    field(
        "owner_external_id",
        false,
        &["owner_external_id", "customer_id", "客户编号", "客户id"],
    ),
];

const HISTORY_FIELDS: &[Field] = &[
    field("vin", true, &["vin", "车架号", "车辆识别代号", "vin码"]),
    field(
        "date",
        true,
        &[
            "date",
            "日期",
            "维修日期",
            "进厂日期",
            "结算日期",
            "服务日期",
        ],
    ),
    field(
        "mileage_km",
        false,
        &[
            "mileage_km",
            "mileage",
            "里程",
            "进厂里程",
            "行驶里程",
            "公里数",
        ],
    ),
    field(
        "type",
        false,
        &["type", "类型", "维修类型", "业务类型", "服务类型"],
    ),
    field(
        "description",
        false,
        &["description", "描述", "维修内容", "维修项目", "备注"],
    ),
    field(
        "amount",
        false,
        &["amount", "金额", "总金额", "结算金额", "合计", "费用合计"],
    ),
    field("labour_amount", false, &["labour_amount", "工时费"]),
    field(
        "parts_amount",
        false,
        &["parts_amount", "材料费", "配件费", "零件费"],
    ),
    field(
        "ro_number",
        false,
        &["ro_number", "工单号", "维修单号", "委托书号", "单号"],
    ),
];

/// Field name → the column header that feeds it.
pub type Mapping = BTreeMap<String, String>;

/// A header as it is compared: no case, spaces, `*` or `:`.
fn normal(header: &str) -> String {
    header
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '*' | ':' | '：'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The mapping resolved against a file's header: the column index of each field it fills.
#[derive(Debug, Clone)]
pub struct Columns {
    index: HashMap<&'static str, usize>,
}

impl Columns {
    /// `field`'s cell of `cells`, trimmed, if the field has a column and the cell is not blank.
    pub fn get<'a>(&self, cells: &'a [String], field: &str) -> Option<&'a str> {
        self.index
            .get(field)
            .and_then(|&i| cells.get(i))
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
    }

    pub fn has(&self, field: &str) -> bool {
        self.index.contains_key(field)
    }
}

/// The columns of `header` feeding `kind`'s fields: the caller's `mapping` first, then for
/// each field left the first column named like it. Every problem at once (a field the kind
/// does not take, a column the file does not have, a required field without a column) as
/// [`Error::Invalid`]. Returns the mapping in effect too, to keep with the job.
pub fn resolve(kind: Kind, header: &[String], mapping: &Mapping) -> Result<(Mapping, Columns)> {
    let mut errors = Vec::new();
    let mut index = HashMap::new();
    let normal_header: Vec<String> = header.iter().map(|h| normal(h)).collect();
    for (name, column) in mapping {
        let Some(field) = kind.fields().iter().find(|f| f.name == name) else {
            errors.push(FieldError::new(
                format!("mapping.{name}"),
                "unknown_field",
                format!(
                    "a {} import has no field {name:?}; its fields are {:?}",
                    kind.as_str(),
                    kind.fields().iter().map(|f| f.name).collect::<Vec<_>>()
                ),
            ));
            continue;
        };
        match normal_header.iter().position(|h| *h == normal(column)) {
            Some(i) => {
                index.insert(field.name, i);
            }
            None => errors.push(FieldError::new(
                format!("mapping.{name}"),
                "unknown_column",
                format!("the file has no column {column:?}; its header is {header:?}"),
            )),
        }
    }
    for field in kind.fields() {
        if index.contains_key(field.name) {
            continue;
        }
        let found = normal_header
            .iter()
            .position(|h| field.headers.iter().any(|alias| normal(alias) == *h));
        match found {
            Some(i) => {
                index.insert(field.name, i);
            }
            None if field.required && !mapping.contains_key(field.name) => {
                errors.push(FieldError::new(
                    format!("mapping.{}", field.name),
                    "missing_column",
                    format!(
                        "no column feeds the required field {}: name one in the mapping, or call a column {:?}",
                        field.name, field.headers
                    ),
                ))
            }
            None => {}
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let effective = index
        .iter()
        .map(|(name, &i)| ((*name).to_owned(), header[i].clone()))
        .collect();
    Ok((effective, Columns { index }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn chinese_headers_map_by_default_and_the_mapping_wins() {
        let h = header(&["客户姓名", "手机 *", "车牌", "备注"]);
        let (effective, columns) = resolve(Kind::Customers, &h, &Mapping::new()).unwrap();
        assert_eq!(effective["name"], "客户姓名");
        assert_eq!(effective["phone"], "手机 *");
        let cells = header(&["王芳", " 13812345678 ", "", ""]);
        assert_eq!(columns.get(&cells, "phone"), Some("13812345678"));
        assert_eq!(columns.get(&cells, "tags"), None);

        let mapping = Mapping::from([("tags".to_owned(), "备注".to_owned())]);
        let (effective, _) = resolve(Kind::Customers, &h, &mapping).unwrap();
        assert_eq!(effective["tags"], "备注");
    }

    #[test]
    fn unknown_fields_unknown_columns_and_missing_required_ones_are_all_reported() {
        let mapping = Mapping::from([
            ("colour".to_owned(), "颜色".to_owned()),
            ("plate".to_owned(), "号牌".to_owned()),
        ]);
        let Err(Error::Invalid(errors)) =
            resolve(Kind::Vehicles, &header(&["车牌", "品牌"]), &mapping)
        else {
            panic!("the mapping is refused");
        };
        let found: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("mapping.colour", "unknown_field"),
                ("mapping.plate", "unknown_column"),
                ("mapping.vin", "missing_column"),
            ]
        );
    }
}
