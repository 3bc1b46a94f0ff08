//! What `/extract` stores and warming stores alike: the cache key of an extraction
//! ([`cache_key`]) and the body fetched for it ([`fetch`]). Below both the routes and
//! warming, so neither imports the other.

pub mod cache_key;
pub mod fetch;
