//! The table of figures: one line per figure with its target and PASS/MISS.

use std::fmt::Write as _;

/// How a figure compares with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The figure meets its target.
    Pass,
    /// The figure misses its target.
    Miss,
    /// Informational: no target.
    Info,
}

impl Verdict {
    /// `PASS`, `MISS` or `-`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Miss => "MISS",
            Self::Info => "-",
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The measured value, formatted with its unit.
    pub value: String,
    /// The target, formatted (`-` for informational figures).
    pub target: String,
    /// PASS, MISS or informational.
    pub verdict: Verdict,
}

impl Figure {
    /// A figure with no target.
    pub fn info(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            target: "-".into(),
            verdict: Verdict::Info,
        }
    }

    /// A figure that passes if `measured <= limit`.
    pub fn at_most(
        name: impl Into<String>,
        value: impl Into<String>,
        measured: f64,
        limit: f64,
        target: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            target: target.into(),
            verdict: if measured <= limit {
                Verdict::Pass
            } else {
                Verdict::Miss
            },
        }
    }

    /// A figure that passes if `measured >= floor`.
    pub fn at_least(
        name: impl Into<String>,
        value: impl Into<String>,
        measured: f64,
        floor: f64,
        target: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            target: target.into(),
            verdict: if measured >= floor {
                Verdict::Pass
            } else {
                Verdict::Miss
            },
        }
    }

    /// A figure that could not be measured (counts as a miss when it has a target).
    pub fn failed(
        name: impl Into<String>,
        why: impl Into<String>,
        target: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            value: format!("not measured: {}", why.into()),
            target: target.into(),
            verdict: Verdict::Miss,
        }
    }
}

/// Every figure of a run plus free-text notes (errors seen, conditions).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Figures in the order they were measured.
    pub figures: Vec<Figure>,
    /// Notes printed under the table.
    pub notes: Vec<String>,
}

impl Report {
    /// Number of figures that missed their target.
    pub fn misses(&self) -> usize {
        self.figures
            .iter()
            .filter(|f| f.verdict == Verdict::Miss)
            .count()
    }

    /// Number of figures that have a target.
    pub fn with_target(&self) -> usize {
        self.figures
            .iter()
            .filter(|f| f.verdict != Verdict::Info)
            .count()
    }

    /// A plain-text table with aligned columns.
    pub fn text(&self) -> String {
        let headers = ["figure", "value", "target", "result"];
        let rows: Vec<[&str; 4]> = self
            .figures
            .iter()
            .map(|f| [&*f.name, &*f.value, &*f.target, f.verdict.label()])
            .collect();
        let mut widths = headers.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: [&str; 4]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                let pad = w - cell.chars().count();
                s.push_str(cell);
                if i < 3 {
                    s.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&mut out, headers);
        let total: usize = widths.iter().sum::<usize>() + 6;
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for row in rows {
            line(&mut out, row);
        }
        let _ = writeln!(
            out,
            "\n{} of {} targets met",
            self.with_target() - self.misses(),
            self.with_target()
        );
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }

    /// A Markdown table (for `docs/benchmarks.md`).
    pub fn markdown(&self) -> String {
        let mut out = String::from("| Figure | Value | Target | Result |\n|---|---|---|---|\n");
        for f in &self.figures {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                md_cell(&md_name(&f.name)),
                md_cell(&f.value),
                md_cell(&f.target),
                match f.verdict {
                    Verdict::Miss => "**MISS**",
                    v => v.label(),
                }
            );
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                let _ = writeln!(out, "- {}", n);
            }
        }
        out
    }
}

/// Indented (sub-)figure names get an arrow, since Markdown cells drop leading spaces.
fn md_name(name: &str) -> String {
    match name.strip_prefix("  ") {
        Some(rest) => format!("↳ {}", rest.trim_start()),
        None => name.to_owned(),
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_direction_of_the_target() {
        assert_eq!(
            Figure::at_most("a", "5", 5.0, 5.0, "≤ 5").verdict,
            Verdict::Pass
        );
        assert_eq!(
            Figure::at_most("a", "6", 6.0, 5.0, "≤ 5").verdict,
            Verdict::Miss
        );
        assert_eq!(
            Figure::at_least("b", "3000", 3000.0, 3000.0, "≥ 3000").verdict,
            Verdict::Pass
        );
        assert_eq!(
            Figure::at_least("b", "2999", 2999.0, 3000.0, "≥ 3000").verdict,
            Verdict::Miss
        );
        assert_eq!(Figure::failed("c", "boom", "≤ 1").verdict, Verdict::Miss);
        assert_eq!(Figure::info("d", "x").verdict, Verdict::Info);
    }

    #[test]
    fn text_table_aligns_columns_and_counts_targets() {
        let r = Report {
            figures: vec![
                Figure::at_most("create p99", "4.2 ms", 4.2, 10.0, "≤ 10 ms"),
                Figure::at_least("writes/s", "2500/s", 2500.0, 3000.0, "≥ 3000/s"),
                Figure::info("pods", "10000"),
            ],
            notes: vec!["hello".into()],
        };
        let text = r.text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("figure"));
        // The value column starts at the same offset on every row.
        let col = lines[0].find("value").expect("header has value");
        assert_eq!(lines[2].find("4.2 ms"), Some(col));
        assert_eq!(lines[3].find("2500/s"), Some(col));
        assert!(lines[3].ends_with("MISS"), "{}", lines[3]);
        assert!(text.contains("1 of 2 targets met"), "{text}");
        assert!(text.contains("note: hello"));
        assert_eq!(r.misses(), 1);
    }

    #[test]
    fn markdown_escapes_pipes_and_bolds_misses() {
        let r = Report {
            figures: vec![Figure::at_most("a|b", "1", 2.0, 1.0, "≤ 1")],
            notes: vec![],
        };
        let md = r.markdown();
        assert!(md.contains("| a\\|b | 1 | ≤ 1 | **MISS** |"), "{md}");
        let sub = Report {
            figures: vec![Figure::info("  cpu during x", "1 core")],
            notes: vec![],
        };
        assert!(
            sub.markdown()
                .contains("| ↳ cpu during x | 1 core | - | - |")
        );
    }
}
