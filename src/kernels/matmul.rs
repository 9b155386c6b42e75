//! The one door to the `gemm` crate (candle's own CPU matrix multiply): row-major f32 matrices
//! given as slices with row strides, checked before the unsafe call.

/// A row-major matrix view: `rows × cols` elements, row `i` starting at `data[i * stride]`.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
}

impl<'a> Matrix<'a> {
    pub fn new(data: &'a [f32], rows: usize, cols: usize, stride: usize) -> Self {
        assert!(cols <= stride || rows <= 1, "row stride {stride} under {cols} columns");
        assert!(rows == 0 || (rows - 1) * stride + cols <= data.len(), "a {rows}x{cols} matrix (stride {stride}) overruns {}", data.len());
        Self { data, rows, cols, stride }
    }
}

/// How many threads a product may use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    One,
    /// rayon's pool (`RAYON_NUM_THREADS`), as candle's matmul uses it.
    Pool,
}

/// `out = a · bᵀ` for `a` `[m × k]` and `b` `[n × k]` (a linear layer's weight layout, or keys),
/// `out` `[m × n]` with row stride `out_stride`.
pub fn a_bt(a: Matrix, b: Matrix, out: &mut [f32], out_stride: usize, threads: Threads) {
    assert_eq!(a.cols, b.cols, "inner dimensions");
    // SAFETY: the views were bounds-checked in `Matrix::new`; `b` read transposed is `[k × n]`
    // with row stride 1 and column stride `b.stride`.
    unsafe { product(a, (b.rows, b.data.as_ptr(), 1, b.stride), out, out_stride, threads) }
}

/// `out = a · b` for `a` `[m × k]` and `b` `[k × n]`, `out` `[m × n]` with row stride `out_stride`.
pub fn a_b(a: Matrix, b: Matrix, out: &mut [f32], out_stride: usize, threads: Threads) {
    assert_eq!(a.cols, b.rows, "inner dimensions");
    // SAFETY: as in `a_bt`; `b` is read as stored.
    unsafe { product(a, (b.cols, b.data.as_ptr(), b.stride, 1), out, out_stride, threads) }
}

/// # Safety
/// `rhs` (n, pointer, row stride, column stride) must address a valid `[a.cols × n]` matrix.
unsafe fn product(a: Matrix, rhs: (usize, *const f32, usize, usize), out: &mut [f32], out_stride: usize, threads: Threads) {
    let (m, k, (n, rhs_ptr, rhs_rs, rhs_cs)) = (a.rows, a.cols, rhs);
    assert!(n <= out_stride || m <= 1, "output stride {out_stride} under {n} columns");
    assert!(m == 0 || (m - 1) * out_stride + n <= out.len(), "the {m}x{n} output overruns {}", out.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.chunks_mut(out_stride).take(m).for_each(|row| row[..n].fill(0.0));
        return;
    }
    let parallelism = match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::Pool => gemm::Parallelism::Rayon(rayon::current_num_threads()),
    };
    // SAFETY: dimensions and strides were checked against the slices above; `out` does not
    // alias the inputs (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_stride as isize,
            false,
            a.data.as_ptr(),
            1,
            a.stride as isize,
            rhs_ptr,
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_match_the_definition() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i % 5) as f32 - 2.0).collect();
        let mut out = vec![9.0; m * 4];
        a_bt(Matrix::new(&a, m, k, k), Matrix::new(&b, n, k, k), &mut out, 4, Threads::One);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|x| a[i * k + x] * b[j * k + x]).sum();
                assert_eq!(out[i * 4 + j], want);
            }
            assert_eq!(out[i * 4 + 3], 9.0, "the stride's padding is untouched");
        }
        // bᵀ stored as [k × n]
        let bt: Vec<f32> = (0..k * n).map(|i| b[(i % n) * k + i / n]).collect();
        let mut again = vec![0.0; m * n];
        a_b(Matrix::new(&a, m, k, k), Matrix::new(&bt, k, n, n), &mut again, n, Threads::Pool);
        for i in 0..m {
            assert_eq!(&again[i * n..(i + 1) * n], &out[i * 4..i * 4 + n]);
        }
    }
}
