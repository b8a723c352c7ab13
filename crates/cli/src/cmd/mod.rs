pub mod policy;
pub mod scan;
pub mod update;
