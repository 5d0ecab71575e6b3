//! SQL over datasets: the one factory of query contexts ([`contexts`]), ad-hoc
//! read-only queries ([`query`]), and the SQL statements that write
//! datasets ([`writes`]).

pub mod contexts;
pub mod query;
pub mod writes;
