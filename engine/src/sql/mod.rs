//! SQL over datasets: the one factory of query contexts ([`contexts`]), ad-hoc
//! read-only queries ([`query`]) and their [`results`] cache, and the SQL
//! statements that write datasets ([`writes`]).

pub mod contexts;
pub mod query;
pub mod results;
pub mod writes;
