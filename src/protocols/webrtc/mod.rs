//! WebRTC in the gateway: WHIP ingest (`POST /whip/{stream}`) and WHEP egress
//! (`POST /whep/{stream}`), each session one webrtcbin whose ICE binds the configured address.
//!
//! - [`sdp`]: offers parsed and checked, payload types chosen (pure, unit-tested).
//! - `ice`: the ICE agent's address, UDP-only, port range.
//! - `peer`: one webrtcbin answering an offer, its events on a channel.
//! - `whip` / `ingest`: publisher sessions, incoming pads → frames → the hub.
//! - `whep`: viewer sessions (WHEP), sent by `viewer` (str0m, RTP packetized once per frame and
//!   shared; the default) or by `egress` (appsrc → payloaders → webrtcbin, one pipeline each),
//!   as `webrtc.egress` says.
//! - `registry`: sessions by id (`DELETE` on `Location`), `http`: the axum handlers and CORS.

mod egress;
mod error;
mod http;
mod ice;
mod ingest;
mod peer;
mod pending;
mod registry;
pub mod sdp;
mod viewer;
mod whep;
mod whip;

use std::sync::Arc;
use std::time::Duration;

pub use error::WebrtcError;
pub use http::{routes, Doc};
pub use ice::IceError;
pub use pending::{Pending, PendingRefused, PendingSlot};
pub use registry::{Kind, Registry};

use crate::config::WebrtcSettings;

/// What the WHIP/WHEP handlers and sessions get from the gateway.
#[derive(Clone)]
pub struct WebrtcCtx {
    pub hub: crate::hub::Hub,
    pub webrtc: Sessions,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub admission: crate::auth::Admission,
}

/// A negotiated session: where its resource lives and the SDP answer.
#[derive(Debug, Clone)]
pub struct Answered {
    pub location: String,
    pub sdp: String,
}

/// The gateway's WebRTC side: its settings and the sessions running now (cheap to clone).
#[derive(Clone)]
pub struct Sessions {
    settings: Arc<WebrtcSettings>,
    registry: Registry,
    pending: Pending,
    /// The tasks driving connected str0m WHEP viewers.
    drivers: viewer::Drivers,
}

impl Sessions {
    /// Refuses settings ICE cannot use (e.g. a reversed port range).
    pub fn new(settings: WebrtcSettings) -> Result<Sessions, IceError> {
        ice::check(&settings)?;
        let pending = Pending::new(settings.max_pending_per_address, settings.max_pending);
        Ok(Sessions {
            settings: Arc::new(settings),
            registry: Registry::default(),
            pending,
            drivers: viewer::Drivers::default(),
        })
    }

    pub fn settings(&self) -> &WebrtcSettings {
        &self.settings
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The tasks driving connected str0m WHEP viewers.
    pub fn drivers(&self) -> &viewer::Drivers {
        &self.drivers
    }

    /// Sessions answered and still connecting, bounded per address and in total.
    pub fn pending(&self) -> &Pending {
        &self.pending
    }

    /// Sessions running now.
    pub fn len(&self) -> usize {
        self.registry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.registry.is_empty()
    }

    /// Waits (bounded) for every session to end, e.g. after shutdown was signalled.
    pub async fn wait_closed(&self, timeout: Duration) -> bool {
        self.registry.wait_empty(timeout).await
    }
}
