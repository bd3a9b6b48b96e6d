//! Runs a plan's steps (`pgai_migrate_core::plan::steps`) in order, each
//! as the role and under the `search_path` it names. Consecutive steps
//! with the same setting share one switch; every switch is a guard, put
//! back when it goes out of scope or by the error's abort.

use std::cell::OnceCell;

use pgai_migrate_core::plan::steps::{Role, Step};
use pgrx::pg_sys;

use crate::catalog;
use crate::security::{search_path, AsRole, RowSecurityOff};
use crate::spi::run;

/// Runs `steps`; `source` is the source table, whose owner runs the
/// [`Role::SourceOwner`] steps.
pub fn run_steps(steps: &[Step], source: pg_sys::Oid) {
    let extension_owner = OnceCell::new();
    let source_owner = OnceCell::new();
    let mut rest = steps;
    while let Some(first) = rest.first() {
        let n = rest.iter().take_while(|s| s.same_setting(first)).count();
        let (group, next) = rest.split_at(n);
        rest = next;
        let _path = search_path(&first.search_path);
        let _role = match first.role {
            Role::ExtensionOwner => Some(AsRole::new(
                *extension_owner.get_or_init(catalog::extension_owner),
                false,
            )),
            Role::SourceOwner { restricted } => Some(AsRole::new(
                *source_owner.get_or_init(|| catalog::owner_of(source)),
                restricted,
            )),
            Role::Caller => None,
        };
        let _all_rows = first.row_security_off.then(RowSecurityOff::new);
        for step in group {
            run(&step.sql);
        }
    }
}
