//! Terminal niceties that must never reach a pipe: a progress line for
//! long waits and colour for status cells.
//!
//! Both are decided once per run from the real standard streams (see
//! [`Terminal::detect`]); scripts that pipe rkctl's output get the plain,
//! stable text, and so do the tests, which capture output in buffers.

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// What the standard streams are connected to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terminal {
    /// Colour status cells on stdout: stdout is a terminal, `NO_COLOR` is
    /// unset and `TERM` is not `dumb`.
    pub color: bool,
    /// Draw a progress line on stderr: stderr is a terminal.
    pub progress: bool,
}

impl Terminal {
    pub fn detect() -> Terminal {
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Terminal {
            color: std::io::stdout().is_terminal() && !dumb && !no_color,
            progress: std::io::stderr().is_terminal() && !dumb,
        }
    }
}

/// A single status line on stderr, redrawn in place while something is
/// awaited, and erased when the wait ends. Disabled, it writes nothing.
pub struct Progress {
    enabled: bool,
    started: Instant,
    drawn: bool,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            started: Instant::now(),
            drawn: false,
        }
    }

    /// Redraws the line as `message (Ns)`.
    pub fn show(&mut self, err: &mut dyn Write, message: &str) {
        if !self.enabled {
            return;
        }
        let line = format!("{message} ({}s)", self.started.elapsed().as_secs());
        // Carriage return and "erase line" keep the line in place.
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Erases the line, so what follows starts on a clean line.
    pub fn clear(&mut self, err: &mut dyn Write) {
        if self.drawn {
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

/// How a status word reads at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tone {
    Good,
    Pending,
    Bad,
}

fn tone(status: &str) -> Option<Tone> {
    const BAD: [&str; 12] = [
        "Error",
        "CrashLoopBackOff",
        "Failed",
        "OOMKilled",
        "NotReady",
        "BackOff",
        "ErrImage",
        "Evicted",
        "Unknown",
        "DeadlineExceeded",
        "BackoffLimitExceeded",
        "Lost",
    ];
    const PENDING: [&str; 7] = [
        "Pending",
        "ContainerCreating",
        "PodInitializing",
        "Terminating",
        "Init:",
        "SchedulingDisabled",
        "Suspended",
    ];
    const GOOD: [&str; 6] = ["Running", "Completed", "Succeeded", "Ready", "Complete", "Active"];
    if BAD.iter().any(|b| status.contains(b)) {
        Some(Tone::Bad)
    } else if PENDING.iter().any(|p| status.contains(p)) {
        Some(Tone::Pending)
    } else if GOOD.contains(&status) {
        Some(Tone::Good)
    } else {
        None
    }
}

/// Colours the STATUS column of a rendered table (header line first).
/// Only the word itself is wrapped in escape codes, after the padding was
/// computed, so the columns stay aligned on screen.
pub fn color_status_column(table: &str) -> String {
    let mut lines = table.split_inclusive('\n');
    let Some(header) = lines.next() else {
        return String::new();
    };
    let Some(col) = column_start(header, "STATUS") else {
        return table.to_string();
    };
    let mut out = String::from(header);
    for line in lines {
        out.push_str(&color_cell_at(line, col));
    }
    out
}

/// Colours the STATUS cell of one rendered row of the table whose header
/// line is `header` (for `get -w`, which prints rows as they come).
pub fn color_row(header: &str, row: &str) -> String {
    match column_start(header, "STATUS") {
        Some(col) => color_cell_at(row, col),
        None => row.to_string(),
    }
}

/// The character offset where the column titled `title` starts.
fn column_start(header: &str, title: &str) -> Option<usize> {
    let mut offset = 0;
    for word in header.split_inclusive(' ') {
        if word.trim_end() == title {
            return Some(offset);
        }
        offset += word.chars().count();
    }
    None
}

fn color_cell_at(line: &str, col: usize) -> String {
    let Some((start, _)) = line.char_indices().nth(col) else {
        return line.to_string();
    };
    // A cell begins at its column; one that does not (an earlier cell ran
    // long and pushed it right) is left alone rather than guessed at.
    if start > 0 && !line[..start].ends_with(' ') {
        return line.to_string();
    }
    let rest = &line[start..];
    let end = rest.find([' ', '\n']).unwrap_or(rest.len());
    let word = &rest[..end];
    let code = match tone(word) {
        Some(Tone::Good) => "32",
        Some(Tone::Pending) => "33",
        Some(Tone::Bad) => "31",
        None => return line.to_string(),
    };
    format!("{}\x1b[{code}m{word}\x1b[0m{}", &line[..start], &rest[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_cells_are_coloured_and_stay_aligned() {
        let table = "NAME    READY   STATUS             RESTARTS   AGE\n\
                     web-1   1/1     Running            0          5m\n\
                     web-2   0/1     CrashLoopBackOff   4          5m\n\
                     web-3   0/1     Pending            0          5m\n\
                     web-4   0/1     Whatever           0          5m\n";
        let colored = color_status_column(table);
        let lines: Vec<&str> = colored.lines().collect();
        assert_eq!(lines[0], "NAME    READY   STATUS             RESTARTS   AGE");
        assert_eq!(
            lines[1],
            "web-1   1/1     \x1b[32mRunning\x1b[0m            0          5m"
        );
        assert_eq!(
            lines[2],
            "web-2   0/1     \x1b[31mCrashLoopBackOff\x1b[0m   4          5m"
        );
        assert_eq!(
            lines[3],
            "web-3   0/1     \x1b[33mPending\x1b[0m            0          5m"
        );
        assert_eq!(lines[4], "web-4   0/1     Whatever           0          5m");
        // Without the escape codes the text is exactly what a pipe gets.
        let plain = colored
            .replace("\x1b[32m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[33m", "")
            .replace("\x1b[0m", "");
        assert_eq!(plain, table);
    }

    #[test]
    fn node_statuses_and_tables_without_status() {
        let nodes = "NAME   STATUS                     ROLES\nn1     Ready                      <none>\nn2     NotReady                   <none>\nn3     Ready,SchedulingDisabled   <none>\n";
        let c = color_status_column(nodes);
        assert!(c.contains("\x1b[32mReady\x1b[0m "));
        assert!(c.contains("\x1b[31mNotReady\x1b[0m"));
        assert!(c.contains("\x1b[33mReady,SchedulingDisabled\x1b[0m"));
        let cms = "NAME   DATA   AGE\ncm     1      5s\n";
        assert_eq!(color_status_column(cms), cms);
    }

    #[test]
    fn progress_draws_only_when_enabled_and_erases_itself() {
        let mut buf = Vec::new();
        let mut p = Progress::new(false);
        p.show(&mut buf, "waiting");
        p.clear(&mut buf);
        assert!(buf.is_empty());
        let mut p = Progress::new(true);
        p.show(&mut buf, "waiting for 1 object");
        p.clear(&mut buf);
        let s = String::from_utf8(buf).unwrap_or_default();
        assert_eq!(s, "\r\x1b[2Kwaiting for 1 object (0s)\r\x1b[2K");
    }
}
