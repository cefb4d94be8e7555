//! A small version of Go's `text/tabwriter` as kubectl describe configures
//! it (minimum width 0, padding 2, spaces): cells are separated by tabs, and
//! a column is aligned across the run of consecutive lines that all have a
//! tab-terminated cell in that column. A line's last cell is never padded,
//! so a line without a tab ends every alignment block above it.

/// Indentation per describe level, as kubectl's prefix writer uses.
const INDENT: &str = "  ";
const PADDING: usize = 2;

/// Lines collected for one describe output.
#[derive(Debug, Default)]
pub struct Tw {
    lines: Vec<Vec<String>>,
}

impl Tw {
    pub fn new() -> Tw {
        Tw::default()
    }

    /// Adds one line at `level` (two spaces each); `text` holds the cells
    /// separated by tabs, without a newline.
    pub fn line(&mut self, level: usize, text: &str) {
        let mut cells: Vec<String> = text.split('\t').map(str::to_string).collect();
        if let Some(first) = cells.first_mut() {
            *first = format!("{}{first}", INDENT.repeat(level));
        }
        self.lines.push(cells);
    }

    /// Adds a multi-line text at `level`, one line per line of `text`.
    pub fn lines(&mut self, level: usize, text: &str) {
        for l in text.lines() {
            self.line(level, l);
        }
    }

    /// The aligned text. Trailing spaces are trimmed so output compares
    /// stably.
    pub fn render(&self) -> String {
        let n = self.lines.len();
        let mut widths: Vec<Vec<usize>> = self
            .lines
            .iter()
            .map(|l| vec![0; l.len().saturating_sub(1)])
            .collect();
        let columns = self.lines.iter().map(Vec::len).max().unwrap_or(0);
        for c in 0..columns {
            let mut i = 0;
            while i < n {
                if self.lines[i].len() <= c + 1 {
                    i += 1;
                    continue;
                }
                let start = i;
                let mut w = 0;
                while i < n && self.lines[i].len() > c + 1 {
                    w = w.max(self.lines[i][c].chars().count() + PADDING);
                    i += 1;
                }
                for row in &mut widths[start..i] {
                    row[c] = w;
                }
            }
        }
        let mut out = String::new();
        for (cells, w) in self.lines.iter().zip(&widths) {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                line.push_str(cell);
                if let Some(&w) = w.get(i) {
                    let pad = w.saturating_sub(cell.chars().count());
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_blocks_of_consecutive_lines() {
        let mut w = Tw::new();
        w.line(0, "Name:\tweb");
        w.line(0, "Namespace:\tdefault");
        w.line(0, "Containers:");
        w.line(1, "a:");
        w.line(2, "Image:\tx");
        w.line(2, "Restart Count:\t0");
        // Adjacent to the block above, so aligned with it, as in kubectl.
        w.line(0, "Events:\t<none>");
        assert_eq!(
            w.render(),
            "\
Name:       web
Namespace:  default
Containers:
  a:
    Image:          x
    Restart Count:  0
Events:             <none>
"
        );
    }
}
