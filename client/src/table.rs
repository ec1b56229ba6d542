//! Plain-text tables for the commands' listings (comfy-table, without borders).
//!
//! A header row, then one line per row; columns separated by two spaces, text columns
//! left-aligned and number columns right-aligned, no trailing whitespace, no wrapping.

use comfy_table::{CellAlignment, ContentArrangement, Table};

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: flush left.
    Left,
    /// Numbers: flush right.
    Right,
}

/// Lays out `rows` under `header` (one `(title, alignment)` per column); each line ends
/// with a newline and starts with `indent`.
pub fn render(header: &[(&str, Align)], rows: &[Vec<String>], indent: &str) -> String {
    let mut table = Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|(title, _)| *title).collect::<Vec<_>>());
    for row in rows {
        table.add_row(row.clone());
    }
    let last = header.len().saturating_sub(1);
    for (i, (_, align)) in header.iter().enumerate() {
        if let Some(column) = table.column_mut(i) {
            column.set_padding((0, if i == last { 0 } else { 2 }));
            column.set_cell_alignment(match align {
                Align::Left => CellAlignment::Left,
                Align::Right => CellAlignment::Right,
            });
        }
    }
    let mut text = String::new();
    for line in table.lines() {
        text.push_str(indent);
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_without_borders_or_trailing_space() {
        let text = render(
            &[
                ("NAME", Align::Left),
                ("N", Align::Right),
                ("note", Align::Left),
            ],
            &[
                vec!["a".into(), "1".into(), "x".into()],
                vec!["long-name".into(), "100".into(), String::new()],
            ],
            "  ",
        );
        assert_eq!(
            text,
            "  NAME         N  note\n  a            1  x\n  long-name  100\n"
        );
    }
}
