//! Consensus bounds. Every node must use the same values: changing one is a protocol change.

/// Largest encoded signed record (a quorum record with many approvals fits).
pub const RECORD_BYTES_MAX: usize = 16 * 1024;
/// Most records in one block.
pub const BLOCK_RECORDS_MAX: usize = 4_096;
/// Largest encoded block.
pub const BLOCK_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Largest encoded vote or certificate message.
pub const VOTE_BYTES_MAX: usize = 1024;
/// Largest encoded certificate.
pub const CERTIFICATE_BYTES_MAX: usize = 64 * 1024;
/// Largest gossip message of any kind (records and votes): one size limit everywhere.
pub const GOSSIP_BYTES_MAX: usize = RECORD_BYTES_MAX + 1024;
/// Names (associations, projects, tasks, products) in bytes.
pub const NAME_BYTES_MAX: usize = 64;
/// A contribution's note in bytes.
pub const NOTE_BYTES_MAX: usize = 256;
/// Most coordinators of one project.
pub const COORDINATORS_MAX: usize = 16;
/// Most delegates in a set.
pub const DELEGATES_MAX: usize = 64;
/// Largest encoded genesis.
pub const GENESIS_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most members a ledger admits (consensus bound).
pub const MEMBERS_MAX: usize = 1_000_000;
/// Most projects a ledger registers (consensus bound).
pub const PROJECTS_MAX: usize = 10_000;
/// Most tasks posted in one period.
pub const TASKS_PER_PERIOD_MAX: usize = 10_000;
/// Most products offered in one period.
pub const PRODUCTS_PER_PERIOD_MAX: usize = 10_000;
/// Most bids on one task or product.
pub const BIDS_PER_AUCTION_MAX: usize = 100_000;
/// Most contributions in one period.
pub const CONTRIBUTIONS_PER_PERIOD_MAX: usize = 1_000_000;
