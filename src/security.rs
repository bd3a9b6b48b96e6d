//! Running parts of a call as another role.
//!
//! Callers only need to own the source table; the catalog and the queue
//! schema belong to the extension. So the DDL runs as the extension owner
//! (after our own privilege checks), and anything that reads user data or
//! may run user-defined code (domain checks, comparison functions) runs as
//! the table owner under `SECURITY_RESTRICTED_OPERATION`, like
//! `CREATE INDEX` does.

use std::ffi::{CStr, CString};

use pgrx::pg_sys;

pub struct AsRole {
    previous_user: pg_sys::Oid,
    previous_context: i32,
}

impl AsRole {
    pub fn new(role: pg_sys::Oid, restricted: bool) -> AsRole {
        let mut previous_user = pg_sys::Oid::INVALID;
        let mut previous_context = 0;
        // SAFETY: plain backend state accessors; the previous state is put
        // back on drop, and transaction abort resets it on error.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut previous_user, &mut previous_context);
            let mut context = previous_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32;
            if restricted {
                context |= pg_sys::SECURITY_RESTRICTED_OPERATION as i32;
            }
            pg_sys::SetUserIdAndSecContext(role, context);
        }
        AsRole {
            previous_user,
            previous_context,
        }
    }
}

impl Drop for AsRole {
    fn drop(&mut self) {
        // SAFETY: restores exactly what `new` saved.
        unsafe { pg_sys::SetUserIdAndSecContext(self.previous_user, self.previous_context) }
    }
}

pub fn current_user() -> (pg_sys::Oid, String) {
    // SAFETY: GetUserNameFromId returns a palloc'd C string or raises.
    unsafe {
        let oid = pg_sys::GetUserId();
        let name = std::ffi::CStr::from_ptr(pg_sys::GetUserNameFromId(oid, false))
            .to_string_lossy()
            .into_owned();
        (oid, name)
    }
}

/// A setting changed until dropped, at a GUC nest level of its own, as
/// PostgreSQL sets a function's `SET` options: dropping it puts back
/// whatever was in force before, and an error's (sub)transaction abort
/// does the same, so no return path restores anything by hand.
pub struct Setting {
    nest_level: i32,
    name: &'static CStr,
    /// The value before; put back on drop even if code run meanwhile made
    /// a session-level SET (which GUC nesting would keep, as it does for a
    /// function's SET clause): a table owner's trigger must not leave the
    /// caller with its search_path.
    previous: Option<CString>,
}

fn current(name: &CStr) -> Option<CString> {
    // SAFETY: returns a palloc'd copy of the value, or NULL when unset.
    unsafe {
        let v = pg_sys::GetConfigOptionByName(name.as_ptr(), std::ptr::null_mut(), true);
        (!v.is_null()).then(|| CStr::from_ptr(v).to_owned())
    }
}

fn assign(name: &CStr, value: &CStr, action: pg_sys::GucAction::Type) {
    // SAFETY: a plain GUC assignment at the session's level.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            0,
            false,
        );
    }
}

impl Setting {
    pub fn new(name: &'static CStr, value: &str) -> Setting {
        let value = CString::new(value).expect("settings hold no NUL");
        let previous = current(name);
        // SAFETY: a plain GUC assignment, undone by AtEOXact_GUC on drop,
        // or by transaction abort on error.
        unsafe {
            let nest_level = pg_sys::NewGUCNestLevel();
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
            Setting {
                nest_level,
                name,
                previous,
            }
        }
    }
}

impl Drop for Setting {
    fn drop(&mut self) {
        // On an ERROR the (sub)transaction's abort pops the level.
        if std::thread::panicking() {
            return;
        }
        // SAFETY: pops exactly the nest level `new` pushed.
        unsafe { pg_sys::AtEOXact_GUC(true, self.nest_level) }
        if let Some(previous) = &self.previous {
            if current(self.name).as_ref() != Some(previous) {
                assign(self.name, previous, pg_sys::GucAction::GUC_ACTION_SET);
            }
        }
    }
}

/// `search_path` set to `path` until dropped. The caller-facing
/// functions run with a fixed one from the moment the source is
/// resolved, so nothing the caller planted can interfere.
pub fn search_path(path: &str) -> Setting {
    Setting::new(c"search_path", path)
}

/// `row_security = off` until dropped. Statements that queue or forget
/// keys read every row of the source as its owner: with row security off,
/// a policy that would hide rows from the owner (FORCE ROW LEVEL
/// SECURITY) makes PostgreSQL raise 42501 instead of silently leaving
/// those rows out (never queued, or their embeddings deleted).
pub struct RowSecurityOff(#[allow(dead_code)] Setting);

impl RowSecurityOff {
    pub fn new() -> RowSecurityOff {
        RowSecurityOff(Setting::new(c"row_security", "off"))
    }
}
