//! A minimal compressed-sparse-row matrix of f64.
//!
//! Hand-written rather than `sprs`: the baseline needs only row access (X·W), a transpose
//! (to compute Xᵀ·G one feature at a time, in parallel and in a fixed order) and
//! construction from sorted rows. That is a few dozen lines, versus another dependency
//! whose generic API would not make either product faster or deterministic.

/// Rows of (column, value) pairs, columns strictly increasing within a row.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    pub n_rows: usize,
    pub n_cols: usize,
    /// Row `i` occupies `indices[indptr[i]..indptr[i + 1]]` (and the same range of `data`).
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<f64>,
}

impl CsrMatrix {
    /// An empty matrix with `n_cols` columns, to be filled with `push_row`.
    pub fn with_cols(n_cols: usize) -> Self {
        CsrMatrix {
            n_rows: 0,
            n_cols,
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Appends a row; `entries` must have strictly increasing columns below `n_cols`.
    pub fn push_row(&mut self, entries: impl IntoIterator<Item = (u32, f64)>) {
        let start = self.indices.len();
        for (col, value) in entries {
            debug_assert!((col as usize) < self.n_cols);
            debug_assert!(self.indices.len() == start || self.indices[self.indices.len() - 1] < col);
            self.indices.push(col);
            self.data.push(value);
        }
        self.indptr.push(self.indices.len());
        self.n_rows += 1;
    }

    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// Column indices and values of row `i`.
    pub fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let range = self.indptr[i]..self.indptr[i + 1];
        (&self.indices[range.clone()], &self.data[range])
    }

    /// The transpose, also in CSR form (i.e. this matrix in CSC form); rows of the result
    /// list their entries in increasing original-row order.
    pub fn transpose(&self) -> CsrMatrix {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &c in &self.indices {
            counts[c as usize + 1] += 1;
        }
        for j in 0..self.n_cols {
            counts[j + 1] += counts[j];
        }
        let indptr = counts.clone();
        let mut next = counts;
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f64; self.nnz()];
        for i in 0..self.n_rows {
            let (cols, vals) = self.row(i);
            for (&c, &v) in cols.iter().zip(vals) {
                let slot = &mut next[c as usize];
                indices[*slot] = i as u32;
                data[*slot] = v;
                *slot += 1;
            }
        }
        CsrMatrix {
            n_rows: self.n_cols,
            n_cols: self.n_rows,
            indptr,
            indices,
            data,
        }
    }

    /// The matrix as dense rows (tests and small diagnostics only).
    pub fn to_dense(&self) -> Vec<Vec<f64>> {
        (0..self.n_rows)
            .map(|i| {
                let mut row = vec![0.0; self.n_cols];
                let (cols, vals) = self.row(i);
                for (&c, &v) in cols.iter().zip(vals) {
                    row[c as usize] = v;
                }
                row
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        let mut m = CsrMatrix::with_cols(3);
        m.push_row([(0, 1.0), (2, 2.0)]);
        m.push_row([]);
        m.push_row([(1, 3.0), (2, 4.0)]);
        let t = m.transpose();
        assert_eq!(
            t.to_dense(),
            vec![vec![1.0, 0.0, 0.0], vec![0.0, 0.0, 3.0], vec![2.0, 0.0, 4.0]]
        );
        assert_eq!(t.transpose(), m);
    }
}
