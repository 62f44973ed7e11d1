//! Who is calling and what they may see: roles, the caller's place in the network tree,
//! API keys, and the masking of personal numbers.
//!
//! Invariant: every query of dealer data is filtered by [`Caller::scope`]; a row outside the
//! caller's subtree of the network is indistinguishable from a row that does not exist.

pub mod keys;
pub mod logins;
pub mod masking;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sqlx::AnyConnection;

use crate::db::{Param, Sql};
use crate::error::{Denial, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Operates the host; sees and changes everything.
    HqAdmin,
    /// Reads everything for dashboards; personal numbers masked.
    HqAnalyst,
    /// Reads their region; personal numbers masked.
    RegionalManager,
    /// Runs one dealer: its data, staff, keys and custom fields.
    DealerAdmin,
    /// Dealer staff, sales side.
    Sales,
    /// Dealer staff, after-sales side.
    Service,
    /// An integration partner; sees only what dealers grant (partner API).
    Partner,
}

pub const ALL_ROLES: [Role; 7] = [
    Role::HqAdmin,
    Role::HqAnalyst,
    Role::RegionalManager,
    Role::DealerAdmin,
    Role::Sales,
    Role::Service,
    Role::Partner,
];

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::HqAdmin => "hq_admin",
            Role::HqAnalyst => "hq_analyst",
            Role::RegionalManager => "regional_manager",
            Role::DealerAdmin => "dealer_admin",
            Role::Sales => "sales",
            Role::Service => "service",
            Role::Partner => "partner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        ALL_ROLES.into_iter().find(|r| r.as_str() == s)
    }

    /// The kinds of network unit a key of this role may be attached to.
    pub fn fits_unit(self, kind: &str) -> bool {
        match self {
            Role::HqAdmin | Role::HqAnalyst | Role::Partner => kind == "hq",
            Role::RegionalManager => kind == "region" || kind == "group",
            Role::DealerAdmin | Role::Sales | Role::Service => kind == "dealer" || kind == "branch",
        }
    }

    pub fn is_dealer_role(self) -> bool {
        matches!(self, Role::DealerAdmin | Role::Sales | Role::Service)
    }
}

/// What a caller wants to do; [`Caller::require`] checks it against the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Customers, vehicles, tickets, timelines.
    ReadRecords,
    WriteRecords,
    ManageCustomFields,
    ManageKeys,
    ManageNetwork,
    ReadAudit,
    /// The plugin catalogue and the dealers' bindings.
    ReadPlugins,
    /// Upload, enable, pin, roll back, configure and kill plugins.
    ManagePlugins,
    /// The plugin run log and its statistics.
    ReadPluginRuns,
    /// See the outbox and run the scheduler on demand.
    OperateWorkers,
    /// See the integration partners and grant them purposes for one's dealer, or revoke them:
    /// the dealer's own consent, so its admin only.
    ManagePartners,
    /// Import customers, vehicles and service history from a file, and follow the imports.
    ImportRecords,
}

impl Permission {
    pub const ALL: [Permission; 12] = [
        Permission::ReadRecords,
        Permission::WriteRecords,
        Permission::ManageCustomFields,
        Permission::ManageKeys,
        Permission::ManageNetwork,
        Permission::ReadAudit,
        Permission::ReadPlugins,
        Permission::ManagePlugins,
        Permission::ReadPluginRuns,
        Permission::OperateWorkers,
        Permission::ManagePartners,
        Permission::ImportRecords,
    ];

    /// The wire name, as the console reads it to show or hide what a role may do.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ReadRecords => "read_records",
            Permission::WriteRecords => "write_records",
            Permission::ManageCustomFields => "manage_custom_fields",
            Permission::ManageKeys => "manage_keys",
            Permission::ManageNetwork => "manage_network",
            Permission::ReadAudit => "read_audit",
            Permission::ReadPlugins => "read_plugins",
            Permission::ManagePlugins => "manage_plugins",
            Permission::ReadPluginRuns => "read_plugin_runs",
            Permission::OperateWorkers => "operate_workers",
            Permission::ManagePartners => "manage_partners",
            Permission::ImportRecords => "import_records",
        }
    }

    fn allowed(self, role: Role) -> bool {
        use Role::*;
        match self {
            Permission::ReadRecords => {
                matches!(
                    role,
                    HqAdmin | HqAnalyst | RegionalManager | DealerAdmin | Sales | Service
                )
            }
            Permission::WriteRecords => matches!(role, HqAdmin | DealerAdmin | Sales | Service),
            Permission::ManageCustomFields | Permission::ManageKeys | Permission::ReadAudit => {
                matches!(role, HqAdmin | DealerAdmin)
            }
            Permission::ManageNetwork => role == HqAdmin,
            Permission::ReadPlugins => {
                matches!(role, HqAdmin | HqAnalyst | RegionalManager | DealerAdmin)
            }
            Permission::ManagePlugins | Permission::OperateWorkers => {
                matches!(role, HqAdmin | DealerAdmin)
            }
            Permission::ReadPluginRuns => {
                matches!(role, HqAdmin | HqAnalyst | RegionalManager | DealerAdmin)
            }
            Permission::ManagePartners => role == DealerAdmin,
            Permission::ImportRecords => matches!(role, HqAdmin | DealerAdmin),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Permission::ReadRecords => "read customer records",
            Permission::WriteRecords => "change customer records",
            Permission::ManageCustomFields => "manage custom fields",
            Permission::ManageKeys => "manage API keys",
            Permission::ManageNetwork => "change the dealer network",
            Permission::ReadAudit => "read the audit log",
            Permission::ReadPlugins => "see plugins",
            Permission::ManagePlugins => "manage plugins",
            Permission::ReadPluginRuns => "read the plugin run log",
            Permission::OperateWorkers => "see the outbox or run the scheduler",
            Permission::ManagePartners => "manage the dealer's partner grants",
            Permission::ImportRecords => "import records from a file",
        }
    }
}

/// The job a staff member holds. Approval steps name positions (`general-manager` in a
/// plugin's decision is [`Position::GeneralManager`]); the access [`Role`] says what their key
/// may do, the position what personal data they need (a technician needs the car, not the
/// owner's phone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    SalesConsultant,
    SalesManager,
    GeneralManager,
    FinanceDesk,
    ServiceAdvisor,
    ServiceManager,
    Technician,
    CustomerCare,
    RegionalServiceManager,
}

impl Position {
    pub const ALL: [Position; 9] = [
        Position::SalesConsultant,
        Position::SalesManager,
        Position::GeneralManager,
        Position::FinanceDesk,
        Position::ServiceAdvisor,
        Position::ServiceManager,
        Position::Technician,
        Position::CustomerCare,
        Position::RegionalServiceManager,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Position::SalesConsultant => "sales_consultant",
            Position::SalesManager => "sales_manager",
            Position::GeneralManager => "general_manager",
            Position::FinanceDesk => "finance_desk",
            Position::ServiceAdvisor => "service_advisor",
            Position::ServiceManager => "service_manager",
            Position::Technician => "technician",
            Position::CustomerCare => "customer_care",
            Position::RegionalServiceManager => "regional_service_manager",
        }
    }

    /// Reads `general_manager` and the plugins' spelling, `general-manager`.
    pub fn parse(s: &str) -> Option<Position> {
        let s = s.replace('-', "_");
        Position::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Caller {
    pub key_id: i64,
    pub role: Role,
    /// The network unit the key is attached to.
    pub org_id: i64,
    pub org_kind: String,
    /// Materialised path of `org_id`; the caller sees every unit whose path starts with it.
    pub org_path: String,
    pub staff_id: Option<i64>,
    /// The position of the staff member the key is bound to, if any.
    pub position: Option<Position>,
}

impl Caller {
    /// The names of every permission the caller's role holds.
    pub fn permissions(&self) -> Vec<&'static str> {
        Permission::ALL
            .into_iter()
            .filter(|p| p.allowed(self.role))
            .map(Permission::as_str)
            .collect()
    }

    pub fn require(&self, permission: Permission) -> Result<()> {
        if permission.allowed(self.role) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "the {} role may not {}",
                self.role.as_str(),
                permission.describe()
            )))
        }
    }

    /// Appends `AND <column> IN (units in the caller's subtree)` to a query.
    pub fn scope(&self, sql: &mut Sql, dealer_column: &str) {
        sql.push(" AND ")
            .push(dealer_column)
            .push(" IN (SELECT id FROM org_units WHERE path LIKE ")
            .bind(Param::Text(format!("{}%", self.org_path)))
            .push(")");
    }

    /// Whether a unit with materialised path `path` is inside the caller's subtree.
    pub fn sees_path(&self, path: &str) -> bool {
        path.starts_with(&self.org_path)
    }

    /// Phones are masked for roles that read for statistics or integration, and for a
    /// technician, whose work is the car.
    pub fn masks_phone(&self) -> bool {
        matches!(
            self.role,
            Role::HqAnalyst | Role::RegionalManager | Role::Partner
        ) || self.position == Some(Position::Technician)
    }

    pub fn masks_id_number(&self) -> bool {
        !matches!(self.role, Role::HqAdmin | Role::DealerAdmin | Role::Sales)
    }
}

/// A kind of dealer-owned record whose visibility is checked by [`owning_dealer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Customer,
    Vehicle,
    Ticket,
    Attachment,
    ApprovalRequest,
    Lead,
    LeadTask,
    SalesOrder,
    TradeIn,
    DemoVehicle,
    TestDrive,
    Appointment,
    RepairOrder,
    ImportJob,
    AdvisorTask,
}

impl Record {
    fn table(self) -> &'static str {
        match self {
            Record::Customer => "customers",
            Record::Vehicle => "vehicles",
            Record::Ticket => "tickets",
            Record::Attachment => "attachments",
            Record::ApprovalRequest => "approval_requests",
            Record::Lead => "leads",
            Record::LeadTask => "lead_tasks",
            Record::SalesOrder => "sales_orders",
            Record::TradeIn => "trade_ins",
            Record::DemoVehicle => "demo_vehicles",
            Record::TestDrive => "test_drives",
            Record::Appointment => "appointments",
            Record::RepairOrder => "repair_orders",
            Record::ImportJob => "import_jobs",
            Record::AdvisorTask => "advisor_tasks",
        }
    }

    pub fn entity(self) -> &'static str {
        match self {
            Record::Customer => "customer",
            Record::Vehicle => "vehicle",
            Record::Ticket => "ticket",
            Record::Attachment => "attachment",
            Record::ApprovalRequest => "approval request",
            Record::Lead => "lead",
            Record::LeadTask => "lead_task",
            Record::SalesOrder => "sales_order",
            Record::TradeIn => "trade_in",
            Record::DemoVehicle => "demo_vehicle",
            Record::TestDrive => "test_drive",
            Record::Appointment => "appointment",
            Record::RepairOrder => "repair_order",
            Record::ImportJob => "import_job",
            Record::AdvisorTask => "advisor_task",
        }
    }
}

/// The dealer owning record `id` if the caller can see it. A record outside the caller's scope
/// is answered as not found ([`Error::Denied`], audited by the API layer).
pub async fn owning_dealer(
    conn: &mut AnyConnection,
    caller: &Caller,
    record: Record,
    id: i64,
) -> Result<i64> {
    let row: Option<(i64, String)> = sqlx::query_as(&format!(
        "SELECT r.dealer_id, o.path FROM {} r JOIN org_units o ON o.id = r.dealer_id WHERE r.id = $1",
        record.table()
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    in_scope(caller, record.entity(), id, row)
}

/// The one scope decision on `entity` `id`, given what its module found of it (its dealer, or
/// owning unit, and that unit's path): in the caller's subtree, the dealer; outside it, an
/// [`Error::Denied`] (answered as not found, audited by the API layer); nothing, not found.
pub fn in_scope(
    caller: &Caller,
    entity: &'static str,
    id: i64,
    found: Option<(i64, String)>,
) -> Result<i64> {
    match found {
        Some((dealer, path)) if caller.sees_path(&path) => Ok(dealer),
        Some((dealer, _)) => Err(Error::denied(caller, entity, id, dealer)),
        None => Err(Error::NotFound { entity }),
    }
}

impl Error {
    /// `caller` reached for `entity` `id` of dealer `dealer_id`, outside its scope: answered
    /// like a missing record, audited once the request's transaction is over.
    pub fn denied(caller: &Caller, entity: &'static str, id: i64, dealer_id: i64) -> Self {
        Error::Denied(Box::new(Denial {
            key_id: caller.key_id,
            role: caller.role.as_str(),
            org_id: caller.org_id,
            entity,
            id,
            dealer_id,
        }))
    }
}
