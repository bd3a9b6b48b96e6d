//! Running parts of a call as another role.
//!
//! Callers only need to own the source table; the catalog and the queue
//! schema belong to the extension. So the DDL runs as the extension owner
//! (after our own privilege checks), and anything that reads user data or
//! may run user-defined code (domain checks, comparison functions) runs as
//! the table owner under `SECURITY_RESTRICTED_OPERATION`, like
//! `CREATE INDEX` does.

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
