//! Dense linear algebra on row-major `f64` slices, over [faer]: Cholesky solves, the
//! symmetric eigen-decomposition and the thin SVD.
//!
//! Internal: the linear models use it today, and PCA and LDA will. Matrices go in and come
//! out row-major (`a[i * cols + j]`), as the rest of the crate stores them.

use faer::linalg::solvers::Solve;
use faer::{Mat, MatRef, Side};

use crate::error::{ModelError, Result};

/// `rows x cols` row-major data as a faer matrix.
fn to_mat(a: &[f64], rows: usize, cols: usize) -> Mat<f64> {
    assert_eq!(
        a.len(),
        rows * cols,
        "a {rows}x{cols} matrix has rows*cols values"
    );
    Mat::from_fn(rows, cols, |i, j| a[i * cols + j])
}

/// A faer matrix as row-major data.
fn from_mat(m: MatRef<'_, f64>) -> Vec<f64> {
    let mut out = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            out.push(m[(i, j)]);
        }
    }
    out
}

/// Solves `A w = b` for symmetric positive definite `A` (`d x d`) by Cholesky
/// factorisation. `None` when `A` is not numerically positive definite: some pivot (a
/// squared diagonal entry of the factor) is at most `rel_tol` times the largest diagonal
/// entry of `A`, so the caller can fall back to a minimum-norm solution.
pub(crate) fn cholesky_solve(a: &[f64], b: &[f64], d: usize, rel_tol: f64) -> Option<Vec<f64>> {
    let scale = (0..d).map(|i| a[i * d + i].abs()).fold(0.0, f64::max);
    let eps = scale * rel_tol;
    let llt = to_mat(a, d, d).llt(Side::Lower).ok()?;
    let l = llt.L();
    if (0..d).any(|i| l[(i, i)] * l[(i, i)] <= eps) {
        return None;
    }
    let mut rhs = Mat::from_fn(d, 1, |i, _| b[i]);
    llt.solve_in_place(rhs.as_mut());
    Some((0..d).map(|i| rhs[(i, 0)]).collect())
}

/// The eigen-decomposition of a symmetric matrix: `A = V diag(values) Vᵀ`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SymmetricEigen {
    /// Eigenvalues, ascending.
    pub(crate) values: Vec<f64>,
    /// Eigenvectors as the columns of a `d x d` row-major matrix (column `j` belongs to
    /// `values[j]`), orthonormal.
    pub(crate) vectors: Vec<f64>,
}

/// The eigen-decomposition of the symmetric `d x d` matrix `a` (only its lower triangle is
/// read).
pub(crate) fn symmetric_eigen(a: &[f64], d: usize) -> Result<SymmetricEigen> {
    let evd = to_mat(a, d, d)
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| ModelError::data("eigen-decomposition", format!("{e:?}")))?;
    let s = evd.S().column_vector();
    Ok(SymmetricEigen {
        values: (0..d).map(|i| s[i]).collect(),
        vectors: from_mat(evd.U()),
    })
}

/// A thin singular value decomposition: `A = U diag(s) Vᵀ` with `k = min(rows, cols)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Svd {
    /// `rows x k`, orthonormal columns, row-major.
    pub(crate) u: Vec<f64>,
    /// Singular values, non-negative and descending.
    pub(crate) s: Vec<f64>,
    /// `k x cols` (the transpose of `V`), orthonormal rows, row-major.
    pub(crate) vt: Vec<f64>,
}

/// The thin SVD of the `rows x cols` row-major matrix `a`.
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "the SVD is for PCA and LDA, which come next")
)]
pub(crate) fn thin_svd(a: &[f64], rows: usize, cols: usize) -> Result<Svd> {
    let svd = to_mat(a, rows, cols)
        .thin_svd()
        .map_err(|e| ModelError::data("singular value decomposition", format!("{e:?}")))?;
    let s = svd.S().column_vector();
    Ok(Svd {
        u: from_mat(svd.U()),
        s: (0..rows.min(cols)).map(|i| s[i]).collect(),
        vt: from_mat(svd.V().transpose()),
    })
}

#[cfg(test)]
mod tests {
    use approx::assert_abs_diff_eq;

    use super::*;

    #[test]
    fn cholesky_solves_a_positive_definite_system_and_refuses_a_singular_one() {
        // [[4, 2], [2, 3]] w = [2, 1]: w = (1/2, 0).
        let w = cholesky_solve(&[4., 2., 2., 3.], &[2., 1.], 2, 1e-12).unwrap();
        assert_abs_diff_eq!(w[0], 0.5, epsilon = 1e-14);
        assert_abs_diff_eq!(w[1], 0.0, epsilon = 1e-14);
        assert!(cholesky_solve(&[1., 1., 1., 1.], &[1., 1.], 2, 1e-12).is_none());
    }

    #[test]
    fn symmetric_eigen_of_a_two_by_two_matches_the_closed_form() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3, with eigenvectors (1, -1)/√2 and
        // (1, 1)/√2.
        let e = symmetric_eigen(&[2., 1., 1., 2.], 2).unwrap();
        assert_abs_diff_eq!(e.values[0], 1.0, epsilon = 1e-12);
        assert_abs_diff_eq!(e.values[1], 3.0, epsilon = 1e-12);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        // Column 0, up to sign.
        let (v0, v1) = (e.vectors[0], e.vectors[2]);
        assert_abs_diff_eq!(v0.abs(), h, epsilon = 1e-12);
        assert_abs_diff_eq!(v0 + v1, 0.0, epsilon = 1e-12);
        // Column 1, up to sign.
        let (w0, w1) = (e.vectors[1], e.vectors[3]);
        assert_abs_diff_eq!(w0.abs(), h, epsilon = 1e-12);
        assert_abs_diff_eq!(w0 - w1, 0.0, epsilon = 1e-12);
    }

    #[test]
    fn thin_svd_of_a_three_by_two_matches_the_closed_form_and_reconstructs() {
        // [[3, 0], [0, 4], [0, 0]]: singular values 4 and 3, V = [[0, 1], [1, 0]] up to
        // signs.
        let a = [3., 0., 0., 4., 0., 0.];
        let svd = thin_svd(&a, 3, 2).unwrap();
        assert_eq!((svd.u.len(), svd.s.len(), svd.vt.len()), (6, 2, 4));
        assert_abs_diff_eq!(svd.s[0], 4.0, epsilon = 1e-12);
        assert_abs_diff_eq!(svd.s[1], 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(svd.vt[0].abs(), 0.0, epsilon = 1e-12);
        assert_abs_diff_eq!(svd.vt[1].abs(), 1.0, epsilon = 1e-12);
        for i in 0..3 {
            for j in 0..2 {
                let r: f64 = (0..2)
                    .map(|k| svd.u[i * 2 + k] * svd.s[k] * svd.vt[k * 2 + j])
                    .sum();
                assert_abs_diff_eq!(r, a[i * 2 + j], epsilon = 1e-12);
            }
        }
    }
}
