//! A dense, row-major `f32` matrix backed by a candle-core tensor.
//!
//! The tensor is what dense math (matrix products) runs on; element-wise loops on hot paths
//! read the same storage through [`Matrix::data`] without copying.

use std::ops::Deref;

use candle_core::{DType, Device, Storage, Tensor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ModelError, Result};

/// A rank-2, contiguous, CPU, `f32` tensor.
#[derive(Clone)]
pub struct Matrix {
    tensor: Tensor,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Matrix({} x {})", self.rows(), self.cols())
    }
}

/// A borrowed view of a matrix's elements in row-major order.
pub struct MatrixData<'a> {
    guard: candle_core::StorageRef<'a>,
    start: usize,
    len: usize,
}

impl std::fmt::Debug for MatrixData<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MatrixData(len {})", self.len)
    }
}

impl Deref for MatrixData<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match &*self.guard {
            Storage::Cpu(cpu) => {
                let all = cpu
                    .as_slice::<f32>()
                    .expect("Matrix invariant: storage is f32");
                &all[self.start..self.start + self.len]
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("Matrix invariant: storage is on the CPU"),
        }
    }
}

impl Matrix {
    /// A `rows x cols` matrix from row-major data.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(ModelError::Shape(format!(
                "{} values cannot form a {rows} x {cols} matrix",
                data.len()
            )));
        }
        let tensor = Tensor::from_vec(data, (rows, cols), &Device::Cpu)?;
        Ok(Self { tensor })
    }

    /// A matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self::from_vec(rows, cols, vec![0.0; rows * cols]).expect("shape is consistent")
    }

    /// Wraps a rank-2 tensor, converting it to a contiguous CPU `f32` tensor if needed.
    pub fn from_tensor(tensor: Tensor) -> Result<Self> {
        if tensor.rank() != 2 {
            return Err(ModelError::Shape(format!(
                "expected a rank-2 tensor, got shape {:?}",
                tensor.dims()
            )));
        }
        let tensor = tensor
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .contiguous()?;
        Ok(Self { tensor })
    }

    /// Builds a matrix from rows of equal length.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (i, r) in rows.iter().enumerate() {
            if r.len() != cols {
                return Err(ModelError::Shape(format!(
                    "row {i} has {} values, row 0 has {cols}",
                    r.len()
                )));
            }
            data.extend_from_slice(r);
        }
        Self::from_vec(rows.len(), cols, data)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.tensor.dims()[0]
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.tensor.dims()[1]
    }

    /// The underlying tensor (rank 2, contiguous, f32, CPU).
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// The elements in row-major order, borrowed from the tensor's storage.
    pub fn data(&self) -> MatrixData<'_> {
        let (guard, layout) = self.tensor.storage_and_layout();
        MatrixData {
            guard,
            start: layout.start_offset(),
            len: self.rows() * self.cols(),
        }
    }

    /// A copy of the elements in row-major order.
    pub fn to_vec(&self) -> Vec<f32> {
        self.data().to_vec()
    }

    /// A copy of one row.
    pub fn row(&self, i: usize) -> Vec<f32> {
        let c = self.cols();
        self.data()[i * c..(i + 1) * c].to_vec()
    }

    /// A new matrix made of the given rows, in the given order (rows may repeat).
    pub fn select_rows(&self, idx: &[usize]) -> Result<Self> {
        let c = self.cols();
        let n = self.rows();
        let src = self.data();
        let mut out = Vec::with_capacity(idx.len() * c);
        for &i in idx {
            if i >= n {
                return Err(ModelError::Shape(format!(
                    "row index {i} out of range for {n} rows"
                )));
            }
            out.extend_from_slice(&src[i * c..(i + 1) * c]);
        }
        drop(src);
        Self::from_vec(idx.len(), c, out)
    }

    /// A new matrix made of the given columns, in the given order.
    pub fn select_cols(&self, cols: &[usize]) -> Result<Self> {
        let c = self.cols();
        if let Some(&bad) = cols.iter().find(|&&j| j >= c) {
            return Err(ModelError::Shape(format!(
                "column index {bad} out of range for {c} columns"
            )));
        }
        let src = self.data();
        let mut out = Vec::with_capacity(self.rows() * cols.len());
        for row in src.chunks_exact(c.max(1)).take(self.rows()) {
            out.extend(cols.iter().map(|&j| row[j]));
        }
        drop(src);
        Self::from_vec(self.rows(), cols.len(), out)
    }

    /// `self · otherᵀ`: `(n x k) · (m x k)ᵀ -> (n x m)`, on candle's matrix product.
    pub fn matmul_t(&self, other: &Matrix) -> Result<Matrix> {
        if self.cols() != other.cols() {
            return Err(ModelError::Shape(format!(
                "cannot multiply {} x {} by the transpose of {} x {}",
                self.rows(),
                self.cols(),
                other.rows(),
                other.cols()
            )));
        }
        Matrix::from_tensor(self.tensor.matmul(&other.tensor.t()?)?)
    }

    /// `selfᵀ · other`: `(n x a)ᵀ · (n x b) -> (a x b)`, on candle's matrix product.
    pub fn t_matmul(&self, other: &Matrix) -> Result<Matrix> {
        if self.rows() != other.rows() {
            return Err(ModelError::Shape(format!(
                "cannot multiply the transpose of {} x {} by {} x {}",
                self.rows(),
                self.cols(),
                other.rows(),
                other.cols()
            )));
        }
        Matrix::from_tensor(self.tensor.t()?.matmul(&other.tensor)?)
    }

    /// Checks that every value is finite, naming the first offending cell.
    pub fn check_finite(&self, what: &str) -> Result<()> {
        self.refuse_cell(
            what,
            |v| !v.is_finite(),
            "NaN or infinite values are not supported",
        )
    }

    /// Refuses an infinite value, naming its cell; missing cells (NaN) pass.
    pub fn check_no_infinity(&self, what: &str) -> Result<()> {
        self.refuse_cell(what, f32::is_infinite, "infinite values are not supported")
    }

    /// The first cell `bad` says is bad, as an error `why` that names it.
    fn refuse_cell(&self, what: &str, bad: impl Fn(f32) -> bool, why: &str) -> Result<()> {
        let c = self.cols().max(1);
        if let Some(pos) = self.data().iter().position(|&v| bad(v)) {
            return Err(ModelError::data(
                format!("{what}, row {}, column {}", pos / c, pos % c),
                why,
            ));
        }
        Ok(())
    }
}

impl PartialEq for Matrix {
    fn eq(&self, other: &Self) -> bool {
        self.rows() == other.rows() && self.cols() == other.cols() && *self.data() == *other.data()
    }
}

#[derive(Serialize, Deserialize)]
struct MatrixRepr {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Serialize for Matrix {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        MatrixRepr {
            rows: self.rows(),
            cols: self.cols(),
            data: self.to_vec(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Matrix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = MatrixRepr::deserialize(d)?;
        Matrix::from_vec(r.rows, r.cols, r.data).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_match_hand_computation() {
        let a = Matrix::from_vec(2, 3, vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let b = Matrix::from_vec(2, 3, vec![1., 0., 1., 0., 1., 0.]).unwrap();
        // a · bᵀ = [[4, 2], [10, 5]]
        assert_eq!(a.matmul_t(&b).unwrap().to_vec(), vec![4., 2., 10., 5.]);
        // aᵀ · b = [[1,4,1],[2,5,2],[3,6,3]]
        assert_eq!(
            a.t_matmul(&b).unwrap().to_vec(),
            vec![1., 4., 1., 2., 5., 2., 3., 6., 3.]
        );
        assert!(a.matmul_t(&a.select_cols(&[0, 1]).unwrap()).is_err());
    }

    #[test]
    fn row_and_column_selection() {
        let a = Matrix::from_vec(3, 2, vec![1., 2., 3., 4., 5., 6.]).unwrap();
        assert_eq!(
            a.select_rows(&[2, 0, 2]).unwrap().to_vec(),
            vec![5., 6., 1., 2., 5., 6.]
        );
        assert_eq!(a.select_cols(&[1]).unwrap().to_vec(), vec![2., 4., 6.]);
        assert!(a.select_rows(&[3]).is_err());
        assert_eq!(a.row(1), vec![3., 4.]);
    }

    #[test]
    fn serde_round_trip_and_bad_shape() {
        let a = Matrix::from_vec(2, 2, vec![1., 2., 3., 4.]).unwrap();
        let bytes = rmp_serde::to_vec_named(&a).unwrap();
        let b: Matrix = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(a, b);
        assert!(Matrix::from_vec(2, 2, vec![1.0]).is_err());
    }

    #[test]
    fn non_finite_values_are_located() {
        let a = Matrix::from_vec(2, 2, vec![1., 2., f32::NAN, 4.]).unwrap();
        let e = a.check_finite("X").unwrap_err().to_string();
        assert!(e.contains("row 1, column 0"), "{e}");
    }
}
