//! Shared pieces of the fuzz targets: one deterministic fixture per process.

use std::sync::OnceLock;

use protocol::testkit::Fixture;

/// The fixture every target signs and verifies with: 4 delegates, 3 members and one
/// coordinator, keys derived from the label `fuzz`.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture::new("fuzz", 4, 3))
}
