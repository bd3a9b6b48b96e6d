//! The element-wise and row kernels of the encoder, and its matrix
//! products. Each hot loop is written once, branch-free, and compiled twice:
//! for AVX-512 (picked at run time) and for the baseline x86-64 or other
//! targets, so one build runs everywhere and fast where it can.

use rayon::prelude::*;

/// Rows per parallel task for the row kernels: enough work per task that
/// scheduling costs nothing, few enough that both cores get a share.
const ROWS_PER_TASK: usize = 16;

macro_rules! dispatch {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$m])*
        #[inline]
        pub fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
                unsafe fn wide($($arg: $ty),*) { body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has every feature `wide` is compiled for.
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// e^x for f32, branch-free so that it vectorises: Cephes' polynomial
/// after reducing by ln 2 (relative error below 2e-7 over the f32 range).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// erf for f32: Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - p * exp(-a * a);
    y.copysign(x)
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// The activations of the feed-forward layer, as `config.json` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: exact, with erf (BERT, RoBERTa, DistilBERT).
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    Relu,
}

impl Activation {
    pub fn from_name(name: &str) -> Option<Activation> {
        match name {
            "gelu" | "gelu_python" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }
}

dispatch! {
    /// `y += bias` on every row, then the activation.
    fn bias_act_rows(y: &mut [f32], bias: &[f32], act: Option<Activation>) {
        for row in y.chunks_exact_mut(bias.len()) {
            match act {
                None => row.iter_mut().zip(bias).for_each(|(v, b)| *v += b),
                Some(Activation::Gelu) => row.iter_mut().zip(bias).for_each(|(v, b)| {
                    let x = *v + b;
                    *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                }),
                Some(Activation::GeluTanh) => row.iter_mut().zip(bias).for_each(|(v, b)| {
                    let x = *v + b;
                    *v = 0.5 * x * (1.0 + tanh(0.797_884_6 * (x + 0.044_715 * x * x * x)));
                }),
                Some(Activation::Relu) => row.iter_mut().zip(bias).for_each(|(v, b)| *v = (*v + b).max(0.0)),
            }
        }
    }
}

dispatch! {
    /// `x = LayerNorm(x + y + bias)` row by row (the residual connection of
    /// a post-norm encoder layer); `bias` is the sublayer's output bias.
    fn add_norm_rows(x: &mut [f32], y: &[f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let h = gamma.len();
        for (xr, yr) in x.chunks_exact_mut(h).zip(y.chunks_exact(h)) {
            xr.iter_mut().zip(yr).zip(bias).for_each(|((a, b), c)| *a += b + c);
            norm_row(xr, gamma, beta, eps);
        }
    }
}

dispatch! {
    /// LayerNorm of every row in place.
    fn norm_rows(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        for xr in x.chunks_exact_mut(gamma.len()) {
            norm_row(xr, gamma, beta, eps);
        }
    }
}

#[inline(always)]
fn norm_row(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let mut var = 0.0f32;
    // Eight partial sums vectorise; one would be a serial chain.
    let mut acc = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    for v in chunks.remainder() {
        var += (v - mean) * (v - mean);
    }
    var += acc.iter().sum::<f32>();
    let inv = 1.0 / (var / n + eps).sqrt();
    x.iter_mut()
        .zip(gamma)
        .zip(beta)
        .for_each(|((v, g), b)| *v = (*v - mean) * inv * g + b);
}

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            acc[i] = acc[i].max(c[i]);
        }
    }
    let m = acc.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b));
    chunks.remainder().iter().fold(m, |a, b| a.max(*b))
}

dispatch! {
    /// Softmax of every row (of length `n`) in place.
    fn softmax_rows(s: &mut [f32], n: usize) {
        for row in s.chunks_exact_mut(n) {
            let m = max(row);
            row.iter_mut().for_each(|v| *v = exp(*v - m));
            let inv = 1.0 / sum(row);
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// Runs `f` over groups of whole rows of `x` (row length `width`) on the
/// thread pool.
pub fn par_rows(x: &mut [f32], width: usize, f: impl Fn(&mut [f32], usize) + Sync) {
    x.par_chunks_mut(width * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(i, c)| f(c, i * ROWS_PER_TASK));
}

/// `dst[m×n] = a[m×k] · b[n×k]ᵀ · scale` with row-major operands given by
/// their row strides (`a_rs`, `b_rs`, `dst_rs`), so column slices of a wider
/// matrix (one attention head) need no copy.
#[allow(clippy::too_many_arguments)]
pub fn matmul_t(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    b: &[f32],
    b_rs: usize,
    dst: &mut [f32],
    dst_rs: usize,
    scale: f32,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * a_rs + k && b.len() >= (n - 1) * b_rs + k);
    assert!(dst.len() >= (m - 1) * dst_rs + n);
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the bounds of all three matrices were checked above, and
    // `dst` is borrowed mutably, so it overlaps neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            false,
            a.as_ptr(),
            1,
            a_rs as isize,
            b.as_ptr(),
            b_rs as isize,
            1,
            0.0,
            scale,
            false,
            false,
            false,
            par,
        )
    }
}

/// `dst[m×n] = a[m×k] · b[k×n]` (row-major, strided rows), for the
/// attention's weighted sum of values, written into a block of a larger
/// matrix that other threads write other blocks of.
///
/// # Safety
/// `dst` must be valid for writes of `(m - 1) * dst_rs + n` elements, and
/// no one else may access the `m × n` block while this runs.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_into(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    b: &[f32],
    b_rs: usize,
    dst: *mut f32,
    dst_rs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * a_rs + k && b.len() >= (k - 1) * b_rs + n);
    // SAFETY: the operands' bounds were checked above; `dst` is the caller's.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            false,
            a.as_ptr(),
            1,
            a_rs as isize,
            b.as_ptr(),
            1,
            b_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -2000..2000 {
            let x = i as f32 / 50.0;
            let e = exp(x);
            assert!(((e - x.exp()) / x.exp()).abs() < 5e-7, "exp({x})");
            let want = libm::erff(x);
            assert!(
                (erf(x) - want).abs() < 3e-7,
                "erf({x}) {} vs {want}",
                erf(x)
            );
        }
        assert_eq!(exp(-200.0), exp(-87.3));
        assert!(exp(88.3) < f32::MAX);
        assert!(exp(200.0).is_finite());
    }

    #[test]
    fn row_kernels_match_their_definitions() {
        let mut s = vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
        softmax_rows(&mut s, 3);
        let e: f32 = 1.0f32.exp() + 2.0f32.exp() + 3.0f32.exp();
        assert!((s[2] - 3.0f32.exp() / e).abs() < 1e-6);
        assert!((s[3] - 1.0 / 3.0).abs() < 1e-6);

        let mut x: Vec<f32> = (0..40).map(|i| i as f32).collect();
        norm_rows(&mut x, &[1.0; 20], &[0.5; 20], 0.0);
        let mean: f32 = x[..20].iter().sum::<f32>() / 20.0;
        let var: f32 = x[..20].iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 20.0;
        assert!(
            (mean - 0.5).abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );

        let mut y = vec![-1.0f32, 0.0, 1.0, 3.0];
        bias_act_rows(&mut y, &[0.0, 0.0], Some(Activation::Gelu));
        assert!(
            (y[0] - -0.158_655_25).abs() < 1e-6 && (y[3] - 2.995_95).abs() < 1e-4,
            "{y:?}"
        );
    }

    #[test]
    fn strided_products_match_a_plain_loop() {
        let (m, n, k) = (5, 7, 9);
        let a: Vec<f32> = (0..m * 12).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..n * 10).map(|i| (i % 5) as f32 * 0.5).collect();
        let mut d = vec![0.0; m * n];
        matmul_t(m, n, k, &a, 12, &b, 10, &mut d, n, 2.0, 1);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| a[i * 12 + t] * b[j * 10 + t]).sum::<f32>() * 2.0;
                assert!((d[i * n + j] - want).abs() < 1e-4);
            }
        }
    }
}
