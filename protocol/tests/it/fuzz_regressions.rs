//! Regressions for what the cargo-fuzz targets under `fuzz/` found.

use protocol::ledger::Ledger;
use protocol::testkit::Fixture;
use protocol::Genesis;

fn with_openings(openings: &[i64]) -> Genesis {
    let fx = Fixture::new("fuzz-regression/openings", 4, openings.len());
    let mut g = fx.genesis;
    for (m, o) in g.members.iter_mut().zip(openings) {
        m.opening_mh = *o;
    }
    g
}

/// `genesis_toml`: two opening balances of 9e15 hours each were accepted, pool
/// saturated at `i64::MIN` and the genesis ledger's accounts summed to 1.78e19 mh, not 0.
#[test]
fn openings_whose_sum_pool_cannot_balance_are_refused() {
    for openings in [
        vec![9_000_000_000_000_000_000, 9_000_000_000_000_000_000],
        vec![i64::MIN],
        vec![i64::MIN + 1, -1],
        vec![i64::MAX, 1],
    ] {
        let g = with_openings(&openings);
        assert!(g.validate().is_err(), "openings {openings:?} were accepted");
        assert!(
            Genesis::from_toml(&g.to_toml()).is_err(),
            "TOML with openings {openings:?} was accepted"
        );
        assert!(
            Genesis::from_bytes(&g.to_bytes()).is_err(),
            "bytes with openings {openings:?} were accepted"
        );
    }
}

#[test]
fn openings_at_the_edge_of_the_range_open_a_balanced_ledger() {
    for openings in [
        vec![i64::MAX],
        vec![i64::MIN + 1],
        vec![i64::MAX, -5, i64::MIN + 6],
        vec![12_500, -2_500],
    ] {
        let g = with_openings(&openings);
        g.validate().expect("the openings fit");
        let again = Genesis::from_toml(&g.to_toml()).expect("TOML reads back");
        assert_eq!(again, g);
        let ledger = Ledger::from_genesis(&g);
        ledger.check_invariants().expect("the accounts sum to 0");
    }
}
