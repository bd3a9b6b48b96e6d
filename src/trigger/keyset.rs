//! The keys a statement's row triggers collect, distinct by binary image,
//! and the hashers their look-ups use.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::ffi::CStr;

use pgrx::pg_sys;

/// How a key column's values are stored.
#[derive(Clone, Copy)]
pub(super) struct KeyType {
    pub(super) oid: pg_sys::Oid,
    pub(super) array: pg_sys::Oid,
    pub(super) len: i16,
    pub(super) byval: bool,
    pub(super) align: std::ffi::c_char,
}

/// Keys collected by row triggers, waiting for their statement's
/// statement-level trigger: `ncols` datums per key (by-reference values
/// copied into TopTransactionContext), each with the subtransaction that
/// collected it, distinct by binary image.
pub(super) struct KeySet {
    pub(super) datums: Vec<pg_sys::Datum>,
    pub(super) subids: Vec<pg_sys::SubTransactionId>,
    pub(super) seen: HashSet<Image, RandomState>,
}

impl Default for KeySet {
    fn default() -> KeySet {
        KeySet {
            datums: Vec::new(),
            subids: Vec::new(),
            seen: HashSet::with_hasher(KEY_HASH.with(RandomState::clone)),
        }
    }
}

thread_local! {
    /// The keyed hash (SipHash, random keys drawn once per backend) of the
    /// key images: the keys are whatever the statement writes, so they must
    /// not be able to collide by construction (multiples of 2^32 all fall
    /// in one bucket of the cheap hasher below, and a statement's
    /// collection turns quadratic).
    static KEY_HASH: RandomState = RandomState::new();
}

/// A multiply-rotate hasher for the per-row look-ups of ids and OIDs,
/// which no writer chooses.
#[derive(Default, Clone, Copy)]
pub(super) struct Fast;

#[derive(Default)]
pub(super) struct FastHasher(u64);

impl std::hash::BuildHasher for Fast {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_ne_bytes(word));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
    fn write_i32(&mut self, v: i32) {
        self.write_u64(v as u32 as u64)
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64)
    }
}

#[derive(PartialEq, Eq, Hash)]
pub(super) enum Image {
    Word(usize),
    Bytes(Box<[u8]>),
}

impl KeySet {
    pub(super) fn len(&self) -> usize {
        self.subids.len()
    }

    /// Adds a key (its values as the row holds them) unless an equal
    /// image is already there.
    pub(super) fn push(&mut self, values: &[pg_sys::Datum], types: &[KeyType]) {
        // SAFETY: values are key values of the types given, not NULL.
        unsafe {
            let old = pg_sys::MemoryContextSwitchTo(pg_sys::TopTransactionContext);
            let copies: Vec<pg_sys::Datum> = values
                .iter()
                .zip(types)
                .map(|(&d, t)| copy_datum(d, t))
                .collect();
            pg_sys::MemoryContextSwitchTo(old);
            if self.seen.insert(image(&copies, types)) {
                self.datums.extend_from_slice(&copies);
                self.subids.push(pg_sys::GetCurrentSubTransactionId());
            }
        }
    }

    /// Drops the keys of subtransaction `subid` and its children (every
    /// subtransaction started after it, while it is open, is one of them).
    pub(super) fn forget_subtransaction(
        &mut self,
        subid: pg_sys::SubTransactionId,
        types: &[KeyType],
    ) {
        if !self.subids.iter().any(|&s| s >= subid) {
            return;
        }
        let n = types.len();
        let mut kept = KeySet::default();
        for (i, &s) in self.subids.iter().enumerate() {
            if s < subid {
                let key = &self.datums[i * n..(i + 1) * n];
                // SAFETY: copies made by push, of these types.
                kept.seen.insert(unsafe { image(key, types) });
                kept.datums.extend_from_slice(key);
                kept.subids.push(s);
            }
        }
        *self = kept;
    }
}

/// A key's binary image, for telling keys apart (copy_datum detoasted the
/// values, so equal values have equal images).
pub(super) unsafe fn image(key: &[pg_sys::Datum], types: &[KeyType]) -> Image {
    if key.len() == 1 && types[0].byval {
        return Image::Word(key[0].value());
    }
    let mut bytes = Vec::new();
    for (&d, t) in key.iter().zip(types) {
        let word;
        let b: &[u8] = if t.byval {
            word = d.value().to_ne_bytes();
            &word
        } else {
            match t.len {
                -1 => {
                    let v = d.cast_mut_ptr::<pg_sys::varlena>();
                    std::slice::from_raw_parts(
                        pgrx::vardata_any(v) as *const u8,
                        pgrx::varsize_any_exhdr(v),
                    )
                }
                -2 => CStr::from_ptr(d.cast_mut_ptr::<std::ffi::c_char>()).to_bytes(),
                n => std::slice::from_raw_parts(d.cast_mut_ptr::<u8>(), n as usize),
            }
        };
        bytes.extend_from_slice(&(b.len() as u32).to_ne_bytes());
        bytes.extend_from_slice(b);
    }
    Image::Bytes(bytes.into_boxed_slice())
}

/// A copy of a key value in the current memory context; varlena values
/// detoasted (so that the copy never points into the source's TOAST
/// table, and equal values have equal images).
pub(super) unsafe fn copy_datum(d: pg_sys::Datum, t: &KeyType) -> pg_sys::Datum {
    if t.byval {
        return d;
    }
    match t.len {
        -1 => pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(d.cast_mut_ptr())),
        -2 => pg_sys::Datum::from(pg_sys::pstrdup(d.cast_mut_ptr())),
        n => {
            let p = pg_sys::palloc(n as usize);
            std::ptr::copy_nonoverlapping(d.cast_mut_ptr::<u8>(), p as *mut u8, n as usize);
            pg_sys::Datum::from(p)
        }
    }
}
