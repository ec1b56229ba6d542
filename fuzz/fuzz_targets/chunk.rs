//! Fuzzes chunk decoding (`storage::encoding::ChunkLayout::decode`, what every node runs on
//! the chunks it fetches): arbitrary bytes give a chunk or a "corrupt" error, never a panic
//! that escapes, for a classification and a regression layout of the same columns; a chunk
//! that decodes has its layout's shape, category codes within the categories, and encodes
//! and decodes to the same cells; the same for the layouts read as format 1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshml_models::dataset::LabelKind;
use meshml_models::io::LabelTable;
use meshml_models::schema::{Categories, ColumnKind};
use meshml_storage::encoding::{Chunk, ChunkLayout, ROWS_FORMAT};

fn layout(labels: bool) -> ChunkLayout {
    let cats = Categories::from_parts(vec!["a".into(), "b".into(), "c".into()], LabelKind::Text);
    ChunkLayout::new(
        &["x".into(), "c".into(), "f".into()],
        &[
            ColumnKind::Numeric,
            ColumnKind::Categorical { categories: cats },
            ColumnKind::Boolean,
        ],
        "y",
        labels.then(|| LabelTable::from_labels(&["yes".into(), "no".into()])),
    )
}

fn bits(c: &Chunk) -> Vec<u32> {
    c.features.iter().map(|v| v.to_bits()).collect()
}

fuzz_target!(
    init: {
        // The decoder catches a panic inside the Arrow reader (a corrupt chunk, not a
        // crash); libfuzzer-sys's hook would abort on it even so.
        drop(std::panic::take_hook());
    },
    |data: &[u8]| {
    let id = meshml_protocol::ChunkId::from_bytes(*blake3::hash(data).as_bytes());
    // Format 1 (row-major MessagePack): what decodes re-encodes to the same cells.
    for l in [layout(true), layout(false)] {
        let l = l.in_format(ROWS_FORMAT);
        let Ok(c) = l.decode(&id, data) else { continue };
        assert_eq!(c.features.len(), c.rows * 3);
        let back = l.decode(&id, &c.encode_rows()).expect("a format-1 chunk re-encodes");
        assert_eq!(bits(&back), bits(&c));
        assert_eq!(back.rows, c.rows);
    }
    for l in [layout(true), layout(false)] {
        let Ok(c) = l.decode(&id, data) else { continue };
        assert_eq!(c.cols, 3);
        assert_eq!(c.features.len(), c.rows * 3);
        for row in c.features.chunks_exact(3) {
            assert!(row[1].is_nan() || [0.0, 1.0, 2.0].contains(&row[1]));
            assert!(row[2].is_nan() || [0.0, 1.0].contains(&row[2]));
        }
        let again = l.encode(&c).expect("a decoded chunk encodes");
        let back = l.decode(&id, &again).expect("and decodes");
        assert_eq!((back.rows, &back.targets), (c.rows, &c.targets));
        // Numbers come back bit for bit, except a NaN with a payload, which is missing.
        for (a, b) in bits(&back).iter().zip(bits(&c)) {
            assert!(*a == b || (f32::from_bits(b).is_nan() && f32::from_bits(*a).is_nan()));
        }
    }
    }
);
