//! Histogram binning against scikit-learn's `_BinMapper` (reference numbers from
//! `tools/sklearn_binning_reference.py`): the same thresholds, bit for bit, and the same
//! bin for every cell, missing ones included.

use meshml_models::binning::{BinMapper, ColumnBins};
use meshml_models::schema::ColumnKind;
use meshml_models::Matrix;

#[test]
fn thresholds_and_bins_are_scikit_learns() {
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../reference/sklearn_binning.json")).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let values: Vec<f32> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32))
            .collect();
        let max_bins = case["max_bins"].as_u64().unwrap() as usize;
        let x = Matrix::from_vec(values.len(), 1, values).unwrap();
        let m = BinMapper::fit(&x, &[ColumnKind::Numeric], max_bins, None, 0).unwrap();
        let want: Vec<f64> = case["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let ColumnBins::Numeric(got) = &m.columns()[0] else {
            panic!("{name}: not numeric")
        };
        assert_eq!(got, &want, "{name}: thresholds");
        assert_eq!(
            m.columns()[0].n_bins_non_missing() as u64,
            case["n_bins_non_missing"].as_u64().unwrap(),
            "{name}"
        );
        let bins: Vec<u64> = case["bins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let got: Vec<u64> = m
            .transform(&x)
            .unwrap()
            .column(0)
            .iter()
            .map(|&b| u64::from(b))
            .collect();
        assert_eq!(got, bins, "{name}: bins");
        assert_eq!(m.missing_bin() as usize, max_bins, "{name}");
    }
}

#[test]
fn a_sample_of_the_rows_bins_as_the_whole_would_within_a_bin() {
    // 50,000 rows, thresholds from a sample of about 5,000 picked by the rows' hashes: the
    // same sample whatever the rows' order, and quantiles close to the whole column's.
    let n = 50_000;
    let values: Vec<f32> = (0..n).map(|i| ((i * 7919) % n) as f32 / n as f32).collect();
    let x = Matrix::from_vec(n, 1, values.clone()).unwrap();
    let sampled = BinMapper::fit(&x, &[ColumnKind::Numeric], 16, Some(5_000), 3).unwrap();
    let mut reversed = values;
    reversed.reverse();
    let r = Matrix::from_vec(n, 1, reversed).unwrap();
    assert_eq!(
        BinMapper::fit(&r, &[ColumnKind::Numeric], 16, Some(5_000), 3).unwrap(),
        sampled
    );
    let whole = BinMapper::fit(&x, &[ColumnKind::Numeric], 16, None, 0).unwrap();
    let (ColumnBins::Numeric(a), ColumnBins::Numeric(b)) =
        (&sampled.columns()[0], &whole.columns()[0])
    else {
        panic!("not numeric")
    };
    assert_eq!(a.len(), 15);
    // Uniform values: each quantile within a fifth of a bin's width (1/16) of the whole's.
    for (s, w) in a.iter().zip(b) {
        assert!((s - w).abs() < 0.2 / 16.0, "{a:?}\n{b:?}");
    }
    // Another seed, another sample.
    assert_ne!(
        BinMapper::fit(&x, &[ColumnKind::Numeric], 16, Some(5_000), 4).unwrap(),
        sampled
    );
}
