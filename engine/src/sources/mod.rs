//! Sources Basin reads from: named connections (checks, discovery, live
//! queries as SQL catalogs) and syncs that copy their streams into datasets.

pub mod connections;
pub mod sync;
