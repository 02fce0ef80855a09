//! NOTIFICATION messages and the typed decode errors that map to them (RFC 4271 section 6,
//! RFC 7606 for UPDATE errors).

use std::fmt;

/// NOTIFICATION error codes (RFC 4271 section 4.5, RFC 2918/7313 for ROUTE-REFRESH).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 section 6.1).
pub mod header_subcode {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 section 6.2, RFC 5492).
pub mod open_subcode {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// UPDATE Message Error subcodes (RFC 4271 section 6.3).
pub mod update_subcode {
    pub const UNSPECIFIC: u8 = 0;
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm_subcode {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_MESSAGE_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_MESSAGE_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_MESSAGE_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486).
pub mod cease_subcode {
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
}

/// A NOTIFICATION message (RFC 4271 section 4.5), sent or received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: impl Into<Vec<u8>>) -> Notification {
        Notification {
            code,
            subcode,
            data: data.into(),
        }
    }

    /// Hold Timer Expired (RFC 4271 section 6.5).
    pub fn hold_timer_expired() -> Notification {
        Notification::new(code::HOLD_TIMER_EXPIRED, 0, [])
    }

    /// Cease / Administrative Shutdown with an optional Shutdown Communication (RFC 8203):
    /// a length octet and up to 128 octets of UTF-8, cut at a character boundary.
    pub fn administrative_shutdown(communication: Option<&str>) -> Notification {
        let mut data = Vec::new();
        if let Some(text) = communication {
            let mut end = text.len().min(128);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            data.push(end as u8);
            data.extend_from_slice(&text.as_bytes()[..end]);
        }
        Notification::new(code::CEASE, cease_subcode::ADMINISTRATIVE_SHUTDOWN, data)
    }

    /// The RFC 8203 Shutdown Communication of a Cease / Administrative Shutdown or Reset.
    pub fn shutdown_communication(&self) -> Option<String> {
        let shutdown = self.code == code::CEASE
            && (self.subcode == cease_subcode::ADMINISTRATIVE_SHUTDOWN
                || self.subcode == cease_subcode::ADMINISTRATIVE_RESET);
        let (&len, text) = self.data.split_first()?;
        if !shutdown || usize::from(len) > text.len() {
            return None;
        }
        Some(String::from_utf8_lossy(&text[..usize::from(len)]).into_owned())
    }

    /// A name for logs and status: "Hold Timer Expired", "Cease/Administrative Shutdown"...
    pub fn name(&self) -> String {
        let code_name = match self.code {
            code::MESSAGE_HEADER => "Message Header Error",
            code::OPEN_MESSAGE => "OPEN Message Error",
            code::UPDATE_MESSAGE => "UPDATE Message Error",
            code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            code::FSM => "Finite State Machine Error",
            code::CEASE => "Cease",
            code::ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
            _ => "Unknown Error",
        };
        let subcode_name = match (self.code, self.subcode) {
            (code::MESSAGE_HEADER, 1) => "Connection Not Synchronized",
            (code::MESSAGE_HEADER, 2) => "Bad Message Length",
            (code::MESSAGE_HEADER, 3) => "Bad Message Type",
            (code::OPEN_MESSAGE, 1) => "Unsupported Version Number",
            (code::OPEN_MESSAGE, 2) => "Bad Peer AS",
            (code::OPEN_MESSAGE, 3) => "Bad BGP Identifier",
            (code::OPEN_MESSAGE, 4) => "Unsupported Optional Parameter",
            (code::OPEN_MESSAGE, 6) => "Unacceptable Hold Time",
            (code::OPEN_MESSAGE, 7) => "Unsupported Capability",
            (code::UPDATE_MESSAGE, 1) => "Malformed Attribute List",
            (code::UPDATE_MESSAGE, 2) => "Unrecognized Well-known Attribute",
            (code::UPDATE_MESSAGE, 3) => "Missing Well-known Attribute",
            (code::UPDATE_MESSAGE, 4) => "Attribute Flags Error",
            (code::UPDATE_MESSAGE, 5) => "Attribute Length Error",
            (code::UPDATE_MESSAGE, 6) => "Invalid ORIGIN Attribute",
            (code::UPDATE_MESSAGE, 8) => "Invalid NEXT_HOP Attribute",
            (code::UPDATE_MESSAGE, 9) => "Optional Attribute Error",
            (code::UPDATE_MESSAGE, 10) => "Invalid Network Field",
            (code::UPDATE_MESSAGE, 11) => "Malformed AS_PATH",
            (code::FSM, 1) => "Unexpected Message in OpenSent",
            (code::FSM, 2) => "Unexpected Message in OpenConfirm",
            (code::FSM, 3) => "Unexpected Message in Established",
            (code::CEASE, 1) => "Maximum Number of Prefixes Reached",
            (code::CEASE, 2) => "Administrative Shutdown",
            (code::CEASE, 3) => "Peer De-configured",
            (code::CEASE, 4) => "Administrative Reset",
            (code::CEASE, 5) => "Connection Rejected",
            (code::CEASE, 6) => "Other Configuration Change",
            (code::CEASE, 7) => "Connection Collision Resolution",
            (code::CEASE, 8) => "Out of Resources",
            (code::CEASE, 9) => "Hard Reset",
            (code::ROUTE_REFRESH, 1) => "Invalid Message Length",
            _ => "",
        };
        if subcode_name.is_empty() {
            code_name.to_string()
        } else {
            format!("{code_name}/{subcode_name}")
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{})", self.name(), self.code, self.subcode)?;
        if let Some(text) = self.shutdown_communication() {
            write!(f, ": {text:?}")?;
        }
        Ok(())
    }
}

/// What RFC 7606 says to do with an UPDATE that has an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateErrorAction {
    /// Section 2 "session reset": send a NOTIFICATION and close.
    SessionReset,
    /// Section 2 "treat-as-withdraw": the UPDATE's routes are withdrawn; the session stays.
    TreatAsWithdraw,
    /// Section 2 "attribute discard": the attribute is ignored; the session stays.
    AttributeDiscard,
}

/// An error found while decoding a received message; each maps to a NOTIFICATION or to an
/// RFC 7606 reaction that keeps the session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// RFC 4271 section 6.1: BGPHeaderErr (event 21).
    #[error("message header error: {reason}")]
    Header {
        notification: Notification,
        reason: String,
    },
    /// RFC 4271 section 6.2: BGPOpenMsgErr (event 22).
    #[error("OPEN message error: {reason}")]
    Open {
        notification: Notification,
        reason: String,
    },
    /// RFC 4271 section 6.3 with RFC 7606's choice of reaction: UpdateMsgErr (event 28) when
    /// the action is a session reset.
    #[error("UPDATE message error ({action:?}): {reason}")]
    Update {
        notification: Notification,
        action: UpdateErrorAction,
        reason: String,
    },
    /// A malformed NOTIFICATION: no NOTIFICATION is sent in reply (RFC 4271 section 6.4 and
    /// 4.5), the connection just closes.
    #[error("malformed NOTIFICATION: {reason}")]
    Notification { reason: String },
    /// RFC 7313 section 5: a ROUTE-REFRESH of the wrong length.
    #[error("ROUTE-REFRESH message error: {reason}")]
    RouteRefresh {
        notification: Notification,
        reason: String,
    },
}

impl DecodeError {
    /// The NOTIFICATION to send, if any.
    pub fn notification(&self) -> Option<&Notification> {
        match self {
            DecodeError::Header { notification, .. }
            | DecodeError::Open { notification, .. }
            | DecodeError::Update { notification, .. }
            | DecodeError::RouteRefresh { notification, .. } => Some(notification),
            DecodeError::Notification { .. } => None,
        }
    }

    pub(crate) fn header(subcode: u8, data: impl Into<Vec<u8>>, reason: impl Into<String>) -> Self {
        DecodeError::Header {
            notification: Notification::new(code::MESSAGE_HEADER, subcode, data),
            reason: reason.into(),
        }
    }

    pub(crate) fn open(subcode: u8, data: impl Into<Vec<u8>>, reason: impl Into<String>) -> Self {
        DecodeError::Open {
            notification: Notification::new(code::OPEN_MESSAGE, subcode, data),
            reason: reason.into(),
        }
    }

    pub(crate) fn update_reset(subcode: u8, reason: impl Into<String>) -> Self {
        DecodeError::Update {
            notification: Notification::new(code::UPDATE_MESSAGE, subcode, []),
            action: UpdateErrorAction::SessionReset,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8203_shutdown_communication_round_trips_and_is_cut_at_128_octets() {
        let n = Notification::administrative_shutdown(Some("maintenance ✓"));
        assert_eq!(n.code, 6);
        assert_eq!(n.subcode, 2);
        assert_eq!(n.shutdown_communication().as_deref(), Some("maintenance ✓"));
        let long = "é".repeat(100);
        let n = Notification::administrative_shutdown(Some(&long));
        assert_eq!(n.data[0], 128);
        assert_eq!(n.shutdown_communication().unwrap().chars().count(), 64);
        assert_eq!(
            Notification::administrative_shutdown(None).data,
            Vec::<u8>::new()
        );
    }

    #[test]
    fn names_are_readable() {
        assert_eq!(
            Notification::hold_timer_expired().to_string(),
            "Hold Timer Expired (4/0)"
        );
        let n = Notification::new(2, 2, []);
        assert_eq!(n.to_string(), "OPEN Message Error/Bad Peer AS (2/2)");
    }
}
