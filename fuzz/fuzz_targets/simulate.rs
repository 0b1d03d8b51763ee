//! Arbitrary UTF-8 into `peerhours simulate`: never a panic, and a scenario that runs
//! reports accounts that sum to 0.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(report) = protocol::simulate::run(text) {
        assert_eq!(
            report.sum_mh, 0,
            "the simulation reports a sum of {} mh",
            report.sum_mh
        );
        let sum: i128 = report
            .balances_mh
            .values()
            .chain(report.accounts_mh.values())
            .map(|v| i128::from(*v))
            .sum();
        assert_eq!(sum, 0, "the reported balances and accounts sum to {sum} mh");
    }
});
