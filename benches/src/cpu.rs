//! CPU time of a process, from `/proc`, to show how the two cores were split between the server
//! and this load generator during a level.

use std::time::Duration;

use anyhow::{Context, Result};

/// Clock ticks per second of the `utime` and `stime` fields in `/proc/<pid>/stat`. Linux reports
/// them in `USER_HZ`, which is 100 on every architecture it exposes to user space.
const TICKS_PER_SECOND: u64 = 100;

/// User plus system CPU time consumed so far by process `pid` (`"self"` for this one).
pub fn cpu_time(pid: &str) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;

    // The command name in parentheses may hold spaces; the numeric fields follow the last ')'.
    // After it come field 3 (state) onwards, so utime (field 14) and stime (15) are at 11, 12.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("no ')' in stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |index: usize| -> Result<u64> {
        fields
            .get(index)
            .context("stat has too few fields")?
            .parse()
            .with_context(|| format!("field {index} of {path}"))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / TICKS_PER_SECOND))
}
