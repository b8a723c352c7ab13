pub mod policy;
pub mod scan;
