//! Integration tests of the service: a real server on a real socket, spoken to over HTTP.
//! One test binary (see STYLE.md 13).

mod binary;
mod probes;
mod reload;
mod routing;
mod shutdown;
mod store_outage;
mod support;
mod wiring;
