//! Tables for the terminal (box drawing) and for Markdown reports.

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};

/// How a table is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Terminal,
    Markdown,
}

/// Renders `rows` under `header`; every column but the first is right-aligned (numbers).
pub fn render(header: &[&str], rows: &[Vec<String>], style: Style) -> String {
    let mut t = Table::new();
    t.load_preset(match style {
        Style::Terminal => presets::UTF8_FULL_CONDENSED,
        Style::Markdown => presets::ASCII_MARKDOWN,
    });
    t.set_content_arrangement(ContentArrangement::Disabled);
    t.set_header(header.to_vec());
    for r in rows {
        t.add_row(r.clone());
    }
    for i in 1..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.to_string()
}

/// A fraction shown as a percentage with two decimals, the paper's convention ("—" when absent).
pub fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{:.2}", 100.0 * v))
}

/// A number with `digits` decimals ("—" when absent).
pub fn fixed(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.digits$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_table_has_header_separator_and_rows() {
        let s = render(&["model", "ECE %"], &[vec!["CE".into(), percent(Some(0.0674))]], Style::Markdown);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3, "{s}");
        assert!(lines[0].contains("model") && lines[0].contains("ECE %"));
        assert!(lines[1].contains("---"));
        assert!(lines[2].contains("CE") && lines[2].contains("6.74"));
    }
}
