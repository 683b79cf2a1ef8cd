//! How results reach the user: a readable table, or one JSON object on stdout.

use calib::metrics::Report;
use calib_report::table::{fixed, percent, render, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Prints `json` (JSON format) or the text `table` builds (table format). A closed standard
/// output (`calib metrics … | head`) ends the process quietly, see [`exit_on_broken_pipe`].
pub fn emit(format: Format, json: &serde_json::Value, table: impl FnOnce() -> String) -> anyhow::Result<()> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(json)?,
        Format::Table => table(),
    };
    print_text(&format!("{text}\n"))?;
    Ok(())
}

/// Writes `text` to standard output and flushes it; a closed pipe ends the process quietly.
pub fn print_text(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    exit_on_broken_pipe(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// Passes `result` through, except that a write to a closed pipe (the reader, e.g. `head`, is
/// gone) ends the process at once with status 0 and no message, as ripgrep does: the output
/// nobody reads is not an error.
pub fn exit_on_broken_pipe<T>(result: std::io::Result<T>) -> std::io::Result<T> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r,
    }
}

/// One row per metric: name, then one column per report (e.g. before / after scaling).
pub fn metric_rows(reports: &[&Report]) -> Vec<Vec<String>> {
    type Getter = fn(&Report) -> String;
    let rows: [(&str, Getter); 18] = [
        ("samples", |r| r.n.to_string()),
        ("classes", |r| r.classes.to_string()),
        ("error %", |r| percent(Some(r.error))),
        ("top-5 error %", |r| percent(Some(r.top5_error))),
        ("NLL", |r| fixed(Some(r.nll), 4)),
        ("Brier", |r| fixed(Some(r.brier), 4)),
        ("ECE %", |r| percent(Some(r.ece))),
        ("AdaECE %", |r| percent(Some(r.adaece))),
        ("classwise-ECE %", |r| percent(Some(r.classwise_ece))),
        ("MCE %", |r| percent(Some(r.mce))),
        ("smooth ECE %", |r| percent(Some(r.smece))),
        ("debiased L2 ECE %", |r| percent(Some(r.ece_debiased_l2))),
        ("ECE_sweep % (bins)", |r| format!("{} ({})", percent(Some(r.ece_sweep)), r.ece_sweep_bins)),
        ("KS %", |r| percent(Some(r.ks))),
        ("S99 %", |r| percent(Some(r.s99_fraction))),
        ("accuracy on S99 %", |r| percent(r.s99_accuracy)),
        ("entropy (correct)", |r| fixed(r.entropy.correct, 4)),
        ("entropy (wrong)", |r| fixed(r.entropy.wrong, 4)),
    ];
    rows.iter()
        .map(|(name, get)| std::iter::once(name.to_string()).chain(reports.iter().map(|r| get(r))).collect())
        .collect()
}

/// The reliability bins as a table.
pub fn bins_table(bins: &[calib::Bin]) -> String {
    let rows: Vec<Vec<String>> = bins
        .iter()
        .map(|b| {
            vec![
                format!("({:.3}, {:.3}]", b.lower, b.upper),
                b.count.to_string(),
                fixed(b.mean_conf, 4),
                fixed(b.accuracy, 4),
            ]
        })
        .collect();
    render(&["bin", "count", "mean confidence", "accuracy"], &rows, Style::Terminal)
}

/// Ends the process: prints a parse error or a run error as one line, and maps it to an exit
/// code (0 for `--help`/`--version`, 2 for bad arguments, 1 for failures).
pub fn exit(parsed: Result<anyhow::Result<()>, clap::Error>) -> std::process::ExitCode {
    use std::process::ExitCode;
    match parsed {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
        Err(e) if !e.use_stderr() => match print_text(&e.to_string()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(e) => {
            // One line: clap's message up to its blank line (a missing argument's name is on the
            // second line), without the usage block.
            let text = e.to_string();
            let head: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            eprintln!("{}", if head.is_empty() { "error: bad arguments".to_string() } else { head.join(" ") });
            ExitCode::from(2)
        }
    }
}
