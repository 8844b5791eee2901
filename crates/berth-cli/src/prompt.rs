//! Questions asked on the terminal before destructive commands (docker's `prompt.Confirm`).

use std::io;

use crate::error::Error;
use crate::write_out;

/// docker's `prompt.Confirm`: prints `message [y/N] ` and reads one line; only `y`
/// (any case) agrees.
pub(crate) fn confirm(message: &str) -> Result<bool, Error> {
    write_out(&format!("{message} [y/N] "))?;
    let mut line = String::new();
    io::stdin()
        .read_line(&mut line)
        .map_err(|e| Error::client(format!("cannot read the answer: {e}")))?;
    Ok(line.trim().eq_ignore_ascii_case("y"))
}
