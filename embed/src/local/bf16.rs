//! The opt-in bf16 path of the linear layers (`PGAI_MIGRATE_LOCAL_PRECISION=bf16`):
//! weights rounded once to bfloat16, activations rounded per product, sums
//! kept in f32, on AVX512_BF16's `vdpbf16ps` (twice the multiply-adds per
//! instruction of f32 FMA). Vectors move by about 1e-4 in cosine; the
//! default path stays f32 and equal to sentence-transformers'.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

/// Output columns per vector register, and rows/vectors per micro-tile.
const LANES: usize = 16;
const MR: usize = 6;
const NR: usize = 4;
/// Rows per parallel task.
const ROWS_PER_TASK: usize = 48;

/// Whether this CPU runs the bf16 path.
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Round-to-nearest-even f32 → bf16 bits (what `vcvtne2ps2bf16` does).
fn to_bf16(x: f32) -> u32 {
    let u = x.to_bits();
    (u + 0x7fff + ((u >> 16) & 1)) >> 16
}

/// A weight matrix `[n × k]` in the kernel's order: for each block of 16
/// output columns, for each pair of inputs, 16 lanes of (w[2p], w[2p+1]).
pub struct Packed {
    pub n: usize,
    pub k: usize,
    pairs: usize,
    data: Vec<u32>,
}

impl Packed {
    pub fn new(w: &[f32], n: usize, k: usize) -> Packed {
        let pairs = k.div_ceil(2);
        let blocks = n.div_ceil(LANES);
        let mut data = vec![0u32; blocks * pairs * LANES];
        for col in 0..n {
            let (blk, lane) = (col / LANES, col % LANES);
            let row = &w[col * k..(col + 1) * k];
            for p in 0..pairs {
                let lo = to_bf16(row[2 * p]);
                let hi = if 2 * p + 1 < k {
                    to_bf16(row[2 * p + 1])
                } else {
                    0
                };
                data[(blk * pairs + p) * LANES + lane] = lo | (hi << 16);
            }
        }
        Packed { n, k, pairs, data }
    }
}

/// `y[m × n] = x[m × k] · wᵀ`.
pub fn matmul_t(x: &[f32], w: &Packed, y: &mut [f32]) {
    let (n, k, pairs) = (w.n, w.k, w.pairs);
    let m = x.len() / k;
    assert!(supported() && x.len() == m * k && y.len() == m * n);
    x.par_chunks(k * ROWS_PER_TASK)
        .zip(y.par_chunks_mut(n * ROWS_PER_TASK))
        .for_each_init(Vec::new, |a: &mut Vec<u32>, (xs, ys)| {
            let rows = xs.len() / k;
            a.clear();
            a.resize(rows * pairs, 0);
            for (src, dst) in xs.chunks_exact(k).zip(a.chunks_exact_mut(pairs)) {
                // SAFETY: `supported()` was checked above.
                unsafe { convert_row(src, dst) };
            }
            // SAFETY: as above; `tile` stays within `a`, `w.data` and `ys`.
            unsafe { tiles(a, rows, w, ys) };
        });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn convert_row(src: &[f32], dst: &mut [u32]) {
    let k = src.len();
    let mut i = 0;
    while i + 32 <= k {
        let lo = _mm512_loadu_ps(src.as_ptr().add(i));
        let hi = _mm512_loadu_ps(src.as_ptr().add(i + 16));
        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(dst.as_mut_ptr().add(i / 2) as *mut _, v);
        i += 32;
    }
    while i < k {
        let lo = to_bf16(src[i]);
        let hi = if i + 1 < k { to_bf16(src[i + 1]) } else { 0 };
        dst[i / 2] = lo | (hi << 16);
        i += 2;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tiles(a: &[u32], rows: usize, w: &Packed, y: &mut [f32]) {
    type Tile = unsafe fn(&[u32], usize, &Packed, usize, &mut [f32]);
    macro_rules! row {
        ($m:literal) => {
            [
                tile::<$m, 1> as Tile,
                tile::<$m, 2>,
                tile::<$m, 3>,
                tile::<$m, 4>,
            ]
        };
    }
    let tiles: [[Tile; NR]; MR] = [row!(1), row!(2), row!(3), row!(4), row!(5), row!(6)];
    let blocks = w.n.div_ceil(LANES);
    let mut b0 = 0;
    while b0 < blocks {
        let nr = (blocks - b0).min(NR);
        let mut r0 = 0;
        while r0 < rows {
            let mr = (rows - r0).min(MR);
            (tiles[mr - 1][nr - 1])(a, r0, w, b0, y);
            r0 += mr;
        }
        b0 += nr;
    }
}

/// One `M × (N·16)` tile of `y`: rows `r0..`, column blocks `b0..`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn tile<const M: usize, const N: usize>(
    a: &[u32],
    r0: usize,
    w: &Packed,
    b0: usize,
    y: &mut [f32],
) {
    let pairs = w.pairs;
    let mut acc = [[_mm512_setzero_ps(); N]; M];
    let ap = a.as_ptr().add(r0 * pairs);
    let bp = w.data.as_ptr().add(b0 * pairs * LANES);
    for p in 0..pairs {
        let mut b = [_mm512_setzero_si512(); N];
        for (j, bj) in b.iter_mut().enumerate() {
            *bj = _mm512_loadu_si512(bp.add((j * pairs + p) * LANES) as *const _);
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let av: __m512bh =
                std::mem::transmute(_mm512_set1_epi32(*ap.add(r * pairs + p) as i32));
            for (j, c) in row.iter_mut().enumerate() {
                *c = _mm512_dpbf16_ps(*c, av, std::mem::transmute::<__m512i, __m512bh>(b[j]));
            }
        }
    }
    let n = w.n;
    for (r, row) in acc.iter().enumerate() {
        let out = y.as_mut_ptr().add((r0 + r) * n);
        for (j, c) in row.iter().enumerate() {
            let col = (b0 + j) * LANES;
            let valid = (n - col).min(LANES);
            let mask: __mmask16 = if valid == LANES {
                0xffff
            } else {
                (1u16 << valid) - 1
            };
            _mm512_mask_storeu_ps(out.add(col), mask, *c);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn convert_row(_: &[f32], _: &mut [u32]) {
    unreachable!("bf16 is x86-64 only")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tiles(_: &[u32], _: usize, _: &Packed, _: &mut [f32]) {
    unreachable!("bf16 is x86-64 only")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_products_are_close_to_f32() {
        if !supported() {
            return;
        }
        // Odd sizes: partial tiles, a partial column block, an odd k.
        for (m, n, k) in [(13, 37, 21), (50, 64, 384), (7, 16, 2)] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 104729) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let mut y = vec![0.0; m * n];
            matmul_t(&x, &Packed::new(&w, n, k), &mut y);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum();
                    let scale: f32 = (0..k).map(|t| (x[i * k + t] * w[j * k + t]).abs()).sum();
                    assert!(
                        (y[i * n + j] - want).abs() <= 1e-2 * scale + 1e-6,
                        "{m}x{n}x{k} [{i},{j}]: {} vs {want}",
                        y[i * n + j]
                    );
                }
            }
        }
    }
}
