//! The one table `rk-bench all` ends with: every figure beside the peer
//! measured in the same run, their ratio, the target and whether it was met.

/// One line of the summary.
pub struct Row {
    pub figure: String,
    pub rk: String,
    /// The peer's figure, with the peer's name.
    pub peer: String,
    pub ratio: String,
    pub target: String,
    /// `Some(true)` met, `Some(false)` missed, `None` no target or no figure.
    pub met: Option<bool>,
}

impl Row {
    pub fn new(figure: impl Into<String>) -> Row {
        Row {
            figure: figure.into(),
            rk: "-".into(),
            peer: "-".into(),
            ratio: "-".into(),
            target: String::new(),
            met: None,
        }
    }

    /// A figure that could not be measured, with the reason.
    pub fn failed(figure: impl Into<String>, why: &str) -> Row {
        let mut r = Row::new(figure);
        r.rk = format!("not measured: {}", first_line(why));
        r
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(60).collect::<String>())
    } else {
        line.to_string()
    }
}

/// `a / b`, printed with two decimals, or "-" when `b` is zero.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

pub fn render(rows: &[Row]) -> String {
    let headers = ["figure", "rk", "peer (same run)", "rk/peer", "target", ""];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                r.rk.clone(),
                r.peer.clone(),
                r.ratio.clone(),
                r.target.clone(),
                match r.met {
                    Some(true) => "met".into(),
                    Some(false) => "MISSED".into(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let mut out = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            // Figures are right-aligned, words left-aligned.
            if (1..=3).contains(&i) {
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
            }
            out.push_str("  ");
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&headers.map(String::from));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_verdicts_show() {
        let mut a = Row::new("sequential write p50");
        a.rk = "2.61 ms".into();
        a.peer = "etcd 1.50 ms".into();
        a.ratio = ratio(2.61, 1.50);
        a.target = "rk/etcd <= 1".into();
        a.met = Some(false);
        let b = Row::failed("pod start", "podman: not found\nmore");
        let t = render(&[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].ends_with("MISSED"));
        assert!(lines[1].contains("1.74"));
        assert!(lines[2].contains("not measured: podman: not found"));
        // The rk column ends at the same place on every line.
        let end = |l: &str, s: &str| l.find(s).map(|i| i + s.len());
        assert_eq!(end(lines[0], "rk"), end(lines[1], "2.61 ms"));
    }
}
