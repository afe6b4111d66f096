//! One time base for a run: the emulator, the receiver and the freeze all stamp events with it,
//! so "before the freeze" compares like with like.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::date::civil_from_days;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        Clock { origin: Instant::now() }
    }

    /// Microseconds since the run's start.
    pub(crate) fn us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    pub(crate) fn ms(&self) -> u64 {
        self.us() / 1000
    }

    /// The instant `us` microseconds after the start, for deadlines.
    pub(crate) fn instant(&self, us: u64) -> Instant {
        self.origin + Duration::from_micros(us)
    }
}

/// Milliseconds since the Unix epoch, as Lambda's deadlines count.
pub(crate) fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// An epoch time in milliseconds as ISO 8601 UTC (`2022-10-12T00:00:15.064Z`), the Telemetry API's
/// `time` format.
pub(crate) fn iso8601(epoch_ms: u64) -> String {
    let secs = epoch_ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        epoch_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_of_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        // 2022-10-12T00:00:15.064Z, the example of Lambda's schema reference.
        assert_eq!(iso8601(1_665_532_815_064), "2022-10-12T00:00:15.064Z");
        // A leap day.
        assert_eq!(iso8601(1_709_208_000_001), "2024-02-29T12:00:00.001Z");
    }
}
