//! Shared helpers for Basin's benchmarks: deterministic data generation.
//!
//! The criterion benches live in `benches/`; `peers/` holds scripts that run
//! the same workload in DuckDB and Polars in the same run and print ratios.

use std::io::Write;
use std::path::Path;

/// Writes an orders-like CSV of `rows` rows (ints, decimals, timestamps, text) to `path`.
pub fn write_orders_csv(path: &Path, rows: u64) -> std::io::Result<u64> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "order_id,customer_id,amount,currency,ordered_at,note")?;
    const CURRENCIES: [&str; 5] = ["EUR", "USD", "GBP", "JPY", "DKK"];
    for i in 0..rows {
        let customer = i * 7919 % 100_003;
        let cents = i * 104_729 % 1_000_000;
        let second = i % 31_536_000;
        let (day, rest) = (second / 86_400, second % 86_400);
        let month = day / 28 % 12 + 1;
        let dom = day % 28 + 1;
        writeln!(
            out,
            "{i},{customer},{}.{:02},{},2024-{month:02}-{dom:02}T{:02}:{:02}:{:02}Z,note {}",
            cents / 100,
            cents % 100,
            CURRENCIES[(i % 5) as usize],
            rest / 3600,
            rest / 60 % 60,
            rest % 60,
            i % 97,
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}
