//! Integration tests of `riptide-extract` against a local fixture site: extraction,
//! fetch limits and errors, and the SSRF guard. One binary, one module per concern.

mod budget;
mod encoding;
mod guard;
mod limits;
mod pages;
mod server;
