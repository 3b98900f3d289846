//! Confining webrtcbin's ICE to one local address, and reading candidates out of SDP.
//!
//! libnice gathers the machine's interface addresses and never 127.0.0.1 on its own. Giving the
//! agent an explicit local address before the first description is set makes that address the
//! only one it gathers. libnice has no Rust binding; these four functions are all we need.

use std::ffi::{c_char, c_void, CString};

use gst::glib;
use gst::prelude::*;
use gstreamer as gst;

#[link(name = "nice")]
extern "C" {
    fn nice_address_new() -> *mut c_void;
    fn nice_address_set_from_string(addr: *mut c_void, s: *const c_char) -> i32;
    fn nice_agent_add_local_address(agent: *mut c_void, addr: *const c_void) -> i32;
    fn nice_address_free(addr: *mut c_void);
}

/// Makes `ip` the only local address webrtcbin's libnice agent gathers, and turns ICE-TCP off.
/// Call before the first set-local/remote description.
pub fn restrict_ice_to(webrtc: &gst::Element, ip: &str) -> anyhow::Result<()> {
    let ice: glib::Object = webrtc.property("ice-agent");
    ice.set_property("ice-tcp", false);
    let agent: glib::Object = ice.property("agent");
    let text = CString::new(ip)?;
    // SAFETY: `addr` is a fresh NiceAddress owned here and freed below; `agent` is a live
    // NiceAgent (we hold a reference for the whole call); libnice copies the address.
    let added = unsafe {
        let addr = nice_address_new();
        if addr.is_null() {
            anyhow::bail!("nice_address_new returned NULL");
        }
        if nice_address_set_from_string(addr, text.as_ptr()) == 0 {
            nice_address_free(addr);
            anyhow::bail!("libnice does not accept {ip:?} as an address");
        }
        let added = nice_agent_add_local_address(agent.as_ptr() as *mut c_void, addr);
        nice_address_free(addr);
        added
    };
    if added == 0 {
        anyhow::bail!("nice_agent_add_local_address({ip}) failed");
    }
    Ok(())
}

/// The connection addresses of every `a=candidate` line in `sdp`, in order.
pub fn candidate_addresses(sdp: &str) -> Vec<String> {
    // a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...
    sdp.lines()
        .filter_map(|line| line.trim().strip_prefix("a=candidate:"))
        .filter_map(|rest| rest.split_whitespace().nth(4).map(str::to_string))
        .collect()
}

/// Fails unless `sdp` has at least one candidate and all of them are `127.0.0.1`.
pub fn expect_loopback_candidates(sdp: &str, what: &str) -> anyhow::Result<()> {
    let addresses = candidate_addresses(sdp);
    if addresses.is_empty() || addresses.iter().any(|a| a != "127.0.0.1") {
        anyhow::bail!("{what}: expected only 127.0.0.1 candidates, got {addresses:?}\n{sdp}");
    }
    Ok(())
}
